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
//! use bunting_origin::defs::{load, Syntax};
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
use std::fmt::Write as _;

use bunting_core::model::{Layer, Prerequisite, Rule, Segment};
use bunting_core::{Flag, FlagType, Serve};
use serde_json::{Number, Value as Json};
use thiserror::Error;

use crate::defs::{self, SnapshotOptions, Syntax};
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

/// One node of an exported definition document: what YAML and JSON have in
/// common. Mappings keep their order.
///
/// ```
/// use bunting_origin::export::{Document, Node};
/// let doc = Document::new(Node::Map(vec![
///     ("environments".into(), Node::Seq(vec![Node::string("production")])),
/// ]));
/// assert_eq!(doc.to_yaml(), "environments: [production]\n");
/// assert_eq!(doc.to_json(), "{\n  \"environments\": [\n    \"production\"\n  ]\n}\n");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A string, number, boolean or null.
    Scalar(Json),
    /// A list.
    Seq(Vec<Node>),
    /// A mapping, in order.
    Map(Vec<(String, Node)>),
}

impl Node {
    /// A string scalar.
    ///
    /// ```
    /// use bunting_origin::export::Node;
    /// assert_eq!(Node::string("on"), Node::Scalar(serde_json::json!("on")));
    /// ```
    pub fn string(s: impl Into<String>) -> Node {
        Node::Scalar(Json::String(s.into()))
    }

    /// A number scalar from an `f64` (weights, percentages, layer ranges):
    /// whole numbers are written without a fraction (`50`, not `50.0`).
    ///
    /// ```
    /// use bunting_origin::export::Node;
    /// assert_eq!(Node::number(50.0), Node::Scalar(serde_json::json!(50)));
    /// assert_eq!(Node::number(33.5), Node::Scalar(serde_json::json!(33.5)));
    /// ```
    pub fn number(x: f64) -> Node {
        let n = if x.fract() == 0.0 && x.abs() < 1e15 {
            Number::from(x as i64)
        } else {
            Number::from_f64(x).unwrap_or_else(|| Number::from(0))
        };
        Node::Scalar(Json::Number(n))
    }

    /// The node of an arbitrary JSON value (a variant's value). Objects keep
    /// `serde_json`'s key order.
    ///
    /// ```
    /// use bunting_origin::export::Node;
    /// let n = Node::json(&serde_json::json!({"topK": 50}));
    /// assert_eq!(n, Node::Map(vec![("topK".into(), Node::Scalar(serde_json::json!(50)))]));
    /// ```
    pub fn json(value: &Json) -> Node {
        match value {
            Json::Array(items) => Node::Seq(items.iter().map(Node::json).collect()),
            Json::Object(map) => Node::Map(
                map.iter()
                    .map(|(k, v)| (k.clone(), Node::json(v)))
                    .collect(),
            ),
            scalar => Node::Scalar(scalar.clone()),
        }
    }

    /// The node as a `serde_json` value (mapping order follows
    /// `serde_json`'s map, not the document's).
    ///
    /// ```
    /// use bunting_origin::export::Node;
    /// let n = Node::Seq(vec![Node::string("a"), Node::number(1.0)]);
    /// assert_eq!(n.to_value(), serde_json::json!(["a", 1]));
    /// ```
    pub fn to_value(&self) -> Json {
        match self {
            Node::Scalar(v) => v.clone(),
            Node::Seq(items) => Json::Array(items.iter().map(Node::to_value).collect()),
            Node::Map(entries) => Json::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_value()))
                    .collect(),
            ),
        }
    }
}

/// An exported definition file, ready to be written as YAML or JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The top-level mapping (`environments`, `segments`, `layers`, `flags`).
    pub root: Node,
}

impl Document {
    /// A document with `root` as its top-level node.
    ///
    /// ```
    /// use bunting_origin::export::{Document, Node};
    /// let doc = Document::new(Node::Map(Vec::new()));
    /// assert_eq!(doc.to_json(), "{}\n");
    /// ```
    pub fn new(root: Node) -> Document {
        Document { root }
    }

