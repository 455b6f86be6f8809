//! Snapshots in isolate memory, one per environment, refreshed from KV at
//! most every `SNAPSHOT_TTL_SECONDS`. Fail-static: a missing, corrupt or
//! incompatible KV value never replaces the last good engine; it is recorded
//! as `last_error` and shown by `/healthz`.
//!
//! Loads are always lenient (one bad flag must not take the edge down: it
//! evaluates to an error and is listed in `problems`), except for
//! document-level problems (schema version, environment, generation time,
//! checksum), which reject the whole snapshot.
//!
//! A KV value is a snapshot's packed form ([`bunting_core::packed`], told
//! by its first bytes, [`packed::MAGIC`], which no JSON text starts with):
//! read without a JSON parser, it loads into the engine, and carries the
//! published JSON text that `/sdk/v1/snapshot` serves. A snapshot's JSON
//! text is refused ([`not_packed`]) as any value that does not load is:
//! the last good snapshot keeps serving, and `/healthz` and the 503 of an
//! environment with none say to republish it packed. The JSON reader
//! (serde's snapshot model, ≈ 45 KB of the bundle) is only built with the
//! crate's `json-snapshots` feature (`BUNTING_EDGE_FEATURES=json-snapshots cargo xtask edge`),
//! for publishers that must stay on JSON: then a JSON text loads as a
//! packed value does, fails alike and follows the same version rules.

use std::cell::{OnceCell, RefCell};
use std::hash::BuildHasher;
use std::rc::Rc;

use bunting_core::packed;
use bunting_core::time::{format_rfc3339_ms, parse_rfc3339_ms};
use bunting_core::{Engine, ParsedSnapshot, Problem};
use bunting_wire::kv::{snapshot_key, tables_key};
use serde_json::Value;

use crate::answers::{BulkAnswers, Clock};
use crate::ofrep::NumberForms;

/// Default seconds between two KV checks of one environment's snapshot.
pub const DEFAULT_TTL_SECONDS: u64 = 5;

/// Default seconds between two reads of an environment's whole KV value
/// (`snapshot:<env>`) while its tables alone (`snapshot-tables:<env>`,
/// [`SnapshotCache::apply_tables`]) serve: the check that the tables are
/// not older than the whole value (tables left by an origin of an earlier
/// release).
pub const DEFAULT_WHOLE_CHECK_SECONDS: u64 = 60;

/// Snapshot paths whose problems reject the whole document.
const FATAL_PATHS: &[&str] = &["schemaVersion", "environment", "generatedAt", "checksum"];

/// A successfully loaded snapshot.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The engine serving it.
    pub engine: Rc<Engine>,
    /// The snapshot's JSON text, byte for byte as published (what `GET
    /// /sdk/v1/snapshot` sends): the KV value itself, or the document a
    /// packed one carries. `None` for a snapshot loaded from the tables the
    /// pointer sent alone, until the document is read
    /// ([`SnapshotCache::needs_document`]).
    pub text: Option<Rc<str>>,
    /// Fingerprint of the packed tables it was read from
    /// ([`packed::tables`]), which a value with or without the document
    /// shares; `None` for a JSON text.
    pub tables: Option<u64>,
    /// The form of the value it was loaded from.
    pub format: Format,
    /// The snapshot's `checksum`, if it has one.
    pub checksum: Option<Rc<str>>,
    /// The text's strong ETag ([`crate::snapshot::etag`]), computed when
    /// first asked for ([`SnapshotCache::text`]): without a checksum it is
    /// a SHA-256 of the whole text, which the OFREP endpoints never need,
    /// so a new version is served without hashing it.
    pub etag: OnceCell<Rc<str>>,
    /// How its number flags' values are written in OFREP responses.
    pub numbers: Rc<NumberForms>,
    /// Its bulk answers already serialized ([`crate::answers`]): a new
    /// snapshot starts with an empty cache.
    pub answers: Rc<RefCell<BulkAnswers>>,
    /// Fingerprint of the KV value (or pointer value) it came from.
    pub fingerprint: u64,
    /// When it was loaded (Unix ms).
    pub loaded_at_ms: i64,
    /// Flags a lenient load turned into errors.
    pub problems: Vec<Problem>,
    /// Whether it came from the environment's pointer ([`crate::pointer`])
    /// rather than KV: KV then holding an older version is KV lagging,
    /// not an error.
    pub from_pointer: bool,
}

impl Loaded {
    /// The snapshot of `parts` ([`load`]'s), loaded at `loaded_at_ms` from
    /// a value whose fingerprint is `fingerprint`: its text if the value
    /// carried it, its tables' fingerprint if packed, and its form.
    fn new(
        (engine, numbers, problems, checksum, clock): LoadedParts,
        (text, tables, format): (Option<Rc<str>>, Option<u64>, Format),
        fingerprint: u64,
        loaded_at_ms: i64,
        from_pointer: bool,
    ) -> Loaded {
        Loaded {
            engine: Rc::new(engine),
            text,
            tables,
            format,
            checksum: checksum.map(Rc::from),
            etag: OnceCell::new(),
            numbers: Rc::new(numbers),
            answers: Rc::new(RefCell::new(BulkAnswers::new(clock))),
            fingerprint,
            loaded_at_ms,
            problems,
            from_pointer,
        }
    }
}

/// What [`SnapshotCache::apply_tables`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablesCheck {
    /// The whole value (`snapshot:<env>`) must be read now.
    pub read_whole: bool,
    /// Why the tables found are not served, when they were refused now
    /// (to log once; the whole value then decides what is served).
    pub refused: Option<String>,
}

/// The form of a snapshot value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The snapshot's JSON text (served only with the `json-snapshots`
    /// feature).
    Json,
    /// The packed form ([`bunting_core::packed`]) with its JSON text.
    Packed,
}

impl Format {
    /// Its name in `/healthz` (`"json"` or `"packed"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Packed => "packed",
        }
    }
}

/// One environment's state.
#[derive(Debug, Clone, Default)]
pub struct EnvState {
    /// The last good snapshot, if any.
    pub loaded: Option<Loaded>,
    /// Last KV check (Unix ms); `None` before the first.
    pub last_check_ms: Option<i64>,
    /// Why the current KV value is not served, if it is not.
    pub last_error: Option<String>,
    /// When `last_error` was set.
    pub last_error_at_ms: Option<i64>,
    /// Fingerprint of the last KV value that failed to load (not read again).
    bad_fingerprint: Option<u64>,
    /// Whether `last_error` is the refusal of a value that is not packed
    /// ([`not_packed`]), which says what to do and may be shown to SDKs.
    not_packed: bool,
    /// Last read of the whole KV value (Unix ms), `snapshot:<env>`.
    whole_checked_ms: Option<i64>,
    /// Fingerprint of the last `snapshot-tables:<env>` value not to serve
    /// from (it did not load, or is older than the snapshot served): while
    /// KV holds it, every check reads the whole value.
    bad_tables: Option<u64>,
}

impl EnvState {
    /// Why there is no snapshot to serve, when SDKs may be told: the KV
    /// value is not packed ([`not_packed`]). Other errors stay for
    /// `/healthz`'s operator view.
    pub fn refusal(&self) -> Option<&str> {
        self.last_error.as_deref().filter(|_| self.not_packed)
    }
}

/// Per-environment state of an isolate: a list searched by name. An
/// isolate serves a handful of environments, so a scan is as fast as a
/// map, and it keeps one more `BTreeMap` instantiation (≈ 1 KB gzipped per
/// value type) out of the worker's bundle; nothing reads it in order
/// (`/healthz` writes a JSON object, whose keys serde_json sorts).
#[derive(Debug)]
pub(crate) struct EnvMap<T>(Vec<(Box<str>, T)>);

impl<T> Default for EnvMap<T> {
    fn default() -> EnvMap<T> {
        EnvMap(Vec::new())
    }
}

impl<T: Default> EnvMap<T> {
    /// The state of `environment`, if seen.
    pub(crate) fn get(&self, environment: &str) -> Option<&T> {
        self.0
            .iter()
            .find(|(name, _)| **name == *environment)
            .map(|(_, v)| v)
    }

    /// The state of `environment`, if seen, to change.
    pub(crate) fn get_mut(&mut self, environment: &str) -> Option<&mut T> {
        self.0
            .iter_mut()
            .find(|(name, _)| **name == *environment)
            .map(|(_, v)| v)
    }

    /// The state of `environment`, a default one added if not seen yet.
    pub(crate) fn entry(&mut self, environment: &str) -> &mut T {
        let i = match self.0.iter().position(|(name, _)| **name == *environment) {
            Some(i) => i,
            None => {
                self.0.push((Box::from(environment), T::default()));
                self.0.len() - 1
            }
        };
        &mut self.0[i].1
    }

    /// Every environment's state, in the order first seen.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.0.iter().map(|(name, v)| (&**name, v))
    }
}

/// Every environment seen by this isolate.
#[derive(Debug, Default)]
pub struct SnapshotCache {
    envs: EnvMap<EnvState>,
}

/// Fingerprint of a snapshot value's bytes (a JSON text or a packed
/// form), compared with the served one's on every KV check: foldhash
/// (fixed seed) rather than SipHash, several times faster over the 600 KiB
/// of a large snapshot. Not a defence against crafted collisions: snapshot
/// values come from the origin.
fn fingerprint(bytes: &[u8]) -> u64 {
    foldhash::quality::FixedState::with_seed(0x6275_6e74_696e_6721).hash_one(bytes)
}

