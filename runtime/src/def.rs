//! The static description of a provider that generated code fills in and the engine reads.

use crate::request::{Outbound, StepCx, StepError};
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

/// A field the user fills in: a flow input or a prompted field.
#[derive(Debug, Clone, Copy)]
pub struct FieldDef {
    pub key: &'static str,
    pub label: &'static str,
    /// `text`, `email`, `password` or `tel`.
    pub field_type: &'static str,
    pub required: bool,
}

impl FieldDef {
    pub fn is_password(&self) -> bool {
        self.field_type == "password"
    }
}

/// Builds the outbound request of a step from what the run knows.
pub type BuildFn = fn(&StepCx<'_>) -> Result<Outbound, StepError>;

/// A value taken from a successful response.
#[derive(Debug)]
pub struct ExtractDef {
    pub key: &'static str,
    pub path: &'static JsonPath,
}

#[derive(Debug)]
pub struct StepDef {
    pub name: &'static str,
    pub build: BuildFn,
    /// `None`: any 2xx is success.
    pub success_status: Option<u16>,
    pub extract: &'static [ExtractDef],
    /// Fields asked for after this step succeeds, sent to the next step.
    pub prompt: &'static [FieldDef],
}

#[derive(Debug)]
pub struct FlowDef {
    pub id: &'static str,
    pub name: &'static str,
    pub inputs: &'static [FieldDef],
    pub steps: &'static [StepDef],
    /// Some step reads a stored value that no earlier step of this flow extracts: the user's
    /// provider session must be loaded before running it.
    pub uses_session: bool,
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
    /// The YAML file it was compiled from.
    pub source: &'static str,
}

impl ProviderDef {
    pub fn flow(&self, id: &str) -> Option<&'static FlowDef> {
        self.flows.iter().copied().find(|f| f.id == id)
    }
}
