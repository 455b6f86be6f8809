//! Reading a project's [`ProjectState`] and applying [`Change`]s to it in
//! one transaction (GitOps applies, and the change requests that hold such
//! changes).

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::AnyConnection;

use super::plan::{Change, ChangeKind, ChangeOp, Plan, ProjectState};
use super::rows::{get_project, list_envs, list_flags, list_layers, list_segments};
use super::write::Write;
use super::{
    Actor, ConfigSpec, FlagRecord, FlagSpec, LayerRecord, Problem, Result, SegmentRecord, Store,
    StoreError,
};

/// The ids of a project's entities, by key, kept current while changes are
/// applied.
#[derive(Default)]
struct Ids {
    envs: BTreeMap<String, i64>,
    layers: BTreeMap<String, (i64, i64)>,
    flags: BTreeMap<String, (i64, i64)>,
    segments: BTreeMap<(String, String), (i64, i64)>,
}

/// Reads project `project_id`'s state and the ids (and versions) of its
/// entities on connection `c`.
async fn read(c: &mut AnyConnection, project_id: i64) -> Result<(ProjectState, Ids)> {
    get_project(c, project_id).await?;
    let mut state = ProjectState::default();
    let mut ids = Ids::default();
    let envs = list_envs(c, project_id).await?;
    let flags = list_flags(c, project_id).await?;
    for l in list_layers(c, project_id).await? {
        ids.layers.insert(l.layer.key.clone(), (l.id, l.version));
        state.layers.insert(l.layer.key.clone(), l.layer);
    }
    for f in &flags {
        ids.flags.insert(f.spec.key.clone(), (f.id, f.version));
        state.flags.insert(f.spec.key.clone(), f.spec.clone());
    }
    for e in envs {
        for config in super::rows::list(
            c,
            "SELECT * FROM flag_configs WHERE environment_id = $1",
            e.id,
            super::rows::config_row,
        )
        .await?
        {
            if let Some(f) = flags.iter().find(|f| f.id == config.flag_id) {
                state
                    .configs
                    .insert((f.spec.key.clone(), e.key.clone()), config.spec);
            }
        }
        for s in list_segments(c, e.id).await? {
            let key = (e.key.clone(), s.segment.key.clone());
            ids.segments.insert(key.clone(), (s.id, s.version));
            state.segments.insert(key, s.segment);
        }
        state.environments.insert(e.key.clone());
        ids.envs.insert(e.key, e.id);
    }
    Ok((state, ids))
}

/// `change.after` (or `before`, for a delete) as a `T`, or the problem of
/// the change that does not hold one.
fn body<T: DeserializeOwned>(change: &Change, value: Option<&Value>) -> Result<T> {
    let value = value.ok_or_else(|| invalid(change, "the change has no value to apply"))?;
    serde_json::from_value(value.clone())
        .map_err(|e| invalid(change, format!("not a valid {}: {e}", change.kind.as_str())))
}

fn invalid(change: &Change, message: impl Into<String>) -> StoreError {
    let mut p = Problem::new(format!("changes[{}]", change.target()), message);
    p.entity = Some(format!("{} {}", change.kind, change.target()));
    StoreError::Invalid(vec![p])
}

/// The id of `map[key]`, or the problem of a change naming a missing entity.
fn id_of<K: Ord, V: Copy>(change: &Change, map: &BTreeMap<K, V>, key: &K, what: &str) -> Result<V> {
    map.get(key)
        .copied()
        .ok_or_else(|| invalid(change, format!("{what} does not exist")))
}

