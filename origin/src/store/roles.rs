//! Custom roles (an organization's named permission sets), role bindings
//! (a role granted to a user or a team at a scope) and what they add up
//! to: a caller's [`Grants`].
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use bunting_origin::store::{Actor, Permission, RoleSpec, Scope, Store, Subject};
//! let store = Store::open("sqlite::memory:").await.unwrap();
//! let root = Actor::new("admin");
//! let org = store.create_org(&root, "acme", "Acme").await.unwrap();
//! let admin = root.clone().in_org(org.id);
//! let oncall = RoleSpec { key: "oncall".into(), name: "On call".into(),
//!     permissions: vec![Permission::Read, Permission::Killswitch] };
//! store.create_role(&admin, org.id, &oncall).await.unwrap();
//! let bob = store.sign_in("bob@example.com", "Bob", &[]).await.unwrap();
//! store.create_binding(&admin, org.id, &Subject::User("bob@example.com".into()), "oncall", Scope::Org { org: org.id }).await.unwrap();
//! let grants = store.user_grants(&bob).await.unwrap();
//! assert!(grants.allows(Permission::Killswitch, &Scope::Org { org: org.id }));
//! assert!(!grants.allows(Permission::FlagsWrite, &Scope::Org { org: org.id }));
//! # });
//! ```

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use utoipa::ToSchema;

use super::people::{User, get_team, normalize_email, user_by_email};
use super::rows::{bad_json, not_found, now, to_json};
use super::write::check_version;
use super::{
    Actor, Grant, Grants, Permission, Permissions, Problem, Result, Role, Scope, Store, StoreError,
};
use crate::model::key::check_key;

/// A custom role, as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleSpec {
    /// Key, unique in the organization; not a built-in role's name.
    pub key: String,
    /// Display name.
    pub name: String,
    /// What it may do.
    pub permissions: Vec<Permission>,
}

/// A role: built-in, or an organization's custom role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleRecord {
    /// Row id (0 for the built-in roles).
    pub id: i64,
    /// Key: `viewer`, `editor`, `publisher`, `admin`, or a custom role's.
    pub key: String,
    /// Display name.
    pub name: String,
    /// What it may do.
    pub permissions: Vec<Permission>,
    /// Whether it is one of the four built-in roles (which cannot change).
    pub built_in: bool,
    /// Version (optimistic concurrency; 1 for the built-in roles).
    pub version: i64,
}

impl RoleRecord {
    fn built_in(role: Role) -> RoleRecord {
        let name = role.as_str();
        RoleRecord {
            id: 0,
            key: name.into(),
            name: format!("{}{}", name[..1].to_ascii_uppercase(), &name[1..]),
            permissions: role.permissions().list(),
            built_in: true,
            version: 1,
        }
    }
}

/// Who a role is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A user, by e-mail.
    User(String),
    /// A team of the organization, by key.
    Team(String),
}

/// A role granted to a user or a team at a scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Binding {
    /// Row id.
    pub id: i64,
    /// `user:<email>` or `team:<key>`.
    pub subject: String,
    /// The role's key.
    pub role: String,
    /// The project it is limited to, if any.
    pub project: Option<String>,
    /// The environment (of `project`) it is limited to, if any.
    pub environment: Option<String>,
    /// When it was made.
    pub created_at: String,
    /// Who made it.
    pub created_by: String,
}

