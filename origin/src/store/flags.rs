//! Flags with their configurations per environment, segments and layers.

use std::collections::BTreeSet;

use bunting_core::Serve;
use bunting_core::model::{Layer, Prerequisite, Segment};
use sqlx::{AnyConnection, Row};

use super::keys::valid_key;
use super::rows::{
    flag_row, from_json, get_config, get_env, get_flag, get_layer, get_project, get_segment,
    list_envs, list_flags, list_layers, list_segments, not_found, now, to_json,
};
use super::write::{Entity, Write, check_version};
use super::{
    Actor, ConfigSpec, FlagConfig, FlagRecord, FlagSpec, LayerRecord, Problem, Result,
    SegmentRecord, Store, StoreError,
};
use crate::model::key::check_key;

fn flag_problems(spec: &FlagSpec) -> Vec<Problem> {
    let mut p = Vec::new();
    check_key(&mut p, &spec.key);
    if !spec.variants.contains_key(&spec.off_variant) {
        p.push(Problem::new(
            "offVariant",
            format!("{:?} is not a variant", spec.off_variant),
        ));
    }
    for (name, value) in &spec.variants {
        if !spec.flag_type.admits(value) {
            p.push(Problem::new(
                format!("variants.{name}"),
                format!("{value} is not a {}", spec.flag_type.as_str()),
            ));
        }
    }
    p
}

impl Entity for FlagRecord {
    const TABLE: &'static str = "flags";
    const ENTITY: &'static str = "flag";
    async fn get(c: &mut AnyConnection, id: i64) -> Result<Self> {
        get_flag(c, id).await
    }
    fn key_version(&self) -> (&str, i64) {
        (&self.spec.key, self.version)
    }
}

impl Entity for SegmentRecord {
    const TABLE: &'static str = "segments";
    const ENTITY: &'static str = "segment";
    async fn get(c: &mut AnyConnection, id: i64) -> Result<Self> {
        get_segment(c, id).await
    }
    fn key_version(&self) -> (&str, i64) {
        (&self.segment.key, self.version)
    }
}

impl Entity for LayerRecord {
    const TABLE: &'static str = "layers";
    const ENTITY: &'static str = "layer";
    async fn get(c: &mut AnyConnection, id: i64) -> Result<Self> {
        get_layer(c, id).await
    }
    fn key_version(&self) -> (&str, i64) {
        (&self.layer.key, self.version)
    }
}

