//! Writing packed snapshots (see the [module docs](super) for the form):
//! a build with the rule parser, which compiles every condition for
//! format version 2.

use sha2::{Digest, Sha256};

use super::*;
use crate::borrowed::{Flag, Serve, Snapshot, Str, Variants};

fn type_code(t: FlagType) -> u8 {
    TYPES
        .iter()
        .position(|x| *x == t)
        .expect("every type is listed") as u8
}

/// Packs a parsed snapshot (see the [module docs](super) for the form),
/// checking its declared checksum if it has one, without a document
/// ([`document`] gives `None`). Fails only for a variant value nested
/// deeper than [`MAX_DEPTH`], which a snapshot read from a document never
/// has.
pub fn pack(parsed: &ParsedSnapshot<'_>) -> Result<Vec<u8>, PackError> {
    pack_inner(parsed, None, FORMAT_VERSION)
}

/// Packs a parsed snapshot as [`pack`] does, with `document`, the JSON
/// text it was read from, carried verbatim after it (see [The
/// document](super#the-document)). The text is not parsed or checked
/// against `parsed`: pass the very text `parsed` was read from.
pub fn pack_with_document(
    parsed: &ParsedSnapshot<'_>,
    document: &str,
) -> Result<Vec<u8>, PackError> {
    pack_inner(parsed, Some(document), FORMAT_VERSION)
}

/// Packs a parsed snapshot as [`pack`] or [`pack_with_document`] do, in
/// format `version`: [`FORMAT_VERSION`], or [`FORMAT_VERSION_1`] for
/// readers that predate precompiled conditions.
///
/// ```
/// use bunting_core::packed::{FORMAT_VERSION_1, pack_as};
/// use bunting_core::ParsedSnapshot;
/// let doc = r#"{"schemaVersion": 1, "environment": "dev", "version": 1,
///   "generatedAt": "2026-11-25T00:00:00Z", "flags": []}"#;
/// let v1 = pack_as(&ParsedSnapshot::parse(doc).unwrap(), Some(doc), FORMAT_VERSION_1).unwrap();
/// assert_eq!(v1[4..6], FORMAT_VERSION_1.to_le_bytes());
/// assert_eq!(ParsedSnapshot::from_packed(&v1).unwrap().version(), 1);
/// assert!(pack_as(&ParsedSnapshot::parse(doc).unwrap(), None, 3).is_err());
/// ```
pub fn pack_as(
    parsed: &ParsedSnapshot<'_>,
    document: Option<&str>,
    version: u16,
) -> Result<Vec<u8>, PackError> {
    match version {
        FORMAT_VERSION | FORMAT_VERSION_1 => pack_inner(parsed, document, version),
        other => Err(PackError::Version(other)),
    }
}

/// Every condition of `s` compiled as [`crate::Engine`] compiles it: the
/// rules' by their text, the segments' by position.
fn precompile<'s>(
    s: &'s Snapshot<'_>,
) -> (
    foldhash::HashMap<&'s str, Precompiled>,
    Vec<Option<Precompiled>>,
) {
    use crate::compile::{resolve_segment, rule_condition, segment_condition, segment_index};
    let index = segment_index(&s.segments);
    let resolve = |name: &str| resolve_segment(&index, name);
    let mut rules = foldhash::HashMap::default();
    for rule in s.flags.iter().flat_map(|f| f.rules.iter()) {
        rules
            .entry(&*rule.condition)
            .or_insert_with(|| rule_condition(rule, &resolve));
    }
    (rules, s.segments.iter().map(segment_condition).collect())
}

fn pack_inner(
    parsed: &ParsedSnapshot<'_>,
    document: Option<&str>,
    version: u16,
) -> Result<Vec<u8>, PackError> {
    let s = parsed.borrowed();
    let verified = s
        .checksum
        .as_deref()
        .is_some_and(|declared| crate::snapshot::checksum_of(s) == declared);
    let v2 = version == FORMAT_VERSION;
    let (trees, segment_trees) = if v2 {
        precompile(s)
    } else {
        Default::default()
    };
    let mut w = Writer {
        trees: v2.then_some(&trees),
        ..Writer::default()
    };
    let body = &mut Vec::with_capacity(64 * 1024);
    put_int(body, u64::from(s.schema_version));
    w.str(body, &s.environment);
    put_int(body, s.version);
    w.str(body, &s.generated_at);
    w.opt_str(body, s.checksum.as_deref());
    put_int(body, s.layers.len() as u64);
    for l in &s.layers {
        w.str(body, &l.key);
        w.opt_str(body, l.salt.as_deref());
        w.opt_str(body, l.bucket_by.as_deref());
    }
    put_int(body, s.segments.len() as u64);
    for (i, seg) in s.segments.iter().enumerate() {
        w.str(body, &seg.key);
        w.strs(body, &seg.included);
        w.strs(body, &seg.excluded);
        w.opt_str(body, seg.condition.as_deref());
        if let Some(Some(tree)) = segment_trees.get(i) {
            w.tree(body, tree);
        }
        w.opt_str(body, seg.description.as_deref());
    }
    put_int(body, s.flags.len() as u64);
    for f in &s.flags {
        w.flag(body, f)?;
    }
    let mut out = Vec::with_capacity(
        body.len()
            + w.blob_len
            + w.sets.bytes.len()
            + w.serves.bytes.len()
            + w.conditions.bytes.len()
            + w.rules.bytes.len()
            + document.map_or(0, str::len)
            + 64,
    );
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.push(u8::from(verified));
    put_int(&mut out, document.map_or(0, |d| d.len() as u64 + 1));
    let digest_at = out.len();
    if verified {
        out.extend_from_slice(&[0; 32]);
    }
    put_int(&mut out, w.order.len() as u64);
    for s in &w.order {
        put_int(&mut out, s.len() as u64);
    }
    for s in &w.order {
        out.extend_from_slice(s.as_bytes());
    }
    w.sets.write(&mut out);
    w.serves.write(&mut out);
    if v2 {
        w.conditions.write(&mut out);
    }
    w.rules.write(&mut out);
    out.extend_from_slice(body);
    if verified {
        let digest = Sha256::digest(&out[digest_at + 32..]);
        out[digest_at..digest_at + 32].copy_from_slice(&digest);
    }
    if let Some(document) = document {
        out.extend_from_slice(document.as_bytes());
    }
    Ok(out)
}

