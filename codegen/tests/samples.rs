//! Response samples (`samples:`): what passes, the diagnostics a wrong path or a wrong outcome
//! gets, `--require-samples`, and that samples never reach generated code. One file per rule
//! with its exact diagnostics is in `tests/invalid/sample-*.yaml`.

use otvi_codegen::check::samples::check_within;
use otvi_codegen::diag::{Diagnostic, Format};
use otvi_codegen::sample::Paths;
use otvi_codegen::{check_one, check_one_with, check_paths_with, Options};
use std::path::Path;
use std::rc::Rc;

const REQUIRE: Options = Options {
    require_samples: true,
};

/// Every form: `on_success` samples, failure samples on the step, outcome samples, a header, a
/// cookie, an optional miss, a `file:` body and a non-JSON body.
const GOOD: &str = r#"
provider: { id: good, name: Good }
defaults: { base_url: "https://api.example" }
auth:
  flows:
    - id: email
      name: Email
      inputs: [ { key: email, label: Email }, { key: password, label: Password, type: password } ]
      steps:
        - name: Sign In
          request: { method: POST, path: /login, body: '{"e": "{{input.email}}", "p": "{{input.password}}"}' }
          success_when: { "$.status_code": A0000 }
          error_message: "$.status_message"
          on_success:
            extract:
              access_token: "$.data.access_token"
              user_name: { path: "$.data.user.display_name", optional: true }
              roles: { path: "$.data.roles[*]", all: true }
            samples:
              - name: signed in
                status: 200
                body:
                  status_code: A0000
                  data: { access_token: "at-1", user: { display_name: Dave }, roles: [admin, viewer] }
              - name: no display name
                status: 200
                body: { status_code: A0000, data: { access_token: "at-2", roles: [viewer], extra: 1 } }
          samples:
            - { name: denied, status: 401, body: { status_code: A2002, status_message: "Access Denied" } }
            - { name: wrong code, status: 200, body: { status_code: A2001, status_message: "Invalid password" } }
    - id: otp
      name: OTP
      inputs: [ { key: user, label: User } ]
      steps:
        - id: login
          name: Login
          request: { method: POST, path: /otp, body: '{"u": "{{input.user}}"}' }
          error_message: "$.error"
          outcomes:
            - when: { status: 200, "$.response_type": SUCCESS }
              extract: { session: { cookie: sid }, next_url: { header: Location } }
              complete: true
              samples:
                - name: success
                  status: 200
                  headers:
                    Set-Cookie: [ "other=1; Path=/", "sid=s3cr3t; HttpOnly" ]
                    location: "https://api.example/home"
                  body: { response_type: SUCCESS }
            - when: { status: 200, "$.response_type": OTP_REQUIRED }
              prompt: [ { key: otp, label: Code } ]
              next: verify
              samples: [ { status: 200, body: { response_type: OTP_REQUIRED } } ]
            - when: { status: 403 }
              fail: { from: "$.error", message: "Refused" }
              samples: [ { status: 403, body: { error: "Account locked" } } ]
          samples:
            - { name: proxy page, status: 502, body: "<html><body>Bad gateway</body></html>" }
        - id: verify
          name: Verify
          request: { method: POST, path: /verify, body: '{"c": "{{input.otp}}"}' }
          outcomes:
            - when: { status: 200 }
              extract: { token: "$.token", code: { status: true } }
              samples: [ { status: 200, file: samples/token.json } ]
"#;

/// Where `GOOD` stands, so that its `file:` sample is `codegen/tests/samples/token.json`.
fn dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn check(src: &str, options: Options) -> Vec<Diagnostic> {
    let name = dir().join("p.yaml");
    check_one_with(name.to_str().unwrap(), src.as_bytes(), options)
        .report
        .diagnostics
}

fn show(src: &str, options: Options) -> String {
    let name = dir().join("p.yaml");
    check_one_with(name.to_str().unwrap(), src.as_bytes(), options)
        .report
        .render(Format::Human)
}

#[test]
fn good_samples_pass_even_with_samples_required() {
    assert_eq!(show(GOOD, Options::default()), "");
    // The failure samples are not counted: `--require-samples` asks for each outcome (and the
    // success of an `on_success` step) only.
    assert_eq!(show(GOOD, REQUIRE), "");
}

