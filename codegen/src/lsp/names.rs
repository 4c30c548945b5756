//! Placeholders under the cursor: what `{{input.K}}`, `{{stored.K}}` and `{{secret.K}}` name,
//! where each value comes from, and which names are valid where the cursor stands.
//!
//! What is valid at a place is the checks' own answer (`check::names_at`: what every path into
//! the step defines, and session values); a placeholder is read by the compiler's template
//! parser. This module only finds the place in the model and says where values come from.

use crate::check::sensitive::Sensitivity;
use crate::check::{self, At, Names};
use crate::diag::{Pos, Span};
use crate::model::{
    Extract, Field, Flow, Piece, Provider, Source, Step, StepRef, Template, Then, Var,
};
use crate::reference;
use crate::yaml::{Kind, Node};
use saphyr_parser::ScalarStyle;
use std::fmt::Write as _;

/// A `{{…}}` placeholder on a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder {
    /// Its first character and the one after its `}}`, 0-based, in characters.
    pub start: usize,
    pub end: usize,
    /// What it names, as the compiler reads it; `None` for a name the compiler rejects.
    pub var: Option<Var>,
}

/// The placeholder of `line` that character `col` (0-based) stands in.
pub fn placeholder_at(line: &str, col: usize) -> Option<Placeholder> {
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i + 1 < chars.len() {
        if chars[i] != '{' || chars[i + 1] != '{' {
            i += 1;
            continue;
        }
        let close = (i + 2..chars.len().saturating_sub(1))
            .find(|&j| chars[j] == '}' && chars[j + 1] == '}')?;
        let end = close + 2;
        if (i..end).contains(&col) {
            let text: String = chars[i..end].iter().collect();
            return Some(Placeholder {
                start: i,
                end,
                var: parse_var(&text),
            });
        }
        i = end;
    }
    None
}

/// The variable of the one placeholder `text` is, read by the compiler's template parser.
fn parse_var(text: &str) -> Option<Var> {
    let node = Node {
        kind: Kind::Scalar(text.to_string(), ScalarStyle::Plain),
        span: Span::default(),
    };
    let t = crate::template::parse(text, &node, &mut Vec::new());
    t.pieces.into_iter().find_map(|p| match p {
        Piece::Var(v, _) => Some(v),
        Piece::Lit(_) => None,
    })
}

/// The kinds of placeholder that name something declared in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespace {
    Input,
    Stored,
    Secret,
}

/// A placeholder being typed: `{{input.em` with the cursor after `em`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Typing {
    /// `None` before a `.`: the placeholder's kind is not written yet.
    pub namespace: Option<Namespace>,
    /// Where the name being typed starts (0-based, in characters): what a completion replaces.
    pub start: usize,
}

/// The placeholder being typed on `line` before character `col` (0-based), if any.
pub fn typing_at(line: &str, col: usize) -> Option<Typing> {
    let before: Vec<char> = line.chars().take(col).collect();
    let open = (0..before.len().saturating_sub(1))
        .rev()
        .find(|&i| before[i] == '{' && before[i + 1] == '{')?;
    let inner: String = before[open + 2..].iter().collect();
    let inner = inner.trim_start();
    let is_name = |s: &str| s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let (namespace, name) = match inner.split_once('.') {
        Some((ns, name)) => {
            let ns = match ns {
                "input" => Namespace::Input,
                "stored" => Namespace::Stored,
                "secret" => Namespace::Secret,
                _ => return None,
            };
            (Some(ns), name)
        }
        None => (None, inner),
    };
    is_name(name).then(|| Typing {
        namespace,
        start: col - name.chars().count(),
    })
}

/// `start <= pos <= end`: a cursor right after a template's last character still stands in it.
fn within(span: Span, pos: Pos) -> bool {
    span.start <= pos && pos <= span.end
}

/// Where `pos` stands in `p`: a display field's value, a step (its request, or anywhere else
/// in it), the logout request, or `defaults.headers`.
pub fn place(p: &Provider, pos: Pos) -> Option<At> {
    for (fi, f) in p.flows.iter().enumerate() {
        for (si, s) in f.steps.iter().enumerate() {
            for (oi, o) in s.outcomes.iter().enumerate() {
                let values = o.prompt.iter().flat_map(|pr| &pr.fields);
                if values
                    .filter_map(|x| x.value.as_ref())
                    .any(|t| within(t.span, pos))
                {
                    return Some(At::Display {
                        flow: fi,
                        step: si,
                        outcome: oi,
                    });
                }
            }
            if within(s.span, pos) || within(s.request.span, pos) {
                return Some(At::Request { flow: fi, step: si });
            }
        }
    }
    // `auth.check` runs on the session as logout does, and may name what logout may.
    if p.logout.as_ref().is_some_and(|l| within(l.span, pos))
        || p.check
            .as_ref()
            .is_some_and(|c| within(c.step().request.span, pos))
    {
        return Some(At::Logout);
    }
    let in_header = |t: &Template, name: Span| within(t.span, pos) || within(name, pos);
    if p.headers.iter().any(|h| in_header(&h.value, h.name.span)) {
        return Some(At::Defaults);
    }
    None
}

