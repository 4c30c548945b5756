//! The JSON Schema of the provider language, for YAML editor plugins.
//!
//! Each object's properties come from the key lists in `lower::keys`, the same lists the
//! compiler accepts, so the schema and the compiler agree on every key.

use crate::lower::keys;
use crate::model::{FieldType, Method};
use serde_json::{json, Map, Value};

/// An object schema with exactly `known` as its properties.
fn object(known: &[&str], required: &[&str], prop: impl Fn(&str) -> Value) -> Value {
    let props: Map<String, Value> = known.iter().map(|k| (k.to_string(), prop(k))).collect();
    json!({ "type": "object", "properties": props, "required": required, "additionalProperties": false })
}

fn string_map(description: &str) -> Value {
    json!({ "type": "object", "description": description, "additionalProperties": { "type": "string" } })
}

/// A field; `link` and `info` fields need a `value`, and only they may have one.
fn field() -> Value {
    let types: Vec<&str> = FieldType::ALL.iter().map(|(n, _)| *n).collect();
    let display: Vec<&str> = FieldType::ALL
        .iter()
        .filter(|(_, t)| t.is_display())
        .map(|(n, _)| *n)
        .collect();
    let mut f = object(keys::FIELD, &["key", "label"], |k| match k {
        "key" => json!({ "type": "string", "pattern": KEY }),
        "type" => json!({ "enum": types, "default": "text" }),
        "required" => json!({ "type": "boolean", "default": true }),
        "transform" => json!({ "enum": ["base64"] }),
        "value" => {
            json!({ "type": "string", "description": "`link` and `info` fields: the template shown, rendered after the step's extraction" })
        }
        "sensitive" => {
            json!({ "type": "boolean", "description": "without it: a `password` field, a field a prompt asks for, and an input named like a password or code are sensitive" })
        }
        "options" => object(keys::OPTIONS, &["values"], |k| match k {
            "values" => {
                json!({ "type": "string", "description": "one `{{stored.K}}`: a list extracted with `all: true`, the values to choose from" })
            }
            _ => {
                json!({ "type": "string", "description": "one `{{stored.K}}`: a list of the values' labels, in the same order" })
            }
        }),
        _ => json!({ "type": "string" }),
    });
    if let Value::Object(m) = &mut f {
        m.insert(
            "if".into(),
            json!({ "properties": { "type": { "enum": display } }, "required": ["type"] }),
        );
        m.insert("then".into(), json!({ "required": ["value"] }));
        m.insert("else".into(), json!({ "not": { "required": ["value"] } }));
    }
    f
}

const KEY: &str = "^[A-Za-z_][A-Za-z0-9_]*$";

fn status() -> Value {
    json!({ "type": "integer", "minimum": 100, "maximum": 599 })
}

fn statuses() -> Value {
    json!({ "oneOf": [status(), { "type": "array", "items": status(), "minItems": 1 }] })
}

/// JSONPath -> expected scalar; `status` too where `with_status`.
fn conditions(with_status: bool) -> Value {
    let mut props = Map::new();
    if with_status {
        props.insert("status".into(), statuses());
    }
    json!({
        "type": "object",
        "properties": props,
        "patternProperties": { "^\\$": { "type": ["string", "number", "boolean", "null"] } },
        "additionalProperties": false
    })
}

fn extract() -> Value {
    let source = object(keys::EXTRACT, &[], |k| match k {
        "path" => json!({ "type": "string", "description": "a JSONPath" }),
        "optional" | "all" => json!({ "type": "boolean", "default": false }),
        "status" => json!({ "const": true }),
        "keep" => {
            json!({ "enum": ["session", "run"], "default": "session", "description": "run: for the rest of the run only, never written into the session" })
        }
        "sensitive" => {
            json!({ "type": "boolean", "description": "without it: every value kept from the answer is sensitive, except the status" })
        }
        _ => json!({ "type": "string" }),
    });
    json!({
        "type": "object",
        "propertyNames": { "pattern": KEY },
        "additionalProperties": { "oneOf": [{ "type": "string", "description": "a JSONPath" }, source] }
    })
}

/// `samples:`: recorded responses, checked at build time.
fn samples() -> Value {
    let mut sample = object(keys::SAMPLE, &["status"], |k| match k {
        "name" => json!({ "type": "string", "description": "names the sample in messages" }),
        "status" => status(),
        "headers" => json!({
            "type": "object",
            "description": "header name -> value, or a list of values (several Set-Cookie)",
            "additionalProperties": { "oneOf": [
                { "type": "string" },
                { "type": "array", "items": { "type": "string" } }
            ] }
        }),
        "body" => {
            json!({ "description": "the body: a mapping or list is JSON, a string the body's text" })
        }
        _ => {
            json!({ "type": "string", "description": "a JSON file holding the body, relative to the provider file" })
        }
    });
    if let Value::Object(m) = &mut sample {
        m.insert("not".into(), json!({ "required": ["body", "file"] }));
    }
    json!({ "type": "array", "items": sample })
}

fn prompt() -> Value {
    json!({ "type": "array", "items": field() })
}

