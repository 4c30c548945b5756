//! Rules over recorded responses (`samples:`): each is run through its step as the server
//! would run it (`crate::sample`), and what the file says is checked against what it finds.
//!
//! - a sample listed under an outcome (or `on_success`) must select it (`sample-outcome`);
//! - every extract of the outcome a sample selects must find a value, optional ones aside
//!   (`sample-extract`), with a "did you mean" over what the sample holds there;
//! - the error text of a response the step fails on (`fail.from`, else `error_message`), and
//!   the provider's text an outcome that prompts shows (`message.from`), should be found in it
//!   (`sample-error-text`, a warning);
//! - with `--require-samples`, every outcome has a sample that selects it (`missing-sample`).

use crate::diag::{did_you_mean, Diagnostic, Span};
use crate::model::*;
use crate::sample::{Answer, Found, Paths};
use std::rc::Rc;

/// Runs the sample rules over every step of `p`; `require`: `--require-samples`.
pub fn check(p: &Provider, require: bool, diags: &mut Vec<Diagnostic>) {
    check_within(p, require, &Rc::new(Paths::default()), diags);
}

/// `check`, with the work its JSONPaths may take bounded by `paths`.
pub fn check_within(p: &Provider, require: bool, paths: &Rc<Paths>, diags: &mut Vec<Diagnostic>) {
    let mut found = Vec::new();
    for f in p.flows.iter().chain(p.check.as_ref().map(|c| &c.flow)) {
        for s in &f.steps {
            step(s, require, paths, &mut found);
        }
    }
    if paths.exhausted() {
        // Answers were cut short: what was found cannot be trusted.
        diags.push(
            Diagnostic::error(
                "sample-work",
                Span::point(p.span.start),
                "checking this file's samples takes too long",
            )
            .with_help("keep a few samples per step, each with the body the provider sends, and one extract per value"),
        );
        return;
    }
    diags.append(&mut found);
}

fn step(s: &Step, require: bool, paths: &Rc<Paths>, diags: &mut Vec<Diagnostic>) {
    let mut selected_by = vec![false; s.outcomes.len()];
    // The samples each outcome takes (and was meant to take).
    let mut takers: Vec<Vec<Answer<'_>>> = s.outcomes.iter().map(|_| Vec::new()).collect();
    for (listed, sample) in s.all_samples() {
        let a = Answer::with_paths(sample, paths.clone());
        let selected = a.select(s);
        if let Some(x) = selected {
            selected_by[x] = true;
        }
        if let Some(j) = listed {
            if selected != Some(j) {
                diags.push(mismatch(s, j, selected, &a));
                continue;
            }
        }
        match selected {
            Some(x) => {
                if let Then::Fail(fail) = &s.outcomes[x].then {
                    failure_text(s, Some(fail), &a, diags);
                }
                message_text(&s.outcomes[x], &a, diags);
                takers[x].push(a);
            }
            None => failure_text(s, None, &a, diags),
        }
    }
    // One diagnostic per extract, naming the first sample it misses in.
    for (o, answers) in s.outcomes.iter().zip(&takers) {
        for e in &o.extract {
            let misses = |a: &&Answer<'_>| match a.extract(e) {
                Found::Value(_) => false,
                Found::Missing => !e.optional,
                Found::NotJson => true,
            };
            let mut missed = answers.iter().filter(misses);
            if let Some(mut d) = missed.next().and_then(|a| extract(e, a)) {
                let more = missed.count();
                if more > 0 {
                    d.message.push_str(&format!(
                        ", nor in {more} other sample{}",
                        if more == 1 { "" } else { "s" }
                    ));
                }
                diags.push(d);
            }
        }
    }
    if !require {
        return;
    }
    for (o, _) in s.outcomes.iter().zip(&selected_by).filter(|(_, b)| !**b) {
        let (msg, help) = if s.success_form {
            (
                format!("no sample of step `{}` succeeds", s.name.v),
                "--require-samples: add a recorded successful response under `samples:`, e.g. `samples: [ { status: 200, body: { … } } ]`",
            )
        } else {
            (
                format!("no sample selects {}", outcome_name(o)),
                "--require-samples: add a recorded response this outcome takes under its `samples:`, e.g. `samples: [ { status: 200, body: { … } } ]`",
            )
        };
        diags.push(Diagnostic::error("missing-sample", o.span, msg).with_help(help));
    }
}

/// "the outcome at line 48 (status 300)".
fn outcome_name(o: &Outcome) -> String {
    let conds: Vec<String> = o
        .when
        .iter()
        .map(|c| match c {
            Cond::Status(s) => match &s.v {
                StatusSet::Success => "status 2xx".to_string(),
                StatusSet::AnyOf(v) => {
                    let v: Vec<String> = v.iter().map(u16::to_string).collect();
                    format!("status {}", v.join("/"))
                }
            },
            Cond::Json { path, expected } => format!("`{}` = {}", path.v, expected.v.display()),
        })
        .collect();
    let line = o.span.start.line;
    if conds.is_empty() {
        format!("the outcome at line {line} (no `when`)")
    } else {
        format!("the outcome at line {line} ({})", conds.join(", "))
    }
}

