//! GitOps plans: what applying a definition file to a project would create,
//! update and delete, as a list of typed [`Change`]s. Pure: no SQL.
//!
//! A project's content is a [`ProjectState`], read from the store
//! ([`Store::project_state`](super::Store::project_state)) or made from a
//! definition file ([`ProjectState::from_file`]). [`plan`] compares the two
//! and answers the changes that turn the live state into the file's, in the
//! order they can be applied; [`ProjectState::base`] fingerprints the live
//! state the plan was computed against, so that applying it later can
//! refuse when the project changed in between. Applying a list of changes
//! is the store's job ([`Store::apply_changes`](super::Store::apply_changes)),
//! which also serves change requests that hold such a list.
//!
//! What a plan touches:
//!
//! - **Environments** are created when the file declares one the project
//!   lacks, and never updated or deleted, not even with `prune`: deleting an
//!   environment also deletes its SDK keys, experiments and events, which a
//!   file cannot give back. An environment the file does not declare is left
//!   alone with everything in it (flag configurations, segments) and listed
//!   in [`Plan::unmanaged`]; delete it through its own endpoint.
//! - **Layers, flags** and **segments** are created and updated; with
//!   `prune` those the file no longer holds are deleted (segments only in
//!   the environments the file declares). Without `prune` they are listed in
//!   [`Plan::unmanaged`].
//! - **Flag configurations** (`flagConfig`, one per flag and environment)
//!   are updated; a configuration of a flag or environment the plan creates
//!   is a `create` when it differs from the default the store gives a new
//!   one (off, serving `offVariant`). Deleting a flag deletes its
//!   configurations with it.
//!
//! ```
//! use bunting_defs::{load, Syntax};
//! use bunting_origin::store::plan::{ChangeKind, ChangeOp, ProjectState, plan};
//! let file = load("environments: [production]\nflags:\n  beta:\n    type: boolean\n    \
//!     variants: {on: true, off: false}\n    offVariant: off\n    environments:\n      \
//!     production: {fallthrough: on}\n", Syntax::Yaml).unwrap();
//! let desired = ProjectState::from_file(&file).unwrap();
//! let changes = plan(&ProjectState::default(), &desired, false);
//! let ops: Vec<_> = changes.iter().map(|c| (c.kind, c.op, c.target())).collect();
//! assert_eq!(ops, [
//!     (ChangeKind::Environment, ChangeOp::Create, "production".to_string()),
//!     (ChangeKind::Flag, ChangeOp::Create, "beta".to_string()),
//!     (ChangeKind::FlagConfig, ChangeOp::Create, "beta/production".to_string()),
//! ]);
//! // Once applied, the same file plans nothing.
//! assert!(plan(&desired, &desired, true).is_empty());
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use bunting_core::Serve;
use bunting_core::model::{Layer, Segment};
use bunting_defs::{DefinitionFile, Diagnostic};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::{ConfigSpec, FlagSpec, Problem};

/// What kind of entity a [`Change`] is about.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum ChangeKind {
    /// An environment of the project (`after`: `{"key", "name"}`).
    Environment,
    /// A mutual-exclusion layer (`before`/`after`: the layer).
    Layer,
    /// A flag's definition (`before`/`after`: a `FlagSpec`).
    Flag,
    /// A flag's configuration in one environment (`before`/`after`: a
    /// `ConfigSpec`).
    FlagConfig,
    /// A segment of one environment (`before`/`after`: the segment).
    Segment,
}

impl ChangeKind {
    /// The name used in the API and the audit log (`flagConfig`).
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Environment => "environment",
            ChangeKind::Layer => "layer",
            ChangeKind::Flag => "flag",
            ChangeKind::FlagConfig => "flagConfig",
            ChangeKind::Segment => "segment",
        }
    }
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a [`Change`] does to its entity.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum ChangeOp {
    /// The entity does not exist yet (`before` is absent).
    Create,
    /// The entity exists and changes from `before` to `after`.
    Update,
    /// The entity is deleted (`after` is absent).
    Delete,
}

/// One change to one entity of a project: the unit of a plan, of an apply
/// and of a change request.
///
/// `before` is the entity as the plan saw it (absent for a create) and
/// `after` what it becomes (absent for a delete), both as the API shows
/// them; applying a change first checks that the entity still is `before`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Change {
    /// The kind of entity.
    pub kind: ChangeKind,
    /// The entity's key (for a flag configuration, the flag's key).
    pub key: String,
    /// The environment, for a flag configuration or a segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// What happens to it.
    pub op: ChangeOp,
    /// The entity before the change; absent for a create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub before: Option<Value>,
    /// The entity after the change; absent for a delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub after: Option<Value>,
}