impl Write<'_> {
    pub(super) async fn insert_default_config(
        &mut self,
        f: &FlagRecord,
        env_id: i64,
    ) -> Result<()> {
        let by = self.actor_name().to_string();
        sqlx::query(
            "INSERT INTO flag_configs (flag_id, environment_id, enabled, rules, fallthrough, prerequisites, \
             updated_at, updated_by) VALUES ($1, $2, 0, '[]', $3, '[]', $4, $5)",
        )
        .bind(f.id)
        .bind(env_id)
        .bind(to_json(&Serve::Variant(f.spec.off_variant.clone())))
        .bind(now())
        .bind(by)
        .execute(self.c())
        .await?;
        Ok(())
    }

    pub(super) async fn create_flag(
        &mut self,
        project_id: i64,
        spec: &FlagSpec,
    ) -> Result<FlagRecord> {
        let problems = flag_problems(spec);
        if !problems.is_empty() {
            return Err(StoreError::Invalid(problems));
        }
        get_project(self.c(), project_id).await?;
        let by = self.actor_name().to_string();
        let row = sqlx::query(
            "INSERT INTO flags (project_id, key, flag_type, variants, off_variant, description, owner, tags, salt, \
             bucket_by, layer, updated_at, updated_by, client_side) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
             $10, $11, $12, $13, $14) RETURNING id",
        )
        .bind(project_id)
        .bind(&spec.key)
        .bind(spec.flag_type.as_str())
        .bind(to_json(&spec.variants))
        .bind(&spec.off_variant)
        .bind(&spec.description)
        .bind(&spec.owner)
        .bind(to_json(&spec.tags))
        .bind(&spec.salt)
        .bind(&spec.bucket_by)
        .bind(spec.layer.as_ref().map(to_json))
        .bind(now())
        .bind(by)
        .bind(i64::from(spec.client_side))
        .fetch_one(self.c())
        .await
        .map_err(StoreError::on_write("flag", &spec.key))?;
        let id: i64 = row.try_get("id")?;
        let flag = get_flag(self.c(), id).await?;
        for env in list_envs(self.c(), project_id).await? {
            self.insert_default_config(&flag, env.id).await?;
        }
        self.audit("create", "flag", (id, &spec.key), None::<&()>, Some(&flag))
            .await?;
        self.touch_project(project_id).await?;
        Ok(flag)
    }

    pub(super) async fn update_flag(
        &mut self,
        id: i64,
        expected: Option<i64>,
        spec: &FlagSpec,
    ) -> Result<FlagRecord> {
        let problems = flag_problems(spec);
        if !problems.is_empty() {
            return Err(StoreError::Invalid(problems));
        }
        let before = get_flag(self.c(), id).await?;
        if let Some(v) = expected {
            check_version(before.version, v)?;
        }
        if before.archived {
            return Err(StoreError::Archived {
                key: before.spec.key,
            });
        }
        let by = self.actor_name().to_string();
        sqlx::query(
            "UPDATE flags SET key = $1, flag_type = $2, variants = $3, off_variant = $4, description = $5, \
             owner = $6, tags = $7, salt = $8, bucket_by = $9, layer = $10, version = version + 1, \
             updated_at = $11, updated_by = $12, client_side = $13 WHERE id = $14",
        )
        .bind(&spec.key)
        .bind(spec.flag_type.as_str())
        .bind(to_json(&spec.variants))
        .bind(&spec.off_variant)
        .bind(&spec.description)
        .bind(&spec.owner)
        .bind(to_json(&spec.tags))
        .bind(&spec.salt)
        .bind(&spec.bucket_by)
        .bind(spec.layer.as_ref().map(to_json))
        .bind(now())
        .bind(by)
        .bind(i64::from(spec.client_side))
        .bind(id)
        .execute(self.c())
        .await
        .map_err(StoreError::on_write("flag", &spec.key))?;
        let after = get_flag(self.c(), id).await?;
        self.audit(
            "update",
            "flag",
            (id, &spec.key),
            Some(&before),
            Some(&after),
        )
        .await?;
        self.touch_project(before.project_id).await?;
        Ok(after)
    }

    pub(super) async fn update_config(
        &mut self,
        flag_id: i64,
        env_id: i64,
        expected: Option<i64>,
        spec: &ConfigSpec,
    ) -> Result<FlagConfig> {
        let before = get_config(self.c(), flag_id, env_id).await?;
        if let Some(v) = expected {
            check_version(before.version, v)?;
        }
        let flag = get_flag(self.c(), flag_id).await?;
        if flag.archived {
            return Err(StoreError::Archived { key: flag.spec.key });
        }
        let by = self.actor_name().to_string();
        sqlx::query(
            "UPDATE flag_configs SET enabled = $1, rules = $2, fallthrough = $3, prerequisites = $4, \
             version = version + 1, updated_at = $5, updated_by = $6 WHERE flag_id = $7 AND environment_id = $8",
        )
        .bind(i64::from(spec.enabled))
        .bind(to_json(&spec.rules))
        .bind(to_json(&spec.fallthrough))
        .bind(to_json(&spec.prerequisites))
        .bind(now())
        .bind(by)
        .bind(flag_id)
        .bind(env_id)
        .execute(self.c())
        .await?;
        let after = get_config(self.c(), flag_id, env_id).await?;
        let env = get_env(self.c(), env_id).await?;
        let key = format!("{}/{}", flag.spec.key, env.key);
        self.audit(
            "update",
            "flagConfig",
            (flag_id, &key),
            Some(&before),
            Some(&after),
        )
        .await?;
        self.envs.insert(env_id);
        Ok(after)
    }

    /// Archives (`archived`) or restores flag `id`, at version `expected`;
    /// nothing to do when it already is so.
    pub(super) async fn set_archived(
        &mut self,
        id: i64,
        expected: i64,
        archived: bool,
    ) -> Result<FlagRecord> {
        let before = get_flag(self.c(), id).await?;
        check_version(before.version, expected)?;
        if before.archived == archived {
            return Ok(before);
        }
        if archived {
            self.check_not_prerequisite(&before).await?;
        } else {
            self.check_prerequisites_served(&before).await?;
        }
        let by = self.actor_name().to_string();
        sqlx::query(
            "UPDATE flags SET archived = $1, version = version + 1, updated_at = $2, updated_by = $3 \
             WHERE id = $4",
        )
        .bind(i64::from(archived))
        .bind(now())
        .bind(by)
        .bind(id)
        .execute(self.c())
        .await?;
        let after = get_flag(self.c(), id).await?;
        let action = if archived { "archive" } else { "restore" };
        self.audit(
            action,
            "flag",
            (id, &before.spec.key),
            Some(&before),
            Some(&after),
        )
        .await?;
        self.touch_project(before.project_id).await?;
        Ok(after)
    }

    /// Refuses to archive `flag` while a served flag names it as a
    /// prerequisite in some environment.
    async fn check_not_prerequisite(&mut self, flag: &FlagRecord) -> Result<()> {
        let rows = sqlx::query(
            "SELECT f.key AS flag, e.key AS env, c.prerequisites FROM flag_configs c \
             JOIN flags f ON f.id = c.flag_id JOIN environments e ON e.id = c.environment_id \
             WHERE f.project_id = $1 AND f.archived = 0 AND f.id <> $2 ORDER BY f.key, e.key",
        )
        .bind(flag.project_id)
        .bind(flag.id)
        .fetch_all(self.c())
        .await?;
        let mut dependents = Vec::new();
        for row in &rows {
            let prerequisites: Vec<Prerequisite> = from_json(row, "prerequisites")?;
            if prerequisites.iter().any(|p| p.flag == flag.spec.key) {
                let (key, env): (String, String) = (row.try_get("flag")?, row.try_get("env")?);
                dependents.push(format!("{key}/{env}"));
            }
        }
        if dependents.is_empty() {
            return Ok(());
        }
        Err(StoreError::Prerequisite {
            archived: vec![flag.spec.key.clone()],
            dependents,
        })
    }

    /// Refuses to restore `flag` while its prerequisites name archived
    /// flags.
    async fn check_prerequisites_served(&mut self, flag: &FlagRecord) -> Result<()> {
        let archived: BTreeSet<String> =
            sqlx::query("SELECT key FROM flags WHERE project_id = $1 AND archived <> 0")
                .bind(flag.project_id)
                .fetch_all(self.c())
                .await?
                .iter()
                .map(|r| r.try_get("key"))
                .collect::<std::result::Result<_, _>>()?;
        let rows = sqlx::query(
            "SELECT e.key AS env, c.prerequisites FROM flag_configs c \
             JOIN environments e ON e.id = c.environment_id WHERE c.flag_id = $1 ORDER BY e.key",
        )
        .bind(flag.id)
        .fetch_all(self.c())
        .await?;
        let (mut named, mut dependents) = (BTreeSet::new(), Vec::new());
        for row in &rows {
            let prerequisites: Vec<Prerequisite> = from_json(row, "prerequisites")?;
            let missing: Vec<&Prerequisite> = prerequisites
                .iter()
                .filter(|p| p.flag != flag.spec.key && archived.contains(&p.flag))
                .collect();
            if !missing.is_empty() {
                let env: String = row.try_get("env")?;
                dependents.push(format!("{}/{env}", flag.spec.key));
                named.extend(missing.into_iter().map(|p| p.flag.clone()));
            }
        }
        if dependents.is_empty() {
            return Ok(());
        }
        Err(StoreError::Prerequisite {
            archived: named.into_iter().collect(),
            dependents,
        })
    }

    // ---- segments and layers ----

    pub(super) async fn create_segment(
        &mut self,
        env_id: i64,
        segment: &Segment,
    ) -> Result<SegmentRecord> {
        valid_key(&segment.key)?;
        get_env(self.c(), env_id).await?;
        let row = sqlx::query(
            "INSERT INTO segments (environment_id, key, included, excluded, condition, description) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(env_id)
        .bind(&segment.key)
        .bind(to_json(&segment.included))
        .bind(to_json(&segment.excluded))
        .bind(&segment.condition)
        .bind(&segment.description)
        .fetch_one(self.c())
        .await
        .map_err(StoreError::on_write("segment", &segment.key))?;
        let id: i64 = row.try_get("id")?;
        let rec = get_segment(self.c(), id).await?;
        self.audit(
            "create",
            "segment",
            (id, &segment.key),
            None::<&()>,
            Some(&rec),
        )
        .await?;
        self.envs.insert(env_id);
        Ok(rec)
    }

    pub(super) async fn update_segment(
        &mut self,
        id: i64,
        expected: Option<i64>,
        segment: &Segment,
    ) -> Result<SegmentRecord> {
        valid_key(&segment.key)?;
        let before = get_segment(self.c(), id).await?;
        if let Some(v) = expected {
            check_version(before.version, v)?;
        }
        sqlx::query(
            "UPDATE segments SET key = $1, included = $2, excluded = $3, condition = $4, description = $5, \
             version = version + 1 WHERE id = $6",
        )
        .bind(&segment.key)
        .bind(to_json(&segment.included))
        .bind(to_json(&segment.excluded))
        .bind(&segment.condition)
        .bind(&segment.description)
        .bind(id)
        .execute(self.c())
        .await
        .map_err(StoreError::on_write("segment", &segment.key))?;
        let after = get_segment(self.c(), id).await?;
        self.audit(
            "update",
            "segment",
            (id, &segment.key),
            Some(&before),
            Some(&after),
        )
        .await?;
        self.envs.insert(before.environment_id);
        Ok(after)
    }

    pub(super) async fn create_layer(
        &mut self,
        project_id: i64,
        layer: &Layer,
    ) -> Result<LayerRecord> {
        valid_key(&layer.key)?;
        get_project(self.c(), project_id).await?;
        let row = sqlx::query("INSERT INTO layers (project_id, key, salt, bucket_by) VALUES ($1, $2, $3, $4) RETURNING id")
            .bind(project_id)
            .bind(&layer.key)
            .bind(&layer.salt)
            .bind(&layer.bucket_by)
            .fetch_one(self.c())
            .await
            .map_err(StoreError::on_write("layer", &layer.key))?;
        let id: i64 = row.try_get("id")?;
        let rec = get_layer(self.c(), id).await?;
        self.audit("create", "layer", (id, &layer.key), None::<&()>, Some(&rec))
            .await?;
        self.touch_project(project_id).await?;
        Ok(rec)
    }

    pub(super) async fn update_layer(
        &mut self,
        id: i64,
        expected: Option<i64>,
        layer: &Layer,
    ) -> Result<LayerRecord> {
        let before = get_layer(self.c(), id).await?;
        if let Some(v) = expected {
            check_version(before.version, v)?;
        }
        if layer.key != before.layer.key {
            return Err(StoreError::Invalid(vec![Problem::new(
                "key",
                format!(
                    "a layer's key cannot change (it is {:?}; flags name it)",
                    before.layer.key
                ),
            )]));
        }
        sqlx::query(
            "UPDATE layers SET salt = $1, bucket_by = $2, version = version + 1 WHERE id = $3",
        )
        .bind(&layer.salt)
        .bind(&layer.bucket_by)
        .bind(id)
        .execute(self.c())
        .await?;
        let after = get_layer(self.c(), id).await?;
        self.audit(
            "update",
            "layer",
            (id, &layer.key),
            Some(&before),
            Some(&after),
        )
        .await?;
        self.touch_project(before.project_id).await?;
        Ok(after)
    }
}