/// Fingerprint of a packed value's tables ([`packed::tables`]), the same
/// whether or not it carries its document; `None` for other bytes.
fn tables_fingerprint(bytes: &[u8]) -> Option<u64> {
    packed::tables(bytes).ok().map(fingerprint)
}

/// The JSON text `bytes` carry when they hold, whole, the snapshot that
/// `loaded` serves from its tables alone ([`SnapshotCache::needs_document`];
/// `tables_fp` is their [`tables_fingerprint`]). `None` otherwise: another
/// snapshot, no text, or a text that is not UTF-8 (which loading the
/// bytes then reports).
fn missing_text<'b>(loaded: &Loaded, bytes: &'b [u8], tables_fp: Option<u64>) -> Option<&'b str> {
    if loaded.text.is_some() || tables_fp.is_none() || loaded.tables != tables_fp {
        return None;
    }
    packed::document(bytes).ok().flatten()
}

/// Whether `bytes` are a packed snapshot carrying the JSON text whose
/// fingerprint is `text_fingerprint` (only the packed header is read).
fn same_document(bytes: &[u8], text_fingerprint: u64) -> bool {
    bytes.starts_with(&packed::MAGIC)
        && packed::document(bytes)
            .ok()
            .flatten()
            .is_some_and(|doc| fingerprint(doc.as_bytes()) == text_fingerprint)
}

/// The text of a KV value read as bytes, as KV's `"text"` type decodes it
/// in workerd (UTF-8, a byte order mark kept, invalid sequences replaced by
/// U+FFFD); valid UTF-8 is taken without a copy.
///
/// ```
/// use bunting_edge_worker::cache::text_from_kv_bytes;
/// assert_eq!(text_from_kv_bytes(b"{\"a\":\"\xc3\xa9\"}".to_vec()), "{\"a\":\"é\"}");
/// assert_eq!(text_from_kv_bytes(b"\xef\xbb\xbf{}".to_vec()), "\u{feff}{}");
/// assert_eq!(text_from_kv_bytes(b"a\xffb\xe2\x82".to_vec()), "a\u{fffd}b\u{fffd}");
/// ```
pub fn text_from_kv_bytes(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// A snapshot text loaded by [`load`]: its engine, the JSON form of its
/// number flags, the flags a lenient load turned into errors, its
/// `checksum` (the ETag's source, [`crate::snapshot::etag`]), and how its
/// answers depend on time.
pub type LoadedParts = (Engine, NumberForms, Vec<Problem>, Option<String>, Clock);

/// Loads a snapshot text for `environment`: lenient, but document-level
/// problems and another environment's snapshot are errors.
pub fn load(environment: &str, text: &str) -> Result<LoadedParts, String> {
    // One parse, borrowing from the text: the engine, the number forms,
    // the clock and the checksum all come from it (no owned model).
    let parsed = ParsedSnapshot::parse(text).map_err(|e| e.to_string())?;
    let (engine, problems) = Engine::from_parsed_lenient(&parsed);
    load_parsed(environment, parsed, engine, problems)
}

/// Loads a packed snapshot for `environment` as [`load`] loads its JSON
/// text, giving also the JSON text it carries. Bytes that do not read
/// ([`packed::PackedError`], its message the error) and a packed snapshot
/// without a JSON text (nothing to serve `/sdk/v1/snapshot` with) are
/// errors. The text is not parsed: its integrity is its `checksum`, which
/// the hosts that fetch it verify ([`packed`]'s module docs).
pub fn load_packed<'a>(
    environment: &str,
    bytes: &'a [u8],
) -> Result<(LoadedParts, &'a str), String> {
    let (parts, document) = load_packed_tables(environment, bytes)?;
    let document =
        document.ok_or("packed snapshot rejected: it carries no JSON document to serve")?;
    Ok((parts, document))
}

/// [`load_packed`] of a value that may come without its JSON text (the
/// pointer's answer to an isolate, [`packed::without_document`]): the
/// text, if it carries one, is checked to be UTF-8 as there.
pub fn load_packed_tables<'a>(
    environment: &str,
    bytes: &'a [u8],
) -> Result<(LoadedParts, Option<&'a str>), String> {
    let document = packed::document(bytes).map_err(|e| e.to_string())?;
    let parsed = ParsedSnapshot::from_packed(bytes).map_err(|e| e.to_string())?;
    let (engine, problems) = Engine::from_packed_lenient(&parsed);
    Ok((
        load_parsed(environment, parsed, engine, problems)?,
        document,
    ))
}

/// What a worker says of a snapshot value that is not packed: what it
/// holds, that this worker reads packed values only, and how to republish.
///
/// ```
/// use bunting_edge_worker::cache::not_packed;
/// assert!(not_packed(b" {\"version\": 1}").starts_with("the snapshot value is JSON"));
/// assert!(not_packed(b"\x00\x01").starts_with("the snapshot value is not a packed snapshot"));
/// assert!(not_packed(b"{}").contains("bunting publish` or `bunting serve"));
/// ```
pub fn not_packed(bytes: &[u8]) -> String {
    let json = bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    let what = if json {
        "is JSON"
    } else {
        "is not a packed snapshot (it does not start with \"BSNP\")"
    };
    format!(
        "the snapshot value {what}: this worker reads packed snapshots only; {REPUBLISH_PACKED}"
    )
}

/// How to get a packed value to the edge, as [`not_packed`] says.
pub const REPUBLISH_PACKED: &str = "republish it packed (`bunting publish` or `bunting serve` \
    without `--kv-format json`), or build the worker with its `json-snapshots` feature";

/// Loads a KV value for `environment`: a packed snapshot if it starts
/// with [`packed::MAGIC`] ([`load_packed`]); anything else is refused
/// ([`not_packed`]) unless the `json-snapshots` feature is on, which
/// loads it as a JSON text ([`load`]; bytes that are not UTF-8 decoded as
/// [`text_from_kv_bytes`] does). Gives the parts, the JSON text to serve
/// and the value's form.
pub fn load_value(
    environment: &str,
    bytes: Vec<u8>,
) -> Result<(LoadedParts, Rc<str>, Format), String> {
    if bytes.starts_with(&packed::MAGIC) {
        let (parts, document) = load_packed(environment, &bytes)?;
        Ok((parts, Rc::from(document), Format::Packed))
    } else {
        load_text(environment, bytes)
    }
}

/// [`load_value`] of a value that is not packed: a JSON text.
#[cfg(feature = "json-snapshots")]
fn load_text(environment: &str, bytes: Vec<u8>) -> Result<(LoadedParts, Rc<str>, Format), String> {
    let text = text_from_kv_bytes(bytes);
    let parts = load(environment, &text)?;
    Ok((parts, Rc::from(text), Format::Json))
}

/// [`load_value`] of a value that is not packed: refused.
#[cfg(not(feature = "json-snapshots"))]
fn load_text(_: &str, bytes: Vec<u8>) -> Result<(LoadedParts, Rc<str>, Format), String> {
    Err(not_packed(&bytes))
}

/// Whether [`load_value`] refuses `bytes` for their form alone.
fn refused_form(bytes: &[u8]) -> bool {
    !cfg!(feature = "json-snapshots") && !bytes.starts_with(&packed::MAGIC)
}

/// The load shared by both forms, from the snapshot read and its engine:
/// a packed one's from [`Engine::from_packed_lenient`], which never hashes
/// the snapshot's canonical JSON (a build without `json-snapshots` then
/// links no canonical JSON writer).
fn load_parsed(
    environment: &str,
    parsed: ParsedSnapshot<'_>,
    engine: Engine,
    problems: Vec<Problem>,
) -> Result<LoadedParts, String> {
    let checksum = parsed.checksum().map(str::to_string);
    let numbers = NumberForms::of(&parsed);
    let clock = Clock::of(&parsed, &engine);
    drop(parsed);
    let fatal: Vec<String> = problems
        .iter()
        .filter(|p| p.entity.is_none() && FATAL_PATHS.contains(&p.path.as_str()))
        .map(ToString::to_string)
        .collect();
    if !fatal.is_empty() {
        return Err(format!("snapshot rejected: {}", fatal.join("; ")));
    }
    if engine.environment() != environment {
        return Err(format!(
            "snapshot rejected: it is for environment {:?}, not {environment:?}",
            engine.environment()
        ));
    }
    Ok((engine, numbers, problems, checksum, clock))
}

impl SnapshotCache {
    /// Whether `environment` should be checked in KV now.
    pub fn due(&self, environment: &str, now_ms: i64, ttl_ms: i64) -> bool {
        match self.envs.get(environment).and_then(|s| s.last_check_ms) {
            None => true,
            Some(at) => now_ms - at >= ttl_ms || now_ms < at,
        }
    }

    /// The engine serving `environment`, if there is a good snapshot.
    pub fn engine(&self, environment: &str) -> Option<Rc<Engine>> {
        Some(self.envs.get(environment)?.loaded.as_ref()?.engine.clone())
    }

    /// The engine serving `environment` and the JSON form of its number
    /// flags, if there is a good snapshot.
    pub fn serving(&self, environment: &str) -> Option<(Rc<Engine>, Rc<NumberForms>)> {
        let loaded = self.envs.get(environment)?.loaded.as_ref()?;
        Some((loaded.engine.clone(), loaded.numbers.clone()))
    }

    /// The bulk answers of the snapshot whose engine is `engine`, if it is
    /// still the one serving `environment`: an engine held across an
    /// `await` may have been replaced meanwhile, and its answers must not
    /// go into the new snapshot's cache.
    pub fn answers(
        &self,
        environment: &str,
        engine: &Rc<Engine>,
    ) -> Option<Rc<RefCell<BulkAnswers>>> {
        let loaded = self.envs.get(environment)?.loaded.as_ref()?;
        Rc::ptr_eq(&loaded.engine, engine).then(|| loaded.answers.clone())
    }

