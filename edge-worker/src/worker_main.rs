//! The Workers runtime glue: routes, KV reads, headers. Everything it
//! decides is delegated to the pure modules.

use std::cell::RefCell;
use std::rc::Rc;

use bunting_core::{Engine, FlagType, Reason};
use bunting_wire::kv;
use serde_json::Value;
use wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{
    Context, Env, Headers, MessageBatch, MessageExt, Method, Queue, Response, Result, web_sys,
};

use crate::audience::Audience;
use crate::dedup::ExposureDedup;
use crate::device::Device;
use crate::exposure::{ExposureMeta, KeyHasher};
use crate::incoming::Incoming;
use crate::request_url::RequestUrl;
use crate::settings::Settings;
use crate::{
    answers, auth, cache, context, cookie, events, geo, health, ingest, ofrep, pointer, queue,
    ratelimit, reports, routes, snapshot, sse,
};
use bunting_wire::ExposureRecord;

/// The KV namespace holding snapshots and SDK key hashes.
const KV_BINDING: &str = "FLAGS";

#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    /// A KV namespace binding, read through its own `get(key, type)`:
    /// `worker::KvStore` looks up all five of its methods per binding and
    /// passes its options through serde_wasm_bindgen's serializer, whose
    /// code (and interned-string cache, a hash map of its own) the bundle
    /// otherwise does without.
    type KvNamespace;
    #[wasm_bindgen(method, catch, js_name = get)]
    fn get_as(
        this: &KvNamespace,
        key: &str,
        value_type: &str,
    ) -> std::result::Result<js_sys::Promise, JsValue>;

    /// A Durable Object stub, for its `fetch` with a URL or a `Request`
    /// alike (worker-sys binds the two forms as two imports).
    type ObjectStub;
    #[wasm_bindgen(method, catch, js_name = fetch)]
    fn fetch_input(
        this: &ObjectStub,
        input: &JsValue,
    ) -> std::result::Result<js_sys::Promise, JsValue>;
}

/// The raw `Response` of `input` (a URL or a `Request`) sent to the object
/// `name` of `namespace` through its stub's own `fetch`: `worker`'s
/// `Stub::fetch_with_request` converts the answer into a `worker::Response`
/// (its headers, `cf` and web socket read too), and its body is then read
/// through a JavaScript stream reader (a read, a promise and a wakeup per
/// chunk, copied into a growing `Vec`), where `arrayBuffer()` reads it
/// natively into one buffer. One function for the pointer's three callers
/// ([`ask_pointer`], [`publish_to_pointer`], [`event_stream`]): each had
/// its own copy of this await in its state machine.
async fn stub_fetch(
    namespace: &worker::ObjectNamespace,
    name: &str,
    input: &JsValue,
) -> Result<web_sys::Response> {
    let stub: ObjectStub = namespace.id_from_name(name)?.get_stub()?.into_rpc();
    let answer = JsFuture::from(stub.fetch_input(input)?).await?;
    Ok(answer.dyn_into()?)
}

/// `key`'s value in [`KV_BINDING`] as `value_type` (`"text"` or
/// `"arrayBuffer"`): `null` when there is none, as `KvStore::get` gives it.
async fn kv_get(env: &Env, key: &str, value_type: &str) -> std::result::Result<JsValue, String> {
    let namespace = js_sys::Reflect::get(env.as_ref(), &JsValue::from_str(KV_BINDING))
        .ok()
        .filter(JsValue::is_object)
        .ok_or_else(|| format!("invalid kv store: {KV_BINDING}"))?;
    let read = match namespace
        .unchecked_ref::<KvNamespace>()
        .get_as(key, value_type)
    {
        Ok(promise) => JsFuture::from(promise).await,
        Err(e) => Err(e),
    };
    read.map_err(|e| {
        format!(
            "js error: {}",
            crate::entry::js_error_text(&e, "no reason given")
        )
    })
}

thread_local! {
    static SNAPSHOTS: RefCell<cache::SnapshotCache> = RefCell::new(cache::SnapshotCache::default());
    static KEYS: RefCell<auth::KeyCache> = RefCell::new(auth::KeyCache::default());
    static INGEST: RefCell<ingest::Forwarder> = RefCell::new(ingest::Forwarder::default());
    static DEDUP: RefCell<ExposureDedup> = RefCell::new(ExposureDedup::default());
    static POINTER_GATE: RefCell<pointer::Gate> = RefCell::new(pointer::Gate::default());
    /// The settings, read from the environment's variables once per
    /// isolate: a deployment's variables are fixed for its isolates (a new
    /// deployment, or `wrangler dev` reloading its configuration, starts new
    /// ones), and reading them is a dozen crossings into JS per request.
    static SETTINGS: std::cell::OnceCell<Rc<Settings>> = const { std::cell::OnceCell::new() };
    /// Which optional bindings and secrets this deployment has, looked up
    /// once per isolate for the same reason as [`SETTINGS`].
    static BINDINGS: std::cell::OnceCell<Rc<Bindings>> = const { std::cell::OnceCell::new() };
    /// The names of [`context::CF_GEO_FIELDS`] as a JS array, the replacer
    /// of the one `JSON.stringify` that reads them ([`raw_cf`]).
    static CF_FIELDS: js_sys::Array = context::CF_GEO_FIELDS
        .iter()
        .map(|f| JsValue::from_str(f))
        .collect();
}

/// The optional bindings and secrets of this deployment ([`BINDINGS`]).
struct Bindings {
    /// The `SNAPSHOT_POINTER` Durable Object namespace is bound.
    pointer: bool,
    /// The `RATE_LIMITER` binding is bound.
    rate_limiter: bool,
    /// The `POINTER_SECRET` secret, if set and not empty.
    pointer_secret: Option<String>,
}

/// This isolate's [`Bindings`].
fn bindings(env: &Env) -> Rc<Bindings> {
    BINDINGS.with(|cell| {
        Rc::clone(cell.get_or_init(|| {
            let bound = |name: &str| {
                js_sys::Reflect::get(env.as_ref(), &JsValue::from_str(name))
                    .is_ok_and(|b| !b.is_undefined() && !b.is_null())
            };
            Rc::new(Bindings {
                pointer: pointer_namespace(env).is_some(),
                rate_limiter: bound(ratelimit::BINDING),
                pointer_secret: string_binding(env, "POINTER_SECRET").filter(|v| !v.is_empty()),
            })
        }))
    })
}

/// Whether the `RATE_LIMITER` binding is bound: every evaluation then
/// asks it first ([`rate_limited`]).
pub(crate) fn rate_limiter_bound(env: &Env) -> bool {
    bindings(env).rate_limiter
}

/// This isolate's settings ([`SETTINGS`]).
pub(crate) fn settings(env: &Env) -> Rc<Settings> {
    SETTINGS.with(|cell| {
        Rc::clone(cell.get_or_init(|| Rc::new(Settings::from_lookup(|k| string_binding(env, k)))))
    })
}

/// The Durable Object namespace of the environments' pointers.
const POINTER_BINDING: &str = "SNAPSHOT_POINTER";

/// The clock in Unix ms: `Date.now()`, one call into JS (`worker::Date::now`
/// creates a `Date` object and asks it for its time, two).
fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

/// `env`'s binding `name` if it is defined and its constructor is named
/// `type_name`: the check `Env::get_binding` makes, in one function for
/// every binding type (its generic copies, one per type, were ≈ 0.6 KB
/// of wasm each). Callers only ask whether there is one.
fn binding(env: &Env, name: &str, type_name: &str) -> Option<JsValue> {
    let value = js_sys::Reflect::get(env.as_ref(), &JsValue::from(name)).ok()?;
    if value.is_undefined() {
        return None;
    }
    let object = js_sys::Object::from(value);
    (object.constructor().name() == type_name).then(|| object.into())
}

