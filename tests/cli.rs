//! The `otvi` command line as a new user meets it.

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
        .env("OTVI_JWT_SECRET", "s3cret")
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
    let claims = otvi_runtime::auth::Jwt::new(b"s3cret")
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

#[test]
fn provider_base_url_must_name_a_compiled_provider() {
    let out = otvi()
        .env("OTVI_JWT_SECRET", "s")
        .args(["serve", "--provider-base-url", "nope=http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no compiled provider `nope`"));
}

#[test]
fn serve_refuses_to_start_without_a_provider_secret_and_names_provider_and_variable() {
    let out = otvi()
        .env("OTVI_JWT_SECRET", "s")
        .env("OTVI_SESSION_KEY", otvi_runtime::seal::new_key())
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
        .env("OTVI_JWT_SECRET", "s")
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
            .env("OTVI_JWT_SECRET", "s")
            .env("OTVI_SESSION_KEY", otvi_runtime::seal::new_key())
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
    assert!(otvi_runtime::seal::parse_key(&a).is_ok(), "{a}");
}