impl Store {
    // ---- flags ----

    /// Creates a flag in project `project_id`, with a default configuration
    /// (off, serving `offVariant`) in each of its environments.
    pub async fn create_flag(
        &self,
        actor: &Actor,
        project_id: i64,
        spec: &FlagSpec,
    ) -> Result<FlagRecord> {
        self.write(actor, async |w| w.create_flag(project_id, spec).await)
            .await
    }

    /// The flag `id`.
    pub async fn flag(&self, id: i64) -> Result<FlagRecord> {
        get_flag(&mut *self.conn().await?, id).await
    }

    /// The flag `key` of project `project_id`.
    pub async fn flag_by_key(&self, project_id: i64, key: &str) -> Result<FlagRecord> {
        let r = sqlx::query("SELECT * FROM flags WHERE project_id = $1 AND key = $2")
            .bind(project_id)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        flag_row(&r.ok_or_else(|| not_found("flag", key))?)
    }

    /// The flags of project `project_id`, by key.
    pub async fn flags(&self, project_id: i64) -> Result<Vec<FlagRecord>> {
        list_flags(&mut *self.conn().await?, project_id).await
    }

    /// Replaces flag `id`'s definition; it must be at version `expected`.
    pub async fn update_flag(
        &self,
        actor: &Actor,
        id: i64,
        expected: i64,
        spec: &FlagSpec,
    ) -> Result<FlagRecord> {
        self.write(actor, async |w| {
            w.update_flag(id, Some(expected), spec).await
        })
        .await
    }

