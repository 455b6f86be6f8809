//! What the origin records of every request: its latency per route (the
//! `http_requests` histogram of [`crate::metrics`]), one log line, and
//! the failure behind an error response ([`Failure`]), logged here once
//! rather than where the error was made.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::error::Failure;
use super::{AppState, REQUEST_ID};
use crate::metrics::RequestLabels;

/// Middleware (`axum::middleware::from_fn_with_state`): times the request,
/// logs its failure if it has one (`error` with the request id), then the
/// request line (`request_id`, `method`, `route`, `status`, `micros`).
pub async fn record(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut response = next.run(req).await;
    let elapsed = start.elapsed();
    if let Some(failure) = response.extensions_mut().remove::<Failure>() {
        tracing::error!(request_id = %id, error = %failure.error, "{}", failure.message);
    }
    let status = response.status().as_u16();
    state
        .metrics
        .http_requests
        .get_or_create(&RequestLabels {
            method: method.clone(),
            route: route.clone(),
            status,
        })
        .observe(elapsed.as_secs_f64());
    tracing::info!(
        request_id = %id,
        method = %method,
        route = %route,
        status,
        micros = elapsed.as_micros() as u64,
        "request"
    );
    response
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::body::Body;
    use axum::http::Request;
    use axum::middleware;
    use axum::routing::get;
    use tower::ServiceExt;
    use tracing_subscriber::fmt::MakeWriter;

    use super::*;
    use crate::api::{ApiError, ServeConfig};
    use crate::store::Store;

    /// The log output, shared with the subscriber.
    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Log {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Log {
        type Writer = Log;
        fn make_writer(&'a self) -> Log {
            self.clone()
        }
    }

    #[tokio::test]
    async fn a_failure_is_logged_once_with_the_request_id() {
        let log = Log::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(log.clone())
            .with_ansi(false)
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);
        let store = Store::open("sqlite::memory:").await.unwrap();
        let state = AppState::new(store, ServeConfig::default());
        let app = Router::new()
            .route(
                "/fail",
                get(|| async { Err::<(), _>(ApiError::internal("disk full")) }),
            )
            .layer(middleware::from_fn_with_state(state.clone(), record))
            .with_state(state);
        let request = Request::get("/fail")
            .header(&REQUEST_ID, "req-1")
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), 500);
        assert!(response.extensions().get::<Failure>().is_none());
        let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        let errors: Vec<&str> = text.lines().filter(|l| l.contains("ERROR")).collect();
        assert_eq!(errors.len(), 1, "{text}");
        for part in ["internal error", "error=disk full", "request_id=req-1"] {
            assert!(errors[0].contains(part), "{part:?} in {text}");
        }
    }
}