#[test]
fn the_shipped_providers_pass_with_samples_required() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../providers");
    let files = otvi_codegen::collect_files(&[root]).unwrap();
    let outcome = check_paths_with(&files, REQUIRE);
    for f in &outcome.files {
        assert!(
            f.report.diagnostics.is_empty(),
            "{}",
            f.report.render(Format::Human)
        );
    }
    // Every shipped step carries samples, and the sample files are reported as read.
    assert!(outcome.files.iter().any(|f| f
        .reads
        .iter()
        .any(|r| r.ends_with("samples/opentv-201.json"))));
    for f in &outcome.files {
        let p = f.provider.as_ref().unwrap();
        for s in p.flows.iter().flat_map(|f| &f.steps) {
            assert!(
                s.all_samples().next().is_some(),
                "{}: {}",
                f.report.path,
                s.name.v
            );
        }
    }
}

#[test]
fn a_misspelt_extract_path_is_an_error_with_the_path_the_sample_has() {
    let src = GOOD.replace("\"$.data.access_token\"", "\"$.data.acess_token\"");
    let d = check(&src, Options::default());
    // One diagnostic per extract, naming the first sample it misses in.
    assert_eq!(d.len(), 1, "{d:#?}");
    assert!(d.iter().all(|d| d.code == "sample-extract" && d.is_error()));
    assert_eq!(
        d[0].message,
        "`$.data.acess_token` finds nothing in sample `signed in` (line 20), nor in 1 other sample"
    );
    assert_eq!(
        d[0].help.as_deref(),
        Some("did you mean `$.data.access_token`?")
    );
    assert_eq!(
        (d[0].span.start.line, d[0].span.start.col),
        (16, 29),
        "on the path"
    );
}

#[test]
fn the_human_output_names_the_path_the_sample_and_the_fix() {
    let src = GOOD.replace("\"$.data.access_token\"", "\"$.data.acess_token\"");
    let out = show(&src, Options::default());
    assert!(
        out.starts_with(
            "error: `$.data.acess_token` finds nothing in sample `signed in` (line 20), nor in 1 other sample\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("  = help: did you mean `$.data.access_token`?\n"),
        "{out}"
    );
}

#[test]
fn a_header_or_cookie_the_sample_lacks_is_an_error() {
    let src = GOOD
        .replace("cookie: sid }", "cookie: sdi }")
        .replace("header: Location }", "header: Locaton }");
    let d = check(&src, Options::default());
    let got: Vec<(&str, &str, Option<&str>)> = d
        .iter()
        .map(|d| (d.code, d.message.as_str(), d.help.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "sample-extract",
                "sample `success` (line 44) sets no cookie `sdi`",
                Some("did you mean `sid`?")
            ),
            (
                "sample-extract",
                "sample `success` (line 44) has no `Locaton` header",
                Some("did you mean `location`?")
            ),
        ]
    );
}

#[test]
fn a_sample_under_the_wrong_outcome_names_both() {
    let src = GOOD.replace(
        "samples: [ { status: 200, body: { response_type: OTP_REQUIRED } } ]",
        "samples: [ { status: 200, body: { response_type: SUCCESS } } ]",
    );
    let d = check(&src, Options::default());
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].code, "sample-outcome");
    assert_eq!(
        d[0].message,
        "the sample at line 53 is listed under the outcome at line 50 (status 200, `$.response_type` = \"OTP_REQUIRED\"), but selects the outcome at line 40 (status 200, `$.response_type` = \"SUCCESS\")"
    );
    assert_eq!(
        d[0].help.as_deref(),
        Some("the outcome at line 50 (status 200, `$.response_type` = \"OTP_REQUIRED\") does not take it: `$.response_type` is \"SUCCESS\" in it, not \"OTP_REQUIRED\"")
    );
}

#[test]
fn a_success_sample_that_fails_the_success_test_is_an_error() {
    let src = GOOD.replace(
        "status_code: A0000\n                  data:",
        "status_code: A0001\n                  data:",
    );
    let d = check(&src, Options::default());
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(
        d[0].message,
        "sample `signed in` (line 20) is listed under `on_success`, but the step fails on it"
    );
    assert_eq!(
        d[0].help.as_deref(),
        Some("the step's success test does not hold: `$.status_code` is \"A0001\" in it, not \"A0000\"")
    );
}

