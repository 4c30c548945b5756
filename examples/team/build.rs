// Compiles `providers/` into OUT_DIR; a broken provider file fails `cargo build`, and so does
// a `generated/` copy that is not what is compiled (`otvi-codegen emit providers --out
// generated` refreshes it).
fn main() -> Result<(), otvi_codegen::BuildError> {
    otvi_codegen::Build::new()
        .providers("providers")
        .audit_copy("generated")
        .compile()
}
