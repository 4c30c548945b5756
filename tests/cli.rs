//! The `otvi` command line as a new user meets it.

use std::io::{Read, Write};
use std::process::Command;

fn otvi() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_otvi"));
    c.env_remove("OTVI_JWT_SECRET")
        .env_remove("DATABASE_URL")
        .env_remove("OTVI_SESSION_KEY")
        .env_remove("OTVI_SESSION_KEY_OLD")
        .env_remove("OTVI_BIND");
    c
}

#[test]
fn serve_refuses_to_start_without_a_jwt_secret_and_says_how_to_set_one() {
    let out = otvi()
        .args(["serve", "--bind", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("OTVI_JWT_SECRET"), "{err}");
    assert!(err.contains("export OTVI_JWT_SECRET="), "{err}");
}

#[test]
fn token_mints_a_jwt_the_server_accepts() {
    let out = otvi()
        .env("OTVI_JWT_SECRET", LONG_SECRET)
        .args([
            "token",
            "--sub",
            "alice",
            "--role",
            "admin",
            "--providers",
            "acme,acme-shared",
            "--ttl",
            "60",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let claims = otvi_server::auth::Jwt::new(LONG_SECRET.as_bytes())
        .verify(token.trim())
        .unwrap();
    assert_eq!(claims.sub, "alice");
    assert!(claims.is_admin());
    assert_eq!(
        claims.providers,
        Some(vec!["acme".to_string(), "acme-shared".to_string()])
    );
    assert!(!claims.must_change_password);
}

#[test]
fn token_without_a_secret_fails() {
    let out = otvi().args(["token", "--sub", "alice"]).output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn providers_lists_flows_and_steps() {
    let out = otvi().arg("providers").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("acme (Acme TV) scope=per_user"), "{text}");
    assert!(text.contains("flow phone_otp (Phone Number)"), "{text}");
    assert!(
        text.contains("step 0: Send Verification Code  (then prompts: otp)"),
        "{text}"
    );
    assert!(
        text.contains("acme-shared (Acme TV (shared account)) scope=global"),
        "{text}"
    );
}

/// A secret `serve` takes: 32 bytes or more.
const LONG_SECRET: &str = "cli-test-secret-0123456789abcdef";

#[test]
fn serve_refuses_a_jwt_secret_under_32_bytes() {
    let out = otvi()
        .env("OTVI_JWT_SECRET", "s3cret")
        .env("OTVI_SESSION_KEY", otvi_server::seal::new_key())
        .args(["serve", "--bind", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("OTVI_JWT_SECRET is 6 bytes"), "{err}");
    assert!(err.contains("at least 32"), "{err}");
}

#[test]
fn provider_base_url_must_name_a_compiled_provider() {
    let out = otvi()
        .env("OTVI_JWT_SECRET", LONG_SECRET)
        .args(["serve", "--provider-base-url", "nope=http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no compiled provider `nope`"));
}

#[test]
fn serve_refuses_to_start_without_a_provider_secret_and_names_provider_and_variable() {
    let out = otvi()
        .env("OTVI_JWT_SECRET", LONG_SECRET)
        .env("OTVI_SESSION_KEY", otvi_server::seal::new_key())
        .env_remove("INDEE_API_KEY")
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--database-url",
            "sqlite::memory:",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("provider `indee` needs INDEE_API_KEY (secret `api_key`), which is not set"),
        "{err}"
    );
}

#[test]
fn serve_refuses_to_start_without_a_session_key_and_says_how_to_make_one() {
    let out = otvi()
        .env("OTVI_JWT_SECRET", LONG_SECRET)
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--database-url",
            "sqlite::memory:",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("OTVI_SESSION_KEY is not set"), "{err}");
    assert!(err.contains("otvi session-key"), "{err}");
    assert!(err.contains("--insecure-plaintext-sessions"), "{err}");
}

#[test]
fn a_malformed_session_key_is_refused_naming_the_variable() {
    for (var, value) in [
        ("OTVI_SESSION_KEY", "too-short".to_string()),
        ("OTVI_SESSION_KEY_OLD", "abcd".to_string()),
    ] {
        let out = otvi()
            .env("OTVI_JWT_SECRET", LONG_SECRET)
            .env("OTVI_SESSION_KEY", otvi_server::seal::new_key())
            .env(var, value)
            .args([
                "serve",
                "--bind",
                "127.0.0.1:0",
                "--database-url",
                "sqlite::memory:",
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(var), "{err}");
    }
}

#[test]
fn session_key_prints_a_new_key_each_time() {
    let key = || {
        let out = otvi().arg("session-key").output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let (a, b) = (key(), key());
    assert_ne!(a, b);
    assert!(otvi_server::seal::parse_key(&a).is_ok(), "{a}");
}

/// `otvi doctor` with every provider at `base` and the database at `db`.
fn doctor(db: &str, base: &str, extra: &[&str]) -> (i32, String) {
    let mut c = otvi();
    c.args(["doctor", "--database-url", db]).args(extra);
    for p in otvi::PROVIDERS.iter() {
        c.args(["--provider-base-url", &format!("{}={base}", p.id)]);
    }
    for p in otvi::PROVIDERS.iter() {
        for s in p.secrets {
            c.env_remove(s.env);
        }
    }
    let out = c
        .env("OTVI_JWT_SECRET", "0123456789abcdef0123456789abcdef")
        .env(
            "OTVI_SESSION_KEY",
            "0f1e2d3c4b5a69788796a5b4c3d2e1f000112233445566778899aabbccddeeff",
        )
        .env("INDEE_API_KEY", "k")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// A local HTTP server that answers 200 at the paths `ok` and 404 everywhere else; its URL.
/// It serves until the test process ends.
fn http_server(ok: &'static [&'static str]) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut head = Vec::new();
            let mut chunk = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&chunk[..n]),
                }
            }
            let head = String::from_utf8_lossy(&head);
            let path = head.split_whitespace().nth(1).unwrap_or("/");
            let status = if ok.contains(&path) {
                "200 OK"
            } else {
                "404 Not Found"
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    url
}

#[test]
fn doctor_migrates_on_request_then_finds_a_complete_deployment_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("d.db").display());
    // No file yet: not reachable, and nothing is created.
    let (code, out) = doctor(&db, "http://127.0.0.1:9", &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL  database") && out.contains("does not exist"),
        "{out}"
    );
    assert!(!dir.path().join("d.db").exists());
    let (code, out) = doctor(&db, "http://127.0.0.1:9", &["--migrate"]);
    assert_eq!(code, 0, "{out}");
    // Every provider at a host that answers at the base URL's path.
    let base = http_server(&["/"]);
    let (code, out) = doctor(&db, &base, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok    JWT secret"), "{out}");
    assert!(
        out.contains("ok    session key: OTVI_SESSION_KEY is valid"),
        "{out}"
    );
    assert!(
        out.contains("ok    provider indee secrets: set: INDEE_API_KEY"),
        "{out}"
    );
    assert!(out.contains("migrations applied"), "{out}");
    assert!(
        out.contains(&format!(
            "ok    provider acme base URL {base}: 127.0.0.1 resolves"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "ok    provider acme base URL {base}: answers HTTP 200 at /"
        )),
        "{out}"
    );
    assert!(
        out.contains("everything otvi serve needs is in place"),
        "{out}"
    );
    assert!(!out.contains("FAIL"), "{out}");
}

