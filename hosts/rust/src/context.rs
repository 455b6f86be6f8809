//! The contexts the client takes ([`SdkContext`]: JSON or a
//! [`bunting_core::Context`]) and OpenFeature evaluation context → the
//! engine's JSON context.

use std::borrow::Cow;

use bunting_core::{Attr, Context, Evaluation, FlagType};
use open_feature::{EvaluationContext, EvaluationContextFieldValue, StructValue};
use serde_json::{Map, Value};

use crate::engine::FlagEngine;

/// `targetingKey` plus every custom field as JSON: booleans, numbers and
/// strings as is, dates as RFC 3339 strings, and structures when they hold
/// a `serde_json::Value` or an OpenFeature [`StructValue`] (any other
/// `Struct` payload is opaque to the SDK and is left out). A custom field
/// named `targetingKey` is used when the context's own targeting key is
/// unset (this is how a number key is passed).
///
/// ```
/// use open_feature::EvaluationContext;
/// let ctx = EvaluationContext::default()
///     .with_targeting_key("u1")
///     .with_custom_field("plan", "pro")
///     .with_custom_field("geo", open_feature::EvaluationContextFieldValue::new_struct(
///         serde_json::json!({"country": "CA"})));
/// assert_eq!(bunting_server_sdk::context_to_json(&ctx),
///            serde_json::json!({"targetingKey": "u1", "plan": "pro", "geo": {"country": "CA"}}));
/// ```
pub fn context_to_json(ctx: &EvaluationContext) -> Value {
    let mut map = Map::new();
    for (k, v) in &ctx.custom_fields {
        if let Some(v) = field(v) {
            map.insert(k.clone(), v);
        }
    }
    if let Some(key) = &ctx.targeting_key {
        map.insert("targetingKey".into(), Value::String(key.clone()));
    }
    Value::Object(map)
}

fn field(v: &EvaluationContextFieldValue) -> Option<Value> {
    Some(match v {
        EvaluationContextFieldValue::Bool(b) => Value::Bool(*b),
        EvaluationContextFieldValue::Int(i) => Value::from(*i),
        EvaluationContextFieldValue::Float(f) => Value::from(*f),
        EvaluationContextFieldValue::String(s) => Value::String(s.clone()),
        EvaluationContextFieldValue::DateTime(t) => Value::String(
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()?,
        ),
        EvaluationContextFieldValue::Struct(any) => {
            if let Some(v) = any.downcast_ref::<Value>() {
                v.clone()
            } else if let Some(s) = any.downcast_ref::<StructValue>() {
                struct_to_json(s)
            } else {
                return None;
            }
        }
    })
}

/// An OpenFeature structure as JSON (how object flags come back as JSON).
pub fn struct_to_json(s: &StructValue) -> Value {
    Value::Object(
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), value_to_json(v)))
            .collect(),
    )
}

pub(crate) fn value_to_json(v: &open_feature::Value) -> Value {
    match v {
        open_feature::Value::Bool(b) => Value::Bool(*b),
        open_feature::Value::Int(i) => Value::from(*i),
        open_feature::Value::Float(f) => Value::from(*f),
        open_feature::Value::String(s) => Value::String(s.clone()),
        open_feature::Value::Array(a) => Value::Array(a.iter().map(value_to_json).collect()),
        open_feature::Value::Struct(s) => struct_to_json(s),
    }
}

/// JSON → OpenFeature value (null has no OpenFeature form: `None`).
pub(crate) fn json_to_value(v: &Value) -> Option<open_feature::Value> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => open_feature::Value::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => open_feature::Value::Int(i),
            None => open_feature::Value::Float(n.as_f64()?),
        },
        Value::String(s) => open_feature::Value::String(s.clone()),
        Value::Array(a) => open_feature::Value::Array(a.iter().filter_map(json_to_value).collect()),
        Value::Object(o) => open_feature::Value::Struct(StructValue {
            fields: o
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), json_to_value(v)?)))
                .collect(),
        }),
    })
}

