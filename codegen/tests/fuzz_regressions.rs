//! Inputs kept from fuzzing the provider-file front end (fuzz/, target `provider_file`): every
//! file in `fuzz/regressions/provider_file/` goes through what the fuzz target does — check,
//! render the diagnostics in every format, and, when the file is clean, emit and parse the
//! emitted Rust — and must come back, without panicking, without hanging.
//! The same for `fuzz/regressions/login_body/` is in runtime/tests/fuzz_regressions.rs.

use otvi_codegen::diag::Format;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A guard against hangs, not a measure of speed: the fuzzer holds each input to 1 s in an
/// optimized build (`fuzz/run.sh`); a test only fails on an input that does not come back at
/// all in a time no noisy machine explains.
const LIMIT: Duration = Duration::from_secs(60);

/// What the fuzz target `provider_file` does with one input (fuzz/src/lib.rs).
fn provider_file(bytes: &[u8]) {
    let checked = otvi_codegen::check_one("fuzz.yaml", bytes);
    for format in [Format::Human, Format::Json, Format::Github] {
        let _ = checked.report.render(format);
    }
    let _ = otvi_codegen::sarif::render([&checked.report]);
    if let Some(p) = &checked.provider {
        for (name, src) in otvi_codegen::emit::emit_all(&[("fuzz.yaml", p)]) {
            if let Err(e) = syn::parse_file(&src) {
                panic!("emitted {name} is not valid Rust: {e}\n{src}");
            }
            // What lexes but rustc still refuses: bidirectional-override characters in a
            // comment or literal (deny-by-default lints).
            if let Some(c) = src
                .chars()
                .find(|c| matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'))
            {
                panic!("emitted {name} holds {c:?}\n{src}");
            }
        }
    }
}

fn inputs(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_kept_provider_file_input_is_handled_in_time() {
    let files = inputs("provider_file");
    assert!(files.len() >= 10, "only {} inputs", files.len());
    let mut failures = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let (tx, rx) = mpsc::channel();
        let start = Instant::now();
        // A thread of its own: a panic is caught by `join`, a hang is left behind rather than
        // blocking the test.
        let worker = std::thread::spawn(move || {
            provider_file(&bytes);
            let _ = tx.send(());
        });
        match rx.recv_timeout(LIMIT) {
            Ok(()) => {
                let _ = worker.join();
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                failures.push(format!("{name}: still running after {LIMIT:?}"));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = worker.join();
                failures.push(format!("{name}: panicked after {:?}", start.elapsed()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Runs `provider_file` on `src` in a thread of its own; fails if it panics or outlasts `LIMIT`.
fn in_time(what: &str, src: String) {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        provider_file(src.as_bytes());
        let _ = tx.send(());
    });
    match rx.recv_timeout(LIMIT) {
        Ok(()) => worker.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: still running after {LIMIT:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let _ = worker.join();
            panic!("{what}: panicked");
        }
    }
}

fn codes(src: &str) -> Vec<&'static str> {
    otvi_codegen::check_one("x.yaml", src.as_bytes())
        .report
        .diagnostics
        .iter()
        .map(|d| d.code)
        .collect()
}

fn errors(src: &str) -> Vec<&'static str> {
    otvi_codegen::check_one("x.yaml", src.as_bytes())
        .report
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.code)
        .collect()
}

const HEAD: &str = "provider: { id: p, name: P }\ndefaults: { base_url: \"https://x.example\" }\n";

// The cases below were too large to keep as files. Each took seconds (the first two, minutes
// in a debug build) before the fix named in its comment.

/// Duplicate keys were found by scanning every earlier key, and each diagnostic's line by
/// scanning the file: 30 000 keys took 2 s to parse and 8 s to render (optimized).
#[test]
fn a_mapping_of_thirty_thousand_keys_is_checked_and_rendered_in_time() {
    let mut src = String::from("provider: { id: p, name: P }\n");
    for i in 0..30_000 {
        src.push_str(&format!("k{i}: 1\n"));
    }
    src.push_str("k7: again\n");
    let c = codes(&src);
    assert_eq!(
        c.len(),
        30_002,
        "missing `auth`, 30 000 unknown keys, one duplicate"
    );
    assert!(c.contains(&"duplicate-key"));
    in_time("30 000 keys", src);
}

/// Each step carries the set of values defined before it, so checking a flow of n steps costs
/// n² and emitting it about 2 KB of Rust a step: 2 000 steps took 3 s. A provider has at most
/// `MAX_STEPS` steps across its flows.
#[test]
fn a_provider_of_more_than_128_steps_is_an_error_found_in_time() {
    let mut src = format!("{HEAD}auth:\n  flows:\n");
    src.push_str(
        "    - id: f\n      name: F\n      inputs: [ { key: u, label: U } ]\n      steps:\n",
    );
    let step = |i: usize| {
        format!(
            "        - {{ id: s{i}, name: S{i}, request: {{ method: POST, path: \"/a/{{{{input.u}}}}\" }}, on_success: {{ extract: {{ t{i}: \"$.t\" }} }} }}\n"
        )
    };
    let ok: String = (0..otvi_codegen::lower::MAX_STEPS).map(step).collect();
    assert_eq!(codes(&format!("{src}{ok}")), Vec::<&str>::new());
    let many: String = (0..2_000).map(step).collect();
    let src = format!("{src}{many}");
    assert_eq!(errors(&src), vec!["too-many-steps"]);
    in_time("2 000 steps", src);
    // Across flows: the flow that goes over is named, once.
    let mut src = format!("{HEAD}auth:\n  flows:\n");
    for f in 0..200 {
        src.push_str(&format!(
            "    - {{ id: f{f}, name: F, steps: [ {{ name: S, request: {{ method: GET, path: /x }} }} ] }}\n"
        ));
    }
    assert_eq!(errors(&src), vec!["too-many-steps"]);
}

/// Aliases multiplied a 20 KB file into 17 MB of Rust (11 s): the alias budget counts the
/// bytes of the scalars an alias repeats, and is 10 000 nodes.
#[test]
fn aliases_cannot_multiply_a_small_file_into_a_slow_one() {
    let body = format!("{{\"a\": \"{}\"}}", "{{input.u}}x".repeat(1_500));
    let mut src = format!(
        "{HEAD}auth:\n  flows:\n    - id: f\n      name: F\n      inputs: [ {{ key: u, label: U }} ]\n      steps:\n        - &s {{ name: S, request: {{ method: POST, path: /a, body: '{body}' }} }}\n"
    );
    for _ in 0..100 {
        src.push_str("        - *s\n");
    }
    assert_eq!(codes(&src), vec!["yaml-alias-budget"]);
    in_time("a long template repeated by aliases", src);
    // Three thousand aliased steps: 5 MB of Rust.
    let mut src = format!(
        "{HEAD}auth:\n  flows:\n    - id: f\n      name: F\n      inputs: [ {{ key: u, label: U }} ]\n      steps:\n        - &s {{ name: S, request: {{ method: POST, path: \"/a/{{{{input.u}}}}\" }} }}\n"
    );
    for _ in 0..3_000 {
        src.push_str("        - *s\n");
    }
    assert_eq!(codes(&src), vec!["yaml-alias-budget"]);
    in_time("3 000 aliased steps", src);
}