#[test]
fn doctor_names_every_problem_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    // An empty file is an empty SQLite database: reachable, nothing migrated.
    let file = dir.path().join("empty.db");
    std::fs::write(&file, b"").unwrap();
    let db = format!("sqlite://{}", file.display());
    let mut c = otvi();
    c.args(["doctor", "--database-url", &db]);
    for p in otvi::PROVIDERS.iter() {
        c.args([
            "--provider-base-url",
            &format!("{}=https://nowhere.invalid", p.id),
        ]);
        for s in p.secrets {
            c.env_remove(s.env);
        }
    }
    let out = c.env("OTVI_SESSION_KEY", "too-short").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("FAIL  JWT secret: OTVI_JWT_SECRET is not set"),
        "{text}"
    );
    assert!(
        text.contains("FAIL  session key: OTVI_SESSION_KEY"),
        "{text}"
    );
    assert!(
        text.contains("FAIL  provider indee secrets: not set: INDEE_API_KEY"),
        "{text}"
    );
    assert!(text.contains("migration(s) not applied"), "{text}");
    assert!(text.contains("otvi doctor --migrate"), "{text}");
    assert!(
        text.contains("FAIL  provider acme base URL https://nowhere.invalid: nowhere.invalid does not resolve"),
        "{text}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("problem(s) found"));
    // Nothing was changed: still empty.
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 0);
}

#[test]
fn doctor_checks_postgresql_reachable_and_migrated() {
    let (code, out) = doctor(
        "postgres://postgres@127.0.0.1:5432/test",
        "http://127.0.0.1:9",
        &["--migrate"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("ok    database postgres://postgres@127.0.0.1:5432/test: reachable"),
        "{out}"
    );
    let (code, out) = doctor(
        "postgres://postgres:pw@127.0.0.1:1/test",
        "http://127.0.0.1:9",
        &[],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL  database postgres://postgres:***@127.0.0.1:1/test: not reachable"),
        "{out}"
    );
    assert!(!out.contains(":pw@"), "{out}");
}

#[test]
fn doctor_warns_when_the_base_url_path_answers_404_while_the_host_answers() {
    // Only the host given, where the API lives under a path: the deployment.
    let host = http_server(&["/"]);
    let base = format!("{host}/wrong");
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("d.db").display());
    let (code, out) = doctor(&db, &base, &["--migrate"]);
    assert_eq!(code, 0, "a warning, not a failure: {out}");
    assert!(
        out.contains(&format!(
            "warn  provider acme base URL {base}: answers HTTP 404 at /wrong while its / answers HTTP 200: the path may be wrong"
        )),
        "{out}"
    );
    assert!(
        out.contains("--provider-base-url replaces the whole base URL, path included"),
        "{out}"
    );
    assert!(out.contains("no problems; "), "{out}");
}

#[test]
fn doctor_never_fails_because_a_host_answers_404_on_its_root() {
    let host = http_server(&[]);
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("d.db").display());
    let (code, out) = doctor(&db, &host, &["--migrate"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "warn  provider acme base URL {host}: answers HTTP 404 at /; many APIs do at their root"
        )),
        "{out}"
    );
    assert!(!out.contains("FAIL"), "{out}");
}
