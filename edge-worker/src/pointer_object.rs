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
//! Storage (`pointer_storage.mjs`, [`store_value`]): the value in chunks
//! of at most [`CHUNK_BYTES`] (under the storage API's value limit) under
//! keys of their version, then `latest` (`[version, chunks]`), then the
//! previous version's chunks are deleted: a crash between the writes
//! leaves the previous snapshot whole. A JSON text's chunks are strings under
//! `snapshot:<version>:<i>`, as before packed values existed; a packed
//! value's are bytes under `packed:<version>:<i>`, keys a worker that
//! predates packed values never reads: rolled back, it finds no chunks
//! (an empty text, which isolates refuse, so KV serves) instead of failing
//! on bytes, and stores the next JSON text as ever.

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::JsValue;
use wasm_bindgen::prelude::wasm_bindgen;
use worker::wasm_bindgen_futures::JsFuture;
use worker::worker_sys::{DurableObjectState, DurableObjectStorage};
use worker::{Method, Response, Result, web_sys};

use crate::incoming::Incoming;
use crate::pointer::{self, Outcome, Pointer};
use crate::request_url::RequestUrl;
use crate::sse;

/// Bytes per stored chunk (storage values may have 128 KiB).
const CHUNK_BYTES: usize = 100 * 1024;

/// The stored `[version, chunks]` of the latest snapshot (written by
/// `storage.put("latest", (version, chunks))`), `None` before the first.
///
/// Read by hand, not with `Storage::get`: its serde_wasm_bindgen reader's
/// error messages bring the float formatter into the bundle. It accepts
/// what that reader accepts for `(u64, usize)`: an array whose first two
/// items are non-negative safe integers (numbers; a later item is
/// ignored), or `BigInt`s in range.
async fn stored_latest(storage: &DurableObjectStorage) -> Result<Option<(u64, usize)>> {
    let latest = JsFuture::from(read_latest(storage)).await?;
    if latest.is_undefined() {
        return Ok(None);
    }
    let parsed = latest.as_string().and_then(|digits| {
        let (version, chunks) = digits.split_once(' ')?;
        Some((version.parse().ok()?, chunks.parse().ok()?))
    });
    parsed.map(Some).ok_or_else(|| {
        worker::Error::RustError("the stored `latest` is not [version, chunks]".into())
    })
}

#[wasm_bindgen(module = "/src/pointer_storage.mjs")]
extern "C" {
    /// An event stream: a `ReadableStream` and its controller, which the
    /// object writes to with [`send`] (not a Rust stream through
    /// wasm-streams: its source class, channel and abortable future are
    /// ≈ 2 KB of the bundle for what `enqueue` does). Kept whole, not its
    /// controller: a getter fewer to import.
    type EventStream;
    #[wasm_bindgen(js_name = eventStream)]
    fn event_stream() -> EventStream;
    #[wasm_bindgen(method, getter)]
    fn stream(this: &EventStream) -> worker::web_sys::ReadableStream;

    /// The stored value of `version` (its decimal digits), `n` chunks:
    /// chunk 0 asked for as a JSON text's (`snapshot:`), then as a packed
    /// value's (`packed:`) if there is none, the rest in the family
    /// found, one read after the other; a string as its UTF-8 (as
    /// wasm-bindgen passes strings), bytes (a `Uint8Array` or an
    /// `ArrayBuffer`) as they are, a missing one skipped, anything else
    /// an error. The reads and their checks were the object's future's
    /// largest part in Rust.
    #[wasm_bindgen(js_name = readChunks)]
    fn read_chunks(storage: &DurableObjectStorage, version: &str, n: f64) -> js_sys::Promise;

    /// Stores `value` as the value of `version` (its decimal digits): cut
    /// into pieces of at most `max` bytes (a JSON text, `text`
    /// ([`pointer::stored_as_text`]), into strings cut between characters,
    /// at least one; else into byte ranges, each a copy: a view would store
    /// its whole buffer), one after the other under
    /// `snapshot:<version>:<i>` (a string) or `packed:<version>:<i>`
    /// (bytes), then `latest` as `[number, pieces]` (an `Error` instead
    /// if `number` is NaN), then deletes the
    /// `n` chunks of the `previous` version in both families, 128 keys
    /// per `storage.delete` (its limit), one batch after the other.
    /// Deleting a missing key is no error. A crash between the writes
    /// leaves the previous snapshot whole. In Rust, the keys, the awaits
    /// and the batches were ≈ 2 KB of wasm.
    #[wasm_bindgen(js_name = storeValue)]
    fn store_value(
        storage: &DurableObjectStorage,
        version: &str,
        number: f64,
        value: &js_sys::Uint8Array,
        text: bool,
        max: f64,
        previous: &str,
        n: f64,
    ) -> js_sys::Promise;

    /// The stored `latest`: `undefined` if there is none, else as
    /// `"<version> <chunks>"` in decimal if it is an array whose first
    /// two items are non-negative safe integers or non-negative `BigInt`s
    /// (whether they fit is for the caller's parse), else `null`. One
    /// call into JavaScript, where reading the array and checking its
    /// items from Rust took six imports (≈ 1.4 KB of wasm).
    #[wasm_bindgen(js_name = readLatest)]
    fn read_latest(storage: &DurableObjectStorage) -> js_sys::Promise;

    /// Enqueues `text` as UTF-8 to the stream's controller; fails once
    /// the reader has gone (the stream is cancelled, the controller can
    /// no longer enqueue).
    #[wasm_bindgen(catch)]
    fn send(stream: &EventStream, text: &str) -> std::result::Result<(), JsValue>;
    /// [`send`]s `text` to each of `streams` in turn, dropping from the
    /// array those it fails for (in JavaScript: `Vec::retain` was a
    /// generic copy of its own).
    fn broadcast(streams: &js_sys::Array, text: &str);
}

