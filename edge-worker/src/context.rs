//! Building the evaluation context: the client's attributes plus what the
//! edge knows for sure.
//!
//! The Worker evaluates flags against the context the client sends, enriched
//! with two attributes the client cannot be trusted to report:
//!
//! * `geo`: from Cloudflare's `request.cf` ([`crate::geo::geo_from_cf`]);
//! * `device`: from the `User-Agent` ([`crate::device::Device::to_json`]).
//!
//! [`with_edge_attributes`] **replaces** whatever the client sent under those
//! two keys, so a rule like `geo.country == "FR"` cannot be satisfied by a
//! client claiming to be in France. [`ensure_targeting_key`] gives anonymous
//! visitors a stable `targetingKey` from the anonymous-id cookie.
//!
//! ```
//! use bunting_edge_worker::context::{ensure_targeting_key, with_edge_attributes, TargetingKeySource};
//! use serde_json::json;
//! let client = json!({"plan": "pro", "geo": {"country": "FR"}}); // a spoof attempt
//! let mut ctx = with_edge_attributes(client, json!({"country": "US"}), json!({"type": "mobile"}));
//! assert_eq!(ctx, json!({"plan": "pro", "geo": {"country": "US"}, "device": {"type": "mobile"}}));
//!
//! let src = ensure_targeting_key(&mut ctx, Some("0f1e2d3c4b5a69788796a5b4c3d2e1f0"));
//! assert_eq!(src, Some(TargetingKeySource::Anonymous));
//! assert_eq!(ctx["targetingKey"], "0f1e2d3c4b5a69788796a5b4c3d2e1f0");
//! ```

use serde_json::Value;

/// The fields of Cloudflare's `request.cf` that
/// [`crate::geo::geo_from_cf`] reads: the worker copies only these out of
/// the runtime's object.
pub const CF_GEO_FIELDS: &[&str] = &[
    "country",
    "region",
    "regionCode",
    "city",
    "continent",
    "postalCode",
    "timezone",
    "colo",
    "asn",
    "latitude",
    "longitude",
    "isEUCountry",
];

