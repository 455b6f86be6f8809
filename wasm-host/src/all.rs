//! The results of an evaluate-all, decoded on access: the module's compact
//! reply stays in its memory, checked once, and a result is rebuilt (from
//! its 20-byte record and the catalog) only when it is asked for.

use std::borrow::Cow;

use bunting_core::compact::{self, Catalog, CatalogFlag, CompactError, NONE, RECORD};
use bunting_core::{ErrorCode, Evaluation, FlagMetadata, Reason};

use crate::Indexed;

/// Every flag's result of one evaluate-all
/// ([`WasmEngine::evaluate_all_view`](crate::WasmEngine::evaluate_all_view)),
/// in snapshot order, read in place.
///
/// The reply stays where the module wrote it and was checked once as a
/// whole, so nothing is built for results that are not read: looking up a
/// few flags of a large snapshot costs those few, and reading a result's
/// value decodes only that. Each result is an [`EvaluationRef`], whose
/// fields are those of the [`Evaluation`] that
/// [`WasmEngine::evaluate_all`](crate::WasmEngine::evaluate_all) returns at
/// the same index ([`EvaluationRef::to_evaluation`] builds it). The view
/// borrows the engine: drop it before the next call.
///
/// ```no_run
/// # use bunting_wasm_host::WasmRuntime;
/// # use serde_json::json;
/// # let mut engine = WasmRuntime::locate()?.load_snapshot("")?;
/// let all = engine.evaluate_all_view(&json!({"targetingKey": "user-1"}), 0)?;
/// if let Some(e) = all.find("new-checkout") {
///     println!("{:?} ({})", e.value(), e.reason().as_str());
/// }
/// let served = all.iter().filter(|e| e.value().is_some()).count();
/// # Ok::<(), bunting_wasm_host::HostError>(())
/// ```
#[derive(Debug)]
pub struct Evaluations<'e> {
    indexed: &'e Indexed,
    results: Results<'e>,
}

