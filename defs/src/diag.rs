//! Diagnostics: one problem of a definition file, with its position.

use std::fmt;

use bunting_core::rules::Span;

use crate::tree::Pos;

/// What a diagnostic is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Subject {
    /// A flag, by key.
    Flag(String),
    /// A segment, by key.
    Segment(String),
    /// A layer, by key.
    Layer(String),
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Flag(k) => write!(f, "flag {k}"),
            Subject::Segment(k) => write!(f, "segment {k}"),
            Subject::Layer(k) => write!(f, "layer {k}"),
        }
    }
}

/// One problem of a definition file.
///
/// Rendered as `FILE:LINE:COLUMN: flag KEY (env ENV): message`; the subject
/// is left out for problems outside flags, segments and layers, and the
/// environment list when the problem is not specific to some environments
/// (it concerns the file's structure, or shows in every environment).
///
/// ```
/// use bunting_defs::{Diagnostic, Subject, Pos};
/// let d = Diagnostic {
///     pos: Pos::new(12, 7),
///     subject: Some(Subject::Flag("new-checkout".into())),
///     environments: vec!["production".into()],
///     message: "fallthrough.rollout: weights sum to 90%, not 100%".into(),
///     snippet: None,
/// };
/// assert_eq!(d.render("flags.yaml"),
///     "flags.yaml:12:7: flag new-checkout (env production): fallthrough.rollout: weights sum to 90%, not 100%");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Where the problem is.
    pub pos: Pos,
    /// The flag, segment or layer it belongs to.
    pub subject: Option<Subject>,
    /// The environments it shows in; empty when not environment-specific.
    pub environments: Vec<String>,
    /// What is wrong.
    pub message: String,
    /// For a rule-language error, the condition and where in it the error
    /// is; see [`Diagnostic::excerpt`].
    pub snippet: Option<Snippet>,
}

/// A condition as the rule-language parser read it (escapes resolved,
/// lines folded) and the span of an error in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    /// The condition's text.
    pub text: String,
    /// Where the error is in `text`.
    pub span: Span,
}

impl Diagnostic {
    /// The diagnostic as one line, prefixed with `file`.
    pub fn render(&self, file: &str) -> String {
        format!("{file}:{self}")
    }

    /// For a rule-language error, the offending line of the condition with
    /// carets under the error, both indented by four spaces and ending with
    /// a line break; `None` for other problems.
    ///
    /// ```
    /// use bunting_defs::{load, Syntax};
    /// let problems = load(r#"
    /// environments: [production]
    /// flags:
    ///   beta:
    ///     type: boolean
    ///     variants: {on: true, off: false}
    ///     offVariant: off
    ///     default:
    ///       rules: [{condition: 'plan == "pro" || email endswith "@x.io"', serve: on}]
    /// "#, Syntax::Yaml).unwrap_err();
    /// assert_eq!(problems[0].render("f.yaml"),
    ///     "f.yaml:9:51: flag beta: rules[0].condition: expected an operator, `&&`, `||` or end of input, found identifier `endswith`");
    /// assert_eq!(problems[0].excerpt().unwrap(), concat!(
    ///     "    plan == \"pro\" || email endswith \"@x.io\"\n",
    ///     "                           ^^^^^^^^\n",
    /// ));
    /// ```
    pub fn excerpt(&self) -> Option<String> {
        self.snippet.as_ref().map(Snippet::excerpt)
    }
}

impl Snippet {
    /// See [`Diagnostic::excerpt`]. Columns count characters; a tab before
    /// the span is kept under itself so that the carets line up. The carets
    /// cover the span on its first line, and at least one character (one
    /// past the end for an error at the end of the input).
    pub fn excerpt(&self) -> String {
        let line = self
            .text
            .split('\n')
            .nth(self.span.line.saturating_sub(1) as usize)
            .unwrap_or_default();
        let before = self.span.column.saturating_sub(1) as usize;
        let pad: String = line
            .chars()
            .chain(std::iter::repeat(' '))
            .take(before)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let rest = line.chars().count().saturating_sub(before);
        let carets = (self.span.length as usize).min(rest).max(1);
        format!("    {line}\n    {pad}{}\n", "^".repeat(carets))
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.pos.line, self.pos.column)?;
        let mut context = false;
        if let Some(s) = &self.subject {
            write!(f, "{s}")?;
            context = true;
        }
        if !self.environments.is_empty() {
            if context {
                f.write_str(" ")?;
            }
            write!(f, "(env {})", self.environments.join(", "))?;
            context = true;
        }
        if context {
            f.write_str(": ")?;
        }
        f.write_str(&self.message)
    }
}

/// The closest of `candidates` to `word`, if it is close enough to be a
/// likely typo (edit distance at most a third of the word, and at least 1).
pub(crate) fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    let lower = word.to_lowercase();
    // An abbreviation: `prod` for `production`.
    if word.chars().count() >= 3
        && let Some(c) = candidates
            .iter()
            .find(|c| c.to_lowercase().starts_with(&lower))
    {
        return Some(c);
    }
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance, case-insensitive.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_with_and_without_context() {
        let mut d = Diagnostic {
            pos: Pos::new(3, 1),
            subject: None,
            environments: vec![],
            message: "the file is empty".into(),
            snippet: None,
        };
        assert_eq!(d.render("f.yaml"), "f.yaml:3:1: the file is empty");
        d.subject = Some(Subject::Segment("staff".into()));
        assert_eq!(
            d.render("f.yaml"),
            "f.yaml:3:1: segment staff: the file is empty"
        );
        d.environments = vec!["staging".into(), "production".into()];
        assert_eq!(
            d.render("f.yaml"),
            "f.yaml:3:1: segment staff (env staging, production): the file is empty"
        );
    }

    #[test]
    fn excerpts_underline_the_span_on_its_line() {
        let excerpt = |text: &str, line, column, length| {
            Snippet {
                text: text.into(),
                span: Span {
                    line,
                    column,
                    length,
                },
            }
            .excerpt()
        };
        // At the end of the input: one caret past the last character.
        assert_eq!(excerpt("a ==", 1, 5, 0), "    a ==\n        ^\n");
        // On a later line, with a tab kept for alignment.
        assert_eq!(
            excerpt("a == 1 &&\n\tb ||| c", 2, 6, 1),
            "    \tb ||| c\n    \t    ^\n"
        );
        // A span running past its line is cut at the line's end.
        assert_eq!(
            excerpt("x == \"open\nstring", 1, 6, 12),
            "    x == \"open\n         ^^^^^\n"
        );
    }

    #[test]
    fn suggestions_catch_typos_only() {
        let fields = ["enabled", "rules", "fallthrough", "prerequisites"];
        assert_eq!(suggest("enabeld", &fields), Some("enabled"));
        assert_eq!(suggest("fallthrogh", &fields), Some("fallthrough"));
        assert_eq!(suggest("Rules", &fields), Some("rules"));
        assert_eq!(suggest("colour", &fields), None);
        assert_eq!(
            suggest("prod", &["development", "production"]),
            Some("production")
        );
    }
}
