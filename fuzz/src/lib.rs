//! What each fuzz target does with one input. The same sequences run, without AFL, in
//! `codegen/tests/fuzz_regressions.rs` and `runtime/tests/fuzz_regressions.rs` over the kept
//! inputs in `fuzz/regressions/`.

use otvi_codegen::diag::Format;

/// `provider_file`: bytes → parse → check → diagnostics rendered in every format → (if clean)
/// emit. The emitted Rust must parse: `emit` falls back to unformatted tokens when it does not,
/// which checked input must never reach.
pub fn provider_file(bytes: &[u8]) {
    let checked = otvi_codegen::check_one("fuzz.yaml", bytes);
    for format in [Format::Human, Format::Json, Format::Github] {
        let _ = checked.report.render(format);
    }
    let _ = otvi_codegen::sarif::render([&checked.report]);
    if let Some(p) = &checked.provider {
        for (name, src) in otvi_codegen::emit::emit_all(&[("fuzz.yaml", p)]) {
            if let Err(e) = syn::parse_file(&src) {
                panic!("emitted {name} is not valid Rust: {e}\n{src}");
            }
            // What lexes but rustc still refuses: bidirectional-override characters in a
            // comment or literal (deny-by-default lints).
            if let Some(c) = src
                .chars()
                .find(|c| matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'))
            {
                panic!("emitted {name} holds {c:?}\n{src}");
            }
        }
    }
}

/// `login_body`: the `POST …/auth/login` body decoder. Any bytes give a value or a 400.
pub fn login_body(bytes: &[u8]) {
    let _ = otvi_server::api::parse_login(bytes);
}
