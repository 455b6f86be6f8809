//! A YAML or JSON document as a tree of nodes that remember where they are.
//!
//! The definition loader needs the line and column of every key and value
//! (to report errors where they are) and of every character of a condition
//! (to map a rule-language error inside it back into the file), so it reads
//! the file as YAML 1.2 events with spans and builds its own small tree.
//! JSON is YAML 1.2 flow syntax, so the same tree builder reads it, after a
//! strict `serde_json` pass that reports JSON syntax errors as JSON errors
//! (YAML would accept trailing commas, comments and unquoted strings).

use std::collections::HashMap;
use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// A 1-based line and column (in characters) in the definition file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, counted in characters.
    pub column: u32,
}

impl Pos {
    /// A position from 1-based line and column.
    pub const fn new(line: u32, column: u32) -> Pos {
        Pos { line, column }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// How a scalar was written, which decides how it is resolved and how its
/// characters map back to the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Unquoted: `on`, `42`, `segment("staff")`.
    Plain,
    /// `'…'`.
    SingleQuoted,
    /// `"…"` (also every JSON string).
    DoubleQuoted,
    /// `|` block.
    Literal,
    /// `>` block.
    Folded,
}

impl From<ScalarStyle> for Style {
    fn from(s: ScalarStyle) -> Style {
        match s {
            ScalarStyle::Plain => Style::Plain,
            ScalarStyle::SingleQuoted => Style::SingleQuoted,
            ScalarStyle::DoubleQuoted => Style::DoubleQuoted,
            ScalarStyle::Literal => Style::Literal,
            ScalarStyle::Folded => Style::Folded,
        }
    }
}

/// Where a node's text starts in the source: character index, 1-based line,
/// 0-based column (saphyr's markers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark {
    index: usize,
    line: usize,
    col: usize,
}

/// A scalar as written: its decoded text, style and tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scalar {
    /// The decoded text (escapes resolved, lines folded).
    pub text: String,
    /// How it was written.
    pub style: Style,
    /// Its tag, if any: `!!str` for the core schema's `tag:yaml.org,2002:str`,
    /// otherwise handle and suffix as written.
    pub tag: Option<String>,
    start: Mark,
}

impl Scalar {
    /// Whether the scalar is a YAML null: an untagged plain `null`, `Null`,
    /// `NULL`, `~` or nothing at all, or tagged `!!null`.
    pub fn is_null(&self) -> bool {
        match self.tag.as_deref() {
            Some("!!null") => true,
            Some(_) => false,
            None => {
                self.style == Style::Plain
                    && matches!(self.text.as_str(), "" | "~" | "null" | "Null" | "NULL")
            }
        }
    }
}

/// A node's content.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar (string, number, boolean or null before resolution).
    Scalar(Scalar),
    /// A sequence (array).
    Seq(Vec<Node>),
    /// A mapping (object), in document order. Keys are unique.
    Map(Vec<Entry>),
}

/// A node and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where the node starts (its first character, anchor or tag included).
    pub pos: Pos,
    /// Its content.
    pub value: Value,
}