fn flow_of(at: Option<At>) -> Option<usize> {
    match at? {
        At::Request { flow, .. } | At::Display { flow, .. } => Some(flow),
        At::Defaults | At::Logout => None,
    }
}

/// One extract a `{{stored.K}}` may read.
pub struct Origin<'p> {
    pub flow: &'p Flow,
    pub step_index: usize,
    pub step: &'p Step,
    /// The outcome's index, when the step has several.
    pub outcome: Option<usize>,
    pub extract: &'p Extract,
}

/// Where the value `{{stored.K}}` reads at a place comes from.
#[derive(Default)]
pub struct Stored<'p> {
    /// The extracts of `K` that can run before this place in the same run: steps with a path
    /// to this one (this one too when it is on a loop), and for a display field the outcome's
    /// own extraction.
    pub earlier: Vec<Origin<'p>>,
    /// Every path into this place runs one of `earlier`: the user's provider session is never
    /// read for it.
    pub every_path: bool,
    /// When it is not: the extracts that keep `K` in the user's provider session, after their
    /// run completed (every other extract of `K` in the provider).
    pub session: Vec<Origin<'p>>,
}

/// Where `{{stored.K}}` at `at` reads its value from: earlier steps of the run, or the user's
/// provider session (at logout and outside a flow, only the session).
pub fn stored_origins<'p>(p: &'p Provider, at: Option<At>, k: &str) -> Stored<'p> {
    // Every extract of `k`, with whether it runs before `at` in the same run.
    let mut all: Vec<(Origin<'p>, bool)> = Vec::new();
    let place = match at {
        Some(At::Request { flow, step }) => Some((flow, step, None)),
        Some(At::Display {
            flow,
            step,
            outcome,
        }) => Some((flow, step, Some(outcome))),
        _ => None,
    };
    let mut every_path = false;
    for (fi, f) in p.flows.iter().enumerate() {
        let before = match place {
            Some((pf, ps, shown)) if pf == fi => {
                let edges = crate::graph::edges(f);
                let defined = crate::graph::defined(f, &edges)
                    .into_iter()
                    .nth(ps)
                    .flatten();
                let step = f.steps.get(ps);
                every_path = match (defined, shown, step) {
                    (Some(d), Some(o), Some(s)) => s
                        .outcomes
                        .get(o)
                        .is_some_and(|o| d.shown(o).stored.contains(k)),
                    (Some(d), None, _) => d.stored.contains(k),
                    _ => false,
                };
                let mut before = crate::graph::leads_to(f, &edges, ps);
                before.resize(f.steps.len(), false);
                Some((before, ps, shown))
            }
            _ => None,
        };
        for (si, s) in f.steps.iter().enumerate() {
            for (oi, o) in s.outcomes.iter().enumerate() {
                let earlier = before
                    .as_ref()
                    .is_some_and(|(b, ps, shown)| b[si] || (si == *ps && *shown == Some(oi)));
                all.extend(o.extract.iter().filter(|e| e.key.v == k).map(|e| {
                    (
                        Origin {
                            flow: f,
                            step_index: si,
                            step: s,
                            outcome: (s.outcomes.len() > 1).then_some(oi),
                            extract: e,
                        },
                        earlier,
                    )
                }));
            }
        }
    }
    let (earlier, session): (Vec<_>, Vec<_>) = all.into_iter().partition(|(_, e)| *e);
    let every_path = every_path && !earlier.is_empty();
    Stored {
        earlier: earlier.into_iter().map(|(o, _)| o).collect(),
        every_path,
        session: if every_path {
            Vec::new()
        } else {
            // A value kept for one run never reaches the session.
            session
                .into_iter()
                .map(|(o, _)| o)
                .filter(|o| !o.extract.for_run())
                .collect()
        },
    }
}

