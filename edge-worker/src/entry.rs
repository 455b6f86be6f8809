//! The worker's `fetch` export: OFREP evaluations answered without the
//! futures machinery when nothing has to be waited for but the body
//! (wasm32 only).
//!
//! `#[event(fetch)]` makes every request a Rust future driven by
//! wasm-bindgen-futures: a `Promise` built around an executor closure, a
//! task queued with `queueMicrotask`, and for each `await` on JavaScript
//! (the body's `arrayBuffer()`) two closures registered with a
//! `FinalizationRegistry` and another microtask. On a single-flag request
//! that machinery was about a sixth of the isolate's profile, and its
//! objects are garbage for the collector.
//!
//! An evaluation whose SDK key and snapshot this isolate holds (the
//! common case: KV and the pointer are checked every few seconds, not per
//! request) waits for its body only, and for the rate limiter's count when
//! the `RATE_LIMITER` binding is bound. [`fetch`] parks such an evaluation
//! in [`PENDING`] and chains plain promises: `limiter.limit(…)` (if bound)
//! `.then(…)`, where the evaluation is prepared synchronously
//! ([`worker_main::prepare_now`]), then `request.arrayBuffer().then(…)`,
//! where it is answered synchronously ([`worker_main::answer`]). Each step's
//! `onFulfilled`/`onRejected` is one isolate-wide closure bound to the
//! parked evaluation's slot. Everything else (another route, a key or
//! snapshot to read from KV, a pointer question to wait for) takes the
//! async path ([`worker_main::respond`], [`worker_main::evaluate`]). Both
//! paths give the same answers; the workerd tests drive every route.

use std::cell::RefCell;
use std::rc::Rc;

use bunting_core::FlagType;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::js_sys::{self, Uint8Array};
use worker::wasm_bindgen_futures::future_to_promise;
use worker::{Context, Env, Method, web_sys};

use crate::incoming::Incoming;
use crate::request_url::RequestUrl;
use crate::settings::Settings;
use crate::slots::Slots;
use crate::worker_main::{self, Prepared};
use crate::{cors, ofrep, ratelimit};

#[wasm_bindgen]
extern "C" {
    /// A JavaScript function, for `bind` with a number (js-sys's typed
    /// functions take closures' exact signatures).
    type Callable;
    #[wasm_bindgen(method)]
    fn bind(this: &Callable, this_arg: &JsValue, slot: f64) -> JsValue;

    /// A promise, for `then` with plain functions (js-sys's takes closures).
    type Thenable;
    #[wasm_bindgen(method)]
    fn then(this: &Thenable, ok: &JsValue, failed: &JsValue) -> JsValue;
}

/// The flag an evaluation asks for, and the type it expects (`None`: every flag).
type Flag = Option<(String, Option<FlagType>)>;

/// An evaluation waiting for the rate limiter's verdict or its body.
struct Pending {
    req: Incoming,
    env: Env,
    ctx: Context,
    settings: Rc<Settings>,
    cors: Cors,
    /// The request's URL, read once.
    url: String,
    flag: Flag,
    /// Set once prepared, while the body is read.
    prepared: Option<Prepared>,
}

/// Continuation of a parked evaluation: its slot and what its promise
/// settled with (a value, or the error).
type Continuation = Closure<dyn FnMut(f64, JsValue) -> JsValue>;

thread_local! {
    /// Evaluations waiting, by slot; each is taken out by the one
    /// continuation that runs when its promise settles.
    static PENDING: RefCell<Slots<Pending>> = const { RefCell::new(Slots::new()) };
    /// The continuation answering a parked evaluation with its body.
    static WITH_BODY: Continuation = Closure::new(|slot: f64, buffer: JsValue| {
        take(slot).map_or_else(expired, |p| with_body(p, &buffer))
    });
    /// The continuation of a parked evaluation whose body could not be read.
    static BODY_FAILED: Continuation = Closure::new(|slot: f64, error: JsValue| {
        let Some(p) = take(slot) else {
            return expired();
        };
        let details = js_error_text(&error, "failed to read the request's body");
        finish(worker_main::internal_error(&details).into(), &p.cors, &p.settings).into()
    });
    /// The continuation of an evaluation the rate limiter has counted:
    /// the 429, or the evaluation.
    static LIMIT_OUTCOME: Continuation = Closure::new(|slot: f64, outcome: JsValue| {
        let Some(p) = take(slot) else {
            return expired();
        };
        let success = js_sys::Reflect::get(&outcome, &JsValue::from_str("success"))
            .ok()
            .and_then(|v| v.as_bool());
        if success == Some(false) {
            let resp = worker_main::limited(&p.settings)
                .unwrap_or_else(|e| worker_main::internal_error(&e));
            return finish(resp.into(), &p.cors, &p.settings).into();
        }
        start(p)
    });
    /// The continuation of an evaluation the rate limiter failed to count:
    /// let through (logged), as [`worker_main`]'s router does.
    static LIMIT_FAILED: Continuation = Closure::new(|slot: f64, error: JsValue| {
        let Some(p) = take(slot) else {
            return expired();
        };
        let details = js_error_text(&error, "no reason given");
        worker::console_error!("rate limiter failed, request let through: {details}");
        start(p)
    });
}

