//! The store's typed errors.

use thiserror::Error;

pub use crate::model::{Problem, SnapshotLocation};

/// Why a store operation failed.
///
/// ```
/// use bunting_origin::store::StoreError;
/// let e = StoreError::Conflict { current: 3 };
/// assert_eq!(e.to_string(), "version conflict: the current version is 3");
/// ```
#[derive(Debug, Error)]
pub enum StoreError {
    /// The entity does not exist.
    #[error("{entity} {id} not found")]
    NotFound {
        /// Entity type, e.g. `flag`.
        entity: &'static str,
        /// Its id or key.
        id: String,
    },
    /// The expected version is stale: someone else changed the row. The API
    /// maps this to 412 Precondition Failed with the current ETag.
    #[error("version conflict: the current version is {current}")]
    Conflict {
        /// The row's current version.
        current: i64,
    },
    /// A GitOps apply or a list of changes was planned against a state of
    /// the project that is no longer current (see [`super::plan`]). The API
    /// maps this to 412 Precondition Failed with the current base.
    #[error("stale base: {reason}")]
    Stale {
        /// The project's current base ([`super::plan::ProjectState::base`]).
        base: String,
        /// What changed.
        reason: String,
    },
    /// A key is already taken in its scope.
    #[error("{entity} key {key:?} already exists")]
    Duplicate {
        /// Entity type.
        entity: &'static str,
        /// The key.
        key: String,
    },
    /// The write would store an invalid entity or make an environment's
    /// snapshot invalid.
    #[error("invalid: {}", .0.iter().map(|p| format!("{}: {}", p.path, p.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Problem>),
    /// The write would make an environment's snapshot exceed a bound of
    /// [`super::limits`] (HTTP 413): every offender, with its path.
    #[error("too large: {}", .0.iter().map(|p| format!("{}: {}", p.path, p.message)).collect::<Vec<_>>().join("; "))]
    TooLarge(Vec<Problem>),
    /// A change request's changes were made against versions that are no
    /// longer live (HTTP 409): every stale change, with its path. Rebase
    /// the request and have it reviewed again.
    #[error("stale base: {}", .0.iter().map(|p| format!("{}: {}", p.path, p.message)).collect::<Vec<_>>().join("; "))]
    OutdatedChanges(Vec<Problem>),
    /// The flag is archived: it cannot change until it is restored (HTTP
    /// 409).
    #[error("flag {key:?} is archived: restore it before changing it")]
    Archived {
        /// The flag's key.
        key: String,
    },
    /// Archiving (or restoring) would leave a served flag naming an
    /// archived one as a prerequisite (HTTP 409): `dependents` are
    /// `flag/environment` pairs of the served side, `archived` the
    /// archived side.
    #[error(
        "{} named as a prerequisite by {}: the edge would not find {}",
        if .archived.len() == 1 { format!("flag {} is", .archived[0]) } else { format!("flags {} are", .archived.join(", ")) },
        .dependents.join(", "),
        if .archived.len() == 1 { "it" } else { "them" }
    )]
    Prerequisite {
        /// The archived flags (keys).
        archived: Vec<String>,
        /// The served configurations that name them (`flag/environment`).
        dependents: Vec<String>,
    },
    /// The database failed (connection, SQL, migration, decoding).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    /// Maps a unique-constraint violation of an insert/update to
    /// [`StoreError::Duplicate`], anything else to [`StoreError::Database`].
    pub(crate) fn on_write(
        entity: &'static str,
        key: &str,
    ) -> impl FnOnce(sqlx::Error) -> StoreError {
        let key = key.to_string();
        move |e| match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                StoreError::Duplicate { entity, key }
            }
            _ => StoreError::Database(e),
        }
    }
}

/// The store's result type.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