/// The fields `{{input.K}}` at `at` may stand for: its flow's input and the fields prompts ask
/// for (every flow's outside a flow), with the index of the prompting step.
pub fn input_fields<'p>(
    p: &'p Provider,
    at: Option<At>,
    k: &str,
) -> Vec<(&'p Flow, Option<usize>, &'p Field)> {
    let flows: Vec<&Flow> = match flow_of(at).and_then(|i| p.flows.get(i)) {
        Some(f) => vec![f],
        None => p.flows.iter().collect(),
    };
    let mut out = Vec::new();
    for f in flows {
        out.extend(
            f.inputs
                .iter()
                .filter(|x| x.key.v == k)
                .map(|x| (f, None, x)),
        );
        for (si, s) in f.steps.iter().enumerate() {
            out.extend(
                s.prompt_fields()
                    .filter(|x| x.key.v == k && !x.is_display())
                    .map(|x| (f, Some(si), x)),
            );
        }
    }
    out
}

/// Where the things `var` names are declared: the extracts of a stored value, the fields of
/// an input, the secret's entry.
pub fn definitions(p: &Provider, at: Option<At>, var: &Var) -> Vec<Span> {
    match var {
        Var::Stored(k) => {
            let s = stored_origins(p, at, k);
            s.earlier
                .iter()
                .chain(&s.session)
                .map(|o| o.extract.key.span)
                .collect()
        }
        Var::Input(k) => input_fields(p, at, k)
            .iter()
            .map(|(_, _, x)| x.key.span)
            .collect(),
        Var::Secret(k) => p
            .secrets
            .iter()
            .filter(|s| s.key.v == *k)
            .map(|s| s.key.span)
            .collect(),
        Var::Uuid | Var::UtcNow | Var::UtcDate | Var::RunId => Vec::new(),
    }
}

/// `step 1 (`Verify Code`)`, as the compiler's messages name a step.
fn step_name(i: usize, s: &Step) -> String {
    format!("step {i} (`{}`)", s.name.v)
}

/// What an extract keeps: `JSONPath `$.data.token``, `response header `Location``, …
pub fn source_text(e: &Extract) -> String {
    let mut s = match &e.source {
        Source::Path { path, all: false } => format!("JSONPath `{}`", path.v),
        Source::Path { path, all: true } => {
            format!("JSONPath `{}`, every match as a JSON array", path.v)
        }
        Source::Header(h) => format!("response header `{}`", h.v),
        Source::Cookie(c) => format!("cookie `{}`", c.v),
        Source::Status => "the HTTP status".into(),
    };
    if e.optional {
        s.push_str(" (optional: a miss keeps nothing)");
    }
    s
}

/// One line about an extract: the step, the outcome if the step has several, the line, the
/// source; the flow too when `flow` is given (`Some(own)`: the flow of the place, which keeps
/// the value in the session when an earlier run of it completed).
fn origin_text(o: &Origin<'_>, flow: Option<Option<&Flow>>) -> String {
    let mut s = String::new();
    if let Some(own) = flow {
        let _ = write!(s, "flow `{}`", o.flow.id.v);
        if own.is_some_and(|f| std::ptr::eq(f, o.flow)) {
            s.push_str(" (this flow, in an earlier run)");
        }
        s.push_str(", ");
    }
    s.push_str(&step_name(o.step_index, o.step));
    if let Some(i) = o.outcome {
        let _ = write!(s, ", outcome {i}");
    }
    let _ = write!(
        s,
        " (line {}): {}",
        o.extract.key.span.start.line,
        source_text(o.extract)
    );
    s
}

fn field_text(f: &Flow, prompted_by: Option<usize>, x: &Field) -> String {
    let mut s = match prompted_by {
        None => format!("input of flow `{}`", f.id.v),
        Some(i) => format!("asked for by the prompt of {}", step_name(i, &f.steps[i])),
    };
    let _ = write!(
        s,
        " (line {}): \"{}\", type `{}`",
        x.key.span.start.line,
        x.label.v,
        x.field_type.as_str()
    );
    if x.transform.is_some() {
        s.push_str(", `transform: base64` (the placeholder is the encoded value)");
    }
    s
}

