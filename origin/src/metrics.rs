//! Prometheus metrics of the origin, served at `/metrics` in the text
//! exposition format.
//!
//! ```
//! let m = bunting_origin::metrics::Metrics::new();
//! m.events_accepted.inc_by(3);
//! assert!(m.render().contains("bunting_events_accepted_total 3"));
//! ```

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of an HTTP request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Method.
    pub method: String,
    /// The matched route, e.g. `/api/v1/orgs/{org}`.
    pub route: String,
    /// Status code.
    pub status: u16,
}

/// Labels of an environment.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EnvLabels {
    /// `org/project/environment`.
    pub environment: String,
}

/// Labels of a webhook delivery attempt.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `delivered`, `retried` (failed, to be tried again) or `failed`
    /// (failed, no attempts left). No organization or URL: the counter is
    /// the operator's, not a tenant's.
    pub outcome: String,
}

/// Every metric of the origin.
pub struct Metrics {
    registry: Registry,
    /// Request latency by method, route and status.
    pub http_requests: Family<RequestLabels, Histogram>,
    /// Seconds the oldest unpublished change of each environment has waited
    /// (0 when published).
    pub publish_lag_seconds: Family<EnvLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// Successful snapshot publications.
    pub publishes: Counter,
    /// Failed publication attempts.
    pub publish_failures: Counter,
    /// (environment, target) pairs whose last publication failed
    /// permanently (the target cannot store it; not retried until the
    /// environment changes).
    pub publish_blocked: Gauge,
    /// Events accepted by `POST /api/v1/events` (after deduplication).
    pub events_accepted: Counter,
    /// Events dropped as duplicates.
    pub events_duplicate: Counter,
    /// Events rejected as invalid.
    pub events_invalid: Counter,
    /// Event batches refused with 429.
    pub events_throttled: Counter,
    /// Webhook delivery attempts by outcome.
    pub webhook_deliveries: Family<OutcomeLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every metric registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("bunting");
        let http_requests = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            http_requests.clone(),
        );
        let publish_lag_seconds = Family::default();
        registry.register(
            "publish_lag_seconds",
            "Age of the oldest change not yet published to the edge",
            publish_lag_seconds.clone(),
        );
        let publishes = Counter::default();
        registry.register("publishes", "Snapshots published", publishes.clone());
        let publish_failures = Counter::default();
        registry.register(
            "publish_failures",
            "Failed publication attempts",
            publish_failures.clone(),
        );
        let publish_blocked = Gauge::default();
        registry.register(
            "publish_blocked",
            "Environment/target pairs whose publication failed permanently",
            publish_blocked.clone(),
        );
        let events_accepted = Counter::default();
        registry.register(
            "events_accepted",
            "Events accepted and stored",
            events_accepted.clone(),
        );
        let events_duplicate = Counter::default();
        registry.register(
            "events_duplicate",
            "Events dropped as duplicates of stored ones",
            events_duplicate.clone(),
        );
        let events_invalid = Counter::default();
        registry.register(
            "events_invalid",
            "Events rejected as invalid",
            events_invalid.clone(),
        );
        let events_throttled = Counter::default();
        registry.register(
            "events_throttled",
            "Event batches refused with 429",
            events_throttled.clone(),
        );
        let webhook_deliveries = Family::default();
        registry.register(
            "webhook_deliveries",
            "Webhook delivery attempts by outcome",
            webhook_deliveries.clone(),
        );
        Metrics {
            registry,
            http_requests,
            publish_lag_seconds,
            publishes,
            publish_failures,
            publish_blocked,
            events_accepted,
            events_duplicate,
            events_invalid,
            events_throttled,
            webhook_deliveries,
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String");
        out
    }
}
