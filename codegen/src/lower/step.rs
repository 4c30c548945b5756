//! Lowering steps: the `on_success` form and `outcomes`, conditions, `next`/`complete`/`fail`,
//! and extract sources.
//!
//! Both forms become a list of outcomes: `on_success` (with `success_status` and
//! `success_when`) is one outcome whose condition is the success test. Combinations that cannot
//! mean anything (`fail` with `extract`, `complete` with `prompt`, …) are reported here, where
//! the keys' positions are known.

use super::{head, keys, Lower, Map};
use crate::diag::did_you_mean;
use crate::model::*;
use crate::yaml::{Kind, Node};
use saphyr_parser::ScalarStyle;

impl Lower {
    pub(super) fn step(&mut self, node: &Node) -> Option<Step> {
        let m = self.map(node, "a step", keys::STEP)?;
        let id = m.get("id").and_then(|n| self.string(n, "`id`"));
        let name = self.req_string(&m, "name", "a step");
        let request = self
            .required(&m, "request", "a step")
            .and_then(|r| self.request(r));
        let error_message = self.opt_string(&m, "error_message");
        let success_form = m.get("outcomes").is_none();
        let outcomes = match m.get("outcomes") {
            Some(list) => {
                for k in keys::SUCCESS_FORM {
                    if let Some((key, _)) = m.entry(k) {
                        self.err(
                            "outcomes-conflict",
                            key.span,
                            format!("`{k}` cannot be used together with `outcomes`"),
                        )
                        .help = Some(
                            "outcomes see every response, whatever its status; write the success case as an outcome, e.g. `- when: { status: 200 }` with its `extract`"
                                .into(),
                        );
                    }
                }
                self.outcomes(list)
            }
            None => vec![self.on_success(&m, node)],
        };
        let mut samples = self.samples(&m);
        let mut outcomes = outcomes;
        self.cap_samples(&mut samples, &mut outcomes);
        Some(Step {
            id,
            name,
            request: request?,
            error_message,
            outcomes,
            samples,
            success_form,
            span: node.span,
        })
    }

    /// The `on_success` form: one outcome that holds when the status is a success status
    /// (`success_status`, default any 2xx) and every `success_when` condition holds.
    fn on_success(&mut self, m: &Map<'_>, step: &Node) -> Outcome {
        let status = match m.get("success_status") {
            Some(s) => self.status_set(s),
            None => None,
        }
        .unwrap_or(S {
            v: StatusSet::Success,
            span: head(step),
        });
        let mut when = vec![Cond::Status(status)];
        if let Some(sw) = m.get("success_when") {
            when.extend(self.conditions(sw, "`success_when`", false));
        }
        let (mut extract, mut prompt, mut samples) = (Vec::new(), None, Vec::new());
        let mut span = head(step);
        if let Some(os) = m.get("on_success") {
            span = head(os);
            if let Some(om) = self.map(os, "`on_success`", keys::ON_SUCCESS) {
                if let Some(e) = om.get("extract") {
                    extract = self.extract(e);
                }
                prompt = self.prompt(&om);
                samples = self.samples(&om);
            }
        }
        Outcome {
            when,
            extract,
            prompt,
            then: Then::Continue(None),
            message: None,
            samples,
            span,
        }
    }

    /// `prompt:`; an empty one asks nothing and does not pause, as in the core language.
    fn prompt(&mut self, m: &Map<'_>) -> Option<Prompt> {
        let (k, v) = m.entry("prompt")?;
        let fields = self.fields(v, "`prompt`");
        (!fields.is_empty()).then_some(Prompt {
            fields,
            key_span: k.span,
        })
    }

    fn outcomes(&mut self, node: &Node) -> Vec<Outcome> {
        let items = self.list(node, "`outcomes`");
        if items.is_empty() && (node.is_null() || matches!(node.kind, Kind::Seq(_))) {
            self.err("empty-outcomes", head(node), "`outcomes` is empty")
                .help =
                Some("list what each kind of response leads to, most specific first".into());
        }
        items.iter().filter_map(|n| self.outcome(n)).collect()
    }

