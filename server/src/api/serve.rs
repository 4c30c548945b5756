//! Serving `App` over HTTP/1.1: connections accepted and each served by hyper's connection,
//! until the shutdown signal, then a graceful end. Slow, idle and too many clients are held to
//! [`Connections`]' limits, as nginx holds them: a request head or body that does not arrive
//! whole in time and a kept-alive connection idle too long are closed without an answer, and
//! at the cap on open connections no more are accepted until one closes (they wait in the
//! listen queue).

use super::{App, Logged};
use axum::response::Response;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// The limits on client connections (`otvi serve --header-timeout`, `--idle-timeout`,
/// `--max-connections`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connections {
    /// A request head must arrive whole within this: on a new connection from its accept, on
    /// a kept-alive one from the first byte of the request. Then its body, if it has one,
    /// must arrive whole within this again, from the end of the head.
    pub header_timeout: Duration,
    /// A kept-alive connection that sends no byte of a next request for this long after an
    /// answer is closed.
    pub idle_timeout: Duration,
    /// At most this many client connections are open at once; beyond it none is accepted
    /// until one closes (the others wait in the listen queue).
    pub max_connections: usize,
}

impl Default for Connections {
    /// nginx's defaults for the timeouts, but a header timeout of 10 s rather than 60 s: a
    /// client of this API sends one short request head.
    fn default() -> Self {
        Connections {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            max_connections: 1024,
        }
    }
}

/// Where one connection is in its request cycle, for its timeouts: a phase and since when, in
/// one word (milliseconds since the connection was accepted, shifted, and the phase).
struct Clock {
    accepted: Instant,
    state: AtomicU64,
}

/// Waiting for a request head to be whole.
const HEAD: u64 = 0;
/// Kept alive after an answer, no byte of a next request yet.
const IDLE: u64 = 1;
/// A request being answered: no timeout of the connection's own.
const BUSY: u64 = 2;
/// A request's head is read, its body not yet whole (nor given up by the answer).
const BODY: u64 = 3;

impl Clock {
    fn new() -> Self {
        Clock {
            accepted: Instant::now(),
            state: AtomicU64::new(HEAD),
        }
    }

    fn set(&self, phase: u64) {
        let since = self.accepted.elapsed().as_millis() as u64;
        // One task drives the connection, its reads and its answers: nothing to order.
        self.state.store(since << 2 | phase, Ordering::Relaxed);
    }

    fn phase(&self) -> u64 {
        self.state.load(Ordering::Relaxed) & 3
    }

    /// When the connection is to be closed, if it is still where it is now; `None` while busy.
    fn deadline(&self, limits: &Connections) -> Option<Instant> {
        let state = self.state.load(Ordering::Relaxed);
        let since = self.accepted + Duration::from_millis(state >> 2);
        match state & 3 {
            HEAD | BODY => Some(since + limits.header_timeout),
            IDLE => Some(since + limits.idle_timeout),
            _ => None,
        }
    }
}

