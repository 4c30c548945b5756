//! `otvi-codegen explain`: an audit report of a provider file, read from the checked model.
//!
//! For every request a flow (or the logout) can send: its method and destination, and for each
//! user input, secret and stored value exactly where it goes (a JSON body field, a form field, a
//! query parameter, a path segment, a header); for each outcome what is kept from the answer,
//! and for each way the step can fail the text the user sees. Then, per sensitive value (as
//! `check::sensitive` decides: secrets, passwords, codes, what is kept from the provider's
//! answer), every place it is sent, and a warning when an input or a secret goes to a host
//! other than the provider's base URL host.

use crate::check::sensitive::{self, Sensitivity};
use crate::model::{
    Body, BodyEncoding, Cond, FailureText, Flow, JsonValue, Piece, Provider, Request, Source,
    StatusSet, Step, StepRef, Template, Then, Var,
};
use serde::Serialize;
use std::fmt::Write as _;

/// The report of one provider file.
#[derive(Debug, Serialize)]
pub struct Report {
    pub provider: String,
    pub base_url: Option<String>,
    pub flows: Vec<FlowReport>,
    pub logout: Option<RequestReport>,
    /// `auth.check`: how `check` asks the provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckReport>,
    /// Per sensitive value: every place it is sent.
    pub sensitive: Vec<Sensitive>,
    pub warnings: Vec<String>,
}

/// `auth.check`: the request, what each answer says, and the cache lifetime.
#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub request: RequestReport,
    /// Per outcome: when it is chosen, and whether it says the session is valid.
    pub outcomes: Vec<(String, bool)>,
    pub cache_secs: u64,
    /// The answer when the provider cannot say.
    pub unreachable_valid: bool,
}

#[derive(Debug, Serialize)]
pub struct FlowReport {
    pub id: String,
    pub name: String,
    pub steps: Vec<StepReport>,
}

#[derive(Debug, Serialize)]
pub struct StepReport {
    pub index: usize,
    pub name: String,
    pub request: RequestReport,
    pub outcomes: Vec<OutcomeReport>,
    /// When an answer matches none of the outcomes (the step fails): the text the user sees.
    /// `None`: the last outcome takes every answer.
    pub no_match: Option<Vec<ErrorText>>,
}

#[derive(Debug, Serialize)]
pub struct RequestReport {
    pub method: String,
    /// The URL with its placeholders, as written (base URL joined), and its query parameters
    /// (`params`) appended, their fixed text encoded as the server sends it.
    pub url: String,
    pub scheme: String,
    pub host: String,
    /// The URL's path, without the query.
    pub path: String,
    /// Every value the request carries, and where.
    pub sends: Vec<Use>,
}

