//! Lowering `samples:`: recorded provider responses that the compiler checks against their
//! step (`check::samples`). Build-time only: nothing here reaches generated code.
//!
//! A body is any YAML value — a mapping or a list is sent as JSON, a scalar is the body's text
//! as written (an HTML page, a plain-text error) — or `file:`, a JSON file found relative to
//! the provider file.

use super::step::plain_scalar;
use super::{head, keys, Lower, Map};
use crate::model::*;
use crate::yaml::{Kind, Node};
use saphyr_parser::ScalarStyle;
use serde_json::Value;
use std::path::Path;

/// The largest sample file read: the most the server reads of a provider's answer.
pub const MAX_SAMPLE_FILE: u64 = 1024 * 1024;

/// Most samples one step may carry (its own and its outcomes'): a real step needs one per
/// outcome and a few failures; the cap bounds the work of checking each against every extract.
pub const MAX_SAMPLES: usize = 64;

impl Lower {
    /// Reports the samples of a step past `MAX_SAMPLES` and drops them.
    pub(super) fn cap_samples(&mut self, own: &mut Vec<Sample>, outcomes: &mut [Outcome]) {
        let mut left = MAX_SAMPLES;
        let mut first_dropped = None;
        for list in std::iter::once(own).chain(outcomes.iter_mut().map(|o| &mut o.samples)) {
            if list.len() > left {
                first_dropped = first_dropped.or(Some(list[left].span));
                list.truncate(left);
            }
            left -= list.len();
        }
        if let Some(span) = first_dropped {
            self.err(
                "too-many-samples",
                span,
                format!("a step may carry at most {MAX_SAMPLES} samples"),
            )
            .help = Some("keep one sample per outcome and the failures worth showing".into());
        }
    }

    /// `samples:` of a step, an outcome or `on_success`; none when absent.
    pub(super) fn samples(&mut self, m: &Map<'_>) -> Vec<Sample> {
        let Some(node) = m.get("samples") else {
            return Vec::new();
        };
        let items = self.list(node, "`samples`");
        items.iter().filter_map(|n| self.sample(n)).collect()
    }

    fn sample(&mut self, node: &Node) -> Option<Sample> {
        let m = self.map(node, "a sample", keys::SAMPLE)?;
        let name = self.opt_string(&m, "name");
        let status = self
            .required(&m, "status", "a sample")
            .and_then(|n| self.status(n));
        let headers = m
            .get("headers")
            .map(|h| self.sample_headers(h))
            .unwrap_or_default();
        let file = self.opt_string(&m, "file");
        let body = match (m.entry("body"), &file) {
            (Some((k, _)), Some(_)) => {
                self.err(
                    "sample-body",
                    k.span,
                    "a sample has a `body` or a `file`, not both",
                )
                .help =
                    Some("`file:` names a JSON file holding the body; remove one of them".into());
                None
            }
            (Some((_, b)), None) => Some(body_bytes(b)),
            (None, Some(f)) => self.sample_file(f),
            (None, None) => Some(Vec::new()),
        };
        Some(Sample {
            name,
            status: status?,
            headers,
            body: body?,
            file,
            span: head(node),
        })
    }

    /// `headers: { Name: value }`, a value being text or a list of texts (a header sent
    /// several times, such as `Set-Cookie`).
    fn sample_headers(&mut self, node: &Node) -> Vec<(S<String>, S<String>)> {
        let mut out = Vec::new();
        for (k, v) in self.entries(node, "a sample's `headers`", " of header name to text") {
            let name = S {
                v: k.as_str().unwrap_or_default().to_string(),
                span: k.span,
            };
            if http::HeaderName::from_bytes(name.v.as_bytes()).is_err() {
                self.err(
                    "bad-header-name",
                    name.span,
                    format!("`{}` is not a valid HTTP header name", name.v),
                )
                .help = Some("header names are letters, digits and `-`".into());
                continue;
            }
            let values: Vec<&Node> = match &v.kind {
                Kind::Seq(items) => items.iter().collect(),
                _ => vec![v],
            };
            for value in values {
                let Some(text) = self.string(value, &format!("header `{}`", name.v)) else {
                    continue;
                };
                if !text
                    .v
                    .bytes()
                    .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
                {
                    self.err(
                        "bad-header-value",
                        text.span,
                        format!(
                            "the value of header `{}` holds characters a header cannot carry",
                            name.v
                        ),
                    )
                    .help = Some("header values are visible ASCII text without line breaks".into());
                    continue;
                }
                out.push((name.clone(), text));
            }
        }
        out
    }

    /// The body of a `file:` sample: a JSON file, relative to the provider file.
    fn sample_file(&mut self, f: &S<String>) -> Option<Vec<u8>> {
        let rel = Path::new(&f.v);
        if f.v.is_empty() || rel.is_absolute() {
            self.err(
                "sample-file",
                f.span,
                format!("`{}` is not a relative path", f.v),
            )
            .help = Some(
                "a sample file is named relative to the provider file, e.g. `samples/login-200.json`"
                    .into(),
            );
            return None;
        }
        let path = match &self.sample_dir {
            Some(d) => d.join(rel),
            None => rel.to_path_buf(),
        };
        self.sample_files.push(path.clone());
        let read = std::fs::metadata(&path).and_then(|meta| {
            if !meta.is_file() {
                Err(std::io::Error::other("not a regular file"))
            } else if meta.len() > MAX_SAMPLE_FILE {
                Err(std::io::Error::other(
                    "larger than 1 MiB, the most the server reads of an answer",
                ))
            } else {
                std::fs::read(&path)
            }
        });
        let bytes = match read {
            Ok(b) => b,
            Err(e) => {
                self.err(
                    "sample-file",
                    f.span,
                    format!("cannot read sample file `{}`: {e}", f.v),
                )
                .help = Some("the path is relative to the provider file".into());
                return None;
            }
        };
        if let Err(e) = serde_json::from_slice::<Value>(&bytes) {
            self.err(
                "sample-file",
                f.span,
                format!("sample file `{}` is not JSON: {e}", f.v),
            )
            .help = Some(
                "a sample file holds a JSON body; write any other body inline, as `body: \"…\"`"
                    .into(),
            );
            return None;
        }
        Some(bytes)
    }
}

/// A body written in YAML, as the provider would send it.
fn body_bytes(node: &Node) -> Vec<u8> {
    match &node.kind {
        Kind::Scalar(text, _) => text.clone().into_bytes(),
        _ => serde_json::to_vec(&to_json(node)).unwrap_or_default(),
    }
}

/// A YAML value as JSON: plain scalars typed as YAML's core schema reads them (as in `when`),
/// quoted ones text.
fn to_json(node: &Node) -> Value {
    match &node.kind {
        Kind::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.as_str().unwrap_or_default().to_string(), to_json(v)))
                .collect(),
        ),
        Kind::Seq(items) => Value::Array(items.iter().map(to_json).collect()),
        Kind::Scalar(text, ScalarStyle::Plain) => match plain_scalar(text) {
            Scalar::Str(s) => Value::String(s),
            Scalar::Int(i) => Value::from(i),
            Scalar::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
            Scalar::Bool(b) => Value::Bool(b),
            Scalar::Null => Value::Null,
        },
        Kind::Scalar(text, _) => Value::String(text.clone()),
    }
}