/// A sample listed under outcome `j` that selects `selected` instead.
fn mismatch(s: &Step, j: usize, selected: Option<usize>, a: &Answer<'_>) -> Diagnostic {
    let label = a.sample.label();
    let listed = &s.outcomes[j];
    let reason = listed.when.iter().find_map(|c| a.why_not(c));
    if s.success_form {
        let help = match reason {
            Some(r) => format!("the step's success test does not hold: {r}"),
            None => "the step's success test does not hold".into(),
        };
        return Diagnostic::error(
            "sample-outcome",
            a.sample.span,
            format!("{label} is listed under `on_success`, but the step fails on it"),
        )
        .with_help(help);
    }
    let here = outcome_name(listed);
    let (msg, help) = match selected {
        Some(x) => {
            let there = outcome_name(&s.outcomes[x]);
            let help = match reason {
                Some(r) => format!("{here} does not take it: {r}"),
                None => {
                    format!("outcomes are tried in order, and {there} comes first and takes it too")
                }
            };
            (
                format!("{label} is listed under {here}, but selects {there}"),
                help,
            )
        }
        None => (
            format!(
                "{label} is listed under {here}, but no outcome takes it: the step fails on it"
            ),
            match reason {
                Some(r) => format!("{here} does not take it: {r}"),
                None => format!("{here} does not take it"),
            },
        ),
    };
    Diagnostic::error("sample-outcome", a.sample.span, msg).with_help(help)
}

/// An extract that finds nothing in a sample its outcome takes.
fn extract(e: &Extract, a: &Answer<'_>) -> Option<Diagnostic> {
    let label = a.sample.label();
    match a.extract(e) {
        Found::Value(_) => None,
        Found::Missing if e.optional => None,
        Found::NotJson => {
            let Source::Path { path, .. } = &e.source else {
                return None;
            };
            Some(
                Diagnostic::error(
                    "sample-extract",
                    path.span,
                    format!("`{}` cannot apply to {label}: its body is not JSON", path.v),
                )
                .with_help(
                    "the server fails a step whose JSONPath extract meets a body that is not JSON, `optional` or not",
                ),
            )
        }
        Found::Missing => Some(match &e.source {
            Source::Path { path, .. } => {
                let d = Diagnostic::error(
                    "sample-extract",
                    path.span,
                    format!("`{}` finds nothing in {label}", path.v),
                );
                match a.path_help(&path.v) {
                    Some(h) => d.with_help(h),
                    None => d,
                }
            }
            Source::Header(h) => {
                let names = a.header_names();
                let help = match did_you_mean(&h.v, &names) {
                    Some(n) => format!("did you mean `{n}`?"),
                    None if names.is_empty() => "the sample has no headers".into(),
                    None => format!(
                        "the sample's headers: {}",
                        names
                            .iter()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                Diagnostic::error(
                    "sample-extract",
                    h.span,
                    format!("{label} has no `{}` header", h.v),
                )
                .with_help(help)
            }
            Source::Cookie(c) => {
                let names: Vec<&str> = a.cookies().into_iter().map(|(n, _)| n).collect();
                let help = match did_you_mean(&c.v, &names) {
                    Some(n) => format!("did you mean `{n}`?"),
                    None => format!(
                        "a cookie comes from a `Set-Cookie` header; the sample needs `Set-Cookie: {}=…`",
                        c.v
                    ),
                };
                Diagnostic::error(
                    "sample-extract",
                    c.span,
                    format!("{label} sets no cookie `{}`", c.v),
                )
                .with_help(help)
            }
            Source::Status => return None,
        }),
    }
}

/// A response the step fails on: the text it would show should come from the provider.
/// `fail`: the failing outcome that takes it; `None`: no outcome does.
fn failure_text(s: &Step, fail: Option<&Fail>, a: &Answer<'_>, diags: &mut Vec<Diagnostic>) {
    // A body that is not JSON (an HTML page, none at all) holds no text a path could find.
    if a.json().is_none() {
        return;
    }
    let label = a.sample.label();
    let status = a.sample.status.v;
    // What the user sees when `fail.from` finds nothing.
    let fallback = || -> String {
        if let Some(m) = fail.and_then(|f| f.message.as_ref()) {
            return format!("{:?}", m.v);
        }
        match &s.error_message {
            Some(p) if a.message_at(&p.v).is_some() => "the text at `error_message`".into(),
            _ => format!("\"the provider answered HTTP {status}\""),
        }
    };
    let miss = |path: &S<String>, shown: String| -> Diagnostic {
        let help = match a.path_help(&path.v) {
            Some(h) if h.starts_with("did you mean") => h,
            _ => format!("the path must lead to a string; the user would see {shown}"),
        };
        Diagnostic::warning(
            "sample-error-text",
            path.span,
            format!(
                "`{}` finds no error text in {label}, a response the step fails on",
                path.v
            ),
        )
        .with_help(help)
    };
    if let Some(from) = fail.and_then(|f| f.from.as_ref()) {
        if a.message_at(&from.v).is_some() {
            return;
        }
        diags.push(miss(from, fallback()));
    }
    if fail.is_some_and(|f| f.message.is_some()) {
        return;
    }
    if let Some(p) = &s.error_message {
        if a.message_at(&p.v).is_none() {
            diags.push(miss(p, format!("\"the provider answered HTTP {status}\"")));
        }
    }
}

/// A response an outcome with `message: { from }` takes: the text shown beside `next_step`
/// should come from the provider.
fn message_text(o: &Outcome, a: &Answer<'_>, diags: &mut Vec<Diagnostic>) {
    let Some(Message {
        from: Some(from),
        text,
        ..
    }) = &o.message
    else {
        return;
    };
    if a.json().is_none() || a.message_at(&from.v).is_some() {
        return;
    }
    let shown = match text {
        Some(t) => format!("{:?}", t.v),
        None => "no message".into(),
    };
    let help = match a.path_help(&from.v) {
        Some(h) if h.starts_with("did you mean") => h,
        _ => format!("the path must lead to a string; the user would see {shown}"),
    };
    diags.push(
        Diagnostic::warning(
            "sample-error-text",
            from.span,
            format!(
                "`{}` finds no message text in {}, a response this outcome prompts on",
                from.v,
                a.sample.label()
            ),
        )
        .with_help(help),
    );
}
