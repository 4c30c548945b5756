//! Bad input never panics or hangs: each case ends in a diagnostic (or works).

use otvi_codegen::check_one;

fn codes(src: &[u8]) -> Vec<&'static str> {
    check_one("x.yaml", src)
        .report
        .diagnostics
        .iter()
        .map(|d| d.code)
        .collect()
}

#[test]
fn a_file_that_is_not_utf8_is_an_error_with_its_position() {
    let c = check_one("x.yaml", b"provider:\n  id: \xff\xfe\n");
    let d = &c.report.diagnostics;
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].code, "not-utf8");
    assert_eq!((d[0].span.start.line, d[0].span.start.col), (2, 7));
}

#[test]
fn an_empty_file_is_an_error() {
    assert_eq!(codes(b""), vec!["empty-file"]);
    assert_eq!(codes(b"\n\n# only a comment\n"), vec!["empty-file"]);
}

#[test]
fn a_list_or_scalar_at_the_top_is_an_error() {
    assert_eq!(codes(b"- a\n- b\n"), vec!["wrong-type"]);
    assert_eq!(codes(b"42\n"), vec!["wrong-type"]);
}

#[test]
fn a_ten_megabyte_file_is_checked() {
    let mut src = String::from("provider: { id: big, name: Big }\nnotes: |\n");
    while src.len() < 10 * 1024 * 1024 {
        src.push_str("  lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod\n");
    }
    let c = codes(src.as_bytes());
    assert_eq!(c, vec!["missing-key", "unknown-key"]);
}

#[test]
fn yaml_nested_ten_thousand_levels_deep_is_an_error() {
    let block: String = (0..10_000)
        .map(|i| format!("{}a:\n", " ".repeat(i)))
        .collect();
    assert_eq!(codes(block.as_bytes()), vec!["yaml-too-deep"]);
    // Flow style is stopped by the YAML scanner's own recursion limit.
    let flow = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let c = check_one("x.yaml", flow.as_bytes());
    assert_eq!(c.report.diagnostics.len(), 1);
    assert!(
        c.report.diagnostics[0].message.contains("recursion limit"),
        "{:?}",
        c.report.diagnostics
    );
}

#[test]
fn anchors_aliases_and_merge_keys_work() {
    let src = r#"
provider: { id: a, name: A }
defaults: { base_url: &base "https://api.example" }
auth:
  flows:
    - id: f
      name: F
      inputs: [ &email { key: email, label: Email } ]
      steps:
        - name: S
          request: &req
            method: POST
            path: /login
            body: '{"e": "{{input.email}}"}'
    - id: g
      name: G
      inputs: [ *email ]
      steps:
        - name: S
          request:
            <<: *req
            path: /other
"#;
    assert_eq!(codes(src.as_bytes()), Vec::<&str>::new());
    let c = check_one("x.yaml", src.as_bytes());
    let p = c.provider.unwrap();
    assert_eq!(p.flows[1].inputs[0].key.v, "email");
    let r = &p.flows[1].steps[0].request;
    assert_eq!(r.path.literal().as_deref(), Some("/other"));
    assert!(r.body.is_some(), "merged from the anchor");
}

#[test]
fn duplicate_keys_in_a_map_are_an_error() {
    assert!(codes(b"provider: {id: a, id: b}\n").contains(&"duplicate-key"));
}

#[test]
fn a_billion_laughs_alias_bomb_is_an_error() {
    let mut src = String::from("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    let names: Vec<char> = "abcdefghij".chars().collect();
    for w in names.windows(2) {
        let refs = vec![format!("*{}", w[0]); 9].join(", ");
        src.push_str(&format!("{}: &{} [{refs}]\n", w[1], w[1]));
    }
    assert_eq!(codes(src.as_bytes()), vec!["yaml-alias-budget"]);
}

#[test]
fn thousands_of_extracts_times_dozens_of_samples_stop_at_the_work_limit() {
    let mut src = String::from(
        "provider: { id: t, name: T }\ndefaults: { base_url: 'https://a.example' }\nauth:\n  flows:\n    - id: f\n      name: F\n      steps:\n        - name: S\n          request: { method: GET, path: /x }\n          on_success:\n            extract:\n",
    );
    for i in 0..5_000 {
        src.push_str(&format!("              k{i}: \"$..items[*].v{i}\"\n"));
    }
    src.push_str("            samples:\n");
    for _ in 0..64 {
        src.push_str("              - { status: 200, body: { data: { items: [ { v0: 1, v1: 2 }, { v3: 4 } ] } } }\n");
    }
    assert_eq!(codes(src.as_bytes()), vec!["sample-work"]);
}