    /// The snapshot text serving `environment` and its ETag, if there is a
    /// good snapshot.
    pub fn text(&self, environment: &str) -> Option<(Rc<str>, Rc<str>)> {
        let loaded = self.envs.get(environment)?.loaded.as_ref()?;
        let text = loaded.text.as_ref()?;
        let etag = loaded
            .etag
            .get_or_init(|| Rc::from(crate::snapshot::etag(loaded.checksum.as_deref(), text)));
        Some((text.clone(), etag.clone()))
    }

    /// Whether `environment` serves a snapshot whose JSON text this
    /// isolate does not hold: loaded from the tables the pointer sent
    /// alone. Its text comes with the next KV check that finds the same
    /// snapshot, or from the pointer, asked again for the whole value
    /// ([`SnapshotCache::apply_pointer`]).
    pub fn needs_document(&self, environment: &str) -> bool {
        self.envs
            .get(environment)
            .and_then(|st| st.loaded.as_ref())
            .is_some_and(|l| l.text.is_none())
    }

    /// The state of `environment`.
    pub fn state(&self, environment: &str) -> Option<&EnvState> {
        self.envs.get(environment)
    }

    /// Applies the result of reading `snapshot:<environment>` from KV, as
    /// bytes: a packed snapshot, or with the `json-snapshots` feature a
    /// JSON text ([`load_value`]). `Ok(None)` means the key does not exist.
    pub fn apply(
        &mut self,
        environment: &str,
        fetched: Result<Option<Vec<u8>>, String>,
        now_ms: i64,
    ) {
        let st = self.envs.entry(environment);
        st.last_check_ms = Some(now_ms);
        st.whole_checked_ms = Some(now_ms);
        let fail = |st: &mut EnvState, msg: String| {
            if st.last_error.as_deref() != Some(msg.as_str()) {
                st.last_error_at_ms = Some(now_ms);
            }
            st.last_error = Some(msg);
            st.not_packed = false;
        };
        let bytes = match fetched {
            Err(e) => {
                return fail(
                    st,
                    format!("reading {} from KV failed: {e}", snapshot_key(environment)),
                );
            }
            Ok(None) => {
                return fail(
                    st,
                    format!("{} is missing from KV", snapshot_key(environment)),
                );
            }
            Ok(Some(b)) => b,
        };
        let fp = fingerprint(&bytes);
        if st.loaded.as_ref().is_some_and(|l| l.fingerprint == fp) {
            st.last_error = None;
            st.last_error_at_ms = None;
            return;
        }
        if st.bad_fingerprint == Some(fp) {
            return;
        }
        // The pointer may have sent the JSON text (an origin that fell
        // back to it for an older worker) while KV holds the same snapshot
        // packed, whose bytes differ. The JSON it carries tells: KV has
        // caught up with the pointer, and nothing needs loading again. (The
        // same packed value from both has the same fingerprint.)
        if let Some(cur) = st.loaded.as_mut()
            && cur.from_pointer
            && same_document(&bytes, cur.fingerprint)
        {
            cur.fingerprint = fp;
            st.last_error = None;
            st.last_error_at_ms = None;
            return;
        }
        // The snapshot served came from the pointer's tables alone, and KV
        // holds it whole: its document is the one to serve, nothing to load.
        let tables_fp = tables_fingerprint(&bytes);
        if let Some(cur) = st.loaded.as_mut()
            && let Some(text) = missing_text(cur, &bytes, tables_fp)
        {
            cur.text = Some(Rc::from(text));
            cur.fingerprint = fp;
            st.last_error = None;
            st.last_error_at_ms = None;
            return;
        }
        let form_refused = refused_form(&bytes);
        match load_value(environment, bytes) {
            Ok((parts, text, format)) => {
                let engine = &parts.0;
                if let Some(cur) = &st.loaded
                    && engine.version() < cur.engine.version()
                {
                    st.bad_fingerprint = Some(fp);
                    if cur.from_pointer || cur.text.is_none() {
                        // KV has not caught up with the pointer yet, or
                        // with the tables beside it (written after it, but
                        // the two keys propagate apart).
                        st.last_error = None;
                        st.last_error_at_ms = None;
                        return;
                    }
                    let msg = format!(
                        "snapshot version {} is older than the served version {}",
                        engine.version(),
                        cur.engine.version()
                    );
                    return fail(st, msg);
                }
                let source = (Some(text), tables_fp, format);
                st.loaded = Some(Loaded::new(parts, source, fp, now_ms, false));
                st.bad_fingerprint = None;
                st.last_error = None;
                st.last_error_at_ms = None;
            }
            Err(msg) => {
                st.bad_fingerprint = Some(fp);
                fail(st, msg);
                st.not_packed = form_refused;
            }
        }
    }

    /// Applies the result of reading `snapshot-tables:<environment>` from
    /// KV (`Ok(None)`: no such key), the served snapshot without its JSON
    /// text, which the origin writes after each packed `snapshot:<env>`:
    /// tens of kilobytes to check where the whole value is hundreds.
    /// Tables that differ from the served snapshot's and are not older
    /// load (without a text until the whole value is read, as the
    /// pointer's tables do, [`SnapshotCache::needs_document`]).
    ///
    /// Answers whether the whole value must be read now
    /// ([`SnapshotCache::apply`]): when there are no tables to serve from
    /// (no key, a failed read, tables that do not load or are older than
    /// the served snapshot: an origin of an earlier release wrote the whole
    /// value alone since), and every `whole_check_ms` (and when the text
    /// is asked for, [`SnapshotCache::needs_document`]) to be sure the
    /// tables are still the newest. New tables loaded answer `false`: the
    /// first request of a new version reads the tables alone.
    pub fn apply_tables(
        &mut self,
        environment: &str,
        fetched: Result<Option<Vec<u8>>, String>,
        now_ms: i64,
        whole_check_ms: i64,
    ) -> TablesCheck {
        let st = self.envs.entry(environment);
        st.last_check_ms = Some(now_ms);
        let whole_due = st
            .whole_checked_ms
            .is_none_or(|at| now_ms - at >= whole_check_ms || now_ms < at);
        let whole = |refused: Option<String>| TablesCheck {
            read_whole: true,
            refused,
        };
        let Ok(Some(bytes)) = fetched else {
            return whole(None);
        };
        let fp = fingerprint(&bytes);
        if st.bad_tables == Some(fp) {
            return whole(None);
        }
        let tables_fp = tables_fingerprint(&bytes);
        if tables_fp.is_some() && st.loaded.as_ref().is_some_and(|l| l.tables == tables_fp) {
            // What the last whole read found (a damaged or missing value)
            // stays visible until the next one: the tables say nothing of it.
            return TablesCheck {
                read_whole: whole_due,
                refused: None,
            };
        }
        let refuse = |st: &mut EnvState, msg: String| {
            st.bad_tables = Some(fp);
            whole(Some(format!("{}: {msg}", tables_key(environment))))
        };
        if packed::document(&bytes).map_or(true, |d| d.is_some()) {
            return refuse(st, "not a packed snapshot without its text".into());
        }
        let (parts, _) = match load_packed_tables(environment, &bytes) {
            Ok(loaded) => loaded,
            Err(e) => return refuse(st, e),
        };
        let version = parts.0.version();
        let served = st
            .loaded
            .as_ref()
            .map(|l| (l.engine.version(), l.from_pointer));
        if let Some((served, from_pointer)) = served
            && version < served
        {
            if from_pointer {
                // KV has not caught up with the pointer yet.
                return TablesCheck {
                    read_whole: whole_due,
                    refused: None,
                };
            }
            let msg = format!("version {version} is older than the served version {served}");
            return refuse(st, msg);
        }
        let source = (None, tables_fp, Format::Packed);
        st.loaded = Some(Loaded::new(parts, source, fp, now_ms, false));
        // A fresh isolate reads the whole value a minute on, not at once.
        st.whole_checked_ms.get_or_insert(now_ms);
        st.bad_fingerprint = None;
        st.last_error = None;
        st.last_error_at_ms = None;
        st.not_packed = false;
        TablesCheck {
            read_whole: false,
            refused: None,
        }
    }

    /// The version served for `environment`, if any.
    pub fn version(&self, environment: &str) -> Option<u64> {
        Some(
            self.envs
                .get(environment)?
                .loaded
                .as_ref()?
                .engine
                .version(),
        )
    }

    /// Applies a snapshot value sent by the environment's pointer, read
    /// as a KV value ([`load_value`]), except that a packed one may come
    /// without its JSON text (the tables alone, [`packed::without_document`]):
    /// served if it loads and is newer than the served one. Answers whether
    /// it replaced the served snapshot; a value that does not load is an
    /// `Err` (and changes nothing). KV checks are not affected.
    ///
    /// The whole value of the snapshot served from its tables alone
    /// gives it its text ([`SnapshotCache::needs_document`]) and loads
    /// nothing (answering `false`).
    pub fn apply_pointer(
        &mut self,
        environment: &str,
        value: Vec<u8>,
        now_ms: i64,
    ) -> Result<bool, String> {
        let fp = fingerprint(&value);
        let tables_fp = tables_fingerprint(&value);
        if let Some(cur) = self.envs.entry(environment).loaded.as_mut()
            && let Some(text) = missing_text(cur, &value, tables_fp)
        {
            cur.text = Some(Rc::from(text));
            cur.fingerprint = fp;
            return Ok(false);
        }
        let (parts, text, format) = if tables_fp.is_some() {
            let (parts, document) = load_packed_tables(environment, &value)?;
            (parts, document.map(Rc::from), Format::Packed)
        } else {
            let (parts, text, format) = load_value(environment, value)?;
            (parts, Some(text), format)
        };
        let st = self.envs.entry(environment);
        if st
            .loaded
            .as_ref()
            .is_some_and(|cur| parts.0.version() <= cur.engine.version())
        {
            return Ok(false);
        }
        let source = (text, tables_fp, format);
        st.loaded = Some(Loaded::new(parts, source, fp, now_ms, true));
        st.last_error = None;
        st.last_error_at_ms = None;
        Ok(true)
    }

