//! Client-safe keys: what each kind of SDK key may see of a snapshot.
//!
//! A **client** key (kind `client`, or a KV record written before keys had
//! a kind) ships in browsers and mobile apps, so anyone can read it. It sees
//! only flags marked `clientSide: true`, and of those only what an
//! application needs to use the value:
//!
//! - a flag it may not see answers exactly as a flag the snapshot does not
//!   have ([`Evaluation::not_found`]): same status, body and headers, so
//!   probing keys reveals nothing; a bulk evaluation leaves it out;
//! - no rule ids, no failed prerequisite (another flag's key) and no flag
//!   metadata (description, owner, tags);
//! - error details in fixed words per error code, since the engine's
//!   messages may name prerequisites or bucketing attributes.
//!
//! A **server** key sees every flag with every detail. Since a bulk
//! response's `ETag` is a hash of the body a key kind receives, a client
//! key's `ETag` only changes when what it sees changes, and can never
//! match (and so confirm) a body with flags it may not see.
//!
//! ```
//! use bunting_core::Engine;
//! use bunting_edge_worker::audience::Audience;
//! use serde_json::json;
//! let engine = Engine::from_json(r#"{"schemaVersion": 1, "environment": "t", "version": 1,
//!   "generatedAt": "2026-11-25T00:00:00Z", "flags": [
//!   {"key": "banner", "type": "boolean", "variants": {"on": true}, "offVariant": "on",
//!    "fallthrough": {"variant": "on"}, "clientSide": true},
//!   {"key": "internal", "type": "boolean", "variants": {"on": true}, "offVariant": "on",
//!    "fallthrough": {"variant": "on"}}]}"#).unwrap();
//! let ctx = json!({"targetingKey": "u1"});
//! let keys = |a: Audience| -> Vec<String> {
//!     a.evaluate_all(&engine, &ctx, 0).iter().map(|e| e.key.to_string()).collect()
//! };
//! assert_eq!(keys(Audience::Client), ["banner"]);
//! assert_eq!(keys(Audience::Server), ["banner", "internal"]);
//! let hidden = Audience::Client.evaluate(&engine, "internal", None, &ctx, 0);
//! assert_eq!(hidden, bunting_core::Evaluation::not_found("internal"));
//! assert_eq!(engine.evaluate("internal", &ctx, 0).value.as_deref(), Some(&json!(true)));
//! ```

use bunting_core::{Engine, ErrorCode, Evaluation, FlagType};
use bunting_wire::kv::SdkKeyRecord;
use serde_json::Value;

/// Who holds an SDK key, for what it may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Audience {
    /// A server key: every flag, every detail.
    Server,
    /// A client key (or a record without a kind): client-side flags only,
    /// without rules or metadata.
    Client,
}

impl Audience {
    /// The audience of a key's KV record: only an explicit server key is a
    /// server's; a record without a kind is a client's.
    ///
    /// ```
    /// use bunting_edge_worker::audience::Audience;
    /// use bunting_wire::kv::parse_sdk_key_record;
    /// let of = |json: &str| Audience::of(&parse_sdk_key_record(json).unwrap());
    /// assert_eq!(of(r#"{"environment":"p","kind":"server"}"#), Audience::Server);
    /// assert_eq!(of(r#"{"environment":"p","kind":"client"}"#), Audience::Client);
    /// assert_eq!(of(r#"{"environment":"p"}"#), Audience::Client);
    /// ```
    pub fn of(record: &SdkKeyRecord) -> Audience {
        if record.is_server() {
            Audience::Server
        } else {
            Audience::Client
        }
    }

    /// Whether this audience may see flag `key` of `engine` (unknown keys:
    /// no).
    pub fn sees(self, engine: &Engine, key: &str) -> bool {
        match self {
            Audience::Server => true,
            Audience::Client => engine.is_client_side(key),
        }
    }

