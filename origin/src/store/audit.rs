//! The audit log: a hash chain of every mutation, appended in the mutation's
//! own transaction.
//!
//! Entry `n` stores `prev_hash` (entry `n-1`'s hash, 64 zeros for the first)
//! and `hash = sha256(canonical(entry) )`, where the canonical encoding is the
//! compact JSON array `[seq, actor, at, action, entityType, entityId,
//! entityKey, before, after, requestId, prevHash, orgId]` with `before`/`after` as
//! their stored (compact, key-sorted) JSON text. The single-row `audit_head`
//! table holds the last sequence number and hash; every mutation locks it
//! first, which serializes appends and lets [`Store::verify_audit`] notice a
//! deleted tail.

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Result, Store};

/// The `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit-log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// Who made the change.
    pub actor: String,
    /// When, UTC, `YYYY-MM-DDTHH:MM:SS.ffffffZ` (sorts as text).
    pub at: String,
    /// `create`, `update` or `delete`.
    pub action: String,
    /// `organization`, `project`, `environment`, `layer`, `flag`,
    /// `flagConfig` or `segment`.
    pub entity_type: String,
    /// The entity's id (a flag configuration: its flag's id).
    pub entity_id: i64,
    /// The entity's key (a flag configuration: `flag/environment`).
    pub entity_key: String,
    /// The entity before the change, compact JSON; none on create.
    pub before: Option<String>,
    /// The entity after the change, compact JSON; none on delete.
    pub after: Option<String>,
    /// The API request that made the change, if any.
    pub request_id: Option<String>,
    /// The organization the entry belongs to (none for entries written
    /// outside any organization's scope).
    pub org_id: Option<i64>,
    /// The previous entry's hash.
    pub prev_hash: String,
    /// This entry's hash (lowercase hex SHA-256).
    pub hash: String,
}

impl AuditEntry {
    /// The hash this entry should carry: SHA-256 over the canonical encoding
    /// of every other field, `prev_hash` included.
    ///
    /// ```
    /// use bunting_origin::store::{AuditEntry, GENESIS_HASH};
    /// let mut e = AuditEntry {
    ///     seq: 1, actor: "ana".into(), at: "2026-11-25T10:00:00.000000Z".into(),
    ///     action: "create".into(), entity_type: "organization".into(), entity_id: 1,
    ///     entity_key: "acme".into(), before: None, after: Some("{}".into()),
    ///     request_id: None, org_id: Some(1), prev_hash: GENESIS_HASH.into(), hash: String::new(),
    /// };
    /// e.hash = e.compute_hash();
    /// assert_eq!(e.hash.len(), 64);
    /// ```
    pub fn compute_hash(&self) -> String {
        let canonical = serde_json::json!([
            self.seq,
            self.actor,
            self.at,
            self.action,
            self.entity_type,
            self.entity_id,
            self.entity_key,
            self.before,
            self.after,
            self.request_id,
            self.prev_hash,
            self.org_id,
        ]);
        let digest = Sha256::digest(canonical.to_string().as_bytes());
        hex::encode(digest)
    }

    pub(crate) fn from_row(row: &AnyRow) -> Result<AuditEntry> {
        Ok(AuditEntry {
            seq: row.try_get("seq")?,
            actor: row.try_get("actor")?,
            at: row.try_get("at")?,
            action: row.try_get("action")?,
            entity_type: row.try_get("entity_type")?,
            entity_id: row.try_get("entity_id")?,
            entity_key: row.try_get("entity_key")?,
            before: row.try_get("before")?,
            after: row.try_get("after")?,
            request_id: row.try_get("request_id")?,
            org_id: row.try_get("org_id")?,
            prev_hash: row.try_get("prev_hash")?,
            hash: row.try_get("hash")?,
        })
    }
}

/// What is wrong at the first bad entry of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum AuditFault {
    /// The sequence numbers have a gap or are out of order (a deleted or
    /// renumbered entry).
    Gap,
    /// `prev_hash` is not the previous entry's hash (deleted or reordered
    /// entries).
    BrokenLink,
    /// The stored hash does not match the entry's content (an edited entry).
    HashMismatch,
    /// The chain ends before the head recorded in `audit_head` (a deleted
    /// tail), or the head does not match the last entry.
    Truncated,
}

/// The outcome of [`Store::verify_audit`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditReport {
    /// Entries read.
    pub entries: u64,
    /// The last entry's hash (the genesis hash for an empty log).
    pub head_hash: String,
    /// The first bad entry's sequence number and fault; none when the chain
    /// verifies.
    pub first_bad: Option<(i64, AuditFault)>,
}

impl AuditReport {
    /// Whether the whole chain verified.
    pub fn is_ok(&self) -> bool {
        self.first_bad.is_none()
    }
}

