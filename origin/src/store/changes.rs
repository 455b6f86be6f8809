//! Change management: an environment's approval policy, change requests
//! (changes to flag configurations and segments held for review), their
//! reviews, and their application — at once, or at a scheduled time.
//!
//! A change request records, per change, the version of what it replaces
//! (its base). Applying re-checks every base in the same transaction that
//! applies the changes, audits them and bumps the snapshot exactly as a
//! direct write does; a stale base refuses the whole request
//! ([`StoreError::OutdatedChanges`]) until it is rebased.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use bunting_origin::store::{Actor, EnvChange, EnvPolicy, FlagSpec, NewChangeRequest, Store};
//! let store = Store::open("sqlite::memory:").await.unwrap();
//! let ana = Actor::new("user:ana@example.com");
//! let org = store.create_org(&ana, "acme", "Acme").await.unwrap();
//! let p = store.create_project(&ana, org.id, "web", "Web").await.unwrap();
//! let prod = store.create_environment(&ana, p.id, "production", "Production").await.unwrap();
//! store.create_flag(&ana, p.id, &FlagSpec::boolean("beta")).await.unwrap();
//! store.set_policy(&ana, prod.id, &EnvPolicy { required_approvals: 1, ..EnvPolicy::default() }).await.unwrap();
//! let mut config = store.flag_config(1, prod.id).await.unwrap().spec;
//! config.enabled = true;
//! let cr = store.open_change_request(&ana, "user:ana@example.com", prod.id, &NewChangeRequest {
//!     title: "turn beta on".into(), description: String::new(), apply_at: None,
//!     changes: vec![EnvChange::FlagConfig { flag: "beta".into(), config, base_version: None }],
//! }).await.unwrap();
//! assert_eq!(cr.status.as_str(), "open");
//! let bo = Actor::new("user:bo@example.com");
//! let cr = store.review(&bo, "user:bo@example.com", cr.id, true, "ok").await.unwrap();
//! assert_eq!(cr.status.as_str(), "approved");
//! let cr = store.apply_change_request(&bo, cr.id, None).await.unwrap();
//! assert!(store.flag_config(1, prod.id).await.unwrap().spec.enabled);
//! assert_eq!(cr.status.as_str(), "applied");
//! # });
//! ```

use bunting_core::model::Segment;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use utoipa::ToSchema;

use super::plan::{Change, ChangeKind, ChangeOp};
use super::rows::{
    bad_json, from_json, get_config, get_env, get_segment, not_found, now, to_json, unknown,
};
use super::write::{Write, check_version};
use super::{Actor, ConfigSpec, Problem, Result, SegmentRecord, Store, StoreError};

/// The most approvals a policy may ask for.
pub const MAX_APPROVALS: u32 = 10;

/// An environment's change policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvPolicy {
    /// Approvals a change needs before it applies (0: unprotected, writes
    /// go live at once; at most 10).
    #[schema(minimum = 0, maximum = 10)]
    pub required_approvals: u32,
    /// Who may approve, by role (someone holding at least that role's
    /// permissions on the environment); empty with no teams: anyone with
    /// `changes.approve` there.
    #[serde(default)]
    pub approver_roles: Vec<String>,
    /// Who may approve, by team.
    #[serde(default)]
    pub approver_teams: Vec<String>,
}

impl EnvPolicy {
    /// Whether writes to the environment need a change request.
    pub fn protected(&self) -> bool {
        self.required_approvals > 0
    }
}

/// One change of a change request, to one environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum EnvChange {
    /// Replaces a flag's configuration (the kill switch included).
    FlagConfig {
        /// The flag's key.
        flag: String,
        /// The new configuration.
        config: ConfigSpec,
        /// The configuration's version this replaces (filled in with the
        /// live one when the request is opened without it).
        #[serde(default)]
        base_version: Option<i64>,
    },
    /// Creates or replaces a segment.
    Segment {
        /// The segment.
        #[schema(value_type = Object)]
        segment: Segment,
        /// The version this replaces; 0: the segment must not exist yet.
        #[serde(default)]
        base_version: Option<i64>,
    },
    /// Deletes a segment.
    DeleteSegment {
        /// The segment's key.
        key: String,
        /// The version this deletes.
        #[serde(default)]
        base_version: Option<i64>,
    },
}

