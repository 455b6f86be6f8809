//! A compact binary form of evaluation results for WASM hosts.
//!
//! Across the `abi` boundary, results as JSON cost the module a
//! serialization and the host a parse of every value, variant, rule id and
//! metadata object, on every call. But all of those are fixed per snapshot:
//! an evaluation only *chooses* among them. So the host fetches a
//! [`Catalog`] once per loaded snapshot (every flag's key, variants with
//! their values, rule ids and metadata, in engine order), and each call then
//! returns one fixed-size record per result that indexes into it, plus the
//! few strings that are not in the catalog (error messages). The host
//! rebuilds each [`Evaluation`] borrowing from its catalog: no JSON per
//! result on either side.
//!
//! Layout of a reply (little-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 4 | [`MAGIC`] |
//! | 4 | number of records `n` |
//! | `n` × [`RECORD`] | records |
//! | rest | error messages: `u32` length + UTF-8 bytes, in record order |
//!
//! A record: flag index, variant index, rule index, prerequisite flag
//! index (`u32` each, [`NONE`] when absent), reason code, error code (0: none),
//! a byte of flags (bit 0: metadata present, bit 1: a message follows), one
//! byte of padding.
//!
//! The request of a compact call: `now_ms` (`i64`), the expected type
//! (`u8`, 0: none), the flag key's length (`u32`, [`NONE`]: every flag) and
//! bytes, then the context as JSON — or nothing, meaning the context of the
//! previous compact call to the same instance (a server evaluating several
//! flags for one request sends its context once).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{FlagMetadata, FlagType};
use crate::result::{ErrorCode, Evaluation, Reason};
use crate::{Engine, ParsedFlag, ParsedSnapshot, Snapshot};

/// First four bytes of every compact reply (`"BCR1"`).
pub const MAGIC: u32 = u32::from_le_bytes(*b"BCR1");
/// Size of one record in bytes.
pub const RECORD: usize = 20;
/// An absent index.
pub const NONE: u32 = u32::MAX;

/// Why a compact reply or request could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompactError {
    /// The bytes end early or do not start with [`MAGIC`].
    #[error("malformed compact reply: {0}")]
    Malformed(&'static str),
    /// An index points outside the catalog.
    #[error("compact reply indexes outside the catalog: {0}")]
    OutOfRange(&'static str),
    /// A result names something the catalog does not have.
    #[error("result not in the catalog: {0}")]
    Unmapped(String),
}

/// One flag of a [`Catalog`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogFlag {
    /// Flag key.
    pub key: String,
    /// Variant names and values.
    pub variants: Vec<(String, Value)>,
    /// Rule ids, in rule order (`rule-<i>` for rules without an id).
    pub rules: Vec<String>,
    /// The flag's metadata.
    pub metadata: FlagMetadata,
}

/// What compact records index: every flag of an engine, in engine order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    /// The flags.
    pub flags: Vec<CatalogFlag>,
}

impl Catalog {
    /// The catalog of `engine`, loaded from the owned `snapshot`: what
    /// [`Catalog::of_parsed`] gives for the same document, without
    /// building the borrowed view.
    pub fn of(engine: &Engine, snapshot: &Snapshot) -> Catalog {
        let aligned = engine
            .flag_keys()
            .eq(snapshot.flags.iter().map(|f| f.key.as_str()));
        let chosen: Vec<&crate::Flag> = if aligned {
            snapshot.flags.iter().collect()
        } else {
            let mut by_key: HashMap<&str, Option<&crate::Flag>> = HashMap::new();
            for f in &snapshot.flags {
                by_key
                    .entry(f.key.as_str())
                    .and_modify(|seen| *seen = None)
                    .or_insert(Some(f));
            }
            engine
                .flag_keys()
                .filter_map(|key| by_key.get(key).copied().flatten())
                .collect()
        };
        let flags = chosen
            .into_iter()
            .map(|f| CatalogFlag {
                key: f.key.clone(),
                variants: f
                    .variants
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                rules: f
                    .rules
                    .iter()
                    .enumerate()
                    .map(|(j, r)| r.id.clone().unwrap_or_else(|| format!("rule-{j}")))
                    .collect(),
                metadata: f.metadata.clone(),
            })
            .collect();
        Catalog { flags }
    }

