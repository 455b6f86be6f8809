//! The writer of definition files: a document built as a tree of
//! [`OutputNode`]s (what YAML and JSON have in common), written as YAML in
//! the style of `examples/flags.yaml` or as pretty-printed JSON. Every
//! string is written so that [`load`](crate::load) reads it back unchanged.
//!
//! The tree is the writer's own: [`tree::Node`](crate::tree::Node) is what
//! the reader builds, with positions; an [`OutputNode`] has none.
//!
//! ```
//! use bunting_defs::write::{OutputDocument, OutputNode};
//! let doc = OutputDocument::new(OutputNode::Map(vec![
//!     ("environments".into(), OutputNode::Seq(vec![OutputNode::string("production")])),
//! ]));
//! assert_eq!(doc.to_yaml(), "environments: [production]\n");
//! assert!(bunting_defs::load(&doc.to_json(), bunting_defs::Syntax::Json).is_ok());
//! ```

use std::fmt::Write as _;

use serde_json::{Number, Value as Json};

/// One node of an exported definition document: what YAML and JSON have in
/// common. Mappings keep their order.
///
/// ```
/// use bunting_defs::write::{OutputDocument, OutputNode};
/// let doc = OutputDocument::new(OutputNode::Map(vec![
///     ("environments".into(), OutputNode::Seq(vec![OutputNode::string("production")])),
/// ]));
/// assert_eq!(doc.to_yaml(), "environments: [production]\n");
/// assert_eq!(doc.to_json(), "{\n  \"environments\": [\n    \"production\"\n  ]\n}\n");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum OutputNode {
    /// A string, number, boolean or null.
    Scalar(Json),
    /// A list.
    Seq(Vec<OutputNode>),
    /// A mapping, in order.
    Map(Vec<(String, OutputNode)>),
}

impl OutputNode {
    /// A string scalar.
    ///
    /// ```
    /// use bunting_defs::write::OutputNode;
    /// assert_eq!(OutputNode::string("on"), OutputNode::Scalar(serde_json::json!("on")));
    /// ```
    pub fn string(s: impl Into<String>) -> OutputNode {
        OutputNode::Scalar(Json::String(s.into()))
    }

    /// A number scalar from an `f64` (weights, percentages, layer ranges):
    /// whole numbers are written without a fraction (`50`, not `50.0`).
    ///
    /// ```
    /// use bunting_defs::write::OutputNode;
    /// assert_eq!(OutputNode::number(50.0), OutputNode::Scalar(serde_json::json!(50)));
    /// assert_eq!(OutputNode::number(33.5), OutputNode::Scalar(serde_json::json!(33.5)));
    /// ```
    pub fn number(x: f64) -> OutputNode {
        let n = if x.fract() == 0.0 && x.abs() < 1e15 {
            Number::from(x as i64)
        } else {
            Number::from_f64(x).unwrap_or_else(|| Number::from(0))
        };
        OutputNode::Scalar(Json::Number(n))
    }

    /// The node of an arbitrary JSON value (a variant's value). Objects keep
    /// `serde_json`'s key order.
    ///
    /// ```
    /// use bunting_defs::write::OutputNode;
    /// let n = OutputNode::json(&serde_json::json!({"topK": 50}));
    /// assert_eq!(n, OutputNode::Map(vec![("topK".into(), OutputNode::Scalar(serde_json::json!(50)))]));
    /// ```
    pub fn json(value: &Json) -> OutputNode {
        match value {
            Json::Array(items) => OutputNode::Seq(items.iter().map(OutputNode::json).collect()),
            Json::Object(map) => OutputNode::Map(
                map.iter()
                    .map(|(k, v)| (k.clone(), OutputNode::json(v)))
                    .collect(),
            ),
            scalar => OutputNode::Scalar(scalar.clone()),
        }
    }