/// Why the checks reject `var` at `at`, in words; `None` when they accept it, or when it is not
/// allowed there at all (said on its own).
fn availability(names: Option<&Names>, at: Option<At>, var: &Var) -> Option<String> {
    let names = names?;
    let defined = match var {
        Var::Input(k) => names.inputs.as_ref()?.contains(k),
        Var::Stored(k) => names.stored.as_ref()?.contains(k),
        Var::Secret(_) if !names.secrets => {
            return Some(
                "Not allowed in a display field's `value`: secrets are never shown.".into(),
            )
        }
        Var::RunId if !names.run_id => {
            return Some("Not allowed here: a run id exists only within a flow.".into())
        }
        _ => return None,
    };
    if defined {
        return None;
    }
    Some(match at {
        Some(At::Logout) => "No flow of this provider extracts it.".into(),
        _ => "**Not defined here** on every path into this step (see the diagnostic).".into(),
    })
}

/// The hover of placeholder `var` at `at`: what it names and where its value comes from.
pub fn hover(p: &Provider, at: Option<At>, var: &Var) -> String {
    let names = at.and_then(|a| check::names_at(p, a));
    let mut md = format!("**`{}`**\n\n", var.display());
    let not_allowed = |md: &mut String, what: &str| {
        let _ = writeln!(md, "Not allowed in {what}.\n");
    };
    match var {
        Var::Stored(k) => {
            if names.as_ref().is_some_and(|n| n.stored.is_none()) {
                not_allowed(&mut md, "`defaults.headers`");
            }
            let s = stored_origins(p, at, k);
            let own = flow_of(at).and_then(|i| p.flows.get(i));
            let list = |md: &mut String, origins: &[Origin<'_>], flow: Option<Option<&Flow>>| {
                for o in origins {
                    let _ = writeln!(md, "- {}", origin_text(o, flow));
                }
                md.push('\n');
            };
            if !s.earlier.is_empty() {
                let _ = if s.every_path {
                    writeln!(md, "Extracted earlier in this run by:\n")
                } else {
                    writeln!(md, "Extracted earlier in this run on some paths, by:\n")
                };
                list(&mut md, &s.earlier, None);
            }
            if !s.session.is_empty() {
                let _ = match (s.earlier.is_empty(), at) {
                    (_, Some(At::Logout | At::Defaults) | None) => writeln!(
                        md,
                        "A value of the user's provider session, which these steps keep:\n"
                    ),
                    (true, _) => writeln!(
                        md,
                        "No earlier step of this run extracts it: a value of the user's \
                         provider session, which these steps keep:\n"
                    ),
                    (false, _) => writeln!(
                        md,
                        "On the other paths, a value of the user's provider session, which \
                         these steps keep:\n"
                    ),
                };
                list(&mut md, &s.session, Some(own));
            }
            if s.earlier.is_empty() && s.session.is_empty() {
                let _ = writeln!(md, "No step of this provider extracts `{k}`.\n");
            }
        }
        Var::Input(k) => {
            if names.as_ref().is_some_and(|n| n.inputs.is_none()) {
                not_allowed(
                    &mut md,
                    "`defaults.headers` or logout, which run without input",
                );
            }
            let fields = input_fields(p, at, k);
            if fields.is_empty() {
                let _ = writeln!(md, "No field `{k}` is declared.\n");
            }
            for (f, by, x) in fields {
                let _ = writeln!(md, "- {}", field_text(f, by, x));
            }
            md.push('\n');
        }
        Var::Secret(k) => match p.secrets.iter().find(|s| s.key.v == *k) {
            Some(s) => {
                let _ = writeln!(
                    md,
                    "Secret `{k}` (line {}), read from the environment variable `{}` when the \
                     server starts.\n",
                    s.key.span.start.line, s.env.v
                );
            }
            None => {
                let _ = writeln!(md, "No secret `{k}` is declared under `secrets`.\n");
            }
        },
        Var::Uuid | Var::UtcNow | Var::UtcDate | Var::RunId => {}
    }
    if matches!(var, Var::Input(_) | Var::Stored(_) | Var::Secret(_)) {
        let _ = match Sensitivity::of(p).var(flow_of(at), var) {
            Some(why) => writeln!(md, "**Sensitive**: {}.\n", why.describe()),
            None => writeln!(md, "Not sensitive.\n"),
        };
    }
    if let Some(a) = availability(names.as_ref(), at, var) {
        let _ = writeln!(md, "{a}\n");
    }
    let (meaning, place) = reference::placeholder_doc(var);
    let _ = write!(md, "{meaning} Available in: {place}.");
    md
}

/// A name a completion offers, with a line about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// What is inserted: a name, or `input.` and the like when no kind is written yet.
    pub text: String,
    pub detail: String,
}

