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
/// which a worker reading packed values only would refuse too — unless
/// the value is of the packed format's version 2 and the worker names
/// `packed` but not `packed-2` (it predates version 2): then the same
/// snapshot packed in version 1 is sent instead, once, and that logged. A JSON
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

/// A refused POST: the error, and the snapshot forms the worker names in
/// its `X-Bunting-Snapshot-Forms` header (`None` without one).
struct Refused {
    error: PublishError,
    forms: Option<Vec<String>>,
}

impl Refused {
    /// Whether the worker names `form` among those it reads.
    fn reads(&self, form: &str) -> bool {
        self.forms.iter().flatten().any(|f| f == form)
    }
}

impl From<reqwest::Error> for Refused {
    fn from(e: reqwest::Error) -> Refused {
        Refused {
            error: e.into(),
            forms: None,
        }
    }
}

/// Whether a packed value is of the format's version 2 (its header says).
fn packed_v2(value: &[u8]) -> bool {
    value.get(4..6) == Some(&packed::FORMAT_VERSION.to_le_bytes()[..])
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
        let forms = r
            .headers()
            .get(FORMS_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|forms| forms.split(',').map(|f| f.trim().to_string()).collect());
        Err(Refused {
            error: PublishError::http(r).await,
            forms,
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
            let refused = match self.post(value, "application/octet-stream").await {
                Ok(()) => return Ok(()),
                Err(r) => r,
            };
            let PublishError::Http { status: 400, body } = &refused.error else {
                return Err(refused.error);
            };
            if refused.forms.is_none() {
                tracing::warn!(
                    key,
                    url = %self.url(),
                    answer = %body,
                    "the edge worker refused the packed snapshot (HTTP 400), sending its JSON text instead; \
                     a worker that predates packed pointer values takes JSON only: upgrade it"
                );
                return self
                    .post(json, "application/json")
                    .await
                    .map_err(|r| r.error);
            }
            if packed_v2(value) && refused.reads("packed") && !refused.reads("packed-2") {
                tracing::warn!(
                    key,
                    url = %self.url(),
                    answer = %body,
                    "the edge worker refused the packed snapshot of format version 2 (HTTP 400), \
                     sending it packed in version 1 instead; the worker predates precompiled \
                     conditions: upgrade it"
                );
                let v1 = super::pack_json(json, packed::FORMAT_VERSION_1)
                    .map_err(PublishError::Packing)?;
                return self
                    .post(&v1, "application/octet-stream")
                    .await
                    .map_err(|r| r.error);
            }
            Err(refused.error)
        })
    }

    fn delete<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, Result<(), PublishError>> {
        // A deleted environment's keys leave KV; its pointer is never asked
        // again.
        Box::pin(async { Ok(()) })
    }
}
