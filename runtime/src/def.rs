//! The static description of a provider that generated code fills in and the engine reads.

use crate::jsonpath::stored_text;
use crate::request::{Outbound, StepCx, StepError};
use crate::response::{clean_message, Reply};
use crate::secrets::Secrets;
use crate::JsonPath;
use serde_json::Value;

pub use crate::secrets::SecretDef;

/// Who owns a provider's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Each user has their own session.
    PerUser,
    /// One session per provider, shared by all users; only admins log in or out.
    Global,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::PerUser => "per_user",
            Scope::Global => "global",
        }
    }
}

/// A field: a flow input, a field a prompt asks for, or a display field (`link`, `info`) whose
/// value the server renders and the user only reads.
#[derive(Debug, Clone, Copy)]
pub struct FieldDef {
    pub key: &'static str,
    pub label: &'static str,
    pub field_type: FieldType,
    pub required: bool,
    /// Display fields: renders the value shown to the user.
    pub value: Option<RenderFn>,
    /// `choice` fields: where the options come from.
    pub options: Option<Choices>,
}

/// A `choice` field's options: stored values that hold JSON lists (extracted with
/// `all: true`), the values to choose from and, when given, their labels in the same order.
#[derive(Debug, Clone, Copy)]
pub struct Choices {
    pub values: &'static str,
    pub labels: Option<&'static str>,
}

/// One option of a `choice` field, as offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub value: String,
    pub label: String,
}

impl Choices {
    /// The options the run's stored values offer, or `None` when the values are missing or not
    /// a JSON list. Each element is taken as text as extraction stores a value (`stored_text`);
    /// a list of labels of another length is not used, and an option without a label is
    /// labelled by its value. Repeated values are offered once, empty ones not at all.
    pub fn offered<S: std::hash::BuildHasher>(
        &self,
        stored: &std::collections::HashMap<String, String, S>,
    ) -> Option<Vec<Choice>> {
        let list = |key: &str| -> Option<Vec<String>> {
            match serde_json::from_str(stored.get(key)?).ok()? {
                Value::Array(items) => Some(items.iter().map(stored_text).collect()),
                _ => None,
            }
        };
        let values = list(self.values)?;
        let labels = self
            .labels
            .and_then(list)
            .filter(|l| l.len() == values.len());
        let mut out: Vec<Choice> = Vec::with_capacity(values.len());
        let mut seen = std::collections::HashSet::with_capacity(values.len());
        for (i, value) in values.into_iter().enumerate() {
            if value.is_empty() || !seen.insert(value.clone()) {
                continue;
            }
            let label = labels
                .as_ref()
                .map_or_else(|| value.clone(), |l| l[i].clone());
            out.push(Choice { value, label });
        }
        Some(out)
    }
}

impl FieldDef {
    pub fn is_password(&self) -> bool {
        self.field_type == FieldType::Password
    }
    /// Shown, not collected.
    pub fn is_display(&self) -> bool {
        matches!(self.field_type, FieldType::Link | FieldType::Info)
    }
}

/// A field's type, as a provider file names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Text,
    Email,
    Password,
    Tel,
    /// A number (`-1`, `2.5`, `1e3`): a `json:` body sends it as a JSON number, and a value
    /// that is not one is refused with 400.
    Number,
    /// One of the options a prompt offers (`FieldDef::options`); any other value is refused
    /// with 400.
    Choice,
    /// Shown: a link the user opens (an identity provider's sign-in page).
    Link,
    /// Shown: text the user reads.
    Info,
}

impl FieldType {
    /// The name in provider files and in the API's `field_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Email => "email",
            FieldType::Password => "password",
            FieldType::Tel => "tel",
            FieldType::Number => "number",
            FieldType::Choice => "choice",
            FieldType::Link => "link",
            FieldType::Info => "info",
        }
    }
}

