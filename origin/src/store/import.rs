//! Applying a definition file to a project.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::rows::{get_config, get_project, list_envs, list_flags, list_layers, list_segments};
use super::{
    Actor, ConfigSpec, FlagRecord, FlagSpec, Problem, Result, SegmentRecord, Store, StoreError,
};

/// What [`Store::import`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportSummary {
    /// Environments created.
    pub environments_created: u32,
    /// Layers created.
    pub layers_created: u32,
    /// Flags created.
    pub flags_created: u32,
    /// Flags whose definition changed.
    pub flags_updated: u32,
    /// Flag configurations that changed.
    pub configs_updated: u32,
    /// Segments created.
    pub segments_created: u32,
    /// Segments that changed.
    pub segments_updated: u32,
}

impl Store {
    /// Applies a parsed definition file to project `project_id` in one
    /// transaction: creates the missing environments, layers, flags and
    /// segments, and updates the flags, configurations and segments that
    /// differ. Nothing is deleted (entities missing from the file stay).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use bunting_defs::{load, Syntax};
    /// use bunting_origin::store::{Actor, Store};
    /// let defs = load("environments: [production]\nflags:\n  beta:\n    type: boolean\n    variants: {on: true, off: false}\n    offVariant: off\n    environments:\n      production: {fallthrough: on}\n", Syntax::Yaml).unwrap();
    /// let store = Store::open("sqlite::memory:").await.unwrap();
    /// let ana = Actor::new("ana");
    /// let org = store.create_org(&ana, "acme", "Acme").await.unwrap();
    /// let project = store.create_project(&ana, org.id, "web", "Web").await.unwrap();
    /// let summary = store.import(&ana, project.id, &defs).await.unwrap();
    /// assert_eq!(summary.flags_created, 1);
    /// # });
    /// ```
    pub async fn import(
        &self,
        actor: &Actor,
        project_id: i64,
        defs: &bunting_defs::DefinitionFile,
    ) -> Result<ImportSummary> {
        let mut sum = ImportSummary::default();
        let options = bunting_defs::SnapshotOptions::new(0, "1970-01-01T00:00:00Z");
        let mut snapshots = Vec::new();
        for env in defs.environment_names() {
            let s = defs.snapshot(env, &options).map_err(|e| match e {
                bunting_defs::SnapshotError::Invalid(d) => StoreError::Invalid(
                    d.into_iter()
                        .map(|d| {
                            Problem::new(format!("{}:{}", d.pos.line, d.pos.column), d.message)
                        })
                        .collect(),
                ),
                other => StoreError::Invalid(vec![Problem::new("environments", other.to_string())]),
            })?;
            snapshots.push(s);
        }
        let mut w = self.begin(actor).await?;
        get_project(w.c(), project_id).await?;
        let mut envs: BTreeMap<String, i64> = list_envs(w.c(), project_id)
            .await?
            .into_iter()
            .map(|e| (e.key, e.id))
            .collect();
        for s in &snapshots {
            if !envs.contains_key(&s.environment) {
                let e = w
                    .create_environment(project_id, &s.environment, &s.environment)
                    .await?;
                envs.insert(e.key, e.id);
                sum.environments_created += 1;
            }
        }
        let Some(first) = snapshots.first() else {
            w.commit().await?;
            return Ok(sum);
        };
        let layers: BTreeSet<String> = list_layers(w.c(), project_id)
            .await?
            .into_iter()
            .map(|l| l.layer.key)
            .collect();
        for l in &first.layers {
            if !layers.contains(&l.key) {
                w.create_layer(project_id, l).await?;
                sum.layers_created += 1;
            }
        }
        let mut flags: BTreeMap<String, FlagRecord> = list_flags(w.c(), project_id)
            .await?
            .into_iter()
            .map(|f| (f.spec.key.clone(), f))
            .collect();
        for f in &first.flags {
            let spec = FlagSpec {
                key: f.key.clone(),
                flag_type: f.flag_type,
                variants: f.variants.clone(),
                off_variant: f.off_variant.clone(),
                description: f.metadata.description.clone(),
                owner: f.metadata.owner.clone(),
                tags: f.metadata.tags.clone(),
                salt: f.salt.clone(),
                bucket_by: f.bucket_by.clone(),
                layer: f.layer.clone(),
            };
            match flags.get(&f.key) {
                None => {
                    let rec = w.create_flag(project_id, &spec).await?;
                    flags.insert(f.key.clone(), rec);
                    sum.flags_created += 1;
                }
                Some(existing) if existing.spec != spec => {
                    w.update_flag(existing.id, None, &spec).await?;
                    sum.flags_updated += 1;
                }
                Some(_) => {}
            }
        }
        for s in &snapshots {
            let env_id = envs[&s.environment];
            for f in &s.flags {
                let flag_id = flags[&f.key].id;
                let spec = ConfigSpec {
                    enabled: f.enabled,
                    rules: f.rules.clone(),
                    fallthrough: f.fallthrough.clone(),
                    prerequisites: f.prerequisites.clone(),
                };
                if get_config(w.c(), flag_id, env_id).await?.spec != spec {
                    w.update_config(flag_id, env_id, None, &spec).await?;
                    sum.configs_updated += 1;
                }
            }
            let existing: BTreeMap<String, SegmentRecord> = list_segments(w.c(), env_id)
                .await?
                .into_iter()
                .map(|s| (s.segment.key.clone(), s))
                .collect();
            for seg in &s.segments {
                match existing.get(&seg.key) {
                    None => {
                        w.create_segment(env_id, seg).await?;
                        sum.segments_created += 1;
                    }
                    Some(old) if &old.segment != seg => {
                        w.update_segment(old.id, None, seg).await?;
                        sum.segments_updated += 1;
                    }
                    Some(_) => {}
                }
            }
        }
        w.commit().await?;
        Ok(sum)
    }
}
