//! The evaluator: a loaded snapshot answering flag evaluations.

use std::borrow::Cow;
use std::cell::Cell;

use crate::compile::{CFlag, CSchedule, CServe, Checksum, Compiled, compile};
use crate::context::{ContextRef, EvaluationContext, Found, Kind, json_type, same_bytes};
use crate::model::{DEFAULT_BUCKET_BY, FlagType, Snapshot};
use crate::parsed::ParsedSnapshot;
use crate::result::{ErrorCode, Evaluation, Reason};
use crate::rules::Env;
use crate::snapshot::{LoadError, Problem, checksum_of};
use serde_json::Value;

/// Prerequisite chains deeper than this fail with `GENERAL`.
const MAX_PREREQUISITE_DEPTH: u32 = 32;

/// A loaded, validated and compiled snapshot. Immutable and cheap to share.
///
/// ```
/// use bunting_core::{Engine, Reason};
/// use serde_json::json;
/// let engine = Engine::from_json(r#"{
///   "schemaVersion": 1, "environment": "production", "version": 3,
///   "generatedAt": "2026-11-25T10:00:00Z",
///   "flags": [{
///     "key": "new-checkout", "type": "boolean",
///     "variants": {"on": true, "off": false}, "offVariant": "off",
///     "rules": [{"id": "beta", "condition": "country in [\"US\", \"CA\"]", "serve": {"variant": "on"}}],
///     "fallthrough": {"variant": "off"}
///   }]
/// }"#).unwrap();
/// let r = engine.evaluate("new-checkout", &json!({"targetingKey": "u1", "country": "CA"}), 0);
/// assert_eq!(r.value.as_deref(), Some(&json!(true)));
/// assert_eq!(r.reason, Reason::TargetingMatch);
/// assert_eq!(r.rule_id.as_deref(), Some("beta"));
/// ```
#[derive(Debug, Clone)]
pub struct Engine {
    environment: String,
    version: u64,
    generated_at: String,
    compiled: Compiled,
    /// The condition of every rule, as a number shared by the rules with
    /// the same (shared) condition: flag `i`'s rules are
    /// `rule_conditions[rule_start[i]..]`. An evaluation of many flags
    /// evaluates each condition once.
    rule_conditions: Box<[u32]>,
    rule_start: Box<[u32]>,
    /// How many distinct conditions the rules have.
    conditions: usize,
    /// The top-level attributes the snapshot reads, found on first use
    /// ([`Engine::reads_attribute`]).
    read_roots: std::sync::OnceLock<Box<[Box<str>]>>,
}

/// Condition answers already computed for one context, by condition
/// number (see `Engine::rule_conditions`); empty for a single evaluation.
type ConditionMemo = [Cell<Option<bool>>];

/// Segment answers already computed for one context, by segment index:
/// `evaluate_all` asks each segment once however many flags use it. Empty
/// (nothing remembered) for a single evaluation, which then allocates
/// nothing.
type SegmentMemo = [Cell<Option<bool>>];

/// Outcome of resolving a serve: a variant, or an error.
type Resolved = Result<(usize, Reason), (ErrorCode, String)>;

/// One flag's evaluation as positions in the engine: what an
/// [`Evaluation`] says (see [`Engine::evaluation`]), for the compact
/// encoder, which writes its records from positions instead of finding
/// variants and rules by name.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outcome {
    /// The flag's position.
    pub flag: usize,
    pub answer: Answer,
}

/// What an [`Outcome`] answers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Answer {
    /// A variant (by position in the flag's variants), why, the matching
    /// rule (by position) and the prerequisite flag that was not served
    /// what it required.
    Served {
        variant: usize,
        reason: Reason,
        rule: Option<usize>,
        prerequisite: Option<usize>,
    },
    /// An error, with its message.
    Failed(ErrorCode, String),
}

/// What an evaluation answers with: an [`Evaluation`] borrowing from the
/// engine (the public calls) or an [`Outcome`] (the compact encoder, and
/// prerequisites). The engine is generic over it, so neither pays for
/// building the other.
pub(crate) trait Answers<'a>: Sized {
    /// Flag `flag` served `variant` for `reason`, through rule `rule`;
    /// `prerequisite` is the flag that was not served what it required.
    fn served(
        engine: &'a Engine,
        flag: usize,
        variant: usize,
        reason: Reason,
        rule: Option<usize>,
        prerequisite: Option<usize>,
    ) -> Self;

    /// Flag `flag` failed.
    fn failed(engine: &'a Engine, flag: usize, code: ErrorCode, message: String) -> Self;
}