    /// The catalog of `engine`, loaded from `parsed`. When the engine's
    /// flags are not the snapshot's in order (a lenient load of a broken
    /// snapshot), flags are matched by key and a key the snapshot has twice
    /// is left out: its results then do not fit the catalog and travel as
    /// JSON, so the catalog can never serve another flag's values.
    pub fn of_parsed(engine: &Engine, parsed: &ParsedSnapshot<'_>) -> Catalog {
        let aligned = engine.flag_keys().eq(parsed.flags().map(|f| f.key()));
        let chosen: Vec<ParsedFlag<'_>> = if aligned {
            parsed.flags().collect()
        } else {
            let mut by_key: HashMap<&str, Option<ParsedFlag<'_>>> = HashMap::new();
            for f in parsed.flags() {
                by_key
                    .entry(f.key())
                    .and_modify(|seen| *seen = None)
                    .or_insert(Some(f));
            }
            engine
                .flag_keys()
                .filter_map(|key| by_key.get(key).copied().flatten())
                .collect()
        };
        let flags = chosen
            .into_iter()
            .map(|f| {
                let f = f.borrowed();
                CatalogFlag {
                    key: f.key.to_string(),
                    variants: f
                        .variants
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.clone()))
                        .collect(),
                    rules: f
                        .rules
                        .iter()
                        .enumerate()
                        .map(|(j, r)| match &r.id {
                            Some(id) => id.to_string(),
                            None => format!("rule-{j}"),
                        })
                        .collect(),
                    metadata: f.metadata.to_model(),
                }
            })
            .collect();
        Catalog { flags }
    }
}

/// The module's side: a [`Catalog`]'s names, indexed for encoding.
#[derive(Debug, Default)]
pub struct Encoder {
    flags: Vec<Names>,
    /// Catalog position by key; `None` for a key the catalog has twice
    /// (a lenient load), which only JSON can answer for unambiguously.
    index: HashMap<Box<str>, Option<u32>>,
}

/// One flag's key, variant names and rule ids.
type Names = (Box<str>, Vec<Box<str>>, Vec<Box<str>>);

impl Encoder {
    /// Indexes `catalog`.
    pub fn new(catalog: &Catalog) -> Encoder {
        let flags = catalog
            .flags
            .iter()
            .map(|f| {
                (
                    f.key.as_str().into(),
                    f.variants.iter().map(|(n, _)| n.as_str().into()).collect(),
                    f.rules.iter().map(|r| r.as_str().into()).collect(),
                )
            })
            .collect();
        let mut index: HashMap<Box<str>, Option<u32>> = HashMap::new();
        for (i, f) in catalog.flags.iter().enumerate() {
            index
                .entry(f.key.as_str().into())
                .and_modify(|seen| *seen = None)
                .or_insert(Some(i as u32));
        }
        Encoder { flags, index }
    }

    /// The catalog position of result `i` with key `key`: by position for
    /// evaluate-all (whose results are in engine order), else by key.
    fn flag(&self, key: &str, i: usize, all: bool) -> Result<Option<u32>, CompactError> {
        let unmapped = || CompactError::Unmapped(format!("flag {key:?}"));
        if all {
            return match self.flags.get(i) {
                Some((k, _, _)) if **k == *key => Ok(Some(i as u32)),
                _ => Err(unmapped()),
            };
        }
        match self.index.get(key) {
            Some(Some(f)) => Ok(Some(*f)),
            Some(None) => Err(unmapped()),
            None => Ok(None),
        }
    }

