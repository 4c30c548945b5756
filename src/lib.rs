//! The `otvi` server binary: command line and server assembly. The demo's mock providers
//! live in `otvi-mocks` (`examples/`).

pub mod cli;
pub mod demo;
pub mod doctor;
pub mod server;