/// A JavaScript number as `JSON.stringify` and a JSON parse would give it:
/// an integer when it is whole and exactly representable, `null` when not
/// finite, else a float.
///
/// ```
/// use bunting_edge_worker::context::json_number;
/// use serde_json::json;
/// assert_eq!(json_number(3215.0), json!(3215));
/// assert_eq!(json_number(-2.5), json!(-2.5));
/// assert_eq!(json_number(f64::NAN), json!(null));
/// ```
pub fn json_number(f: f64) -> Value {
    /// 2^53: integers beyond it are not all exact in a JavaScript number.
    const SAFE: f64 = 9_007_199_254_740_992.0;
    if !f.is_finite() {
        Value::Null
    } else if f.fract() == 0.0 && f.abs() < SAFE {
        Value::from(f as i64)
    } else {
        serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

/// Context key under which the edge sets the geolocation object.
pub const GEO_KEY: &str = "geo";
/// Context key under which the edge sets the device object.
pub const DEVICE_KEY: &str = "device";
/// The OpenFeature targeting key attribute.
pub const TARGETING_KEY: &str = "targetingKey";

/// Sets `geo` and `device` on the client's context object, replacing any
/// values the client sent under those names (a client cannot spoof its
/// country or device). Both are set even when empty (`{}`), so a client value
/// never survives.
///
/// A context that is not a JSON object is returned unchanged: the engine then
/// reports `INVALID_CONTEXT` for it, which is the honest answer.
///
/// ```
/// use bunting_edge_worker::context::with_edge_attributes;
/// use serde_json::json;
/// let ctx = with_edge_attributes(json!({"targetingKey": "u1"}), json!({}), json!({"type": "bot"}));
/// assert_eq!(ctx, json!({"targetingKey": "u1", "geo": {}, "device": {"type": "bot"}}));
/// // Not an object: untouched.
/// assert_eq!(with_edge_attributes(json!([1]), json!({}), json!({})), json!([1]));
/// ```
pub fn with_edge_attributes(client: Value, geo: Value, device: Value) -> Value {
    match client {
        Value::Object(mut map) => {
            map.insert(GEO_KEY.into(), geo);
            map.insert(DEVICE_KEY.into(), device);
            Value::Object(map)
        }
        other => other,
    }
}

/// Which of the edge's attributes a context gets: the ones the snapshot's
/// conditions or bucketing read ([`bunting_core::Engine::reads_attribute`]).
/// Building `geo` (from `request.cf`) and `device` (parsing the
/// `User-Agent`) is a fair part of a single-flag request; a snapshot that
/// reads neither pays for neither, and its bulk answers are cached per
/// user rather than per user, place and device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeNeeds {
    /// `geo` is read.
    pub geo: bool,
    /// `device` is read.
    pub device: bool,
}

impl EdgeNeeds {
    /// Both attributes: what an exposure records (its country and device
    /// type), whatever the snapshot reads.
    pub const ALL: EdgeNeeds = EdgeNeeds {
        geo: true,
        device: true,
    };

    /// What `engine`'s snapshot reads.
    ///
    /// ```
    /// use bunting_edge_worker::context::EdgeNeeds;
    /// let engine = bunting_core::Engine::from_json(r#"{"schemaVersion": 1, "environment": "prod",
    ///   "version": 1, "generatedAt": "2026-12-06T00:00:00Z", "flags": [{"key": "f",
    ///   "type": "boolean", "variants": {"on": true, "off": false}, "offVariant": "off",
    ///   "rules": [{"id": "r", "condition": "device.type == \"mobile\"", "serve": {"variant": "on"}}],
    ///   "fallthrough": {"variant": "off"}}]}"#).unwrap();
    /// assert_eq!(EdgeNeeds::of(&engine), EdgeNeeds { geo: false, device: true });
    /// ```
    pub fn of(engine: &bunting_core::Engine) -> Self {
        EdgeNeeds {
            geo: engine.reads_attribute(GEO_KEY),
            device: engine.reads_attribute(DEVICE_KEY),
        }
    }

    /// Whether both are built.
    pub fn all(self) -> bool {
        self == Self::ALL
    }
}

/// [`with_edge_attributes`] for the attributes `needs` names, each built
/// only then; a client's value under a name not needed is removed (no
/// evaluation reads it, and the context stays the same for the answer
/// cache wherever the client says it is).
///
/// ```
/// use bunting_edge_worker::context::{with_needed_edge_attributes, EdgeNeeds};
/// use serde_json::json;
/// let client = json!({"targetingKey": "u1", "geo": {"country": "FR"}, "device": "spoof"});
/// let needs = EdgeNeeds { geo: true, device: false };
/// let ctx = with_needed_edge_attributes(client, needs, || json!({"country": "US"}),
///     || unreachable!("device is not needed"));
/// assert_eq!(ctx, json!({"targetingKey": "u1", "geo": {"country": "US"}}));
/// ```
pub fn with_needed_edge_attributes(
    client: Value,
    needs: EdgeNeeds,
    geo: impl FnOnce() -> Value,
    device: impl FnOnce() -> Value,
) -> Value {
    match client {
        Value::Object(mut map) => {
            for (name, needed, value) in [
                (GEO_KEY, needs.geo, needs.geo.then(geo)),
                (DEVICE_KEY, needs.device, needs.device.then(device)),
            ] {
                match value {
                    Some(v) if needed => {
                        map.insert(name.into(), v);
                    }
                    _ => remove_key(&mut map, name),
                }
            }
            Value::Object(map)
        }
        other => other,
    }
}

/// Where the context's `targetingKey` came from, as reported by
/// [`ensure_targeting_key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetingKeySource {
    /// The client sent a non-empty string `targetingKey`; it was kept.
    Client,
    /// The client sent none (or `null`, or `""`); the anonymous id was used.
    /// The caller should make sure the anonymous-id cookie is (re)set so the
    /// visitor keeps the same key, and therefore the same buckets.
    Anonymous,
}

/// Gives the context a `targetingKey` when it lacks one.
///
/// * A non-empty string `targetingKey` is the client's and is kept:
///   `Some(Client)`.
/// * A missing, `null` or empty-string `targetingKey` is replaced by
///   `anon_id` when one is available: `Some(Anonymous)`. (An empty key would
///   put every anonymous visitor in the same bucket.)
/// * Otherwise nothing changes and the result is `None`: no anonymous id, a
///   `targetingKey` of another type (a number, an object: left for the engine
///   to report as `INVALID_CONTEXT`, rather than silently overridden), or a
///   context that is not an object.
///
/// `anon_id` is expected to be validated already (e.g. by
/// [`crate::cookie::is_anonymous_id`]); an empty `anon_id` counts as none.
///
/// ```
/// use bunting_edge_worker::context::{ensure_targeting_key, TargetingKeySource};
/// use serde_json::json;
/// let mut ctx = json!({"targetingKey": "user-42"});
/// assert_eq!(ensure_targeting_key(&mut ctx, Some("ab12")), Some(TargetingKeySource::Client));
/// assert_eq!(ctx["targetingKey"], "user-42");
///
/// let mut ctx = json!({"plan": "free"});
/// assert_eq!(ensure_targeting_key(&mut ctx, None), None);
/// assert_eq!(ctx, json!({"plan": "free"}));
/// ```
pub fn ensure_targeting_key(ctx: &mut Value, anon_id: Option<&str>) -> Option<TargetingKeySource> {
    let Value::Object(map) = ctx else {
        return None;
    };
    match map.get(TARGETING_KEY) {
        Some(Value::String(s)) if !s.is_empty() => return Some(TargetingKeySource::Client),
        None | Some(Value::Null) => {}
        Some(Value::String(_)) => {} // empty
        Some(_) => return None,
    }
    let anon = anon_id.filter(|a| !a.is_empty())?;
    map.insert(TARGETING_KEY.into(), Value::from(anon));
    Some(TargetingKeySource::Anonymous)
}

