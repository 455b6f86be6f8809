//! The packed snapshot: a compact binary form of a parsed snapshot
//! document, written once where a snapshot is published and read back
//! into a [`ParsedSnapshot`] without a JSON parser.
//!
//! Reading a document's JSON is most of the cost of loading it (serde's
//! struct deserializers, escapes, number parsing, one allocation per
//! variant value). The packed form holds the same snapshot already in the
//! shape the engine loads: every string once, in one table, borrowed by
//! the reader from the bytes; each distinct set of variants once, decoded
//! once and shared by the flags that have it; each distinct rule and serve
//! once (flags are mostly written alike). What [`ParsedSnapshot::parse`]
//! gives for a document, [`ParsedSnapshot::from_packed`] gives for
//! `pack(&ParsedSnapshot::parse(document)?)`: the same flags, keys, types,
//! variants, rule conditions, schedule steps and checksum, so the same
//! engine, the same problems and the same answers.
//!
//! Packing does not validate: a snapshot with problems packs, and loading
//! its packed form reports the same problems, word for word (a lenient
//! load keeps its good flags as before). Rule conditions stay texts,
//! parsed when the engine is compiled.
//!
//! The checksum a snapshot declares (`sha256:` over its canonical JSON) is
//! checked once, when it is packed. If it matches, the packed form carries
//! a SHA-256 digest of its own bytes, which the reader checks instead:
//! hashing the packed bytes costs a fraction of writing and hashing the
//! canonical JSON again, and bytes altered after packing fail the read
//! ([`PackedError::Damaged`]). A declared checksum that does not match is
//! packed without a digest, and checked (and reported) at load as for the
//! JSON form, or by [`Engine::from_packed_lenient`](crate::Engine::from_packed_lenient)
//! reported as a mismatch without hashing again.
//!
//! ```
//! use bunting_core::packed::pack;
//! use bunting_core::{Engine, ParsedSnapshot};
//! let doc = r#"{"schemaVersion": 1, "environment": "dev", "version": 1,
//!   "generatedAt": "2026-11-25T00:00:00Z",
//!   "flags": [{"key": "banner", "type": "string", "variants": {"a": "Hello", "b": "Hi"},
//!     "offVariant": "a", "rules": [{"condition": "plan == \"pro\"", "serve": {"variant": "b"}}],
//!     "fallthrough": {"variant": "a"}}]}"#;
//! let bytes = pack(&ParsedSnapshot::parse(doc).unwrap()).unwrap();
//! let parsed = ParsedSnapshot::from_packed(&bytes).unwrap();
//! let engine = Engine::from_parsed(&parsed).unwrap();
//! let e = engine.evaluate("banner", &serde_json::json!({"plan": "pro"}), 0);
//! assert_eq!(e.variant.as_deref(), Some("b"));
//! assert_eq!(parsed.flags().next().unwrap().rule_conditions().collect::<Vec<_>>(), ["plan == \"pro\""]);
//! ```
//!
//! # The document
//!
//! A host that serves the snapshot's JSON text as it was published (the
//! edge's `/sdk/v1/snapshot`, with the checksum as its ETag) packs it
//! along ([`pack_with_document`]) and reads it back with [`document`],
//! borrowed, without parsing it. What protects what:
//!
//! - the digest covers the snapshot's tables (everything between the
//!   digest and the document), not the document: hashing 650 KB of JSON
//!   would cost what the packed form saves. A damaged document does not
//!   fail [`ParsedSnapshot::from_packed`], which never looks at it;
//! - the document's own integrity is its sealed `checksum`, which the
//!   hosts that fetch it verify (the server SDKs); [`document`] only
//!   checks that it is UTF-8;
//! - the document's length sits in the header, outside the digest, but a
//!   wrong length moves where the tables end, so a sealed pack fails its
//!   digest ([`PackedError::Damaged`]) and any other fails to read.
//!
//! That the document is the text the snapshot was read from is the
//! packer's promise ([`pack_with_document`] does not parse it).
//!
//! # Format (version 1)
//!
//! Little-endian. An *int* is an unsigned LEB128 varint (at most 10 bytes,
//! no bits past 64); a *float* is an IEEE 754 `f64` in 8 bytes (finite);
//! a *string* is an int index into the string table; an *optional string*
//! is an int, 0 for none and index + 1 otherwise; a *list* is an int count
//! followed by its items.
//!
//! | part | content |
//! |---|---|
//! | header | [`MAGIC`] (4 bytes), [`FORMAT_VERSION`] (`u16`), a byte: 1 if a digest follows, else 0, the document's length (int: 0 for none, its length + 1) |
//! | digest | if any, 32 bytes: the SHA-256 of every byte after it up to the document |
//! | strings | int count `n`, `n` int byte lengths, then the `n` strings' UTF-8 bytes back to back |
//! | variant sets | list of sets; a set is a list of (name: string, value), names strictly increasing |
//! | serves | list of serves |
//! | rules | list of rules; a rule: id, description (optional strings), condition (string), serve (int index of a serve) |
//! | snapshot | schemaVersion (int), environment (string), version (int), generatedAt (string), checksum (optional string), layers, segments, flags |
//! | document | if any, the snapshot's JSON text as published, byte for byte: the last bytes (nothing may come between the flags and it, or follow it) |
//!
//! A value: a tag byte, then null 0, false 1, true 2, a `u64` 3 (int), a
//! negative `i64` 4 (int of its zigzag form), an `f64` 5 (float), a string
//! 6 (string), an array 7 (list of values), an object 8 (list of (name:
//! string, value)); arrays and objects nest at most [`MAX_DEPTH`] deep.
//! Numbers keep the form `serde_json` holds them in, so a value packs and
//! reads back as the very same [`Value`] (and hashes the same).
//!
//! A layer: key (string), salt, bucketBy (optional strings). A segment:
//! key (string), included, excluded (lists of strings), condition,
//! description (optional strings). A flag: key (string), type (byte:
//! boolean 0, string 1, number 2, object 3), a byte of bits (1: enabled,
//! 2: clientSide, 4: has a layer), variants (int index of its set),
//! offVariant (string), rules (list of int indices of rules), fallthrough
//! (int index of a serve),
//! prerequisites (list of: flag, variant (strings)), salt, bucketBy
//! (optional strings), the layer if it has one (key (string), start, end
//! (floats)), metadata: description, owner (optional strings), tags (list
//! of strings). A serve: a tag byte, then variant 0 (string), rollout 1
//! (list of: variant (string), weight (float)) or schedule 2 (variant,
//! otherwise (strings), steps (list of: at (string), percentage (float))).

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::{Number, Value};
use sha2::{Digest, Sha256};

