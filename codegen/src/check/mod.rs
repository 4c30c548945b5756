//! Checks on the lowered model: names, URLs, headers, JSONPaths, secrets, and the data-flow
//! check that every placeholder is defined wherever it is used.
//!
//! `flow` holds the rules over a flow's step graph (reachability, loops, what is defined on
//! every path); `outcomes` the rules about one step's outcomes; `json_body` the JSON bodies.

mod flow;
pub mod json_body;
mod outcomes;
pub mod samples;
pub mod sensitive;

use crate::diag::{did_you_mean, Diagnostic, Span};
use crate::model::*;
use std::collections::{BTreeSet, HashMap};

/// Runs every per-file check on `p`.
pub fn provider(p: &Provider, diags: &mut Vec<Diagnostic>) {
    Checker {
        p,
        diags,
        secrets_used: BTreeSet::new(),
    }
    .run();
}

/// Is `id` a valid provider id (`^[a-z0-9][a-z0-9_-]*$`).
pub fn is_provider_id(id: &str) -> bool {
    let mut c = id.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_lowercase() || ch.is_ascii_digit())
        && c.all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_' || ch == '-')
}

/// Where a template stands in a provider, for a tool that asks what it may name there (the
/// language server). Indices are into `Provider::flows` and `Flow::steps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// `defaults.headers`.
    Defaults,
    /// The logout request.
    Logout,
    /// The request of a flow's step.
    Request { flow: usize, step: usize },
    /// A display field's `value` in the prompt of outcome `outcome` of a flow's step.
    Display {
        flow: usize,
        step: usize,
        outcome: usize,
    },
}

/// What a template may name where it stands, as the checks decide it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    /// `{{input.K}}`: the inputs defined there; `None`: not allowed there.
    pub inputs: Option<BTreeSet<String>>,
    /// `{{stored.K}}`: the stored values defined there (earlier extracts and session values);
    /// `None`: not allowed there.
    pub stored: Option<BTreeSet<String>>,
    /// `{{secret.K}}` may name the declared secrets (everywhere but a display field's value).
    pub secrets: bool,
    /// `{{run_id}}` is allowed (within a flow).
    pub run_id: bool,
}

/// What a template at `at` may name; `None` when `p` has no such place, or for a step no path
/// reaches (reported as unreachable, its templates not checked).
pub fn names_at(p: &Provider, at: At) -> Option<Names> {
    let in_step = |flow: usize, step: usize| {
        let f = p.flows.get(flow)?;
        flow::step_names(p, f, &crate::graph::edges(f))
            .into_iter()
            .nth(step)?
    };
    Some(match at {
        At::Defaults => Names {
            secrets: true,
            ..Names::default()
        },
        At::Logout => Names {
            stored: Some(logout_stored(p)),
            secrets: true,
            ..Names::default()
        },
        At::Request { flow, step } => {
            let d = in_step(flow, step)?.request;
            Names {
                inputs: Some(d.inputs),
                stored: Some(d.stored),
                secrets: true,
                run_id: true,
            }
        }
        At::Display {
            flow,
            step,
            outcome,
        } => {
            let d = in_step(flow, step)?.display.into_iter().nth(outcome)?;
            Names {
                inputs: Some(d.inputs),
                stored: Some(d.stored),
                secrets: false,
                run_id: true,
            }
        }
    })
}

/// What logout may use: every key some flow keeps in the session.
fn logout_stored(p: &Provider) -> BTreeSet<String> {
    p.session_keys()
}

/// Where a template stands, which decides what it may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// `defaults.headers`: every request, logout included.
    Defaults,
    Logout,
    /// The `auth.check` request.
    Check,
    /// A flow step's request.
    Step,
    /// A display field's `value`: shown to the user.
    Display,
}

impl Place {
    fn name(self) -> &'static str {
        match self {
            Place::Defaults => "`defaults.headers`",
            Place::Logout => "logout",
            Place::Check => "`auth.check`",
            Place::Step => "this step",
            Place::Display => "a display field's `value`",
        }
    }
}

