//! Reading the document tree into the definition model, reporting every
//! structural problem (unknown fields, wrong types, missing fields, unknown
//! environments) with its position and carrying on with the rest.

use bunting_core::FlagType;
use serde_json::{Map, Number, Value as Json};

use crate::diag::{Diagnostic, Subject, suggest};
use crate::tree::{Document, Entry, Node, Pos, Scalar, Style, Value};
use crate::{
    ArmDef, ConditionDef, DefinitionFile, EnvConfig, FlagDef, LayerDef, LayerSlotDef,
    PrerequisiteDef, RuleDef, ScheduleDef, SegmentBody, SegmentDef, ServeDef, ServeKind, Spanned,
    StepDef,
};

const TOP_FIELDS: &[&str] = &["environments", "segments", "layers", "flags"];
const FLAG_FIELDS: &[&str] = &[
    "type",
    "description",
    "owner",
    "tags",
    "variants",
    "offVariant",
    "salt",
    "bucketBy",
    "layer",
    "clientSide",
    "default",
    "environments",
];
const ENV_FIELDS: &[&str] = &["enabled", "prerequisites", "rules", "fallthrough"];
const RULE_FIELDS: &[&str] = &["id", "description", "condition", "serve"];
const SERVE_FIELDS: &[&str] = &["variant", "rollout", "schedule"];
const ARM_FIELDS: &[&str] = &["variant", "weight"];
const SCHEDULE_FIELDS: &[&str] = &["variant", "otherwise", "steps"];
const STEP_FIELDS: &[&str] = &["at", "percentage"];
const PREREQUISITE_FIELDS: &[&str] = &["flag", "variant"];
const SLOT_FIELDS: &[&str] = &["key", "start", "end"];
const SEGMENT_FIELDS: &[&str] = &[
    "description",
    "included",
    "excluded",
    "condition",
    "environments",
];
const SEGMENT_ENV_FIELDS: &[&str] = &["included", "excluded", "condition"];
const LAYER_FIELDS: &[&str] = &["description", "salt", "bucketBy"];

/// Reads `doc` into a project: best effort, with every structural problem.
pub(crate) fn project(doc: &Document) -> (DefinitionFile, Vec<Diagnostic>) {
    let mut r = Reader {
        doc,
        diags: Vec::new(),
        subject: None,
        env: None,
        environments: Vec::new(),
    };
    for (pos, key) in &doc.duplicates {
        r.err(*pos, format!("duplicate key {key:?}"));
    }
    let mut project = DefinitionFile {
        environments: Vec::new(),
        segments: Vec::new(),
        layers: Vec::new(),
        flags: Vec::new(),
    };
    let Some(top) = r.fields(&doc.root, "the file", TOP_FIELDS) else {
        return (project, r.diags);
    };
    if let Some(node) = r.required(&top, "environments") {
        project.environments = r.environment_list(node);
        r.environments = project
            .environments
            .iter()
            .map(|e| e.value.clone())
            .collect();
    }
    project.segments = r.section(
        top.get("segments"),
        "segments",
        Subject::Segment,
        Reader::segment,
        |s, b| s.broken = b,
    );
    project.layers = r.section(
        top.get("layers"),
        "layers",
        Subject::Layer,
        Reader::layer,
        |l, b| l.broken = b,
    );
    project.flags = r.section(
        top.get("flags"),
        "flags",
        Subject::Flag,
        Reader::flag,
        |f, b| f.broken = b,
    );
    (project, r.diags)
}

struct Reader<'d> {
    doc: &'d Document,
    diags: Vec<Diagnostic>,
    /// The flag, segment or layer being read, for diagnostics.
    subject: Option<Subject>,
    /// The environment block being read, for diagnostics.
    env: Option<String>,
    /// The declared environments.
    environments: Vec<String>,
}

/// The fields of a mapping whose names were checked.
struct Fields<'n> {
    entries: &'n [Entry],
    /// Where the mapping is (for "missing field").
    pos: Pos,
}

