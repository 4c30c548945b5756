//! `otvi demo` walks a new user through the two-step login: the curl lines it prints work.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a printed `curl …` line with reqwest: method, URL, `-d` body; `$TOKEN` substituted.
async fn run_curl(line: &str, token: &str) -> serde_json::Value {
    let post = line.contains("-X POST");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap();
    let body = line
        .split_once("-d '")
        .map(|(_, b)| b.trim_end_matches('\'').to_string());
    let client = reqwest::Client::new();
    let mut rb = if post {
        client.post(url)
    } else {
        client.get(url)
    };
    rb = rb.header("Authorization", format!("Bearer {token}"));
    if let Some(b) = body {
        rb = rb.header("Content-Type", "application/json").body(b);
    }
    let r = rb.send().await.unwrap();
    assert_eq!(r.status(), 200, "{line}");
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_prints_a_token_and_curl_lines_that_log_in_check_and_log_out() {
    let child = Command::new(env!("CARGO_BIN_EXE_otvi"))
        .args(["demo", "--bind", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Kill(child);
    let stdout = child.0.stdout.take().unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let done = line.contains("one path of every shipped provider");
        lines.push(line);
        if done {
            break;
        }
    }
    let token = lines
        .iter()
        .find_map(|l| l.strip_prefix("export TOKEN="))
        .unwrap()
        .to_string();
    let curls_of = |provider: &str| -> Vec<String> {
        lines
            .iter()
            .filter(|l| l.starts_with("curl ") && l.contains(&format!("/providers/{provider}/")))
            .cloned()
            .collect()
    };

    let curls = curls_of("acme");
    assert_eq!(curls.len(), 5, "{lines:#?}");
    let step0 = run_curl(&curls[0], &token).await;
    assert_eq!(step0["next_step"]["step_index"], 1);
    assert_eq!(run_curl(&curls[1], &token).await["success"], true);
    assert_eq!(
        run_curl(&curls[2], &token).await,
        serde_json::json!({"valid": true})
    );
    assert_eq!(
        run_curl(&curls[3], &token).await,
        serde_json::json!({"success": true})
    );
    assert_eq!(
        run_curl(&curls[2], &token).await,
        serde_json::json!({"valid": false})
    );
    assert_eq!(run_curl(&curls[4], &token).await["user_name"], "alice");

    let curls = curls_of("opentv");
    assert_eq!(curls.len(), 2, "{lines:#?}");
    let step0 = run_curl(&curls[0], &token).await;
    let account = &step0["next_step"]["fields"][0];
    assert_eq!(account["field_type"], "choice", "{step0}");
    assert_eq!(account["options"][1]["value"], "kids", "{step0}");
    assert_eq!(run_curl(&curls[1], &token).await["success"], true);

    let curls = curls_of("truenas");
    assert_eq!(curls.len(), 2, "{lines:#?}");
    assert_eq!(
        run_curl(&curls[0], &token).await["next_step"]["step_index"],
        1
    );
    assert_eq!(run_curl(&curls[1], &token).await["success"], true);

    let curls = curls_of("indee");
    assert_eq!(curls.len(), 4, "{lines:#?}");
    assert_eq!(run_curl(&curls[0], &token).await["success"], true);
    assert_eq!(run_curl(&curls[1], &token).await["success"], true);
    let sso = run_curl(&curls[2], &token).await;
    let link = sso["next_step"]["fields"][0]["value"].as_str().unwrap();
    let page = reqwest::get(link).await.unwrap().text().await.unwrap();
    let code = otvi_mocks::indee::code_from_page(&page).unwrap();
    let finish = curls[3].replace("\"CODE\"", &format!("\"{code}\""));
    assert_eq!(run_curl(&finish, &token).await["success"], true);
}