/// A string binding (a variable or a secret): its text, `""` for a
/// `String` object, as `StringBinding`'s `Display` gives it.
fn string_binding(env: &Env, name: &str) -> Option<String> {
    binding(env, name, "String").map(|v| v.as_string().unwrap_or_default())
}

/// The `SNAPSHOT_POINTER` Durable Object namespace, if bound.
fn pointer_namespace(env: &Env) -> Option<worker::ObjectNamespace> {
    binding(env, POINTER_BINDING, "DurableObjectNamespace").map(JsCast::unchecked_into)
}

fn json_response(status: u16, body: &Value) -> Result<Response> {
    let mut r = json_body(body)?.with_status(status);
    r.headers_mut().set("Cache-Control", "no-store")?;
    Ok(r)
}

/// `value` as a JSON body, `Content-Type: application/json`: what
/// `Response::from_json` makes, without its builder's generic copy (and
/// its error) for `Value`.
pub(crate) fn json_body(value: &Value) -> Result<Response> {
    let mut r = Response::from_bytes(serde_json::to_vec(value)?)?;
    r.headers_mut().set("Content-Type", "application/json")?;
    Ok(r)
}

/// 503 with `Retry-After`: the isolate has no snapshot of `environment`
/// yet (neither KV nor the pointer had one), and why when SDKs may be
/// told ([`cache::EnvState::refusal`]: KV holds a JSON text, which this
/// worker does not read).
fn no_snapshot_yet(environment: &str) -> Result<Response> {
    let why = SNAPSHOTS.with(|c| {
        let c = c.borrow();
        c.state(environment)
            .and_then(|st| st.refusal())
            .map(|r| format!(": {r}"))
    });
    let mut r = error_response(
        503,
        "GENERAL",
        &format!(
            "no snapshot of environment {environment:?} is available yet{}",
            why.unwrap_or_default()
        ),
    )?;
    r.headers_mut().set("Retry-After", "5")?;
    Ok(r)
}

/// The time rules see: the request's `X-Bunting-Now` (ms since the epoch)
/// where `ALLOW_TIME_OVERRIDE` permits it (tests), else the clock.
fn evaluation_time(s: &Settings, header: impl FnOnce() -> Option<String>, clock: i64) -> i64 {
    if !s.allow_time_override {
        return clock;
    }
    header()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(clock)
}

fn error_response(status: u16, code: &str, details: &str) -> Result<Response> {
    json_response(
        status,
        &health::object(vec![
            ("errorCode", Value::from(code)),
            ("errorDetails", Value::from(details)),
        ]),
    )
}

/// The response to any request but the evaluations [`crate::entry`]
/// answers without waiting: [`route`]'s, or a 500 with the error.
pub(crate) async fn respond(
    req: Incoming,
    env: &Env,
    ctx: &Context,
    s: &Settings,
) -> web_sys::Response {
    match route(req, env, ctx, s).await {
        Ok(r) => r,
        Err(e) => internal_error(&e).into(),
    }
}

/// The 500 of a request that failed inside the worker.
pub(crate) fn internal_error(e: &dyn std::fmt::Display) -> Response {
    error_response(500, "GENERAL", &format!("internal error: {e}")).unwrap_or_else(|_| {
        // Not `expect`: formatting the error with `Debug` here kept a
        // second copy of `worker::Error`'s derived `Debug` (883 B of wasm)
        // in the bundle.
        let Ok(empty) = Response::empty() else {
            panic!("an empty response could not be built");
        };
        empty.with_status(500)
    })
}

/// `ctx.wait_until` with the future boxed: `Context::wait_until` is
/// generic, and each future type gave its own copy of wasm-bindgen's
/// `future_to_promise` wrappers and task spawn (≈ 0.6 KB of wasm each);
/// boxed, all five call sites share one. The task boxes the future anyway.
fn wait_until(ctx: &Context, future: impl std::future::Future<Output = ()> + 'static) {
    let future: std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> = Box::pin(future);
    ctx.wait_until(future);
}

async fn route(req: Incoming, env: &Env, ctx: &Context, s: &Settings) -> Result<web_sys::Response> {
    // The URL is read and split once per request ([`RequestUrl`]).
    let raw_url = req.inner().url();
    let url = RequestUrl::parse(&raw_url);
    let path = url.path;
    let method = req.method();
    if method != Method::Options
        && ratelimit::applies(path)
        && let Some(limited) = rate_limited(&req, env, s).await?
    {
        return Ok(limited.into());
    }
    let resp = match (method, path) {
        (Method::Options, _) => Ok(Response::empty()?.with_status(204)),
        (Method::Get, "/healthz") => healthz(&req, env, s),
        (Method::Get, snapshot::PATH) => get_snapshot(&req, env, ctx, s).await,
        (Method::Post, pointer::PUBLISH_PATH) => publish_snapshot(req, env).await,
        (Method::Get, sse::STREAM_PATH) => event_stream(&req, &url, env).await,
        (Method::Post, "/events") => post_events(req, env, ctx, s).await,
        (Method::Post, reports::PATH) => post_exposures(req, env, ctx, s).await,
        (Method::Post, ofrep::BULK_PATH) => return evaluate(req, &url, env, ctx, s, None).await,
        (Method::Post, p) if p.starts_with(ofrep::SINGLE_PREFIX) => {
            match ofrep::flag_key_from_path(p) {
                Some(key) => match ofrep::expected_type(url.param("type").as_deref()) {
                    Ok(expected) => {
                        return evaluate(req, &url, env, ctx, s, Some((key, expected))).await;
                    }
                    Err(e) => json_response(400, &e.body(Some(&key))),
                },
                None => {
                    let raw = &p[ofrep::SINGLE_PREFIX.len()..];
                    json_response(
                        404,
                        &health::object(vec![
                            ("key", Value::from(raw)),
                            ("errorCode", Value::from("FLAG_NOT_FOUND")),
                            (
                                "errorDetails",
                                Value::from(format!("no flag key in the path {p:?}")),
                            ),
                        ]),
                    )
                }
            }
        }
        (_, p) => match routes::allowed_methods(p) {
            Some(allow) => {
                let mut r = error_response(
                    405,
                    "GENERAL",
                    &format!("method not allowed on {p}: use {allow}"),
                )?;
                r.headers_mut().set("Allow", allow)?;
                Ok(r)
            }
            None => error_response(404, "GENERAL", "no such route"),
        },
    };
    resp.map(Into::into)
}