    /// Appends the compact reply for `results` to `out`: every flag's
    /// result in engine order (`all`, an evaluate-all) or one flag's. Fails
    /// on a result the catalog cannot express, which the caller answers
    /// through JSON instead.
    pub fn encode(
        &self,
        results: &[Evaluation<'_>],
        all: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), CompactError> {
        let start = out.len();
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&(results.len() as u32).to_le_bytes());
        out.resize(start + 8 + results.len() * RECORD, 0);
        for (i, r) in results.iter().enumerate() {
            let flag = self.flag(&r.key, i, all)?;
            let names = flag.map(|f| &self.flags[f as usize]);
            let find = |list: Option<&Vec<Box<str>>>, name: Option<&str>, what: &str| match name {
                None => Ok(NONE),
                Some(name) => list
                    .and_then(|l| l.iter().position(|n| **n == *name))
                    .map(|p| p as u32)
                    .ok_or_else(|| {
                        CompactError::Unmapped(format!("{what} {name:?} of {:?}", r.key))
                    }),
            };
            let variant = find(names.map(|n| &n.1), r.variant.as_deref(), "variant")?;
            let rule = find(names.map(|n| &n.2), r.rule_id.as_deref(), "rule")?;
            let prereq = match r.prerequisite_failed.as_deref() {
                None => NONE,
                Some(p) => self
                    .index
                    .get(p)
                    .copied()
                    .flatten()
                    .ok_or_else(|| CompactError::Unmapped(format!("prerequisite {p:?}")))?,
            };
            if flag.is_none() && (r.metadata.is_some() || r.variant.is_some()) {
                return Err(CompactError::Unmapped(format!("flag {:?}", r.key)));
            }
            let at = start + 8 + i * RECORD;
            let rec = &mut out[at..at + RECORD];
            rec[0..4].copy_from_slice(&flag.unwrap_or(NONE).to_le_bytes());
            rec[4..8].copy_from_slice(&variant.to_le_bytes());
            rec[8..12].copy_from_slice(&rule.to_le_bytes());
            rec[12..16].copy_from_slice(&prereq.to_le_bytes());
            rec[16] = reason_code(r.reason);
            rec[17] = r.error_code.map_or(0, error_code);
            rec[18] = u8::from(r.metadata.is_some()) | (u8::from(r.error_message.is_some()) << 1);
        }
        for m in results.iter().filter_map(|r| r.error_message.as_deref()) {
            out.extend_from_slice(&(m.len() as u32).to_le_bytes());
            out.extend_from_slice(m.as_bytes());
        }
        Ok(())
    }
}

/// Rebuilds the evaluations of a compact `reply`, borrowing from `catalog`.
/// `requested` is the key of a one-flag request (used for an unknown flag,
/// which has no catalog entry).
pub fn decode<'c>(
    catalog: &'c Catalog,
    reply: &[u8],
    requested: Option<&str>,
) -> Result<Vec<Evaluation<'c>>, CompactError> {
    use std::borrow::Cow;

    let word = |at: usize| -> Result<u32, CompactError> {
        reply
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or(CompactError::Malformed("ends early"))
    };
    if word(0)? != MAGIC {
        return Err(CompactError::Malformed("no magic"));
    }
    let n = word(4)? as usize;
    let records = reply
        .get(
            8..8 + n
                .checked_mul(RECORD)
                .ok_or(CompactError::Malformed("count"))?,
        )
        .ok_or(CompactError::Malformed("ends early"))?;
    let mut messages = 8 + records.len();
    let mut out = Vec::with_capacity(n);
    for rec in records.chunks_exact(RECORD) {
        let at = |i: usize| u32::from_le_bytes([rec[i], rec[i + 1], rec[i + 2], rec[i + 3]]);
        let (flag, variant, rule, prereq) = (at(0), at(4), at(8), at(12));
        let entry = match flag {
            NONE => None,
            f => Some(
                catalog
                    .flags
                    .get(f as usize)
                    .ok_or(CompactError::OutOfRange("flag"))?,
            ),
        };
        let key = match (entry, requested) {
            (Some(e), _) => Cow::Borrowed(e.key.as_str()),
            (None, Some(k)) => Cow::Owned(k.to_owned()),
            (None, None) => return Err(CompactError::Malformed("an unknown flag in a bulk reply")),
        };
        let pick = |i: u32| -> Result<Option<&'c (String, Value)>, CompactError> {
            match (i, entry) {
                (NONE, _) => Ok(None),
                (i, Some(e)) => e
                    .variants
                    .get(i as usize)
                    .map(Some)
                    .ok_or(CompactError::OutOfRange("variant")),
                (_, None) => Err(CompactError::OutOfRange("variant")),
            }
        };
        let chosen = pick(variant)?;
        let rule_id = match (rule, entry) {
            (NONE, _) => None,
            (i, Some(e)) => Some(Cow::Borrowed(
                e.rules
                    .get(i as usize)
                    .ok_or(CompactError::OutOfRange("rule"))?
                    .as_str(),
            )),
            (_, None) => return Err(CompactError::OutOfRange("rule")),
        };
        let prerequisite_failed = match prereq {
            NONE => None,
            p => Some(Cow::Borrowed(
                catalog
                    .flags
                    .get(p as usize)
                    .ok_or(CompactError::OutOfRange("prerequisite"))?
                    .key
                    .as_str(),
            )),
        };
        let error_message = if rec[18] & 2 != 0 {
            let len = word(messages)? as usize;
            let text = reply
                .get(messages + 4..messages + 4 + len)
                .ok_or(CompactError::Malformed("ends early"))?;
            messages += 4 + len;
            Some(
                std::str::from_utf8(text)
                    .map_err(|_| CompactError::Malformed("message not UTF-8"))?
                    .to_owned(),
            )
        } else {
            None
        };
        out.push(Evaluation {
            key,
            value: chosen.map(|(_, v)| Cow::Borrowed(v)),
            variant: chosen.map(|(n, _)| Cow::Borrowed(n.as_str())),
            reason: reason_of(rec[16]).ok_or(CompactError::OutOfRange("reason"))?,
            error_code: match rec[17] {
                0 => None,
                c => Some(error_of(c).ok_or(CompactError::OutOfRange("error code"))?),
            },
            error_message,
            rule_id,
            prerequisite_failed,
            metadata: match (rec[18] & 1 != 0, entry) {
                (true, Some(e)) => Some(Cow::Borrowed(&e.metadata)),
                (true, None) => return Err(CompactError::OutOfRange("metadata")),
                (false, _) => None,
            },
        });
    }
    Ok(out)
}

