//! `GET /healthz`: who sees what. Anyone (load balancers, uptime checks)
//! gets only `{"status": "ok"|"degraded"}`; the details (every environment's
//! snapshot version, load errors and problems, the ingest counters) need
//! `Authorization: Bearer <OPERATOR_SECRET>`. Without the secret configured
//! nobody sees them.
//!
//! ```
//! use bunting_edge_worker::health::{is_operator, visible};
//! use serde_json::json;
//! let full = json!({"status": "degraded", "environments": {"prod": {"lastError": "corrupt"}}});
//! assert_eq!(visible(full.clone(), false), json!({"status": "degraded"}));
//! assert_eq!(visible(full.clone(), true), full);
//! assert!(is_operator(Some("Bearer op-secret"), Some("op-secret")));
//! assert!(!is_operator(Some("Bearer op-secre"), Some("op-secret")));
//! ```

use bunting_wire::same_secret;
use serde_json::Value;

/// Whether the request's `Authorization` header carries the operator
/// secret (`Bearer <secret>`, compared in constant time). Always `false`
/// when no secret is configured (`None` or empty).
///
/// ```
/// use bunting_edge_worker::health::is_operator;
/// assert!(!is_operator(Some("Bearer "), Some("")));
/// assert!(!is_operator(None, Some("s")));
/// assert!(!is_operator(Some("Bearer s"), None));
/// assert!(is_operator(Some("bearer  s "), Some("s")));
/// ```
pub fn is_operator(authorization: Option<&str>, secret: Option<&str>) -> bool {
    let Some(secret) = secret.filter(|s| !s.is_empty()) else {
        return false;
    };
    crate::auth::sdk_key(authorization, None).is_some_and(|given| same_secret(given, secret))
}

/// What `/healthz` shows: everything to an operator, else only `status`.
pub fn visible(full: Value, operator: bool) -> Value {
    if operator {
        full
    } else {
        object(vec![(
            "status",
            full.get("status").cloned().unwrap_or(Value::Null),
        )])
    }
}

/// The JSON object of `fields`, as `json!` builds it (the map orders its
/// keys itself), with values already `Value`s: `json!` converts each
/// value with its own `serde_json::to_value` instantiation and inserts it
/// inline, which made `/healthz` ≈ 12 KB of the worker's wasm.
///
/// ```
/// use bunting_edge_worker::health::object;
/// use serde_json::{Value, json};
/// let built = object(vec![("b", Value::from(Some(2u64))), ("a", Value::from(None::<&str>))]);
/// assert_eq!(built, json!({"a": null, "b": 2}));
/// ```
pub fn object(fields: Vec<(&str, Value)>) -> Value {
    let mut map = serde_json::Map::new();
    for (key, value) in fields {
        map.insert(key.to_owned(), value);
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_status_without_the_secret() {
        let full = json!({"status": "ok", "environments": {}, "ingest": {"configured": false}});
        for auth in [None, Some("Bearer wrong"), Some("Basic b3A6c2VjcmV0")] {
            let shown = visible(full.clone(), is_operator(auth, Some("secret")));
            assert_eq!(shown, json!({"status": "ok"}), "{auth:?}");
        }
        let shown = visible(
            full.clone(),
            is_operator(Some("Bearer secret"), Some("secret")),
        );
        assert_eq!(shown, full);
    }
}
