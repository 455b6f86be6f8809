//! Export: a project of the [`store`](crate::store) written back in the
//! definition-file format (`docs/flags.md`), YAML or JSON, so that a project
//! edited through the API can be kept in git and applied again with
//! `bunting import` ([`Store::import`]).
//!
//! The file format and the store do not hold quite the same things, and
//! [`export`] bridges them:
//!
//! - A flag's configurations per environment become `environments` blocks
//!   that give only the fields that differ from what the block inherits,
//!   over a `default` block holding one environment's configuration when
//!   that writes less (several environments share it). Without a
//!   `default`, an environment where the flag is off (never configured) is
//!   left out, and a flag that is off everywhere gets neither block, as in
//!   a hand-written file.
//! - Segments are stored per environment, but a file declares each segment
//!   once, with per-environment overrides of `included`, `excluded` and
//!   `condition`. A segment that exists in only some environments, or whose
//!   description differs between them, cannot be written:
//!   [`ExportError::Segment`] names it.
//! - Order: environments, flags, segments and layers come out by key, as
//!   the store lists them.
//!
//! Every export checks itself before it is returned: both renderings (YAML
//! and JSON) are read back with [`defs::load`] and must give, for every
//! environment, the flags, segments and layers of the store's own
//! [`Store::snapshot`]. An export that passes is therefore accepted by
//! `bunting validate`, and importing it into an empty project reproduces the
//! project.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use bunting_defs::{load, Syntax};
//! use bunting_origin::export::export;
//! use bunting_origin::store::{Actor, Store};
//! let store = Store::open("sqlite::memory:").await.unwrap();
//! let ana = Actor::new("ana");
//! let org = store.create_org(&ana, "acme", "Acme").await.unwrap();
//! let web = store.create_project(&ana, org.id, "web", "Web").await.unwrap();
//! let defs = load("environments: [production]\nflags:\n  beta:\n    type: boolean\n    \
//!     variants: {on: true, off: false}\n    offVariant: off\n    environments:\n      \
//!     production: {fallthrough: on}\n", Syntax::Yaml).unwrap();
//! store.import(&ana, web.id, &defs).await.unwrap();
//!
//! let doc = export(&store, web.id).await.unwrap();
//! assert_eq!(doc.to_yaml(), "\
//! environments: [production]
//! flags:
//!   beta:
//!     type: boolean
//!     variants: { off: false, on: true }
//!     offVariant: off
//!     environments:
//!       production:
//!         fallthrough: on
//! ");
//! assert!(load(&doc.to_json(), Syntax::Json).is_ok());
//! # });
//! ```

use std::collections::BTreeMap;

use bunting_core::model::{Layer, Prerequisite, Rule, Segment};
use bunting_core::{Flag, FlagType, Serve};
use bunting_defs::write::{OutputDocument, OutputNode};
use bunting_defs::{self as defs, SnapshotOptions, Syntax};
use serde_json::Value as Json;
use thiserror::Error;

use crate::store::{ConfigSpec, FlagSpec, Store, StoreError};

/// Why a project could not be exported.
#[derive(Debug, Error)]
pub enum ExportError {
    /// Reading the store failed (including a missing project).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The project has no environments; a definition file needs at least one.
    #[error("project {project:?} has no environments; a definition file needs at least one")]
    NoEnvironments {
        /// The project's key.
        project: String,
    },
    /// A segment differs between environments in a way the file format
    /// cannot express.
    #[error("segment {segment:?} cannot be exported: {reason}")]
    Segment {
        /// The segment's key.
        segment: String,
        /// What differs.
        reason: String,
    },
    /// The project changed while it was being read (a flag disappeared or
    /// appeared between reads); exporting again reads a consistent state.
    #[error("the project changed during the export ({0}); export again")]
    Changed(String),
    /// The exported document does not reproduce the store's snapshots when
    /// read back. This is a bug, or stored data the format cannot hold
    /// (e.g. an environment key the file format does not allow).
    #[error("the {format} export does not read back as the stored project: {detail}")]
    RoundTrip {
        /// `yaml` or `json`.
        format: &'static str,
        /// The first problem found.
        detail: String,
    },
}

