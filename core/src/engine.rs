//! The evaluator: a loaded snapshot answering flag evaluations.

use std::borrow::Cow;
use std::cell::Cell;

use crate::compile::{CFlag, CSchedule, CServe, Compiled, compile};
use crate::context::{ContextRef, EvaluationContext, Found, Kind, json_type};
use crate::model::{DEFAULT_BUCKET_BY, FlagType, Snapshot};
use crate::parsed::ParsedSnapshot;
use crate::result::{ErrorCode, Evaluation, Reason};
use crate::rules::Env;
use crate::snapshot::{LoadError, Problem};
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
}

/// Segment answers already computed for one context, by segment index:
/// `evaluate_all` asks each segment once however many flags use it. Empty
/// (nothing remembered) for a single evaluation, which then allocates
/// nothing.
type SegmentMemo = [Cell<Option<bool>>];

/// Outcome of resolving a serve: a variant, or an error.
type Resolved = Result<(usize, Reason), (ErrorCode, String)>;

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
        Engine::compile(parsed.borrowed(), parsed.size)
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
        Engine::compile(&crate::borrowed::Snapshot::of(snapshot), 0)
    }

    /// Validates and compiles; `size` is the document's length if known.
    fn compile(snapshot: &crate::borrowed::Snapshot<'_>, size: usize) -> (Engine, Vec<Problem>) {
        let (compiled, problems) = compile(snapshot, size);
        let engine = Engine {
            environment: snapshot.environment.to_string(),
            version: snapshot.version,
            generated_at: snapshot.generated_at.to_string(),
            compiled,
        };
        (engine, problems)
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
        let Some(i) = self.find(key) else {
            return Evaluation::not_found(key);
        };
        let flag = &self.compiled.flags[i];
        if let Some(t) = expected
            && t != flag.flag_type
        {
            return self.fail(
                flag,
                ErrorCode::TypeMismatch,
                format!(
                    "flag {key:?} is of type {}, not {}",
                    flag.flag_type.as_str(),
                    t.as_str()
                ),
            );
        }
        let subject = match check_context(context) {
            Ok(subject) => subject,
            Err(msg) => return self.fail(flag, ErrorCode::InvalidContext, msg),
        };
        self.eval_flag(i, &subject, now_ms, 0, &[])
    }

    /// Evaluates every flag for `context`, in snapshot order.
    pub fn evaluate_all<'a, C: EvaluationContext + ?Sized>(
        &'a self,
        context: &C,
        now_ms: i64,
    ) -> Vec<Evaluation<'a>> {
        self.evaluate_where(context.context_ref(), now_ms, |_| true)
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
        let flags = &self.compiled.flags;
        let subject = match check_context(context) {
            Ok(subject) => subject,
            Err(msg) => {
                return flags
                    .iter()
                    .filter(|f| keep(f))
                    .map(|f| self.fail(f, ErrorCode::InvalidContext, msg.clone()))
                    .collect();
            }
        };
        let memo = vec![Cell::new(None); self.compiled.segments.len()];
        (0..flags.len())
            .filter(|&i| keep(&flags[i]))
            .map(|i| self.eval_flag(i, &subject, now_ms, 0, &memo))
            .collect()
    }

    fn fail<'a>(&'a self, flag: &'a CFlag, code: ErrorCode, message: String) -> Evaluation<'a> {
        Evaluation {
            key: Cow::Borrowed(&flag.key),
            metadata: Some(Cow::Borrowed(&flag.metadata)),
            ..Evaluation::error(String::new(), code, message)
        }
    }

    fn eval_flag<'a>(
        &'a self,
        i: usize,
        ctx: &Subject<'_>,
        now_ms: i64,
        depth: u32,
        memo: &SegmentMemo,
    ) -> Evaluation<'a> {
        let flag = &self.compiled.flags[i];
        if let Some((code, msg)) = flag.broken() {
            return self.fail(flag, *code, msg.clone());
        }
        if let Some((v, reason)) = flag.fixed {
            return self.served(flag, v, reason, None);
        }
        if !flag.enabled {
            return self.served(flag, flag.off, Reason::Disabled, None);
        }
        for (pre, want) in flag.prerequisites() {
            if depth >= MAX_PREREQUISITE_DEPTH {
                return self.fail(
                    flag,
                    ErrorCode::General,
                    "prerequisite chain too deep".into(),
                );
            }
            let got = self.eval_flag(*pre, ctx, now_ms, depth + 1, memo);
            if let Some(code) = got.error_code {
                let msg = format!(
                    "prerequisite {:?} failed: {}",
                    got.key,
                    got.error_message.as_deref().unwrap_or(code.as_str())
                );
                return self.fail(flag, code, msg);
            }
            if got.variant.as_deref() != Some(want.as_str()) {
                let mut e = self.served(flag, flag.off, Reason::Default, None);
                e.prerequisite_failed = Some(Cow::Borrowed(&self.compiled.flags[*pre].key));
                return e;
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
        for rule in &flag.rules {
            if rule.condition.eval(&env) {
                return match self.resolve(flag, &rule.serve, ctx, now_ms, Reason::TargetingMatch) {
                    Ok((v, reason)) => self.served(flag, v, reason, Some(&rule.id)),
                    Err((code, msg)) => self.fail(flag, code, msg),
                };
            }
        }
        let fixed = if flag.rules.is_empty() && flag.prerequisites().is_empty() {
            Reason::Static
        } else {
            Reason::Default
        };
        match self.resolve(flag, &flag.fallthrough, ctx, now_ms, fixed) {
            Ok((v, reason)) => self.served(flag, v, reason, None),
            Err((code, msg)) => self.fail(flag, code, msg),
        }
    }

    fn served<'a>(
        &'a self,
        flag: &'a CFlag,
        v: usize,
        reason: Reason,
        rule: Option<&'a str>,
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
            prerequisite_failed: None,
            metadata: Some(Cow::Borrowed(&flag.metadata)),
        }
    }

    fn in_segment(&self, s: usize, ctx: &Subject<'_>, now_ms: i64) -> bool {
        let seg = &self.compiled.segments[s];
        if let Some(key) = ctx.targeting_key {
            if seg.excluded.contains(key) {
                return false;
            }
            if seg.included.contains(key) {
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

    fn in_layer(&self, flag: &CFlag, ctx: &Subject<'_>) -> Result<bool, (ErrorCode, String)> {
        let Some(slot) = flag.layer() else {
            return Ok(true);
        };
        let layer = &self.compiled.layers[slot.layer];
        let key = bucket_key(ctx, layer.bucket_by.as_deref())?;
        let b = layer.bucketer.bucket(&key);
        Ok(slot.start <= b && b < slot.end)
    }
}

#[inline]
fn bucket_of(flag: &CFlag, ctx: &Subject<'_>) -> Result<u32, (ErrorCode, String)> {
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
    let path: Vec<&str> = path.iter().map(AsRef::as_ref).collect();
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
