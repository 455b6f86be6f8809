//! Webhook subscriptions: what an organization subscribes to (event-type
//! patterns), where (an `http`/`https` URL) and in which format, with the
//! validation of a subscription body. Pure: the store keeps subscriptions
//! and their outbox ([`crate::store::webhooks`]), the delivery loop
//! ([`crate::webhooks`]) signs and sends.
//!
//! Event types are `<entityType>.<action>` for every audited action
//! (`flag.create`, `flagConfig.update`, `segment.delete`), plus the events
//! that are not audit entries: `rollback`, `rampHold`, `publish.failed`,
//! `breakGlass` and `changeRequest.<opened|approved|rejected|applied|cancelled>`.
//! A subscription's pattern is `*` (everything), `<family>.*` (every action
//! of one family), or one event type.
//!
//! ```
//! use bunting_origin::model::webhook::{matches, pattern_problem};
//! assert!(matches("flagConfig.*", "flagConfig.update"));
//! assert!(matches("*", "rollback"));
//! assert!(!matches("flag.*", "flagConfig.update"));
//! assert!(pattern_problem("changeRequest.*").is_none());
//! assert!(pattern_problem("flags.*").is_some());
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Problem;

/// The families of event types: every audited entity type, and the
/// families of events that are not audit entries (`publish.failed`,
/// `changeRequest.*`). A subscription's `<family>.*` or
/// `<family>.<action>` must name one of these; a new audited entity type
/// adds its name here.
pub const EVENT_FAMILIES: &[&str] = &[
    "organization",
    "project",
    "environment",
    "flag",
    "flagConfig",
    "segment",
    "layer",
    "sdkKey",
    "token",
    "metric",
    "experiment",
    "guardedRollout",
    "webhook",
    "user",
    "team",
    "role",
    "roleBinding",
    "session",
    "policy",
    "schedule",
    "changeRequest",
    "publish",
];

/// Event types without a family: a rollback (guardrail monitor or an
/// external alert), a held ramp step, an emergency bypass of a change
/// policy.
pub const STANDALONE_EVENTS: &[&str] = &["rollback", "rampHold", "breakGlass"];

/// The most patterns one subscription may have.
pub const MAX_PATTERNS: usize = 50;
/// The longest URL, in bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// The longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// Whether `action` is an action name: 1–64 ASCII letters, starting lower
/// case (`create`, `holdRamp`).
fn is_action(action: &str) -> bool {
    (1..=64).contains(&action.len())
        && action.starts_with(|c: char| c.is_ascii_lowercase())
        && action.chars().all(|c| c.is_ascii_alphabetic())
}

/// What is wrong with event-type pattern `pattern`, if anything.
///
/// ```
/// use bunting_origin::model::webhook::pattern_problem;
/// for ok in ["*", "flag.create", "flagConfig.*", "rollback", "publish.failed"] {
///     assert!(pattern_problem(ok).is_none(), "{ok}");
/// }
/// for bad in ["", "flag", "flag.", "nope.*", "flag.cre-ate", "*.create", "rollback.*"] {
///     assert!(pattern_problem(bad).is_some(), "{bad}");
/// }
/// ```
pub fn pattern_problem(pattern: &str) -> Option<String> {
    if pattern == "*" || STANDALONE_EVENTS.contains(&pattern) {
        return None;
    }
    let unknown = || {
        Some(format!(
            "unknown event pattern {pattern:?}: use \"*\", \"<family>.*\", \"<family>.<action>\" \
             (families: {}) or one of {}",
            EVENT_FAMILIES.join(", "),
            STANDALONE_EVENTS.join(", ")
        ))
    };
    let Some((family, action)) = pattern.split_once('.') else {
        return unknown();
    };
    if !EVENT_FAMILIES.contains(&family) || !(action == "*" || is_action(action)) {
        return unknown();
    }
    None
}

/// Whether `event` is an event type (a valid pattern without `*`): what
/// [`crate::store::Store::emit_event`] accepts.
///
/// ```
/// use bunting_origin::model::webhook::is_event_type;
/// assert!(is_event_type("changeRequest.approved") && is_event_type("breakGlass"));
/// assert!(!is_event_type("flag.*") && !is_event_type("*") && !is_event_type("oops"));
/// ```
pub fn is_event_type(event: &str) -> bool {
    !event.contains('*') && pattern_problem(event).is_none()
}

/// Whether `pattern` (valid, see [`pattern_problem`]) selects event type
/// `event`.
pub fn matches(pattern: &str, event: &str) -> bool {
    match pattern.strip_suffix(".*") {
        _ if pattern == "*" => true,
        Some(family) => event
            .strip_prefix(family)
            .is_some_and(|rest| rest.starts_with('.')),
        None => pattern == event,
    }
}

/// Whether any of `patterns` selects `event`.
pub fn selects(patterns: &[String], event: &str) -> bool {
    patterns.iter().any(|p| matches(p, event))
}

/// How a subscription's messages are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// The event as JSON: `{"type", "timestamp", "data"}`.
    Standard,
    /// A Slack incoming-webhook message: `{"text": "…"}`.
    Slack,
}

impl WebhookFormat {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookFormat::Standard => "standard",
            WebhookFormat::Slack => "slack",
        }
    }
}

impl fmt::Display for WebhookFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for WebhookFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<WebhookFormat, String> {
        match s {
            "standard" => Ok(WebhookFormat::Standard),
            "slack" => Ok(WebhookFormat::Slack),
            _ => Err(format!("unknown format {s:?} (standard or slack)")),
        }
    }
}

