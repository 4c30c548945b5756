//! Outbound HTTP to providers: one pooled client, a timeout, a body cap, no cross-host redirects,
//! no cookie jar (nothing one user's provider sets can reach another user's request).

use otvi_runtime::request::{Outbound, StepError};
use otvi_runtime::response::Reply;
use std::time::Duration;

/// The largest provider answer read; more fails the step.
pub const MAX_BODY: usize = 1024 * 1024;

/// Same-host redirects followed before a step fails with "redirected too often". A step with
/// `follow_redirects: false` sees every 3xx itself; a redirect to another host is never
/// followed (the step sees that 3xx).
pub const MAX_REDIRECTS: usize = 5;

#[derive(Debug)]
struct TooManyRedirects;

impl std::fmt::Display for TooManyRedirects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("too many redirects")
    }
}

impl std::error::Error for TooManyRedirects {}

/// Whether a redirect from `from` to `to` may be followed: the same scheme, host and port.
/// Another host is never followed, and neither is `https` to `http` on the same host (the
/// step's headers and body would go out in clear text).
fn same_origin(from: &reqwest::Url, to: &reqwest::Url) -> bool {
    from.scheme() == to.scheme()
        && from.host_str() == to.host_str()
        && from.port_or_known_default() == to.port_or_known_default()
}

#[derive(Debug, Clone)]
pub struct Upstream {
    client: reqwest::Client,
    /// For steps that want to see a redirect rather than follow it.
    no_redirects: reqwest::Client,
    timeout: Duration,
}

impl Upstream {
    pub fn new(timeout: Duration) -> Self {
        let builder = || {
            reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout)
        };
        let no_redirects = builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        let client = builder()
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                let same_origin = attempt
                    .previous()
                    .first()
                    .is_some_and(|first| same_origin(first, attempt.url()));
                if !same_origin {
                    // The step sees the 3xx itself (and fails on it, or reads `Location`).
                    attempt.stop()
                } else if attempt.previous().len() > MAX_REDIRECTS {
                    // A loop or an endless chain: an error, not the last 3xx.
                    attempt.error(TooManyRedirects)
                } else {
                    attempt.follow()
                }
            }))
            .build()
            .unwrap_or_default();
        Upstream {
            client,
            no_redirects,
            timeout,
        }
    }

    pub async fn send(&self, o: Outbound) -> Result<Reply, StepError> {
        let url = o.full_url()?;
        let client = if o.follow_redirects {
            &self.client
        } else {
            &self.no_redirects
        };
        let mut rb = client.request(o.method, url);
        for (k, v) in o.headers {
            rb = rb.header(k, v);
        }
        if let Some(b) = o.body {
            rb = rb.body(b);
        }
        let mut resp = rb.send().await.map_err(|e| self.describe(&e))?;
        let too_large = || StepError::Provider("the provider's answer is larger than 1 MiB".into());
        // An announced length over the cap fails before a byte of the body is read.
        if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
            return Err(too_large());
        }
        let status = resp.status().as_u16();
        let headers = std::mem::take(resp.headers_mut());
        let mut body = Vec::new();
        // Read chunk by chunk and stop at the cap: an endless or huge body costs at most
        // MAX_BODY of memory, and dropping `resp` closes the connection. The client's total
        // timeout bounds a body that trickles in forever.
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.describe(&e))? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Reply::new(status, headers, body.into()))
    }

    /// A short message for a failed request: what went wrong, never the provider's body.
    fn describe(&self, e: &reqwest::Error) -> StepError {
        StepError::Provider(if e.is_timeout() {
            format!(
                "the provider did not answer within {} s",
                self.timeout.as_secs_f32()
            )
        } else if let Some(tls) = tls_error(e) {
            match tls {
                rustls::Error::InvalidCertificate(_) => {
                    "the provider's TLS certificate is not valid".into()
                }
                _ => "the TLS connection to the provider failed".into(),
            }
        } else if e.is_connect() {
            "the provider could not be reached".into()
        } else if e.is_redirect() {
            "the provider redirected too often".into()
        } else if e.is_body() || e.is_decode() {
            "the provider's answer was cut off".into()
        } else {
            "the provider request failed".into()
        })
    }
}

/// The TLS error behind a failed request, if any. `io::Error::source` skips the error it
/// wraps, so each `io::Error` in the chain is opened with `get_ref`.
fn tls_error(e: &reqwest::Error) -> Option<&rustls::Error> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        next = match err.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as _),
            None => err.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_stay_on_the_origin_and_never_leave_https() {
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        let from = u("https://api.example/login");
        assert!(same_origin(&from, &u("https://api.example/next")));
        assert!(same_origin(&from, &u("https://api.example:443/next")));
        assert!(!same_origin(&from, &u("http://api.example/next")));
        assert!(!same_origin(&from, &u("http://api.example:443/next")));
        assert!(!same_origin(&from, &u("https://other.example/next")));
        assert!(!same_origin(&from, &u("https://api.example:8443/next")));
        assert!(same_origin(
            &u("http://127.0.0.1:9/a"),
            &u("http://127.0.0.1:9/b")
        ));
    }
}
