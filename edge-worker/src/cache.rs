//! Snapshots in isolate memory, one per environment, refreshed from KV at
//! most every `SNAPSHOT_TTL_SECONDS`. Fail-static: a missing, corrupt or
//! incompatible KV value never replaces the last good engine; it is recorded
//! as `last_error` and shown by `/healthz`.
//!
//! Loads are always lenient (one bad flag must not take the edge down: it
//! evaluates to an error and is listed in `problems`), except for
//! document-level problems (schema version, environment, generation time,
//! checksum), which reject the whole snapshot.

use std::cell::{OnceCell, RefCell};
use std::hash::BuildHasher;
use std::rc::Rc;

use bunting_core::time::{format_rfc3339_ms, parse_rfc3339_ms};
use bunting_core::{Engine, ParsedSnapshot, Problem};
use bunting_wire::kv::snapshot_key;
use serde_json::{Value, json};

use crate::answers::{BulkAnswers, Clock};
use crate::ofrep::NumberForms;

/// Default seconds between two KV checks of one environment's snapshot.
pub const DEFAULT_TTL_SECONDS: u64 = 5;

/// Snapshot paths whose problems reject the whole document.
const FATAL_PATHS: &[&str] = &["schemaVersion", "environment", "generatedAt", "checksum"];

/// A successfully loaded snapshot.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The engine serving it.
    pub engine: Rc<Engine>,
    /// The KV text it came from, byte for byte (what `GET /sdk/v1/snapshot`
    /// sends).
    pub text: Rc<str>,
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
    /// Fingerprint of the KV text it came from.
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
    /// Fingerprint of the last KV text that failed to load (not parsed again).
    bad_fingerprint: Option<u64>,
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