fn check_role(spec: &RoleSpec) -> Result<()> {
    let mut problems = Vec::new();
    check_key(&mut problems, &spec.key);
    if spec.key.parse::<Role>().is_ok() {
        problems.push(Problem::new(
            "key",
            format!("{:?} is a built-in role", spec.key),
        ));
    }
    if spec.name.trim().is_empty() {
        problems.push(Problem::new("name", "a role needs a name"));
    }
    if spec.permissions.is_empty() {
        problems.push(Problem::new(
            "permissions",
            "a role needs at least one permission",
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Invalid(problems))
    }
}

fn role_row(r: &AnyRow) -> Result<RoleRecord> {
    let perms: String = r.try_get("permissions")?;
    let names: Vec<String> = serde_json::from_str(&perms).map_err(bad_json)?;
    let permissions = Permissions::parse(&names)
        .map_err(|e| StoreError::Database(sqlx::Error::Decode(e.join("; ").into())))?;
    Ok(RoleRecord {
        id: r.try_get("id")?,
        key: r.try_get("key")?,
        name: r.try_get("name")?,
        permissions: permissions.list(),
        built_in: false,
        version: r.try_get("version")?,
    })
}

async fn get_role(c: &mut AnyConnection, id: i64) -> Result<RoleRecord> {
    let r = sqlx::query("SELECT * FROM roles WHERE id = $1")
        .bind(id)
        .fetch_optional(c)
        .await?;
    role_row(&r.ok_or_else(|| not_found("role", id))?)
}

/// What role `key` of organization `org_id` may do; `None` when there is
/// no such role.
pub(super) async fn role_permissions(
    c: &mut AnyConnection,
    org_id: i64,
    key: &str,
) -> Result<Option<Permissions>> {
    if let Ok(role) = key.parse::<Role>() {
        return Ok(Some(role.permissions()));
    }
    let r = sqlx::query("SELECT * FROM roles WHERE org_id = $1 AND key = $2")
        .bind(org_id)
        .bind(key)
        .fetch_optional(c)
        .await?;
    r.map(|r| Ok(Permissions::of(&role_row(&r)?.permissions)))
        .transpose()
}

/// The scope of a row with `org_id`, `project_id` and `environment_id`.
pub(super) fn row_scope(r: &AnyRow) -> Result<Scope> {
    let org: i64 = r.try_get("org_id")?;
    let project: Option<i64> = r.try_get("project_id")?;
    let environment: Option<i64> = r.try_get("environment_id")?;
    Ok(match (project, environment) {
        (Some(project), Some(environment)) => Scope::Environment {
            org,
            project,
            environment,
        },
        (Some(project), None) => Scope::Project { org, project },
        _ => Scope::Org { org },
    })
}

fn scope_ids(scope: Scope) -> (Option<i64>, Option<i64>) {
    match scope {
        Scope::Org { .. } => (None, None),
        Scope::Project { project, .. } => (Some(project), None),
        Scope::Environment {
            project,
            environment,
            ..
        } => (Some(project), Some(environment)),
    }
}

const BINDING_SELECT: &str = "SELECT b.*, p.key AS project_key, e.key AS environment_key, \
     CASE WHEN b.subject_kind = 'user' THEN (SELECT 'user:' || u.email FROM users u WHERE u.id = b.subject_id) \
          ELSE (SELECT 'team:' || t.key FROM teams t WHERE t.id = b.subject_id) END AS subject \
     FROM role_bindings b LEFT JOIN projects p ON p.id = b.project_id \
     LEFT JOIN environments e ON e.id = b.environment_id";

fn binding_row(r: &AnyRow) -> Result<Binding> {
    Ok(Binding {
        id: r.try_get("id")?,
        subject: r.try_get("subject")?,
        role: r.try_get("role")?,
        project: r.try_get("project_key")?,
        environment: r.try_get("environment_key")?,
        created_at: r.try_get("created_at")?,
        created_by: r.try_get("created_by")?,
    })
}

async fn get_binding(c: &mut AnyConnection, id: i64) -> Result<(i64, Binding)> {
    let r = sqlx::query(&format!("{BINDING_SELECT} WHERE b.id = $1"))
        .bind(id)
        .fetch_optional(c)
        .await?;
    let r = r.ok_or_else(|| not_found("binding", id))?;
    Ok((r.try_get("org_id")?, binding_row(&r)?))
}

impl Store {
    /// The roles of organization `org_id`: the built-in ones, then its
    /// custom roles by key.
    pub async fn roles(&self, org_id: i64) -> Result<Vec<RoleRecord>> {
        let rows = sqlx::query("SELECT * FROM roles WHERE org_id = $1 ORDER BY key")
            .bind(org_id)
            .fetch_all(&self.pool)
            .await?;
        let mut out: Vec<RoleRecord> = Role::ALL.into_iter().map(RoleRecord::built_in).collect();
        for r in &rows {
            out.push(role_row(r)?);
        }
        Ok(out)
    }

    /// Role `key` of organization `org_id` (built-in or custom).
    pub async fn role_by_key(&self, org_id: i64, key: &str) -> Result<RoleRecord> {
        if let Ok(role) = key.parse::<Role>() {
            return Ok(RoleRecord::built_in(role));
        }
        let r = sqlx::query("SELECT * FROM roles WHERE org_id = $1 AND key = $2")
            .bind(org_id)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        role_row(&r.ok_or_else(|| not_found("role", key))?)
    }

    /// What role `key` of organization `org_id` may do, if it exists.
    pub async fn role_permissions(&self, org_id: i64, key: &str) -> Result<Option<Permissions>> {
        role_permissions(&mut *self.conn().await?, org_id, key).await
    }

    /// Makes a custom role.
    pub async fn create_role(
        &self,
        actor: &Actor,
        org_id: i64,
        spec: &RoleSpec,
    ) -> Result<RoleRecord> {
        check_role(spec)?;
        let perms = Permissions::of(&spec.permissions);
        self.write(actor, async |w| {
            let r = sqlx::query(
                "INSERT INTO roles (org_id, key, name, permissions) VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(org_id)
            .bind(&spec.key)
            .bind(&spec.name)
            .bind(to_json(&perms.names()))
            .fetch_one(w.c())
            .await
            .map_err(StoreError::on_write("role", &spec.key))?;
            let role = get_role(w.c(), r.try_get("id")?).await?;
            w.audit("create", "role", (role.id, &role.key), None::<&()>, Some(&role))
                .await?;
            Ok(role)
        })
        .await
    }

    /// Replaces custom role `id` (at version `expected`); its key stays.
    /// Everyone it is bound to gets the new permissions at once.
    pub async fn update_role(
        &self,
        actor: &Actor,
        id: i64,
        expected: i64,
        spec: &RoleSpec,
    ) -> Result<RoleRecord> {
        check_role(spec)?;
        let perms = Permissions::of(&spec.permissions);
        self.write(actor, async |w| {
            let before = get_role(w.c(), id).await?;
            check_version(before.version, expected)?;
            if before.key != spec.key {
                return Err(StoreError::Invalid(vec![Problem::new(
                    "key",
                    format!("a role's key cannot change (it is {:?})", before.key),
                )]));
            }
            sqlx::query(
                "UPDATE roles SET name = $1, permissions = $2, version = version + 1 WHERE id = $3",
            )
            .bind(&spec.name)
            .bind(to_json(&perms.names()))
            .bind(id)
            .execute(w.c())
            .await?;
            let after = get_role(w.c(), id).await?;
            w.audit(
                "update",
                "role",
                (id, &after.key),
                Some(&before),
                Some(&after),
            )
            .await?;
            Ok(after)
        })
        .await
    }

    /// Deletes custom role `id` (at version `expected`). Refused while a
    /// binding or a token uses it (the error names how many).
    pub async fn delete_role(
        &self,
        actor: &Actor,
        org_id: i64,
        id: i64,
        expected: i64,
    ) -> Result<()> {
        self.write(actor, async |w| {
            let before = get_role(w.c(), id).await?;
            check_version(before.version, expected)?;
            let used = sqlx::query(
                "SELECT (SELECT COUNT(*) FROM role_bindings WHERE org_id = $1 AND role = $2) + \
                        (SELECT COUNT(*) FROM api_tokens WHERE org_id = $1 AND role = $2 AND revoked_at IS NULL) AS n",
            )
            .bind(org_id)
            .bind(&before.key)
            .fetch_one(w.c())
            .await?;
            let n: i64 = used.try_get("n")?;
            if n > 0 {
                return Err(StoreError::Invalid(vec![Problem::new(
                    "role",
                    format!("role {:?} is still granted by {n} binding(s) or token(s); remove them first", before.key),
                )]));
            }
            sqlx::query("DELETE FROM roles WHERE id = $1")
                .bind(id)
                .execute(w.c())
                .await?;
            w.audit("delete", "role", (id, &before.key), Some(&before), None::<&()>)
                .await
        })
        .await
    }

    /// Grants role `role` to `subject` at `scope` (in organization
    /// `org_id`). A user not yet known is created (matched by e-mail at its
    /// first sign-in).
    pub async fn create_binding(
        &self,
        actor: &Actor,
        org_id: i64,
        subject: &Subject,
        role: &str,
        scope: Scope,
    ) -> Result<Binding> {
        self.write(actor, async |w| {
            let mut problems = Vec::new();
            if role_permissions(w.c(), org_id, role).await?.is_none() {
                problems.push(Problem::new("role", format!("no role {role:?} in this organization")));
            }
            let subject_row = match subject {
                Subject::User(email) => match normalize_email("user", email) {
                    Ok(e) => Some(("user", user_by_email(w.c(), &e).await?.id)),
                    Err(p) => {
                        problems.push(*p);
                        None
                    }
                },
                Subject::Team(key) => {
                    let t = sqlx::query("SELECT id FROM teams WHERE org_id = $1 AND key = $2")
                        .bind(org_id)
                        .bind(key)
                        .fetch_optional(w.c())
                        .await?;
                    match t {
                        Some(t) => Some(("team", t.try_get::<i64, _>("id")?)),
                        None => {
                            problems.push(Problem::new("team", format!("no team {key:?} in this organization")));
                            None
                        }
                    }
                }
            };
            let Some((kind, subject_id)) = subject_row.filter(|_| problems.is_empty()) else {
                return Err(StoreError::Invalid(problems));
            };
            let (project, environment) = scope_ids(scope);
            let r = sqlx::query(
                "INSERT INTO role_bindings (org_id, subject_kind, subject_id, role, project_id, environment_id, \
                 created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            )
            .bind(org_id)
            .bind(kind)
            .bind(subject_id)
            .bind(role)
            .bind(project)
            .bind(environment)
            .bind(now())
            .bind(&actor.name)
            .fetch_one(w.c())
            .await?;
            let (_, b) = get_binding(w.c(), r.try_get("id")?).await?;
            w.audit("create", "roleBinding", (b.id, &b.subject), None::<&()>, Some(&b))
                .await?;
            Ok(b)
        })
        .await
    }

    /// The role bindings of organization `org_id`, by id.
    pub async fn bindings(&self, org_id: i64) -> Result<Vec<Binding>> {
        let rows = sqlx::query(&format!(
            "{BINDING_SELECT} WHERE b.org_id = $1 ORDER BY b.id"
        ))
        .bind(org_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(binding_row).collect()
    }

    /// Binding `id` of organization `org_id`.
    pub async fn binding(&self, org_id: i64, id: i64) -> Result<Binding> {
        match get_binding(&mut *self.conn().await?, id).await? {
            (org, b) if org == org_id => Ok(b),
            _ => Err(not_found("binding", id)),
        }
    }

    /// Removes binding `id` of organization `org_id`; it stops granting at
    /// once.
    pub async fn delete_binding(&self, actor: &Actor, org_id: i64, id: i64) -> Result<Binding> {
        self.write(actor, async |w| {
            let (org, before) = get_binding(w.c(), id).await?;
            if org != org_id {
                return Err(not_found("binding", id));
            }
            sqlx::query("DELETE FROM role_bindings WHERE id = $1")
                .bind(id)
                .execute(w.c())
                .await?;
            w.audit(
                "delete",
                "roleBinding",
                (id, &before.subject),
                Some(&before),
                None::<&()>,
            )
            .await?;
            Ok(before)
        })
        .await
    }

    /// What `user` may do: everything for the instance's administrator,
    /// else the roles bound to the user and to the user's teams.
    pub async fn user_grants(&self, user: &User) -> Result<Grants> {
        if user.is_admin {
            return Ok(Grants::everything());
        }
        let teams = self.teams_of(user).await?;
        let mut c = self.conn().await?;
        // Team ids are integers from the database: safe to inline.
        let team_ids: Vec<String> = teams.iter().map(i64::to_string).collect();
        let team_clause = if team_ids.is_empty() {
            String::new()
        } else {
            format!(
                " OR (b.subject_kind = 'team' AND b.subject_id IN ({}))",
                team_ids.join(",")
            )
        };
        let rows = sqlx::query(&format!(
            "SELECT b.org_id, b.project_id, b.environment_id, b.role, \
             r.permissions FROM role_bindings b LEFT JOIN roles r ON r.org_id = b.org_id AND r.key = b.role \
             WHERE (b.subject_kind = 'user' AND b.subject_id = $1){team_clause}"
        ))
        .bind(user.id)
        .fetch_all(&mut *c)
        .await?;
        let mut grants = Vec::new();
        for r in &rows {
            let role: String = r.try_get("role")?;
            let permissions = match role.parse::<Role>() {
                Ok(builtin) => builtin.permissions(),
                Err(_) => {
                    let custom: Option<String> = r.try_get("permissions")?;
                    let names: Vec<String> = match custom {
                        Some(p) => serde_json::from_str(&p).map_err(bad_json)?,
                        None => continue, // a deleted custom role grants nothing
                    };
                    Permissions::parse(&names).unwrap_or_default()
                }
            };
            grants.push(Grant {
                scope: row_scope(r)?,
                permissions,
            });
        }
        Ok(Grants::of(grants))
    }

    /// Team `id`.
    pub async fn team(&self, id: i64) -> Result<super::Team> {
        get_team(&mut *self.conn().await?, id).await
    }
}
