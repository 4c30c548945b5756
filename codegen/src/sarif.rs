//! SARIF 2.1.0 output of `check --format sarif`: one log for every file checked, for code-scanning
//! dashboards (GitHub code scanning uploads it).
//!
//! Only the part of the format `check` needs is modelled, as plain serde structs. Columns are
//! the diagnostics' own: 1-based, counted in characters, so the run declares
//! `columnKind: unicodeCodePoints` (SARIF's default counts UTF-16 code units); a region's end is
//! exclusive in both. Relative file paths become URI references against `%SRCROOT%`, the
//! directory `check` ran in, which is what GitHub resolves against the checkout.

use crate::diag::{Diagnostic, FileReport, Pos, Severity};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// The `$schema` a log names.
pub const SCHEMA_URI: &str = "https://json.schemastore.org/sarif-2.1.0.json";
/// The SARIF version a log follows.
pub const SARIF_VERSION: &str = "2.1.0";
/// The base the relative artifact URIs are resolved against.
pub const SRCROOT: &str = "%SRCROOT%";

/// A SARIF log: serialize it with serde_json.
#[derive(Debug, Serialize)]
pub struct Log<'a> {
    #[serde(rename = "$schema")]
    schema: &'static str,
    version: &'static str,
    runs: Vec<Run<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Run<'a> {
    tool: Tool,
    column_kind: &'static str,
    artifacts: Vec<Artifact>,
    results: Vec<SarifResult<'a>>,
}

#[derive(Debug, Serialize)]
struct Tool {
    driver: ToolComponent,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolComponent {
    name: &'static str,
    version: &'static str,
    rules: Vec<ReportingDescriptor>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ReportingDescriptor {
    id: &'static str,
    short_description: Text,
}

#[derive(Debug, Serialize)]
struct Text {
    text: String,
}

#[derive(Debug, Serialize)]
struct Artifact {
    location: ArtifactLocation,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct ArtifactLocation {
    uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    uri_base_id: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<usize>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifResult<'a> {
    rule_id: &'static str,
    rule_index: usize,
    level: &'static str,
    message: Text,
    locations: Vec<Location>,
    /// The diagnostic's help, also appended to the message text; kept apart for tools.
    #[serde(skip_serializing_if = "Option::is_none")]
    properties: Option<Properties<'a>>,
}

#[derive(Debug, Serialize)]
struct Properties<'a> {
    help: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Location {
    physical_location: PhysicalLocation,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PhysicalLocation {
    artifact_location: ArtifactLocation,
    region: Region,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Region {
    start_line: usize,
    start_column: usize,
    end_line: usize,
    end_column: usize,
}

/// The SARIF log of `reports`: one run, one result per diagnostic, one rule per code that
/// occurs (sorted by code), one artifact per distinct file.
pub fn log<'a>(reports: impl IntoIterator<Item = &'a FileReport>) -> Log<'a> {
    let reports: Vec<&FileReport> = reports.into_iter().collect();
    let rule_index: BTreeMap<&'static str, usize> = reports
        .iter()
        .flat_map(|r| &r.diagnostics)
        .map(|d| (d.code, 0))
        .collect::<BTreeMap<_, _>>()
        .into_keys()
        .enumerate()
        .map(|(i, code)| (code, i))
        .collect();
    let rules = rule_index
        .keys()
        .map(|&id| ReportingDescriptor {
            id,
            short_description: Text { text: describe(id) },
        })
        .collect();

    let mut artifacts: Vec<Artifact> = Vec::new();
    let mut artifact_index: HashMap<String, usize> = HashMap::new();
    let mut results = Vec::new();
    for report in reports {
        let mut location = artifact_location(&report.path);
        let index = *artifact_index
            .entry(location.uri.clone())
            .or_insert_with(|| {
                artifacts.push(Artifact {
                    location: location.clone(),
                });
                artifacts.len() - 1
            });
        location.index = Some(index);
        results.extend(
            report
                .diagnostics
                .iter()
                .map(|d| result(d, rule_index[d.code], &location)),
        );
    }

    Log {
        schema: SCHEMA_URI,
        version: SARIF_VERSION,
        runs: vec![Run {
            tool: Tool {
                driver: ToolComponent {
                    name: "otvi-codegen",
                    version: env!("CARGO_PKG_VERSION"),
                    rules,
                },
            },
            column_kind: "unicodeCodePoints",
            artifacts,
            results,
        }],
    }
}

/// The SARIF log of `reports` as pretty-printed JSON, ending with a newline.
pub fn render<'a>(reports: impl IntoIterator<Item = &'a FileReport>) -> String {
    let mut out = serde_json::to_string_pretty(&log(reports)).unwrap_or_default();
    out.push('\n');
    out
}

fn result<'a>(d: &'a Diagnostic, rule_index: usize, file: &ArtifactLocation) -> SarifResult<'a> {
    let text = match &d.help {
        Some(h) => format!("{}\nhelp: {h}", d.message),
        None => d.message.clone(),
    };
    SarifResult {
        rule_id: d.code,
        rule_index,
        level: match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        },
        message: Text { text },
        locations: vec![Location {
            physical_location: PhysicalLocation {
                artifact_location: file.clone(),
                region: region(d),
            },
        }],
        properties: d.help.as_deref().map(|help| Properties { help }),
    }
}

