//! The otvi server around a binary's compiled providers: the engine that runs flows
//! (`engine`), the session store (`store`), brute-force limits (`limits`), sealing at rest
//! (`seal`), tokens (`auth`), provider calls (`upstream`), metrics, the HTTP API (`api`, a
//! standalone server or a `Router` to mount in an application), and the `otvi` command line
//! (`Cli`).
//!
//! A binary names its providers and calls [`Cli::run`]:
//!
//! ```no_run
//! mod providers {
//!     # pub static PROVIDERS: &[&otvi_runtime::def::ProviderDef] = &[];
//!     // otvi_runtime::include_providers!();  (what a build script compiled)
//! }
//! fn main() -> std::process::ExitCode {
//!     otvi_server::Cli::new(providers::PROVIDERS).run()
//! }
//! ```

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod demo;
pub mod doctor;
pub mod engine;
pub mod limits;
pub mod metrics;
pub mod seal;
pub mod store;
pub mod upstream;

pub use cli::Cli;
pub use config::Config;

/// A map for the per-request lookups (verified tokens, the session cache): foldhash, seeded
/// per map, instead of SipHash, which cost about a tenth of a `check`. Its keys are verified
/// tokens and their subjects, not text a client chooses freely.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