use crate::borrowed::{
    Flag, FlagMetadata, Layer, LayerSlot, Prerequisite, Rule, Schedule, ScheduleStep, Segment,
    Serve, Small, Snapshot, Str, Variants, WeightedVariant,
};
use crate::model::FlagType;
use crate::parsed::ParsedSnapshot;

/// The first four bytes of a packed snapshot (`"BSNP"`).
pub const MAGIC: [u8; 4] = *b"BSNP";

/// The version of the format this build writes and reads. A reader
/// refuses any other: a new version is published alongside the old one
/// until every reader knows it.
pub const FORMAT_VERSION: u16 = 1;

/// How deep arrays and objects may nest inside a variant's value: as deep
/// as `serde_json` reads them in a document.
pub const MAX_DEPTH: usize = 128;

/// Why bytes could not be read as a packed snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackedError {
    /// The bytes do not start with [`MAGIC`].
    #[error("not a packed snapshot")]
    NotPacked,
    /// The bytes are of another version of the format.
    #[error("packed snapshot format version {found}, this build reads version {FORMAT_VERSION}")]
    Version {
        /// The version the bytes declare.
        found: u16,
    },
    /// The bytes end before the snapshot does.
    #[error("packed snapshot ends early (at byte {at})")]
    Truncated {
        /// Where more was expected.
        at: usize,
    },
    /// The bytes are not those whose digest they carry.
    #[error("packed snapshot does not match its digest")]
    Damaged,
    /// The bytes hold something no packed snapshot holds.
    #[error("packed snapshot is corrupt at byte {at}: {what}")]
    Corrupt {
        /// Where it was found.
        at: usize,
        /// What is wrong.
        what: &'static str,
    },
}

/// Why a snapshot could not be packed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackError {
    /// A variant's value nests arrays and objects deeper than
    /// [`MAX_DEPTH`] (no document can hold it: `serde_json` does not read
    /// it either).
    #[error("a variant of flag {flag:?} nests deeper than {MAX_DEPTH} levels")]
    TooDeep {
        /// The flag's key.
        flag: String,
    },
}

