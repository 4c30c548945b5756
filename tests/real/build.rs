//! Compiles the provider files beside it as a team's `build.rs` compiles its own; a broken
//! file, a warning, or an outcome without a sample fails the build with the checker's
//! diagnostics.

fn main() -> Result<(), otvi_codegen::BuildError> {
    otvi_codegen::Build::new()
        .providers(".")
        .deny_warnings(true)
        .require_samples(true)
        .compile()
}