/// The clock in Unix seconds, for an event's timestamp: `Date.now()`, one
/// call into JS (`worker::Date::now` creates a `Date` object and asks it
/// for its time, two).
fn now_secs() -> i64 {
    js_sys::Date::now() as i64 / 1000
}

/// The environment's pointer (see the module documentation): the class
/// the runtime constructs with `(state, env)` and calls `fetch` on.
///
/// Exported by hand, not by `#[durable_object(fetch)]`: the macro's
/// `fetch` converts the runtime's request into a `worker::Request` (its
/// URL, method, headers and `cf` copied: ≈ 2.9 KB of the bundle for what
/// [`Incoming`], the worker's own request, already reads) and wraps the
/// trait's future in a promise of its own type. Here the request stays
/// the runtime's, and the answer's promise is the worker's one
/// `future_to_promise` of a boxed future ([`crate::entry`]'s type).
#[wasm_bindgen]
pub struct SnapshotPointer {
    object: Rc<Object>,
}

/// What the object holds; shared with the futures answering its requests.
struct Object {
    /// The object's storage, read from its state once.
    storage: DurableObjectStorage,
    /// `None` until read from storage by the first request.
    pointer: RefCell<Option<Pointer>>,
    /// The open event streams (a JavaScript array: [`broadcast`]).
    streams: js_sys::Array,
}

#[wasm_bindgen]
impl SnapshotPointer {
    /// Called by the runtime with `(state, env)`; the object reads no
    /// binding, so the environment is not taken. Throws if the state has
    /// no storage (`worker::State::storage` panicked at the first request).
    #[wasm_bindgen(constructor)]
    #[allow(unreachable_pub)] // exported to JavaScript, not to Rust
    pub fn new(state: DurableObjectState) -> std::result::Result<SnapshotPointer, JsValue> {
        Ok(SnapshotPointer {
            object: Rc::new(Object {
                storage: state.storage()?,
                pointer: RefCell::new(None),
                streams: js_sys::Array::new(),
            }),
        })
    }

    /// The runtime's `fetch`: a promise of the runtime's `Response`, or
    /// rejected with the error (as the macro's was), through the worker's
    /// one boxed `future_to_promise` ([`crate::entry::promise`]).
    #[allow(unreachable_pub)] // exported to JavaScript, not to Rust
    pub fn fetch(&self, req: web_sys::Request) -> JsValue {
        let object = Rc::clone(&self.object);
        crate::entry::promise(async move {
            match object.fetch(Incoming::new(req)).await {
                Ok(resp) => Ok(web_sys::Response::from(resp).into()),
                Err(e) => Err(rejection(e)),
            }
        })
    }
}

/// `text` as the body of a `status` response, without `Content-Type`:
/// what `Response::error` makes, without its check that the status is
/// one of an error (the object's are 400, 405 and
/// [`pointer::HOLDS_JSON_STATUS`]) and its message.
fn refusal(text: String, status: u16) -> Result<Response> {
    Ok(Response::from_body(worker::ResponseBody::Body(text.into_bytes()))?.with_status(status))
}

