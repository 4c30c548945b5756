//! In-process mock HTTP servers of provider APIs, for the end-to-end tests and `otvi demo`.
//!
//! Each mock listens on `127.0.0.1` at a free port, records every request it receives (before
//! any validation) and answers like the real API described in the project's source documents:
//!
//! - [`acme`]: the example provider of the authentication-flows document (email/password
//!   login, OTP by phone, logout).
//! - [`ags`]: OpenTV AGS sign-on, including the HTTP 300 "several accounts" answer followed by
//!   `subsequentSignOn` with the `User-Token` header.
//! - [`truenas`]: `auth.login_ex` / `auth.login_ex_continue`, whose outcome is the
//!   `response_type` of a 200 body, with a session cookie carrying the OTP continuation.
//! - [`indee`]: Indee admin auth: API key on every request, body-level status codes, SSO
//!   through a separate identity-provider listener, refresh and logout.
//!
//! [`demo::start`] starts them all for `otvi demo`.
//!
//! Every mock is `Clone`, starts with `start().await`, and exposes `url()`, `received()` and
//! `received_on(path)`; see [`record`] for the shared pieces.

pub mod acme;
pub mod ags;
pub mod demo;
pub mod indee;
pub mod record;
pub mod truenas;