impl Answers<'_> for Outcome {
    #[inline]
    fn served(
        _: &Engine,
        flag: usize,
        variant: usize,
        reason: Reason,
        rule: Option<usize>,
        prerequisite: Option<usize>,
    ) -> Self {
        Outcome {
            flag,
            answer: Answer::Served {
                variant,
                reason,
                rule,
                prerequisite,
            },
        }
    }

    #[inline]
    fn failed(_: &Engine, flag: usize, code: ErrorCode, message: String) -> Self {
        Outcome {
            flag,
            answer: Answer::Failed(code, message),
        }
    }
}

impl<'a> Answers<'a> for Evaluation<'a> {
    #[inline]
    fn served(
        engine: &'a Engine,
        flag: usize,
        variant: usize,
        reason: Reason,
        rule: Option<usize>,
        prerequisite: Option<usize>,
    ) -> Self {
        let f = &engine.compiled.flags[flag];
        engine.served(
            f,
            variant,
            reason,
            rule.map(|r| &*f.rules[r].id),
            prerequisite.map(|p| &*engine.compiled.flags[p].key),
        )
    }

    #[inline]
    fn failed(engine: &'a Engine, flag: usize, code: ErrorCode, message: String) -> Self {
        engine.fail(&engine.compiled.flags[flag], code, message)
    }
}

impl Engine {
    /// Parses, validates and compiles a snapshot document. Any problem fails
    /// the load; the error lists all of them.
    pub fn from_json(json: &str) -> Result<Engine, LoadError> {
        Engine::from_parsed(&ParsedSnapshot::parse(json)?)
    }

    /// [`Engine::from_json`], loading whatever is valid as
    /// [`Engine::from_snapshot_lenient`] does.
    pub fn from_json_lenient(json: &str) -> Result<(Engine, Vec<Problem>), LoadError> {
        Ok(Engine::from_parsed_lenient(&ParsedSnapshot::parse(json)?))
    }

    /// Validates and compiles a document parsed with
    /// [`ParsedSnapshot::parse`], failing on any problem: [`Engine::from_json`]
    /// for a host that reads more from the same parse.
    pub fn from_parsed(parsed: &ParsedSnapshot<'_>) -> Result<Engine, LoadError> {
        let (engine, problems) = Engine::from_parsed_lenient(parsed);
        if problems.is_empty() {
            Ok(engine)
        } else {
            Err(LoadError::Invalid(problems))
        }
    }

    /// [`Engine::from_parsed`], loading whatever is valid as
    /// [`Engine::from_snapshot_lenient`] does.
    pub fn from_parsed_lenient(parsed: &ParsedSnapshot<'_>) -> (Engine, Vec<Problem>) {
        let checksum = if parsed.checksum_verified {
            Checksum::Packed { verified: true }
        } else {
            Checksum::Hash(checksum_of)
        };
        Engine::compile(parsed.borrowed(), checksum)
    }

    /// [`Engine::from_parsed_lenient`] of a snapshot read by
    /// [`ParsedSnapshot::from_packed`], whose declared checksum is never
    /// hashed again: the packer checked it, and only a matching one gets a
    /// digest ([`crate::packed`]), so one without a digest is reported as
    /// a mismatch (worded without the content's hash). A build that loads
    /// no other snapshots (the edge worker) then links no canonical JSON
    /// writer. Given a snapshot parsed from JSON, whose checksum nothing
    /// verified, it reports a declared checksum as a mismatch too.
    pub fn from_packed_lenient(parsed: &ParsedSnapshot<'_>) -> (Engine, Vec<Problem>) {
        let checksum = Checksum::Packed {
            verified: parsed.checksum_verified,
        };
        Engine::compile(parsed.borrowed(), checksum)
    }

    /// Validates and compiles a parsed snapshot, failing on any problem.
    pub fn from_snapshot(snapshot: &Snapshot) -> Result<Engine, LoadError> {
        let (engine, problems) = Engine::from_snapshot_lenient(snapshot);
        if problems.is_empty() {
            Ok(engine)
        } else {
            Err(LoadError::Invalid(problems))
        }
    }

