//! Building outbound requests: the step context generated code reads from, the request it
//! returns, and encoding-aware substitution (JSON string, form, path segment, header value).

use crate::secrets::Secrets;
use base64::Engine as _;
use http::HeaderValue;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::collections::HashMap;
use std::fmt;

pub use crate::secrets::Secret;
pub use http::Method;

/// Why a step could not be sent or did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepError {
    /// A required input is missing or empty (HTTP 400).
    MissingInput(String),
    /// A header value would carry CR, LF or NUL (HTTP 400); never sent.
    BadHeaderValue(&'static str),
    /// A value placed in the URL path is `.` or `..`, which URL normalisation would resolve
    /// away (`/users/../token` is `/token`) (HTTP 400); never sent.
    DotPathSegment,
    /// A session value the step needs is not in the session; nothing was sent.
    MissingStored(&'static str),
    /// A provider secret is not loaded (the server checks them all at start-up).
    MissingSecret(&'static str),
    /// The provider call failed; the message is short and never holds the provider's body.
    Provider(String),
}

impl StepError {
    /// Errors that are the client's fault answer 400; the rest are a failed step (200).
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            StepError::MissingInput(_) | StepError::BadHeaderValue(_) | StepError::DotPathSegment
        )
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepError::MissingInput(k) => write!(f, "missing required input `{k}`"),
            StepError::BadHeaderValue(h) => {
                write!(
                    f,
                    "a value sent in header `{h}` contains a line break or NUL"
                )
            }
            StepError::DotPathSegment => {
                f.write_str("a value placed in the provider's URL path may not be `.` or `..`")
            }
            StepError::MissingStored(k) => {
                write!(f, "the provider session has no `{k}`; log in again")
            }
            StepError::MissingSecret(k) => write!(f, "the provider secret `{k}` is not set"),
            StepError::Provider(m) => f.write_str(m),
        }
    }
}

/// What a step's request may read: inputs, stored values, the provider's secrets, the run's
/// id, and the per-request built-ins.
pub struct StepCx<'a> {
    base_url: &'a str,
    inputs: &'a HashMap<String, String>,
    stored: &'a HashMap<String, String>,
    secrets: &'a Secrets,
    run_id: &'a str,
    uuid: String,
    now: time::OffsetDateTime,
}

impl<'a> StepCx<'a> {
    pub fn new(
        base_url: &'a str,
        inputs: &'a HashMap<String, String>,
        stored: &'a HashMap<String, String>,
        secrets: &'a Secrets,
        run_id: &'a str,
    ) -> Self {
        StepCx {
            base_url,
            inputs,
            stored,
            secrets,
            run_id,
            uuid: uuid::Uuid::new_v4().to_string(),
            now: time::OffsetDateTime::now_utc(),
        }
    }
    /// The same context with `{{uuid}}` and the clock fixed: a simulation prints the same
    /// requests on every run.
    pub fn fixed(mut self, uuid: &str, now: time::OffsetDateTime) -> Self {
        self.uuid = uuid.to_string();
        self.now = now;
        self
    }
    /// A provider secret (`{{secret.K}}`).
    pub fn secret(&self, key: &'static str) -> Result<&str, StepError> {
        self.secrets.get(key).ok_or(StepError::MissingSecret(key))
    }
    /// `{{run_id}}`: the same value in every step of one run of a flow.
    pub fn run_id(&self) -> &str {
        self.run_id
    }
    /// An input or prompted field, if the run has it.
    pub fn input(&self, key: &str) -> Option<&str> {
        self.inputs.get(key).map(String::as_str)
    }
    /// A stored value; a miss fails the step before anything is sent.
    pub fn stored(&self, key: &'static str) -> Result<&str, StepError> {
        self.stored
            .get(key)
            .map(String::as_str)
            .ok_or(StepError::MissingStored(key))
    }
    /// `{{uuid}}`: the same value everywhere in this request.
    pub fn uuid(&self) -> &str {
        &self.uuid
    }
    /// `{{utcnow}}`: `YYYYMMDDTHHMMSS`.
    pub fn utcnow(&self) -> String {
        self.now
            .format(time::macros::format_description!(
                "[year][month][day]T[hour][minute][second]"
            ))
            .unwrap_or_default()
    }
    /// `{{utcdate}}`: `YYYYMMDD`.
    pub fn utcdate(&self) -> String {
        self.now
            .format(time::macros::format_description!("[year][month][day]"))
            .unwrap_or_default()
    }
    /// The base URL (trailing `/` trimmed) followed by `path`.
    pub fn url(&self, path: &str) -> String {
        let mut u = self.base_url.trim_end_matches('/').to_string();
        u.push_str(path);
        u
    }
}