const T_NULL: u8 = 0;
const T_FALSE: u8 = 1;
const T_TRUE: u8 = 2;
const T_U64: u8 = 3;
const T_I64: u8 = 4;
const T_F64: u8 = 5;
const T_STR: u8 = 6;
const T_ARRAY: u8 = 7;
const T_OBJECT: u8 = 8;

const S_VARIANT: u8 = 0;
const S_ROLLOUT: u8 = 1;
const S_SCHEDULE: u8 = 2;

const F_ENABLED: u8 = 1;
const F_CLIENT_SIDE: u8 = 2;
const F_LAYER: u8 = 4;

const TYPES: [FlagType; 4] = FlagType::ALL;

fn type_code(t: FlagType) -> u8 {
    TYPES
        .iter()
        .position(|x| *x == t)
        .expect("every type is listed") as u8
}

/// Packs a parsed snapshot (see the [module docs](self) for the form),
/// checking its declared checksum if it has one, without a document
/// ([`document`] gives `None`). Fails only for a variant value nested
/// deeper than [`MAX_DEPTH`], which a snapshot read from a document never
/// has.
pub fn pack(parsed: &ParsedSnapshot<'_>) -> Result<Vec<u8>, PackError> {
    pack_inner(parsed, None)
}

/// Packs a parsed snapshot as [`pack`] does, with `document`, the JSON
/// text it was read from, carried verbatim after it (see [The
/// document](self#the-document)). The text is not parsed or checked
/// against `parsed`: pass the very text `parsed` was read from.
pub fn pack_with_document(
    parsed: &ParsedSnapshot<'_>,
    document: &str,
) -> Result<Vec<u8>, PackError> {
    pack_inner(parsed, Some(document))
}