/// A compact request, borrowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Request<'a> {
    /// One flag's key, or every flag.
    pub flag: Option<&'a str>,
    /// The type the caller expects.
    pub expected: Option<FlagType>,
    /// Evaluation time, Unix milliseconds.
    pub now_ms: i64,
    /// The context, as JSON; empty for the previous call's context.
    pub context: &'a [u8],
}

impl<'a> Request<'a> {
    /// Appends the request's bytes to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        Request::write_head(self.flag, self.expected, self.now_ms, out);
        out.extend_from_slice(self.context);
    }

    /// Appends everything of a request but the context to `out`, for a
    /// caller that then serializes the context straight after it.
    pub fn write_head(
        flag: Option<&str>,
        expected: Option<FlagType>,
        now_ms: i64,
        out: &mut Vec<u8>,
    ) {
        out.extend_from_slice(&now_ms.to_le_bytes());
        out.push(expected.map_or(0, type_code));
        match flag {
            None => out.extend_from_slice(&NONE.to_le_bytes()),
            Some(k) => {
                out.extend_from_slice(&(k.len() as u32).to_le_bytes());
                out.extend_from_slice(k.as_bytes());
            }
        }
    }

    /// Reads a request written by [`Request::write`].
    pub fn read(bytes: &'a [u8]) -> Result<Request<'a>, CompactError> {
        let short = CompactError::Malformed("request ends early");
        let now = bytes.get(0..8).ok_or(short.clone())?;
        let now_ms = i64::from_le_bytes(now.try_into().expect("8 bytes"));
        let expected = match *bytes.get(8).ok_or(short.clone())? {
            0 => None,
            c => Some(type_of(c).ok_or(CompactError::OutOfRange("expected type"))?),
        };
        let len = bytes.get(9..13).ok_or(short.clone())?;
        let len = u32::from_le_bytes(len.try_into().expect("4 bytes"));
        let (flag, rest) = if len == NONE {
            (None, 13)
        } else {
            let end = 13 + len as usize;
            let key = bytes.get(13..end).ok_or(short)?;
            let key =
                std::str::from_utf8(key).map_err(|_| CompactError::Malformed("key not UTF-8"))?;
            (Some(key), end)
        };
        Ok(Request {
            flag,
            expected,
            now_ms,
            context: &bytes[rest..],
        })
    }
}

/// Codes on the wire are declaration positions (error codes and types from
/// 1; 0 is "none"); `ALL` lists them in that order.
const REASONS: [Reason; 6] = Reason::ALL;
const ERRORS: [ErrorCode; 6] = ErrorCode::ALL;
const TYPES: [FlagType; 4] = [
    FlagType::Boolean,
    FlagType::String,
    FlagType::Number,
    FlagType::Object,
];

