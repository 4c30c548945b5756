//! JSONPaths compiled once, on first use, and applied to provider responses.

use jsonpath_rust::parser::model::JpQuery;
use jsonpath_rust::parser::parse_json_path;
use jsonpath_rust::query::js_path_process;
use serde_json::Value;
use std::sync::OnceLock;

/// A JSONPath held in a `static`; the build already proved it parses.
#[derive(Debug)]
pub struct JsonPath {
    src: &'static str,
    compiled: OnceLock<Option<JpQuery>>,
}

impl JsonPath {
    pub const fn new(src: &'static str) -> Self {
        JsonPath {
            src,
            compiled: OnceLock::new(),
        }
    }
    pub fn as_str(&self) -> &'static str {
        self.src
    }
    /// The first node the path matches, if any.
    pub fn first<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        self.all(value).into_iter().next()
    }
    /// Every node the path matches, in document order.
    pub fn all<'v>(&self, value: &'v Value) -> Vec<&'v Value> {
        let Some(q) = self
            .compiled
            .get_or_init(|| parse_json_path(self.src).ok())
            .as_ref()
        else {
            return Vec::new();
        };
        js_path_process(q, value)
            .map(|found| found.into_iter().map(|r| r.val).collect())
            .unwrap_or_default()
    }
}

/// How an extracted value is stored: strings as they are, everything else as its JSON text.
pub fn stored_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    static P: JsonPath = JsonPath::new("$.data.items[*].id");

    #[test]
    fn the_first_match_is_taken() {
        let v = json!({"data": {"items": [{"id": 7}, {"id": 8}]}});
        assert_eq!(P.first(&v), Some(&json!(7)));
        assert_eq!(stored_text(P.first(&v).unwrap()), "7");
        assert_eq!(P.first(&json!({})), None);
    }
}
