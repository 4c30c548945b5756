//! Runs a flow through its generated step functions against recorded provider answers (the
//! provider file's response samples), with no network: what `otvi-codegen simulate` prints and
//! what the shipped providers' simulation tests keep under review.
//!
//! Every value a user or an operator supplies, and every value kept from an answer, is sent
//! as a marker, so a printed request shows where each one goes and nothing else:
//! `<input.phone>`, `<base64(input.phone)>`, `<secret.api_key>`, `<stored.request_id>`,
//! `<uuid>`, `<run_id>`, `<utcnow>`, `<utcdate>`.
//!
//! A run is explored as states: the step to send next and which inputs and stored values the
//! run holds then. Each state's request is printed once, followed by what each answer to that
//! step leads to, exactly as the engine would act on it (outcome, extraction, prompt, failure
//! text); a state reached again is referred to by its number.

use crate::def::{CheckDef, FieldType, FlowDef, ProviderDef, Then};
use crate::request::{base64, push_form, push_path_segment, StepCx};
use crate::response::{is_web_link, Reply};
use crate::secrets::{self, Secrets};
use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt::Write as _;

/// A recorded answer to one step of the flow.
pub struct Answer {
    /// The index of the step it answers.
    pub step: usize,
    /// How the transcript names it: the sample's name or file, and its line.
    pub label: String,
    pub reply: Reply,
}

impl Answer {
    /// A recorded answer: headers that are not valid HTTP are left out (the compiler refuses
    /// them in a sample).
    pub fn new(
        step: usize,
        label: &str,
        status: u16,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Answer {
        let mut map = HeaderMap::new();
        for (n, v) in headers {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(n.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                map.append(n, v);
            }
        }
        Answer {
            step,
            label: label.to_string(),
            reply: Reply::new(status, map, Bytes::copy_from_slice(body)),
        }
    }
}

/// The transcripts of several flows of `provider`, in the order given, a blank line apart.
pub fn transcript(
    provider: &'static ProviderDef,
    flows: &[(&FlowDef, Vec<Answer>)],
    session: &[&str],
) -> String {
    flows
        .iter()
        .map(|(f, answers)| simulate(provider, f, answers, session))
        .collect::<Vec<_>>()
        .join("\n")
}

/// More states than any real flow has: a bound, so a transcript stays readable.
const MAX_STATES: usize = 200;

/// Where a run stands before it sends a step.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
struct State {
    step: usize,
    /// The inputs the run holds.
    inputs: BTreeSet<String>,
    /// Stored values: the value the answer gave (on the first path that reached this state),
    /// or `None` for a value that comes from the user's provider session.
    stored: BTreeMap<String, Option<String>>,
}

impl State {
    /// What makes two states send the same request and act the same on an answer.
    fn key(&self) -> (usize, Vec<String>, Vec<(String, bool)>) {
        (
            self.step,
            self.inputs.iter().cloned().collect(),
            self.stored
                .iter()
                .map(|(k, v)| (k.clone(), v.is_some()))
                .collect(),
        )
    }
}

/// The markers sent in place of real values, and how to show each again.
struct Markers {
    inputs: HashMap<String, String>,
    stored: HashMap<String, String>,
    secrets: Secrets,
    base_url: &'static str,
    uuid: String,
    run_id: String,
    now: time::OffsetDateTime,
    /// (text as it appears on the wire, what to print instead), longest first.
    shown: Vec<(String, String)>,
}

impl Markers {
    fn new(provider: &'static ProviderDef, flow: &FlowDef, session: &[&str]) -> Markers {
        let mut n = 0;
        let mut token = || {
            n += 1;
            // Twelve letters and digits: unchanged by JSON, form, path and header encoding,
            // and a multiple of three bytes, so its base64 has no padding.
            format!("OTVISIM{n:04}X")
        };
        let mut shown = Vec::new();
        let mut inputs = HashMap::new();
        let prompted = flow
            .steps
            .iter()
            .flat_map(|s| s.outcomes)
            .flat_map(|o| o.prompt);
        for f in flow.inputs.iter().chain(prompted) {
            if f.is_display() || inputs.contains_key(f.key) {
                continue;
            }
            let t = token();
            shown.push((t.clone(), format!("<input.{}>", f.key)));
            let b = base64(&t);
            let mut encoded = vec![b.clone()];
            let mut form = String::new();
            push_form(&mut form, &b);
            encoded.push(form);
            let mut segment = String::new();
            if push_path_segment(&mut segment, &b).is_ok() {
                encoded.push(segment);
            }
            for e in encoded {
                shown.push((e, format!("<base64(input.{})>", f.key)));
            }
            inputs.insert(f.key.to_string(), t);
        }
        let mut stored = HashMap::new();
        let extracted = flow
            .steps
            .iter()
            .flat_map(|s| s.outcomes)
            .flat_map(|o| o.extract)
            .map(|e| e.key);
        for k in extracted.chain(session.iter().copied()) {
            if !stored.contains_key(k) {
                let t = token();
                shown.push((t.clone(), format!("<stored.{k}>")));
                stored.insert(k.to_string(), t);
            }
        }
        let mut by_env = HashMap::new();
        for s in provider.secrets {
            let t = token();
            shown.push((t.clone(), format!("<secret.{}>", s.key)));
            by_env.insert(s.env, t);
        }
        let secrets = secrets::load([(provider.id, provider.secrets)], |env| {
            by_env.get(env).cloned()
        })
        .ok()
        .and_then(|mut all| all.remove(provider.id))
        .unwrap_or_default();
        let (uuid, run_id) = (token(), token());
        shown.push((uuid.clone(), "<uuid>".into()));
        shown.push((run_id.clone(), "<run_id>".into()));
        // 2001-02-03T04:05:06Z: `{{utcnow}}` is 20010203T040506, `{{utcdate}}` 20010203.
        let now = time::macros::datetime!(2001-02-03 04:05:06 UTC);
        shown.push(("20010203T040506".into(), "<utcnow>".into()));
        shown.push(("20010203".into(), "<utcdate>".into()));
        shown.sort_by_key(|(wire, _)| std::cmp::Reverse(wire.len()));
        Markers {
            base_url: provider.base_url,
            inputs,
            stored,
            secrets,
            uuid,
            run_id,
            now,
            shown,
        }
    }