impl Change {
    /// The entity as people name it: `beta`, or `beta/production` for a
    /// flag configuration, `staff (production)` for a segment.
    pub fn target(&self) -> String {
        match (&self.kind, &self.environment) {
            (ChangeKind::FlagConfig, Some(env)) => format!("{}/{env}", self.key),
            (_, Some(env)) => format!("{} ({env})", self.key),
            (_, None) => self.key.clone(),
        }
    }

    /// Whether the change alters what environment `env` serves: a flag
    /// configuration or a segment of `env`, `env` itself, or a flag or a
    /// layer (which every environment's snapshot holds). A policy that
    /// protects `env` holds back the changes that affect it.
    ///
    /// ```
    /// use bunting_origin::store::plan::{Change, ChangeKind, ChangeOp};
    /// let config = Change { kind: ChangeKind::FlagConfig, key: "beta".into(),
    ///     environment: Some("staging".into()), op: ChangeOp::Update, before: None, after: None };
    /// assert!(config.affects("staging") && !config.affects("production"));
    /// let flag = Change { kind: ChangeKind::Flag, environment: None, ..config };
    /// assert!(flag.affects("production"));
    /// ```
    pub fn affects(&self, env: &str) -> bool {
        match self.kind {
            ChangeKind::Flag | ChangeKind::Layer => true,
            ChangeKind::Environment => self.key == env,
            ChangeKind::FlagConfig | ChangeKind::Segment => {
                self.environment.as_deref() == Some(env)
            }
        }
    }

    fn new<T: Serialize>(
        kind: ChangeKind,
        (key, environment): (&str, Option<&str>),
        before: Option<&T>,
        after: Option<&T>,
    ) -> Change {
        let op = match (before, after) {
            (None, _) => ChangeOp::Create,
            (Some(_), Some(_)) => ChangeOp::Update,
            (Some(_), None) => ChangeOp::Delete,
        };
        Change {
            kind,
            key: key.to_string(),
            environment: environment.map(str::to_string),
            op,
            before: before.map(to_value),
            after: after.map(to_value),
        }
    }
}

fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("serializable")
}

/// How many changes of each operation a plan holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlanSummary {
    /// Entities created.
    pub create: usize,
    /// Entities updated.
    pub update: usize,
    /// Entities deleted.
    pub delete: usize,
}

impl PlanSummary {
    /// The counts of `changes`.
    pub fn of(changes: &[Change]) -> PlanSummary {
        let mut s = PlanSummary::default();
        for c in changes {
            match c.op {
                ChangeOp::Create => s.create += 1,
                ChangeOp::Update => s.update += 1,
                ChangeOp::Delete => s.delete += 1,
            }
        }
        s
    }
}

/// A plan (or, answered by an apply, what was done): the changes and the
/// live state they were computed against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The fingerprint of the project's state the plan was computed
    /// against ([`ProjectState::base`]); give it as `expectedBase` to apply
    /// only if the project is still in that state.
    pub base: String,
    /// Whether entities the file does not hold are deleted.
    pub prune: bool,
    /// The changes, in the order they are applied.
    pub changes: Vec<Change>,
    /// How many creates, updates and deletes `changes` holds.
    pub summary: PlanSummary,
    /// What the project holds that the file does not and the plan leaves
    /// alone: environments always, flags, segments and layers without
    /// `prune` (e.g. `flag old`, `segment staff (production)`).
    pub unmanaged: Vec<String>,
}

impl Plan {
    /// The plan of `desired` over `live` (see [`plan`]).
    pub fn compute(live: &ProjectState, desired: &ProjectState, prune: bool) -> Plan {
        let changes = plan(live, desired, prune);
        Plan {
            base: live.base(),
            prune,
            summary: PlanSummary::of(&changes),
            unmanaged: unmanaged(live, desired, prune),
            changes,
        }
    }
}

/// Everything of a project that a definition file describes, by key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProjectState {
    /// Environment keys.
    pub environments: BTreeSet<String>,
    /// Layers by key.
    pub layers: BTreeMap<String, Layer>,
    /// Flag definitions by key.
    pub flags: BTreeMap<String, FlagSpec>,
    /// Flag configurations by (flag, environment).
    pub configs: BTreeMap<(String, String), ConfigSpec>,
    /// Segments by (environment, segment).
    pub segments: BTreeMap<(String, String), Segment>,
}

