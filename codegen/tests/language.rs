//! Language rules that need more than one file, or a valid file, to show.

use otvi_codegen::{check_one, check_sources};

pub const VALID: &str = r#"
provider: { id: acme, name: Acme }
defaults: { base_url: "https://api.acme.example" }
auth:
  flows:
    - id: login
      name: Login
      inputs: [ { key: email, label: Email } ]
      steps:
        - name: Sign In
          request: { method: POST, path: /login, body: '{"e": "{{input.email}}"}' }
          on_success: { extract: { refresh_token: "$.r", access_token: "$.a" } }
    - id: reauth
      name: Re-authenticate
      steps:
        - name: Refresh
          request: { method: POST, path: /refresh, body: '{"t": "{{stored.refresh_token}}"}' }
          on_success: { extract: { access_token: "$.a" } }
  logout:
    request: { method: POST, path: /logout, headers: { Authorization: "Bearer {{stored.access_token}}" } }
"#;

#[test]
fn a_stored_value_extracted_by_another_flow_is_a_session_value() {
    let c = check_one("a.yaml", VALID.as_bytes());
    assert!(
        c.report.diagnostics.is_empty(),
        "{:?}",
        c.report.diagnostics
    );
    assert!(c.provider.is_some());
}

#[test]
fn a_provider_id_used_by_two_files_is_an_error_in_the_second() {
    let o = check_sources([("a.yaml", VALID.as_bytes()), ("b.yaml", VALID.as_bytes())]);
    assert!(o.files[0].report.diagnostics.is_empty());
    let d = &o.files[1].report.diagnostics;
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].code, "duplicate-provider");
    assert!(d[0].message.contains("already used by a.yaml"));
    assert_eq!(d[0].span.start.line, 2);
    assert!(o.providers().is_none());
}

#[test]
fn every_error_of_a_file_is_reported_in_one_run() {
    let src = VALID
        .replace(
            "on_success: { extract: { refresh",
            "on_sucess: { extract: { refresh",
        )
        .replace("{{input.email}}", "{{input.mail}}")
        .replace(
            "Bearer {{stored.access_token}}",
            "Bearer {{extract.access_token}}",
        );
    let c = check_one("a.yaml", src.as_bytes());
    let codes: Vec<_> = c
        .report
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.code)
        .collect();
    assert!(codes.contains(&"unknown-key"), "{codes:?}");
    assert!(codes.contains(&"undefined-input"), "{codes:?}");
    assert!(codes.contains(&"template-extract"), "{codes:?}");
}

#[test]
fn shipped_providers_check_without_warnings() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../providers");
    let files = otvi_codegen::collect_files(&[dir]).unwrap();
    assert!(files.len() >= 2);
    let o = otvi_codegen::check_paths(&files);
    for f in &o.files {
        assert!(
            f.report.diagnostics.is_empty(),
            "{}",
            f.report.render(Default::default())
        );
    }
    assert!(o.providers().is_some());
}

#[test]
fn whitespace_inside_placeholder_braces_is_allowed() {
    let src = VALID
        .replace("{{input.email}}", "{{ input.email  }}")
        .replace("{{stored.refresh_token}}", "{{\tstored.refresh_token }}");
    let c = check_one("a.yaml", src.as_bytes());
    assert!(
        c.report.diagnostics.is_empty(),
        "{:?}",
        c.report.diagnostics
    );
    let p = c.provider.unwrap();
    let body = p.flows[0].steps[0].request.body.as_ref().unwrap();
    assert!(body
        .templates()
        .iter()
        .flat_map(|t| t.vars())
        .any(|(v, _)| *v == otvi_codegen::model::Var::Input("email".into())));
}

#[test]
fn the_hint_for_an_unknown_key_in_auth_leaves_out_refresh() {
    let src = VALID.replace("  logout:\n", "  tokens: {}\n  logout:\n");
    let c = check_one("a.yaml", src.as_bytes());
    let d = &c.report.diagnostics;
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].code, "unknown-key");
    assert_eq!(
        d[0].help.as_deref(),
        Some("`auth` accepts: scope, flows, logout, check")
    );
    // `refresh` itself still has its own error, with its advice.
    let src = VALID.replace("  logout:\n", "  refresh: {}\n  logout:\n");
    let c = check_one("a.yaml", src.as_bytes());
    let codes: Vec<&str> = c.report.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["refresh-unsupported"]);
}
