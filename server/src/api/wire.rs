//! The seed's request and response shapes, as the OpenAPI document describes them, how the
//! engine's answers and the compiled providers become them, and the fixed JSON answers.

use super::MAX_INPUTS;
use crate::engine::{Login, Shown};
use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use otvi_runtime::def::{FieldDef, ProviderDef, Scope};
use serde::Serialize;
use std::collections::HashMap;
use utoipa::ToSchema;

/// A login request (seed 000). `inputs` may be omitted; `session_id` is accepted and ignored.
#[derive(Debug, ToSchema)]
#[schema(example = json!({
    "flow_id": "email_password", "step": 0,
    "inputs": { "email": "alice@example.com", "password": "secretpassword" }
}))]
#[allow(dead_code)] // Documents the body `parse_login` reads.
pub struct LoginRequest {
    /// The flow's id.
    flow_id: String,
    /// Zero-based step index: 0 starts the flow, a `next_step.step_index` continues it.
    #[schema(minimum = 0)]
    step: u64,
    /// The values of the step's fields, by key. A number or boolean is taken as its text;
    /// null as absent.
    #[schema(schema_with = inputs_schema)]
    inputs: Option<HashMap<String, String>>,
    /// Present for compatibility; unused.
    session_id: Option<String>,
}

fn inputs_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
    let value = ObjectBuilder::new().schema_type(utoipa::openapi::schema::SchemaType::from_iter([
        Type::String,
        Type::Number,
        Type::Boolean,
        Type::Null,
    ]));
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::Object,
            Type::Null,
        ]))
        .additional_properties(Some(AdditionalProperties::RefOr(value.build().into())))
        .max_properties(Some(MAX_INPUTS))
        .build()
}

/// The login answer, exactly the seed's shape.
#[derive(Debug, Serialize, PartialEq, ToSchema)]
#[schema(examples(
    json!({ "success": true, "session_id": null, "next_step": null, "user_name": "alice", "error": null }),
    json!({
        "success": false, "session_id": null,
        "next_step": { "step_index": 1, "step_name": "Verify OTP", "fields": [
            { "key": "otp", "label": "Enter Verification Code", "field_type": "text", "required": true }
        ]},
        "user_name": null, "error": null
    }),
    json!({ "success": false, "session_id": null, "next_step": null, "user_name": null, "error": "Invalid credentials" }),
))]
pub struct LoginResponse {
    /// True once the flow completed and the provider session is stored.
    pub success: bool,
    /// Always null (kept for the shape's compatibility).
    #[schema(required = true, value_type = Option<String>)]
    pub session_id: Option<String>,
    /// What to ask the user for next, when the flow continues.
    #[schema(required = true)]
    pub next_step: Option<NextStep>,
    #[schema(required = true)]
    pub user_name: Option<String>,
    /// A short, sanitized reason, never a provider's raw body.
    #[schema(required = true)]
    pub error: Option<String>,
}

/// The step to run next and the fields it needs.
#[derive(Debug, Serialize, PartialEq, ToSchema)]
pub struct NextStep {
    /// The `step` to send with the next request.
    pub step_index: usize,
    pub step_name: String,
    pub fields: Vec<FieldOut>,
}

/// A field of a prompt: an input, or a display field (`link`, `info`) carrying `value`.
#[derive(Debug, Serialize, PartialEq, ToSchema)]
pub struct FieldOut {
    pub key: String,
    pub label: String,
    /// `text`, `email`, `password`, `tel`, `number` or `choice` for inputs; `link` or `info`
    /// for display fields.
    pub field_type: String,
    pub required: bool,
    /// Display fields (`link`, `info`) only: what to show.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub value: Option<String>,
    /// `choice` fields only: the options; the value sent must be one of their `value`s.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub options: Option<Vec<ChoiceOut>>,
}

/// An option of a `choice` field.
#[derive(Debug, Serialize, PartialEq, ToSchema)]
pub struct ChoiceOut {
    /// What to send as the field's value.
    pub value: String,
    /// What to show.
    pub label: String,
}

/// `GET …/auth/check`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({ "valid": true }))]
pub struct CheckResponse {
    /// Whether a provider session is stored for the caller.
    pub valid: bool,
}

/// `POST …/auth/logout`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({ "success": true }))]
pub struct LogoutResponse {
    pub success: bool,
}

/// `/healthz`, `/readyz`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({ "status": "ok" }))]
pub struct Status {
    pub status: String,
}

impl From<Login> for LoginResponse {
    fn from(l: Login) -> Self {
        let (success, next_step, user_name, error) = match l {
            Login::Complete { user_name } => (true, None, user_name, None),
            Login::Prompt {
                step_index,
                step_name,
                fields,
                message,
            } => (
                false,
                Some(NextStep {
                    step_index,
                    step_name: step_name.into(),
                    fields: fields.into_iter().map(FieldOut::from).collect(),
                }),
                None,
                message,
            ),
            Login::Failed { error, .. } => (false, None, None, Some(error)),
        };
        LoginResponse {
            success,
            session_id: None,
            next_step,
            user_name,
            error,
        }
    }
}

impl From<Shown> for FieldOut {
    fn from(s: Shown) -> Self {
        FieldOut {
            key: s.def.key.into(),
            label: s.def.label.into(),
            field_type: s.def.field_type.as_str().into(),
            required: s.def.required,
            value: s.value,
            options: s.options.map(|o| {
                o.into_iter()
                    .map(|c| ChoiceOut {
                        value: c.value,
                        label: c.label,
                    })
                    .collect()
            }),
        }
    }
}

/// A provider as a frontend needs it to draw its flows (`GET /api/providers`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "acme", "name": "Acme TV", "logo": null, "scope": "per_user",
    "auth_flows": [{ "id": "email_password", "name": "Email & Password", "fields": [
        { "key": "email", "label": "Email", "field_type": "email", "required": true },
        { "key": "password", "label": "Password", "field_type": "password", "required": true }
    ]}]
}))]
pub struct ProviderInfo {
    pub id: &'static str,
    pub name: &'static str,
    #[schema(required = true)]
    pub logo: Option<&'static str>,
    /// `per_user`: each user has a session; `global`: one shared session, which only admins
    /// log in to or out of.
    #[schema(schema_with = scope_schema)]
    pub scope: &'static str,
    pub auth_flows: Vec<FlowInfo>,
}

fn scope_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some([Scope::PerUser.as_str(), Scope::Global.as_str()]))
        .build()
}

/// A flow and the fields its first step asks for.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlowInfo {
    pub id: &'static str,
    pub name: &'static str,
    pub fields: Vec<FieldInfo>,
}

/// An input of a flow's first step.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldInfo {
    pub key: &'static str,
    pub label: &'static str,
    pub field_type: &'static str,
    pub required: bool,
}

/// What a frontend needs to draw a provider's flows.
pub fn describe(p: &ProviderDef) -> ProviderInfo {
    let field = |f: &FieldDef| FieldInfo {
        key: f.key,
        label: f.label,
        field_type: f.field_type.as_str(),
        required: f.required,
    };
    ProviderInfo {
        id: p.id,
        name: p.name,
        logo: p.logo,
        scope: p.scope.as_str(),
        auth_flows: p
            .flows
            .iter()
            .map(|f| FlowInfo {
                id: f.id,
                name: f.name,
                fields: f.inputs.iter().map(field).collect(),
            })
            .collect(),
    }
}

/// A fixed JSON answer: nothing to build or serialize.
pub(super) fn fixed_json(body: &'static str) -> Response {
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
