//! The `SnapshotPointer` Durable Object: one per environment, holding the
//! latest snapshot the origin published ([`crate::pointer::Pointer`]), in
//! memory and in its storage (so an evicted object comes back with it).
//!
//! - `POST /` with the snapshot value (its packed form, or its JSON text)
//!   and [`pointer::VERSION_HEADER`]: publish (sent by the worker's
//!   publish route, which validated it); answers `{"outcome", "version"}`.
//! - `GET /?have=<version>`: `204` when it holds nothing newer than
//!   `have`, else `200` with the snapshot value as published (a JSON text
//!   an older worker stored: [`pointer::HOLDS_JSON_STATUS`] instead,
//!   without the `json-snapshots` feature); all carry the version it
//!   holds in [`pointer::VERSION_HEADER`] when it holds one. With
//!   `&tables=1` ([`pointer::TABLES_PARAM`]), a packed value comes without
//!   the JSON text it carries ([`bunting_core::packed::without_document`]):
//!   what an isolate loads its engine from, a fifteenth of the bytes of
//!   the 1,000-flag benchmark snapshot; the isolate asks for the whole
//!   value when it has to serve the text. An object that predates the
//!   parameter ignores it and sends the whole value, which isolates load
//!   as before.
//! - `GET /events`: a server-sent event stream ([`crate::sse`]) kept open;
//!   every publish of a newer version writes a `refetchEvaluation` event
//!   to every open stream. A `Last-Event-ID` older than the held version
//!   gets that event at once.
//!
//! Storage: the value in chunks of at most [`CHUNK_BYTES`] (under the
//! storage API's value limit, [`pointer::chunks`]) under keys of their
//! version, then `latest` (`[version, chunks]`), then the previous
//! version's chunks are deleted: a crash between the writes leaves the
//! previous snapshot whole. A JSON text's chunks are strings under
//! `snapshot:<version>:<i>`, as before packed values existed; a packed
//! value's are bytes under `packed:<version>:<i>`, keys a worker that
//! predates packed values never reads: rolled back, it finds no chunks
//! (an empty text, which isolates refuse, so KV serves) instead of failing
//! on bytes, and stores the next JSON text as ever.

use std::cell::RefCell;

use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{DurableObject, Env, Method, Request, Response, Result, State, durable_object};

use crate::pointer::{self, Chunk, Outcome, Pointer};
use crate::request_url::RequestUrl;
use crate::sse;

/// Bytes per stored chunk (storage values may have 128 KiB).
const CHUNK_BYTES: usize = 100 * 1024;

/// The key of chunk `i` of `version`: a piece of a JSON text, or with
/// `bytes` a piece of a packed value.
fn chunk_key(version: u64, i: usize, bytes: bool) -> String {
    let family = if bytes { "packed" } else { "snapshot" };
    format!("{family}:{version}:{i}")
}

/// Appends the chunk stored under `key` to `value` (a string, a piece of
/// a JSON text, as its UTF-8; bytes as they are); `false` if there is none.
async fn append_chunk(storage: &worker::Storage, key: &str, value: &mut Vec<u8>) -> Result<bool> {
    let stored: JsValue = JsFuture::from(storage.as_raw().get(key)?).await?;
    if let Some(text) = stored.as_string() {
        value.extend_from_slice(text.as_bytes());
    } else if stored.is_instance_of::<js_sys::Uint8Array>()
        || stored.is_instance_of::<js_sys::ArrayBuffer>()
    {
        value.extend_from_slice(&js_sys::Uint8Array::new(&stored).to_vec());
    } else if stored.is_undefined() {
        return Ok(false);
    } else {
        return Err(worker::Error::RustError(format!(
            "the stored chunk {key} is neither a string nor bytes"
        )));
    }
    Ok(true)
}

/// The stored `[version, chunks]` of the latest snapshot (written by
/// `storage.put("latest", (version, chunks))`), `None` before the first.
///
/// Read by hand, not with `Storage::get`: its serde_wasm_bindgen reader's
/// error messages bring the float formatter into the bundle. It accepts
/// what that reader accepts for `(u64, usize)`: an array whose first two
/// items are non-negative safe integers (numbers; a later item is
/// ignored), or `BigInt`s in range.
async fn stored_latest(storage: &worker::Storage) -> Result<Option<(u64, usize)>> {
    let stored: JsValue = JsFuture::from(storage.as_raw().get("latest")?).await?;
    if stored.is_undefined() {
        return Ok(None);
    }
    let item = |i: u32| -> Option<u64> {
        let v = stored.dyn_ref::<js_sys::Array>()?.get(i);
        if v.is_bigint() {
            return u64::try_from(v).ok();
        }
        js_sys::Number::is_safe_integer(&v)
            .then(|| v.as_f64())
            .flatten()
            .filter(|n| *n >= 0.0)
            .map(|n| n as u64)
    };
    match (item(0), item(1).and_then(|n| usize::try_from(n).ok())) {
        (Some(version), Some(chunks)) => Ok(Some((version, chunks))),
        _ => Err(worker::Error::RustError(
            "the stored `latest` is not [version, chunks]".into(),
        )),
    }
}

