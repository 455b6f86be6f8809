//! The Cloudflare KV layout: the origin writes it, the edge worker reads it.
//!
//! | key | value |
//! |---|---|
//! | `snapshot:<env>` | the snapshot of environment `<env>`: its packed form carrying its JSON text, or the JSON text |
//! | `snapshot-tables:<env>` | the same packed snapshot without its JSON text (`bunting_core::packed::without_document`), beside a packed `snapshot:<env>` only |
//! | `sdk-key:<sha256 hex of the raw SDK key>` | `{"environment":"<env>","kind":"client"\|"server"}` ([`SdkKeyRecord`]) |
//!
//! Only hashes of SDK keys are stored: the edge hashes the key a client
//! presents ([`sdk_key_hash`]) and looks it up. Existing KV data depends on
//! these exact keys and hash: they must never change. Records written
//! before keys had a kind have no `kind` (`{"environment":"<env>"}`): they
//! still parse, and work wherever any key does (OFREP), but never where a
//! server key is required ([`SdkKeyRecord::is_server`]).
//!
//! ```
//! use bunting_wire::kv;
//! assert_eq!(kv::snapshot_key("production"), "snapshot:production");
//! assert_eq!(kv::tables_key("production"), "snapshot-tables:production");
//! let key = kv::sdk_key_key("abc");
//! assert_eq!(key, kv::sdk_key_key_for_hash(&kv::sdk_key_hash("abc")));
//! assert!(key.starts_with("sdk-key:ba7816bf"));
//! let value = kv::sdk_key_value("staging", kv::KeyKind::Server);
//! assert_eq!(kv::parse_sdk_key_value(&value).as_deref(), Some("staging"));
//! assert!(kv::parse_sdk_key_record(&value).unwrap().is_server());
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Prefix of the snapshot keys: `snapshot:<env>`.
pub const SNAPSHOT_PREFIX: &str = "snapshot:";
/// Prefix of the keys of packed snapshots' tables alone:
/// `snapshot-tables:<env>` ([`tables_key`]).
pub const TABLES_PREFIX: &str = "snapshot-tables:";
/// Prefix of the SDK-key keys: `sdk-key:<sha256 hex>`.
pub const SDK_KEY_PREFIX: &str = "sdk-key:";
/// The longest key Cloudflare Workers KV stores, in bytes (its documented
/// limit; the REST API answers 414 or 400 beyond it).
pub const MAX_KEY_BYTES: usize = 512;

/// The KV key of environment `env`'s snapshot.
///
/// ```
/// assert_eq!(bunting_wire::kv::snapshot_key("production"), "snapshot:production");
/// ```
pub fn snapshot_key(env: &str) -> String {
    format!("{SNAPSHOT_PREFIX}{env}")
}

/// The KV key of environment `env`'s packed snapshot without its JSON
/// text: what an edge worker checks every few seconds (tens of kilobytes
/// where the whole value is hundreds), reading `snapshot:<env>` only for
/// the text. The origin writes it after `snapshot:<env>` when that value is
/// packed, and deletes it otherwise, so a worker that finds none reads
/// `snapshot:<env>` as before. Readers other than the edge worker (server
/// SDKs, wasmtime hosts) never need it.
///
/// ```
/// assert_eq!(bunting_wire::kv::tables_key("production"), "snapshot-tables:production");
/// ```
pub fn tables_key(env: &str) -> String {
    format!("{TABLES_PREFIX}{env}")
}

/// Lowercase hex SHA-256 of a raw SDK key's UTF-8 bytes (64 characters):
/// what `printf %s "$KEY" | sha256sum` prints.
///
/// ```
/// assert_eq!(bunting_wire::kv::sdk_key_hash("abc"),
///     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
/// ```
pub fn sdk_key_hash(raw: &str) -> String {
    hex::encode(Sha256::digest(raw.as_bytes()))
}

/// The KV key registering a raw SDK key: `sdk-key:<sha256 hex>`.
pub fn sdk_key_key(raw: &str) -> String {
    sdk_key_key_for_hash(&sdk_key_hash(raw))
}

/// The KV key of an SDK key known by its [`sdk_key_hash`] only.
///
/// ```
/// assert_eq!(bunting_wire::kv::sdk_key_key_for_hash("ab"), "sdk-key:ab");
/// ```
pub fn sdk_key_key_for_hash(hash: &str) -> String {
    format!("{SDK_KEY_PREFIX}{hash}")
}

/// Which SDKs a key is for, as its KV record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// Browsers and mobile apps: the key is public. Evaluates through OFREP.
    Client,
    /// Server-side SDKs: the key is secret. Evaluates through OFREP and
    /// may also download the environment's whole snapshot.
    Server,
}

