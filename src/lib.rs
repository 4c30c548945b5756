//! The provider set of this repository (`providers/`), compiled by `build.rs` as a team's own
//! would be: one module per provider file and `PROVIDERS`, every one of them. `generated/`
//! holds the same code, checked in for review.

otvi_runtime::include_providers!();
