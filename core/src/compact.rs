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
//! (`u8`, 0: none), the flag key's length (`u32`, [`NONE`]: every flag,
//! [`AT`]: one flag by its catalog position, a `u32` that follows) and
//! bytes, then the context — a JSON object in the binary form of
//! [`write_context`], which the module reads without JSON, or any JSON
//! text — or nothing, meaning the context of the previous compact call to
//! the same instance (a server evaluating several flags for one request
//! sends its context once).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::{Answer, Outcome};
use crate::model::{FlagMetadata, FlagType};
use crate::result::{ErrorCode, Evaluation, Reason};
use crate::{Engine, ParsedFlag, ParsedSnapshot, Snapshot};

/// First four bytes of every compact reply (`"BCR1"`).
pub const MAGIC: u32 = u32::from_le_bytes(*b"BCR1");
/// Size of one record in bytes.
pub const RECORD: usize = 20;
/// An absent index.
pub const NONE: u32 = u32::MAX;
/// In a request's key length: one flag named by its catalog position, a
/// `u32` that follows instead of the key (a host that resolved the key
/// once sends no key and the module hashes none).
pub const AT: u32 = u32::MAX - 1;

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
    index: HashMap<Box<str>, Option<u32>, BuildHasherDefault<Fnv>>,
    /// Set by [`Encoder::bind`]: the catalog positions of the engine's
    /// flags, variants and rules, by engine position.
    bound: Vec<Positions>,
}

/// The catalog positions of one engine flag (see [`Encoder::bind`]):
/// what [`Encoder::encode`] finds by name for each result, found once.
#[derive(Debug)]
struct Positions {
    /// Its catalog position in an evaluate-all, whose results are in
    /// engine order: the same position if the catalog has the flag's key
    /// there ([`NONE`]: unmapped).
    all: u32,
    /// Its catalog position for one flag, by key ([`NONE`]: unmapped,
    /// because the catalog lacks the key or has it twice).
    one: u32,
    /// The catalog position of its variants, by engine position
    /// ([`NONE`]: not in the catalog).
    variants: Box<[u32]>,
    /// The catalog position of its rules, by engine position.
    rules: Box<[u32]>,
}

