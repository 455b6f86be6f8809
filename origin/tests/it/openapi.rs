//! The OpenAPI 3.1 document generated from the handlers must equal the
//! checked-in `docs/openapi.json`, and the served one must equal both.
//!
//! After changing the API, regenerate the file with
//! `BUNTING_BLESS=1 cargo test -p bunting-origin --test it openapi::` and commit it.

use axum::http::Method;
use bunting_origin::api::openapi;
use bunting_origin::store::Store;
use serde_json::Value;

use crate::common::app::TestApp;

const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
const REGENERATE: &str = "BUNTING_BLESS=1 cargo test -p bunting-origin --test it openapi::";

/// The generated document as it is written to the file.
fn generated() -> String {
    format!("{}\n", openapi::json())
}

#[test]
fn checked_in_document_is_current() {
    let generated = generated();
    if std::env::var("BUNTING_BLESS").as_deref() == Ok("1") {
        std::fs::write(CHECKED_IN, &generated)
            .unwrap_or_else(|e| panic!("cannot write {CHECKED_IN}: {e}"));
        eprintln!("wrote {CHECKED_IN}");
        return;
    }
    let on_disk = std::fs::read_to_string(CHECKED_IN).unwrap_or_else(|e| {
        panic!("cannot read {CHECKED_IN} ({e}); generate it with `{REGENERATE}`")
    });
    if on_disk != generated {
        let first = on_disk
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| on_disk.lines().count().min(generated.lines().count()));
        panic!(
            "docs/openapi.json is not the document the code generates (first difference at \
             line {}):\n  checked in: {}\n  generated:  {}\nIf the API change is intended, \
             regenerate it with `{REGENERATE}` and commit the file.",
            first + 1,
            on_disk.lines().nth(first).unwrap_or("(end of file)"),
            generated.lines().nth(first).unwrap_or("(end of file)"),
        );
    }
}

#[test]
fn document_is_openapi_3_1() {
    let doc: Value = serde_json::from_str(&openapi::json()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0", "{:#}", doc["openapi"]);
    assert_eq!(doc["info"]["title"], "bunting origin API");
    // Every operation needs the bearer token unless it says otherwise.
    assert_eq!(
        doc["components"]["securitySchemes"]["token"],
        serde_json::json!({"type": "http", "scheme": "bearer"})
    );
    assert_eq!(doc["security"], serde_json::json!([{"token": []}]));
    assert!(
        doc["paths"]["/api/v1/orgs"]["get"].is_object(),
        "{:#}",
        doc["paths"]
    );
}

#[tokio::test]
async fn served_document_is_the_generated_one() {
    let store = Store::open("sqlite::memory:").await.unwrap();
    // No token: the document is public.
    let resp = TestApp::root(store)
        .anonymous()
        .call_with(Method::GET, "/openapi.json", None, &[])
        .await;
    assert_eq!(resp.status, 200);
    assert!(
        resp.content_type().starts_with("application/json"),
        "{:?}",
        resp.headers
    );
    let served: Value = serde_json::from_str(&resp.text).unwrap();
    let generated: Value = serde_json::from_str(&openapi::json()).unwrap();
    assert_eq!(
        served, generated,
        "GET /api/v1/openapi.json differs from openapi::json()"
    );
}
