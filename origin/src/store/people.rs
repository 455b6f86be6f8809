//! People and teams: users (one per e-mail across organizations) and an
//! organization's teams, whose members are managed in bunting, mapped from
//! the identity provider's groups claim, or both.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use bunting_origin::store::{Actor, Store, TeamSpec};
//! let store = Store::open("sqlite::memory:").await.unwrap();
//! let root = Actor::new("admin");
//! let org = store.create_org(&root, "acme", "Acme").await.unwrap();
//! let alice = store.sign_in("Alice@Example.com", "Alice", &["sre".into()]).await.unwrap();
//! assert_eq!(alice.email, "alice@example.com");
//! let spec = TeamSpec { key: "sre".into(), name: "SRE".into(), idp_group: Some("sre".into()), members: vec![] };
//! store.create_team(&root.clone().in_org(org.id), org.id, &spec).await.unwrap();
//! let teams = store.teams_of(&alice).await.unwrap();
//! assert_eq!(teams.len(), 1);
//! # });
//! ```

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use utoipa::ToSchema;

use super::rows::{bad_json, not_found, now, to_json};
use super::write::check_version;
use super::{Actor, Problem, Result, Store, StoreError};
use crate::model::key::check_key;

/// A person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Row id.
    pub id: i64,
    /// E-mail, lowercase: the user's identity.
    pub email: String,
    /// Display name (from the identity provider).
    pub name: String,
    /// The instance's administrator (acts in every organization).
    pub is_admin: bool,
    /// The identity provider's groups at the last sign-in.
    pub idp_groups: Vec<String>,
    /// When the user was first known.
    pub created_at: String,
    /// The last sign-in.
    pub last_login_at: Option<String>,
}

impl User {
    /// The audit-log name: `user:<email>`.
    pub fn actor_name(&self) -> String {
        format!("user:{}", self.email)
    }
}

/// A team of an organization, as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TeamSpec {
    /// Key, unique in the organization (`A-Z a-z 0-9 - _ .`).
    pub key: String,
    /// Display name.
    pub name: String,
    /// Everyone whose identity-provider groups claim holds this group is a
    /// member (evaluated at each sign-in).
    #[serde(default)]
    pub idp_group: Option<String>,
    /// Members managed in bunting, by e-mail (users not yet known are
    /// created, and match at their first sign-in).
    #[serde(default)]
    pub members: Vec<String>,
}

/// A stored team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Team {
    /// Row id.
    pub id: i64,
    /// Its organization.
    pub org_id: i64,
    /// Key.
    pub key: String,
    /// Display name.
    pub name: String,
    /// The identity-provider group mapped to it.
    pub idp_group: Option<String>,
    /// Members managed in bunting (e-mails, sorted).
    pub members: Vec<String>,
    /// Version (optimistic concurrency).
    pub version: i64,
}

/// The longest e-mail address (RFC 5321's path limit).
const MAX_EMAIL: usize = 254;

/// `email` lowercased, or the problem with it (at `path`), boxed.
pub(super) fn normalize_email(
    path: &str,
    email: &str,
) -> std::result::Result<String, Box<Problem>> {
    let e = email.trim().to_ascii_lowercase();
    let ok = e.len() <= MAX_EMAIL
        && e.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        })
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(e)
    } else {
        Err(Box::new(Problem::new(
            path,
            format!(
                "{email:?} is not an e-mail address (local@domain, at most {MAX_EMAIL} characters)"
            ),
        )))
    }
}

fn user_row(r: &AnyRow) -> Result<User> {
    let groups: String = r.try_get("idp_groups")?;
    let is_admin: i64 = r.try_get("is_admin")?;
    Ok(User {
        id: r.try_get("id")?,
        email: r.try_get("email")?,
        name: r.try_get("name")?,
        is_admin: is_admin != 0,
        idp_groups: serde_json::from_str(&groups).map_err(bad_json)?,
        created_at: r.try_get("created_at")?,
        last_login_at: r.try_get("last_login_at")?,
    })
}