impl Node {
    /// The scalar, if this node is one.
    pub fn scalar(&self) -> Option<&Scalar> {
        match &self.value {
            Value::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// What kind of node this is, for error messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Scalar(s) if s.is_null() => "null",
            Value::Scalar(_) => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// One `key: value` pair of a mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The key's text.
    pub key: String,
    /// Where the key starts.
    pub key_pos: Pos,
    /// The value.
    pub value: Node,
}

/// A problem that stops the file from being read at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Where it is.
    pub pos: Pos,
    /// What is wrong.
    pub message: String,
}

/// A parsed document: its root node, the source (for character positions)
/// and the duplicate keys found (reported, the first occurrence is kept).
#[derive(Debug, Clone)]
pub struct Document {
    /// The root node.
    pub root: Node,
    /// `(position of the repeated key, key)` for every duplicate mapping key.
    pub duplicates: Vec<(Pos, String)>,
    chars: Vec<char>,
}

/// The two input syntaxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// YAML 1.2.
    Yaml,
    /// JSON (RFC 8259), checked strictly.
    Json,
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn pos_of(span: &Span) -> Pos {
    Pos::new(to_u32(span.start.line()), to_u32(span.start.col() + 1))
}

fn mark_of(span: &Span) -> Mark {
    Mark {
        index: span.start.index(),
        line: span.start.line(),
        col: span.start.col(),
    }
}

enum Frame {
    Seq {
        pos: Pos,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        pos: Pos,
        anchor: usize,
        entries: Vec<Entry>,
        key: Option<(String, Pos)>,
    },
}

fn tag_name(tag: Option<&saphyr_parser::Tag>) -> Option<String> {
    tag.map(|t| {
        if t.handle == "tag:yaml.org,2002:" {
            format!("!!{}", t.suffix)
        } else {
            format!("{}{}", t.handle, t.suffix)
        }
    })
}

/// Parses `src` into a [`Document`]. Fails on the first syntax error (YAML
/// and JSON parsers cannot recover), or when the stream does not hold
/// exactly one document.
///
/// ```
/// use bunting_defs::tree::{parse, Syntax, Pos};
/// let doc = parse("a:\n  b: [1, 2]\n", Syntax::Yaml).unwrap();
/// let bunting_defs::tree::Value::Map(entries) = &doc.root.value else { panic!() };
/// assert_eq!(entries[0].value.pos, Pos::new(2, 3));
/// let err = parse("a: [1,\n", Syntax::Yaml).unwrap_err();
/// assert_eq!(err.pos.line, 2);
/// ```
pub fn parse(src: &str, syntax: Syntax) -> Result<Document, SyntaxError> {
    if syntax == Syntax::Json {
        check_json(src)?;
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut root: Option<Node> = None;
    let mut duplicates = Vec::new();
    let mut documents = 0;
    for event in Parser::new_from_str(src) {
        let (event, span) = event.map_err(|e| SyntaxError {
            pos: Pos::new(to_u32(e.marker().line()), to_u32(e.marker().col() + 1)),
            message: e.info().to_string(),
        })?;
        let done = match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(SyntaxError {
                        pos: pos_of(&span),
                        message: "a definition file holds exactly one YAML document".into(),
                    });
                }
                continue;
            }
            Event::Scalar(text, style, anchor, tag) => {
                let node = Node {
                    pos: pos_of(&span),
                    value: Value::Scalar(Scalar {
                        text: text.into_owned(),
                        style: style.into(),
                        tag: tag_name(tag.as_deref()),
                        start: mark_of(&span),
                    }),
                };
                if anchor > 0 {
                    anchors.insert(anchor, node.clone());
                }
                node
            }
            Event::Alias(id) => match anchors.get(&id) {
                Some(node) => node.clone(),
                None => {
                    return Err(SyntaxError {
                        pos: pos_of(&span),
                        message: "alias of an unknown or unfinished anchor".into(),
                    });
                }
            },
            Event::SequenceStart(anchor, tag) => {
                check_collection_tag(tag.as_deref(), "!!seq", &span)?;
                stack.push(Frame::Seq {
                    pos: pos_of(&span),
                    anchor,
                    items: Vec::new(),
                });
                continue;
            }
            Event::MappingStart(anchor, tag) => {
                check_collection_tag(tag.as_deref(), "!!map", &span)?;
                stack.push(Frame::Map {
                    pos: pos_of(&span),
                    anchor,
                    entries: Vec::new(),
                    key: None,
                });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (pos, anchor, value) = match stack.pop() {
                    Some(Frame::Seq { pos, anchor, items }) => (pos, anchor, Value::Seq(items)),
                    Some(Frame::Map {
                        pos,
                        anchor,
                        entries,
                        ..
                    }) => (pos, anchor, Value::Map(entries)),
                    None => continue,
                };
                let node = Node { pos, value };
                if anchor > 0 {
                    anchors.insert(anchor, node.clone());
                }
                node
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {
                continue;
            }
        };
        match stack.last_mut() {
            None => root = Some(done),
            Some(Frame::Seq { items, .. }) => items.push(done),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => match &done.value {
                    Value::Scalar(s) => *key = Some((s.text.clone(), done.pos)),
                    _ => {
                        return Err(SyntaxError {
                            pos: done.pos,
                            message: "mapping keys must be plain strings, not lists or mappings"
                                .into(),
                        });
                    }
                },
                Some((k, key_pos)) => {
                    if entries.iter().any(|e| e.key == k) {
                        duplicates.push((key_pos, k));
                    } else {
                        entries.push(Entry {
                            key: k,
                            key_pos,
                            value: done,
                        });
                    }
                }
            },
        }
    }
    let root = root.ok_or_else(|| SyntaxError {
        pos: Pos::new(1, 1),
        message: "the file is empty".into(),
    })?;
    Ok(Document {
        root,
        duplicates,
        chars: src.chars().collect(),
    })
}

fn check_collection_tag(
    tag: Option<&saphyr_parser::Tag>,
    allowed: &str,
    span: &Span,
) -> Result<(), SyntaxError> {
    match tag_name(tag) {
        Some(t) if t != allowed => Err(SyntaxError {
            pos: pos_of(span),
            message: format!("unsupported tag {t}"),
        }),
        _ => Ok(()),
    }
}

/// Strict JSON syntax check, so JSON files get JSON's rules and messages.
fn check_json(src: &str) -> Result<(), SyntaxError> {
    match serde_json::from_str::<serde::de::IgnoredAny>(src) {
        Ok(_) => Ok(()),
        Err(e) => {
            let full = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
            Err(SyntaxError {
                pos: Pos::new(to_u32(e.line()), to_u32(e.column().max(1))),
                message: format!("invalid JSON: {message}"),
            })
        }
    }
}

