//! Validation and compilation of a [`Snapshot`] into the engine's form.
//!
//! Every problem is collected (none stops the walk), so one load reports
//! them all. In lenient mode flags with problems are kept as broken flags
//! that evaluate to an error, and the rest of the snapshot still loads.

use std::sync::Arc;

use serde_json::Value;

use crate::borrowed::{Flag, Rule, Rules, Segment, Serve, Snapshot, same_value};
use crate::bucket::{BUCKETS, Bucketer, percent_to_buckets};
use crate::model::{DEFAULT_BUCKET_BY, FlagMetadata, FlagType, SCHEMA_VERSION};
use crate::numtext;
use crate::result::{ErrorCode, Reason};
use crate::rules::{Condition, ParseError, SegmentResolver};
use crate::snapshot::{Location, Problem};
use crate::time::parse_rfc3339_ms;

/// A hash map with foldhash's fast hasher (not SipHash): for lookups on the
/// evaluation path. Bucketing does not use it and stays bit-identical.
pub(crate) type FastMap<K, V> = foldhash::HashMap<K, V>;
/// A hash set with foldhash's fast hasher; see [`FastMap`].
pub(crate) type FastSet<T> = foldhash::HashSet<T>;
/// Positions by key: of the layers and segments (`None` for one with a
/// problem), and of the conditions and rule ids compiled so far (always
/// `Some`). One map type for the four, because every type of map is a
/// copy of the hash table's code in a WebAssembly module (the edge
/// worker's bundle).
pub(crate) type Positions<'s> = FastMap<&'s str, Option<usize>>;

/// The position of `key` in `map`, given by `new` and recorded the first
/// time `key` is seen (for maps whose positions are all `Some`).
fn position<'s>(map: &mut Positions<'s>, key: &'s str, new: impl FnOnce() -> usize) -> usize {
    map.entry(key)
        .or_insert_with(|| Some(new()))
        .expect("recorded positions are Some")
}

/// A serve in compiled form; variants are indices into the flag's variants.
/// 24 bytes: the rarer schedule lives behind a box.
#[derive(Debug, Clone)]
pub(crate) enum CServe {
    Variant(usize),
    /// Consecutive ranges: `(end bucket, variant)`, ends increasing to
    /// BUCKETS. Shared by every serve of the snapshot with the same ranges.
    Rollout(Arc<[(u32, u32)]>),
    Schedule(Box<CSchedule>),
}

/// A compiled schedule.
#[derive(Debug, Clone)]
pub(crate) struct CSchedule {
    pub variant: usize,
    pub otherwise: usize,
    /// `(from time ms, buckets covered)`, times increasing.
    pub steps: Vec<(i64, u32)>,
}

#[derive(Debug, Clone)]
pub(crate) struct CRule {
    /// Shared by every rule of the snapshot with the same id.
    pub id: Arc<str>,
    /// Shared by every rule of the snapshot with the same condition text.
    pub condition: Arc<Condition>,
    pub serve: CServe,
}

#[derive(Debug, Clone)]
pub(crate) struct CLayerSlot {
    pub layer: usize,
    pub start: u32,
    pub end: u32,
}

/// A compiled flag. What most flags do not have (prerequisites, a
/// bucketing attribute other than `targetingKey`, a layer, a validation
/// failure) is in [`CFlagExtra`], behind one optional box.
#[derive(Debug, Clone)]
pub(crate) struct CFlag {
    pub key: Box<str>,
    pub flag_type: FlagType,
    pub enabled: bool,
    /// Available to client-side SDKs (`clientSide`).
    pub client_side: bool,
    /// Sorted by name. Shared by the flags of the snapshot with the same
    /// variants (names and values, written alike).
    pub variants: Variants,
    pub off: usize,
    /// Shared by the flags with the same packed rule list and variants.
    pub rules: Arc<[CRule]>,
    pub fallthrough: CServe,
    pub bucketer: Bucketer,
    /// Built on first use: [`Compiled::metadata`].
    pub metadata: LazyMetadata,
    /// The answer when it cannot depend on the context: the off variant of
    /// a disabled flag, or the fixed fallthrough of a flag without rules
    /// and prerequisites. Set once the whole snapshot is checked.
    pub fixed: Option<(usize, Reason)>,
    pub extra: Option<Box<CFlagExtra>>,
}

/// A flag's metadata, built on first use ([`MetadataTexts::get`]) from
/// the snapshot's metadata texts, so that loading allocates nothing per
/// flag for it.
#[derive(Debug, Clone)]
pub(crate) struct LazyMetadata {
    /// Where the flag's texts start in [`MetadataTexts::text`].
    text: usize,
    /// Its lengths, `MetadataTexts::lengths[from..to]`: none for empty
    /// metadata, else the description's and the owner's (0 for none,
    /// the length + 1 otherwise), then the tags'.
    from: usize,
    to: usize,
    built: std::sync::OnceLock<FlagMetadata>,
}

/// The metadata texts of every flag, back to back (see [`LazyMetadata`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct MetadataTexts {
    text: String,
    lengths: Vec<usize>,
}

impl MetadataTexts {
    /// Keeps `metadata`'s texts; what builds it again on first use.
    fn add(&mut self, metadata: &crate::borrowed::FlagMetadata<'_>) -> LazyMetadata {
        let (text, from) = (self.text.len(), self.lengths.len());
        let m = metadata;
        if m.description.is_some() || m.owner.is_some() || !m.tags.is_empty() {
            for s in [&m.description, &m.owner] {
                self.lengths.push(s.as_ref().map_or(0, |s| s.len() + 1));
                self.text.push_str(s.as_deref().unwrap_or(""));
            }
            for tag in m.tags.iter() {
                self.lengths.push(tag.len());
                self.text.push_str(tag);
            }
        }
        LazyMetadata {
            text,
            from,
            to: self.lengths.len(),
            built: std::sync::OnceLock::new(),
        }
    }