/// Whether the context is an object without a usable `targetingKey`
/// (missing, `null` or `""`): it needs the anonymous id.
///
/// ```
/// use bunting_edge_worker::context::needs_anonymous_key;
/// use serde_json::json;
/// assert!(needs_anonymous_key(&json!({"targetingKey": ""})));
/// assert!(!needs_anonymous_key(&json!({"targetingKey": "u1"})));
/// assert!(!needs_anonymous_key(&json!({"targetingKey": 7}))); // INVALID_CONTEXT, not ours to fix
/// assert!(!needs_anonymous_key(&json!([1])));
/// ```
pub fn needs_anonymous_key(ctx: &Value) -> bool {
    match ctx.get(TARGETING_KEY) {
        None | Some(Value::Null) => ctx.is_object(),
        Some(Value::String(s)) => s.is_empty(),
        Some(_) => false,
    }
}

/// Removes a `targetingKey` that is `""` or `null`: it is no key. Left in,
/// `""` would put every caller without a key in one shared bucket; removed,
/// the engine answers `TARGETING_KEY_MISSING` for the flags that bucket by
/// it, and evaluates the others normally.
///
/// ```
/// use bunting_edge_worker::context::drop_empty_targeting_key;
/// use serde_json::json;
/// let mut ctx = json!({"targetingKey": "", "plan": "pro"});
/// drop_empty_targeting_key(&mut ctx);
/// assert_eq!(ctx, json!({"plan": "pro"}));
/// let mut ctx = json!({"targetingKey": "u1"});
/// drop_empty_targeting_key(&mut ctx);
/// assert_eq!(ctx, json!({"targetingKey": "u1"}));
/// ```
pub fn drop_empty_targeting_key(ctx: &mut Value) {
    let Value::Object(map) = ctx else {
        return;
    };
    let empty = match map.get(TARGETING_KEY) {
        Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        _ => false,
    };
    if empty {
        remove_key(map, TARGETING_KEY);
    }
}