    /// Loads whatever is valid: flags with problems evaluate to an error
    /// (`PARSE_ERROR` for rule-language errors, else `GENERAL`) and the rest
    /// serve normally. Returns every problem found.
    pub fn from_snapshot_lenient(snapshot: &Snapshot) -> (Engine, Vec<Problem>) {
        Engine::compile(
            &crate::borrowed::Snapshot::of(snapshot),
            Checksum::Hash(checksum_of),
        )
    }

    /// Validates and compiles; the declared checksum is checked as
    /// `checksum` says.
    fn compile(
        snapshot: &crate::borrowed::Snapshot<'_>,
        checksum: Checksum,
    ) -> (Engine, Vec<Problem>) {
        let (compiled, problems) = compile(snapshot, checksum);
        // Rules share a condition (an `Arc`) when their texts are the same.
        let mut numbers: crate::compile::FastMap<*const crate::rules::Condition, u32> =
            Default::default();
        let mut rule_start = Vec::with_capacity(compiled.flags.len());
        let mut rule_conditions = Vec::new();
        for flag in &compiled.flags {
            rule_start.push(rule_conditions.len() as u32);
            for rule in flag.rules.iter() {
                let next = numbers.len() as u32;
                let n = *numbers
                    .entry(std::sync::Arc::as_ptr(&rule.condition))
                    .or_insert(next);
                rule_conditions.push(n);
            }
        }
        let engine = Engine {
            environment: snapshot.environment.to_string(),
            version: snapshot.version,
            generated_at: snapshot.generated_at.to_string(),
            compiled,
            rule_conditions: rule_conditions.into(),
            rule_start: rule_start.into(),
            conditions: numbers.len(),
            read_roots: std::sync::OnceLock::new(),
        };
        (engine, problems)
    }

    /// Whether an evaluation may read the top-level context attribute
    /// `name` (or an attribute inside it, `geo` for `geo.country`): some
    /// rule or segment condition, or some flag's or layer's bucketing
    /// attribute, names it. `targetingKey` always counts as read. A host
    /// may leave out of the context what no evaluation reads (the edge
    /// worker builds `geo` and `device` only when they are read) without
    /// changing any answer.
    ///
    /// ```
    /// use bunting_core::Engine;
    /// let engine = Engine::from_json(r#"{"schemaVersion": 1, "environment": "prod", "version": 1,
    ///   "generatedAt": "2026-12-06T00:00:00Z", "flags": [{"key": "f", "type": "boolean",
    ///   "variants": {"on": true, "off": false}, "offVariant": "off",
    ///   "rules": [{"id": "r", "condition": "geo.country == \"FR\"", "serve": {"variant": "on"}}],
    ///   "fallthrough": {"variant": "off"}}]}"#).unwrap();
    /// assert!(engine.reads_attribute("geo"));
    /// assert!(engine.reads_attribute("targetingKey"));
    /// assert!(!engine.reads_attribute("device"));
    /// assert!(!engine.reads_attribute("country"));
    /// ```
    pub fn reads_attribute(&self, name: &str) -> bool {
        self.read_roots
            .get_or_init(|| {
                // The first rule of each shared condition (numbered in
                // first-use order) is the one walked.
                let mut next = 0;
                let first_use: Vec<bool> = self
                    .rule_conditions
                    .iter()
                    .map(|&n| {
                        let first = n == next;
                        next += u32::from(first);
                        first
                    })
                    .collect();
                self.compiled.attribute_roots(&first_use)
            })
            .iter()
            .any(|r| **r == *name)
    }

    /// Whether an answer may change from one instant to the next: some
    /// condition reads `now` (exactly: a condition whose text merely
    /// contains the letters, as `known == "snow"`, does not). Scheduled
    /// rollouts change answers only at their steps' instants and are not
    /// counted here.
    ///
    /// ```
    /// use bunting_core::Engine;
    /// let with = |condition: &str| Engine::from_json(&format!(r#"{{"schemaVersion": 1,
    ///   "environment": "t", "version": 1, "generatedAt": "2026-11-25T00:00:00Z", "flags": [
    ///   {{"key": "f", "type": "boolean", "variants": {{"on": true, "off": false}}, "offVariant": "off",
    ///    "rules": [{{"condition": {condition:?}, "serve": {{"variant": "on"}}}}],
    ///    "fallthrough": {{"variant": "off"}}}}]}}"#)).unwrap().reads_the_time();
    /// assert!(with(r#"now > "2026-12-01T00:00:00Z""#));
    /// assert!(!with(r#"user.known == "snow""#));
    /// ```
    pub fn reads_the_time(&self) -> bool {
        self.compiled.reads_now()
    }