impl Document {
    /// The source position of every character of `scalar`'s decoded text,
    /// as far as it could be traced: the result may be shorter than the text
    /// when the scalar's source could not be followed (then callers fall back
    /// to the scalar's own position).
    ///
    /// Works for every style: plain and quoted scalars over several lines
    /// (folded line breaks map to the break), `''` and backslash escapes (an
    /// escape maps to its backslash), literal and folded blocks.
    pub fn char_positions(&self, scalar: &Scalar) -> Vec<Pos> {
        let src = &self.chars;
        let mut i = scalar.start.index;
        let mut line = scalar.start.line;
        let mut col = scalar.start.col;
        let at = |i: usize| src.get(i).copied();
        let advance = |i: &mut usize, line: &mut usize, col: &mut usize| {
            if at(*i) == Some('\n') {
                *line += 1;
                *col = 0;
            } else {
                *col += 1;
            }
            *i += 1;
        };
        // Node properties (anchor, tag) come first in the span.
        while matches!(at(i), Some('&' | '!')) {
            while at(i).is_some_and(|c| !c.is_whitespace()) {
                advance(&mut i, &mut line, &mut col);
            }
            while at(i).is_some_and(char::is_whitespace) {
                advance(&mut i, &mut line, &mut col);
            }
        }
        let quote = match scalar.style {
            Style::SingleQuoted => Some('\''),
            Style::DoubleQuoted => Some('"'),
            _ => None,
        };
        if let Some(q) = quote {
            if at(i) != Some(q) {
                return Vec::new();
            }
            advance(&mut i, &mut line, &mut col);
        }
        let mut out = Vec::with_capacity(scalar.text.len());
        'chars: for ch in scalar.text.chars() {
            loop {
                let Some(c) = at(i) else { break 'chars };
                let here = Pos::new(to_u32(line), to_u32(col + 1));
                if scalar.style == Style::DoubleQuoted && c == '\\' {
                    match at(i + 1) {
                        // An escaped line break joins lines without a space.
                        Some('\n' | '\r') => {
                            advance(&mut i, &mut line, &mut col);
                            continue;
                        }
                        next => {
                            let len = match next {
                                Some('x') => 4,
                                Some('u') => 6,
                                Some('U') => 10,
                                _ => 2,
                            };
                            out.push(here);
                            for _ in 0..len {
                                advance(&mut i, &mut line, &mut col);
                            }
                            continue 'chars;
                        }
                    }
                }
                if c == ch {
                    out.push(here);
                    advance(&mut i, &mut line, &mut col);
                    if quote == Some('\'') && c == '\'' {
                        advance(&mut i, &mut line, &mut col);
                    }
                    continue 'chars;
                }
                // A folded line break: the decoded space or newline stands
                // for the source's line break.
                if matches!(ch, ' ' | '\n') && matches!(c, '\n' | '\r') {
                    out.push(here);
                    advance(&mut i, &mut line, &mut col);
                    continue 'chars;
                }
                if matches!(c, ' ' | '\t' | '\n' | '\r') {
                    advance(&mut i, &mut line, &mut col);
                    continue;
                }
                break 'chars;
            }
        }
        out
    }
}

/// Maps a position inside a scalar's decoded text (1-based `line` and
/// `column` counted in characters, as the rule-language parser reports them)
/// to the file, given the scalar's character positions (see
/// [`Document::char_positions`]) and its own position as the fallback.
///
/// A position just past the end of the text (an error at end of input) maps
/// one column after the last character.
pub fn map_offset(text: &str, positions: &[Pos], fallback: Pos, line: u32, column: u32) -> Pos {
    let (mut l, mut c) = (1u32, 1u32);
    let mut index = None;
    for (k, ch) in text.chars().enumerate() {
        if l == line && c == column {
            index = Some(k);
            break;
        }
        if l > line {
            // Past the line: the error is at the end of `line`.
            index = Some(k.saturating_sub(1));
            break;
        }
        if ch == '\n' {
            l += 1;
            c = 1;
        } else {
            c += 1;
        }
    }
    let (index, after) = match index {
        Some(k) => (k, false),
        // At the end of the input: just after the last visible character.
        None => match text
            .chars()
            .enumerate()
            .filter(|(_, c)| !c.is_whitespace())
            .last()
        {
            Some((k, _)) => (k, true),
            None => (0, false),
        },
    };
    match positions.get(index) {
        Some(p) if after => Pos::new(p.line, p.column + 1),
        Some(p) => *p,
        None => fallback,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar_at<'d>(doc: &'d Document, key: &str) -> &'d Scalar {
        let Value::Map(entries) = &doc.root.value else {
            panic!("root is not a map")
        };
        entries
            .iter()
            .find(|e| e.key == key)
            .and_then(|e| e.value.scalar())
            .expect("scalar")
    }

    /// The position of the `n`th (0-based) occurrence of `needle` in the
    /// decoded text of `key`'s scalar, through `char_positions`.
    fn pos_of_char(doc: &Document, key: &str, needle: char, n: usize) -> Pos {
        let s = scalar_at(doc, key);
        let positions = doc.char_positions(s);
        let k = s
            .text
            .chars()
            .enumerate()
            .filter(|(_, c)| *c == needle)
            .nth(n)
            .expect("needle")
            .0;
        positions[k]
    }

    const SRC: &str = r#"plain: a && b
