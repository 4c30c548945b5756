//! The team template (`examples/team/`) used as a new user would: copied into a temporary
//! directory, its dependencies pointed at this checkout, built with cargo, served against a
//! mock of its provider's API and logged in to; then its provider file is broken, and
//! `cargo build` fails with the checker's diagnostic, file and line.
//!
//! Speed: the copy's intermediate artifacts go to the build directory of the `cargo test` that
//! runs this test (`build.build-dir`) and it uses this workspace's lock file, so the crates
//! compiled for the workspace are reused and only the template's own crate compiles. Cargo
//! runs `--offline`: `cargo test` fetched every crate the copy needs.

mod common;

use common::*;
use otvi_mocks::acme::MockProvider;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_team_template_builds_serves_a_login_and_fails_on_a_broken_provider_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let build_dir = build_dir();
    // A fixed place outside this workspace (cargo would take a crate inside it for one of its
    // members), named after this checkout: runs reuse, not pile up, the copy's artifacts,
    // which cargo names by path.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(root, &mut h);
    let scratch = std::env::temp_dir().join(format!(
        "otvi-team-template-{:016x}",
        std::hash::Hasher::finish(&h)
    ));
    let team = scratch.join("team");
    if team.exists() {
        std::fs::remove_dir_all(&team).unwrap();
    }
    copy_all(&root.join("examples/team"), &team);
    let manifest = std::fs::read_to_string(team.join("Cargo.toml")).unwrap();
    let git = r#"git = "https://github.com/otvi-flows/otvi-flows""#;
    assert!(manifest.contains(git), "{manifest}");
    let mut pointed = String::new();
    for line in manifest.lines() {
        let dir = ["runtime", "server", "codegen"]
            .into_iter()
            .find(|d| line.starts_with(&format!("otvi-{d} =")));
        match dir {
            Some(d) => pointed.push_str(&line.replace(
                git,
                &format!("path = {:?}", root.join(d).display().to_string()),
            )),
            None => pointed.push_str(line),
        }
        pointed.push('\n');
    }
    std::fs::write(team.join("Cargo.toml"), pointed).unwrap();
    std::fs::copy(root.join("Cargo.lock"), team.join("Cargo.lock")).unwrap();

    let cargo = Cargo {
        dir: team.clone(),
        target_dir: scratch.join("target"),
        build_dir,
    };
    let built = cargo.build();
    assert!(
        built.status.success(),
        "the template does not build:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let bin = cargo.binary();

    // Served against a mock of its provider's API, it completes a login.
    let mock = MockProvider::start().await.unwrap();
    let db = scratch.join("team.db");
    let _ = std::fs::remove_file(&db);
    let args = [
        "--database-url".to_string(),
        format!("sqlite://{}?mode=rwc", db.display()),
        "--provider-base-url".to_string(),
        format!("example-tv={}", mock.url()),
    ];
    let server = RealServer::start_bin(&bin, &args, &[]);
    let token = Command::new(&bin)
        .args(["token", "--sub", "alice"])
        .env("OTVI_JWT_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(token.status.success());
    let token = String::from_utf8(token.stdout).unwrap().trim().to_string();
    let s = &server.server;
    let login = r#"{"flow_id":"email_password","step":0,"inputs":{"email":"dave@example.com","password":"pw"}}"#;
    let (status, body) = s.login(&token, "example-tv", login).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["success"], true, "{body}");
    assert_eq!(json(&body)["user_name"], "dave", "{body}");
    assert_eq!(s.check(&token, "example-tv").await.1, r#"{"valid":true}"#);
    assert_eq!(s.logout(&token, "example-tv").await.0, 200);
    assert_eq!(mock.received_on("/v2/auth/logout").len(), 1);
    assert_eq!(s.check(&token, "example-tv").await.1, r#"{"valid":false}"#);
    server.stop();

    // A broken provider file fails `cargo build` with the diagnostic, its file and line.
    let file = team.join("providers/example-tv.yaml");
    let yaml = std::fs::read_to_string(&file).unwrap();
    let line = yaml
        .lines()
        .position(|l| l.trim_start().starts_with("on_success:"))
        .unwrap()
        + 1;
    std::fs::write(&file, yaml.replace("on_success:", "on_sucess:")).unwrap();
    let broken = cargo.build();
    let log = String::from_utf8_lossy(&broken.stderr);
    assert!(
        !broken.status.success(),
        "a broken provider file built:\n{log}"
    );
    for expected in [
        "error: unknown key `on_sucess` in a step".to_string(),
        format!("--> providers/example-tv.yaml:{line}:"),
        "help: did you mean `on_success`?".to_string(),
        "run `otvi-codegen check providers` to see them".to_string(),
    ] {
        assert!(log.contains(&expected), "no `{expected}` in:\n{log}");
    }
}

/// The build directory of the `cargo test` running this test: this binary is
/// `<build-dir>/<profile>/deps/team_template-<hash>`.
fn build_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let deps = exe.parent().filter(|d| d.ends_with("deps"))?;
    Some(deps.parent()?.parent()?.to_path_buf())
}

/// Copies the file or directory `from` to `to`, leaving out a `target` directory.
fn copy_all(from: &Path, to: &Path) {
    if from.is_dir() {
        if from.file_name().is_some_and(|n| n == "target") {
            return;
        }
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            copy_all(&path, &to.join(path.file_name().unwrap()));
        }
    } else {
        std::fs::copy(from, to).unwrap();
    }
}

struct Cargo {
    dir: PathBuf,
    target_dir: PathBuf,
    /// Where the copy's intermediate artifacts go: the running `cargo test`'s build directory.
    build_dir: Option<PathBuf>,
}

impl Cargo {
    fn release(&self) -> bool {
        self.build_dir.as_deref().is_some_and(|d| {
            std::env::current_exe()
                .unwrap()
                .starts_with(d.join("release"))
        })
    }

    /// `cargo build --offline [--release]` in the copy.
    fn build(&self) -> Output {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut c = Command::new(cargo);
        c.args(["build", "--offline"])
            .current_dir(&self.dir)
            .env("CARGO_TARGET_DIR", &self.target_dir)
            .env("CARGO_TERM_COLOR", "never")
            .env_remove("CARGO_BUILD_TARGET_DIR");
        if self.release() {
            c.arg("--release");
        }
        match &self.build_dir {
            Some(d) => c.env("CARGO_BUILD_BUILD_DIR", d),
            None => c.env_remove("CARGO_BUILD_BUILD_DIR"),
        };
        c.output().expect("cargo runs")
    }

    fn binary(&self) -> PathBuf {
        let profile = if self.release() { "release" } else { "debug" };
        self.target_dir
            .join(profile)
            .join(format!("team-auth{}", std::env::consts::EXE_SUFFIX))
    }
}