/// One value in one place of a request.
#[derive(Debug, Serialize, Clone)]
pub struct Use {
    /// `input.password`, `secret.api_key`, `stored.access_token`, `uuid`, …
    pub value: String,
    /// `json`, `form`, `body`, `query`, `path`, `header`.
    pub place: String,
    /// The JSON path, form field, parameter or header name (`None` for the path and raw bodies).
    pub name: Option<String>,
    pub sensitive: bool,
    /// Why it is sensitive (`check::sensitive`'s rule), in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

impl Use {
    fn describe(&self) -> String {
        match (self.place.as_str(), &self.name) {
            ("json", Some(n)) => format!("JSON body field `{n}`"),
            ("form", Some(n)) => format!("form field `{n}`"),
            ("query", Some(n)) => format!("query parameter `{n}`"),
            ("header", Some(n)) => format!("header `{n}`"),
            ("path", _) => "URL path".into(),
            (_, _) => "body".into(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct OutcomeReport {
    /// When it is chosen: `status 2xx and $.x == "y"`, or `otherwise`.
    pub when: String,
    /// What it leads to: `step N (name)`, `complete`, `fail`.
    pub then: String,
    /// Response values kept.
    pub keeps: Vec<Keep>,
    /// Fields asked of the user next.
    pub prompts: Vec<String>,
    /// A failing outcome: where the text the user sees in `error` comes from, in the order
    /// tried (the first that has text is shown).
    pub error: Option<Vec<ErrorText>>,
    /// An outcome that prompts with a `message`: shown in `error` beside `next_step`; with
    /// `message_from`, the text shown when the provider's has none.
    pub message: Option<String>,
    /// `message: { from }`: the JSONPath of the provider's text shown beside `next_step`
    /// (control characters removed, at most 200 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_from: Option<String>,
}

/// One place the text of a failed step may come from; a list of them is tried in order, as
/// the server does (`FailureText`, the model's rule).
#[derive(Debug, Serialize, Clone, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum ErrorText {
    /// The provider's text at this JSONPath, when it is a string (control characters removed,
    /// at most 200 characters).
    ProviderText(String),
    /// This message, as written.
    Message(String),
    /// `the provider answered HTTP N`: the answer's status, or `N` when it may be several.
    Status(String),
}

impl ErrorText {
    fn describe(list: &[ErrorText]) -> String {
        list.iter()
            .map(|t| match t {
                ErrorText::ProviderText(p) => format!("the provider's text at `{p}`"),
                ErrorText::Message(m) | ErrorText::Status(m) => format!("{m:?}"),
            })
            .collect::<Vec<_>>()
            .join(", else ")
    }
}

/// The error texts of `step` failing under `fail` (`None`: no outcome matched); `status`: the
/// one status the answer can have there, if the conditions say so.
fn error_texts(
    step: &Step,
    fail: Option<&crate::model::Fail>,
    status: Option<u16>,
) -> Vec<ErrorText> {
    step.failure_texts(fail)
        .into_iter()
        .map(|t| match t {
            FailureText::Provider(p) => ErrorText::ProviderText(p.v.clone()),
            FailureText::Message(m) => ErrorText::Message(m.v.clone()),
            FailureText::Status => ErrorText::Status(format!(
                "the provider answered HTTP {}",
                status.map_or_else(|| "N".to_string(), |s| s.to_string())
            )),
        })
        .collect()
}

/// The one status `conds` allow, if they name exactly one.
fn single_status(conds: &[Cond]) -> Option<u16> {
    conds.iter().find_map(|c| match c {
        Cond::Status(s) => match &s.v {
            StatusSet::AnyOf(v) if v.len() == 1 => Some(v[0]),
            _ => None,
        },
        Cond::Json { .. } => None,
    })
}

/// One value an outcome keeps from the answer.
#[derive(Debug, Serialize)]
pub struct Keep {
    pub key: String,
    /// Where from: `body $.token`, `cookie `tn_session``, …
    pub from: String,
    /// A miss keeps nothing (instead of failing the step).
    pub optional: bool,
    /// What this extract keeps is sensitive (`check::sensitive::extract`).
    pub sensitive: bool,
    /// `keep: run`: kept for the rest of the run only, never written into the session.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub for_run: bool,
}

#[derive(Debug, Serialize)]
pub struct Sensitive {
    pub value: String,
    /// Why it is sensitive, in words.
    pub why: String,
    /// `METHOD URL, place` for each place it is sent.
    pub sent_to: Vec<String>,
}

/// The report of a checked provider.
pub fn explain(p: &Provider) -> Report {
    let base = p.base_url.as_ref().map(|b| b.v.clone());
    let sensitivity = Sensitivity::of(p);
    let request = |flow: Option<usize>, r: &Request| {
        describe_request(p, base.as_deref(), r, &|v: &Var| sensitivity.var(flow, v))
    };
    let flows: Vec<FlowReport> = p
        .flows
        .iter()
        .enumerate()
        .map(|(fi, f)| FlowReport {
            id: f.id.v.clone(),
            name: f.name.v.clone(),
            steps: f
                .steps
                .iter()
                .enumerate()
                .map(|(i, s)| StepReport {
                    index: i,
                    name: s.name.v.clone(),
                    request: request(Some(fi), &s.request),
                    outcomes: s
                        .outcomes
                        .iter()
                        .map(|o| OutcomeReport {
                            when: when(&o.when),
                            then: then(f, i, &o.then),
                            keeps: o
                                .extract
                                .iter()
                                .map(|e| Keep {
                                    key: e.key.v.clone(),
                                    from: source(&e.source),
                                    optional: e.optional,
                                    sensitive: sensitive::extract(e).is_some(),
                                    for_run: e.for_run(),
                                })
                                .collect(),
                            prompts: o
                                .prompt
                                .iter()
                                .flat_map(|p| p.fields.iter())
                                .map(|f| format!("{} ({})", f.key.v, f.field_type.as_str()))
                                .collect(),
                            error: match &o.then {
                                Then::Fail(fl) => {
                                    Some(error_texts(s, Some(fl), single_status(&o.when)))
                                }
                                _ => None,
                            },
                            message: o
                                .message
                                .as_ref()
                                .and_then(|m| m.text.as_ref())
                                .map(|t| t.v.clone()),
                            message_from: o
                                .message
                                .as_ref()
                                .and_then(|m| m.from.as_ref())
                                .map(|p| p.v.clone()),
                        })
                        .collect(),
                    no_match: s.may_match_nothing().then(|| error_texts(s, None, None)),
                })
                .collect(),
        })
        .collect();
    let logout = p.logout.as_ref().map(|r| request(None, r));
    let check = p.check.as_ref().map(|c| CheckReport {
        request: request(None, &c.step().request),
        outcomes: c
            .step()
            .outcomes
            .iter()
            .map(|o| (when(&o.when), matches!(o.then, Then::Complete(_))))
            .collect(),
        cache_secs: c.cache.v,
        unreachable_valid: c.unreachable_valid(),
    });

    // Every place each sensitive value goes.
    let mut sensitive: Vec<Sensitive> = Vec::new();
    let mut warnings = Vec::new();
    let home = base.as_deref().and_then(host_of);
    let all = flows
        .iter()
        .flat_map(|f| f.steps.iter().map(|s| &s.request))
        .chain(logout.iter())
        .chain(check.iter().map(|c| &c.request));
    for r in all {
        for u in r.sends.iter().filter(|u| u.sensitive) {
            let at = format!("{} {}, {}", r.method, r.url, u.describe());
            match sensitive.iter_mut().find(|s| s.value == u.value) {
                Some(s) => {
                    if !s.sent_to.contains(&at) {
                        s.sent_to.push(at);
                    }
                }
                None => sensitive.push(Sensitive {
                    value: u.value.clone(),
                    why: u.why.clone().unwrap_or_default(),
                    sent_to: vec![at],
                }),
            }
            let secretive = u.value.starts_with("secret.") || u.value.starts_with("input.");
            if secretive && home.as_deref().is_some_and(|h| h != r.host) {
                let w = format!(
                    "`{}` goes to {} ({}), not the provider's host {}",
                    u.value,
                    r.host,
                    u.describe(),
                    home.as_deref().unwrap_or("?")
                );
                if !warnings.contains(&w) {
                    warnings.push(w);
                }
            }
        }
    }
    Report {
        provider: p.id.v.clone(),
        base_url: base,
        flows,
        logout,
        check,
        sensitive,
        warnings,
    }
}

fn host_of(url: &str) -> Option<String> {
    url::Url::parse(url).ok()?.host_str().map(str::to_owned)
}

/// The template's text with `{{…}}` placeholders as written.
fn text(t: &Template) -> String {
    t.pieces
        .iter()
        .map(|p| match p {
            Piece::Lit(l) => l.clone(),
            Piece::Var(v, _) => v.display(),
        })
        .collect()
}

/// A query parameter's value: its fixed text form-encoded as the server sends it, its
/// placeholders as written.
fn query_text(t: &Template) -> String {
    t.pieces
        .iter()
        .map(|p| match p {
            Piece::Lit(l) => url::form_urlencoded::byte_serialize(l.as_bytes()).collect(),
            Piece::Var(v, _) => v.display(),
        })
        .collect()
}

fn var_name(v: &Var) -> String {
    let d = v.display();
    d.trim_start_matches("{{")
        .trim_end_matches("}}")
        .to_string()
}

fn describe_request(
    p: &Provider,
    base: Option<&str>,
    r: &Request,
    sensitive: &dyn Fn(&Var) -> Option<sensitive::Reason>,
) -> RequestReport {
    let path = text(&r.path);
    let mut url = if path.starts_with('/') {
        format!("{}{path}", base.unwrap_or("").trim_end_matches('/'))
    } else {
        path.clone()
    };
    // Placeholders in the host part would not parse: split by hand.
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url.as_str()));
    let (host_port, url_path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (scheme, url_path) = (scheme.to_string(), url_path.to_string());
    let host = host_port.rsplit('@').next().unwrap_or(host_port);
    let host = host.split(':').next().unwrap_or(host).to_string();
    for (i, q) in r.params.iter().enumerate() {
        let first = i == 0 && !url.contains('?');
        url.push(if first { '?' } else { '&' });
        url.extend(url::form_urlencoded::byte_serialize(q.name.v.as_bytes()));
        url.push('=');
        url.push_str(&query_text(&q.value));
    }
    let mut sends = Vec::new();
    let mut add = |v: &Var, place: &str, name: Option<String>| {
        if matches!(v, Var::Input(_) | Var::Secret(_) | Var::Stored(_)) {
            let why = sensitive(v);
            let u = Use {
                value: var_name(v),
                place: place.into(),
                name,
                sensitive: why.is_some(),
                why: why.map(|w| w.describe().to_string()),
            };
            if !sends
                .iter()
                .any(|s: &Use| s.value == u.value && s.place == u.place && s.name == u.name)
            {
                sends.push(u);
            }
        }
    };
    for (v, _) in r.path.vars() {
        add(v, "path", None);
    }
    for q in &r.params {
        for (v, _) in q.value.vars() {
            add(v, "query", Some(q.name.v.clone()));
        }
    }
    for h in p.headers.iter().chain(&r.headers) {
        for (v, _) in h.value.vars() {
            add(v, "header", Some(h.name.v.clone()));
        }
    }
    if let Some(b) = &r.body {
        for (v, place, name) in body_uses(b) {
            add(&v, place, name);
        }
    }
    RequestReport {
        method: r.method.v.as_str().into(),
        url,
        scheme,
        host,
        path: url_path,
        sends,
    }
}

/// Where each placeholder of a body lands: a JSON field (as a JSONPath) or a form field.
fn body_uses(b: &Body) -> Vec<(Var, &'static str, Option<String>)> {
    let (encoding, template) = match b {
        Body::Text { encoding, template } => (*encoding, template),
        Body::Json(v) => {
            let mut out = Vec::new();
            json_uses(v, "$".into(), &mut out);
            return out;
        }
    };
    let vars: Vec<&Var> = template.vars().map(|(v, _)| v).collect();
    // Each placeholder becomes a marker no body contains; parse; find the markers.
    let marker = |i: usize| format!("\u{E000}{i}\u{E001}");
    let mut marked = String::new();
    let mut i = 0;
    for piece in &template.pieces {
        match piece {
            Piece::Lit(l) => marked.push_str(l),
            Piece::Var(..) => {
                marked.push_str(&marker(i));
                i += 1;
            }
        }
    }
    let mut found: Vec<(usize, String)> = Vec::new();
    match encoding {
        BodyEncoding::Json => {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&marked) {
                walk(&v, "$".into(), &mut |path, s| {
                    for (j, _) in vars.iter().enumerate() {
                        if s.contains(&marker(j)) {
                            found.push((j, path.to_string()));
                        }
                    }
                });
            }
        }
        BodyEncoding::Form => {
            for pair in marked.split('&') {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                for (j, _) in vars.iter().enumerate() {
                    if v.contains(&marker(j)) || k.contains(&marker(j)) {
                        found.push((j, k.to_string()));
                    }
                }
            }
        }
    }
    let place = match encoding {
        BodyEncoding::Json => "json",
        BodyEncoding::Form => "form",
    };
    vars.iter()
        .enumerate()
        .flat_map(|(j, v)| {
            let names: Vec<Option<String>> = found
                .iter()
                .filter(|(k, _)| *k == j)
                .map(|(_, n)| Some(n.clone()))
                .collect();
            if names.is_empty() {
                vec![((*v).clone(), "body", None)]
            } else {
                names
                    .into_iter()
                    .map(|n| ((*v).clone(), place, n))
                    .collect()
            }
        })
        .collect()
}

fn walk(v: &serde_json::Value, path: String, f: &mut dyn FnMut(&str, &str)) {
    match v {
        serde_json::Value::String(s) => f(&path, s),
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                walk(x, format!("{path}[{i}]"), f);
            }
        }
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                walk(x, member(&path, k), f);
            }
        }
        _ => {}
    }
}