    /// Deletes flag `id` (at version `expected`) and its configurations.
    pub async fn delete_flag(&self, actor: &Actor, id: i64, expected: i64) -> Result<()> {
        self.write(actor, async |w| {
            let before: FlagRecord = w.delete_row(id, expected).await?;
            w.touch_project(before.project_id).await
        })
        .await
    }

    /// Archives flag `id` (at version `expected`): every snapshot leaves it
    /// out, the flag list hides it and it cannot change until restored.
    /// Refused ([`StoreError::Prerequisite`]) while a served flag names it
    /// as a prerequisite. Archiving an archived flag changes nothing.
    pub async fn archive_flag(&self, actor: &Actor, id: i64, expected: i64) -> Result<FlagRecord> {
        self.write(actor, async |w| w.set_archived(id, expected, true).await)
            .await
    }

    /// Restores archived flag `id` (at version `expected`) as it was.
    /// Refused ([`StoreError::Prerequisite`]) while its prerequisites name
    /// archived flags. Restoring a served flag changes nothing.
    pub async fn restore_flag(&self, actor: &Actor, id: i64, expected: i64) -> Result<FlagRecord> {
        self.write(actor, async |w| w.set_archived(id, expected, false).await)
            .await
    }

    /// Flag `flag_id`'s configuration in environment `env_id`.
    pub async fn flag_config(&self, flag_id: i64, env_id: i64) -> Result<FlagConfig> {
        get_config(&mut *self.conn().await?, flag_id, env_id).await
    }

