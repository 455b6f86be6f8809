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
//!
//! A task whose rounds keep state between them (the guardrail monitor's
//! sequential tests) keeps its `Lead` across rounds instead of ending it:
//! the origin that took it goes on leading for as long as it runs, and
//! checks at each round that the turn is still [`Lead::held`] (a lost
//! connection ends the transaction, and the lock with it). Between two
//! rounds the transaction is idle: in PostgreSQL's default isolation it
//! then holds no snapshot, so it keeps nothing from vacuum either; it
//! occupies one of the pool's connections.

use sqlx::{Any, Transaction};

use super::{Backend, Result, Store};

/// Background work that one origin does per round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// [`crate::refresh`]: looking at running experiments' results.
    ResultsRefresh,
    /// [`crate::monitor`]: the guardrail tests, rollbacks and ramp holds;
    /// held across rounds.
    GuardrailMonitor,
}

impl Task {
    /// The lock's name, within the schema.
    fn name(self) -> &'static str {
        match self {
            Task::ResultsRefresh => "bunting/results-refresh",
            Task::GuardrailMonitor => "bunting/guardrail-monitor",
        }
    }
}

/// This origin's turn at a [`Task`]; see the module documentation.
#[derive(Debug)]
pub struct Lead(Option<Transaction<'static, Any>>);

impl Lead {
    /// Whether the turn is still this origin's: its transaction's
    /// connection still answers (always, on SQLite).
    pub async fn held(&mut self) -> bool {
        match &mut self.0 {
            None => true,
            Some(tx) => sqlx::query("SELECT 1").execute(&mut **tx).await.is_ok(),
        }
    }

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
