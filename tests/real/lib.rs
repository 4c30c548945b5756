//! The provider files of the real login servers (`allauth.yaml`, `better-auth.yaml`),
//! compiled by `build.rs`: one module per file and `PROVIDERS`.

otvi_runtime::include_providers!();
