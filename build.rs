//! This repository's provider set, compiled as a team's `build.rs` compiles its own: the
//! checker's diagnostics fail the build, and so does an audit copy in `generated/` that is not
//! what is compiled (`cargo run -p otvi-codegen -- emit providers --out generated` refreshes it).

fn main() -> Result<(), otvi_codegen::BuildError> {
    otvi_codegen::Build::new()
        .providers("providers")
        .audit_copy("generated")
        .deny_warnings(true)
        .require_samples(true)
        .compile()
}
