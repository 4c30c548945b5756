//! The JSON Schema accepts every shipped provider file and rejects unknown keys.

use std::path::Path;

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&otvi_codegen::schema::schema())
        .expect("the schema is a valid JSON Schema")
}

fn as_json(yaml: &str) -> serde_json::Value {
    serde_yaml::from_str(yaml).unwrap()
}

#[test]
fn every_shipped_provider_file_validates_against_the_schema() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../providers");
    let files = otvi_codegen::collect_files(&[dir]).unwrap();
    assert!(!files.is_empty());
    let v = validator();
    for f in files {
        let doc = as_json(&std::fs::read_to_string(&f).unwrap());
        let errors: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", f.display());
    }
}

#[test]
fn samples_validate_in_every_place_they_may_stand() {
    let v = validator();
    let doc = as_json(
        r#"
provider: { id: s, name: S }
auth:
  flows:
    - id: f
      name: F
      steps:
        - name: S
          request: { method: GET, path: "https://a.example/x" }
          on_success:
            samples: [ { name: ok, status: 200, headers: { Set-Cookie: [ "a=1", "b=2" ] }, body: [ 1, "two" ] } ]
          samples: [ { status: 502, body: "<html>" }, { status: 401, file: samples/denied.json } ]
        - name: T
          request: { method: GET, path: "https://a.example/y" }
          outcomes:
            - when: { status: 200 }
              samples: [ { status: 200 } ]
"#,
    );
    let errors: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    let both = as_json(
        "provider: { id: s, name: S }\nauth:\n  flows:\n    - id: f\n      name: F\n      steps:\n        - name: S\n          request: { method: GET, path: \"https://a.example/x\" }\n          samples: [ { status: 200, body: {}, file: x.json } ]\n",
    );
    assert!(!v.is_valid(&both), "`body` and `file` together");
}

#[test]
fn a_file_with_an_unknown_key_fails_the_schema() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/invalid");
    let v = validator();
    for name in [
        "unknown-key-on-sucess.yaml",
        "unknown-key-in-request.yaml",
        "unknown-top-level-key.yaml",
        "when-unknown-key.yaml",
        "extract-source-problems.yaml",
        "value-on-collected-field.yaml",
        "sample-shape.yaml",
    ] {
        let doc = as_json(&std::fs::read_to_string(dir.join(name)).unwrap());
        assert!(!v.is_valid(&doc), "{name} should fail the schema");
    }
}