    /// `/healthz` details of every environment seen by this isolate.
    pub fn health(&self, now_ms: i64) -> Value {
        let time = |ms: Option<i64>| ms.and_then(format_rfc3339_ms);
        let mut envs = serde_json::Map::new();
        for (name, st) in self.envs.iter() {
            let loaded = st.loaded.as_ref();
            let generated = loaded.and_then(|l| parse_rfc3339_ms(l.engine.generated_at()));
            let status = match (loaded, &st.last_error) {
                (None, _) => "unavailable",
                (Some(_), Some(_)) => "stale",
                (Some(l), None) if !l.problems.is_empty() => "degraded",
                _ => "ok",
            };
            let problems: Vec<String> = loaded
                .map(|l| l.problems.iter().map(ToString::to_string).collect())
                .unwrap_or_default();
            // Every value a `Value` already: what `json!` gave, without a
            // `to_value` instantiation per field (see `health::object`).
            envs.insert(
                name.to_string(),
                crate::health::object(vec![
                    ("status", Value::from(status)),
                    ("version", Value::from(loaded.map(|l| l.engine.version()))),
                    (
                        "generatedAt",
                        Value::from(loaded.map(|l| l.engine.generated_at())),
                    ),
                    (
                        "ageSeconds",
                        Value::from(generated.map(|g| (now_ms - g) / 1000)),
                    ),
                    (
                        "loadedAt",
                        Value::from(time(loaded.map(|l| l.loaded_at_ms))),
                    ),
                    (
                        "loadedAgeSeconds",
                        Value::from(loaded.map(|l| (now_ms - l.loaded_at_ms) / 1000)),
                    ),
                    (
                        "flags",
                        Value::from(loaded.map(|l| l.engine.flag_keys().count())),
                    ),
                    (
                        "source",
                        Value::from(loaded.map(|l| if l.from_pointer { "pointer" } else { "kv" })),
                    ),
                    ("format", Value::from(loaded.map(|l| l.format.as_str()))),
                    ("document", Value::from(loaded.map(|l| l.text.is_some()))),
                    ("problems", Value::from(problems)),
                    ("lastCheck", Value::from(time(st.last_check_ms))),
                    ("lastError", Value::from(st.last_error.clone())),
                    ("lastErrorAt", Value::from(time(st.last_error_at_ms))),
                ]),
            );
        }
        Value::Object(envs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bunting_core::snapshot::{parse_json, seal};
    use serde_json::json;

    /// A KV read that found `text`, as it is (a JSON text).
    fn json_value(text: String) -> Result<Option<Vec<u8>>, String> {
        Ok(Some(text.into_bytes()))
    }

    /// A KV read that found `text` packed, as publishers write it.
    fn kv_value(text: String) -> Result<Option<Vec<u8>>, String> {
        Ok(Some(pointer_value(&text)))
    }

    /// `text` packed, as the pointer sends it.
    fn pointer_value(text: &str) -> Vec<u8> {
        packed_of(text).unwrap_or_else(|| panic!("does not pack: {text}"))
    }

    fn snap(env: &str, version: u64, extra_flag: &str) -> String {
        format!(
            r#"{{"schemaVersion": 1, "environment": "{env}", "version": {version},
              "generatedAt": "2026-11-25T00:00:00Z",
              "flags": [{{"key": "f", "type": "boolean", "variants": {{"on": true, "off": false}},
                          "offVariant": "off", "fallthrough": {{"variant": "on"}}}}{extra_flag}]}}"#
        )
    }

    /// `load` as it was, through the owned model: the reference the
    /// one-parse `load` must match.
    fn owned_load(environment: &str, text: &str) -> Result<LoadedParts, String> {
        let snapshot = parse_json(text).map_err(|e| e.to_string())?;
        let checksum = snapshot.checksum.clone();
        let (engine, problems) = Engine::from_snapshot_lenient(&snapshot);
        let numbers = NumberForms::from_model(&snapshot);
        let clock = Clock::from_model(&snapshot, &engine);
        let fatal: Vec<String> = problems
            .iter()
            .filter(|p| p.entity.is_none() && FATAL_PATHS.contains(&p.path.as_str()))
            .map(ToString::to_string)
            .collect();
        if !fatal.is_empty() {
            return Err(format!("snapshot rejected: {}", fatal.join("; ")));
        }
        if engine.environment() != environment {
            return Err(format!(
                "snapshot rejected: it is for environment {:?}, not {environment:?}",
                engine.environment()
            ));
        }
        Ok((engine, numbers, problems, checksum, clock))
    }

    /// The packed form of `text` with `text` as its document, if it parses.
    fn packed_of(text: &str) -> Option<Vec<u8>> {
        let parsed = ParsedSnapshot::parse(text).ok()?;
        Some(packed::pack_with_document(&parsed, text).unwrap())
    }

    /// `load` and `owned_load` agree on everything but the engine's
    /// identity; the engines answer alike for `contexts` at `times`. So
    /// does `load_value` of `text` and of its packed form, which serves
    /// `text`.
    fn assert_loads_alike(environment: &str, text: &str) {
        assert_loaded_alike(load(environment, text), owned_load(environment, text), text);
        if cfg!(feature = "json-snapshots") {
            let (got, served, format) = match load_value(environment, text.as_bytes().to_vec()) {
                Ok((parts, served, format)) => (Ok(parts), Some(served), Some(format)),
                Err(e) => (Err(e), None, None),
            };
            assert_loaded_alike(got, owned_load(environment, text), text);
            assert!(served.is_none_or(|s| *s == *text), "{text}");
            assert!(format.is_none_or(|f| f == Format::Json), "{text}");
        } else {
            let refused = load_value(environment, text.as_bytes().to_vec()).map(|_| ());
            assert_eq!(refused, Err(not_packed(text.as_bytes())), "{text}");
        }
        if let Some(bytes) = packed_of(text) {
            let (got, served, format) = match load_value(environment, bytes) {
                Ok((parts, served, format)) => (Ok(parts), Some(served), Some(format)),
                Err(e) => (Err(e), None, None),
            };
            // A checksum that does not match is reported without the
            // content's hash ([`Engine::from_packed_lenient`]).
            let unhashed = |e: String| {
                let end = [", content hashes to ", ", which did not match"]
                    .iter()
                    .find_map(|cut| e.find(cut))
                    .unwrap_or(e.len());
                e[..end].to_string()
            };
            assert_loaded_alike(
                got.map_err(unhashed),
                owned_load(environment, text).map_err(unhashed),
                text,
            );
            assert!(served.is_none_or(|s| *s == *text), "packed: {text}");
            assert!(format.is_none_or(|f| f == Format::Packed), "{text}");
        }
    }

    /// Two loads agree on everything but the engine's identity; the
    /// engines answer alike for `contexts` at `times`.
    fn assert_loaded_alike(
        got: Result<LoadedParts, String>,
        want: Result<LoadedParts, String>,
        text: &str,
    ) {
        let contexts = [
            json!({"targetingKey": "u1", "country": "US", "plan": "pro", "email": "a@b.c"}),
            json!({"targetingKey": "u2", "country": "FR", "version": "2.1.0"}),
            json!({}),
        ];
        let times = [0, 1_796_083_200_000, 1_796_428_800_000, 1_800_000_000_000];
        match (got, want) {
            (Err(got), Err(want)) => assert_eq!(got, want, "{text}"),
            (Ok(got), Ok(want)) => {
                assert_eq!(got.1, want.1, "numbers: {text}");
                assert_eq!(got.2, want.2, "problems: {text}");
                assert_eq!(got.3, want.3, "checksum: {text}");
                assert_eq!(got.4, want.4, "clock: {text}");
                for ctx in &contexts {
                    for now in times {
                        assert_eq!(
                            got.0.evaluate_all(ctx, now),
                            want.0.evaluate_all(ctx, now),
                            "{text}"
                        );
                    }
                }
            }
            (got, want) => panic!("{text}: {:?} against {:?}", got.err(), want.err()),
        }
    }