/// The diagnostic's span as a SARIF region. SARIF lines and columns are 1-based, like `Pos`,
/// and the end column is exclusive, like `Span::end`; a span that ends before it starts (never
/// made on purpose) becomes the one character at its start.
fn region(d: &Diagnostic) -> Region {
    let start = Pos {
        line: d.span.start.line.max(1),
        col: d.span.start.col.max(1),
    };
    let end = if d.span.end >= start {
        Pos {
            line: d.span.end.line,
            col: d.span.end.col.max(1),
        }
    } else {
        Pos {
            line: start.line,
            col: start.col + 1,
        }
    };
    Region {
        start_line: start.line,
        start_column: start.col,
        end_line: end.line,
        end_column: end.col,
    }
}

/// A file path as printed in diagnostics, as a SARIF artifact location: a relative path is a
/// URI reference against `%SRCROOT%` with forward slashes, an absolute one a `file:` URI.
fn artifact_location(path: &str) -> ArtifactLocation {
    let path = if cfg!(windows) {
        path.replace('\\', "/")
    } else {
        path.to_string()
    };
    let bytes = path.as_bytes();
    let drive =
        bytes.len() >= 3 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' && bytes[2] == b'/';
    if path.starts_with('/') || drive {
        let slash = if drive { "/" } else { "" };
        ArtifactLocation {
            uri: format!("file://{slash}{}", encode(&path, true)),
            uri_base_id: None,
            index: None,
        }
    } else {
        ArtifactLocation {
            uri: encode(&path, false),
            uri_base_id: Some(SRCROOT),
            index: None,
        }
    }
}

/// Percent-encodes every byte of `path` but unreserved characters and `/` (and `:` in an
/// absolute path, where it cannot be read as a scheme).
fn encode(path: &str, keep_colon: bool) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(b as char)
            }
            b':' if keep_colon => out.push(':'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A rule's short description, from its kebab-case code: `unknown-key` → "Unknown key".
fn describe(code: &str) -> String {
    let words = code.replace('-', " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Span;

    fn report(path: &str, diagnostics: Vec<Diagnostic>) -> FileReport {
        FileReport {
            path: path.into(),
            source: String::new(),
            diagnostics,
        }
    }

    fn value(reports: &[FileReport]) -> serde_json::Value {
        serde_json::to_value(log(reports)).unwrap()
    }

    #[test]
    fn results_rules_and_regions() {
        let v = value(&[
            report(
                "p/a.yaml",
                vec![
                    Diagnostic::error(
                        "unknown-key",
                        Span::new(Pos { line: 2, col: 3 }, Pos { line: 2, col: 12 }),
                        "unknown key `on_sucess`",
                    )
                    .with_help("did you mean `on_success`?"),
                    Diagnostic::warning(
                        "unused-input",
                        Span::point(Pos { line: 4, col: 1 }),
                        "input `x` is not used",
                    ),
                ],
            ),
            report("p/b.yaml", vec![]),
        ]);
        assert_eq!(v["version"], "2.1.0");
        let run = &v["runs"][0];
        assert_eq!(run["columnKind"], "unicodeCodePoints");
        let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0]["id"], "unknown-key");
        assert_eq!(rules[0]["shortDescription"]["text"], "Unknown key");
        assert_eq!(run["artifacts"].as_array().unwrap().len(), 2);
        let r = &run["results"][0];
        assert_eq!(r["ruleId"], "unknown-key");
        assert_eq!(r["ruleIndex"], 0);
        assert_eq!(r["level"], "error");
        assert_eq!(
            r["message"]["text"],
            "unknown key `on_sucess`\nhelp: did you mean `on_success`?"
        );
        let loc = &r["locations"][0]["physicalLocation"];
        assert_eq!(loc["artifactLocation"]["uri"], "p/a.yaml");
        assert_eq!(loc["artifactLocation"]["uriBaseId"], "%SRCROOT%");
        assert_eq!(loc["artifactLocation"]["index"], 0);
        assert_eq!(
            loc["region"],
            serde_json::json!({"startLine": 2, "startColumn": 3, "endLine": 2, "endColumn": 12})
        );
        let w = &run["results"][1];
        assert_eq!(
            (w["level"].as_str(), w["ruleIndex"].as_u64()),
            (Some("warning"), Some(1))
        );
        assert!(w.get("properties").is_none());
    }

    #[test]
    fn a_degenerate_span_is_still_a_valid_region() {
        let d = Diagnostic::error("io", Span::default(), "cannot read the file");
        let r = region(&d);
        assert_eq!(
            (r.start_line, r.start_column, r.end_line, r.end_column),
            (1, 1, 1, 2)
        );
    }

    #[test]
    fn paths_become_uri_references() {
        let rel = artifact_location("dir with space/a:b#1.yaml");
        assert_eq!(rel.uri, "dir%20with%20space/a%3Ab%231.yaml");
        assert_eq!(rel.uri_base_id, Some(SRCROOT));
        let abs = artifact_location("/srv/p/é.yaml");
        assert_eq!(abs.uri, "file:///srv/p/%C3%A9.yaml");
        assert_eq!(abs.uri_base_id, None);
    }

    #[test]
    fn the_same_file_twice_is_one_artifact() {
        let v = value(&[report("a.yaml", vec![]), report("a.yaml", vec![])]);
        assert_eq!(v["runs"][0]["artifacts"].as_array().unwrap().len(), 1);
        assert_eq!(v["runs"][0]["results"], serde_json::json!([]));
    }
}