    /// The metadata of a flag, built the first time it is asked for:
    /// what the flag's `metadata` says, as the model holds it.
    pub(crate) fn get<'e>(&self, metadata: &'e LazyMetadata) -> &'e FlagMetadata {
        metadata.built.get_or_init(|| {
            let mut out = FlagMetadata::default();
            let mut at = metadata.text;
            for (k, &len) in self.lengths[metadata.from..metadata.to].iter().enumerate() {
                let len = if k < 2 { len.saturating_sub(1) } else { len };
                let s = self.text[at..at + len].to_string();
                at += len;
                match k {
                    0 => out.description = (self.lengths[metadata.from] > 0).then_some(s),
                    1 => out.owner = (self.lengths[metadata.from + 1] > 0).then_some(s),
                    _ => out.tags.push(s),
                }
            }
            out
        })
    }
}

/// A compiled flag's variants: `(name, value)` sorted by name.
pub(crate) type Variants = Arc<[(Box<str>, Value)]>;

/// The rarer parts of a compiled flag.
#[derive(Debug, Clone, Default)]
pub(crate) struct CFlagExtra {
    /// `(flag index, variant name)` pairs.
    pub prerequisites: Vec<(usize, String)>,
    /// The bucketing attribute path; `None` for `targetingKey`.
    pub bucket_by: Option<Vec<String>>,
    pub layer: Option<CLayerSlot>,
    /// Set when the flag failed validation (lenient loads only).
    pub broken: Option<(ErrorCode, String)>,
}

impl CFlag {
    /// `(flag index, variant name)` pairs of the prerequisites.
    pub(crate) fn prerequisites(&self) -> &[(usize, String)] {
        self.extra.as_ref().map_or(&[], |e| &e.prerequisites)
    }

    /// The bucketing attribute path; `None` for `targetingKey`.
    pub(crate) fn bucket_by(&self) -> Option<&[String]> {
        self.extra.as_ref().and_then(|e| e.bucket_by.as_deref())
    }

    /// The flag's share of its layer, if it is in one.
    pub(crate) fn layer(&self) -> Option<&CLayerSlot> {
        self.extra.as_ref().and_then(|e| e.layer.as_ref())
    }

    /// Why the flag failed validation (lenient loads only).
    pub(crate) fn broken(&self) -> Option<&(ErrorCode, String)> {
        self.extra.as_ref().and_then(|e| e.broken.as_ref())
    }

    /// The rarer parts, created empty on first use.
    fn extra_mut(&mut self) -> &mut CFlagExtra {
        self.extra.get_or_insert_with(Box::default)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct CSegment {
    pub included: FastSet<String>,
    pub excluded: FastSet<String>,
    pub condition: Option<Condition>,
}

#[derive(Debug, Clone)]
pub(crate) struct CLayer {
    pub bucketer: Bucketer,
    /// The bucketing attribute path; `None` for `targetingKey`.
    pub bucket_by: Option<Vec<String>>,
}

/// Flag key to position in the snapshot's flags: an open-addressing table
/// (linear probing, at most half full) of positions, hashed with foldhash.
/// It holds no keys: 4 bytes a slot, where a map of owned keys to
/// positions held a copy of every key and 33 bytes a slot. Keys come from
/// the snapshot; a caller's key is only looked up, never inserted.
#[derive(Debug, Clone)]
pub(crate) struct FlagIndex {
    hasher: foldhash::fast::RandomState,
    /// Position + 1 of a flag, or 0 for an empty slot; a power of two long.
    slots: Box<[u32]>,
}

impl FlagIndex {
    fn with_capacity(n: usize) -> FlagIndex {
        FlagIndex {
            hasher: foldhash::fast::RandomState::default(),
            slots: vec![0; (2 * n).max(8).next_power_of_two()].into_boxed_slice(),
        }
    }

    /// The slot holding `key` or, if there is none, the empty slot where
    /// it belongs; `key_of` gives the key of a position.
    fn slot<'k>(&self, key: &str, key_of: impl Fn(usize) -> &'k str) -> usize {
        use std::hash::BuildHasher;
        let mask = self.slots.len() - 1;
        let mut i = self.hasher.hash_one(key) as usize & mask;
        loop {
            match self.slots[i] {
                0 => return i,
                // Not `==`: wasm32's `memcmp` is a byte loop.
                s if crate::context::same_bytes(
                    key_of(s as usize - 1).as_bytes(),
                    key.as_bytes(),
                ) =>
                {
                    return i;
                }
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// The position of flag `key`; `key_of` gives the key of a position.
    pub(crate) fn get<'k>(&self, key: &str, key_of: impl Fn(usize) -> &'k str) -> Option<usize> {
        match self.slots[self.slot(key, key_of)] {
            0 => None,
            s => Some(s as usize - 1),
        }
    }

    /// Records `key` at `position` (the later of two equal keys wins);
    /// whether the key was new.
    fn insert<'k>(
        &mut self,
        key: &str,
        position: usize,
        key_of: impl Fn(usize) -> &'k str,
    ) -> bool {
        let slot = self.slot(key, key_of);
        let new = self.slots[slot] == 0;
        self.slots[slot] = u32::try_from(position + 1).expect("fewer than 4 billion flags");
        new
    }
}

/// Everything the engine evaluates against.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    pub flags: Vec<CFlag>,
    /// Flag key to position in `flags`.
    pub index: FlagIndex,
    pub segments: Vec<CSegment>,
    pub layers: Vec<CLayer>,
    /// The flags' metadata texts.
    pub metadata: MetadataTexts,
}

impl Compiled {
    /// Whether any condition a flag that is not broken may evaluate (its
    /// rules', every valid segment's) reads the evaluation time.
    pub(crate) fn reads_now(&self) -> bool {
        self.flags
            .iter()
            .filter(|f| f.broken().is_none())
            .flat_map(|f| f.rules.iter())
            .any(|r| r.condition.reads_now())
            || self
                .segments
                .iter()
                .filter_map(|s| s.condition.as_ref())
                .any(Condition::reads_now)
    }

