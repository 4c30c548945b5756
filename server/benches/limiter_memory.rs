//! The memory the per-address limit holds when `MAX_ADDRESSES` distinct addresses each have an
//! open window: `cargo bench -p otvi-server --bench limiter_memory`. Prints the resident set
//! before and after, and the bytes per address.

use otvi_server::limits::{Keys, LimitConfig, Limiter, MAX_ADDRESSES};
use otvi_server::seal::Sealer;
use otvi_server::store::Store;
use std::net::{IpAddr, Ipv4Addr};

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let store = Store::connect("sqlite::memory:", Sealer::ephemeral())
            .await
            .expect("an in-memory store");
        let limiter = Limiter::new(LimitConfig {
            per_user: 0,
            ..LimitConfig::default()
        });
        let before = resident_bytes();
        for i in 0..u32::try_from(MAX_ADDRESSES + 1000).unwrap_or(u32::MAX) {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            let r = limiter
                .reserve(&store, Keys::new("u", "p", Some(ip)))
                .await
                .expect("no store error")
                .expect("never refused: each address is new");
            drop(r);
        }
        let after = resident_bytes();
        let held = limiter.addresses_counted();
        println!(
            "{held} addresses counted (cap {MAX_ADDRESSES}): resident {:.1} MiB -> {:.1} MiB, \
             {:.1} MiB held, {} bytes per address",
            before as f64 / 1048576.0,
            after as f64 / 1048576.0,
            (after - before) as f64 / 1048576.0,
            (after - before) / held.max(1) as u64
        );
        assert_eq!(held, MAX_ADDRESSES);
    });
}