/// A subscription as a client sends it (create and replace). Every field
/// is checked by [`WebhookInput::validate`], which names every problem.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookInput {
    /// Where messages are POSTed: an `http` or `https` URL with a host, at
    /// most 2,048 bytes.
    pub url: String,
    /// Event-type patterns (1 to 50): `*`, `<family>.*` (e.g.
    /// `flagConfig.*`, `changeRequest.*`), one event type (`flag.update`,
    /// `publish.failed`), or `rollback`, `rampHold`, `breakGlass`.
    pub events: Vec<String>,
    /// `standard` (JSON, default) or `slack` (a Slack-compatible
    /// `{"text": …}` message).
    #[serde(default)]
    pub format: Option<String>,
    /// Whether messages are sent (default true). A disabled subscription
    /// gets no new messages; its pending ones wait until it is enabled.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// A note for people, at most 500 characters.
    #[serde(default)]
    pub description: Option<String>,
}

/// A valid subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSpec {
    /// The URL.
    pub url: String,
    /// The event-type patterns.
    pub events: Vec<String>,
    /// The format.
    pub format: WebhookFormat,
    /// Whether messages are sent.
    pub enabled: bool,
    /// A note for people ("" when none).
    pub description: String,
}

/// What is wrong with `url` as a webhook URL, if anything.
///
/// ```
/// use bunting_origin::model::webhook::url_problem;
/// assert!(url_problem("https://hooks.example.com/bunting").is_none());
/// assert!(url_problem("ftp://example.com").is_some());
/// assert!(url_problem("not a url").is_some());
/// ```
pub fn url_problem(url: &str) -> Option<String> {
    if url.len() > MAX_URL_BYTES {
        return Some(format!("the URL is longer than {MAX_URL_BYTES} bytes"));
    }
    match reqwest::Url::parse(url) {
        Err(e) => Some(format!("{url:?} is not a URL: {e}")),
        Ok(u) if !matches!(u.scheme(), "http" | "https") => Some(format!(
            "the URL's scheme must be http or https, not {:?}",
            u.scheme()
        )),
        Ok(u) if u.host_str().is_none_or(str::is_empty) => Some("the URL has no host".to_string()),
        Ok(u) if !u.username().is_empty() || u.password().is_some() => Some(
            "the URL must not carry credentials (the signature authenticates messages)".to_string(),
        ),
        Ok(_) => None,
    }
}

impl WebhookInput {
    /// The subscription, or every problem of the body.
    ///
    /// ```
    /// use bunting_origin::model::webhook::WebhookInput;
    /// let input: WebhookInput = serde_json::from_value(serde_json::json!({
    ///     "url": "gopher://x", "events": ["nope"], "format": "xml"})).unwrap();
    /// let paths: Vec<_> = input.validate().unwrap_err().into_iter().map(|p| p.path).collect();
    /// assert_eq!(paths, ["url", "events[0]", "format"]);
    /// ```
    pub fn validate(self) -> Result<WebhookSpec, Vec<Problem>> {
        let mut problems = Vec::new();
        if let Some(m) = url_problem(&self.url) {
            problems.push(Problem::new("url", m));
        }
        if self.events.is_empty() {
            problems.push(Problem::new(
                "events",
                "subscribe to at least one event pattern (\"*\" for every event)",
            ));
        }
        if self.events.len() > MAX_PATTERNS {
            problems.push(Problem::new(
                "events",
                format!("at most {MAX_PATTERNS} patterns"),
            ));
        }
        for (i, p) in self.events.iter().enumerate() {
            if let Some(m) = pattern_problem(p) {
                problems.push(Problem::new(format!("events[{i}]"), m));
            }
        }
        let format = match self.format.as_deref().map(str::parse).transpose() {
            Ok(f) => f.unwrap_or(WebhookFormat::Standard),
            Err(m) => {
                problems.push(Problem::new("format", m));
                WebhookFormat::Standard
            }
        };
        let description = self.description.unwrap_or_default();
        if description.chars().count() > MAX_DESCRIPTION_CHARS {
            problems.push(Problem::new(
                "description",
                format!("at most {MAX_DESCRIPTION_CHARS} characters"),
            ));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut events = self.events;
        events.dedup();
        Ok(WebhookSpec {
            url: self.url,
            events,
            format,
            enabled: self.enabled.unwrap_or(true),
            description,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_patterns_match_only_their_family() {
        assert!(matches("changeRequest.*", "changeRequest.approved"));
        assert!(!matches("changeRequest.*", "changeRequestX.approved"));
        assert!(!matches("flag.*", "flag"));
        assert!(matches("publish.failed", "publish.failed"));
        assert!(!matches("rollback", "flagConfig.rollback"));
        assert!(selects(
            &["segment.delete".into(), "rollback".into()],
            "rollback"
        ));
    }

    #[test]
    fn every_problem_of_a_body_is_named() {
        let input = WebhookInput {
            url: "https://user:pw@example.com/".into(),
            events: vec![],
            format: Some("slack".into()),
            enabled: None,
            description: Some("x".repeat(501)),
        };
        let paths: Vec<_> = input
            .validate()
            .unwrap_err()
            .into_iter()
            .map(|p| p.path)
            .collect();
        assert_eq!(paths, ["url", "events", "description"]);
    }
}
