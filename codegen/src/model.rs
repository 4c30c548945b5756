//! The provider language model: what a provider file means, with the span of every part.
//!
//! Produced by `lower` from the YAML tree, checked by `check`, emitted by `emit`. Every
//! template is already split into literal and variable pieces here.

use crate::diag::Span;

/// A value with the place in the file it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct S<T> {
    pub v: T,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct Provider {
    pub id: S<String>,
    pub name: S<String>,
    pub logo: Option<S<String>>,
    pub base_url: Option<S<String>>,
    /// `defaults.headers`: sent on every request of this provider, logout included.
    pub headers: Vec<Header>,
    pub scope: Scope,
    pub flows: Vec<Flow>,
    pub logout: Option<Request>,
    /// `logout.on_relogin` as written; without it a new login logs out the session it
    /// replaces.
    pub logout_on_relogin: Option<S<bool>>,
    /// `auth.check`: asks the provider whether a stored session still works.
    pub check: Option<Check>,
    /// `secrets`: values read from the environment when the server starts.
    pub secrets: Vec<SecretDecl>,
    pub span: Span,
}

impl Provider {
    /// Every extract of every flow.
    pub fn extracts(&self) -> impl Iterator<Item = &Extract> {
        self.flows
            .iter()
            .flat_map(|f| &f.steps)
            .flat_map(Step::extracts)
    }
    /// The keys some flow keeps in the user's provider session (every extract but those with
    /// `keep: run`): what logout may use, and a flow may read as a session value.
    pub fn session_keys(&self) -> std::collections::BTreeSet<String> {
        self.extracts()
            .filter(|e| !e.for_run())
            .map(|e| e.key.v.clone())
            .collect()
    }
    /// An extract that keeps `key` for one run only, when no extract keeps it in the session.
    pub fn kept_for_run_only(&self, key: &str) -> Option<&Extract> {
        let of_key: Vec<&Extract> = self.extracts().filter(|e| e.key.v == key).collect();
        let first = of_key.iter().copied().find(|e| e.for_run())?;
        of_key.iter().all(|e| e.for_run()).then_some(first)
    }
}

/// `auth.check`: a request using only stored values and secrets, and outcomes that decide
/// whether the stored session is valid.
#[derive(Debug, Clone)]
pub struct Check {
    /// The request and its outcomes, as a flow of one step, both named `check`, that is not
    /// among the provider's flows: a `valid: true` outcome is `Then::Complete`, a
    /// `valid: false` one `Then::Fail` with `clear_session`.
    pub flow: Flow,
    /// `cache`: seconds a valid answer is reused before the provider is asked again.
    pub cache: S<u64>,
    /// `unreachable`: the answer when the provider cannot be asked or no outcome takes its
    /// answer (`true`: valid); `None`: the default, valid.
    pub unreachable: Option<S<bool>>,
    pub span: Span,
}

impl Check {
    /// The answer when the provider cannot be asked: `valid` unless the file says otherwise.
    pub fn unreachable_valid(&self) -> bool {
        self.unreachable.as_ref().is_none_or(|u| u.v)
    }
}

impl Check {
    pub fn step(&self) -> &Step {
        &self.flow.steps[0]
    }
}

/// `secrets: { api_key: { env: INDEE_API_KEY } }`: one entry.
#[derive(Debug, Clone)]
pub struct SecretDecl {
    pub key: S<String>,
    pub env: S<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    #[default]
    PerUser,
    Global,
}

#[derive(Debug, Clone)]
pub struct Flow {
    pub id: S<String>,
    pub name: S<String>,
    pub inputs: Vec<Field>,
    pub steps: Vec<Step>,
    pub span: Span,
}

impl Flow {
    /// Every field: the inputs, then every prompt's fields in file order (display fields and
    /// keys asked for again included).
    pub fn fields(&self) -> impl Iterator<Item = &Field> {
        self.inputs
            .iter()
            .chain(self.steps.iter().flat_map(Step::prompt_fields))
    }
    /// The fields the flow collects from the user, each key once (display fields excluded).
    pub fn collected(&self) -> Vec<&Field> {
        let mut seen = std::collections::HashSet::new();
        self.fields()
            .filter(|x| !x.is_display() && seen.insert(x.key.v.as_str()))
            .collect()
    }
}