/// What [`Client::evaluate`](crate::Client::evaluate),
/// [`Client::evaluate_all`](crate::Client::evaluate_all) and
/// [`Client::track`](crate::Client::track) take as the context: a
/// `serde_json::Value` (an object with `targetingKey` and attributes) or a
/// [`bunting_core::Context`], built from the strings a service already
/// holds. A `Context` evaluates, and yields exposures and events, exactly as
/// its [`to_json`](bunting_core::Context::to_json) form does.
///
/// ```
/// use bunting_server_sdk::{Context, SdkContext};
/// let user = String::from("user-1");
/// let ctx = Context::new().with_targeting_key(&user).with("plan", "pro");
/// assert_eq!(ctx.targeting_key().as_deref(), Some("user-1"));
/// assert_eq!(ctx.to_json().targeting_key(), ctx.targeting_key());
/// ```
///
/// Sealed: implemented for those two types only.
pub trait SdkContext: sealed::Sealed {
    /// The `targetingKey` as the key hash reads it: a string as it is, a
    /// number as JSON writes it (`42`, `1.5`); `None` for any other value
    /// or none.
    fn targeting_key(&self) -> Option<Cow<'_, str>>;

    /// Evaluates one flag of `engine`.
    #[doc(hidden)]
    fn evaluate_in(
        &self,
        engine: &dyn FlagEngine,
        flag: &str,
        expected: Option<FlagType>,
        now_ms: i64,
    ) -> Evaluation<'static>;

    /// Evaluates every flag of `engine`.
    #[doc(hidden)]
    fn evaluate_all_in(&self, engine: &dyn FlagEngine, now_ms: i64) -> Vec<Evaluation<'static>>;

    /// The context as JSON, for the attributes an exposure records.
    #[doc(hidden)]
    fn as_json(&self) -> Cow<'_, Value>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for serde_json::Value {}
    impl Sealed for bunting_core::Context<'_> {}
}

/// A JSON `targetingKey` value as the key hash reads it
/// ([`bunting_core::keyhash::KeyHasher::hash_value`]).
fn json_key(key: &Value) -> Option<Cow<'_, str>> {
    match key {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        _ => None,
    }
}

impl SdkContext for Value {
    fn targeting_key(&self) -> Option<Cow<'_, str>> {
        json_key(self.get("targetingKey")?)
    }

    fn evaluate_in(
        &self,
        engine: &dyn FlagEngine,
        flag: &str,
        expected: Option<FlagType>,
        now_ms: i64,
    ) -> Evaluation<'static> {
        engine.evaluate(flag, expected, self, now_ms)
    }

    fn evaluate_all_in(&self, engine: &dyn FlagEngine, now_ms: i64) -> Vec<Evaluation<'static>> {
        engine.evaluate_all(self, now_ms)
    }

    fn as_json(&self) -> Cow<'_, Value> {
        Cow::Borrowed(self)
    }
}

impl SdkContext for Context<'_> {
    fn targeting_key(&self) -> Option<Cow<'_, str>> {
        match self.get("targetingKey")? {
            Attr::Str(s) => Some(Cow::Borrowed(s)),
            Attr::Number(n) => Some(Cow::Owned(n.to_string())),
            Attr::Json(v) => json_key(v),
            Attr::Null | Attr::Bool(_) => None,
        }
    }

    fn evaluate_in(
        &self,
        engine: &dyn FlagEngine,
        flag: &str,
        expected: Option<FlagType>,
        now_ms: i64,
    ) -> Evaluation<'static> {
        engine.evaluate_context(flag, expected, self, now_ms)
    }

    fn evaluate_all_in(&self, engine: &dyn FlagEngine, now_ms: i64) -> Vec<Evaluation<'static>> {
        engine.evaluate_all_context(self, now_ms)
    }

    fn as_json(&self) -> Cow<'_, Value> {
        // `Context` has no public nested lookup: exposures read `geo` and
        // `device` from the JSON form, built once per client call.
        Cow::Owned(self.to_json())
    }
}