impl EnvChange {
    /// `flagConfig beta`, `segment beta-users`…
    pub fn describe(&self) -> String {
        match self {
            EnvChange::FlagConfig { flag, .. } => format!("flagConfig {flag}"),
            EnvChange::Segment { segment, .. } => format!("segment {}", segment.key),
            EnvChange::DeleteSegment { key, .. } => format!("delete segment {key}"),
        }
    }

    fn base(&self) -> Option<i64> {
        match self {
            EnvChange::FlagConfig { base_version, .. }
            | EnvChange::Segment { base_version, .. }
            | EnvChange::DeleteSegment { base_version, .. } => *base_version,
        }
    }

    fn set_base(&mut self, v: i64) {
        match self {
            EnvChange::FlagConfig { base_version, .. }
            | EnvChange::Segment { base_version, .. }
            | EnvChange::DeleteSegment { base_version, .. } => *base_version = Some(v),
        }
    }
}

impl EnvChange {
    /// The change of environment `env` that a plan's `change` makes (a
    /// flag configuration or a segment of `env`), to be held in a change
    /// request; `None` for any other change. Its base is left to the live
    /// version when the request is opened.
    ///
    /// ```
    /// use bunting_origin::store::plan::{Change, ChangeKind, ChangeOp};
    /// use bunting_origin::store::EnvChange;
    /// let c = Change { kind: ChangeKind::Segment, key: "staff".into(),
    ///     environment: Some("production".into()), op: ChangeOp::Delete,
    ///     before: None, after: None };
    /// assert_eq!(EnvChange::of_plan(&c, "production"),
    ///     Some(EnvChange::DeleteSegment { key: "staff".into(), base_version: None }));
    /// assert_eq!(EnvChange::of_plan(&c, "staging"), None);
    /// ```
    pub fn of_plan(change: &Change, env: &str) -> Option<EnvChange> {
        if change.environment.as_deref() != Some(env) {
            return None;
        }
        let after = change.after.clone();
        match (change.kind, change.op) {
            (ChangeKind::FlagConfig, _) => Some(EnvChange::FlagConfig {
                flag: change.key.clone(),
                config: serde_json::from_value(after?).ok()?,
                base_version: None,
            }),
            (ChangeKind::Segment, ChangeOp::Delete) => Some(EnvChange::DeleteSegment {
                key: change.key.clone(),
                base_version: None,
            }),
            (ChangeKind::Segment, _) => Some(EnvChange::Segment {
                segment: serde_json::from_value(after?).ok()?,
                base_version: None,
            }),
            _ => None,
        }
    }
}

/// Where a change request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChangeStatus {
    /// Waiting for approvals.
    Open,
    /// Approved: it may be applied (or applies at `applyAt`).
    Approved,
    /// Rejected by a reviewer.
    Rejected,
    /// Applied.
    Applied,
    /// Cancelled by its author or an administrator.
    Cancelled,
    /// Its scheduled application failed (`error` says why); it may be
    /// rebased and applied again.
    Failed,
}

impl ChangeStatus {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeStatus::Open => "open",
            ChangeStatus::Approved => "approved",
            ChangeStatus::Rejected => "rejected",
            ChangeStatus::Applied => "applied",
            ChangeStatus::Cancelled => "cancelled",
            ChangeStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<ChangeStatus> {
        [
            ChangeStatus::Open,
            ChangeStatus::Approved,
            ChangeStatus::Rejected,
            ChangeStatus::Applied,
            ChangeStatus::Cancelled,
            ChangeStatus::Failed,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
        .ok_or_else(|| unknown("change request status", s))
    }
}

/// A review: an approval, a rejection or a comment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Review {
    /// Who.
    pub reviewer: String,
    /// `approve`, `reject` or `comment`.
    pub verdict: String,
    /// What they said.
    pub comment: String,
    /// When.
    pub at: String,
}

/// One change next to what is live now.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeDiff {
    /// What the change touches (`flagConfig beta`).
    pub target: String,
    /// What is live now (none: it does not exist).
    #[schema(value_type = Option<Object>)]
    pub live: Option<Value>,
    /// What the change makes it (none: deleted).
    #[schema(value_type = Option<Object>)]
    pub proposed: Option<Value>,
    /// The live version (0: it does not exist).
    pub live_version: i64,
    /// The version the change was made against.
    pub base_version: i64,
    /// Whether what is live moved since: the request must be rebased.
    pub stale: bool,
}

