//! `check --format sarif`: one SARIF 2.1.0 log, valid against the official OASIS schema
//! (vendored in `tests/sarif/`, see its README), whose results are the diagnostics the human
//! format prints.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).to_path_buf()
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_otvi-codegen"))
        .current_dir(root())
        .args(args)
        .output()
        .unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

/// A validator for the official SARIF 2.1.0 schema: draft-04, every `$ref` inside the file,
/// formats (`uri`, `uri-reference`) checked.
fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(include_str!("sarif/sarif-schema-2.1.0.json"))
        .expect("the vendored schema is JSON");
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .should_validate_formats(true)
        .build(&schema)
        .expect("the vendored schema compiles without fetching anything")
}

/// Parses `out` as one SARIF log and asserts it is valid against the schema.
fn valid_log(out: &str) -> Value {
    let log: Value = serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let errors: Vec<String> = validator()
        .iter_errors(&log)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "invalid SARIF: {errors:#?}\n{out}");
    assert_eq!(log["version"], "2.1.0");
    assert_eq!(
        log["$schema"],
        "https://json.schemastore.org/sarif-2.1.0.json"
    );
    assert_eq!(log["runs"].as_array().map(Vec::len), Some(1), "{out}");
    let driver = &log["runs"][0]["tool"]["driver"];
    assert_eq!(driver["name"], "otvi-codegen");
    assert_eq!(driver["version"], env!("CARGO_PKG_VERSION"));
    log
}

/// How many provider files `check DIR` reads: `*.yaml` and `*.yml`, not in subdirectories.
fn provider_files(dir: &str) -> usize {
    std::fs::read_dir(root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
        })
        .count()
}

fn results(log: &Value) -> &Vec<Value> {
    log["runs"][0]["results"].as_array().unwrap()
}

/// One diagnostic as the human format prints it.
#[derive(Debug, PartialEq)]
struct Human {
    level: String,
    message: String,
    path: String,
    line: u64,
    col: u64,
    carets: u64,
    help: Option<String>,
}

fn parse_human(out: &str) -> Vec<Human> {
    out.split_terminator("\n\n")
        .map(|block| {
            let lines: Vec<&str> = block.lines().collect();
            let (level, message) = lines[0].split_once(": ").unwrap();
            let at = lines[1].trim_start().strip_prefix("--> ").unwrap();
            let mut parts = at.rsplitn(3, ':');
            let col = parts.next().unwrap().parse().unwrap();
            let line = parts.next().unwrap().parse().unwrap();
            let path = parts.next().unwrap().to_string();
            let carets = lines
                .iter()
                .skip(2)
                .find(|l| {
                    l.ends_with('^') && l.chars().all(|c| matches!(c, '^' | ' ' | '|' | '\t'))
                })
                .map_or(0, |l| l.matches('^').count() as u64);
            let help = lines
                .iter()
                .find_map(|l| l.trim_start().strip_prefix("= help: "))
                .map(str::to_string);
            Human {
                level: level.to_string(),
                message: message.to_string(),
                path,
                line,
                col,
                carets,
                help,
            }
        })
        .collect()
}

