//! Rules over one flow: field keys, step ids, the step graph (every step reachable, no loop
//! that never pauses for the user, a way to complete), and the data-flow check on every path.

use super::{kept_in_session, Checker, Env, Place};
use crate::diag::Diagnostic;
use crate::graph::{self, Defined, Target};
use crate::model::*;
use std::collections::{BTreeSet, HashMap};

/// What the templates of one step may name.
pub(super) struct StepNames {
    /// In its request.
    pub request: Defined,
    /// In the display fields of each of its outcomes' prompts.
    pub display: Vec<Defined>,
}

/// What each step of `f` may name: what every path into it defines, plus session values (what
/// other flows of the provider keep in the session); `None` for a step no path reaches.
pub(super) fn step_names(p: &Provider, f: &Flow, edges: &[graph::Edge]) -> Vec<Option<StepNames>> {
    let session = kept_in_session(
        p.flows
            .iter()
            .filter(|o| o.id.v != f.id.v)
            .flat_map(|o| o.steps.iter()),
    );
    let with_session = |mut d: Defined| {
        d.stored.extend(session.iter().cloned());
        d
    };
    graph::defined(f, edges)
        .into_iter()
        .zip(&f.steps)
        .map(|(d, s)| {
            let d = d?;
            Some(StepNames {
                // A display value is rendered after the outcome's own extraction, before the
                // user has filled in the prompt it stands in.
                display: s
                    .outcomes
                    .iter()
                    .map(|o| with_session(d.shown(o)))
                    .collect(),
                request: with_session(d),
            })
        })
        .collect()
}

/// Where a field is declared.
#[derive(Clone, Copy, PartialEq)]
enum Origin {
    Input,
    /// The prompt of outcome `.1` of step `.0`, which leads to step `.2` (if it leads to one).
    Prompt(usize, usize, Option<usize>),
}

impl<'a> Checker<'a> {
    pub(super) fn flow(&mut self, f: &'a Flow) {
        self.field_keys(f);
        self.step_ids(f);
        for (i, s) in f.steps.iter().enumerate() {
            self.outcomes(f, i, s);
        }

        let edges = graph::edges(f);
        let reach = graph::reachable(f, &edges);
        // A `next` that names no step is reported on its own; the graph it leaves would only
        // add noise (a step "unreachable" because of the typo, a flow that "never completes").
        let complete_graph = f.steps.iter().all(|s| {
            !s.outcomes.is_empty()
                && s.outcomes.iter().all(|o| match &o.then {
                    Then::Continue(Some(r)) => graph::resolve(f, &r.v).is_some(),
                    _ => true,
                })
        });
        for (s, _) in f
            .steps
            .iter()
            .zip(&reach)
            .filter(|(_, r)| complete_graph && !**r)
        {
            let at = s.id.as_ref().map_or(s.name.span, |id| id.span);
            self.err(
                "unreachable-step",
                at,
                format!("no path reaches step `{}`", s.name.v),
                Some("name it in an outcome's `next`, or remove it".into()),
            );
        }
        for (e, cycle) in graph::silent_cycles(f, &edges) {
            let mut names: Vec<String> = cycle
                .iter()
                .map(|i| format!("`{}`", f.steps[*i].name.v))
                .collect();
            names.push(names[0].clone());
            let o = &f.steps[e.step].outcomes[e.outcome];
            self.err(
                "cycle-without-prompt",
                o.then_span(),
                format!(
                    "steps {} loop without asking the user anything",
                    names.join(" → ")
                ),
                Some("the server would send these requests again and again; add a `prompt` to an outcome on the loop, or end it with `fail`".into()),
            );
        }
        let completes = edges
            .iter()
            .any(|e| reach[e.step] && e.target == Target::Complete);
        if complete_graph && !completes && !f.steps.is_empty() {
            self.err(
                "never-completes",
                f.id.span,
                format!("flow `{}` can never complete", f.id.v),
                Some("no outcome of a reachable step completes the run; end the success path with `complete: true`, or let it run past the last step".into()),
            );
        }

        for (i, (s, names)) in f
            .steps
            .iter()
            .zip(step_names(self.p, f, &edges))
            .enumerate()
        {
            let Some(names) = names else { continue };
            let env = Env {
                inputs: Some(&names.request.inputs),
                stored: Some(&names.request.stored),
                place: Place::Step,
                flow: Some((f, i)),
            };
            self.request(&s.request, &env);
            for (o, shown) in s.outcomes.iter().zip(&names.display) {
                let Some(p) = &o.prompt else { continue };
                let env = Env {
                    inputs: Some(&shown.inputs),
                    stored: Some(&shown.stored),
                    place: Place::Display,
                    flow: Some((f, i)),
                };
                for v in p.fields.iter().filter_map(|x| x.value.as_ref()) {
                    self.template(v, &env, false);
                }
                for t in p
                    .fields
                    .iter()
                    .flat_map(|x| x.options.iter().flat_map(Options::templates))
                {
                    self.template(t, &env, false);
                }
            }
        }

        self.choices(f);
        self.unused_inputs(f);
    }