    #[test]
    fn one_parse_loads_as_the_owned_model_did() {
        for path in crate::test_fixtures::conformance_paths() {
            let fixture: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let doc = fixture["snapshot"].to_string();
            let environment = fixture["snapshot"]["environment"].as_str().unwrap();
            assert_loads_alike(environment, &doc);
            assert_loads_alike("elsewhere", &doc);
        }
        // Float number flags, conditions reading `now` (a rule's and a
        // segment's), schedules, a step time that does not parse, a sealed
        // document and a tampered one, documents that fail to parse.
        let doc = |flags: Value, segments: Value| {
            json!({"schemaVersion": 1, "environment": "p", "version": 4,
                   "generatedAt": "2026-11-25T00:00:00Z", "flags": flags, "segments": segments})
        };
        let numbers = json!([
            {"key": "rate", "type": "number", "variants": {"zero": 0, "half": 0.5}, "offVariant": "zero",
             "fallthrough": {"variant": "half"}},
            {"key": "whole", "type": "number", "variants": {"one": 1, "big": 12345678901234_u64}, "offVariant": "one",
             "fallthrough": {"variant": "big"}},
            {"key": "exp", "type": "number", "variants": {"k": 1e3}, "offVariant": "k",
             "fallthrough": {"variant": "k"}},
            {"key": "not-a-number", "type": "string", "variants": {"a": "0.5"}, "offVariant": "a",
             "fallthrough": {"variant": "a"}},
            {"key": "obj", "type": "object", "variants": {"o": {"x": 0.5}}, "offVariant": "o",
             "fallthrough": {"variant": "o"}},
            {"key": "bad-number", "type": "number", "variants": {"s": "1.5", "f": 2.5}, "offVariant": "s",
             "fallthrough": {"variant": "f"}}
        ]);
        let ramp = |at: &str| {
            json!({"key": "ramp", "type": "boolean", "variants": {"on": true, "off": false},
                   "offVariant": "off",
                   "rules": [{"condition": "country == \"US\"", "serve": {"schedule": {
                       "variant": "on", "otherwise": "off", "steps": [
                       {"at": "2026-12-05T00:00:00Z", "percentage": 100}]}}}],
                   "fallthrough": {"schedule": {"variant": "on", "otherwise": "off", "steps": [
                       {"at": at, "percentage": 10},
                       {"at": "2026-12-01T00:00:00Z", "percentage": 50},
                       {"at": "2026-12-05T00:00:00Z", "percentage": 100}]}}})
        };
        let reads_now = json!({"key": "late", "type": "boolean", "variants": {"on": true, "off": false},
            "offVariant": "off", "rules": [{"condition": "now >= \"2026-12-01T00:00:00Z\"", "serve": {"variant": "on"}}],
            "fallthrough": {"variant": "off"}});
        let in_segment = json!({"key": "seg", "type": "boolean", "variants": {"on": true, "off": false},
            "offVariant": "off", "rules": [{"condition": "segment(\"s\")", "serve": {"variant": "on"}}],
            "fallthrough": {"variant": "off"}});
        let mut docs = vec![
            doc(numbers.clone(), json!([])),
            doc(json!([ramp("2026-11-30T00:00:00Z")]), json!([])),
            doc(json!([ramp("2026-11-30T00:00:00.5+01:00")]), json!([])),
            doc(json!([ramp("not a time")]), json!([])),
            doc(json!([ramp("2026-11-30T00:00:00Z"), reads_now]), json!([])),
            doc(
                json!([in_segment.clone()]),
                json!([{"key": "s", "condition": "now > \"2026-12-01T00:00:00Z\""}]),
            ),
            doc(
                json!([in_segment]),
                json!([{"key": "s", "included": ["u1"], "condition": "country == \"FR\""}]),
            ),
        ];
        let mut all = numbers.as_array().unwrap().clone();
        all.push(ramp("2026-11-30T00:00:00Z"));
        docs.push(doc(Value::Array(all), json!([])));
        let mut texts: Vec<String> = docs.iter().map(Value::to_string).collect();
        let mut sealed = parse_json(&texts[0]).unwrap();
        seal(&mut sealed);
        let sealed = serde_json::to_string_pretty(&sealed).unwrap();
        texts.push(sealed.replace("\"half\": 0.5", "\"half\": 0.25"));
        texts.push(sealed);
        texts.push(texts[1].replace("\"version\":4", "\"version\":\"4\""));
        texts.push(texts[1].replace("\"schemaVersion\":1", "\"schemaVersion\":2"));
        texts.push("{not json".to_string());
        texts.push(String::new());
        for text in &texts {
            assert_loads_alike("p", text);
        }
        // The documents above do exercise every clock and number form.
        let clock = |i: usize| load("p", &texts[i]).unwrap().4;
        assert_eq!(clock(0), Clock::Independent);
        assert!(matches!(clock(1), Clock::Steps(s) if s.len() == 3));
        assert!(matches!(clock(2), Clock::Steps(s) if s.len() == 3));
        assert_eq!(clock(3), Clock::Continuous);
        assert_eq!(clock(4), Clock::Continuous);
        assert_eq!(clock(5), Clock::Continuous);
        assert_eq!(clock(6), Clock::Independent);
        let numbers = load("p", &texts[0]).unwrap().1;
        for (key, float) in [
            ("rate", true),
            ("whole", false),
            ("exp", true),
            ("bad-number", true),
        ] {
            assert_eq!(numbers.is_float_flag(key), float, "{key}");
        }
        assert!(load("p", &texts[9]).unwrap().3.is_some());
        assert!(load("p", &texts[8]).unwrap_err().contains("checksum"));
    }

    #[test]
    fn ttl_gates_checks() {
        let mut c = SnapshotCache::default();
        assert!(c.due("p", 0, 5000));
        c.apply("p", kv_value(snap("p", 1, "")), 1000);
        assert!(!c.due("p", 5999, 5000));
        assert!(c.due("p", 6000, 5000));
        assert_eq!(c.engine("p").unwrap().version(), 1);
    }

    #[test]
    fn the_served_text_is_kept_as_is() {
        let mut c = SnapshotCache::default();
        assert!(c.text("p").is_none());
        let mut snapshot = parse_json(&snap("p", 1, "")).unwrap();
        seal(&mut snapshot);
        let sealed = serde_json::to_string_pretty(&snapshot).unwrap();
        c.apply("p", kv_value(sealed.clone()), 0);
        let (text, etag) = c.text("p").unwrap();
        assert_eq!(&*text, sealed.as_str());
        assert_eq!(&*etag, format!("\"{}\"", snapshot.checksum.unwrap()));
        // A rejected text changes nothing; a newer one replaces both.
        c.apply("p", kv_value(snap("p", 0, "")), 10);
        assert_eq!(&*c.text("p").unwrap().0, sealed.as_str());
        c.apply("p", kv_value(snap("p", 2, "")), 20);
        let (text, etag) = c.text("p").unwrap();
        assert_eq!(&*text, snap("p", 2, ""));
        assert!(etag.starts_with("\"sha256:"), "{etag}");
    }

    #[test]
    fn fail_static() {
        let mut c = SnapshotCache::default();
        c.apply("p", kv_value(snap("p", 1, "")), 0);
        for bad in [
            json_value("{not json".to_string()),
            Ok(None),
            Err("boom".to_string()),
            kv_value(snap("p", 2, "").replace("\"schemaVersion\": 1", "\"schemaVersion\": 9")),
            kv_value(snap("other", 2, "")),
            kv_value(snap("p", 0, "")),
        ] {
            c.apply("p", bad, 10);
            assert_eq!(c.engine("p").unwrap().version(), 1);
            assert!(c.state("p").unwrap().last_error.is_some());
            assert_eq!(c.health(20)["p"]["status"], "stale");
        }
        c.apply("p", kv_value(snap("p", 1, "")), 30);
        assert_eq!(c.state("p").unwrap().last_error, None);
        c.apply("p", kv_value(snap("p", 3, "")), 40);
        assert_eq!(c.engine("p").unwrap().version(), 3);
        assert_eq!(c.health(50)["p"]["status"], "ok");
    }

    #[test]
    fn sealed_snapshots_are_verified() {
        let mut snapshot = parse_json(&snap("p", 1, "")).unwrap();
        seal(&mut snapshot);
        let sealed = serde_json::to_string(&snapshot).unwrap();
        assert!(load("p", &sealed).is_ok());
        let tampered = sealed.replace("\"variant\":\"on\"", "\"variant\":\"off\"");
        assert_ne!(tampered, sealed);
        let err = load("p", &tampered).unwrap_err();
        assert!(err.contains("checksum"), "{err}");
    }

    #[test]
    fn the_pointer_runs_ahead_of_kv() {
        let mut c = SnapshotCache::default();
        c.apply("p", kv_value(snap("p", 1, "")), 0);
        assert_eq!(
            c.apply_pointer("p", pointer_value(&snap("p", 2, "")), 10),
            Ok(true)
        );
        assert_eq!(c.version("p"), Some(2));
        assert_eq!(c.health(10)["p"]["source"], "pointer");
        // KV still holding version 1 is lag, not an error; never served.
        c.apply("p", kv_value(snap("p", 1, "")), 20);
        assert_eq!(c.version("p"), Some(2));
        assert_eq!(c.health(20)["p"]["status"], "ok");
        // The same or an older version from the pointer changes nothing.
        assert_eq!(
            c.apply_pointer("p", pointer_value(&snap("p", 2, "")), 30),
            Ok(false)
        );
        assert_eq!(
            c.apply_pointer("p", pointer_value(&snap("p", 1, "")), 30),
            Ok(false)
        );
        assert!(c.apply_pointer("p", b"{bad".to_vec(), 30).is_err());
        assert_eq!(c.version("p"), Some(2));
        // KV catching up with the same text: served from KV again.
        c.apply("p", kv_value(snap("p", 3, "")), 40);
        assert_eq!(c.version("p"), Some(3));
        assert_eq!(c.health(40)["p"]["source"], "kv");
        // With nothing served yet, the pointer's snapshot is served.
        assert_eq!(
            c.apply_pointer("q", pointer_value(&snap("q", 1, "")), 0),
            Ok(true)
        );
        assert_eq!(c.version("q"), Some(1));
    }