    /// Evaluates flag `key` as this audience may see it: a flag it may not
    /// see is not found.
    pub fn evaluate<'a>(
        self,
        engine: &'a Engine,
        key: &str,
        expected: Option<FlagType>,
        context: &Value,
        now_ms: i64,
    ) -> Evaluation<'a> {
        if !self.sees(engine, key) {
            return Evaluation::not_found(key);
        }
        self.redact(engine.evaluate_typed(key, expected, context, now_ms))
    }

    /// Evaluates every flag this audience may see, in snapshot order.
    pub fn evaluate_all<'a>(
        self,
        engine: &'a Engine,
        context: &Value,
        now_ms: i64,
    ) -> Vec<Evaluation<'a>> {
        match self {
            Audience::Server => engine.evaluate_all(context, now_ms),
            // Only the flags a client sees are evaluated (hidden ones only
            // as their prerequisites).
            Audience::Client => engine
                .evaluate_client_side(context, now_ms)
                .into_iter()
                .map(|e| self.redact(e))
                .collect(),
        }
    }

    /// An evaluation without what this audience may not read: for clients,
    /// no rule id, failed prerequisite or metadata, and error details in
    /// fixed words ([`client_error_details`]).
    pub fn redact(self, e: Evaluation<'_>) -> Evaluation<'_> {
        match self {
            Audience::Server => e,
            Audience::Client => {
                let error_message = match e.error_code {
                    Some(ErrorCode::FlagNotFound) | Some(ErrorCode::TypeMismatch) | None => {
                        e.error_message
                    }
                    Some(code) => Some(client_error_details(code).to_string()),
                };
                Evaluation {
                    rule_id: None,
                    prerequisite_failed: None,
                    metadata: None,
                    error_message,
                    ..e
                }
            }
        }
    }
}