/// FNV-1a: flag keys are short and not chosen by an attacker of this map
/// (they come from the snapshot), and SipHash was a fifth of a one-flag
/// call's encoding inside the module.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
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
        let mut index: HashMap<Box<str>, Option<u32>, BuildHasherDefault<Fnv>> = HashMap::default();
        for (i, f) in catalog.flags.iter().enumerate() {
            index
                .entry(f.key.as_str().into())
                .and_modify(|seen| *seen = None)
                .or_insert(Some(i as u32));
        }
        Encoder {
            flags,
            index,
            bound: Vec::new(),
        }
    }

    /// Binds the encoder to `engine`, the engine its catalog was made of:
    /// [`Encoder::encode_one`] and [`Encoder::encode_all`] then write
    /// records straight from the engine's positions, as [`Encoder::encode`]
    /// writes them from the names of the same results.
    pub fn bind(&mut self, engine: &Engine) {
        let position = |list: Option<&Vec<Box<str>>>, name: &str| {
            list.and_then(|l| l.iter().position(|n| **n == *name))
                .map_or(NONE, |p| p as u32)
        };
        self.bound = (0..engine.len())
            .map(|e| {
                let key = engine.key_at(e);
                let all = match self.flags.get(e) {
                    Some((k, _, _)) if **k == *key => e as u32,
                    _ => NONE,
                };
                let one = self.index.get(key).copied().flatten().unwrap_or(NONE);
                // Both name the same catalog flag when both are set: the
                // key is at `all`, and only there if `one` is set.
                let names = [all, one]
                    .into_iter()
                    .find(|c| *c != NONE)
                    .map(|c| &self.flags[c as usize]);
                let (variants, rules) = engine.names_at(e);
                Positions {
                    all,
                    one,
                    variants: variants.map(|v| position(names.map(|n| &n.1), v)).collect(),
                    rules: rules.map(|r| position(names.map(|n| &n.2), r)).collect(),
                }
            })
            .collect();
    }

    /// Appends the compact reply of evaluating flag `key` (see
    /// [`Engine::evaluate_typed`]) to `out`: what [`Encoder::encode`] writes
    /// for its result. Fails where that fails, and on an encoder not bound
    /// to `engine`; the caller then answers through JSON.
    pub fn encode_one<C: crate::EvaluationContext + ?Sized>(
        &self,
        engine: &Engine,
        key: &str,
        expected: Option<FlagType>,
        context: &C,
        now_ms: i64,
        out: &mut Vec<u8>,
    ) -> Result<(), CompactError> {
        self.check_bound(engine)?;
        let Some(i) = engine.position(key) else {
            return self.encode(&[Evaluation::not_found(key)], false, out);
        };
        self.encode_engine_flag(engine, i, expected, context, now_ms, out)
    }

    /// [`Encoder::encode_one`] for the flag at catalog position `position`
    /// (a request by [`AT`]), with no key to hash. Fails, for the caller to
    /// answer by the key ([`Encoder::key_at`]), where the catalog flag is
    /// not the engine flag at the same position or its key is not unique
    /// in the catalog (a lenient load), and where `encode_one` fails.
    pub fn encode_at<C: crate::EvaluationContext + ?Sized>(
        &self,
        engine: &Engine,
        position: u32,
        expected: Option<FlagType>,
        context: &C,
        now_ms: i64,
        out: &mut Vec<u8>,
    ) -> Result<(), CompactError> {
        self.check_bound(engine)?;
        match self.bound.get(position as usize) {
            // The engine flag at `position` has the catalog key at
            // `position`, found there by key too: the flag `encode_one`
            // would answer for that key.
            Some(p) if p.all == position && p.one == position => {
                self.encode_engine_flag(engine, position as usize, expected, context, now_ms, out)
            }
            _ => Err(CompactError::Unmapped(format!(
                "catalog position {position}"
            ))),
        }
    }

    /// The key of the catalog flag at `position`.
    pub fn key_at(&self, position: u32) -> Option<&str> {
        self.flags.get(position as usize).map(|(k, _, _)| &**k)
    }

    /// The one-flag reply for engine flag `i`.
    fn encode_engine_flag<C: crate::EvaluationContext + ?Sized>(
        &self,
        engine: &Engine,
        i: usize,
        expected: Option<FlagType>,
        context: &C,
        now_ms: i64,
        out: &mut Vec<u8>,
    ) -> Result<(), CompactError> {
        let outcome: Outcome = engine.answer_at(i, expected, context.context_ref(), now_ms);
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        let mut messages = Vec::new();
        let rec = self.record(outcome, false, &mut messages).ok_or_else(|| {
            CompactError::Unmapped(format!("a result of flag {:?}", engine.key_at(i)))
        })?;
        out.extend_from_slice(&rec);
        put_messages(&messages, out);
        Ok(())
    }

    /// Appends the compact reply of evaluating every flag (see
    /// [`Engine::evaluate_all`]) to `out`: what [`Encoder::encode`] writes
    /// for those results, failing where it fails.
    pub fn encode_all<C: crate::EvaluationContext + ?Sized>(
        &self,
        engine: &Engine,
        context: &C,
        now_ms: i64,
        out: &mut Vec<u8>,
    ) -> Result<(), CompactError> {
        self.check_bound(engine)?;
        let n = engine.len();
        let start = out.len();
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&(n as u32).to_le_bytes());
        out.resize(start + 8 + n * RECORD, 0);
        let mut records = out[start + 8..].chunks_exact_mut(RECORD);
        let mut messages = Vec::new();
        let mut done = true;
        engine.outcomes_all(context.context_ref(), now_ms, |o| {
            match (self.record(o, true, &mut messages), records.next()) {
                (Some(rec), Some(slot)) => slot.copy_from_slice(&rec),
                _ => done = false,
            }
        });
        if !done {
            return Err(CompactError::Unmapped(
                "a result of an evaluate-all, or more results than flags".into(),
            ));
        }
        if records.next().is_some() {
            return Err(CompactError::Malformed("evaluate-all skipped a flag"));
        }
        put_messages(&messages, out);
        Ok(())
    }

    fn check_bound(&self, engine: &Engine) -> Result<(), CompactError> {
        if self.bound.len() == engine.len() {
            Ok(())
        } else {
            Err(CompactError::Unmapped(
                "an engine the encoder is not bound to".into(),
            ))
        }
    }

    /// The record of `o`, its message, if any, appended to `messages`: by
    /// position (`all`) or by key, as [`Encoder::encode`]; `None` where
    /// that fails (the caller answers by name instead).
    #[inline]
    fn record(&self, o: Outcome, all: bool, messages: &mut Vec<String>) -> Option<[u8; RECORD]> {
        let p = &self.bound[o.flag];
        let flag = if all { p.all } else { p.one };
        // Every result of an engine flag has metadata, which only a
        // catalog flag can express.
        let known = |i: u32| (i != NONE).then_some(i);
        let flag = known(flag)?;
        let (variant, rule, prereq, reason, code, failed) = match o.answer {
            Answer::Served {
                variant,
                reason,
                rule,
                prerequisite,
            } => {
                let variant = known(p.variants[variant])?;
                let rule = match rule {
                    None => NONE,
                    Some(r) => known(p.rules[r])?,
                };
                let prereq = match prerequisite {
                    None => NONE,
                    Some(q) => known(self.bound[q].one)?,
                };
                (variant, rule, prereq, reason, 0, 0)
            }
            Answer::Failed(code, message) => {
                messages.push(message);
                (NONE, NONE, NONE, Reason::Error, error_code(code), 2)
            }
        };
        let mut rec = [0u8; RECORD];
        rec[0..4].copy_from_slice(&flag.to_le_bytes());
        rec[4..8].copy_from_slice(&variant.to_le_bytes());
        rec[8..12].copy_from_slice(&rule.to_le_bytes());
        rec[12..16].copy_from_slice(&prereq.to_le_bytes());
        rec[16] = reason_code(reason);
        rec[17] = code;
        rec[18] = 1 | failed;
        Some(rec)
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
        let messages: Vec<&str> = results
            .iter()
            .filter_map(|r| r.error_message.as_deref())
            .collect();
        put_messages(&messages, out);
        Ok(())
    }
}