    fn outcome(&mut self, node: &Node) -> Option<Outcome> {
        let m = self.map(node, "an outcome", keys::OUTCOME)?;
        let when = m
            .get("when")
            .map(|w| self.conditions(w, "`when`", true))
            .unwrap_or_default();
        let extract = m
            .get("extract")
            .map(|e| self.extract(e))
            .unwrap_or_default();
        let prompt = self.prompt(&m);
        let next = m.get("next").and_then(|n| self.step_ref(n));
        let complete = match m.entry("complete") {
            Some((k, v)) => self
                .boolean(v, "`complete`")
                .unwrap_or(false)
                .then_some(k.span),
            None => None,
        };
        let fail = m.get("fail").and_then(|f| self.fail(f));
        let message = m.get("message").and_then(|n| self.message(n));

        // A `complete` or `fail` that conflicts with `next` or `prompt` is reported; the outcome
        // is then read as leading on, so that the steps it names are not reported again as
        // unreachable.
        let leads_on = m.entry("next").is_some() || prompt.is_some();
        let then = if let Some(f) = fail {
            for k in ["extract", "prompt", "next", "complete", "message"] {
                if let Some((key, _)) = m.entry(k) {
                    let help = match k {
                        "message" => "a failing outcome's message is `fail: \"…\"` or `fail: { message: \"…\" }`",
                        _ => "a failing outcome ends the step with an error and keeps nothing; remove one of them",
                    };
                    self.conflict(key, k, "fail", help);
                }
            }
            if leads_on {
                Then::Continue(next)
            } else {
                Then::Fail(f)
            }
        } else if let Some(c) = complete {
            for (k, help) in [
                (
                    "prompt",
                    "the run completes here, so nothing would consume the prompt's fields",
                ),
                ("next", "the run completes here, so no step comes next"),
                (
                    "message",
                    "`message` is shown alongside `next_step`; a completed run has none",
                ),
            ] {
                if let Some((key, _)) = m.entry(k) {
                    self.conflict(key, k, "complete: true", help);
                }
            }
            if leads_on {
                Then::Continue(next)
            } else {
                Then::Complete(c)
            }
        } else {
            if let (Some((key, _)), None) = (m.entry("message"), &prompt) {
                self.err(
                    "message-without-prompt",
                    key.span,
                    "`message` is shown alongside `next_step`, which only a `prompt` produces",
                )
                .help = Some(
                    "add the `prompt` this message explains, or use `fail:` to end the step with it"
                        .into(),
                );
            }
            Then::Continue(next)
        };
        let samples = self.samples(&m);
        Some(Outcome {
            when,
            extract,
            prompt,
            then,
            message,
            samples,
            span: head(node),
        })
    }

    fn conflict(&mut self, key: &Node, k: &str, with: &str, help: &str) {
        self.err(
            "outcome-conflict",
            key.span,
            format!("`{k}` cannot be combined with `{with}`"),
        )
        .help = Some(help.into());
    }

    /// Messages are shown as written: a placeholder in one would reach the user unsubstituted.
    fn literal_text(&mut self, text: &S<String>, what: &str) {
        if text.v.contains("{{") {
            self.err(
                "message-template",
                text.span,
                format!("{what} is shown as written; placeholders are not substituted"),
            )
            .help = Some("write the message as plain text".into());
        }
    }

    /// `message: "text"` or `message: { from: "$.message", fallback: "text" }`.
    fn message(&mut self, node: &Node) -> Option<Message> {
        const SHAPE: &str = "write `message: \"That code was not accepted\"`, or `message: { from: \"$.message\", fallback: \"That code was not accepted\" }` to show the provider's text";
        match &node.kind {
            Kind::Scalar(..) if !node.is_null() => {
                let text = self.string(node, "`message`")?;
                self.literal_text(&text, "`message`");
                return Some(Message {
                    from: None,
                    text: Some(text),
                    span: node.span,
                });
            }
            Kind::Map(_) => {}
            _ => {
                self.err(
                    "wrong-type",
                    node.span,
                    format!(
                        "`message` must be text or a mapping with `from` and `fallback`, found {}",
                        node.describe()
                    ),
                )
                .help = Some(SHAPE.into());
                return None;
            }
        }
        let m = self.map(node, "`message`", keys::MESSAGE)?;
        let from = self.opt_string(&m, "from");
        let text = self.opt_string(&m, "fallback");
        if let Some(t) = &text {
            self.literal_text(t, "`fallback`");
        }
        if from.is_none()
            && text.is_none()
            && m.get("from").is_none()
            && m.get("fallback").is_none()
        {
            self.err(
                "empty-message",
                head(node),
                "`message` needs `from`, `fallback` or both",
            )
            .help = Some(SHAPE.into());
            return None;
        }
        Some(Message {
            from,
            text,
            span: head(node),
        })
    }

