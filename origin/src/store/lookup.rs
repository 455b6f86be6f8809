//! Lookups by key, as the API's paths name entities
//! (`/orgs/{org}/projects/{project}/environments/{env}/…`).

use super::rows::{env_row, layer_row, list_flags, not_found, org_row, project_row, segment_row};
use super::{
    Environment, FlagRecord, LayerRecord, Organization, Project, Result, SegmentRecord, Store,
};

impl Store {
    /// The organization `key`.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use bunting_origin::store::{Actor, Store};
    /// let store = Store::open("sqlite::memory:").await.unwrap();
    /// let org = store.create_org(&Actor::new("ana"), "acme", "Acme").await.unwrap();
    /// assert_eq!(store.org_by_key("acme").await.unwrap(), org);
    /// assert!(store.org_by_key("nope").await.is_err());
    /// # });
    /// ```
    pub async fn org_by_key(&self, key: &str) -> Result<Organization> {
        let r = sqlx::query("SELECT * FROM organizations WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        org_row(&r.ok_or_else(|| not_found("organization", key))?)
    }

    /// The project `key` of organization `org_id`.
    pub async fn project_by_key(&self, org_id: i64, key: &str) -> Result<Project> {
        let r = sqlx::query("SELECT * FROM projects WHERE org_id = $1 AND key = $2")
            .bind(org_id)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        project_row(&r.ok_or_else(|| not_found("project", key))?)
    }

    /// The environment `key` of project `project_id`.
    pub async fn environment_by_key(&self, project_id: i64, key: &str) -> Result<Environment> {
        let r = sqlx::query("SELECT * FROM environments WHERE project_id = $1 AND key = $2")
            .bind(project_id)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        env_row(&r.ok_or_else(|| not_found("environment", key))?)
    }

    /// The segment `key` of environment `env_id`.
    pub async fn segment_by_key(&self, env_id: i64, key: &str) -> Result<SegmentRecord> {
        let r = sqlx::query("SELECT * FROM segments WHERE environment_id = $1 AND key = $2")
            .bind(env_id)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        segment_row(&r.ok_or_else(|| not_found("segment", key))?)
    }

    /// The layer `key` of project `project_id`.
    pub async fn layer_by_key(&self, project_id: i64, key: &str) -> Result<LayerRecord> {
        let r = sqlx::query("SELECT * FROM layers WHERE project_id = $1 AND key = $2")
            .bind(project_id)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        layer_row(&r.ok_or_else(|| not_found("layer", key))?)
    }

    /// One page of project `project_id`'s flags, by key, after `after_key`,
    /// filtered by tag and by a substring of the key or description.
    pub async fn flags_page(
        &self,
        project_id: i64,
        filter: &FlagFilter,
    ) -> Result<(Vec<FlagRecord>, Option<String>)> {
        let limit = filter.limit.clamp(1, 500) as usize;
        let all = list_flags(&mut *self.conn().await?, project_id).await?;
        let query = filter.query.as_deref().map(str::to_lowercase);
        let mut page: Vec<FlagRecord> = all
            .into_iter()
            .filter(|f| {
                filter
                    .after
                    .as_deref()
                    .is_none_or(|a| f.spec.key.as_str() > a)
            })
            .filter(|f| {
                filter
                    .tag
                    .as_deref()
                    .is_none_or(|t| f.spec.tags.iter().any(|x| x == t))
            })
            .filter(|f| f.archived == filter.archived)
            .filter(|f| filter.flag_type.is_none_or(|t| f.spec.flag_type == t))
            .filter(|f| {
                query.as_deref().is_none_or(|q| {
                    f.spec.key.to_lowercase().contains(q)
                        || f.spec
                            .description
                            .as_deref()
                            .is_some_and(|d| d.to_lowercase().contains(q))
                })
            })
            .take(limit + 1)
            .collect();
        let next = if page.len() > limit {
            page.truncate(limit);
            page.last().map(|f| f.spec.key.clone())
        } else {
            None
        };
        Ok((page, next))
    }
}

/// Filters and paging of [`Store::flags_page`].
#[derive(Debug, Clone, Default)]
pub struct FlagFilter {
    /// Only flags with this tag.
    pub tag: Option<String>,
    /// Only flags of this type.
    pub flag_type: Option<bunting_core::FlagType>,
    /// Only flags whose key or description contains this (any case).
    pub query: Option<String>,
    /// Keys after this one (the previous page's `next`).
    pub after: Option<String>,
    /// Page size (1–500).
    pub limit: u32,
    /// Archived flags only (else served flags only).
    pub archived: bool,
}