    #[test]
    fn kv_catching_up_packed_with_the_pointer_is_not_loaded_again() {
        let mut c = SnapshotCache::default();
        c.apply("p", kv_value(snap("p", 1, "")), 0);
        let v2 = snap("p", 2, "");
        assert_eq!(c.apply_pointer("p", pointer_value(&v2), 10), Ok(true));
        let (served, _) = c.serving("p").unwrap();
        // KV now holds the pointer's snapshot, packed: the same engine keeps
        // serving, and the value's bytes are remembered.
        let packed = packed_of(&v2).unwrap();
        c.apply("p", Ok(Some(packed.clone())), 20);
        let (after, _) = c.serving("p").unwrap();
        assert!(
            Rc::ptr_eq(&served, &after),
            "the same version was loaded again"
        );
        assert_eq!(c.health(20)["p"]["status"], "ok");
        assert_eq!(
            c.state("p").unwrap().loaded.as_ref().unwrap().fingerprint,
            fingerprint(&packed)
        );
        c.apply("p", Ok(Some(packed)), 30);
        assert!(Rc::ptr_eq(&served, &c.serving("p").unwrap().0));
        // A packed value carrying another text of the same version is
        // loaded as before (and served from KV).
        let other = format!("{v2}\n");
        c.apply("p", Ok(Some(packed_of(&other).unwrap())), 40);
        let (replaced, _) = c.serving("p").unwrap();
        assert!(!Rc::ptr_eq(&served, &replaced));
        assert_eq!(c.text("p").unwrap().0.as_ref(), other.as_str());
        assert_eq!(c.health(40)["p"]["source"], "kv");
        assert_eq!(c.health(40)["p"]["format"], "packed");
    }

    #[test]
    fn a_packed_pointer_value_is_served_as_a_packed_kv_value() {
        let mut c = SnapshotCache::default();
        c.apply("p", kv_value(snap("p", 1, "")), 0);
        let v2 = snap("p", 2, "");
        let packed = packed_of(&v2).unwrap();
        assert_eq!(c.apply_pointer("p", packed.clone(), 10), Ok(true));
        let h = c.health(10);
        assert_eq!(
            (&h["p"]["version"], &h["p"]["source"], &h["p"]["format"]),
            (&json!(2), &json!("pointer"), &json!("packed"))
        );
        // /sdk/v1/snapshot serves the JSON text it carries.
        assert_eq!(c.text("p").unwrap().0.as_ref(), v2.as_str());
        let (served, _) = c.serving("p").unwrap();
        // KV catching up with the same packed value: nothing loaded again,
        // and KV's lag before that is no error.
        c.apply("p", kv_value(snap("p", 1, "")), 20);
        assert_eq!(c.health(20)["p"]["status"], "ok");
        c.apply("p", Ok(Some(packed.clone())), 30);
        assert!(Rc::ptr_eq(&served, &c.serving("p").unwrap().0));
        assert_eq!(c.health(30)["p"]["status"], "ok");
        // A damaged packed value from the pointer changes nothing.
        let mut damaged = packed_of(&snap("p", 3, "")).unwrap();
        let at = damaged.len() - v2.len() - 1;
        damaged[at] ^= 0x55;
        assert!(c.apply_pointer("p", damaged, 40).is_err());
        assert_eq!(c.version("p"), Some(2));
        // A packed value of another environment is refused as its JSON is.
        let other = packed_of(&snap("q", 5, "")).unwrap();
        let e = c.apply_pointer("p", other, 50).unwrap_err();
        assert!(e.contains("environment"), "{e}");
        assert_eq!(c.version("p"), Some(2));
    }

    /// `text` packed, without its document: what the pointer sends an
    /// isolate that asks with `tables=1`.
    fn tables_of(text: &str) -> Vec<u8> {
        packed::without_document(&pointer_value(text))
            .unwrap()
            .into_owned()
    }

    #[test]
    fn the_pointers_tables_alone_serve_until_the_text_is_asked_for() {
        let mut c = SnapshotCache::default();
        c.apply("p", kv_value(snap("p", 1, "")), 0);
        assert!(!c.needs_document("p"));
        let v2 = snap("p", 2, "");
        assert_eq!(c.apply_pointer("p", tables_of(&v2), 10), Ok(true));
        let (served, _) = c.serving("p").unwrap();
        assert_eq!(served.version(), 2);
        assert!(c.needs_document("p"));
        assert!(c.text("p").is_none(), "no text to serve yet");
        let h = c.health(10);
        assert_eq!(
            (&h["p"]["version"], &h["p"]["source"], &h["p"]["document"]),
            (&json!(2), &json!("pointer"), &json!(false))
        );
        // The same tables again: nothing changes.
        assert_eq!(c.apply_pointer("p", tables_of(&v2), 15), Ok(false));
        assert!(c.needs_document("p"));
        // The whole value of the same snapshot: its text, nothing loaded.
        assert_eq!(c.apply_pointer("p", pointer_value(&v2), 20), Ok(false));
        assert!(Rc::ptr_eq(&served, &c.serving("p").unwrap().0));
        assert!(!c.needs_document("p"));
        assert_eq!(c.text("p").unwrap().0.as_ref(), v2.as_str());
        assert_eq!(c.health(20)["p"]["document"], json!(true));

        // KV holding the snapshot whole gives its text as well, and is not
        // loaded again on the next checks.
        let v3 = snap("p", 3, "");
        assert_eq!(c.apply_pointer("p", tables_of(&v3), 30), Ok(true));
        let (served, _) = c.serving("p").unwrap();
        // KV lagging (version 2) is no error, and no text.
        c.apply("p", kv_value(v2.clone()), 35);
        assert_eq!(c.health(35)["p"]["status"], "ok");
        assert!(c.needs_document("p"));
        let whole = pointer_value(&v3);
        c.apply("p", Ok(Some(whole.clone())), 40);
        assert!(Rc::ptr_eq(&served, &c.serving("p").unwrap().0));
        assert_eq!(c.text("p").unwrap().0.as_ref(), v3.as_str());
        assert_eq!(
            c.state("p").unwrap().loaded.as_ref().unwrap().fingerprint,
            fingerprint(&whole)
        );
        c.apply("p", Ok(Some(whole)), 50);
        assert!(Rc::ptr_eq(&served, &c.serving("p").unwrap().0));
        assert_eq!(c.health(50)["p"]["status"], "ok");

        // Asked for the text, the pointer may already hold a newer
        // version: loaded and served whole.
        let v4 = snap("p", 4, "");
        assert_eq!(c.apply_pointer("p", tables_of(&v4), 60), Ok(true));
        let v5 = snap("p", 5, "");
        assert_eq!(c.apply_pointer("p", pointer_value(&v5), 70), Ok(true));
        assert_eq!(c.version("p"), Some(5));
        assert_eq!(c.text("p").unwrap().0.as_ref(), v5.as_str());

        // Damaged tables are refused as a damaged whole value is.
        let mut sealed = parse_json(&snap("p", 6, "")).unwrap();
        seal(&mut sealed);
        let sealed = serde_json::to_string(&sealed).unwrap();
        let mut damaged = tables_of(&sealed);
        let last = damaged.len() - 1;
        damaged[last] ^= 0x01;
        let e = c.apply_pointer("p", damaged, 80).unwrap_err();
        assert!(e.contains("digest"), "{e}");
        assert_eq!(c.version("p"), Some(5));
        // Tables of another environment are refused.
        let e = c
            .apply_pointer("p", tables_of(&snap("q", 9, "")), 90)
            .unwrap_err();
        assert!(e.contains("environment"), "{e}");
    }

    /// `snapshot-tables:<env>` as KV reads it.
    fn kv_tables(text: &str) -> Result<Option<Vec<u8>>, String> {
        Ok(Some(tables_of(text)))
    }

    /// Reads KV as the worker's `refresh` does at `now`: the tables, then
    /// the whole value when told to. Answers whether it read the whole.
    fn check_kv(
        c: &mut SnapshotCache,
        tables: Result<Option<Vec<u8>>, String>,
        whole: &str,
        now: i64,
    ) -> bool {
        let check = c.apply_tables("k", tables, now, 60_000);
        if check.read_whole {
            c.apply("k", Ok(Some(pointer_value(whole))), now);
        }
        check.read_whole
    }