    /// The snapshot's environment.
    pub fn environment(&self) -> &str {
        &self.environment
    }

    /// The snapshot's version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The snapshot's generation time (RFC 3339).
    pub fn generated_at(&self) -> &str {
        &self.generated_at
    }

    /// Keys of all flags, in snapshot order.
    pub fn flag_keys(&self) -> impl Iterator<Item = &str> {
        self.compiled.flags.iter().map(|f| &*f.key)
    }

    /// Whether flag `key` exists and is available to client-side SDKs
    /// (`clientSide: true`); `false` for unknown keys.
    ///
    /// ```
    /// use bunting_core::Engine;
    /// let engine = Engine::from_json(r#"{"schemaVersion": 1, "environment": "t", "version": 1,
    ///   "generatedAt": "2026-11-25T00:00:00Z", "flags": [
    ///   {"key": "pub", "type": "boolean", "variants": {"on": true}, "offVariant": "on",
    ///    "fallthrough": {"variant": "on"}, "clientSide": true},
    ///   {"key": "priv", "type": "boolean", "variants": {"on": true}, "offVariant": "on",
    ///    "fallthrough": {"variant": "on"}}]}"#).unwrap();
    /// assert!(engine.is_client_side("pub"));
    /// assert!(!engine.is_client_side("priv"));
    /// assert!(!engine.is_client_side("nope"));
    /// ```
    pub fn is_client_side(&self, key: &str) -> bool {
        self.find(key)
            .is_some_and(|i| self.compiled.flags[i].client_side)
    }

    /// The number of flags.
    pub(crate) fn len(&self) -> usize {
        self.compiled.flags.len()
    }

    /// The key of the flag at `i`.
    pub(crate) fn key_at(&self, i: usize) -> &str {
        &self.compiled.flags[i].key
    }

    /// The variant names and rule ids of the flag at `i`, by position.
    pub(crate) fn names_at(
        &self,
        i: usize,
    ) -> (
        impl Iterator<Item = &str> + '_,
        impl Iterator<Item = &str> + '_,
    ) {
        let flag = &self.compiled.flags[i];
        (
            flag.variants.iter().map(|(n, _)| &**n),
            flag.rules.iter().map(|r| &*r.id),
        )
    }

    /// The position of flag `key`.
    fn find(&self, key: &str) -> Option<usize> {
        let flags = &self.compiled.flags;
        self.compiled.index.get(key, |i| &*flags[i].key)
    }

