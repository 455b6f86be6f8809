//! Organizations, projects and environments.

use sqlx::{AnyConnection, Row};

use super::keys::valid_scope_key;
use super::rows::{
    get_config, get_env, get_org, get_project, list_envs, list_flags, list_layers, list_projects,
    list_segments, org_row,
};
use super::write::{Entity, Write, check_version};
use super::{Actor, Environment, Organization, Project, Result, Store, StoreError};

impl Write<'_> {
    async fn insert_named(
        &mut self,
        entity: &'static str,
        sql: &str,
        parent: Option<i64>,
        key: &str,
        name: &str,
    ) -> Result<i64> {
        valid_scope_key(key)?;
        let mut q = sqlx::query(sql);
        if let Some(p) = parent {
            q = q.bind(p);
        }
        let row = q
            .bind(key)
            .bind(name)
            .fetch_one(self.c())
            .await
            .map_err(StoreError::on_write(entity, key))?;
        Ok(row.try_get("id")?)
    }

    pub(super) async fn create_environment(
        &mut self,
        project_id: i64,
        key: &str,
        name: &str,
    ) -> Result<Environment> {
        get_project(self.c(), project_id).await?;
        let id = self
            .insert_named(
                "environment",
                "INSERT INTO environments (project_id, key, name) VALUES ($1, $2, $3) RETURNING id",
                Some(project_id),
                key,
                name,
            )
            .await?;
        for f in list_flags(self.c(), project_id).await? {
            self.insert_default_config(&f, id).await?;
        }
        let env = get_env(self.c(), id).await?;
        self.audit("create", "environment", (id, key), None::<&()>, Some(&env))
            .await?;
        self.envs.insert(id);
        Ok(env)
    }

    /// Audits the deletion of everything an environment holds (its flag
    /// configurations and segments), which the database deletes by cascade.
    async fn audit_env_contents(&mut self, env_id: i64) -> Result<()> {
        let env = get_env(self.c(), env_id).await?;
        for f in list_flags(self.c(), env.project_id).await? {
            if let Ok(c) = get_config(self.c(), f.id, env_id).await {
                let key = format!("{}/{}", f.spec.key, env.key);
                self.audit("delete", "flagConfig", (f.id, &key), Some(&c), None::<&()>)
                    .await?;
            }
        }
        for seg in list_segments(self.c(), env_id).await? {
            self.audit(
                "delete",
                "segment",
                (seg.id, &seg.segment.key),
                Some(&seg),
                None::<&()>,
            )
            .await?;
        }
        Ok(())
    }

    /// Audits the deletion of everything a project holds (environments with
    /// their contents, flags, layers).
    async fn audit_project_contents(&mut self, project_id: i64) -> Result<()> {
        for e in list_envs(self.c(), project_id).await? {
            self.audit_env_contents(e.id).await?;
            self.audit(
                "delete",
                "environment",
                (e.id, &e.key),
                Some(&e),
                None::<&()>,
            )
            .await?;
        }
        for f in list_flags(self.c(), project_id).await? {
            self.audit("delete", "flag", (f.id, &f.spec.key), Some(&f), None::<&()>)
                .await?;
        }
        for l in list_layers(self.c(), project_id).await? {
            self.audit(
                "delete",
                "layer",
                (l.id, &l.layer.key),
                Some(&l),
                None::<&()>,
            )
            .await?;
        }
        Ok(())
    }
}

/// An entity with a display name that [`Store`] renames and deletes the
/// same way: organizations, projects, environments.
trait Named: Entity {
    /// Audits the deletion of everything row `id` holds, which the
    /// database deletes by cascade.
    async fn audit_contents(w: &mut Write<'_>, id: i64) -> Result<()>;
}

impl Entity for Organization {
    const TABLE: &'static str = "organizations";
    const ENTITY: &'static str = "organization";
    async fn get(c: &mut AnyConnection, id: i64) -> Result<Self> {
        get_org(c, id).await
    }
    fn key_version(&self) -> (&str, i64) {
        (&self.key, self.version)
    }
}

impl Named for Organization {
    async fn audit_contents(w: &mut Write<'_>, id: i64) -> Result<()> {
        for p in list_projects(w.c(), id).await? {
            w.audit_project_contents(p.id).await?;
            w.audit("delete", "project", (p.id, &p.key), Some(&p), None::<&()>)
                .await?;
        }
        for t in w.org_tokens(id).await? {
            w.audit("delete", "token", (t.id, &t.name), Some(&t), None::<&()>)
                .await?;
        }
        Ok(())
    }
}

impl Entity for Project {
    const TABLE: &'static str = "projects";
    const ENTITY: &'static str = "project";
    async fn get(c: &mut AnyConnection, id: i64) -> Result<Self> {
        get_project(c, id).await
    }
    fn key_version(&self) -> (&str, i64) {
        (&self.key, self.version)
    }
}

impl Named for Project {
    async fn audit_contents(w: &mut Write<'_>, id: i64) -> Result<()> {
        w.audit_project_contents(id).await
    }
}

impl Entity for Environment {
    const TABLE: &'static str = "environments";
    const ENTITY: &'static str = "environment";
    async fn get(c: &mut AnyConnection, id: i64) -> Result<Self> {
        get_env(c, id).await
    }
    fn key_version(&self) -> (&str, i64) {
        (&self.key, self.version)
    }
}

impl Named for Environment {
    async fn audit_contents(w: &mut Write<'_>, id: i64) -> Result<()> {
        w.audit_env_contents(id).await
    }
}

impl Store {
    /// Renames `T` row `id` (at version `expected`) and audits it.
    async fn rename<T: Named>(
        &self,
        actor: &Actor,
        id: i64,
        expected: i64,
        name: &str,
    ) -> Result<T> {
        let mut w = self.begin(actor).await?;
        let before = T::get(w.c(), id).await?;
        let (key, version) = before.key_version();
        check_version(version, expected)?;
        sqlx::query(&format!(
            "UPDATE {} SET name = $1, version = version + 1 WHERE id = $2",
            T::TABLE
        ))
        .bind(name)
        .bind(id)
        .execute(w.c())
        .await?;
        let after = T::get(w.c(), id).await?;
        let key = key.to_string();
        w.audit("update", T::ENTITY, (id, &key), Some(&before), Some(&after))
            .await?;
        w.commit().await?;
        Ok(after)
    }

