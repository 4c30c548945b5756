//! Checks on the lowered model: names, URLs, headers, JSONPaths, and the data-flow check that
//! every `{{input.K}}` and `{{stored.K}}` is defined wherever it is used.

pub mod json_body;

use crate::diag::{Diagnostic, Span};
use crate::lower::did_you_mean;
use crate::model::*;
use std::collections::{BTreeSet, HashMap};

/// Runs every per-file check on `p`.
pub fn provider(p: &Provider, diags: &mut Vec<Diagnostic>) {
    Checker { p, diags }.run();
}

/// Is `id` a valid provider id (`^[a-z0-9][a-z0-9_-]*$`).
pub fn is_provider_id(id: &str) -> bool {
    let mut c = id.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_lowercase() || ch.is_ascii_digit())
        && c.all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_' || ch == '-')
}

/// What a template may refer to where it stands.
struct Env<'a> {
    /// `None`: `input.K` is not allowed here at all (defaults, logout).
    inputs: Option<&'a [&'a Field]>,
    /// Stored keys defined here (earlier extracts and session values).
    stored: Option<&'a BTreeSet<&'a str>>,
    /// Where this template stands, for messages ("logout", "defaults.headers").
    place: &'static str,
    /// The flow and step index, for "available from step N on" hints.
    flow: Option<(&'a Flow, usize)>,
}

struct Checker<'a> {
    p: &'a Provider,
    diags: &'a mut Vec<Diagnostic>,
}

impl<'a> Checker<'a> {
    fn err(
        &mut self,
        code: &'static str,
        span: Span,
        msg: impl Into<String>,
        help: Option<String>,
    ) {
        let mut d = Diagnostic::error(code, span, msg);
        d.help = help;
        self.diags.push(d);
    }

    fn run(&mut self) {
        let p = self.p;
        if !is_provider_id(&p.id.v) {
            self.err(
                "bad-provider-id",
                p.id.span,
                format!("`{}` is not a valid provider id", p.id.v),
                Some("provider ids are lowercase letters, digits, `_` and `-`, starting with a letter or digit".into()),
            );
        }
        if let Some(b) = &p.base_url {
            self.base_url(b);
        }
        let builtins = Env {
            inputs: None,
            stored: None,
            place: "`defaults.headers`",
            flow: None,
        };
        for h in &p.headers {
            self.header(h, &builtins);
        }

        let mut seen: HashMap<&str, Span> = HashMap::new();
        for f in &p.flows {
            if let Some(first) = seen.get(f.id.v.as_str()) {
                self.err(
                    "duplicate-flow",
                    f.id.span,
                    format!("duplicate flow id `{}`", f.id.v),
                    Some(format!(
                        "flow `{}` is first defined at line {}",
                        f.id.v, first.start.line
                    )),
                );
            } else {
                seen.insert(&f.id.v, f.id.span);
            }
            self.flow(f);
        }

        if let Some(l) = &p.logout {
            let all: BTreeSet<&str> = extracted(p.flows.iter().flat_map(|f| f.steps.iter()));
            let env = Env {
                inputs: None,
                stored: Some(&all),
                place: "logout",
                flow: None,
            };
            self.request(l, &env);
        }
    }

