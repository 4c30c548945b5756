//! The `otvi` server binary: command line, server assembly, and the demo's mock provider.

pub mod cli;
pub mod mock;
pub mod server;