/// A filter over the audit log; all set fields must match. Pages are keyset
/// pages in `seq` order: pass the previous page's [`AuditPage::next`] as
/// `after_seq`.
///
/// ```
/// use bunting_origin::store::AuditQuery;
/// let q = AuditQuery { actor: Some("ana".into()), limit: 50, ..AuditQuery::default() };
/// assert_eq!(q.after_seq, 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Entity type, e.g. `flag`.
    pub entity_type: Option<String>,
    /// Any of these entity types (with `entity_id`: a flag's history is
    /// `flag` and `flagConfig` entries of its id).
    pub entity_types: Vec<String>,
    /// Entity id (with `entity_type`).
    pub entity_id: Option<i64>,
    /// Actor.
    pub actor: Option<String>,
    /// Organization (entries of other organizations are left out).
    pub org_id: Option<i64>,
    /// Entries at or after this time (same format as [`AuditEntry::at`]; any
    /// prefix of it works, e.g. `2026-11-25`).
    pub from: Option<String>,
    /// Entries strictly before this time.
    pub until: Option<String>,
    /// Only entries with a larger sequence number.
    pub after_seq: i64,
    /// Page size; 0 means 100. At most 1000.
    pub limit: u32,
}

/// One page of [`Store::audit_log`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditPage {
    /// The entries, by ascending `seq`.
    pub entries: Vec<AuditEntry>,
    /// `after_seq` for the next page, when there may be one.
    pub next: Option<i64>,
}

impl Store {
    /// Walks the whole chain in `seq` order and reports the first entry that
    /// is missing, out of place, edited or disconnected.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use bunting_origin::store::{Actor, Store};
    /// let store = Store::open("sqlite::memory:").await.unwrap();
    /// store.create_org(&Actor::new("ana"), "acme", "Acme").await.unwrap();
    /// let report = store.verify_audit().await.unwrap();
    /// assert_eq!((report.entries, report.first_bad), (1, None));
    /// # });
    /// ```
    pub async fn verify_audit(&self) -> Result<AuditReport> {
        let rows = sqlx::query("SELECT * FROM audit_log ORDER BY seq")
            .fetch_all(&self.pool)
            .await?;
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        let head_seq: i64 = head.try_get("seq")?;
        let head_hash: String = head.try_get("hash")?;
        let mut prev = GENESIS_HASH.to_string();
        let mut expected_seq = 1;
        let mut first_bad = None;
        for row in &rows {
            let e = AuditEntry::from_row(row)?;
            let fault = if e.seq != expected_seq {
                Some(AuditFault::Gap)
            } else if e.prev_hash != prev {
                Some(AuditFault::BrokenLink)
            } else if e.compute_hash() != e.hash {
                Some(AuditFault::HashMismatch)
            } else {
                None
            };
            if let Some(f) = fault {
                first_bad = Some((e.seq.min(expected_seq), f));
                break;
            }
            prev = e.hash;
            expected_seq += 1;
        }
        if first_bad.is_none() && (head_seq != expected_seq - 1 || head_hash != prev) {
            first_bad = Some((expected_seq, AuditFault::Truncated));
        }
        Ok(AuditReport {
            entries: rows.len() as u64,
            head_hash: prev,
            first_bad,
        })
    }

    /// One page of audit entries matching `q`, by ascending `seq`.
    pub async fn audit_log(&self, q: &AuditQuery) -> Result<AuditPage> {
        let limit = match q.limit {
            0 => 100,
            n => n.min(1000),
        } as i64;
        let mut sql = String::from("SELECT * FROM audit_log WHERE seq > $1");
        let mut texts: Vec<(usize, String)> = Vec::new();
        let mut n = 1;
        let mut push_text = |sql: &mut String, col: &str, op: &str, v: &str| {
            n += 1;
            sql.push_str(&format!(" AND {col} {op} ${n}"));
            texts.push((n, v.to_string()));
        };
        if let Some(t) = &q.entity_type {
            push_text(&mut sql, "entity_type", "=", t);
        }
        if let Some(a) = &q.actor {
            push_text(&mut sql, "actor", "=", a);
        }
        if !q.entity_types.is_empty() {
            let mut alternatives = String::new();
            for t in &q.entity_types {
                let mut one = String::new();
                push_text(&mut one, "entity_type", "=", t);
                alternatives.push_str(if alternatives.is_empty() { "" } else { " OR" });
                alternatives.push_str(one.trim_start_matches(" AND"));
            }
            sql.push_str(&format!(" AND ({alternatives} )"));
        }
        if let Some(f) = &q.from {
            push_text(&mut sql, "at", ">=", f);
        }
        if let Some(u) = &q.until {
            push_text(&mut sql, "at", "<", u);
        }
        let mut ints = Vec::new();
        for (col, v) in [("entity_id", q.entity_id), ("org_id", q.org_id)] {
            if let Some(v) = v {
                ints.push(v);
                sql.push_str(&format!(" AND {col} = ${}", texts.len() + 1 + ints.len()));
            }
        }
        let limit_at = texts.len() + 2 + ints.len();
        sql.push_str(&format!(" ORDER BY seq LIMIT ${limit_at}"));
        let mut query = sqlx::query(&sql).bind(q.after_seq);
        for (_, v) in texts {
            query = query.bind(v);
        }
        for v in ints {
            query = query.bind(v);
        }
        let rows = query.bind(limit).fetch_all(&self.pool).await?;
        let entries = rows
            .iter()
            .map(AuditEntry::from_row)
            .collect::<Result<Vec<_>>>()?;
        let next = if entries.len() as i64 == limit {
            entries.last().map(|e| e.seq)
        } else {
            None
        };
        Ok(AuditPage { entries, next })
    }
}