/// The 429 for a request over its rate limit ([`ratelimit`]); `None` when
/// under it or without the `RATE_LIMITER` binding. A binding that fails
/// lets the request through (logged): limiting must never take the edge
/// down.
async fn rate_limited(req: &Incoming, env: &Env, s: &Settings) -> Result<Option<Response>> {
    if !bindings(env).rate_limiter {
        return Ok(None);
    }
    let binding = js_sys::Reflect::get(env.as_ref(), &JsValue::from_str(ratelimit::BINDING))
        .unwrap_or(JsValue::UNDEFINED);
    if binding.is_undefined() || binding.is_null() {
        return Ok(None);
    }
    // Through the raw binding, as `entry::limit` (the path of evaluations):
    // `worker::RateLimiter` reads the outcome with serde_wasm_bindgen, whose
    // error messages bring the float formatter into the bundle.
    let options = js_sys::Object::new();
    let key = JsValue::from_str(&limit_key(req));
    let outcome = match js_sys::Reflect::set(&options, &JsValue::from_str("key"), &key) {
        Ok(_) => {
            let limiter: &worker::worker_sys::RateLimiter = binding.unchecked_ref();
            match limiter.limit(options) {
                Ok(promise) => JsFuture::from(promise).await,
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    let outcome = outcome.map_err(|e| crate::entry::js_error_text(&e, "no reason given"));
    let success = outcome.and_then(|o| {
        js_sys::Reflect::get(&o, &JsValue::from_str("success"))
            .ok()
            .and_then(|v| v.as_bool())
            .ok_or_else(|| "its outcome has no boolean `success`".to_string())
    });
    match success {
        Ok(false) => limited(s).map(Some),
        Ok(true) => Ok(None),
        Err(e) => {
            worker::console_error!("rate limiter failed, request let through: {e}");
            Ok(None)
        }
    }
}

/// The 429 of a request over its rate limit.
pub(crate) fn limited(s: &Settings) -> Result<Response> {
    let limited = ratelimit::Limited {
        retry_after_secs: s.rate_limit_period_secs,
    };
    let mut r = json_response(ratelimit::Limited::STATUS, &limited.body())?;
    r.headers_mut()
        .set("Retry-After", &limited.retry_after_secs.to_string())?;
    Ok(r)
}

/// The key the rate limiter counts a request under ([`ratelimit::limit_key`]).
pub(crate) fn limit_key(req: &Incoming) -> String {
    let (authorization, api_key) = (req.header("Authorization"), req.header("X-API-Key"));
    ratelimit::limit_key(
        auth::sdk_key(authorization.as_deref(), api_key.as_deref()),
        req.header("CF-Connecting-IP").as_deref(),
    )
}

/// `GET /healthz`: the status to anyone, the details to the operator
/// ([`health`] decides).
fn healthz(req: &Incoming, env: &Env, s: &Settings) -> Result<Response> {
    let authorization = req.headers().get("Authorization").ok().flatten();
    let secret = string_binding(env, "OPERATOR_SECRET");
    let operator = health::is_operator(authorization.as_deref(), secret.as_deref());
    let now = now_ms();
    let envs = SNAPSHOTS.with(|c| c.borrow().health(now));
    let mut ingest = INGEST.with(|i| i.borrow().health());
    ingest["configured"] = Value::Bool(s.ingest_url.is_some());
    let pointers = POINTER_GATE.with(|g| g.borrow().health());
    let all_ok = envs
        .as_object()
        .is_some_and(|m| m.values().all(|e| e["status"] == "ok"));
    let full = health::object(vec![
        (
            "status",
            Value::from(if all_ok { "ok" } else { "degraded" }),
        ),
        ("environments", envs),
        ("ingest", ingest),
        ("pointers", pointers),
        // Evaluations waiting for their bodies or the rate limiter now
        // (this request's isolate): a count that keeps growing means
        // abandoned requests (see `slots.rs`).
        ("parkedEvaluations", Value::from(crate::entry::parked())),
    ]);
    json_response(200, &health::visible(full, operator))
}

/// The KV record of an SDK key, `None` for unknown keys.
async fn record_for_key(env: &Env, key: &str, now: i64) -> Result<Option<kv::SdkKeyRecord>> {
    if let Some(hit) = KEYS.with(|k| k.borrow().get(key, now)) {
        return Ok(hit);
    }
    // SHA-256 only on a miss: the KV key names the key's hash.
    let hash = kv::sdk_key_hash(key);
    let text = kv_get(env, &kv::sdk_key_key_for_hash(&hash), "text")
        .await
        .map_err(|e| worker::Error::RustError(format!("reading the SDK key from KV: {e}")))?
        .as_string();
    let found = text.as_deref().and_then(kv::parse_sdk_key_record);
    KEYS.with(|k| k.borrow_mut().put(key, found.clone(), now));
    Ok(found)
}

/// The engine of `environment` and the JSON form of its number flags,
/// refreshed from KV when due.
async fn engine_for(
    env: &Env,
    ctx: &Context,
    environment: &str,
    s: &Settings,
    now: i64,
) -> Option<(Rc<Engine>, Rc<ofrep::NumberForms>)> {
    refresh(env, environment, s, now, false).await;
    check_pointer(env, ctx, environment, s, now).await;
    SNAPSHOTS.with(|c| c.borrow().serving(environment))
}

/// The fields of the request's `cf` object that geolocation reads
/// ([`context::CF_GEO_FIELDS`]), as JSON: one `JSON.stringify` with the
/// field names as its replacer (one crossing into JS, not three per field;
/// `cf` has dozens of fields the context never uses), numbers in the form
/// [`context::json_number`] gives a JavaScript number, values that are no
/// string, boolean or number left out (geolocation reads no others; a
/// `NaN`, `null` in JSON, reads as missing either way).
fn raw_cf(req: &Incoming) -> Value {
    let Ok(cf) = js_sys::Reflect::get(req.inner(), &JsValue::from_str("cf")) else {
        return Value::Null;
    };
    if !cf.is_object() {
        return Value::Null;
    }
    let text = CF_FIELDS
        .with(|fields| js_sys::JSON::stringify_with_replacer(&cf, fields))
        .ok()
        .and_then(|t| t.as_string());
    // From bytes, as every `Value` the worker parses (one parser in the bundle).
    let Some(Ok(Value::Object(fields))) =
        text.map(|t| serde_json::from_slice::<Value>(t.as_bytes()))
    else {
        return Value::Null;
    };
    // Inserted one by one: collecting into a map would add a sort to the bundle.
    let mut picked = serde_json::Map::new();
    for (k, v) in fields {
        let v = match v {
            Value::Number(n) => match n.as_f64() {
                Some(f) => context::json_number(f),
                None => continue,
            },
            Value::String(_) | Value::Bool(_) => v,
            _ => continue,
        };
        picked.insert(k, v);
    }
    Value::Object(picked)
}

/// The context's `geo`, from the request's `cf` object.
fn edge_geo(req: &Incoming) -> Value {
    geo::geo_from_cf(&raw_cf(req))
}

/// The context's `device`, from the `User-Agent`.
fn edge_device(headers: &Headers) -> Value {
    let ua = headers.get("User-Agent").ok().flatten();
    Device::from_user_agent(ua.as_deref().unwrap_or_default()).to_json()
}

/// Extra response headers (e.g. `Set-Cookie`) produced while building the context.
type ExtraHeaders = Vec<(&'static str, String)>;

/// The client's context with the edge's attributes (geo from `request.cf`,
/// device from the `User-Agent`, replacing whatever the client claimed) and,
/// for anonymous visitors, a targeting key from the anonymous-id cookie.
///
/// A new anonymous id is minted (and set as a cookie) only for browsers,
/// recognised by their `Origin` header (every browser sends one on a
/// `POST`, same-origin or not; server-side HTTP clients do not). A
/// server-side caller without a key would never send the cookie back and
/// would get a fresh random bucket on every request; instead its context
/// stays without a key and flags that bucket answer `TARGETING_KEY_MISSING`.
///
/// Of the edge's attributes, only those `needs` names are built
/// ([`context::with_needed_edge_attributes`]).
fn edge_context(
    req: &Incoming,
    headers: &Headers,
    client: Value,
    s: &Settings,
    needs: context::EdgeNeeds,
) -> (Value, ExtraHeaders) {
    if !s.edge_attributes {
        return (client, Vec::new());
    }
    let header = |name: &str| headers.get(name).ok().flatten();
    let mut ctx = context::with_needed_edge_attributes(
        client,
        needs,
        || edge_geo(req),
        || edge_device(headers),
    );
    if !context::needs_anonymous_key(&ctx) {
        // A usable (or an invalid, non-string) targetingKey: neither the
        // cookie nor a new anonymous id would change the context.
        return (ctx, Vec::new());
    }
    let cookies = header("Cookie");
    let existing = cookies
        .as_deref()
        .and_then(|h| cookie::anonymous_id_from_header(h, &s.anon_cookie));
    let mut extra = Vec::new();
    match existing {
        Some(id) => {
            context::ensure_targeting_key(&mut ctx, Some(id));
        }
        None if header("Origin").is_some() => {
            if let Ok(id) = cookie::try_new_anonymous_id()
                && context::ensure_targeting_key(&mut ctx, Some(&id))
                    == Some(context::TargetingKeySource::Anonymous)
            {
                let raw_url = req.inner().url();
                let secure = cookie::request_is_https(
                    RequestUrl::parse(&raw_url).scheme,
                    header("X-Forwarded-Proto").as_deref(),
                    header("CF-Visitor").as_deref(),
                );
                extra.push((
                    "Set-Cookie",
                    cookie::set_cookie_with(
                        &s.anon_cookie,
                        &id,
                        cookie::ANONYMOUS_ID_MAX_AGE_SECS,
                        secure,
                        s.anon_cookie_same_site,
                    ),
                ));
            }
        }
        None => context::drop_empty_targeting_key(&mut ctx),
    }
    (ctx, extra)
}

/// Refreshes `environment`'s snapshot from KV when due (as for OFREP):
/// from its tables alone (`snapshot-tables:<env>`), the whole value
/// (`snapshot:<env>`) read only when they do not serve or its check is due
/// ([`cache::SnapshotCache::apply_tables`]). With `whole`, reads the whole
/// value now, due or not ([`cache::SnapshotCache::apply`]).
///
/// Both keys are read by the one `await` of a loop: each `await` on a KV
/// read was a copy of its promise's state machine in the bundle.
async fn refresh(env: &Env, environment: &str, s: &Settings, now: i64, mut whole: bool) {
    if !whole && !SNAPSHOTS.with(|c| c.borrow().due(environment, now, s.snapshot_ttl_ms)) {
        return;
    }
    loop {
        let key = if whole {
            kv::snapshot_key(environment)
        } else {
            kv::tables_key(environment)
        };
        let fetched = kv_bytes(env, &key).await;
        let (logged, read_whole) = SNAPSHOTS.with(|c| {
            let mut c = c.borrow_mut();
            if whole {
                c.apply(environment, fetched, now);
                // Logged once per error: its time changes only with its text.
                let failed = c
                    .state(environment)
                    .filter(|st| st.last_error_at_ms == Some(now))
                    .and_then(|st| st.last_error.as_deref())
                    .map(|e| format!("snapshot of {environment:?} not loaded: {e}"));
                (failed, false)
            } else {
                let check = c.apply_tables(environment, fetched, now, s.whole_check_ms);
                let refused = check.refused.map(|refused| {
                    format!("snapshot tables of {environment:?} not served: {refused}")
                });
                (refused, check.read_whole)
            }
        });
        if let Some(message) = logged {
            worker::console_error!("{message}");
        }
        if !read_whole {
            return;
        }
        whole = true;
    }
}

/// `key`'s value in KV as bytes (`None`: no such key), copied into wasm
/// memory in one piece: `"text"` would encode the JS string into it
/// character by character, the largest cost of a KV read of a big
/// snapshot. The cache tells a JSON text from a packed snapshot by its
/// first bytes.
async fn kv_bytes(env: &Env, key: &str) -> std::result::Result<Option<Vec<u8>>, String> {
    kv_get(env, key, "arrayBuffer").await.map(|v| {
        v.dyn_ref::<js_sys::ArrayBuffer>()
            .map(|b| js_sys::Uint8Array::new(b).to_vec())
    })
}

/// Asks `environment`'s pointer for a snapshot newer than the served one,
/// when due ([`pointer::Gate`]): after the response (`waitUntil`), or
/// before it when nothing is served yet (KV has not got the environment
/// yet). Without the binding, KV alone serves.
async fn check_pointer(env: &Env, ctx: &Context, environment: &str, s: &Settings, now: i64) {
    if let Some((question, have)) = pointer_question(env, environment, s, now) {
        if have.is_none() {
            question.await;
        } else {
            wait_until(ctx, question);
        }
    }
}

/// The question to `environment`'s pointer when one is due, and the
/// version served now (the question asks for a newer one); `None` when
/// none is due or the binding is missing.
fn pointer_question(
    env: &Env,
    environment: &str,
    s: &Settings,
    now: i64,
) -> Option<(impl Future<Output = ()> + 'static, Option<u64>)> {
    if !bindings(env).pointer
        || !POINTER_GATE.with(|g| g.borrow_mut().start(environment, now, s.pointer_check_ms))
    {
        return None;
    }
    let Some(namespace) = pointer_namespace(env) else {
        // Started but never asked: end the question so the next one may.
        POINTER_GATE.with(|g| {
            g.borrow_mut()
                .done(environment, Err("the binding is missing".into()))
        });
        return None;
    };
    let have = SNAPSHOTS.with(|c| c.borrow().version(environment));
    Some((
        ask_pointer(namespace, environment.to_string(), have, true),
        have,
    ))
}

/// One question to an environment's pointer; its answer, a newer snapshot
/// (read as bytes like a KV value), is served from now on
/// ([`cache::SnapshotCache::apply_pointer`]). With `tables`, a packed
/// snapshot comes without the JSON text it carries
/// ([`pointer::TABLES_PARAM`]); without, it comes whole, which also gives
/// the snapshot served from its tables alone its text
/// ([`cache::SnapshotCache::needs_document`]: `have` is then `None`).
async fn ask_pointer(
    namespace: worker::ObjectNamespace,
    environment: String,
    have: Option<u64>,
    tables: bool,
) {
    /// Ends the question in the gate even if the task is dropped (a
    /// cancelled `waitUntil`), so the next request asks again.
    struct Question(Option<String>);
    impl Drop for Question {
        fn drop(&mut self) {
            if let Some(env) = self.0.take() {
                POINTER_GATE.with(|g| {
                    g.borrow_mut()
                        .done(&env, Err("the question was cancelled".into()))
                });
            }
        }
    }
    let mut question = Question(Some(environment.clone()));
    let result = async {
        let have = have.map_or_else(|| "-1".to_string(), |v| v.to_string());
        // `pointer::TABLES_PARAM`, written out.
        let tables = if tables { "&tables=1" } else { "" };
        // The raw `Response` ([`stub_fetch`]): for a 680 KB snapshot,
        // reading its body through a stream reader was most of a new
        // version's cost through the pointer; `arrayBuffer()` reads it
        // into one buffer, copied into wasm once, as KV's is.
        let url = JsValue::from_str(&format!("https://pointer/?have={have}{tables}"));
        let resp = stub_fetch(&namespace, &environment, &url)
            .await
            .map_err(|e| e.to_string())?;
        let js = |e: JsValue| worker::Error::from(e).to_string();
        match resp.status() {
            204 => Ok(()),
            200 => {
                let body = JsFuture::from(resp.array_buffer().map_err(js)?)
                    .await
                    .map_err(js)?;
                let value = js_sys::Uint8Array::new(&body).to_vec();
                SNAPSHOTS
                    .with(|c| c.borrow_mut().apply_pointer(&environment, value, now_ms()))
                    .map(|_| ())
            }
            pointer::HOLDS_JSON_STATUS => Err(pointer::holds_json()),
            status => Err(format!("the pointer answered HTTP {status}")),
        }
    }
    .await;
    question.0 = None;
    if let Some(e) = POINTER_GATE.with(|g| g.borrow_mut().done(&environment, result)) {
        worker::console_error!("pointer of {environment:?}: {e}");
    }
}

/// The `POINTER_SECRET` secret, if set ([`Bindings`]).
fn pointer_secret(env: &Env) -> Option<String> {
    bindings(env).pointer_secret.clone()
}

/// The `eventStreams` a bulk response of `environment` advertises: none
/// without the pointer (binding and secret).
fn event_streams(env: &Env, environment: &str) -> Option<Value> {
    let b = bindings(env);
    let secret = b.pointer_secret.as_deref().filter(|_| b.pointer)?;
    Some(sse::event_streams(
        environment,
        &sse::token(secret, environment),
    ))
}

/// `GET /ofrep/v1/events?environment=…&token=…`: the environment's change
/// notifications, a server-sent event stream held by its pointer object.
async fn event_stream(req: &Incoming, url: &RequestUrl<'_>, env: &Env) -> Result<Response> {
    let param = |name: &str| url.param(name);
    let (Some(secret), Some(namespace)) = (pointer_secret(env), pointer_namespace(env)) else {
        return error_response(
            404,
            "GENERAL",
            "event streams are not enabled on this worker",
        );
    };
    let (Some(environment), Some(token)) = (param("environment"), param("token")) else {
        return error_response(
            400,
            "GENERAL",
            "`environment` and `token` query parameters are required",
        );
    };
    if !sse::verify(&secret, &environment, &token) {
        return error_response(
            403,
            "GENERAL",
            "the stream token does not match the environment",
        );
    }
    let headers = Headers::new();
    if let Some(last) = req.headers().get("Last-Event-ID")? {
        headers.set("Last-Event-ID", &last)?;
    }
    // Only the answer's status and body are used ([`stub_fetch`]).
    let forwarded = subrequest("https://pointer/events", "GET", &headers, None)?;
    let answer = stub_fetch(&namespace, &environment, &forwarded).await?;
    let body = match answer.body() {
        Some(stream) => worker::ResponseBody::Stream(stream),
        None => worker::ResponseBody::Empty,
    };
    // The object's response headers are immutable: a new response around
    // its body, so that CORS headers can be added.
    let mut resp = Response::from_body(body)?.with_status(answer.status());
    resp.headers_mut()
        .set("Content-Type", "text/event-stream; charset=utf-8")?;
    resp.headers_mut().set("Cache-Control", "no-store")?;
    Ok(resp)
}

/// `POST /edge/v1/snapshot`: the origin publishes a snapshot to its
/// environment's pointer. `Authorization: Bearer <POINTER_SECRET>`; the
/// body is the snapshot's JSON text or its packed form (as a KV value,
/// told apart by [`pointer::is_packed`]), checked as the isolates will load
/// it ([`pointer::validate_value`]) and handed to the object as it came.
/// Every answer names the forms this worker reads
/// ([`pointer::FORMS_HEADER`]).
async fn publish_snapshot(req: Incoming, env: &Env) -> Result<Response> {
    let mut r = publish_to_pointer(req, env).await?;
    r.headers_mut().set(pointer::FORMS_HEADER, pointer::FORMS)?;
    Ok(r)
}

/// [`publish_snapshot`] but for its header.
async fn publish_to_pointer(mut req: Incoming, env: &Env) -> Result<Response> {
    let Some(secret) = pointer_secret(env) else {
        return error_response(503, "GENERAL", "POINTER_SECRET is not set on this worker");
    };
    let token = req
        .headers()
        .get("Authorization")?
        .and_then(|h| h.strip_prefix("Bearer ").map(|t| t.trim().to_string()));
    if !token.is_some_and(|t| bunting_wire::same_secret(&t, &secret)) {
        return unauthorized("missing or wrong POINTER_SECRET bearer token");
    }
    let body = req.bytes().await?;
    if body.len() > pointer::MAX_SNAPSHOT_BYTES {
        return error_response(413, "GENERAL", "snapshot too large");
    }
    let published = match pointer::validate_value(&body) {
        Ok(p) => p,
        Err(pointer::PublishError::TooLarge(_)) => {
            return error_response(413, "GENERAL", "snapshot too large");
        }
        Err(e) => return error_response(400, "GENERAL", &e.to_string()),
    };
    let Some(namespace) = pointer_namespace(env) else {
        return error_response(503, "GENERAL", "the SNAPSHOT_POINTER binding is missing");
    };
    let headers = Headers::new();
    headers.set(pointer::VERSION_HEADER, &published.version.to_string())?;
    let body = JsValue::from(js_sys::Uint8Array::from(body.as_slice()));
    let forwarded = subrequest("https://pointer/", "POST", &headers, Some(&body))?;
    // The raw `Response` ([`stub_fetch`]): `worker`'s `Response::text`
    // reads a fetched body through a stream reader (wasm-streams'
    // `IntoStream` and a `try_fold`, in the bundle for this answer alone);
    // `arrayBuffer()` reads it natively.
    let answer = stub_fetch(&namespace, &published.environment, &forwarded).await?;
    let status = answer.status();
    // From bytes, as every `Value` the worker parses (`Response::json`
    // reads from a `str`: a second copy of serde_json's parser). A body
    // that is not UTF-8 is no JSON here either: `from_slice` checks it.
    let bytes = match answer.array_buffer() {
        Ok(promise) => JsFuture::from(promise).await.ok(),
        Err(_) => None,
    };
    let parsed = bytes
        .and_then(|b| serde_json::from_slice::<Value>(&js_sys::Uint8Array::new(&b).to_vec()).ok());
    let body = parsed.unwrap_or_else(|| {
        health::object(vec![(
            "error",
            Value::from("the pointer answered without JSON"),
        )])
    });
    json_response(
        status,
        &health::object(vec![
            ("environment", Value::from(published.environment)),
            ("pointer", body),
        ]),
    )
}

/// `GET /sdk/v1/snapshot`: the snapshot text this isolate serves, for a
/// server SDK key ([`snapshot`] decides).
async fn get_snapshot(req: &Incoming, env: &Env, ctx: &Context, s: &Settings) -> Result<Response> {
    let now = now_ms();
    let header = |name: &str| req.headers().get(name).ok().flatten();
    let (authorization, api_key) = (header("Authorization"), header("X-API-Key"));
    let key = auth::sdk_key(authorization.as_deref(), api_key.as_deref());
    let record = match key {
        Some(k) => record_for_key(env, k, now).await?,
        None => None,
    };
    let environment = match snapshot::access(key, record.as_ref()) {
        Ok(environment) => environment,
        Err(refused) => {
            let mut r = json_response(refused.status, &refused.body())?;
            if refused.status == 401 {
                r.headers_mut().set("WWW-Authenticate", "Bearer")?;
            }
            return Ok(r);
        }
    };
    refresh(env, environment, s, now, false).await;
    check_pointer(env, ctx, environment, s, now).await;
    // Served from its tables alone: the whole value, for its text, from
    // KV, else from the pointer (KV may lag behind either).
    let needs_document = || SNAPSHOTS.with(|c| c.borrow().needs_document(environment));
    if needs_document() {
        refresh(env, environment, s, now, true).await;
    }
    if needs_document()
        && let Some(namespace) = pointer_namespace(env)
    {
        ask_pointer(namespace, environment.to_string(), None, false).await;
    }
    let Some((text, etag)) = SNAPSHOTS.with(|c| c.borrow().text(environment)) else {
        let refused = snapshot::unavailable(environment);
        let mut r = json_response(refused.status, &refused.body())?;
        r.headers_mut()
            .set("Retry-After", &snapshot::RETRY_AFTER_SECONDS.to_string())?;
        return Ok(r);
    };
    let mut r = if snapshot::not_modified(&etag, header("If-None-Match").as_deref()) {
        Response::empty()?.with_status(304)
    } else {
        let mut r = Response::from_bytes(text.as_bytes().to_vec())?;
        r.headers_mut().set("Content-Type", "application/json")?;
        r
    };
    r.headers_mut().set("ETag", &etag)?;
    r.headers_mut()
        .set("Cache-Control", snapshot::CACHE_CONTROL)?;
    Ok(r)
}

/// The environment of the request's SDK key, or the 401/403 response.
async fn authenticate(
    headers: &Headers,
    env: &Env,
    now: i64,
) -> Result<std::result::Result<String, Response>> {
    Ok(authenticate_record(headers, env, now)
        .await?
        .map(|record| record.environment))
}

/// The KV record of the request's SDK key, or the 401/403 response.
async fn authenticate_record(
    headers: &Headers,
    env: &Env,
    now: i64,
) -> Result<std::result::Result<kv::SdkKeyRecord, Response>> {
    let header = |name: &str| headers.get(name).ok().flatten();
    let authorization = header("Authorization");
    let api_key = header("X-API-Key");
    let Some(key) = auth::sdk_key(authorization.as_deref(), api_key.as_deref()) else {
        return missing_key().map(Err);
    };
    match record_for_key(env, key, now).await? {
        Some(record) => Ok(Ok(record)),
        None => unknown_key().map(Err),
    }
}

/// [`authenticate_record`] from what this isolate knows: `None` when the
/// SDK key must be looked up in KV.
fn authenticate_record_now(
    req: &Incoming,
    now: i64,
) -> Option<Result<std::result::Result<kv::SdkKeyRecord, Response>>> {
    let authorization = req.header("Authorization");
    let api_key = req.header("X-API-Key");
    let Some(key) = auth::sdk_key(authorization.as_deref(), api_key.as_deref()) else {
        return Some(missing_key().map(Err));
    };
    Some(match KEYS.with(|k| k.borrow().get(key, now))? {
        Some(record) => Ok(Ok(record)),
        None => unknown_key().map(Err),
    })
}

/// 401: the request names no SDK key.
fn missing_key() -> Result<Response> {
    unauthorized("missing SDK key: send `Authorization: Bearer <key>`")
}

/// 401 with `WWW-Authenticate: Bearer` and `details`.
fn unauthorized(details: &str) -> Result<Response> {
    let mut r = error_response(401, "GENERAL", details)?;
    r.headers_mut().set("WWW-Authenticate", "Bearer")?;
    Ok(r)
}

/// 403: the SDK key is not one of KV's.
fn unknown_key() -> Result<Response> {
    error_response(403, "GENERAL", "unknown SDK key")
}

/// The secret that hashes targeting keys in exposures and events:
/// `KEY_HASH_SECRET`, else `INGEST_SECRET`.
fn key_hasher(env: &Env) -> KeyHasher {
    let secret = ["KEY_HASH_SECRET", "INGEST_SECRET"]
        .iter()
        .find_map(|k| string_binding(env, k).filter(|v| !v.is_empty()))
        .unwrap_or_default();
    KeyHasher::new(&secret)
}

fn ingest_token(env: &Env) -> Option<String> {
    string_binding(env, "INGEST_SECRET").filter(|v| !v.is_empty())
}

/// POSTs JSON to the ingest endpoint; any failure is an `Err` to count.
async fn post_json(
    url: &str,
    token: Option<&str>,
    body: String,
) -> std::result::Result<(), String> {
    let headers = Headers::new();
    headers
        .set("Content-Type", "application/json")
        .map_err(|e| e.to_string())?;
    if let Some(t) = token {
        headers
            .set("Authorization", &format!("Bearer {t}"))
            .map_err(|e| e.to_string())?;
    }
    let body = JsValue::from_str(&body);
    let req = subrequest(url, "POST", &headers, Some(&body)).map_err(|e| e.to_string())?;
    // The global `fetch` for the raw `Response`, whose status is all that
    // is read: `Fetch::send` converts it into a `worker::Response` first.
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let resp: web_sys::Response = JsFuture::from(global.fetch_with_request(&req))
        .await
        .and_then(JsValue::dyn_into)
        .map_err(|e| format!("POST {url}: {}", worker::Error::from(e)))?;
    match resp.status() {
        200..=299 => Ok(()),
        status => Err(format!("POST {url}: HTTP {status}")),
    }
}

/// A subrequest (`method`, `headers`, optional `body`) built on
/// `web_sys::RequestInit` directly: `worker::RequestInit`'s conversion also
/// turns its `cf` options (image resizing, Polish, caching) into JS, code
/// the worker never needs (≈ 3 KB of the bundle). Redirects are followed,
/// fetch's default, as `worker::RequestInit` asks.
fn subrequest(
    url: &str,
    method: &str,
    headers: &Headers,
    body: Option<&JsValue>,
) -> Result<web_sys::Request> {
    let init = worker::web_sys::RequestInit::new();
    init.set_method(method);
    init.set_headers(headers.as_ref());
    if let Some(body) = body {
        init.set_body(body);
    }
    worker::web_sys::Request::new_with_str_and_init(url, &init).map_err(|e| {
        worker::Error::JsError(
            e.as_string()
                .unwrap_or_else(|| "invalid URL or options for Request".to_string()),
        )
    })
}

/// The queue producer ([`queue::BINDING`]), when bound.
fn ingest_queue(env: &Env) -> Option<Queue> {
    binding(env, queue::BINDING, "WorkerQueue").map(JsCast::unchecked_into)
}

/// Sends `messages` (carrying `count` records) to the queue in one batch.
async fn enqueue(
    q: &Queue,
    messages: Vec<String>,
    count: usize,
) -> std::result::Result<(), String> {
    let result = send_batch(q, &messages)
        .await
        .map_err(|e| format!("queue send: {e}"));
    INGEST.with(|i| i.borrow_mut().queued(count, &result));
    result
}

/// `Queue::send_batch` of `messages` (strings, content type `json`) through
/// the raw binding: the `worker` crate builds the same request with
/// serde_wasm_bindgen, whose serializer the bundle otherwise does without.
async fn send_batch(q: &Queue, messages: &[String]) -> Result<()> {
    let batch = js_sys::Array::new();
    for m in messages {
        let request = js_sys::Object::new();
        js_sys::Reflect::set(&request, &JsValue::from_str("body"), &JsValue::from_str(m))?;
        js_sys::Reflect::set(
            &request,
            &JsValue::from_str("contentType"),
            &JsValue::from_str("json"),
        )?;
        batch.push(&request);
    }
    let raw: &worker::worker_sys::Queue = q.as_ref().unchecked_ref();
    JsFuture::from(raw.send_batch(batch, JsValue::UNDEFINED)?).await?;
    Ok(())
}

/// Hands accepted exposures to the queue when one is bound (the future
/// that sends them, awaited or given to `waitUntil` by the caller), and to
/// the isolate's forwarder buffer otherwise or when the queue refuses them.
fn exposure_sending(
    env: &Env,
    exposures: Vec<ExposureRecord>,
) -> Option<impl Future<Output = ()> + use<>> {
    if exposures.is_empty() {
        return None;
    }
    let Some(q) = ingest_queue(env) else {
        INGEST.with(|i| i.borrow_mut().record(exposures));
        return None;
    };
    Some(async move {
        let messages = queue::exposure_messages(&exposures);
        if enqueue(&q, messages, exposures.len()).await.is_err() {
            INGEST.with(|i| i.borrow_mut().record(exposures));
        }
    })
}

/// [`exposure_sending`] after the response: nothing is waited for.
fn accept_exposures_later(env: &Env, ctx: &Context, exposures: Vec<ExposureRecord>) {
    if let Some(send) = exposure_sending(env, exposures) {
        wait_until(ctx, send);
    }
}

/// The queue consumer: delivers batches of queued exposures and events to
/// `INGEST_URL` ([`queue::plan`]) and acknowledges exactly the messages the
/// origin committed (2xx); the others are retried by the queue.
///
/// Exported as the runtime's `queue` handler by hand, as `fetch` is
/// ([`crate::entry::fetch`]): `#[event(queue)]` wraps the handler in a
/// promise task of its own, with a panic for an error this consumer never
/// returns (370 B of the gzipped bundle).
#[wasm_bindgen::prelude::wasm_bindgen(js_name = queue)]
#[allow(unreachable_pub)] // exported to JavaScript, not to Rust
pub fn queue_handler(
    batch: worker::worker_sys::MessageBatch,
    env: Env,
    _ctx: worker::worker_sys::Context,
) -> JsValue {
    crate::entry::promise(async move {
        consume(MessageBatch::from(batch), env).await;
        Ok(JsValue::UNDEFINED)
    })
}

/// [`queue_handler`]'s work.
async fn consume(batch: MessageBatch<String>, env: Env) {
    let settings = settings(&env);
    let messages: Vec<_> = batch.raw_iter().collect();
    let Some(url) = settings.ingest_url.clone() else {
        // Nowhere to deliver: keep them for when INGEST_URL is set.
        batch.retry_all();
        return;
    };
    let bodies: Vec<String> = messages
        .iter()
        .map(|m| m.body().as_string().unwrap_or_default())
        .collect();
    let plan = queue::plan(&bodies);
    for &i in &plan.unreadable {
        worker::console_error!("dropping unreadable ingest message {}", messages[i].id());
        messages[i].ack();
    }
    let token = ingest_token(&env);
    for post in plan.posts {
        let result = post_json(&url, token.as_deref(), post.body).await;
        INGEST.with(|i| i.borrow_mut().consumed(post.members.len(), &result));
        for &i in &post.members {
            if result.is_ok() {
                messages[i].ack();
            } else {
                messages[i].retry();
            }
        }
    }
}

/// Sends a batch of buffered exposures after the response, when one is due.
fn flush_exposures(env: &Env, ctx: &Context, s: &Settings, now: i64) {
    let Some(url) = s.ingest_url.clone() else {
        return;
    };
    let Some(batch) = INGEST.with(|i| i.borrow_mut().due_batch(now, s.ingest_flush_ms)) else {
        return;
    };
    let token = ingest_token(env);
    wait_until(ctx, async move {
        let body = ingest::exposures_payload(&batch);
        let result = post_json(&url, token.as_deref(), body).await;
        INGEST.with(|i| i.borrow_mut().exposures_done(batch, result));
    });
}

/// `POST /events`: validated metric events, forwarded to `INGEST_URL`.
async fn post_events(
    mut req: Incoming,
    env: &Env,
    ctx: &Context,
    s: &Settings,
) -> Result<Response> {
    let clock = now_ms();
    let environment = match authenticate(req.headers(), env, clock).await? {
        Ok(environment) => environment,
        Err(denied) => return Ok(denied),
    };
    let body = req.bytes().await?;
    if body.len() > ofrep::MAX_BODY_BYTES * 4 {
        return json_response(
            413,
            &health::object(vec![("error", Value::from("request body too large"))]),
        );
    }
    let list = match events::parse_events(&body, &key_hasher(env), clock) {
        Ok(list) => list,
        Err(e) => return json_response(400, &e.to_json()),
    };
    let accepted = list.len();
    let forwarded = match s.ingest_url.clone() {
        Some(url) if accepted > 0 => {
            // Durable first: the events are accepted once in the queue.
            let queued = match ingest_queue(env) {
                Some(q) => enqueue(&q, queue::event_messages(&environment, &list), accepted)
                    .await
                    .is_ok(),
                None => false,
            };
            if !queued {
                let token = ingest_token(env);
                wait_until(ctx, async move {
                    let body = ingest::events_payload(&environment, &list);
                    let result = post_json(&url, token.as_deref(), body).await;
                    INGEST.with(|i| i.borrow_mut().events_done(accepted, result));
                });
            }
            true
        }
        _ => false,
    };
    json_response(
        202,
        &health::object(vec![
            ("accepted", Value::from(accepted)),
            ("forwarded", Value::from(forwarded)),
        ]),
    )
}

/// The runtime's response of `init` with `body`, copied out of wasm
/// memory once into a `Uint8Array` (`worker`'s `fixed` takes a `Vec`,
/// which a cached bulk answer had to be copied into first).
fn bytes_response(init: worker::ResponseBuilder, body: &[u8]) -> Result<web_sys::Response> {
    let init = web_sys::ResponseInit::from(init);
    let view = js_sys::Uint8Array::from(body);
    Ok(web_sys::Response::new_with_opt_buffer_source_and_init(
        Some(&view),
        &init,
    )?)
}

/// The bulk answer (body and ETag) for `context`: from the snapshot's
/// answer cache when this context was answered before ([`answers`]),
/// else evaluated, serialized and kept.
fn bulk_answer(
    env: &Env,
    environment: &str,
    engine: &Rc<Engine>,
    numbers: &ofrep::NumberForms,
    audience: Audience,
    context: &Value,
    now: i64,
) -> Result<answers::Answer> {
    let streams = event_streams(env, environment);
    let cache = SNAPSHOTS.with(|c| c.borrow().answers(environment, engine));
    let key = match &cache {
        Some(cache) => cache.borrow().key(
            audience,
            serde_json::to_vec(context)?,
            streams.as_ref().map(serde_json::to_vec).transpose()?,
            now,
        ),
        None => None,
    };
    if let (Some(cache), Some(key)) = (&cache, &key)
        && let Some(hit) = cache.borrow().get(key)
    {
        return Ok(hit);
    }
    let evals = audience.evaluate_all(engine, context, now);
    let body = ofrep::bulk(&evals, numbers, streams.as_ref()).to_bytes();
    Ok(match (cache, key) {
        (Some(cache), Some(key)) => cache.borrow_mut().put(key, body),
        _ => answers::Answer {
            etag: Rc::from(ofrep::etag(&body)),
            body: Rc::from(body),
        },
    })
}

/// `POST /ofrep/v1/evaluate/flags[/{key}]`: the flag's answer (`flag`), or
/// every flag's, waiting for KV and the pointer as needed ([`prepare`]).
pub(crate) async fn evaluate(
    mut req: Incoming,
    url: &RequestUrl<'_>,
    env: &Env,
    ctx: &Context,
    s: &Settings,
    flag: Option<(String, Option<FlagType>)>,
) -> Result<web_sys::Response> {
    let prepared = match prepare(&req, url, env, ctx, s).await? {
        Ok(p) => p,
        Err(denied) => return Ok(denied.into()),
    };
    let body = req.bytes().await?;
    answer(&req, env, ctx, s, flag, prepared, &body)
}

/// What an evaluation needs besides its body: the SDK key's environment
/// and audience, the engine serving it, the clock and the time rules see.
pub(crate) struct Prepared {
    environment: String,
    audience: Audience,
    engine: Rc<Engine>,
    numbers: Rc<ofrep::NumberForms>,
    clock: i64,
    now: i64,
}

impl Prepared {
    /// The evaluation of the SDK key's environment and audience by the
    /// engine serving it, at the clock's time or the one `X-Bunting-Now`
    /// names where the settings allow it ([`evaluation_time`]).
    fn new(
        req: &Incoming,
        s: &Settings,
        (environment, audience): (String, Audience),
        (engine, numbers): (Rc<Engine>, Rc<ofrep::NumberForms>),
        clock: i64,
    ) -> Prepared {
        let now = evaluation_time(s, || req.header("X-Bunting-Now"), clock);
        Prepared {
            environment,
            audience,
            engine,
            numbers,
            clock,
            now,
        }
    }
}

/// The [`Prepared`] evaluation of a request, or the response that ends it
/// (401/403, 503 without a snapshot), reading KV and asking the pointer
/// as needed.
async fn prepare(
    req: &Incoming,
    url: &RequestUrl<'_>,
    env: &Env,
    ctx: &Context,
    s: &Settings,
) -> Result<std::result::Result<Prepared, Response>> {
    let clock = now_ms();
    let headers = req.headers();
    let (environment, audience) = match authenticate_record(headers, env, clock).await? {
        Ok(record) => {
            let audience = Audience::of(&record);
            (record.environment, audience)
        }
        Err(denied) => return Ok(Err(denied)),
    };
    // A client re-fetching after a change notification names the version
    // it was told of: ask the pointer now if this isolate is behind.
    let flag_config_etag = url.param("flagConfigEtag");
    let served = SNAPSHOTS.with(|c| c.borrow().version(&environment));
    if sse::wanted_version(flag_config_etag.as_deref(), served).is_some()
        && let Some(namespace) = pointer_namespace(env)
    {
        ask_pointer(namespace, environment.clone(), served, true).await;
    }
    let Some((engine, numbers)) = engine_for(env, ctx, &environment, s, clock).await else {
        return no_snapshot_yet(&environment).map(Err);
    };
    Ok(Ok(Prepared::new(
        req,
        s,
        (environment, audience),
        (engine, numbers),
        clock,
    )))
}

/// [`prepare`] from what this isolate holds, without waiting for anything
/// (a due pointer question is asked after the response): `None` when KV
/// or the pointer must be waited for (the SDK key or the snapshot is not
/// in memory or is due for a check, or the client names a newer version).
pub(crate) fn prepare_now(
    req: &Incoming,
    url: &RequestUrl<'_>,
    env: &Env,
    ctx: &Context,
    s: &Settings,
) -> Option<Result<std::result::Result<Prepared, Response>>> {
    let clock = now_ms();
    let (environment, audience) = match authenticate_record_now(req, clock)? {
        Ok(Ok(record)) => {
            let audience = Audience::of(&record);
            (record.environment, audience)
        }
        Ok(Err(denied)) => return Some(Ok(Err(denied))),
        Err(e) => return Some(Err(e)),
    };
    let (served, due) = SNAPSHOTS.with(|c| {
        let c = c.borrow();
        (
            c.version(&environment),
            c.due(&environment, clock, s.snapshot_ttl_ms),
        )
    });
    if served.is_none()
        || due
        || (bindings(env).pointer
            && sse::wanted_version(url.param("flagConfigEtag").as_deref(), served).is_some())
    {
        return None;
    }
    if let Some((question, _)) = pointer_question(env, &environment, s, clock) {
        wait_until(ctx, question);
    }
    let serving = SNAPSHOTS.with(|c| c.borrow().serving(&environment))?;
    Some(Ok(Ok(Prepared::new(
        req,
        s,
        (environment, audience),
        serving,
        clock,
    ))))
}

/// The answer to a [`Prepared`] evaluation of `body`: the flag's
/// (`flag`), or every flag's. Exposures are recorded and sent after the
/// response.
pub(crate) fn answer(
    req: &Incoming,
    env: &Env,
    ctx: &Context,
    s: &Settings,
    flag: Option<(String, Option<FlagType>)>,
    prepared: Prepared,
    body: &[u8],
) -> Result<web_sys::Response> {
    let Prepared {
        environment,
        audience,
        engine,
        numbers,
        clock,
        now,
    } = prepared;
    let flag_key = flag.as_ref().map(|(k, _)| k.as_str());
    let headers = req.headers();
    let client = match ofrep::parse_context(body) {
        Ok(c) => c,
        Err(e) => return json_response(400, &e.body(flag_key)).map(Into::into),
    };
    let needs = context::EdgeNeeds::of(&engine);
    let (context, extra) = edge_context(req, headers, client, s, needs);

    // Only the single-flag endpoint records an exposure: a bulk fetch says
    // nothing about what the application showed (clients report use through
    // `POST /exposures`).
    let hasher = s.ingest_url.as_ref().map(|_| key_hasher(env));
    let mut accepted = Vec::new();
    // An exposure records the country and the device type: when the
    // evaluation did not need them, they are built for the exposure only.
    let mut exposure_context = None;
    let mut record = |e: &bunting_core::Evaluation<'_>| {
        let Some(hasher) = &hasher else { return };
        let context = if needs.all() || !s.edge_attributes || e.reason != Reason::Split {
            &context
        } else {
            &*exposure_context.get_or_insert_with(|| {
                context::with_needed_edge_attributes(
                    context.clone(),
                    context::EdgeNeeds::ALL,
                    || edge_geo(req),
                    || edge_device(headers),
                )
            })
        };
        let meta = ExposureMeta {
            hasher,
            environment: engine.environment(),
            snapshot_version: engine.version(),
            time_ms: now,
        };
        if let Ok(exposure) = DEDUP.with(|d| {
            let mut d = d.borrow_mut();
            d.set_window_ms(s.exposure_dedup_ms);
            reports::deduplicated_exposure(e, context, &meta, &mut d, clock)
        }) {
            accepted.push(exposure);
        }
    };

    let resp = match &flag {
        Some((key, expected)) => {
            let e = audience.evaluate(&engine, key, *expected, &context, now);
            record(&e);
            let (status, body) = ofrep::single(&e, &numbers);
            let init = worker::ResponseBuilder::new()
                .with_status(status)
                .with_header("Content-Type", "application/json")?
                .with_header("Cache-Control", "no-store")?;
            bytes_response(init, &body.to_bytes())?
        }
        None => {
            let answer = bulk_answer(
                env,
                &environment,
                &engine,
                &numbers,
                audience,
                &context,
                now,
            )?;
            if req
                .header("If-None-Match")
                .is_some_and(|h| ofrep::if_none_match(&h, &answer.etag))
            {
                worker::ResponseBuilder::new()
                    .with_status(304)
                    .with_header("ETag", &answer.etag)?
                    .with_header("Cache-Control", "private, no-cache")?
                    .empty()
                    .into()
            } else {
                let init = worker::ResponseBuilder::new()
                    .with_header("Content-Type", "application/json")?
                    .with_header("ETag", &answer.etag)?
                    .with_header("Cache-Control", "private, no-cache")?;
                bytes_response(init, &answer.body)?
            }
        }
    };
    for (name, value) in extra {
        resp.headers().append(name, &value)?;
    }
    // After the response: an evaluation never waits for the queue.
    accept_exposures_later(env, ctx, accepted);
    flush_exposures(env, ctx, s, clock);
    Ok(resp)
}

/// `POST /exposures`: the flags a client used, evaluated again for its
/// context (never trusting a claimed variant) and recorded as exposures,
/// deduplicated ([`reports`]).
async fn post_exposures(
    mut req: Incoming,
    env: &Env,
    ctx: &Context,
    s: &Settings,
) -> Result<Response> {
    let clock = now_ms();
    // One `Headers` object for every header read here: a second handle to
    // the request's, kept while the body is read (`Headers::clone` would
    // copy every header into a new object).
    let headers = Headers(req.headers().0.clone());
    let (environment, audience) = match authenticate_record(&headers, env, clock).await? {
        Ok(record) => {
            let audience = Audience::of(&record);
            (record.environment, audience)
        }
        Err(denied) => return Ok(denied),
    };
    let body = req.bytes().await?;
    let report = match reports::parse_report(&body) {
        Ok(r) => r,
        Err(e) => return json_response(e.status(), &e.body()),
    };
    let Some((engine, _)) = engine_for(env, ctx, &environment, s, clock).await else {
        return no_snapshot_yet(&environment);
    };
    let now = evaluation_time(s, || headers.get("X-Bunting-Now").ok().flatten(), clock);
    // The context the evaluation saw: edge attributes and the anonymous
    // cookie's key. A visitor without a cookie gets no new one here: a fresh
    // random key would record an exposure nobody saw.
    let (mut context, minted) =
        edge_context(&req, &headers, report.context, s, context::EdgeNeeds::ALL);
    if !minted.is_empty()
        && let Value::Object(map) = &mut context
    {
        context::remove_key(map, context::TARGETING_KEY);
    }
    let hasher = key_hasher(env);
    let meta = ExposureMeta {
        hasher: &hasher,
        environment: engine.environment(),
        snapshot_version: engine.version(),
        time_ms: now,
    };
    let forwarded = s.ingest_url.is_some();
    let (results, exposures) = DEDUP.with(|d| {
        let mut d = d.borrow_mut();
        d.set_window_ms(s.exposure_dedup_ms);
        reports::record_reports(
            &engine,
            audience,
            &context,
            &report.flags,
            &meta,
            &mut d,
            clock,
        )
    });
    if forwarded {
        // A report is acknowledged (202) once its exposures are in the queue.
        if let Some(send) = exposure_sending(env, exposures) {
            send.await;
        }
    }
    flush_exposures(env, ctx, s, clock);
    json_response(202, &reports::response_body(&results, forwarded))
}