impl std::fmt::Display for FieldType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Builds the outbound request of a step from what the run knows.
pub type BuildFn = fn(&StepCx<'_>) -> Result<Outbound, StepError>;

/// Renders a display field's value from what the run knows.
pub type RenderFn = fn(&StepCx<'_>) -> Result<String, StepError>;

/// The outcome a provider's answer selects, trying a step's outcomes in file order; `None`:
/// none matches and the step fails.
pub type DecideFn = fn(&Reply) -> Option<&'static OutcomeDef>;

/// Where an extracted value comes from.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// The first value a JSONPath matches.
    Path(&'static JsonPath),
    /// Every value a JSONPath matches, kept as a JSON array.
    All(&'static JsonPath),
    /// A response header.
    Header(&'static str),
    /// A cookie the response sets.
    Cookie(&'static str),
    /// The HTTP status, as text.
    Status,
}

/// A value taken from a response.
#[derive(Debug)]
pub struct ExtractDef {
    pub key: &'static str,
    pub source: Source,
    /// A miss stores nothing instead of failing the step.
    pub optional: bool,
}

impl ExtractDef {
    /// The value this takes from `reply`: `Ok(None)` for an optional miss.
    pub fn read(&self, reply: &Reply) -> Result<Option<String>, StepError> {
        let found = match self.source {
            Source::Path(p) => reply
                .json_or_fail()?
                .and_then(|j| p.first(j).map(stored_text)),
            Source::All(p) => reply.json_or_fail()?.and_then(|j| {
                let all = p.all(j);
                (!all.is_empty())
                    .then(|| Value::Array(all.into_iter().cloned().collect()).to_string())
            }),
            Source::Header(name) => reply
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            Source::Cookie(name) => reply.cookie(name),
            Source::Status => Some(reply.status.to_string()),
        };
        match found {
            Some(v) => Ok(Some(v)),
            None if self.optional => Ok(None),
            None => Err(StepError::Provider(match self.source {
                Source::Path(p) | Source::All(p) => {
                    format!("the provider's answer has no value at `{}`", p.as_str())
                }
                Source::Header(h) => format!("the provider's answer has no `{h}` header"),
                Source::Cookie(c) => format!("the provider's answer sets no cookie `{c}`"),
                Source::Status => "the provider's answer has no status".into(),
            })),
        }
    }
}

/// Where an outcome leads.
#[derive(Debug)]
pub enum Then {
    /// To the step with this index: at once, or after the prompt is answered.
    Step(usize),
    /// The run completes: its values become the provider session.
    Complete,
    Fail(FailDef),
}

/// How a failing outcome explains itself.
#[derive(Debug)]
pub struct FailDef {
    /// Where the provider put its message.
    pub from: Option<&'static JsonPath>,
    /// The message when `from` is absent or finds no text.
    pub message: Option<&'static str>,
    /// The provider revoked the session: delete it.
    pub clear_session: bool,
}

/// What one kind of response leads to.
#[derive(Debug)]
pub struct OutcomeDef {
    pub extract: &'static [ExtractDef],
    /// Fields asked for (and shown) before the next step runs; empty: no pause.
    pub prompt: &'static [FieldDef],
    pub then: Then,
    /// Shown in `error` alongside `next_step`: the text as written, or the fallback when
    /// `message_from` finds none.
    pub message: Option<&'static str>,
    /// Where the provider puts the text shown alongside `next_step` (`message: { from }`).
    pub message_from: Option<&'static JsonPath>,
    /// `file:line` of the outcome in its provider file, for logs.
    pub at: &'static str,
}

impl OutcomeDef {
    /// The text shown in `error` alongside `next_step` when this outcome prompts: the
    /// provider's text at `message_from` (as `StepDef::failure` shows provider text), else
    /// `message`; `None`: nothing to say.
    pub fn prompt_message(&self, reply: &Reply, secrets: &Secrets) -> Option<String> {
        self.message_from
            .and_then(|p| provider_text(reply, p, secrets))
            .or_else(|| self.message.map(str::to_owned))
    }
}

/// The provider's text at `p` made fit to show: a string only, secrets replaced before it is
/// cut to length (so no part of one survives), control characters removed, at most
/// `MAX_MESSAGE` characters; `None` when there is none.
fn provider_text(reply: &Reply, p: &JsonPath, secrets: &Secrets) -> Option<String> {
    clean_message(&secrets.redact(reply.text_at(p)?.to_string()))
}

#[derive(Debug)]
pub struct StepDef {
    /// The step's `id`, or its index as text.
    pub id: &'static str,
    pub name: &'static str,
    pub build: BuildFn,
    pub decide: DecideFn,
    /// Every outcome, in file order (what `decide` chooses from).
    pub outcomes: &'static [&'static OutcomeDef],
    /// Where the provider puts its error text (`error_message`).
    pub error_message: Option<&'static JsonPath>,
    /// Same-host redirects are followed, unless an outcome tests a 3xx status (the step
    /// wants to see the redirect itself, e.g. to keep its `Location`).
    pub follow_redirects: bool,
    /// Written in the `on_success` form, whose one outcome is the success: a 4xx answer it
    /// does not match is the provider turning the attempt down.
    pub success_form: bool,
}

#[derive(Debug)]
pub struct FlowDef {
    pub id: &'static str,
    pub name: &'static str,
    pub inputs: &'static [FieldDef],
    pub steps: &'static [StepDef],
    /// Keys of the non-password fields a pending run remembers between requests.
    pub remember: &'static [&'static str],
    /// Some step reads a stored value that not every path through this flow extracts first:
    /// the user's provider session must be loaded before running it.
    pub uses_session: bool,
    /// Keys extracted with `keep: run`: later steps of the run read them (a pending run keeps
    /// them, sealed, between requests), and they are never written into the session.
    pub kept_for_run: &'static [&'static str],
}

impl FlowDef {
    /// What a completed run writes into the provider session: its extracted values but those
    /// kept for the run only.
    pub fn session_values<'v, V: 'v>(
        &self,
        extracted: impl IntoIterator<Item = (&'v String, &'v V)>,
    ) -> impl Iterator<Item = (&'v String, &'v V)> {
        extracted
            .into_iter()
            .filter(|(k, _)| !self.kept_for_run.contains(&k.as_str()))
    }
}

impl StepDef {
    /// The message of this step failing with the provider's answer `reply` (under outcome `o`,
    /// if one was selected): where the outcome or the step says the provider puts it, else
    /// what the status says. Provider text has any secret replaced before it is cut to length,
    /// so no part of one survives.
    pub fn failure(&self, reply: &Reply, o: Option<&OutcomeDef>, secrets: &Secrets) -> String {
        let fail = match o.map(|o| &o.then) {
            Some(Then::Fail(f)) => Some(f),
            _ => None,
        };
        let provider_text = |p: &JsonPath| provider_text(reply, p, secrets);
        fail.and_then(|f| f.from)
            .and_then(provider_text)
            .or_else(|| fail.and_then(|f| f.message).map(str::to_owned))
            .or_else(|| self.error_message.and_then(provider_text))
            .unwrap_or_else(|| format!("the provider answered HTTP {}", reply.status))
    }
}

impl FlowDef {
    /// Every field the flow knows: its inputs, then the fields each prompt asks for (a field
    /// asked for again appears again).
    pub fn fields(&self) -> impl Iterator<Item = &FieldDef> {
        self.inputs.iter().chain(
            self.steps
                .iter()
                .flat_map(|s| s.outcomes.iter().flat_map(|o| o.prompt)),
        )
    }
    /// The index of the step with this id.
    pub fn step_index(&self, id: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.id == id)
    }
}

#[derive(Debug)]
pub struct ProviderDef {
    pub id: &'static str,
    pub name: &'static str,
    pub logo: Option<&'static str>,
    pub scope: Scope,
    /// The compiled `base_url`; `--provider-base-url` may replace it.
    pub base_url: &'static str,
    pub flows: &'static [&'static FlowDef],
    pub logout: Option<BuildFn>,
    /// The stored values the logout request reads.
    pub logout_reads: &'static [&'static str],
    /// A new login logs out the provider session it replaces (`logout.on_relogin`, default
    /// true when there is a logout).
    pub logout_on_relogin: bool,
    /// `auth.check`: the provider's word on whether a stored session still works.
    pub check: Option<&'static CheckDef>,
    pub secrets: &'static [SecretDef],
    /// The YAML file it was compiled from.
    pub source: &'static str,
}