    /// `next: verify` (a step id) or `next: 2` (a step index).
    fn step_ref(&mut self, node: &Node) -> Option<S<StepRef>> {
        let s = self.string(node, "`next`")?;
        let v = match s.v.parse::<usize>() {
            Ok(i) if s.v.bytes().all(|b| b.is_ascii_digit()) => StepRef::Index(i),
            _ => StepRef::Id(s.v),
        };
        Some(S { v, span: s.span })
    }

    /// `fail: "text"` or `fail: { from: "$.message", message: "…", clear_session: true }`.
    fn fail(&mut self, node: &Node) -> Option<Fail> {
        if let Kind::Scalar(..) = node.kind {
            let message = self.string(node, "`fail`")?;
            self.literal_text(&message, "`fail`");
            return Some(Fail {
                from: None,
                message: Some(message),
                clear_session: false,
                span: node.span,
            });
        }
        let m = self.map(node, "`fail`", keys::FAIL)?;
        let from = self.opt_string(&m, "from");
        let message = self.opt_string(&m, "message");
        if let Some(msg) = &message {
            self.literal_text(msg, "`message`");
        }
        let clear_session = match m.get("clear_session") {
            Some(c) => self.boolean(c, "`clear_session`").unwrap_or(false),
            None => false,
        };
        Some(Fail {
            from,
            message,
            clear_session,
            span: head(node),
        })
    }

    /// `when` (JSONPaths and `status`) or `success_when` (JSONPaths only).
    pub(super) fn conditions(
        &mut self,
        node: &Node,
        what: &str,
        status_allowed: bool,
    ) -> Vec<Cond> {
        let Kind::Map(entries) = &node.kind else {
            self.err(
                "wrong-type",
                node.span,
                format!(
                    "{what} must be a mapping of JSONPath to expected value, found {}",
                    node.describe()
                ),
            );
            return Vec::new();
        };
        if entries.is_empty() {
            self.err("empty-condition", node.span, format!("{what} is empty"))
                .help = Some(if status_allowed {
                "an outcome without `when` takes every response; remove `when`, or add a condition"
                    .into()
            } else {
                "remove it, or add a condition such as `\"$.status_code\": A0000`".into()
            });
        }
        let mut out = Vec::new();
        for (k, v) in entries {
            let name = k.as_str().unwrap_or_default();
            if name == "status" && status_allowed {
                if let Some(set) = self.status_set(v) {
                    out.push(Cond::Status(set));
                }
            } else if name.starts_with('$') {
                if let Some(expected) = self.scalar(v) {
                    out.push(Cond::Json {
                        path: S {
                            v: name.to_string(),
                            span: k.span,
                        },
                        expected,
                    });
                }
            } else {
                let help = if name == "status" {
                    "the status that means success is `success_status`".to_string()
                } else if status_allowed && did_you_mean(name, &["status"]).is_some() {
                    "did you mean `status`?".to_string()
                } else if status_allowed {
                    "conditions are JSONPaths (`\"$.response_type\": SUCCESS`) or `status: 300`"
                        .to_string()
                } else {
                    format!("conditions are JSONPaths starting with `$`, e.g. `\"$.{name}\"`")
                };
                self.err(
                    "bad-condition",
                    k.span,
                    format!("`{name}` is not a condition in {what}"),
                )
                .help = Some(help);
            }
        }
        out
    }