/// Reads project `project_id` from `store` and returns it as a definition
/// document (see the [module documentation](self) for how store and file
/// differ). The document is checked before it is returned: read back, it
/// gives the store's snapshots.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use bunting_origin::export::{export, ExportError};
/// use bunting_origin::store::{Actor, Store};
/// let store = Store::open("sqlite::memory:").await.unwrap();
/// let ana = Actor::new("ana");
/// let org = store.create_org(&ana, "acme", "Acme").await.unwrap();
/// let web = store.create_project(&ana, org.id, "web", "Web").await.unwrap();
/// // A file needs at least one environment.
/// assert!(matches!(export(&store, web.id).await, Err(ExportError::NoEnvironments { .. })));
/// store.create_environment(&ana, web.id, "production", "Production").await.unwrap();
/// assert_eq!(export(&store, web.id).await.unwrap().to_yaml(), "environments: [production]\n");
/// # });
/// ```
pub async fn export(store: &Store, project_id: i64) -> Result<OutputDocument, ExportError> {
    let project = store.project(project_id).await?;
    let envs = store.environments(project_id).await?;
    if envs.is_empty() {
        return Err(ExportError::NoEnvironments {
            project: project.key,
        });
    }
    let flags = store.flags(project_id).await?;
    let layers = store.layers(project_id).await?;
    let mut snapshots = Vec::with_capacity(envs.len());
    for env in &envs {
        snapshots.push((env.key.clone(), store.snapshot(env.id).await?));
    }

    let env_names: Vec<&str> = envs.iter().map(|e| e.key.as_str()).collect();
    let mut root = vec![(
        "environments".to_string(),
        OutputNode::Seq(env_names.iter().map(|e| OutputNode::string(*e)).collect()),
    )];

    let per_env_segments: Vec<(&str, &[Segment])> = snapshots
        .iter()
        .map(|(env, s)| (env.as_str(), s.segments.as_slice()))
        .collect();
    let segments = segments_node(&per_env_segments)?;
    if !segments.is_empty() {
        root.push(("segments".into(), OutputNode::Map(segments)));
    }

    if !layers.is_empty() {
        root.push((
            "layers".into(),
            OutputNode::Map(
                layers
                    .iter()
                    .map(|l| (l.layer.key.clone(), layer_node(&l.layer)))
                    .collect(),
            ),
        ));
    }

    let mut flag_nodes = Vec::with_capacity(flags.len());
    for f in &flags {
        let mut configs = Vec::with_capacity(snapshots.len());
        for (env, s) in &snapshots {
            let Some(flag) = s.flags.iter().find(|g| g.key == f.spec.key) else {
                return Err(ExportError::Changed(format!(
                    "flag {:?} is missing from environment {env:?}",
                    f.spec.key
                )));
            };
            configs.push((env.as_str(), config_of(flag)));
        }
        flag_nodes.push((f.spec.key.clone(), flag_node(&f.spec, &configs)));
    }
    for (env, s) in &snapshots {
        if let Some(extra) = s
            .flags
            .iter()
            .find(|g| !flags.iter().any(|f| f.spec.key == g.key))
        {
            return Err(ExportError::Changed(format!(
                "flag {:?} appeared in environment {env:?}",
                extra.key
            )));
        }
    }
    if !flag_nodes.is_empty() {
        root.push(("flags".into(), OutputNode::Map(flag_nodes)));
    }

    let doc = OutputDocument::new(OutputNode::Map(root));
    for (format, text, syntax) in [
        ("yaml", doc.to_yaml(), Syntax::Yaml),
        ("json", doc.to_json(), Syntax::Json),
    ] {
        check_round_trip(&text, syntax, &snapshots)
            .map_err(|detail| ExportError::RoundTrip { format, detail })?;
    }
    Ok(doc)
}

