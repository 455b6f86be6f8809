//! A small per-isolate cache of serialized bulk answers, one cache per
//! loaded snapshot.
//!
//! OFREP SDKs poll `POST /ofrep/v1/evaluate/flags` with the same context
//! again and again; between two snapshot versions the answer only depends
//! on what [`AnswerKey`] holds:
//!
//! - the **snapshot**: each loaded snapshot has its own [`BulkAnswers`]
//!   ([`crate::cache::Loaded::answers`]), so a new version (or a new text
//!   under the same version) starts with an empty cache, and the old one is
//!   dropped with the old engine;
//! - the **audience** of the SDK key ([`Audience`]: a client key sees fewer
//!   flags and details);
//! - the **context** as evaluated, edge attributes included, in its
//!   canonical JSON form (`serde_json` writes object keys sorted);
//! - the **`eventStreams`** member the worker adds, if any;
//! - the **time**, only when the snapshot's answers can depend on it
//!   ([`Clock`]): a scheduled rollout changes at its steps' instants, so the
//!   key holds how many of those instants have passed; a condition that
//!   reads `now` can change any millisecond, so such a snapshot's answers
//!   are never cached.
//!
//! A hit returns the body and its ETag without evaluating, serializing or
//! hashing anything. The cache is bounded by entries and bytes; the oldest
//! entry goes first.
//!
//! ```
//! use bunting_edge_worker::answers::{AnswerKey, BulkAnswers, Clock};
//! use bunting_edge_worker::audience::Audience;
//! let mut cache = BulkAnswers::new(Clock::Independent);
//! let key = cache.key(Audience::Server, br#"{"targetingKey":"u1"}"#.to_vec(), None, 0).unwrap();
//! assert!(cache.get(&key).is_none());
//! let answer = cache.put(key.clone(), b"{\"flags\":[]}".to_vec());
//! assert_eq!(cache.get(&key).unwrap().etag, answer.etag);
//! ```

use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::rc::Rc;

use bunting_core::time::parse_rfc3339_ms;
use bunting_core::{Engine, ParsedSnapshot};

use crate::audience::Audience;
use crate::ofrep::etag;

/// Most answers kept per snapshot.
pub const MAX_ENTRIES: usize = 32;
/// Most body bytes kept per snapshot (a 1,000-flag answer is about 160 KiB).
pub const MAX_BYTES: usize = 4 * 1024 * 1024;

/// How a snapshot's answers depend on the evaluation time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clock {
    /// Not at all: no schedule, no condition reading `now`.
    Independent,
    /// Only through scheduled rollouts: their step instants (Unix ms),
    /// sorted. Two times with as many instants passed give the same answers.
    Steps(Vec<i64>),
    /// Through a condition that reads `now` (or a step time that does not
    /// parse): any millisecond may change an answer, nothing is cached.
    Continuous,
}

impl Clock {
    /// How the answers of a parsed snapshot, loaded as `engine`, depend on
    /// time: continuously if a condition reads `now`
    /// ([`Engine::reads_the_time`], exact: a text that merely contains the
    /// letters, as `user.known == "snow"`, does not count), else through
    /// the schedules' step instants.
    ///
    /// ```
    /// use bunting_core::{Engine, ParsedSnapshot};
    /// use bunting_edge_worker::answers::Clock;
    /// let with = |condition: &str| {
    ///     let doc = format!(r#"{{"schemaVersion": 1,
    ///       "environment": "t", "version": 1, "generatedAt": "2026-11-25T00:00:00Z", "flags": [
    ///       {{"key": "f", "type": "boolean", "variants": {{"on": true, "off": false}}, "offVariant": "off",
    ///        "rules": [{{"condition": {condition:?}, "serve": {{"variant": "on"}}}}],
    ///        "fallthrough": {{"variant": "off"}}}}]}}"#);
    ///     let parsed = ParsedSnapshot::parse(&doc).unwrap();
    ///     Clock::of(&parsed, &Engine::from_parsed(&parsed).unwrap())
    /// };
    /// assert_eq!(with("plan == \"pro\""), Clock::Independent);
    /// assert_eq!(with("user.known == \"snow\""), Clock::Independent);
    /// assert_eq!(with("now > \"2026-12-01T00:00:00Z\""), Clock::Continuous);
    /// // Keywords are lower case: `NOW` is an attribute.
    /// assert_eq!(with("NOW > \"2026-12-01T00:00:00Z\""), Clock::Independent);
    /// ```
    pub fn of(parsed: &ParsedSnapshot<'_>, engine: &Engine) -> Clock {
        if engine.reads_the_time() {
            return Clock::Continuous;
        }
        let mut steps = Vec::new();
        for at in parsed.flags().flat_map(|f| f.schedule_steps()) {
            match parse_rfc3339_ms(at) {
                Some(at) => steps.push(at),
                None => return Clock::Continuous,
            }
        }
        Clock::of_steps(steps)
    }