    /// The document as YAML 1.2 in the style of `examples/flags.yaml`:
    /// block mappings, short lists and mappings of scalars in flow style
    /// (`{ on: true, off: false }`), strings plain where that reads back as
    /// the same string and quoted otherwise.
    ///
    /// ```
    /// use bunting_origin::export::{Document, Node};
    /// let doc = Document::new(Node::Map(vec![
    ///     ("condition".into(), Node::string("segment(\"staff\")")),
    ///     ("version".into(), Node::string("42")),
    ///     ("note".into(), Node::string("it's: quoted")),
    /// ]));
    /// assert_eq!(doc.to_yaml(), "condition: segment(\"staff\")\nversion: '42'\nnote: 'it''s: quoted'\n");
    /// ```
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        match &self.root {
            Node::Map(entries) if !entries.is_empty() => yaml_entries(&mut out, entries, 0),
            other => {
                yaml_inline(&mut out, other);
                out.push('\n');
            }
        }
        out
    }

    /// The document as pretty-printed JSON (two-space indent, mappings in
    /// document order), ending with a newline.
    ///
    /// ```
    /// use bunting_origin::export::{Document, Node};
    /// let doc = Document::new(Node::Map(vec![("flags".into(), Node::Map(Vec::new()))]));
    /// assert_eq!(doc.to_json(), "{\n  \"flags\": {}\n}\n");
    /// ```
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        json_node(&mut out, &self.root, 0);
        out.push('\n');
        out
    }
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
pub async fn export(store: &Store, project_id: i64) -> Result<Document, ExportError> {
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
        Node::Seq(env_names.iter().map(|e| Node::string(*e)).collect()),
    )];

    let per_env_segments: Vec<(&str, &[Segment])> = snapshots
        .iter()
        .map(|(env, s)| (env.as_str(), s.segments.as_slice()))
        .collect();
    let segments = segments_node(&per_env_segments)?;
    if !segments.is_empty() {
        root.push(("segments".into(), Node::Map(segments)));
    }

    if !layers.is_empty() {
        root.push((
            "layers".into(),
            Node::Map(
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
        root.push(("flags".into(), Node::Map(flag_nodes)));
    }

    let doc = Document::new(Node::Map(root));
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

fn flag_node(spec: &FlagSpec, configs: &[(&str, ConfigSpec)]) -> Node {
    let mut m: Vec<(String, Node)> =
        vec![("type".into(), Node::string(flag_type_name(spec.flag_type)))];
    if let Some(d) = &spec.description {
        m.push(("description".into(), Node::string(d)));
    }
    if let Some(o) = &spec.owner {
        m.push(("owner".into(), Node::string(o)));
    }
    if !spec.tags.is_empty() {
        m.push((
            "tags".into(),
            Node::Seq(spec.tags.iter().map(Node::string).collect()),
        ));
    }
    m.push((
        "variants".into(),
        Node::Map(
            spec.variants
                .iter()
                .map(|(name, value)| (name.clone(), Node::json(value)))
                .collect(),
        ),
    ));
    m.push(("offVariant".into(), Node::string(&spec.off_variant)));
    if let Some(s) = &spec.salt {
        m.push(("salt".into(), Node::string(s)));
    }
    if let Some(b) = &spec.bucket_by {
        m.push(("bucketBy".into(), Node::string(b)));
    }
    if let Some(slot) = &spec.layer {
        m.push((
            "layer".into(),
            Node::Map(vec![
                ("key".into(), Node::string(&slot.key)),
                ("start".into(), Node::number(slot.start)),
                ("end".into(), Node::number(slot.end)),
            ]),
        ));
    }

    let (default, base, unlisted) = choose_default(configs, &spec.off_variant);
    if let Some(d) = default {
        let block = config_block(d, &empty_block_config(&spec.off_variant));
        m.push(("default".into(), Node::Map(block)));
    }
    let envs: Vec<(String, Node)> = configs
        .iter()
        .filter(|(_, c)| *c != unlisted)
        .map(|(env, c)| (env.to_string(), Node::Map(config_block(c, &base))))
        .collect();
    if !envs.is_empty() {
        m.push(("environments".into(), Node::Map(envs)));
    }
    Node::Map(m)
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
fn config_block(c: &ConfigSpec, base: &ConfigSpec) -> Vec<(String, Node)> {
    let mut m = Vec::new();
    if c.enabled != base.enabled {
        m.push(("enabled".into(), Node::Scalar(Json::Bool(c.enabled))));
    }
    if c.prerequisites != base.prerequisites {
        m.push((
            "prerequisites".into(),
            Node::Seq(c.prerequisites.iter().map(prerequisite_node).collect()),
        ));
    }
    if c.rules != base.rules {
        m.push((
            "rules".into(),
            Node::Seq(c.rules.iter().map(rule_node).collect()),
        ));
    }
    if c.fallthrough != base.fallthrough {
        m.push(("fallthrough".into(), serve_node(&c.fallthrough)));
    }
    m
}

fn prerequisite_node(p: &Prerequisite) -> Node {
    Node::Map(vec![
        ("flag".into(), Node::string(&p.flag)),
        ("variant".into(), Node::string(&p.variant)),
    ])
}

fn rule_node(r: &Rule) -> Node {
    let mut m = Vec::new();
    if let Some(id) = &r.id {
        m.push(("id".into(), Node::string(id)));
    }
    if let Some(d) = &r.description {
        m.push(("description".into(), Node::string(d)));
    }
    m.push(("condition".into(), Node::string(&r.condition)));
    m.push(("serve".into(), serve_node(&r.serve)));
    Node::Map(m)
}

fn serve_node(s: &Serve) -> Node {
    match s {
        Serve::Variant(v) => Node::string(v),
        Serve::Rollout(arms) => Node::Map(vec![(
            "rollout".into(),
            Node::Seq(
                arms.iter()
                    .map(|a| {
                        Node::Map(vec![
                            ("variant".into(), Node::string(&a.variant)),
                            ("weight".into(), Node::number(a.weight)),
                        ])
                    })
                    .collect(),
            ),
        )]),
        Serve::Schedule(s) => Node::Map(vec![(
            "schedule".into(),
            Node::Map(vec![
                ("variant".into(), Node::string(&s.variant)),
                ("otherwise".into(), Node::string(&s.otherwise)),
                (
                    "steps".into(),
                    Node::Seq(
                        s.steps
                            .iter()
                            .map(|step| {
                                Node::Map(vec![
                                    ("at".into(), Node::string(&step.at)),
                                    ("percentage".into(), Node::number(step.percentage)),
                                ])
                            })
                            .collect(),
                    ),
                ),
            ]),
        )]),
    }
}

fn layer_node(l: &Layer) -> Node {
    let mut m = Vec::new();
    if let Some(s) = &l.salt {
        m.push(("salt".into(), Node::string(s)));
    }
    if let Some(b) = &l.bucket_by {
        m.push(("bucketBy".into(), Node::string(b)));
    }
    Node::Map(m)
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

fn strings_node(items: &[String]) -> Node {
    Node::Seq(items.iter().map(Node::string).collect())
}

/// The file's `segments` mapping from each environment's segments: fields
/// every environment agrees on go to the segment itself, the others to its
/// `environments` overrides.
fn segments_node(per_env: &[(&str, &[Segment])]) -> Result<Vec<(String, Node)>, ExportError> {
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
            m.push(("description".into(), Node::string(d)));
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
            m.push(("condition".into(), Node::string(c)));
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
                o.push(("condition".into(), Node::string(c)));
            }
            if !o.is_empty() {
                overrides.push((env.to_string(), Node::Map(o)));
            }
        }
        if !overrides.is_empty() {
            m.push(("environments".into(), Node::Map(overrides)));
        }
        out.push((key.to_string(), Node::Map(m)));
    }
    Ok(out)
}

// ---- YAML ----

/// Longest flow-style collection written on one line.
const FLOW_WIDTH: usize = 72;

/// Whether `s` can be written as a plain scalar and read back as the same
/// string: starts with a letter, `_` or `(`; printable ASCII; no comment,
/// mapping or (in flow context) collection indicators; not a null or
/// boolean word (numbers start with digits or signs, which are quoted).
fn plain_ok(s: &str, flow: bool) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if !(first.is_ascii_alphabetic() || first == '_' || first == '(') {
        return false;
    }
    if s.ends_with([' ', ':'])
        || s.contains(": ")
        || s.contains('#')
        || s.contains("  ")
        || !s.chars().all(|c| c.is_ascii_graphic() || c == ' ')
    {
        return false;
    }
    if flow && s.contains([',', '[', ']', '{', '}', ':']) {
        return false;
    }
    // YAML 1.2: only these words are not strings (`on`, `yes` … are).
    !matches!(s.to_ascii_lowercase().as_str(), "null" | "true" | "false")
}

/// Whether a multi-line string can be written as a literal block scalar
/// (`|`) and read back unchanged: printable, at most one final line break,
/// a first line that does not start with a space or tab (the block's
/// indentation is taken from it), no line of only spaces.
fn literal_ok(s: &str) -> bool {
    s.contains('\n')
        && !s.ends_with("\n\n")
        && s.chars().all(|c| {
            c == '\n' || (!c.is_control() && !matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}'))
        })
        && s.split('\n')
            .find(|line| !line.is_empty())
            .is_some_and(|first| !first.starts_with([' ', '\t']))
        && !s
            .split('\n')
            .any(|line| !line.is_empty() && line.trim().is_empty())
}

/// A string scalar: plain when safe, single-quoted when it is one line of
/// printable characters, double-quoted with escapes otherwise.
fn yaml_string(out: &mut String, s: &str, flow: bool) {
    if plain_ok(s, flow) {
        out.push_str(s);
    } else if !s.is_empty()
        && s.chars()
            .all(|c| !c.is_control() && !matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}'))
        && !s.starts_with(' ')
        && !s.ends_with(' ')
    {
        out.push('\'');
        out.push_str(&s.replace('\'', "''"));
        out.push('\'');
    } else {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
}

fn yaml_scalar(out: &mut String, v: &Json, flow: bool) {
    match v {
        Json::String(s) => yaml_string(out, s, flow),
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => out.push_str(&n.to_string()),
        // Collections are never scalars (Node::json splits them).
        other => out.push_str(&other.to_string()),
    }
}

/// The node on one line, in flow style.
fn yaml_inline(out: &mut String, node: &Node) {
    match node {
        Node::Scalar(v) => yaml_scalar(out, v, true),
        Node::Seq(items) if items.is_empty() => out.push_str("[]"),
        Node::Map(entries) if entries.is_empty() => out.push_str("{}"),
        Node::Seq(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                yaml_inline(out, item);
            }
            out.push(']');
        }
        Node::Map(entries) => {
            out.push_str("{ ");
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                yaml_string(out, k, true);
                out.push_str(": ");
                yaml_inline(out, v);
            }
            out.push_str(" }");
        }
    }
}