    /// A condition's expected value, typed as YAML's core schema reads a plain scalar; quoted
    /// scalars are strings.
    fn scalar(&mut self, node: &Node) -> Option<S<Scalar>> {
        let Kind::Scalar(text, style) = &node.kind else {
            self.err(
                "wrong-type",
                node.span,
                format!(
                    "an expected value must be text, a number, true/false or null, found {}",
                    node.describe()
                ),
            );
            return None;
        };
        let v = if *style == ScalarStyle::Plain {
            plain_scalar(text)
        } else {
            Scalar::Str(text.clone())
        };
        Some(S { v, span: node.span })
    }

    /// `300` or `[201, 300]`.
    fn status_set(&mut self, node: &Node) -> Option<S<StatusSet>> {
        let codes = match &node.kind {
            Kind::Seq(items) if !items.is_empty() => {
                let codes: Vec<u16> = items
                    .iter()
                    .filter_map(|n| self.status(n).map(|s| s.v))
                    .collect();
                (codes.len() == items.len()).then_some(codes)?
            }
            Kind::Seq(_) => {
                self.err("bad-status", node.span, "the list of statuses is empty")
                    .help = Some("write one code, e.g. `200`, or a list, e.g. `[201, 300]`".into());
                return None;
            }
            _ => vec![self.status(node)?.v],
        };
        Some(S {
            v: StatusSet::AnyOf(codes),
            span: node.span,
        })
    }

    pub(super) fn status(&mut self, node: &Node) -> Option<S<u16>> {
        let n = node.as_str().and_then(|s| s.parse::<u32>().ok());
        match n {
            Some(code @ 100..=599) => Some(S {
                v: code as u16,
                span: node.span,
            }),
            _ => {
                self.err(
                    "bad-status",
                    node.span,
                    format!(
                        "`{}` is not an HTTP status code",
                        node.as_str().unwrap_or("this")
                    ),
                )
                .help = Some("a status code is a number from 100 to 599".into());
                None
            }
        }
    }

    pub(super) fn extract(&mut self, node: &Node) -> Vec<Extract> {
        let mut out = Vec::new();
        for (key, v) in self.named(node, "`extract`", "key: JSONPath", "extract key") {
            let found = match &v.kind {
                Kind::Map(_) => self.extract_source(v),
                _ => self
                    .string(v, "a JSONPath")
                    .map(|path| (Source::Path { path, all: false }, false, None, None)),
            };
            if let Some((source, optional, sensitive, keep)) = found {
                out.push(Extract {
                    key,
                    source,
                    optional,
                    sensitive,
                    keep,
                    span: v.span,
                });
            }
        }
        out
    }

