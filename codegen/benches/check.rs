//! Checking speed: `check_sources` (what `otvi-codegen check` runs) on 1,000 provider files of
//! 5 flows × 3 steps each, about 3 MB of YAML.
//!
//! `cargo bench -p otvi-codegen --bench check`

use std::fmt::Write;

fn main() {
    divan::main();
}

fn provider(i: usize) -> String {
    let mut s = format!(
        "provider: {{ id: p{i}, name: \"Provider {i}\" }}\ndefaults:\n  base_url: \"https://api{i}.example\"\n  headers: {{ User-Agent: \"tv/1\" }}\nauth:\n  flows:\n"
    );
    for f in 0..5 {
        let _ = write!(
            s,
            "    - id: flow{f}\n      name: \"Flow {f}\"\n      inputs:\n        - {{ key: email, label: Email, type: email }}\n        - {{ key: password, label: Password, type: password }}\n      steps:\n"
        );
        for st in 0..3 {
            let prompt = if st < 2 {
                format!("\n            prompt: [ {{ key: code{st}, label: \"Code\" }} ]")
            } else {
                String::new()
            };
            let extra = if st > 0 {
                format!(
                    ", \"code\": \"{{{{input.code{}}}}}\", \"t\": \"{{{{stored.token{}}}}}\"",
                    st - 1,
                    st - 1
                )
            } else {
                String::new()
            };
            let _ = write!(
                s,
                "        - name: \"Step {st}\"\n          request:\n            method: POST\n            path: \"/v1/flow{f}/step{st}\"\n            headers: {{ X-Request: \"{{{{uuid}}}}\" }}\n            body: |\n              {{ \"email\": \"{{{{input.email}}}}\", \"password\": \"{{{{input.password}}}}\"{extra} }}\n          on_success:\n            extract: {{ token{st}: \"$.data.token\", user_name: \"$.data.user.name\" }}{prompt}\n"
            );
        }
    }
    s
}

#[divan::bench(sample_count = 5, sample_size = 1)]
fn check_1000_files(b: divan::Bencher) {
    let files: Vec<(String, String)> = (0..1000)
        .map(|i| (format!("p{i}.yaml"), provider(i)))
        .collect();
    b.bench_local(|| {
        let outcome =
            otvi_codegen::check_sources(files.iter().map(|(n, s)| (n.as_str(), s.as_bytes())));
        assert_eq!(outcome.errors(), 0);
        assert_eq!(outcome.warnings(), 0);
        outcome
    });
}
