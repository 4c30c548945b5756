//! Slow, idle and too many clients (`otvi serve --header-timeout`, `--idle-timeout`,
//! `--max-connections`): a request head or body that does not arrive whole in time and a kept-alive
//! connection idle too long are closed, while others are served; at the cap no more
//! connections are served until one closes; running out of file descriptors is logged once.

mod common;

use common::*;
use otvi_server::api::Connections;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: otvi\r\n\r\n";
/// The start of a request head, its end never sent.
const HALF_HEAD: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: otvi\r\nX-Slow: ";

/// The server over a fresh database, its connections held to `limits`; its address.
async fn start(limits: Connections) -> (String, tempfile::TempDir, tokio::task::JoinHandle<()>) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config("http://127.0.0.1:9", dir.path());
    let app = otvi_server::config::app(&cfg).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let _ = otvi_server::api::serve_with(listener, app, limits, std::future::pending()).await;
    });
    (addr, dir, task)
}

/// Whether the server closed `c` (a read ends or fails) within `bound`; it must not answer.
async fn closed_within(c: &mut TcpStream, bound: Duration) -> bool {
    let mut buf = [0u8; 256];
    match tokio::time::timeout(bound, c.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(n)) => panic!(
            "an answer where none was due: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(_) => false,
    }
}