#[derive(Debug, Clone)]
pub struct Field {
    pub key: S<String>,
    pub label: S<String>,
    pub field_type: FieldType,
    pub required: bool,
    pub transform: Option<Transform>,
    /// Display fields (`link`, `info`): the template rendered into `next_step.fields[].value`.
    pub value: Option<Template>,
    /// `sensitive:` as written; what a field is without it is `check::sensitive::field`'s
    /// rule.
    pub sensitive: Option<S<bool>>,
    /// `choice` fields: where the options come from.
    pub options: Option<Options>,
    pub span: Span,
}

/// `options: { values: "{{stored.K}}", labels: "{{stored.L}}" }` of a `choice` field: stored
/// values that hold lists (extracted with `all: true`).
#[derive(Debug, Clone)]
pub struct Options {
    pub values: Template,
    pub labels: Option<Template>,
    pub span: Span,
}

impl Options {
    pub fn templates(&self) -> impl Iterator<Item = &Template> {
        std::iter::once(&self.values).chain(&self.labels)
    }
}

impl Template {
    /// The key when the template is exactly one `{{stored.K}}` placeholder.
    pub fn only_stored(&self) -> Option<&str> {
        match self.pieces.as_slice() {
            [Piece::Var(Var::Stored(k), _)] => Some(k),
            _ => None,
        }
    }
}

