//! Webhook notifications: rollbacks (and later other events) are POSTed as
//! JSON to every configured URL (`bunting serve --webhook-url`), in the
//! background, with a few retries; a failing webhook never blocks or fails
//! the change it reports.
//!
//! ```
//! let n = bunting_origin::notify::Notifier::new(vec![]);
//! assert!(n.urls().is_empty());
//! ```

use std::time::Duration;

use serde_json::Value;

/// Sends events to webhooks.
#[derive(Debug, Clone)]
pub struct Notifier {
    urls: Vec<String>,
    client: reqwest::Client,
}

impl Notifier {
    /// A notifier for `urls` (none: notifications are only logged).
    pub fn new(urls: Vec<String>) -> Notifier {
        Notifier {
            urls,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client"),
        }
    }

    /// The webhook URLs.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// Sends `event` to every URL in the background (3 attempts each, 0.5 s
    /// then 2 s apart); returns at once.
    pub fn send(&self, event: Value) {
        tracing::info!(event = %event, "notification");
        for url in self.urls.clone() {
            let client = self.client.clone();
            let event = event.clone();
            tokio::spawn(async move {
                for (attempt, pause) in [0u64, 500, 2000].into_iter().enumerate() {
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    match client.post(&url).json(&event).send().await {
                        Ok(r) if r.status().is_success() => return,
                        Ok(r) => {
                            tracing::warn!(%url, status = %r.status(), attempt, "webhook refused")
                        }
                        Err(e) => tracing::warn!(%url, error = %e, attempt, "webhook failed"),
                    }
                }
                tracing::error!(%url, "webhook gave up after 3 attempts");
            });
        }
    }
}