/// What a template may refer to where it stands.
struct Env<'a> {
    /// Inputs defined here; `None`: `input.K` is not allowed at all.
    inputs: Option<&'a BTreeSet<String>>,
    /// Stored keys defined here (earlier extracts and session values); `None`: not allowed.
    stored: Option<&'a BTreeSet<String>>,
    place: Place,
    /// The flow and step index, for "available from step N on" hints.
    flow: Option<(&'a Flow, usize)>,
}

struct Checker<'a> {
    p: &'a Provider,
    diags: &'a mut Vec<Diagnostic>,
    /// Secrets some template names, for the unused-secret warning.
    secrets_used: BTreeSet<&'a str>,
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

    fn warn(&mut self, code: &'static str, span: Span, msg: impl Into<String>, help: &str) {
        self.diags
            .push(Diagnostic::warning(code, span, msg).with_help(help));
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
        self.secret_decls();
        let builtins = Env {
            inputs: None,
            stored: None,
            place: Place::Defaults,
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
            let all = logout_stored(p);
            let env = Env {
                inputs: None,
                stored: Some(&all),
                place: Place::Logout,
                flow: None,
            };
            self.request(l, &env);
        }

        if let Some(c) = &p.check {
            // The check runs outside any run, on the session, as logout does.
            let all = logout_stored(p);
            let env = Env {
                inputs: None,
                stored: Some(&all),
                place: Place::Check,
                flow: None,
            };
            self.request(&c.step().request, &env);
            self.outcomes(&c.flow, 0, c.step());
        }

        self.sensitivity_marks();
        self.keep_marks();

        for s in &p.secrets {
            if !self.secrets_used.contains(s.key.v.as_str()) {
                self.warn(
                    "unused-secret",
                    s.key.span,
                    format!("secret `{}` is not used by any request", s.key.v),
                    &format!(
                        "send it with `{{{{secret.{}}}}}`, or remove it (the server requires every declared secret to start)",
                        s.key.v
                    ),
                );
            }
        }
    }

    /// `sensitive: false` on an extract whose key another extract keeps as sensitive has no
    /// effect: a stored value is one per key.
    fn sensitivity_marks(&mut self) {
        let extracts: Vec<&Extract> = self
            .p
            .flows
            .iter()
            .flat_map(|f| &f.steps)
            .flat_map(Step::extracts)
            .collect();
        for e in &extracts {
            let Some(S { v: false, span }) = e.sensitive else {
                continue;
            };
            let Some((other, why)) = extracts.iter().find_map(|o| {
                Some((o, sensitive::extract(o)?)).filter(|(o, _)| o.key.v == e.key.v)
            }) else {
                continue;
            };
            let k = &e.key.v;
            self.warn(
                "sensitive-ignored",
                span,
                format!(
                    "`{k}` stays sensitive: line {} keeps it too ({})",
                    other.key.span.start.line,
                    why.describe()
                ),
                &format!(
                    "a stored value is one per key; mark every extract of `{k}` with `sensitive: false`, or keep it sensitive"
                ),
            );
        }
    }

    /// A stored value is one per key: every extract of a key keeps it for the run
    /// (`keep: run`), or none does. Reported once per key, where it first differs.
    fn keep_marks(&mut self) {
        let extracts: Vec<&Extract> = self.p.extracts().collect();
        let mut reported = BTreeSet::new();
        for (i, e) in extracts.iter().enumerate() {
            let Some(first) = extracts[..i]
                .iter()
                .find(|o| o.key.v == e.key.v && o.for_run() != e.for_run())
            else {
                continue;
            };
            if !reported.insert(e.key.v.as_str()) {
                continue;
            }
            let k = &e.key.v;
            let (here, there) = if e.for_run() {
                ("for one run here", "in the session")
            } else {
                ("in the session here", "for one run")
            };
            self.err(
                "keep-conflict",
                e.keep.as_ref().map_or(e.key.span, |s| s.span),
                format!(
                    "`{k}` is kept {here}, but {there} at line {}",
                    first.key.span.start.line
                ),
                Some(format!(
                    "a stored value is one per key: write `keep: run` on every extract of `{k}` or on none, or keep the run's value under another key"
                )),
            );
        }
    }

    /// `secrets`: unique names, environment variable names a shell can set.
    fn secret_decls(&mut self) {
        let mut seen: HashMap<&str, Span> = HashMap::new();
        for s in &self.p.secrets {
            if !crate::template::is_key(&s.env.v) {
                self.err(
                    "bad-secret-env",
                    s.env.span,
                    format!("`{}` is not an environment variable name", s.env.v),
                    Some("names are letters, digits and `_`, e.g. `INDEE_API_KEY`".into()),
                );
            }
            if let Some(first) = seen.insert(&s.env.v, s.env.span) {
                self.err(
                    "duplicate-secret-env",
                    s.env.span,
                    format!("`{}` is already read by another secret", s.env.v),
                    Some(format!(
                        "first read at line {}; use one secret for one variable",
                        first.start.line
                    )),
                );
            }
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

    fn request(&mut self, r: &'a Request, env: &Env<'_>) {
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
        if let Some(b) = &r.body {
            templates.extend(b.templates().into_iter().map(|t| (t, false)));
        }
        for (t, in_url) in templates {
            self.template(t, env, in_url);
        }
    }

    /// Checks every placeholder of `t`; `in_url`: it ends up in the URL (path or query).
    fn template(&mut self, t: &'a Template, env: &Env<'_>, in_url: bool) {
        for (v, span) in t.vars() {
            self.var(v, span, env);
            if !in_url {
                continue;
            }
            match v {
                Var::Input(k) if field_type(env, k) == Some(FieldType::Password) => {
                    self.warn(
                        "password-in-url",
                        span,
                        format!("password input `{k}` is sent in the URL"),
                        "URLs end up in logs and proxies; send passwords in the body or a header",
                    );
                }
                Var::Secret(k) => self.warn(
                    "secret-in-url",
                    span,
                    format!("secret `{k}` is sent in the URL"),
                    "URLs end up in logs and proxies; send secrets in a header or the body",
                ),
                _ => {}
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

    fn header(&mut self, h: &'a Header, env: &Env<'_>) {
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
        self.template(&h.value, env, false);
    }

    fn var(&mut self, v: &'a Var, span: Span, env: &Env<'_>) {
        match v {
            Var::Uuid | Var::UtcNow | Var::UtcDate => {}
            Var::RunId => {
                if matches!(env.place, Place::Defaults | Place::Logout | Place::Check) {
                    self.err(
                        "run-id-not-allowed",
                        span,
                        format!("`{{{{run_id}}}}` cannot be used in {}", env.place.name()),
                        Some(if env.place == Place::Defaults {
                            "`defaults.headers` are sent by logout too, which runs outside any flow; set the header on each step".into()
                        } else {
                            "a run id exists only while a flow runs".into()
                        }),
                    );
                }
            }
            Var::Secret(k) => self.secret_var(k, span, env),
            Var::Input(k) => self.input_var(k, span, env),
            Var::Stored(k) => self.stored_var(k, span, env),
        }
    }

    fn secret_var(&mut self, k: &'a str, span: Span, env: &Env<'_>) {
        let names: Vec<&str> = self.p.secrets.iter().map(|s| s.key.v.as_str()).collect();
        if !names.contains(&k) {
            let help = match did_you_mean(k, &names) {
                Some(s) => {
                    // A misspelt use is reported here, not again as an unused secret.
                    if let Some(d) = self.p.secrets.iter().find(|d| d.key.v == s) {
                        self.secrets_used.insert(&d.key.v);
                    }
                    format!("did you mean `{{{{secret.{s}}}}}`?")
                }
                None => format!(
                    "declare it at the top level: `secrets: {{ {k}: {{ env: VARIABLE }} }}`"
                ),
            };
            self.err(
                "undefined-secret",
                span,
                format!("secret `{k}` is not declared"),
                Some(help),
            );
            return;
        }
        self.secrets_used.insert(k);
        if env.place == Place::Display {
            self.err(
                "secret-in-display",
                span,
                format!("`{{{{secret.{k}}}}}` would be shown to the user"),
                Some("secrets are sent to the provider only, never returned".into()),
            );
        }
    }

    fn input_var(&mut self, k: &str, span: Span, env: &Env<'_>) {
        let Some(inputs) = env.inputs else {
            let help = if matches!(env.place, Place::Logout | Place::Check) {
                "it runs without user input, on the session: use `{{stored.K}}` for values extracted at login"
            } else {
                "`defaults.headers` apply to every request; they may use only `{{uuid}}`, `{{utcnow}}`, `{{utcdate}}` and `{{secret.K}}`"
            };
            self.err(
                "input-not-allowed",
                span,
                format!("`{{{{input.{k}}}}}` cannot be used in {}", env.place.name()),
                Some(help.into()),
            );
            return;
        };
        if inputs.contains(k) {
            if env.place == Place::Display && field_type(env, k) == Some(FieldType::Password) {
                self.err(
                    "password-in-display",
                    span,
                    format!("password input `{k}` would be shown to the user"),
                    Some(
                        "a display field's value is returned in the answer; passwords never are"
                            .into(),
                    ),
                );
            }
            return;
        }
        let msg = format!("`{{{{input.{k}}}}}` is not defined at this step");
        let Some((f, i)) = env.flow else {
            self.err("undefined-input", span, msg, None);
            return;
        };
        // `phone_base64` for a base64-transformed `phone`.
        if let Some(base) = k.strip_suffix("_base64") {
            if f.fields()
                .any(|x| x.key.v == base && x.transform == Some(Transform::Base64))
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
        if let Some(d) = f
            .steps
            .iter()
            .flat_map(Step::prompt_fields)
            .find(|x| x.key.v == k && x.is_display())
        {
            self.err(
                "undefined-input",
                span,
                msg,
                Some(format!(
                    "`{k}` is a `{}` field: it is shown to the user, not collected",
                    d.field_type.as_str()
                )),
            );
            return;
        }
        let prompted: Vec<(usize, &Step)> = f
            .steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.prompt_fields().any(|p| p.key.v == k && !p.is_display()))
            .collect();
        if let Some((j, s)) = prompted.first() {
            let help = if prompted.iter().all(|(j, _)| *j >= i) && f.steps[*j].outcomes.len() == 1 {
                format!(
                    "`{k}` is prompted by step {j} (`{}`), so it is available from step {} on",
                    s.name.v,
                    j + 1
                )
            } else {
                format!(
                    "`{k}` is prompted by step {j} (`{}`), but not on every path into this step",
                    s.name.v
                )
            };
            self.err("undefined-input", span, msg, Some(help));
            return;
        }
        let names: Vec<&str> = inputs.iter().map(String::as_str).collect();
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
                format!("`{{{{stored.{k}}}}}` cannot be used in {}", env.place.name()),
                Some("`defaults.headers` apply to every request; they may use only `{{uuid}}`, `{{utcnow}}`, `{{utcdate}}` and `{{secret.K}}`".into()),
            );
            return;
        };
        if stored.contains(k) {
            return;
        }
        let msg = if matches!(env.place, Place::Logout | Place::Check) {
            format!("`{{{{stored.{k}}}}}` is never extracted by any flow of this provider")
        } else {
            format!("`{{{{stored.{k}}}}}` is not defined at this step")
        };
        if let Some((f, i)) = env.flow {
            let extracting: Vec<(usize, &Step)> = f
                .steps
                .iter()
                .enumerate()
                .filter(|(_, s)| s.extracts().any(|e| e.key.v == k))
                .collect();
            let optional_only = f
                .steps
                .iter()
                .flat_map(Step::extracts)
                .filter(|e| e.key.v == k)
                .all(|e| e.optional);
            if let Some((j, s)) = extracting.first() {
                let help = if optional_only {
                    format!("`{k}` is extracted with `optional: true`, so it may be missing; only a value every path certainly keeps can be used")
                } else if *j == i && env.place == Place::Display {
                    format!("`{k}` is extracted by another outcome of this step, not this one")
                } else if extracting.iter().all(|(j, _)| *j >= i) && f.steps[*j].outcomes.len() == 1
                {
                    format!(
                        "`{k}` is extracted by step {j} (`{}`), so it is available from step {} on",
                        s.name.v,
                        j + 1
                    )
                } else {
                    format!(
                        "`{k}` is extracted by step {j} (`{}`), but not on every path into this step",
                        s.name.v
                    )
                };
                self.err("undefined-stored", span, msg, Some(help));
                return;
            }
        }
        if let Some((f, e)) = self.kept_for_run_only(k) {
            let line = e.key.span.start.line;
            let (msg, help) = match env.flow {
                None => (
                    format!("`{{{{stored.{k}}}}}` is kept for one run only, never in the session"),
                    format!(
                        "`{k}` is extracted with `keep: run` (line {line}); {} runs outside any run, on the session: remove `keep: run` to keep it there",
                        env.place.name()
                    ),
                ),
                Some(_) => (
                    format!("`{{{{stored.{k}}}}}` is kept for one run of flow `{}` only, never in the session", f.id.v),
                    format!(
                        "`{k}` is extracted with `keep: run` (line {line}); remove it to keep `{k}` in the session, or extract `{k}` in an earlier step of this flow"
                    ),
                ),
            };
            self.err("kept-for-run", span, msg, Some(help));
            return;
        }
        let names: Vec<&str> = stored.iter().map(String::as_str).collect();
        let help = match did_you_mean(k, &names) {
            Some(s) => format!("did you mean `{{{{stored.{s}}}}}`?"),
            None => "extract it in an earlier step with `on_success.extract`".into(),
        };
        self.err("undefined-stored", span, msg, Some(help));
    }

    /// The flow and extract that keep `k` for one run, when no extract of the provider keeps
    /// it in the session.
    fn kept_for_run_only(&self, k: &str) -> Option<(&'a Flow, &'a Extract)> {
        let e = self.p.kept_for_run_only(k)?;
        let f = self.p.flows.iter().find(|f| {
            f.steps
                .iter()
                .flat_map(Step::extracts)
                .any(|x| std::ptr::eq(x, e))
        })?;
        Some((f, e))
    }

    /// A JSONPath must parse (with the same parser the runtime uses).
    fn jsonpath(&mut self, path: &S<String>) {
        if let Err(err) = jsonpath_rust::parser::parse_json_path(&path.v) {
            self.err(
                "bad-jsonpath",
                path.span,
                format!("`{}` is not a valid JSONPath", path.v),
                Some(format!(
                    "{}; paths look like `$.data.access_token`",
                    short(&err.to_string())
                )),
            );
        }
    }
}

/// Every key `steps` keep in the session (extracted without `keep: run`).
fn kept_in_session<'s>(steps: impl Iterator<Item = &'s Step>) -> BTreeSet<String> {
    steps
        .flat_map(Step::extracts)
        .filter(|e| !e.for_run())
        .map(|e| e.key.v.clone())
        .collect()
}

/// Every template of a request.
pub fn request_templates(r: &Request) -> impl Iterator<Item = &Template> {
    std::iter::once(&r.path)
        .chain(r.params.iter().map(|p| &p.value))
        .chain(r.headers.iter().map(|h| &h.value))
        .chain(r.body.iter().flat_map(Body::templates))
}

/// The type of the field a flow input or prompt key names, if the flow has one.
fn field_type(env: &Env<'_>, key: &str) -> Option<FieldType> {
    let (f, _) = env.flow?;
    f.fields().find(|x| x.key.v == key).map(|x| x.field_type)
}

fn short(s: &str) -> String {
    let first = s.lines().next().unwrap_or(s);
    first.chars().take(120).collect()
}