/// A change request.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeRequest {
    /// Row id.
    pub id: i64,
    /// Its environment.
    pub environment_id: i64,
    /// A one-line summary.
    pub title: String,
    /// Why.
    pub description: String,
    /// Who opened it (`user:<email>`, `token:<id>` or `admin`).
    pub author: String,
    /// Where it is.
    pub status: ChangeStatus,
    /// The changes.
    pub changes: Vec<EnvChange>,
    /// Reviews, oldest first.
    pub reviews: Vec<Review>,
    /// Approvals counted (since the last rebase).
    pub approvals: u32,
    /// When it was opened.
    pub created_at: String,
    /// Its last change.
    pub updated_at: String,
    /// When it applies by itself once approved, if scheduled.
    pub apply_at: Option<String>,
    /// When it was applied.
    pub applied_at: Option<String>,
    /// Who applied it (`scheduler` for a scheduled application).
    pub applied_by: Option<String>,
    /// Why its scheduled application failed.
    pub error: Option<String>,
    /// Version (optimistic concurrency).
    pub version: i64,
}

/// A change request to open.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewChangeRequest {
    /// A one-line summary.
    pub title: String,
    /// Why.
    #[serde(default)]
    pub description: String,
    /// The changes (at least one).
    pub changes: Vec<EnvChange>,
    /// Apply by itself at this time (UTC, RFC 3339) once approved.
    #[serde(default)]
    pub apply_at: Option<String>,
}

/// `at` (RFC 3339) in the stored time format, or the problem.
pub fn parse_time(path: &str, at: &str) -> std::result::Result<String, Box<Problem>> {
    time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
        .map(super::rows::stored_time)
        .map_err(|e| {
            Box::new(Problem::new(
                path,
                format!("{at:?} is not an RFC 3339 time ({e})"),
            ))
        })
}

fn request_row(r: &AnyRow) -> Result<ChangeRequest> {
    let status: String = r.try_get("status")?;
    Ok(ChangeRequest {
        id: r.try_get("id")?,
        environment_id: r.try_get("environment_id")?,
        title: r.try_get("title")?,
        description: r.try_get("description")?,
        author: r.try_get("author")?,
        status: ChangeStatus::parse(&status)?,
        changes: from_json(r, "changes")?,
        reviews: Vec::new(),
        approvals: 0,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        apply_at: r.try_get("apply_at")?,
        applied_at: r.try_get("applied_at")?,
        applied_by: r.try_get("applied_by")?,
        error: r.try_get("error")?,
        version: r.try_get("version")?,
    })
}