#[derive(Debug)]
enum Results<'e> {
    /// Compact records, checked, and the error messages of those that
    /// have one (by record index, ascending).
    Compact {
        records: &'e [u8],
        messages: Vec<(u32, &'e str)>,
    },
    /// Results the catalog could not express, which came as JSON.
    Json(Vec<Evaluation<'static>>),
}

/// A reply as [`check`]ed: what [`Evaluations`] is made of.
#[derive(Debug)]
pub(crate) enum Checked {
    /// A compact reply: its message ranges, by record index.
    Compact(Vec<(u32, std::ops::Range<usize>)>),
    /// A JSON reply, decoded.
    Json(Vec<Evaluation<'static>>),
}

/// Checks a compact evaluate-all reply against `catalog` as
/// [`compact::decode`] would decode it, without building a result: every
/// index in range, every code known, every message UTF-8.
pub(crate) fn check(
    catalog: &Catalog,
    reply: &[u8],
) -> Result<Vec<(u32, std::ops::Range<usize>)>, CompactError> {
    let word = |at: usize| -> Result<u32, CompactError> {
        reply
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or(CompactError::Malformed("ends early"))
    };
    if word(0)? != compact::MAGIC {
        return Err(CompactError::Malformed("no magic"));
    }
    let n = word(4)? as usize;
    let end = n
        .checked_mul(RECORD)
        .and_then(|b| b.checked_add(8))
        .ok_or(CompactError::Malformed("count"))?;
    let records = reply
        .get(8..end)
        .ok_or(CompactError::Malformed("ends early"))?;
    let flags = &catalog.flags;
    let mut messages = Vec::new();
    let mut next = end;
    for (i, rec) in records.chunks_exact(RECORD).enumerate() {
        let at = |i: usize| u32::from_le_bytes([rec[i], rec[i + 1], rec[i + 2], rec[i + 3]]);
        let (flag, variant, rule, prereq) = (at(0), at(4), at(8), at(12));
        // A bulk reply names a catalog flag in every record.
        let entry = match flag {
            NONE => return Err(CompactError::Malformed("an unknown flag in a bulk reply")),
            f => flags
                .get(f as usize)
                .ok_or(CompactError::OutOfRange("flag"))?,
        };
        if variant != NONE && variant as usize >= entry.variants.len() {
            return Err(CompactError::OutOfRange("variant"));
        }
        if rule != NONE && rule as usize >= entry.rules.len() {
            return Err(CompactError::OutOfRange("rule"));
        }
        if prereq != NONE && prereq as usize >= flags.len() {
            return Err(CompactError::OutOfRange("prerequisite"));
        }
        if rec[16] as usize >= Reason::ALL.len() {
            return Err(CompactError::OutOfRange("reason"));
        }
        if rec[17] as usize > ErrorCode::ALL.len() {
            return Err(CompactError::OutOfRange("error code"));
        }
        if rec[18] & 2 != 0 {
            let len = word(next)? as usize;
            let text = next + 4..next + 4 + len;
            let bytes = reply
                .get(text.clone())
                .ok_or(CompactError::Malformed("ends early"))?;
            std::str::from_utf8(bytes).map_err(|_| CompactError::Malformed("message not UTF-8"))?;
            messages.push((i as u32, text.clone()));
            next = text.end;
        }
    }
    Ok(messages)
}

impl<'e> Evaluations<'e> {
    /// The results of `reply`, which [`check`] answered `checked` for.
    pub(crate) fn new(indexed: &'e Indexed, reply: &'e [u8], checked: Checked) -> Evaluations<'e> {
        let results = match checked {
            Checked::Compact(ranges) => {
                let n = u32::from_le_bytes([reply[4], reply[5], reply[6], reply[7]]) as usize;
                let messages = ranges
                    .into_iter()
                    .map(|(i, at)| {
                        // Checked to be UTF-8 by `check`.
                        let text = std::str::from_utf8(&reply[at]).unwrap_or_default();
                        (i, text)
                    })
                    .collect();
                Results::Compact {
                    records: &reply[8..8 + n * RECORD],
                    messages,
                }
            }
            Checked::Json(all) => Results::Json(all),
        };
        Evaluations { indexed, results }
    }

    /// The number of results: one per flag of the snapshot.
    pub fn len(&self) -> usize {
        match &self.results {
            Results::Compact { records, .. } => records.len() / RECORD,
            Results::Json(all) => all.len(),
        }
    }

    /// Whether the snapshot has no flag.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The result at index `i` (snapshot order).
    pub fn get(&self, i: usize) -> Option<EvaluationRef<'_>> {
        match &self.results {
            Results::Compact { records, messages } => {
                let rec = records.get(i * RECORD..(i + 1) * RECORD)?;
                Some(EvaluationRef(Ref::Record {
                    flags: &self.indexed.catalog.flags,
                    rec,
                    i: i as u32,
                    messages,
                }))
            }
            Results::Json(all) => all.get(i).map(|e| EvaluationRef(Ref::Json(e))),
        }
    }

    /// The result of flag `key` (`None`: the snapshot has no such flag).
    pub fn find(&self, key: &str) -> Option<EvaluationRef<'_>> {
        match &self.results {
            Results::Compact { records, .. } => {
                // Results are in engine order, which is the catalog's: the
                // record at the flag's catalog position is normally its own.
                let flags = &self.indexed.catalog.flags;
                if let Some(&p) = self.indexed.positions.get(key) {
                    let p = p as usize;
                    if let Some(rec) = records.get(p * RECORD..(p + 1) * RECORD)
                        && word(rec, 0) as usize == p
                    {
                        return self.get(p);
                    }
                }
                records
                    .chunks_exact(RECORD)
                    .position(|rec| flags[word(rec, 0) as usize].key == key)
                    .and_then(|i| self.get(i))
            }
            Results::Json(all) => all
                .iter()
                .find(|e| e.key == key)
                .map(|e| EvaluationRef(Ref::Json(e))),
        }
    }

    /// Every result, in snapshot order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            all: self,
            next: 0,
            end: self.len(),
        }
    }

    /// Every result as an [`Evaluation`]: what
    /// [`WasmEngine::evaluate_all`](crate::WasmEngine::evaluate_all) returns.
    pub fn to_vec(&self) -> Vec<Evaluation<'e>> {
        match &self.results {
            Results::Compact { records, messages } => records
                .chunks_exact(RECORD)
                .enumerate()
                .map(|(i, rec)| decode(&self.indexed.catalog.flags, rec, i as u32, messages))
                .collect(),
            Results::Json(all) => all.clone(),
        }
    }
}