/// Where each placeholder of a `json:` body lands, as a JSONPath.
fn json_uses(v: &JsonValue, path: String, out: &mut Vec<(Var, &'static str, Option<String>)>) {
    match v {
        JsonValue::Literal(..) => {}
        JsonValue::Text(t) => {
            for (var, _) in t.vars() {
                out.push((var.clone(), "json", Some(path.clone())));
            }
        }
        JsonValue::Array(items, _) => {
            for (i, x) in items.iter().enumerate() {
                json_uses(x, format!("{path}[{i}]"), out);
            }
        }
        JsonValue::Object(fields, _) => {
            for (k, x) in fields {
                json_uses(x, member(&path, &k.v), out);
            }
        }
    }
}

/// The JSONPath of member `k` of the value at `path`.
fn member(path: &str, k: &str) -> String {
    let simple = !k.is_empty()
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !k.starts_with(|c: char| c.is_ascii_digit());
    if simple {
        format!("{path}.{k}")
    } else {
        format!("{path}[{k:?}]")
    }
}

fn when(conds: &[Cond]) -> String {
    if conds.is_empty() {
        return "otherwise".into();
    }
    conds
        .iter()
        .map(|c| match c {
            Cond::Status(s) => match &s.v {
                StatusSet::Success => "status 2xx".to_string(),
                StatusSet::AnyOf(v) => format!(
                    "status {}",
                    v.iter().map(u16::to_string).collect::<Vec<_>>().join("|")
                ),
            },
            Cond::Json { path, expected } => {
                format!("{} == {}", path.v, expected.v.display())
            }
        })
        .collect::<Vec<_>>()
        .join(" and ")
}

fn then(f: &Flow, i: usize, t: &Then) -> String {
    let step = |n: usize| {
        f.steps
            .get(n)
            .map_or(format!("step {n}"), |s| format!("step {n} ({})", s.name.v))
    };
    match t {
        Then::Continue(None) if i + 1 >= f.steps.len() => "complete (the session is stored)".into(),
        Then::Continue(None) => step(i + 1),
        Then::Continue(Some(r)) => match &r.v {
            StepRef::Index(n) => step(*n),
            StepRef::Id(id) => f
                .steps
                .iter()
                .position(|s| s.id.as_ref().is_some_and(|x| &x.v == id))
                .map_or(format!("step `{id}`"), step),
        },
        Then::Complete(_) => "complete (the session is stored)".into(),
        Then::Fail(fl) => {
            if fl.clear_session {
                "fail (the stored session is cleared)".into()
            } else {
                "fail".into()
            }
        }
    }
}

fn source(s: &Source) -> String {
    match s {
        Source::Path { path, all } => {
            if *all {
                format!("body {}, every match", path.v)
            } else {
                format!("body {}", path.v)
            }
        }
        Source::Header(h) => format!("header `{}`", h.v),
        Source::Cookie(c) => format!("cookie `{}`", c.v),
        Source::Status => "the status code".into(),
    }
}

impl Report {
    /// Plain text for a reviewer.
    pub fn human(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "provider `{}` (base URL {})",
            self.provider,
            self.base_url.as_deref().unwrap_or("none")
        );
        let req = |o: &mut String, r: &RequestReport| {
            let _ = writeln!(o, "    {} {}", r.method, r.url);
            for u in &r.sends {
                let _ = writeln!(
                    o,
                    "      sends {}{} in the {}",
                    u.value,
                    if u.sensitive { " (sensitive)" } else { "" },
                    u.describe()
                );
            }
        };
        for f in &self.flows {
            let _ = writeln!(o, "\nflow `{}` ({})", f.id, f.name);
            for s in &f.steps {
                let _ = writeln!(o, "  step {} `{}`", s.index, s.name);
                req(&mut o, &s.request);
                for out in &s.outcomes {
                    let _ = writeln!(o, "    when {} -> {}", out.when, out.then);
                    for k in &out.keeps {
                        let notes: Vec<&str> = [
                            (k.optional, "optional"),
                            (k.sensitive, "sensitive"),
                            (k.for_run, "for this run only, never in the session"),
                        ]
                        .into_iter()
                        .filter_map(|(on, note)| on.then_some(note))
                        .collect();
                        let _ = write!(o, "      keeps {} from {}", k.key, k.from);
                        let _ = if notes.is_empty() {
                            writeln!(o)
                        } else {
                            writeln!(o, " ({})", notes.join(", "))
                        };
                    }
                    if !out.prompts.is_empty() {
                        let _ = writeln!(o, "      asks for {}", out.prompts.join(", "));
                    }
                    match (&out.message_from, &out.message) {
                        (Some(p), Some(m)) => writeln!(
                            o,
                            "      says the provider's text at `{p}`, else {m:?}, beside the prompt"
                        ),
                        (Some(p), None) => writeln!(
                            o,
                            "      says the provider's text at `{p}` (if any) beside the prompt"
                        ),
                        (None, Some(m)) => writeln!(o, "      says {m:?} beside the prompt"),
                        (None, None) => Ok(()),
                    }
                    .ok();
                    if let Some(e) = &out.error {
                        let _ = writeln!(o, "      error: {}", ErrorText::describe(e));
                    }
                }
                if let Some(e) = &s.no_match {
                    let _ = writeln!(o, "    when no outcome above matches -> fail");
                    let _ = writeln!(o, "      error: {}", ErrorText::describe(e));
                }
            }
        }
        if let Some(l) = &self.logout {
            let _ = writeln!(o, "\nlogout");
            req(&mut o, l);
        }
        if let Some(c) = &self.check {
            let _ = writeln!(
                o,
                "\ncheck (a valid answer is reused for {}s)",
                c.cache_secs
            );
            req(&mut o, &c.request);
            for (when, valid) in &c.outcomes {
                let _ = writeln!(
                    o,
                    "    when {when} -> {}",
                    if *valid {
                        "valid"
                    } else {
                        "invalid (the stored session is cleared)"
                    }
                );
            }
            let _ = writeln!(
                o,
                "    when the provider cannot say -> {} (the session is kept)",
                if c.unreachable_valid {
                    "valid"
                } else {
                    "invalid"
                }
            );
        }
        let _ = writeln!(o, "\nsensitive values");
        if self.sensitive.is_empty() {
            let _ = writeln!(o, "  none is sent");
        }
        for s in &self.sensitive {
            let _ = writeln!(
                o,
                "  `{}` ({}) -> {}; nowhere else",
                s.value,
                s.why,
                s.sent_to.join("; ")
            );
        }
        for w in &self.warnings {
            let _ = writeln!(o, "\nwarning: {w}");
        }
        o
    }

    /// A Mermaid flowchart of each flow's steps and outcomes.
    pub fn mermaid(&self) -> String {
        let mut o = String::from("flowchart TD\n");
        let id = |f: &str, i: usize| {
            format!(
                "{}_{}",
                f.chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect::<String>(),
                i
            )
        };
        let quote = |s: &str| s.replace('"', "#quot;");
        for f in &self.flows {
            let _ = writeln!(
                o,
                "  subgraph {}[\"flow {}\"]",
                id(&f.id, 999),
                quote(&f.name)
            );
            for s in &f.steps {
                let _ = writeln!(
                    o,
                    "    {}[\"{}<br/>{} {}\"]",
                    id(&f.id, s.index),
                    quote(&s.name),
                    s.request.method,
                    quote(&s.request.path)
                );
            }
            let done = format!("{}_done", id(&f.id, 0));
            let fail = format!("{}_fail", id(&f.id, 0));
            let _ = writeln!(o, "    {done}([complete])");
            let _ = writeln!(o, "    {fail}([fail])");
            for s in &f.steps {
                for out in &s.outcomes {
                    let target = if out.then.starts_with("complete") {
                        done.clone()
                    } else if out.then.starts_with("fail") {
                        fail.clone()
                    } else {
                        out.then
                            .strip_prefix("step ")
                            .and_then(|r| r.split(' ').next())
                            .and_then(|n| n.parse::<usize>().ok())
                            .map_or(fail.clone(), |n| id(&f.id, n))
                    };
                    let _ = writeln!(
                        o,
                        "    {} -->|\"{}\"| {target}",
                        id(&f.id, s.index),
                        quote(&out.when)
                    );
                }
                if s.no_match.is_some() {
                    let _ = writeln!(o, "    {} -->|\"no match\"| {fail}", id(&f.id, s.index));
                }
            }
            let _ = writeln!(o, "  end");
        }
        o
    }
}