impl ProjectState {
    /// The state a definition file describes: its environments, layers and
    /// flags, every flag's configuration in every environment (off where the
    /// file configures none) and every environment's segments. Fails with
    /// the file's problems, each at its `line:column`, when an environment's
    /// snapshot cannot be made (a file [`bunting_defs::load`] accepted has
    /// none).
    pub fn from_file(file: &DefinitionFile) -> Result<ProjectState, Vec<Problem>> {
        let options = bunting_defs::SnapshotOptions::new(0, "1970-01-01T00:00:00Z");
        let mut state = ProjectState::default();
        let mut problems = Vec::new();
        for env in file.environment_names() {
            let snapshot = match file.snapshot(env, &options) {
                Ok(s) => s,
                Err(bunting_defs::SnapshotError::Invalid(d)) => {
                    problems.extend(d.iter().map(file_problem));
                    continue;
                }
                Err(other) => {
                    problems.push(Problem::new("environments", other.to_string()));
                    continue;
                }
            };
            state.environments.insert(env.to_string());
            for l in snapshot.layers {
                state.layers.insert(l.key.clone(), l);
            }
            for f in snapshot.flags {
                let config = ConfigSpec {
                    enabled: f.enabled,
                    rules: f.rules.clone(),
                    fallthrough: f.fallthrough.clone(),
                    prerequisites: f.prerequisites.clone(),
                };
                state
                    .configs
                    .insert((f.key.clone(), env.to_string()), config);
                state.flags.insert(
                    f.key.clone(),
                    FlagSpec {
                        key: f.key,
                        flag_type: f.flag_type,
                        variants: f.variants,
                        off_variant: f.off_variant,
                        description: f.metadata.description,
                        owner: f.metadata.owner,
                        tags: f.metadata.tags,
                        salt: f.salt,
                        bucket_by: f.bucket_by,
                        layer: f.layer,
                        client_side: f.client_side,
                    },
                );
            }
            for s in snapshot.segments {
                state.segments.insert((env.to_string(), s.key.clone()), s);
            }
        }
        if problems.is_empty() {
            Ok(state)
        } else {
            Err(problems)
        }
    }

    /// A fingerprint of the whole state: the hex SHA-256 of its canonical
    /// JSON. Equal states have equal bases; any change to what the state
    /// holds changes it.
    ///
    /// ```
    /// use bunting_origin::store::plan::ProjectState;
    /// let mut state = ProjectState::default();
    /// let empty = state.base();
    /// assert_eq!(empty.len(), 64);
    /// state.environments.insert("production".into());
    /// assert_ne!(state.base(), empty);
    /// ```
    pub fn base(&self) -> String {
        let canonical = json!({
            "environments": self.environments,
            "layers": self.layers,
            "flags": self.flags,
            "configs": self.configs.iter()
                .map(|((f, e), c)| json!([f, e, c]))
                .collect::<Vec<_>>(),
            "segments": self.segments.iter()
                .map(|((e, k), s)| json!([e, k, s]))
                .collect::<Vec<_>>(),
        });
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }

    /// The current value of the entity `change` is about, as a change's
    /// `before` shows it; `None` when it does not exist.
    pub fn value_of(&self, change: &Change) -> Option<Value> {
        let env = change.environment.clone().unwrap_or_default();
        match change.kind {
            ChangeKind::Environment => self
                .environments
                .get(&change.key)
                .map(|k| environment_value(k)),
            ChangeKind::Layer => self.layers.get(&change.key).map(to_value),
            ChangeKind::Flag => self.flags.get(&change.key).map(to_value),
            ChangeKind::FlagConfig => self.configs.get(&(change.key.clone(), env)).map(to_value),
            ChangeKind::Segment => self.segments.get(&(env, change.key.clone())).map(to_value),
        }
    }
}

/// The value of an environment in a change: `{"key", "name"}` (a file's
/// environments are named by their key).
fn environment_value(key: &str) -> Value {
    json!({"key": key, "name": key})
}

/// A problem of a definition file at its position: `path` is
/// `LINE:COLUMN`, `entity` the flag, segment or layer and environments
/// (`flag beta (env production)`), as `bunting validate` prints them.
///
/// ```
/// use bunting_defs::{load, Syntax};
/// use bunting_origin::store::plan::file_problem;
/// let d = load("environments: [production]\nflags:\n  beta:\n    type: boolean\n    \
///     variants: {on: true, off: false}\n    offVariant: dim\n", Syntax::Yaml).unwrap_err();
/// let p = file_problem(&d[0]);
/// assert_eq!((p.path.as_str(), p.entity.as_deref()), ("6:17", Some("flag beta")));
/// ```
pub fn file_problem(d: &Diagnostic) -> Problem {
    let mut context = d.subject.as_ref().map(ToString::to_string);
    if !d.environments.is_empty() {
        let envs = format!("(env {})", d.environments.join(", "));
        context = Some(match context {
            Some(c) => format!("{c} {envs}"),
            None => envs,
        });
    }
    let mut p = Problem::new(format!("{}:{}", d.pos.line, d.pos.column), &d.message);
    p.entity = context;
    p
}