impl<'n> Fields<'n> {
    /// The value of field `name`, unless absent or null.
    fn get(&self, name: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|e| e.key == name)
            .map(|e| &e.value)
            .filter(|n| !n.scalar().is_some_and(Scalar::is_null))
    }
}

/// Whether `name` is usable as an environment name (and so in a KV key).
fn valid_env_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Reader<'_> {
    /// Reads every entry of a top-level mapping with `read`, each under its
    /// own subject, marking an item broken when reading it reported anything.
    fn section<T>(
        &mut self,
        node: Option<&Node>,
        what: &str,
        subject: fn(String) -> Subject,
        read: fn(&mut Self, &Entry) -> Option<T>,
        mark_broken: fn(&mut T, bool),
    ) -> Vec<T> {
        let mut out = Vec::new();
        let Some(entries) = node.and_then(|n| self.map(n, what)) else {
            return out;
        };
        for e in entries {
            self.subject = Some(subject(e.key.clone()));
            let before = self.diags.len();
            if let Some(mut item) = read(self, e) {
                mark_broken(&mut item, self.diags.len() > before);
                out.push(item);
            }
        }
        self.subject = None;
        out
    }

    fn err(&mut self, pos: Pos, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            pos,
            subject: self.subject.clone(),
            environments: self.env.iter().cloned().collect(),
            message: message.into(),
            snippet: None,
        });
    }

    fn map<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n [Entry]> {
        match &node.value {
            Value::Map(entries) => Some(entries),
            _ => {
                self.err(
                    node.pos,
                    format!("{what} must be a mapping, not {}", node.kind()),
                );
                None
            }
        }
    }

    fn seq<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n [Node]> {
        match &node.value {
            Value::Seq(items) => Some(items),
            _ => {
                self.err(
                    node.pos,
                    format!("{what} must be a list, not {}", node.kind()),
                );
                None
            }
        }
    }

    /// A mapping whose field names must all be in `allowed`.
    fn fields<'n>(&mut self, node: &'n Node, what: &str, allowed: &[&str]) -> Option<Fields<'n>> {
        let entries = self.map(node, what)?;
        for e in entries {
            if !allowed.contains(&e.key.as_str()) {
                let hint = match suggest(&e.key, allowed) {
                    Some(s) => format!("did you mean {s:?}?"),
                    None if what == "flag" => match suggest(&e.key, ENV_FIELDS) {
                        Some(s) => format!(
                            "{s:?} belongs in an environment block (`default:` or `environments: {{ENV: …}}`)"
                        ),
                        None => format!("expected one of: {}", allowed.join(", ")),
                    },
                    None => format!("expected one of: {}", allowed.join(", ")),
                };
                self.err(
                    e.key_pos,
                    format!("unknown field {:?} in {what}; {hint}", e.key),
                );
            }
        }
        Some(Fields {
            entries,
            pos: node.pos,
        })
    }

    fn required<'n>(&mut self, fields: &Fields<'n>, name: &str) -> Option<&'n Node> {
        let node = fields.get(name);
        if node.is_none() {
            self.err(fields.pos, format!("missing field {name:?}"));
        }
        node
    }

    /// Any non-null scalar, as its text.
    fn string(&mut self, node: &Node, what: &str) -> Option<Spanned<String>> {
        if let Some(tag) = node.scalar().and_then(|s| s.tag.as_deref())
            && tag != "!!str"
        {
            self.err(
                node.pos,
                format!("{what}: unexpected YAML tag {tag}; quote values that start with `!`"),
            );
            return None;
        }
        match &node.value {
            Value::Scalar(s) if !s.is_null() => Some(Spanned {
                value: s.text.clone(),
                pos: node.pos,
            }),
            _ => {
                self.err(
                    node.pos,
                    format!("{what} must be a string, not {}", node.kind()),
                );
                None
            }
        }
    }

    fn opt_string(&mut self, fields: &Fields<'_>, name: &str) -> Option<Spanned<String>> {
        fields.get(name).and_then(|n| self.string(n, name))
    }

    fn req_string(&mut self, fields: &Fields<'_>, name: &str) -> Option<Spanned<String>> {
        self.required(fields, name)
            .and_then(|n| self.string(n, name))
    }

    fn strings(&mut self, node: &Node, what: &str) -> Option<Vec<String>> {
        let items = self.seq(node, what)?;
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            out.push(self.string(item, &format!("{what}[{i}]"))?.value);
        }
        Some(out)
    }

    fn number(&mut self, node: &Node, what: &str) -> Option<Spanned<f64>> {
        let n = match &node.value {
            Value::Scalar(s) => match resolve(s) {
                Ok(Json::Number(n)) => n.as_f64(),
                _ => None,
            },
            _ => None,
        };
        match n {
            Some(value) => Some(Spanned {
                value,
                pos: node.pos,
            }),
            None => {
                self.err(node.pos, format!("{what} must be a number"));
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node, what: &str) -> Option<Spanned<bool>> {
        match node.scalar().map(resolve) {
            Some(Ok(Json::Bool(value))) => Some(Spanned {
                value,
                pos: node.pos,
            }),
            _ => {
                self.err(node.pos, format!("{what} must be true or false"));
                None
            }
        }
    }

    /// Any node as JSON (variant values).
    fn json(&mut self, node: &Node) -> Option<Json> {
        match &node.value {
            Value::Scalar(s) => match resolve(s) {
                Ok(v) => Some(v),
                Err(e) => {
                    self.err(node.pos, e);
                    None
                }
            },
            Value::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.push(self.json(item)?);
                }
                Some(Json::Array(out))
            }
            Value::Map(entries) => {
                let mut out = Map::new();
                for e in entries {
                    out.insert(e.key.clone(), self.json(&e.value)?);
                }
                Some(Json::Object(out))
            }
        }
    }

    fn condition(&mut self, node: &Node, what: &str) -> Option<ConditionDef> {
        let s = self.string(node, what)?;
        let chars = node
            .scalar()
            .map(|sc| self.doc.char_positions(sc))
            .unwrap_or_default();
        Some(ConditionDef {
            text: s.value,
            pos: s.pos,
            chars,
        })
    }

    /// An environment key under a flag or segment: must be declared.
    fn declared_env(&mut self, e: &Entry) -> bool {
        if self.environments.contains(&e.key) {
            return true;
        }
        let names: Vec<&str> = self.environments.iter().map(String::as_str).collect();
        let hint = match suggest(&e.key, &names) {
            Some(s) => format!("did you mean {s:?}?"),
            None => format!("the file declares: {}", names.join(", ")),
        };
        self.err(
            e.key_pos,
            format!("unknown environment {:?}; {hint}", e.key),
        );
        false
    }

    fn environment_list(&mut self, node: &Node) -> Vec<Spanned<String>> {
        let Some(items) = self.seq(node, "environments") else {
            return Vec::new();
        };
        if items.is_empty() {
            self.err(node.pos, "environments must list at least one environment");
        }
        let mut out: Vec<Spanned<String>> = Vec::new();
        for item in items {
            let Some(name) = self.string(item, "an environment name") else {
                continue;
            };
            if !valid_env_name(&name.value) {
                self.err(
                    name.pos,
                    format!(
                        "environment name {:?} may only use letters, digits, `-`, `_` and `.`",
                        name.value
                    ),
                );
            } else if out.iter().any(|e| e.value == name.value) {
                self.err(
                    name.pos,
                    format!("environment {:?} is listed twice", name.value),
                );
            } else {
                out.push(name);
            }
        }
        out
    }

    fn segment(&mut self, e: &Entry) -> Option<SegmentDef> {
        let f = self.fields(&e.value, "segment", SEGMENT_FIELDS)?;
        let description = self.opt_string(&f, "description").map(|s| s.value);
        let base = self.segment_body(&f);
        let mut environments = Vec::new();
        if let Some(node) = f.get("environments")
            && let Some(entries) = self.map(node, "environments")
        {
            for env in entries {
                if !self.declared_env(env) {
                    continue;
                }
                self.env = Some(env.key.clone());
                if let Some(ef) = self.fields(&env.value, "segment environment", SEGMENT_ENV_FIELDS)
                {
                    let body = self.segment_body(&ef);
                    environments.push((
                        Spanned {
                            value: env.key.clone(),
                            pos: env.key_pos,
                        },
                        body,
                    ));
                }
                self.env = None;
            }
        }
        Some(SegmentDef {
            key: Spanned {
                value: e.key.clone(),
                pos: e.key_pos,
            },
            description,
            base,
            environments,
            broken: false,
        })
    }

    fn segment_body(&mut self, f: &Fields<'_>) -> SegmentBody {
        SegmentBody {
            included: f.get("included").and_then(|n| self.strings(n, "included")),
            excluded: f.get("excluded").and_then(|n| self.strings(n, "excluded")),
            condition: f
                .get("condition")
                .and_then(|n| self.condition(n, "condition")),
        }
    }

    fn layer(&mut self, e: &Entry) -> Option<LayerDef> {
        let f = self.fields(&e.value, "layer", LAYER_FIELDS)?;
        Some(LayerDef {
            key: Spanned {
                value: e.key.clone(),
                pos: e.key_pos,
            },
            description: self.opt_string(&f, "description").map(|s| s.value),
            salt: self.opt_string(&f, "salt").map(|s| s.value),
            bucket_by: self.opt_string(&f, "bucketBy"),
            broken: false,
        })
    }

    fn flag(&mut self, e: &Entry) -> Option<FlagDef> {
        let key = Spanned {
            value: e.key.clone(),
            pos: e.key_pos,
        };
        if key.value.is_empty() {
            self.err(key.pos, "a flag key must not be empty");
        }
        let f = self.fields(&e.value, "flag", FLAG_FIELDS)?;
        let flag_type = self.required(&f, "type").and_then(|n| {
            let t = self.string(n, "type")?;
            let parsed = match t.value.as_str() {
                "boolean" => Some(FlagType::Boolean),
                "string" => Some(FlagType::String),
                "number" => Some(FlagType::Number),
                "object" => Some(FlagType::Object),
                _ => None,
            };
            if parsed.is_none() {
                self.err(
                    t.pos,
                    format!(
                        "type must be boolean, string, number or object, not {:?}",
                        t.value
                    ),
                );
            }
            parsed
        });
        let description = self.opt_string(&f, "description").map(|s| s.value);
        let owner = self.opt_string(&f, "owner").map(|s| s.value);
        let tags = f
            .get("tags")
            .and_then(|n| self.strings(n, "tags"))
            .unwrap_or_default();
        let mut variants = Vec::new();
        let variants_node = self.required(&f, "variants");
        if let Some(node) = variants_node
            && let Some(entries) = self.map(node, "variants")
        {
            for v in entries {
                if let Some(value) = self.json(&v.value) {
                    variants.push((
                        Spanned {
                            value: v.key.clone(),
                            pos: v.key_pos,
                        },
                        Spanned {
                            value,
                            pos: v.value.pos,
                        },
                    ));
                }
            }
        }
        let off_variant = self.req_string(&f, "offVariant");
        let salt = self.opt_string(&f, "salt").map(|s| s.value);
        let bucket_by = self.opt_string(&f, "bucketBy");
        let layer = f.get("layer").and_then(|n| self.layer_slot(n));
        let client_side = f
            .get("clientSide")
            .and_then(|n| self.boolean(n, "clientSide"))
            .is_some_and(|b| b.value);
        let default = f.get("default").and_then(|n| self.env_config(n, "default"));
        let mut environments = Vec::new();
        if let Some(node) = f.get("environments")
            && let Some(entries) = self.map(node, "environments")
        {
            for env in entries {
                if !self.declared_env(env) {
                    continue;
                }
                self.env = Some(env.key.clone());
                if let Some(config) = self.env_config(&env.value, "an environment block") {
                    environments.push((
                        Spanned {
                            value: env.key.clone(),
                            pos: env.key_pos,
                        },
                        config,
                    ));
                }
                self.env = None;
            }
        }
        Some(FlagDef {
            flag_type: flag_type.unwrap_or(FlagType::Boolean),
            description,
            owner,
            tags,
            variants,
            variants_pos: variants_node.map_or(key.pos, |n| n.pos),
            off_variant: off_variant.unwrap_or_else(|| Spanned {
                value: String::new(),
                pos: key.pos,
            }),
            salt,
            bucket_by,
            layer,
            client_side,
            default,
            environments,
            broken: false,
            key,
        })
    }

    fn layer_slot(&mut self, node: &Node) -> Option<LayerSlotDef> {
        let f = self.fields(node, "layer", SLOT_FIELDS)?;
        let key = self.req_string(&f, "key");
        let start = self
            .required(&f, "start")
            .and_then(|n| self.number(n, "start"));
        let end = self.required(&f, "end").and_then(|n| self.number(n, "end"));
        Some(LayerSlotDef {
            pos: node.pos,
            key: key?,
            start: start?.value,
            end: end?.value,
        })
    }

    fn env_config(&mut self, node: &Node, what: &str) -> Option<EnvConfig> {
        let f = self.fields(node, what, ENV_FIELDS)?;
        let enabled = f.get("enabled").and_then(|n| self.boolean(n, "enabled"));
        let prerequisites = f.get("prerequisites").and_then(|n| {
            let items = self.seq(n, "prerequisites")?;
            let list = items
                .iter()
                .filter_map(|item| self.prerequisite(item))
                .collect();
            Some(Spanned {
                value: list,
                pos: n.pos,
            })
        });
        let rules = f.get("rules").and_then(|n| {
            let items = self.seq(n, "rules")?;
            let list = items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| self.rule(item, i))
                .collect();
            Some(Spanned {
                value: list,
                pos: n.pos,
            })
        });
        let fallthrough = f
            .get("fallthrough")
            .and_then(|n| self.serve(n, "fallthrough"));
        Some(EnvConfig {
            pos: node.pos,
            enabled,
            prerequisites,
            rules,
            fallthrough,
        })
    }

    fn prerequisite(&mut self, node: &Node) -> Option<PrerequisiteDef> {
        let f = self.fields(node, "prerequisite", PREREQUISITE_FIELDS)?;
        let flag = self.req_string(&f, "flag");
        let variant = self.req_string(&f, "variant");
        Some(PrerequisiteDef {
            pos: node.pos,
            flag: flag?,
            variant: variant?,
        })
    }

    fn rule(&mut self, node: &Node, index: usize) -> Option<RuleDef> {
        let f = self.fields(node, &format!("rules[{index}]"), RULE_FIELDS)?;
        let id = self.opt_string(&f, "id");
        let description = self.opt_string(&f, "description").map(|s| s.value);
        let condition = self
            .required(&f, "condition")
            .and_then(|n| self.condition(n, "condition"));
        // A rule whose serve is unusable still has its condition checked:
        // the placeholder serve's own problems are not reported, as the
        // flag has a structural error.
        let serve = self
            .required(&f, "serve")
            .and_then(|n| self.serve(n, "serve"))
            .unwrap_or_else(|| ServeDef {
                pos: node.pos,
                kind: ServeKind::Variant(Spanned {
                    value: String::new(),
                    pos: node.pos,
                }),
            });
        Some(RuleDef {
            pos: node.pos,
            id,
            description,
            condition: condition?,
            serve,
        })
    }

    /// `VARIANT`, `{variant}`, `{rollout}` or `{schedule}`.
    fn serve(&mut self, node: &Node, what: &str) -> Option<ServeDef> {
        if let Value::Scalar(_) = &node.value {
            let v = self.string(node, what)?;
            return Some(ServeDef {
                pos: node.pos,
                kind: ServeKind::Variant(v),
            });
        }
        let f = self.fields(node, what, SERVE_FIELDS)?;
        if f.entries.len() != 1 {
            if f.entries
                .iter()
                .all(|e| SERVE_FIELDS.contains(&e.key.as_str()))
            {
                self.err(
                    node.pos,
                    format!("{what} takes exactly one of: variant, rollout, schedule"),
                );
            }
            return None;
        }
        let entry = &f.entries[0];
        let kind = match entry.key.as_str() {
            "variant" => ServeKind::Variant(self.string(&entry.value, "variant")?),
            "rollout" => ServeKind::Rollout(self.rollout(&entry.value)?),
            "schedule" => ServeKind::Schedule(self.schedule(&entry.value)?),
            _ => return None,
        };
        Some(ServeDef {
            pos: node.pos,
            kind,
        })
    }

    /// `[{variant, weight}, …]` or `{variant: weight, …}`.
    fn rollout(&mut self, node: &Node) -> Option<Spanned<Vec<ArmDef>>> {
        let mut arms = Vec::new();
        match &node.value {
            Value::Map(entries) => {
                for e in entries {
                    let weight = self.number(&e.value, &format!("the weight of {:?}", e.key));
                    if let Some(weight) = weight {
                        arms.push(ArmDef {
                            variant: Spanned {
                                value: e.key.clone(),
                                pos: e.key_pos,
                            },
                            weight,
                        });
                    }
                }
            }
            Value::Seq(items) => {
                for item in items {
                    let Some(f) = self.fields(item, "a rollout arm", ARM_FIELDS) else {
                        continue;
                    };
                    let variant = self.req_string(&f, "variant");
                    let weight = self
                        .required(&f, "weight")
                        .and_then(|n| self.number(n, "weight"));
                    if let (Some(variant), Some(weight)) = (variant, weight) {
                        arms.push(ArmDef { variant, weight });
                    }
                }
            }
            Value::Scalar(_) => {
                self.err(
                    node.pos,
                    format!(
                        "rollout must be a list of {{variant, weight}} or a mapping of variant to weight, not {}",
                        node.kind()
                    ),
                );
                return None;
            }
        }
        Some(Spanned {
            value: arms,
            pos: node.pos,
        })
    }

    fn schedule(&mut self, node: &Node) -> Option<ScheduleDef> {
        let f = self.fields(node, "schedule", SCHEDULE_FIELDS)?;
        let variant = self.req_string(&f, "variant");
        let otherwise = self.req_string(&f, "otherwise");
        let steps = self.required(&f, "steps").and_then(|n| {
            let items = self.seq(n, "steps")?;
            let list = items
                .iter()
                .filter_map(|item| {
                    let sf = self.fields(item, "a schedule step", STEP_FIELDS)?;
                    let at = self.req_string(&sf, "at");
                    let percentage = self
                        .required(&sf, "percentage")
                        .and_then(|p| self.number(p, "percentage"));
                    Some(StepDef {
                        pos: item.pos,
                        at: at?,
                        percentage: percentage?,
                    })
                })
                .collect();
            Some(Spanned {
                value: list,
                pos: n.pos,
            })
        });
        Some(ScheduleDef {
            pos: node.pos,
            variant: variant?,
            otherwise: otherwise?,
            steps: steps?,
        })
    }
}

