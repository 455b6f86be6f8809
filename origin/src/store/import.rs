//! Applying a definition file to a project without deleting anything.

use serde::Serialize;

use super::plan::{Change, ChangeKind, ChangeOp, ProjectState};
use super::{Actor, Result, Store, StoreError};

/// What [`Store::import`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportSummary {
    /// Environments created.
    pub environments_created: u32,
    /// Layers created.
    pub layers_created: u32,
    /// Layers whose salt or bucketing attribute changed.
    pub layers_updated: u32,
    /// Flags created.
    pub flags_created: u32,
    /// Flags whose definition changed.
    pub flags_updated: u32,
    /// Flag configurations that changed (including those of new flags and
    /// environments that are not off).
    pub configs_updated: u32,
    /// Segments created.
    pub segments_created: u32,
    /// Segments that changed.
    pub segments_updated: u32,
}

impl ImportSummary {
    /// The counts of `changes` (a plan without deletes).
    pub fn of(changes: &[Change]) -> ImportSummary {
        let mut s = ImportSummary::default();
        for c in changes {
            let n = match (c.kind, c.op) {
                (_, ChangeOp::Delete) => continue,
                (ChangeKind::Environment, _) => &mut s.environments_created,
                (ChangeKind::Layer, ChangeOp::Create) => &mut s.layers_created,
                (ChangeKind::Layer, ChangeOp::Update) => &mut s.layers_updated,
                (ChangeKind::Flag, ChangeOp::Create) => &mut s.flags_created,
                (ChangeKind::Flag, ChangeOp::Update) => &mut s.flags_updated,
                (ChangeKind::FlagConfig, _) => &mut s.configs_updated,
                (ChangeKind::Segment, ChangeOp::Create) => &mut s.segments_created,
                (ChangeKind::Segment, ChangeOp::Update) => &mut s.segments_updated,
            };
            *n += 1;
        }
        s
    }
}

impl Store {
    /// Applies a parsed definition file to project `project_id` in one
    /// transaction: creates the missing environments, layers, flags and
    /// segments, and updates the layers, flags, configurations and segments
    /// that differ. Nothing is deleted (entities missing from the file
    /// stay): [`Store::apply_definitions`] without `prune`.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use bunting_defs::{load, Syntax};
    /// use bunting_origin::store::{Actor, Store};
    /// let defs = load("environments: [production]\nflags:\n  beta:\n    type: boolean\n    variants: {on: true, off: false}\n    offVariant: off\n    environments:\n      production: {fallthrough: on}\n", Syntax::Yaml).unwrap();
    /// let store = Store::open("sqlite::memory:").await.unwrap();
    /// let ana = Actor::new("ana");
    /// let org = store.create_org(&ana, "acme", "Acme").await.unwrap();
    /// let project = store.create_project(&ana, org.id, "web", "Web").await.unwrap();
    /// let summary = store.import(&ana, project.id, &defs).await.unwrap();
    /// assert_eq!(summary.flags_created, 1);
    /// # });
    /// ```
    pub async fn import(
        &self,
        actor: &Actor,
        project_id: i64,
        defs: &bunting_defs::DefinitionFile,
    ) -> Result<ImportSummary> {
        let desired = ProjectState::from_file(defs).map_err(StoreError::Invalid)?;
        let plan = self
            .apply_definitions(actor, project_id, &desired, false, None)
            .await?;
        Ok(ImportSummary::of(&plan.changes))
    }
}