impl Write<'_> {
    /// Applies `change` to project `project_id`, whose ids are `ids`.
    async fn apply_change(
        &mut self,
        project_id: i64,
        ids: &mut Ids,
        change: &Change,
    ) -> Result<()> {
        let env = change.environment.clone().unwrap_or_default();
        match (change.kind, change.op) {
            (ChangeKind::Environment, ChangeOp::Create) => {
                let name = change
                    .after
                    .as_ref()
                    .and_then(|a| a["name"].as_str())
                    .unwrap_or(&change.key)
                    .to_string();
                let e = self
                    .create_environment(project_id, &change.key, &name)
                    .await?;
                ids.envs.insert(e.key, e.id);
            }
            (ChangeKind::Environment, _) => {
                return Err(invalid(
                    change,
                    "environments are only created by a plan; rename or delete one through its endpoint",
                ));
            }
            (ChangeKind::Layer, ChangeOp::Create) => {
                let l = self
                    .create_layer(project_id, &body(change, change.after.as_ref())?)
                    .await?;
                ids.layers.insert(l.layer.key, (l.id, l.version));
            }
            (ChangeKind::Layer, ChangeOp::Update) => {
                let (id, _) = id_of(change, &ids.layers, &change.key, "the layer")?;
                self.update_layer(id, None, &body(change, change.after.as_ref())?)
                    .await?;
            }
            (ChangeKind::Layer, ChangeOp::Delete) => {
                let (id, version) = id_of(change, &ids.layers, &change.key, "the layer")?;
                self.delete_row::<LayerRecord>(id, version).await?;
                self.touch_project(project_id).await?;
                ids.layers.remove(&change.key);
            }
            (ChangeKind::Flag, ChangeOp::Create) => {
                let spec: FlagSpec = body(change, change.after.as_ref())?;
                if spec.key != change.key {
                    return Err(invalid(change, "the flag's key is not the change's key"));
                }
                let f = self.create_flag(project_id, &spec).await?;
                ids.flags.insert(f.spec.key, (f.id, f.version));
            }
            (ChangeKind::Flag, ChangeOp::Update) => {
                let spec: FlagSpec = body(change, change.after.as_ref())?;
                if spec.key != change.key {
                    return Err(invalid(change, "a flag's key cannot change"));
                }
                let (id, _) = id_of(change, &ids.flags, &change.key, "the flag")?;
                self.update_flag(id, None, &spec).await?;
            }
            (ChangeKind::Flag, ChangeOp::Delete) => {
                let (id, version) = id_of(change, &ids.flags, &change.key, "the flag")?;
                self.delete_row::<FlagRecord>(id, version).await?;
                self.touch_project(project_id).await?;
                ids.flags.remove(&change.key);
            }
            (ChangeKind::FlagConfig, ChangeOp::Create | ChangeOp::Update) => {
                let spec: ConfigSpec = body(change, change.after.as_ref())?;
                let (flag_id, _) = id_of(change, &ids.flags, &change.key, "the flag")?;
                let env_id = id_of(change, &ids.envs, &env, "the environment")?;
                self.update_config(flag_id, env_id, None, &spec).await?;
            }
            (ChangeKind::FlagConfig, ChangeOp::Delete) => {
                return Err(invalid(
                    change,
                    "a flag configuration goes only with its flag or environment",
                ));
            }
            (ChangeKind::Segment, ChangeOp::Create) => {
                let env_id = id_of(change, &ids.envs, &env, "the environment")?;
                let s = self
                    .create_segment(env_id, &body(change, change.after.as_ref())?)
                    .await?;
                ids.segments.insert((env, s.segment.key), (s.id, s.version));
            }
            (ChangeKind::Segment, ChangeOp::Update) => {
                let key = (env, change.key.clone());
                let (id, _) = id_of(change, &ids.segments, &key, "the segment")?;
                self.update_segment(id, None, &body(change, change.after.as_ref())?)
                    .await?;
            }
            (ChangeKind::Segment, ChangeOp::Delete) => {
                let key = (env, change.key.clone());
                let (id, version) = id_of(change, &ids.segments, &key, "the segment")?;
                let before: SegmentRecord = self.delete_row(id, version).await?;
                self.envs.insert(before.environment_id);
                ids.segments.remove(&key);
            }
        }
        Ok(())
    }
}

/// Checks that every change's `before` is what `live` holds.
fn check_befores(live: &ProjectState, changes: &[Change]) -> Result<()> {
    for c in changes {
        // A configuration made by a create of its flag or environment in
        // the same list does not exist yet.
        if live.value_of(c) != c.before {
            let what = match (&c.before, c.op) {
                (None, _) => "now exists",
                (Some(_), ChangeOp::Create) => "changed",
                (Some(_), _) if live.value_of(c).is_none() => "no longer exists",
                (Some(_), _) => "changed",
            };
            return Err(StoreError::Stale {
                base: live.base(),
                reason: format!("{} {} {what} since the plan was made", c.kind, c.target()),
            });
        }
    }
    Ok(())
}