/// Keys whose mappings are written in block style even when short:
/// configuration blocks and segment bodies read better a field a line.
const BLOCK_KEYS: &[&str] = &["condition", "description", "enabled", "fallthrough"];

/// The flow form of a collection whose members are all scalars, when it is
/// short and is not a configuration block or segment body ([`BLOCK_KEYS`]).
fn yaml_flow(node: &Node) -> Option<String> {
    let scalars_only = match node {
        Node::Scalar(_) => return None,
        Node::Seq(items) => items.iter().all(|i| matches!(i, Node::Scalar(_))),
        Node::Map(entries) => entries
            .iter()
            .all(|(k, v)| matches!(v, Node::Scalar(_)) && !BLOCK_KEYS.contains(&k.as_str())),
    };
    if !scalars_only {
        return None;
    }
    let mut s = String::new();
    yaml_inline(&mut s, node);
    (s.len() <= FLOW_WIDTH).then_some(s)
}

/// After `key:` or `-`: a scalar or flow collection on the same line, or a
/// block collection on the next lines at `indent`.
fn yaml_value(out: &mut String, node: &Node, indent: usize) {
    if let Node::Scalar(Json::String(text)) = node
        && literal_ok(text)
    {
        // A literal block scalar: `|` keeps one final line break, `|-` none.
        out.push_str(if text.ends_with('\n') {
            " |\n"
        } else {
            " |-\n"
        });
        for line in text.strip_suffix('\n').unwrap_or(text).split('\n') {
            if !line.is_empty() {
                out.push_str(&" ".repeat(indent));
                out.push_str(line);
            }
            out.push('\n');
        }
    } else if let Node::Scalar(v) = node {
        out.push(' ');
        yaml_scalar(out, v, false);
        out.push('\n');
    } else if let Some(flow) = yaml_flow(node).or_else(|| match node {
        Node::Seq(items) if items.is_empty() => Some("[]".into()),
        Node::Map(entries) if entries.is_empty() => Some("{}".into()),
        _ => None,
    }) {
        out.push(' ');
        out.push_str(&flow);
        out.push('\n');
    } else {
        out.push('\n');
        match node {
            Node::Map(entries) => yaml_entries(out, entries, indent),
            Node::Seq(items) => yaml_items(out, items, indent),
            Node::Scalar(_) => unreachable!("scalars are written inline"),
        }
    }
}