/// One request on `c` and its whole answer (head and `Content-Length` body).
async fn roundtrip(c: &mut TcpStream, request: &[u8]) -> String {
    c.write_all(request).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = c.read(&mut buf).await.unwrap();
        assert!(
            n > 0,
            "closed mid-answer: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |n| n.trim().parse().unwrap());
            if got.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

async fn healthz(addr: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("http://{addr}/healthz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn half_sent_request_heads_are_cut_off_at_the_header_timeout_while_others_are_served() {
    let (addr, _dir, _server) = start(Connections {
        header_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(60),
        max_connections: 1000,
    })
    .await;
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut c = TcpStream::connect(&addr).await.unwrap();
        c.write_all(HALF_HEAD).await.unwrap();
        slow.push(c);
    }
    // One that sends its head a byte at a time, never finishing it: the timeout is on the
    // whole head, not between bytes.
    let dribbler = {
        let addr = addr.clone();
        tokio::spawn(async move {
            let mut c = TcpStream::connect(&addr).await.unwrap();
            let started = Instant::now();
            for b in HALF_HEAD.iter().chain(b"x".repeat(10_000).iter()) {
                if c.write_all(&[*b]).await.is_err() {
                    return started.elapsed();
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("a dribbled head was never cut off");
        })
    };
    // The slow ones are open; the server answers others meanwhile.
    assert!(!closed_within(&mut slow[0], Duration::from_millis(100)).await);
    for _ in 0..5 {
        assert_eq!(healthz(&addr).await, 200);
    }
    // Then each is closed, without an answer, well before a generous bound.
    let mut closing = tokio::task::JoinSet::new();
    for mut c in slow {
        closing.spawn(async move { closed_within(&mut c, Duration::from_secs(15)).await });
    }
    let mut closed = 0;
    while let Some(c) = closing.join_next().await {
        closed += usize::from(c.unwrap());
    }
    assert_eq!(closed, 200);
    let cut = tokio::time::timeout(Duration::from_secs(15), dribbler)
        .await
        .expect("the dribbled head was not cut off")
        .unwrap();
    assert!(cut >= Duration::from_secs(2), "cut off after {cut:?}");
    assert_eq!(healthz(&addr).await, 200);
}

/// A login head that announces a body of 64 bytes.
const LOGIN_HEAD: &[u8] = b"POST /api/providers/acme/auth/login HTTP/1.1\r\nHost: otvi\r\n\
Content-Type: application/json\r\nContent-Length: 64\r\n\r\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_request_body_is_cut_off_and_frees_its_connection_place() {
    let (addr, _dir, _server) = start(Connections {
        header_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(60),
        max_connections: 8,
    })
    .await;
    // Every place taken by a whole head whose body stops after a few bytes.
    let mut stalled = Vec::new();
    for _ in 0..8 {
        let mut c = TcpStream::connect(&addr).await.unwrap();
        c.write_all(LOGIN_HEAD).await.unwrap();
        c.write_all(b"{\"flow\"").await.unwrap();
        stalled.push(c);
    }
    // A ninth waits in the listen queue meanwhile.
    let mut ninth = TcpStream::connect(&addr).await.unwrap();
    ninth.write_all(HEALTHZ).await.unwrap();
    assert!(!closed_within(&mut stalled[0], Duration::from_millis(500)).await);
    // The stalled ones are closed without an answer, and the ninth is then served.
    let mut closing = tokio::task::JoinSet::new();
    for mut c in stalled {
        closing.spawn(async move { closed_within(&mut c, Duration::from_secs(15)).await });
    }
    while let Some(closed) = closing.join_next().await {
        assert!(closed.unwrap(), "a stalled body kept its connection");
    }
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(10), ninth.read(&mut buf))
        .await
        .expect("the queued connection was not served once the stalled ones were cut off")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    // A body dribbled a byte at a time is cut off too: the timeout is on the whole body.
    let mut c = TcpStream::connect(&addr).await.unwrap();
    c.write_all(LOGIN_HEAD).await.unwrap();
    let started = Instant::now();
    let mut cut = None;
    for _ in 0..64 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if c.write_all(b" ").await.is_err() || closed_within(&mut c, Duration::ZERO).await {
            cut = Some(started.elapsed());
            break;
        }
    }
    let cut = cut.expect("a dribbled body was never cut off");
    assert!(cut >= Duration::from_secs(2), "cut off after {cut:?}");

    // A whole body that arrives in time, if slowly, is answered (401: no token).
    let mut c = TcpStream::connect(&addr).await.unwrap();
    c.write_all(LOGIN_HEAD).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let answer = roundtrip(&mut c, &[b' '; 64]).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kept_alive_connection_is_closed_once_idle_past_the_idle_timeout() {
    let (addr, _dir, _server) = start(Connections {
        header_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(1),
        max_connections: 1000,
    })
    .await;
    // Requests closer together than the idle timeout keep it open, past it in all.
    let mut c = TcpStream::connect(&addr).await.unwrap();
    let started = Instant::now();
    for _ in 0..5 {
        let answer = roundtrip(&mut c, HEALTHZ).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert!(started.elapsed() > Duration::from_secs(1));
    // Then left idle: closed.
    assert!(closed_within(&mut c, Duration::from_secs(15)).await);
    // A new connection that has sent nothing is held to the header timeout, not the idle one.
    let mut fresh = TcpStream::connect(&addr).await.unwrap();
    assert!(!closed_within(&mut fresh, Duration::from_secs(2)).await);
    let answer = roundtrip(&mut fresh, HEALTHZ).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn beyond_the_connection_cap_a_connection_waits_until_another_closes() {
    let (addr, _dir, _server) = start(Connections {
        header_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(60),
        max_connections: 4,
    })
    .await;
    // Four connections, each served once and kept alive.
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut c = TcpStream::connect(&addr).await.unwrap();
        assert!(roundtrip(&mut c, HEALTHZ).await.starts_with("HTTP/1.1 200"));
        held.push(c);
    }
    // A fifth is connected by the kernel but not served while four are open.
    let mut fifth = TcpStream::connect(&addr).await.unwrap();
    fifth.write_all(HEALTHZ).await.unwrap();
    assert!(!closed_within(&mut fifth, Duration::from_secs(1)).await);
    // The held ones are still served.
    assert!(roundtrip(&mut held[0], HEALTHZ)
        .await
        .starts_with("HTTP/1.1 200"));
    // One closes: the fifth is accepted and answered.
    drop(held.pop());
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(10), fifth.read(&mut buf))
        .await
        .expect("the fifth connection was not served after one closed")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread")]
async fn running_out_of_file_descriptors_is_logged_once_and_the_server_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("otvi.db").display());
    let server = RealServer::start(
        &[
            "--database-url".into(),
            db,
            "--header-timeout".into(),
            "60s".into(),
            "--max-connections".into(),
            "1000".into(),
        ],
        &[],
    );
    let addr = server.server.url.trim_start_matches("http://").to_string();
    assert_eq!(healthz(&addr).await, 200);
    // 64 open files for the server from now on: a few dozen connections are all it can take.
    let limited = std::process::Command::new("prlimit")
        .args(["--pid", &server.pid().to_string(), "--nofile=64:64"])
        .status()
        .unwrap();
    assert!(limited.success());
    let mut open = Vec::new();
    for _ in 0..150 {
        let mut c = TcpStream::connect(&addr).await.unwrap();
        c.write_all(HALF_HEAD).await.unwrap();
        open.push(c);
    }
    // Accepts fail over and over (each retried after a pause of up to 1 s) for a while.
    tokio::time::sleep(Duration::from_secs(4)).await;
    drop(open);
    // Served again once the connections have closed.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = reqwest::Client::new()
            .get(format!("http://{addr}/healthz"))
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        if answer.is_ok_and(|a| a.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "not served again after 30 s");
    }
    // Quiet long enough to end the episode; the next accept says so.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(healthz(&addr).await, 200);
    let log = server.stop();
    let said = log
        .lines()
        .filter(|l| l.contains("cannot accept connections"))
        .count();
    assert_eq!(said, 1, "the failure is said once:\n{log}");
    assert!(
        log.contains("Too many open files"),
        "the failure names its cause:\n{log}"
    );
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("accepting connections again"))
            .count(),
        1,
        "{log}"
    );
}
