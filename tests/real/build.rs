//! Compiles the provider files beside it as a team's `build.rs` compiles its own; a broken
//! file, a warning, or an outcome without a sample fails the build with the checker's
//! diagnostics. The files are named one by one (not the directory) so that the servers'
//! scripts and documents beside them do not make cargo run this again.

fn main() -> Result<(), otvi_codegen::BuildError> {
    otvi_codegen::Build::new()
        .providers("allauth.yaml")
        .providers("better-auth.yaml")
        .deny_warnings(true)
        .require_samples(true)
        .compile()
}
