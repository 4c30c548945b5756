//! A provider's answer as generated code and the engine read it: the status, the headers, and
//! the body parsed as JSON at most once, on first need (a step that looks only at the status
//! or a header never parses it).

use crate::request::StepError;
use crate::JsonPath;
use bytes::Bytes;
use http::header::{HeaderMap, CONTENT_TYPE, SET_COOKIE};
use serde_json::Value;
use std::sync::OnceLock;

/// A provider's answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    json: OnceLock<Option<Value>>,
}

/// The value a condition expects, typed as the provider file wrote it: a string never equals
/// a number, `true` never equals `"true"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Expect {
    Str(&'static str),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
}

impl Expect {
    fn holds(self, v: &Value) -> bool {
        match (self, v) {
            (Expect::Str(s), Value::String(x)) => s == x,
            (Expect::Int(i), Value::Number(n)) => {
                n.as_i64() == Some(i) || n.as_f64() == Some(i as f64)
            }
            (Expect::Float(f), Value::Number(n)) => n.as_f64() == Some(f),
            (Expect::Bool(b), Value::Bool(x)) => b == *x,
            (Expect::Null, Value::Null) => true,
            _ => false,
        }
    }
}

/// Is `v` an absolute http(s) URL: what a `link` field may show.
pub fn is_web_link(v: &str) -> bool {
    url::Url::parse(v).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

/// The longest provider message shown in `error`.
pub const MAX_MESSAGE: usize = 200;

/// Provider text made fit to show: control characters removed, trimmed, at most
/// `MAX_MESSAGE` characters; `None` when nothing is left.
pub fn clean_message(text: &str) -> Option<String> {
    let clean: String = text.chars().filter(|c| !c.is_control()).collect();
    let clean: String = clean.trim().chars().take(MAX_MESSAGE).collect();
    (!clean.is_empty()).then_some(clean)
}

impl Reply {
    pub fn new(status: u16, headers: HeaderMap, body: Bytes) -> Reply {
        Reply {
            status,
            headers,
            body,
            json: OnceLock::new(),
        }
    }

    /// The body as JSON, parsed on first use; `None` if it is not JSON.
    pub fn json(&self) -> Option<&Value> {
        self.json
            .get_or_init(|| serde_json::from_slice(&self.body).ok())
            .as_ref()
    }

    /// The first value at `path` equals `expected`. A body that is not JSON, or a path that
    /// matches nothing, never does.
    pub fn is(&self, path: &JsonPath, expected: Expect) -> bool {
        self.json()
            .and_then(|j| path.first(j))
            .is_some_and(|v| expected.holds(v))
    }

    /// The string at `path`, as the provider sent it (see `clean_message` before showing it).
    pub fn text_at(&self, path: &JsonPath) -> Option<&str> {
        match self.json().and_then(|j| path.first(j)) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    /// The JSON body; a body that is not JSON fails the step (a JSONPath cannot apply).
    pub(crate) fn json_or_fail(&self) -> Result<Option<&Value>, StepError> {
        match self.json() {
            Some(j) => Ok(Some(j)),
            None if self.is_html() => Err(StepError::Provider(
                "the provider answered with an HTML page, not JSON".into(),
            )),
            None => Err(StepError::Provider(
                "the provider's answer is not JSON".into(),
            )),
        }
    }

    /// An HTML page (a login form, a proxy's or a firewall's error page): said so by its
    /// `Content-Type`, or by a body that opens with `<!doctype` or `<html`.
    fn is_html(&self) -> bool {
        let declared = self
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| {
                let t = t.trim_start().to_ascii_lowercase();
                t.starts_with("text/html") || t.starts_with("application/xhtml")
            });
        let start = self.body.trim_ascii_start();
        let opens =
            |tag: &[u8]| start.len() >= tag.len() && start[..tag.len()].eq_ignore_ascii_case(tag);
        declared || opens(b"<!doctype") || opens(b"<html")
    }

    /// The value of the cookie `name` that a `Set-Cookie` header of this answer sets.
    pub(crate) fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| cookie::Cookie::parse(v).ok())
            .find(|c| c.name() == name)
            .map(|c| c.value().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HeaderValue;

    static TYPE: JsonPath = JsonPath::new("$.response_type");
    static CODE: JsonPath = JsonPath::new("$.code");

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
    fn comparisons_are_typed() {
        let r = reply(r#"{"response_type":"SUCCESS","code":0}"#);
        assert!(r.is(&TYPE, Expect::Str("SUCCESS")));
        assert!(!r.is(&TYPE, Expect::Str("success")));
        assert!(r.is(&CODE, Expect::Int(0)));
        assert!(!r.is(&CODE, Expect::Str("0")));
        assert!(!reply("not json").is(&TYPE, Expect::Str("SUCCESS")));
    }

    #[test]
    fn messages_are_strings_cleaned_and_capped() {
        let long = "x".repeat(300);
        let r = reply(&format!(
            r#"{{"response_type":"  bad\u0007 \nthing ","code":{{"a":1}},"long":"{long}"}}"#
        ));
        let shown = |p| r.text_at(p).and_then(clean_message);
        assert_eq!(shown(&TYPE).as_deref(), Some("bad thing"));
        assert_eq!(r.text_at(&CODE), None, "objects are not messages");
        static LONG: JsonPath = JsonPath::new("$.long");
        assert_eq!(shown(&LONG).unwrap().chars().count(), MAX_MESSAGE);
    }
}
