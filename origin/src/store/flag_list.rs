//! What a list of flags shows beside each definition: its state in every
//! environment of the project and its last change, for a whole page in one
//! query (not one per flag and environment).

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::Row;
use utoipa::ToSchema;

use super::{FlagRecord, Result, Store};

/// A flag's state in one environment, as a list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvState {
    /// Whether the flag is on there (the kill switch).
    pub enabled: bool,
    /// The configuration's version (its `ETag`).
    pub version: i64,
    /// When the configuration last changed (RFC 3339, UTC).
    pub updated_at: String,
}

/// A flag with its state per environment and its last change: one item of
/// the flag list.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlagSummary {
    /// The flag.
    #[serde(flatten)]
    pub flag: FlagRecord,
    /// Its state in every environment of the project, by environment key.
    pub environments: BTreeMap<String, EnvState>,
    /// The latest change to the flag or any of its configurations
    /// (RFC 3339, UTC).
    pub updated_at: String,
    /// Who made that change (the audit log's actor name).
    pub updated_by: String,
}

impl Store {
    /// The list items of `flags` (one page, at most 500; more are read in
    /// one query all the same): each with its state in every environment of
    /// its project and its last change, in the order given.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use bunting_origin::store::{Actor, FlagSpec, Store};
    /// let store = Store::open("sqlite::memory:").await.unwrap();
    /// let ana = Actor::new("ana");
    /// let org = store.create_org(&ana, "acme", "Acme").await.unwrap();
    /// let project = store.create_project(&ana, org.id, "web", "Web").await.unwrap();
    /// store.create_environment(&ana, project.id, "production", "Production").await.unwrap();
    /// let spec: FlagSpec = serde_json::from_value(serde_json::json!({
    ///     "key": "checkout", "flagType": "boolean",
    ///     "variants": {"on": true, "off": false}, "offVariant": "off"
    /// })).unwrap();
    /// let flag = store.create_flag(&ana, project.id, &spec).await.unwrap();
    /// let items = store.flag_summaries(&[flag]).await.unwrap();
    /// assert_eq!(items[0].updated_by, "ana");
    /// assert!(!items[0].environments["production"].enabled);
    /// # });
    /// ```
    pub async fn flag_summaries(&self, flags: &[FlagRecord]) -> Result<Vec<FlagSummary>> {
        if flags.is_empty() {
            return Ok(Vec::new());
        }
        let ids = (1..=flags.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        // One row per configuration, plus the flag's own change (a flag of
        // a project without environments has a row of NULLs).
        let sql = format!(
            "SELECT f.id, f.updated_at AS flag_at, f.updated_by AS flag_by, e.key AS env, \
             c.enabled, c.version, c.updated_at AS config_at, c.updated_by AS config_by \
             FROM flags f \
             LEFT JOIN flag_configs c ON c.flag_id = f.id \
             LEFT JOIN environments e ON e.id = c.environment_id \
             WHERE f.id IN ({ids})"
        );
        let mut query = sqlx::query(&sql);
        for flag in flags {
            query = query.bind(flag.id);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut by_id: BTreeMap<i64, (BTreeMap<String, EnvState>, String, String)> =
            BTreeMap::new();
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            let entry = by_id.entry(id).or_default();
            let (flag_at, flag_by): (String, String) =
                (row.try_get("flag_at")?, row.try_get("flag_by")?);
            if flag_at > entry.1 {
                (entry.1, entry.2) = (flag_at, flag_by);
            }
            let Some(env) = row.try_get::<Option<String>, _>("env")? else {
                continue;
            };
            let (config_at, config_by): (String, String) =
                (row.try_get("config_at")?, row.try_get("config_by")?);
            let enabled: i64 = row.try_get("enabled")?;
            entry.0.insert(
                env,
                EnvState {
                    enabled: enabled != 0,
                    version: row.try_get("version")?,
                    updated_at: config_at.clone(),
                },
            );
            if config_at > entry.1 {
                (entry.1, entry.2) = (config_at, config_by);
            }
        }
        Ok(flags
            .iter()
            .map(|flag| {
                let (environments, updated_at, updated_by) =
                    by_id.remove(&flag.id).unwrap_or_default();
                FlagSummary {
                    flag: flag.clone(),
                    environments,
                    updated_at,
                    updated_by,
                }
            })
            .collect())
    }
}