    /// The node as a `serde_json` value (mapping order follows
    /// `serde_json`'s map, not the document's).
    ///
    /// ```
    /// use bunting_defs::write::OutputNode;
    /// let n = OutputNode::Seq(vec![OutputNode::string("a"), OutputNode::number(1.0)]);
    /// assert_eq!(n.to_value(), serde_json::json!(["a", 1]));
    /// ```
    pub fn to_value(&self) -> Json {
        match self {
            OutputNode::Scalar(v) => v.clone(),
            OutputNode::Seq(items) => Json::Array(items.iter().map(OutputNode::to_value).collect()),
            OutputNode::Map(entries) => Json::Object(
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
pub struct OutputDocument {
    /// The top-level mapping (`environments`, `segments`, `layers`, `flags`).
    pub root: OutputNode,
}

impl OutputDocument {
    /// A document with `root` as its top-level node.
    ///
    /// ```
    /// use bunting_defs::write::{OutputDocument, OutputNode};
    /// let doc = OutputDocument::new(OutputNode::Map(Vec::new()));
    /// assert_eq!(doc.to_json(), "{}\n");
    /// ```
    pub fn new(root: OutputNode) -> OutputDocument {
        OutputDocument { root }
    }

    /// The document as YAML 1.2 in the style of `examples/flags.yaml`:
    /// block mappings, short lists and mappings of scalars in flow style
    /// (`{ on: true, off: false }`), strings plain where that reads back as
    /// the same string and quoted otherwise.
    ///
    /// ```
    /// use bunting_defs::write::{OutputDocument, OutputNode};
    /// let doc = OutputDocument::new(OutputNode::Map(vec![
    ///     ("condition".into(), OutputNode::string("segment(\"staff\")")),
    ///     ("version".into(), OutputNode::string("42")),
    ///     ("note".into(), OutputNode::string("it's: quoted")),
    /// ]));
    /// assert_eq!(doc.to_yaml(), "condition: segment(\"staff\")\nversion: '42'\nnote: 'it''s: quoted'\n");
    /// ```
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        match &self.root {
            OutputNode::Map(entries) if !entries.is_empty() => yaml_entries(&mut out, entries, 0),
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
    /// use bunting_defs::write::{OutputDocument, OutputNode};
    /// let doc = OutputDocument::new(OutputNode::Map(vec![("flags".into(), OutputNode::Map(Vec::new()))]));
    /// assert_eq!(doc.to_json(), "{\n  \"flags\": {}\n}\n");
    /// ```
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        json_node(&mut out, &self.root, 0);
        out.push('\n');
        out
    }
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
        // Collections are never scalars (OutputNode::json splits them).
        other => out.push_str(&other.to_string()),
    }
}

/// The node on one line, in flow style.
fn yaml_inline(out: &mut String, node: &OutputNode) {
    match node {
        OutputNode::Scalar(v) => yaml_scalar(out, v, true),
        OutputNode::Seq(items) if items.is_empty() => out.push_str("[]"),
        OutputNode::Map(entries) if entries.is_empty() => out.push_str("{}"),
        OutputNode::Seq(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                yaml_inline(out, item);
            }
            out.push(']');
        }
        OutputNode::Map(entries) => {
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
fn yaml_flow(node: &OutputNode) -> Option<String> {
    let scalars_only = match node {
        OutputNode::Scalar(_) => return None,
        OutputNode::Seq(items) => items.iter().all(|i| matches!(i, OutputNode::Scalar(_))),
        OutputNode::Map(entries) => entries
            .iter()
            .all(|(k, v)| matches!(v, OutputNode::Scalar(_)) && !BLOCK_KEYS.contains(&k.as_str())),
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
fn yaml_value(out: &mut String, node: &OutputNode, indent: usize) {
    if let OutputNode::Scalar(Json::String(text)) = node
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
    } else if let OutputNode::Scalar(v) = node {
        out.push(' ');
        yaml_scalar(out, v, false);
        out.push('\n');
    } else if let Some(flow) = yaml_flow(node).or_else(|| match node {
        OutputNode::Seq(items) if items.is_empty() => Some("[]".into()),
        OutputNode::Map(entries) if entries.is_empty() => Some("{}".into()),
        _ => None,
    }) {
        out.push(' ');
        out.push_str(&flow);
        out.push('\n');
    } else {
        out.push('\n');
        match node {
            OutputNode::Map(entries) => yaml_entries(out, entries, indent),
            OutputNode::Seq(items) => yaml_items(out, items, indent),
            OutputNode::Scalar(_) => unreachable!("scalars are written inline"),
        }
    }
}

fn yaml_entries(out: &mut String, entries: &[(String, OutputNode)], indent: usize) {
    for (k, v) in entries {
        out.push_str(&" ".repeat(indent));
        yaml_string(out, k, false);
        out.push(':');
        yaml_value(out, v, indent + 2);
    }
}

fn yaml_items(out: &mut String, items: &[OutputNode], indent: usize) {
    for item in items {
        out.push_str(&" ".repeat(indent));
        out.push('-');
        match item {
            // `- key: value` with the other keys aligned under the first.
            OutputNode::Map(entries) if !entries.is_empty() && yaml_flow(item).is_none() => {
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

fn json_node(out: &mut String, node: &OutputNode, indent: usize) {
    let pad = |out: &mut String, n: usize| out.push_str(&" ".repeat(n));
    match node {
        OutputNode::Scalar(v) => out.push_str(&v.to_string()),
        OutputNode::Seq(items) if items.is_empty() => out.push_str("[]"),
        OutputNode::Map(entries) if entries.is_empty() => out.push_str("{}"),
        OutputNode::Seq(items) => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                pad(out, indent + 2);
                json_node(out, item, indent + 2);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            pad(out, indent);
            out.push(']');
        }
        OutputNode::Map(entries) => {
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
    use crate::Syntax;

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
            let tree = crate::tree::parse(&doc, Syntax::Yaml)
                .unwrap_or_else(|e| panic!("{s:?} as {doc:?}: {}", e.message));
            let crate::tree::Value::Map(entries) = &tree.root.value else {
                panic!("{doc:?} is not a mapping");
            };
            let crate::tree::Value::Scalar(sc) = &entries[0].value.value else {
                panic!("{doc:?}: not a scalar");
            };
            let plain = sc.style == crate::tree::Style::Plain;
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
}