impl<'v> IntoIterator for &'v Evaluations<'_> {
    type Item = EvaluationRef<'v>;
    type IntoIter = Iter<'v>;
    fn into_iter(self) -> Iter<'v> {
        self.iter()
    }
}

/// The results of an [`Evaluations`] ([`Evaluations::iter`]).
#[derive(Debug, Clone)]
pub struct Iter<'v> {
    all: &'v Evaluations<'v>,
    next: usize,
    end: usize,
}

impl<'v> Iterator for Iter<'v> {
    type Item = EvaluationRef<'v>;
    fn next(&mut self) -> Option<EvaluationRef<'v>> {
        if self.next == self.end {
            return None;
        }
        self.next += 1;
        self.all.get(self.next - 1)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end - self.next;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// One result of an [`Evaluations`], read in place: each accessor decodes
/// only its field, and [`EvaluationRef::to_evaluation`] all of them. Its
/// fields are those of the [`Evaluation`] that
/// [`WasmEngine::evaluate_all`](crate::WasmEngine::evaluate_all) returns
/// for the same flag.
#[derive(Debug, Clone, Copy)]
pub struct EvaluationRef<'v>(Ref<'v>);

#[derive(Debug, Clone, Copy)]
enum Ref<'v> {
    /// A checked record, its index and the reply's messages.
    Record {
        flags: &'v [CatalogFlag],
        rec: &'v [u8],
        i: u32,
        messages: &'v [(u32, &'v str)],
    },
    Json(&'v Evaluation<'static>),
}

impl<'v> EvaluationRef<'v> {
    /// The catalog flag of a record.
    fn entry(flags: &'v [CatalogFlag], rec: &[u8]) -> &'v CatalogFlag {
        &flags[word(rec, 0) as usize]
    }

    /// The served variant's name and value.
    fn chosen(&self) -> Option<&'v (String, serde_json::Value)> {
        match self.0 {
            Ref::Record { flags, rec, .. } => {
                let v = word(rec, 4);
                (v != NONE).then(|| &Self::entry(flags, rec).variants[v as usize])
            }
            Ref::Json(_) => None,
        }
    }

