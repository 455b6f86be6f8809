//! A webhook receiver for the origin's notifier: a real socket, since the
//! notifier POSTs to a URL.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::routing::post;
use serde_json::Value;

/// The JSON bodies a receiver got, in order.
pub(crate) type Received = Arc<Mutex<Vec<Value>>>;

/// A receiver serving `POST /hook` on 127.0.0.1: its URL and what it gets.
pub(crate) async fn receiver() -> (String, Received) {
    let hooks = Received::default();
    let seen = hooks.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |Json(v): Json<Value>| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(v);
                "ok"
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, hooks)
}
