//! A plain C ABI over linear memory, for non-JavaScript WASM hosts such as
//! `bunting-wasm-host` (wasmtime). Compiled only for `wasm32` with the `abi`
//! feature.
//!
//! Every call takes JSON bytes the host wrote into memory it got from
//! [`bunting_alloc`], and returns a packed `u64` — `(ptr << 32) | len` — of a
//! JSON reply the host reads and then releases with [`bunting_free`].
//!
//! | export | input | reply |
//! |---|---|---|
//! | `bunting_load(ptr, len, lenient)` | snapshot JSON | [`LoadReply`] |
//! | `bunting_eval(handle, ptr, len)` | [`EvalRequest`] | [`EvalReply`] |
//! | `bunting_unload(handle)` | | |
//! | `bunting_hash_keys(ptr, len)` | [`HashRequest`] | [`HashReply`] or `{"badRequest": …}` |
//! | `bunting_schema_version()` | | the snapshot schema version the engine reads (`i32`) |
//! | `bunting_compact_version()` | | the compact request forms the module reads (`i32`, 2: a flag by catalog position) |
//! | `bunting_catalog(handle)` | | the engine's [`Catalog`] (JSON; `null` for no engine) |
//! | `bunting_eval_compact(handle, ptr, len)` | a [`compact::Request`] | a compact reply, or [`EvalReply`] JSON when a result does not fit the catalog or the request is bad |
//! | `bunting_eval_into(handle, ptr, len)` | a [`compact::Request`] | as `bunting_eval_compact`, in a buffer the module keeps (valid until the next call; not freed by the host) |

// The one module of the workspace allowed `unsafe` (the workspace lints deny
// it elsewhere): exported symbols and raw host memory; every block says why
// it is sound.
#![allow(unsafe_code)]

use std::sync::Mutex;

use crate::compact::{self, Catalog, Encoder, HeldContext};
use crate::protocol::{EvalReply, EvalRequest, HashRequest, LoadErrorReply, LoadReply};
use crate::{Engine, ParsedSnapshot};

/// A loaded engine and what its compact replies index.
struct Loaded {
    engine: Engine,
    /// The catalog as JSON, for `bunting_catalog`.
    catalog: Vec<u8>,
    encoder: Encoder,
}

static ENGINES: Mutex<Vec<Option<Loaded>>> = Mutex::new(Vec::new());

/// The context of the last compact call, which a compact request without
/// a context reuses, ready to evaluate against.
static LAST_CONTEXT: Mutex<Option<Kept>> = Mutex::new(None);

/// A received context and its decoded form, which borrows from it: decoded
/// once, not on every call that reuses it.
struct Kept {
    /// Borrows from `*held`; dropped before it (see `Drop`).
    context: Option<compact::Held<'static>>,
    /// From `Box::into_raw`; owned, never mutated while `context` lives.
    held: *mut HeldContext,
}

impl Kept {
    fn new(held: Box<HeldContext>) -> Result<Kept, compact::CompactError> {
        let held = Box::into_raw(held);
        let mut kept = Kept {
            context: None,
            held,
        };
        // SAFETY: `held` points to a live, heap-allocated `HeldContext`
        // that this `Kept` owns and never mutates or frees before dropping
        // `context`, so the borrow stays valid for as long as it is used.
        let held: &'static HeldContext = unsafe { &*held };
        kept.context = Some(held.context()?);
        Ok(kept)
    }

    /// The held context back, its borrow dropped: its box and buffers
    /// are reused for the next context received.
    fn into_held(mut self) -> Box<HeldContext> {
        self.context = None;
        let held = self.held;
        // `Drop` would free `held`; nothing else is left to drop (`context`
        // is gone).
        std::mem::forget(self);
        // SAFETY: `held` came from `Box::into_raw` in `new` and was not
        // freed (`Drop` did not run); nothing borrows from it any more.
        unsafe { Box::from_raw(held) }
    }

    fn context(&self) -> &compact::Held<'static> {
        self.context.as_ref().expect("set in new")
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        self.context = None;
        // SAFETY: `held` came from `Box::into_raw` in `new`, is freed only
        // here, and nothing borrows from it any more (`context` is gone).
        drop(unsafe { Box::from_raw(self.held) });
    }
}

// SAFETY: `Kept` owns what `held` points to; a `Box<HeldContext>` and the
// context borrowing from it are both `Send`.
unsafe impl Send for Kept {}

fn reply(bytes: Vec<u8>) -> u64 {
    let boxed = bytes.into_boxed_slice();
    let len = boxed.len() as u64;
    let ptr = Box::into_raw(boxed) as *mut u8 as usize as u64;
    (ptr << 32) | len
}

fn input<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if len == 0 {
        return &[];
    }
    // SAFETY: the host passes a region it obtained from `bunting_alloc(len)`
    // and filled; it stays alive until the host frees it after this call.
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

