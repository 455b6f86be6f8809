//! One origin at a time for background work that every origin would
//! otherwise repeat.
//!
//! Several `bunting serve` processes may share one PostgreSQL database (and
//! schema). Work such as keeping experiment results warm
//! ([`crate::refresh`]) gives the same result whichever of them does it,
//! so each round should be done by one. [`Store::lead`] takes a
//! transaction-scoped advisory lock, named by the task and the schema (two
//! deployments in different schemas of one database do not wait for each
//! other), without waiting: the origin that gets it does the round, the
//! others skip it. The lock ends with [`Lead::end`], or with the
//! transaction if the `Lead` is dropped (a cancelled or panicking round
//! cannot keep it). The transaction only holds the lock: it reads nothing,
//! writes nothing and assigns no transaction id, so it keeps no row
//! version from vacuum. SQLite databases have one origin each: it always
//! leads.

use sqlx::{Any, Transaction};

use super::{Backend, Result, Store};

/// Background work that one origin does per round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// [`crate::refresh`]: looking at running experiments' results.
    ResultsRefresh,
}

impl Task {
    /// The lock's name, within the schema.
    fn name(self) -> &'static str {
        match self {
            Task::ResultsRefresh => "bunting/results-refresh",
        }
    }
}

/// This origin's turn at a [`Task`]; see the module documentation.
#[derive(Debug)]
pub struct Lead(Option<Transaction<'static, Any>>);

impl Lead {
    /// Gives the turn up.
    pub async fn end(self) -> Result<()> {
        if let Some(tx) = self.0 {
            tx.commit().await?;
        }
        Ok(())
    }
}

impl Store {
    /// This origin's turn at `task`, or `None` while another origin of the
    /// same database and schema has it. Never waits.
    pub async fn lead(&self, task: Task) -> Result<Option<Lead>> {
        if self.backend() != Backend::Postgres {
            return Ok(Some(Lead(None)));
        }
        let mut tx = self.pool.begin().await?;
        let got: bool = sqlx::query_scalar(
            "SELECT pg_try_advisory_xact_lock(hashtextextended(current_schema() || ':' || $1, 0))",
        )
        .bind(task.name())
        .fetch_one(&mut *tx)
        .await?;
        Ok(got.then(|| Lead(Some(tx))))
    }
}
