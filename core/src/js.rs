//! JavaScript bindings (wasm-bindgen) for Cloudflare Workers and browsers.
//!
//! ```js
//! import { Engine } from "bunting-core";
//! const engine = new Engine(snapshotJson, false);
//! engine.evaluate("new-checkout", { targetingKey: "u1", country: "US" }, Date.now());
//! engine.evaluateAll({ targetingKey: "u1" }, Date.now());
//! ```

use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::model::FlagType;

/// An engine built from a snapshot document.
#[wasm_bindgen(js_name = Engine)]
pub struct JsEngine {
    inner: crate::Engine,
    problems: Vec<crate::Problem>,
}

fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsError> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| JsError::new(&e.to_string()))
}

/// `boolean`, `string`, `number`, `object` or none.
fn parse_expected(expected_type: Option<String>) -> Result<Option<FlagType>, JsError> {
    match expected_type {
        None => Ok(None),
        Some(t) => serde_json::from_value(serde_json::Value::String(t.clone()))
            .map(Some)
            .map_err(|_| JsError::new(&format!("unknown expected type {t:?}"))),
    }
}

#[wasm_bindgen(js_class = Engine)]
impl JsEngine {
    /// Loads `snapshot` (JSON text). With `lenient`, broken flags evaluate to
    /// errors instead of failing the load; see `problems`.
    #[wasm_bindgen(constructor)]
    pub fn new(snapshot: &str, lenient: Option<bool>) -> Result<JsEngine, JsError> {
        let (inner, problems) = if lenient.unwrap_or(false) {
            crate::Engine::from_json_lenient(snapshot)
        } else {
            crate::Engine::from_json(snapshot).map(|engine| (engine, Vec::new()))
        }
        .map_err(|e| JsError::new(&e.to_string()))?;
        Ok(JsEngine { inner, problems })
    }

    /// Problems a lenient load skipped.
    #[wasm_bindgen(getter)]
    pub fn problems(&self) -> Result<JsValue, JsError> {
        to_js(&self.problems)
    }

    /// The snapshot version.
    #[wasm_bindgen(getter)]
    pub fn version(&self) -> f64 {
        self.inner.version() as f64
    }

    /// The snapshot environment.
    #[wasm_bindgen(getter)]
    pub fn environment(&self) -> String {
        self.inner.environment().to_string()
    }

    /// Evaluates one flag. `expectedType` is `boolean`, `string`, `number`,
    /// `object` or undefined.
    pub fn evaluate(
        &self,
        flag: &str,
        context: JsValue,
        now_ms: f64,
        expected_type: Option<String>,
    ) -> Result<JsValue, JsError> {
        let expected = parse_expected(expected_type)?;
        let context: serde_json::Value = serde_wasm_bindgen::from_value(context)?;
        to_js(
            &self
                .inner
                .evaluate_typed(flag, expected, &context, now_ms as i64),
        )
    }

    /// [`JsEngine::evaluate`] with the context and the result as JSON text:
    /// `JSON.parse(engine.evaluateJson(flag, JSON.stringify(context), now))`.
    /// Much faster from JavaScript than building objects property by
    /// property across the boundary: V8's JSON is native, and serde_json in
    /// the module reads and writes the text in one pass.
    #[wasm_bindgen(js_name = evaluateJson)]
    pub fn evaluate_json(
        &self,
        flag: &str,
        context: &str,
        now_ms: f64,
        expected_type: Option<String>,
    ) -> Result<String, JsError> {
        let expected = parse_expected(expected_type)?;
        let context: serde_json::Value =
            serde_json::from_str(context).map_err(|e| JsError::new(&format!("context: {e}")))?;
        let eval = self
            .inner
            .evaluate_typed(flag, expected, &context, now_ms as i64);
        serde_json::to_string(&eval).map_err(|e| JsError::new(&e.to_string()))
    }

    /// [`JsEngine::evaluate_all`] with the context and the results as JSON
    /// text (an array).
    #[wasm_bindgen(js_name = evaluateAllJson)]
    pub fn evaluate_all_json(&self, context: &str, now_ms: f64) -> Result<String, JsError> {
        let context: serde_json::Value =
            serde_json::from_str(context).map_err(|e| JsError::new(&format!("context: {e}")))?;
        serde_json::to_string(&self.inner.evaluate_all(&context, now_ms as i64))
            .map_err(|e| JsError::new(&e.to_string()))
    }

    /// Evaluates every flag.
    #[wasm_bindgen(js_name = evaluateAll)]
    pub fn evaluate_all(&self, context: JsValue, now_ms: f64) -> Result<JsValue, JsError> {
        let context: serde_json::Value = serde_wasm_bindgen::from_value(context)?;
        to_js(&self.inner.evaluate_all(&context, now_ms as i64))
    }
}

/// The snapshot schema version this engine reads: hosts refuse a snapshot
/// with another one before loading it.
#[wasm_bindgen(js_name = schemaVersion)]
pub fn schema_version() -> u32 {
    crate::model::SCHEMA_VERSION
}

/// Hashes targeting keys with a secret, exactly as the edge does, so the
/// exposures and events of every host join at the origin.
///
/// ```js
/// const hasher = new KeyHasher("secret");
/// hasher.hash("user-1"); // 32 hex characters
/// hasher.hash(42);       // numbers as JSON writes them; other types: undefined
/// ```
#[wasm_bindgen(js_name = KeyHasher)]
pub struct JsKeyHasher {
    inner: crate::keyhash::KeyHasher,
}

#[wasm_bindgen(js_class = KeyHasher)]
impl JsKeyHasher {
    /// Derives the hashing key from `secret`.
    #[wasm_bindgen(constructor)]
    pub fn new(secret: &str) -> JsKeyHasher {
        JsKeyHasher {
            inner: crate::keyhash::KeyHasher::new(secret),
        }
    }

    /// The hash of a `targetingKey` (string or number), or undefined.
    pub fn hash(&self, key: JsValue) -> Result<Option<String>, JsError> {
        let key: serde_json::Value = serde_wasm_bindgen::from_value(key)?;
        Ok(self.inner.hash_value(&key))
    }
}