    /// A `choice` field is asked for by a prompt (its options come from an answer), and each of
    /// its lists is a value some extract keeps with `all: true`.
    fn choices(&mut self, f: &'a Flow) {
        for x in f
            .inputs
            .iter()
            .filter(|x| x.field_type == FieldType::Choice)
        {
            self.err(
                "choice-in-inputs",
                x.key.span,
                format!(
                    "`{}` is a `choice`, whose options come from the provider's answer",
                    x.key.v
                ),
                Some("ask for it in the prompt of the outcome that extracts the options".into()),
            );
        }
        let p = self.p;
        let lists: Vec<&str> = p
            .extracts()
            .filter(|e| matches!(e.source, Source::Path { all: true, .. }))
            .map(|e| e.key.v.as_str())
            .collect();
        let options = f
            .steps
            .iter()
            .flat_map(|s| s.outcomes.iter().flat_map(|o| o.prompt.iter()))
            .flat_map(|p| p.fields.iter().flat_map(|x| x.options.iter()));
        for t in options.flat_map(Options::templates) {
            let Some(k) = t.only_stored() else { continue };
            if p.extracts().any(|e| e.key.v == k) && !lists.contains(&k) {
                self.err(
                    "choice-not-a-list",
                    t.span,
                    format!("`{{{{stored.{k}}}}}` is not a list"),
                    Some(format!(
                        "options come from a list: extract `{k}` with `{{ path: \"…[*]…\", all: true }}`"
                    )),
                );
            }
        }
    }

    /// Keys are unique within the inputs and within one prompt; a prompt may not reuse an input's
    /// key; two prompts may ask for the same key only when they lead to the same step (a step
    /// that asks again, e.g. for a rejected one-time code), and then in the same way.
    fn field_keys(&mut self, f: &'a Flow) {
        let mut all: Vec<(&Field, Origin)> = f.inputs.iter().map(|x| (x, Origin::Input)).collect();
        for (i, s) in f.steps.iter().enumerate() {
            for (j, o) in s.outcomes.iter().enumerate() {
                // A prompt that leads nowhere a prompt may lead is reported on its own.
                let to = match graph::target(f, i, o) {
                    Some(Target::Step(t)) if t > 0 => Some(t),
                    _ => None,
                };
                if let Some(p) = &o.prompt {
                    all.extend(p.fields.iter().map(|x| (x, Origin::Prompt(i, j, to))));
                }
            }
        }
        let mut seen: HashMap<&str, (&Field, Origin)> = HashMap::new();
        for (field, origin) in all {
            let Some(&(first, first_origin)) = seen.get(field.key.v.as_str()) else {
                seen.insert(&field.key.v, (field, origin));
                continue;
            };
            let k = &field.key.v;
            let line = first.key.span.start.line;
            match (first_origin, origin) {
                (Origin::Input, Origin::Prompt(..)) => self.err(
                    "prompt-shadows-input",
                    field.key.span,
                    format!("prompt key `{k}` is already a flow input"),
                    Some(format!(
                        "`{k}` is first defined at line {line}; use another key"
                    )),
                ),
                (Origin::Prompt(_, _, None), _) | (_, Origin::Prompt(_, _, None))
                    if first_origin != origin => {}
                (Origin::Prompt(i, j, Some(t)), Origin::Prompt(i2, j2, Some(t2)))
                    if t == t2 && (i, j) != (i2, j2) =>
                {
                    let sensitive = |x: &Field| super::sensitive::field(x, true).is_some();
                    let options = |x: &'a Field| {
                        x.options.as_ref().map(|o| {
                            (
                                o.values.only_stored(),
                                o.labels.as_ref().and_then(Template::only_stored),
                            )
                        })
                    };
                    if (
                        first.field_type,
                        first.transform,
                        first.required,
                        sensitive(first),
                        options(first),
                    ) != (
                        field.field_type,
                        field.transform,
                        field.required,
                        sensitive(field),
                        options(field),
                    ) {
                        self.err(
                            "prompt-field-conflict",
                            field.key.span,
                            format!("`{k}` is asked for again with another `type`, `transform`, `required`, `sensitive` or `options`"),
                            Some(format!("`{k}` is first asked for at line {line}; a field asked for again must be asked for the same way")),
                        );
                    }
                }
                _ => self.err(
                    "duplicate-field",
                    field.key.span,
                    format!("duplicate field key `{k}`"),
                    Some(format!(
                        "`{k}` is first defined at line {line}; use another key"
                    )),
                ),
            }
        }
    }

    /// Step ids: names a `next` can use, unique within the flow, never a bare number (numbers
    /// name steps by index).
    fn step_ids(&mut self, f: &'a Flow) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for id in f.steps.iter().filter_map(|s| s.id.as_ref()) {
            let ok =
                id.v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    && id.v.chars().any(|c| !c.is_ascii_digit());
            if !ok {
                self.err(
                    "bad-step-id",
                    id.span,
                    format!("`{}` is not a valid step id", id.v),
                    Some("step ids are letters, digits, `_` and `-`, and not a bare number (numbers name steps by index)".into()),
                );
            }
            if let Some(line) = seen.insert(&id.v, id.span.start.line) {
                self.err(
                    "duplicate-step-id",
                    id.span,
                    format!("duplicate step id `{}`", id.v),
                    Some(format!("`{}` is first used at line {line}", id.v)),
                );
            }
        }
    }

    /// Inputs and prompt fields that no request sends.
    fn unused_inputs(&mut self, f: &Flow) {
        let used: BTreeSet<&str> = f
            .steps
            .iter()
            .flat_map(|s| {
                super::request_templates(&s.request)
                    .chain(s.prompt_fields().filter_map(|x| x.value.as_ref()))
            })
            .flat_map(|t| t.vars())
            .filter_map(|(v, _)| match v {
                Var::Input(k) => Some(k.as_str()),
                _ => None,
            })
            .collect();
        let mut warned = BTreeSet::new();
        for field in f.fields().filter(|x| !x.is_display()) {
            let k = field.key.v.as_str();
            if used.contains(k) || !warned.insert(k) {
                continue;
            }
            self.diags.push(
                Diagnostic::warning(
                    "unused-input",
                    field.key.span,
                    format!("input `{k}` is not used by any step of flow `{}`", f.id.v),
                )
                .with_help(format!("send it with `{{{{input.{k}}}}}`, or remove it")),
            );
        }
    }
}