    /// The top-level context attributes that any condition (of a rule or a
    /// segment) or bucketing attribute reads, each once, plus
    /// `targetingKey` (bucketing and segment lists read it). `first_use`
    /// says, per rule in flag order, whether its condition is walked (the
    /// first rule of each shared condition is enough).
    pub(crate) fn attribute_roots(&self, first_use: &[bool]) -> Box<[Box<str>]> {
        let mut roots: Vec<Box<str>> = vec![DEFAULT_BUCKET_BY.into()];
        let mut add = |root: &str| {
            if !roots.iter().any(|r| **r == *root) {
                roots.push(root.into());
            }
        };
        let mut first = first_use.iter();
        for flag in &self.flags {
            for rule in flag.rules.iter() {
                if first.next().copied().unwrap_or(true) {
                    rule.condition.for_each_root(&mut add);
                }
            }
            if let Some(root) = flag.bucket_by().and_then(|p| p.first()) {
                add(root);
            }
        }
        for segment in &self.segments {
            if let Some(c) = &segment.condition {
                c.for_each_root(&mut add);
            }
        }
        for layer in &self.layers {
            if let Some(root) = layer.bucket_by.as_ref().and_then(|p| p.first()) {
                add(root);
            }
        }
        roots.into_boxed_slice()
    }
}

pub(crate) struct Ctx {
    problems: Vec<Problem>,
}

impl Ctx {
    fn add(&mut self, at: Location, message: String) {
        self.problems.push(Problem::new(at, message));
    }

    /// A problem of an entity that has no key to name it by (its key is
    /// the problem): `entity` stays empty, the location still says which.
    fn add_without_entity(&mut self, at: Location, message: String) {
        self.problems.push(Problem {
            entity: None,
            ..Problem::new(at, message)
        });
    }