async fn get_request(c: &mut AnyConnection, id: i64) -> Result<ChangeRequest> {
    let r = sqlx::query("SELECT * FROM change_requests WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *c)
        .await?;
    let mut cr = request_row(&r.ok_or_else(|| not_found("change request", id))?)?;
    let rows = sqlx::query(
        "SELECT reviewer, verdict, comment, at FROM change_reviews WHERE change_request_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(&mut *c)
    .await?;
    for r in rows {
        let review = Review {
            reviewer: r.try_get("reviewer")?,
            verdict: r.try_get("verdict")?,
            comment: r.try_get("comment")?,
            at: r.try_get("at")?,
        };
        if review.verdict == "approve" {
            cr.approvals += 1;
        }
        cr.reviews.push(review);
    }
    Ok(cr)
}

async fn get_policy(c: &mut AnyConnection, env_id: i64) -> Result<EnvPolicy> {
    let r = sqlx::query("SELECT * FROM env_policies WHERE environment_id = $1")
        .bind(env_id)
        .fetch_optional(&mut *c)
        .await?;
    let Some(r) = r else {
        return Ok(EnvPolicy::default());
    };
    let n: i64 = r.try_get("required_approvals")?;
    Ok(EnvPolicy {
        required_approvals: u32::try_from(n).unwrap_or(0),
        approver_roles: from_json(&r, "approver_roles")?,
        approver_teams: from_json(&r, "approver_teams")?,
    })
}

/// The segment `key` of environment `env_id`, if any.
async fn segment_by_key(
    c: &mut AnyConnection,
    env_id: i64,
    key: &str,
) -> Result<Option<SegmentRecord>> {
    let r = sqlx::query("SELECT id FROM segments WHERE environment_id = $1 AND key = $2")
        .bind(env_id)
        .bind(key)
        .fetch_optional(&mut *c)
        .await?;
    match r {
        Some(r) => Ok(Some(get_segment(c, r.try_get("id")?).await?)),
        None => Ok(None),
    }
}

/// The flag id of `key` in the project of environment `env_id`.
async fn flag_id(c: &mut AnyConnection, env_id: i64, key: &str) -> Result<Option<i64>> {
    let env = get_env(&mut *c, env_id).await?;
    let r = sqlx::query("SELECT id FROM flags WHERE project_id = $1 AND key = $2")
        .bind(env.project_id)
        .bind(key)
        .fetch_optional(&mut *c)
        .await?;
    Ok(r.map(|r| r.try_get("id")).transpose()?)
}

/// What `change` touches, live now: (version, JSON); version 0 when it
/// does not exist. `Err` names a flag that does not exist.
async fn live(
    c: &mut AnyConnection,
    env_id: i64,
    change: &EnvChange,
) -> Result<std::result::Result<(i64, Option<Value>), String>> {
    Ok(match change {
        EnvChange::FlagConfig { flag, .. } => match flag_id(c, env_id, flag).await? {
            Some(id) => {
                let cfg = get_config(c, id, env_id).await?;
                Ok((
                    cfg.version,
                    Some(serde_json::to_value(&cfg.spec).map_err(bad_json)?),
                ))
            }
            None => Err(format!("no flag {flag:?} in this project")),
        },
        EnvChange::Segment { segment, .. } => {
            match segment_by_key(c, env_id, &segment.key).await? {
                Some(s) => Ok((
                    s.version,
                    Some(serde_json::to_value(&s.segment).map_err(bad_json)?),
                )),
                None => Ok((0, None)),
            }
        }
        EnvChange::DeleteSegment { key, .. } => match segment_by_key(c, env_id, key).await? {
            Some(s) => Ok((
                s.version,
                Some(serde_json::to_value(&s.segment).map_err(bad_json)?),
            )),
            None => Err(format!("no segment {key:?} in this environment")),
        },
    })
}

fn proposed(change: &EnvChange) -> Option<Value> {
    match change {
        EnvChange::FlagConfig { config, .. } => serde_json::to_value(config).ok(),
        EnvChange::Segment { segment, .. } => serde_json::to_value(segment).ok(),
        EnvChange::DeleteSegment { .. } => None,
    }
}

impl Write<'_> {
    /// Applies `changes` to environment `env_id`, each at its base version.
    /// Every stale base is reported at once.
    async fn apply_env_changes(&mut self, env_id: i64, changes: &[EnvChange]) -> Result<()> {
        let mut stale = Vec::new();
        for (i, change) in changes.iter().enumerate() {
            let (now_at, _) = live(self.c(), env_id, change)
                .await?
                .map_err(|m| StoreError::Invalid(vec![Problem::new(format!("changes[{i}]"), m)]))?;
            let base = change.base().unwrap_or(now_at);
            if base != now_at {
                stale.push(Problem::new(
                    format!("changes[{i}]"),
                    format!(
                        "{} was at version {base} when the change was made and is at version {now_at} now",
                        change.describe()
                    ),
                ));
            }
        }
        if !stale.is_empty() {
            return Err(StoreError::OutdatedChanges(stale));
        }
        for change in changes {
            match change {
                EnvChange::FlagConfig {
                    flag,
                    config,
                    base_version,
                } => {
                    let id = flag_id(self.c(), env_id, flag)
                        .await?
                        .ok_or_else(|| not_found("flag", flag))?;
                    self.update_config(id, env_id, *base_version, config)
                        .await?;
                }
                EnvChange::Segment {
                    segment,
                    base_version,
                } => match segment_by_key(self.c(), env_id, &segment.key).await? {
                    Some(s) => {
                        self.update_segment(s.id, *base_version, segment).await?;
                    }
                    None => {
                        self.create_segment(env_id, segment).await?;
                    }
                },
                EnvChange::DeleteSegment { key, base_version } => {
                    let s = segment_by_key(self.c(), env_id, key)
                        .await?
                        .ok_or_else(|| not_found("segment", key))?;
                    let before: SegmentRecord = self
                        .delete_row(s.id, base_version.unwrap_or(s.version))
                        .await?;
                    self.envs.insert(before.environment_id);
                }
            }
        }
        Ok(())
    }

    async fn set_status(
        &mut self,
        id: i64,
        from: &[ChangeStatus],
        to: ChangeStatus,
    ) -> Result<bool> {
        let list: Vec<String> = from.iter().map(|s| format!("'{}'", s.as_str())).collect();
        let done = sqlx::query(&format!(
            "UPDATE change_requests SET status = $1, updated_at = $2, version = version + 1 \
             WHERE id = $3 AND status IN ({})",
            list.join(",")
        ))
        .bind(to.as_str())
        .bind(now())
        .bind(id)
        .execute(self.c())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

impl Store {
    /// Environment `env_id`'s change policy (unprotected when none is set).
    pub async fn policy(&self, env_id: i64) -> Result<EnvPolicy> {
        get_policy(&mut *self.conn().await?, env_id).await
    }

    /// Sets environment `env_id`'s change policy.
    pub async fn set_policy(
        &self,
        actor: &Actor,
        env_id: i64,
        policy: &EnvPolicy,
    ) -> Result<EnvPolicy> {
        if policy.required_approvals > MAX_APPROVALS {
            return Err(StoreError::Invalid(vec![Problem::new(
                "requiredApprovals",
                format!(
                    "{} is out of range: 0 to {MAX_APPROVALS}",
                    policy.required_approvals
                ),
            )]));
        }
        self.write(actor, async |w| {
            let env = get_env(w.c(), env_id).await?;
            let before = get_policy(w.c(), env_id).await?;
            sqlx::query("DELETE FROM env_policies WHERE environment_id = $1")
                .bind(env_id)
                .execute(w.c())
                .await?;
            sqlx::query(
                "INSERT INTO env_policies (environment_id, required_approvals, approver_roles, approver_teams) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(env_id)
            .bind(i64::from(policy.required_approvals))
            .bind(to_json(&policy.approver_roles))
            .bind(to_json(&policy.approver_teams))
            .execute(w.c())
            .await?;
            w.audit("update", "policy", (env_id, &env.key), Some(&before), Some(policy))
                .await?;
            Ok(policy.clone())
        })
        .await
    }

    /// Opens a change request on environment `env_id` by `author` (the
    /// author's identity: `user:<email>`, `token:<id>` or `admin`). Bases
    /// left out are the live versions now; the error names every change
    /// whose target does not exist and every bad field.
    pub async fn open_change_request(
        &self,
        actor: &Actor,
        author: &str,
        env_id: i64,
        new: &NewChangeRequest,
    ) -> Result<ChangeRequest> {
        let mut problems = Vec::new();
        if new.title.trim().is_empty() || new.title.len() > 200 {
            problems.push(Problem::new("title", "a title is 1–200 characters"));
        }
        if new.changes.is_empty() {
            problems.push(Problem::new(
                "changes",
                "a change request holds at least one change",
            ));
        }
        if new.changes.len() > 100 {
            problems.push(Problem::new("changes", "at most 100 changes per request"));
        }
        let apply_at = match &new.apply_at {
            Some(at) => match parse_time("applyAt", at) {
                Ok(t) => Some(t),
                Err(p) => {
                    problems.push(*p);
                    None
                }
            },
            None => None,
        };
        self.write(actor, async |w| {
            let env = get_env(w.c(), env_id).await?;
            let mut changes = new.changes.clone();
            for (i, change) in changes.iter_mut().enumerate() {
                match live(w.c(), env_id, change).await? {
                    Ok((v, _)) => {
                        if change.base().is_none() {
                            change.set_base(v);
                        }
                    }
                    Err(m) => problems.push(Problem::new(format!("changes[{i}]"), m)),
                }
            }
            if !problems.is_empty() {
                return Err(StoreError::Invalid(problems));
            }
            let at = now();
            let r = sqlx::query(
                "INSERT INTO change_requests (org_id, environment_id, title, description, author, status, \
                 changes, created_at, updated_at, apply_at) \
                 SELECT p.org_id, e.id, $1, $2, $3, 'open', $4, $5, $5, $6 \
                 FROM environments e JOIN projects p ON p.id = e.project_id WHERE e.id = $7 RETURNING id",
            )
            .bind(&new.title)
            .bind(&new.description)
            .bind(author)
            .bind(to_json(&changes))
            .bind(&at)
            .bind(&apply_at)
            .bind(env_id)
            .fetch_one(w.c())
            .await?;
            let id: i64 = r.try_get("id")?;
            // With no approvals needed (a scheduled change in an
            // unprotected environment) it is approved at once.
            if !get_policy(w.c(), env_id).await?.protected() {
                w.set_status(id, &[ChangeStatus::Open], ChangeStatus::Approved)
                    .await?;
            }
            let cr = get_request(w.c(), id).await?;
            w.audit(
                "create",
                "changeRequest",
                (id, &format!("{}#{id}", env.key)),
                None::<&()>,
                Some(&cr),
            )
            .await?;
            Ok(cr)
        })
        .await
    }

    /// Change request `id`.
    pub async fn change_request(&self, id: i64) -> Result<ChangeRequest> {
        get_request(&mut *self.conn().await?, id).await
    }

    /// The change requests of environment `env_id`, newest first.
    pub async fn change_requests(&self, env_id: i64) -> Result<Vec<ChangeRequest>> {
        let mut c = self.conn().await?;
        let rows = sqlx::query(
            "SELECT id FROM change_requests WHERE environment_id = $1 ORDER BY id DESC",
        )
        .bind(env_id)
        .fetch_all(&mut *c)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(get_request(&mut c, r.try_get("id")?).await?);
        }
        Ok(out)
    }

    /// Each change of `cr` next to what is live now.
    pub async fn change_diff(&self, cr: &ChangeRequest) -> Result<Vec<ChangeDiff>> {
        let mut c = self.conn().await?;
        let mut out = Vec::new();
        for change in &cr.changes {
            let (live_version, live_json) = live(&mut c, cr.environment_id, change)
                .await?
                .unwrap_or((0, None));
            let base_version = change.base().unwrap_or(live_version);
            out.push(ChangeDiff {
                target: change.describe(),
                live: live_json,
                proposed: proposed(change),
                live_version,
                base_version,
                stale: base_version != live_version,
            });
        }
        Ok(out)
    }

    /// Reviews change request `id` as `reviewer` (identity): an approval
    /// (`approve`), a rejection, or (`approve` none) a comment. The caller
    /// checks the reviewer may approve; here only that the request is open
    /// and the reviewer is not its author. Enough approvals approve it; a
    /// rejection rejects it.
    pub async fn review(
        &self,
        actor: &Actor,
        reviewer: &str,
        id: i64,
        approve: bool,
        comment: &str,
    ) -> Result<ChangeRequest> {
        self.record_review(
            actor,
            reviewer,
            id,
            if approve { "approve" } else { "reject" },
            comment,
        )
        .await
    }

    /// Comments on change request `id` (any state).
    pub async fn comment(
        &self,
        actor: &Actor,
        reviewer: &str,
        id: i64,
        comment: &str,
    ) -> Result<ChangeRequest> {
        self.record_review(actor, reviewer, id, "comment", comment)
            .await
    }

    async fn record_review(
        &self,
        actor: &Actor,
        reviewer: &str,
        id: i64,
        verdict: &str,
        comment: &str,
    ) -> Result<ChangeRequest> {
        self.write(actor, async |w| {
            let cr = get_request(w.c(), id).await?;
            if verdict != "comment" {
                if cr.status != ChangeStatus::Open {
                    return Err(StoreError::Invalid(vec![Problem::new(
                        "status",
                        format!("change request {id} is {}; only an open request is reviewed", cr.status.as_str()),
                    )]));
                }
                if cr.author == reviewer {
                    return Err(StoreError::Invalid(vec![Problem::new(
                        "reviewer",
                        format!("{reviewer} opened change request {id}; an author never reviews their own change"),
                    )]));
                }
                if cr.reviews.iter().any(|r| r.reviewer == reviewer && r.verdict == "approve") && verdict == "approve" {
                    return Err(StoreError::Invalid(vec![Problem::new(
                        "reviewer",
                        format!("{reviewer} already approved change request {id}"),
                    )]));
                }
            }
            sqlx::query(
                "INSERT INTO change_reviews (change_request_id, reviewer, verdict, comment, at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(reviewer)
            .bind(verdict)
            .bind(comment)
            .bind(now())
            .execute(w.c())
            .await?;
            let after = get_request(w.c(), id).await?;
            let required = get_policy(w.c(), cr.environment_id).await?.required_approvals;
            if verdict == "reject" {
                w.set_status(id, &[ChangeStatus::Open], ChangeStatus::Rejected).await?;
            } else if verdict == "approve" && after.approvals >= required {
                w.set_status(id, &[ChangeStatus::Open], ChangeStatus::Approved).await?;
            }
            let after = get_request(w.c(), id).await?;
            w.audit(verdict, "changeRequest", (id, &format!("#{id}")), Some(&cr), Some(&after))
                .await?;
            Ok(after)
        })
        .await
    }

    /// Applies approved change request `id`, re-checking every base in the
    /// same transaction ([`StoreError::OutdatedChanges`] when one moved: rebase it).
    /// `bypass`: a reason to apply a request that is not approved (break
    /// glass), recorded in the audit log.
    pub async fn apply_change_request(
        &self,
        actor: &Actor,
        id: i64,
        bypass: Option<&str>,
    ) -> Result<ChangeRequest> {
        self.write(actor, async |w| {
            let before = get_request(w.c(), id).await?;
            let from: &[ChangeStatus] = if bypass.is_some() {
                &[ChangeStatus::Open, ChangeStatus::Approved, ChangeStatus::Failed]
            } else {
                &[ChangeStatus::Approved]
            };
            if !w.set_status(id, from, ChangeStatus::Applied).await? {
                return Err(StoreError::Invalid(vec![Problem::new(
                    "status",
                    format!(
                        "change request {id} is {}; only an approved request applies",
                        before.status.as_str()
                    ),
                )]));
            }
            w.apply_env_changes(before.environment_id, &before.changes).await?;
            sqlx::query("UPDATE change_requests SET applied_at = $1, applied_by = $2, error = NULL WHERE id = $3")
                .bind(now())
                .bind(&actor.name)
                .bind(id)
                .execute(w.c())
                .await?;
            let after = get_request(w.c(), id).await?;
            let env = get_env(w.c(), before.environment_id).await?;
            if let Some(reason) = bypass {
                // Announced to webhooks as `breakGlass` (and, as every audited
                // action, as `environment.bypass`).
                let org: i64 = sqlx::query("SELECT org_id FROM change_requests WHERE id = $1")
                    .bind(id)
                    .fetch_one(w.c())
                    .await?
                    .try_get("org_id")?;
                w.emit(
                    org,
                    "breakGlass",
                    serde_json::json!({
                        "changeRequest": id, "environment": env.key, "reason": reason,
                        "actor": actor.name, "changes": before.changes,
                    }),
                )
                .await?;
                w.audit(
                    "bypass",
                    "environment",
                    (env.id, &env.key),
                    None::<&()>,
                    Some(&serde_json::json!({"changeRequest": id, "reason": reason, "changes": before.changes})),
                )
                .await?;
            }
            w.audit("apply", "changeRequest", (id, &format!("{}#{id}", env.key)), Some(&before), Some(&after))
                .await?;
            Ok(after)
        })
        .await
    }

    /// Moves every base of change request `id` to what is live now; its
    /// approvals no longer count (the reviewers approved other bases), so
    /// a protected environment's request is open again.
    pub async fn rebase_change_request(&self, actor: &Actor, id: i64) -> Result<ChangeRequest> {
        self.write(actor, async |w| {
            let before = get_request(w.c(), id).await?;
            if !matches!(before.status, ChangeStatus::Open | ChangeStatus::Approved | ChangeStatus::Failed) {
                return Err(StoreError::Invalid(vec![Problem::new(
                    "status",
                    format!("change request {id} is {}; it cannot be rebased", before.status.as_str()),
                )]));
            }
            let mut changes = before.changes.clone();
            for (i, change) in changes.iter_mut().enumerate() {
                let (v, _) = live(w.c(), before.environment_id, change)
                    .await?
                    .map_err(|m| StoreError::Invalid(vec![Problem::new(format!("changes[{i}]"), m)]))?;
                change.set_base(v);
            }
            sqlx::query("DELETE FROM change_reviews WHERE change_request_id = $1 AND verdict = 'approve'")
                .bind(id)
                .execute(w.c())
                .await?;
            let protected = get_policy(w.c(), before.environment_id).await?.protected();
            let status = if protected { ChangeStatus::Open } else { ChangeStatus::Approved };
            sqlx::query(
                "UPDATE change_requests SET changes = $1, status = $2, error = NULL, updated_at = $3, \
                 version = version + 1 WHERE id = $4",
            )
            .bind(to_json(&changes))
            .bind(status.as_str())
            .bind(now())
            .bind(id)
            .execute(w.c())
            .await?;
            let after = get_request(w.c(), id).await?;
            w.audit("rebase", "changeRequest", (id, &format!("#{id}")), Some(&before), Some(&after))
                .await?;
            Ok(after)
        })
        .await
    }

    /// Cancels change request `id` (open, approved or failed).
    pub async fn cancel_change_request(&self, actor: &Actor, id: i64) -> Result<ChangeRequest> {
        self.write(actor, async |w| {
            let before = get_request(w.c(), id).await?;
            let from = [
                ChangeStatus::Open,
                ChangeStatus::Approved,
                ChangeStatus::Failed,
            ];
            if !w.set_status(id, &from, ChangeStatus::Cancelled).await? {
                return Err(StoreError::Invalid(vec![Problem::new(
                    "status",
                    format!(
                        "change request {id} is {}; it cannot be cancelled",
                        before.status.as_str()
                    ),
                )]));
            }
            let after = get_request(w.c(), id).await?;
            w.audit(
                "cancel",
                "changeRequest",
                (id, &format!("#{id}")),
                Some(&before),
                Some(&after),
            )
            .await?;
            Ok(after)
        })
        .await
    }

    /// Sets (or clears) when change request `id` applies by itself.
    pub async fn schedule_change_request(
        &self,
        actor: &Actor,
        id: i64,
        expected: i64,
        apply_at: Option<&str>,
    ) -> Result<ChangeRequest> {
        let at = match apply_at {
            Some(a) => Some(parse_time("applyAt", a).map_err(|p| StoreError::Invalid(vec![*p]))?),
            None => None,
        };
        self.write(actor, async |w| {
            let before = get_request(w.c(), id).await?;
            check_version(before.version, expected)?;
            if !matches!(before.status, ChangeStatus::Open | ChangeStatus::Approved) {
                return Err(StoreError::Invalid(vec![Problem::new(
                    "status",
                    format!("change request {id} is {}; it cannot be scheduled", before.status.as_str()),
                )]));
            }
            sqlx::query(
                "UPDATE change_requests SET apply_at = $1, updated_at = $2, version = version + 1 WHERE id = $3",
            )
            .bind(&at)
            .bind(now())
            .bind(id)
            .execute(w.c())
            .await?;
            let after = get_request(w.c(), id).await?;
            w.audit("schedule", "changeRequest", (id, &format!("#{id}")), Some(&before), Some(&after))
                .await?;
            Ok(after)
        })
        .await
    }

    /// Applies every approved change request whose time has come, as
    /// `scheduler`. Each applies exactly once even when several origins
    /// share the database (the status moves from `approved` to `applied`
    /// in the applying transaction, which only one of them wins); one that
    /// fails is marked `failed` with the reason — audited, never retried
    /// into a different state. Returns (applied, failed) ids.
    pub async fn apply_due_changes(&self) -> Result<(Vec<i64>, Vec<i64>)> {
        let rows = sqlx::query(
            "SELECT id, org_id FROM change_requests WHERE status = 'approved' AND apply_at IS NOT NULL \
             AND apply_at <= $1 ORDER BY apply_at, id",
        )
        .bind(now())
        .fetch_all(&self.pool)
        .await?;
        let (mut applied, mut failed) = (Vec::new(), Vec::new());
        for r in rows {
            let id: i64 = r.try_get("id")?;
            let actor = Actor::new("scheduler").in_org(r.try_get("org_id")?);
            match self.apply_change_request(&actor, id, None).await {
                Ok(_) => applied.push(id),
                // Another origin applied (or someone cancelled) it first.
                Err(StoreError::Invalid(_))
                    if self.change_request(id).await?.status != ChangeStatus::Approved => {}
                Err(e @ StoreError::Database(_)) => return Err(e),
                Err(e) => {
                    let message = e.to_string();
                    let marked = self
                        .write(&actor, async |w| {
                            let before = get_request(w.c(), id).await?;
                            if !w
                                .set_status(id, &[ChangeStatus::Approved], ChangeStatus::Failed)
                                .await?
                            {
                                return Ok(false);
                            }
                            sqlx::query("UPDATE change_requests SET error = $1 WHERE id = $2")
                                .bind(&message)
                                .bind(id)
                                .execute(w.c())
                                .await?;
                            let after = get_request(w.c(), id).await?;
                            w.audit(
                                "fail",
                                "changeRequest",
                                (id, &format!("#{id}")),
                                Some(&before),
                                Some(&after),
                            )
                            .await?;
                            Ok(true)
                        })
                        .await?;
                    if marked {
                        failed.push(id);
                    }
                }
            }
        }
        Ok((applied, failed))
    }
}
