//! Inputs kept from fuzzing the login request decoder (fuzz/, target `login_body`): every file
//! in `fuzz/regressions/login_body/` goes through `otvi_server::api::parse_login` and must
//! come back, without panicking, without hanging. (The provider-file inputs are
//! run by codegen/tests/fuzz_regressions.rs; this one lives here because otvi-codegen does not
//! depend on the runtime.)

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A guard against hangs, not a measure of speed: the fuzzer holds each input to 1 s in an
/// optimized build (`fuzz/run.sh`); a test only fails on an input that does not come back at
/// all in a time no noisy machine explains.
const LIMIT: Duration = Duration::from_secs(60);

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
fn every_kept_login_body_is_decoded_in_time() {
    let files = inputs("login_body");
    assert!(files.len() >= 10, "only {} inputs", files.len());
    let mut failures = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let (tx, rx) = mpsc::channel();
        let start = Instant::now();
        let worker = std::thread::spawn(move || {
            let _ = otvi_server::api::parse_login(&bytes);
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

/// What the decoder answers for a few of them: a value, or a 400 with a message.
#[test]
fn kept_login_bodies_decode_as_expected() {
    use otvi_server::api::parse_login;
    let (flow, step, inputs) = parse_login(
        br#"{"flow_id":"f","step":18446744073709551615,"inputs":{"n":1,"b":true,"z":null}}"#,
    )
    .unwrap();
    assert_eq!((flow.as_str(), step), ("f", usize::MAX));
    assert_eq!(inputs.len(), 2);
    for bad in [
        &b""[..],
        b"[]",
        b"{\"flow_id\":1,\"step\":0}",
        b"{\"flow_id\":\"f\",\"step\":-1}",
        b"{\"flow_id\":\"f\",\"step\":0,\"inputs\":{\"a\":[1]}}",
        b"{\"flow_id\":\"f\",\"step\":0,\"inputs\":[]}",
        b"\xff",
    ] {
        assert!(
            parse_login(bad).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}