/// Appends the error messages of a reply.
fn put_messages<S: AsRef<str>>(messages: &[S], out: &mut Vec<u8>) {
    for m in messages.iter().map(AsRef::as_ref) {
        out.extend_from_slice(&(m.len() as u32).to_le_bytes());
        out.extend_from_slice(m.as_bytes());
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
    // Collected from an exact-size iterator, so each evaluation is written
    // in place (a push copied every one, about a tenth of an evaluate-all
    // of 1,000 flags); the first error is kept and answered instead.
    let mut failed = None;
    let out: Vec<Evaluation<'c>> = records
        .chunks_exact(RECORD)
        .map(
            |rec| match decode_record(catalog, reply, requested, rec, &mut messages) {
                Ok(e) => e,
                Err(e) => {
                    failed.get_or_insert(e);
                    Evaluation::error(String::new(), ErrorCode::General, String::new())
                }
            },
        )
        .collect();
    match failed {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// [`decode`] of a one-flag reply: its evaluation, with no vector to
/// allocate. A reply of any other number of records is malformed.
pub fn decode_one<'c>(
    catalog: &'c Catalog,
    reply: &[u8],
    requested: Option<&str>,
) -> Result<Evaluation<'c>, CompactError> {
    let head = reply
        .get(..8 + RECORD)
        .ok_or(CompactError::Malformed("ends early"))?;
    if head[..4] != MAGIC.to_le_bytes() {
        return Err(CompactError::Malformed("no magic"));
    }
    if head[4..8] != 1u32.to_le_bytes() {
        return Err(CompactError::Malformed("not one record"));
    }
    let mut messages = 8 + RECORD;
    decode_record(catalog, reply, requested, &head[8..], &mut messages)
}

/// One record of a reply (see [`decode`]); `messages` is where the next
/// error message starts.
#[inline(always)]
fn decode_record<'c>(
    catalog: &'c Catalog,
    reply: &[u8],
    requested: Option<&str>,
    rec: &[u8],
    messages: &mut usize,
) -> Result<Evaluation<'c>, CompactError> {
    use std::borrow::Cow;

    let word = |at: usize| -> Result<u32, CompactError> {
        reply
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or(CompactError::Malformed("ends early"))
    };
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
        let len = word(*messages)? as usize;
        let text = reply
            .get(*messages + 4..*messages + 4 + len)
            .ok_or(CompactError::Malformed("ends early"))?;
        *messages += 4 + len;
        Some(
            std::str::from_utf8(text)
                .map_err(|_| CompactError::Malformed("message not UTF-8"))?
                .to_owned(),
        )
    } else {
        None
    };
    Ok(Evaluation {
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
    })
}

