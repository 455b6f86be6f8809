//! Tokenizer of the rule language, tracking line and column of every token.

use std::borrow::Cow;

use super::ParseError;

/// A token kind, with its payload, borrowed from the source where it can
/// be (identifiers always, string literals without escapes).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok<'a> {
    /// Attribute path or function name, e.g. `app.version`.
    Ident(&'a str),
    /// String literal (escapes resolved).
    Str(Cow<'a, str>),
    /// Number literal.
    Num(f64),
    True,
    False,
    Null,
    Now,
    And,
    Or,
    Not,
    In,
    Contains,
    StartsWith,
    EndsWith,
    Matches,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Eof,
}

impl Tok<'_> {
    /// How the token is named in error messages.
    pub(super) fn describe(&self) -> String {
        // One `String` made from a `&'static str` for the fixed tokens,
        // rather than a separate allocation inlined in every arm.
        let fixed = match self {
            Tok::Ident(s) => return format!("identifier `{s}`"),
            Tok::Str(s) => return format!("string {s:?}"),
            Tok::Num(n) => return format!("number {}", crate::numtext::plain(*n)),
            Tok::True => "`true`",
            Tok::False => "`false`",
            Tok::Null => "`null`",
            Tok::Now => "`now`",
            Tok::And => "`&&`",
            Tok::Or => "`||`",
            Tok::Not => "`!`",
            Tok::In => "`in`",
            Tok::Contains => "`contains`",
            Tok::StartsWith => "`starts_with`",
            Tok::EndsWith => "`ends_with`",
            Tok::Matches => "`matches`",
            Tok::LParen => "`(`",
            Tok::RParen => "`)`",
            Tok::LBracket => "`[`",
            Tok::RBracket => "`]`",
            Tok::Comma => "`,`",
            Tok::Eq => "`==`",
            Tok::Ne => "`!=`",
            Tok::Lt => "`<`",
            Tok::Le => "`<=`",
            Tok::Gt => "`>`",
            Tok::Ge => "`>=`",
            Tok::Eof => "end of input",
        };
        fixed.into()
    }
}

/// A token and where it is (1-based line and column of its first
/// character, and its length, in characters).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Token<'a> {
    pub tok: Tok<'a>,
    pub line: u32,
    pub column: u32,
    pub len: u32,
}

struct Lexer<'a> {
    src: &'a str,
    /// Byte position of the next character in `src`.
    pos: usize,
    line: u32,
    column: u32,
    /// Characters consumed so far.
    offset: u32,
}