/// The stored form of `latest`: `[version, chunks]`, two numbers, as
/// `storage.put("latest", (version, chunks))` wrote it (built by hand: that
/// serde_wasm_bindgen serializer is ≈ 1 KB of the bundle). A version beyond
/// 2^53 − 1 is refused, as that serializer refused it.
fn latest_value(version: u64, chunks: usize) -> Result<js_sys::Array> {
    const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;
    if version > MAX_SAFE_INTEGER {
        return Err(worker::Error::RustError(format!(
            "{version} can't be represented as a JavaScript number"
        )));
    }
    Ok(js_sys::Array::of2(
        &JsValue::from_f64(version as f64),
        &JsValue::from_f64(chunks as f64),
    ))
}

#[wasm_bindgen(inline_js = "
const encoder = new TextEncoder();
export function eventStream() {
    const s = {};
    s.stream = new ReadableStream({ start(c) { s.controller = c; } });
    return s;
}
export function send(controller, text) { controller.enqueue(encoder.encode(text)); }
")]
extern "C" {
    /// An event stream: a `ReadableStream` and its controller, which the
    /// object writes to (not a Rust stream through wasm-streams: its
    /// source class, channel and abortable future are ≈ 2 KB of the
    /// bundle for what `enqueue` does).
    type EventStream;
    #[wasm_bindgen(js_name = eventStream)]
    fn event_stream() -> EventStream;
    #[wasm_bindgen(method, getter)]
    fn stream(this: &EventStream) -> worker::web_sys::ReadableStream;
    #[wasm_bindgen(method, getter)]
    fn controller(this: &EventStream) -> Controller;

    /// A `ReadableStreamDefaultController`.
    type Controller;
    /// Enqueues `text` as UTF-8; fails once the reader has gone (the
    /// stream is cancelled, the controller can no longer enqueue).
    #[wasm_bindgen(catch)]
    fn send(controller: &Controller, text: &str) -> std::result::Result<(), JsValue>;
}

/// The clock in Unix seconds, for an event's timestamp: `Date.now()`, one
/// call into JS (`worker::Date::now` creates a `Date` object and asks it
/// for its time, two).
fn now_secs() -> i64 {
    js_sys::Date::now() as i64 / 1000
}

/// The environment's pointer (see the module documentation).
///
/// `fetch` only: a bare `#[durable_object]` also exports `alarm`,
/// `connect` and the three WebSocket handlers (the trait's defaults, an
/// error each), which the object never asks for. The build trimmed them
/// from the glue, but their futures and promise tasks stayed in the
/// module, reachable through the function table (≈ 2 KB of the bundle).
#[durable_object(fetch)]
pub struct SnapshotPointer {
    state: State,
    /// `None` until read from storage by the first request.
    pointer: RefCell<Option<Pointer>>,
    /// The open event streams' controllers.
    streams: RefCell<Vec<Controller>>,
}

impl SnapshotPointer {
    /// Reads the stored snapshot into memory once.
    async fn load(&self) -> Result<()> {
        if self.pointer.borrow().is_some() {
            return Ok(());
        }
        let storage = self.state.storage();
        let latest = stored_latest(&storage).await?;
        let mut p = Pointer::default();
        if let Some((version, chunks)) = latest {
            let mut value = Vec::new();
            // A JSON text's first chunk, else a packed value's.
            let json = chunks > 0
                && append_chunk(&storage, &chunk_key(version, 0, false), &mut value).await?;
            let (bytes, rest) = if json { (false, 1) } else { (true, 0) };
            for i in rest..chunks {
                append_chunk(&storage, &chunk_key(version, i, bytes), &mut value).await?;
            }
            p.latest = Some((version, value));
        }
        if self.pointer.borrow().is_none() {
            *self.pointer.borrow_mut() = Some(p);
        }
        Ok(())
    }