/// A required input: present (the engine checked) or a 400.
pub fn need<'v>(value: Option<&'v str>, key: &str) -> Result<&'v str, StepError> {
    value.ok_or_else(|| StepError::MissingInput(key.to_string()))
}

/// `transform: base64`.
pub fn base64(value: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(value)
}

/// Appends `value` escaped as the content of a JSON string.
pub fn push_json_str(out: &mut String, value: &str) {
    let quoted = serde_json::Value::String(value.to_string()).to_string();
    out.push_str(&quoted[1..quoted.len() - 1]);
}

/// Appends `value` form-urlencoded.
pub fn push_form(out: &mut String, value: &str) {
    out.extend(form_urlencoded::byte_serialize(value.as_bytes()));
}

/// One piece of a template, in the order the provider file wrote them: text as written, or a
/// value. The function the pieces are given to encodes each value for where the template
/// stands (`text`: as it is; `path`: one path segment; `Outbound::json_body`: inside a JSON
/// string; `Outbound::form_body`: form-urlencoded).
///
/// Generated code lists a template's pieces and hands them to one of these functions rather
/// than spelling out a push per piece: the same request, in a fraction of the code that a
/// crate with many providers compiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part<'a> {
    Lit(&'static str),
    Val(&'a str),
}

/// Appends `parts` to `out`, each value passed through `encode`.
fn join(out: &mut String, parts: &[Part<'_>], mut encode: impl FnMut(&mut String, &str)) {
    for p in parts {
        match *p {
            Part::Lit(l) => out.push_str(l),
            Part::Val(v) => encode(out, v),
        }
    }
}

/// The pieces joined, values as they are: a header or query value, a display field's value.
pub fn text(parts: &[Part<'_>]) -> String {
    let mut out = String::new();
    join(&mut out, parts, |o, v| o.push_str(v));
    out
}

/// A value that stands as one path segment: refused if it is `.` or `..` (see
/// `push_path_segment`). Generated code checks each value of a path with it where the value
/// stands, so the first problem in file order is the one reported.
pub fn segment(value: &str) -> Result<&str, StepError> {
    if value == "." || value == ".." {
        return Err(StepError::DotPathSegment);
    }
    Ok(value)
}

/// The pieces joined as a URL path, each value percent-encoded as one path segment.
pub fn path(parts: &[Part<'_>]) -> Result<String, StepError> {
    let mut out = String::new();
    for p in parts {
        match *p {
            Part::Lit(l) => out.push_str(l),
            Part::Val(v) => push_path_segment(&mut out, v)?,
        }
    }
    Ok(out)
}

/// Everything but the unreserved characters: a value stays one path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Appends `value` percent-encoded as one path segment (never adds `/`, `?` or `#`). `.` and
/// `..` are refused: no encoding keeps them (the URL standard reads `%2e` as a dot too), and
/// resolved away they would send the request to another path.
pub fn push_path_segment(out: &mut String, value: &str) -> Result<(), StepError> {
    if value == "." || value == ".." {
        return Err(StepError::DotPathSegment);
    }
    out.extend(utf8_percent_encode(value, SEGMENT));
    Ok(())
}

/// An HTTP request ready to send.
#[derive(Debug, Clone)]
pub struct Outbound {
    pub method: Method,
    pub url: String,
    pub query: Vec<(&'static str, String)>,
    pub headers: Vec<(&'static str, HeaderValue)>,
    pub body: Option<String>,
    /// Follow same-host redirects (cross-host ones never are).
    pub follow_redirects: bool,
}

impl Outbound {
    pub fn new(method: Method, url: String) -> Self {
        Outbound {
            method,
            url,
            query: Vec::new(),
            headers: Vec::new(),
            body: None,
            follow_redirects: true,
        }
    }
    /// Adds a header; a value with CR, LF or NUL is refused.
    pub fn header(&mut self, name: &'static str, value: &str) -> Result<(), StepError> {
        if value.contains(['\r', '\n', '\0']) {
            return Err(StepError::BadHeaderValue(name));
        }
        let v = HeaderValue::from_str(value).map_err(|_| StepError::BadHeaderValue(name))?;
        self.headers.push((name, v));
        Ok(())
    }
    /// The URL with the query parameters appended, form-encoded.
    pub fn full_url(&self) -> Result<url::Url, StepError> {
        let mut url = url::Url::parse(&self.url)
            .map_err(|_| StepError::Provider("the provider URL is not valid".into()))?;
        if !self.query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(self.query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        Ok(url)
    }
    /// Adds a query parameter; `full_url` encodes it.
    pub fn query(&mut self, name: &'static str, value: &str) {
        self.query.push((name, value.to_owned()));
    }
    pub fn body(&mut self, body: String) {
        self.body = Some(body);
    }
    /// A JSON body: each value is escaped as the content of a JSON string (the checker proved
    /// that every placeholder stands inside one).
    pub fn json_body(&mut self, parts: &[Part<'_>]) {
        let mut body = String::new();
        join(&mut body, parts, push_json_str);
        self.body = Some(body);
    }
    /// A form body: each value form-urlencoded.
    pub fn form_body(&mut self, parts: &[Part<'_>]) {
        let mut body = String::new();
        join(&mut body, parts, push_form);
        self.body = Some(body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        let mut s = String::new();
        push_json_str(&mut s, "a\"b\\\n\",\"admin\":true");
        assert_eq!(s, r#"a\"b\\\n\",\"admin\":true"#);
    }

    #[test]
    fn path_segments_cannot_add_separators() {
        let mut s = String::new();
        push_path_segment(&mut s, "a/b?c#d e").unwrap();
        assert_eq!(s, "a%2Fb%3Fc%23d%20e");
    }

    #[test]
    fn form_values_are_urlencoded() {
        let mut s = String::new();
        push_form(&mut s, "a&b=c d");
        assert_eq!(s, "a%26b%3Dc+d");
    }

    #[test]
    fn parts_are_encoded_for_where_they_stand() {
        use Part::{Lit, Val};
        let parts = [Lit("{\"a\": \""), Val("x\"/ y&z"), Lit("\"}")];
        assert_eq!(text(&parts), "{\"a\": \"x\"/ y&z\"}");
        let mut o = Outbound::new(Method::POST, "http://x/".into());
        o.json_body(&parts);
        assert_eq!(o.body.as_deref(), Some(r#"{"a": "x\"/ y&z"}"#));
        o.form_body(&[Lit("a="), Val("x\"/ y&z")]);
        assert_eq!(o.body.as_deref(), Some("a=x%22%2F+y%26z"));
        assert_eq!(
            path(&[Lit("/u/"), Val("x\"/ y&z"), Lit("/t")]).as_deref(),
            Ok("/u/x%22%2F%20y%26z/t")
        );
        assert_eq!(
            path(&[Lit("/u/"), Val("..")]),
            Err(StepError::DotPathSegment)
        );
        assert_eq!(segment("."), Err(StepError::DotPathSegment));
        assert_eq!(segment(".x"), Ok(".x"));
    }

    #[test]
    fn header_values_with_line_breaks_are_refused() {
        let mut o = Outbound::new(Method::GET, "http://x/".into());
        assert_eq!(
            o.header("X-A", "a\r\nX-Admin: 1"),
            Err(StepError::BadHeaderValue("X-A"))
        );
        assert!(o.headers.is_empty());
    }
}