/// Reads `text` back and compares each environment's snapshot with the
/// store's (flags, segments and layers, each by key).
fn check_round_trip(
    text: &str,
    syntax: Syntax,
    snapshots: &[(String, bunting_core::Snapshot)],
) -> Result<(), String> {
    let project = defs::load(text, syntax).map_err(|diagnostics| {
        diagnostics
            .iter()
            .map(|d| d.render("export"))
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let options = SnapshotOptions::new(0, "1970-01-01T00:00:00Z");
    for (env, stored) in snapshots {
        let read = project
            .snapshot(env, &options)
            .map_err(|e| format!("environment {env}: {e}"))?;
        fn by_key<T: Clone>(items: &[T], key: impl Fn(&T) -> &str) -> BTreeMap<String, T> {
            items
                .iter()
                .map(|i| (key(i).to_string(), i.clone()))
                .collect()
        }
        if by_key(&read.flags, |f: &Flag| &f.key) != by_key(&stored.flags, |f: &Flag| &f.key) {
            return Err(format!("environment {env}: the flags differ"));
        }
        if by_key(&read.segments, |s: &Segment| &s.key)
            != by_key(&stored.segments, |s: &Segment| &s.key)
        {
            return Err(format!("environment {env}: the segments differ"));
        }
        if by_key(&read.layers, |l: &Layer| &l.key) != by_key(&stored.layers, |l: &Layer| &l.key) {
            return Err(format!("environment {env}: the layers differ"));
        }
    }
    Ok(())
}

// ---- building the document ----

fn flag_type_name(t: FlagType) -> &'static str {
    match t {
        FlagType::Boolean => "boolean",
        FlagType::String => "string",
        FlagType::Number => "number",
        FlagType::Object => "object",
    }
}

fn config_of(f: &Flag) -> ConfigSpec {
    ConfigSpec {
        enabled: f.enabled,
        rules: f.rules.clone(),
        fallthrough: f.fallthrough.clone(),
        prerequisites: f.prerequisites.clone(),
    }
}

/// What an environment neither listed nor covered by a `default` block
/// gets: off, serving `offVariant`.
fn off_config(off_variant: &str) -> ConfigSpec {
    ConfigSpec {
        enabled: false,
        rules: Vec::new(),
        fallthrough: Serve::Variant(off_variant.to_string()),
        prerequisites: Vec::new(),
    }
}

/// What an empty block (`{}`) means: on, no prerequisites, no rules,
/// `offVariant` for everybody.
fn empty_block_config(off_variant: &str) -> ConfigSpec {
    ConfigSpec {
        enabled: true,
        ..off_config(off_variant)
    }
}

fn flag_node(spec: &FlagSpec, configs: &[(&str, ConfigSpec)]) -> OutputNode {
    let mut m: Vec<(String, OutputNode)> = vec![(
        "type".into(),
        OutputNode::string(flag_type_name(spec.flag_type)),
    )];
    if let Some(d) = &spec.description {
        m.push(("description".into(), OutputNode::string(d)));
    }
    if let Some(o) = &spec.owner {
        m.push(("owner".into(), OutputNode::string(o)));
    }
    if !spec.tags.is_empty() {
        m.push((
            "tags".into(),
            OutputNode::Seq(spec.tags.iter().map(OutputNode::string).collect()),
        ));
    }
    if spec.client_side {
        m.push(("clientSide".into(), OutputNode::Scalar(Json::Bool(true))));
    }
    m.push((
        "variants".into(),
        OutputNode::Map(
            spec.variants
                .iter()
                .map(|(name, value)| (name.clone(), OutputNode::json(value)))
                .collect(),
        ),
    ));
    m.push(("offVariant".into(), OutputNode::string(&spec.off_variant)));
    if let Some(s) = &spec.salt {
        m.push(("salt".into(), OutputNode::string(s)));
    }
    if let Some(b) = &spec.bucket_by {
        m.push(("bucketBy".into(), OutputNode::string(b)));
    }
    if let Some(slot) = &spec.layer {
        m.push((
            "layer".into(),
            OutputNode::Map(vec![
                ("key".into(), OutputNode::string(&slot.key)),
                ("start".into(), OutputNode::number(slot.start)),
                ("end".into(), OutputNode::number(slot.end)),
            ]),
        ));
    }

    let (default, base, unlisted) = choose_default(configs, &spec.off_variant);
    if let Some(d) = default {
        let block = config_block(d, &empty_block_config(&spec.off_variant));
        m.push(("default".into(), OutputNode::Map(block)));
    }
    let envs: Vec<(String, OutputNode)> = configs
        .iter()
        .filter(|(_, c)| *c != unlisted)
        .map(|(env, c)| (env.to_string(), OutputNode::Map(config_block(c, &base))))
        .collect();
    if !envs.is_empty() {
        m.push(("environments".into(), OutputNode::Map(envs)));
    }
    OutputNode::Map(m)
}

/// Picks the flag's `default` block: none (unlisted environments are off)
/// or one of the environments' configurations, whichever writes the fewest
/// blocks and fields (the first on a tie, "none" first). Returns it, the
/// base a listed block's fields override, and what an unlisted environment
/// gets.
fn choose_default<'c>(
    configs: &'c [(&str, ConfigSpec)],
    off_variant: &str,
) -> (Option<&'c ConfigSpec>, ConfigSpec, ConfigSpec) {
    let empty = empty_block_config(off_variant);
    let off = off_config(off_variant);
    let cost = |default: Option<&ConfigSpec>| -> usize {
        let (base, unlisted) = match default {
            Some(d) => (d, d),
            None => (&empty, &off),
        };
        let own = default.map_or(0, |d| 1 + config_block(d, &empty).len());
        own + configs
            .iter()
            .filter(|(_, c)| c != unlisted)
            .map(|(_, c)| 1 + config_block(c, base).len())
            .sum::<usize>()
    };
    let mut best: (Option<&ConfigSpec>, usize) = (None, cost(None));
    for (_, c) in configs {
        if *c == off || best.0 == Some(c) {
            continue;
        }
        let n = cost(Some(c));
        if n < best.1 {
            best = (Some(c), n);
        }
    }
    match best.0 {
        Some(d) => (Some(d), d.clone(), d.clone()),
        None => (None, empty, off),
    }
}

