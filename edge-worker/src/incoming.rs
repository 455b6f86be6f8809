//! The request a route handles, read from the runtime's object only as far
//! as the route needs (wasm32 only).
//!
//! `worker::Request`, which `#[event(fetch)]` would build for every
//! request, copies the URL and the method into wasm memory and reads
//! `request.cf`: workerd then materialises the `cf` object (dozens of
//! fields, a JSON parse) for every request, a few per cent of a single-flag
//! request's CPU and garbage for the collector, though only geolocation
//! reads it (and only for snapshots that read `geo`:
//! [`crate::context::EdgeNeeds`]). [`Incoming`] keeps the runtime's
//! request and one handle to its headers; the URL is read once by the
//! router, `cf` only by geolocation.

use std::cell::RefCell;

use wasm_bindgen::JsValue;
use wasm_bindgen::prelude::wasm_bindgen;
use worker::js_sys::Uint8Array;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{Headers, Method, Result, web_sys};

#[wasm_bindgen]
extern "C" {
    /// `Headers`, for `get` with a name that is already a JavaScript string.
    type NamedHeaders;
    #[wasm_bindgen(method)]
    fn get(this: &NamedHeaders, name: &JsValue) -> Option<String>;
}

thread_local! {
    /// The header names [`Incoming::header`] was asked for, as JavaScript
    /// strings: a `&str` passed to JavaScript is decoded into a new string
    /// (and a view of wasm memory) on every call.
    static NAMES: RefCell<Vec<(&'static str, JsValue)>> = const { RefCell::new(Vec::new()) };
}

/// An incoming request: the runtime's object and its headers.
pub(crate) struct Incoming {
    raw: web_sys::Request,
    headers: Headers,
    body_used: bool,
}

impl Incoming {
    /// Wraps the runtime's request (one call into JS, for the headers).
    pub(crate) fn new(raw: web_sys::Request) -> Self {
        let headers = Headers(raw.headers());
        Incoming {
            raw,
            headers,
            body_used: false,
        }
    }

    /// The runtime's request.
    pub(crate) fn inner(&self) -> &web_sys::Request {
        &self.raw
    }

    /// The request's headers.
    pub(crate) fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The value of the header `name` (one of a few fixed names: each is
    /// made a JavaScript string once per isolate).
    pub(crate) fn header(&self, name: &'static str) -> Option<String> {
        let js = NAMES.with(|n| {
            let mut n = n.borrow_mut();
            if let Some((_, js)) = n.iter().find(|(k, _)| *k == name) {
                return js.clone();
            }
            let js = JsValue::from_str(name);
            n.push((name, js.clone()));
            js
        });
        wasm_bindgen::JsCast::unchecked_ref::<NamedHeaders>(&self.headers.0).get(&js)
    }

    /// The method.
    pub(crate) fn method(&self) -> Method {
        Method::from(self.raw.method())
    }

    /// The body, copied into wasm memory in one piece; once only.
    pub(crate) async fn bytes(&mut self) -> Result<Vec<u8>> {
        if std::mem::replace(&mut self.body_used, true) {
            return Err(worker::Error::BodyUsed);
        }
        let buffer = JsFuture::from(self.raw.array_buffer()?)
            .await
            .map_err(|e| {
                worker::Error::JsError(
                    e.as_string()
                        .unwrap_or_else(|| "failed to read the request's body".into()),
                )
            })?;
        Ok(Uint8Array::new(&buffer).to_vec())
    }
}
