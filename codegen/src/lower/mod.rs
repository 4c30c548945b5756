//! Lowering a YAML tree into the language model: shapes, types, known keys, templates.
//!
//! Every key a level accepts is listed once here (`keys::…`); the JSON Schema is built from the
//! same lists, so the two cannot disagree. Steps, outcomes, conditions and extract sources are
//! lowered in `step`.

mod check;
mod sample;
mod step;

use crate::diag::{did_you_mean, Diagnostic, Span};
use crate::model::*;
use crate::template;
use crate::yaml::{Kind, Node};
use saphyr_parser::ScalarStyle;

/// The keys each level of a provider file accepts.
pub mod keys {
    pub const TOP: &[&str] = &["provider", "defaults", "auth", "secrets"];
    /// Sections of the older interpreter's format, accepted and ignored with a warning.
    pub const IGNORED_TOP: &[&str] = &["channels", "playback"];
    pub const PROVIDER: &[&str] = &["id", "name", "logo"];
    pub const DEFAULTS: &[&str] = &["base_url", "headers"];
    pub const AUTH: &[&str] = &["scope", "flows", "logout", "check"];
    /// `auth.check`: the provider's word on a stored session.
    pub const CHECK: &[&str] = &["request", "outcomes", "cache", "unreachable", "samples"];
    pub const CHECK_OUTCOME: &[&str] = &["when", "valid", "samples"];
    pub const FLOW: &[&str] = &["id", "name", "inputs", "steps"];
    pub const FIELD: &[&str] = &[
        "key",
        "label",
        "type",
        "required",
        "transform",
        "value",
        "sensitive",
        "options",
    ];
    /// `options` of a `choice` field.
    pub const OPTIONS: &[&str] = &["values", "labels"];
    pub const STEP: &[&str] = &[
        "id",
        "name",
        "request",
        "success_status",
        "success_when",
        "error_message",
        "on_success",
        "outcomes",
        "samples",
    ];
    /// The keys of the `on_success` form, which `outcomes` replaces.
    pub const SUCCESS_FORM: &[&str] = &["on_success", "success_status", "success_when"];
    pub const ON_SUCCESS: &[&str] = &["extract", "prompt", "samples"];
    pub const OUTCOME: &[&str] = &[
        "when", "extract", "prompt", "next", "complete", "fail", "message", "samples",
    ];
    /// A recorded response: `body` (any YAML value) or `file` (JSON), not both.
    pub const SAMPLE: &[&str] = &["name", "status", "headers", "body", "file"];
    pub const FAIL: &[&str] = &["from", "message", "clear_session"];
    /// `message` written as a mapping: the provider's text, and the text shown without it.
    pub const MESSAGE: &[&str] = &["from", "fallback"];
    /// An extract written as a mapping; exactly one of `SOURCES` is its source.
    pub const EXTRACT: &[&str] = &[
        "path",
        "optional",
        "all",
        "header",
        "cookie",
        "status",
        "sensitive",
        "keep",
    ];
    pub const SOURCES: &[&str] = &["path", "header", "cookie", "status"];
    pub const SECRET: &[&str] = &["env"];
    pub const REQUEST: &[&str] = &[
        "method",
        "path",
        "headers",
        "params",
        "body",
        "body_encoding",
        "json",
    ];
    pub const LOGOUT: &[&str] = &["request", "on_relogin"];
}

/// The seed's advice for `auth.refresh`, shown wherever it appears.
pub const REFRESH_HELP: &str = "auth.refresh is not implemented by the runtime: model token rotation explicitly inside a normal auth flow and store any replacement tokens with `on_success.extract`";

/// Most steps a provider may have across all its flows. Real providers have a handful; the cap
/// bounds the work of checking (each step's defined values) and of emitting (about 2 KB of Rust
/// a step), which aliases could otherwise multiply from a small file.
pub const MAX_STEPS: usize = 128;

#[derive(Default)]
pub struct Lower {
    pub diags: Vec<Diagnostic>,
    /// Steps lowered so far, against `MAX_STEPS`.
    steps: usize,
    /// The directory `file:` samples are read from (the provider file's); `None`: the current
    /// directory.
    pub sample_dir: Option<std::path::PathBuf>,
    /// The sample files read, so that a build can rerun when one changes.
    pub sample_files: Vec<std::path::PathBuf>,
}