/// The connection's socket, telling its clock when a kept-alive connection's next request
/// starts.
struct Watched {
    io: tokio::net::TcpStream,
    clock: Arc<Clock>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.io).poll_read(cx, buf))?;
        if buf.filled().len() > before && self.clock.phase() == IDLE {
            self.clock.set(HEAD);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// `App` on one connection, as hyper calls it.
struct Connection {
    app: App,
    peer: SocketAddr,
    clock: Arc<Clock>,
}

impl hyper::service::Service<axum::http::Request<hyper::body::Incoming>> for Connection {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = Answering;

    fn call(&self, req: axum::http::Request<hyper::body::Incoming>) -> Self::Future {
        use http_body::Body as _;
        let whole = req.body().is_end_stream();
        self.clock.set(if whole { BUSY } else { BODY });
        let clock = self.clock.clone();
        let req = req.map(|inner| Arriving {
            inner,
            clock: (!whole).then_some(clock),
        });
        Answering {
            answer: self.app.answer(req, Some(self.peer)),
            clock: self.clock.clone(),
        }
    }
}

/// A request body on its way: once it has all arrived, or the answer drops it unread, the
/// connection is busy answering and the body's deadline no longer holds. A client that sends
/// a head and then stalls its body is cut off like one that stalls its head, so it cannot
/// hold a connection place for long.
struct Arriving {
    inner: hyper::body::Incoming,
    /// Until the body is whole.
    clock: Option<Arc<Clock>>,
}

impl Arriving {
    fn arrived(&mut self) {
        if let Some(clock) = self.clock.take() {
            if clock.phase() == BODY {
                clock.set(BUSY);
            }
        }
    }
}

impl http_body::Body for Arriving {
    type Data = axum::body::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if frame.is_none() || self.inner.is_end_stream() {
            self.arrived();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Arriving {
    fn drop(&mut self) {
        self.arrived();
    }
}

/// An answer under way; once it is ready the connection is idle, kept alive for the next.
struct Answering {
    answer: Logged,
    clock: Arc<Clock>,
}

impl std::future::Future for Answering {
    type Output = <Logged as std::future::Future>::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let answer = ready!(Pin::new(&mut self.answer).poll(cx));
        self.clock.set(IDLE);
        Poll::Ready(answer)
    }
}

/// Serves `app` over HTTP/1.1 on `listener` with the default [`Connections`] until `signal`
/// completes; see [`serve_with`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: App,
    signal: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    serve_with(listener, app, Connections::default(), signal).await
}

/// Serves `app` over HTTP/1.1 on `listener`, each connection held to `limits`, until `signal`
/// completes; then takes no new connection, lets the requests under way finish, closes idle
/// connections, and returns.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    app: App,
    limits: Connections,
    signal: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let open = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let mut refusals = Refusals::default();
    let mut signal = std::pin::pin!(signal);
    'serving: loop {
        // A place first: at the cap, nothing is accepted until a connection closes.
        let place = tokio::select! {
            place = open.clone().acquire_owned() => place.expect("the semaphore is never closed"),
            () = &mut signal => break,
        };
        let (stream, peer) = loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => {
                        refusals.accepted();
                        break accepted;
                    }
                    // The connection went away before it was accepted: the next one.
                    Err(e) if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionAborted
                            | std::io::ErrorKind::ConnectionReset
                            | std::io::ErrorKind::ConnectionRefused
                    ) => {}
                    // Out of file descriptors, say: said once, then a growing pause.
                    Err(e) => {
                        let pause = refusals.failed(&e, open.available_permits(), &limits);
                        tokio::select! {
                            () = tokio::time::sleep(pause) => {}
                            () = &mut signal => break 'serving,
                        }
                    }
                },
                () = &mut signal => break 'serving,
            }
        };
        // An answer is written whole, at once: nothing to gain from Nagle's delay.
        let _ = stream.set_nodelay(true);
        let clock = Arc::new(Clock::new());
        let conn = hyper::server::conn::http1::Builder::new().serve_connection(
            hyper_util::rt::TokioIo::new(Watched {
                io: stream,
                clock: clock.clone(),
            }),
            Connection {
                app: app.clone(),
                peer,
                clock: clock.clone(),
            },
        );
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _place = place;
            let mut conn = std::pin::pin!(conn);
            // Woken at the deadline, or while busy once in a while to see whether it is
            // still: the clock moves without waking this task.
            let every = limits.header_timeout.min(limits.idle_timeout);
            let alarm = tokio::time::sleep(every);
            let mut alarm = std::pin::pin!(alarm);
            loop {
                tokio::select! {
                    ended = &mut conn => {
                        if let Err(e) = ended {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                        return;
                    }
                    () = &mut alarm => {
                        let now = Instant::now();
                        match clock.deadline(&limits) {
                            Some(deadline) if deadline <= now => {
                                tracing::debug!(%peer, "connection closed: too slow or idle too long");
                                return;
                            }
                            Some(deadline) => alarm.as_mut().reset(deadline),
                            None => alarm.as_mut().reset(now + every),
                        }
                    }
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Accepts that failed in a row (out of file descriptors, most often): the first of an
/// episode is logged, the rest are counted; the pause before trying again grows from 5 ms to
/// 1 s. The episode ends when accepting has worked again for a while, so that a process at its
/// limit, where each closed connection lets one more in, does not log each time.
#[derive(Default)]
struct Refusals {
    failed: u64,
    pause: Duration,
    last: Option<Instant>,
}

impl Refusals {
    const QUIET: Duration = Duration::from_secs(5);

    fn failed(&mut self, e: &std::io::Error, free: usize, limits: &Connections) -> Duration {
        if self.failed == 0 {
            tracing::error!(
                error = %e,
                open = limits.max_connections.saturating_sub(free),
                "cannot accept connections (out of file descriptors? raise `ulimit -n` or \
                 lower --max-connections); retrying, said once until it recovers"
            );
        }
        self.failed += 1;
        self.last = Some(Instant::now());
        self.pause = (self.pause * 2).clamp(Duration::from_millis(5), Duration::from_secs(1));
        self.pause
    }

    fn accepted(&mut self) {
        if let Some(last) = self.last {
            if last.elapsed() >= Self::QUIET {
                tracing::warn!(
                    failed = self.failed,
                    "accepting connections again after failed accepts"
                );
                *self = Refusals::default();
            } else {
                self.pause = Duration::ZERO;
            }
        }
    }
}