pub(super) async fn get_user(c: &mut AnyConnection, id: i64) -> Result<User> {
    let r = sqlx::query("SELECT * FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(c)
        .await?;
    user_row(&r.ok_or_else(|| not_found("user", id))?)
}

/// The user of `email` (normalized), created if unknown.
pub(super) async fn user_by_email(c: &mut AnyConnection, email: &str) -> Result<User> {
    let found = sqlx::query("SELECT * FROM users WHERE email = $1")
        .bind(email)
        .fetch_optional(&mut *c)
        .await?;
    if let Some(r) = found {
        return user_row(&r);
    }
    let r = sqlx::query("INSERT INTO users (email, created_at) VALUES ($1, $2) RETURNING id")
        .bind(email)
        .bind(now())
        .fetch_one(&mut *c)
        .await?;
    get_user(c, r.try_get("id")?).await
}

async fn team_members(c: &mut AnyConnection, team_id: i64) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT u.email FROM team_members m JOIN users u ON u.id = m.user_id \
         WHERE m.team_id = $1 ORDER BY u.email",
    )
    .bind(team_id)
    .fetch_all(c)
    .await?;
    rows.iter()
        .map(|r| Ok(r.try_get("email")?))
        .collect::<Result<_>>()
}

async fn team_row(c: &mut AnyConnection, r: &AnyRow) -> Result<Team> {
    let id: i64 = r.try_get("id")?;
    Ok(Team {
        id,
        org_id: r.try_get("org_id")?,
        key: r.try_get("key")?,
        name: r.try_get("name")?,
        idp_group: r.try_get("idp_group")?,
        members: team_members(c, id).await?,
        version: r.try_get("version")?,
    })
}

pub(super) async fn get_team(c: &mut AnyConnection, id: i64) -> Result<Team> {
    let r = sqlx::query("SELECT * FROM teams WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *c)
        .await?;
    team_row(c, &r.ok_or_else(|| not_found("team", id))?).await
}

/// Checks a team spec; the error names every problem.
fn check_team(spec: &TeamSpec) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    check_key(&mut problems, &spec.key);
    if spec.name.trim().is_empty() {
        problems.push(Problem::new("name", "a team needs a name"));
    }
    if spec
        .idp_group
        .as_ref()
        .is_some_and(|g| g.trim().is_empty() || g.len() > 256)
    {
        problems.push(Problem::new("idpGroup", "a group name is 1–256 characters"));
    }
    let mut members = Vec::new();
    for (i, m) in spec.members.iter().enumerate() {
        match normalize_email(&format!("members[{i}]"), m) {
            Ok(e) => members.push(e),
            Err(p) => problems.push(*p),
        }
    }
    members.sort();
    members.dedup();
    if problems.is_empty() {
        Ok(members)
    } else {
        Err(StoreError::Invalid(problems))
    }
}

impl Store {
    /// Records a sign-in by `email` (normalized; created if unknown) with
    /// the identity provider's `name` and `groups`, and returns the user.
    pub async fn sign_in(&self, email: &str, name: &str, groups: &[String]) -> Result<User> {
        let email = normalize_email("email", email).map_err(|p| StoreError::Invalid(vec![*p]))?;
        let mut c = self.conn().await?;
        let user = user_by_email(&mut c, &email).await?;
        sqlx::query(
            "UPDATE users SET name = $1, idp_groups = $2, last_login_at = $3 WHERE id = $4",
        )
        .bind(name)
        .bind(to_json(&groups))
        .bind(now())
        .bind(user.id)
        .execute(&mut *c)
        .await?;
        get_user(&mut c, user.id).await
    }

    /// The instance's administrator `email` (the bootstrap sign-in): made
    /// if unknown, marked administrator.
    pub async fn admin_user(&self, email: &str) -> Result<User> {
        let email = normalize_email("email", email).map_err(|p| StoreError::Invalid(vec![*p]))?;
        let mut c = self.conn().await?;
        let user = user_by_email(&mut c, &email).await?;
        sqlx::query("UPDATE users SET is_admin = 1, last_login_at = $1 WHERE id = $2")
            .bind(now())
            .bind(user.id)
            .execute(&mut *c)
            .await?;
        get_user(&mut c, user.id).await
    }

    /// User `id`.
    pub async fn user(&self, id: i64) -> Result<User> {
        get_user(&mut *self.conn().await?, id).await
    }

    /// The teams `user` belongs to, in every organization: as a managed
    /// member, or through an identity-provider group.
    pub async fn teams_of(&self, user: &User) -> Result<Vec<i64>> {
        let rows = sqlx::query(
            "SELECT id, idp_group, \
               (SELECT COUNT(*) FROM team_members m WHERE m.team_id = t.id AND m.user_id = $1) AS member \
             FROM teams t",
        )
        .bind(user.id)
        .fetch_all(&self.pool)
        .await?;
        let mut teams = Vec::new();
        for r in rows {
            let member: i64 = r.try_get("member")?;
            let group: Option<String> = r.try_get("idp_group")?;
            if member > 0 || group.is_some_and(|g| user.idp_groups.contains(&g)) {
                teams.push(r.try_get("id")?);
            }
        }
        Ok(teams)
    }