/// Allocates `len` bytes for the host to write a request into.
#[unsafe(no_mangle)]
pub extern "C" fn bunting_alloc(len: usize) -> *mut u8 {
    Box::into_raw(vec![0u8; len].into_boxed_slice()) as *mut u8
}

/// Frees a region from [`bunting_alloc`] or a reply.
///
/// # Safety
/// `ptr` and `len` must describe exactly one such region, freed once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bunting_free(ptr: *mut u8, len: usize) {
    if len == 0 {
        return;
    }
    // SAFETY: guaranteed by the caller, see above.
    drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)) });
}

/// Loads a snapshot; `lenient != 0` keeps valid flags when others are broken.
#[unsafe(no_mangle)]
pub extern "C" fn bunting_load(ptr: *const u8, len: usize, lenient: i32) -> u64 {
    let out = match std::str::from_utf8(input(ptr, len)) {
        Err(e) => LoadReply::Error(LoadErrorReply {
            message: format!("snapshot is not UTF-8: {e}"),
            problems: Vec::new(),
        }),
        // One parse, borrowing from the input: the engine and the catalog
        // are both built from it.
        Ok(text) => match ParsedSnapshot::parse(text) {
            Err(e) => LoadReply::Error((&e).into()),
            Ok(parsed) => {
                let loaded = if lenient != 0 {
                    Ok(Engine::from_parsed_lenient(&parsed))
                } else {
                    Engine::from_parsed(&parsed).map(|e| (e, Vec::new()))
                };
                match loaded {
                    Err(e) => LoadReply::Error((&e).into()),
                    Ok((engine, problems)) => {
                        let catalog = Catalog::of_parsed(&engine, &parsed);
                        let mut encoder = Encoder::new(&catalog);
                        encoder.bind(&engine);
                        let engine = Loaded {
                            encoder,
                            catalog: serde_json::to_vec(&catalog).expect("catalogs serialize"),
                            engine,
                        };
                        let mut engines = ENGINES.lock().unwrap_or_else(|p| p.into_inner());
                        let handle = match engines.iter().position(Option::is_none) {
                            Some(free) => {
                                engines[free] = Some(engine);
                                free
                            }
                            None => {
                                engines.push(Some(engine));
                                engines.len() - 1
                            }
                        };
                        LoadReply::Ok {
                            handle: handle as u32,
                            problems,
                        }
                    }
                }
            }
        },
    };
    reply(serde_json::to_vec(&out).expect("replies serialize"))
}

/// Answers an evaluation request against a loaded engine.
#[unsafe(no_mangle)]
pub extern "C" fn bunting_eval(handle: u32, ptr: *const u8, len: usize) -> u64 {
    let engines = ENGINES.lock().unwrap_or_else(|p| p.into_inner());
    let out = match engines.get(handle as usize).and_then(Option::as_ref) {
        None => serde_json::to_vec(&EvalReply::BadRequest(format!(
            "no engine with handle {handle}"
        ))),
        Some(engine) => match serde_json::from_slice::<EvalRequest>(input(ptr, len)) {
            Err(e) => serde_json::to_vec(&EvalReply::BadRequest(format!(
                "bad evaluation request: {e}"
            ))),
            Ok(req) => serde_json::to_vec(&engine.engine.answer(&req)),
        },
    };
    reply(out.expect("replies serialize"))
}

/// The catalog of a loaded engine: what [`bunting_eval_compact`]'s records
/// index.
#[unsafe(no_mangle)]
pub extern "C" fn bunting_catalog(handle: u32) -> u64 {
    let engines = ENGINES.lock().unwrap_or_else(|p| p.into_inner());
    reply(
        match engines.get(handle as usize).and_then(Option::as_ref) {
            Some(loaded) => loaded.catalog.clone(),
            None => b"null".to_vec(),
        },
    )
}

/// Answers a [`compact::Request`] with a compact reply (see [`compact`]);
/// with [`EvalReply`] JSON for a bad request or a result the catalog cannot
/// express. The host frees the reply.
#[unsafe(no_mangle)]
pub extern "C" fn bunting_eval_compact(handle: u32, ptr: *const u8, len: usize) -> u64 {
    let mut out = Vec::new();
    compact_reply(handle, input(ptr, len), &mut out);
    reply(out)
}

/// The reply buffer of [`bunting_eval_into`], reused by every call.
static REPLY: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// [`bunting_eval_compact`] answering into a buffer the module keeps: the
/// reply stays valid until the next call into the module, and the host
/// does not free it (one call and no allocation less per evaluation).
#[unsafe(no_mangle)]
pub extern "C" fn bunting_eval_into(handle: u32, ptr: *const u8, len: usize) -> u64 {
    let mut out = REPLY.lock().unwrap_or_else(|p| p.into_inner());
    out.clear();
    compact_reply(handle, input(ptr, len), &mut out);
    let ptr = out.as_ptr() as usize as u64;
    (ptr << 32) | out.len() as u64
}

