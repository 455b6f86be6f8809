//! [`Write`]: one write transaction, its buffered audit entries and its commit.

use std::collections::BTreeSet;

use serde::Serialize;
use sqlx::{Any, AnyConnection, Row, Transaction};

use super::Store;
use super::rows::{list_envs, now, to_json};
use super::{Actor, AuditEntry, Problem, Result, StoreError, limits, snapshot};

/// Optimistic concurrency: `Ok` when the row is still at the version the
/// caller read, else [`StoreError::Conflict`] with the current one.
pub(super) fn check_version(current: i64, expected: i64) -> Result<()> {
    if current == expected {
        Ok(())
    } else {
        Err(StoreError::Conflict { current })
    }
}

/// A row type that writes read, version-check and delete the same way.
pub(super) trait Entity: Serialize + Sized {
    /// Its table.
    const TABLE: &'static str;
    /// Its audit entity type.
    const ENTITY: &'static str;
    /// Reads row `id`.
    async fn get(c: &mut AnyConnection, id: i64) -> Result<Self>;
    /// Its key and version.
    fn key_version(&self) -> (&str, i64);
}

/// One write transaction: holds the audit head's lock, appends entries and
/// collects the environments whose snapshots the writes touched.
///
/// Lock scope: a write locks only its own rows while it works (on
/// PostgreSQL its organization's row first, so one organization's writes
/// run one at a time, and each touched environment's row when it bumps
/// it), validates the snapshots it changed, and only then takes the audit
/// head's lock to append its buffered entries to the hash chain and commit.
/// So one tenant's expensive write (a large snapshot to validate) never
/// holds the lock every other tenant's writes need, which is held for an
/// insert and a commit only. (SQLite has a single writer: there the write
/// takes the database's write lock up front, `BEGIN IMMEDIATE`, and waits
/// for it instead of failing with "database is locked"; [`limits`] bounds
/// how long any write can hold it.)
pub(super) struct Write<'a> {
    tx: Transaction<'static, Any>,
    actor: &'a Actor,
    /// Audit entries of this write, chained at commit.
    pending: Vec<AuditEntry>,
    pub(super) envs: BTreeSet<i64>,
}

impl<'a> Write<'a> {
    /// A write by `actor` in transaction `tx`.
    pub(super) fn new(tx: Transaction<'static, Any>, actor: &'a Actor) -> Self {
        Write {
            tx,
            actor,
            pending: Vec::new(),
            envs: BTreeSet::new(),
        }
    }

    pub(super) fn c(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }

    /// Who writes (the audit log's actor name).
    pub(super) fn actor_name(&self) -> &str {
        &self.actor.name
    }

    pub(super) async fn audit<B: Serialize, A: Serialize>(
        &mut self,
        action: &str,
        entity_type: &str,
        (entity_id, entity_key): (i64, &str),
        before: Option<&B>,
        after: Option<&A>,
    ) -> Result<()> {
        self.pending.push(AuditEntry {
            seq: 0,
            actor: self.actor.name.clone(),
            at: now(),
            action: action.into(),
            entity_type: entity_type.into(),
            entity_id,
            entity_key: entity_key.into(),
            before: before.map(to_json),
            after: after.map(to_json),
            request_id: self.actor.request_id.clone(),
            org_id: if entity_type == "organization" {
                Some(entity_id)
            } else {
                self.actor.org_id
            },
            prev_hash: String::new(),
            hash: String::new(),
        });
        Ok(())
    }

    /// Appends the buffered entries to the hash chain (under the audit
    /// head's lock, held until the commit that follows); returns them as
    /// chained.
    async fn append_audit(&mut self) -> Result<Vec<AuditEntry>> {
        let head = sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash")
            .fetch_one(self.c())
            .await?;
        let (mut seq, mut hash): (i64, String) = (head.try_get("seq")?, head.try_get("hash")?);
        let mut entries = std::mem::take(&mut self.pending);
        for e in &mut entries {
            seq += 1;
            e.seq = seq;
            e.prev_hash = hash;
            e.hash = e.compute_hash();
            self.insert_audit(e).await?;
            hash = e.hash.clone();
        }
        sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(seq)
            .bind(&hash)
            .execute(self.c())
            .await?;
        Ok(entries)
    }

    async fn insert_audit(&mut self, e: &AuditEntry) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_log (seq, actor, at, action, entity_type, entity_id, entity_key, before, after, \
             request_id, prev_hash, hash, org_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(e.seq)
        .bind(&e.actor)
        .bind(&e.at)
        .bind(&e.action)
        .bind(&e.entity_type)
        .bind(e.entity_id)
        .bind(&e.entity_key)
        .bind(&e.before)
        .bind(&e.after)
        .bind(&e.request_id)
        .bind(&e.prev_hash)
        .bind(&e.hash)
        .bind(e.org_id)
        .execute(self.c())
        .await?;
        Ok(())
    }

    pub(super) async fn touch_project(&mut self, project_id: i64) -> Result<()> {
        for e in list_envs(self.c(), project_id).await? {
            self.envs.insert(e.id);
        }
        Ok(())
    }

