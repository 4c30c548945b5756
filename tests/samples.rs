//! The compiler reads a response sample as the server does: every sample of every shipped
//! provider, and variants of each (other statuses, bodies that are not JSON, values of another
//! type), run through the generated `decide` function and the runtime's extraction, select the
//! outcome, find the values and show the error text `otvi-codegen` says they do (`explain`
//! lists where a failure's text comes from with the same rule, `Step::failure_texts`).

mod common;

use axum::body::Bytes;
use otvi_codegen::model::{FailureText, Sample, Step, Then};
use otvi_codegen::sample::{Answer, Found};
use otvi_runtime::def::StepDef;
use otvi_runtime::response::{clean_message, Reply};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

fn reply(s: &Sample) -> Reply {
    let mut h = HeaderMap::new();
    for (n, v) in &s.headers {
        h.append(
            HeaderName::from_bytes(n.v.as_bytes()).unwrap(),
            HeaderValue::from_str(&v.v).unwrap(),
        );
    }
    Reply::new(s.status.v, h, Bytes::from(s.body.clone()))
}

/// The sample, and the same answer with other statuses, bodies and value types.
fn variants(s: &Sample) -> Vec<Sample> {
    let mut bodies = vec![
        s.body.clone(),
        Vec::new(),
        b"<html><body>Bad gateway</body></html>".to_vec(),
    ];
    if let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(&s.body) {
        for with in [Value::from(0), Value::Bool(true), Value::Null] {
            let mut m = m.clone();
            for v in m.values_mut().filter(|v| v.is_string()) {
                *v = with.clone();
            }
            bodies.push(serde_json::to_vec(&m).unwrap());
        }
        // Each key removed in turn.
        for k in m.keys() {
            let mut m = m.clone();
            m.remove(k);
            bodies.push(serde_json::to_vec(&m).unwrap());
        }
    }
    let mut out = Vec::new();
    for status in [s.status.v, 200, 201, 204, 300, 302, 401, 403, 500] {
        for body in &bodies {
            let mut v = s.clone();
            v.status.v = status;
            v.body = body.clone();
            out.push(v);
        }
    }
    out
}

/// Compares the compiler's reading of `sample` with the server's; returns a description of
/// every disagreement.
fn compare(step: &Step, def: &StepDef, sample: &Sample) -> Vec<String> {
    let mut out = Vec::new();
    let a = Answer::new(sample);
    let r = reply(sample);
    let compiler = a.select(step);
    let server = (def.decide)(&r).map(|o| {
        def.outcomes
            .iter()
            .position(|x| std::ptr::eq(*x, o))
            .expect("decide returns one of the step's outcomes")
    });
    let what = format!(
        "step `{}`, {} with status {} and body {:?}",
        step.name.v,
        sample.label(),
        sample.status.v,
        String::from_utf8_lossy(&sample.body)
    );
    if compiler != server {
        out.push(format!(
            "{what}: the compiler selects {compiler:?}, the server {server:?}"
        ));
        return out;
    }
    if let Some(j) = compiler {
        let defs = def.outcomes[j].extract;
        assert_eq!(step.outcomes[j].extract.len(), defs.len());
        for (e, d) in step.outcomes[j].extract.iter().zip(defs) {
            assert_eq!(e.key.v, d.key);
            let server = d.read(&r);
            let agree = match a.extract(e) {
                Found::Value(v) => server == Ok(Some(v)),
                Found::Missing if e.optional => server == Ok(None),
                Found::Missing | Found::NotJson => server.is_err(),
            };
            if !agree {
                out.push(format!(
                    "{what}: `{}` is {:?} to the compiler, {server:?} to the server",
                    e.key.v,
                    a.extract(e)
                ));
            }
        }
    }
    // A failure: the text `explain` says the user sees is the server's.
    let fail = match compiler.map(|j| &step.outcomes[j].then) {
        None => Some(None),
        Some(Then::Fail(f)) => Some(Some(f)),
        Some(_) => None,
    };
    if let Some(fail) = fail {
        let said = step.failure_texts(fail).into_iter().find_map(|t| match t {
            FailureText::Provider(p) => a.message_at(&p.v).and_then(|m| clean_message(&m)),
            FailureText::Message(m) => Some(m.v.clone()),
            FailureText::Status => Some(format!("the provider answered HTTP {}", sample.status.v)),
        });
        let outcome = server.map(|j| def.outcomes[j]);
        let shown = def.failure(&r, outcome, &otvi_runtime::secrets::NONE);
        if said.as_deref() != Some(shown.as_str()) {
            out.push(format!(
                "{what}: the failure reads {said:?} to the compiler, {shown:?} to the server"
            ));
        }
    }
    if let (Some(p), Some(d)) = (&step.error_message, def.error_message) {
        let compiler = a.message_at(&p.v);
        let server = r.text_at(d).and_then(clean_message);
        if compiler.is_some() != server.is_some()
            || compiler
                .as_deref()
                .is_some_and(|c| !c.starts_with(server.as_deref().unwrap_or_default()))
        {
            out.push(format!(
                "{what}: the error text is {compiler:?} to the compiler, {server:?} to the server"
            ));
        }
    }
    out
}

#[test]
fn every_shipped_sample_is_read_the_same_by_the_compiler_and_the_server() {
    let (mut samples, mut runs, mut problems) = (0, 0, Vec::new());
    for (p, def) in common::shipped() {
        for flow in &p.flows {
            let fdef = def.flow(&flow.id.v).unwrap();
            for (step, sdef) in flow.steps.iter().zip(fdef.steps) {
                for (_, sample) in step.all_samples() {
                    samples += 1;
                    problems.extend(compare(step, sdef, sample));
                    for v in variants(sample) {
                        runs += 1;
                        problems.extend(compare(step, sdef, &v));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(samples >= 25, "{samples} samples");
    assert!(runs > 1000, "{runs} runs");
}