/// The fields of `c` that differ from `base` (what the block inherits).
fn config_block(c: &ConfigSpec, base: &ConfigSpec) -> Vec<(String, OutputNode)> {
    let mut m = Vec::new();
    if c.enabled != base.enabled {
        m.push(("enabled".into(), OutputNode::Scalar(Json::Bool(c.enabled))));
    }
    if c.prerequisites != base.prerequisites {
        m.push((
            "prerequisites".into(),
            OutputNode::Seq(c.prerequisites.iter().map(prerequisite_node).collect()),
        ));
    }
    if c.rules != base.rules {
        m.push((
            "rules".into(),
            OutputNode::Seq(c.rules.iter().map(rule_node).collect()),
        ));
    }
    if c.fallthrough != base.fallthrough {
        m.push(("fallthrough".into(), serve_node(&c.fallthrough)));
    }
    m
}

fn prerequisite_node(p: &Prerequisite) -> OutputNode {
    OutputNode::Map(vec![
        ("flag".into(), OutputNode::string(&p.flag)),
        ("variant".into(), OutputNode::string(&p.variant)),
    ])
}

fn rule_node(r: &Rule) -> OutputNode {
    let mut m = Vec::new();
    if let Some(id) = &r.id {
        m.push(("id".into(), OutputNode::string(id)));
    }
    if let Some(d) = &r.description {
        m.push(("description".into(), OutputNode::string(d)));
    }
    m.push(("condition".into(), OutputNode::string(&r.condition)));
    m.push(("serve".into(), serve_node(&r.serve)));
    OutputNode::Map(m)
}

fn serve_node(s: &Serve) -> OutputNode {
    match s {
        Serve::Variant(v) => OutputNode::string(v),
        Serve::Rollout(arms) => OutputNode::Map(vec![(
            "rollout".into(),
            OutputNode::Seq(
                arms.iter()
                    .map(|a| {
                        OutputNode::Map(vec![
                            ("variant".into(), OutputNode::string(&a.variant)),
                            ("weight".into(), OutputNode::number(a.weight)),
                        ])
                    })
                    .collect(),
            ),
        )]),
        Serve::Schedule(s) => OutputNode::Map(vec![(
            "schedule".into(),
            OutputNode::Map(vec![
                ("variant".into(), OutputNode::string(&s.variant)),
                ("otherwise".into(), OutputNode::string(&s.otherwise)),
                (
                    "steps".into(),
                    OutputNode::Seq(
                        s.steps
                            .iter()
                            .map(|step| {
                                OutputNode::Map(vec![
                                    ("at".into(), OutputNode::string(&step.at)),
                                    ("percentage".into(), OutputNode::number(step.percentage)),
                                ])
                            })
                            .collect(),
                    ),
                ),
            ]),
        )]),
    }
}

fn layer_node(l: &Layer) -> OutputNode {
    let mut m = Vec::new();
    if let Some(s) = &l.salt {
        m.push(("salt".into(), OutputNode::string(s)));
    }
    if let Some(b) = &l.bucket_by {
        m.push(("bucketBy".into(), OutputNode::string(b)));
    }
    OutputNode::Map(m)
}

/// The value that occurs most often (the first of equally frequent ones).
/// `items` must not be empty.
fn most_common<T: PartialEq + Copy>(items: impl Iterator<Item = T>) -> T {
    let mut counts: Vec<(T, usize)> = Vec::new();
    for item in items {
        match counts.iter_mut().find(|(k, _)| *k == item) {
            Some((_, n)) => *n += 1,
            None => counts.push((item, 1)),
        }
    }
    let mut best = counts[0];
    for &(item, n) in &counts[1..] {
        if n > best.1 {
            best = (item, n);
        }
    }
    best.0
}

