//! Geolocation attributes from Cloudflare's `request.cf` object.
//!
//! Cloudflare attaches an `IncomingRequestCfProperties` object to every
//! request. [`geo_from_cf`] picks the location fields out of it and normalises
//! their types for targeting rules:
//!
//! | output | from `cf` | type |
//! |---|---|---|
//! | `country` | `country` (ISO 3166-1 alpha-2; `XX` unknown, `T1` Tor) | string |
//! | `region` | `region` | string |
//! | `regionCode` | `regionCode` (ISO 3166-2 subdivision) | string |
//! | `city` | `city` | string |
//! | `continent` | `continent` (`EU`, `NA`, ...) | string |
//! | `postalCode` | `postalCode` | string |
//! | `timezone` | `timezone` (IANA, e.g. `Europe/Paris`) | string |
//! | `asn` | `asn` | number |
//! | `colo` | `colo` (IATA code of the data center) | string |
//! | `latitude` | `latitude` (a string in `cf`) | number |
//! | `longitude` | `longitude` (a string in `cf`) | number |
//! | `isEU` | `isEUCountry` (`"1"` when in the EU) | bool |
//!
//! Missing, empty or ill-typed fields are omitted; nothing here panics.
//! `isEU` is `true` when `isEUCountry` is `"1"` (or `1`/`true`), `false` when it
//! is `"0"` (or `0`/`false`), and — because Cloudflare only sets the field for
//! EU countries — also `false` when it is absent but `country` is known.
//!
//! ```
//! use bunting_edge_worker::geo::geo_from_cf;
//! use serde_json::json;
//! let cf = json!({"country": "FR", "city": "Paris", "asn": 3215, "latitude": "48.85660",
//!                 "longitude": "2.35220", "isEUCountry": "1", "colo": "CDG",
//!                 "tlsVersion": "TLSv1.3"});
//! assert_eq!(geo_from_cf(&cf), json!({"country": "FR", "city": "Paris", "asn": 3215,
//!     "latitude": 48.8566, "longitude": 2.3522, "isEU": true, "colo": "CDG"}));
//! assert_eq!(geo_from_cf(&json!(null)), json!({}));
//! ```

use bunting_core::rules::ast::parse_f64;
use serde_json::{Map, Number, Value};

/// String fields copied as they are: (key in `cf`, key in the output).
const STRING_FIELDS: &[(&str, &str)] = &[
    ("country", "country"),
    ("region", "region"),
    ("regionCode", "regionCode"),
    ("city", "city"),
    ("continent", "continent"),
    ("postalCode", "postalCode"),
    ("timezone", "timezone"),
    ("colo", "colo"),
];

/// Longest string value copied, in bytes; longer ones are dropped.
const MAX_STRING_LEN: usize = 256;

/// Maps Cloudflare's `request.cf` to the `geo` object of an evaluation
/// context (see the module docs for the fields). A non-object `cf` (e.g.
/// `null` under a local dev server) gives `{}`.
///
/// ```
/// use bunting_edge_worker::geo::geo_from_cf;
/// use serde_json::json;
/// // cf from a US request: no isEUCountry, so isEU is false.
/// let geo = geo_from_cf(&json!({"country": "US", "regionCode": "CA", "asn": "13335",
///                                "latitude": "not a number"}));
/// assert_eq!(geo, json!({"country": "US", "regionCode": "CA", "asn": 13335, "isEU": false}));
/// ```
pub fn geo_from_cf(cf: &Value) -> Value {
    let mut out = Map::new();
    let Value::Object(cf) = cf else {
        return Value::Object(out);
    };
    for &(from, to) in STRING_FIELDS {
        if let Some(s) = cf.get(from).and_then(string_field) {
            out.insert(to.into(), Value::from(s));
        }
    }
    if let Some(asn) = cf.get("asn").and_then(asn_field) {
        out.insert("asn".into(), Value::from(asn));
    }
    for (key, limit) in [("latitude", 90.0), ("longitude", 180.0)] {
        if let Some(n) = cf.get(key).and_then(|v| coordinate(v, limit)) {
            out.insert(key.into(), Value::Number(n));
        }
    }
    let is_eu = match cf.get("isEUCountry") {
        Some(v) => flag_field(v),
        None => None,
    }
    .or_else(|| out.contains_key("country").then_some(false));
    if let Some(b) = is_eu {
        out.insert("isEU".into(), Value::Bool(b));
    }
    Value::Object(out)
}

/// A non-empty, reasonably short string (trimmed).
fn string_field(v: &Value) -> Option<&str> {
    let s = v.as_str()?.trim();
    (!s.is_empty() && s.len() <= MAX_STRING_LEN).then_some(s)
}

/// An AS number: a non-negative integer, or a string holding one.
fn asn_field(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            let f = n.as_f64()?;
            (f.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&f)).then_some(f as u64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A finite coordinate within `±limit`, from a number or a numeric string.
fn coordinate(v: &Value, limit: f64) -> Option<Number> {
    let f = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => parse_f64(s.trim())?,
        _ => return None,
    };
    if !f.is_finite() || f.abs() > limit {
        return None;
    }
    Number::from_f64(f)
}

