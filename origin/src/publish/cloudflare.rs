//! The Cloudflare KV REST API.

use std::time::Duration;

use reqwest::StatusCode;

use super::{BoxFuture, PublishError, Publisher, backoff, encode_key};

/// How [`CloudflareKv`] retries a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all (at least 1).
    pub attempts: u32,
    /// The delay before the first retry; doubles with each retry.
    pub base: Duration,
    /// The longest delay (also caps a `Retry-After`).
    pub max: Duration,
}

impl Default for RetryPolicy {
    /// 5 tries, 250 ms doubling up to 8 s, with jitter.
    fn default() -> RetryPolicy {
        RetryPolicy {
            attempts: 5,
            base: Duration::from_millis(250),
            max: Duration::from_secs(8),
        }
    }
}

/// Writes a Workers KV namespace through the Cloudflare REST API:
/// `PUT`/`DELETE {base_url}/accounts/{account_id}/storage/kv/namespaces/{namespace_id}/values/{key}`
/// (key percent-encoded) with `Authorization: Bearer {api_token}` (a token
/// with the *Workers KV Storage: Edit* permission). 429, 5xx answers and
/// connection errors are retried ([`RetryPolicy`]); other errors are not.
///
/// ```
/// use bunting_origin::publish::{CloudflareKv, Publisher};
/// let kv = CloudflareKv::new("023e105f", "0f2ac74b", "token");
/// assert_eq!(kv.name(), "cloudflare");
/// assert_eq!(kv.url("snapshot:acme/web/dev"),
///     "https://api.cloudflare.com/client/v4/accounts/023e105f/storage/kv/namespaces/0f2ac74b/values/snapshot%3Aacme%2Fweb%2Fdev");
/// ```
#[derive(Debug, Clone)]
pub struct CloudflareKv {
    /// The Cloudflare account id.
    pub account_id: String,
    /// The KV namespace id (the edge worker's `FLAGS` binding).
    pub namespace_id: String,
    /// The API token.
    pub api_token: String,
    /// The API root, `https://api.cloudflare.com/client/v4` (tests point it
    /// at a fake).
    pub base_url: String,
    /// Retries of each request.
    pub retry: RetryPolicy,
    name: String,
    client: reqwest::Client,
}

/// The default API root.
pub(super) const CLOUDFLARE_API: &str = "https://api.cloudflare.com/client/v4";

impl CloudflareKv {
    /// A publisher named `cloudflare` for namespace `namespace_id` of
    /// account `account_id`.
    pub fn new(
        account_id: impl Into<String>,
        namespace_id: impl Into<String>,
        api_token: impl Into<String>,
    ) -> CloudflareKv {
        CloudflareKv {
            account_id: account_id.into(),
            namespace_id: namespace_id.into(),
            api_token: api_token.into(),
            base_url: CLOUDFLARE_API.into(),
            retry: RetryPolicy::default(),
            name: "cloudflare".into(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .connect_timeout(Duration::from_secs(10))
                .build()
                .expect("a TLS client"),
        }
    }

    /// The same against another API root.
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> CloudflareKv {
        self.base_url = base_url.into().trim_end_matches('/').to_string();
        self
    }

    /// The same with another retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> CloudflareKv {
        self.retry = retry;
        self
    }

    /// The same under another target name (one per namespace when several
    /// are published).
    pub fn named(mut self, name: impl Into<String>) -> CloudflareKv {
        self.name = name.into();
        self
    }

    /// The URL of `key`'s value.
    pub fn url(&self, key: &str) -> String {
        format!(
            "{}/accounts/{}/storage/kv/namespaces/{}/values/{}",
            self.base_url,
            self.account_id,
            self.namespace_id,
            encode_key(key)
        )
    }

    /// Sends the request `make` builds until it succeeds, fails for good or
    /// runs out of tries.
    async fn send(
        &self,
        key: &str,
        make: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<(), PublishError> {
        let mut attempt = 1;
        loop {
            let last = attempt >= self.retry.attempts.max(1);
            let (error, retry_after) = match make().bearer_auth(&self.api_token).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => {
                    let status = r.status();
                    let retry_after = r
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let error = PublishError::http(r).await;
                    if status != StatusCode::TOO_MANY_REQUESTS && !status.is_server_error() {
                        return Err(error);
                    }
                    (error, retry_after)
                }
                Err(e) if e.is_connect() || e.is_timeout() || e.is_request() => (e.into(), None),
                Err(e) => return Err(e.into()),
            };
            if last {
                return Err(error);
            }
            let delay = retry_after
                .map(|d| d.min(self.retry.max))
                .unwrap_or_else(|| backoff(self.retry.base, self.retry.max, attempt));
            tracing::debug!(key, attempt, error = %error, delay_ms = delay.as_millis() as u64, "KV request failed, retrying");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }
}

impl Publisher for CloudflareKv {
    fn name(&self) -> &str {
        &self.name
    }

    fn put<'a>(&'a self, key: &'a str, value: &'a [u8]) -> BoxFuture<'a, Result<(), PublishError>> {
        Box::pin(async move {
            let url = self.url(key);
            self.send(key, || {
                self.client
                    .put(&url)
                    .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .body(value.to_vec())
            })
            .await
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), PublishError>> {
        Box::pin(async move {
            let url = self.url(key);
            match self.send(key, || self.client.delete(&url)).await {
                // Already gone (the API answers 200 for a missing key too).
                Err(PublishError::Http { status: 404, .. }) => Ok(()),
                other => other,
            }
        })
    }

    fn splits_tables(&self) -> bool {
        true
    }
}
