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
    pub span: Span,
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

#[derive(Debug, Clone)]
pub struct Field {
    pub key: S<String>,
    pub label: S<String>,
    pub field_type: FieldType,
    pub required: bool,
    pub transform: Option<Transform>,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldType {
    #[default]
    Text,
    Email,
    Password,
    Tel,
}

impl FieldType {
    pub const ALL: [(&'static str, FieldType); 4] = [
        ("text", FieldType::Text),
        ("email", FieldType::Email),
        ("password", FieldType::Password),
        ("tel", FieldType::Tel),
    ];
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, t)| *t == self)
            .map_or("text", |(n, _)| n)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    Base64,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub name: S<String>,
    pub request: Request,
    /// The one status that means success; `None`: any 2xx.
    pub success_status: Option<S<u16>>,
    pub extract: Vec<Extract>,
    pub prompt: Vec<Field>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct Extract {
    pub key: S<String>,
    pub path: S<String>,
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
pub struct Body {
    pub encoding: BodyEncoding,
    pub template: Template,
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
}

impl Var {
    pub fn display(&self) -> String {
        match self {
            Var::Input(k) => format!("{{{{input.{k}}}}}"),
            Var::Stored(k) => format!("{{{{stored.{k}}}}}"),
            Var::Uuid => "{{uuid}}".into(),
            Var::UtcNow => "{{utcnow}}".into(),
            Var::UtcDate => "{{utcdate}}".into(),
        }
    }
}