    /// [`Clock::of`] as it was computed from the owned model: the
    /// reference the tests compare it with.
    #[cfg(test)]
    pub(crate) fn from_model(snapshot: &bunting_core::Snapshot, engine: &Engine) -> Clock {
        use bunting_core::Serve;
        if engine.reads_the_time() {
            return Clock::Continuous;
        }
        let mut steps = Vec::new();
        for flag in &snapshot.flags {
            let serves = flag
                .rules
                .iter()
                .map(|r| &r.serve)
                .chain([&flag.fallthrough]);
            for serve in serves {
                if let Serve::Schedule(s) = serve {
                    for step in &s.steps {
                        match parse_rfc3339_ms(&step.at) {
                            Some(at) => steps.push(at),
                            None => return Clock::Continuous,
                        }
                    }
                }
            }
        }
        Clock::of_steps(steps)
    }

    /// The clock of a snapshot without a condition reading `now` whose
    /// step instants are `steps`.
    fn of_steps(steps: Vec<i64>) -> Clock {
        if steps.is_empty() {
            return Clock::Independent;
        }
        // A heap sort, not `sort_unstable`: the same order (plain
        // integers), without a pattern-defeating quicksort instantiated
        // for `i64` in the bundle (≈ 4 KB of wasm) for a short list sorted
        // once per snapshot.
        let mut steps = std::collections::BinaryHeap::from(steps).into_sorted_vec();
        steps.dedup();
        Clock::Steps(steps)
    }

    /// The time part of a cache key at `now_ms`: `Some(None)` when time
    /// does not matter, `Some(Some(n))` with `n` step instants at or
    /// before `now_ms`, `None` when answers at `now_ms` must not be cached.
    pub fn key(&self, now_ms: i64) -> Option<Option<usize>> {
        match self {
            Clock::Independent => Some(None),
            Clock::Steps(steps) => Some(Some(steps.partition_point(|at| *at <= now_ms))),
            Clock::Continuous => None,
        }
    }
}

/// Everything a bulk answer of one snapshot depends on (see the module
/// docs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AnswerKey {
    audience: Audience,
    context: Vec<u8>,
    event_streams: Option<Vec<u8>>,
    time: Option<usize>,
}

/// A serialized bulk answer and its ETag.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The JSON body.
    pub body: Rc<[u8]>,
    /// Its strong ETag ([`etag`]).
    pub etag: Rc<str>,
}

/// The bulk answers of one snapshot ([`crate::answers`]).
#[derive(Debug)]
pub struct BulkAnswers {
    clock: Clock,
    entries: VecDeque<(u64, AnswerKey, Answer)>,
    bytes: usize,
}

impl BulkAnswers {
    /// An empty cache for a snapshot whose answers depend on time as
    /// `clock` says.
    pub fn new(clock: Clock) -> BulkAnswers {
        BulkAnswers {
            clock,
            entries: VecDeque::new(),
            bytes: 0,
        }
    }

    /// The key of a bulk answer for `audience`, the canonical JSON of the
    /// evaluated `context`, the JSON of the `eventStreams` member, at
    /// `now_ms`; `None` when such an answer must not be cached.
    pub fn key(
        &self,
        audience: Audience,
        context: Vec<u8>,
        event_streams: Option<Vec<u8>>,
        now_ms: i64,
    ) -> Option<AnswerKey> {
        Some(AnswerKey {
            audience,
            context,
            event_streams,
            time: self.clock.key(now_ms)?,
        })
    }

    fn hash(key: &AnswerKey) -> u64 {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        h.finish()
    }

    /// The cached answer for `key`, if any.
    pub fn get(&self, key: &AnswerKey) -> Option<Answer> {
        let h = Self::hash(key);
        self.entries
            .iter()
            .find(|(eh, ek, _)| *eh == h && ek == key)
            .map(|(_, _, a)| a.clone())
    }