    #[test]
    fn kv_tables_alone_serve_and_the_whole_value_is_read_when_needed() {
        let mut c = SnapshotCache::default();
        let (v1, v2, v3) = (snap("k", 1, ""), snap("k", 2, ""), snap("k", 3, ""));
        // A fresh isolate loads the tables alone: no text yet.
        assert!(!check_kv(&mut c, kv_tables(&v1), &v1, 0));
        assert_eq!(c.version("k"), Some(1));
        assert!(c.needs_document("k"));
        let h = c.health(0);
        assert_eq!(
            (&h["k"]["source"], &h["k"]["document"], &h["k"]["status"]),
            (&json!("kv"), &json!(false), &json!("ok"))
        );
        // The same tables: nothing read but them until the whole check.
        let (served, _) = c.serving("k").unwrap();
        assert!(!check_kv(&mut c, kv_tables(&v1), &v1, 5_000));
        assert!(!check_kv(&mut c, kv_tables(&v1), &v1, 59_999));
        assert!(Rc::ptr_eq(&served, &c.serving("k").unwrap().0));
        // A minute on, the whole value: its text, nothing loaded again.
        assert!(check_kv(&mut c, kv_tables(&v1), &v1, 60_000));
        assert!(Rc::ptr_eq(&served, &c.serving("k").unwrap().0));
        assert_eq!(c.text("k").unwrap().0.as_ref(), v1.as_str());
        assert!(!check_kv(&mut c, kv_tables(&v1), &v1, 65_000));

        // A new version: its tables alone, the whole value not read.
        assert!(!check_kv(&mut c, kv_tables(&v2), &v1, 70_000));
        assert_eq!(c.version("k"), Some(2));
        assert!(c.needs_document("k"));
        // Asked for the text while the whole value lags: no error, no text.
        c.apply("k", Ok(Some(pointer_value(&v1))), 71_000);
        assert_eq!(c.health(71_000)["k"]["status"], "ok");
        assert!(c.text("k").is_none());
        c.apply("k", Ok(Some(pointer_value(&v2))), 72_000);
        assert_eq!(c.text("k").unwrap().0.as_ref(), v2.as_str());
        assert_eq!(c.version("k"), Some(2));

        // No tables key (an origin of an earlier release, or a JSON text
        // published since): the whole value, on every check.
        assert!(check_kv(&mut c, Ok(None), &v3, 80_000));
        assert_eq!(c.version("k"), Some(3));
        assert!(!c.needs_document("k"));
        assert!(check_kv(&mut c, Err("KV is down".into()), &v3, 85_000));
        assert_eq!(c.health(85_000)["k"]["status"], "ok");

        // Tables left behind, older than the whole value served: refused
        // once (to log), then the whole value on every check.
        let check = c.apply_tables("k", kv_tables(&v2), 90_000, 60_000);
        assert!(check.read_whole);
        let refused = check.refused.unwrap();
        assert!(
            refused.starts_with("snapshot-tables:k: version 2 is older than the served version 3"),
            "{refused}"
        );
        assert_eq!(
            c.apply_tables("k", kv_tables(&v2), 95_000, 60_000),
            TablesCheck {
                read_whole: true,
                refused: None
            }
        );
        assert_eq!(c.version("k"), Some(3));
        // Tables of the served snapshot serve again.
        assert!(!check_kv(&mut c, kv_tables(&v3), &v3, 100_000));
        // A whole value newer than the tables, read at its check, serves.
        let v4 = snap("k", 4, "");
        assert!(check_kv(&mut c, kv_tables(&v3), &v4, 160_000));
        assert_eq!(c.version("k"), Some(4));
        assert!(!c.needs_document("k"));

        // Tables that do not load, or carry a text, are refused; the
        // whole value decides.
        let mut damaged = tables_of(&v4);
        damaged.truncate(damaged.len() - 3);
        let check = c.apply_tables("k", Ok(Some(damaged)), 170_000, 60_000);
        assert!(check.read_whole && check.refused.is_some(), "{check:?}");
        let v5 = snap("k", 5, "");
        let check = c.apply_tables("k", Ok(Some(pointer_value(&v5))), 175_000, 60_000);
        assert_eq!(
            check.refused.as_deref(),
            Some("snapshot-tables:k: not a packed snapshot without its text")
        );
        assert_eq!(c.version("k"), Some(4));
        assert_eq!(c.health(175_000)["k"]["status"], "ok");
    }

    /// The pointer ahead of KV's tables: older tables are KV lagging, not
    /// refused; the tables of the pointer's snapshot are that snapshot.
    #[test]
    fn kv_tables_lagging_behind_the_pointer_are_no_error() {
        let mut c = SnapshotCache::default();
        let (v1, v2) = (snap("k", 1, ""), snap("k", 2, ""));
        assert!(!check_kv(&mut c, kv_tables(&v1), &v1, 0));
        assert_eq!(c.apply_pointer("k", tables_of(&v2), 1_000), Ok(true));
        let (served, _) = c.serving("k").unwrap();
        let check = c.apply_tables("k", kv_tables(&v1), 5_000, 60_000);
        assert_eq!(check.refused, None);
        assert!(!check.read_whole);
        let check = c.apply_tables("k", kv_tables(&v2), 10_000, 60_000);
        assert_eq!(check.refused, None);
        assert!(Rc::ptr_eq(&served, &c.serving("k").unwrap().0));
        assert_eq!(c.health(10_000)["k"]["status"], "ok");
    }

    /// A damaged whole value beside tables that still serve: its error
    /// stays on `/healthz` through the checks that read the tables alone,
    /// and goes when a whole value reads well.
    #[test]
    fn a_damaged_whole_value_stays_visible_while_the_tables_serve() {
        let mut c = SnapshotCache::default();
        let v1 = snap("k", 1, "");
        assert!(!check_kv(&mut c, kv_tables(&v1), &v1, 0));
        let mut damaged = pointer_value(&v1);
        damaged.truncate(damaged.len() - 3);
        let check = c.apply_tables("k", kv_tables(&v1), 60_000, 60_000);
        assert!(check.read_whole);
        c.apply("k", Ok(Some(damaged)), 60_000);
        assert_eq!(c.health(60_000)["k"]["status"], "stale");
        let error = c.state("k").unwrap().last_error.clone();
        assert!(error.is_some());
        // The tables alone, unchanged: the error stays, with its time.
        assert!(!check_kv(&mut c, kv_tables(&v1), &v1, 65_000));
        let st = c.state("k").unwrap();
        assert_eq!(
            (&st.last_error, st.last_error_at_ms),
            (&error, Some(60_000))
        );
        assert_eq!(c.version("k"), Some(1));
        // The next whole check reads a good value: the error goes.
        assert!(check_kv(&mut c, kv_tables(&v1), &v1, 120_000));
        assert_eq!(c.state("k").unwrap().last_error, None);
        assert_eq!(c.health(120_000)["k"]["status"], "ok");
    }

    #[test]
    fn a_new_snapshot_starts_with_no_answers() {
        use crate::audience::Audience;
        let mut c = SnapshotCache::default();
        c.apply("p", kv_value(snap("p", 1, "")), 0);
        let (engine, _) = c.serving("p").unwrap();
        let answers = c.answers("p", &engine).unwrap();
        let key = answers
            .borrow()
            .key(Audience::Server, b"{}".to_vec(), None, 0)
            .unwrap();
        answers
            .borrow_mut()
            .put(key.clone(), b"{\"flags\":[]}".to_vec());
        assert!(
            c.answers("p", &engine)
                .unwrap()
                .borrow()
                .get(&key)
                .is_some()
        );
        // The same text again: same snapshot, same answers.
        c.apply("p", kv_value(snap("p", 1, "")), 10_000);
        assert!(
            c.answers("p", &engine)
                .unwrap()
                .borrow()
                .get(&key)
                .is_some()
        );
        // A new version: the old engine's answers are gone, the new one's empty.
        c.apply("p", kv_value(snap("p", 2, "")), 20_000);
        assert!(c.answers("p", &engine).is_none());
        let (newer, _) = c.serving("p").unwrap();
        assert!(c.answers("p", &newer).unwrap().borrow().is_empty());
        // The same from the pointer.
        answers.borrow_mut().put(key.clone(), b"{}".to_vec());
        assert_eq!(
            c.apply_pointer("p", pointer_value(&snap("p", 3, "")), 30_000),
            Ok(true)
        );
        assert!(c.answers("p", &newer).is_none());
        let (pointed, _) = c.serving("p").unwrap();
        assert!(c.answers("p", &pointed).unwrap().borrow().is_empty());
        assert!(c.answers("q", &pointed).is_none());
    }

    #[test]
    fn nothing_good_yet() {
        let mut c = SnapshotCache::default();
        c.apply("p", Ok(None), 0);
        assert!(c.engine("p").is_none());
        assert_eq!(c.health(0)["p"]["status"], "unavailable");
    }