/// The value of an SDK key's KV entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SdkKeyRecord {
    /// The environment the key may read, as the edge names it
    /// (`<org>/<project>/<env>` when published by the origin service).
    pub environment: String,
    /// The key's kind; `None` in records written before keys had one
    /// (then omitted from the JSON, so such records read as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<KeyKind>,
}

impl SdkKeyRecord {
    /// Whether the record is explicitly a server key's: what reading a
    /// whole snapshot requires (a record without a kind is not).
    ///
    /// ```
    /// use bunting_wire::kv::parse_sdk_key_record;
    /// assert!(parse_sdk_key_record(r#"{"environment":"p","kind":"server"}"#).unwrap().is_server());
    /// assert!(!parse_sdk_key_record(r#"{"environment":"p","kind":"client"}"#).unwrap().is_server());
    /// assert!(!parse_sdk_key_record(r#"{"environment":"p"}"#).unwrap().is_server());
    /// ```
    pub fn is_server(&self) -> bool {
        self.kind == Some(KeyKind::Server)
    }
}

/// The KV value registering an SDK key of `kind` for `env`:
/// `{"environment":"<env>","kind":"<kind>"}`.
///
/// ```
/// use bunting_wire::kv::{sdk_key_value, KeyKind};
/// assert_eq!(sdk_key_value("staging", KeyKind::Client),
///     r#"{"environment":"staging","kind":"client"}"#);
/// ```
pub fn sdk_key_value(env: &str, kind: KeyKind) -> String {
    let record = SdkKeyRecord {
        environment: env.to_string(),
        kind: Some(kind),
    };
    serde_json::to_string(&record).expect("a struct of strings serializes")
}

/// An SDK key's KV value, if it is a valid record naming a non-empty
/// environment (and, if it has one, a known kind).
///
/// ```
/// use bunting_wire::kv::{parse_sdk_key_record, KeyKind};
/// let r = parse_sdk_key_record(r#"{"environment":"prod","kind":"client"}"#).unwrap();
/// assert_eq!((r.environment.as_str(), r.kind), ("prod", Some(KeyKind::Client)));
/// assert_eq!(parse_sdk_key_record(r#"{"environment":"prod"}"#).unwrap().kind, None);
/// assert_eq!(parse_sdk_key_record(r#"{"environment":"prod","kind":"admin"}"#), None);
/// assert_eq!(parse_sdk_key_record(r#"{"environment":""}"#), None);
/// ```
// Inline: compiled in the caller's crate, it shares that crate's copy of
// serde_json's parser (the edge worker's: ≈ 1 KB of its gzipped bundle).
#[inline]
pub fn parse_sdk_key_record(text: &str) -> Option<SdkKeyRecord> {
    // Read as a `Value`, then by hand, not with `SdkKeyRecord`'s
    // `Deserialize`: a typed read carries serde's "invalid type: floating
    // point …" error, and with it the float formatter, into the edge
    // worker's bundle (which parses `Value`s from bytes elsewhere, hence
    // `from_slice`). It accepts what the derived reader accepts (the
    // object, or serde's array form `[env]` / `[env, kind]`), except that
    // a repeated field is read as its last value instead of refused.
    let (environment, kind) = match serde_json::from_slice::<Value>(text.as_bytes()).ok()? {
        // Taken, not removed: `BTreeMap::remove` would link the tree's
        // rebalancing code into the worker too.
        Value::Object(mut fields) => (
            fields.get_mut("environment").map(Value::take)?,
            fields.get_mut("kind").map(Value::take),
        ),
        Value::Array(items) if matches!(items.len(), 1 | 2) => {
            let mut items = items.into_iter();
            (items.next()?, items.next())
        }
        _ => return None,
    };
    let Value::String(environment) = environment else {
        return None;
    };
    let kind = match kind {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) if k == "client" => Some(KeyKind::Client),
        Some(Value::String(k)) if k == "server" => Some(KeyKind::Server),
        Some(_) => return None,
    };
    (!environment.is_empty()).then_some(SdkKeyRecord { environment, kind })
}