    /// `text` with every marker shown by name.
    fn show(&self, text: &str) -> String {
        self.shown
            .iter()
            .fold(text.to_string(), |t, (wire, name)| t.replace(wire, name))
    }
}

/// The transcript of `flow` run against `answers`. `session` names values a flow that reads
/// the user's provider session may find there.
pub fn simulate(
    provider: &'static ProviderDef,
    flow: &FlowDef,
    answers: &[Answer],
    session: &[&str],
) -> String {
    let m = Markers::new(provider, flow, session);
    let mut out = String::new();
    // The provider's session check (`auth.check`) runs as a flow of one step: its outcomes
    // say valid or invalid, and an answer that says neither gets the file's `unreachable`.
    let check = provider.check.filter(|c| std::ptr::eq(c.flow, flow));
    if check.is_some() {
        let _ = writeln!(
            out,
            "session check of provider `{}` ({})",
            provider.id, provider.source
        );
    } else {
        let _ = writeln!(
            out,
            "flow `{}` \"{}\" of provider `{}` ({})",
            flow.id, flow.name, provider.id, provider.source
        );
    }
    let start = State {
        step: 0,
        inputs: flow
            .inputs
            .iter()
            .filter(|f| !f.is_display())
            .map(|f| f.key.to_string())
            .collect(),
        stored: if flow.uses_session {
            session.iter().map(|k| (k.to_string(), None)).collect()
        } else {
            BTreeMap::new()
        },
    };
    let mut numbers = BTreeMap::new();
    numbers.insert(start.key(), 1);
    let mut queue = VecDeque::from([(1, start)]);
    while let Some((n, state)) = queue.pop_front() {
        out.push('\n');
        let mut reach = |next: State, out: &mut String| {
            let name = flow.steps[next.step].name;
            let number = match numbers.get(&next.key()) {
                Some(k) => *k,
                None if numbers.len() >= MAX_STATES => {
                    let _ = writeln!(
                        out,
                        "      next: step {} `{name}` (not shown: too many states)",
                        next.step
                    );
                    return;
                }
                None => {
                    let k = numbers.len() + 1;
                    numbers.insert(next.key(), k);
                    queue.push_back((k, next.clone()));
                    k
                }
            };
            let _ = writeln!(out, "      next: [{number}] step {} `{name}`", next.step);
        };
        step(flow, check, &m, answers, n, &state, &mut out, &mut reach);
    }
    out
}

/// Prints state `n`: its request, then what each answer to its step leads to; `reach` prints
/// a reference to the state an answer leads to (numbering it if it is new).
#[allow(clippy::too_many_arguments)]
fn step(
    flow: &FlowDef,
    check: Option<&CheckDef>,
    m: &Markers,
    answers: &[Answer],
    n: usize,
    state: &State,
    out: &mut String,
    reach: &mut impl FnMut(State, &mut String),
) {
    let i = state.step;
    let def = &flow.steps[i];
    let list = |it: &mut dyn Iterator<Item = &String>| {
        let v: Vec<&str> = it.map(String::as_str).collect();
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    let _ = writeln!(out, "[{n}] step {i} `{}`", def.name);
    let _ = writeln!(
        out,
        "    inputs: {}; stored: {}",
        list(&mut state.inputs.iter()),
        list(&mut state.stored.keys())
    );
    let pick = |map: &HashMap<String, String>, keys: &mut dyn Iterator<Item = &String>| {
        keys.filter_map(|k| map.get(k).map(|t| (k.clone(), t.clone())))
            .collect::<HashMap<_, _>>()
    };
    let inputs = pick(&m.inputs, &mut state.inputs.iter());
    let stored = pick(&m.stored, &mut state.stored.keys());
    let cx = StepCx::new(m.base_url, &inputs, &stored, &m.secrets, &m.run_id).fixed(&m.uuid, m.now);
    let built = (def.build)(&cx).and_then(|o| o.full_url().map(|u| (o, u)));
    let (req, url) = match built {
        Ok(r) => r,
        Err(e) if e.is_bad_request() => {
            let _ = writeln!(
                out,
                "  not sent: the request is refused (HTTP 400): {}",
                m.show(&e.to_string())
            );
            return;
        }
        Err(e) => {
            let _ = writeln!(
                out,
                "  not sent: the step fails: {}",
                m.show(&e.to_string())
            );
            return;
        }
    };
    let _ = writeln!(out, "  {} {}", req.method, m.show(url.as_str()));
    for (name, value) in &req.headers {
        let v = String::from_utf8_lossy(value.as_bytes());
        let _ = writeln!(out, "  {name}: {}", m.show(&v));
    }
    if let Some(body) = &req.body {
        for line in m.show(body).lines() {
            let _ = writeln!(out, "  | {line}");
        }
    }
    if !def.follow_redirects {
        let _ = writeln!(out, "  (redirects are not followed)");
    }
    let mut any = false;
    for a in answers.iter().filter(|a| a.step == i) {
        any = true;
        let _ = writeln!(out, "  answer: {}, HTTP {}", a.label, a.reply.status);
        answer(flow, check, m, state, &a.reply, out, reach);
    }
    if !any {
        let _ = writeln!(out, "  no sample answers this step: this path ends here");
    }
}

/// What the engine does with `reply` to the step of `state`.
fn answer(
    flow: &FlowDef,
    check: Option<&CheckDef>,
    m: &Markers,
    state: &State,
    reply: &Reply,
    out: &mut String,
    reach: &mut impl FnMut(State, &mut String),
) {
    let def = &flow.steps[state.step];
    if let Some(c) = check {
        let valid = c.verdict(reply);
        if let Some(o) = (def.decide)(reply).filter(|_| valid.is_some()) {
            let j = def
                .outcomes
                .iter()
                .position(|x| std::ptr::eq(*x, o))
                .unwrap_or_default();
            let _ = writeln!(out, "      outcome {j} ({})", o.at);
        }
        let _ =
            match valid {
                Some(true) => writeln!(
                    out,
                    "      valid: the session works; asked again after {} s",
                    c.cache_secs
                ),
                Some(false) => writeln!(
                    out,
                    "      invalid: the provider ended the session; it is deleted"
                ),
                None => {
                    writeln!(
                out,
                "      the provider cannot say: `unreachable` answers {}, the session is kept",
                if c.unreachable_valid { "valid" } else { "invalid" }
            )
                }
            };
        return;
    }
    let Some(o) = (def.decide)(reply) else {
        let msg = def.failure(reply, None, &m.secrets);
        let _ = writeln!(
            out,
            "      no outcome matches: the step fails: {}",
            m.show(&msg)
        );
        return;
    };
    let j = def
        .outcomes
        .iter()
        .position(|x| std::ptr::eq(*x, o))
        .unwrap_or_default();
    let _ = writeln!(out, "      outcome {j} ({})", o.at);
    let mut next = state.clone();
    for e in o.extract {
        match e.read(reply) {
            Ok(Some(v)) => {
                let v = m.secrets.redact(v);
                let _ = writeln!(out, "      keeps {} = {}", e.key, quote(&v));
                next.stored.insert(e.key.to_string(), Some(v));
            }
            Ok(None) => {
                let _ = writeln!(
                    out,
                    "      keeps no {} (optional, not in the answer)",
                    e.key
                );
            }
            Err(err) => {
                let _ = writeln!(out, "      the step fails: {}", m.show(&err.to_string()));
                return;
            }
        }
    }
    match &o.then {
        Then::Fail(f) => {
            let msg = def.failure(reply, Some(o), &m.secrets);
            let _ = writeln!(out, "      the step fails: {}", m.show(&msg));
            if f.clear_session {
                let _ = writeln!(out, "      the provider session is deleted");
            }
        }
        Then::Complete => {
            let kept: Vec<&str> = flow
                .session_values(&next.stored)
                .filter(|(_, v)| v.is_some())
                .map(|(k, _)| k.as_str())
                .collect();
            let _ = writeln!(
                out,
                "      the run completes; saved into the provider session: {}",
                if kept.is_empty() {
                    "nothing".to_string()
                } else {
                    kept.join(", ")
                }
            );
            let dropped: Vec<&str> = next
                .stored
                .iter()
                .filter(|(k, v)| v.is_some() && flow.kept_for_run.contains(&k.as_str()))
                .map(|(k, _)| k.as_str())
                .collect();
            if !dropped.is_empty() {
                let _ = writeln!(
                    out,
                    "      kept for this run only, not saved: {}",
                    dropped.join(", ")
                );
            }
            if let Some(Some(u)) = next.stored.get("user_name") {
                let _ = writeln!(out, "      user_name: {}", quote(u));
            }
        }
        Then::Step(k) => {
            next.step = *k;
            if !o.prompt.is_empty() {
                if !prompt(flow, m, &mut next, o.prompt, out) {
                    return;
                }
                if let Some(msg) = o.prompt_message(reply, &m.secrets) {
                    let _ = writeln!(out, "      message: {}", quote(&m.show(&msg)));
                }
            }
            reach(next, out);
        }
    }
}

/// Prints what a pause shows and asks for, and moves `next`'s inputs to what the following
/// request holds: the remembered inputs and the answers. `false`: a display field cannot be
/// shown and the step fails.
fn prompt(
    flow: &FlowDef,
    m: &Markers,
    next: &mut State,
    fields: &[crate::def::FieldDef],
    out: &mut String,
) -> bool {
    let inputs: HashMap<String, String> = next
        .inputs
        .iter()
        .filter_map(|k| m.inputs.get(k).map(|t| (k.clone(), t.clone())))
        .collect();
    // Display fields show the values the answers gave, as the user would see them.
    let stored: HashMap<String, String> = next
        .stored
        .iter()
        .map(|(k, v)| {
            let v = v.clone().unwrap_or_else(|| m.stored[k].clone());
            (k.clone(), v)
        })
        .collect();
    let cx = StepCx::new(m.base_url, &inputs, &stored, &m.secrets, &m.run_id).fixed(&m.uuid, m.now);
    for f in fields {
        match f.value {
            Some(render) => match render(&cx) {
                Ok(v) if f.field_type == FieldType::Link && !is_web_link(&v) => {
                    let _ = writeln!(
                        out,
                        "      the step fails: the provider's link for `{}` is not an http(s) URL",
                        f.key
                    );
                    return false;
                }
                Ok(v) => {
                    let v = m.secrets.redact(v);
                    let _ = writeln!(
                        out,
                        "      shows {} `{}` \"{}\": {}",
                        f.field_type,
                        f.key,
                        f.label,
                        quote(&m.show(&v))
                    );
                }
                Err(e) => {
                    let _ = writeln!(out, "      the step fails: {}", m.show(&e.to_string()));
                    return false;
                }
            },
            None => {
                let _ = writeln!(
                    out,
                    "      asks for {} `{}` \"{}\"{}",
                    f.field_type,
                    f.key,
                    f.label,
                    if f.required { "" } else { " (optional)" }
                );
            }
        }
    }
    let asked: BTreeSet<String> = fields
        .iter()
        .filter(|f| !f.is_display())
        .map(|f| f.key.to_string())
        .collect();
    next.inputs = flow
        .remember
        .iter()
        .filter(|k| next.inputs.contains(**k) && !asked.contains(**k))
        .map(|k| k.to_string())
        .chain(asked.iter().cloned())
        .collect();
    true
}

/// A value as JSON text, cut to 60 characters: enough to recognise a sample's value.
fn quote(v: &str) -> String {
    const MAX: usize = 60;
    if v.chars().count() > MAX {
        let cut: String = v.chars().take(MAX).collect();
        format!("{}…", serde_json::Value::String(cut))
    } else {
        serde_json::Value::String(v.to_string()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::def::{FieldDef, OutcomeDef, Scope, StepDef};
    use crate::request::{Method, Outbound, StepError};

    static LINK: FieldDef = FieldDef {
        key: "page",
        label: "Page",
        field_type: FieldType::Link,
        required: false,
        value: Some(|cx| cx.stored("url").map(str::to_owned)),
        options: None,
    };
    static NEXT: OutcomeDef = OutcomeDef {
        extract: &[crate::def::ExtractDef {
            key: "url",
            source: crate::def::Source::Header("location"),
            optional: false,
        }],
        prompt: &[LINK],
        then: Then::Step(1),
        message: None,
        message_from: None,
        at: "p.yaml:9",
    };
    static FLOW: FlowDef = FlowDef {
        id: "f",
        name: "F",
        inputs: &[],
        steps: &[
            StepDef {
                id: "0",
                name: "Start",
                build: |cx| {
                    let mut o = Outbound::new(Method::GET, cx.url("/start"));
                    o.query("at", &cx.utcnow());
                    Ok(o)
                },
                decide: |r| (r.status == 302).then_some(&NEXT),
                outcomes: &[&NEXT],
                error_message: None,
                follow_redirects: false,
                success_form: false,
            },
            StepDef {
                id: "1",
                name: "Finish",
                build: |cx| cx.stored("missing").map(|_| unreachable!()),
                decide: |_| None,
                outcomes: &[],
                error_message: None,
                follow_redirects: true,
                success_form: false,
            },
        ],
        remember: &[],
        uses_session: false,
        kept_for_run: &[],
    };
    /// The provider of the tests, without a session check.
    const P: ProviderDef = ProviderDef {
        id: "p",
        name: "P",
        logo: None,
        scope: Scope::PerUser,
        base_url: "https://p.example",
        flows: &[&FLOW],
        logout: None,
        logout_reads: &[],
        logout_on_relogin: false,
        check: None,
        secrets: &[],
        source: "p.yaml",
    };
    static PROVIDER: ProviderDef = P;

    static VALID: OutcomeDef = OutcomeDef {
        extract: &[],
        prompt: &[],
        then: Then::Complete,
        message: None,
        message_from: None,
        at: "p.yaml:20",
    };
    static INVALID: OutcomeDef = OutcomeDef {
        extract: &[],
        prompt: &[],
        then: Then::Fail(crate::def::FailDef {
            from: None,
            message: None,
            clear_session: true,
        }),
        message: None,
        message_from: None,
        at: "p.yaml:22",
    };
    static CHECK_FLOW: FlowDef = FlowDef {
        id: "check",
        name: "check",
        inputs: &[],
        steps: &[StepDef {
            id: "0",
            name: "check",
            build: |cx| Ok(Outbound::new(Method::GET, cx.url("/session"))),
            decide: |r| match r.status {
                200 | 503 => Some(&VALID),
                401 => Some(&INVALID),
                _ => None,
            },
            outcomes: &[&VALID, &INVALID],
            error_message: None,
            follow_redirects: true,
            success_form: false,
        }],
        remember: &[],
        uses_session: true,
        kept_for_run: &[],
    };
    static CHECK: crate::def::CheckDef = crate::def::CheckDef {
        flow: &CHECK_FLOW,
        cache_secs: 90,
        unreachable_valid: false,
    };
    static CHECKED: ProviderDef = ProviderDef {
        check: Some(&CHECK),
        ..P
    };

    #[test]
    fn the_session_check_says_valid_invalid_or_what_unreachable_answers() {
        let answers = [
            Answer::new(0, "ok", 200, &[], b""),
            Answer::new(0, "ended", 401, &[], b""),
            // A 5xx says nothing, whatever outcome it would select; nor does one none takes.
            Answer::new(0, "down", 503, &[], b""),
            Answer::new(0, "odd", 418, &[], b""),
        ];
        let out = simulate(&CHECKED, &CHECK_FLOW, &answers, &[]);
        assert!(
            out.starts_with("session check of provider `p` (p.yaml)\n"),
            "{out}"
        );
        assert!(out.contains("  GET https://p.example/session\n"), "{out}");
        let said = |label: &str, line: &str| {
            assert!(out.contains(&format!("answer: {label}, ")), "{out}");
            let after = &out[out.find(&format!("answer: {label}, ")).unwrap()..];
            assert!(
                after.lines().skip(1).take(2).any(|l| l.trim() == line),
                "{label}: {out}"
            );
        };
        said("ok", "valid: the session works; asked again after 90 s");
        said(
            "ended",
            "invalid: the provider ended the session; it is deleted",
        );
        let unreachable =
            "the provider cannot say: `unreachable` answers invalid, the session is kept";
        said("down", unreachable);
        said("odd", unreachable);
        assert_eq!(
            out.matches("outcome ").count(),
            2,
            "only answers that decide: {out}"
        );
    }

    #[test]
    fn each_answer_is_acted_on_as_the_engine_would() {
        let answers = [
            Answer::new(
                0,
                "good",
                302,
                &[("location", "https://p.example/sso")],
                b"",
            ),
            Answer::new(
                0,
                "good too",
                302,
                &[("location", "https://p.example/b")],
                b"",
            ),
            Answer::new(0, "not a link", 302, &[("location", "/relative")], b""),
            Answer::new(0, "refused", 500, &[], b""),
        ];
        let out = simulate(&PROVIDER, &FLOW, &answers, &[]);
        assert!(
            out.contains("  GET https://p.example/start?at=<utcnow>\n"),
            "{out}"
        );
        assert!(out.contains("  (redirects are not followed)\n"), "{out}");
        assert!(
            out.contains("      shows link `page` \"Page\": \"https://p.example/sso\"\n      next: [2] step 1 `Finish`"),
            "{out}"
        );
        assert!(
            out.contains("the step fails: the provider's link for `page` is not an http(s) URL"),
            "{out}"
        );
        assert!(
            out.contains("no outcome matches: the step fails: the provider answered HTTP 500"),
            "{out}"
        );
        // The second state is printed once, though two answers lead to it.
        assert_eq!(
            out.matches("next: [2] step 1 `Finish`\n").count(),
            2,
            "{out}"
        );
        assert_eq!(out.matches("\n[2] step 1 `Finish`\n").count(), 1, "{out}");
        assert!(
            out.contains(&format!(
                "not sent: the step fails: {}",
                StepError::MissingStored("missing")
            )),
            "{out}"
        );
        assert!(!out.contains("[3]"), "{out}");
    }
}