/// A compact request, borrowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Request<'a> {
    /// One flag's key, or every flag (unless `position` is set).
    pub flag: Option<&'a str>,
    /// One flag by its catalog position ([`AT`] on the wire); `flag` is
    /// then `None`.
    pub position: Option<u32>,
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
        match self.position {
            Some(p) => Request::write_head_at(p, self.expected, self.now_ms, out),
            None => Request::write_head(self.flag, self.expected, self.now_ms, out),
        }
        out.extend_from_slice(self.context);
    }

    /// [`Request::write_head`] for one flag by its catalog position.
    pub fn write_head_at(
        position: u32,
        expected: Option<FlagType>,
        now_ms: i64,
        out: &mut Vec<u8>,
    ) {
        out.extend_from_slice(&now_ms.to_le_bytes());
        out.push(expected.map_or(0, type_code));
        out.extend_from_slice(&AT.to_le_bytes());
        out.extend_from_slice(&position.to_le_bytes());
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
        let mut position = None;
        let (flag, rest) = if len == NONE {
            (None, 13)
        } else if len == AT {
            let at = bytes.get(13..17).ok_or(short)?;
            position = Some(u32::from_le_bytes(at.try_into().expect("4 bytes")));
            (None, 17)
        } else {
            let end = 13 + len as usize;
            let key = bytes.get(13..end).ok_or(short)?;
            let key =
                std::str::from_utf8(key).map_err(|_| CompactError::Malformed("key not UTF-8"))?;
            (Some(key), end)
        };
        Ok(Request {
            flag,
            position,
            expected,
            now_ms,
            context: &bytes[rest..],
        })
    }
}

/// First byte of a context in the binary form of [`write_context`]. JSON
/// text never starts with it (it is a UTF-8 continuation byte), so a
/// request's context is either this form or JSON.
pub const CONTEXT_TAG: u8 = 0xB1;

/// Objects nested deeper than this travel as JSON inside the binary form.
const MAX_DEPTH: usize = 32;

const T_NULL: u8 = 0;
const T_FALSE: u8 = 1;
const T_TRUE: u8 = 2;
const T_U64: u8 = 3;
const T_I64: u8 = 4;
const T_F64: u8 = 5;
const T_STR: u8 = 6;
const T_OBJECT: u8 = 7;
const T_JSON: u8 = 8;

/// Appends `context` to `out` as a request's context: a JSON object in the
/// binary form (no JSON to write, nor for the module to parse: it reads
/// the attributes into a [`Context`](crate::Context) borrowing from the bytes), anything
/// else as JSON text.
///
/// The form: [`CONTEXT_TAG`], then an object — the number of members
/// (`u32`), each a name (`u32` length + UTF-8) and a tagged value: null,
/// false, true, a `u64`, an `i64` or an `f64` (8 bytes, as
/// `serde_json::Number` holds it), a string (`u32` length + UTF-8), an
/// object (nested, the same way) or an array as JSON text (`u32` length +
/// text). Numbers keep their exact representation, so the module sees the
/// very `Value` the host holds.
pub fn write_context(context: &Value, out: &mut Vec<u8>) {
    match context {
        Value::Object(map) => {
            out.push(CONTEXT_TAG);
            write_object(map, 0, out);
        }
        other => serde_json::to_writer(out, other).expect("a Value serializes"),
    }
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u32).to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u32(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn write_object(map: &serde_json::Map<String, Value>, depth: usize, out: &mut Vec<u8>) {
    put_u32(out, map.len());
    for (name, v) in map {
        put_str(out, name);
        match v {
            Value::Null => out.push(T_NULL),
            Value::Bool(false) => out.push(T_FALSE),
            Value::Bool(true) => out.push(T_TRUE),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    out.push(T_U64);
                    out.extend_from_slice(&u.to_le_bytes());
                } else if let Some(i) = n.as_i64() {
                    out.push(T_I64);
                    out.extend_from_slice(&i.to_le_bytes());
                } else {
                    out.push(T_F64);
                    let f = n.as_f64().expect("a number is u64, i64 or f64");
                    out.extend_from_slice(&f.to_le_bytes());
                }
            }
            Value::String(s) => {
                out.push(T_STR);
                put_str(out, s);
            }
            Value::Object(m) if depth < MAX_DEPTH => {
                out.push(T_OBJECT);
                write_object(m, depth + 1, out);
            }
            Value::Array(_) | Value::Object(_) => {
                out.push(T_JSON);
                let at = out.len();
                out.extend_from_slice(&[0; 4]);
                serde_json::to_writer(&mut *out, v).expect("a Value serializes");
                let len = (out.len() - at - 4) as u32;
                out[at..at + 4].copy_from_slice(&len.to_le_bytes());
            }
        }
    }
}

/// A request's context as the module keeps it between calls: the binary
/// form's bytes, with the JSON values inside it (arrays) parsed once; or a
/// context that came as JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum HeldContext {
    /// The binary form of [`write_context`], checked.
    Binary {
        /// The bytes after [`CONTEXT_TAG`].
        bytes: Vec<u8>,
        /// Its JSON members, parsed, in order of appearance.
        json: Vec<Value>,
    },
    /// A context sent as JSON text.
    Json(Value),
}

