//! Every response the tests receive is checked against the published
//! OpenAPI document, `docs/openapi.json`: the operation is found by method
//! and path template, the status must be one the operation documents, the
//! content type one that status documents (no content documented: no body),
//! and a JSON body must validate against its schema (JSON Schema 2020-12,
//! `$ref`s resolved within `#/components`).
//!
//! The test clients send through [`send`] (reqwest) or [`oneshot`] (a
//! router in process); a mismatch fails the test with the operation, the
//! status and every validator error. Paths outside `/api/v1` (`/healthz`,
//! `/readyz`, `/metrics`) and the document itself are not in the document
//! and are not checked; a path under `/api/v1` that no operation matches
//! must be the JSON 404 of the router's fallback.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use serde_json::{Value, json};

const DOCUMENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
const PREFIX: &str = "/api/v1";

/// The document, its operations and the validators compiled so far.
struct Document {
    doc: Value,
    /// (method in lower case, path template split at `/`).
    operations: Vec<(String, String, Vec<String>)>,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

static DOC: LazyLock<Document> = LazyLock::new(|| {
    let text =
        std::fs::read_to_string(DOCUMENT).unwrap_or_else(|e| panic!("cannot read {DOCUMENT}: {e}"));
    let doc: Value = serde_json::from_str(&text).expect("docs/openapi.json is JSON");
    let mut operations = Vec::new();
    for (template, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            let segments = template.split('/').map(str::to_string).collect();
            operations.push((method.clone(), template.clone(), segments));
        }
    }
    Document {
        doc,
        operations,
        validators: Mutex::new(HashMap::new()),
    }
});

/// Sends `request` (one of the tests' reqwest clients), checks the response
/// against the document and hands it back whole, as if unread.
pub(crate) async fn send(request: reqwest::RequestBuilder) -> reqwest::Response {
    let (client, request) = request.build_split();
    let request = request.expect("a well-formed request");
    let method = request.method().as_str().to_string();
    let path = request.url().path().to_string();
    let response = client.execute(request).await.expect("the origin answers");
    let status = response.status();
    let version = response.version();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("the response body");
    check(&method, &path, status.as_u16(), &headers, &bytes);
    let mut rebuilt = axum::http::Response::new(bytes);
    *rebuilt.status_mut() = status;
    *rebuilt.version_mut() = version;
    *rebuilt.headers_mut() = headers;
    reqwest::Response::from(rebuilt)
}