    /// Makes a team in organization `org_id`.
    pub async fn create_team(&self, actor: &Actor, org_id: i64, spec: &TeamSpec) -> Result<Team> {
        let members = check_team(spec)?;
        self.write(actor, async |w| {
            let r = sqlx::query(
                "INSERT INTO teams (org_id, key, name, idp_group) VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(org_id)
            .bind(&spec.key)
            .bind(&spec.name)
            .bind(&spec.idp_group)
            .fetch_one(w.c())
            .await
            .map_err(StoreError::on_write("team", &spec.key))?;
            let id: i64 = r.try_get("id")?;
            set_members(w.c(), id, &members).await?;
            let team = get_team(w.c(), id).await?;
            w.audit("create", "team", (id, &team.key), None::<&()>, Some(&team))
                .await?;
            Ok(team)
        })
        .await
    }

    /// Replaces team `id` (at version `expected`); its key stays.
    pub async fn update_team(
        &self,
        actor: &Actor,
        id: i64,
        expected: i64,
        spec: &TeamSpec,
    ) -> Result<Team> {
        let members = check_team(spec)?;
        self.write(actor, async |w| {
            let before = get_team(w.c(), id).await?;
            check_version(before.version, expected)?;
            if spec.key != before.key {
                return Err(StoreError::Invalid(vec![Problem::new(
                    "key",
                    format!("a team's key cannot change (it is {:?})", before.key),
                )]));
            }
            sqlx::query(
                "UPDATE teams SET name = $1, idp_group = $2, version = version + 1 WHERE id = $3",
            )
            .bind(&spec.name)
            .bind(&spec.idp_group)
            .bind(id)
            .execute(w.c())
            .await?;
            set_members(w.c(), id, &members).await?;
            let after = get_team(w.c(), id).await?;
            w.audit(
                "update",
                "team",
                (id, &after.key),
                Some(&before),
                Some(&after),
            )
            .await?;
            Ok(after)
        })
        .await
    }

    /// Deletes team `id` (at version `expected`) and its role bindings.
    pub async fn delete_team(&self, actor: &Actor, id: i64, expected: i64) -> Result<()> {
        self.write(actor, async |w| {
            let before = get_team(w.c(), id).await?;
            check_version(before.version, expected)?;
            sqlx::query(
                "DELETE FROM role_bindings WHERE subject_kind = 'team' AND subject_id = $1",
            )
            .bind(id)
            .execute(w.c())
            .await?;
            sqlx::query("DELETE FROM teams WHERE id = $1")
                .bind(id)
                .execute(w.c())
                .await?;
            w.audit(
                "delete",
                "team",
                (id, &before.key),
                Some(&before),
                None::<&()>,
            )
            .await
        })
        .await
    }

    /// Team `key` of organization `org_id`.
    pub async fn team_by_key(&self, org_id: i64, key: &str) -> Result<Team> {
        let mut c = self.conn().await?;
        let r = sqlx::query("SELECT * FROM teams WHERE org_id = $1 AND key = $2")
            .bind(org_id)
            .bind(key)
            .fetch_optional(&mut *c)
            .await?;
        team_row(&mut c, &r.ok_or_else(|| not_found("team", key))?).await
    }

    /// The teams of organization `org_id`, by key.
    pub async fn teams(&self, org_id: i64) -> Result<Vec<Team>> {
        let mut c = self.conn().await?;
        let rows = sqlx::query("SELECT * FROM teams WHERE org_id = $1 ORDER BY key")
            .bind(org_id)
            .fetch_all(&mut *c)
            .await?;
        let mut teams = Vec::with_capacity(rows.len());
        for r in &rows {
            teams.push(team_row(&mut c, r).await?);
        }
        Ok(teams)
    }
}

async fn set_members(c: &mut AnyConnection, team_id: i64, emails: &[String]) -> Result<()> {
    sqlx::query("DELETE FROM team_members WHERE team_id = $1")
        .bind(team_id)
        .execute(&mut *c)
        .await?;
    for e in emails {
        let user = user_by_email(c, e).await?;
        sqlx::query("INSERT INTO team_members (team_id, user_id) VALUES ($1, $2)")
            .bind(team_id)
            .bind(user.id)
            .execute(&mut *c)
            .await?;
    }
    Ok(())
}