/// Reads the binary context form.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    /// All of `bytes`, when they are UTF-8 as a whole (a context of
    /// strings, objects and small lengths usually is): a string inside
    /// that starts and ends on a character boundary is then UTF-8 without
    /// a validation of its own.
    text: Option<&'a str>,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CompactError> {
        let end = self
            .at
            .checked_add(n)
            .ok_or(CompactError::Malformed("context ends early"))?;
        let out = self
            .bytes
            .get(self.at..end)
            .ok_or(CompactError::Malformed("context ends early"))?;
        self.at = end;
        Ok(out)
    }
    fn byte(&mut self) -> Result<u8, CompactError> {
        Ok(self.take(1)?[0])
    }
    fn word(&mut self) -> Result<u32, CompactError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn eight(&mut self) -> Result<[u8; 8], CompactError> {
        Ok(self.take(8)?.try_into().expect("8 bytes"))
    }
    fn text(&mut self) -> Result<&'a [u8], CompactError> {
        let n = self.word()? as usize;
        self.take(n)
    }
    fn str(&mut self) -> Result<&'a str, CompactError> {
        let n = self.word()? as usize;
        let start = self.at;
        let bytes = self.take(n)?;
        // One validation of the whole form instead of one per string.
        if let Some(s) = self.text.and_then(|t| t.get(start..start + n)) {
            return Ok(s);
        }
        std::str::from_utf8(bytes).map_err(|_| CompactError::Malformed("context not UTF-8"))
    }
}

/// Where decoded attributes go: a [`Context`] or one of its objects.
trait Sink<'a> {
    fn attr(&mut self, name: &'a str, value: crate::Attr<'a>);
    fn object(&mut self, name: &'a str, fill: &mut dyn FnMut(&mut crate::context::Object<'_, 'a>));
}

impl<'a> Sink<'a> for crate::Context<'a> {
    fn attr(&mut self, name: &'a str, value: crate::Attr<'a>) {
        self.set(name, value);
    }
    fn object(&mut self, name: &'a str, fill: &mut dyn FnMut(&mut crate::context::Object<'_, 'a>)) {
        self.set_object(name, fill);
    }
}

impl<'a> Sink<'a> for crate::context::Object<'_, 'a> {
    fn attr(&mut self, name: &'a str, value: crate::Attr<'a>) {
        self.set(name, value);
    }
    fn object(&mut self, name: &'a str, fill: &mut dyn FnMut(&mut crate::context::Object<'_, 'a>)) {
        self.set_object(name, fill);
    }
}

/// Reads one object's members into `sink`; `json` yields the parsed JSON
/// members in order.
fn fill<'a, S: Sink<'a> + ?Sized>(
    sink: &mut S,
    r: &mut Reader<'a>,
    json: &mut std::slice::Iter<'a, Value>,
    depth: usize,
) -> Result<(), CompactError> {
    use crate::Attr;
    if depth > MAX_DEPTH {
        return Err(CompactError::Malformed("context nested too deeply"));
    }
    let n = r.word()?;
    for _ in 0..n {
        let name = r.str()?;
        match r.byte()? {
            T_NULL => sink.attr(name, Attr::Null),
            T_FALSE => sink.attr(name, Attr::Bool(false)),
            T_TRUE => sink.attr(name, Attr::Bool(true)),
            T_U64 => sink.attr(name, Attr::Number(u64::from_le_bytes(r.eight()?).into())),
            T_I64 => sink.attr(name, Attr::Number(i64::from_le_bytes(r.eight()?).into())),
            T_F64 => {
                let n = serde_json::Number::from_f64(f64::from_le_bytes(r.eight()?))
                    .ok_or(CompactError::Malformed("context number not finite"))?;
                sink.attr(name, Attr::Number(n));
            }
            T_STR => sink.attr(name, Attr::Str(std::borrow::Cow::Borrowed(r.str()?))),
            T_JSON => {
                r.text()?;
                let v = json
                    .next()
                    .ok_or(CompactError::Malformed("context JSON member missing"))?;
                sink.attr(name, Attr::Json(v));
            }
            T_OBJECT => {
                let mut done = Ok(());
                sink.object(name, &mut |o| done = fill(o, r, json, depth + 1));
                done?;
            }
            _ => return Err(CompactError::Malformed("context value tag")),
        }
    }
    Ok(())
}