/// The configuration the store gives a flag in a new environment, and every
/// environment of a new flag: off, serving `offVariant`.
fn off_config(off_variant: &str) -> ConfigSpec {
    ConfigSpec {
        enabled: false,
        rules: Vec::new(),
        fallthrough: Serve::Variant(off_variant.to_string()),
        prerequisites: Vec::new(),
    }
}

/// The changes that turn `live` into `desired`, in the order they can be
/// applied: environments, layers, flags, flag configurations and segments
/// created or updated, then (with `prune`) segments, flags and layers
/// deleted. Within a kind, by key. See the [module documentation](self) for
/// what is never touched.
pub fn plan(live: &ProjectState, desired: &ProjectState, prune: bool) -> Vec<Change> {
    let mut out = Vec::new();
    for env in desired.environments.difference(&live.environments) {
        let after = environment_value(env);
        out.push(Change::new(
            ChangeKind::Environment,
            (env, None),
            None,
            Some(&after),
        ));
    }
    upserts(
        &mut out,
        ChangeKind::Layer,
        &live.layers,
        &desired.layers,
        |k| (k.as_str(), None),
    );
    upserts(
        &mut out,
        ChangeKind::Flag,
        &live.flags,
        &desired.flags,
        |k| (k.as_str(), None),
    );
    for ((flag, env), config) in &desired.configs {
        let key = (flag.as_str(), Some(env.as_str()));
        match live.configs.get(&(flag.clone(), env.clone())) {
            Some(old) if old != config => out.push(Change::new(
                ChangeKind::FlagConfig,
                key,
                Some(old),
                Some(config),
            )),
            Some(_) => {}
            None => {
                // The store makes it off, serving the flag's `offVariant` as
                // it is when the row is made: the live one for a new
                // environment of an existing flag.
                let off_variant = live
                    .flags
                    .get(flag)
                    .or_else(|| desired.flags.get(flag))
                    .map_or("", |f| f.off_variant.as_str());
                if *config != off_config(off_variant) {
                    out.push(Change::new(ChangeKind::FlagConfig, key, None, Some(config)));
                }
            }
        }
    }
    upserts(
        &mut out,
        ChangeKind::Segment,
        &live.segments,
        &desired.segments,
        |(env, key)| (key.as_str(), Some(env.as_str())),
    );
    if prune {
        for ((env, key), s) in &live.segments {
            if desired.environments.contains(env)
                && !desired.segments.contains_key(&(env.clone(), key.clone()))
            {
                out.push(Change::new(
                    ChangeKind::Segment,
                    (key, Some(env)),
                    Some(s),
                    None,
                ));
            }
        }
        deletes(&mut out, ChangeKind::Flag, &live.flags, &desired.flags);
        deletes(&mut out, ChangeKind::Layer, &live.layers, &desired.layers);
    }
    out
}

/// Creates and updates of one kind.
fn upserts<K: Ord, T: Serialize + PartialEq>(
    out: &mut Vec<Change>,
    kind: ChangeKind,
    live: &BTreeMap<K, T>,
    desired: &BTreeMap<K, T>,
    names: impl Fn(&K) -> (&str, Option<&str>),
) {
    for (k, after) in desired {
        match live.get(k) {
            None => out.push(Change::new(kind, names(k), None, Some(after))),
            Some(before) if before != after => {
                out.push(Change::new(kind, names(k), Some(before), Some(after)));
            }
            Some(_) => {}
        }
    }
}

/// Deletes of one project-wide kind (flags, layers).
fn deletes<T: Serialize>(
    out: &mut Vec<Change>,
    kind: ChangeKind,
    live: &BTreeMap<String, T>,
    desired: &BTreeMap<String, T>,
) {
    for (k, before) in live {
        if !desired.contains_key(k) {
            out.push(Change::new(kind, (k, None), Some(before), None));
        }
    }
}

