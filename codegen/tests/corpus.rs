//! The compile-fail corpus: every file under `tests/invalid/` states, in trailing comments, the
//! diagnostics it must produce — exactly those, at those positions.
//!
//! ```text
//! # expect: error 15:11 unknown-key: unknown key `on_sucess` in a step
//! # expect-help: did you mean `on_success`?
//! ```
//!
//! A line `# check: --require-samples` checks the file with that option. `file:` samples are
//! read relative to the file, from `tests/invalid/samples/`.

use otvi_codegen::{check_one_with, Options};
use std::path::Path;

#[test]
fn every_invalid_file_reports_exactly_its_expected_diagnostics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/invalid");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 40, "the corpus has {} files", files.len());
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let mut expected: Vec<String> = Vec::new();
        let mut helps: Vec<&str> = Vec::new();
        for line in text.lines() {
            if let Some(e) = line.strip_prefix("# expect: ") {
                expected.push(e.to_string());
            } else if let Some(h) = line.strip_prefix("# expect-help: ") {
                helps.push(h);
            }
        }
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        if expected.is_empty() {
            failures.push(format!("{name}: no `# expect:` line"));
            continue;
        }
        let options = Options {
            require_samples: text.lines().any(|l| l == "# check: --require-samples"),
        };
        let checked = check_one_with(file.to_str().unwrap(), text.as_bytes(), options);
        let diags = &checked.report.diagnostics;
        let found: Vec<String> = diags
            .iter()
            .map(|d| {
                format!(
                    "{} {}:{} {}: {}",
                    if d.is_error() { "error" } else { "warning" },
                    d.span.start.line,
                    d.span.start.col,
                    d.code,
                    d.message
                )
            })
            .collect();
        let matches = expected.len() == found.len()
            && expected
                .iter()
                .zip(&found)
                .all(|(e, f)| f.starts_with(e.as_str()));
        if !matches {
            failures.push(format!(
                "{name}:\n  expected {expected:#?}\n  found {found:#?}"
            ));
        }
        for h in helps {
            if !diags
                .iter()
                .any(|d| d.help.as_deref().is_some_and(|x| x.contains(h)))
            {
                failures.push(format!("{name}: no help containing {h:?}"));
            }
        }
        if expected.iter().any(|e| e.starts_with("error")) && checked.provider.is_some() {
            failures.push(format!("{name}: has errors but produced a model"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