/// The environment of an SDK key's KV value, if the value is a valid record
/// naming a non-empty environment ([`parse_sdk_key_record`]), whatever
/// its kind.
///
/// ```
/// use bunting_wire::kv::parse_sdk_key_value;
/// assert_eq!(parse_sdk_key_value(r#"{"environment":"prod"}"#).as_deref(), Some("prod"));
/// assert_eq!(parse_sdk_key_value(r#"{"environment":"prod","kind":"server"}"#).as_deref(), Some("prod"));
/// assert_eq!(parse_sdk_key_value(r#"{"environment":""}"#), None);
/// assert_eq!(parse_sdk_key_value("nope"), None);
/// ```
pub fn parse_sdk_key_value(text: &str) -> Option<String> {
    parse_sdk_key_record(text).map(|r| r.environment)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout as the published KV data has it: these strings must not
    /// change, or every SDK key and snapshot already in KV is lost.
    #[test]
    fn keys_are_todays_keys() {
        assert_eq!(snapshot_key("production"), "snapshot:production");
        assert_eq!(
            snapshot_key("acme/web/production"),
            "snapshot:acme/web/production"
        );
        assert_eq!(snapshot_key(""), "snapshot:");
        assert_eq!(
            sdk_key_key("demo-sdk-key"),
            format!("sdk-key:{}", sdk_key_hash("demo-sdk-key"))
        );
        assert_eq!(sdk_key_key_for_hash("00ff"), "sdk-key:00ff");
    }

    /// SHA-256 test vectors (FIPS 180-2), lowercase hex.
    #[test]
    fn the_hash_is_lowercase_hex_sha256() {
        assert_eq!(
            sdk_key_hash(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sdk_key_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            sdk_key_hash("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
        // UTF-8 bytes, not characters.
        assert_eq!(sdk_key_hash("é"), hex::encode(Sha256::digest("é")));
    }

    #[test]
    fn records_round_trip() {
        for env in ["prod", "acme/web/production", "quote\"d"] {
            for kind in [KeyKind::Client, KeyKind::Server] {
                let record = parse_sdk_key_record(&sdk_key_value(env, kind)).unwrap();
                assert_eq!(
                    (record.environment.as_str(), record.kind),
                    (env, Some(kind))
                );
            }
        }
        assert_eq!(
            sdk_key_value("acme/web/production", KeyKind::Server),
            r#"{"environment":"acme/web/production","kind":"server"}"#
        );
        // A record without a kind serializes as records always did.
        let legacy = SdkKeyRecord {
            environment: "acme/web/production".into(),
            kind: None,
        };
        assert_eq!(
            serde_json::to_string(&legacy).unwrap(),
            r#"{"environment":"acme/web/production"}"#
        );
        assert_eq!(
            parse_sdk_key_record(r#"{"environment":"p","kind":null}"#).map(|r| r.kind),
            Some(None)
        );
        assert_eq!(
            parse_sdk_key_record(r#"{"environment":"p","kind":"Server"}"#),
            None
        );
        assert_eq!(
            parse_sdk_key_value(r#"{"environment": "prod", "other": 1}"#).as_deref(),
            Some("prod")
        );
        assert_eq!(parse_sdk_key_value(r#"{"environment": 5}"#), None);
        assert_eq!(parse_sdk_key_value("{}"), None);
    }

    /// The hand-written reader accepts and reads exactly what the derived
    /// `Deserialize` does (repeated fields aside: see the function).
    #[test]
    fn the_reader_agrees_with_serde() {
        let derived = |text: &str| {
            serde_json::from_str::<SdkKeyRecord>(text)
                .ok()
                .filter(|r| !r.environment.is_empty())
        };
        let texts = [
            r#"{"environment":"prod","kind":"server"}"#,
            r#"{"environment":"prod","kind":"client"}"#,
            r#" { "kind" : "client" , "environment" : "a\"b\u00e9" } "#,
            r#"{"environment":"prod"}"#,
            r#"{"environment":"prod","kind":null}"#,
            r#"{"environment":"prod","kind":"admin"}"#,
            r#"{"environment":"prod","kind":"Server"}"#,
            r#"{"environment":"prod","kind":1}"#,
            r#"{"environment":"prod","kind":["server"]}"#,
            r#"{"environment":"prod","other":{"x":[1.5,-2e300]}}"#,
            r#"{"environment":""}"#,
            r#"{"environment":null}"#,
            r#"{"environment":1.5}"#,
            r#"{"environment":["prod"]}"#,
            r#"{"kind":"server"}"#,
            "{}",
            r#"["prod"]"#,
            r#"["prod","server"]"#,
            r#"["prod",null]"#,
            r#"["prod","server",1]"#,
            r#"["prod","admin"]"#,
            r#"[""]"#,
            "[]",
            r#""prod""#,
            "1.5",
            "null",
            "",
            r#"{"environment":"prod"} x"#,
            r#"{"environment":"prod""#,
            r#"{"environment":"prod",}"#,
        ];
        for text in texts {
            assert_eq!(parse_sdk_key_record(text), derived(text), "{text}");
        }
    }
}