/// The reply of a compact call, appended to `out`.
fn compact_reply(handle: u32, input: &[u8], out: &mut Vec<u8>) {
    let engines = ENGINES.lock().unwrap_or_else(|p| p.into_inner());
    let bad = |m: String, out: &mut Vec<u8>| {
        serde_json::to_writer(out, &EvalReply::BadRequest(m)).expect("replies serialize")
    };
    let Some(loaded) = engines.get(handle as usize).and_then(Option::as_ref) else {
        return bad(format!("no engine with handle {handle}"), out);
    };
    let req = match compact::Request::read(input) {
        Ok(req) => req,
        Err(e) => return bad(format!("bad evaluation request: {e}"), out),
    };
    let mut last = LAST_CONTEXT.lock().unwrap_or_else(|p| p.into_inner());
    if !req.context.is_empty() {
        // The last context's box and buffers, for this one.
        let reused = last.take().map(Kept::into_held);
        let read = match reused {
            Some(mut held) => {
                let old = std::mem::replace(&mut *held, HeldContext::Json(serde_json::Value::Null));
                HeldContext::read_reusing(req.context, Some(old)).map(|h| {
                    *held = h;
                    held
                })
            }
            None => HeldContext::read_reusing(req.context, None).map(Box::new),
        };
        // Decoded once, by `Kept::new`, which checks it.
        let kept = read
            .map_err(|e| e.to_string())
            .and_then(|held| Kept::new(held).map_err(|e| e.to_string()));
        match kept {
            Ok(k) => *last = Some(k),
            Err(e) => return bad(format!("bad evaluation request: context: {e}"), out),
        }
    }
    let Some(kept) = last.as_ref() else {
        return bad(
            "bad evaluation request: no context, and none before".into(),
            out,
        );
    };
    let context = kept.context();
    let engine = &loaded.engine;
    let start = out.len();
    let encoder = &loaded.encoder;
    // Records straight from the engine's positions; where those cannot
    // say it, the results by name, else JSON.
    // A flag by catalog position: straight to it where the catalog and
    // the engine agree there, else by its key, as if sent by key.
    let flag = match (req.position, req.flag) {
        (Some(p), _) => {
            if encoder
                .encode_at(engine, p, req.expected, context, req.now_ms, out)
                .is_ok()
            {
                return;
            }
            out.truncate(start);
            match encoder.key_at(p) {
                Some(key) => Some(key),
                None => return bad(format!("bad evaluation request: no flag at {p}"), out),
            }
        }
        (None, flag) => flag,
    };
    match flag {
        Some(key) => {
            if encoder
                .encode_one(engine, key, req.expected, context, req.now_ms, out)
                .is_ok()
            {
                return;
            }
            out.truncate(start);
            let result = engine.evaluate_typed(key, req.expected, context, req.now_ms);
            if encoder
                .encode(std::slice::from_ref(&result), false, out)
                .is_err()
            {
                out.truncate(start);
                serde_json::to_writer(out, &EvalReply::One(result)).expect("replies serialize");
            }
        }
        None => {
            if encoder.encode_all(engine, context, req.now_ms, out).is_ok() {
                return;
            }
            out.truncate(start);
            let results = engine.evaluate_all(context, req.now_ms);
            if encoder.encode(&results, true, out).is_err() {
                out.truncate(start);
                serde_json::to_writer(out, &EvalReply::All(results)).expect("replies serialize");
            }
        }
    }
}

/// Drops a loaded engine.
#[unsafe(no_mangle)]
pub extern "C" fn bunting_unload(handle: u32) {
    let mut engines = ENGINES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(slot) = engines.get_mut(handle as usize) {
        *slot = None;
    }
}

/// Hashes targeting keys for exposures and metric events (a [`HashRequest`]).
#[unsafe(no_mangle)]
pub extern "C" fn bunting_hash_keys(ptr: *const u8, len: usize) -> u64 {
    let out = match serde_json::from_slice::<HashRequest>(input(ptr, len)) {
        Ok(req) => serde_json::to_vec(&req.answer()),
        Err(e) => serde_json::to_vec(&EvalReply::BadRequest(format!("bad hash request: {e}"))),
    };
    reply(out.expect("replies serialize"))
}

/// The snapshot schema version this engine reads ([`crate::model::SCHEMA_VERSION`]):
/// hosts refuse a snapshot with another one before loading it.
#[unsafe(no_mangle)]
pub extern "C" fn bunting_schema_version() -> i32 {
    crate::model::SCHEMA_VERSION as i32
}

/// The compact request forms this module reads: 2 since a request may name
/// a flag by its catalog position ([`compact::AT`]). A host that sends
/// positions requires this export, so a module too old to read them is
/// refused when it is compiled instead of answering every call with an
/// error.
#[unsafe(no_mangle)]
pub extern "C" fn bunting_compact_version() -> i32 {
    2
}