single: 'it''s && x'
double: "q\"x\u00e9 && y"
multi: a &&
  b
literal: |
  line one &&
    two
folded: >-
  folded one
  two
anchored: &x !!str z
dq_multi: "one \
  two"
"#;

    #[test]
    fn character_positions_follow_every_style() {
        let doc = parse(SRC, Syntax::Yaml).unwrap();
        assert_eq!(pos_of_char(&doc, "plain", 'b', 0), Pos::new(1, 13));
        // `''` counts as one character at the first quote.
        assert_eq!(pos_of_char(&doc, "single", '\'', 0), Pos::new(2, 12));
        assert_eq!(pos_of_char(&doc, "single", 'x', 0), Pos::new(2, 19));
        // Escapes map to their backslash.
        assert_eq!(pos_of_char(&doc, "double", '"', 0), Pos::new(3, 11));
        assert_eq!(pos_of_char(&doc, "double", 'é', 0), Pos::new(3, 14));
        assert_eq!(pos_of_char(&doc, "double", 'y', 0), Pos::new(3, 24));
        assert_eq!(pos_of_char(&doc, "multi", 'b', 0), Pos::new(5, 3));
        assert_eq!(pos_of_char(&doc, "literal", 't', 0), Pos::new(8, 5));
        assert_eq!(pos_of_char(&doc, "folded", 't', 0), Pos::new(11, 3));
        assert_eq!(pos_of_char(&doc, "anchored", 'z', 0), Pos::new(12, 20));
        assert_eq!(pos_of_char(&doc, "dq_multi", 't', 0), Pos::new(14, 3));
    }

    #[test]
    fn offsets_map_through_lines_and_past_the_end() {
        let doc = parse(SRC, Syntax::Yaml).unwrap();
        let s = scalar_at(&doc, "literal");
        let p = doc.char_positions(s);
        let f = Pos::new(99, 99);
        // "line one &&\n  two\n": line 2 column 3 is `t`.
        assert_eq!(map_offset(&s.text, &p, f, 2, 3), Pos::new(8, 5));
        assert_eq!(map_offset(&s.text, &p, f, 1, 10), Pos::new(7, 12));
        let s = scalar_at(&doc, "plain");
        let p = doc.char_positions(s);
        // One past the end of "a && b".
        assert_eq!(map_offset(&s.text, &p, f, 1, 7), Pos::new(1, 14));
        // Unmappable: the fallback.
        assert_eq!(map_offset(&s.text, &[], f, 1, 1), f);
    }

    #[test]
    fn json_is_read_strictly_with_json_positions() {
        let doc = parse("{\n\t\"a\": [1,\n\t\t2]\n}\n", Syntax::Json).unwrap();
        let Value::Map(entries) = &doc.root.value else {
            panic!()
        };
        assert_eq!(entries[0].key_pos, Pos::new(2, 2));
        let err = parse("{\"a\": [1, 2,]}", Syntax::Json).unwrap_err();
        assert_eq!(err.pos, Pos::new(1, 13));
        assert!(err.message.starts_with("invalid JSON: "), "{}", err.message);
    }

    #[test]
    fn duplicates_aliases_and_document_count() {
        let doc = parse("a: &v {x: 1}\nb: *v\na: 2\n", Syntax::Yaml).unwrap();
        assert_eq!(doc.duplicates, vec![(Pos::new(3, 1), "a".to_string())]);
        let Value::Map(entries) = &doc.root.value else {
            panic!()
        };
        assert_eq!(entries[1].value, entries[0].value);
        assert!(parse("a: 1\n---\nb: 2\n", Syntax::Yaml).is_err());
        assert_eq!(
            parse("# nothing\n", Syntax::Yaml).unwrap_err().message,
            "the file is empty"
        );
    }

    #[test]
    fn syntax_errors_carry_positions() {
        let err = parse(
            "flags:\n  a:\n    type: boolean\n   variants: x\n",
            Syntax::Yaml,
        )
        .unwrap_err();
        assert_eq!(err.pos, Pos::new(4, 4));
    }
}