fn yaml_entries(out: &mut String, entries: &[(String, Node)], indent: usize) {
    for (k, v) in entries {
        out.push_str(&" ".repeat(indent));
        yaml_string(out, k, false);
        out.push(':');
        yaml_value(out, v, indent + 2);
    }
}

fn yaml_items(out: &mut String, items: &[Node], indent: usize) {
    for item in items {
        out.push_str(&" ".repeat(indent));
        out.push('-');
        match item {
            // `- key: value` with the other keys aligned under the first.
            Node::Map(entries) if !entries.is_empty() && yaml_flow(item).is_none() => {
                let mut block = String::new();
                yaml_entries(&mut block, entries, indent + 2);
                out.push(' ');
                out.push_str(&block[indent + 2..]);
            }
            _ => yaml_value(out, item, indent + 2),
        }
    }
}

// ---- JSON ----

fn json_node(out: &mut String, node: &Node, indent: usize) {
    let pad = |out: &mut String, n: usize| out.push_str(&" ".repeat(n));
    match node {
        Node::Scalar(v) => out.push_str(&v.to_string()),
        Node::Seq(items) if items.is_empty() => out.push_str("[]"),
        Node::Map(entries) if entries.is_empty() => out.push_str("{}"),
        Node::Seq(items) => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                pad(out, indent + 2);
                json_node(out, item, indent + 2);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            pad(out, indent);
            out.push(']');
        }
        Node::Map(entries) => {
            out.push_str("{\n");
            for (i, (k, v)) in entries.iter().enumerate() {
                pad(out, indent + 2);
                out.push_str(&Json::String(k.clone()).to_string());
                out.push_str(": ");
                json_node(out, v, indent + 2);
                out.push_str(if i + 1 < entries.len() { ",\n" } else { "\n" });
            }
            pad(out, indent);
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml_of(s: &str) -> String {
        let mut out = String::new();
        yaml_string(&mut out, s, false);
        out
    }

    #[test]
    fn strings_read_back_as_themselves() {
        for s in [
            "on",
            "off",
            "yes",
            "true",
            "True",
            "null",
            "~",
            "",
            "42",
            "-1",
            "0x1F",
            ".inf",
            "a: b",
            "a #b",
            "it's",
            "line\nbreak",
            "tab\there",
            " padded ",
            "!(plan == \"free\")",
            "\"quoted\"",
            "segment(\"staff\") && x",
            "geo.country in [\"US\", \"CA\"]",
            "héllo wörld",
            "end:",
            "- item",
            "{ x }",
            "*alias",
            "&anchor",
            "@at",
            "%pct",
            "`tick`",
            "|pipe",
            ">fold",
            "?question",
            "two  spaces",
            "\u{2028}sep",
        ] {
            let doc = format!("k: {}\n", yaml_of(s));
            let tree = crate::defs::tree::parse(&doc, Syntax::Yaml)
                .unwrap_or_else(|e| panic!("{s:?} as {doc:?}: {}", e.message));
            let crate::defs::tree::Value::Map(entries) = &tree.root.value else {
                panic!("{doc:?} is not a mapping");
            };
            let crate::defs::tree::Value::Scalar(sc) = &entries[0].value.value else {
                panic!("{doc:?}: not a scalar");
            };
            let plain = sc.style == crate::defs::tree::Style::Plain;
            assert_eq!(sc.text, s, "{doc:?}");
            if plain {
                assert!(
                    !matches!(
                        s,
                        "true" | "True" | "null" | "~" | "" | "42" | "-1" | "0x1F"
                    ),
                    "{s:?} must be quoted"
                );
            }
        }
    }

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
        let doc = Document::new(Node::Map(vec![
            (
                "environments".into(),
                Node::Seq(per_env.iter().map(|(e, _)| Node::string(*e)).collect()),
            ),
            ("segments".into(), Node::Map(node)),
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