    /// Computes the ETag of `body`, keeps both under `key` (dropping the
    /// oldest answers beyond [`MAX_ENTRIES`] or [`MAX_BYTES`]) and returns
    /// them. A body larger than [`MAX_BYTES`] is returned but not kept.
    pub fn put(&mut self, key: AnswerKey, body: Vec<u8>) -> Answer {
        let answer = Answer {
            etag: Rc::from(etag(&body)),
            body: Rc::from(body),
        };
        let size = answer.body.len() + key.context.len();
        if size > MAX_BYTES {
            return answer;
        }
        let h = Self::hash(&key);
        if let Some(i) = self
            .entries
            .iter()
            .position(|(eh, ek, _)| *eh == h && *ek == key)
            && let Some((_, old_key, old)) = self.entries.remove(i)
        {
            self.bytes -= old.body.len() + old_key.context.len();
        }
        while self.entries.len() >= MAX_ENTRIES || self.bytes + size > MAX_BYTES {
            match self.entries.pop_front() {
                Some((_, k, a)) => self.bytes -= a.body.len() + k.context.len(),
                None => break,
            }
        }
        self.bytes += size;
        self.entries.push_back((h, key, answer.clone()));
        answer
    }

    /// Number of answers kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no answer is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ofrep::{NumberForms, bulk};
    use serde_json::{Value, json};

    /// The clock of the snapshot `text`.
    fn clock_of(text: &str) -> Clock {
        let parsed = ParsedSnapshot::parse(text).unwrap();
        Clock::of(&parsed, &Engine::from_parsed_lenient(&parsed).0)
    }

