//! What the server would do with a recorded response (`samples:`): which outcome it selects,
//! what each extract finds, what error text a failure shows.
//!
//! The decisions are the run time's, made the same way: outcomes tried in file order, the
//! first whose conditions all hold (as the generated `decide` functions do); conditions
//! compared with the typing of `otvi_runtime::response::Expect`; JSONPaths run by the same
//! `jsonpath-rust` functions as `otvi_runtime::jsonpath::JsonPath`, first match; headers
//! case-insensitive, first value; cookies from `Set-Cookie`. `tests/samples.rs` at the
//! workspace root runs every shipped sample through the generated code too, so the two cannot
//! drift apart unnoticed.

use crate::diag::did_you_mean;
use crate::model::*;
use jsonpath_rust::parser::model::{JpQuery, Segment, Selector};
use jsonpath_rust::parser::parse_json_path;
use jsonpath_rust::query::js_path_process;
use serde_json::Value;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

/// The work checking a file's samples may take, in bytes of body scanned (each JSONPath run
/// costs its body's length and 256 more; parsing a path, 4 KiB). The shipped providers need
/// under 40 KiB each; the cap keeps a file of thousands of extracts times dozens of large
/// samples from making the compiler slow.
pub const MAX_SAMPLE_WORK: u64 = 16 << 20;

/// JSONPaths parsed once, however many samples they run on, and the work spent running them.
pub struct Paths {
    parsed: RefCell<HashMap<String, Option<Rc<JpQuery>>>>,
    spent: Cell<u64>,
    limit: u64,
}

impl Default for Paths {
    fn default() -> Self {
        Paths::with_limit(MAX_SAMPLE_WORK)
    }
}

impl Paths {
    pub fn with_limit(limit: u64) -> Self {
        Paths {
            parsed: RefCell::default(),
            spent: Cell::new(0),
            limit,
        }
    }

    /// `path` parsed; `None` when it does not parse (reported elsewhere) or the work is spent.
    pub fn get(&self, path: &str) -> Option<Rc<JpQuery>> {
        if let Some(q) = self.parsed.borrow().get(path) {
            return q.clone();
        }
        if !self.charge(4096) {
            return None;
        }
        let q = parse_json_path(path).ok().map(Rc::new);
        self.parsed.borrow_mut().insert(path.to_string(), q.clone());
        q
    }

    /// Spends `n`; false once the limit is passed (from then on every answer is empty).
    fn charge(&self, n: u64) -> bool {
        self.spent.set(self.spent.get().saturating_add(n));
        !self.exhausted()
    }

    /// The work spent so far.
    pub fn spent(&self) -> u64 {
        self.spent.get()
    }

    /// The limit was passed: some answers were cut short and cannot be trusted.
    pub fn exhausted(&self) -> bool {
        self.spent.get() > self.limit
    }
}

/// A sample as the server would read it: the body parsed as JSON once.
pub struct Answer<'s> {
    pub sample: &'s Sample,
    json: Option<Value>,
    paths: Rc<Paths>,
}

/// What an extract finds in a sample.
#[derive(Debug, PartialEq)]
pub enum Found {
    /// The value the server would store.
    Value(String),
    /// Nothing: a required extract fails the step, an optional one stores nothing.
    Missing,
    /// A JSONPath extract on a body that is not JSON: the step fails, optional or not.
    NotJson,
}

impl<'s> Answer<'s> {
    pub fn new(sample: &'s Sample) -> Self {
        Self::with_paths(sample, Rc::default())
    }

    /// Like `new`, sharing parsed JSONPaths with other answers.
    pub fn with_paths(sample: &'s Sample, paths: Rc<Paths>) -> Self {
        Answer {
            sample,
            json: serde_json::from_slice(&sample.body).ok(),
            paths,
        }
    }

    /// The body as JSON; `None` when it is not JSON.
    pub fn json(&self) -> Option<&Value> {
        self.json.as_ref()
    }

    /// The index of the outcome of `step` this response selects; `None`: the step fails.
    pub fn select(&self, step: &Step) -> Option<usize> {
        step.outcomes
            .iter()
            .position(|o| o.when.iter().all(|c| self.holds(c)))
    }

    /// Does condition `c` hold for this response.
    pub fn holds(&self, c: &Cond) -> bool {
        match c {
            Cond::Status(s) => s.v.contains(self.sample.status.v),
            Cond::Json { path, expected } => {
                self.first(&path.v).is_some_and(|v| equals(&expected.v, v))
            }
        }
    }

    /// Every node `path` matches, in document order (none when the body is not JSON or the
    /// path does not parse).
    pub fn all(&self, path: &str) -> Vec<&Value> {
        match (self.json.is_some(), self.paths.get(path)) {
            (true, Some(q)) => self.run(&q),
            _ => Vec::new(),
        }
    }