/// `"1"`/`1`/`true` → true, `"0"`/`0`/`false` → false, anything else unknown.
fn flag_field(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim() {
            "1" | "true" => Some(true),
            "0" | "false" => Some(false),
            _ => None,
        },
        Value::Number(n) => match n.as_f64() {
            Some(1.0) => Some(true),
            Some(0.0) => Some(false),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn full_cf_object() {
        // Shape of a real `request.cf` (values abridged).
        let cf = json!({
            "asn": 3215,
            "asOrganization": "Orange",
            "botManagement": {"score": 99},
            "city": "Paris",
            "clientTcpRtt": 12,
            "colo": "CDG",
            "continent": "EU",
            "country": "FR",
            "httpProtocol": "HTTP/2",
            "isEUCountry": "1",
            "latitude": "48.85660",
            "longitude": "2.35220",
            "metroCode": "0",
            "postalCode": "75001",
            "region": "Île-de-France",
            "regionCode": "IDF",
            "requestPriority": "weight=256;exclusive=1",
            "timezone": "Europe/Paris",
            "tlsCipher": "AEAD-AES128-GCM-SHA256",
            "tlsVersion": "TLSv1.3"
        });
        assert_eq!(
            geo_from_cf(&cf),
            json!({
                "country": "FR",
                "region": "Île-de-France",
                "regionCode": "IDF",
                "city": "Paris",
                "continent": "EU",
                "postalCode": "75001",
                "timezone": "Europe/Paris",
                "asn": 3215,
                "colo": "CDG",
                "latitude": 48.8566,
                "longitude": 2.3522,
                "isEU": true
            })
        );
    }

    #[test]
    fn non_objects_give_an_empty_object() {
        for cf in [
            json!(null),
            json!("cf"),
            json!(1),
            json!([{"country": "FR"}]),
        ] {
            assert_eq!(geo_from_cf(&cf), json!({}));
        }
        assert_eq!(geo_from_cf(&json!({})), json!({}));
    }

    #[test]
    fn odd_types_are_omitted_not_panicked_on() {
        let cf = json!({
            "country": 33,
            "city": {"name": "Paris"},
            "region": ["x"],
            "continent": null,
            "postalCode": "",
            "timezone": "   ",
            "colo": true,
            "asn": "AS3215",
            "latitude": [48.8],
            "longitude": {"v": 2.3},
            "isEUCountry": "yes"
        });
        assert_eq!(geo_from_cf(&cf), json!({}));
    }

    #[test]
    fn numbers_and_strings_are_both_accepted_where_sensible() {
        let cf = json!({"asn": "13335", "latitude": 37.7, "longitude": "-122.4",
                        "isEUCountry": 0});
        assert_eq!(
            geo_from_cf(&cf),
            json!({"asn": 13335, "latitude": 37.7, "longitude": -122.4, "isEU": false})
        );
        assert_eq!(geo_from_cf(&json!({"asn": 64512.0})), json!({"asn": 64512}));
        assert_eq!(geo_from_cf(&json!({"asn": -1})), json!({}));
        assert_eq!(geo_from_cf(&json!({"asn": 1.5})), json!({}));
        assert_eq!(
            geo_from_cf(&json!({"isEUCountry": true})),
            json!({"isEU": true})
        );
    }

    #[test]
    fn coordinates_out_of_range_or_not_finite_are_dropped() {
        let cf = json!({"latitude": "91", "longitude": "-180.5"});
        assert_eq!(geo_from_cf(&cf), json!({}));
        let cf = json!({"latitude": "NaN", "longitude": "inf"});
        assert_eq!(geo_from_cf(&cf), json!({}));
        let cf = json!({"latitude": "-90", "longitude": "180"});
        assert_eq!(
            geo_from_cf(&cf),
            json!({"latitude": -90.0, "longitude": 180.0})
        );
    }

    #[test]
    fn is_eu_defaults_to_false_only_when_the_country_is_known() {
        assert_eq!(
            geo_from_cf(&json!({"country": "US"})),
            json!({"country": "US", "isEU": false})
        );
        assert_eq!(
            geo_from_cf(&json!({"city": "Austin"})),
            json!({"city": "Austin"})
        );
        assert_eq!(
            geo_from_cf(&json!({"country": "DE", "isEUCountry": "1"})),
            json!({"country": "DE", "isEU": true})
        );
    }

    #[test]
    fn strings_are_trimmed_and_bounded() {
        assert_eq!(
            geo_from_cf(&json!({"city": "  Lyon "})),
            json!({"city": "Lyon"})
        );
        let long = "x".repeat(MAX_STRING_LEN + 1);
        assert_eq!(geo_from_cf(&json!({"city": long})), json!({}));
    }
}