/// `auth.check`: a request built from the session alone, and outcomes that say whether the
/// session still works at the provider.
#[derive(Debug)]
pub struct CheckDef {
    /// One step: its outcomes complete (valid) or fail (invalid).
    pub flow: &'static FlowDef,
    /// Seconds a valid answer is reused before the provider is asked again.
    pub cache_secs: u64,
    /// The answer when the provider cannot say: not reached, 5xx or 429, or an answer that no
    /// outcome takes.
    pub unreachable_valid: bool,
}

impl CheckDef {
    /// What the provider's answer says: `Some(valid)`, or `None` when it says nothing (a 5xx
    /// or 429, whatever the outcomes, or an answer no outcome takes).
    pub fn verdict(&self, reply: &Reply) -> Option<bool> {
        if reply.status >= 500 || reply.status == 429 {
            return None;
        }
        match (self.flow.steps.first()?.decide)(reply)?.then {
            Then::Complete => Some(true),
            Then::Fail(_) => Some(false),
            Then::Step(_) => None,
        }
    }
}

impl ProviderDef {
    pub fn flow(&self, id: &str) -> Option<&'static FlowDef> {
        self.flows.iter().copied().find(|f| f.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE, SET_COOKIE};

    static MESSAGE: JsonPath = JsonPath::new("$.m");
    static STEP: StepDef = StepDef {
        id: "0",
        name: "Step",
        build: |_| Err(StepError::MissingInput("x".into())),
        decide: |_| None,
        outcomes: &[],
        error_message: Some(&MESSAGE),
        follow_redirects: true,
        success_form: false,
    };