    fn parse_error(&mut self, at: Location, error: &ParseError) {
        self.problems.push(Problem::parse_error(at, error));
    }
}

fn split_path(s: &str) -> Option<Vec<String>> {
    let segs: Vec<String> = s.split('.').map(str::to_string).collect();
    (!segs.iter().any(String::is_empty)).then_some(segs)
}

/// A compiled `bucketBy`: `None` for `targetingKey` (the default, and the
/// fallback of an invalid path, which is reported), else the path.
fn bucket_path(by: Option<&str>, report: impl FnOnce(&str)) -> Option<Vec<String>> {
    let by = by.unwrap_or(DEFAULT_BUCKET_BY);
    if by == DEFAULT_BUCKET_BY {
        return None;
    }
    match split_path(by) {
        Some(path) if path != [DEFAULT_BUCKET_BY] => Some(path),
        Some(_) => None,
        None => {
            report(by);
            None
        }
    }
}

/// How [`compile`] knows whether a snapshot's declared checksum matches
/// its content.
#[derive(Clone, Copy)]
pub(crate) enum Checksum {
    /// By hashing the content with this function
    /// ([`crate::snapshot::checksum_of`]), passed in so that a build that
    /// never hashes (the edge worker, [`Checksum::Packed`]) does not link
    /// the canonical JSON writer.
    Hash(fn(&Snapshot<'_>) -> String),
    /// As the packer found it: a packed snapshot carries a digest only if
    /// its declared checksum matched (`verified`), so one without a digest
    /// that declares a checksum did not match.
    Packed {
        /// Whether the packed bytes carry a digest (which holds).
        verified: bool,
    },
}

/// Compiles `snapshot`, returning the compiled form and every problem found.
/// Its declared checksum is checked as `checksum` says.
pub(crate) fn compile(snapshot: &Snapshot<'_>, checksum: Checksum) -> (Compiled, Vec<Problem>) {
    let mut cx = Ctx {
        problems: Vec::new(),
    };

    if snapshot.schema_version != SCHEMA_VERSION {
        cx.add(
            Location::snapshot("schemaVersion"),
            format!(
                "schema version {} is not supported by this engine (it reads {SCHEMA_VERSION})",
                snapshot.schema_version
            ),
        );
    }
    if snapshot.environment.trim().is_empty() {
        cx.add(
            Location::snapshot("environment"),
            "must not be empty".into(),
        );
    }
    if parse_rfc3339_ms(&snapshot.generated_at).is_none() {
        cx.add(
            Location::snapshot("generatedAt"),
            format!("{:?} is not an RFC 3339 time", snapshot.generated_at),
        );
    }
    if let Some(declared) = &snapshot.checksum {
        match checksum {
            Checksum::Hash(hash) => {
                let actual = hash(snapshot);
                if **declared != *actual {
                    cx.add(
                        Location::snapshot("checksum"),
                        format!(
                            "checksum mismatch: document says {declared}, content hashes to {actual}"
                        ),
                    );
                }
            }
            Checksum::Packed { verified: true } => {}
            Checksum::Packed { verified: false } => cx.add(
                Location::snapshot("checksum"),
                format!(
                    "checksum mismatch: document says {declared}, which did not match its \
                     content when it was packed"
                ),
            ),
        }
    }

    // Layers. A layer with a problem maps to `None`: flags in it are invalid
    // too, rather than silently bucketing some other way.
    let mut layer_index: Positions<'_> = FastMap::default();
    let mut layers = Vec::new();
    for (i, layer) in snapshot.layers.iter().enumerate() {
        let before = cx.problems.len();
        if layer_index.insert(&layer.key, Some(i)).is_some() {
            cx.add(
                Location::layer(i, &layer.key, "key"),
                "duplicate layer key".into(),
            );
        }
        let bucket_by = bucket_path(layer.bucket_by.as_deref(), |by| {
            cx.add(
                Location::layer(i, &layer.key, "bucketBy"),
                format!("{by:?} is not an attribute path"),
            );
        });
        layers.push(CLayer {
            bucketer: Bucketer::new(layer.salt.as_deref().unwrap_or(&layer.key)),
            bucket_by,
        });
        if cx.problems.len() > before {
            layer_index.insert(&layer.key, None);
        }
    }

    let (segments, segment_index) = compile_segments(&mut cx, &snapshot.segments);

    // Flag index first, so prerequisites can point forwards.
    let key_of = |i: usize| &*snapshot.flags[i].key;
    let mut index = FlagIndex::with_capacity(snapshot.flags.len());
    for (i, flag) in snapshot.flags.iter().enumerate() {
        if flag.key.is_empty() {
            cx.add_without_entity(
                Location::flag(i, &flag.key, "key"),
                "must not be empty".into(),
            );
        }
        if !index.insert(&flag.key, i, key_of) {
            cx.add(
                Location::flag(i, &flag.key, "key"),
                "duplicate flag key".into(),
            );
        }
    }

    let resolve = |name: &str| resolve_segment(&segment_index, name);
    let mut flags = Vec::with_capacity(snapshot.flags.len());
    let mut shared = Shared::default();
    for (i, flag) in snapshot.flags.iter().enumerate() {
        let before = cx.problems.len();
        let mut compiled = compile_flag(
            &mut cx,
            i,
            flag,
            &resolve,
            &mut shared,
            &index,
            &snapshot.flags,
            &layer_index,
        );
        let mine = &cx.problems[before..];
        if !mine.is_empty() {
            let code = if mine.iter().any(|p| p.parse_error) {
                ErrorCode::ParseError
            } else {
                ErrorCode::General
            };
            let msg = mine
                .iter()
                .map(|p| format!("{}: {}", p.path, p.full_message()))
                .collect::<Vec<_>>()
                .join("; ");
            compiled.extra_mut().broken =
                Some((code, format!("flag {:?} is invalid: {msg}", flag.key)));
        }
        flags.push(compiled);
    }

    check_layer_overlaps(&mut cx, snapshot, &mut flags);
    check_prerequisite_cycles(&mut cx, &mut flags);
    for flag in &mut flags {
        flag.fixed = fixed_answer(flag);
    }

    (
        Compiled {
            flags,
            index,
            segments,
            layers,
            metadata: shared.metadata,
        },
        cx.problems,
    )
}

/// A condition compiled ahead of time (a packed snapshot's, see
/// [`crate::packed`]) or its problem, as [`Condition::parse_with`] gives it.
pub(crate) type Precompiled = Result<Arc<Condition>, ParseError>;

/// Compiles the snapshot's segments, reporting their problems: the
/// compiled segments, and each key's position, `None` for a key of a
/// segment with a problem (a repeated key, a condition that does not
/// compile), which conditions cannot reference.
pub(crate) fn compile_segments<'s>(
    cx: &mut Ctx,
    segments: &'s [Segment<'_>],
) -> (Vec<CSegment>, Positions<'s>) {
    let mut index: Positions<'s> = FastMap::default();
    let mut compiled = Vec::with_capacity(segments.len());
    for (i, seg) in segments.iter().enumerate() {
        let before = cx.problems.len();
        if index.insert(&seg.key, Some(i)).is_some() {
            cx.add(
                Location::segment(i, &seg.key, "key"),
                "duplicate segment key".into(),
            );
        }
        let condition = segment_condition(seg).and_then(|c| {
            c.map_err(|e| cx.parse_error(Location::segment(i, &seg.key, "condition"), &e))
                .ok()
        });
        compiled.push(CSegment {
            included: seg.included.iter().map(|s| s.to_string()).collect(),
            excluded: seg.excluded.iter().map(|s| s.to_string()).collect(),
            condition: condition.map(Arc::unwrap_or_clone),
        });
        if cx.problems.len() > before {
            index.insert(&seg.key, None);
        }
    }
    (compiled, index)
}

/// The segments' keys as [`compile_segments`] resolves them, for
/// compiling rule conditions ahead of time (the packer).
#[cfg(feature = "rule-parser")]
pub(crate) fn segment_index<'s>(segments: &'s [Segment<'_>]) -> Positions<'s> {
    compile_segments(
        &mut Ctx {
            problems: Vec::new(),
        },
        segments,
    )
    .1
}

/// `segment("name")` in a rule condition: the position of a segment
/// without problems, or what the parser reports.
pub(crate) fn resolve_segment(index: &Positions<'_>, name: &str) -> Result<usize, String> {
    match index.get(name) {
        Some(Some(i)) => Ok(*i),
        Some(None) => Err(format!("a valid segment (segment {name:?} is invalid)")),
        None => Err(format!(
            "a known segment (no segment {name:?} in this snapshot)"
        )),
    }
}

/// A segment's condition, if it has one: as the packer compiled it, or
/// parsed (`segment(…)` refused: segments cannot nest).
pub(crate) fn segment_condition(seg: &Segment<'_>) -> Option<Precompiled> {
    let src = seg.condition.as_deref()?;
    Some(match &seg.compiled {
        Some(c) => c.clone(),
        None => parse_condition(src, &|name| {
            Err(format!(
                "no segment reference (segment {name:?} is referenced from a segment; \
                 segments cannot nest)"
            ))
        }),
    })
}

/// A rule's condition: as the packer compiled it, or parsed with
/// `segment(…)` resolved by `resolve`.
pub(crate) fn rule_condition(rule: &Rule<'_>, resolve: SegmentResolver<'_>) -> Precompiled {
    match &rule.compiled {
        Some(c) => c.clone(),
        None => parse_condition(&rule.condition, resolve),
    }
}

/// Parses and compiles a condition's text.
#[cfg(feature = "rule-parser")]
fn parse_condition(src: &str, resolve: SegmentResolver<'_>) -> Precompiled {
    Condition::parse_with(src, resolve).map(Arc::new)
}

/// A build without the rule parser compiles only precompiled conditions
/// (packed snapshots of format version 2): a condition text is a problem.
#[cfg(not(feature = "rule-parser"))]
fn parse_condition(src: &str, _: SegmentResolver<'_>) -> Precompiled {
    Err(ParseError {
        line: 1,
        column: 1,
        length: src.chars().count() as u32,
        found: "a condition text".into(),
        expected: "a precompiled condition (this build reads packed snapshots of format \
                   version 2 only: it has no rule parser)"
            .into(),
    })
}

/// What `flag` serves whatever the context, if that is decided at load.
/// Mirrors the order of `Engine::eval_flag`: a broken flag fails, a
/// disabled one serves its off variant before its prerequisites are looked
/// at, and a flag without rules and prerequisites serves its fallthrough.
fn fixed_answer(flag: &CFlag) -> Option<(usize, Reason)> {
    if flag.broken().is_some() {
        return None;
    }
    if !flag.enabled {
        return Some((flag.off, Reason::Disabled));
    }
    match flag.fallthrough {
        CServe::Variant(v) if flag.rules.is_empty() && flag.prerequisites().is_empty() => {
            Some((v, Reason::Static))
        }
        _ => None,
    }
}

fn variant_index(variants: &[(Box<str>, Value)], name: &str) -> Option<usize> {
    if variants.len() <= 8 {
        // Names are unique: the one found is the one a search would find,
        // and comparing lengths first is cheaper than ordering bytes.
        variants
            .iter()
            .position(|(n, _)| n.len() == name.len() && **n == *name)
    } else {
        variants.binary_search_by(|(n, _)| (**n).cmp(name)).ok()
    }
}

/// What the flags of a snapshot share when they are written alike, so
/// that a thousand flags with the same variants, rule ids and splits hold
/// (and allocate) them once; and the scratch space of one flag's checks.
#[derive(Default)]
struct Shared<'s> {
    /// The flag conditions compiled so far, by their text: positions in
    /// `compiled`. A condition used by many flags (the same audience, the
    /// same segment) is parsed once and shared. All flag conditions
    /// resolve segments through the same resolver, so the text alone
    /// decides the compiled form, or the error.
    conditions: Positions<'s>,
    compiled: Vec<Precompiled>,
    /// Rule ids as written: positions in `id_texts`.
    ids: Positions<'s>,
    id_texts: Vec<Arc<str>>,
    /// `rule-<j>`, the id of rule `j` without one, by `j`.
    default_ids: Vec<Arc<str>>,
    /// Rollouts by a hash of their ranges: positions in `rollout_sets`.
    rollouts: FastMap<u64, Vec<usize>>,
    rollout_sets: Vec<Arc<[(u32, u32)]>>,
    /// Variant sets by [`variants_hash`], only those that can be shared:
    /// positions in `variant_sets`. The same map type as `rollouts`: one
    /// copy of the hash table's code for both.
    variants: FastMap<u64, Vec<usize>>,
    variant_sets: Vec<Variants>,
    /// Compiled rule lists by the packed rule list's position (a small
    /// dense number, so no hash table), each with its variants' address.
    rule_lists: Vec<Vec<(usize, Arc<[CRule]>)>>,
    /// Compiled fallthroughs by the packed serve's position, likewise.
    fallthroughs: Vec<Vec<(usize, CServe)>>,
    /// The rules of every flag without any.
    no_rules: Option<Arc<[CRule]>>,
    /// The flags' metadata texts.
    metadata: MetadataTexts,
    /// The ids of the flag's rules so far.
    seen_ids: Vec<Arc<str>>,
    /// The ranges of the rollout being compiled.
    ranges: Vec<(u32, u32)>,
}

impl<'s> Shared<'s> {
    /// The id of rule `j` (`id` if it has one).
    fn rule_id(&mut self, id: Option<&'s str>, j: usize) -> Arc<str> {
        match id {
            Some(id) => {
                let at = position(&mut self.ids, id, || {
                    self.id_texts.push(Arc::from(id));
                    self.id_texts.len() - 1
                });
                Arc::clone(&self.id_texts[at])
            }
            None => {
                while self.default_ids.len() <= j {
                    let k = self.default_ids.len();
                    self.default_ids.push(Arc::from(format!("rule-{k}")));
                }
                Arc::clone(&self.default_ids[j])
            }
        }
    }