/// Parses the JSON members of a binary context, in order.
fn scan(r: &mut Reader<'_>, json: &mut Vec<Value>, depth: usize) -> Result<(), CompactError> {
    if depth > MAX_DEPTH {
        return Err(CompactError::Malformed("context nested too deeply"));
    }
    let n = r.word()?;
    for _ in 0..n {
        r.text()?;
        match r.byte()? {
            T_NULL | T_FALSE | T_TRUE => {}
            T_U64 | T_I64 | T_F64 => {
                r.eight()?;
            }
            T_STR => {
                r.text()?;
            }
            T_JSON => json.push(
                serde_json::from_slice(r.text()?)
                    .map_err(|_| CompactError::Malformed("context JSON member"))?,
            ),
            T_OBJECT => scan(r, json, depth + 1)?,
            _ => return Err(CompactError::Malformed("context value tag")),
        }
    }
    Ok(())
}

impl HeldContext {
    /// Reads a request's context: the binary form or JSON text. The JSON
    /// error is serde_json's, as the module reported it before the binary
    /// form existed.
    pub fn read(bytes: &[u8]) -> Result<HeldContext, ContextError> {
        let held = HeldContext::read_unchecked(bytes)?;
        held.context().map_err(ContextError::Binary)?;
        Ok(held)
    }

    /// [`HeldContext::read`] without decoding the attributes to check
    /// them: the first [`HeldContext::context`] does, for a caller (the
    /// module) that decodes the context once to keep it anyway.
    pub(crate) fn read_unchecked(bytes: &[u8]) -> Result<HeldContext, ContextError> {
        HeldContext::read_reusing(bytes, None)
    }

    /// [`HeldContext::read_unchecked`] into the buffers of `old`, a
    /// context held before (the module keeps one per call that sends a
    /// context: no allocation for a context no larger than the last).
    pub(crate) fn read_reusing(
        bytes: &[u8],
        old: Option<HeldContext>,
    ) -> Result<HeldContext, ContextError> {
        match bytes.split_first() {
            Some((&CONTEXT_TAG, rest)) => {
                let (mut held, mut json) = match old {
                    Some(HeldContext::Binary { bytes, json }) => (bytes, json),
                    _ => (Vec::new(), Vec::new()),
                };
                json.clear();
                let mut r = Reader {
                    bytes: rest,
                    at: 0,
                    text: None,
                };
                scan(&mut r, &mut json, 0).map_err(ContextError::Binary)?;
                if r.at != rest.len() {
                    return Err(ContextError::Binary(CompactError::Malformed(
                        "context has trailing bytes",
                    )));
                }
                held.clear();
                held.extend_from_slice(rest);
                Ok(HeldContext::Binary { bytes: held, json })
            }
            _ => serde_json::from_slice(bytes)
                .map(HeldContext::Json)
                .map_err(ContextError::Json),
        }
    }

    /// The context to evaluate against: a [`Context`](crate::Context)
    /// borrowing the held bytes (nothing allocated for up to eight
    /// attributes), or the JSON value.
    pub fn context(&self) -> Result<Held<'_>, CompactError> {
        match self {
            HeldContext::Json(v) => Ok(Held::Json(v)),
            HeldContext::Binary { bytes, json } => {
                let mut ctx = crate::Context::new();
                let mut r = Reader {
                    bytes,
                    at: 0,
                    text: std::str::from_utf8(bytes).ok(),
                };
                fill(&mut ctx, &mut r, &mut json.iter(), 0)?;
                Ok(Held::Own(ctx))
            }
        }
    }
}

/// A held context, ready to evaluate against.
// The `Context` inline (its attributes stay unallocated): one is held per
// module instance, and passed by reference.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Held<'a> {
    /// Sent as JSON.
    Json(&'a Value),
    /// Sent in the binary form.
    Own(crate::Context<'a>),
}

impl crate::EvaluationContext for Held<'_> {
    fn context_ref(&self) -> crate::ContextRef<'_> {
        match self {
            Held::Json(v) => v.context_ref(),
            Held::Own(c) => c.context_ref(),
        }
    }
}

/// Why a request's context could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// Bad binary form.
    #[error("{0}")]
    Binary(CompactError),
    /// Bad JSON.
    #[error("{0}")]
    Json(serde_json::Error),
}