/// Sends `request` to `app` in process (`tower::ServiceExt::oneshot`),
/// checks the response against the document and hands it back whole.
pub(crate) async fn oneshot(
    app: axum::Router,
    request: axum::http::Request<axum::body::Body>,
) -> axum::response::Response {
    use tower::ServiceExt;
    let method = request.method().as_str().to_string();
    let path = request.uri().path().to_string();
    let response = app.oneshot(request).await.expect("the router answers");
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .expect("the response body");
    check(
        &method,
        &path,
        parts.status.as_u16(),
        &parts.headers,
        &bytes,
    );
    axum::response::Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// Fails the test unless `status`, the content type and `body` are what
/// the document says `method path` answers.
pub(crate) fn check(
    method: &str,
    path: &str,
    status: u16,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) {
    if let Err(e) = verify(method, path, status, headers, body) {
        let text = String::from_utf8_lossy(body);
        let shown: String = text.chars().take(2000).collect();
        panic!(
            "the response does not match docs/openapi.json\n  request: {} {path}\n  \
             {e}\n  status: {status}, content type: {:?}\n  body: {shown}",
            method.to_uppercase(),
            headers.get("content-type"),
        );
    }
}

fn verify(
    method: &str,
    path: &str,
    status: u16,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<(), String> {
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return Ok(()); // operational endpoints: not part of the document
    };
    if rest == "/openapi.json" {
        return Ok(());
    }
    let doc = &DOC.doc;
    let method = method.to_lowercase();
    let segments: Vec<&str> = path.split('/').collect();
    // The template that matches with the most literal segments.
    let matched = DOC
        .operations
        .iter()
        .filter(|(m, _, t)| {
            *m == method
                && t.len() == segments.len()
                && t.iter().zip(&segments).all(|(t, s)| {
                    (t.starts_with('{') && t.ends_with('}') && !s.is_empty()) || t == s
                })
        })
        .max_by_key(|(_, _, t)| t.iter().filter(|t| !t.starts_with('{')).count());
    let Some((_, template, _)) = matched else {
        // The router's fallback: an unknown route is the JSON 404; a method
        // a route does not have, the JSON 405.
        let error = json!({"$ref": "#/components/schemas/ErrorBody"});
        if status == 404 || status == 405 {
            return validate_json(&error, "#/components/schemas/ErrorBody", body)
                .map_err(|e| format!("no operation {method} {path} ({status}); {e}"));
        }
        return Err(format!(
            "no operation {} {path} in the document (answered {status})",
            method.to_uppercase()
        ));
    };
    let operation = format!("{} {template}", method.to_uppercase());
    let responses = &doc["paths"][template][&method]["responses"];
    let code = status.to_string();
    let range = format!("{}XX", status / 100);
    let Some(response) = [code.as_str(), range.as_str(), "default"]
        .iter()
        .find_map(|k| responses.get(*k))
    else {
        let documented: Vec<&String> = responses.as_object().map_or(vec![], |o| o.keys().collect());
        return Err(format!(
            "operation {operation}: status {status} is not documented (documented: {documented:?})"
        ));
    };
    let response = resolve(doc, response);
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let Some(content) = response.get("content").and_then(Value::as_object) else {
        return if body.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "operation {operation}: status {status} documents no content, yet a body came"
            ))
        };
    };
    let Some(media) = content_type else {
        return Err(format!(
            "operation {operation}: status {status} sent no content type (documented: {:?})",
            content.keys().collect::<Vec<_>>()
        ));
    };
    let Some(entry) = content.get(&media) else {
        return Err(format!(
            "operation {operation}: status {status} sent {media}, documented: {:?}",
            content.keys().collect::<Vec<_>>()
        ));
    };
    let json_media = media == "application/json" || media.ends_with("+json");
    match entry.get("schema") {
        Some(schema) if json_media => {
            validate_json(schema, &format!("{operation} {status} {media}"), body)
                .map_err(|e| format!("operation {operation}: {e}"))
        }
        _ => std::str::from_utf8(body)
            .map(|_| ())
            .map_err(|_| format!("operation {operation}: the {media} body is not UTF-8")),
    }
}

/// A response object, through a `$ref` to `#/components/responses`.
fn resolve<'a>(doc: &'a Value, response: &'a Value) -> &'a Value {
    match response.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r.strip_prefix('#').expect("a local $ref");
            doc.pointer(pointer)
                .unwrap_or_else(|| panic!("docs/openapi.json: dangling $ref {r}"))
        }
        None => response,
    }
}

fn validate_json(schema: &Value, key: &str, body: &[u8]) -> Result<(), String> {
    let instance: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the body is not JSON ({e}), though the document says JSON"))?;
    let validator = validator(key, schema);
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| format!("at {:?}: {e}", e.instance_path().as_str()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the body does not match the schema {schema}:\n    {}",
            errors.join("\n    ")
        ))
    }
}

/// The validator of `schema`, whose `$ref`s point into the document's
/// components; compiled once per process and response.
fn validator(key: &str, schema: &Value) -> Arc<jsonschema::Validator> {
    let mut cache = DOC.validators.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(v) = cache.get(key) {
        return v.clone();
    }
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "allOf": [schema],
        "components": DOC.doc["components"],
    });
    let v = Arc::new(
        jsonschema::draft202012::options()
            .build(&root)
            .unwrap_or_else(|e| {
                panic!("docs/openapi.json: the schema of {key} does not compile: {e}")
            }),
    );
    cache.insert(key.to_string(), v.clone());
    v
}

/// Whether `value` is valid against the document's component schema `name`
/// (`#/components/schemas/{name}`).
pub(crate) fn component_accepts(name: &str, value: &Value) -> bool {
    let pointer = format!("#/components/schemas/{name}");
    validator(&pointer, &json!({ "$ref": pointer })).is_valid(value)
}