/// Asserts that the SARIF results are, in order, the diagnostics the human format printed.
fn assert_matches_human(log: &Value, human: &[Human]) {
    let results = results(log);
    assert_eq!(results.len(), human.len(), "{log:#}");
    let rules = log["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap();
    let artifacts = log["runs"][0]["artifacts"].as_array().unwrap();
    for (r, h) in results.iter().zip(human) {
        assert_eq!(r["level"], h.level.as_str(), "{r:#} vs {h:?}");
        let text = r["message"]["text"].as_str().unwrap();
        match &h.help {
            Some(help) => {
                assert_eq!(text, format!("{}\nhelp: {help}", h.message));
                assert_eq!(r["properties"]["help"], help.as_str());
            }
            None => assert_eq!(text, h.message),
        }
        let rule = &rules[r["ruleIndex"].as_u64().unwrap() as usize];
        assert_eq!(rule["id"], r["ruleId"]);
        assert!(rule["shortDescription"]["text"].is_string());

        let loc = &r["locations"][0]["physicalLocation"];
        let file = &loc["artifactLocation"];
        // Relative, with forward slashes, against the directory `check` ran in.
        assert_eq!(file["uri"], h.path.as_str(), "{r:#}");
        assert_eq!(file["uriBaseId"], "%SRCROOT%");
        let artifact = &artifacts[file["index"].as_u64().unwrap() as usize];
        assert_eq!(artifact["location"]["uri"], file["uri"]);

        let region = &loc["region"];
        assert_eq!(region["startLine"].as_u64(), Some(h.line), "{r:#} vs {h:?}");
        assert_eq!(
            region["startColumn"].as_u64(),
            Some(h.col),
            "{r:#} vs {h:?}"
        );
        // The carets mark [start, end) when the span is one line, not empty and not cut short.
        let (start, end) = (
            region["startColumn"].as_u64().unwrap(),
            region["endColumn"].as_u64().unwrap(),
        );
        if region["endLine"] == region["startLine"] && end > start && h.carets < 100 {
            assert_eq!(end - start, h.carets, "{r:#} vs {h:?}");
        }
    }
}

#[test]
fn a_broken_file_gives_a_valid_log_matching_the_human_diagnostics() {
    let file = "tests/invalid/undefined-input.yaml";
    let sarif = run(&["check", "--format", "sarif", file]);
    assert_eq!(sarif.code, 1, "{}", sarif.stderr);
    // The human summary stays with the human format.
    assert_eq!(sarif.stderr, "");
    let log = valid_log(&sarif.stdout);
    let human = run(&["check", file]);
    assert_eq!(human.code, 1);
    assert_matches_human(&log, &parse_human(&human.stdout));

    // Concretely: the error at 14:31 and its 15 characters, the warning at 8:18.
    let results = results(&log);
    let e = results.iter().find(|r| r["level"] == "error").unwrap();
    assert_eq!(e["ruleId"], "undefined-input");
    let loc = &e["locations"][0]["physicalLocation"];
    assert_eq!(loc["artifactLocation"]["uri"], file);
    assert_eq!(
        loc["region"],
        serde_json::json!({"startLine": 14, "startColumn": 31, "endLine": 14, "endColumn": 46})
    );
    assert_eq!(
        e["message"]["text"],
        "`{{input.emial}}` is not defined at this step\nhelp: did you mean `{{input.email}}`?"
    );
    let w = results.iter().find(|r| r["level"] == "warning").unwrap();
    assert_eq!(w["ruleId"], "unused-input");
    assert_eq!(
        w["locations"][0]["physicalLocation"]["region"]["startLine"],
        8
    );
    let rules: Vec<&str> = log["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["undefined-input", "unused-input"]);
}

#[test]
fn the_unknown_key_span_is_converted_column_for_column() {
    let file = "tests/invalid/unknown-key-on-sucess.yaml";
    let sarif = run(&["check", "--format", "sarif", file]);
    assert_eq!(sarif.code, 1);
    let log = valid_log(&sarif.stdout);
    // The human format: `--> …:15:11` and nine carets under `on_sucess`.
    let r = results(&log)
        .iter()
        .find(|r| r["ruleId"] == "unknown-key")
        .unwrap();
    assert_eq!(r["level"], "error");
    assert_eq!(
        r["locations"][0]["physicalLocation"]["region"],
        serde_json::json!({"startLine": 15, "startColumn": 11, "endLine": 15, "endColumn": 20})
    );
}

#[test]
fn every_invalid_file_goes_into_one_log() {
    let sarif = run(&["check", "--format", "sarif", "tests/invalid/"]);
    assert_eq!(sarif.code, 1);
    let log = valid_log(&sarif.stdout);
    let human = run(&["check", "tests/invalid/"]);
    assert_matches_human(&log, &parse_human(&human.stdout));
    // Every file checked is an artifact, with diagnostics or not.
    assert_eq!(
        log["runs"][0]["artifacts"].as_array().unwrap().len(),
        provider_files("tests/invalid")
    );
    // One rule per code that occurs, each once.
    let rules = log["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap();
    let codes: std::collections::BTreeSet<&str> = results(&log)
        .iter()
        .map(|r| r["ruleId"].as_str().unwrap())
        .collect();
    assert_eq!(rules.len(), codes.len());
}

#[test]
fn a_clean_directory_gives_a_valid_log_with_no_results() {
    let sarif = run(&[
        "check",
        "--deny-warnings",
        "--format",
        "sarif",
        "providers/",
    ]);
    assert_eq!(sarif.code, 0, "{}", sarif.stdout);
    assert_eq!(sarif.stderr, "");
    let log = valid_log(&sarif.stdout);
    assert_eq!(log["runs"][0]["results"], serde_json::json!([]));
    assert_eq!(
        log["runs"][0]["tool"]["driver"]["rules"],
        serde_json::json!([])
    );
    let artifacts = log["runs"][0]["artifacts"].as_array().unwrap();
    assert_eq!(artifacts.len(), provider_files("providers"));
    for a in artifacts {
        let uri = a["location"]["uri"].as_str().unwrap();
        assert!(
            uri.starts_with("providers/") && !uri.contains('\\'),
            "{uri}"
        );
    }
}

#[test]
fn deny_warnings_makes_warnings_errors() {
    let file = "tests/invalid/warning-unused-input.yaml";
    let allowed = run(&["check", "--format", "sarif", file]);
    assert_eq!(allowed.code, 0);
    let log = valid_log(&allowed.stdout);
    assert!(!results(&log).is_empty());
    assert!(results(&log).iter().all(|r| r["level"] == "warning"));

    let denied = run(&["check", "--deny-warnings", "--format", "sarif", file]);
    assert_eq!(denied.code, 1);
    let log = valid_log(&denied.stdout);
    assert!(!results(&log).is_empty());
    assert!(results(&log).iter().all(|r| r["level"] == "error"));
}

#[test]
fn an_absolute_path_is_a_file_uri() {
    let file = root()
        .join("tests/invalid/undefined-input.yaml")
        .canonicalize()
        .unwrap();
    let sarif = run(&["check", "--format", "sarif", file.to_str().unwrap()]);
    assert_eq!(sarif.code, 1);
    let log = valid_log(&sarif.stdout);
    let location = &results(&log)[0]["locations"][0]["physicalLocation"]["artifactLocation"];
    let uri = location["uri"].as_str().unwrap();
    assert!(uri.starts_with("file:///"), "{uri}");
    assert!(
        uri.ends_with("/tests/invalid/undefined-input.yaml"),
        "{uri}"
    );
    assert!(location.get("uriBaseId").is_none());
}

#[test]
fn render_of_one_file_is_a_valid_log_with_encoded_uri_and_character_columns() {
    // `😀` is one character, two UTF-16 code units and four bytes: columns count characters,
    // as the run's `columnKind` says.
    let source = "provider: { name: \"😀\", idd: x }\n";
    let outcome = otvi_codegen::check_sources([("dir with space/a.yaml", source.as_bytes())]);
    let report = &outcome.files[0].report;
    let log = valid_log(&otvi_codegen::sarif::render([report]));
    assert_eq!(log["runs"][0]["columnKind"], "unicodeCodePoints");
    let results = results(&log);
    assert_eq!(results.len(), report.diagnostics.len());
    for r in results {
        let file = &r["locations"][0]["physicalLocation"]["artifactLocation"];
        assert_eq!(file["uri"], "dir%20with%20space/a.yaml");
    }
    let r = results
        .iter()
        .find(|r| r["ruleId"] == "unknown-key")
        .unwrap();
    assert_eq!(
        r["locations"][0]["physicalLocation"]["region"],
        serde_json::json!({"startLine": 1, "startColumn": 24, "endLine": 1, "endColumn": 27})
    );
}

#[test]
fn the_vendored_schema_rejects_broken_logs() {
    // The validation above is only worth something if the schema bites.
    let out = run(&[
        "check",
        "--format",
        "sarif",
        "tests/invalid/undefined-input.yaml",
    ])
    .stdout;
    let good = valid_log(&out);
    let validator = validator();
    let region = "/runs/0/results/0/locations/0/physicalLocation/region/startColumn";
    for (pointer, bad) in [
        (region, serde_json::json!(0)),
        ("/runs/0/results/0/level", serde_json::json!("fatal")),
        ("/runs/0/results/0/message", serde_json::json!({})),
        ("/version", serde_json::json!("2.0.0")),
        ("/runs/0/columnKind", serde_json::json!("bytes")),
    ] {
        let mut log = good.clone();
        *log.pointer_mut(pointer).unwrap() = bad;
        assert!(!validator.is_valid(&log), "{pointer} accepted");
    }
}
