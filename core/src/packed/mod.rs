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
//! load keeps its good flags as before). Rule and segment conditions are
//! compiled where the snapshot is packed (format version 2): each is
//! carried as its text and as the tree the rule compiler made of it (or
//! the problem it found, with its position), so compiling an engine from
//! a packed snapshot parses no condition, and a build without the
//! `rule-parser` feature (the edge worker) links no lexer or parser.
//! Version 1 carried the texts alone; builds with the parser still read
//! it, and [`pack_as`] still writes it for readers that predate version 2.
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
//! # Format (version 2)
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
//! | conditions | list of the rules' distinct conditions: text (string), tree (see the `tree` module: the compiled condition or its problem, `segment(…)` resolved to a segment's position) |
//! | rules | list of rules; a rule: id, description (optional strings), condition (int index of a condition), serve (int index of a serve) |
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
//! key (string), included, excluded (lists of strings), condition
//! (optional string), its tree if it has one, description (optional
//! string). A flag: key (string), type (byte:
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
//!
//! Version 1 is the same without the conditions table: a rule's
//! condition is its text (string), and a segment's has no tree.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::{Number, Value};
use sha2::{Digest, Sha256};

use crate::borrowed::{
    Flag, FlagMetadata, Layer, LayerSlot, Prerequisite, Rule, Rules, Schedule, ScheduleStep,
    Segment, Serve, Small, Snapshot, Str, Variants, WeightedVariant,
};
use crate::compile::{FastMap, Precompiled};
use crate::model::FlagType;
use crate::parsed::ParsedSnapshot;

mod tree;
#[cfg(feature = "rule-parser")]
mod write;

#[cfg(feature = "rule-parser")]
use write::{Writer, put_int};
#[cfg(feature = "rule-parser")]
pub use write::{pack, pack_as, pack_with_document};

/// The first four bytes of a packed snapshot (`"BSNP"`).
pub const MAGIC: [u8; 4] = *b"BSNP";

/// The version of the format this build writes ([`pack`]) and reads. A
/// reader refuses any version it does not know: a new version is
/// published alongside the old one until every reader knows it
/// ([`pack_as`] writes the old one).
pub const FORMAT_VERSION: u16 = 2;

/// Version 1, without precompiled conditions: read by builds with the
/// rule parser (the `rule-parser` feature, on by default), which compile
/// its condition texts; written by [`pack_as`] for readers that predate
/// version 2.
pub const FORMAT_VERSION_1: u16 = 1;

/// The versions this build reads, for messages.
const READS: &str = if cfg!(feature = "rule-parser") {
    "versions 1 and 2"
} else {
    "version 2 (it has no rule parser for version 1's condition texts)"
};

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
    #[error("packed snapshot format version {found}, this build reads {READS}")]
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
    /// [`pack_as`] was asked for a version it does not write.
    #[error("packed snapshot format version {0} is not one this build writes (1 or 2)")]
    Version(u16),
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

/// The packed snapshot `bytes` without the document it carries: the same
/// header, digest and tables, the header declaring no document. The
/// digest never covered the document, so the result reads as `bytes` do
/// ([`ParsedSnapshot::from_packed`]: the same snapshot, the same checks)
/// at a fraction of the size: what a host that never serves the JSON text
/// needs (the edge's pointer answers isolates with it, [`tables`] tells
/// whether a full value holds the same tables). Borrowed when `bytes`
/// carry no document; only the header is read.
///
/// ```
/// use bunting_core::packed::{document, pack, pack_with_document, without_document};
/// use bunting_core::ParsedSnapshot;
/// let doc = r#"{"schemaVersion": 1, "environment": "dev", "version": 3,
///   "generatedAt": "2026-11-25T00:00:00Z", "flags": []}"#;
/// let parsed = ParsedSnapshot::parse(doc).unwrap();
/// let full = pack_with_document(&parsed, doc).unwrap();
/// let tables = without_document(&full).unwrap();
/// assert_eq!(&*tables, &pack(&parsed).unwrap()[..]);
/// assert_eq!(document(&tables).unwrap(), None);
/// assert_eq!(ParsedSnapshot::from_packed(&tables).unwrap().version(), 3);
/// ```
pub fn without_document(bytes: &[u8]) -> Result<Cow<'_, [u8]>, PackedError> {
    let header = Header::read(bytes)?;
    let Some(end) = header.document else {
        return Ok(Cow::Borrowed(bytes));
    };
    // Magic, version and the digest marker; then a document length of 0
    // (none: one byte), the digest and the tables as they are.
    const FIXED: usize = 4 + 2 + 1;
    let from = header.tables - if header.digest.is_some() { 32 } else { 0 };
    let mut out = Vec::with_capacity(FIXED + 1 + end - from);
    out.extend_from_slice(&bytes[..FIXED]);
    out.push(0);
    out.extend_from_slice(&bytes[from..end]);
    Ok(Cow::Owned(out))
}

/// The part of a packed snapshot that the snapshot is read from: its
/// digest, if any, and its tables, without the header and the document.
/// Two packed values with the same tables hold the same snapshot, whether
/// or not they carry its document ([`without_document`]). Only the header
/// is read.
///
/// ```
/// use bunting_core::packed::{pack_with_document, tables, without_document};
/// use bunting_core::ParsedSnapshot;
/// let doc = r#"{"schemaVersion": 1, "environment": "dev", "version": 3,
///   "generatedAt": "2026-11-25T00:00:00Z", "flags": []}"#;
/// let full = pack_with_document(&ParsedSnapshot::parse(doc).unwrap(), doc).unwrap();
/// let bare = without_document(&full).unwrap();
/// assert_eq!(tables(&full).unwrap(), tables(&bare).unwrap());
/// assert!(tables(&full).unwrap().len() < bare.len());
/// ```
pub fn tables(bytes: &[u8]) -> Result<&[u8], PackedError> {
    let header = Header::read(bytes)?;
    let from = header.tables - if header.digest.is_some() { 32 } else { 0 };
    Ok(&bytes[from..header.document.unwrap_or(bytes.len())])
}