/// Removes `key` from `map`, if there, by rebuilding the map without it.
///
/// `BTreeMap::remove` (serde_json's map) links the tree's rebalancing
/// code, ≈ 5 KB of the edge worker's module, for a removal that is rare
/// here (a client's value under an edge attribute's name, an empty
/// `targetingKey`) from a map of a few entries; rebuilding it uses only
/// the insertion and iteration every map already needs.
pub fn remove_key(map: &mut serde_json::Map<String, Value>, key: &str) {
    if !map.contains_key(key) {
        return;
    }
    for (k, v) in std::mem::take(map) {
        if k != key {
            map.insert(k, v);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_cf_fields_read_are_all_that_geolocation_uses() {
        use crate::geo::geo_from_cf;
        let cf = serde_json::json!({
            "country": "FR", "region": "Ile-de-France", "regionCode": "IDF", "city": "Paris",
            "continent": "EU", "postalCode": "75001", "timezone": "Europe/Paris", "colo": "CDG",
            "asn": 3215, "latitude": "48.85660", "longitude": "2.35220", "isEUCountry": "1",
            "tlsVersion": "TLSv1.3", "httpProtocol": "HTTP/2", "botManagement": {"score": 99},
            "clientTcpRtt": 12, "asOrganization": "Orange"
        });
        let picked: serde_json::Map<String, Value> = cf
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| CF_GEO_FIELDS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(picked.len(), CF_GEO_FIELDS.len());
        let full = geo_from_cf(&cf);
        assert_eq!(geo_from_cf(&Value::Object(picked)), full);
        // Every field the table of geo.rs lists made it into the output.
        assert_eq!(full.as_object().unwrap().len(), CF_GEO_FIELDS.len());
    }

    use super::*;
    use serde_json::json;

    #[test]
    fn edge_attributes_replace_client_values() {
        let client = json!({
            "targetingKey": "u1",
            "geo": {"country": "FR", "isEU": true},
            "device": "iPhone",
            "nested": {"geo": "kept: only top-level keys are reserved"}
        });
        let geo = json!({"country": "US", "isEU": false});
        let device = json!({"type": "desktop", "os": "Linux"});
        assert_eq!(
            with_edge_attributes(client, geo, device),
            json!({
                "targetingKey": "u1",
                "geo": {"country": "US", "isEU": false},
                "device": {"type": "desktop", "os": "Linux"},
                "nested": {"geo": "kept: only top-level keys are reserved"}
            })
        );
    }

    #[test]
    fn only_needed_edge_attributes_are_built() {
        let client = || json!({"targetingKey": "u1", "geo": {"country": "FR"}, "device": "iPhone"});
        let geo = || json!({"country": "US"});
        let device = || json!({"type": "desktop"});
        let cases = [
            (
                EdgeNeeds::ALL,
                json!({"targetingKey": "u1", "geo": {"country": "US"}, "device": {"type": "desktop"}}),
            ),
            (
                EdgeNeeds {
                    geo: false,
                    device: true,
                },
                json!({"targetingKey": "u1", "device": {"type": "desktop"}}),
            ),
            (
                EdgeNeeds {
                    geo: false,
                    device: false,
                },
                json!({"targetingKey": "u1"}),
            ),
        ];
        for (needs, want) in cases {
            assert_eq!(
                with_needed_edge_attributes(client(), needs, geo, device),
                want
            );
        }
        // All needed: the same as replacing both.
        assert_eq!(
            with_needed_edge_attributes(client(), EdgeNeeds::ALL, geo, device),
            with_edge_attributes(client(), geo(), device())
        );
        // Not an object: untouched, nothing built.
        assert_eq!(
            with_needed_edge_attributes(
                json!([1]),
                EdgeNeeds::ALL,
                || unreachable!(),
                || { unreachable!() }
            ),
            json!([1])
        );
    }

    #[test]
    fn empty_edge_attributes_still_replace() {
        let ctx = with_edge_attributes(json!({"geo": {"country": "FR"}}), json!({}), json!({}));
        assert_eq!(ctx, json!({"geo": {}, "device": {}}));
    }

    #[test]
    fn non_object_contexts_are_returned_unchanged() {
        for v in [
            json!(null),
            json!("ctx"),
            json!(3),
            json!(true),
            json!([{"geo": 1}]),
        ] {
            assert_eq!(
                with_edge_attributes(v.clone(), json!({"country": "US"}), json!({})),
                v
            );
        }
    }

    #[test]
    fn targeting_key_rules() {
        let anon = Some("00112233445566778899aabbccddeeff");
        let cases = [
            (
                json!({}),
                Some(TargetingKeySource::Anonymous),
                json!({"targetingKey": anon}),
            ),
            (
                json!({"targetingKey": null}),
                Some(TargetingKeySource::Anonymous),
                json!({"targetingKey": anon}),
            ),
            (
                json!({"targetingKey": ""}),
                Some(TargetingKeySource::Anonymous),
                json!({"targetingKey": anon}),
            ),
            (
                json!({"targetingKey": "u"}),
                Some(TargetingKeySource::Client),
                json!({"targetingKey": "u"}),
            ),
            (json!({"targetingKey": 7}), None, json!({"targetingKey": 7})),
            (
                json!({"targetingKey": {}}),
                None,
                json!({"targetingKey": {}}),
            ),
            (json!([1]), None, json!([1])),
            (json!(null), None, json!(null)),
        ];
        for (mut ctx, want, after) in cases {
            let before = ctx.clone();
            assert_eq!(ensure_targeting_key(&mut ctx, anon), want, "{before}");
            assert_eq!(ctx, after, "{before}");
        }
    }

    #[test]
    fn no_anonymous_id_changes_nothing() {
        for anon in [None, Some("")] {
            let mut ctx = json!({"targetingKey": null});
            assert_eq!(ensure_targeting_key(&mut ctx, anon), None);
            assert_eq!(ctx, json!({"targetingKey": null}));
        }
        let mut ctx = json!({"targetingKey": "u"});
        assert_eq!(
            ensure_targeting_key(&mut ctx, None),
            Some(TargetingKeySource::Client)
        );
    }
}
