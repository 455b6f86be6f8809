//! Text every database can store, checked before any handler runs.
//!
//! PostgreSQL's `text` cannot hold the NUL character (U+0000) while SQLite
//! stores it, so the same request used to answer 500 on one backend and
//! succeed on the other. The API refuses NUL in all client text, in one
//! place each:
//!
//! - JSON bodies ([`super::body::Body`]): every string and every object key,
//!   at any depth, answers **422** `invalid` with one problem per offending
//!   field (`rules[0].if`, `variants.on`, `tags[2]`);
//! - path parameters and query values ([`uri`], a middleware on every
//!   route): **400** `bad_request` with one problem per parameter
//!   (`path.flag`, `query.q`).
//!
//! Other characters (tabs, new lines, any Unicode) are stored as sent; what
//! each field admits beyond this (keys, event names) is its own rule.
//!
//! ```
//! use bunting_origin::api::text::json_problems;
//! let body = serde_json::json!({"key": "a\u{0}b", "tags": ["ok", "\u{0}"], "x\u{0}": 1});
//! let paths: Vec<String> = json_problems(&body).into_iter().map(|p| p.path).collect();
//! assert_eq!(paths, ["key", "tags[1]", "x\\u0000"]);
//! ```

use axum::extract::{Query, RawPathParams, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::ApiError;
use crate::store::Problem;

/// What the problem of a field with a NUL character says.
pub const NUL_MESSAGE: &str = "text may not contain the NUL character (U+0000)";

/// Whether `s` is text the store accepts (no NUL).
pub fn storable(s: &str) -> bool {
    !s.contains('\0')
}

/// One problem per string or object key of `value` that is not
/// [`storable`], with its path (`a.b[2].c`; the whole body is `body`).
pub fn json_problems(value: &Value) -> Vec<Problem> {
    let mut problems = Vec::new();
    walk(value, &mut String::new(), &mut problems);
    problems
}

fn walk(value: &Value, path: &mut String, problems: &mut Vec<Problem>) {
    match value {
        Value::String(s) if !storable(s) => problems.push(Problem::new(
            if path.is_empty() {
                "body"
            } else {
                path.as_str()
            },
            NUL_MESSAGE,
        )),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk(item, path, problems);
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&k.replace('\0', "\\u0000"));
                if storable(k) {
                    walk(v, path, problems);
                } else {
                    problems.push(Problem::new(path.as_str(), NUL_MESSAGE));
                }
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// Middleware: answers 400 when a path parameter or a query value (or
/// name) holds a NUL character, naming each (`path.<name>`,
/// `query.<name>`), before a handler reads them.
pub async fn uri(req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let mut problems = Vec::new();
    // Parameters that are not UTF-8 are refused by the handlers' own
    // extractors; only decoded text is looked at here.
    if let Ok(params) = axum::RequestPartsExt::extract::<RawPathParams>(&mut parts).await {
        for (name, value) in &params {
            if !storable(value) {
                problems.push(Problem::new(format!("path.{name}"), NUL_MESSAGE));
            }
        }
    }
    if parts.uri.query().is_some()
        && let Ok(Query(pairs)) =
            axum::RequestPartsExt::extract::<Query<Vec<(String, String)>>>(&mut parts).await
    {
        for (name, value) in &pairs {
            if !storable(name) || !storable(value) {
                problems.push(Problem::new(
                    format!("query.{}", name.replace('\0', "\\u0000")),
                    NUL_MESSAGE,
                ));
            }
        }
    }
    if !problems.is_empty() {
        let mut e = ApiError::bad_request(match problems.len() {
            1 => format!("1 problem: {}", problems[0].message),
            n => format!("{n} problems"),
        });
        e.problems = problems;
        return e.into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}