/// Codes on the wire are declaration positions (error codes and types from
/// 1; 0 is "none"); `ALL` lists them in that order.
const REASONS: [Reason; 6] = Reason::ALL;
const ERRORS: [ErrorCode; 6] = ErrorCode::ALL;
const TYPES: [FlagType; 4] = FlagType::ALL;

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
        match results {
            [one] if key.is_some() => assert_eq!(&decode_one(catalog, &out, key).unwrap(), one),
            _ => assert!(decode_one(catalog, &out, key).is_err()),
        }
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
    fn records_from_positions_are_the_records_from_names() {
        let contexts = [
            json!({"targetingKey": "u1", "plan": "beta", "country": "US", "email": "a@b.c"}),
            json!({"targetingKey": "u2", "plan": "pro", "x": "\"", "user": {"id": "7"}}),
            json!({"targetingKey": "u3", "plan": "pro", "version": "2.4.1", "tier": 3}),
            json!({"plan": "pro"}),
            json!({"targetingKey": 5}),
            json!({}),
            json!([1]),
        ];
        let (mut checked, mut checked_at) = (0, 0);
        for doc in documents() {
            let parsed = ParsedSnapshot::parse(&doc).unwrap();
            let (engine, _) = Engine::from_parsed_lenient(&parsed);
            let catalog = Catalog::of_parsed(&engine, &parsed);
            let mut encoder = Encoder::new(&catalog);
            encoder.bind(&engine);
            let keys: Vec<String> = engine
                .flag_keys()
                .map(str::to_owned)
                .chain(["missing".to_owned()])
                .collect();
            for now in [0, 1_764_547_200_000, i64::MAX] {
                for ctx in &contexts {
                    let by_name = |results: &[Evaluation<'_>], all: bool| {
                        let mut out = Vec::new();
                        encoder.encode(results, all, &mut out).map(|()| out)
                    };
                    let mut out = Vec::new();
                    let got = encoder
                        .encode_all(&engine, ctx, now, &mut out)
                        .map(|()| out);
                    let want = by_name(&engine.evaluate_all(ctx, now), true);
                    assert_eq!(got.ok(), want.ok(), "{doc} {ctx}");
                    for key in &keys {
                        for expected in [None, Some(FlagType::Boolean), Some(FlagType::String)] {
                            let mut out = Vec::new();
                            let got = encoder
                                .encode_one(&engine, key, expected, ctx, now, &mut out)
                                .map(|()| out);
                            let one = engine.evaluate_typed(key, expected, ctx, now);
                            let want = by_name(std::slice::from_ref(&one), false);
                            assert_eq!(got.is_ok(), want.is_ok(), "{doc} {key} {ctx}");
                            // By catalog position: the same record, or a
                            // refusal the module answers by key.
                            let at = catalog.flags.iter().position(|f| f.key == *key);
                            if let Some(p) = at {
                                assert_eq!(encoder.key_at(p as u32), Some(key.as_str()));
                                let mut out = Vec::new();
                                let by_at = encoder
                                    .encode_at(&engine, p as u32, expected, ctx, now, &mut out)
                                    .map(|()| out);
                                if let (Ok(by_at), Ok(want)) = (by_at, &want) {
                                    assert_eq!(&by_at, want, "{doc} {key} at {p} {ctx}");
                                    checked_at += 1;
                                }
                            }
                            if let (Ok(got), Ok(want)) = (got, want) {
                                assert_eq!(got, want, "{doc} {key} {ctx}");
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
        assert!(checked > 1000, "{checked}");
        assert!(checked_at > 1000, "{checked_at}");
        // Not bound to this engine: refused.
        let snapshot = parse_json(SNAPSHOT).unwrap();
        let engine = Engine::from_snapshot(&snapshot).unwrap();
        let encoder = Encoder::new(&Catalog::of(&engine, &snapshot));
        assert!(
            encoder
                .encode_all(&engine, &json!({}), 0, &mut Vec::new())
                .is_err()
        );
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
                position: None,
                expected: Some(FlagType::Object),
                now_ms: -5,
                context: b"{}",
            },
            Request {
                flag: None,
                position: None,
                expected: None,
                now_ms: i64::MAX,
                context: b"{\"k\":1}",
            },
            Request {
                flag: Some(""),
                position: None,
                expected: None,
                now_ms: 0,
                context: b"",
            },
            Request {
                flag: None,
                position: Some(7),
                expected: Some(FlagType::String),
                now_ms: 1,
                context: b"{}",
            },
        ] {
            let mut out = Vec::new();
            r.write(&mut out);
            assert_eq!(Request::read(&out).unwrap(), r);
        }
        assert!(Request::read(&[0; 12]).is_err());
    }

    /// Contexts of every shape the binary form distinguishes.
    fn contexts() -> Vec<Value> {
        let mut deep = json!({"leaf": "x"});
        for i in 0..(MAX_DEPTH + 3) {
            let mut m = serde_json::Map::new();
            m.insert(format!("d{i}"), deep);
            m.insert("n".into(), json!(i));
            deep = Value::Object(m);
        }
        vec![
            json!({}),
            json!({"targetingKey": "u1", "plan": "beta"}),
            json!({"targetingKey": 5, "a": null, "b": true, "c": false, "u": u64::MAX,
                   "i": i64::MIN, "f": -0.0, "g": 2.5e-300, "h": 7.0,
                   "s": "\u{e9}\"\n", "": "empty name"}),
            json!({"app": {"version": "2.4.1", "build": {"n": 3, "tags": ["a", {"b": [1]}]}},
                   "list": [1, "two", null, [3]], "obj": {}}),
            deep,
            json!([1]),
            json!("text"),
            json!(null),
            json!(3),
        ]
    }

    #[test]
    fn binary_contexts_read_back_as_the_value_they_encode() {
        for v in contexts() {
            let mut out = Vec::new();
            write_context(&v, &mut out);
            assert_eq!(out.first() == Some(&CONTEXT_TAG), v.is_object(), "{v}");
            let held = HeldContext::read(&out).unwrap();
            let back = match held.context().unwrap() {
                Held::Json(j) => j.clone(),
                Held::Own(c) => c.to_json(),
            };
            assert_eq!(back, v);
            // Numbers keep their representation, not only their value.
            assert_eq!(back.to_string(), v.to_string());
        }
    }

    #[test]
    fn binary_contexts_evaluate_as_their_json() {
        let snapshot = parse_json(SNAPSHOT).unwrap();
        let engine = Engine::from_snapshot(&snapshot).unwrap();
        for v in contexts() {
            let mut out = Vec::new();
            write_context(&v, &mut out);
            let held = HeldContext::read(&out).unwrap();
            let ctx = held.context().unwrap();
            assert_eq!(
                engine.evaluate_all(&ctx, 0),
                engine.evaluate_all(&v, 0),
                "{v}"
            );
        }
    }

    #[test]
    fn broken_contexts_are_errors_not_panics() {
        let mut out = Vec::new();
        write_context(&contexts()[3], &mut out);
        for cut in 1..out.len() {
            assert!(HeldContext::read(&out[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = out.clone();
        trailing.push(0);
        assert!(HeldContext::read(&trailing).is_err());
        let mut bad_tag = vec![CONTEXT_TAG];
        bad_tag.extend_from_slice(&1u32.to_le_bytes());
        bad_tag.extend_from_slice(&1u32.to_le_bytes());
        bad_tag.extend_from_slice(b"a");
        bad_tag.push(99);
        assert!(HeldContext::read(&bad_tag).is_err());
        // JSON errors are serde_json's own, as before the binary form.
        let err = HeldContext::read(b"{").unwrap_err().to_string();
        assert_eq!(
            err,
            serde_json::from_slice::<Value>(b"{")
                .unwrap_err()
                .to_string()
        );
    }

    #[test]
    fn a_string_is_checked_even_when_the_whole_form_is_utf8() {
        // A value ending in half of "€" whose other half is the next name's
        // length: the form is UTF-8 as a whole, the value is not.
        let form = |value: &[u8]| {
            let mut out = vec![CONTEXT_TAG];
            out.extend_from_slice(&2u32.to_le_bytes());
            put_str(&mut out, "a");
            out.push(T_STR);
            put_u32(&mut out, value.len());
            out.extend_from_slice(value);
            put_str(&mut out, &"x".repeat(0xAC));
            out.push(T_NULL);
            out
        };
        let bad = form(&[0xE2, 0x82]);
        assert!(std::str::from_utf8(&bad[1..]).is_ok());
        assert!(HeldContext::read(&bad).is_err());
        let good = form("\u{e9}".as_bytes());
        let held = HeldContext::read(&good).unwrap();
        let Held::Own(ctx) = held.context().unwrap() else {
            panic!("binary")
        };
        assert_eq!(ctx.to_json()["a"], json!("\u{e9}"));
    }

    #[test]
    fn a_context_read_into_reused_buffers_is_read_afresh() {
        let forms: Vec<Vec<u8>> = contexts()
            .iter()
            .map(|v| {
                let mut out = Vec::new();
                write_context(v, &mut out);
                out
            })
            .collect();
        for old in &forms {
            for new in &forms {
                let reused = HeldContext::read(old).unwrap();
                let got = HeldContext::read_reusing(new, Some(reused)).unwrap();
                assert_eq!(got, HeldContext::read(new).unwrap());
            }
        }
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