    async fn store(
        &self,
        version: u64,
        value: &[u8],
        previous: Option<(u64, usize)>,
    ) -> Result<()> {
        let storage = self.state.storage();
        let pieces = pointer::chunks(value, CHUNK_BYTES);
        let chunks = pieces.len();
        // Every chunk, then `latest`, through the one `put` of JavaScript
        // values (the raw binding, as the reads): a string as
        // `Storage::put` stores one (without its serde_wasm_bindgen
        // serializer), bytes as they are.
        let mut pieces = pieces.into_iter().enumerate();
        loop {
            let (key, value, last): (String, JsValue, bool) = match pieces.next() {
                Some((i, Chunk::Text(t))) => {
                    (chunk_key(version, i, false), JsValue::from_str(t), false)
                }
                Some((i, Chunk::Bytes(b))) => (
                    chunk_key(version, i, true),
                    js_sys::Uint8Array::from(b).into(),
                    false,
                ),
                None => ("latest".into(), latest_value(version, chunks)?.into(), true),
            };
            JsFuture::from(storage.as_raw().put(&key, value)?).await?;
            if last {
                break;
            }
        }
        if let Some((old, n)) = previous {
            // Of either family: deleting a missing key is no error.
            // Through the raw binding: `Storage::delete_multiple` is a
            // generic copy (and a future) of its own for the count it
            // reads back, which is not used.
            let keys: Vec<JsValue> = (0..n)
                .flat_map(|i| [chunk_key(old, i, false), chunk_key(old, i, true)])
                .map(|key| JsValue::from_str(&key))
                .collect();
            for batch in keys.chunks(128) {
                JsFuture::from(storage.as_raw().delete_multiple(batch.to_vec())?).await?;
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
        let value = req.bytes().await?;
        let previous = stored_latest(&self.state.storage()).await?;
        let outcome = self
            .pointer
            .borrow_mut()
            .get_or_insert_with(Pointer::default)
            .publish(version, value.clone());
        let current = match outcome {
            Outcome::Stored => {
                self.store(version, &value, previous).await?;
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
        crate::worker_main::json_body(&crate::health::object(vec![
            ("outcome", serde_json::Value::from(name)),
            ("version", serde_json::Value::from(current)),
        ]))
    }

    /// Writes the event of `version` to every open stream, dropping the
    /// closed ones.
    fn notify(&self, version: u64) {
        let event = sse::refetch_event(version, now_secs());
        self.streams
            .borrow_mut()
            .retain(|c| send(c, &event).is_ok());
    }

    /// A new event stream.
    fn subscribe(&self, req: &Request) -> Result<Response> {
        let events = event_stream();
        let tx = events.controller();
        let _ = send(&tx, &sse::prelude());
        let held = self
            .pointer
            .borrow()
            .as_ref()
            .and_then(|p| p.latest.as_ref().map(|(v, _)| *v));
        let last = req.headers().get("Last-Event-ID")?;
        if let Some(v) = held
            && sse::missed(last.as_deref(), held)
        {
            let event = sse::refetch_event(v, now_secs());
            let _ = send(&tx, &event);
        }
        self.streams.borrow_mut().push(tx);
        let mut resp = Response::from_body(worker::ResponseBody::Stream(events.stream()))?;
        resp.headers_mut()
            .set("Content-Type", "text/event-stream; charset=utf-8")?;
        resp.headers_mut().set("Cache-Control", "no-store")?;
        Ok(resp)
    }

    fn answer(&self, have: Option<u64>, tables_only: bool) -> Result<Response> {
        let guard = self.pointer.borrow();
        let p = guard.as_ref();
        let held = p.and_then(|p| p.latest.as_ref().map(|(v, _)| *v));
        let mut resp = match p.and_then(|p| p.newer_than(have)) {
            // A JSON text published through an older worker: not sent to
            // isolates that would refuse it, on every question.
            Some((_, value)) if !cfg!(feature = "json-snapshots") && !pointer::is_packed(value) => {
                Response::error(pointer::holds_json(), pointer::HOLDS_JSON_STATUS)?
            }
            Some((_, value)) => {
                let packed = pointer::is_packed(value);
                // A value that does not read as packed (never published:
                // the publish route validated it) goes whole.
                let body = match bunting_core::packed::without_document(value) {
                    Ok(tables) if packed && tables_only => tables.into_owned(),
                    _ => value.to_vec(),
                };
                let mut r = Response::from_bytes(body)?;
                let kind = if packed {
                    "application/octet-stream"
                } else {
                    "application/json"
                };
                r.headers_mut().set("Content-Type", kind)?;
                r
            }
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
                let url = RequestUrl::parse(&raw_url);
                let have = url
                    .param("have")
                    .and_then(|v| pointer::parse_have(Some(&v)));
                let tables_only = url.param(pointer::TABLES_PARAM).as_deref() == Some("1");
                self.answer(have, tables_only)
            }
            // A `String`, as the object's other errors: one copy of the
            // generic `Response::error`.
            _ => Response::error(String::from("method not allowed"), 405),
        }
    }
}
