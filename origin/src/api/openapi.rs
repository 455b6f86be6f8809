//! The OpenAPI 3.1 document of the API, generated from the router's
//! routes and their handlers' annotations (utoipa) and served at
//! `/api/v1/openapi.json`. A checked-in copy (`docs/openapi.json`) is
//! compared with it in CI.

use std::sync::LazyLock;

use axum::Json;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::AdditionalProperties;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder, Schema};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let c = api.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The error answers that follow from how an endpoint is built rather than
/// from what it does, documented on every operation they apply to (an
/// operation's own annotation, with its more specific description, wins):
///
/// | status | when | operations |
/// |---|---|---|
/// | 400 | a path or query parameter that does not parse, a body that is not JSON, a malformed `If-Match` | with parameters or a body |
/// | 401 | no or an unknown token | needing a token |
/// | 403 | the caller lacks the permission at the scope of what it asks for | needing a token (a caller limited to one project or environment reads nothing outside it) |
/// | 404 | the organization (or another tenant's), or an entity of the path, does not exist | with path parameters |
/// | 412, 428 | a stale or a missing `If-Match` | with an `If-Match` header |
/// | 415, 422 | not `Content-Type: application/json`, or a body of the wrong shape | with a JSON body |
/// | 413 | what the write would store exceeds a bound of `store::limits` (a flag, a segment, an environment's snapshot) | creating or replacing flags, configurations, segments, layers, environments |
///
/// Each is a `#/components/responses` entry whose body is [`ErrorBody`].
struct ErrorResponses;

/// `(status, component name, description)` of the responses above.
/// Of the last four only 413 is added by a rule (writes that add to
/// snapshots); for the others an operation that answers them says so; an undescribed error response of its annotation gets the component.
const ERRORS: [(&str, &str, &str); 12] = [
    (
        "400",
        "BadRequest",
        "malformed request: a path or query parameter that does not parse, a body that is not JSON, a malformed `If-Match`",
    ),
    (
        "401",
        "Unauthorized",
        "no `Authorization: Bearer` token and no session cookie, an unknown, expired or revoked token, or an ended session",
    ),
    (
        "403",
        "Forbidden",
        "the caller lacks the permission this needs at the scope of what it acts on",
    ),
    (
        "404",
        "NotFound",
        "the organization (or one the token may not see), or an entity of the path, does not exist",
    ),
    (
        "412",
        "PreconditionFailed",
        "`If-Match` names an old version: the body and the `ETag` header carry the current one",
    ),
    (
        "415",
        "UnsupportedMediaType",
        "the body is not sent as `Content-Type: application/json`",
    ),
    (
        "422",
        "Invalid",
        "the body has the wrong shape or is invalid: `problems` lists every problem",
    ),
    (
        "428",
        "PreconditionRequired",
        "this write needs `If-Match` with the entity's `ETag`",
    ),
    (
        "409",
        "Conflict",
        "the key is taken, or the entity is in use",
    ),
    (
        "413",
        "TooLarge",
        "the body, or what it would store, is over a limit",
    ),
    (
        "429",
        "Overloaded",
        "too much at once: send the same request again after `Retry-After` seconds",
    ),
    (
        "503",
        "Unavailable",
        "not available now (not configured, or the database failed): try again after `Retry-After` seconds",
    ),
];

impl Modify for ErrorResponses {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let c = api.components.get_or_insert_with(Default::default);
        for (_, name, description) in ERRORS {
            let body = Content::new(Some(Ref::from_schema_name("ErrorBody")));
            c.responses.insert(
                name.to_string(),
                RefOr::T(
                    ResponseBuilder::new()
                        .description(description)
                        .content("application/json", body)
                        .build(),
                ),
            );
        }
        for (path, item) in api.paths.paths.iter_mut() {
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                add_errors(path, op);
            }
        }
    }
}

fn add_errors(path: &str, op: &mut Operation) {
    let params = op.parameters.as_deref().unwrap_or_default();
    let has = |kind: ParameterIn, name: Option<&str>| {
        params
            .iter()
            .any(|p| p.parameter_in == kind && name.is_none_or(|n| p.name.eq_ignore_ascii_case(n)))
    };
    let (in_path, in_query) = (path.contains('{'), has(ParameterIn::Query, None));
    let if_match = has(ParameterIn::Header, Some("If-Match"));
    let json_body = op
        .request_body
        .as_ref()
        .is_some_and(|b| b.content.contains_key("application/json"));
    // `security(())` (an empty requirement) makes a token optional.
    let token = op
        .security
        .as_ref()
        .is_none_or(|s| !s.iter().any(|r| *r == Default::default()));
    // Writes that add to environments' snapshots (`store::limits`).
    let snapshot_write = json_body
        && ["/flags", "/segments", "/layers", "/environments"]
            .iter()
            .any(|p| path.contains(p))
        && !["/experiments", "/guarded-rollouts", "/sdk-keys"]
            .iter()
            .any(|p| path.contains(p));
    let applies = |status: &str| match status {
        "400" => in_path || in_query || json_body || if_match,
        "401" => token,
        "403" => token && in_path,
        "404" => in_path,
        "412" | "428" => if_match,
        "415" | "422" => json_body,
        "413" => snapshot_write,
        _ => false,
    };
    for (status, name, _) in ERRORS {
        let undescribed = match op.responses.responses.get(status) {
            None => applies(status),
            Some(RefOr::T(r)) => r.description.is_empty(),
            Some(RefOr::Ref(_)) => false,
        };
        if undescribed {
            op.responses.responses.insert(
                status.to_string(),
                RefOr::Ref(Ref::from_response_name(name)),
            );
        }
    }
}