impl Field {
    /// Shown to the user, not collected from them.
    pub fn is_display(&self) -> bool {
        self.field_type.is_display()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldType {
    #[default]
    Text,
    Email,
    Password,
    Tel,
    /// Extension: a number; a `json:` body sends its placeholder standing alone as a JSON
    /// number, and the server refuses an input that is not one.
    Number,
    /// Extension: one of the options a prompt offers, from lists the provider answered with
    /// (`options`); any other value is refused at run time.
    Choice,
    /// Extension: a link shown to the user (e.g. an identity provider's sign-in page).
    Link,
    /// Extension: text shown to the user.
    Info,
}

impl FieldType {
    pub const ALL: [(&'static str, FieldType); 8] = [
        ("text", FieldType::Text),
        ("email", FieldType::Email),
        ("password", FieldType::Password),
        ("tel", FieldType::Tel),
        ("number", FieldType::Number),
        ("choice", FieldType::Choice),
        ("link", FieldType::Link),
        ("info", FieldType::Info),
    ];
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, t)| *t == self)
            .map_or("text", |(n, _)| n)
    }
    pub fn is_display(self) -> bool {
        matches!(self, FieldType::Link | FieldType::Info)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    Base64,
}

#[derive(Debug, Clone)]
pub struct Step {
    /// `id:`, so that `next` can name the step; without one it is named by its index.
    pub id: Option<S<String>>,
    pub name: S<String>,
    pub request: Request,
    /// `error_message`: a JSONPath to the provider's error text, used when the step fails.
    pub error_message: Option<S<String>>,
    /// What the response leads to, tried in order. `on_success` (with `success_status` and
    /// `success_when`) is lowered to a single outcome, so both forms are one mechanism.
    pub outcomes: Vec<Outcome>,
    /// `samples:` on the step: recorded responses, whichever outcome they select (none: the
    /// step fails). Build-time only, never emitted.
    pub samples: Vec<Sample>,
    /// Written in the `on_success` form rather than with `outcomes:`.
    pub success_form: bool,
    pub span: Span,
}

impl Step {
    /// Where the text the user sees comes from when this step fails: under the failing
    /// outcome `fail`, or (`None`) when no outcome takes the answer. Tried in order; the last
    /// always has text.
    pub fn failure_texts<'a>(&'a self, fail: Option<&'a Fail>) -> Vec<FailureText<'a>> {
        let mut out = Vec::new();
        if let Some(from) = fail.and_then(|f| f.from.as_ref()) {
            out.push(FailureText::Provider(from));
        }
        if let Some(m) = fail.and_then(|f| f.message.as_ref()) {
            out.push(FailureText::Message(m));
            return out;
        }
        if let Some(p) = &self.error_message {
            out.push(FailureText::Provider(p));
        }
        out.push(FailureText::Status);
        out
    }
    /// Some answer may match none of the outcomes (the step then fails): the last outcome
    /// has conditions.
    pub fn may_match_nothing(&self) -> bool {
        self.outcomes.last().is_none_or(|o| !o.when.is_empty())
    }
    /// Every extract of every outcome.
    pub fn extracts(&self) -> impl Iterator<Item = &Extract> {
        self.outcomes.iter().flat_map(|o| o.extract.iter())
    }
    /// Every prompt field of every outcome.
    pub fn prompt_fields(&self) -> impl Iterator<Item = &Field> {
        self.outcomes
            .iter()
            .filter_map(|o| o.prompt.as_ref())
            .flat_map(|p| p.fields.iter())
    }
    /// Every sample of the step: its own, then each outcome's, with the index of the outcome
    /// it is listed under (`None`: the step's own).
    pub fn all_samples(&self) -> impl Iterator<Item = (Option<usize>, &Sample)> {
        self.samples.iter().map(|s| (None, s)).chain(
            self.outcomes
                .iter()
                .enumerate()
                .flat_map(|(j, o)| o.samples.iter().map(move |s| (Some(j), s))),
        )
    }
}

/// One place the text of a failed step may come from (`StepDef::failure` in the runtime
/// tries them in this order, the first with text wins).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FailureText<'a> {
    /// The provider's text at this JSONPath (`fail.from`, `error_message`), when it is a
    /// string: control characters removed, at most 200 characters.
    Provider(&'a S<String>),
    /// This message, as written (`fail: "…"`, `fail.message`).
    Message(&'a S<String>),
    /// `the provider answered HTTP N`, with the answer's status: always has text.
    Status,
}

/// One entry of `outcomes` (or the success outcome of `on_success`).
#[derive(Debug, Clone)]
pub struct Outcome {
    /// All must hold; empty: always.
    pub when: Vec<Cond>,
    pub extract: Vec<Extract>,
    pub prompt: Option<Prompt>,
    pub then: Then,
    /// `message`: shown in `error` alongside `next_step`.
    pub message: Option<Message>,
    /// `samples:` listed under this outcome (under `on_success` in that form): recorded
    /// responses that must select it. Build-time only, never emitted.
    pub samples: Vec<Sample>,
    pub span: Span,
}

impl Outcome {
    /// The keys this outcome certainly keeps: its extracts but the optional ones.
    pub fn kept(&self) -> impl Iterator<Item = &str> {
        self.extract
            .iter()
            .filter(|e| !e.optional)
            .map(|e| e.key.v.as_str())
    }
    /// Where the outcome says where it leads (`next`, `complete`, `fail`), else its start.
    pub fn then_span(&self) -> Span {
        match &self.then {
            Then::Continue(Some(n)) => n.span,
            Then::Complete(s) => *s,
            Then::Fail(f) => f.span,
            Then::Continue(None) => self.span,
        }
    }
}

/// `message: "text"`, or `message: { from: "$.message", fallback: "text" }`: what an outcome
/// that prompts shows in `error` beside `next_step`.
#[derive(Debug, Clone)]
pub struct Message {
    /// A JSONPath to the provider's text, shown with the same rules as `fail.from`.
    pub from: Option<S<String>>,
    /// The text as written: the message, or (with `from`) the fallback when `from` finds none.
    pub text: Option<S<String>>,
    pub span: Span,
}

/// A recorded provider response (`samples:`), checked against the step at build time: which
/// outcome it selects, and that what that outcome extracts is there.
#[derive(Debug, Clone)]
pub struct Sample {
    /// `name:`, for messages.
    pub name: Option<S<String>>,
    pub status: S<u16>,
    /// `headers:`, in file order; a name may repeat (several `Set-Cookie`).
    pub headers: Vec<(S<String>, S<String>)>,
    /// The body's bytes, as the provider would send them: a YAML mapping or list as JSON, a
    /// scalar as its text, `file:` as the file holds it; empty without either.
    pub body: Vec<u8>,
    /// `file:`, as written, when the body comes from a file.
    pub file: Option<S<String>>,
    pub span: Span,
}

impl Sample {
    /// How messages name the sample: by `name`, else by `file`, with its line.
    pub fn label(&self) -> String {
        let line = self.span.start.line;
        match (&self.name, &self.file) {
            (Some(n), _) => format!("sample `{}` (line {line})", n.v),
            (None, Some(f)) => format!("sample `{}` (line {line})", f.v),
            (None, None) => format!("the sample at line {line}"),
        }
    }
}

/// A condition on the provider's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    /// The HTTP status is one of these.
    Status(S<StatusSet>),
    /// The first value at `path` equals `expected` (typed: a string never equals a number).
    Json {
        path: S<String>,
        expected: S<Scalar>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusSet {
    /// Any 2xx: the default success of a step.
    Success,
    AnyOf(Vec<u16>),
}

impl StatusSet {
    pub fn contains(&self, status: u16) -> bool {
        match self {
            StatusSet::Success => (200..300).contains(&status),
            StatusSet::AnyOf(v) => v.contains(&status),
        }
    }
    /// Every status in `other` is in `self`.
    pub fn covers(&self, other: &StatusSet) -> bool {
        match other {
            StatusSet::Success => matches!(self, StatusSet::Success),
            StatusSet::AnyOf(v) => v.iter().all(|s| self.contains(*s)),
        }
    }
}

/// A scalar written in YAML, typed as YAML's core schema reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
}

impl Scalar {
    /// Equal as the runtime compares them: numbers by value (`1` is `1.0`).
    pub fn same_as(&self, other: &Scalar) -> bool {
        match (self, other) {
            (Scalar::Int(i), Scalar::Float(f)) | (Scalar::Float(f), Scalar::Int(i)) => {
                *i as f64 == *f
            }
            _ => self == other,
        }
    }
    pub fn display(&self) -> String {
        match self {
            Scalar::Str(s) => format!("{s:?}"),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Null => "null".into(),
        }
    }
}

/// `prompt:` with the span of its key, where diagnostics about the whole prompt point.
#[derive(Debug, Clone)]
pub struct Prompt {
    pub fields: Vec<Field>,
    pub key_span: Span,
}

impl Prompt {
    /// The fields the user fills in (not `link`/`info`).
    pub fn collected(&self) -> impl Iterator<Item = &Field> {
        self.fields.iter().filter(|f| !f.is_display())
    }
}

/// Where an outcome leads.
#[derive(Debug, Clone)]
pub enum Then {
    /// To the step `next` names; `None`: the following step, or completion after the last.
    Continue(Option<S<StepRef>>),
    /// `complete: true` (the span of the key).
    Complete(Span),
    Fail(Fail),
}

/// How `next` names a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepRef {
    Id(String),
    Index(usize),
}

/// `fail: "text"` or `fail: { from, message, clear_session }`.
#[derive(Debug, Clone)]
pub struct Fail {
    /// A JSONPath to the provider's message.
    pub from: Option<S<String>>,
    /// The literal message (the fallback when `from` finds nothing).
    pub message: Option<S<String>>,
    pub clear_session: bool,
    pub span: Span,
}

/// A value kept from a response.
#[derive(Debug, Clone)]
pub struct Extract {
    pub key: S<String>,
    pub source: Source,
    /// A miss stores nothing instead of failing the step.
    pub optional: bool,
    /// `sensitive:` as written; what a value is without it is `check::sensitive::extract`'s
    /// rule.
    pub sensitive: Option<S<bool>>,
    /// `keep:` as written; without it the value is kept in the session.
    pub keep: Option<S<Keep>>,
    pub span: Span,
}

impl Extract {
    /// `keep: run`: later steps of the same run may use the value; it is never written into
    /// the session.
    pub fn for_run(&self) -> bool {
        matches!(self.keep, Some(S { v: Keep::Run, .. }))
    }
}

/// How long an extracted value is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Keep {
    /// In the user's provider session, once the run completes (the default).
    #[default]
    Session,
    /// For the rest of the run only: never written into the session.
    Run,
}

