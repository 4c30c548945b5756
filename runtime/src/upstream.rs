//! Outbound HTTP to providers: one pooled client, a timeout, a body cap, no cross-host redirects,
//! no cookie jar (nothing one user's provider sets can reach another user's request).

use crate::request::{Outbound, StepError};
use crate::response::Reply;
use std::time::Duration;

/// The largest provider answer read; more fails the step.
pub const MAX_BODY: usize = 1024 * 1024;

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
                let same_host = attempt
                    .previous()
                    .first()
                    .map(|u| (u.host_str(), u.port_or_known_default()))
                    == Some((
                        attempt.url().host_str(),
                        attempt.url().port_or_known_default(),
                    ));
                if same_host && attempt.previous().len() < 5 {
                    attempt.follow()
                } else {
                    attempt.stop()
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
        let mut url = reqwest::Url::parse(&o.url)
            .map_err(|_| StepError::Provider("the provider URL is not valid".into()))?;
        if !o.query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(o.query.iter().map(|(k, v)| (*k, v.as_str())));
        }
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
        let status = resp.status().as_u16();
        let headers = std::mem::take(resp.headers_mut());
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.describe(&e))? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(StepError::Provider(
                    "the provider's answer is larger than 1 MiB".into(),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Reply::new(status, headers, body.into()))
    }

    fn describe(&self, e: &reqwest::Error) -> StepError {
        StepError::Provider(if e.is_timeout() {
            format!(
                "the provider did not answer within {} s",
                self.timeout.as_secs_f32()
            )
        } else if e.is_connect() {
            "the provider could not be reached".into()
        } else if e.is_redirect() {
            "the provider redirected too often".into()
        } else {
            "the provider request failed".into()
        })
    }
}
