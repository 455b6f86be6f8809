//! The `slack` format: an event as a Slack incoming-webhook message,
//! `{"text": "…"}` (Slack's `mrkdwn`, with `&`, `<` and `>` escaped as
//! Slack asks). Pure.
//!
//! ```
//! use serde_json::json;
//! let event = json!({"type": "flag.create", "timestamp": "2026-12-02T10:00:00.000000Z",
//!     "data": {"organization": "acme", "entityKey": "dark-mode", "actor": "user:ana@example.com"}});
//! let msg = bunting_origin::webhooks::slack::message(&event);
//! assert_eq!(msg["text"], "*acme* · `flag.create` · dark-mode · by user:ana@example.com");
//! ```

use serde_json::{Value, json};

/// `text` with Slack's control characters escaped.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The Slack message of `event` (the `standard` body): organization,
/// event type, what it is about (an entity's key, a flag, an environment)
/// and who did it, when known; a rollback's action and a failure's error.
pub fn message(event: &Value) -> Value {
    let data = &event["data"];
    let field = |name: &str| data[name].as_str().map(escape);
    let mut parts = vec![
        format!("*{}*", field("organization").unwrap_or_default()),
        format!("`{}`", escape(event["type"].as_str().unwrap_or("event"))),
    ];
    let subject = field("entityKey")
        .or_else(|| field("flag"))
        .or_else(|| field("environment"));
    if let Some(s) = subject {
        parts.push(s);
    }
    if let Some(action) = data["action"]
        .as_str()
        .filter(|_| data["entityKey"].is_null())
    {
        parts.push(format!("action {}", escape(action)));
    }
    if let Some(error) = field("error") {
        parts.push(format!("error: {error}"));
    }
    if let Some(actor) = field("actor") {
        parts.push(format!("by {actor}"));
    }
    json!({ "text": parts.join(" · ") })
}
