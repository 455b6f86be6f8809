//! The tenant most tests start from: organization `acme`, project `web`,
//! environment `production`, made through the store.

use bunting_core::Serve;
use bunting_core::model::WeightedVariant;
use bunting_origin::model::metric::MetricSpec;
use bunting_origin::store::{Actor, ConfigSpec, FlagSpec, Store};

/// Organization `acme` (display name "Acme"), project `web` ("Web") and
/// environment `production` ("Production"): their ids and the actor that
/// made them, acting in `acme`.
pub(crate) struct World {
    pub actor: Actor,
    pub org: i64,
    pub project: i64,
    pub env: i64,
}

impl World {
    /// Makes `acme/web/production` in `store` as actor `ana`.
    pub(crate) async fn acme(store: &Store) -> World {
        World::acme_by(store, Actor::new("ana")).await
    }

    /// Makes `acme/web/production` in `store` as `actor`.
    pub(crate) async fn acme_by(store: &Store, actor: Actor) -> World {
        let org = store.create_org(&actor, "acme", "Acme").await.unwrap();
        let actor = actor.in_org(org.id);
        let project = store
            .create_project(&actor, org.id, "web", "Web")
            .await
            .unwrap();
        let env = store
            .create_environment(&actor, project.id, "production", "Production")
            .await
            .unwrap();
        World {
            actor,
            org: org.id,
            project: project.id,
            env: env.id,
        }
    }

    /// A boolean flag `key` (variants `on`, `off`) in the project: its id.
    pub(crate) async fn flag(&self, store: &Store, key: &str) -> i64 {
        store
            .create_flag(&self.actor, self.project, &FlagSpec::boolean(key))
            .await
            .unwrap()
            .id
    }

    /// Metric `spec` in the project: its id.
    pub(crate) async fn metric(&self, store: &Store, spec: &MetricSpec) -> i64 {
        store
            .create_metric(&self.actor, self.project, spec)
            .await
            .unwrap()
            .id
    }

    /// Enables flag `flag` in `production`, serving `serve` to everyone.
    pub(crate) async fn serve(&self, store: &Store, flag: i64, serve: Serve) {
        let c = store.flag_config(flag, self.env).await.unwrap();
        store
            .update_flag_config(
                &self.actor,
                flag,
                self.env,
                c.version,
                &ConfigSpec {
                    enabled: true,
                    rules: vec![],
                    fallthrough: serve,
                    prerequisites: vec![],
                },
            )
            .await
            .unwrap();
    }
}

/// A rollout over `arms` (variant, weight).
pub(crate) fn split(arms: &[(&str, f64)]) -> Serve {
    Serve::Rollout(
        arms.iter()
            .map(|(variant, weight)| WeightedVariant {
                variant: variant.to_string(),
                weight: *weight,
            })
            .collect(),
    )
}
