//! Serving `App` over HTTP/1.1: connections accepted and each served by hyper's connection,
//! until the shutdown signal, then a graceful end.

use super::{App, Logged};
use axum::response::Response;
use std::net::SocketAddr;
use std::time::Duration;

/// `App` on one connection, as hyper calls it.
struct Connection {
    app: App,
    peer: SocketAddr,
}

impl hyper::service::Service<axum::http::Request<hyper::body::Incoming>> for Connection {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = Logged;

    fn call(&self, req: axum::http::Request<hyper::body::Incoming>) -> Self::Future {
        self.app.answer(req, Some(self.peer))
    }
}

/// Serves `app` over HTTP/1.1 on `listener` until `signal` completes; then takes no new
/// connection, lets the requests under way finish, closes idle connections, and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: App,
    signal: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut signal = std::pin::pin!(signal);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // The connection went away before it was accepted: the next one.
                Err(e) if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionRefused
                ) => continue,
                // Out of file descriptors, say: wait rather than spin.
                Err(e) => {
                    tracing::error!(error = %e, "cannot accept a connection");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        () = &mut signal => break,
                    }
                }
            },
            () = &mut signal => break,
        };
        // An answer is written whole, at once: nothing to gain from Nagle's delay.
        let _ = stream.set_nodelay(true);
        let conn = hyper::server::conn::http1::Builder::new().serve_connection(
            hyper_util::rt::TokioIo::new(stream),
            Connection {
                app: app.clone(),
                peer,
            },
        );
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