#[test]
fn error_text_missing_from_a_failure_sample_is_a_warning() {
    let src = GOOD.replace(
        "error_message: \"$.status_message\"",
        "error_message: \"$.status_mesage\"",
    );
    let d = check(&src, Options::default());
    assert_eq!(d.len(), 2, "{d:#?}");
    for d in &d {
        assert!(!d.is_error());
        assert_eq!(d.code, "sample-error-text");
        assert_eq!(d.help.as_deref(), Some("did you mean `$.status_message`?"));
    }
    assert_eq!(
        d[0].message,
        "`$.status_mesage` finds no error text in sample `denied` (line 29), a response the step fails on"
    );
    // `fail.from` too; `error_message` is consulted on an answer no outcome takes.
    let src = GOOD.replace("from: \"$.error\"", "from: \"$.eror\"");
    let d = check(&src, Options::default());
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].code, "sample-error-text");
    assert_eq!(d[0].span.start.line, 55);
}

#[test]
fn require_samples_names_every_outcome_without_one() {
    let src = GOOD
        .replace(
            "              samples: [ { status: 403, body: { error: \"Account locked\" } } ]\n",
            "",
        )
        .replace(
            "              samples: [ { status: 200, file: samples/token.json } ]\n",
            "",
        );
    assert!(check(&src, Options::default()).is_empty());
    let d = check(&src, REQUIRE);
    let got: Vec<(usize, &str)> = d
        .iter()
        .map(|d| (d.span.start.line, d.message.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (54, "no sample selects the outcome at line 54 (status 403)"),
            (62, "no sample selects the outcome at line 62 (status 200)"),
        ]
    );
    assert!(d.iter().all(|d| d.is_error() && d.code == "missing-sample"));
}

#[test]
fn samples_are_not_emitted() {
    let name = dir().join("p.yaml");
    let with = check_one_with(name.to_str().unwrap(), GOOD.as_bytes(), Options::default())
        .provider
        .unwrap();
    let mut without = with.clone();
    for s in without.flows.iter_mut().flat_map(|f| f.steps.iter_mut()) {
        s.samples.clear();
        for o in &mut s.outcomes {
            o.samples.clear();
        }
    }
    let a = otvi_codegen::emit::provider_module(&with, "p.yaml");
    let b = otvi_codegen::emit::provider_module(&without, "p.yaml");
    assert_eq!(a, b);
    assert!(!a.contains("s3cr3t") && !a.contains("Access Denied"));
}

#[test]
fn a_sample_file_is_read_relative_to_the_provider_file() {
    // Named by a bare file name, the provider's directory is the current one (`codegen/`),
    // where `samples/token.json` is not.
    let d = check_one("p.yaml", GOOD.as_bytes()).report.diagnostics;
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].code, "sample-file");
    assert!(d[0]
        .message
        .starts_with("cannot read sample file `samples/token.json`"));
}

#[test]
fn the_work_of_checking_samples_is_bounded() {
    let name = dir().join("p.yaml");
    let p = check_one_with(name.to_str().unwrap(), GOOD.as_bytes(), Options::default())
        .provider
        .unwrap();
    let paths = Rc::new(Paths::default());
    let mut d = Vec::new();
    check_within(&p, true, &paths, &mut d);
    assert!(d.is_empty(), "{d:#?}");
    assert!(paths.spent() < 64 * 1024, "{}", paths.spent());
    // Past the limit, answers are cut short: one error instead of untrustworthy findings.
    let paths = Rc::new(Paths::with_limit(paths.spent() / 2));
    check_within(&p, true, &paths, &mut d);
    let codes: Vec<&str> = d.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["sample-work"]);
    assert_eq!(d[0].message, "checking this file's samples takes too long");
}

#[test]
fn a_step_carries_at_most_64_samples() {
    let many: String = (0..70)
        .map(|i| {
            format!("            - {{ status: 401, body: {{ status_message: \"no {i}\" }} }}\n")
        })
        .collect();
    let src = GOOD.replace(
        "          samples:\n            - { name: denied,",
        &format!("          samples:\n{many}            - {{ name: denied,"),
    );
    let d = check(&src, Options::default());
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].code, "too-many-samples");
    assert_eq!(d[0].message, "a step may carry at most 64 samples");
    // The 65th of the step's own samples (which count before its outcomes').
    assert_eq!(d[0].span.start.line, 29 + 64);
}
