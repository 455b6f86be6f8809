//! From the definition model to one core [`Snapshot`] per environment, with a
//! source map from every snapshot path back to the file, so that the
//! engine's validation problems are reported where they were written.

use std::collections::{BTreeMap, HashMap};

use bunting_core::model::{
    Layer, LayerSlot, Prerequisite, Rule, SCHEMA_VERSION, Schedule, ScheduleStep, Segment,
    WeightedVariant,
};
use bunting_core::snapshot::{EntityKind, seal};
use bunting_core::{Engine, Flag, FlagMetadata, LoadError, Problem, Serve, Snapshot};

use crate::diag::{Diagnostic, Snippet, Subject};
use crate::{ConditionDef, DefinitionFile, EnvConfig, Pos, ServeDef, ServeKind, SnapshotError};

/// What a snapshot needs beyond the definitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotOptions {
    /// The snapshot's version (monotonic per environment).
    pub version: u64,
    /// Its generation time, RFC 3339.
    pub generated_at: String,
}

impl SnapshotOptions {
    /// Options with `version` and `generated_at`.
    pub fn new(version: u64, generated_at: impl Into<String>) -> SnapshotOptions {
        SnapshotOptions {
            version,
            generated_at: generated_at.into(),
        }
    }
}

/// Where a snapshot path came from.
#[derive(Debug, Clone, Copy)]
enum Loc<'a> {
    /// A value written at this position.
    At(Pos),
    /// A condition: parse errors map inside it.
    Cond(&'a ConditionDef),
    /// Filled in by the converter from another field (a missing fallthrough
    /// serves `offVariant`); its problems are that field's, reported there.
    Synthesized,
}

/// A field of the snapshot: the entity (kind and index) it belongs to, if
/// any, and its JSON path inside it (as in [`bunting_core::snapshot::Location`]).
type Field = (Option<(EntityKind, usize)>, String);

/// The field `field` of the `index`th entity of `kind`.
fn field(kind: EntityKind, index: usize, field: impl Into<String>) -> Field {
    (Some((kind, index)), field.into())
}

struct Built<'a> {
    snapshot: Snapshot,
    locs: HashMap<Field, Loc<'a>>,
}

impl Built<'_> {
    /// The source of the field of `problem`, or of its nearest ancestor
    /// (`rules[0].serve` for `rules[0].serve.variant`) that has one.
    fn locate(&self, problem: &Problem) -> Option<Loc<'_>> {
        let entity = problem.location.entity.as_ref().map(|e| (e.kind, e.index));
        let mut path = problem.location.field.as_str();
        loop {
            if let Some(loc) = self.locs.get(&(entity, path.to_string())) {
                return Some(*loc);
            }
            if path.is_empty() {
                return None;
            }
            path = &path[..path.rfind(['.', '[']).unwrap_or(0)];
        }
    }
}

