//! The `SnapshotPointer` Durable Object: one per environment, holding the
//! latest snapshot the origin published ([`crate::pointer::Pointer`]), in
//! memory and in its storage (so an evicted object comes back with it).
//!
//! - `POST /` with the snapshot text and [`pointer::VERSION_HEADER`]:
//!   publish (sent by the worker's publish route, which validated it);
//!   answers `{"outcome", "version"}`.
//! - `GET /?have=<version>`: `204` when it holds nothing newer than
//!   `have`, else `200` with the snapshot text; both carry the version it
//!   holds in [`pointer::VERSION_HEADER`] when it holds one.
//! - `GET /events`: a server-sent event stream ([`crate::sse`]) kept open;
//!   every publish of a newer version writes a `refetchEvaluation` event
//!   to every open stream. A `Last-Event-ID` older than the held version
//!   gets that event at once.
//!
//! Storage: the text in chunks of at most [`CHUNK_BYTES`] (under the
//! storage API's value limit) under keys of their version, then `latest`
//! (`[version, chunks]`), then the previous version's chunks are deleted:
//! a crash between the writes leaves the previous snapshot whole.

use std::cell::RefCell;

use futures_channel::mpsc::{UnboundedSender, unbounded};
use futures_util::StreamExt;
use worker::{Date, DurableObject, Env, Method, Request, Response, Result, State, durable_object};

use crate::pointer::{self, Outcome, Pointer};
use crate::request_url::RequestUrl;
use crate::sse;

/// Bytes per stored chunk (storage values may have 128 KiB).
const CHUNK_BYTES: usize = 100 * 1024;

fn chunk_key(version: u64, i: usize) -> String {
    format!("snapshot:{version}:{i}")
}

/// The environment's pointer (see the module documentation).
#[durable_object]
pub struct SnapshotPointer {
    state: State,
    /// `None` until read from storage by the first request.
    pointer: RefCell<Option<Pointer>>,
    /// The open event streams.
    streams: RefCell<Vec<UnboundedSender<Vec<u8>>>>,
}

impl SnapshotPointer {
    /// Reads the stored snapshot into memory once.
    async fn load(&self) -> Result<()> {
        if self.pointer.borrow().is_some() {
            return Ok(());
        }
        let storage = self.state.storage();
        let latest: Option<(u64, usize)> = storage.get("latest").await?;
        let mut p = Pointer::default();
        if let Some((version, chunks)) = latest {
            let mut text = String::new();
            for i in 0..chunks {
                let part: Option<String> = storage.get(&chunk_key(version, i)).await?;
                text.push_str(&part.unwrap_or_default());
            }
            p.latest = Some((version, text));
        }
        if self.pointer.borrow().is_none() {
            *self.pointer.borrow_mut() = Some(p);
        }
        Ok(())
    }

    async fn store(&self, version: u64, text: &str, previous: Option<(u64, usize)>) -> Result<()> {
        let storage = self.state.storage();
        let mut chunks = 0;
        let mut rest = text;
        while !rest.is_empty() || chunks == 0 {
            let mut end = rest.len().min(CHUNK_BYTES);
            while !rest.is_char_boundary(end) {
                end -= 1;
            }
            storage
                .put(&chunk_key(version, chunks), &rest[..end])
                .await?;
            rest = &rest[end..];
            chunks += 1;
        }
        storage.put("latest", (version, chunks)).await?;
        if let Some((old, n)) = previous {
            for i in 0..n {
                storage.delete(&chunk_key(old, i)).await?;
            }
        }
        Ok(())
    }

    async fn publish(&self, mut req: Request) -> Result<Response> {
        let version = req
            .headers()
            .get(pointer::VERSION_HEADER)?
            .and_then(|v| v.trim().parse::<u64>().ok());
        let Some(version) = version else {
            return Response::error(format!("missing {}", pointer::VERSION_HEADER), 400);
        };
        let text = req.text().await?;
        let previous: Option<(u64, usize)> = self.state.storage().get("latest").await?;
        let outcome = self
            .pointer
            .borrow_mut()
            .get_or_insert_with(Pointer::default)
            .publish(version, text.clone());
        let current = match outcome {
            Outcome::Stored => {
                self.store(version, &text, previous).await?;
                self.notify(version);
                version
            }
            Outcome::Same => version,
            Outcome::Older { current } => current,
        };
        let name = match outcome {
            Outcome::Stored => "stored",
            Outcome::Same => "same",
            Outcome::Older { .. } => "older",
        };
        Response::from_json(&serde_json::json!({"outcome": name, "version": current}))
    }

    /// Writes the event of `version` to every open stream, dropping the
    /// closed ones.
    fn notify(&self, version: u64) {
        let event = sse::refetch_event(version, Date::now().as_millis() as i64 / 1000);
        self.streams
            .borrow_mut()
            .retain(|tx| tx.unbounded_send(event.clone().into_bytes()).is_ok());
    }

    /// A new event stream.
    fn subscribe(&self, req: &Request) -> Result<Response> {
        let (tx, rx) = unbounded::<Vec<u8>>();
        let _ = tx.unbounded_send(sse::prelude().into_bytes());
        let held = self
            .pointer
            .borrow()
            .as_ref()
            .and_then(|p| p.latest.as_ref().map(|(v, _)| *v));
        let last = req.headers().get("Last-Event-ID")?;
        if let Some(v) = held
            && sse::missed(last.as_deref(), held)
        {
            let event = sse::refetch_event(v, Date::now().as_millis() as i64 / 1000);
            let _ = tx.unbounded_send(event.into_bytes());
        }
        self.streams.borrow_mut().push(tx);
        let mut resp = Response::from_stream(rx.map(Ok::<Vec<u8>, worker::Error>))?;
        resp.headers_mut()
            .set("Content-Type", "text/event-stream; charset=utf-8")?;
        resp.headers_mut().set("Cache-Control", "no-store")?;
        Ok(resp)
    }

    fn answer(&self, have: Option<u64>) -> Result<Response> {
        let guard = self.pointer.borrow();
        let p = guard.as_ref();
        let held = p.and_then(|p| p.latest.as_ref().map(|(v, _)| *v));
        let mut resp = match p.and_then(|p| p.newer_than(have)) {
            Some((_, text)) => Response::ok(text)?,
            None => Response::empty()?.with_status(204),
        };
        if let Some(v) = held {
            resp.headers_mut()
                .set(pointer::VERSION_HEADER, &v.to_string())?;
        }
        Ok(resp)
    }
}

impl DurableObject for SnapshotPointer {
    fn new(state: State, _env: Env) -> Self {
        SnapshotPointer {
            state,
            pointer: RefCell::new(None),
            streams: RefCell::new(Vec::new()),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        self.load().await?;
        match req.method() {
            Method::Post => self.publish(req).await,
            Method::Get if req.path() == "/events" => self.subscribe(&req),
            Method::Get => {
                let raw_url = req.inner().url();
                let have = RequestUrl::parse(&raw_url)
                    .param("have")
                    .and_then(|v| pointer::parse_have(Some(&v)));
                self.answer(have)
            }
            _ => Response::error("method not allowed", 405),
        }
    }
}
