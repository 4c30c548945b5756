//! The extensions that must compile: what the step graph allows, and the model each extension
//! lowers to.

use otvi_codegen::check_one;
use otvi_codegen::graph::{self, Target};
use otvi_codegen::model::*;

fn clean(src: &str) -> Provider {
    let c = check_one("x.yaml", src.as_bytes());
    assert!(
        c.report.diagnostics.is_empty(),
        "{}",
        c.report.render(otvi_codegen::diag::Format::Human)
    );
    c.provider.expect("a clean file has a model")
}

/// A rejected one-time code loops back to the same step through a prompt; a conflict jumps
/// back to the first step without one (it runs at once): both are fine.
const LOOPS: &str = r#"
provider: { id: loops, name: Loops }
secrets: { key: { env: LOOPS_KEY } }
defaults:
  base_url: "https://api.example"
  headers: { X-Key: "{{secret.key}}" }
auth:
  flows:
    - id: otp
      name: OTP
      inputs: [ { key: user, label: User } ]
      steps:
        - id: send
          name: Send
          request:
            method: POST
            path: /send
            headers: { X-Run: "{{run_id}}" }
            body: '{"u": "{{input.user}}"}'
          outcomes:
            - when: { status: 200, "$.needs_code": true }
              extract: { ticket: "$.ticket", link: { header: Location } }
              prompt:
                - { key: page, type: link, label: Page, value: "{{stored.link}}" }
                - { key: code, label: Code }
              next: verify
            - when: { status: [200, 201] }
              extract: { sid: { cookie: sid }, code: { status: true } }
              complete: true
        - id: verify
          name: Verify
          request:
            method: POST
            path: /verify
            headers: { Cookie: "t={{stored.ticket}}", X-Run: "{{run_id}}" }
            body: '{"c": "{{input.code}}"}'
          error_message: "$.error"
          outcomes:
            - when: { "$.result": ok }
              extract: { all_ids: { path: "$.ids[*]", all: true }, maybe: { path: "$.m", optional: true } }
              complete: true
            - when: { "$.result": retry }
              prompt: [ { key: code, label: "Code (again)" } ]
              next: verify
              message: "Wrong code"
            - when: { "$.result": expired }
              prompt: [ { key: code, label: "Code (again)" } ]
              next: verify
              message: { from: "$.notice", fallback: "The code expired; enter the new one" }
            - when: { "$.result": conflict }
              next: 0
            - when: { status: 401 }
              fail: { from: "$.reason", message: "Signed out", clear_session: true }
"#;

#[test]
fn loops_through_a_prompt_compile() {
    let p = clean(LOOPS);
    let f = &p.flows[0];
    let edges = graph::edges(f);
    let targets: Vec<_> = edges.iter().map(|e| (e.step, e.target, e.pauses)).collect();
    assert_eq!(
        targets,
        vec![
            (0, Target::Step(1), true),
            (0, Target::Complete, false),
            (1, Target::Complete, false),
            (1, Target::Step(1), true),
            (1, Target::Step(1), true),
            (1, Target::Step(0), false),
            (1, Target::Fail, false),
        ]
    );
    assert!(graph::silent_cycles(f, &edges).is_empty());
    let defined = graph::defined(f, &edges);
    let verify = defined[1].as_ref().unwrap();
    assert!(verify.stored.contains("ticket") && verify.inputs.contains("code"));
    assert!(
        !verify.inputs.contains("page"),
        "display fields are not collected"
    );
}

#[test]
fn extensions_lower_to_the_model() {
    let p = clean(LOOPS);
    assert_eq!(p.secrets[0].key.v, "key");
    assert_eq!(p.secrets[0].env.v, "LOOPS_KEY");
    let send = &p.flows[0].steps[0];
    assert_eq!(send.id.as_ref().unwrap().v, "send");
    let first = &send.outcomes[0];
    assert_eq!(first.when.len(), 2);
    assert!(
        matches!(&first.when[1], Cond::Json { expected, .. } if expected.v == Scalar::Bool(true))
    );
    assert!(matches!(&first.extract[1].source, Source::Header(h) if h.v == "Location"));
    let prompt = first.prompt.as_ref().unwrap();
    assert_eq!(prompt.fields[0].field_type, FieldType::Link);
    assert!(
        !prompt.fields[0].required,
        "display fields are never required"
    );
    assert!(prompt.fields[0].value.is_some());
    let verify = &p.flows[0].steps[1];
    assert!(matches!(
        &verify.outcomes[0].extract[0].source,
        Source::Path { all: true, .. }
    ));
    assert!(verify.outcomes[0].extract[1].optional);
    match &verify.outcomes[4].then {
        Then::Fail(f) => {
            assert_eq!(f.from.as_ref().unwrap().v, "$.reason");
            assert_eq!(f.message.as_ref().unwrap().v, "Signed out");
            assert!(f.clear_session);
        }
        other => panic!("{other:?}"),
    }
    let message = |j: usize| verify.outcomes[j].message.as_ref().unwrap();
    assert_eq!(message(1).text.as_ref().unwrap().v, "Wrong code");
    assert!(message(1).from.is_none());
    assert_eq!(message(2).from.as_ref().unwrap().v, "$.notice");
    assert_eq!(
        message(2).text.as_ref().unwrap().v,
        "The code expired; enter the new one"
    );
}

#[test]
fn the_on_success_form_is_one_outcome_with_its_success_test() {
    let p = clean(
        r#"
provider: { id: s, name: S }
defaults: { base_url: "https://api.example" }
auth:
  flows:
    - id: f
      name: F
      steps:
        - name: Go
          request: { method: POST, path: /go }
          success_status: [200, 300]
          success_when: { "$.status_code": A0000, "$.n": 0, "$.q": "0" }
          error_message: "$.status_message"
          on_success: { extract: { t: "$.t" } }
"#,
    );
    let s = &p.flows[0].steps[0];
    assert_eq!(s.outcomes.len(), 1);
    let when = &s.outcomes[0].when;
    assert!(matches!(&when[0], Cond::Status(x) if x.v == StatusSet::AnyOf(vec![200, 300])));
    let expected: Vec<&Scalar> = when[1..]
        .iter()
        .map(|c| match c {
            Cond::Json { expected, .. } => &expected.v,
            _ => panic!(),
        })
        .collect();
    assert_eq!(
        expected,
        [
            &Scalar::Str("A0000".into()),
            &Scalar::Int(0),
            &Scalar::Str("0".into()),
        ],
        "plain scalars are typed, quoted ones are strings"
    );
    assert_eq!(s.error_message.as_ref().unwrap().v, "$.status_message");
}

#[test]
fn the_shipped_real_provider_files_are_clean_with_warnings_denied() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../providers");
    for name in ["opentv.yaml", "truenas.yaml", "indee.yaml"] {
        let src = std::fs::read(dir.join(name)).unwrap();
        // Named by its path, so that its `file:` samples are found next to it.
        let c = check_one(dir.join(name).to_str().unwrap(), &src);
        assert!(
            c.report.diagnostics.is_empty(),
            "{name}: {}",
            c.report.render(otvi_codegen::diag::Format::Human)
        );
    }
}