/// The names valid at `at` after `{{input.`, `{{stored.` or `{{secret.` (`namespace`), or
/// after a bare `{{` the kinds of placeholder valid there. Empty where the checks have no
/// answer (a step no path reaches).
pub fn candidates(p: &Provider, at: At, namespace: Option<Namespace>) -> Vec<Candidate> {
    let Some(names) = check::names_at(p, at) else {
        return Vec::new();
    };
    let c = |text: &str, detail: String| Candidate {
        text: text.to_string(),
        detail,
    };
    match namespace {
        Some(Namespace::Input) => names
            .inputs
            .iter()
            .flatten()
            .map(|k| {
                let detail = input_fields(p, Some(at), k)
                    .first()
                    .map_or_else(String::new, |(f, by, x)| field_text(f, *by, x));
                c(k, detail)
            })
            .collect(),
        Some(Namespace::Stored) => names
            .stored
            .iter()
            .flatten()
            .map(|k| {
                let s = stored_origins(p, Some(at), k);
                let own = flow_of(Some(at)).and_then(|i| p.flows.get(i));
                let mut detail: Vec<String> =
                    s.earlier.iter().map(|o| origin_text(o, None)).collect();
                if !s.session.is_empty() {
                    detail.push("session value".into());
                    detail.extend(s.session.iter().map(|o| origin_text(o, Some(own))));
                }
                c(k, detail.join("; "))
            })
            .collect(),
        Some(Namespace::Secret) if names.secrets => p
            .secrets
            .iter()
            .map(|s| c(&s.key.v, format!("environment variable `{}`", s.env.v)))
            .collect(),
        Some(Namespace::Secret) => Vec::new(),
        None => {
            let mut out = Vec::new();
            if names.inputs.is_some() {
                out.push(c("input.", "a flow input or a prompted field".into()));
            }
            if names.stored.is_some() {
                out.push(c("stored.", "a value an earlier step extracted".into()));
            }
            if names.secrets && !p.secrets.is_empty() {
                out.push(c("secret.", "a provider secret".into()));
            }
            let builtins = [
                ("uuid", Var::Uuid),
                ("utcnow", Var::UtcNow),
                ("utcdate", Var::UtcDate),
                ("run_id", Var::RunId),
            ];
            for (name, v) in builtins {
                if names.run_id || v != Var::RunId {
                    out.push(c(name, reference::placeholder_doc(&v).0.into()));
                }
            }
            out
        }
    }
}

/// The step an outcome's `next:` at `pos` names: its `id`, or the step itself when it has none.
pub fn next_step(p: &Provider, pos: Pos) -> Option<Span> {
    p.flows.iter().find_map(|f| {
        let target = f
            .steps
            .iter()
            .flat_map(|s| &s.outcomes)
            .find_map(|o| match &o.then {
                Then::Continue(Some(r)) if within(r.span, pos) => Some(&r.v),
                _ => None,
            })?;
        let step = match target {
            StepRef::Id(id) => f
                .steps
                .iter()
                .find(|s| s.id.as_ref().is_some_and(|i| i.v == *id))?,
            StepRef::Index(i) => f.steps.get(*i)?,
        };
        Some(step.id.as_ref().map_or(step.span, |i| i.span))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_placeholder_under_the_cursor_is_read_by_the_template_parser() {
        let line = r#"      Authorization: "Bearer {{stored.access_token}} {{ input.x }}""#;
        let at = |col| placeholder_at(line, col);
        let p = at(30).unwrap();
        assert_eq!(p.var, Some(Var::Stored("access_token".into())));
        assert_eq!(&line[p.start..p.end], "{{stored.access_token}}");
        assert_eq!(
            at(line.find("input").unwrap()).unwrap().var,
            Some(Var::Input("x".into()))
        );
        assert_eq!(at(5), None);
        assert_eq!(placeholder_at("{{stored.}}", 3).unwrap().var, None);
        assert_eq!(placeholder_at("a {{stored.b", 5), None);
    }

    #[test]
    fn a_placeholder_being_typed_is_recognised() {
        let t = |s: &str| typing_at(s, s.chars().count());
        assert_eq!(
            t("body: \"{{stored.acc"),
            Some(Typing {
                namespace: Some(Namespace::Stored),
                start: 16
            })
        );
        assert_eq!(
            t("x: {{ input."),
            Some(Typing {
                namespace: Some(Namespace::Input),
                start: 12
            })
        );
        assert_eq!(t("x: {{ru").unwrap().namespace, None);
        assert_eq!(t("x: {{stored.a}} "), None);
        assert_eq!(t("x: {{extract."), None);
        assert_eq!(t("x: plain"), None);
    }
}