/// How many evaluations are parked now (for `/healthz`).
pub(crate) fn parked() -> usize {
    PENDING.with(|p| p.borrow().len())
}

/// The answer of an evaluation dropped while it waited ([`PARKED_FOR_MS`]).
fn expired() -> JsValue {
    let resp = worker_main::internal_error(&"the evaluation waited too long for its request");
    web_sys::Response::from(resp).into()
}

/// The parked evaluation of `slot`.
fn take(slot: f64) -> Option<Pending> {
    PENDING.with(|p| p.borrow_mut().take(slot))
}

/// How long an evaluation may wait for its body or the rate limiter
/// before a later one may drop it ([`Slots`]): a promise of a request the
/// client abandoned never settles.
const PARKED_FOR_MS: i64 = 5 * 60 * 1000;

/// The message of a JavaScript error value, or `fallback`.
pub(crate) fn js_error_text(error: &JsValue, fallback: &str) -> String {
    error
        .as_string()
        .or_else(|| {
            error
                .dyn_ref::<js_sys::Error>()
                .map(|e| String::from(e.message()))
        })
        .unwrap_or_else(|| fallback.into())
}

/// Runs once when the module is instantiated: the rule language's
/// `lower()` of non-ASCII text goes through JavaScript's
/// `String.prototype.toLowerCase` (Unicode's default full case mapping,
/// as `str::to_lowercase` gives), so the module carries no case tables
/// (bunting-core is built without `unicode-lowercase`).
#[wasm_bindgen(start)]
fn install_lowercase() {
    bunting_core::lowercase::install(|text| {
        String::from(js_sys::JsString::from(text).to_lower_case())
    });
}

/// The Workers runtime's `fetch` handler (what `#[event(fetch)]` would
/// export): a `Response`, or a promise of one.
#[wasm_bindgen]
#[allow(unreachable_pub)] // exported to JavaScript, not to Rust
pub fn fetch(raw: web_sys::Request, env: Env, ctx: worker::worker_sys::Context) -> JsValue {
    let ctx = Context::new(ctx);
    let req = Incoming::new(raw);
    let settings = worker_main::settings(&env);
    let cors = Cors::of(&req, &settings);
    if let Some((url, flag)) = evaluation(&req) {
        let pending = Pending {
            req,
            env,
            ctx,
            settings,
            cors,
            url,
            flag,
            prepared: None,
        };
        return if worker_main::rate_limiter_bound(&pending.env) {
            limit(pending)
        } else {
            start(pending)
        };
    }
    promise(async move {
        let resp = worker_main::respond(req, &env, &ctx, &settings).await;
        Ok(finish(resp, &cors, &settings).into())
    })
}

/// The promise of a request's answer or of a queue batch's delivery: one
/// `future_to_promise` (a copy of its task code in the module per future
/// type) for every async path.
pub(crate) fn promise(
    answer: impl std::future::Future<Output = Result<JsValue, JsValue>> + 'static,
) -> JsValue {
    let answer: std::pin::Pin<Box<dyn std::future::Future<Output = Result<JsValue, JsValue>>>> =
        Box::pin(answer);
    future_to_promise(answer).into()
}

/// Asks the rate limiter to count `pending`; the evaluation goes on in
/// [`LIMIT_OUTCOME`] or [`LIMIT_FAILED`].
fn limit(pending: Pending) -> JsValue {
    let binding =
        js_sys::Reflect::get(pending.env.as_ref(), &JsValue::from_str(ratelimit::BINDING))
            .unwrap_or(JsValue::UNDEFINED);
    if binding.is_undefined() || binding.is_null() {
        return start(pending);
    }
    let options = js_sys::Object::new();
    let key = JsValue::from_str(&worker_main::limit_key(&pending.req));
    if js_sys::Reflect::set(&options, &JsValue::from_str("key"), &key).is_err() {
        return start(pending);
    }
    let limiter: &worker::worker_sys::RateLimiter = binding.unchecked_ref();
    match limiter.limit(options) {
        Ok(promise) => then(promise, pending, &LIMIT_OUTCOME, &LIMIT_FAILED),
        Err(e) => {
            let details = js_error_text(&e, "no reason given");
            worker::console_error!("rate limiter failed, request let through: {details}");
            start(pending)
        }
    }
}

