//! Row mappers, JSON columns, the stored time format and the reads on one
//! connection that the public reads and the writers share.

use bunting_core::FlagType;
use bunting_core::model::{Layer, LayerSlot, Segment};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{
    ConfigSpec, Environment, FlagConfig, FlagRecord, FlagSpec, LayerRecord, Organization, Project,
    Result, SegmentRecord, StoreError,
};

/// The current time as stored: UTC, microseconds, fixed width (sorts as text).
pub(super) fn now() -> String {
    stored_time(time::OffsetDateTime::now_utc())
}

/// `t` in the stored format (`YYYY-MM-DDTHH:MM:SS.ffffffZ`, UTC).
pub(super) fn stored_time(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

pub(super) fn to_json<T: Serialize>(v: &T) -> String {
    // Through Value: object keys come out sorted.
    serde_json::to_value(v).expect("serializable").to_string()
}

/// A JSON column that does not decode.
pub(super) fn bad_json(e: serde_json::Error) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(Box::new(e)))
}

/// A stored name (`what`, e.g. `experiment status`) this build does not know.
pub(super) fn unknown(what: &str, name: &str) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(
        format!("unknown {what} {name:?}").into(),
    ))
}

pub(super) fn from_json<T: DeserializeOwned>(row: &AnyRow, col: &str) -> Result<T> {
    let s: String = row.try_get(col)?;
    serde_json::from_str(&s).map_err(bad_json)
}

pub(super) fn opt_json<T: DeserializeOwned>(row: &AnyRow, col: &str) -> Result<Option<T>> {
    let s: Option<String> = row.try_get(col)?;
    s.map(|s| serde_json::from_str(&s))
        .transpose()
        .map_err(bad_json)
}

pub(super) fn not_found(entity: &'static str, id: impl ToString) -> StoreError {
    StoreError::NotFound {
        entity,
        id: id.to_string(),
    }
}

pub(super) fn org_row(r: &AnyRow) -> Result<Organization> {
    Ok(Organization {
        id: r.try_get("id")?,
        key: r.try_get("key")?,
        name: r.try_get("name")?,
        version: r.try_get("version")?,
    })
}

pub(super) fn project_row(r: &AnyRow) -> Result<Project> {
    Ok(Project {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        key: r.try_get("key")?,
        name: r.try_get("name")?,
        version: r.try_get("version")?,
    })
}

pub(super) fn env_row(r: &AnyRow) -> Result<Environment> {
    Ok(Environment {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        key: r.try_get("key")?,
        name: r.try_get("name")?,
        version: r.try_get("version")?,
        snapshot_version: r.try_get("snapshot_version")?,
    })
}

pub(super) fn flag_row(r: &AnyRow) -> Result<FlagRecord> {
    let flag_type: String = r.try_get("flag_type")?;
    Ok(FlagRecord {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        spec: FlagSpec {
            key: r.try_get("key")?,
            flag_type: serde_json::from_value::<FlagType>(Value::String(flag_type))
                .map_err(bad_json)?,
            variants: from_json(r, "variants")?,
            off_variant: r.try_get("off_variant")?,
            description: r.try_get("description")?,
            owner: r.try_get("owner")?,
            tags: from_json(r, "tags")?,
            salt: r.try_get("salt")?,
            bucket_by: r.try_get("bucket_by")?,
            layer: opt_json::<LayerSlot>(r, "layer")?,
            client_side: r.try_get::<i64, _>("client_side")? != 0,
        },
        version: r.try_get("version")?,
        archived: r.try_get::<i64, _>("archived")? != 0,
    })
}

pub(super) fn config_row(r: &AnyRow) -> Result<FlagConfig> {
    let enabled: i64 = r.try_get("enabled")?;
    Ok(FlagConfig {
        flag_id: r.try_get("flag_id")?,
        environment_id: r.try_get("environment_id")?,
        spec: ConfigSpec {
            enabled: enabled != 0,
            rules: from_json(r, "rules")?,
            fallthrough: from_json(r, "fallthrough")?,
            prerequisites: from_json(r, "prerequisites")?,
        },
        version: r.try_get("version")?,
    })
}

pub(super) fn segment_row(r: &AnyRow) -> Result<SegmentRecord> {
    Ok(SegmentRecord {
        id: r.try_get("id")?,
        environment_id: r.try_get("environment_id")?,
        segment: Segment {
            key: r.try_get("key")?,
            included: from_json(r, "included")?,
            excluded: from_json(r, "excluded")?,
            condition: r.try_get("condition")?,
            description: r.try_get("description")?,
        },
        version: r.try_get("version")?,
    })
}