    /// `{ path, optional, all }`, `{ header }`, `{ cookie }` or `{ status: true }`, each with
    /// `sensitive` and `keep` if given.
    #[allow(clippy::type_complexity)]
    fn extract_source(
        &mut self,
        node: &Node,
    ) -> Option<(Source, bool, Option<S<bool>>, Option<S<Keep>>)> {
        let m = self.map(node, "an extract", keys::EXTRACT)?;
        let given: Vec<(&Node, &Node)> = keys::SOURCES.iter().filter_map(|k| m.entry(k)).collect();
        let Some(&(first_key, first)) = given.first() else {
            self.err(
                "extract-source",
                head(node),
                "an extract needs a source: `path`, `header`, `cookie` or `status`",
            )
            .help = Some(
                "e.g. `{ path: \"$.token\", optional: true }` or `{ header: Location }`".into(),
            );
            return None;
        };
        for (k, _) in given.iter().skip(1) {
            self.err(
                "extract-source",
                k.span,
                format!(
                    "`{}` and `{}` cannot both be the source of one extract",
                    first_key.as_str().unwrap_or_default(),
                    k.as_str().unwrap_or_default()
                ),
            )
            .help = Some("write one extract per source".into());
        }
        let flag = |me: &mut Self, name: &str| match m.entry(name) {
            Some((k, v)) => me.boolean(v, &format!("`{name}`")).map(|b| (k, b)),
            None => None,
        };
        let optional = flag(self, "optional");
        let all = flag(self, "all");
        let sensitive = m.get("sensitive").and_then(|v| {
            self.boolean(v, "`sensitive`")
                .map(|b| S { v: b, span: v.span })
        });
        let keep = m.get("keep").and_then(|v| {
            self.choice(v, "`keep`", &Keep::ALL)
                .map(|k| S { v: k, span: v.span })
        });
        let kind = first_key.as_str().unwrap_or_default();
        if kind != "path" {
            if let Some((k, _)) = all {
                self.err(
                    "extract-source",
                    k.span,
                    "`all` applies to a `path` extract only",
                )
                .help = Some(
                    "`all: true` keeps every value a JSONPath matches, as a JSON array".into(),
                );
            }
        }
        let source = match kind {
            "path" => Source::Path {
                path: self.string(first, "`path`")?,
                all: all.is_some_and(|(_, b)| b),
            },
            "header" => {
                let name = self.string(first, "`header`")?;
                if http::HeaderName::from_bytes(name.v.as_bytes()).is_err() {
                    self.err(
                        "bad-header-name",
                        name.span,
                        format!("`{}` is not a valid HTTP header name", name.v),
                    )
                    .help = Some("header names are letters, digits and `-`".into());
                }
                Source::Header(name)
            }
            "cookie" => {
                let name = self.string(first, "`cookie`")?;
                if name.v.is_empty() || name.v.contains(['=', ';', ' ', ',']) {
                    self.err(
                        "bad-cookie-name",
                        name.span,
                        format!("`{}` is not a valid cookie name", name.v),
                    )
                    .help = Some(
                        "a cookie name is the text before `=` in the provider's `Set-Cookie` header"
                            .into(),
                    );
                }
                Source::Cookie(name)
            }
            _ => {
                if self.boolean(first, "`status`") == Some(false) {
                    self.err(
                        "extract-source",
                        first.span,
                        "`status: false` names no source",
                    )
                    .help = Some(
                        "write `status: true` to keep the HTTP status, or remove the extract"
                            .into(),
                    );
                    return None;
                }
                if let Some((k, _)) = optional {
                    self.err(
                        "extract-source",
                        k.span,
                        "the status is always there: `optional` means nothing here",
                    )
                    .help = Some("remove `optional`".into());
                }
                Source::Status
            }
        };
        Some((source, optional.is_some_and(|(_, b)| b), sensitive, keep))
    }
}

/// YAML 1.2 core schema for a plain scalar: null, booleans, integers, floats, else text.
pub(super) fn plain_scalar(s: &str) -> Scalar {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Scalar::Null,
        "true" | "True" | "TRUE" => return Scalar::Bool(true),
        "false" | "False" | "FALSE" => return Scalar::Bool(false),
        _ => {}
    }
    let int = if let Some(h) = s.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()
    } else if let Some(o) = s.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()
    } else if s
        .trim_start_matches(['-', '+'])
        .bytes()
        .all(|b| b.is_ascii_digit())
    {
        s.parse::<i64>().ok()
    } else {
        None
    };
    if let Some(i) = int {
        return Scalar::Int(i);
    }
    let numeric = s
        .trim_start_matches(['-', '+'])
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
    match s.parse::<f64>() {
        Ok(f) if numeric && f.is_finite() && s.bytes().any(|b| b.is_ascii_digit()) => {
            Scalar::Float(f)
        }
        _ => Scalar::Str(s.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_scalars_follow_the_core_schema() {
        assert_eq!(plain_scalar("A0000"), Scalar::Str("A0000".into()));
        assert_eq!(plain_scalar("200"), Scalar::Int(200));
        assert_eq!(plain_scalar("-3"), Scalar::Int(-3));
        assert_eq!(plain_scalar("0x1F"), Scalar::Int(31));
        assert_eq!(plain_scalar("1.5"), Scalar::Float(1.5));
        assert_eq!(plain_scalar("true"), Scalar::Bool(true));
        assert_eq!(plain_scalar("~"), Scalar::Null);
        assert_eq!(plain_scalar("inf"), Scalar::Str("inf".into()));
        assert_eq!(plain_scalar("1.2.3"), Scalar::Str("1.2.3".into()));
    }
}
