//! OpenFeature evaluation context → the engine's JSON context.

use open_feature::{EvaluationContext, EvaluationContextFieldValue, StructValue};
use serde_json::{Map, Value};

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
