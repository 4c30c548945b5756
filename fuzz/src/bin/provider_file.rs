//! AFL++ target: a provider file's bytes through parse, check, render and emit.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        otvi_fuzz::provider_file(data);
    });
}