impl Store {
    /// What project `project_id` holds, as a definition file describes it.
    pub async fn project_state(&self, project_id: i64) -> Result<ProjectState> {
        let mut c = self.conn().await?;
        Ok(read(&mut c, project_id).await?.0)
    }

    /// The plan of `desired` over project `project_id` (see
    /// [`super::plan`]).
    pub async fn plan_definitions(
        &self,
        project_id: i64,
        desired: &ProjectState,
        prune: bool,
    ) -> Result<Plan> {
        let live = self.project_state(project_id).await?;
        Ok(Plan::compute(&live, desired, prune))
    }

    /// Plans `desired` over project `project_id` and applies the plan, in one
    /// transaction: refused with [`StoreError::Stale`] when `expected_base`
    /// is given and the project is no longer in that state. Answers the plan
    /// that was applied.
    pub async fn apply_definitions(
        &self,
        actor: &Actor,
        project_id: i64,
        desired: &ProjectState,
        prune: bool,
        expected_base: Option<&str>,
    ) -> Result<Plan> {
        self.write(actor, async |w| {
            let (live, mut ids) = read(w.c(), project_id).await?;
            let plan = Plan::compute(&live, desired, prune);
            check_base(&plan.base, expected_base)?;
            for change in &plan.changes {
                w.apply_change(project_id, &mut ids, change).await?;
            }
            Ok(plan)
        })
        .await
    }

    /// Applies `changes` to project `project_id` in one transaction, in
    /// their order, auditing each entity as its own endpoint does and
    /// bumping the snapshot versions of the environments they touch (which
    /// the publisher then publishes). Refused with [`StoreError::Stale`]
    /// when `expected_base` is given and the project is no longer in that
    /// state ([`ProjectState::base`]), or when any change's `before` is not
    /// what the project holds (someone changed that entity since); with
    /// [`StoreError::Invalid`] when a change cannot be applied or the result
    /// is not a valid snapshot. Answers the base the changes were applied
    /// on.
    ///
    /// This is how a change request holding a plan's changes is applied.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use bunting_defs::{load, Syntax};
    /// use bunting_origin::store::plan::{Plan, ProjectState};
    /// use bunting_origin::store::{Actor, Store, StoreError};
    /// let store = Store::open("sqlite::memory:").await.unwrap();
    /// let ana = Actor::new("ana");
    /// let org = store.create_org(&ana, "acme", "Acme").await.unwrap();
    /// let web = store.create_project(&ana, org.id, "web", "Web").await.unwrap();
    /// let file = load("environments: [production]\n", Syntax::Yaml).unwrap();
    /// let desired = ProjectState::from_file(&file).unwrap();
    /// let plan = store.plan_definitions(web.id, &desired, false).await.unwrap();
    /// store.apply_changes(&ana, web.id, Some(&plan.base), &plan.changes).await.unwrap();
    /// // Applied once; the same changes again are stale.
    /// let again = store.apply_changes(&ana, web.id, None, &plan.changes).await;
    /// assert!(matches!(again, Err(StoreError::Stale { .. })));
    /// # });
    /// ```
    pub async fn apply_changes(
        &self,
        actor: &Actor,
        project_id: i64,
        expected_base: Option<&str>,
        changes: &[Change],
    ) -> Result<String> {
        self.write(actor, async |w| {
            let (live, mut ids) = read(w.c(), project_id).await?;
            let base = live.base();
            check_base(&base, expected_base)?;
            check_befores(&live, changes)?;
            for change in changes {
                w.apply_change(project_id, &mut ids, change).await?;
            }
            Ok(base)
        })
        .await
    }
}

/// [`StoreError::Stale`] unless `base` is `expected` (when given).
fn check_base(base: &str, expected: Option<&str>) -> Result<()> {
    match expected {
        Some(e) if e != base => Err(StoreError::Stale {
            base: base.to_string(),
            reason: format!(
                "the project changed since the plan was made (expected base {e}, it is now {base}); plan again"
            ),
        }),
        _ => Ok(()),
    }
}