fn outcome() -> Value {
    object(keys::OUTCOME, &[], |k| match k {
        "when" => conditions(true),
        "extract" => extract(),
        "prompt" => prompt(),
        "next" => {
            json!({ "type": ["string", "integer"], "description": "a step id, or a step index" })
        }
        "complete" => json!({ "type": "boolean" }),
        "samples" => samples(),
        "fail" => json!({ "oneOf": [
            { "type": "string" },
            object(keys::FAIL, &[], |k| match k {
                "clear_session" => json!({ "type": "boolean", "default": false }),
                "from" => json!({ "type": "string", "description": "a JSONPath to the provider's message" }),
                _ => json!({ "type": "string" }),
            })
        ] }),
        "message" => json!({ "oneOf": [
            { "type": "string" },
            object(keys::MESSAGE, &[], |k| match k {
                "from" => json!({ "type": "string", "description": "a JSONPath to the provider's text" }),
                _ => json!({ "type": "string", "description": "shown when `from` finds no text" }),
            })
        ] }),
        _ => json!({ "type": "string" }),
    })
}

fn request() -> Value {
    let methods: Vec<&str> = Method::ALL.iter().map(|(n, _)| *n).collect();
    object(keys::REQUEST, &["method", "path"], |k| match k {
        "method" => json!({ "enum": methods }),
        "path" => {
            json!({ "type": "string", "description": "`/relative` to base_url, or an absolute http(s) URL; a template" })
        }
        "headers" => string_map("header name -> template"),
        "params" => string_map("query parameter -> template"),
        "body" => {
            json!({ "type": "string", "description": "a template; JSON unless body_encoding is form" })
        }
        "body_encoding" => json!({ "enum": ["json", "form"], "default": "json" }),
        "json" => json!({
            "type": ["object", "array"],
            "description": "the body as YAML, sent as JSON: strings are templates; numbers, booleans and null are sent as written; a value that is only an optional input's placeholder is left out when the input is absent"
        }),
        _ => json!({}),
    })
}

/// The whole schema.
pub fn schema() -> Value {
    let step = object(keys::STEP, &["name", "request"], |k| match k {
        "request" => request(),
        "success_status" => statuses(),
        "success_when" => conditions(false),
        "error_message" => {
            json!({ "type": "string", "description": "a JSONPath to the provider's error text" })
        }
        "outcomes" => json!({ "type": "array", "items": outcome(), "minItems": 1 }),
        "samples" => samples(),
        "on_success" => object(keys::ON_SUCCESS, &[], |k| match k {
            "extract" => extract(),
            "samples" => samples(),
            _ => prompt(),
        }),
        _ => json!({ "type": "string" }),
    });
    let flow = object(keys::FLOW, &["id", "name", "steps"], |k| match k {
        "inputs" => json!({ "type": "array", "items": field() }),
        "steps" => json!({ "type": "array", "items": step, "minItems": 1 }),
        _ => json!({ "type": "string" }),
    });
    let auth = object(keys::AUTH, &["flows"], |k| match k {
        "scope" => json!({ "enum": ["per_user", "global"], "default": "per_user" }),
        "flows" => json!({ "type": "array", "items": flow, "minItems": 1 }),
        "check" => object(
            keys::CHECK,
            &["request", "outcomes", "cache"],
            |k| match k {
                "request" => request(),
                "outcomes" => {
                    json!({ "type": "array", "minItems": 1, "items": object(keys::CHECK_OUTCOME, &["valid"], |k| match k {
                    "when" => conditions(true),
                    "valid" => json!({ "type": "boolean", "description": "false: the session ended; it is cleared" }),
                    _ => samples(),
                }) })
                }
                "cache" => {
                    json!({ "type": ["string", "integer"], "description": "a lifetime between 1s and 60m: 90, 30s, 5m" })
                }
                "unreachable" => json!({ "enum": ["valid", "invalid"], "default": "valid" }),
                _ => samples(),
            },
        ),
        _ => object(keys::LOGOUT, &["request"], |k| match k {
            "on_relogin" => {
                json!({ "type": "boolean", "default": true, "description": "a new login logs out the provider session it replaces" })
            }
            _ => request(),
        }),
    });
    let all_top: Vec<&str> = keys::TOP.iter().chain(keys::IGNORED_TOP).copied().collect();
    let mut root = object(&all_top, &["provider", "auth"], |k| match k {
        "provider" => object(keys::PROVIDER, &["id", "name"], |k| match k {
            "id" => json!({ "type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$" }),
            _ => json!({ "type": "string" }),
        }),
        "defaults" => object(keys::DEFAULTS, &[], |k| match k {
            "base_url" => json!({ "type": ["string", "null"], "format": "uri" }),
            _ => string_map("header name -> template sent on every request"),
        }),
        "auth" => auth.clone(),
        "secrets" => json!({
            "type": "object",
            "description": "secrets read from the environment when the server starts, used as {{secret.K}}",
            "propertyNames": { "pattern": KEY },
            "additionalProperties": object(keys::SECRET, &["env"], |_| json!({ "type": "string", "pattern": KEY }))
        }),
        _ => json!({ "description": "ignored by this server (older interpreter's section)" }),
    });
    if let Value::Object(m) = &mut root {
        m.insert(
            "$schema".into(),
            json!("http://json-schema.org/draft-07/schema#"),
        );
        m.insert("title".into(), json!("otvi provider file"));
    }
    root
}