/// A record is its closed request schema (`deny_unknown_fields`, so
/// `additionalProperties: false`) flattened beside the fields the server
/// adds (`id`, `version`, …): `allOf: [{$ref: FlagSpec}, {id, version}]`.
/// Under the closed schema those fields would be additional and every
/// record invalid, so a record inlines an open copy of it; request bodies
/// keep the closed one.
struct OpenRecords;

impl Modify for OpenRecords {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let Some(c) = api.components.as_mut() else {
            return;
        };
        let closed: std::collections::BTreeMap<String, utoipa::openapi::schema::Object> = c
            .schemas
            .iter()
            .filter_map(|(name, schema)| match schema {
                RefOr::T(Schema::Object(o))
                    if matches!(
                        o.additional_properties.as_deref(),
                        Some(AdditionalProperties::FreeForm(false))
                    ) =>
                {
                    let mut open = o.clone();
                    open.additional_properties = None;
                    Some((format!("#/components/schemas/{name}"), open))
                }
                _ => None,
            })
            .collect();
        for schema in c.schemas.values_mut() {
            open_records(schema, &closed);
        }
    }
}

/// Replaces, at any depth of `schema`, an `allOf` member that refers to a
/// closed schema by the open copy of it in `closed`.
fn open_records(
    schema: &mut RefOr<Schema>,
    closed: &std::collections::BTreeMap<String, utoipa::openapi::schema::Object>,
) {
    let RefOr::T(schema) = schema else {
        return;
    };
    match schema {
        Schema::AllOf(all) => {
            for item in &mut all.items {
                if let RefOr::Ref(r) = item
                    && let Some(open) = closed.get(&r.ref_location)
                {
                    let mut open = open.clone();
                    if !r.description.is_empty() {
                        open.description = Some(r.description.clone());
                    }
                    *item = RefOr::T(Schema::Object(open));
                } else {
                    open_records(item, closed);
                }
            }
        }
        Schema::Object(o) => {
            for p in o.properties.values_mut() {
                open_records(p, closed);
            }
        }
        Schema::Array(a) => {
            if let utoipa::openapi::schema::ArrayItems::RefOrSchema(items) = &mut a.items {
                open_records(items, closed);
            }
        }
        Schema::OneOf(o) => o.items.iter_mut().for_each(|i| open_records(i, closed)),
        Schema::AnyOf(a) => a.items.iter_mut().for_each(|i| open_records(i, closed)),
        _ => {}
    }
}

/// The title, description and security of the document; its paths and
/// schemas are the routes' ([`super::routes`]).
#[derive(OpenApi)]
#[openapi(
    info(title = "bunting origin API", description = "Feature flags: organizations, projects, environments, flags, segments, layers, tokens, SDK keys, audit log, publishing, event ingestion, metrics, experiments and their results, guarded rollouts, rollbacks. Every endpoint but event ingestion and this document needs `Authorization: Bearer <token>`."),
    security(("token" = [])),
)]
struct Info;

/// The document, built once: the annotations of every route of
/// [`super::routes`] under `/api/v1`, then the security scheme, the
/// shared error responses and the open records.
static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(|| {
    let mut doc = OpenApiRouter::with_openapi(Info::openapi())
        .nest(super::API_PREFIX, super::routes())
        .into_openapi();
    let modifiers: [&dyn Modify; 3] = [&Bearer, &ErrorResponses, &OpenRecords];
    for modifier in modifiers {
        modifier.modify(&mut doc);
    }
    doc
});

/// The API's OpenAPI document, generated from the routes the server runs.
///
/// ```
/// use utoipa::OpenApi;
/// let doc = bunting_origin::api::openapi::ApiDoc::openapi();
/// assert!(doc.paths.paths.contains_key("/api/v1/orgs/{org}/projects/{project}/flags"));
/// ```
pub struct ApiDoc;

impl OpenApi for ApiDoc {
    fn openapi() -> utoipa::openapi::OpenApi {
        DOCUMENT.clone()
    }
}

/// The document as pretty JSON (what `docs/openapi.json` holds).
pub fn json() -> String {
    DOCUMENT.to_pretty_json().expect("the document serializes")
}

/// `GET /api/v1/openapi.json`.
pub async fn serve() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(&DOCUMENT)
}