    fn failed(body: serde_json::Value) -> Reply {
        Reply::new(401, Default::default(), Bytes::from(body.to_string()))
    }

    #[test]
    fn choices_come_from_stored_lists_with_their_labels() {
        let stored: std::collections::HashMap<String, String> = [
            ("ids", r#"["a", 7, "b", "a", ""]"#),
            ("names", r#"["Alpha", "Seven", "Beta", "Again", "Empty"]"#),
            ("short", r#"["x"]"#),
            ("text", "not a list"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let c = |values, labels| Choices { values, labels }.offered(&stored);
        let pairs = |o: Option<Vec<Choice>>| {
            o.map(|o| {
                o.into_iter()
                    .map(|c| (c.value, c.label))
                    .collect::<Vec<_>>()
            })
        };
        let own = |v: &[(&str, &str)]| {
            Some(
                v.iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect::<Vec<_>>(),
            )
        };
        // Scalars as extraction stores them, a repeated value once, an empty one not at all,
        // labelled in order.
        assert_eq!(
            pairs(c("ids", Some("names"))),
            own(&[("a", "Alpha"), ("7", "Seven"), ("b", "Beta")])
        );
        // No labels, or not as many: each value is its own label.
        assert_eq!(
            pairs(c("ids", None)),
            own(&[("a", "a"), ("7", "7"), ("b", "b")])
        );
        assert_eq!(pairs(c("ids", Some("short"))), pairs(c("ids", None)));
        // No list: no options.
        assert_eq!(pairs(c("text", None)), None);
        assert_eq!(pairs(c("missing", None)), None);
    }

    #[test]
    fn a_secret_straddling_the_length_limit_leaves_no_part_behind() {
        let secrets =
            crate::secrets::load([("p", &[SecretDef { key: "k", env: "K" }][..])], |_| {
                Some("key-1234567".into())
            })
            .unwrap()
            .remove("p")
            .unwrap();
        let text = format!("{} key-1234567", "x".repeat(195));
        let msg = STEP.failure(&failed(serde_json::json!({ "m": text })), None, &secrets);
        assert!(!msg.contains("key-"), "{msg}");
        assert!(msg.ends_with(" ***"), "{msg}");
    }

    #[test]
    fn a_failing_outcome_prefers_its_own_text_then_the_steps_then_the_status() {
        static FROM: JsonPath = JsonPath::new("$.reason");
        let none = &crate::secrets::NONE;
        let outcome = |from, message| OutcomeDef {
            extract: &[],
            prompt: &[],
            then: Then::Fail(FailDef {
                from,
                message,
                clear_session: false,
            }),
            message: None,
            message_from: None,
            at: "p.yaml:1",
        };
        let r = failed(serde_json::json!({ "reason": "revoked", "m": "step text" }));
        let o = outcome(Some(&FROM), Some("literal"));
        assert_eq!(STEP.failure(&r, Some(&o), none), "revoked");
        let o = outcome(None, Some("literal"));
        assert_eq!(STEP.failure(&r, Some(&o), none), "literal");
        let o = outcome(None, None);
        assert_eq!(STEP.failure(&r, Some(&o), none), "step text");
        let bare = failed(serde_json::json!({ "m": 7 }));
        assert_eq!(
            STEP.failure(&bare, None, none),
            "the provider answered HTTP 401"
        );
    }

    #[test]
    fn a_prompt_message_is_the_providers_text_cleaned_else_the_fallback() {
        static REASON: JsonPath = JsonPath::new("$.reason");
        let secrets =
            crate::secrets::load([("p", &[SecretDef { key: "k", env: "K" }][..])], |_| {
                Some("key-1234567".into())
            })
            .unwrap()
            .remove("p")
            .unwrap();
        let outcome = OutcomeDef {
            extract: &[],
            prompt: &[],
            then: Then::Step(1),
            message: Some("fallback"),
            message_from: Some(&REASON),
            at: "p.yaml:1",
        };
        let text = format!(" wrong\u{7} code {} key-1234567", "x".repeat(200));
        let r = failed(serde_json::json!({ "reason": text }));
        let shown = outcome.prompt_message(&r, &secrets).unwrap();
        assert!(shown.starts_with("wrong code x"), "{shown}");
        assert_eq!(shown.chars().count(), crate::response::MAX_MESSAGE);
        assert!(!shown.contains("key-"), "{shown}");
        let r = failed(serde_json::json!({ "reason": { "text": "an object" } }));
        assert_eq!(
            outcome.prompt_message(&r, &secrets).as_deref(),
            Some("fallback")
        );
        let bare = OutcomeDef {
            message: None,
            ..outcome
        };
        assert_eq!(bare.prompt_message(&r, &secrets), None);
        let r = failed(serde_json::json!({ "reason": "key-1234567" }));
        assert_eq!(bare.prompt_message(&r, &secrets).as_deref(), Some("***"));
    }

    static TYPE: JsonPath = JsonPath::new("$.response_type");
    static IDS: JsonPath = JsonPath::new("$.accounts[*].id");

    fn reply(body: &str) -> Reply {
        let mut h = HeaderMap::new();
        h.append(SET_COOKIE, HeaderValue::from_static("a=1; Path=/"));
        h.append(
            SET_COOKIE,
            HeaderValue::from_static("tn_session=s3cr3t; HttpOnly"),
        );
        h.insert(
            "location",
            HeaderValue::from_static("https://x.example/next"),
        );
        Reply::new(300, h, Bytes::from(body.to_string()))
    }

    #[test]
    fn every_source_extracts() {
        let r = reply(r#"{"accounts":[{"id":1},{"id":"b"}]}"#);
        let x = |source, optional| {
            ExtractDef {
                key: "k",
                source,
                optional,
            }
            .read(&r)
        };
        assert_eq!(x(Source::All(&IDS), false), Ok(Some(r#"[1,"b"]"#.into())));
        assert_eq!(
            x(Source::Cookie("tn_session"), false),
            Ok(Some("s3cr3t".into()))
        );
        assert_eq!(
            x(Source::Header("Location"), false),
            Ok(Some("https://x.example/next".into()))
        );
        assert_eq!(x(Source::Status, false), Ok(Some("300".into())));
        assert_eq!(x(Source::Path(&TYPE), true), Ok(None));
        assert_eq!(
            x(Source::Path(&TYPE), false),
            Err(StepError::Provider(
                "the provider's answer has no value at `$.response_type`".into()
            ))
        );
        assert_eq!(
            x(Source::Cookie("sid"), false),
            Err(StepError::Provider(
                "the provider's answer sets no cookie `sid`".into()
            ))
        );
    }

    #[test]
    fn an_html_page_is_named_as_such() {
        static TOKEN: JsonPath = JsonPath::new("$.token");
        let def = ExtractDef {
            key: "token",
            source: Source::Path(&TOKEN),
            optional: false,
        };
        let html = "the provider answered with an HTML page, not JSON";
        let not_json = "the provider's answer is not JSON";
        let answer = |content_type: Option<&'static str>, body: &str| {
            let mut h = HeaderMap::new();
            if let Some(t) = content_type {
                h.insert(CONTENT_TYPE, HeaderValue::from_static(t));
            }
            match def.read(&Reply::new(200, h, Bytes::from(body.to_string()))) {
                Err(StepError::Provider(m)) => m,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(answer(Some("text/html; charset=utf-8"), "Sign in"), html);
        assert_eq!(answer(None, "\n  <!DOCTYPE html><html></html>"), html);
        assert_eq!(answer(Some("text/plain"), "<HTML><body>"), html);
        assert_eq!(answer(Some("text/plain"), "oops <html>"), not_json);
        assert_eq!(answer(None, ""), not_json);
    }
}