    /// A condition whose text holds the letters `now` without reading the
    /// time leaves answers cacheable; one that reads it does not, also
    /// through a segment or a function; one that does not compile (its
    /// flag is broken, an error whatever the time) does not count.
    #[test]
    fn only_conditions_reading_now_make_answers_continuous() {
        for (condition, segment, clock) in [
            (
                r#"user.known == \"snow\""#,
                r#"\"now\" == \"NOW\""#,
                Clock::Independent,
            ),
            (
                r#"now > \"2026-12-01T00:00:00Z\""#,
                "true",
                Clock::Continuous,
            ),
            // Keywords are lower case: `NOW` is an attribute.
            (
                r#"NOW > \"2026-12-01T00:00:00Z\""#,
                "true",
                Clock::Independent,
            ),
            (
                r#"lower(email) == \"a\" || datetime(now) > 5"#,
                "true",
                Clock::Continuous,
            ),
            (
                r#"segment(\"s\")"#,
                r#"now < \"2027-01-01T00:00:00Z\""#,
                Clock::Continuous,
            ),
            (r#"now >= 2026-12-01"#, "true", Clock::Independent),
        ] {
            let text = format!(
                r#"{{"schemaVersion": 1, "environment": "t", "version": 1,
                "generatedAt": "2026-11-25T00:00:00Z",
                "segments": [{{"key": "s", "condition": "{segment}"}}],
                "flags": [{{"key": "f", "type": "boolean", "variants": {{"on": true, "off": false}},
                  "offVariant": "off", "rules": [{{"condition": "{condition}", "serve": {{"variant": "on"}}}}],
                  "fallthrough": {{"variant": "off"}}}}]}}"#
            );
            assert_eq!(clock_of(&text), clock, "{condition} / {segment}");
        }
    }

    const SNAPSHOT: &str = r#"{"schemaVersion": 1, "environment": "t", "version": 1,
      "generatedAt": "2026-11-25T00:00:00Z",
      "flags": [
        {"key": "b", "type": "boolean", "variants": {"on": true, "off": false}, "offVariant": "off",
         "rules": [{"id": "us", "condition": "country == \"US\"", "serve": {"variant": "on"}}],
         "fallthrough": {"variant": "off"}},
        {"key": "ramp", "type": "boolean", "variants": {"on": true, "off": false}, "offVariant": "off",
         "fallthrough": {"schedule": {"variant": "on", "otherwise": "off", "steps": [
           {"at": "2026-12-01T00:00:00Z", "percentage": 0.001},
           {"at": "2026-12-02T00:00:00Z", "percentage": 100}]}}}
      ]}"#;

    fn ms(t: &str) -> i64 {
        parse_rfc3339_ms(t).unwrap()
    }

    /// The bulk body and ETag the worker computes for `ctx` at `now`.
    fn answer(engine: &Engine, ctx: &Value, now: i64) -> (Vec<u8>, String) {
        let evals = Audience::Server.evaluate_all(engine, ctx, now);
        let body = bulk(&evals, &NumberForms::default(), None).to_bytes();
        let tag = etag(&body);
        (body, tag)
    }

    fn key(c: &BulkAnswers, ctx: &Value, now: i64) -> Option<AnswerKey> {
        c.key(
            Audience::Server,
            serde_json::to_vec(ctx).unwrap(),
            None,
            now,
        )
    }

    #[test]
    fn same_inputs_same_answer_and_etag() {
        let engine = Engine::from_json(SNAPSHOT).unwrap();
        let mut c = BulkAnswers::new(clock_of(SNAPSHOT));
        let ctx = json!({"targetingKey": "u1", "country": "US"});
        let now = ms("2026-11-30T00:00:00Z");
        let k = key(&c, &ctx, now).unwrap();
        let (body, tag) = answer(&engine, &ctx, now);
        let put = c.put(k.clone(), body.clone());
        assert_eq!(&*put.etag, tag);
        let hit = c.get(&key(&c, &ctx, now + 1000).unwrap()).unwrap();
        assert_eq!((&*hit.body, &*hit.etag), (body.as_slice(), tag.as_str()));
        assert_eq!(
            answer(&engine, &ctx, now).1,
            tag,
            "evaluating again: same tag"
        );
    }

    #[test]
    fn every_input_of_an_answer_is_in_its_key() {
        let c = BulkAnswers::new(clock_of(SNAPSHOT));
        let now = ms("2026-11-30T00:00:00Z");
        let ctx = json!({"targetingKey": "u1", "country": "US"});
        let base = key(&c, &ctx, now).unwrap();
        let other_ctx = key(&c, &json!({"targetingKey": "u1", "country": "FR"}), now);
        let client = c.key(
            Audience::Client,
            serde_json::to_vec(&ctx).unwrap(),
            None,
            now,
        );
        let streams = c.key(
            Audience::Server,
            serde_json::to_vec(&ctx).unwrap(),
            Some(b"{}".to_vec()),
            now,
        );
        let later = key(&c, &ctx, ms("2026-12-01T00:00:00Z"));
        for other in [other_ctx, client, streams, later] {
            assert_ne!(other.unwrap(), base);
        }
        // Key order of the context does not matter: serde_json sorts.
        let reordered: Value =
            serde_json::from_str(r#"{"country": "US", "targetingKey": "u1"}"#).unwrap();
        assert_eq!(key(&c, &reordered, now).unwrap(), base);
    }

    #[test]
    fn a_schedule_step_changes_the_key_exactly_when_the_answer_can_change() {
        let engine = Engine::from_json(SNAPSHOT).unwrap();
        let c = BulkAnswers::new(clock_of(SNAPSHOT));
        let ctx = json!({"targetingKey": "u1"});
        let step = ms("2026-12-02T00:00:00Z");
        // Different answers: different keys (and tags).
        assert_ne!(
            answer(&engine, &ctx, step - 1).1,
            answer(&engine, &ctx, step).1
        );
        assert_ne!(key(&c, &ctx, step - 1), key(&c, &ctx, step));
        // Between two steps: one key.
        assert_eq!(key(&c, &ctx, step), key(&c, &ctx, step + 86_400_000));
        assert_eq!(
            key(&c, &ctx, 0),
            key(&c, &ctx, ms("2026-11-30T23:59:59.999Z"))
        );
    }

    #[test]
    fn answers_reading_now_are_never_cached() {
        let snapshot =
            SNAPSHOT.replace(r#"country == \"US\""#, r#"now >= \"2026-12-01T00:00:00Z\""#);
        let c = BulkAnswers::new(clock_of(&snapshot));
        assert_eq!(c.clock, Clock::Continuous);
        assert!(key(&c, &json!({}), 0).is_none());
    }

    #[test]
    fn bounded_by_entries_and_bytes_oldest_first() {
        let mut c = BulkAnswers::new(Clock::Independent);
        let k = |i: usize| {
            c.key(Audience::Server, i.to_string().into_bytes(), None, 0)
                .unwrap()
        };
        let keys: Vec<_> = (0..MAX_ENTRIES + 2).map(k).collect();
        for k in &keys {
            c.put(k.clone(), vec![b'x'; 10]);
        }
        assert_eq!(c.len(), MAX_ENTRIES);
        assert!(c.get(&keys[0]).is_none() && c.get(&keys[1]).is_none());
        assert!(c.get(&keys[MAX_ENTRIES + 1]).is_some());
        // A big answer pushes out as many as needed; a too big one is not kept.
        c.put(keys[0].clone(), vec![b'y'; MAX_BYTES - 100]);
        assert!(c.get(&keys[0]).is_some());
        assert!(c.bytes <= MAX_BYTES, "{}", c.bytes);
        let huge = c.put(keys[1].clone(), vec![b'z'; MAX_BYTES + 1]);
        assert_eq!(huge.body.len(), MAX_BYTES + 1);
        assert!(c.get(&keys[1]).is_none());
        // Putting a key again replaces its answer.
        c.put(keys[0].clone(), b"new".to_vec());
        assert_eq!(&*c.get(&keys[0]).unwrap().body, b"new");
        assert_eq!(
            c.entries.iter().filter(|(_, ek, _)| *ek == keys[0]).count(),
            1
        );
    }
}
