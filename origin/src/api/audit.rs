//! The audit log over HTTP: an organization's entries (filtered, paged),
//! their JSON-lines export, and verification of the whole hash chain.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Principal;
use super::flags::AuditEntries;
use super::paths::OrgPath;
use super::{ApiError, ApiResult, AppState, scope};
use crate::store::{AuditFault, AuditQuery, Permission};

/// The routes of the audit log.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(export))
        .routes(routes!(verify))
}

/// Filters of the audit log.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct AuditFilter {
    /// Entity type: `organization`, `project`, `environment`, `flag`,
    /// `flagConfig`, `segment`, `layer`, `token`, `sdkKey`.
    pub entity_type: Option<String>,
    /// Entity id (with `entityType`).
    pub entity_id: Option<i64>,
    /// Actor, e.g. `token:3:ci` or `admin`.
    pub actor: Option<String>,
    /// Entries at or after this UTC time (any prefix of
    /// `YYYY-MM-DDTHH:MM:SS.ffffffZ`).
    pub from: Option<String>,
    /// Entries before this UTC time.
    pub until: Option<String>,
    /// Entries after this sequence number (the previous page's `next`).
    pub after: Option<i64>,
    /// Page size, 1–1000 (default 100).
    pub limit: Option<u32>,
}

impl AuditFilter {
    fn query(self, org_id: i64) -> AuditQuery {
        AuditQuery {
            entity_type: self.entity_type,
            entity_id: self.entity_id,
            actor: self.actor,
            from: self.from,
            until: self.until,
            after_seq: self.after.unwrap_or(0),
            limit: self.limit.unwrap_or(100),
            org_id: Some(org_id),
            ..AuditQuery::default()
        }
    }
}

/// The audit filter of the query string; one that does not parse answers
/// 400 with the JSON error body.
type Filter = Result<Query<AuditFilter>, axum::extract::rejection::QueryRejection>;

/// The organization's audit entries, oldest first (viewer).
#[utoipa::path(get, path = "/orgs/{org}/audit", tag = "audit",
    params(OrgPath, AuditFilter), responses((status = 200, body = AuditEntries)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<OrgPath>,
    filter: Filter,
) -> ApiResult<Json<AuditEntries>> {
    let Query(filter) = filter.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let org = scope::org_wide(&state, &caller, &path.org, Permission::Read).await?;
    let page = state.store.audit_log(&filter.query(org.id)).await?;
    Ok(Json(AuditEntries {
        items: page.entries,
        next: page.next,
    }))
}

/// Every matching entry as JSON lines (`application/x-ndjson`), one entry
/// per line, oldest first (admin). `limit` is ignored.
#[utoipa::path(get, path = "/orgs/{org}/audit/export", tag = "audit",
    params(OrgPath, AuditFilter),
    responses((status = 200, content_type = "application/x-ndjson", body = String),
        (status = 403, description = "exporting needs the admin role", body = super::error::ErrorBody)))]
pub async fn export(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<OrgPath>,
    filter: Filter,
) -> ApiResult<Response> {
    let Query(filter) = filter.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let org = scope::org(&state, &caller, &path.org, Permission::AuditExport).await?;
    let mut query = filter.query(org.id);
    query.limit = 1000;
    let mut out = String::new();
    loop {
        let page = state.store.audit_log(&query).await?;
        for entry in &page.entries {
            out.push_str(&serde_json::to_string(entry).map_err(ApiError::internal)?);
            out.push('\n');
        }
        match page.next {
            Some(n) => query.after_seq = n,
            None => break,
        }
    }
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], out).into_response())
}

/// The result of verifying the audit chain.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// Whether every entry is in place and unedited.
    pub ok: bool,
    /// Entries checked.
    pub entries: u64,
    /// The hash of the last good entry (anchor it elsewhere to detect a
    /// rewritten tail).
    pub head_hash: String,
    /// The first bad sequence number, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_seq: Option<i64>,
    /// What is wrong there: `gap`, `brokenLink`, `hashMismatch`,
    /// `truncated`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub fault: Option<AuditFault>,
}

/// Verifies the whole hash chain (bootstrap administrator: the chain spans
/// every organization).
#[utoipa::path(get, path = "/audit/verify", tag = "audit",
    responses((status = 200, body = Verification), (status = 403, body = super::error::ErrorBody)))]
pub async fn verify(
    State(state): State<AppState>,
    caller: Principal,
) -> ApiResult<Json<Verification>> {
    if !caller.is_root() {
        return Err(ApiError::forbidden(
            "only the bootstrap administrator verifies the whole chain",
        ));
    }
    let report = state.store.verify_audit().await?;
    Ok(Json(Verification {
        ok: report.is_ok(),
        entries: report.entries,
        head_hash: report.head_hash,
        first_bad_seq: report.first_bad.map(|(seq, _)| seq),
        fault: report.first_bad.map(|(_, fault)| fault),
    }))
}
