//! Every shipped flow run through the generated step functions against its provider file's
//! samples, with no network. The transcripts are kept in `tests/simulations/<provider>.txt`:
//! a change to a provider file that changes what is sent, or what an answer leads to, changes
//! a transcript and shows up in review. `UPDATE_SIMULATIONS=1 cargo test --test simulate`
//! rewrites them.

mod common;

use otvi_codegen::simulate::{answers, session_keys};
use otvi_runtime::simulate::{transcript, Answer};
use std::path::Path;

#[test]
fn every_shipped_flow_simulates_as_its_transcript_says() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let update = std::env::var_os("UPDATE_SIMULATIONS").is_some();
    let mut stale = Vec::new();
    for (p, def) in common::shipped() {
        // Every flow, then the session check, as `otvi-codegen simulate` runs them.
        let mut flows: Vec<_> = p
            .flows
            .iter()
            .map(|flow| (def.flow(&flow.id.v).unwrap(), recorded(flow)))
            .collect();
        if let (Some(c), Some(cd)) = (&p.check, def.check) {
            flows.push((cd.flow, recorded(&c.flow)));
        }
        let session = session_keys(&p);
        let session: Vec<&str> = session.iter().map(String::as_str).collect();
        let got = transcript(def, &flows, &session);
        // Every value sent in place of a user's input, a secret or a stored value is shown
        // by name.
        assert!(!got.contains("OTVISIM"), "a marker is left unnamed:\n{got}");
        let path = root
            .join("tests/simulations")
            .join(format!("{}.txt", p.id.v));
        if update {
            std::fs::write(&path, &got).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(got.as_str()) {
            stale.push(format!("{}:\n{got}", path.display()));
        }
    }
    assert!(
        stale.is_empty(),
        "the simulation of these providers changed; review the new transcripts and \
         rerun with UPDATE_SIMULATIONS=1 to keep them:\n\n{}",
        stale.join("\n\n")
    );
}

/// A flow's samples, as the answers of its steps.
fn recorded(flow: &otvi_codegen::model::Flow) -> Vec<Answer> {
    answers(flow)
        .into_iter()
        .map(|r| {
            let headers: Vec<(&str, &str)> = r
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            Answer::new(r.step, &r.label, r.status, &headers, &r.body)
        })
        .collect()
}
