//! One step of generated code, without the network: building the request of acme's
//! `email_password` sign-in step from a run's inputs, and deciding and extracting from the
//! provider's answer (JSON parse, outcome, the four extract paths).
//!
//! `cargo bench -p otvi --bench step`

use bytes::Bytes;
use divan::{black_box, Bencher};
use otvi::acme::email_password::FLOW;
use otvi_runtime::request::StepCx;
use otvi_runtime::response::Reply;
use std::collections::HashMap;

const ANSWER: &str = r#"{"data":{"access_token":"at-bench","refresh_token":"rt-bench","user":{"display_name":"bench","id":"u1"}}}"#;

fn main() {
    divan::main();
}

fn inputs() -> HashMap<String, String> {
    HashMap::from([
        ("email".to_string(), "bench@example.com".to_string()),
        ("password".to_string(), "pw \"quoted\" ü".to_string()),
    ])
}

#[divan::bench]
fn build_request(b: Bencher) {
    let inputs = inputs();
    let stored = HashMap::new();
    let step = &FLOW.steps[0];
    b.bench_local(|| {
        let cx = StepCx::new(
            "http://127.0.0.1:8080",
            &inputs,
            &stored,
            &otvi_runtime::secrets::NONE,
            "run",
        );
        (step.build)(black_box(&cx)).unwrap()
    });
}

#[divan::bench]
fn decide_and_extract(b: Bencher) {
    let step = &FLOW.steps[0];
    let body = Bytes::from_static(ANSWER.as_bytes());
    b.bench_local(|| {
        let reply = Reply::new(200, Default::default(), black_box(body.clone()));
        let outcome = (step.decide)(&reply).unwrap();
        outcome
            .extract
            .iter()
            .map(|e| e.read(&reply).unwrap().unwrap())
            .collect::<Vec<String>>()
    });
}
