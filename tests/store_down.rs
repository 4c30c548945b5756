//! When the session store becomes unreachable, API calls answer 503 with a JSON error and
//! `/readyz` fails; `/healthz` still answers. PostgreSQL is reached through a loopback TCP
//! relay that the test cuts.

mod common;

use common::*;
use otvi_mocks::acme::MockProvider;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Relays 127.0.0.1:<port> to PostgreSQL until `cut` is set; then drops every connection.
async fn relay(cut: Arc<AtomicBool>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut conns = Vec::new();
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                break;
            };
            if cut.load(Ordering::SeqCst) {
                drop(inbound);
                conns.retain(|h: &tokio::task::JoinHandle<()>| !h.is_finished());
                for h in conns.drain(..) {
                    h.abort();
                }
                continue;
            }
            let cut = cut.clone();
            conns.push(tokio::spawn(async move {
                let Ok(mut outbound) = tokio::net::TcpStream::connect("127.0.0.1:5432").await else { return };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    _ = async { while !cut.load(Ordering::SeqCst) { tokio::time::sleep(std::time::Duration::from_millis(20)).await } } => {}
                }
            }));
        }
    });
    port
}

/// A server on PostgreSQL through a relay the test cuts with the flag.
async fn behind_relay() -> (Arc<AtomicBool>, MockProvider, TestServer) {
    let cut = Arc::new(AtomicBool::new(false));
    let port = relay(cut.clone()).await;
    let mock = MockProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&mock.url(), dir.path());
    cfg.database_url = format!("postgres://postgres@127.0.0.1:{port}/test");
    // Every test comes from 127.0.0.1 and the counts outlive the run in the database.
    cfg.limits.per_address = 0;
    let s = TestServer::start_with(cfg, Some(dir)).await;
    (cut, mock, s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_store_is_503_and_not_ready() {
    let (cut, _mock, s) = behind_relay().await;
    let t = user(&format!("down-{}", uuid::Uuid::new_v4()));
    assert_eq!(s.check(&t, "acme").await.0, 200);
    assert_eq!(s.send("GET", "/readyz", None, None).await.0, 200);

    cut.store(true, Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (status, body) = s.check(&t, "acme").await;
    assert_eq!(status, 503, "{body}");
    assert!(json(&body)["error"].is_string());
    assert_eq!(s.send("GET", "/readyz", None, None).await.0, 503);
    assert_eq!(s.send("GET", "/healthz", None, None).await.0, 200);
    // The failures are counted, and the metrics still answer.
    let (status, text) = s.send("GET", "/metrics", None, None).await;
    assert_eq!(status, 200);
    let errors: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("otvi_store_errors_total "))
        .unwrap_or_else(|| panic!("no store errors in {text}"))
        .parse()
        .unwrap();
    assert!(errors >= 2.0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_back_again_is_served_without_a_restart_and_nothing_was_half_written() {
    let (cut, _mock, s) = behind_relay().await;
    let t = user(&format!("down-{}", uuid::Uuid::new_v4()));
    let start = r#"{"flow_id":"phone_otp","step":0,"inputs":{"phone":"5551234"}}"#;
    let code = format!(
        r#"{{"flow_id":"phone_otp","step":1,"inputs":{{"otp":"{}"}}}}"#,
        otvi_mocks::acme::OTP
    );
    assert_eq!(
        json(&s.login(&t, "acme", start).await.1)["next_step"]["step_index"],
        1
    );

    cut.store(true, Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (status, body) = s.login(&t, "acme", &code).await;
    assert_eq!(status, 503, "{body}");
    assert!(json(&body)["error"].is_string());
    assert_eq!(s.login(&t, "acme", EMAIL_LOGIN).await.0, 503);
    assert_eq!(s.send("GET", "/readyz", None, None).await.0, 503);

    cut.store(false, Ordering::SeqCst);
    let mut ready = 0;
    for _ in 0..100 {
        ready = s.send("GET", "/readyz", None, None).await.0;
        if ready == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(ready, 200, "the store came back");
    assert_eq!(s.check(&t, "acme").await.1, r#"{"valid":false}"#);
    let (status, body) = s.login(&t, "acme", &code).await;
    assert_eq!(
        (status, json(&body)["success"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    assert_eq!(s.check(&t, "acme").await.1, r#"{"valid":true}"#);
}
