//! The otvi runtime: everything generated provider code calls, and the server around it.
//!
//! Generated code names only `def` (static provider descriptions), `request` (building a step's
//! request from typed values with encoding-aware substitution), `response` (reading the
//! provider's answer) and `JsonPath`. The rest — outbound HTTP, secrets, the engine that runs
//! flows, the session store, JWT and the HTTP API — is the server.

pub mod api;
pub mod auth;
pub mod def;
pub mod engine;
pub mod jsonpath;
pub mod limits;
pub mod metrics;
pub mod request;
pub mod response;
pub mod seal;
pub mod secrets;
pub mod simulate;
pub mod store;
pub mod upstream;

pub use jsonpath::JsonPath;

/// A map for the per-request lookups (verified tokens, the session cache): foldhash, seeded
/// per map, instead of SipHash, which cost about a tenth of a `check`. Its keys are verified
/// tokens and their subjects, not text a client chooses freely.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
