//! Metrics: how a user's events become one number, and what uses a metric.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Problem;
use super::key::check_key;

/// How a metric turns a user's events into one number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum MetricKind {
    /// 1 if the user had the event within the attribution window after
    /// their first exposure, else 0.
    Conversion,
    /// The sum of the event's values per user (users without the event
    /// count 0); compared as a mean per user.
    Mean,
    /// The sum of the event's values per user; reported as a total and
    /// compared per user.
    Sum,
    /// Per-user sums of `event` over per-user sums of `denominatorEvent`
    /// (delta method).
    Ratio,
}

/// A metric definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricSpec {
    /// Key, unique in the project: 1–200 characters of
    /// `A-Z a-z 0-9 - _ .`, not `.` or `..`.
    #[schema(
        pattern = "^(?!\\.\\.?$)[A-Za-z0-9._-]+$",
        min_length = 1,
        max_length = 200
    )]
    pub key: String,
    /// How events become a per-user number.
    pub kind: MetricKind,
    /// The event name (numerator of a ratio).
    pub event: String,
    /// The denominator event of a ratio metric.
    #[serde(default)]
    pub denominator_event: Option<String>,
    /// Seconds after a user's first exposure during which events count
    /// (default: 7 days; 1 to [`MAX_WINDOW_SECONDS`], 365 days).
    #[serde(default)]
    pub window_seconds: Option<u64>,
    /// Whether larger values are better (default true); guardrails and
    /// decisions read it.
    #[serde(default = "yes")]
    pub higher_is_better: bool,
    /// Winsorising: per-user values above this are capped to it.
    #[serde(default)]
    pub cap: Option<f64>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
}

fn yes() -> bool {
    true
}

/// Default attribution window: 7 days.
pub const DEFAULT_WINDOW_SECONDS: u64 = 7 * 24 * 3600;

/// Longest attribution window: 365 days. The window is added to exposure
/// times in SQL, so it must stay far from the 64-bit bounds.
pub const MAX_WINDOW_SECONDS: u64 = 365 * 24 * 3600;

impl MetricSpec {
    /// A conversion metric on `event`.
    pub fn conversion(key: &str, event: &str) -> MetricSpec {
        MetricSpec {
            key: key.into(),
            kind: MetricKind::Conversion,
            event: event.into(),
            denominator_event: None,
            window_seconds: None,
            higher_is_better: true,
            cap: None,
            description: None,
        }
    }

    /// The attribution window in milliseconds (at most
    /// [`MAX_WINDOW_SECONDS`]; longer ones are refused when stored).
    pub fn window_ms(&self) -> i64 {
        let s = self
            .window_seconds
            .unwrap_or(DEFAULT_WINDOW_SECONDS)
            .min(MAX_WINDOW_SECONDS);
        i64::try_from(s).unwrap_or(i64::MAX).saturating_mul(1000)
    }

    /// Every problem of this definition on its own (key, event names,
    /// window, cap).
    pub fn problems(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        check_key(&mut p, &self.key);
        let event_ok = |e: &str| bunting_wire::check_event_name(e).is_ok();
        if !event_ok(&self.event) {
            p.push(Problem::new(
                "event",
                format!(
                    "{:?} is not an event name (1-128 of A-Z a-z 0-9 _ . : -)",
                    self.event
                ),
            ));
        }
        match (&self.kind, &self.denominator_event) {
            (MetricKind::Ratio, None) => p.push(Problem::new(
                "denominatorEvent",
                "a ratio metric needs a denominator event",
            )),
            (MetricKind::Ratio, Some(d)) if !event_ok(d) => p.push(Problem::new(
                "denominatorEvent",
                format!("{d:?} is not an event name"),
            )),
            (MetricKind::Ratio, Some(_)) => {}
            (_, Some(_)) => p.push(Problem::new(
                "denominatorEvent",
                "only ratio metrics have a denominator event",
            )),
            (_, None) => {}
        }
        match self.window_seconds {
            Some(0) => p.push(Problem::new("windowSeconds", "must be positive")),
            Some(w) if w > MAX_WINDOW_SECONDS => p.push(Problem::new(
                "windowSeconds",
                format!(
                    "{w} is more than {MAX_WINDOW_SECONDS} seconds (365 days), the longest window"
                ),
            )),
            _ => {}
        }
        if let Some(c) = self.cap
            && (!c.is_finite() || c <= 0.0)
        {
            p.push(Problem::new("cap", "must be a positive number"));
        }
        if self.cap.is_some() && self.kind == MetricKind::Conversion {
            p.push(Problem::new(
                "cap",
                "a conversion is 0 or 1: nothing to cap",
            ));
        }
        p
    }
}

/// A stored metric.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricRecord {
    /// Row id.
    pub id: i64,
    /// The project.
    pub project_id: i64,
    /// The definition.
    #[serde(flatten)]
    pub spec: MetricSpec,
    /// Optimistic-concurrency version.
    pub version: i64,
}

/// Something that uses a metric ([`crate::store::Store::metric_users`]).
///
/// ```
/// use bunting_origin::model::metric::MetricUser;
/// let u = MetricUser {
///     kind: "guardedRollout".into(), key: "checkout".into(),
///     environment: "production".into(), status: "active".into(),
/// };
/// assert_eq!(u.to_string(), "active guarded rollout \"checkout\" in production");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricUser {
    /// `experiment` or `guardedRollout`.
    pub kind: String,
    /// The experiment's key, or the guarded rollout's flag key.
    pub key: String,
    /// Its environment's key.
    pub environment: String,
    /// Its status (`draft`, `running`, …; `active`, `disabled`, …).
    pub status: String,
}

impl std::fmt::Display for MetricUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind.as_str() {
            "guardedRollout" => "guarded rollout",
            other => other,
        };
        write!(
            f,
            "{} {kind} {:?} in {}",
            self.status, self.key, self.environment
        )
    }
}