impl<'a> Lexer<'a> {
    fn peek(&self) -> Option<char> {
        match self.src.as_bytes().get(self.pos) {
            Some(&b) if b.is_ascii() => Some(char::from(b)),
            Some(_) => self.src[self.pos..].chars().next(),
            None => None,
        }
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        self.offset += 1;
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    /// An error about the text from `line`, `column` (at character offset
    /// `start`) up to what has been consumed.
    fn error(
        &self,
        line: u32,
        column: u32,
        start: u32,
        found: String,
        expected: &str,
    ) -> ParseError {
        ParseError {
            line,
            column,
            length: self.offset - start,
            found,
            expected: expected.to_string(),
        }
    }
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == '$'
}

fn is_ident_continue(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$'
}

/// Splits `src` into tokens, ending with [`Tok::Eof`].
pub(super) fn tokenize(src: &str) -> Result<Vec<Token<'_>>, ParseError> {
    let mut lx = Lexer {
        src,
        pos: 0,
        line: 1,
        column: 1,
        offset: 0,
    };
    let mut out = Vec::with_capacity(16);
    loop {
        while lx.peek().is_some_and(char::is_whitespace) {
            lx.bump();
        }
        let (line, column, start) = (lx.line, lx.column, lx.offset);
        let Some(c) = lx.peek() else {
            out.push(Token {
                tok: Tok::Eof,
                line,
                column,
                len: 0,
            });
            return Ok(out);
        };
        let tok = match c {
            '(' | ')' | '[' | ']' | ',' => {
                lx.bump();
                match c {
                    '(' => Tok::LParen,
                    ')' => Tok::RParen,
                    '[' => Tok::LBracket,
                    ']' => Tok::RBracket,
                    _ => Tok::Comma,
                }
            }
            '&' | '|' => {
                lx.bump();
                if lx.peek() == Some(c) {
                    lx.bump();
                    if c == '&' { Tok::And } else { Tok::Or }
                } else {
                    let expected = if c == '&' { "`&&`" } else { "`||`" };
                    return Err(lx.error(line, column, start, format!("`{c}`"), expected));
                }
            }
            '=' => {
                lx.bump();
                if lx.peek() == Some('=') {
                    lx.bump();
                    Tok::Eq
                } else {
                    return Err(lx.error(line, column, start, "`=`".into(), "`==`"));
                }
            }
            '!' | '<' | '>' => {
                lx.bump();
                if lx.peek() == Some('=') {
                    lx.bump();
                    match c {
                        '!' => Tok::Ne,
                        '<' => Tok::Le,
                        _ => Tok::Ge,
                    }
                } else {
                    match c {
                        '!' => Tok::Not,
                        '<' => Tok::Lt,
                        _ => Tok::Gt,
                    }
                }
            }
            '"' | '\'' => Tok::Str(lex_string(&mut lx, c, line, column)?),
            c if c.is_ascii_digit() || c == '-' => lex_number(&mut lx, line, column)?,
            c if is_ident_start(c) => lex_ident(&mut lx),
            other => {
                lx.bump();
                return Err(lx.error(
                    line,
                    column,
                    start,
                    format!("character {other:?}"),
                    "an attribute, a literal, an operator or `(`",
                ));
            }
        };
        out.push(Token {
            tok,
            line,
            column,
            len: lx.offset - start,
        });
    }
}

fn lex_string<'a>(
    lx: &mut Lexer<'a>,
    quote: char,
    line: u32,
    column: u32,
) -> Result<Cow<'a, str>, ParseError> {
    let start = lx.offset;
    lx.bump();
    // Borrowed from the source until the first escape.
    let from = lx.pos;
    let mut s: Option<String> = None;
    loop {
        let before = lx.pos;
        let (el, ec, escape) = (lx.line, lx.column, lx.offset);
        match lx.bump() {
            None => {
                return Err(lx.error(
                    line,
                    column,
                    start,
                    "an unterminated string".into(),
                    &format!("closing `{quote}`"),
                ));
            }
            Some(c) if c == quote => {
                return Ok(match s {
                    Some(s) => Cow::Owned(s),
                    None => Cow::Borrowed(&lx.src[from..before]),
                });
            }
            Some('\\') => {
                let s = s.get_or_insert_with(|| lx.src[from..before].to_string());
                match lx.bump() {
                    Some('n') => s.push('\n'),
                    Some('t') => s.push('\t'),
                    Some('r') => s.push('\r'),
                    Some('\\') => s.push('\\'),
                    Some('"') => s.push('"'),
                    Some('\'') => s.push('\''),
                    Some('u') => {
                        let mut hex = String::new();
                        for _ in 0..4 {
                            match lx.bump() {
                                Some(h) if h.is_ascii_hexdigit() => hex.push(h),
                                _ => {
                                    return Err(lx.error(
                                        el,
                                        ec,
                                        escape,
                                        "a bad `\\u` escape".into(),
                                        "four hex digits after `\\u`",
                                    ));
                                }
                            }
                        }
                        let code = u32::from_str_radix(&hex, 16).unwrap_or(0xFFFD);
                        s.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
                    }
                    other => {
                        let found =
                            other.map_or("end of input".to_string(), |c| format!("`\\{c}`"));
                        return Err(lx.error(
                            el,
                            ec,
                            escape,
                            found,
                            "an escape: \\n \\t \\r \\\\ \\\" \\' or \\uXXXX",
                        ));
                    }
                }
            }
            Some(c) => {
                if let Some(s) = &mut s {
                    s.push(c);
                }
            }
        }
    }
}