    /// The compiled rules kept for `key` (see `rule_lists`), if any.
    fn rule_list(&self, (at, vars): ListKey) -> Option<Arc<[CRule]>> {
        let (_, rules) = self.rule_lists.get(at)?.iter().find(|(v, _)| *v == vars)?;
        Some(Arc::clone(rules))
    }

    /// Keeps `rules`, compiled without problems, for the flags after with
    /// the same `key`.
    fn keep_rule_list(&mut self, (at, vars): ListKey, rules: &Arc<[CRule]>) {
        if self.rule_lists.len() <= at {
            self.rule_lists.resize_with(at + 1, Vec::new);
        }
        self.rule_lists[at].push((vars, Arc::clone(rules)));
    }

    /// The compiled fallthrough kept for `key`, if any.
    fn fallthrough(&self, (at, vars): ListKey) -> Option<CServe> {
        let (_, serve) = self
            .fallthroughs
            .get(at)?
            .iter()
            .find(|(v, _)| *v == vars)?;
        Some(serve.clone())
    }

    /// Keeps `serve`, compiled without problems, for the flags after with
    /// the same `key`.
    fn keep_fallthrough(&mut self, (at, vars): ListKey, serve: &CServe) {
        if self.fallthroughs.len() <= at {
            self.fallthroughs.resize_with(at + 1, Vec::new);
        }
        self.fallthroughs[at].push((vars, serve.clone()));
    }

    /// The rollout `ranges`, shared.
    fn rollout(&mut self, ranges: &[(u32, u32)]) -> Arc<[(u32, u32)]> {
        use std::hash::BuildHasher;
        let hash = foldhash::fast::FixedState::default().hash_one(ranges);
        let same = self.rollouts.entry(hash).or_default();
        if let Some(&at) = same.iter().find(|&&at| *self.rollout_sets[at] == *ranges) {
            return Arc::clone(&self.rollout_sets[at]);
        }
        let new: Arc<[(u32, u32)]> = Arc::from(ranges);
        same.push(self.rollout_sets.len());
        self.rollout_sets.push(Arc::clone(&new));
        new
    }