/// Builds environment `env`'s snapshot (unsealed, unvalidated) and its
/// source map. An environment the file does not declare gets every flag's
/// `default` block and every segment's base, which is how [`check`]
/// validates blocks that no declared environment uses.
fn build<'a>(p: &'a DefinitionFile, env: &str, options: &SnapshotOptions) -> Built<'a> {
    let mut locs: HashMap<Field, Loc<'a>> = HashMap::new();

    let layers = p
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            locs.insert(field(EntityKind::Layer, i, ""), Loc::At(l.key.pos));
            if let Some(b) = &l.bucket_by {
                locs.insert(field(EntityKind::Layer, i, "bucketBy"), Loc::At(b.pos));
            }
            Layer {
                key: l.key.value.clone(),
                salt: l.salt.clone(),
                bucket_by: l.bucket_by.as_ref().map(|b| b.value.clone()),
            }
        })
        .collect();

    let segments = p
        .segments
        .iter()
        .enumerate()
        .map(|(i, s)| {
            locs.insert(field(EntityKind::Segment, i, ""), Loc::At(s.key.pos));
            let over = s
                .environments
                .iter()
                .find(|(name, _)| name.value == env)
                .map(|(_, body)| body);
            let included = over
                .and_then(|o| o.included.clone())
                .or_else(|| s.base.included.clone());
            let excluded = over
                .and_then(|o| o.excluded.clone())
                .or_else(|| s.base.excluded.clone());
            let condition = over
                .and_then(|o| o.condition.as_ref())
                .or(s.base.condition.as_ref());
            if let Some(c) = condition {
                locs.insert(field(EntityKind::Segment, i, "condition"), Loc::Cond(c));
            }
            Segment {
                key: s.key.value.clone(),
                included: included.unwrap_or_default(),
                excluded: excluded.unwrap_or_default(),
                condition: condition.map(|c| c.text.clone()),
                description: s.description.clone(),
            }
        })
        .collect();

    let flags = p
        .flags
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let at = |rest: &str| field(EntityKind::Flag, i, rest);
            locs.insert(at(""), Loc::At(f.key.pos));
            locs.insert(at("key"), Loc::At(f.key.pos));
            locs.insert(at("variants"), Loc::At(f.variants_pos));
            let mut variants = BTreeMap::new();
            for (name, value) in &f.variants {
                locs.insert(at(&format!("variants.{}", name.value)), Loc::At(value.pos));
                variants.insert(name.value.clone(), value.value.clone());
            }
            locs.insert(at("offVariant"), Loc::At(f.off_variant.pos));
            if let Some(b) = &f.bucket_by {
                locs.insert(at("bucketBy"), Loc::At(b.pos));
            }
            if let Some(slot) = &f.layer {
                locs.insert(at("layer"), Loc::At(slot.pos));
                locs.insert(at("layer.key"), Loc::At(slot.key.pos));
            }

            let listed = f
                .environments
                .iter()
                .find(|(name, _)| name.value == env)
                .map(|(_, c)| c);
            let default = f.default.as_ref();
            fn pick<'c, T>(
                listed: Option<&'c EnvConfig>,
                default: Option<&'c EnvConfig>,
                get: impl Fn(&'c EnvConfig) -> Option<&'c T>,
            ) -> Option<&'c T> {
                listed.and_then(&get).or_else(|| default.and_then(&get))
            }
            let enabled = pick(listed, default, |c| c.enabled.as_ref())
                .map_or(listed.is_some() || default.is_some(), |e| e.value);

            let rules = pick(listed, default, |c| c.rules.as_ref())
                .map(|rules| {
                    locs.insert(at("rules"), Loc::At(rules.pos));
                    rules
                        .value
                        .iter()
                        .enumerate()
                        .map(|(j, r)| {
                            locs.insert(at(&format!("rules[{j}]")), Loc::At(r.pos));
                            if let Some(id) = &r.id {
                                locs.insert(at(&format!("rules[{j}].id")), Loc::At(id.pos));
                            }
                            locs.insert(
                                at(&format!("rules[{j}].condition")),
                                Loc::Cond(&r.condition),
                            );
                            Rule {
                                id: r.id.as_ref().map(|id| id.value.clone()),
                                description: r.description.clone(),
                                condition: r.condition.text.clone(),
                                serve: serve(&r.serve, i, format!("rules[{j}].serve"), &mut locs),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();

            let fallthrough = match pick(listed, default, |c| c.fallthrough.as_ref()) {
                Some(s) => serve(s, i, "fallthrough".into(), &mut locs),
                None => {
                    locs.insert(at("fallthrough"), Loc::Synthesized);
                    Serve::Variant(f.off_variant.value.clone())
                }
            };

            let prerequisites = pick(listed, default, |c| c.prerequisites.as_ref())
                .map(|pres| {
                    locs.insert(at("prerequisites"), Loc::At(pres.pos));
                    pres.value
                        .iter()
                        .enumerate()
                        .map(|(j, pre)| {
                            locs.insert(at(&format!("prerequisites[{j}]")), Loc::At(pre.pos));
                            locs.insert(
                                at(&format!("prerequisites[{j}].flag")),
                                Loc::At(pre.flag.pos),
                            );
                            locs.insert(
                                at(&format!("prerequisites[{j}].variant")),
                                Loc::At(pre.variant.pos),
                            );
                            Prerequisite {
                                flag: pre.flag.value.clone(),
                                variant: pre.variant.value.clone(),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();

            Flag {
                key: f.key.value.clone(),
                flag_type: f.flag_type,
                variants,
                enabled,
                off_variant: f.off_variant.value.clone(),
                rules,
                fallthrough,
                prerequisites,
                salt: f.salt.clone(),
                bucket_by: f.bucket_by.as_ref().map(|b| b.value.clone()),
                layer: f.layer.as_ref().map(|slot| LayerSlot {
                    key: slot.key.value.clone(),
                    start: slot.start,
                    end: slot.end,
                }),
                client_side: f.client_side,
                metadata: FlagMetadata {
                    description: f.description.clone(),
                    owner: f.owner.clone(),
                    tags: f.tags.clone(),
                },
            }
        })
        .collect();

    Built {
        snapshot: Snapshot {
            schema_version: SCHEMA_VERSION,
            environment: env.to_string(),
            version: options.version,
            generated_at: options.generated_at.clone(),
            flags,
            segments,
            layers,
            checksum: None,
        },
        locs,
    }
}

/// Converts a serve of flag `flag` at `path`, recording where each of its
/// fields is.
fn serve<'a>(
    s: &'a ServeDef,
    flag: usize,
    path: String,
    locs: &mut HashMap<Field, Loc<'a>>,
) -> Serve {
    let mut at = |path: String, loc: Loc<'a>| {
        locs.insert(field(EntityKind::Flag, flag, path), loc);
    };
    at(path.clone(), Loc::At(s.pos));
    match &s.kind {
        ServeKind::Variant(v) => {
            at(format!("{path}.variant"), Loc::At(v.pos));
            Serve::Variant(v.value.clone())
        }
        ServeKind::Rollout(arms) => {
            at(format!("{path}.rollout"), Loc::At(arms.pos));
            Serve::Rollout(
                arms.value
                    .iter()
                    .enumerate()
                    .map(|(k, arm)| {
                        let p = format!("{path}.rollout[{k}]");
                        at(format!("{p}.weight"), Loc::At(arm.weight.pos));
                        at(format!("{p}.variant"), Loc::At(arm.variant.pos));
                        at(p, Loc::At(arm.variant.pos));
                        WeightedVariant {
                            variant: arm.variant.value.clone(),
                            weight: arm.weight.value,
                        }
                    })
                    .collect(),
            )
        }
        ServeKind::Schedule(sch) => {
            let p = format!("{path}.schedule");
            at(p.clone(), Loc::At(sch.pos));
            at(format!("{p}.variant"), Loc::At(sch.variant.pos));
            at(format!("{p}.otherwise"), Loc::At(sch.otherwise.pos));
            at(format!("{p}.steps"), Loc::At(sch.steps.pos));
            Serve::Schedule(Schedule {
                variant: sch.variant.value.clone(),
                otherwise: sch.otherwise.value.clone(),
                steps: sch
                    .steps
                    .value
                    .iter()
                    .enumerate()
                    .map(|(k, step)| {
                        let sp = format!("{p}.steps[{k}]");
                        at(format!("{sp}.at"), Loc::At(step.at.pos));
                        at(format!("{sp}.percentage"), Loc::At(step.percentage.pos));
                        at(sp, Loc::At(step.pos));
                        ScheduleStep {
                            at: step.at.value.clone(),
                            percentage: step.percentage.value,
                        }
                    })
                    .collect(),
            })
        }
    }
}

/// Maps one engine problem to `(position, subject, message, snippet)`, or
/// `None` when it is not to be reported (a repeat of another problem, or a
/// follow-up of a structural error already reported).
fn map_problem(
    p: &DefinitionFile,
    built: &Built<'_>,
    problem: &Problem,
) -> Option<(Pos, Option<Subject>, String, Option<Snippet>)> {
    let (subject, broken) = match &problem.location.entity {
        Some(e) => match e.kind {
            EntityKind::Flag => {
                let f = p.flags.get(e.index)?;
                (Some(Subject::Flag(f.key.value.clone())), f.broken)
            }
            EntityKind::Segment => {
                let s = p.segments.get(e.index)?;
                (Some(Subject::Segment(s.key.value.clone())), s.broken)
            }
            EntityKind::Layer => {
                let l = p.layers.get(e.index)?;
                (Some(Subject::Layer(l.key.value.clone())), l.broken)
            }
        },
        None => (None, false),
    };
    if broken && !problem.parse_error {
        return None;
    }
    let mut snippet = None;
    let pos = match built.locate(problem) {
        Some(Loc::Synthesized) => return None,
        Some(Loc::At(pos)) => pos,
        Some(Loc::Cond(c)) => match problem.span {
            Some(span) => {
                snippet = Some(Snippet {
                    text: c.text.clone(),
                    span,
                });
                c.position_of(span.line, span.column)
            }
            None => c.pos,
        },
        None => Pos::new(1, 1),
    };
    let rel = &problem.location.field;
    let message = if rel.is_empty() {
        problem.message.clone()
    } else {
        format!("{rel}: {}", problem.message)
    };
    Some((pos, subject, message, snippet))
}

/// The environment name of the pass over `default` blocks: not a valid
/// declared name (those cannot contain spaces), so no block matches it.
const UNDECLARED: &str = "(default)";

/// Validates every environment's snapshot with the engine; see
/// [`DefinitionFile::check`].
pub(crate) fn check(p: &DefinitionFile) -> Vec<Diagnostic> {
    let envs: Vec<&str> = p.environment_names().collect();
    if envs.is_empty() {
        return Vec::new();
    }
    let options = SnapshotOptions::new(1, "1970-01-01T00:00:00Z");
    let mut index: HashMap<(Pos, Option<Subject>, String), usize> = HashMap::new();
    let mut out: Vec<Diagnostic> = Vec::new();
    // Every declared environment, then an undeclared one (`None`) that uses
    // only `default` blocks and segment bases, so that a block overridden
    // everywhere is still checked.
    let passes = envs.iter().map(|e| Some(*e)).chain([None]);
    for env in passes {
        let built = build(p, env.unwrap_or(UNDECLARED), &options);
        let (_, problems) = Engine::from_snapshot_lenient(&built.snapshot);
        for problem in &problems {
            let Some((pos, subject, message, snippet)) = map_problem(p, &built, problem) else {
                continue;
            };
            let key = (pos, subject.clone(), message.clone());
            match index.get(&key) {
                Some(&k) => out[k].environments.extend(env.map(str::to_string)),
                None => {
                    index.insert(key, out.len());
                    out.push(Diagnostic {
                        pos,
                        subject,
                        environments: env.map(str::to_string).into_iter().collect(),
                        message,
                        snippet,
                    });
                }
            }
        }
    }
    for d in &mut out {
        if d.environments.len() == envs.len() {
            d.environments.clear();
        }
    }
    out
}

/// See [`DefinitionFile::snapshot`].
pub(crate) fn snapshot(
    p: &DefinitionFile,
    env: &str,
    options: &SnapshotOptions,
) -> Result<Snapshot, SnapshotError> {
    if !p.environment_names().any(|e| e == env) {
        return Err(SnapshotError::UnknownEnvironment {
            env: env.to_string(),
            known: p.environment_names().map(str::to_string).collect(),
        });
    }
    if bunting_core::time::parse_rfc3339_ms(&options.generated_at).is_none() {
        return Err(SnapshotError::GeneratedAt(options.generated_at.clone()));
    }
    let mut built = build(p, env, options);
    if let Err(e) = Engine::from_snapshot(&built.snapshot) {
        let problems = match e {
            LoadError::Invalid(problems) => problems,
            LoadError::Syntax { .. } => Vec::new(),
        };
        let diagnostics = problems
            .iter()
            .filter_map(|problem| map_problem(p, &built, problem))
            .map(|(pos, subject, message, snippet)| Diagnostic {
                pos,
                subject,
                environments: vec![env.to_string()],
                message,
                snippet,
            })
            .collect();
        return Err(SnapshotError::Invalid(diagnostics));
    }
    seal(&mut built.snapshot);
    Ok(built.snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Syntax, load};
    use bunting_core::Reason;
    use serde_json::json;

    const OPTS: fn() -> SnapshotOptions = || SnapshotOptions::new(3, "2026-11-25T10:00:00Z");

    fn errors(src: &str) -> Vec<String> {
        load(src, Syntax::Yaml)
            .expect_err("expected problems")
            .iter()
            .map(|d| d.render("f.yaml"))
            .collect()
    }

    const BASE: &str = "environments: [development, staging, production]\n";

    #[test]
    fn environments_combine_default_and_listed_blocks() {
        let src = format!(
            "{BASE}flags:
  f:
    type: string
    variants: {{a: A, b: B, off: ''}}
    offVariant: off
    default:
      rules: [{{id: us, condition: 'country == \"US\"', serve: a}}]
      fallthrough: b
    environments:
      production: {{fallthrough: a}}
      staging: {{enabled: false}}
  g:
    type: boolean
    variants: {{on: true, off: false}}
    offVariant: off
"
        );
        let p = load(&src, Syntax::Yaml).unwrap();
        let snap = |env| p.snapshot(env, &OPTS()).unwrap();
        let dev = snap("development");
        assert!(dev.flags[0].enabled);
        assert_eq!(dev.flags[0].fallthrough, Serve::Variant("b".into()));
        assert_eq!(dev.flags[0].rules.len(), 1);
        let prod = snap("production");
        // The listed block's fallthrough, the default's rules.
        assert_eq!(prod.flags[0].fallthrough, Serve::Variant("a".into()));
        assert_eq!(prod.flags[0].rules[0].id.as_deref(), Some("us"));
        let staging = snap("staging");
        assert!(!staging.flags[0].enabled);
        // A flag without any configuration is off everywhere.
        for env in ["development", "staging", "production"] {
            let s = snap(env);
            assert!(!s.flags[1].enabled, "{env}");
            assert_eq!(s.flags[1].fallthrough, Serve::Variant("off".into()));
            let engine = Engine::from_snapshot(&s).unwrap();
            let r = engine.evaluate("g", &json!({}), 0);
            assert_eq!(r.reason, Reason::Disabled);
            assert_eq!(r.value.as_deref(), Some(&json!(false)));
        }
    }

    #[test]
    fn client_side_defaults_to_false_and_must_be_a_boolean() {
        let src = format!(
            "{BASE}flags:
  web: {{type: boolean, variants: {{on: true}}, offVariant: on, clientSide: true}}
  api: {{type: boolean, variants: {{on: true}}, offVariant: on}}
  off: {{type: boolean, variants: {{on: true}}, offVariant: on, clientSide: false}}
"
        );
        let p = load(&src, Syntax::Yaml).unwrap();
        let s = p.snapshot("production", &OPTS()).unwrap();
        let sides: Vec<bool> = s.flags.iter().map(|f| f.client_side).collect();
        assert_eq!(sides, [true, false, false]);
        let engine = Engine::from_snapshot(&s).unwrap();
        assert!(engine.is_client_side("web") && !engine.is_client_side("api"));
        let bad = format!(
            "{BASE}flags:\n  f: {{type: boolean, variants: {{on: true}}, offVariant: on, clientSide: yes}}\n"
        );
        assert_eq!(
            errors(&bad),
            ["f.yaml:3:72: flag f: clientSide must be true or false"]
        );
    }

    #[test]
    fn snapshots_are_sealed_with_options() {
        let src =
            format!("{BASE}flags:\n  f: {{type: number, variants: {{one: 1}}, offVariant: one}}\n");
        let p = load(&src, Syntax::Yaml).unwrap();
        let s = p.snapshot("staging", &OPTS()).unwrap();
        assert_eq!((s.environment.as_str(), s.version), ("staging", 3));
        assert_eq!(s.generated_at, "2026-11-25T10:00:00Z");
        assert_eq!(
            s.checksum.as_deref(),
            Some(bunting_core::snapshot::checksum(&s).as_str())
        );
        assert!(matches!(
            p.snapshot("prod", &OPTS()),
            Err(SnapshotError::UnknownEnvironment { .. })
        ));
        assert!(matches!(
            p.snapshot("staging", &SnapshotOptions::new(1, "now")),
            Err(SnapshotError::GeneratedAt(_))
        ));
    }

    #[test]
    fn segments_override_per_environment() {
        let src = format!(
            "{BASE}segments:
  staff:
    included: [u-1]
    condition: email ends_with \"@bunting.dev\"
    environments:
      production: {{included: [u-2]}}
flags: {{}}
"
        );
        let p = load(&src, Syntax::Yaml).unwrap();
        let dev = p.snapshot("development", &OPTS()).unwrap();
        assert_eq!(dev.segments[0].included, vec!["u-1"]);
        let prod = p.snapshot("production", &OPTS()).unwrap();
        assert_eq!(prod.segments[0].included, vec!["u-2"]);
        assert_eq!(
            prod.segments[0].condition.as_deref(),
            Some("email ends_with \"@bunting.dev\"")
        );
    }

    #[test]
    fn engine_problems_map_to_their_position_and_environments() {
        let src = format!(
            "{BASE}flags:
  f:
    type: boolean
    variants: {{on: true, off: false}}
    offVariant: of
    default:
      fallthrough:
        rollout: [{{variant: on, weight: 50}}, {{variant: off, weight: 40}}]
    environments:
      production:
        rules:
          - condition: country == \"US\" &&
            serve: onn
"
        );
        assert_eq!(
            errors(&src),
            vec![
                "f.yaml:6:17: flag f: offVariant: unknown variant \"of\"",
                "f.yaml:9:18: flag f: fallthrough.rollout: weights sum to 90%, not 100%",
                "f.yaml:13:42: flag f (env production): rules[0].condition: expected an attribute, a literal, `now` or `(`, found end of input",
                "f.yaml:14:20: flag f (env production): rules[0].serve.variant: unknown variant \"onn\"",
            ]
        );
    }

    #[test]
    fn structural_errors_hide_follow_up_problems() {
        let src = format!(
            "{BASE}flags:
  f:
    type: boolean
    variants: {{on: true, off: false}}
    offVariant: off
    enabeld: true
    environments:
      prod: {{fallthrough: on}}
      production:
        rules: [{{condition: 'x ==', serve: {{variant: on, rollout: []}}}}]
"
        );
        assert_eq!(
            errors(&src),
            vec![
                "f.yaml:7:5: flag f: unknown field \"enabeld\" in flag; \"enabled\" belongs in an environment block (`default:` or `environments: {ENV: …}`)",
                "f.yaml:9:7: flag f: unknown environment \"prod\"; did you mean \"production\"?",
                // The condition is still checked; the serve's own follow-ups are not.
                "f.yaml:11:34: flag f (env production): rules[0].condition: expected an attribute, a literal, `now` or `(`, found end of input",
                "f.yaml:11:44: flag f (env production): serve takes exactly one of: variant, rollout, schedule",
            ]
        );
    }

    #[test]
    fn default_blocks_are_checked_even_when_every_environment_overrides_them() {
        let src = "environments: [production]
segments:
  s:
    condition: 'a =='
    environments:
      production: {condition: 'a == 1'}
flags:
  f:
    type: boolean
    variants: {on: true, off: false}
    offVariant: off
    default: {fallthrough: onn}
    environments:
      production: {fallthrough: on}
";
        assert_eq!(
            errors(src),
            vec![
                "f.yaml:4:21: segment s: condition: expected an attribute, a literal, `now` or `(`, found end of input",
                "f.yaml:12:28: flag f: fallthrough.variant: unknown variant \"onn\"",
            ]
        );
    }
}