    /// Evaluates flag `key` for `context` at `now_ms` (Unix milliseconds).
    /// `context` is a JSON value (`serde_json::Value`) or a
    /// [`Context`](crate::Context); both answer alike.
    pub fn evaluate<'a, C: EvaluationContext + ?Sized>(
        &'a self,
        key: &str,
        context: &C,
        now_ms: i64,
    ) -> Evaluation<'a> {
        self.evaluate_typed(key, None, context, now_ms)
    }

    /// Like [`Engine::evaluate`], failing with `TYPE_MISMATCH` when the flag is
    /// not of `expected` type.
    pub fn evaluate_typed<'a, C: EvaluationContext + ?Sized>(
        &'a self,
        key: &str,
        expected: Option<FlagType>,
        context: &C,
        now_ms: i64,
    ) -> Evaluation<'a> {
        self.evaluate_ref(key, expected, context.context_ref(), now_ms)
    }

    /// [`Engine::evaluate_typed`] once the context's kind is known.
    fn evaluate_ref<'a>(
        &'a self,
        key: &str,
        expected: Option<FlagType>,
        context: ContextRef<'_>,
        now_ms: i64,
    ) -> Evaluation<'a> {
        match self.find(key) {
            Some(i) => self.answer_at(i, expected, context, now_ms),
            None => Evaluation::not_found(key),
        }
    }

    /// The position of flag `key`, for [`Engine::answer_at`].
    pub(crate) fn position(&self, key: &str) -> Option<usize> {
        self.find(key)
    }

    /// [`Engine::evaluate_typed`] of the flag at `i`, as an [`Evaluation`]
    /// or an [`Outcome`].
    pub(crate) fn answer_at<'a, A: Answers<'a>>(
        &'a self,
        i: usize,
        expected: Option<FlagType>,
        context: ContextRef<'_>,
        now_ms: i64,
    ) -> A {
        let flag = &self.compiled.flags[i];
        if let Some(t) = expected
            && t != flag.flag_type
        {
            return A::failed(
                self,
                i,
                ErrorCode::TypeMismatch,
                format!(
                    "flag {:?} is of type {}, not {}",
                    &*flag.key,
                    flag.flag_type.as_str(),
                    t.as_str()
                ),
            );
        }
        match check_context(context) {
            Ok(subject) => self.eval_flag(i, &subject, now_ms, 0, &[], &[]),
            Err(msg) => A::failed(self, i, ErrorCode::InvalidContext, msg),
        }
    }

    /// Evaluates every flag for `context`, in snapshot order.
    pub fn evaluate_all<'a, C: EvaluationContext + ?Sized>(
        &'a self,
        context: &C,
        now_ms: i64,
    ) -> Vec<Evaluation<'a>> {
        let mut out = Vec::with_capacity(self.compiled.flags.len());
        self.answers_where(context.context_ref(), now_ms, |_| true, |e| out.push(e));
        out
    }

    /// Evaluates the flags marked `clientSide` for `context`, in snapshot
    /// order: what a browser or mobile key may see. Other flags are only
    /// evaluated as prerequisites of these.
    ///
    /// ```
    /// use bunting_core::Engine;
    /// use serde_json::json;
    /// let engine = Engine::from_json(r#"{"schemaVersion": 1, "environment": "e", "version": 1,
    ///   "generatedAt": "2026-01-01T00:00:00Z", "flags": [
    ///   {"key": "banner", "type": "boolean", "clientSide": true, "variants": {"on": true},
    ///    "offVariant": "on", "fallthrough": {"variant": "on"}},
    ///   {"key": "billing-v2", "type": "boolean", "variants": {"on": true},
    ///    "offVariant": "on", "fallthrough": {"variant": "on"}}]}"#).unwrap();
    /// let seen: Vec<_> = engine.evaluate_client_side(&json!({}), 0).into_iter().map(|e| e.key).collect();
    /// assert_eq!(seen, ["banner"]);
    /// ```
    pub fn evaluate_client_side<'a, C: EvaluationContext + ?Sized>(
        &'a self,
        context: &C,
        now_ms: i64,
    ) -> Vec<Evaluation<'a>> {
        self.evaluate_where(context.context_ref(), now_ms, |f| f.client_side)
    }

    /// Evaluates the flags `keep` selects, in snapshot order.
    fn evaluate_where<'a>(
        &'a self,
        context: ContextRef<'_>,
        now_ms: i64,
        keep: impl Fn(&CFlag) -> bool,
    ) -> Vec<Evaluation<'a>> {
        let mut out = Vec::new();
        self.answers_where(context, now_ms, keep, |e| out.push(e));
        out
    }

    /// [`Engine::evaluate_all`] as [`Outcome`]s, handed to `sink` in
    /// snapshot order.
    pub(crate) fn outcomes_all(
        &self,
        context: ContextRef<'_>,
        now_ms: i64,
        sink: impl FnMut(Outcome),
    ) {
        self.answers_where(context, now_ms, |_| true, sink);
    }

    /// The answers for the flags `keep` selects, in snapshot order.
    fn answers_where<'a, A: Answers<'a>>(
        &'a self,
        context: ContextRef<'_>,
        now_ms: i64,
        keep: impl Fn(&CFlag) -> bool,
        mut sink: impl FnMut(A),
    ) {
        let flags = &self.compiled.flags;
        let kept = (0..flags.len()).filter(|&i| keep(&flags[i]));
        let subject = match check_context(context) {
            Ok(subject) => subject,
            Err(msg) => {
                for i in kept {
                    sink(A::failed(self, i, ErrorCode::InvalidContext, msg.clone()));
                }
                return;
            }
        };
        let memo = vec![Cell::new(None); self.compiled.segments.len()];
        let conditions = vec![Cell::new(None); self.conditions];
        for i in kept {
            sink(self.eval_flag(i, &subject, now_ms, 0, &memo, &conditions));
        }
    }

    fn fail<'a>(&'a self, flag: &'a CFlag, code: ErrorCode, message: String) -> Evaluation<'a> {
        Evaluation {
            key: Cow::Borrowed(&flag.key),
            metadata: Some(Cow::Borrowed(self.compiled.metadata.get(&flag.metadata))),
            ..Evaluation::error(String::new(), code, message)
        }
    }

    fn eval_flag<'a, A: Answers<'a>>(
        &'a self,
        i: usize,
        ctx: &Subject<'_>,
        now_ms: i64,
        depth: u32,
        memo: &SegmentMemo,
        conditions: &ConditionMemo,
    ) -> A {
        let flag = &self.compiled.flags[i];
        if let Some((code, msg)) = flag.broken() {
            return A::failed(self, i, *code, msg.clone());
        }
        if let Some((v, reason)) = flag.fixed {
            return A::served(self, i, v, reason, None, None);
        }
        if !flag.enabled {
            return A::served(self, i, flag.off, Reason::Disabled, None, None);
        }
        for (pre, want) in flag.prerequisites() {
            if depth >= MAX_PREREQUISITE_DEPTH {
                return A::failed(
                    self,
                    i,
                    ErrorCode::General,
                    "prerequisite chain too deep".into(),
                );
            }
            let got: Outcome = self.eval_flag(*pre, ctx, now_ms, depth + 1, memo, conditions);
            let pre_flag = &self.compiled.flags[*pre];
            match got.answer {
                Answer::Failed(code, message) => {
                    let msg = format!("prerequisite {:?} failed: {message}", &*pre_flag.key);
                    return A::failed(self, i, code, msg);
                }
                Answer::Served { variant, .. } => {
                    let name = &pre_flag.variants[variant].0;
                    if !same_bytes(name.as_bytes(), want.as_bytes()) {
                        return A::served(self, i, flag.off, Reason::Default, None, Some(*pre));
                    }
                }
            }
        }
        let segment = |s: usize| match memo.get(s) {
            Some(known) => known.get().unwrap_or_else(|| {
                let answer = self.in_segment(s, ctx, now_ms);
                known.set(Some(answer));
                answer
            }),
            None => self.in_segment(s, ctx, now_ms),
        };
        let env = Env {
            context: ctx.context,
            now_ms,
            segment: &segment,
        };
        let numbers = match conditions {
            [] => &[][..],
            _ => &self.rule_conditions[self.rule_start[i] as usize..],
        };
        for (r, rule) in flag.rules.iter().enumerate() {
            let holds = match numbers.get(r).and_then(|&n| conditions.get(n as usize)) {
                Some(known) => known.get().unwrap_or_else(|| {
                    let answer = rule.condition.eval(&env);
                    known.set(Some(answer));
                    answer
                }),
                None => rule.condition.eval(&env),
            };
            if holds {
                return match self.resolve(flag, &rule.serve, ctx, now_ms, Reason::TargetingMatch) {
                    Ok((v, reason)) => A::served(self, i, v, reason, Some(r), None),
                    Err((code, msg)) => A::failed(self, i, code, msg),
                };
            }
        }
        let fixed = if flag.rules.is_empty() && flag.prerequisites().is_empty() {
            Reason::Static
        } else {
            Reason::Default
        };
        match self.resolve(flag, &flag.fallthrough, ctx, now_ms, fixed) {
            Ok((v, reason)) => A::served(self, i, v, reason, None, None),
            Err((code, msg)) => A::failed(self, i, code, msg),
        }
    }

    /// The evaluation of `flag` serving variant `v`, built in one piece
    /// (a result patched after it was built was copied whole, 232 bytes on
    /// 64-bit targets, through `memmove`).
    fn served<'a>(
        &'a self,
        flag: &'a CFlag,
        v: usize,
        reason: Reason,
        rule: Option<&'a str>,
        prerequisite: Option<&'a str>,
    ) -> Evaluation<'a> {
        let (name, value) = &flag.variants[v];
        Evaluation {
            key: Cow::Borrowed(&flag.key),
            value: Some(Cow::Borrowed(value)),
            variant: Some(Cow::Borrowed(name)),
            reason,
            error_code: None,
            error_message: None,
            rule_id: rule.map(Cow::Borrowed),
            prerequisite_failed: prerequisite.map(Cow::Borrowed),
            metadata: Some(Cow::Borrowed(self.compiled.metadata.get(&flag.metadata))),
        }
    }

    fn in_segment(&self, s: usize, ctx: &Subject<'_>, now_ms: i64) -> bool {
        let seg = &self.compiled.segments[s];
        // Most segments list no keys: no hashing the key for nothing.
        if let Some(key) = ctx.targeting_key {
            if !seg.excluded.is_empty() && seg.excluded.contains(key) {
                return false;
            }
            if !seg.included.is_empty() && seg.included.contains(key) {
                return true;
            }
        }
        seg.condition.as_ref().is_some_and(|c| {
            c.eval(&Env {
                context: ctx.context,
                now_ms,
                segment: &|_| false,
            })
        })
    }

    /// Resolves a serve to a variant. `fixed` is the reason for a fixed variant.
    fn resolve(
        &self,
        flag: &CFlag,
        serve: &CServe,
        ctx: &Subject<'_>,
        now_ms: i64,
        fixed: Reason,
    ) -> Resolved {
        match serve {
            CServe::Variant(v) => Ok((*v, fixed)),
            CServe::Rollout(ranges) => {
                if !self.in_layer(flag, ctx)? {
                    return Ok((flag.off, Reason::Default));
                }
                let b = bucket_of(flag, ctx)?;
                let v = ranges
                    .iter()
                    .find(|(end, _)| b < *end)
                    .map_or(flag.off, |(_, v)| *v as usize);
                Ok((v, Reason::Split))
            }
            CServe::Schedule(schedule) => {
                let CSchedule {
                    variant,
                    otherwise,
                    steps,
                } = &**schedule;
                if !self.in_layer(flag, ctx)? {
                    return Ok((flag.off, Reason::Default));
                }
                let covered = steps
                    .iter()
                    .rev()
                    .find(|(at, _)| *at <= now_ms)
                    .map_or(0, |(_, b)| *b);
                let v = match covered {
                    0 => *otherwise,
                    crate::bucket::BUCKETS => *variant,
                    c => {
                        if bucket_of(flag, ctx)? < c {
                            *variant
                        } else {
                            *otherwise
                        }
                    }
                };
                Ok((v, Reason::Split))
            }
        }
    }

    /// Whether the context is in the flag's share of its layer (always,
    /// for a flag in no layer: checked inline, the rest is not).
    #[inline]
    fn in_layer(&self, flag: &CFlag, ctx: &Subject<'_>) -> Result<bool, (ErrorCode, String)> {
        match flag.layer() {
            None => Ok(true),
            Some(slot) => self.in_layer_slot(slot, ctx),
        }
    }

    fn in_layer_slot(
        &self,
        slot: &crate::compile::CLayerSlot,
        ctx: &Subject<'_>,
    ) -> Result<bool, (ErrorCode, String)> {
        let layer = &self.compiled.layers[slot.layer];
        let key = bucket_key(ctx, layer.bucket_by.as_deref())?;
        let b = layer.bucketer.bucket(&key);
        Ok(slot.start <= b && b < slot.end)
    }
}