    /// The compiled form of a flag's variants, shared with an earlier flag
    /// whose variants have the same names and values written the same way.
    fn variants(&mut self, variants: &crate::borrowed::Variants<'_>) -> Variants {
        if let crate::borrowed::Variants::Shared(shared) = variants {
            return Arc::clone(shared);
        }
        let Some(hash) = variants_hash(variants) else {
            return owned_variants(variants);
        };
        let same = self.variants.entry(hash).or_default();
        if let Some(found) = same.iter().map(|&at| &self.variant_sets[at]).find(|set| {
            set.len() == variants.iter().count()
                && set
                    .iter()
                    .zip(variants.iter())
                    .all(|((n, v), (name, value))| **n == *name && same_value(v, value))
        }) {
            return Arc::clone(found);
        }
        let new = owned_variants(variants);
        same.push(self.variant_sets.len());
        self.variant_sets.push(Arc::clone(&new));
        new
    }
}

/// What flags whose compiled rules are the same have in common: the
/// position of their packed rule list (or of their packed fallthrough)
/// and the address of their compiled variants.
type ListKey = (usize, usize);

fn owned_variants(variants: &crate::borrowed::Variants<'_>) -> Variants {
    variants
        .iter()
        .map(|(k, v)| (Box::from(k), v.clone()))
        .collect()
}

/// A hash of the names and values of `variants`, if they can be shared:
/// `None` when a value is an array or object (compared and shared
/// whole, they would rarely be equal anyway).
fn variants_hash(variants: &crate::borrowed::Variants<'_>) -> Option<u64> {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut h = foldhash::fast::FixedState::default().build_hasher();
    for (name, value) in variants.iter() {
        name.hash(&mut h);
        match value {
            Value::Null => 0u8.hash(&mut h),
            Value::Bool(b) => (1u8, *b).hash(&mut h),
            Value::String(s) => (2u8, s).hash(&mut h),
            Value::Number(n) => (3u8, n.as_f64().map(f64::to_bits)).hash(&mut h),
            Value::Array(_) | Value::Object(_) => return None,
        }
    }
    Some(h.finish())
}

#[allow(clippy::too_many_arguments)]
fn compile_flag<'s>(
    cx: &mut Ctx,
    i: usize,
    flag: &'s Flag<'s>,
    resolve: &dyn Fn(&str) -> Result<usize, String>,
    shared: &mut Shared<'s>,
    index: &FlagIndex,
    all: &[Flag<'_>],
    layer_index: &Positions<'_>,
) -> CFlag {
    let flag_at = |field: String| Location::flag(i, &flag.key, field);
    // BTreeMap iteration is sorted, so binary search by name works.
    let variants = shared.variants(&flag.variants);
    if variants.is_empty() {
        cx.add(
            flag_at("variants".to_string()),
            "a flag needs at least one variant".into(),
        );
    }
    for (name, value) in &*variants {
        if !flag.flag_type.admits(value) {
            cx.add(
                flag_at(format!("variants.{name}")),
                format!(
                    "value {value} is not of the flag's type {}",
                    flag.flag_type.as_str()
                ),
            );
        }
    }
    let variant = |cx: &mut Ctx, name: &str, path: &dyn Fn() -> String| {
        variant_index(&variants, name).unwrap_or_else(|| {
            cx.add(flag_at(path()), format!("unknown variant {name:?}"));
            0
        })
    };
    let off = variant(cx, &flag.off_variant, &|| "offVariant".to_string());

    let compile_serve = |cx: &mut Ctx,
                         rollouts: &mut Shared<'s>,
                         serve: &Serve<'_>,
                         path: &dyn Fn() -> String|
     -> CServe {
        let path = &path;
        match serve {
            Serve::Variant(v) => CServe::Variant(variant(cx, v, &|| format!("{}.variant", path()))),
            Serve::Rollout(arms) => {
                let mut end = 0u32;
                let mut ranges = std::mem::take(&mut rollouts.ranges);
                ranges.clear();
                if arms.is_empty() {
                    cx.add(
                        flag_at(format!("{}.rollout", path())),
                        "a rollout needs at least one variant".into(),
                    );
                }
                for (j, arm) in arms.iter().enumerate() {
                    let v = variant(cx, &arm.variant, &|| {
                        format!("{}.rollout[{j}].variant", path())
                    });
                    match percent_to_buckets(arm.weight) {
                        Some(b) => end += b,
                        None => cx.add(
                            flag_at(format!("{}.rollout[{j}].weight", path())),
                            format!(
                                "weight {} must be a percentage 0–100 with at most three decimals",
                                numtext::plain(arm.weight)
                            ),
                        ),
                    }
                    ranges.push((end, v as u32));
                }
                if !arms.is_empty() && end != BUCKETS {
                    cx.add(
                        flag_at(format!("{}.rollout", path())),
                        format!(
                            "weights sum to {}%, not 100%",
                            numtext::plain(f64::from(end) / 1000.0)
                        ),
                    );
                }
                let shared = rollouts.rollout(&ranges);
                rollouts.ranges = ranges;
                CServe::Rollout(shared)
            }
            Serve::Schedule(s) => {
                let v = variant(cx, &s.variant, &|| format!("{}.schedule.variant", path()));
                let o = variant(cx, &s.otherwise, &|| {
                    format!("{}.schedule.otherwise", path())
                });
                if s.steps.is_empty() {
                    cx.add(
                        flag_at(format!("{}.schedule.steps", path())),
                        "a schedule needs at least one step".into(),
                    );
                }
                let mut steps: Vec<(i64, u32)> = Vec::with_capacity(s.steps.len());
                for (j, step) in s.steps.iter().enumerate() {
                    let at = parse_rfc3339_ms(&step.at);
                    let pct = percent_to_buckets(step.percentage);
                    if at.is_none() {
                        cx.add(
                            flag_at(format!("{}.schedule.steps[{j}].at", path())),
                            format!("{:?} is not an RFC 3339 time", step.at),
                        );
                    }
                    if pct.is_none() {
                        cx.add(
                            flag_at(format!("{}.schedule.steps[{j}].percentage", path())),
                            format!(
                                "{} must be a percentage 0–100 with at most three decimals",
                                numtext::plain(step.percentage)
                            ),
                        );
                    }
                    if let (Some(at), Some(pct)) = (at, pct) {
                        if steps.last().is_some_and(|(prev, _)| *prev >= at) {
                            cx.add(
                                flag_at(format!("{}.schedule.steps[{j}].at", path())),
                                "steps must be in strictly increasing time order".into(),
                            );
                        }
                        steps.push((at, pct));
                    }
                }
                CServe::Schedule(Box::new(CSchedule {
                    variant: v,
                    otherwise: o,
                    steps,
                }))
            }
        }
    };

    // The rules of flags that share a packed rule list and their variants
    // compile alike: compiled once (when without problems) and shared.
    let list_key = match &flag.rules {
        Rules::Shared(list, at) if !list.is_empty() => {
            Some((*at, Arc::as_ptr(&variants) as *const () as usize))
        }
        _ => None,
    };
    let rules = match list_key.and_then(|key| shared.rule_list(key)) {
        Some(rules) => rules,
        None if flag.rules.is_empty() => {
            Arc::clone(shared.no_rules.get_or_insert_with(|| Arc::from(Vec::new())))
        }
        None => {
            let before = cx.problems.len();
            let mut rules = Vec::with_capacity(flag.rules.len());
            // Few rules: a scan is cheaper than hashing, many: the positions of
            // the ids seen by a hash of their text (the map type of the shared
            // rollouts and variants, so no hash table code of its own).
            let mut many_ids = (flag.rules.len() > 16).then(FastMap::<u64, Vec<usize>>::default);
            shared.seen_ids.clear();
            for (j, rule) in flag.rules.iter().enumerate() {
                let id = shared.rule_id(rule.id.as_deref(), j);
                let seen = &shared.seen_ids;
                let duplicate = match &mut many_ids {
                    Some(by_hash) => {
                        use std::hash::BuildHasher;
                        let hash = foldhash::fast::FixedState::default().hash_one(&*id);
                        let same = by_hash.entry(hash).or_default();
                        let duplicate = same.iter().any(|&at| seen[at] == id);
                        same.push(seen.len());
                        duplicate
                    }
                    None => seen.contains(&id),
                };
                shared.seen_ids.push(Arc::clone(&id));
                if duplicate {
                    cx.add(
                        flag_at(format!("rules[{j}].id")),
                        format!("duplicate rule id {id:?}"),
                    );
                }
                let serve = compile_serve(cx, shared, &rule.serve, &|| format!("rules[{j}].serve"));
                // A precompiled condition is shared already (the packed reader
                // holds each distinct one once): no text to hash.
                let compiled = match &rule.compiled {
                    Some(precompiled) => precompiled,
                    None => {
                        let at = position(&mut shared.conditions, &rule.condition, || {
                            shared.compiled.push(rule_condition(rule, resolve));
                            shared.compiled.len() - 1
                        });
                        &shared.compiled[at]
                    }
                };
                match compiled {
                    Ok(condition) => rules.push(CRule {
                        id,
                        condition: Arc::clone(condition),
                        serve,
                    }),
                    Err(e) => cx.parse_error(flag_at(format!("rules[{j}].condition")), e),
                }
            }
            let rules: Arc<[CRule]> = Arc::from(rules);
            if let Some(key) = list_key
                && cx.problems.len() == before
            {
                shared.keep_rule_list(key, &rules);
            }
            rules
        }
    };
    // Likewise a packed fallthrough with the same variants.
    let serve_key = flag
        .fallthrough_at
        .map(|at| (at, Arc::as_ptr(&variants) as *const () as usize));
    let fallthrough = match serve_key.and_then(|key| shared.fallthrough(key)) {
        Some(serve) => serve,
        None => {
            let before = cx.problems.len();
            let serve = compile_serve(cx, shared, &flag.fallthrough, &|| "fallthrough".to_string());
            if let Some(key) = serve_key
                && cx.problems.len() == before
            {
                shared.keep_fallthrough(key, &serve);
            }
            serve
        }
    };

    let mut prerequisites = Vec::with_capacity(flag.prerequisites.len());
    for (j, pre) in flag.prerequisites.iter().enumerate() {
        match index.get(&pre.flag, |k| &*all[k].key) {
            None => cx.add(
                flag_at(format!("prerequisites[{j}].flag")),
                format!("unknown flag {:?}", pre.flag),
            ),
            Some(k) if k == i => cx.add(
                flag_at(format!("prerequisites[{j}].flag")),
                "a flag cannot be its own prerequisite".into(),
            ),
            Some(k) => {
                if !all[k].variants.contains_key(&pre.variant) {
                    cx.add(
                        flag_at(format!("prerequisites[{j}].variant")),
                        format!("flag {:?} has no variant {:?}", pre.flag, pre.variant),
                    );
                }
                prerequisites.push((k, pre.variant.to_string()));
            }
        }
    }

    let bucket_by = bucket_path(flag.bucket_by.as_deref(), |by| {
        cx.add(
            flag_at("bucketBy".to_string()),
            format!("{by:?} is not an attribute path"),
        );
    });

    let layer = flag.layer.as_ref().and_then(|slot| {
        let Some(&Some(layer)) = layer_index.get(&*slot.key) else {
            let why = if layer_index.contains_key(&*slot.key) {
                "invalid"
            } else {
                "unknown"
            };
            cx.add(flag_at("layer.key".to_string()), format!("{why} layer {:?}", slot.key));
            return None;
        };
        match (percent_to_buckets(slot.start), percent_to_buckets(slot.end)) {
            (Some(start), Some(end)) if start < end => Some(CLayerSlot { layer, start, end }),
            _ => {
                cx.add(flag_at("layer".to_string()), format!("range [{}, {}) must satisfy 0 ≤ start < end ≤ 100 with at most three decimals", numtext::plain(slot.start), numtext::plain(slot.end)));
                None
            }
        }
    });

    let extra = (!prerequisites.is_empty() || bucket_by.is_some() || layer.is_some()).then(|| {
        Box::new(CFlagExtra {
            prerequisites,
            bucket_by,
            layer,
            broken: None,
        })
    });
    CFlag {
        key: (*flag.key).into(),
        flag_type: flag.flag_type,
        enabled: flag.enabled,
        client_side: flag.client_side,
        variants,
        off,
        rules,
        fallthrough,
        bucketer: Bucketer::new(flag.salt.as_deref().unwrap_or(&flag.key)),
        metadata: shared.metadata.add(&flag.metadata),
        fixed: None,
        extra,
    }
}

/// Flags sharing a layer must own disjoint ranges: that is what makes their
/// experiments mutually exclusive. Of two overlapping flags the one whose
/// range starts later is marked broken, so the layer stays exclusive.
fn check_layer_overlaps(cx: &mut Ctx, snapshot: &Snapshot<'_>, flags: &mut [CFlag]) {
    // Indexed by layer (a slot's layer is an index into `snapshot.layers`),
    // so they come in layer order without a map or a sort; the slots are
    // distinct (each has its flag's index), so any sort orders them as a
    // stable one would. A heap sort: the stable sort's and the unstable
    // sort's code (≈ 5 KB of the edge worker's wasm) stay out of the
    // bundle, for lists as long as a layer's flags.
    let mut by_layer: Vec<Vec<(u32, u32, usize)>> = Vec::new();
    for (i, f) in flags.iter().enumerate() {
        if let Some(slot) = f.layer() {
            if by_layer.len() <= slot.layer {
                by_layer.resize_with(slot.layer + 1, Vec::new);
            }
            by_layer[slot.layer].push((slot.start, slot.end, i));
        }
    }
    for (layer, slots) in by_layer.into_iter().enumerate() {
        let slots = std::collections::BinaryHeap::from(slots).into_sorted_vec();
        for w in slots.windows(2) {
            let (_, end_a, a) = w[0];
            let (start_b, _, b) = w[1];
            if start_b < end_a {
                let msg = format!(
                    "range overlaps flag {:?} in layer {:?}; flags in one layer must be mutually exclusive",
                    flags[a].key, snapshot.layers[layer].key
                );
                let broken = format!(
                    "flag {:?} is invalid: flags[{b}].layer: {msg}",
                    flags[b].key
                );
                cx.add(Location::flag(b, &flags[b].key, "layer"), msg);
                flags[b]
                    .extra_mut()
                    .broken
                    .get_or_insert((ErrorCode::General, broken));
            }
        }
    }
}

/// Marks every flag on a prerequisite cycle as broken and reports it.
fn check_prerequisite_cycles(cx: &mut Ctx, flags: &mut [CFlag]) {
    // 0 = unvisited, 1 = on stack, 2 = done.
    fn visit(
        i: usize,
        flags: &[CFlag],
        state: &mut [u8],
        stack: &mut Vec<usize>,
        cycles: &mut Vec<Vec<usize>>,
    ) {
        state[i] = 1;
        stack.push(i);
        for &(k, _) in flags[i].prerequisites() {
            match state[k] {
                0 => visit(k, flags, state, stack, cycles),
                1 => {
                    let from = stack.iter().position(|&s| s == k).expect("on stack");
                    cycles.push(stack[from..].to_vec());
                }
                _ => {}
            }
        }
        stack.pop();
        state[i] = 2;
    }
    let mut state = vec![0u8; flags.len()];
    let mut cycles = Vec::new();
    // Empty again after every visit.
    let mut stack = Vec::new();
    for i in 0..flags.len() {
        if state[i] == 0 {
            visit(i, flags, &mut state, &mut stack, &mut cycles);
        }
    }
    for cycle in cycles {
        // Owned names: the worker links `join` for `String`s only.
        let names: Vec<String> = cycle.iter().map(|&i| flags[i].key.to_string()).collect();
        let msg = format!("prerequisite cycle: {} -> {}", names.join(" -> "), names[0]);
        for &i in &cycle {
            cx.add(
                Location::flag(i, &flags[i].key, "prerequisites"),
                msg.clone(),
            );
            flags[i]
                .extra_mut()
                .broken
                .get_or_insert((ErrorCode::General, msg.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::Engine;

    /// Flags share variants, rule ids and rollouts only when they are
    /// written alike: each flag still serves its own values and ids.
    #[test]
    fn shared_parts_serve_as_their_own() {
        let variants = [
            json!({"a": 0.0, "b": 1}),
            json!({"a": -0.0, "b": 1}),
            json!({"a": 0, "b": 1}),
            json!({"a": 0.0, "b": 1.0}),
            json!({"a": 0.0, "b": 1}),
            json!({"a": 0.0, "c": 1}),
            json!({"a": 0.0}),
            json!({"a": 0.0, "b": 1, "c": 2}),
        ];
        let flags: Vec<Value> = variants
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let names: Vec<&String> = v.as_object().unwrap().keys().collect();
                let id = if i % 2 == 0 {
                    json!("same")
                } else {
                    json!(format!("r{i}"))
                };
                json!({"key": format!("f{i}"), "type": "number", "variants": v,
                       "offVariant": "a",
                       "rules": [{"id": id, "condition": "x == 1", "serve": {"rollout": [
                           {"variant": names[names.len() - 1], "weight": 100}]}},
                                 {"condition": "x == 2", "serve": {"variant": names[0]}}],
                       "fallthrough": {"rollout": [{"variant": "a", "weight": 100}]}})
            })
            .collect();
        let doc = json!({"schemaVersion": 1, "environment": "e", "version": 1,
            "generatedAt": "2026-11-25T00:00:00Z", "flags": flags})
        .to_string();
        let engine = Engine::from_json(&doc).unwrap();
        for (i, v) in variants.iter().enumerate() {
            let last = v.as_object().unwrap().iter().next_back().unwrap();
            let key = format!("f{i}");
            let e = engine.evaluate(&key, &json!({"targetingKey": "u", "x": 1}), 0);
            assert_eq!(e.variant.as_deref(), Some(last.0.as_str()), "{key}");
            assert_eq!(
                serde_json::to_string(e.value.as_deref().unwrap()).unwrap(),
                serde_json::to_string(last.1).unwrap(),
                "{key}"
            );
            let want = if i % 2 == 0 {
                "same".to_string()
            } else {
                format!("r{i}")
            };
            assert_eq!(e.rule_id.as_deref(), Some(want.as_str()));
            let e = engine.evaluate(&key, &json!({"targetingKey": "u", "x": 2}), 0);
            assert_eq!(e.rule_id.as_deref(), Some("rule-1"));
            let e = engine.evaluate(&key, &json!({"targetingKey": "u"}), 0);
            assert_eq!(
                serde_json::to_string(e.value.as_deref().unwrap()).unwrap(),
                serde_json::to_string(&v["a"]).unwrap(),
                "{key}"
            );
        }
    }

    /// Rule ids are checked for duplicates as before: a written id equal
    /// to another rule's default one is a duplicate too.
    #[test]
    fn duplicate_rule_ids_are_found() {
        let rules: Vec<Value> = (0..20)
            .map(|j| {
                let id = match j {
                    3 => json!("rule-1"),
                    5 | 19 => json!("x"),
                    _ => Value::Null,
                };
                let mut rule = json!({"condition": "true", "serve": {"variant": "on"}});
                if !id.is_null() {
                    rule["id"] = id;
                }
                rule
            })
            .collect();
        for n in [4, 6, 20] {
            let doc = json!({"schemaVersion": 1, "environment": "e", "version": 1,
                "generatedAt": "2026-11-25T00:00:00Z",
                "flags": [{"key": "f", "type": "boolean", "variants": {"on": true},
                    "offVariant": "on", "rules": rules[..n], "fallthrough": {"variant": "on"}}]})
            .to_string();
            let (_, problems) = Engine::from_json_lenient(&doc).unwrap();
            let found: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
            let mut want =
                vec!["f: flags[0].rules[3].id: duplicate rule id \"rule-1\"".to_string()];
            if n == 20 {
                want.push("f: flags[0].rules[19].id: duplicate rule id \"x\"".to_string());
            }
            assert_eq!(found, want, "{n} rules");
        }
    }
}
