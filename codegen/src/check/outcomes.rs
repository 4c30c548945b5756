//! Rules about one step's outcomes: JSONPaths that parse (`when`, `extract`, `fail.from`,
//! `message.from`), `next` naming a step, prompts that something consumes, and outcomes that
//! an earlier one always pre-empts.

use super::Checker;
use crate::diag::did_you_mean;
use crate::graph::{self, Target};
use crate::model::*;

impl<'a> Checker<'a> {
    pub(super) fn outcomes(&mut self, f: &'a Flow, i: usize, s: &'a Step) {
        if let Some(p) = &s.error_message {
            self.jsonpath(p);
        }
        for (j, o) in s.outcomes.iter().enumerate() {
            for c in &o.when {
                if let Cond::Json { path, .. } = c {
                    self.jsonpath(path);
                }
            }
            for e in &o.extract {
                if let Source::Path { path, .. } = &e.source {
                    self.jsonpath(path);
                }
            }
            if let Then::Fail(Fail { from: Some(p), .. }) = &o.then {
                self.jsonpath(p);
            }
            if let Some(Message { from: Some(p), .. }) = &o.message {
                self.jsonpath(p);
            }
            if let Then::Continue(Some(r)) = &o.then {
                if graph::resolve(f, &r.v).is_none() {
                    self.unknown_step(f, r);
                }
            }
            if let Some(p) = &o.prompt {
                match graph::target(f, i, o) {
                    Some(Target::Complete) if matches!(o.then, Then::Continue(None)) => self.err(
                        "prompt-on-last-step",
                        p.key_span,
                        "a prompt on the last step is never used",
                        Some("a prompt asks for fields that a later step sends; add that step or remove the prompt".into()),
                    ),
                    Some(Target::Step(0)) => self.err(
                        "prompt-to-first-step",
                        p.key_span,
                        "a prompt cannot lead back to the first step",
                        Some("a request for step 0 always starts a new run, so the fields asked for would be lost; lead to a later step, or `fail` so the user starts again".into()),
                    ),
                    _ => {}
                }
            }
            if let Some(earlier) = s.outcomes[..j].iter().find(|a| pre_empts(a, o)) {
                let line = earlier.span.start.line;
                let help = if earlier.when.is_empty() {
                    format!("the outcome at line {line} has no `when`, so it takes every response first; put it last")
                } else {
                    format!("the outcome at line {line} takes every response this one would; put the more specific one first")
                };
                self.err(
                    "unreachable-outcome",
                    o.span,
                    "this outcome can never match",
                    Some(help),
                );
            }
        }
    }

    fn unknown_step(&mut self, f: &Flow, r: &S<StepRef>) {
        let ids: Vec<&str> = f
            .steps
            .iter()
            .filter_map(|s| s.id.as_ref().map(|i| i.v.as_str()))
            .collect();
        let (msg, suggestion) = match &r.v {
            StepRef::Id(id) => (
                format!("`next` names no step: `{id}`"),
                did_you_mean(id, &ids).map(|s| format!("did you mean `{s}`?")),
            ),
            StepRef::Index(n) => (
                format!(
                    "`next` names step {n}, but flow `{}` has {} step{}",
                    f.id.v,
                    f.steps.len(),
                    if f.steps.len() == 1 { "" } else { "s" }
                ),
                None,
            ),
        };
        let help = suggestion.unwrap_or_else(|| {
            let last = f.steps.len().saturating_sub(1);
            if ids.is_empty() {
                format!("steps are named by their `id`, or by their index (0 to {last})")
            } else {
                format!(
                    "step ids here: {}; steps are also named by their index (0 to {last})",
                    ids.join(", ")
                )
            }
        });
        self.err("unknown-step", r.span, msg, Some(help));
    }
}

/// Does `a` match every response `b` matches: each of `a`'s conditions is implied by one of
/// `b`'s. Then `b`, tried after `a`, can never match.
fn pre_empts(a: &Outcome, b: &Outcome) -> bool {
    a.when.iter().all(|ca| {
        match ca {
        Cond::Status(sa) => b
            .when
            .iter()
            .any(|cb| matches!(cb, Cond::Status(sb) if sa.v.covers(&sb.v))),
        Cond::Json { path, expected } => b.when.iter().any(|cb| {
            matches!(cb, Cond::Json { path: p, expected: e } if p.v == path.v && e.v.same_as(&expected.v))
        }),
    }
    })
}