pub(super) fn layer_row(r: &AnyRow) -> Result<LayerRecord> {
    Ok(LayerRecord {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        layer: Layer {
            key: r.try_get("key")?,
            salt: r.try_get("salt")?,
            bucket_by: r.try_get("bucket_by")?,
        },
        version: r.try_get("version")?,
    })
}
// ---- reads on one connection (shared by the public reads and the writers) ----

async fn fetch_opt(c: &mut AnyConnection, sql: &str, id: i64) -> Result<Option<AnyRow>> {
    Ok(sqlx::query(sql).bind(id).fetch_optional(&mut *c).await?)
}

pub(super) async fn get_org(c: &mut AnyConnection, id: i64) -> Result<Organization> {
    let r = fetch_opt(c, "SELECT * FROM organizations WHERE id = $1", id).await?;
    org_row(&r.ok_or_else(|| not_found("organization", id))?)
}

pub(super) async fn get_project(c: &mut AnyConnection, id: i64) -> Result<Project> {
    let r = fetch_opt(c, "SELECT * FROM projects WHERE id = $1", id).await?;
    project_row(&r.ok_or_else(|| not_found("project", id))?)
}

pub(super) async fn get_env(c: &mut AnyConnection, id: i64) -> Result<Environment> {
    let r = fetch_opt(c, "SELECT * FROM environments WHERE id = $1", id).await?;
    env_row(&r.ok_or_else(|| not_found("environment", id))?)
}

pub(super) async fn get_flag(c: &mut AnyConnection, id: i64) -> Result<FlagRecord> {
    let r = fetch_opt(c, "SELECT * FROM flags WHERE id = $1", id).await?;
    flag_row(&r.ok_or_else(|| not_found("flag", id))?)
}

pub(super) async fn get_segment(c: &mut AnyConnection, id: i64) -> Result<SegmentRecord> {
    let r = fetch_opt(c, "SELECT * FROM segments WHERE id = $1", id).await?;
    segment_row(&r.ok_or_else(|| not_found("segment", id))?)
}

pub(super) async fn get_layer(c: &mut AnyConnection, id: i64) -> Result<LayerRecord> {
    let r = fetch_opt(c, "SELECT * FROM layers WHERE id = $1", id).await?;
    layer_row(&r.ok_or_else(|| not_found("layer", id))?)
}

pub(super) async fn get_config(
    c: &mut AnyConnection,
    flag_id: i64,
    env_id: i64,
) -> Result<FlagConfig> {
    let r = sqlx::query("SELECT * FROM flag_configs WHERE flag_id = $1 AND environment_id = $2")
        .bind(flag_id)
        .bind(env_id)
        .fetch_optional(&mut *c)
        .await?;
    config_row(&r.ok_or_else(|| not_found("flagConfig", format!("{flag_id}/{env_id}")))?)
}

pub(super) async fn list<T>(
    c: &mut AnyConnection,
    sql: &str,
    id: i64,
    f: fn(&AnyRow) -> Result<T>,
) -> Result<Vec<T>> {
    let rows = sqlx::query(sql).bind(id).fetch_all(&mut *c).await?;
    rows.iter().map(f).collect()
}

pub(super) async fn list_projects(c: &mut AnyConnection, org_id: i64) -> Result<Vec<Project>> {
    list(
        c,
        "SELECT * FROM projects WHERE org_id = $1 ORDER BY key",
        org_id,
        project_row,
    )
    .await
}

pub(super) async fn list_envs(c: &mut AnyConnection, project_id: i64) -> Result<Vec<Environment>> {
    list(
        c,
        "SELECT * FROM environments WHERE project_id = $1 ORDER BY key",
        project_id,
        env_row,
    )
    .await
}

pub(super) async fn list_flags(c: &mut AnyConnection, project_id: i64) -> Result<Vec<FlagRecord>> {
    list(
        c,
        "SELECT * FROM flags WHERE project_id = $1 ORDER BY key",
        project_id,
        flag_row,
    )
    .await
}

pub(super) async fn list_segments(
    c: &mut AnyConnection,
    env_id: i64,
) -> Result<Vec<SegmentRecord>> {
    list(
        c,
        "SELECT * FROM segments WHERE environment_id = $1 ORDER BY key",
        env_id,
        segment_row,
    )
    .await
}

pub(super) async fn list_layers(
    c: &mut AnyConnection,
    project_id: i64,
) -> Result<Vec<LayerRecord>> {
    list(
        c,
        "SELECT * FROM layers WHERE project_id = $1 ORDER BY key",
        project_id,
        layer_row,
    )
    .await
}

/// The environment's name at the edge: `org/project/environment` (keys).
pub(super) async fn edge_env(c: &mut AnyConnection, env: &Environment) -> Result<String> {
    let project = get_project(c, env.project_id).await?;
    let org = get_org(c, project.org_id).await?;
    Ok(format!("{}/{}/{}", org.key, project.key, env.key))
}
