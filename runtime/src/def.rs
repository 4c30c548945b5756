//! The static description of a provider that generated code fills in and the engine reads.

use crate::request::{Outbound, StepCx, StepError};
use crate::response::Reply;
use crate::JsonPath;

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
    /// `text`, `email`, `password`, `tel`, `link` or `info`.
    pub field_type: &'static str,
    pub required: bool,
    /// Display fields: renders the value shown to the user.
    pub value: Option<RenderFn>,
}

impl FieldDef {
    pub fn is_password(&self) -> bool {
        self.field_type == "password"
    }
    /// Shown, not collected.
    pub fn is_display(&self) -> bool {
        matches!(self.field_type, "link" | "info")
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
    /// Shown in `error` alongside `next_step`.
    pub message: Option<&'static str>,
    /// `file:line` of the outcome in its provider file, for logs.
    pub at: &'static str,
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
}

impl FlowDef {
    /// The index of the step with this id.
    pub fn step_index(&self, id: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.id == id)
    }
}

/// A provider secret: read from the environment variable `env` when the server starts.
#[derive(Debug)]
pub struct SecretDef {
    pub key: &'static str,
    pub env: &'static str,
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
    pub secrets: &'static [SecretDef],
    /// The YAML file it was compiled from.
    pub source: &'static str,
}

impl ProviderDef {
    pub fn flow(&self, id: &str) -> Option<&'static FlowDef> {
        self.flows.iter().copied().find(|f| f.id == id)
    }
}
