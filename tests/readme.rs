//! The README's login walk-through ("A login, step by step") is what the server does: its
//! request bodies, sent to the server in front of the acme mock, get exactly the answers shown.

mod common;

use common::*;
use otvi_mocks::acme::MockProvider;
use serde_json::Value;

/// The JSON blocks of the README section `heading`, in order.
fn json_blocks(heading: &str) -> Vec<Value> {
    let readme = include_str!("../README.md");
    let start = readme
        .find(heading)
        .unwrap_or_else(|| panic!("the README has no `{heading}`"));
    let section = &readme[start + heading.len()..];
    let section = &section[..section.find("\n#").unwrap_or(section.len())];
    section
        .split("```json\n")
        .skip(1)
        .map(|b| {
            let text = &b[..b.find("```").expect("a closed block")];
            serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_login_walk_through_is_what_the_server_answers() {
    let blocks = json_blocks("### A login, step by step\n");
    let [start, asks, verify, completes, fails] = &blocks[..] else {
        panic!(
            "expected 5 JSON blocks, found {}: {blocks:#?}",
            blocks.len()
        );
    };
    let mock = MockProvider::start().await.unwrap();
    let s = TestServer::start(&mock.url()).await;
    let token = user("readme");

    let (status, body) = s.login(&token, "acme", &start.to_string()).await;
    assert_eq!((status, json(&body)), (200, asks.clone()));

    // A wrong code first: the step fails and can be sent again.
    let mut wrong = verify.clone();
    wrong["inputs"]["otp"] = "000000".into();
    let (status, body) = s.login(&token, "acme", &wrong.to_string()).await;
    assert_eq!((status, json(&body)), (200, fails.clone()));

    let (status, body) = s.login(&token, "acme", &verify.to_string()).await;
    assert_eq!((status, json(&body)), (200, completes.clone()));
    let (_, body) = s.check(&token, "acme").await;
    assert_eq!(json(&body)["valid"], true);
}