#[inline]
fn bucket_of(flag: &CFlag, ctx: &Subject<'_>) -> Result<u32, (ErrorCode, String)> {
    // The common case inline: bucketing by a present `targetingKey`.
    if let (None, Some(key)) = (flag.bucket_by(), ctx.targeting_key) {
        return Ok(flag.bucketer.bucket(key));
    }
    Ok(flag.bucketer.bucket(&bucket_key(ctx, flag.bucket_by())?))
}

/// The bucketing key at `path` (`None`: `targetingKey`): a string, or a
/// number in its JSON spelling.
fn bucket_key<'c>(
    ctx: &Subject<'c>,
    path: Option<&[String]>,
) -> Result<Cow<'c, str>, (ErrorCode, String)> {
    let Some(path) = path else {
        // Already read (and type-checked) by `check_context`.
        return match ctx.targeting_key {
            Some(key) => Ok(Cow::Borrowed(key)),
            None => Err(missing_bucketing_attribute(&[DEFAULT_BUCKET_BY])),
        };
    };
    let Some(found) = ctx.context.lookup(path).filter(|f| !f.is_null()) else {
        return Err(missing_bucketing_attribute(path));
    };
    if let Some(s) = found.as_str() {
        return Ok(Cow::Borrowed(s));
    }
    if let Some(n) = found.as_number() {
        return Ok(Cow::Owned(n.to_string()));
    }
    Err((
        ErrorCode::InvalidContext,
        format!(
            "bucketing attribute {:?} must be a string or a number, not {}",
            path.join("."),
            found.type_name()
        ),
    ))
}