    /// Deletes `T` row `id` (at version `expected`) with everything in it,
    /// auditing each.
    async fn delete_named<T: Named>(&self, actor: &Actor, id: i64, expected: i64) -> Result<()> {
        let mut w = self.begin(actor).await?;
        let before = T::get(w.c(), id).await?;
        let (key, version) = before.key_version();
        let key = key.to_string();
        check_version(version, expected)?;
        T::audit_contents(&mut w, id).await?;
        w.delete(T::ENTITY, T::TABLE, id, expected, (version, key, before))
            .await?;
        w.commit().await
    }

    // ---- organizations ----

    /// Creates an organization. Fails with [`StoreError::Duplicate`] when the
    /// key is taken.
    pub async fn create_org(&self, actor: &Actor, key: &str, name: &str) -> Result<Organization> {
        let mut w = self.begin(actor).await?;
        let id = w
            .insert_named(
                "organization",
                "INSERT INTO organizations (key, name) VALUES ($1, $2) RETURNING id",
                None,
                key,
                name,
            )
            .await?;
        let org = get_org(w.c(), id).await?;
        w.audit("create", "organization", (id, key), None::<&()>, Some(&org))
            .await?;
        w.commit().await?;
        Ok(org)
    }

    /// The organization `id`.
    pub async fn org(&self, id: i64) -> Result<Organization> {
        get_org(&mut *self.conn().await?, id).await
    }

    /// Every organization, by key.
    pub async fn orgs(&self) -> Result<Vec<Organization>> {
        let rows = sqlx::query("SELECT * FROM organizations ORDER BY key")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(org_row).collect()
    }

    /// Renames organization `id`, which must be at version `expected`.
    pub async fn rename_org(
        &self,
        actor: &Actor,
        id: i64,
        expected: i64,
        name: &str,
    ) -> Result<Organization> {
        self.rename(actor, id, expected, name).await
    }

    /// Deletes organization `id` (at version `expected`) with everything in it.
    pub async fn delete_org(&self, actor: &Actor, id: i64, expected: i64) -> Result<()> {
        self.delete_named::<Organization>(actor, id, expected).await
    }

    // ---- projects ----

    /// Creates a project in organization `org_id`.
    pub async fn create_project(
        &self,
        actor: &Actor,
        org_id: i64,
        key: &str,
        name: &str,
    ) -> Result<Project> {
        let mut w = self.begin(actor).await?;
        get_org(w.c(), org_id).await?;
        let id = w
            .insert_named(
                "project",
                "INSERT INTO projects (org_id, key, name) VALUES ($1, $2, $3) RETURNING id",
                Some(org_id),
                key,
                name,
            )
            .await?;
        let p = get_project(w.c(), id).await?;
        w.audit("create", "project", (id, key), None::<&()>, Some(&p))
            .await?;
        w.commit().await?;
        Ok(p)
    }

    /// The project `id`.
    pub async fn project(&self, id: i64) -> Result<Project> {
        get_project(&mut *self.conn().await?, id).await
    }

    /// The projects of organization `org_id`, by key.
    pub async fn projects(&self, org_id: i64) -> Result<Vec<Project>> {
        list_projects(&mut *self.conn().await?, org_id).await
    }

    /// Renames project `id`, which must be at version `expected`.
    pub async fn rename_project(
        &self,
        actor: &Actor,
        id: i64,
        expected: i64,
        name: &str,
    ) -> Result<Project> {
        self.rename(actor, id, expected, name).await
    }

    /// Deletes project `id` (at version `expected`) with everything in it.
    pub async fn delete_project(&self, actor: &Actor, id: i64, expected: i64) -> Result<()> {
        self.delete_named::<Project>(actor, id, expected).await
    }

    // ---- environments ----

    /// Creates an environment in project `project_id`; every flag of the
    /// project gets a default (off) configuration in it.
    pub async fn create_environment(
        &self,
        actor: &Actor,
        project_id: i64,
        key: &str,
        name: &str,
    ) -> Result<Environment> {
        let mut w = self.begin(actor).await?;
        let env = w.create_environment(project_id, key, name).await?;
        w.commit().await?;
        self.environment(env.id).await
    }

    /// The environment `id`.
    pub async fn environment(&self, id: i64) -> Result<Environment> {
        get_env(&mut *self.conn().await?, id).await
    }

    /// The environments of project `project_id`, by key.
    pub async fn environments(&self, project_id: i64) -> Result<Vec<Environment>> {
        list_envs(&mut *self.conn().await?, project_id).await
    }

    /// Renames environment `id`, which must be at version `expected`.
    pub async fn rename_environment(
        &self,
        actor: &Actor,
        id: i64,
        expected: i64,
        name: &str,
    ) -> Result<Environment> {
        self.rename(actor, id, expected, name).await
    }

    /// Deletes environment `id` (at version `expected`) with its
    /// configurations and segments.
    pub async fn delete_environment(&self, actor: &Actor, id: i64, expected: i64) -> Result<()> {
        self.delete_named::<Environment>(actor, id, expected).await
    }
}
