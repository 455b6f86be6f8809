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
//! | `bunting_catalog(handle)` | | the engine's [`Catalog`] (JSON; `null` for no engine) |
//! | `bunting_eval_compact(handle, ptr, len)` | a [`compact::Request`] | a compact reply, or [`EvalReply`] JSON when a result does not fit the catalog or the request is bad |

// The one module of the workspace allowed `unsafe` (the workspace lints deny
// it elsewhere): exported symbols and raw host memory; every block says why
// it is sound.
#![allow(unsafe_code)]

use std::sync::Mutex;

use crate::compact::{self, Catalog, Encoder};
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
/// a context reuses.
static LAST_CONTEXT: Mutex<Option<serde_json::Value>> = Mutex::new(None);

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
                        let engine = Loaded {
                            encoder: Encoder::new(&catalog),
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
/// express.
#[unsafe(no_mangle)]
pub extern "C" fn bunting_eval_compact(handle: u32, ptr: *const u8, len: usize) -> u64 {
    let engines = ENGINES.lock().unwrap_or_else(|p| p.into_inner());
    let bad = |m: String| serde_json::to_vec(&EvalReply::BadRequest(m)).expect("replies serialize");
    let Some(loaded) = engines.get(handle as usize).and_then(Option::as_ref) else {
        return reply(bad(format!("no engine with handle {handle}")));
    };
    let req = match compact::Request::read(input(ptr, len)) {
        Ok(req) => req,
        Err(e) => return reply(bad(format!("bad evaluation request: {e}"))),
    };
    let mut last = LAST_CONTEXT.lock().unwrap_or_else(|p| p.into_inner());
    if !req.context.is_empty() {
        *last = None;
        match serde_json::from_slice::<serde_json::Value>(req.context) {
            Ok(c) => *last = Some(c),
            Err(e) => return reply(bad(format!("bad evaluation request: context: {e}"))),
        }
    }
    let Some(context) = last.as_ref() else {
        return reply(bad(
            "bad evaluation request: no context, and none before".into()
        ));
    };
    let engine = &loaded.engine;
    let results = match req.flag {
        Some(key) => vec![engine.evaluate_typed(key, req.expected, context, req.now_ms)],
        None => engine.evaluate_all(context, req.now_ms),
    };
    let mut out = Vec::new();
    match loaded
        .encoder
        .encode(&results, req.flag.is_none(), &mut out)
    {
        Ok(()) => reply(out),
        Err(_) => {
            let json = match req.flag {
                Some(_) => EvalReply::One(results.into_iter().next().expect("one result")),
                None => EvalReply::All(results),
            };
            reply(serde_json::to_vec(&json).expect("replies serialize"))
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