impl Keep {
    pub const ALL: [(&'static str, Keep); 2] = [("session", Keep::Session), ("run", Keep::Run)];
}

#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A JSONPath; `all`: the JSON array of every match instead of the first.
    Path { path: S<String>, all: bool },
    /// A response header.
    Header(S<String>),
    /// A cookie the response sets.
    Cookie(S<String>),
    /// The HTTP status, as text.
    Status,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
    Options,
}

impl Method {
    pub const ALL: [(&'static str, Method); 7] = [
        ("GET", Method::Get),
        ("POST", Method::Post),
        ("PUT", Method::Put),
        ("PATCH", Method::Patch),
        ("DELETE", Method::Delete),
        ("HEAD", Method::Head),
        ("OPTIONS", Method::Options),
    ];
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("GET", |(n, _)| n)
    }
}

#[derive(Debug, Clone)]
pub struct Request {
    pub method: S<Method>,
    pub path: Template,
    pub headers: Vec<Header>,
    pub params: Vec<Param>,
    pub body: Option<Body>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct Header {
    pub name: S<String>,
    pub value: Template,
}

#[derive(Debug, Clone)]
pub struct Param {
    pub name: S<String>,
    pub value: Template,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyEncoding {
    #[default]
    Json,
    Form,
}

#[derive(Debug, Clone)]
pub enum Body {
    /// `body:` a template, JSON or form (`body_encoding`).
    Text {
        encoding: BodyEncoding,
        template: Template,
    },
    /// `json:` a YAML mapping or list, sent as JSON.
    Json(JsonValue),
}

impl Body {
    /// Every template of the body, in file order.
    pub fn templates(&self) -> Vec<&Template> {
        match self {
            Body::Text { template, .. } => vec![template],
            Body::Json(v) => {
                let mut out = Vec::new();
                v.templates(&mut out);
                out
            }
        }
    }
}

/// A value of a `json:` body.
#[derive(Debug, Clone)]
pub enum JsonValue {
    /// A number, `true`, `false` or `null`, as its JSON text.
    Literal(String, Span),
    /// A string: a template. When it is only an optional input's placeholder and the input is
    /// absent or empty, the field or element is left out; when it is only a `number` input's
    /// placeholder, the input is sent as a JSON number.
    Text(Template),
    Object(Vec<(S<String>, JsonValue)>, Span),
    Array(Vec<JsonValue>, Span),
}

impl JsonValue {
    fn templates<'a>(&'a self, out: &mut Vec<&'a Template>) {
        match self {
            JsonValue::Literal(..) => {}
            JsonValue::Text(t) => out.push(t),
            JsonValue::Object(fields, _) => fields.iter().for_each(|(_, v)| v.templates(out)),
            JsonValue::Array(items, _) => items.iter().for_each(|v| v.templates(out)),
        }
    }
}

/// A template split into pieces at parse time; nothing is scanned per request.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub pieces: Vec<Piece>,
    pub span: Span,
}

impl Template {
    pub fn vars(&self) -> impl Iterator<Item = (&Var, Span)> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Var(v, s) => Some((v, *s)),
            Piece::Lit(_) => None,
        })
    }
    /// The template's text when it has no placeholder.
    pub fn literal(&self) -> Option<String> {
        let mut s = String::new();
        for p in &self.pieces {
            match p {
                Piece::Lit(l) => s.push_str(l),
                Piece::Var(..) => return None,
            }
        }
        Some(s)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Lit(String),
    Var(Var, Span),
}

/// What a `{{…}}` placeholder names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Var {
    /// `input.K`: a flow input or a field prompted by an earlier step.
    Input(String),
    /// `stored.K`: extracted earlier in this flow, or kept in the session.
    Stored(String),
    /// `uuid`: one UUID v4 per outbound request.
    Uuid,
    /// `utcnow`: `YYYYMMDDTHHMMSS`.
    UtcNow,
    /// `utcdate`: `YYYYMMDD`.
    UtcDate,
    /// `run_id`: one UUID v4 per run of a flow, the same in all of its steps.
    RunId,
    /// `secret.K`: a provider secret, read from the environment at start-up.
    Secret(String),
}

impl Var {
    pub fn display(&self) -> String {
        match self {
            Var::Input(k) => format!("{{{{input.{k}}}}}"),
            Var::Stored(k) => format!("{{{{stored.{k}}}}}"),
            Var::Uuid => "{{uuid}}".into(),
            Var::UtcNow => "{{utcnow}}".into(),
            Var::UtcDate => "{{utcdate}}".into(),
            Var::RunId => "{{run_id}}".into(),
            Var::Secret(k) => format!("{{{{secret.{k}}}}}"),
        }
    }
}