pub(super) fn put_int(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_float(out: &mut Vec<u8>, x: f64) {
    out.extend_from_slice(&x.to_le_bytes());
}

/// The string table and the variant sets as they are written.
#[derive(Default)]
pub(super) struct Writer<'s> {
    /// Index of each string written so far.
    index: foldhash::HashMap<&'s str, u32>,
    /// The strings by index.
    order: Vec<&'s str>,
    /// Their total length.
    blob_len: usize,
    /// The distinct variant sets.
    sets: Table,
    /// The distinct serves.
    serves: Table,
    /// The distinct rules.
    rules: Table,
    /// Version 2: the rules' conditions compiled, by their text.
    trees: Option<&'s foldhash::HashMap<&'s str, Precompiled>>,
    /// Version 2: the distinct rule conditions, text and tree.
    conditions: Table,
    /// Their positions by text.
    condition_index: foldhash::HashMap<&'s str, u32>,
    /// Buffers for the encodings being written.
    scratch: Vec<Vec<u8>>,
}

/// Distinct items, each written once and named by its position.
#[derive(Default)]
struct Table {
    /// Position of each item by its encoding.
    index: foldhash::HashMap<Vec<u8>, u32>,
    /// The encodings, back to back.
    bytes: Vec<u8>,
    count: u32,
}

impl Table {
    /// The position of the item encoded as `item`, added if it is new.
    fn add(&mut self, item: &[u8]) -> u32 {
        if let Some(&i) = self.index.get(item) {
            return i;
        }
        let i = self.count;
        self.count += 1;
        self.bytes.extend_from_slice(item);
        self.index.insert(item.to_vec(), i);
        i
    }

    fn write(&self, out: &mut Vec<u8>) {
        put_int(out, u64::from(self.count));
        out.extend_from_slice(&self.bytes);
    }
}

impl<'s> Writer<'s> {
    fn index(&mut self, s: &'s str) -> u32 {
        let next = self.order.len() as u32;
        let i = *self.index.entry(s).or_insert(next);
        if i == next {
            self.order.push(s);
            self.blob_len += s.len();
        }
        i
    }

    pub(super) fn str(&mut self, out: &mut Vec<u8>, s: &'s str) {
        let i = self.index(s);
        put_int(out, u64::from(i));
    }

    fn opt_str(&mut self, out: &mut Vec<u8>, s: Option<&'s str>) {
        match s {
            None => put_int(out, 0),
            Some(s) => {
                let i = self.index(s);
                put_int(out, u64::from(i) + 1);
            }
        }
    }

