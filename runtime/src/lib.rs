//! What otvi's generated provider code calls, and nothing else: the static description of a
//! provider (`def`), building a step's request from typed values with encoding-aware
//! substitution (`request`), reading the provider's answer (`response`, `JsonPath`), provider
//! secrets (`secrets`), and running a flow against recorded answers (`simulate`).
//!
//! The modules form layers, each using only those below it: `secrets` → `request` →
//! `jsonpath`, `response` → `def` → `simulate`. The server (engine, store, HTTP API) is
//! `otvi-server`; this crate has no async runtime, database or HTTP client.

pub mod def;
pub mod jsonpath;
pub mod request;
pub mod response;
pub mod secrets;
pub mod simulate;

pub use jsonpath::JsonPath;

/// Includes the provider modules a build script compiled with `otvi_codegen::Build` into
/// `OUT_DIR`: one module per provider file, and `PROVIDERS`, every compiled provider.
///
/// ```ignore
/// mod providers {
///     otvi_runtime::include_providers!();
/// }
/// ```
#[macro_export]
macro_rules! include_providers {
    () => {
        include!(concat!(env!("OUT_DIR"), "/otvi/providers.rs"));
    };
}