    fn base_url(&mut self, b: &S<String>) {
        if b.v.is_empty() {
            return;
        }
        if b.v.contains("{{") {
            self.err(
                "base-url-template",
                b.span,
                "`base_url` cannot hold a template",
                Some("the destination of every request is fixed at build time; use --provider-base-url to point at staging".into()),
            );
            return;
        }
        match url::Url::parse(&b.v) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => {}
            _ => self.err(
                "bad-base-url",
                b.span,
                format!("`{}` is not an absolute http(s) URL", b.v),
                Some("write it as `https://host[:port][/prefix]`".into()),
            ),
        }
    }

    fn flow(&mut self, f: &'a Flow) {
        // Keys: unique across inputs and all prompts of the flow.
        let mut keys: HashMap<&str, (Span, bool)> = HashMap::new();
        for (field, is_input) in f.inputs.iter().map(|i| (i, true)).chain(
            f.steps
                .iter()
                .flat_map(|s| s.prompt.iter().map(|p| (p, false))),
        ) {
            match keys.get(field.key.v.as_str()) {
                Some((first, first_is_input)) => {
                    let (code, msg) = if *first_is_input && !is_input {
                        (
                            "prompt-shadows-input",
                            format!("prompt key `{}` is already a flow input", field.key.v),
                        )
                    } else {
                        (
                            "duplicate-field",
                            format!("duplicate field key `{}`", field.key.v),
                        )
                    };
                    let line = first.start.line;
                    self.err(
                        code,
                        field.key.span,
                        msg,
                        Some(format!(
                            "`{}` is first defined at line {line}; use another key",
                            field.key.v
                        )),
                    );
                }
                None => {
                    keys.insert(&field.key.v, (field.key.span, is_input));
                }
            }
        }

        // Session values: what other flows of this provider extract.
        let session: BTreeSet<&str> = extracted(
            self.p
                .flows
                .iter()
                .filter(|o| o.id.v != f.id.v)
                .flat_map(|o| o.steps.iter()),
        );
        let mut stored = session.clone();
        let mut defined: Vec<&Field> = f.inputs.iter().collect();
        for (i, step) in f.steps.iter().enumerate() {
            let env = Env {
                inputs: Some(&defined),
                stored: Some(&stored),
                place: "this step",
                flow: Some((f, i)),
            };
            self.request(&step.request, &env);
            for e in &step.extract {
                if let Err(err) = jsonpath_rust::parser::parse_json_path(&e.path.v) {
                    self.err(
                        "bad-jsonpath",
                        e.path.span,
                        format!("`{}` is not a valid JSONPath", e.path.v),
                        Some(format!(
                            "{}; paths look like `$.data.access_token`",
                            short(&err.to_string())
                        )),
                    );
                }
            }
            if !step.prompt.is_empty() && i + 1 == f.steps.len() {
                self.err(
                    "prompt-on-last-step",
                    step.prompt[0].span,
                    "a prompt on the last step is never used",
                    Some("a prompt asks for fields that a later step sends; add that step or remove the prompt".into()),
                );
            }
            stored.extend(step.extract.iter().map(|e| e.key.v.as_str()));
            defined.extend(step.prompt.iter());
        }

        // Inputs and prompt fields that no step sends.
        let used: BTreeSet<&str> = f
            .steps
            .iter()
            .flat_map(|s| request_templates(&s.request))
            .flat_map(|t| t.vars())
            .filter_map(|(v, _)| match v {
                Var::Input(k) => Some(k.as_str()),
                _ => None,
            })
            .collect();
        for field in f
            .inputs
            .iter()
            .chain(f.steps.iter().flat_map(|s| s.prompt.iter()))
        {
            if !used.contains(field.key.v.as_str()) {
                self.diags.push(
                    Diagnostic::warning(
                        "unused-input",
                        field.key.span,
                        format!(
                            "input `{}` is not used by any step of flow `{}`",
                            field.key.v, f.id.v
                        ),
                    )
                    .with_help(format!(
                        "send it with `{{{{input.{}}}}}`, or remove it",
                        field.key.v
                    )),
                );
            }
        }
    }

    fn request(&mut self, r: &Request, env: &Env<'_>) {
        self.path(&r.path);
        for h in &r.headers {
            self.header(h, env);
        }
        for p in &r.params {
            if p.name.v.contains("{{") || p.name.v.is_empty() {
                self.err(
                    "bad-param-name",
                    p.name.span,
                    format!("`{}` is not a valid parameter name", p.name.v),
                    Some("parameter names are fixed text; templates go in values".into()),
                );
            }
        }
        let mut templates = vec![(&r.path, true)];
        templates.extend(r.params.iter().map(|p| (&p.value, true)));
        templates.extend(r.headers.iter().map(|h| (&h.value, false)));
        if let Some(b) = &r.body {
            templates.push((&b.template, false));
        }
        for (t, in_url) in templates {
            for (v, span) in t.vars() {
                self.var(v, span, env);
                if let (true, Var::Input(k), Some(inputs)) = (in_url, v, env.inputs) {
                    if inputs
                        .iter()
                        .any(|f| &f.key.v == k && f.field_type == FieldType::Password)
                    {
                        self.diags.push(
                            Diagnostic::warning(
                                "password-in-url",
                                span,
                                format!("password input `{k}` is sent in the URL"),
                            )
                            .with_help("URLs end up in logs and proxies; send passwords in the body or a header"),
                        );
                    }
                }
            }
        }
    }

    fn path(&mut self, t: &Template) {
        let first = match t.pieces.first() {
            Some(Piece::Lit(l)) => l.as_str(),
            _ => "",
        };
        let lower = first.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            let after = &first[first.find("://").map_or(0, |i| i + 3)..];
            let authority_end = after.find(['/', '?', '#']);
            if authority_end.is_none() && t.pieces.len() > 1 {
                self.err(
                    "url-host-template",
                    t.span,
                    "the host of a request URL cannot come from a template",
                    Some("the destination of every request is fixed at build time".into()),
                );
                return;
            }
            let authority = &after[..authority_end.unwrap_or(after.len())];
            let scheme = &first[..first.find("://").unwrap_or(0)];
            if url::Url::parse(&format!("{scheme}://{authority}/")).map_or(true, |u| !u.has_host())
            {
                self.err(
                    "bad-url",
                    t.span,
                    format!("`{scheme}://{authority}` is not a valid URL"),
                    None,
                );
            }
        } else if first.starts_with('/') {
            if self.p.base_url.as_ref().is_none_or(|b| b.v.is_empty()) {
                self.err(
                    "no-base-url",
                    t.span,
                    "a relative path needs `defaults.base_url`",
                    Some(
                        "set `defaults.base_url: https://…`, or write an absolute http(s) URL"
                            .into(),
                    ),
                );
            }
        } else {
            self.err(
                "bad-path",
                t.span,
                "a request path must start with `/` or be an absolute http(s) URL",
                Some(if first.is_empty() && !t.pieces.is_empty() {
                    "the destination of every request is fixed at build time: start the path with literal text".into()
                } else {
                    format!("did you mean `/{first}`?")
                }),
            );
        }
    }

    fn header(&mut self, h: &Header, env: &Env<'_>) {
        if http::HeaderName::from_bytes(h.name.v.as_bytes()).is_err() {
            self.err(
                "bad-header-name",
                h.name.span,
                format!("`{}` is not a valid HTTP header name", h.name.v),
                Some(if h.name.v.contains("{{") {
                    "templates are not allowed in header names".into()
                } else {
                    "header names are letters, digits and `-`".into()
                }),
            );
        }
        for p in &h.value.pieces {
            if let Piece::Lit(l) = p {
                if http::HeaderValue::from_str(l).is_err() {
                    self.err(
                        "bad-header-value",
                        h.value.span,
                        format!(
                            "the value of header `{}` holds characters a header cannot carry",
                            h.name.v
                        ),
                        Some("header values are visible ASCII text without line breaks".into()),
                    );
                    break;
                }
            }
        }
        for (v, span) in h.value.vars() {
            self.var(v, span, env);
        }
    }

    fn var(&mut self, v: &Var, span: Span, env: &Env<'_>) {
        match v {
            Var::Uuid | Var::UtcNow | Var::UtcDate => {}
            Var::Input(k) => self.input_var(k, span, env),
            Var::Stored(k) => self.stored_var(k, span, env),
        }
    }

    fn input_var(&mut self, k: &str, span: Span, env: &Env<'_>) {
        let Some(inputs) = env.inputs else {
            let help = if env.place == "logout" {
                "logout runs without user input; use `{{stored.K}}` for values extracted at login"
            } else {
                "`defaults.headers` apply to every request; they may use only `{{uuid}}`, `{{utcnow}}` and `{{utcdate}}`"
            };
            self.err(
                "input-not-allowed",
                span,
                format!("`{{{{input.{k}}}}}` cannot be used in {}", env.place),
                Some(help.into()),
            );
            return;
        };
        if inputs.iter().any(|f| f.key.v == k) {
            return;
        }
        let msg = format!("`{{{{input.{k}}}}}` is not defined at this step");
        // `phone_base64` for a base64-transformed `phone`.
        if let Some(base) = k.strip_suffix("_base64") {
            if inputs
                .iter()
                .any(|f| f.key.v == base && f.transform == Some(Transform::Base64))
            {
                self.err(
                    "undefined-input",
                    span,
                    msg,
                    Some(format!("`{base}` has `transform: base64`, so `{{{{input.{base}}}}}` is already the encoded value; use it")),
                );
                return;
            }
        }
        if let Some((f, i)) = env.flow {
            if let Some(later) = f
                .steps
                .iter()
                .enumerate()
                .skip(i)
                .find(|(_, s)| s.prompt.iter().any(|p| p.key.v == k))
            {
                let help = format!(
                    "`{k}` is prompted by step {} (`{}`), so it is available from step {} on",
                    later.0,
                    later.1.name.v,
                    later.0 + 1
                );
                self.err("undefined-input", span, msg, Some(help));
                return;
            }
        }
        let names: Vec<&str> = inputs.iter().map(|f| f.key.v.as_str()).collect();
        let help = match did_you_mean(k, &names) {
            Some(s) => format!("did you mean `{{{{input.{s}}}}}`?"),
            None if names.is_empty() => {
                "this flow declares no inputs; add it under `inputs`".into()
            }
            None => format!("inputs defined here: {}", names.join(", ")),
        };
        self.err("undefined-input", span, msg, Some(help));
    }

    fn stored_var(&mut self, k: &str, span: Span, env: &Env<'_>) {
        let Some(stored) = env.stored else {
            self.err(
                "stored-not-allowed",
                span,
                format!("`{{{{stored.{k}}}}}` cannot be used in {}", env.place),
                Some("`defaults.headers` apply to every request; they may use only `{{uuid}}`, `{{utcnow}}` and `{{utcdate}}`".into()),
            );
            return;
        };
        if stored.contains(k) {
            return;
        }
        let msg = if env.place == "logout" {
            format!("`{{{{stored.{k}}}}}` is never extracted by any flow of this provider")
        } else {
            format!("`{{{{stored.{k}}}}}` is not defined at this step")
        };
        if let Some((f, i)) = env.flow {
            if let Some((j, s)) = f
                .steps
                .iter()
                .enumerate()
                .skip(i)
                .find(|(_, s)| s.extract.iter().any(|e| e.key.v == k))
            {
                let help = format!(
                    "`{k}` is extracted by step {j} (`{}`), so it is available from step {} on",
                    s.name.v,
                    j + 1
                );
                self.err("undefined-stored", span, msg, Some(help));
                return;
            }
        }
        let names: Vec<&str> = stored.iter().copied().collect();
        let help = match did_you_mean(k, &names) {
            Some(s) => format!("did you mean `{{{{stored.{s}}}}}`?"),
            None => "extract it in an earlier step with `on_success.extract`".into(),
        };
        self.err("undefined-stored", span, msg, Some(help));
    }
}

/// Every key extracted by `steps`.
fn extracted<'s>(steps: impl Iterator<Item = &'s Step>) -> BTreeSet<&'s str> {
    steps
        .flat_map(|s| s.extract.iter().map(|e| e.key.v.as_str()))
        .collect()
}

/// Every template of a request.
pub fn request_templates(r: &Request) -> impl Iterator<Item = &Template> {
    std::iter::once(&r.path)
        .chain(r.params.iter().map(|p| &p.value))
        .chain(r.headers.iter().map(|h| &h.value))
        .chain(r.body.iter().map(|b| &b.template))
}

fn short(s: &str) -> String {
    let first = s.lines().next().unwrap_or(s);
    first.chars().take(120).collect()
}