    /// Flag key.
    pub fn key(&self) -> &'v str {
        match self.0 {
            Ref::Record { flags, rec, .. } => &Self::entry(flags, rec).key,
            Ref::Json(e) => &e.key,
        }
    }

    /// Served value.
    pub fn value(&self) -> Option<&'v serde_json::Value> {
        match self.0 {
            Ref::Record { .. } => self.chosen().map(|(_, v)| v),
            Ref::Json(e) => e.value.as_deref(),
        }
    }

    /// Served variant name.
    pub fn variant(&self) -> Option<&'v str> {
        match self.0 {
            Ref::Record { .. } => self.chosen().map(|(n, _)| n.as_str()),
            Ref::Json(e) => e.variant.as_deref(),
        }
    }

    /// Why this value was served.
    pub fn reason(&self) -> Reason {
        match self.0 {
            Ref::Record { rec, .. } => Reason::ALL[rec[16] as usize],
            Ref::Json(e) => e.reason,
        }
    }

    /// Set when the reason is `ERROR`.
    pub fn error_code(&self) -> Option<ErrorCode> {
        match self.0 {
            Ref::Record { rec, .. } => match rec[17] {
                0 => None,
                c => Some(ErrorCode::ALL[c as usize - 1]),
            },
            Ref::Json(e) => e.error_code,
        }
    }

    /// Human explanation of the error.
    pub fn error_message(&self) -> Option<&'v str> {
        match self.0 {
            Ref::Record {
                rec, i, messages, ..
            } => message(rec, i, messages),
            Ref::Json(e) => e.error_message.as_deref(),
        }
    }

    /// The matched targeting rule's id.
    pub fn rule_id(&self) -> Option<&'v str> {
        match self.0 {
            Ref::Record { flags, rec, .. } => {
                let r = word(rec, 8);
                (r != NONE).then(|| Self::entry(flags, rec).rules[r as usize].as_str())
            }
            Ref::Json(e) => e.rule_id.as_deref(),
        }
    }

    /// The prerequisite flag that did not serve its required variant.
    pub fn prerequisite_failed(&self) -> Option<&'v str> {
        match self.0 {
            Ref::Record { flags, rec, .. } => {
                let p = word(rec, 12);
                (p != NONE).then(|| flags[p as usize].key.as_str())
            }
            Ref::Json(e) => e.prerequisite_failed.as_deref(),
        }
    }

    /// The flag's metadata.
    pub fn metadata(&self) -> Option<&'v FlagMetadata> {
        match self.0 {
            Ref::Record { flags, rec, .. } => {
                (rec[18] & 1 != 0).then(|| &Self::entry(flags, rec).metadata)
            }
            Ref::Json(e) => e.metadata.as_deref(),
        }
    }

    /// The whole result, borrowing from the view.
    pub fn to_evaluation(&self) -> Evaluation<'v> {
        match self.0 {
            Ref::Record {
                flags,
                rec,
                i,
                messages,
            } => decode(flags, rec, i, messages),
            Ref::Json(e) => e.clone(),
        }
    }
}

/// The error message of record `i`, if it has one.
fn message<'v>(rec: &[u8], i: u32, messages: &[(u32, &'v str)]) -> Option<&'v str> {
    if rec[18] & 2 == 0 {
        return None;
    }
    messages
        .binary_search_by_key(&i, |(at, _)| *at)
        .ok()
        .map(|at| messages[at].1)
}

/// Record `i`, checked by [`check`], as an [`Evaluation`].
fn decode<'e>(
    flags: &'e [CatalogFlag],
    rec: &[u8],
    i: u32,
    messages: &[(u32, &'e str)],
) -> Evaluation<'e> {
    let (flag, variant, rule, prereq) = (word(rec, 0), word(rec, 4), word(rec, 8), word(rec, 12));
    let entry = &flags[flag as usize];
    let chosen = (variant != NONE).then(|| &entry.variants[variant as usize]);
    Evaluation {
        key: Cow::Borrowed(entry.key.as_str()),
        value: chosen.map(|(_, v)| Cow::Borrowed(v)),
        variant: chosen.map(|(n, _)| Cow::Borrowed(n.as_str())),
        reason: Reason::ALL[rec[16] as usize],
        error_code: match rec[17] {
            0 => None,
            c => Some(ErrorCode::ALL[c as usize - 1]),
        },
        error_message: message(rec, i, messages).map(str::to_owned),
        rule_id: (rule != NONE).then(|| Cow::Borrowed(entry.rules[rule as usize].as_str())),
        prerequisite_failed: (prereq != NONE)
            .then(|| Cow::Borrowed(flags[prereq as usize].key.as_str())),
        metadata: (rec[18] & 1 != 0).then_some(Cow::Borrowed(&entry.metadata)),
    }
}

/// The `u32` at `at` of a record.
fn word(rec: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([rec[at], rec[at + 1], rec[at + 2], rec[at + 3]])
}