    fn strs(&mut self, out: &mut Vec<u8>, items: &'s [Str<'_>]) {
        put_int(out, items.len() as u64);
        for s in items {
            self.str(out, s);
        }
    }

    /// Appends `v`; false if it nests too deeply.
    fn value(&mut self, out: &mut Vec<u8>, v: &'s Value, depth: usize) -> bool {
        match v {
            Value::Null => out.push(T_NULL),
            Value::Bool(false) => out.push(T_FALSE),
            Value::Bool(true) => out.push(T_TRUE),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    out.push(T_U64);
                    put_int(out, u);
                } else if let Some(i) = n.as_i64() {
                    out.push(T_I64);
                    put_int(out, super::tree::zigzag(i));
                } else {
                    out.push(T_F64);
                    put_float(out, n.as_f64().expect("a number is u64, i64 or f64"));
                }
            }
            Value::String(s) => {
                out.push(T_STR);
                self.str(out, s);
            }
            Value::Array(items) => {
                if depth >= MAX_DEPTH {
                    return false;
                }
                out.push(T_ARRAY);
                put_int(out, items.len() as u64);
                for item in items {
                    if !self.value(out, item, depth + 1) {
                        return false;
                    }
                }
            }
            Value::Object(map) => {
                if depth >= MAX_DEPTH {
                    return false;
                }
                out.push(T_OBJECT);
                put_int(out, map.len() as u64);
                for (name, item) in map {
                    self.str(out, name);
                    if !self.value(out, item, depth + 1) {
                        return false;
                    }
                }
            }
        }
        true
    }

    /// Encodes an item with `encode` (`None` if it fails) and adds it to
    /// the table `which` picks, giving its position.
    fn intern(
        &mut self,
        which: fn(&mut Self) -> &mut Table,
        encode: impl FnOnce(&mut Self, &mut Vec<u8>) -> bool,
    ) -> Option<u32> {
        let mut buf = self.scratch.pop().unwrap_or_default();
        buf.clear();
        let i = encode(self, &mut buf).then(|| which(self).add(&buf));
        self.scratch.push(buf);
        i
    }

    /// The position of a flag's set of variants.
    fn variants(&mut self, variants: &'s Variants<'_>) -> Option<u32> {
        self.intern(
            |w| &mut w.sets,
            |w, set| {
                put_int(set, variants.iter().count() as u64);
                variants.iter().all(|(name, value)| {
                    w.str(set, name);
                    w.value(set, value, 0)
                })
            },
        )
    }

    /// Writes the position of `serve` in the serves.
    fn serve_index(&mut self, out: &mut Vec<u8>, serve: &'s Serve<'_>) {
        let i = self.intern(
            |w| &mut w.serves,
            |w, buf| {
                w.serve(buf, serve);
                true
            },
        );
        put_int(out, u64::from(i.expect("a serve always encodes")));
    }

    fn serve(&mut self, out: &mut Vec<u8>, serve: &'s Serve<'_>) {
        match serve {
            Serve::Variant(v) => {
                out.push(S_VARIANT);
                self.str(out, v);
            }
            Serve::Rollout(arms) => {
                out.push(S_ROLLOUT);
                put_int(out, arms.len() as u64);
                for arm in arms.iter() {
                    self.str(out, &arm.variant);
                    put_float(out, arm.weight);
                }
            }
            Serve::Schedule(s) => {
                out.push(S_SCHEDULE);
                self.str(out, &s.variant);
                self.str(out, &s.otherwise);
                put_int(out, s.steps.len() as u64);
                for step in &s.steps {
                    self.str(out, &step.at);
                    put_float(out, step.percentage);
                }
            }
        }
    }

    /// The position of the rule condition `text` in the conditions
    /// (version 2), its tree taken from `trees`.
    fn condition(
        &mut self,
        trees: &'s foldhash::HashMap<&'s str, Precompiled>,
        text: &'s str,
    ) -> u32 {
        if let Some(&i) = self.condition_index.get(text) {
            return i;
        }
        let tree = &trees[text];
        let i = self.intern(
            |w| &mut w.conditions,
            |w, buf| {
                w.str(buf, text);
                w.tree(buf, tree);
                true
            },
        );
        let i = i.expect("a condition always encodes");
        self.condition_index.insert(text, i);
        i
    }

    fn flag(&mut self, out: &mut Vec<u8>, f: &'s Flag<'_>) -> Result<(), PackError> {
        self.str(out, &f.key);
        out.push(type_code(f.flag_type));
        let mut bits = 0;
        if f.enabled {
            bits |= F_ENABLED;
        }
        if f.client_side {
            bits |= F_CLIENT_SIDE;
        }
        if f.layer.is_some() {
            bits |= F_LAYER;
        }
        out.push(bits);
        let set = self
            .variants(&f.variants)
            .ok_or_else(|| PackError::TooDeep {
                flag: f.key.to_string(),
            })?;
        put_int(out, u64::from(set));
        self.str(out, &f.off_variant);
        put_int(out, f.rules.len() as u64);
        for r in f.rules.iter() {
            let i = self.intern(
                |w| &mut w.rules,
                |w, buf| {
                    w.opt_str(buf, r.id.as_deref());
                    w.opt_str(buf, r.description.as_deref());
                    match w.trees {
                        Some(trees) => {
                            let c = w.condition(trees, &r.condition);
                            put_int(buf, u64::from(c));
                        }
                        None => w.str(buf, &r.condition),
                    }
                    w.serve_index(buf, &r.serve);
                    true
                },
            );
            put_int(out, u64::from(i.expect("a rule always encodes")));
        }
        self.serve_index(out, &f.fallthrough);
        put_int(out, f.prerequisites.len() as u64);
        for p in &f.prerequisites {
            self.str(out, &p.flag);
            self.str(out, &p.variant);
        }
        self.opt_str(out, f.salt.as_deref());
        self.opt_str(out, f.bucket_by.as_deref());
        if let Some(slot) = &f.layer {
            self.str(out, &slot.key);
            put_float(out, slot.start);
            put_float(out, slot.end);
        }
        let m = &f.metadata;
        self.opt_str(out, m.description.as_deref());
        self.opt_str(out, m.owner.as_deref());
        self.strs(out, &m.tags);
        Ok(())
    }
}
