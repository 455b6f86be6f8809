//! Building an environment's sealed snapshot from the stored rows.

use std::collections::BTreeMap;

use bunting_core::model::{FlagMetadata, SCHEMA_VERSION};
use bunting_core::{Flag, Serve, Snapshot};
use sqlx::AnyConnection;

use super::rows::{
    config_row, edge_env, get_env, list, list_flags, list_layers, list_segments, now,
};
use super::{ConfigSpec, Result, Store};

pub(super) async fn build(c: &mut AnyConnection, env_id: i64) -> Result<Snapshot> {
    let env = get_env(c, env_id).await?;
    let edge = edge_env(c, &env).await?;
    let flags = list_flags(c, env.project_id).await?;
    let configs: BTreeMap<i64, ConfigSpec> = list(
        c,
        "SELECT * FROM flag_configs WHERE environment_id = $1",
        env_id,
        config_row,
    )
    .await?
    .into_iter()
    .map(|c| (c.flag_id, c.spec))
    .collect();
    let segments = list_segments(c, env_id).await?;
    let layers = list_layers(c, env.project_id).await?;
    let flags = flags
        .into_iter()
        // An archived flag is not served: the edge answers it as missing.
        .filter(|f| !f.archived)
        .map(|f| {
            let spec = f.spec;
            let config = configs.get(&f.id).cloned().unwrap_or_else(|| ConfigSpec {
                enabled: false,
                rules: Vec::new(),
                fallthrough: Serve::Variant(spec.off_variant.clone()),
                prerequisites: Vec::new(),
            });
            Flag {
                key: spec.key,
                flag_type: spec.flag_type,
                variants: spec.variants,
                enabled: config.enabled,
                off_variant: spec.off_variant,
                rules: config.rules,
                fallthrough: config.fallthrough,
                prerequisites: config.prerequisites,
                salt: spec.salt,
                bucket_by: spec.bucket_by,
                layer: spec.layer,
                client_side: spec.client_side,
                metadata: FlagMetadata {
                    description: spec.description,
                    owner: spec.owner,
                    tags: spec.tags,
                },
            }
        })
        .collect();
    let mut snapshot = Snapshot {
        schema_version: SCHEMA_VERSION,
        environment: edge,
        version: env.snapshot_version as u64,
        generated_at: now(),
        flags,
        segments: segments.into_iter().map(|s| s.segment).collect(),
        layers: layers.into_iter().map(|l| l.layer).collect(),
        checksum: None,
    };
    bunting_core::snapshot::seal(&mut snapshot);
    Ok(snapshot)
}

impl Store {
    /// The sealed snapshot of environment `env_id`, at its current snapshot
    /// version, built from the stored rows.
    pub async fn snapshot(&self, env_id: i64) -> Result<Snapshot> {
        let mut tx = self.pool.begin().await?;
        let s = build(&mut tx, env_id).await?;
        tx.commit().await?;
        Ok(s)
    }
}