/// The error details a client key gets for `code`: the engine's own
/// messages can name a prerequisite flag or a bucketing attribute.
/// (`FLAG_NOT_FOUND` and `TYPE_MISMATCH` keep theirs: they name only the
/// flag asked for and its type.)
pub fn client_error_details(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::TargetingKeyMissing => {
            "the flag needs a targeting key (or its bucketing attribute) in the context"
        }
        ErrorCode::InvalidContext => {
            "the context is not valid for this flag: it must be a JSON object whose \
             targetingKey (and bucketing attribute) is a string"
        }
        ErrorCode::ParseError | ErrorCode::General | ErrorCode::FlagNotFound => {
            "the flag cannot be evaluated"
        }
        ErrorCode::TypeMismatch => "the flag is of another type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ofrep::{NumberForms, bulk, etag};
    use serde_json::json;

    /// `ofrep::single` with its body as a `Value`.
    fn single(e: &Evaluation<'_>, numbers: &NumberForms) -> (u16, Value) {
        let (status, body) = crate::ofrep::single(e, numbers);
        (status, serde_json::to_value(body).unwrap())
    }

    /// `shown` is client-side and depends on the hidden `gate`; `split`
    /// is client-side and buckets; `secret` is server-only.
    const SNAPSHOT: &str = r#"{"schemaVersion": 1, "environment": "t", "version": 1,
      "generatedAt": "2026-11-25T00:00:00Z",
      "segments": [{"key": "staff", "included": ["u-staff"]}],
      "flags": [
        {"key": "gate", "type": "boolean", "variants": {"on": true, "off": false}, "offVariant": "off",
         "rules": [{"id": "staff-only", "condition": "segment(\"staff\")", "serve": {"variant": "on"}}],
         "fallthrough": {"variant": "off"}},
        {"key": "shown", "type": "string", "variants": {"new": "new", "old": "old"}, "offVariant": "old",
         "prerequisites": [{"flag": "gate", "variant": "on"}],
         "rules": [{"id": "beta-users", "condition": "beta == true", "serve": {"variant": "new"}}],
         "fallthrough": {"variant": "old"}, "clientSide": true,
         "metadata": {"description": "internal notes", "owner": "growth", "tags": ["q4"]}},
        {"key": "split", "type": "string", "variants": {"a": "a", "b": "b"}, "offVariant": "a",
         "fallthrough": {"rollout": [{"variant": "a", "weight": 50}, {"variant": "b", "weight": 50}]},
         "bucketBy": "account.id", "clientSide": true},
        {"key": "secret", "type": "boolean", "variants": {"on": true, "off": false}, "offVariant": "off",
         "fallthrough": {"variant": "on"}}
      ]}"#;

    fn engine() -> Engine {
        Engine::from_json(SNAPSHOT).unwrap()
    }

    fn body(a: Audience, e: &Engine, key: &str, ctx: Value) -> (u16, Value) {
        single(&a.evaluate(e, key, None, &ctx, 0), &NumberForms::default())
    }

    #[test]
    fn a_hidden_flag_answers_as_a_missing_one() {
        let e = engine();
        for expected in [None, Some(FlagType::Number)] {
            let hidden = single(
                &Audience::Client.evaluate(&e, "secret", expected, &json!({}), 0),
                &NumberForms::default(),
            );
            let missing = single(
                &e.evaluate_typed("secret-x", expected, &json!({}), 0),
                &NumberForms::default(),
            );
            assert_eq!(hidden.0, 404);
            assert_eq!(hidden.0, missing.0);
            // The same body but for the key asked for.
            assert_eq!(hidden.1["errorCode"], missing.1["errorCode"]);
            assert_eq!(
                hidden.1["errorDetails"].as_str().unwrap(),
                missing.1["errorDetails"]
                    .as_str()
                    .unwrap()
                    .replace("secret-x", "secret")
            );
            assert_eq!(
                hidden.1.as_object().unwrap().len(),
                missing.1.as_object().unwrap().len()
            );
        }
        let (status, server) = body(Audience::Server, &e, "secret", json!({}));
        assert_eq!((status, &server["value"]), (200, &json!(true)));
    }

    #[test]
    fn clients_get_no_rules_prerequisites_or_metadata() {
        let e = engine();
        // The prerequisite fails: a server key learns which flag it was.
        let ctx = json!({"targetingKey": "u1", "beta": true});
        let (_, server) = body(Audience::Server, &e, "shown", ctx.clone());
        assert_eq!(server["metadata"]["prerequisiteFailed"], "gate");
        assert_eq!(server["metadata"]["owner"], "growth");
        let (status, client) = body(Audience::Client, &e, "shown", ctx);
        assert_eq!(status, 200);
        assert_eq!(client["value"], "old");
        assert_eq!(client["metadata"], json!({"buntingReason": "DEFAULT"}));
        // A rule matches: its id is the server's to know.
        let ctx = json!({"targetingKey": "u-staff", "beta": true});
        let (_, server) = body(Audience::Server, &e, "shown", ctx.clone());
        assert_eq!(server["metadata"]["ruleId"], "beta-users");
        let (_, client) = body(Audience::Client, &e, "shown", ctx);
        assert_eq!(client["value"], "new");
        assert_eq!(client["metadata"], json!({}));
    }

    #[test]
    fn client_error_details_name_nothing_of_the_configuration() {
        let e = engine();
        let (status, server) = body(Audience::Server, &e, "split", json!({"targetingKey": "u"}));
        assert_eq!(status, 400);
        assert!(
            server["errorDetails"]
                .as_str()
                .unwrap()
                .contains("account.id")
        );
        let (status, client) = body(Audience::Client, &e, "split", json!({"targetingKey": "u"}));
        assert_eq!(status, 400);
        assert_eq!(client["errorCode"], "TARGETING_KEY_MISSING");
        assert_eq!(
            client["errorDetails"],
            client_error_details(ErrorCode::TargetingKeyMissing)
        );
        // A type mismatch only names the flag asked for: kept.
        let ev = Audience::Client.evaluate(&e, "shown", Some(FlagType::Boolean), &json!({}), 0);
        assert!(ev.error_message.unwrap().contains("not boolean"));
    }

    #[test]
    fn bulk_omits_hidden_flags_and_its_etag_follows_what_is_seen() {
        let e = engine();
        let ctx = json!({"targetingKey": "u1", "account": {"id": "a1"}});
        let keys = |a: Audience| -> Vec<String> {
            a.evaluate_all(&e, &ctx, 0)
                .iter()
                .map(|ev| ev.key.to_string())
                .collect()
        };
        assert_eq!(keys(Audience::Client), ["shown", "split"]);
        assert_eq!(keys(Audience::Server), ["gate", "shown", "split", "secret"]);
        let tag = |engine: &Engine, a: Audience| {
            let evals = a.evaluate_all(engine, &ctx, 0);
            etag(&bulk(&evals, &NumberForms::default(), None).to_bytes())
        };
        assert_ne!(tag(&e, Audience::Client), tag(&e, Audience::Server));
        // Turning off the server-only flag changes the server's ETag only.
        let changed = Engine::from_json(&SNAPSHOT.replace(
            r#""fallthrough": {"variant": "on"}}"#,
            r#""fallthrough": {"variant": "on"}, "enabled": false}"#,
        ))
        .unwrap();
        assert_ne!(tag(&e, Audience::Server), tag(&changed, Audience::Server));
        assert_eq!(tag(&e, Audience::Client), tag(&changed, Audience::Client));
    }
}