    /// Bumps and validates the touched environments, moves the audit head and
    /// commits.
    pub(super) async fn commit(mut self) -> Result<()> {
        let at = now();
        let touched = std::mem::take(&mut self.envs);
        if let Some(reason) = self.actor.bypass.clone() {
            self.record_bypass(&touched, &reason).await?;
        }
        for env_id in touched {
            // The bump is the durable publish intent (see `store::publish`).
            let bumped = sqlx::query(
                "UPDATE environments SET snapshot_version = snapshot_version + 1, changed_at = $1, \
                 pending_since = COALESCE(pending_since, $1) WHERE id = $2",
            )
            .bind(&at)
            .bind(env_id)
            .execute(self.c())
            .await?;
            if bumped.rows_affected() == 0 {
                continue; // deleted in this transaction
            }
            let snapshot = snapshot::build(self.c(), env_id).await?;
            // The environment's key (the last part of the edge name).
            let env_key = snapshot.environment.rsplit('/').next().unwrap_or_default();
            let located = |problems: Vec<Problem>| -> Vec<Problem> {
                problems
                    .into_iter()
                    .map(|p| Problem {
                        path: format!("{env_key}: {}", p.path),
                        ..p
                    })
                    .collect()
            };
            // Bounded first: validation's cost grows with the snapshot.
            if let Err(problems) = limits::check(&snapshot) {
                return Err(StoreError::TooLarge(located(problems)));
            }
            if let Err(bunting_core::LoadError::Invalid(problems)) =
                bunting_core::Engine::from_snapshot(&snapshot)
            {
                return Err(StoreError::Invalid(
                    problems
                        .into_iter()
                        .map(|p| Problem::of_snapshot(env_key, p))
                        .collect(),
                ));
            }
        }
        let entries = self.append_audit().await?;
        // Their webhook messages, committed with them (the outbox).
        super::webhooks::enqueue_audit(self.c(), &entries).await?;
        self.tx.commit().await?;
        Ok(())
    }

    /// A `bypass` audit entry (and a `breakGlass` event) for each of
    /// `envs` whose policy needs approvals: this write changed it without
    /// them, for `reason`.
    async fn record_bypass(&mut self, envs: &BTreeSet<i64>, reason: &str) -> Result<()> {
        for env_id in envs {
            let row = sqlx::query(
                "SELECT e.key, p.org_id FROM environments e JOIN projects p ON p.id = e.project_id \
                 JOIN env_policies x ON x.environment_id = e.id \
                 WHERE e.id = $1 AND x.required_approvals > 0",
            )
            .bind(env_id)
            .fetch_optional(self.c())
            .await?;
            let Some(row) = row else { continue };
            let (key, org): (String, i64) = (row.try_get("key")?, row.try_get("org_id")?);
            let what = serde_json::json!({"reason": reason, "actor": self.actor.name});
            self.emit(
                org,
                "breakGlass",
                serde_json::json!({"environment": key, "reason": reason, "actor": self.actor.name}),
            )
            .await?;
            self.audit(
                "bypass",
                "environment",
                (*env_id, &key),
                None::<&()>,
                Some(&what),
            )
            .await?;
        }
        Ok(())
    }

    /// Deletes row `id` of `table` after the version check and audits it.
    pub(super) async fn delete<T: Serialize>(
        &mut self,
        entity: &'static str,
        table: &str,
        id: i64,
        expected: i64,
        (version, key, before): (i64, String, T),
    ) -> Result<()> {
        check_version(version, expected)?;
        sqlx::query(&format!("DELETE FROM {table} WHERE id = $1"))
            .bind(id)
            .execute(self.c())
            .await?;
        self.audit("delete", entity, (id, &key), Some(&before), None::<&()>)
            .await
    }

    /// Replaces the `spec` column of `T` row `id` (read as `before`), bumps
    /// its version, audits the update under `key` and returns the row after.
    pub(super) async fn replace_spec<T: Entity>(
        &mut self,
        id: i64,
        key: &str,
        spec: &impl Serialize,
        before: &T,
    ) -> Result<T> {
        sqlx::query(&format!(
            "UPDATE {} SET spec = $1, version = version + 1 WHERE id = $2",
            T::TABLE
        ))
        .bind(to_json(spec))
        .bind(id)
        .execute(self.c())
        .await?;
        let after = T::get(self.c(), id).await?;
        self.audit("update", T::ENTITY, (id, key), Some(before), Some(&after))
            .await?;
        Ok(after)
    }

    /// Deletes `T` row `id` (at version `expected`), audits it and returns
    /// what it was.
    pub(super) async fn delete_row<T: Entity>(&mut self, id: i64, expected: i64) -> Result<T> {
        let before = T::get(self.c(), id).await?;
        let (key, version) = before.key_version();
        let key = key.to_string();
        self.delete(T::ENTITY, T::TABLE, id, expected, (version, key, &before))
            .await?;
        Ok(before)
    }
}

impl Store {
    /// Runs `f` in one write transaction by `actor`, then commits.
    pub(super) async fn write<T>(
        &self,
        actor: &Actor,
        f: impl AsyncFnOnce(&mut Write<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut w = self.begin(actor).await?;
        let out = f(&mut w).await?;
        w.commit().await?;
        Ok(out)
    }
}