/// Resolves a scalar to JSON with the YAML 1.2 core schema: quoted and
/// block scalars are strings; plain ones may be null, booleans, integers
/// (decimal, `0x`, `0o`) or floats. Tags `!!str`, `!!int`, `!!float`,
/// `!!bool` and `!!null` force a type.
fn resolve(s: &Scalar) -> Result<Json, String> {
    let text = s.text.as_str();
    match s.tag.as_deref() {
        Some("!!str") => return Ok(Json::String(s.text.clone())),
        Some("!!null") => return Ok(Json::Null),
        Some("!!bool") => {
            return plain_bool(text)
                .map(Json::Bool)
                .ok_or_else(|| format!("{text:?} is not a boolean"));
        }
        Some("!!int" | "!!float") => {
            return plain_number(text)
                .ok_or_else(|| format!("{text:?} is not a number"))?
                .map(Json::Number);
        }
        Some(t) => return Err(format!("unsupported tag {t}")),
        None => {}
    }
    if s.style != Style::Plain {
        return Ok(Json::String(s.text.clone()));
    }
    if s.is_null() {
        return Ok(Json::Null);
    }
    if let Some(b) = plain_bool(text) {
        return Ok(Json::Bool(b));
    }
    match plain_number(text) {
        Some(n) => n.map(Json::Number),
        None => Ok(Json::String(s.text.clone())),
    }
}