    #[test]
    fn lenient_flags_are_problems_not_failures() {
        let broken = r#", {"key": "g", "type": "boolean", "variants": {"on": true, "off": false},
            "offVariant": "off", "rules": [{"condition": "country ==", "serve": {"variant": "on"}}],
            "fallthrough": {"variant": "off"}}"#;
        let mut c = SnapshotCache::default();
        c.apply("p", kv_value(snap("p", 1, broken)), 0);
        let e = c.engine("p").unwrap();
        let r = e.evaluate("g", &json!({}), 0);
        assert_eq!(r.error_code.unwrap().as_str(), "PARSE_ERROR");
        assert_eq!(
            e.evaluate("f", &json!({}), 0).value.unwrap().as_ref(),
            &json!(true)
        );
        assert_eq!(c.health(0)["p"]["status"], "degraded");
        assert_eq!(c.health(0)["p"]["problems"].as_array().unwrap().len(), 1);
    }

    /// A sealed snapshot of `p` at `version`, pretty, and its packed form.
    fn sealed_pair(version: u64, extra_flag: &str) -> (String, Vec<u8>) {
        let mut snapshot = parse_json(&snap("p", version, extra_flag)).unwrap();
        seal(&mut snapshot);
        let text = serde_json::to_string_pretty(&snapshot).unwrap();
        let bytes = packed_of(&text).unwrap();
        (text, bytes)
    }

    /// Everything `/healthz` shows but the form, with the answers.
    fn served(c: &SnapshotCache, environment: &str) -> (Value, Value, (Rc<str>, Rc<str>)) {
        let mut health = c.health(100)[environment].clone();
        health.as_object_mut().unwrap().remove("format");
        let engine = c.engine(environment).unwrap();
        let answers = json!([
            engine.evaluate_all(&json!({"targetingKey": "u1"}), 0),
            engine.evaluate_all(&json!({"targetingKey": "u2", "country": "US"}), 0),
        ]);
        (health, answers, c.text(environment).unwrap())
    }

    #[cfg(feature = "json-snapshots")]
    #[test]
    fn a_packed_value_serves_as_its_json() {
        let broken = r#", {"key": "g", "type": "number", "variants": {"a": 0.5, "b": 2},
            "offVariant": "a", "rules": [{"condition": "country ==", "serve": {"variant": "b"}},
              {"condition": "now > \"2026-12-01T00:00:00Z\"", "serve": {"variant": "b"}}],
            "fallthrough": {"variant": "a"}},
            {"key": "h", "type": "boolean", "variants": {"on": true, "off": false},
            "offVariant": "off", "rules": [{"condition": "now > \"2026-12-01T00:00:00Z\"",
              "serve": {"variant": "on"}}], "fallthrough": {"variant": "off"}}"#;
        let (text, bytes) = sealed_pair(1, broken);
        assert!(bytes.starts_with(&packed::MAGIC));
        let (mut json_cache, mut packed_cache) =
            (SnapshotCache::default(), SnapshotCache::default());
        json_cache.apply("p", json_value(text.clone()), 0);
        packed_cache.apply("p", Ok(Some(bytes.clone())), 0);
        let (health, answers, (text_served, etag)) = served(&packed_cache, "p");
        assert_eq!(
            (health.clone(), answers, (text_served.clone(), etag.clone())),
            served(&json_cache, "p")
        );
        assert_eq!(
            &*text_served,
            text.as_str(),
            "the published text, byte for byte"
        );
        assert!(etag.starts_with("\"sha256:"), "{etag}");
        assert_eq!(health["status"], "degraded");
        assert_eq!(health["problems"].as_array().unwrap().len(), 1);
        assert_eq!(packed_cache.health(0)["p"]["format"], "packed");
        assert_eq!(json_cache.health(0)["p"]["format"], "json");
        let checksum = |c: &SnapshotCache| c.state("p").unwrap().loaded.clone().unwrap().checksum;
        assert_eq!(checksum(&packed_cache), checksum(&json_cache));
        // The parts the cache keeps besides the engine: number forms, clock.
        let ((_, numbers, problems, sum, clock), _, format) = load_value("p", bytes).unwrap();
        let (_, json_numbers, json_problems, json_sum, json_clock) = load("p", &text).unwrap();
        assert_eq!(format, Format::Packed);
        assert_eq!(
            (&numbers, &problems, &sum, &clock),
            (&json_numbers, &json_problems, &json_sum, &json_clock)
        );
        assert!(numbers.is_float_flag("g"));
        // Flag g's `now` rule never runs (another rule of it is broken, so
        // it answers an error); flag h's does.
        assert_eq!(clock, Clock::Continuous);
    }

    #[test]
    fn a_corrupt_packed_value_keeps_the_last_good_snapshot() {
        let (_, good) = sealed_pair(1, "");
        let (text, newer) = sealed_pair(2, "");
        let damaged = {
            let mut b = newer.clone();
            b[newer.len() - text.len() - 3] ^= 0x20;
            b
        };
        let other_version = {
            let mut b = newer.clone();
            b[4] = 9;
            b
        };
        let no_document = packed::pack(&ParsedSnapshot::parse(&text).unwrap()).unwrap();
        let bad_document = {
            let mut b = newer.clone();
            let at = b.len() - 2;
            b[at] = 0xff;
            b
        };
        let other_env = packed_of(&snap("q", 3, "")).unwrap();
        let older = packed_of(&snap("p", 0, "")).unwrap();
        let cases: [(Vec<u8>, &str); 7] = [
            (damaged, "packed snapshot does not match its digest"),
            (newer[..100].to_vec(), "packed snapshot ends early"),
            (other_version, "packed snapshot format version 9"),
            (no_document, "carries no JSON document"),
            (bad_document, "a document that is not UTF-8"),
            (other_env, "it is for environment \"q\""),
            (
                older,
                "snapshot version 0 is older than the served version 1",
            ),
        ];
        let mut c = SnapshotCache::default();
        c.apply("p", Ok(Some(good)), 0);
        let before = served(&c, "p");
        for (bad, want) in cases {
            c.apply("p", Ok(Some(bad)), 10);
            let st = c.state("p").unwrap();
            let err = st.last_error.clone().unwrap();
            assert!(err.contains(want), "{err} (want {want})");
            assert_eq!(c.version("p"), Some(1));
            assert_eq!(c.health(20)["p"]["status"], "stale");
            assert_eq!(c.health(20)["p"]["format"], "packed");
            let (_, answers, text) = served(&c, "p");
            assert_eq!((answers, text), (before.1.clone(), before.2.clone()));
        }
        c.apply("p", Ok(Some(newer)), 30);
        assert_eq!(c.version("p"), Some(2));
        assert_eq!(c.state("p").unwrap().last_error, None);
        assert_eq!(&*c.text("p").unwrap().0, text.as_str());
    }

    #[test]
    fn unchanged_packed_bytes_are_not_reloaded() {
        let (_, bytes) = sealed_pair(1, "");
        let mut c = SnapshotCache::default();
        c.apply("p", Ok(Some(bytes.clone())), 0);
        let engine = c.engine("p").unwrap();
        c.apply("p", Ok(Some(bytes.clone())), 10_000);
        assert!(Rc::ptr_eq(&engine, &c.engine("p").unwrap()));
        assert_eq!(
            c.state("p").unwrap().loaded.as_ref().unwrap().loaded_at_ms,
            0
        );
        // A bad value is not read again either: its error keeps its time.
        let mut bad = bytes.clone();
        bad.truncate(bytes.len() / 2);
        c.apply("p", Ok(Some(bad.clone())), 20_000);
        c.apply("p", Ok(Some(bad)), 30_000);
        assert_eq!(c.state("p").unwrap().last_error_at_ms, Some(20_000));
        c.apply("p", Ok(Some(bytes)), 40_000);
        assert!(Rc::ptr_eq(&engine, &c.engine("p").unwrap()));
        assert_eq!(c.state("p").unwrap().last_error, None);
    }

    /// Switching forms is a new value like any other: the same version
    /// in the other form replaces the served snapshot (an equal version is
    /// not older), and an older one in either form is refused.
    #[cfg(feature = "json-snapshots")]
    #[test]
    fn the_same_version_in_the_other_form_is_a_new_value() {
        let (text, bytes) = sealed_pair(1, "");
        let mut c = SnapshotCache::default();
        c.apply("p", Ok(Some(bytes.clone())), 0);
        let packed_engine = c.engine("p").unwrap();
        let packed_served = served(&c, "p");
        c.apply("p", json_value(text.clone()), 10);
        assert!(!Rc::ptr_eq(&packed_engine, &c.engine("p").unwrap()));
        assert_eq!(c.health(10)["p"]["format"], "json");
        assert_eq!(c.state("p").unwrap().last_error, None);
        let json_served = served(&c, "p");
        assert_eq!(json_served.1, packed_served.1);
        assert_eq!(json_served.2, packed_served.2);
        c.apply("p", Ok(Some(bytes)), 20);
        assert_eq!(c.health(20)["p"]["format"], "packed");
        c.apply("p", kv_value(snap("p", 0, "")), 30);
        assert_eq!(c.health(30)["p"]["format"], "packed");
        assert!(
            c.state("p")
                .unwrap()
                .last_error
                .as_deref()
                .unwrap()
                .contains("older")
        );
    }

    /// Without the `json-snapshots` feature, a JSON text in KV or from the
    /// pointer is refused as a value that does not load: the last good
    /// snapshot keeps serving, nothing is lost, and the error says what to
    /// do, for SDKs too when nothing is served.
    #[cfg(not(feature = "json-snapshots"))]
    #[test]
    fn a_json_value_is_refused_with_what_to_do() {
        let mut c = SnapshotCache::default();
        // Nothing served yet: unavailable, and why.
        c.apply("p", json_value(snap("p", 1, "")), 0);
        assert!(c.engine("p").is_none());
        let st = c.state("p").unwrap();
        let why = st.refusal().unwrap();
        assert!(why.contains("is JSON"), "{why}");
        assert!(why.contains("bunting publish` or `bunting serve"), "{why}");
        let h = c.health(0);
        assert_eq!(h["p"]["status"], "unavailable");
        assert_eq!(h["p"]["lastError"], why);
        // The same value again is not read again: its error keeps its time.
        c.apply("p", json_value(snap("p", 1, "")), 10);
        assert_eq!(c.state("p").unwrap().last_error_at_ms, Some(0));
        // Other errors are not for SDKs.
        c.apply("p", Ok(None), 20);
        assert!(c.state("p").unwrap().last_error.is_some());
        assert_eq!(c.state("p").unwrap().refusal(), None);
        // Bytes that are neither: refused for their form too.
        c.apply("p", json_value("\u{1}garbage".into()), 30);
        let why = c.state("p").unwrap().refusal().unwrap();
        assert!(why.contains("not a packed snapshot"), "{why}");
        // A packed value serves; JSON after it changes nothing but the error.
        c.apply("p", kv_value(snap("p", 1, "")), 40);
        let (engine, _) = c.serving("p").unwrap();
        let text = c.text("p").unwrap();
        c.apply("p", json_value(snap("p", 2, "")), 50);
        assert!(Rc::ptr_eq(&engine, &c.engine("p").unwrap()));
        assert_eq!(c.text("p").unwrap(), text);
        let h = c.health(50);
        assert_eq!(h["p"]["status"], "stale");
        assert_eq!(h["p"]["format"], "packed");
        assert!(h["p"]["lastError"].as_str().unwrap().contains("is JSON"));
        // From the pointer: an error, nothing changed.
        let e = c
            .apply_pointer("p", snap("p", 3, "").into_bytes(), 60)
            .unwrap_err();
        assert!(e.contains("is JSON"), "{e}");
        assert_eq!(c.version("p"), Some(1));
        // Republished packed: served, the error gone.
        c.apply("p", kv_value(snap("p", 2, "")), 70);
        assert_eq!(c.version("p"), Some(2));
        assert_eq!(c.health(70)["p"]["status"], "ok");
        assert_eq!(c.state("p").unwrap().refusal(), None);
    }
}