    /// Runs `q` on the body, charging the work.
    fn run(&self, q: &JpQuery) -> Vec<&Value> {
        match &self.json {
            Some(j) if self.paths.charge(self.sample.body.len() as u64 + 256) => query(q, j),
            _ => Vec::new(),
        }
    }

    /// The first node `path` matches.
    pub fn first(&self, path: &str) -> Option<&Value> {
        self.all(path).into_iter().next()
    }

    /// The text at `path` as the server would show it in `error`: a string, control
    /// characters removed, trimmed, not empty.
    pub fn message_at(&self, path: &str) -> Option<String> {
        match self.first(path) {
            Some(Value::String(s)) => {
                let clean: String = s.chars().filter(|c| !c.is_control()).collect();
                let clean = clean.trim();
                (!clean.is_empty()).then(|| clean.to_string())
            }
            _ => None,
        }
    }

    /// The first value of header `name` (names are case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.sample
            .headers
            .iter()
            .find(|(n, _)| n.v.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.v.as_str())
    }

    /// The names of the headers the sample has.
    pub fn header_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .sample
            .headers
            .iter()
            .map(|(n, _)| n.v.as_str())
            .collect();
        names.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
        names
    }

    /// The cookies the sample's `Set-Cookie` headers set: (name, value).
    pub fn cookies(&self) -> Vec<(&str, &str)> {
        self.sample
            .headers
            .iter()
            .filter(|(n, _)| n.v.eq_ignore_ascii_case("set-cookie"))
            .filter_map(|(_, v)| {
                let pair = v.v.split(';').next()?;
                let (name, value) = pair.split_once('=')?;
                let name = name.trim();
                let value = value.trim();
                let value = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(value);
                (!name.is_empty()).then_some((name, value))
            })
            .collect()
    }

    /// What extract `e` finds in this response.
    pub fn extract(&self, e: &Extract) -> Found {
        let found = match &e.source {
            Source::Path { path, all } => {
                if self.json.is_none() {
                    return Found::NotJson;
                }
                let nodes = self.all(&path.v);
                if *all {
                    (!nodes.is_empty())
                        .then(|| Value::Array(nodes.into_iter().cloned().collect()).to_string())
                } else {
                    nodes.first().map(|v| stored_text(v))
                }
            }
            Source::Header(h) => self.header(&h.v).map(str::to_owned),
            Source::Cookie(c) => self
                .cookies()
                .into_iter()
                .find(|(n, _)| *n == c.v)
                .map(|(_, v)| v.to_string()),
            Source::Status => Some(self.sample.status.v.to_string()),
        };
        found.map_or(Found::Missing, Found::Value)
    }

    /// Why condition `c` does not hold, in words; `None` when it holds.
    pub fn why_not(&self, c: &Cond) -> Option<String> {
        if self.holds(c) {
            return None;
        }
        let status = self.sample.status.v;
        Some(match c {
            Cond::Status(s) => match &s.v {
                StatusSet::Success => format!("its status is {status}, not 2xx"),
                StatusSet::AnyOf(v) if v.len() == 1 => {
                    format!("its status is {status}, not {}", v[0])
                }
                StatusSet::AnyOf(v) => {
                    let v: Vec<String> = v.iter().map(u16::to_string).collect();
                    format!("its status is {status}, not one of {}", v.join(", "))
                }
            },
            Cond::Json { path, expected } => match (self.json(), self.first(&path.v)) {
                (None, _) => format!("its body is not JSON, so `{}` finds nothing", path.v),
                (Some(_), None) => format!("`{}` finds nothing in it", path.v),
                (Some(_), Some(v)) => {
                    let mut s = format!(
                        "`{}` is {} in it, not {}",
                        path.v,
                        short_json(v),
                        expected.v.display()
                    );
                    if stored_text(v) == scalar_text(&expected.v) {
                        s.push_str(" (a string never equals a number or a boolean)");
                    }
                    s
                }
            },
        })
    }

    /// A hint for a JSONPath that finds nothing in this response: a close path that finds
    /// something (`did you mean …?`), else what the body holds where the path stops matching.
    pub fn path_help(&self, path: &str) -> Option<String> {
        self.json()?;
        if let Some(fixed) = self.repair(path) {
            return Some(format!("did you mean `{fixed}`?"));
        }
        let q = self.paths.get(path)?;
        let (k, nodes) = self.longest_match(&q);
        let at = render(&q.segments[..k]);
        let seg = q.segments.get(k)?;
        let keys = object_keys(&nodes);
        Some(match seg {
            Segment::Selector(Selector::Name(_)) if !keys.is_empty() => {
                format!("at `{at}` the sample has {}", list(&keys))
            }
            Segment::Selector(Selector::Name(_)) => {
                format!(
                    "at `{at}` the sample has {}, not an object",
                    describe(nodes[0])
                )
            }
            _ if nodes
                .iter()
                .all(|n| matches!(n, Value::Array(a) if a.is_empty())) =>
            {
                format!("`{at}` is an empty list in the sample")
            }
            _ => format!(
                "at `{at}` the sample has {}, where nothing matches `{}`",
                describe(nodes[0]),
                segment(seg)
            ),
        })
    }

    /// The longest prefix of `q` (in segments) that still matches something, and what it
    /// matches.
    fn longest_match(&self, q: &JpQuery) -> (usize, Vec<&Value>) {
        let mut best = (0, self.json.iter().collect());
        for k in 1..=q.segments.len() {
            let nodes = self.run(&JpQuery::new(q.segments[..k].to_vec()));
            if nodes.is_empty() {
                break;
            }
            best = (k, nodes);
        }
        best
    }

    /// `path` with misspelt names replaced, one at a time, by the closest key the sample has
    /// there, until it matches; `None` when no such repair makes it match.
    fn repair(&self, path: &str) -> Option<String> {
        let mut text = path.to_string();
        let mut changed = false;
        for _ in 0..16 {
            let q = self.paths.get(&text)?;
            if !self.run(&q).is_empty() {
                return changed.then_some(text);
            }
            let (k, nodes) = self.longest_match(&q);
            let Some(Segment::Selector(Selector::Name(name))) = q.segments.get(k) else {
                return None;
            };
            let keys = object_keys(&nodes);
            let close = did_you_mean(name, &keys)?;
            let nth = q.segments[..k]
                .iter()
                .filter(|s| matches!(s, Segment::Selector(Selector::Name(n)) if n == name))
                .count();
            text = replace_name(&text, name, close, nth)?;
            changed = true;
        }
        None
    }
}