    /// Replaces flag `flag_id`'s configuration in environment `env_id`; it
    /// must be at version `expected`.
    pub async fn update_flag_config(
        &self,
        actor: &Actor,
        flag_id: i64,
        env_id: i64,
        expected: i64,
        spec: &ConfigSpec,
    ) -> Result<FlagConfig> {
        self.write(actor, async |w| {
            w.update_config(flag_id, env_id, Some(expected), spec).await
        })
        .await
    }

    // ---- segments and layers ----

    /// Creates a segment in environment `env_id`.
    pub async fn create_segment(
        &self,
        actor: &Actor,
        env_id: i64,
        segment: &Segment,
    ) -> Result<SegmentRecord> {
        self.write(actor, async |w| w.create_segment(env_id, segment).await)
            .await
    }

    /// The segment `id`.
    pub async fn segment(&self, id: i64) -> Result<SegmentRecord> {
        get_segment(&mut *self.conn().await?, id).await
    }

    /// The segments of environment `env_id`, by key.
    pub async fn segments(&self, env_id: i64) -> Result<Vec<SegmentRecord>> {
        list_segments(&mut *self.conn().await?, env_id).await
    }

    /// Replaces segment `id`; it must be at version `expected`.
    pub async fn update_segment(
        &self,
        actor: &Actor,
        id: i64,
        expected: i64,
        segment: &Segment,
    ) -> Result<SegmentRecord> {
        self.write(actor, async |w| {
            w.update_segment(id, Some(expected), segment).await
        })
        .await
    }

    /// Deletes segment `id` (at version `expected`).
    pub async fn delete_segment(&self, actor: &Actor, id: i64, expected: i64) -> Result<()> {
        self.write(actor, async |w| {
            let before: SegmentRecord = w.delete_row(id, expected).await?;
            w.envs.insert(before.environment_id);
            Ok(())
        })
        .await
    }

    /// Creates a mutual-exclusion layer in project `project_id`.
    pub async fn create_layer(
        &self,
        actor: &Actor,
        project_id: i64,
        layer: &Layer,
    ) -> Result<LayerRecord> {
        self.write(actor, async |w| w.create_layer(project_id, layer).await)
            .await
    }

    /// Replaces layer `id`'s salt and bucketing attribute (its key is fixed:
    /// flags name it); it must be at version `expected`. Changing the salt
    /// reshuffles who is in which slot of the layer.
    pub async fn update_layer(
        &self,
        actor: &Actor,
        id: i64,
        expected: i64,
        layer: &Layer,
    ) -> Result<LayerRecord> {
        self.write(actor, async |w| {
            w.update_layer(id, Some(expected), layer).await
        })
        .await
    }

    /// Deletes layer `id` (at version `expected`); refused
    /// ([`StoreError::Invalid`]) while a flag uses it.
    pub async fn delete_layer(&self, actor: &Actor, id: i64, expected: i64) -> Result<()> {
        self.write(actor, async |w| {
            let before: LayerRecord = w.delete_row(id, expected).await?;
            w.touch_project(before.project_id).await
        })
        .await
    }

    /// The layers of project `project_id`, by key.
    pub async fn layers(&self, project_id: i64) -> Result<Vec<LayerRecord>> {
        list_layers(&mut *self.conn().await?, project_id).await
    }
}