/// Fingerprint of a snapshot text, compared with the served one's on every
/// KV check: foldhash (fixed seed) rather than SipHash, several times
/// faster over the 600 KiB of a large snapshot. Not a defence against
/// crafted collisions: snapshot texts come from the origin.
fn fingerprint(text: &str) -> u64 {
    foldhash::quality::FixedState::with_seed(0x6275_6e74_696e_6721).hash_one(text)
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
    let checksum = parsed.checksum().map(str::to_string);
    let (engine, problems) = Engine::from_parsed_lenient(&parsed);
    let numbers = NumberForms::of(&parsed);
    let clock = Clock::of(&parsed);
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
        let etag = loaded.etag.get_or_init(|| {
            Rc::from(crate::snapshot::etag(
                loaded.checksum.as_deref(),
                &loaded.text,
            ))
        });
        Some((loaded.text.clone(), etag.clone()))
    }

    /// The state of `environment`.
    pub fn state(&self, environment: &str) -> Option<&EnvState> {
        self.envs.get(environment)
    }

    /// Applies the result of reading `snapshot:<environment>` from KV.
    /// `Ok(None)` means the key does not exist.
    pub fn apply(
        &mut self,
        environment: &str,
        fetched: Result<Option<String>, String>,
        now_ms: i64,
    ) {
        let st = self.envs.entry(environment);
        st.last_check_ms = Some(now_ms);
        let fail = |st: &mut EnvState, msg: String| {
            if st.last_error.as_deref() != Some(msg.as_str()) {
                st.last_error_at_ms = Some(now_ms);
            }
            st.last_error = Some(msg);
        };
        let text = match fetched {
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
            Ok(Some(t)) => t,
        };
        let fp = fingerprint(&text);
        if st.loaded.as_ref().is_some_and(|l| l.fingerprint == fp) {
            st.last_error = None;
            st.last_error_at_ms = None;
            return;
        }
        if st.bad_fingerprint == Some(fp) {
            return;
        }
        match load(environment, &text) {
            Ok((engine, numbers, problems, checksum, clock)) => {
                if let Some(cur) = &st.loaded
                    && engine.version() < cur.engine.version()
                {
                    st.bad_fingerprint = Some(fp);
                    if cur.from_pointer {
                        // KV has not caught up with the pointer yet.
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
                st.loaded = Some(Loaded {
                    engine: Rc::new(engine),
                    text: Rc::from(text),
                    checksum: checksum.map(Rc::from),
                    etag: OnceCell::new(),
                    numbers: Rc::new(numbers),
                    answers: Rc::new(RefCell::new(BulkAnswers::new(clock))),
                    fingerprint: fp,
                    loaded_at_ms: now_ms,
                    problems,
                    from_pointer: false,
                });
                st.bad_fingerprint = None;
                st.last_error = None;
                st.last_error_at_ms = None;
            }
            Err(msg) => {
                st.bad_fingerprint = Some(fp);
                fail(st, msg);
            }
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

    /// Applies a snapshot sent by the environment's pointer: served if it
    /// loads and is newer than the served one. Answers whether it replaced
    /// the served snapshot; a text that does not load is an `Err` (and
    /// changes nothing). KV checks are not affected.
    pub fn apply_pointer(
        &mut self,
        environment: &str,
        text: String,
        now_ms: i64,
    ) -> Result<bool, String> {
        let (engine, numbers, problems, checksum, clock) = load(environment, &text)?;
        let st = self.envs.entry(environment);
        if st
            .loaded
            .as_ref()
            .is_some_and(|cur| engine.version() <= cur.engine.version())
        {
            return Ok(false);
        }
        st.loaded = Some(Loaded {
            engine: Rc::new(engine),
            fingerprint: fingerprint(&text),
            text: Rc::from(text),
            checksum: checksum.map(Rc::from),
            etag: OnceCell::new(),
            numbers: Rc::new(numbers),
            answers: Rc::new(RefCell::new(BulkAnswers::new(clock))),
            loaded_at_ms: now_ms,
            problems,
            from_pointer: true,
        });
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
            envs.insert(
                name.to_string(),
                json!({
                    "status": match (loaded, &st.last_error) {
                        (None, _) => "unavailable",
                        (Some(_), Some(_)) => "stale",
                        (Some(l), None) if !l.problems.is_empty() => "degraded",
                        _ => "ok",
                    },
                    "version": loaded.map(|l| l.engine.version()),
                    "generatedAt": loaded.map(|l| l.engine.generated_at()),
                    "ageSeconds": generated.map(|g| (now_ms - g) / 1000),
                    "loadedAt": time(loaded.map(|l| l.loaded_at_ms)),
                    "loadedAgeSeconds": loaded.map(|l| (now_ms - l.loaded_at_ms) / 1000),
                    "flags": loaded.map(|l| l.engine.flag_keys().count()),
                    "source": loaded.map(|l| if l.from_pointer { "pointer" } else { "kv" }),
                    "problems": loaded.map(|l| l.problems.iter().map(ToString::to_string).collect::<Vec<_>>()).unwrap_or_default(),
                    "lastCheck": time(st.last_check_ms),
                    "lastError": st.last_error,
                    "lastErrorAt": time(st.last_error_at_ms),
                }),
            );
        }
        Value::Object(envs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bunting_core::snapshot::{parse_json, seal};

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
        let clock = Clock::from_model(&snapshot);
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

    /// `load` and `owned_load` agree on everything but the engine's
    /// identity; the engines answer alike for `contexts` at `times`.
    fn assert_loads_alike(environment: &str, text: &str) {
        let contexts = [
            json!({"targetingKey": "u1", "country": "US", "plan": "pro", "email": "a@b.c"}),
            json!({"targetingKey": "u2", "country": "FR", "version": "2.1.0"}),
            json!({}),
        ];
        let times = [0, 1_796_083_200_000, 1_796_428_800_000, 1_800_000_000_000];
        match (load(environment, text), owned_load(environment, text)) {
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
            "offVariant": "off", "rules": [{"condition": "Now >= \"2026-12-01T00:00:00Z\"", "serve": {"variant": "on"}}],
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
        c.apply("p", Ok(Some(snap("p", 1, ""))), 1000);
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
        c.apply("p", Ok(Some(sealed.clone())), 0);
        let (text, etag) = c.text("p").unwrap();
        assert_eq!(&*text, sealed.as_str());
        assert_eq!(&*etag, format!("\"{}\"", snapshot.checksum.unwrap()));
        // A rejected text changes nothing; a newer one replaces both.
        c.apply("p", Ok(Some(snap("p", 0, ""))), 10);
        assert_eq!(&*c.text("p").unwrap().0, sealed.as_str());
        c.apply("p", Ok(Some(snap("p", 2, ""))), 20);
        let (text, etag) = c.text("p").unwrap();
        assert_eq!(&*text, snap("p", 2, ""));
        assert!(etag.starts_with("\"sha256:"), "{etag}");
    }

    #[test]
    fn fail_static() {
        let mut c = SnapshotCache::default();
        c.apply("p", Ok(Some(snap("p", 1, ""))), 0);
        for bad in [
            Ok(Some("{not json".to_string())),
            Ok(None),
            Err("boom".to_string()),
            Ok(Some(
                snap("p", 2, "").replace("\"schemaVersion\": 1", "\"schemaVersion\": 9"),
            )),
            Ok(Some(snap("other", 2, ""))),
            Ok(Some(snap("p", 0, ""))),
        ] {
            c.apply("p", bad, 10);
            assert_eq!(c.engine("p").unwrap().version(), 1);
            assert!(c.state("p").unwrap().last_error.is_some());
            assert_eq!(c.health(20)["p"]["status"], "stale");
        }
        c.apply("p", Ok(Some(snap("p", 1, ""))), 30);
        assert_eq!(c.state("p").unwrap().last_error, None);
        c.apply("p", Ok(Some(snap("p", 3, ""))), 40);
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
        c.apply("p", Ok(Some(snap("p", 1, ""))), 0);
        assert_eq!(c.apply_pointer("p", snap("p", 2, ""), 10), Ok(true));
        assert_eq!(c.version("p"), Some(2));
        assert_eq!(c.health(10)["p"]["source"], "pointer");
        // KV still holding version 1 is lag, not an error; never served.
        c.apply("p", Ok(Some(snap("p", 1, ""))), 20);
        assert_eq!(c.version("p"), Some(2));
        assert_eq!(c.health(20)["p"]["status"], "ok");
        // The same or an older version from the pointer changes nothing.
        assert_eq!(c.apply_pointer("p", snap("p", 2, ""), 30), Ok(false));
        assert_eq!(c.apply_pointer("p", snap("p", 1, ""), 30), Ok(false));
        assert!(c.apply_pointer("p", "{bad".into(), 30).is_err());
        assert_eq!(c.version("p"), Some(2));
        // KV catching up with the same text: served from KV again.
        c.apply("p", Ok(Some(snap("p", 3, ""))), 40);
        assert_eq!(c.version("p"), Some(3));
        assert_eq!(c.health(40)["p"]["source"], "kv");
        // With nothing served yet, the pointer's snapshot is served.
        assert_eq!(c.apply_pointer("q", snap("q", 1, ""), 0), Ok(true));
        assert_eq!(c.version("q"), Some(1));
    }

    #[test]
    fn a_new_snapshot_starts_with_no_answers() {
        use crate::audience::Audience;
        let mut c = SnapshotCache::default();
        c.apply("p", Ok(Some(snap("p", 1, ""))), 0);
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
        c.apply("p", Ok(Some(snap("p", 1, ""))), 10_000);
        assert!(
            c.answers("p", &engine)
                .unwrap()
                .borrow()
                .get(&key)
                .is_some()
        );
        // A new version: the old engine's answers are gone, the new one's empty.
        c.apply("p", Ok(Some(snap("p", 2, ""))), 20_000);
        assert!(c.answers("p", &engine).is_none());
        let (newer, _) = c.serving("p").unwrap();
        assert!(c.answers("p", &newer).unwrap().borrow().is_empty());
        // The same from the pointer.
        answers.borrow_mut().put(key.clone(), b"{}".to_vec());
        assert_eq!(c.apply_pointer("p", snap("p", 3, ""), 30_000), Ok(true));
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
        c.apply("p", Ok(Some(snap("p", 1, broken))), 0);
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
}