/// The keys of the objects among `nodes`, each once, in order.
fn object_keys<'v>(nodes: &[&'v Value]) -> Vec<&'v str> {
    let mut keys: Vec<&str> = Vec::new();
    for n in nodes {
        if let Value::Object(m) = n {
            for k in m.keys() {
                if !keys.contains(&k.as_str()) {
                    keys.push(k);
                }
            }
        }
    }
    keys
}

/// `a`, `b` and `c` (at most eight, then "…").
fn list(keys: &[&str]) -> String {
    let mut shown: Vec<String> = keys.iter().take(8).map(|k| format!("`{k}`")).collect();
    if keys.len() > 8 {
        shown.push("…".into());
    }
    shown.join(", ")
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(a) if a.is_empty() => "an empty list",
        Value::Array(_) => "a list",
        Value::Object(o) if o.is_empty() => "an empty object",
        Value::Object(_) => "an object",
    }
}

/// A JSON value for a message: scalars as JSON, containers by kind.
fn short_json(v: &Value) -> String {
    match v {
        Value::Array(_) | Value::Object(_) => describe(v).to_string(),
        Value::String(s) if s.chars().count() > 60 => {
            format!("{:?}", s.chars().take(60).collect::<String>() + "…")
        }
        other => other.to_string(),
    }
}

fn scalar_text(s: &Scalar) -> String {
    match s {
        Scalar::Str(s) => s.clone(),
        Scalar::Int(i) => i.to_string(),
        Scalar::Float(f) => f.to_string(),
        Scalar::Bool(b) => b.to_string(),
        Scalar::Null => "null".into(),
    }
}

/// `expected` equals `v` as the runtime compares them (`Expect::holds`).
pub fn equals(expected: &Scalar, v: &Value) -> bool {
    match (expected, v) {
        (Scalar::Str(s), Value::String(x)) => s == x,
        (Scalar::Int(i), Value::Number(n)) => {
            n.as_i64() == Some(*i) || n.as_f64() == Some(*i as f64)
        }
        (Scalar::Float(f), Value::Number(n)) => n.as_f64() == Some(*f),
        (Scalar::Bool(b), Value::Bool(x)) => b == x,
        (Scalar::Null, Value::Null) => true,
        _ => false,
    }
}

/// How the server stores an extracted value: strings as they are, the rest as JSON text.
fn stored_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn query<'v>(q: &JpQuery, json: &'v Value) -> Vec<&'v Value> {
    js_path_process(q, json)
        .map(|found| found.into_iter().map(|r| r.val).collect())
        .unwrap_or_default()
}

