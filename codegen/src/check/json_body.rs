//! JSON bodies are parsed at build time, placeholders included.
//!
//! Every placeholder must sit inside a JSON string (its value is JSON-escaped there at run
//! time); the rest must be valid JSON. Placeholders are masked with text of the same length, so
//! the parser's line and column are the body's own.

use crate::diag::{Diagnostic, Span};
use crate::yaml::{value_pos, Node};

pub fn check(node: &Node, diags: &mut Vec<Diagnostic>) {
    let Some(text) = node.as_str() else { return };
    let mut masked = String::with_capacity(text.len());
    let (mut in_str, mut escape) = (false, false);
    let mut chars = 0usize; // character offset of `rest` in `text`
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if !escape && rest.starts_with("{{") {
            if let Some(close) = rest[2..].find("}}") {
                let len = rest[..close + 4].chars().count();
                if in_str {
                    masked.extend(std::iter::repeat_n('x', len));
                } else {
                    let span = Span::new(value_pos(node, chars), value_pos(node, chars + len));
                    diags.push(
                        Diagnostic::error(
                            "json-placeholder-outside-string",
                            span,
                            format!("placeholder `{}` stands outside a JSON string", &rest[..close + 4]),
                        )
                        .with_help("put it inside quotes: values are substituted as JSON-escaped string content"),
                    );
                    masked.push_str("null");
                    masked.extend(std::iter::repeat_n(' ', len.saturating_sub(4)));
                }
                rest = &rest[close + 4..];
                chars += len;
                continue;
            }
        }
        if in_str {
            if escape {
                escape = false;
            } else if c == '\\' {
                escape = true;
            } else if c == '"' {
                in_str = false;
            }
        } else if c == '"' {
            in_str = true;
        }
        masked.push(c);
        rest = &rest[c.len_utf8()..];
        chars += 1;
    }
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&masked) {
        let offset = char_offset(&masked, e.line(), e.column());
        let at = value_pos(node, offset);
        let msg = e.to_string();
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
        diags.push(
            Diagnostic::error(
                "json-body",
                Span::point(at),
                format!("the body is not valid JSON: {msg}"),
            )
            .with_help("fix the JSON, or set `body_encoding: form` for a form body"),
        );
    }
}

/// Character offset in `text` of serde_json's 1-based line and (byte) column.
fn char_offset(text: &str, line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (i, l) in text.split('\n').enumerate() {
        if i + 1 == line {
            let byte = column.saturating_sub(1).min(l.len());
            let byte = (0..=byte)
                .rev()
                .find(|b| l.is_char_boundary(*b))
                .unwrap_or(0);
            return offset + l[..byte].chars().count();
        }
        offset += l.chars().count() + 1;
    }
    text.chars().count().saturating_sub(1)
}
