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
    /// A `number` input is not a JSON number (HTTP 400); never sent.
    NotANumber(&'static str),
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
            StepError::MissingInput(_)
                | StepError::NotANumber(_)
                | StepError::BadHeaderValue(_)
                | StepError::DotPathSegment
        )
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepError::MissingInput(k) => write!(f, "missing required input `{k}`"),
            StepError::NotANumber(k) => write!(f, "input `{k}` must be a number"),
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

/// A value of a `json:` body, built by generated code and written by [`Outbound::json`].
#[derive(Debug, Clone, Copy)]
pub enum Json<'a> {
    /// JSON text written as it is: a number, `true`, `false` or `null` from the provider file,
    /// or a `number` input's value (checked by [`Json::number`]).
    Raw(&'a str),
    /// A string holding one value.
    Str(&'a str),
    /// A string of a template's pieces, text and values alike escaped.
    Text(&'a [Part<'a>]),
    /// An optional input that is absent or empty: left out of its object or list.
    Absent,
    Object(&'a [(&'static str, Json<'a>)]),
    Array(&'a [Json<'a>]),
}

impl<'a> Json<'a> {
    /// A `number` input's value, sent as a number; [`StepError::NotANumber`] unless it is
    /// exactly a JSON number (`-1`, `2.5`, `1e3`; no spaces, no `+`, no leading zeros) that is
    /// finite as an `f64`.
    pub fn number(value: &'a str, key: &'static str) -> Result<Self, StepError> {
        let ok = !value.starts_with(|c: char| c.is_whitespace())
            && !value.ends_with(|c: char| c.is_whitespace())
            && serde_json::from_str::<serde_json::Number>(value).is_ok();
        if ok {
            Ok(Json::Raw(value))
        } else {
            Err(StepError::NotANumber(key))
        }
    }

    /// An optional input standing alone: left out when absent or empty.
    pub fn optional(value: Option<&'a str>) -> Self {
        match value {
            Some(v) if !v.is_empty() => Json::Str(v),
            _ => Json::Absent,
        }
    }

    /// An optional `number` input standing alone: left out when absent or empty, else
    /// [`Json::number`].
    pub fn optional_number(value: Option<&'a str>, key: &'static str) -> Result<Self, StepError> {
        match value {
            Some(v) if !v.is_empty() => Json::number(v, key),
            _ => Ok(Json::Absent),
        }
    }
}

fn write_json(out: &mut String, v: &Json<'_>) {
    match *v {
        Json::Raw(r) => out.push_str(r),
        Json::Str(s) => {
            out.push('"');
            push_json_str(out, s);
            out.push('"');
        }
        // The file's text is a YAML string here, not JSON source: escaped like the values.
        Json::Text(parts) => {
            out.push('"');
            for p in parts {
                match *p {
                    Part::Lit(s) | Part::Val(s) => push_json_str(out, s),
                }
            }
            out.push('"');
        }
        // Only ever inside an object or a list, which skip it; at the top, `null`.
        Json::Absent => out.push_str("null"),
        Json::Object(fields) => {
            out.push('{');
            let mut first = true;
            for (k, v) in fields {
                if matches!(v, Json::Absent) {
                    continue;
                }
                if !first {
                    out.push(',');
                }
                first = false;
                out.push('"');
                push_json_str(out, k);
                out.push_str("\":");
                write_json(out, v);
            }
            out.push('}');
        }
        Json::Array(items) => {
            out.push('[');
            let mut first = true;
            for v in items {
                if matches!(v, Json::Absent) {
                    continue;
                }
                if !first {
                    out.push(',');
                }
                first = false;
                write_json(out, v);
            }
            out.push(']');
        }
    }
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
    /// A `json:` body.
    pub fn json(&mut self, value: &Json<'_>) {
        let mut body = String::new();
        write_json(&mut body, value);
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
    fn json_bodies_leave_absent_values_out_and_send_numbers_as_numbers() {
        let fields = [
            ("a\"b", Json::Text(&[Part::Lit("x\n"), Part::Val("\"")])),
            ("gone", Json::optional(Some(""))),
            ("n", Json::number("-2.5e3", "n").unwrap()),
            ("opt", Json::optional_number(None, "opt").unwrap()),
            (
                "list",
                Json::Array(&[Json::Absent, Json::Raw("true"), Json::Str("s")]),
            ),
            ("null", Json::Raw("null")),
        ];
        let mut req = Outbound::new(Method::POST, "http://h/".into());
        req.json(&Json::Object(&fields));
        let body = req.body.unwrap();
        assert_eq!(
            body,
            r#"{"a\"b":"x\n\"","n":-2.5e3,"list":[true,"s"],"null":null}"#
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["n"], serde_json::json!(-2500.0));
        for bad in [
            "", " 1", "1 ", "+1", "01", "1e999", "NaN", "0x10", "1,5", "1.", "abc",
        ] {
            assert!(
                matches!(Json::number(bad, "n"), Err(StepError::NotANumber("n"))),
                "{bad:?}"
            );
        }
        assert!(Json::optional_number(Some("x"), "o").is_err());
        for good in ["0", "-0", "42", "2.5", "1E-3", "-1e+2"] {
            assert!(matches!(Json::number(good, "n"), Ok(Json::Raw(g)) if g == good));
        }
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