fn reason_code(r: Reason) -> u8 {
    r as u8
}
fn reason_of(c: u8) -> Option<Reason> {
    REASONS.get(c as usize).copied()
}
fn error_code(e: ErrorCode) -> u8 {
    e as u8 + 1
}
fn error_of(c: u8) -> Option<ErrorCode> {
    ERRORS.get(c as usize - 1).copied()
}
fn type_code(t: FlagType) -> u8 {
    TYPES.iter().position(|x| *x == t).expect("listed") as u8 + 1
}
fn type_of(c: u8) -> Option<FlagType> {
    TYPES.get(c as usize - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::parse_json;
    use serde_json::json;

    const SNAPSHOT: &str = r#"{"schemaVersion": 1, "environment": "t", "version": 1,
      "generatedAt": "2026-11-25T00:00:00Z", "flags": [
      {"key": "a", "type": "string", "variants": {"x": "X", "y": "Y"}, "offVariant": "x",
       "rules": [{"id": "beta", "condition": "plan == \"beta\"", "serve": {"variant": "y"}},
                 {"condition": "plan == \"pro\"", "serve": {"rollout": [{"variant": "x", "weight": 50}, {"variant": "y", "weight": 50}]}}],
       "fallthrough": {"variant": "x"}, "metadata": {"owner": "me", "tags": ["t"]}},
      {"key": "b", "type": "number", "variants": {"one": 1, "two": 2.5}, "offVariant": "one",
       "prerequisites": [{"flag": "a", "variant": "y"}],
       "fallthrough": {"variant": "two"}},
      {"key": "c", "type": "boolean", "variants": {"on": true, "off": false}, "offVariant": "off",
       "enabled": false, "fallthrough": {"variant": "on"}}]}"#;

    /// Encodes `results` (of one flag `key`, or all flags) and decodes them back.
    fn roundtrip(catalog: &Catalog, results: &[Evaluation<'_>], key: Option<&str>) {
        let mut out = Vec::new();
        Encoder::new(catalog)
            .encode(results, key.is_none(), &mut out)
            .unwrap();
        assert_eq!(decode(catalog, &out, key).unwrap(), results);
    }

    #[test]
    fn results_survive_the_compact_form() {
        let snapshot = parse_json(SNAPSHOT).unwrap();
        let engine = Engine::from_snapshot(&snapshot).unwrap();
        let catalog = Catalog::of(&engine, &snapshot);
        for ctx in [
            json!({"targetingKey": "u1", "plan": "beta"}),
            json!({"targetingKey": "u2", "plan": "pro"}),
            json!({"targetingKey": "u3", "plan": "pro"}),
            json!({"plan": "pro"}),
            json!({"targetingKey": 5}),
            json!([1]),
        ] {
            roundtrip(&catalog, &engine.evaluate_all(&ctx, 0), None);
            for key in ["a", "b", "c", "missing"] {
                let one = engine.evaluate(key, &ctx, 0);
                roundtrip(&catalog, std::slice::from_ref(&one), Some(key));
                let typed = engine.evaluate_typed(key, Some(FlagType::Boolean), &ctx, 0);
                roundtrip(&catalog, std::slice::from_ref(&typed), Some(key));
            }
        }
    }

    #[test]
    fn a_lenient_load_never_serves_another_flags_values() {
        // Two flags with one key: whichever the engine keeps, the compact
        // form either answers as natively or refuses (and JSON answers).
        let doc = r#"{"schemaVersion": 1, "environment": "t", "version": 1,
          "generatedAt": "2026-11-25T00:00:00Z", "flags": [
          {"key": "d", "type": "string", "variants": {"v": "first"}, "offVariant": "v",
           "fallthrough": {"variant": "v"}},
          {"key": "d", "type": "string", "variants": {"v": "second"}, "offVariant": "v",
           "fallthrough": {"variant": "v"}},
          {"key": "ok", "type": "boolean", "variants": {"on": true}, "offVariant": "on",
           "fallthrough": {"variant": "on"}}]}"#;
        let snapshot = parse_json(doc).unwrap();
        let (engine, problems) = Engine::from_snapshot_lenient(&snapshot);
        assert!(!problems.is_empty());
        let catalog = Catalog::of(&engine, &snapshot);
        let ctx = json!({"targetingKey": "u"});
        let encoder = Encoder::new(&catalog);
        // Evaluate-all answers by position: exact.
        let all = engine.evaluate_all(&ctx, 0);
        let mut out = Vec::new();
        encoder.encode(&all, true, &mut out).unwrap();
        assert_eq!(decode(&catalog, &out, None).unwrap(), all);
        // One flag by an ambiguous key: refused, so JSON answers it.
        let one = engine.evaluate("d", &ctx, 0);
        let refused = encoder.encode(std::slice::from_ref(&one), false, &mut Vec::new());
        assert!(
            matches!(refused, Err(CompactError::Unmapped(_))),
            "{refused:?}"
        );
        let one = engine.evaluate("ok", &ctx, 0);
        let mut out = Vec::new();
        encoder
            .encode(std::slice::from_ref(&one), false, &mut out)
            .unwrap();
        assert_eq!(decode(&catalog, &out, Some("ok")).unwrap(), vec![one]);
    }

    /// Every conformance fixture's snapshot, the snapshots above, and one
    /// with escaped strings, metadata, float variants and a duplicate key.
    fn documents() -> Vec<String> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/conformance");
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        assert!(paths.len() >= 10, "{paths:?}");
        let mut docs: Vec<String> = paths
            .iter()
            .map(|p| {
                let fixture: Value =
                    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
                fixture["snapshot"].to_string()
            })
            .collect();
        docs.push(SNAPSHOT.to_string());
        docs.push(
            json!({"schemaVersion": 1, "environment": "t", "version": 2,
                "generatedAt": "2026-11-25T00:00:00Z", "flags": [
                {"key": "e\u{e9}\"", "type": "number", "variants": {"b\n": 0.5, "a": 1, "a\"": 2e3},
                 "offVariant": "a", "rules": [{"condition": "now > 2026-12-01T00:00:00Z",
                   "serve": {"schedule": {"variant": "a", "otherwise": "b\n",
                     "steps": [{"at": "2026-12-02T00:00:00Z", "percentage": 50}]}}},
                   {"id": "r\t", "description": "d", "condition": "x == \"\\\"\"", "serve": {"variant": "a"}}],
                 "fallthrough": {"variant": "a"},
                 "metadata": {"description": "d\"", "owner": "o", "tags": ["x", "y\\"]}},
                {"key": "dup", "type": "boolean", "variants": {"on": true}, "offVariant": "on",
                 "fallthrough": {"variant": "on"}},
                {"key": "dup", "type": "boolean", "variants": {"on": false}, "offVariant": "on",
                 "fallthrough": {"variant": "on"}}]})
            .to_string(),
        );
        docs
    }

    #[test]
    fn the_parsed_catalog_is_the_owned_one() {
        for doc in documents() {
            let snapshot = parse_json(&doc).unwrap();
            let (owned_engine, owned_problems) = Engine::from_snapshot_lenient(&snapshot);
            let parsed = ParsedSnapshot::parse(&doc).unwrap();
            let (engine, problems) = Engine::from_parsed_lenient(&parsed);
            assert_eq!(problems, owned_problems, "{doc}");
            let want = Catalog::of(&owned_engine, &snapshot);
            assert_eq!(Catalog::of_parsed(&engine, &parsed), want, "{doc}");
            let view = ParsedSnapshot::of(&snapshot);
            assert_eq!(Catalog::of_parsed(&owned_engine, &view), want, "{doc}");
            assert_eq!(
                Engine::from_parsed(&parsed).map(|_| ()),
                Engine::from_snapshot(&snapshot).map(|_| ()),
                "{doc}"
            );
        }
    }

    #[test]
    fn requests_read_back() {
        for r in [
            Request {
                flag: Some("a"),
                expected: Some(FlagType::Object),
                now_ms: -5,
                context: b"{}",
            },
            Request {
                flag: None,
                expected: None,
                now_ms: i64::MAX,
                context: b"{\"k\":1}",
            },
            Request {
                flag: Some(""),
                expected: None,
                now_ms: 0,
                context: b"",
            },
        ] {
            let mut out = Vec::new();
            r.write(&mut out);
            assert_eq!(Request::read(&out).unwrap(), r);
        }
        assert!(Request::read(&[0; 12]).is_err());
    }

    #[test]
    fn broken_replies_are_errors_not_panics() {
        let snapshot = parse_json(SNAPSHOT).unwrap();
        let engine = Engine::from_snapshot(&snapshot).unwrap();
        let catalog = Catalog::of(&engine, &snapshot);
        let mut out = Vec::new();
        let all = engine.evaluate_all(&json!({"targetingKey": "u"}), 0);
        Encoder::new(&catalog).encode(&all, true, &mut out).unwrap();
        for cut in 0..out.len() {
            assert!(decode(&catalog, &out[..cut], None).is_err(), "cut at {cut}");
        }
        let mut bad = out.clone();
        bad[8] = 9; // flag index 9 of 3
        assert_eq!(
            decode(&catalog, &bad, None),
            Err(CompactError::OutOfRange("flag"))
        );
        let mut bad = out;
        bad[8 + 16] = 77; // reason
        assert_eq!(
            decode(&catalog, &bad, None),
            Err(CompactError::OutOfRange("reason"))
        );
    }
}