/// `text` with the `nth` occurrence of name `name` (as `.name`, `['name']` or `["name"]`)
/// replaced by `with`.
fn replace_name(text: &str, name: &str, with: &str, nth: usize) -> Option<String> {
    let mut found = 0;
    let mut i = 0;
    while let Some(off) = text[i..].find(name) {
        let start = i + off;
        let end = start + name.len();
        let before = &text[..start];
        let after = &text[end..];
        let dotted = before.ends_with('.')
            && (after.is_empty() || after.starts_with(['.', '[']))
            && !after.starts_with(|c: char| c.is_alphanumeric() || c == '_');
        let quoted = (before.ends_with("['") && after.starts_with("']"))
            || (before.ends_with("[\"") && after.starts_with("\"]"));
        if dotted || quoted {
            if found == nth {
                let quote_needed = dotted && !is_plain_name(with);
                return Some(if quote_needed {
                    format!("{}['{with}']{after}", &before[..before.len() - 1])
                } else {
                    format!("{before}{with}{after}")
                });
            }
            found += 1;
        }
        i = end;
    }
    None
}

fn is_plain_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_alphanumeric() || ch == '_')
}

/// Segments written back as a JSONPath (`$.data.user`, `$.accounts[0]`).
fn render(segments: &[Segment]) -> String {
    let mut out = String::from("$");
    for s in segments {
        out.push_str(&segment(s));
    }
    out
}

fn segment(s: &Segment) -> String {
    match s {
        Segment::Selector(Selector::Name(n)) if is_plain_name(n) => format!(".{n}"),
        Segment::Selector(sel) => format!("[{}]", selector(sel)),
        Segment::Selectors(v) => {
            let inner: Vec<String> = v.iter().map(selector).collect();
            format!("[{}]", inner.join(","))
        }
        Segment::Descendant(inner) => {
            let inner = segment(inner);
            if inner.starts_with('.') {
                format!(".{inner}")
            } else {
                format!("..{inner}")
            }
        }
    }
}

fn selector(s: &Selector) -> String {
    match s {
        Selector::Name(n) => format!("'{}'", n.replace('\'', "\\'")),
        Selector::Wildcard => "*".into(),
        Selector::Index(i) => i.to_string(),
        Selector::Slice(a, b, c) => {
            let o = |x: &Option<i64>| x.map(|v| v.to_string()).unwrap_or_default();
            match c {
                Some(step) => format!("{}:{}:{step}", o(a), o(b)),
                None => format!("{}:{}", o(a), o(b)),
            }
        }
        Selector::Filter(f) => format!("?{f}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Span;

    fn sample(status: u16, body: &str) -> Sample {
        Sample {
            name: None,
            status: S {
                v: status,
                span: Span::default(),
            },
            headers: vec![(
                S {
                    v: "Set-Cookie".into(),
                    span: Span::default(),
                },
                S {
                    v: "tn_session=abc; HttpOnly".into(),
                    span: Span::default(),
                },
            )],
            body: body.as_bytes().to_vec(),
            file: None,
            span: Span::default(),
        }
    }

    #[test]
    fn a_misspelt_name_gets_the_close_path() {
        let s = sample(
            200,
            r#"{"data":{"access_token":"t","user":{"display_name":"D"}}}"#,
        );
        let a = Answer::new(&s);
        assert_eq!(
            a.path_help("$.data.acess_token").as_deref(),
            Some("did you mean `$.data.access_token`?")
        );
        assert_eq!(
            a.path_help("$.dta.user.dispay_name").as_deref(),
            Some("did you mean `$.dta.user.display_name`?")
                .filter(|_| false)
                .or(Some("did you mean `$.data.user.display_name`?"))
        );
        assert_eq!(
            a.path_help("$['data']['acess_token']").as_deref(),
            Some("did you mean `$['data']['access_token']`?")
        );
        assert_eq!(
            a.path_help("$.data.nothing_like_it").as_deref(),
            Some("at `$.data` the sample has `access_token`, `user`")
        );
        assert_eq!(
            a.path_help("$.data.access_token.x").as_deref(),
            Some("at `$.data.access_token` the sample has a string, not an object")
        );
    }

    #[test]
    fn conditions_are_typed_as_at_run_time() {
        let s = sample(200, r#"{"code":0,"text":"0","f":1.0}"#);
        let a = Answer::new(&s);
        let json = |p: &str, v: Scalar| Cond::Json {
            path: S {
                v: p.into(),
                span: Span::default(),
            },
            expected: S {
                v,
                span: Span::default(),
            },
        };
        assert!(a.holds(&json("$.code", Scalar::Int(0))));
        assert!(a.holds(&json("$.code", Scalar::Float(0.0))));
        assert!(a.holds(&json("$.f", Scalar::Int(1))));
        assert!(!a.holds(&json("$.code", Scalar::Str("0".into()))));
        assert!(a.holds(&json("$.text", Scalar::Str("0".into()))));
        assert_eq!(
            a.why_not(&json("$.text", Scalar::Int(0))).as_deref(),
            Some("`$.text` is \"0\" in it, not 0 (a string never equals a number or a boolean)")
        );
        assert_eq!(a.cookies(), vec![("tn_session", "abc")]);
    }
}