/// What a failed request's promise rejects with: a JavaScript error (from
/// storage) as it was thrown, a thrown string as that string, else an
/// `Error` with the message. `JsValue::from(worker::Error)` gives the
/// same for every error the object can meet; its rebuilding of the
/// email and rate-limit errors' codes and its walk of the `source()`
/// chain (no error here has one) were ≈ 1.1 KB of wasm.
fn rejection(e: worker::Error) -> JsValue {
    match e {
        worker::Error::UnknownJsError { original, .. } => original,
        worker::Error::Internal(v) => v,
        worker::Error::JsError(s) => JsValue::from_str(&s),
        other => js_sys::Error::new(&other.to_string()).into(),
    }
}

impl Object {
    /// Reads the stored snapshot into memory once.
    async fn load(&self) -> Result<()> {
        if self.pointer.borrow().is_some() {
            return Ok(());
        }
        let storage = &self.storage;
        let latest = stored_latest(storage).await?;
        let mut p = Pointer::default();
        if let Some((version, chunks)) = latest {
            let value =
                JsFuture::from(read_chunks(storage, &version.to_string(), chunks as f64)).await?;
            p.latest = Some((version, js_sys::Uint8Array::new(&value).to_vec()));
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
        // Cut by `storeValue`: a JSON text into strings, anything else
        // into bytes.
        let text = pointer::stored_as_text(value);
        // `latest` holds the version as a number, refused beyond 2^53 − 1
        // (as the serde_wasm_bindgen serializer of `Storage::put` refused
        // it): NaN tells `storeValue` to.
        const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;
        let number = if version > MAX_SAFE_INTEGER {
            f64::NAN
        } else {
            version as f64
        };
        // No previous version: no chunks to delete.
        let (old, n) =
            previous.map_or((String::new(), 0.0), |(old, n)| (old.to_string(), n as f64));
        JsFuture::from(store_value(
            &self.storage,
            &version.to_string(),
            number,
            &js_sys::Uint8Array::from(value),
            text,
            CHUNK_BYTES as f64,
            &old,
            n,
        ))
        .await?;
        Ok(())
    }

    async fn publish(&self, mut req: Incoming) -> Result<Response> {
        let version = req
            .header(pointer::VERSION_HEADER)
            .and_then(|v| v.trim().parse::<u64>().ok());
        let Some(version) = version else {
            return refusal(format!("missing {}", pointer::VERSION_HEADER), 400);
        };
        let value = req.bytes().await?;
        let previous = stored_latest(&self.storage).await?;
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
        broadcast(&self.streams, &sse::refetch_event(version, now_secs()));
    }

    /// A new event stream.
    fn subscribe(&self, req: &Incoming) -> Result<Response> {
        let events = event_stream();
        let _ = send(&events, &sse::prelude());
        let held = self
            .pointer
            .borrow()
            .as_ref()
            .and_then(|p| p.latest.as_ref().map(|(v, _)| *v));
        let last = req.header("Last-Event-ID");
        if let Some(v) = held
            && sse::missed(last.as_deref(), held)
        {
            let event = sse::refetch_event(v, now_secs());
            let _ = send(&events, &event);
        }
        let stream = events.stream();
        self.streams.push(&events);
        let mut resp = Response::from_body(worker::ResponseBody::Stream(stream))?;
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
                refusal(pointer::holds_json(), pointer::HOLDS_JSON_STATUS)?
            }
            Some((_, value)) => {
                let packed = pointer::is_packed(value);
                // A value that does not read as packed (never published:
                // the publish route validated it) goes whole.
                let body = match bunting_core::packed::without_document(value) {
                    Ok(tables) if packed && tables_only => tables.into_owned(),
                    _ => value.to_vec(),
                };
                // `application/octet-stream`, as `from_bytes` sets it, or
                // a JSON text's type.
                let mut r = Response::from_bytes(body)?;
                if !packed {
                    r.headers_mut().set("Content-Type", "application/json")?;
                }
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

    async fn fetch(&self, req: Incoming) -> Result<Response> {
        self.load().await?;
        match req.method() {
            Method::Post => self.publish(req).await,
            Method::Get => {
                let raw_url = req.inner().url();
                let url = RequestUrl::parse(&raw_url);
                if url.path == "/events" {
                    return self.subscribe(&req);
                }
                let have = url
                    .param("have")
                    .and_then(|v| pointer::parse_have(Some(&v)));
                let tables_only = url.param(pointer::TABLES_PARAM).as_deref() == Some("1");
                self.answer(have, tables_only)
            }
            _ => refusal(String::from("method not allowed"), 405),
        }
    }
}