fn lex_number<'a>(lx: &mut Lexer<'a>, line: u32, column: u32) -> Result<Tok<'a>, ParseError> {
    let start = lx.offset;
    let from = lx.pos;
    if lx.peek() == Some('-') {
        lx.bump();
    }
    while let Some(c) = lx.peek() {
        // Every character taken is ASCII, so the text so far is a slice.
        let exponent_sign = (c == '-' || c == '+') && lx.src[from..lx.pos].ends_with(['e', 'E']);
        if c.is_ascii_digit() || c == '.' || c == 'e' || c == 'E' || exponent_sign {
            lx.bump();
        } else {
            break;
        }
    }
    let text = &lx.src[from..lx.pos];
    match crate::rules::ast::parse_f64(text) {
        Some(n) if n.is_finite() && text != "-" => Ok(Tok::Num(n)),
        _ => Err(lx.error(line, column, start, format!("`{text}`"), "a number")),
    }
}

fn lex_ident<'a>(lx: &mut Lexer<'a>) -> Tok<'a> {
    let from = lx.pos;
    while let Some(c) = lx.peek() {
        // A dot continues a path only when a path segment follows it.
        if is_ident_continue(c) || (c == '.' && lx.pos > from) {
            lx.bump();
        } else {
            break;
        }
    }
    let text = &lx.src[from..lx.pos];
    match text {
        "true" => Tok::True,
        "false" => Tok::False,
        "null" => Tok::Null,
        "now" => Tok::Now,
        "and" => Tok::And,
        "or" => Tok::Or,
        "not" => Tok::Not,
        "in" => Tok::In,
        "contains" => Tok::Contains,
        "starts_with" => Tok::StartsWith,
        "ends_with" => Tok::EndsWith,
        "matches" => Tok::Matches,
        _ => Tok::Ident(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_span_lines() {
        let toks = tokenize("a ==\n  \"x\"").unwrap();
        assert_eq!((toks[0].line, toks[0].column), (1, 1));
        assert_eq!((toks[1].line, toks[1].column), (1, 3));
        assert_eq!((toks[2].line, toks[2].column), (2, 3));
        assert_eq!(toks[2].tok, Tok::Str("x".into()));
        assert!(matches!(toks[2].tok, Tok::Str(Cow::Borrowed(_))));
        assert_eq!(
            (toks[0].len, toks[1].len, toks[2].len, toks[3].len),
            (1, 2, 3, 0)
        );
    }

    #[test]
    fn numbers_and_paths() {
        let toks = tokenize("app.version >= -1.5e3").unwrap();
        assert_eq!(toks[0].tok, Tok::Ident("app.version"));
        assert_eq!(toks[2].tok, Tok::Num(-1500.0));
    }

    #[test]
    fn strings_borrow_until_an_escape_and_positions_count_characters() {
        let toks = tokenize("name == \"é\\t\\u00e9x\" &&\u{3000}city == 'Zürich' ||").unwrap();
        assert_eq!(toks[2].tok, Tok::Str("é\téx".into()));
        assert!(matches!(toks[2].tok, Tok::Str(Cow::Owned(_))));
        assert_eq!((toks[2].column, toks[2].len), (9, 12));
        assert_eq!((toks[3].column, toks[4].column), (22, 25));
        assert_eq!(toks[6].tok, Tok::Str("Zürich".into()));
        assert!(matches!(toks[6].tok, Tok::Str(Cow::Borrowed(_))));
        assert_eq!((toks[6].column, toks[6].len, toks[7].column), (33, 8, 42));
        let err = tokenize("a == \"x\\q\"").unwrap_err();
        assert_eq!(
            (err.column, err.length, err.found.as_str()),
            (8, 2, "`\\q`")
        );
        let err = tokenize("a == 'é").unwrap_err();
        assert_eq!((err.column, err.length), (6, 2));
        let err = tokenize("1e+ == -").unwrap_err();
        assert_eq!((err.column, err.found.as_str()), (1, "`1e+`"));
    }
}
