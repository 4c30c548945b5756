//! A provider that fails in any way is a 200 `success:false` with a short error, never the
//! provider's body, never a 500, and no session is stored.

mod common;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use common::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// A provider whose login endpoint answers with `app`'s handler.
async fn provider(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

async fn login_fails_with(base: &str, timeout: Option<Duration>, expected_error: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(base, dir.path());
    if let Some(t) = timeout {
        cfg.upstream_timeout = t;
    }
    let s = TestServer::start_with(cfg, Some(dir)).await;
    let t = user("alice");
    let (status, body) = s.login(&t, "acme", EMAIL_LOGIN).await;
    assert_eq!(status, 200, "{body}");
    let v = json(&body);
    assert_eq!(v["success"], false, "{body}");
    assert_eq!(v["next_step"], serde_json::Value::Null);
    assert_eq!(v["error"], expected_error, "{body}");
    assert!(!body.contains("SECRET-PROVIDER-BODY"), "{body}");
    assert_eq!(s.check(&t, "acme").await.1, r#"{"valid":false}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused() {
    // Bind and drop: nothing listens on that port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    login_fails_with(
        &format!("http://127.0.0.1:{port}"),
        None,
        "the provider could not be reached",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slower_than_the_timeout() {
    let app = Router::new().route(
        "/v2/auth/login",
        post(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "{}"
        }),
    );
    let base = provider(app).await;
    login_fails_with(
        &base,
        Some(Duration::from_millis(300)),
        "the provider did not answer within 0.3 s",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_500() {
    let app = Router::new().route(
        "/v2/auth/login",
        post(|| async {
            (StatusCode::INTERNAL_SERVER_ERROR, "SECRET-PROVIDER-BODY").into_response()
        }),
    );
    login_fails_with(&provider(app).await, None, "the provider answered HTTP 500").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_json() {
    let app = Router::new().route(
        "/v2/auth/login",
        post(|| async { "SECRET-PROVIDER-BODY <html>" }),
    );
    login_fails_with(
        &provider(app).await,
        None,
        "the provider's answer is not JSON",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extract_path_missing() {
    let app = Router::new().route(
        "/v2/auth/login",
        post(|| async {
            axum::Json(serde_json::json!({"data": {"note": "SECRET-PROVIDER-BODY"}}))
        }),
    );
    login_fails_with(
        &provider(app).await,
        None,
        "the provider's answer has no value at `$.data.access_token`",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_over_one_mebibyte() {
    let app = Router::new().route(
        "/v2/auth/login",
        post(|| async { "x".repeat(2 * 1024 * 1024) }),
    );
    login_fails_with(
        &provider(app).await,
        None,
        "the provider's answer is larger than 1 MiB",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_another_host_is_not_followed() {
    let other = provider(Router::new().route(
        "/v2/auth/login",
        post(|| async { axum::Json(serde_json::json!({"data": {"access_token": "stolen"}})) }),
    ))
    .await;
    let other = other.replace("127.0.0.1", "localhost");
    let app = Router::new().route(
        "/v2/auth/login",
        post(move || {
            let to = format!("{other}/v2/auth/login");
            async move { (StatusCode::TEMPORARY_REDIRECT, [("location", to)]).into_response() }
        }),
    );
    login_fails_with(&provider(app).await, None, "the provider answered HTTP 307").await;
}

/// A provider speaking raw HTTP/1.1 on a loopback port: each request is read whole (head and
/// body), then `answer` writes what it likes to the connection, or resets it.
async fn raw_provider<F, Fut>(answer: F) -> String
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                if read_request(&mut stream).await {
                    answer(stream).await;
                }
            });
        }
    });
    url
}

/// Reads one request (its head, then `Content-Length` bytes of body); false if the peer
/// closed first.
async fn read_request<S: AsyncRead + Unpin>(s: &mut S) -> bool {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&seen[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = seen.len() - head_end;
    while body < length {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => body += n,
        }
    }
    true
}

/// A login answer a client accepts, for a provider that should never get to send it.
const GOOD_ANSWER: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
    content-length: 43\r\n\r\n{\"data\":{\"access_token\":\"SECRET-PROVIDER\"}}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_reset_in_the_middle_of_the_body() {
    let base = raw_provider(|mut s| async move {
        let part = r#"{"data":{"access_token":"SECRET-PROVIDER-BODY"#;
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            part.len() + 1000
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(part.as_bytes()).await.unwrap();
        s.flush().await.unwrap();
        // Let the client read the head and part of the body, then reset (RST, not FIN).
        tokio::time::sleep(Duration::from_millis(300)).await;
        s.set_zero_linger().unwrap();
        drop(s);
    })
    .await;
    login_fails_with(&base, None, "the provider's answer was cut off").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_drips_forever_is_cut_by_the_timeout() {
    let base = raw_provider(|mut s| async move {
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                    content-length: 1000000\r\n\r\n{\"data\":";
        if s.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        // A byte every 200 ms, for ever (until the client goes away).
        while s.write_all(b" ").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    let started = std::time::Instant::now();
    login_fails_with(
        &base,
        Some(Duration::from_secs(1)),
        "the provider did not answer within 1 s",
    )
    .await;
    // The whole login, the check and the server's start included: bounded by the 1 s timeout.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

/// A provider that streams a 2 GiB answer (made on the fly, never held in memory), counting
/// the bytes it managed to write before the client closed the connection.
async fn two_gib_provider(announce_length: bool) -> (String, Arc<AtomicU64>, Arc<Notify>) {
    const TOTAL: u64 = 2 * 1024 * 1024 * 1024;
    let written = Arc::new(AtomicU64::new(0));
    let closed = Arc::new(Notify::new());
    let (w, c) = (written.clone(), closed.clone());
    let base = raw_provider(move |mut s| {
        let (written, closed) = (w.clone(), c.clone());
        async move {
            let framing = if announce_length {
                format!("content-length: {TOTAL}")
            } else {
                "transfer-encoding: chunked".to_string()
            };
            let head =
                format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{framing}\r\n\r\n");
            let chunk = vec![b' '; 64 * 1024];
            let mut frame = chunk.clone();
            if !announce_length {
                frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
            }
            if s.write_all(head.as_bytes()).await.is_ok() {
                let mut sent = 0;
                while sent < TOTAL && s.write_all(&frame).await.is_ok() {
                    sent += chunk.len() as u64;
                    written.store(sent, Ordering::SeqCst);
                }
            }
            closed.notify_one();
        }
    })
    .await;
    (base, written, closed)
}

async fn two_gib_answer_is_refused(announce_length: bool) {
    let (base, written, closed) = two_gib_provider(announce_length).await;
    login_fails_with(&base, None, "the provider's answer is larger than 1 MiB").await;
    // The server dropped the connection: the provider's writes fail long before 2 GiB.
    tokio::time::timeout(Duration::from_secs(30), closed.notified())
        .await
        .expect("the server kept reading the 2 GiB answer");
    let written = written.load(Ordering::SeqCst);
    eprintln!("the provider wrote {written} bytes before the connection closed");
    assert!(
        written < 64 * 1024 * 1024,
        "the provider wrote {written} bytes before the server closed the connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_gib_answer_is_cut_at_the_cap() {
    two_gib_answer_is_refused(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_gib_answer_announced_by_its_length_is_not_read() {
    two_gib_answer_is_refused(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_loop_fails_the_step() {
    // A 302 turns the POST into a GET: the endpoint answers both with the same redirect.
    let app = Router::new().route(
        "/v2/auth/login",
        axum::routing::any(|| async {
            (StatusCode::FOUND, [("location", "/v2/auth/login")]).into_response()
        }),
    );
    login_fails_with(
        &provider(app).await,
        None,
        "the provider redirected too often",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_html_page_where_json_is_expected() {
    let app = Router::new().route(
        "/v2/auth/login",
        post(|| async {
            axum::response::Html("<!DOCTYPE html><html><body>SECRET-PROVIDER-BODY</body></html>")
        }),
    );
    login_fails_with(
        &provider(app).await,
        None,
        "the provider answered with an HTML page, not JSON",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_provider_with_a_self_signed_certificate_is_refused() {
    use tokio_rustls::rustls;
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![key.cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.key_pair.serialize_der().into()),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // Were the certificate accepted, the login would succeed.
                if let Ok(mut s) = acceptor.accept(tcp).await {
                    if read_request(&mut s).await {
                        let _ = s.write_all(GOOD_ANSWER.as_bytes()).await;
                        let _ = s.shutdown().await;
                    }
                }
            });
        }
    });
    login_fails_with(
        &format!("https://localhost:{port}"),
        None,
        "the provider's TLS certificate is not valid",
    )
    .await;
}