fn pack_inner(parsed: &ParsedSnapshot<'_>, document: Option<&str>) -> Result<Vec<u8>, PackError> {
    let s = parsed.borrowed();
    let verified = s
        .checksum
        .as_deref()
        .is_some_and(|declared| crate::snapshot::checksum_of(s) == declared);
    let mut w = Writer::default();
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
    for seg in &s.segments {
        w.str(body, &seg.key);
        w.strs(body, &seg.included);
        w.strs(body, &seg.excluded);
        w.opt_str(body, seg.condition.as_deref());
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
            + w.rules.bytes.len()
            + document.map_or(0, str::len)
            + 64,
    );
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
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

/// The JSON document a packed snapshot carries ([`pack_with_document`]),
/// borrowed from `bytes`, or `None` if it was packed without one. Reads
/// only the header and checks only that the document is UTF-8: it is
/// neither parsed nor covered by the digest (see [The
/// document](self#the-document)).
pub fn document(bytes: &[u8]) -> Result<Option<&str>, PackedError> {
    let header = Header::read(bytes)?;
    match header.document {
        None => Ok(None),
        Some(at) => std::str::from_utf8(&bytes[at..])
            .map(Some)
            .map_err(|e| PackedError::Corrupt {
                at: at + e.valid_up_to(),
                what: "a document that is not UTF-8",
            }),
    }
}

/// Where the parts of a packed snapshot are.
struct Header {
    /// Where the string table starts.
    tables: usize,
    /// Where the document starts (the tables end there), if there is one.
    document: Option<usize>,
    /// The digest, if the bytes carry one.
    digest: Option<[u8; 32]>,
}

impl Header {
    fn read(bytes: &[u8]) -> Result<Header, PackedError> {
        if bytes.get(..4) != Some(&MAGIC[..]) {
            return Err(PackedError::NotPacked);
        }
        let mut r = Reader::new(bytes);
        r.at = 4;
        let version = u16::from_le_bytes(r.array()?);
        if version != FORMAT_VERSION {
            return Err(PackedError::Version { found: version });
        }
        let has_digest = match r.byte()? {
            0 => false,
            1 => true,
            _ => return Err(r.corrupt("a digest marker")),
        };
        let document = match r.int()? {
            0 => None,
            n => {
                // The document is the last `n - 1` bytes.
                let len = usize::try_from(n - 1).ok();
                let start = len.and_then(|len| bytes.len().checked_sub(len));
                Some(start.ok_or(PackedError::Truncated { at: r.at })?)
            }
        };
        let digest = if has_digest {
            Some(r.array::<32>()?)
        } else {
            None
        };
        if document.is_some_and(|d| d < r.at) {
            return Err(PackedError::Truncated { at: r.at });
        }
        Ok(Header {
            tables: r.at,
            document,
            digest,
        })
    }
}

fn put_int(out: &mut Vec<u8>, mut n: u64) {
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
struct Writer<'s> {
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

    fn str(&mut self, out: &mut Vec<u8>, s: &'s str) {
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
                    put_int(out, ((i << 1) ^ (i >> 63)) as u64);
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
        for r in &f.rules {
            let i = self.intern(
                |w| &mut w.rules,
                |w, buf| {
                    w.opt_str(buf, r.id.as_deref());
                    w.opt_str(buf, r.description.as_deref());
                    w.str(buf, &r.condition);
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

/// Reads a packed snapshot: [`ParsedSnapshot::from_packed`].
/// The document, if any, is not read (see [The document](self#the-document)).
pub(crate) fn read(bytes: &[u8]) -> Result<ParsedSnapshot<'_>, PackedError> {
    let header = Header::read(bytes)?;
    // The tables end where the document starts: the reader sees no further.
    let bytes = &bytes[..header.document.unwrap_or(bytes.len())];
    let checksum_verified = match header.digest {
        None => false,
        Some(digest) => {
            if Sha256::digest(&bytes[header.tables..])[..] != digest {
                return Err(PackedError::Damaged);
            }
            true
        }
    };
    let mut r = Reader::new(bytes);
    r.at = header.tables;
    r.strings()?;
    r.sets = r.list(1, Reader::set)?;
    r.serves = r.list(2, Reader::serve)?;
    r.rules = r.list(4, |r| {
        Ok(Rule {
            id: r.opt_str()?,
            description: r.opt_str()?,
            condition: r.str()?,
            serve: r.serve_ref()?,
        })
    })?;
    let schema_version = u32::try_from(r.int()?).map_err(|_| r.corrupt("schemaVersion"))?;
    let environment = r.str()?;
    let version = r.int()?;
    let generated_at = r.str()?;
    let checksum = r.opt_str()?;
    let layers = r.list(3, |r| {
        Ok(Layer {
            key: r.str()?,
            salt: r.opt_str()?,
            bucket_by: r.opt_str()?,
        })
    })?;
    let segments = r.list(5, |r| {
        Ok(Segment {
            key: r.str()?,
            included: r.list(1, Reader::str)?,
            excluded: r.list(1, Reader::str)?,
            condition: r.opt_str()?,
            description: r.opt_str()?,
        })
    })?;
    let flags = r.list(12, Reader::flag)?;
    if r.at != bytes.len() {
        return Err(r.corrupt("bytes after the snapshot"));
    }
    Ok(ParsedSnapshot {
        snapshot: Snapshot {
            schema_version,
            environment,
            version,
            generated_at,
            flags,
            segments,
            layers,
            checksum,
        },
        checksum_verified,
    })
}

/// Reads the parts of a packed snapshot in order.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    /// The string table.
    strings: Vec<&'a str>,
    /// The variant sets, decoded.
    sets: Vec<crate::compile::Variants>,
    /// The serves.
    serves: Vec<Serve<'a>>,
    /// The rules.
    rules: Vec<Rule<'a>>,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader {
            bytes,
            at: 0,
            strings: Vec::new(),
            sets: Vec::new(),
            serves: Vec::new(),
            rules: Vec::new(),
        }
    }

    fn corrupt(&self, what: &'static str) -> PackedError {
        PackedError::Corrupt { at: self.at, what }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PackedError> {
        let bytes = self.bytes;
        match bytes.get(self.at..).and_then(|rest| rest.get(..n)) {
            Some(out) => {
                self.at += n;
                Ok(out)
            }
            None => Err(PackedError::Truncated { at: self.at }),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], PackedError> {
        let b = self.take(N)?;
        Ok(b.try_into().expect("N bytes"))
    }

    fn byte(&mut self) -> Result<u8, PackedError> {
        match self.bytes.get(self.at) {
            Some(&b) => {
                self.at += 1;
                Ok(b)
            }
            None => Err(PackedError::Truncated { at: self.at }),
        }
    }

    #[inline]
    fn int(&mut self) -> Result<u64, PackedError> {
        let first = self.byte()?;
        if first < 0x80 {
            return Ok(u64::from(first));
        }
        let mut n = u64::from(first & 0x7f);
        let mut shift = 7;
        loop {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return Err(self.corrupt("an int over 64 bits"));
            }
            n |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(n);
            }
            shift += 7;
        }
    }

    /// A count of items that each take at least `min` bytes: never more
    /// than the bytes left can hold, so a corrupt count allocates nothing.
    fn count(&mut self, min: usize) -> Result<usize, PackedError> {
        let n = self.int()?;
        let left = (self.bytes.len() - self.at) / min;
        match usize::try_from(n) {
            Ok(n) if n <= left => Ok(n),
            _ => Err(PackedError::Truncated { at: self.at }),
        }
    }

    fn list<T>(
        &mut self,
        min: usize,
        mut item: impl FnMut(&mut Self) -> Result<T, PackedError>,
    ) -> Result<Vec<T>, PackedError> {
        let n = self.count(min)?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(item(self)?);
        }
        Ok(items)
    }

    /// A list of one or two items held in place.
    fn small<T>(
        &mut self,
        min: usize,
        mut item: impl FnMut(&mut Self) -> Result<T, PackedError>,
    ) -> Result<Small<T>, PackedError> {
        let n = self.count(min)?;
        Ok(match n {
            1 => Small::One([item(self)?]),
            2 => Small::Two([item(self)?, item(self)?]),
            _ => {
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(item(self)?);
                }
                Small::Many(items)
            }
        })
    }

    fn float(&mut self) -> Result<f64, PackedError> {
        let x = f64::from_le_bytes(self.array()?);
        if x.is_finite() {
            Ok(x)
        } else {
            Err(self.corrupt("a number that is not finite"))
        }
    }

    /// Reads the string table: lengths, then one run of UTF-8 checked at once.
    fn strings(&mut self) -> Result<(), PackedError> {
        let n = self.count(1)?;
        let mut ends = Vec::with_capacity(n);
        let mut end = 0usize;
        for _ in 0..n {
            let len = usize::try_from(self.int()?).map_err(|_| self.corrupt("a string length"))?;
            end = end
                .checked_add(len)
                .ok_or_else(|| self.corrupt("a string length"))?;
            ends.push(end);
        }
        let at = self.at;
        let blob = std::str::from_utf8(self.take(end)?).map_err(|_| PackedError::Corrupt {
            at,
            what: "a string that is not UTF-8",
        })?;
        self.strings.reserve(n);
        let mut start = 0;
        for end in ends {
            // `get` fails on a length that splits a character.
            let s = blob.get(start..end).ok_or(PackedError::Corrupt {
                at,
                what: "a string that is not UTF-8",
            })?;
            self.strings.push(s);
            start = end;
        }
        Ok(())
    }

    #[inline]
    fn text(&mut self) -> Result<&'a str, PackedError> {
        let i = self.int()?;
        usize::try_from(i)
            .ok()
            .and_then(|i| self.strings.get(i).copied())
            .ok_or_else(|| self.corrupt("a string index past the table"))
    }

    fn str(&mut self) -> Result<Str<'a>, PackedError> {
        Ok(Str(Cow::Borrowed(self.text()?)))
    }

    fn opt_str(&mut self) -> Result<Option<Str<'a>>, PackedError> {
        let i = self.int()?;
        if i == 0 {
            return Ok(None);
        }
        usize::try_from(i - 1)
            .ok()
            .and_then(|i| self.strings.get(i).copied())
            .map(|s| Some(Str(Cow::Borrowed(s))))
            .ok_or_else(|| self.corrupt("a string index past the table"))
    }

    fn value(&mut self, depth: usize) -> Result<Value, PackedError> {
        let tag = self.byte()?;
        Ok(match tag {
            T_NULL => Value::Null,
            T_FALSE => Value::Bool(false),
            T_TRUE => Value::Bool(true),
            T_U64 => Value::Number(Number::from(self.int()?)),
            T_I64 => {
                let z = self.int()?;
                let i = (z >> 1) as i64 ^ -((z & 1) as i64);
                if i >= 0 {
                    return Err(self.corrupt("a negative number that is not negative"));
                }
                Value::Number(Number::from(i))
            }
            T_F64 => {
                let x = self.float()?;
                Value::Number(Number::from_f64(x).ok_or_else(|| self.corrupt("a number"))?)
            }
            T_STR => Value::String(self.text()?.to_string()),
            T_ARRAY | T_OBJECT if depth >= MAX_DEPTH => {
                return Err(self.corrupt("a value nested too deeply"));
            }
            T_ARRAY => Value::Array(self.list(1, |r| r.value(depth + 1))?),
            T_OBJECT => {
                let n = self.count(2)?;
                let mut map = serde_json::Map::new();
                for _ in 0..n {
                    let name = self.text()?.to_string();
                    let value = self.value(depth + 1)?;
                    map.insert(name, value);
                }
                Value::Object(map)
            }
            _ => return Err(self.corrupt("a value tag")),
        })
    }

    /// A set of variants, names strictly increasing.
    fn set(&mut self) -> Result<crate::compile::Variants, PackedError> {
        let n = self.count(2)?;
        let mut entries: Vec<(Box<str>, Value)> = Vec::with_capacity(n);
        for _ in 0..n {
            let name = self.text()?;
            if entries.last().is_some_and(|(last, _)| **last >= *name) {
                return Err(self.corrupt("variant names out of order"));
            }
            let value = self.value(0)?;
            entries.push((Box::from(name), value));
        }
        Ok(Arc::from(entries))
    }

    fn serve(&mut self) -> Result<Serve<'a>, PackedError> {
        Ok(match self.byte()? {
            S_VARIANT => Serve::Variant(self.str()?),
            S_ROLLOUT => Serve::Rollout(self.small(9, |r| {
                Ok(WeightedVariant {
                    variant: r.str()?,
                    weight: r.float()?,
                })
            })?),
            S_SCHEDULE => Serve::Schedule(Schedule {
                variant: self.str()?,
                otherwise: self.str()?,
                steps: self.list(9, |r| {
                    Ok(ScheduleStep {
                        at: r.str()?,
                        percentage: r.float()?,
                    })
                })?,
            }),
            _ => return Err(self.corrupt("a serve tag")),
        })
    }

    /// An index into `items`, cloned.
    fn item<T: Clone>(
        &mut self,
        items: fn(&Self) -> &[T],
        what: &'static str,
    ) -> Result<T, PackedError> {
        let i = self.int()?;
        usize::try_from(i)
            .ok()
            .and_then(|i| items(self).get(i).cloned())
            .ok_or_else(|| self.corrupt(what))
    }

    fn serve_ref(&mut self) -> Result<Serve<'a>, PackedError> {
        self.item(|r| &r.serves, "a serve index past the serves")
    }

    fn flag(&mut self) -> Result<Flag<'a>, PackedError> {
        let key = self.str()?;
        let flag_type = *TYPES
            .get(usize::from(self.byte()?))
            .ok_or_else(|| self.corrupt("a flag type"))?;
        let bits = self.byte()?;
        if bits & !(F_ENABLED | F_CLIENT_SIDE | F_LAYER) != 0 {
            return Err(self.corrupt("a flag's bits"));
        }
        let set = self.int()?;
        let variants = usize::try_from(set)
            .ok()
            .and_then(|i| self.sets.get(i))
            .map(|set| Variants::Shared(Arc::clone(set)))
            .ok_or_else(|| self.corrupt("a variant set index past the sets"))?;
        let off_variant = self.str()?;
        let rules = self.list(1, |r| r.item(|r| &r.rules, "a rule index past the rules"))?;
        let fallthrough = self.serve_ref()?;
        let prerequisites = self.list(2, |r| {
            Ok(Prerequisite {
                flag: r.str()?,
                variant: r.str()?,
            })
        })?;
        let salt = self.opt_str()?;
        let bucket_by = self.opt_str()?;
        let layer = if bits & F_LAYER != 0 {
            Some(LayerSlot {
                key: self.str()?,
                start: self.float()?,
                end: self.float()?,
            })
        } else {
            None
        };
        let metadata = FlagMetadata {
            description: self.opt_str()?,
            owner: self.opt_str()?,
            tags: self.small(1, Reader::str)?,
        };
        Ok(Flag {
            key,
            flag_type,
            variants,
            enabled: bits & F_ENABLED != 0,
            off_variant,
            rules,
            fallthrough,
            prerequisites,
            salt,
            bucket_by,
            layer,
            client_side: bits & F_CLIENT_SIDE != 0,
            metadata,
        })
    }
}
