//! The store's typed errors.

use thiserror::Error;

/// One reason a write was refused as invalid: the field (a JSON path of the
/// environment snapshot, or a field name) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The flag, segment or layer key the problem belongs to, if any.
    pub entity: Option<String>,
    /// The offending field, e.g. `key` or `flags[0].rules[1].condition`.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// For a problem the engine found in an environment's snapshot: the
    /// same place as `path`, as data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<SnapshotLocation>,
}

/// Where a problem of an environment's snapshot is: the environment, the
/// entity and field ([`bunting_core::Problem::location`]) and, for a
/// rule-language error, the span in the condition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SnapshotLocation {
    /// The environment's key.
    pub environment: String,
    /// The entity and field in the environment's snapshot.
    pub location: bunting_core::snapshot::Location,
    /// Where in the condition a rule-language error is.
    pub span: Option<bunting_core::rules::Span>,
}

impl Problem {
    /// A problem the engine found in environment `environment`'s snapshot,
    /// its path prefixed with the environment (`production:
    /// flags[0].rules[0].condition`) and its message with the position in
    /// the condition, if any.
    ///
    /// ```
    /// use bunting_core::snapshot::Location;
    /// let core = bunting_core::Problem::new(Location::flag(0, "beta", "offVariant"), "unknown variant \"of\"");
    /// let p = bunting_origin::store::Problem::of_snapshot("production", core);
    /// assert_eq!(p.path, "production: flags[0].offVariant");
    /// assert_eq!(p.location.unwrap().location.field, "offVariant");
    /// ```
    pub fn of_snapshot(environment: &str, problem: bunting_core::Problem) -> Problem {
        Problem {
            message: problem.full_message(),
            entity: problem.entity,
            path: format!("{environment}: {}", problem.path),
            location: Some(SnapshotLocation {
                environment: environment.to_string(),
                location: problem.location,
                span: problem.span,
            }),
        }
    }
}

impl Problem {
    /// A problem of `path`.
    ///
    /// ```
    /// let p = bunting_origin::store::Problem::new("key", "must not be empty");
    /// assert_eq!(p.path, "key");
    /// ```
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            entity: None,
            path: path.into(),
            message: message.into(),
            location: None,
        }
    }
}

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