/// A mapping whose keys have been checked against the level's known keys.
struct Map<'n> {
    node: &'n Node,
    entries: Vec<(&'n Node, &'n Node)>,
}

impl<'n> Map<'n> {
    fn get(&self, key: &str) -> Option<&'n Node> {
        self.entry(key).map(|(_, v)| v)
    }
    /// The key node and the value node.
    fn entry(&self, key: &str) -> Option<(&'n Node, &'n Node)> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .copied()
    }
}

/// "a `link`", "an `info`": a field type with its article.
fn a_type(t: FieldType) -> String {
    let name = t.as_str();
    let article = if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} `{name}`")
}

/// The span to point at for a whole mapping: its first line only.
fn head(node: &Node) -> Span {
    Span::point(node.span.start)
}

impl Lower {
    fn err(&mut self, code: &'static str, span: Span, msg: impl Into<String>) -> &mut Diagnostic {
        self.diags.push(Diagnostic::error(code, span, msg));
        self.diags.last_mut().expect("just pushed")
    }

    /// The entries of an optional mapping (`null`: none); anything else is a `wrong-type`
    /// error: "{what} must be a mapping{shape}".
    fn entries<'n>(&mut self, node: &'n Node, what: &str, shape: &str) -> &'n [(Node, Node)] {
        match &node.kind {
            Kind::Map(entries) => entries,
            _ => {
                if !node.is_null() {
                    self.err(
                        "wrong-type",
                        node.span,
                        format!("{what} must be a mapping{shape}, found {}", node.describe()),
                    );
                }
                &[]
            }
        }
    }

    fn map<'n>(&mut self, node: &'n Node, what: &str, known: &[&str]) -> Option<Map<'n>> {
        self.map_with(node, what, known, &[])
    }

    /// `map`, where the keys `unlisted` are kept too but never offered in a hint: keys that
    /// have an error of their own (`auth.refresh`), so suggesting them would only lead the
    /// author into it.
    fn map_with<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
        known: &[&str],
        unlisted: &[&str],
    ) -> Option<Map<'n>> {
        let Kind::Map(entries) = &node.kind else {
            self.err(
                "wrong-type",
                node.span,
                format!("{what} must be a mapping, found {}", node.describe()),
            );
            return None;
        };
        let mut kept = Vec::new();
        for (k, v) in entries {
            let name = k.as_str().unwrap_or_default();
            if known.contains(&name) || unlisted.contains(&name) {
                kept.push((k, v));
                continue;
            }
            let d = self.err(
                "unknown-key",
                k.span,
                format!("unknown key `{name}` in {what}"),
            );
            d.help = Some(match did_you_mean(name, known) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("{what} accepts: {}", known.join(", ")),
            });
        }
        Some(Map {
            node,
            entries: kept,
        })
    }

    fn list<'n>(&mut self, node: &'n Node, what: &str) -> &'n [Node] {
        match &node.kind {
            Kind::Seq(items) => items,
            _ if node.is_null() => &[],
            _ => {
                self.err(
                    "wrong-type",
                    node.span,
                    format!("{what} must be a list, found {}", node.describe()),
                );
                &[]
            }
        }
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<S<String>> {
        match &node.kind {
            Kind::Scalar(s, _) if !node.is_null() => Some(S {
                v: s.clone(),
                span: node.span,
            }),
            _ => {
                self.err(
                    "wrong-type",
                    node.span,
                    format!("{what} must be a string, found {}", node.describe()),
                );
                None
            }
        }
    }

    fn required<'n>(&mut self, m: &Map<'n>, key: &str, what: &str) -> Option<&'n Node> {
        let v = m.get(key);
        if v.is_none() {
            self.err(
                "missing-key",
                head(m.node),
                format!("{what} is missing the required key `{key}`"),
            );
        }
        v
    }

    /// A required string; when missing or malformed (already reported) an empty one, so that
    /// checking goes on and every error of the file is reported in one run.
    fn req_string(&mut self, m: &Map<'_>, key: &str, what: &str) -> S<String> {
        let fallback = S {
            v: String::new(),
            span: head(m.node),
        };
        match self.required(m, key, what) {
            Some(n) => self.string(n, &format!("`{key}`")).unwrap_or(fallback),
            None => fallback,
        }
    }

    fn opt_string(&mut self, m: &Map<'_>, key: &str) -> Option<S<String>> {
        let n = m.get(key)?;
        self.string(n, &format!("`{key}`"))
    }

    fn boolean(&mut self, node: &Node, what: &str) -> Option<bool> {
        match &node.kind {
            Kind::Scalar(s, ScalarStyle::Plain) => match s.as_str() {
                "true" | "True" | "TRUE" => Some(true),
                "false" | "False" | "FALSE" => Some(false),
                _ => {
                    self.err(
                        "wrong-type",
                        node.span,
                        format!("{what} must be true or false"),
                    );
                    None
                }
            },
            _ => {
                self.err(
                    "wrong-type",
                    node.span,
                    format!("{what} must be true or false"),
                );
                None
            }
        }
    }

    /// A scalar that must be one of `choices`.
    fn choice<T: Copy>(&mut self, node: &Node, what: &str, choices: &[(&str, T)]) -> Option<T> {
        let s = self.string(node, what)?;
        if let Some((_, t)) = choices.iter().find(|(n, _)| *n == s.v) {
            return Some(*t);
        }
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        let d = self.err(
            "bad-value",
            node.span,
            format!("`{}` is not a valid {what}", s.v),
        );
        d.help = Some(match did_you_mean(&s.v, &names) {
            Some(n) => format!("did you mean `{n}`?"),
            None => format!("expected one of: {}", names.join(", ")),
        });
        None
    }

    fn template(&mut self, node: &Node, what: &str) -> Option<Template> {
        let s = self.string(node, what)?;
        Some(template::parse(&s.v, node, &mut self.diags))
    }

    /// Lowers a whole file. Returns `None` when the top level is unusable.
    pub fn provider(&mut self, root: &Node) -> Option<Provider> {
        let Kind::Map(entries) = &root.kind else {
            self.err(
                "wrong-type",
                head(root),
                format!(
                    "a provider file must be a mapping with `provider`, `defaults` and `auth`; found {}",
                    root.describe()
                ),
            );
            return None;
        };
        for (k, _) in entries {
            match k.as_str() {
                Some(name) if keys::IGNORED_TOP.contains(&name) => self.diags.push(
                    Diagnostic::warning(
                        "ignored-section",
                        k.span,
                        format!("the `{name}` section is ignored: this server handles authentication only"),
                    )
                    .with_help("remove it, or keep it for the older interpreter; --deny-warnings makes this an error"),
                ),
                _ => {}
            }
        }
        let all: Vec<&str> = keys::TOP.iter().chain(keys::IGNORED_TOP).copied().collect();
        let top = self.map(root, "the provider file", &all)?;

        let (mut id, mut name, mut logo) = (None, None, None);
        if let Some(p) = self.required(&top, "provider", "the provider file") {
            if let Some(pm) = self.map(p, "`provider`", keys::PROVIDER) {
                id = Some(self.req_string(&pm, "id", "`provider`"));
                name = Some(self.req_string(&pm, "name", "`provider`"));
                logo = self.opt_string(&pm, "logo");
            }
        }

        let (mut base_url, mut headers) = (None, Vec::new());
        if let Some(d) = top.get("defaults") {
            if let Some(dm) = self.map(d, "`defaults`", keys::DEFAULTS) {
                base_url = dm.get("base_url").and_then(|n| {
                    if n.is_null() {
                        None
                    } else {
                        self.string(n, "`base_url`")
                    }
                });
                if let Some(h) = dm.get("headers") {
                    headers = self.headers(h);
                }
            }
        }

        let secrets = top
            .get("secrets")
            .map(|n| self.secrets(n))
            .unwrap_or_default();

        let mut scope = Scope::PerUser;
        let mut flows = Vec::new();
        let mut logout = None;
        let mut logout_on_relogin = None;
        let mut check = None;
        if let Some(a) = self.required(&top, "auth", "the provider file") {
            if let Kind::Map(entries) = &a.kind {
                if let Some((k, _)) = entries.iter().find(|(k, _)| k.as_str() == Some("refresh")) {
                    self.err(
                        "refresh-unsupported",
                        k.span,
                        "`auth.refresh` is not supported",
                    )
                    .help = Some(REFRESH_HELP.into());
                }
            }
            if let Some(am) = self.map_with(a, "`auth`", keys::AUTH, &["refresh"]) {
                if let Some(s) = am.get("scope") {
                    scope = self
                        .choice(
                            s,
                            "scope",
                            &[("per_user", Scope::PerUser), ("global", Scope::Global)],
                        )
                        .unwrap_or_default();
                }
                if let Some(f) = self.required(&am, "flows", "`auth`") {
                    let items = self.list(f, "`flows`");
                    if items.is_empty() && (f.is_null() || matches!(f.kind, Kind::Seq(_))) {
                        self.err("empty-flows", head(f), "`auth.flows` is empty")
                            .help = Some("a provider needs at least one flow".into());
                    }
                    flows = items.iter().filter_map(|n| self.flow(n)).collect();
                }
                if let Some(c) = am.get("check") {
                    check = self.check(c);
                }
                if let Some(l) = am.get("logout") {
                    if let Some(lm) = self.map(l, "`logout`", keys::LOGOUT) {
                        if let Some(r) = self.required(&lm, "request", "`logout`") {
                            logout = self.request(r);
                        }
                        logout_on_relogin = lm.get("on_relogin").and_then(|v| {
                            self.boolean(v, "`on_relogin`")
                                .map(|b| S { v: b, span: v.span })
                        });
                    }
                }
            }
        }
        let missing = || S {
            v: String::new(),
            span: head(root),
        };
        Some(Provider {
            id: id.unwrap_or_else(missing),
            name: name.unwrap_or_else(missing),
            logo,
            base_url,
            headers,
            scope,
            flows,
            logout,
            logout_on_relogin,
            check,
            secrets,
            span: root.span,
        })
    }

    /// `secrets: { key: { env: NAME } }`.
    fn secrets(&mut self, node: &Node) -> Vec<SecretDecl> {
        let mut out = Vec::new();
        for (key, v) in self.named(node, "`secrets`", "name: { env: VARIABLE }", "secret name") {
            let Some(m) = self.map(v, "a secret", keys::SECRET) else {
                continue;
            };
            let env = self.req_string(&m, "env", "a secret");
            if !env.v.is_empty() {
                out.push(SecretDecl { key, env });
            }
        }
        out
    }

    /// The entries of a mapping whose keys are names (`[A-Za-z_][A-Za-z0-9_]*`), as in
    /// `extract` and `secrets`; `shape` says what it maps, `item` what a key is. Empty: none.
    fn named<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
        shape: &str,
        item: &str,
    ) -> Vec<(S<String>, &'n Node)> {
        let mut out = Vec::new();
        for (k, v) in self.entries(node, what, &format!(" of {shape}")) {
            let key = k.as_str().unwrap_or_default();
            if template::is_key(key) {
                out.push((
                    S {
                        v: key.to_string(),
                        span: k.span,
                    },
                    v,
                ));
            } else {
                self.err("bad-key", k.span, format!("`{key}` is not a valid {item}"))
                    .help =
                    Some("keys are letters, digits and `_`, not starting with a digit".into());
            }
        }
        out
    }

    fn flow(&mut self, node: &Node) -> Option<Flow> {
        let m = self.map(node, "a flow", keys::FLOW)?;
        let id = self.req_string(&m, "id", "a flow");
        let name = self.req_string(&m, "name", "a flow");
        let inputs = match m.get("inputs") {
            Some(n) => self.fields(n, "`inputs`"),
            None => Vec::new(),
        };
        for f in inputs.iter().filter(|f| f.is_display()) {
            self.err(
                "display-in-inputs",
                f.key.span,
                format!("{} field cannot be a flow input", a_type(f.field_type)),
            )
            .help = Some(
                "display fields belong in a `prompt`, where they show what a step returned".into(),
            );
        }
        let mut steps = Vec::new();
        if let Some(s) = self.required(&m, "steps", "a flow") {
            let items = self.list(s, "`steps`");
            if items.is_empty() && (s.is_null() || matches!(s.kind, Kind::Seq(_))) {
                self.err("empty-steps", head(s), "a flow's `steps` is empty")
                    .help = Some("a flow needs at least one step".into());
            }
            if self.steps > MAX_STEPS {
                // Already reported: the steps of later flows are not lowered either.
            } else if self.steps + items.len() > MAX_STEPS {
                // Reported once, and the flow's steps are not lowered: nothing more is learnt
                // from checking hundreds of them.
                self.err(
                    "too-many-steps",
                    head(s),
                    format!(
                        "this flow brings the provider to {} steps; at most {MAX_STEPS} are allowed across all flows",
                        self.steps + items.len()
                    ),
                )
                .help = Some("split the provider into several files".into());
                self.steps = MAX_STEPS + 1;
            } else {
                self.steps += items.len();
                steps = items.iter().filter_map(|n| self.step(n)).collect();
            }
        }
        Some(Flow {
            id,
            name,
            inputs,
            steps,
            span: node.span,
        })
    }

    fn fields(&mut self, node: &Node, what: &str) -> Vec<Field> {
        let items = self.list(node, what);
        items.iter().filter_map(|n| self.field(n)).collect()
    }

    fn field(&mut self, node: &Node) -> Option<Field> {
        let m = self.map(node, "a field", keys::FIELD)?;
        let key = self
            .required(&m, "key", "a field")
            .and_then(|n| self.string(n, "`key`"));
        if let Some(k) = &key {
            if !template::is_key(&k.v) {
                self.err(
                    "bad-key",
                    k.span,
                    format!("`{}` is not a valid field key", k.v),
                )
                .help = Some("keys are letters, digits and `_`, not starting with a digit".into());
            }
        }
        let label = self.req_string(&m, "label", "a field");
        let field_type = match m.get("type") {
            Some(t) => self
                .choice(t, "field type", &FieldType::ALL)
                .unwrap_or_default(),
            None => FieldType::Text,
        };
        let display = field_type.is_display();
        let required = match m.entry("required") {
            Some((k, _)) if display => {
                self.not_for_display(k, "required", field_type);
                false
            }
            Some((_, r)) => self.boolean(r, "`required`").unwrap_or(true),
            None => !display,
        };
        let transform = match m.entry("transform") {
            Some((k, _)) if display => {
                self.not_for_display(k, "transform", field_type);
                None
            }
            Some((_, t)) if t.is_null() => None,
            Some((k, t)) => {
                let transform = self.choice(t, "transform", &[("base64", Transform::Base64)]);
                let fixed = match field_type {
                    FieldType::Number => Some(("number-transform", "is sent as a number")),
                    FieldType::Choice => Some(("choice-transform", "is sent as chosen")),
                    _ => None,
                };
                if let (Some((code, sent)), Some(_)) = (fixed, transform) {
                    self.err(
                        code,
                        k.span,
                        format!(
                            "a `{}` field {sent}; it cannot be transformed",
                            field_type.as_str()
                        ),
                    )
                    .help = Some("remove `transform`, or make the field `type: text`".into());
                }
                transform
            }
            None => None,
        };
        let value = match m.entry("value") {
            Some((_, v)) if display => self.template(v, "`value`"),
            Some((k, _)) => {
                self.err(
                    "value-on-input",
                    k.span,
                    "only `link` and `info` fields show a `value`",
                )
                .help = Some(
                    "a field the user fills in has no value of its own; set `type: link` or `type: info` to show one"
                        .into(),
                );
                None
            }
            None => {
                if display {
                    let a = a_type(field_type);
                    self.err(
                        "display-without-value",
                        head(node),
                        format!("{a} field needs a `value`"),
                    )
                    .help = Some(format!(
                        "{a} field shows text the server renders, e.g. `value: \"{{{{stored.redirect}}}}\"`"
                    ));
                }
                None
            }
        };
        let sensitive = match m.entry("sensitive") {
            Some((k, _)) if display => {
                self.not_for_display(k, "sensitive", field_type);
                None
            }
            Some((_, v)) => self
                .boolean(v, "`sensitive`")
                .map(|b| S { v: b, span: v.span }),
            None => None,
        };
        if let (FieldType::Password, Some(S { v: false, span })) = (field_type, &sensitive) {
            self.err(
                "password-not-sensitive",
                *span,
                "a `password` field is always sensitive",
            )
            .help = Some(
                "remove `sensitive: false`; a value that is not secret is `type: text`".into(),
            );
        }
        let options = match m.entry("options") {
            Some((_, o)) if field_type == FieldType::Choice => self.options(o),
            Some((k, _)) => {
                self.err(
                    "options-not-choice",
                    k.span,
                    format!(
                        "`options` apply to a `choice` field, not {} field",
                        a_type(field_type)
                    ),
                )
                .help = Some("add `type: choice`, or remove `options`".into());
                None
            }
            None if field_type == FieldType::Choice => {
                self.err(
                    "choice-without-options",
                    head(node),
                    "a `choice` field needs `options`",
                )
                .help = Some(
                    "name the lists it offers, e.g. `options: { values: \"{{stored.accounts}}\", \
                     labels: \"{{stored.account_names}}\" }`"
                        .into(),
                );
                None
            }
            None => None,
        };
        Some(Field {
            key: key?,
            label,
            field_type,
            required,
            transform,
            value,
            sensitive,
            options,
            span: node.span,
        })
    }

    /// `options: { values, labels }`: each exactly one `{{stored.K}}` placeholder.
    fn options(&mut self, node: &Node) -> Option<Options> {
        let m = self.map(node, "`options`", keys::OPTIONS)?;
        let one = |this: &mut Self, name: &str| -> Option<Template> {
            let n = m.get(name)?;
            let t = this.template(n, &format!("`{name}`"))?;
            if t.only_stored().is_none() {
                this.err(
                    "choice-options",
                    n.span,
                    format!(
                        "`{name}` must be one `{{{{stored.K}}}}` placeholder, and nothing else"
                    ),
                )
                .help = Some(
                    "name a value extracted with `all: true`, e.g. `\"{{stored.accounts}}\"`"
                        .into(),
                );
                return None;
            }
            Some(t)
        };
        if m.get("values").is_none() {
            self.err(
                "missing-key",
                head(node),
                "`options` is missing the required key `values`",
            );
        }
        let values = one(self, "values");
        let labels = one(self, "labels");
        Some(Options {
            values: values?,
            labels,
            span: node.span,
        })
    }

    fn not_for_display(&mut self, key: &Node, name: &str, t: FieldType) {
        let a = a_type(t);
        self.err(
            "display-field-key",
            key.span,
            format!("`{name}` does not apply to {a} field"),
        )
        .help = Some(format!(
            "{a} field is shown to the user, not collected; remove `{name}`"
        ));
    }

    fn headers(&mut self, node: &Node) -> Vec<Header> {
        self.pairs(node, "`headers`")
            .into_iter()
            .map(|(name, value)| Header { name, value })
            .collect()
    }

    fn pairs(&mut self, node: &Node, what: &str) -> Vec<(S<String>, Template)> {
        let mut out = Vec::new();
        for (k, v) in self.entries(node, what, "") {
            let name = S {
                v: k.as_str().unwrap_or_default().to_string(),
                span: k.span,
            };
            if let Some(t) = self.template(v, &format!("`{}`", name.v)) {
                out.push((name, t));
            }
        }
        out
    }

    /// A value of a `json:` body: mappings and lists as they are, a plain number, boolean or
    /// null as that JSON literal (YAML's core schema, as in `when`), every other scalar a
    /// template.
    fn json_value(&mut self, node: &Node) -> JsonValue {
        match &node.kind {
            Kind::Map(entries) => JsonValue::Object(
                entries
                    .iter()
                    .map(|(k, v)| {
                        let key = S {
                            v: k.as_str().unwrap_or_default().to_string(),
                            span: k.span,
                        };
                        (key, self.json_value(v))
                    })
                    .collect(),
                node.span,
            ),
            Kind::Seq(items) => JsonValue::Array(
                items.iter().map(|v| self.json_value(v)).collect(),
                node.span,
            ),
            Kind::Scalar(text, ScalarStyle::Plain) => {
                // A number keeps its digits when they are JSON already (`12345678901234567890`
                // stays exact); otherwise (`0x1F`, `+1`, `1.`) it is written as YAML reads it.
                let as_json = || {
                    (!text.starts_with('+')
                        && serde_json::from_str::<serde_json::Number>(text).is_ok())
                    .then(|| text.clone())
                };
                let literal = match step::plain_scalar(text) {
                    Scalar::Str(_) => None,
                    Scalar::Null => Some("null".to_string()),
                    Scalar::Bool(b) => Some(b.to_string()),
                    Scalar::Int(i) => as_json().or_else(|| Some(i.to_string())),
                    Scalar::Float(f) => {
                        as_json().or_else(|| serde_json::Number::from_f64(f).map(|n| n.to_string()))
                    }
                };
                match literal {
                    Some(l) => JsonValue::Literal(l, node.span),
                    None => JsonValue::Text(template::parse(text, node, &mut self.diags)),
                }
            }
            Kind::Scalar(text, _) => JsonValue::Text(template::parse(text, node, &mut self.diags)),
        }
    }

    fn request(&mut self, node: &Node) -> Option<Request> {
        let m = self.map(node, "`request`", keys::REQUEST)?;
        let method = match self.required(&m, "method", "`request`") {
            Some(n) => S {
                v: self
                    .choice(n, "HTTP method", &Method::ALL)
                    .unwrap_or(Method::Get),
                span: n.span,
            },
            None => S {
                v: Method::Get,
                span: head(node),
            },
        };
        let path = self
            .required(&m, "path", "`request`")
            .and_then(|n| self.template(n, "`path`"))
            // An unusable path was reported; `/` keeps the other checks going.
            .unwrap_or_else(|| Template {
                pieces: vec![Piece::Lit("/".into())],
                span: head(node),
            });
        let headers = m
            .get("headers")
            .map(|h| self.headers(h))
            .unwrap_or_default();
        let params = m
            .get("params")
            .map(|p| {
                self.pairs(p, "`params`")
                    .into_iter()
                    .map(|(name, value)| Param { name, value })
                    .collect()
            })
            .unwrap_or_default();
        let encoding = match m.get("body_encoding") {
            Some(e) => self
                .choice(
                    e,
                    "body encoding",
                    &[("json", BodyEncoding::Json), ("form", BodyEncoding::Form)],
                )
                .unwrap_or_default(),
            None => BodyEncoding::Json,
        };
        let body = match (m.get("body"), m.entry("json")) {
            (b, Some((k, j))) if !j.is_null() => {
                if b.is_some_and(|b| !b.is_null()) {
                    self.err(
                        "body-and-json",
                        k.span,
                        "a request has a `body` or a `json`, not both",
                    )
                    .help = Some("keep one of them".into());
                }
                if let Some((e, _)) = m.entry("body_encoding") {
                    self.err(
                        "body-and-json",
                        e.span,
                        "`body_encoding` applies to `body`; a `json:` body is always JSON",
                    )
                    .help = Some("remove `body_encoding`".into());
                }
                match &j.kind {
                    Kind::Map(_) | Kind::Seq(_) => Some(Body::Json(self.json_value(j))),
                    _ => {
                        self.err(
                            "wrong-type",
                            j.span,
                            format!("`json` must be a mapping or a list, found {}", j.describe()),
                        )
                        .help = Some("write the body as YAML, or as a string under `body`".into());
                        None
                    }
                }
            }
            (Some(b), _) if !b.is_null() => {
                let template = self.template(b, "`body`")?;
                if encoding == BodyEncoding::Json {
                    crate::check::json_body::check(b, &mut self.diags);
                }
                Some(Body::Text { encoding, template })
            }
            _ => None,
        };
        Some(Request {
            method,
            path,
            headers,
            params,
            body,
            span: node.span,
        })
    }
}