fn plain_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// `None` when `text` is not a core-schema number; `Some(Err)` for one JSON
/// cannot hold (infinities, NaN).
fn plain_number(text: &str) -> Option<Result<Number, String>> {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let negative = text.starts_with('-');
    if let Some(hex) = text.strip_prefix("0x") {
        return u64::from_str_radix(hex, 16).ok().map(|n| Ok(n.into()));
    }
    if let Some(oct) = text.strip_prefix("0o") {
        return u64::from_str_radix(oct, 8).ok().map(|n| Ok(n.into()));
    }
    if matches!(unsigned, ".inf" | ".Inf" | ".INF") || matches!(text, ".nan" | ".NaN" | ".NAN") {
        return Some(Err(format!("{text} cannot be represented in JSON")));
    }
    if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()) {
        let n = if negative {
            text.parse::<i64>().ok().map(Number::from)
        } else {
            unsigned.parse::<u64>().ok().map(Number::from)
        };
        return Some(Ok(
            n.or_else(|| text.parse::<f64>().ok().and_then(Number::from_f64))?
        ));
    }
    if is_core_float(unsigned) {
        return text.parse::<f64>().ok().and_then(Number::from_f64).map(Ok);
    }
    None
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
fn is_core_float(s: &str) -> bool {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => digits(frac),
        Some((int, frac)) => digits(int) && (frac.is_empty() || digits(frac)),
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{Syntax, parse};
    use serde_json::json;

    fn scalar(src: &str) -> Result<Json, String> {
        let doc = parse(&format!("v: {src}\n"), Syntax::Yaml).unwrap();
        let Value::Map(e) = &doc.root.value else {
            panic!()
        };
        resolve(e[0].value.scalar().unwrap())
    }

    #[test]
    fn core_schema_resolution() {
        assert_eq!(scalar("on"), Ok(json!("on")));
        assert_eq!(scalar("off"), Ok(json!("off")));
        assert_eq!(scalar("yes"), Ok(json!("yes")));
        assert_eq!(scalar("true"), Ok(json!(true)));
        assert_eq!(scalar("False"), Ok(json!(false)));
        assert_eq!(scalar("'true'"), Ok(json!("true")));
        assert_eq!(scalar("~"), Ok(json!(null)));
        assert_eq!(scalar(""), Ok(json!(null)));
        assert_eq!(scalar("42"), Ok(json!(42)));
        assert_eq!(scalar("-7"), Ok(json!(-7)));
        assert_eq!(scalar("0x1F"), Ok(json!(31)));
        assert_eq!(scalar("0o17"), Ok(json!(15)));
        assert_eq!(scalar("1.5"), Ok(json!(1.5)));
        assert_eq!(scalar(".5"), Ok(json!(0.5)));
        assert_eq!(scalar("2e3"), Ok(json!(2000.0)));
        assert_eq!(scalar("1.2.3"), Ok(json!("1.2.3")));
        assert_eq!(
            scalar("2026-12-01T00:00:00Z"),
            Ok(json!("2026-12-01T00:00:00Z"))
        );
        assert_eq!(scalar("!!str 12"), Ok(json!("12")));
        assert!(scalar(".inf").is_err());
        assert!(scalar("!(x)").is_err());
        assert!(scalar("!!custom x").is_err());
    }
}
