//! [`Problem`]: one reason a definition or a write is invalid.

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
