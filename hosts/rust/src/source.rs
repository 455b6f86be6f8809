//! Where snapshots come from: the edge's snapshot endpoint, Cloudflare KV's
//! REST API, or the origin's directory publisher. One fetch returns the
//! snapshot's JSON text as published (out of a packed value, for KV and
//! the directory: [`crate::packed`]), or "not modified".

use std::path::PathBuf;

use crate::error::SnapshotError;
use crate::packed::snapshot_text;

/// Cloudflare's API root, the default [`Source::Kv`] `api_base`.
pub const CLOUDFLARE_API: &str = "https://api.cloudflare.com/client/v4";

/// A snapshot source (exactly one per client).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// `GET {url}/sdk/v1/snapshot` with the server SDK key, conditional on
    /// the last ETag.
    Edge {
        /// The edge worker's base URL, e.g. `https://flags.example.com`.
        url: String,
    },
    /// Cloudflare KV through its REST API (key `snapshot:<environment>`).
    Kv {
        /// API root, [`CLOUDFLARE_API`] unless testing.
        api_base: String,
        /// Cloudflare account id.
        account_id: String,
        /// KV namespace id.
        namespace_id: String,
        /// The edge environment name, e.g. `acme/web/production`.
        environment: String,
        /// A Cloudflare API token allowed to read the namespace.
        api_token: String,
    },
    /// The directory publisher's files (`bunting serve --publish-dir DIR`).
    Directory {
        /// The publish directory.
        dir: PathBuf,
        /// The edge environment name, e.g. `acme/web/production`.
        environment: String,
    },
    /// A fixed snapshot document, never refreshed (offline use and tests).
    Fixed {
        /// The snapshot JSON.
        json: String,
        /// Load it leniently (broken flags evaluate to errors).
        lenient: bool,
    },
}

impl Source {
    /// A short name for status reports: `edge`, `kv`, `directory`, `fixed`.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Edge { .. } => "edge",
            Source::Kv { .. } => "kv",
            Source::Directory { .. } => "directory",
            Source::Fixed { .. } => "fixed",
        }
    }

    /// The environment this source is for, when it names one.
    pub(crate) fn environment(&self) -> Option<&str> {
        match self {
            Source::Kv { environment, .. } | Source::Directory { environment, .. } => {
                Some(environment)
            }
            _ => None,
        }
    }
}

/// The directory publisher's file name for `key`: every byte but
/// `A-Za-z0-9-_.~` percent-encoded with uppercase hex.
///
/// ```
/// assert_eq!(bunting_server_sdk::encode_key("snapshot:acme/web/production"),
///            "snapshot%3Aacme%2Fweb%2Fproduction");
/// ```
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len() * 3);
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What one fetch found.
#[derive(Debug)]
pub(crate) enum Fetched {
    /// Same as last time (304).
    NotModified,
    /// The snapshot bytes and the ETag to send next time.
    Body(String, Option<String>),
}

/// Fetches from one source.
#[derive(Debug, Clone)]
pub(crate) struct Fetcher {
    pub(crate) source: Source,
    pub(crate) sdk_key: String,
    pub(crate) http: reqwest::Client,
}

impl Fetcher {
    pub(crate) async fn fetch(&self, etag: Option<&str>) -> Result<Fetched, SnapshotError> {
        let fail = |e: &dyn std::fmt::Display| SnapshotError::Fetch(e.to_string());
        match &self.source {
            Source::Fixed { json, .. } => Ok(Fetched::Body(json.clone(), None)),
            Source::Directory { dir, environment } => {
                let path = dir.join(encode_key(&format!(
                    "{}{environment}",
                    bunting_wire::kv::SNAPSHOT_PREFIX
                )));
                let value = tokio::fs::read(&path)
                    .await
                    .map_err(|e| fail(&format!("{}: {e}", path.display())))?;
                Ok(Fetched::Body(snapshot_text(value)?, None))
            }
            Source::Edge { url } => {
                let mut req = self
                    .http
                    .get(format!("{}/sdk/v1/snapshot", url.trim_end_matches('/')))
                    .bearer_auth(&self.sdk_key);
                if let Some(tag) = etag {
                    req = req.header(reqwest::header::IF_NONE_MATCH, tag);
                }
                let resp = req.send().await.map_err(|e| fail(&e))?;
                if resp.status() == reqwest::StatusCode::NOT_MODIFIED {
                    return Ok(Fetched::NotModified);
                }
                let tag = resp
                    .headers()
                    .get(reqwest::header::ETAG)
                    .and_then(|v| v.to_str().ok())
                    .map(String::from);
                let body = checked(resp).await?;
                let text = String::from_utf8_lossy(&body).into_owned();
                Ok(Fetched::Body(text, tag))
            }
            Source::Kv {
                api_base,
                account_id,
                namespace_id,
                environment,
                api_token,
            } => {
                let key = encode_key(&format!(
                    "{}{environment}",
                    bunting_wire::kv::SNAPSHOT_PREFIX
                ));
                let url = format!(
                    "{}/accounts/{account_id}/storage/kv/namespaces/{namespace_id}/values/{key}",
                    api_base.trim_end_matches('/')
                );
                let resp = self
                    .http
                    .get(url)
                    .bearer_auth(api_token)
                    .send()
                    .await
                    .map_err(|e| fail(&e))?;
                Ok(Fetched::Body(snapshot_text(checked(resp).await?)?, None))
            }
        }
    }
}

/// The body of a 2xx answer, or the status and the start of the body.
async fn checked(resp: reqwest::Response) -> Result<Vec<u8>, SnapshotError> {
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| SnapshotError::Fetch(e.to_string()))?;
    if status.is_success() {
        Ok(body.into())
    } else {
        let shown: String = String::from_utf8_lossy(&body).chars().take(200).collect();
        Err(SnapshotError::Fetch(format!("HTTP {status}: {shown}")))
    }
}