/// Where the parts of a packed snapshot are.
struct Header {
    /// The format version.
    version: u16,
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
        if !(version == FORMAT_VERSION
            || version == FORMAT_VERSION_1 && cfg!(feature = "rule-parser"))
        {
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
            version,
            tables: r.at,
            document,
            digest,
        })
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
    let v2 = header.version == FORMAT_VERSION;
    if v2 {
        r.conditions = r.list(2, |r| Ok((r.str()?, r.tree()?)))?;
    }
    r.rules = r.list(4, |r| {
        let id = r.opt_str()?;
        let description = r.opt_str()?;
        let (condition, compiled) = if v2 {
            let (text, tree) =
                r.item(|r| &r.conditions, "a condition index past the conditions")?;
            (text, Some(tree))
        } else {
            (r.str()?, None)
        };
        Ok(Rule {
            id,
            description,
            condition,
            serve: r.serve_ref()?,
            compiled,
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
        let key = r.str()?;
        let included = r.list(1, Reader::str)?;
        let excluded = r.list(1, Reader::str)?;
        let condition = r.opt_str()?;
        let compiled = match condition {
            Some(_) if v2 => Some(r.tree()?),
            _ => None,
        };
        Ok(Segment {
            key,
            included,
            excluded,
            condition,
            description: r.opt_str()?,
            compiled,
        })
    })?;
    if r.segments_cited > segments.len() {
        return Err(r.corrupt("a segment position past the segments"));
    }
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

/// A rule list shared by the flags that have it.
type SharedRules<'a> = Arc<[Rule<'a>]>;

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
    /// Version 2: the rule conditions, text and tree.
    conditions: Vec<(Str<'a>, Precompiled)>,
    /// The flags' distinct rule lists by a hash of their indices:
    /// positions in `lists`.
    list_at: FastMap<u64, Vec<usize>>,
    /// Each distinct rule list: its indices into `rules`, and the rules,
    /// shared by the flags that have it.
    lists: Vec<(Box<[usize]>, SharedRules<'a>)>,
    /// The indices of the flag being read.
    indices: Vec<usize>,
    /// One past the highest segment position a tree cites.
    segments_cited: usize,
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
            conditions: Vec::new(),
            list_at: FastMap::default(),
            lists: Vec::new(),
            indices: Vec::new(),
            segments_cited: 0,
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
                let i = tree::unzigzag(self.int()?);
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
        self.serve_at().map(|(serve, _)| serve)
    }

    /// A serve by its index into `serves`, and the index.
    fn serve_at(&mut self) -> Result<(Serve<'a>, usize), PackedError> {
        let i = self.int()?;
        usize::try_from(i)
            .ok()
            .and_then(|i| Some((self.serves.get(i)?.clone(), i)))
            .ok_or_else(|| self.corrupt("a serve index past the serves"))
    }

    /// A flag's rules (a list of indices into `rules`), shared with the
    /// flags before it that have the same list.
    fn flag_rules(&mut self) -> Result<Rules<'a>, PackedError> {
        let n = self.count(1)?;
        if n == 0 {
            return Ok(Rules::default());
        }
        let mut indices = std::mem::take(&mut self.indices);
        indices.clear();
        for _ in 0..n {
            let i = self.int()?;
            match usize::try_from(i).ok().filter(|&i| i < self.rules.len()) {
                Some(i) => indices.push(i),
                None => return Err(self.corrupt("a rule index past the rules")),
            }
        }
        // A plain fold of the indices (the map hashes it again): no
        // instantiation of a hasher for a slice of indices of its own.
        let hash = indices.iter().fold(n as u64, |h, &i| {
            (h.rotate_left(5) ^ i as u64).wrapping_mul(0x517c_c1b7_2722_0a95)
        });
        let same = self.list_at.entry(hash).or_default();
        let rules = match same.iter().find(|&&at| *self.lists[at].0 == *indices) {
            Some(&at) => Rules::Shared(Arc::clone(&self.lists[at].1), at),
            None => {
                // Collected into a `Vec`, then moved into the `Arc`: in the
                // edge bundle ~150 B gzipped less than collecting into the
                // `Arc` (`Arc::from_iter_exact`), at no cost in speed.
                let rules: Vec<Rule<'a>> = indices.iter().map(|&i| self.rules[i].clone()).collect();
                let rules: SharedRules<'a> = Arc::from(rules);
                let at = self.lists.len();
                same.push(at);
                self.lists
                    .push((Box::from(&indices[..]), Arc::clone(&rules)));
                Rules::Shared(rules, at)
            }
        };
        self.indices = indices;
        Ok(rules)
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
        let rules = self.flag_rules()?;
        let (fallthrough, fallthrough_at) = self.serve_at()?;
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
            fallthrough_at: Some(fallthrough_at),
            prerequisites,
            salt,
            bucket_by,
            layer,
            client_side: bits & F_CLIENT_SIDE != 0,
            metadata,
        })
    }
}
