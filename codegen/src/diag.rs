//! Diagnostics: positions, spans, and the output formats (human, JSON, GitHub annotations, SARIF).

use serde::Serialize;
use std::fmt::Write as _;

/// A position in a source file: 1-based line, 1-based column counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

/// A range in a source file; `end` is exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: Pos,
    pub end: Pos,
}

impl Span {
    pub fn new(start: Pos, end: Pos) -> Self {
        Span { start, end }
    }
    pub fn point(p: Pos) -> Self {
        Span {
            start: p,
            end: Pos {
                line: p.line,
                col: p.col + 1,
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem found in a provider file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// A stable, kebab-case identifier of the rule (`unknown-key`, `undefined-input`, …).
    pub code: &'static str,
    pub message: String,
    pub span: Span,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            span,
            help: None,
        }
    }
    pub fn warning(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, span, message)
        }
    }
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// The diagnostics of one file, with the text needed to show them.
#[derive(Debug, Clone)]
pub struct FileReport {
    pub path: String,
    pub source: String,
    pub diagnostics: Vec<Diagnostic>,
}

/// How a file's diagnostics are printed, one entry per diagnostic. (A SARIF log, one for all
/// files, is `crate::sarif`'s, which renders these reports.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Human,
    Json,
    Github,
}

#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    file: &'a str,
    line: usize,
    column: usize,
    end: Pos,
    severity: Severity,
    code: &'a str,
    message: &'a str,
    help: Option<&'a str>,
}

impl FileReport {
    /// Renders every diagnostic of this file in `format`, each ending with a newline.
    pub fn render(&self, format: Format) -> String {
        let mut out = String::new();
        // Split once: looking each diagnostic's line up by scanning the source would make
        // rendering many diagnostics of a large file quadratic.
        let lines: Vec<&str> = match format {
            Format::Human if !self.diagnostics.is_empty() => self.source.lines().collect(),
            _ => Vec::new(),
        };
        for d in &self.diagnostics {
            match format {
                Format::Human => out.push_str(&self.render_human(d, &lines)),
                Format::Json => {
                    let j = JsonDiagnostic {
                        file: &self.path,
                        line: d.span.start.line,
                        column: d.span.start.col,
                        end: d.span.end,
                        severity: d.severity,
                        code: d.code,
                        message: &d.message,
                        help: d.help.as_deref(),
                    };
                    out.push_str(&serde_json::to_string(&j).unwrap_or_default());
                    out.push('\n');
                }
                // Rendered above, as one log.
                Format::Github => {
                    let level = match d.severity {
                        Severity::Error => "error",
                        Severity::Warning => "warning",
                    };
                    let mut msg = d.message.clone();
                    if let Some(h) = &d.help {
                        let _ = write!(msg, " (help: {h})");
                    }
                    let _ = writeln!(
                        out,
                        "::{level} file={},line={},col={},endLine={},endColumn={},title={}::{}",
                        gh_escape_property(&self.path),
                        d.span.start.line,
                        d.span.start.col,
                        d.span.end.line,
                        d.span.end.col,
                        d.code,
                        gh_escape_data(&msg)
                    );
                }
            }
        }
        out
    }

    fn render_human(&self, d: &Diagnostic, lines: &[&str]) -> String {
        let level = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let line_no = d.span.start.line;
        let gutter = line_no.to_string().len();
        let pad = " ".repeat(gutter);
        let mut out = String::new();
        let _ = writeln!(out, "{level}: {}", d.message);
        let _ = writeln!(
            out,
            "{pad}--> {}:{}:{}",
            self.path, line_no, d.span.start.col
        );
        if let Some(text) = lines.get(line_no.saturating_sub(1)) {
            let text = text.trim_end_matches('\r');
            // Long lines (minified JSON, a 10 MB scalar) are cut to a window around the span.
            let chars: Vec<char> = text.chars().collect();
            let start_col = d.span.start.col.max(1) - 1;
            let window_start = start_col.saturating_sub(60);
            let shown: String = chars.iter().skip(window_start).take(160).collect();
            let caret_len = if d.span.end.line == line_no && d.span.end.col > d.span.start.col {
                d.span.end.col - d.span.start.col
            } else {
                chars.len().saturating_sub(start_col).max(1)
            }
            .clamp(1, 160 - (start_col - window_start).min(159));
            let lead: String = chars
                .iter()
                .skip(window_start)
                .take(start_col - window_start)
                .map(|c| if *c == '\t' { '\t' } else { ' ' })
                .collect();
            let _ = writeln!(out, "{pad} |");
            let _ = writeln!(out, "{line_no} | {shown}");
            let _ = writeln!(out, "{pad} | {lead}{}", "^".repeat(caret_len));
        }
        if let Some(h) = &d.help {
            let _ = writeln!(out, "{pad} = help: {h}");
        }
        out.push('\n');
        out
    }
}

/// The closest of `candidates` to `word`, if one is close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| {
            (
                strsim::damerau_levenshtein(&word.to_lowercase(), &c.to_lowercase()),
                *c,
            )
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn gh_escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn gh_escape_property(s: &str) -> String {
    gh_escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> FileReport {
        FileReport {
            path: "p.yaml".into(),
            source: "a: 1\n  on_sucess: x\n".into(),
            diagnostics: vec![Diagnostic::error(
                "unknown-key",
                Span::new(Pos { line: 2, col: 3 }, Pos { line: 2, col: 12 }),
                "unknown key `on_sucess`",
            )
            .with_help("did you mean `on_success`?")],
        }
    }

    #[test]
    fn human_format_shows_location_source_caret_and_help() {
        let out = report().render(Format::Human);
        assert_eq!(
            out,
            "error: unknown key `on_sucess`\n --> p.yaml:2:3\n  |\n2 |   on_sucess: x\n  |   ^^^^^^^^^\n  = help: did you mean `on_success`?\n\n"
        );
    }

    #[test]
    fn json_format_is_one_object_per_line() {
        let out = report().render(Format::Json);
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["file"], "p.yaml");
        assert_eq!(v["line"], 2);
        assert_eq!(v["column"], 3);
        assert_eq!(v["end"]["col"], 12);
        assert_eq!(v["severity"], "error");
        assert_eq!(v["code"], "unknown-key");
        assert_eq!(v["help"], "did you mean `on_success`?");
    }

    #[test]
    fn github_format_is_a_workflow_command() {
        let out = report().render(Format::Github);
        assert!(
            out.starts_with("::error file=p.yaml,line=2,col=3,"),
            "{out}"
        );
        assert!(out.contains("::unknown key `on_sucess` (help: did you mean `on_success`?)"));
    }
}