/// Evaluates `pending` (counted by the rate limiter if there is one): parked
/// until its body arrives when this isolate holds what it needs, else the
/// async path's answer.
fn start(mut pending: Pending) -> JsValue {
    let url = RequestUrl::parse(&pending.url);
    let p = &pending;
    match worker_main::prepare_now(&p.req, &url, &p.env, &p.ctx, &p.settings) {
        Some(Ok(Ok(prepared))) => {
            pending.prepared = Some(prepared);
            park(pending)
        }
        Some(Ok(Err(denied))) => finish(denied.into(), &p.cors, &p.settings).into(),
        Some(Err(e)) => finish(worker_main::internal_error(&e).into(), &p.cors, &p.settings).into(),
        None => promise(async move {
            let Pending {
                req,
                env,
                ctx,
                settings,
                cors,
                url,
                flag,
                prepared: _,
            } = pending;
            let url = RequestUrl::parse(&url);
            let resp = worker_main::evaluate(req, &url, &env, &ctx, &settings, flag)
                .await
                .unwrap_or_else(|e| worker_main::internal_error(&e).into());
            Ok(finish(resp, &cors, &settings).into())
        }),
    }
}

/// `promise.then(ok, failed)`, with both continuations bound to the slot
/// `pending` is parked in.
fn then(
    promise: js_sys::Promise,
    pending: Pending,
    ok: &'static std::thread::LocalKey<Continuation>,
    failed: &'static std::thread::LocalKey<Continuation>,
) -> JsValue {
    let now = worker::js_sys::Date::now() as i64;
    let slot = PENDING.with(|p| p.borrow_mut().put(pending, now, PARKED_FOR_MS));
    let bound = |c: &Continuation| {
        let f: &Callable = c.as_ref().unchecked_ref();
        f.bind(&JsValue::NULL, slot)
    };
    let (ok, failed) = (ok.with(bound), failed.with(bound));
    promise.unchecked_ref::<Thenable>().then(&ok, &failed)
}

/// The URL of an OFREP evaluation and the flag it asks for (`None`: every
/// flag); `None` for any other request, and for evaluations the router
/// answers with an error (no key in the path, an unknown `type`).
fn evaluation(req: &Incoming) -> Option<(String, Flag)> {
    if req.method() != Method::Post {
        return None;
    }
    let raw_url = req.inner().url();
    let url = RequestUrl::parse(&raw_url);
    let flag = if url.path == ofrep::BULK_PATH {
        None
    } else if url.path.starts_with(ofrep::SINGLE_PREFIX) {
        let key = ofrep::flag_key_from_path(url.path)?;
        let expected = ofrep::expected_type(url.param("type").as_deref()).ok()?;
        Some((key, expected))
    } else {
        return None;
    };
    Some((raw_url, flag))
}

/// Parks `pending` until its body arrives: `arrayBuffer().then(…)`.
fn park(pending: Pending) -> JsValue {
    match pending.req.inner().array_buffer() {
        Ok(body) => then(body, pending, &WITH_BODY, &BODY_FAILED),
        Err(e) => {
            let details = js_error_text(&e, "the body was used");
            finish(
                worker_main::internal_error(&details).into(),
                &pending.cors,
                &pending.settings,
            )
            .into()
        }
    }
}

/// The answer to a parked evaluation, its body read, with the engine it
/// was prepared with (as the async path holds it across the body's read).
fn with_body(p: Pending, buffer: &JsValue) -> JsValue {
    let body = Uint8Array::new(buffer).to_vec();
    let Pending {
        req,
        env,
        ctx,
        settings,
        cors,
        url: _,
        flag,
        prepared,
    } = p;
    let Some(prepared) = prepared else {
        let resp = worker_main::internal_error(&"an evaluation was parked unprepared");
        return finish(resp.into(), &cors, &settings).into();
    };
    let resp = match worker_main::answer(&req, &env, &ctx, &settings, flag, prepared, &body) {
        Ok(r) => r,
        Err(e) => worker_main::internal_error(&e).into(),
    };
    finish(resp, &cors, &settings).into()
}

/// What the CORS headers of a response depend on ([`cors::headers`]).
struct Cors {
    /// The request's `Origin`; not read without `ALLOWED_ORIGINS` (there
    /// are no CORS headers to add then).
    origin: Option<String>,
    /// An `OPTIONS` request.
    preflight: bool,
}

impl Cors {
    fn of(req: &Incoming, settings: &Settings) -> Cors {
        if settings.allowed_origins.is_empty() {
            return Cors {
                origin: None,
                preflight: false,
            };
        }
        Cors {
            origin: req.header("Origin"),
            preflight: req.method() == Method::Options,
        }
    }
}

/// The runtime's response for `resp`, with the CORS headers the settings
/// give for the request.
fn finish(resp: web_sys::Response, cors: &Cors, settings: &Settings) -> web_sys::Response {
    if settings.allowed_origins.is_empty() {
        return resp;
    }
    let headers = resp.headers();
    for (name, value) in cors::headers(
        &settings.allowed_origins,
        cors.origin.as_deref(),
        cors.preflight,
    ) {
        if let Err(e) = headers.set(name, &value) {
            worker::console_error!("setting {name}: {e:?}");
        }
    }
    resp
}