fn strings_node(items: &[String]) -> OutputNode {
    OutputNode::Seq(items.iter().map(OutputNode::string).collect())
}

/// The file's `segments` mapping from each environment's segments: fields
/// every environment agrees on go to the segment itself, the others to its
/// `environments` overrides.
fn segments_node(per_env: &[(&str, &[Segment])]) -> Result<Vec<(String, OutputNode)>, ExportError> {
    // Every key, in the order the first environments list them.
    let mut keys: Vec<&str> = Vec::new();
    for (_, segs) in per_env {
        for s in *segs {
            if !keys.contains(&s.key.as_str()) {
                keys.push(&s.key);
            }
        }
    }
    keys.sort_unstable();
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let mut present: Vec<(&str, &Segment)> = Vec::new();
        let mut missing: Vec<&str> = Vec::new();
        for (env, segs) in per_env {
            match segs.iter().find(|s| s.key == key) {
                Some(s) => present.push((env, s)),
                None => missing.push(env),
            }
        }
        if !missing.is_empty() {
            let names = |v: &[&str]| v.join(", ");
            return Err(ExportError::Segment {
                segment: key.to_string(),
                reason: format!(
                    "it exists in {} but not in {}, and a definition file's segments are in \
                     every environment (create it in the other environments, or delete it)",
                    names(&present.iter().map(|(e, _)| *e).collect::<Vec<_>>()),
                    names(&missing)
                ),
            });
        }
        let first = present[0].1;
        if let Some((env, s)) = present
            .iter()
            .find(|(_, s)| s.description != first.description)
        {
            return Err(ExportError::Segment {
                segment: key.to_string(),
                reason: format!(
                    "its description differs between environments {} ({:?}) and {env} ({:?}), \
                     and a definition file gives a segment one description",
                    present[0].0, first.description, s.description
                ),
            });
        }

        let mut m = Vec::new();
        if let Some(d) = &first.description {
            m.push(("description".into(), OutputNode::string(d)));
        }
        // Each field's base is the value most environments have; the others
        // override it. A list override may be `[]`; a condition cannot be
        // taken away by an override, so when some environment has none, the
        // base has none either.
        let included = most_common(present.iter().map(|(_, s)| &s.included));
        let excluded = most_common(present.iter().map(|(_, s)| &s.excluded));
        let condition = if present.iter().any(|(_, s)| s.condition.is_none()) {
            None
        } else {
            most_common(present.iter().map(|(_, s)| s.condition.as_ref()))
        };
        if !included.is_empty() {
            m.push(("included".into(), strings_node(included)));
        }
        if !excluded.is_empty() {
            m.push(("excluded".into(), strings_node(excluded)));
        }
        if let Some(c) = condition {
            m.push(("condition".into(), OutputNode::string(c)));
        }
        let mut overrides = Vec::new();
        for (env, s) in &present {
            let mut o = Vec::new();
            if &s.included != included {
                o.push(("included".into(), strings_node(&s.included)));
            }
            if &s.excluded != excluded {
                o.push(("excluded".into(), strings_node(&s.excluded)));
            }
            if s.condition.as_ref() != condition
                && let Some(c) = &s.condition
            {
                o.push(("condition".into(), OutputNode::string(c)));
            }
            if !o.is_empty() {
                overrides.push((env.to_string(), OutputNode::Map(o)));
            }
        }
        if !overrides.is_empty() {
            m.push(("environments".into(), OutputNode::Map(overrides)));
        }
        out.push((key.to_string(), OutputNode::Map(m)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_that_differ_by_field_become_overrides() {
        let seg = |key: &str, included: &[&str], condition: Option<&str>| Segment {
            key: key.into(),
            included: included.iter().map(|s| s.to_string()).collect(),
            excluded: Vec::new(),
            condition: condition.map(str::to_string),
            description: Some("Beta".into()),
        };
        let enterprise = Some("plan == \"enterprise\"");
        let per_env = [
            (
                "development",
                vec![seg("beta", &["u-1"], Some("true")), seg("gamma", &[], None)],
            ),
            (
                "production",
                vec![
                    seg("beta", &[], enterprise),
                    seg("gamma", &[], Some("a == 1")),
                ],
            ),
            (
                "staging",
                vec![
                    seg("beta", &["u-1"], enterprise),
                    seg("gamma", &[], Some("a == 1")),
                ],
            ),
        ];
        let borrowed: Vec<(&str, &[Segment])> =
            per_env.iter().map(|(e, s)| (*e, s.as_slice())).collect();
        let node = segments_node(&borrowed).unwrap();
        let doc = OutputDocument::new(OutputNode::Map(vec![
            (
                "environments".into(),
                OutputNode::Seq(
                    per_env
                        .iter()
                        .map(|(e, _)| OutputNode::string(*e))
                        .collect(),
                ),
            ),
            ("segments".into(), OutputNode::Map(node)),
        ]));
        let yaml = doc.to_yaml();
        assert_eq!(
            yaml,
            "environments: [development, production, staging]
segments:
  beta:
    description: Beta
    included: [u-1]
    condition: plan == \"enterprise\"
    environments:
      development:
        condition: 'true'
      production:
        included: []
  gamma:
    description: Beta
    environments:
      production:
        condition: a == 1
      staging:
        condition: a == 1
"
        );
        let project = defs::load(&yaml, Syntax::Yaml).unwrap();
        for (env, segments) in &per_env {
            let s = project
                .snapshot(env, &SnapshotOptions::new(1, "2026-11-25T00:00:00Z"))
                .unwrap();
            assert_eq!(&s.segments, segments, "{env}");
        }
    }

    #[tokio::test]
    async fn unusual_values_and_configurations_round_trip() {
        let src = r#"
environments: [dev, prod, qa]
layers:
  exp: {}
flags:
  odd-strings:
    type: string
    description: "line one\nline two: with # and 'quotes'"
    tags: ["42", "true", "", " padded ", "ünï", "a, b"]
    variants:
      "10": "42"
      "true": "a: b"
      empty: ""
      multi: "first\n  second\n"
      tabbed: "x\ty"
    offVariant: "10"
    salt: "0x1F"
    layer: { key: exp, start: 12.5, end: 37.25 }
    environments:
      dev:
        rules:
          - condition: |-
              email == "a@b.c"
                || plan in ["x", "y"]
            serve: multi
      prod:
        enabled: false
        fallthrough: "true"
  objects:
    type: object
    variants:
      a: { list: [1, 2.5, -3, 1.5e300, null, [true, false]], nested: { "k:": "v" } }
      b: {}
    offVariant: b
    bucketBy: account.id
    default:
      prerequisites: [{ flag: odd-strings, variant: "10" }]
      fallthrough: { rollout: { a: 33.333, b: 66.667 } }
    environments:
      qa: { enabled: false }
      dev: { prerequisites: [], fallthrough: a }
  never-configured:
    type: number
    variants: { zero: 0, big: 18446744073709551615 }
    offVariant: zero
"#;
        let defs = defs::load(src, Syntax::Yaml).expect("valid source");
        let store = Store::open("sqlite::memory:").await.unwrap();
        let ana = crate::store::Actor::new("ana");
        let org = store.create_org(&ana, "acme", "Acme").await.unwrap();
        let web = store
            .create_project(&ana, org.id, "web", "Web")
            .await
            .unwrap();
        store.import(&ana, web.id, &defs).await.unwrap();
        // `export` checks both renderings against the store itself.
        let doc = export(&store, web.id).await.expect("export");
        let yaml = doc.to_yaml();
        // Off everywhere: neither `default` nor `environments`.
        assert!(
            yaml.ends_with("    offVariant: zero\n") || yaml.contains("    offVariant: zero\n  "),
            "{yaml}"
        );
        assert!(yaml.contains("        enabled: false\n"), "{yaml}");
        // Importing the export into another project gives the same export,
        // and importing it again changes nothing.
        let copy = store
            .create_project(&ana, org.id, "copy", "Copy")
            .await
            .unwrap();
        let again = defs::load(&yaml, Syntax::Yaml).unwrap();
        store.import(&ana, copy.id, &again).await.unwrap();
        let second = store.import(&ana, copy.id, &again).await.unwrap();
        assert_eq!(second, crate::store::ImportSummary::default());
        assert_eq!(export(&store, copy.id).await.unwrap(), doc);
    }

    #[test]
    fn a_segment_missing_from_an_environment_is_named() {
        let s = Segment {
            key: "staff".into(),
            included: Vec::new(),
            excluded: Vec::new(),
            condition: None,
            description: None,
        };
        let e = segments_node(&[("development", &[s][..]), ("production", &[][..])]).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("segment \"staff\""), "{msg}");
        assert!(
            msg.contains("exists in development but not in production"),
            "{msg}"
        );
    }
}
