//! Splitting a template string into literal and `{{name}}` pieces, with each placeholder's span.

use crate::diag::{did_you_mean, Diagnostic, Span};
use crate::model::{Piece, Template, Var};
use crate::yaml::{value_pos, Node};

/// Is `s` a valid key (`[A-Za-z_][A-Za-z0-9_]*`), as used for inputs and extracted values.
pub fn is_key(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

/// Parses the scalar `node` (whose text is `text`) as a template. Problems go to `diags`;
/// a bad placeholder is kept out of the result so later checks do not repeat the report.
pub fn parse(text: &str, node: &Node, diags: &mut Vec<Diagnostic>) -> Template {
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut rest = text;
    // Character offset of `rest` within `text`, for positions.
    let mut offset = 0usize;
    let span_of = |from: usize, to: usize| Span::new(value_pos(node, from), value_pos(node, to));
    while let Some(open) = rest.find("{{") {
        lit.push_str(&rest[..open]);
        let open_chars = offset + rest[..open].chars().count();
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            diags.push(
                Diagnostic::error(
                    "template-unclosed",
                    span_of(open_chars, open_chars + 2),
                    "`{{` without a closing `}}`",
                )
                .with_help("close the placeholder, e.g. `{{input.email}}`"),
            );
            lit.push_str(&rest[open..]);
            rest = "";
            break;
        };
        let inner = &after[..close];
        let end_chars = open_chars + 2 + inner.chars().count() + 2;
        let span = span_of(open_chars, end_chars);
        if let Some(var) = parse_var(inner.trim(), span, diags) {
            if !lit.is_empty() {
                pieces.push(Piece::Lit(std::mem::take(&mut lit)));
            }
            pieces.push(Piece::Var(var, span));
        }
        offset = end_chars;
        rest = &after[close + 2..];
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        pieces.push(Piece::Lit(lit));
    }
    Template {
        pieces,
        span: node.span,
    }
}

fn parse_var(name: &str, span: Span, diags: &mut Vec<Diagnostic>) -> Option<Var> {
    match name {
        "uuid" => return Some(Var::Uuid),
        "utcnow" => return Some(Var::UtcNow),
        "utcdate" => return Some(Var::UtcDate),
        "run_id" => return Some(Var::RunId),
        _ => {}
    }
    let (ns, key) = name.split_once('.').unwrap_or((name, ""));
    let bad_key = |diags: &mut Vec<Diagnostic>| {
        diags.push(
            Diagnostic::error(
                "template-bad-name",
                span,
                format!("`{key}` is not a valid name in `{{{{{name}}}}}`"),
            )
            .with_help("names are letters, digits and `_`, not starting with a digit"),
        );
    };
    match ns {
        "input" | "stored" | "secret" if !is_key(key) => {
            bad_key(diags);
            None
        }
        "input" => Some(Var::Input(key.to_string())),
        "stored" => Some(Var::Stored(key.to_string())),
        "secret" => Some(Var::Secret(key.to_string())),
        "extract" => {
            diags.push(
                Diagnostic::error(
                    "template-extract",
                    span,
                    format!("`{{{{extract.{key}}}}}` is not a template variable"),
                )
                .with_help(format!(
                    "extracted values are read back as stored values: use `{{{{stored.{key}}}}}`"
                )),
            );
            None
        }
        _ => {
            let known = [
                "input.K", "stored.K", "secret.K", "uuid", "utcnow", "utcdate", "run_id",
            ];
            let mut d = Diagnostic::error(
                "template-unknown",
                span,
                format!("unknown placeholder `{{{{{name}}}}}`"),
            );
            d = match did_you_mean(name, &["uuid", "utcnow", "utcdate", "run_id"]) {
                Some(s) => d.with_help(format!("did you mean `{{{{{s}}}}}`?")),
                None => d.with_help(format!("placeholders are {}", known.join(", "))),
            };
            diags.push(d);
            None
        }
    }
}