fn missing_bucketing_attribute<S: AsRef<str>>(path: &[S]) -> (ErrorCode, String) {
    // Owned parts: the worker links `join` for `String`s only (an error
    // path, the copies do not matter).
    let path: Vec<String> = path.iter().map(|s| s.as_ref().to_string()).collect();
    (
        ErrorCode::TargetingKeyMissing,
        format!(
            "bucketing attribute {:?} is missing from the context",
            path.join(".")
        ),
    )
}

/// A checked context, with its targeting key read once.
struct Subject<'c> {
    context: ContextRef<'c>,
    targeting_key: Option<&'c str>,
}

/// Checks that `ctx` is an object whose `targetingKey`, if present, is a string.
fn check_context(ctx: ContextRef<'_>) -> Result<Subject<'_>, String> {
    let found = match ctx.kind() {
        Kind::Json(Value::Object(map)) => {
            crate::rules::eval::get(map, "targetingKey").map(Found::Json)
        }
        Kind::Json(other) => {
            return Err(format!(
                "the context must be a JSON object, not {}",
                json_type(other)
            ));
        }
        Kind::Own(_) => ctx.lookup(&["targetingKey"]),
    };
    let targeting_key = match found {
        None => None,
        Some(found) => match found.as_str() {
            Some(key) => Some(key),
            None => {
                return Err(format!(
                    "targetingKey must be a string, not {}",
                    found.type_name()
                ));
            }
        },
    };
    Ok(Subject {
        context: ctx,
        targeting_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Flags whose rules share conditions (one text, one `Arc`), some
    /// through prerequisites, some over time and segments: evaluate-all
    /// answers each condition once per call, and must answer as one flag
    /// at a time does.
    #[test]
    fn shared_conditions_answer_once_per_call_as_alone() {
        let rule = |id: &str, condition: &str, variant: &str| json!({"id": id, "condition": condition, "serve": {"variant": variant}});
        let mut flags = Vec::new();
        for i in 0..12 {
            let mut flag = json!({
                "key": format!("f{i}"), "type": "string", "offVariant": "off",
                "variants": {"a": "A", "b": "B", "off": "O"},
                "rules": [
                    rule("pro", "plan == \"pro\"", if i % 2 == 0 { "a" } else { "b" }),
                    rule("staff", "segment(\"staff\") || now > \"2026-12-01T00:00:00Z\"", "b"),
                    rule("new", &format!("semver(app.version) >= \"2.{}.0\"", i % 3), "a"),
                ],
                "fallthrough": {"rollout": [{"variant": "a", "weight": 50}, {"variant": "b", "weight": 50}]}
            });
            if i >= 6 {
                flag["prerequisites"] = json!([{"flag": format!("f{}", i - 6), "variant": "a"}]);
            }
            flags.push(flag);
        }
        let doc = json!({
            "schemaVersion": 1, "environment": "t", "version": 1,
            "generatedAt": "2026-11-25T00:00:00Z",
            "segments": [{"key": "staff", "included": ["s1"], "condition": "department == \"eng\""}],
            "flags": flags
        });
        let engine = Engine::from_json(&doc.to_string()).unwrap();
        assert_eq!(engine.rule_conditions.len(), 36);
        assert_eq!(engine.conditions, 5);
        let keys: Vec<&str> = engine.flag_keys().collect();
        for ctx in [
            json!({}),
            json!({"targetingKey": "u1", "plan": "pro"}),
            json!({"targetingKey": "s1", "app": {"version": "2.1"}}),
            json!({"targetingKey": "u2", "department": "eng"}),
            json!({"targetingKey": "u3", "app": {"version": "2.2.0"}, "plan": "free"}),
            json!({"targetingKey": 3}),
        ] {
            for now in [0, 1_764_547_200_000, 1_800_000_000_000] {
                let all = engine.evaluate_all(&ctx, now);
                let one: Vec<Evaluation<'_>> =
                    keys.iter().map(|k| engine.evaluate(k, &ctx, now)).collect();
                assert_eq!(all, one, "{ctx} {now}");
            }
        }
    }
}
