//! The edge's pointers: after a snapshot is published, the worker's
//! `POST /edge/v1/snapshot` hands it to its environment's Durable Object,
//! which makes isolates serve it within about a second, before KV has
//! propagated it (see `edge-worker/src/pointer.rs` and `docs/edge.md`).

use std::time::Duration;

use bunting_core::packed;
use bunting_wire::kv::SNAPSHOT_PREFIX;

use super::{BoxFuture, PublishError, Publisher};

/// The worker route that updates an environment's pointer.
const POINTER_PATH: &str = "/edge/v1/snapshot";

/// The header of the worker's answers naming the snapshot forms it reads
/// (`edge-worker/src/pointer.rs`, `FORMS_HEADER`); a worker without it
/// predates packed pointer values.
const FORMS_HEADER: &str = "x-bunting-snapshot-forms";

/// Publishes snapshots to the edge worker's pointers: `put` of a
/// `snapshot:<environment>` key POSTs the snapshot to
/// `{edge_url}/edge/v1/snapshot` with `Authorization: Bearer {secret}`
/// (the worker's `POINTER_SECRET`); other keys (SDK keys) and deletions
/// are for KV only and succeed at once. A failure is retried by the
/// publish loop with its backoff; a 400 (a snapshot the edge refuses) is
/// permanent.
///
/// The pointer gets the value KV gets: with
/// [`KvFormat::Packed`](super::KvFormat) (the default) the packed form
/// (`application/octet-stream`), else the JSON text. A worker that
/// predates packed pointer values answers a packed value 400 (not UTF-8,
/// not a snapshot): on a 400 to a packed value, its JSON text
/// ([`packed::document`]) is sent instead, once, and that logged, so an
/// origin upgraded before its worker keeps the pointer working. A worker
/// that reads packed values says so in every answer (the
/// `X-Bunting-Snapshot-Forms` header): its 400 is final (the snapshot itself is refused), and no JSON follows,
/// which a worker reading packed values only would refuse too. A JSON
/// text such a worker refuses (`--kv-format json`) is a permanent 400
/// whose body says to publish packed. A packed value without a JSON text,
/// or whose header does not read, is refused ([`PublishError::Packing`],
/// permanent) without a request: the edge could not serve it.
///
/// ```
/// use bunting_origin::publish::{EdgePointer, Publisher};
/// let p = EdgePointer::new("https://flags.example.com/", "s3cret");
/// assert_eq!(p.name(), "edge-pointer");
/// assert_eq!(p.url(), "https://flags.example.com/edge/v1/snapshot");
/// ```
#[derive(Debug, Clone)]
pub struct EdgePointer {
    base_url: String,
    secret: String,
    client: reqwest::Client,
}

impl EdgePointer {
    /// A publisher to the worker at `edge_url`, authenticated with `secret`.
    pub fn new(edge_url: impl Into<String>, secret: impl Into<String>) -> EdgePointer {
        EdgePointer {
            base_url: edge_url.into().trim_end_matches('/').to_string(),
            secret: secret.into(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .connect_timeout(Duration::from_secs(10))
                .build()
                .expect("a TLS client"),
        }
    }

    /// The URL snapshots are POSTed to.
    pub fn url(&self) -> String {
        format!("{}{POINTER_PATH}", self.base_url)
    }
}

/// The JSON text of a `snapshot:<env>` value: the value itself, or the
/// document a packed value carries.
fn json_text(value: &[u8]) -> Result<&[u8], PublishError> {
    if !value.starts_with(&packed::MAGIC) {
        return Ok(value);
    }
    match packed::document(value) {
        Ok(Some(text)) => Ok(text.as_bytes()),
        Ok(None) => Err(PublishError::Packing(
            "the packed snapshot carries no JSON text for the edge pointer".into(),
        )),
        Err(e) => Err(PublishError::Packing(format!(
            "the packed snapshot's JSON text for the edge pointer: {e}"
        ))),
    }
}

/// A refused POST: the error, and whether the worker reads packed values
/// (the `X-Bunting-Snapshot-Forms` header names them).
struct Refused {
    error: PublishError,
    reads_packed: bool,
}

impl From<reqwest::Error> for Refused {
    fn from(e: reqwest::Error) -> Refused {
        Refused {
            error: e.into(),
            reads_packed: false,
        }
    }
}

impl EdgePointer {
    /// POSTs `body` to the pointer route as `content_type`.
    async fn post(&self, body: &[u8], content_type: &str) -> Result<(), Refused> {
        let r = self
            .client
            .post(self.url())
            .bearer_auth(&self.secret)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body.to_vec())
            .send()
            .await?;
        if r.status().is_success() {
            return Ok(());
        }
        let reads_packed = r
            .headers()
            .get(FORMS_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|forms| forms.split(',').any(|f| f.trim() == "packed"));
        Err(Refused {
            error: PublishError::http(r).await,
            reads_packed,
        })
    }
}

impl Publisher for EdgePointer {
    fn name(&self) -> &str {
        "edge-pointer"
    }

    fn put<'a>(&'a self, key: &'a str, value: &'a [u8]) -> BoxFuture<'a, Result<(), PublishError>> {
        Box::pin(async move {
            if !key.starts_with(SNAPSHOT_PREFIX) {
                return Ok(());
            }
            // Checked before any request: the fallback needs it, and a
            // packed value without it is one the edge cannot serve.
            let json = json_text(value)?;
            if !value.starts_with(&packed::MAGIC) {
                return self
                    .post(json, "application/json")
                    .await
                    .map_err(|r| r.error);
            }
            match self.post(value, "application/octet-stream").await {
                Err(Refused {
                    error: PublishError::Http { status: 400, body },
                    reads_packed: false,
                }) => {
                    tracing::warn!(
                        key,
                        url = %self.url(),
                        answer = %body,
                        "the edge worker refused the packed snapshot (HTTP 400), sending its JSON text instead; \
                         a worker that predates packed pointer values takes JSON only: upgrade it"
                    );
                    self.post(json, "application/json")
                        .await
                        .map_err(|r| r.error)
                }
                other => other.map_err(|r| r.error),
            }
        })
    }

    fn delete<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, Result<(), PublishError>> {
        // A deleted environment's keys leave KV; its pointer is never asked
        // again.
        Box::pin(async { Ok(()) })
    }
}
