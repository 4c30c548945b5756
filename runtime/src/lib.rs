//! The otvi runtime: everything generated provider code calls, and the server around it.
//!
//! Generated code names only `def` (static provider descriptions), `request` (building a step's
//! request from typed values with encoding-aware substitution), `response` (reading the
//! provider's answer) and `JsonPath`. The rest — outbound HTTP, secrets, the engine that runs
//! flows, the session store, JWT and the axum router — is the server.

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