/// What `live` holds beyond `desired` that a plan leaves alone.
fn unmanaged(live: &ProjectState, desired: &ProjectState, prune: bool) -> Vec<String> {
    let mut out: Vec<String> = live
        .environments
        .difference(&desired.environments)
        .map(|e| format!("environment {e}"))
        .collect();
    if !prune {
        out.extend(
            live.layers
                .keys()
                .filter(|k| !desired.layers.contains_key(*k))
                .map(|k| format!("layer {k}")),
        );
        out.extend(
            live.flags
                .keys()
                .filter(|k| !desired.flags.contains_key(*k))
                .map(|k| format!("flag {k}")),
        );
        out.extend(
            live.segments
                .keys()
                .filter(|(e, _)| desired.environments.contains(e))
                .filter(|k| !desired.segments.contains_key(*k))
                .map(|(e, k)| format!("segment {k} ({e})")),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bunting_defs::{Syntax, load};

    fn state(src: &str) -> ProjectState {
        ProjectState::from_file(&load(src, Syntax::Yaml).expect("valid")).expect("state")
    }

    const BASE: &str = "environments: [production, staging]
segments:
  staff: { included: [u-1] }
layers:
  exp: {}
flags:
  beta:
    type: boolean
    variants: { on: true, off: false }
    offVariant: off
    layer: { key: exp, start: 0, end: 50 }
    environments:
      production: { fallthrough: on }
  old:
    type: boolean
    variants: { on: true, off: false }
    offVariant: off
";

    fn targets(changes: &[Change]) -> Vec<String> {
        changes
            .iter()
            .map(|c| {
                let sign = match c.op {
                    ChangeOp::Create => '+',
                    ChangeOp::Update => '~',
                    ChangeOp::Delete => '-',
                };
                format!("{sign} {} {}", c.kind, c.target())
            })
            .collect()
    }

    #[test]
    fn a_new_project_is_created_in_dependency_order() {
        let desired = state(BASE);
        assert_eq!(
            targets(&plan(&ProjectState::default(), &desired, true)),
            [
                "+ environment production",
                "+ environment staging",
                "+ layer exp",
                "+ flag beta",
                "+ flag old",
                "+ flagConfig beta/production",
                "+ segment staff (production)",
                "+ segment staff (staging)",
            ]
        );
    }

    #[test]
    fn edits_are_updates_and_prune_deletes_what_the_file_dropped() {
        let live = state(BASE);
        let edited = state(
            "environments: [production]
layers:
  exp: { salt: new }
flags:
  beta:
    type: boolean
    variants: { on: true, off: false }
    offVariant: off
    layer: { key: exp, start: 0, end: 50 }
    environments:
      production: { fallthrough: off, enabled: false }
",
        );
        assert_eq!(
            targets(&plan(&live, &edited, false)),
            ["~ layer exp", "~ flagConfig beta/production"]
        );
        let pruned = plan(&live, &edited, true);
        assert_eq!(
            targets(&pruned),
            [
                "~ layer exp",
                "~ flagConfig beta/production",
                "- segment staff (production)",
                "- flag old",
            ]
        );
        // Staging is not in the file: neither its segment nor itself go.
        let p = Plan::compute(&live, &edited, true);
        assert_eq!(p.unmanaged, ["environment staging"]);
        assert_eq!(
            p.summary,
            PlanSummary {
                create: 0,
                update: 2,
                delete: 2
            }
        );
        let kept = Plan::compute(&live, &edited, false);
        assert_eq!(
            kept.unmanaged,
            [
                "environment staging",
                "flag old",
                "segment staff (production)"
            ]
        );
        let config = &pruned[1];
        assert_eq!(config.before.as_ref().unwrap()["enabled"], true);
        assert_eq!(config.after.as_ref().unwrap()["enabled"], false);
        assert_eq!(live.value_of(config), config.before);
    }

    #[test]
    fn a_new_environment_of_an_existing_flag_counts_its_off_default() {
        let live = state(BASE);
        let mut desired = live.clone();
        desired.environments.insert("qa".into());
        desired
            .configs
            .insert(("old".into(), "qa".into()), off_config("off"));
        desired
            .configs
            .insert(("beta".into(), "qa".into()), off_config("on"));
        assert_eq!(
            targets(&plan(&live, &desired, false)),
            ["+ environment qa", "+ flagConfig beta/qa"]
        );
    }

    #[test]
    fn the_base_follows_the_content() {
        let a = state(BASE);
        let mut b = a.clone();
        assert_eq!(a.base(), b.base());
        b.flags.get_mut("beta").unwrap().description = Some("x".into());
        assert_ne!(a.base(), b.base());
    }

    #[test]
    fn changes_round_trip_through_json() {
        let changes = plan(&ProjectState::default(), &state(BASE), false);
        let json = serde_json::to_string(&changes).unwrap();
        let back: Vec<Change> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, changes);
        assert!(json.contains("\"kind\":\"flagConfig\""), "{json}");
    }
}
