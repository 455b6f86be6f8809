//! Recursive-descent parser and compiler of the rule language.
//!
//! Grammar (lowest precedence first):
//!
//! ```text
//! expr     := and ( ("||" | "or") and )*
//! and      := unary ( ("&&" | "and") unary )*
//! unary    := ("!" | "not") unary | "(" expr ")" | predicate
//! predicate:= "exists" "(" path ")" | "segment" "(" string ")"
//!           | operand ( op operand )?
//! op       := "==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not" "in"
//!           | "contains" | "starts_with" | "ends_with" | "matches"
//! operand  := path | literal | "now" | fn "(" operand ")"      fn: semver datetime lower
//! literal  := string | number | "true" | "false" | "null" | "[" literal,* "]"
//! ```

use super::ast::{CmpOp, Expr, Kind, Lit, Operand, Path};
use super::lexer::{Tok, Token, tokenize};
use super::{ParseError, lenient_semver};
use crate::time::parse_rfc3339_ms;

/// Nesting deeper than this is refused, so no input can exhaust the stack.
const MAX_DEPTH: u32 = 64;

/// Resolves a segment key to its index, or says why it cannot be used.
pub type SegmentResolver<'r> = &'r dyn Fn(&str) -> Result<usize, String>;

struct Parser<'s, 'r> {
    toks: Vec<Token<'s>>,
    pos: usize,
    depth: u32,
    segments: SegmentResolver<'r>,
}

/// Parses and compiles `src`.
pub(super) fn parse(src: &str, segments: SegmentResolver<'_>) -> Result<Expr, ParseError> {
    let mut p = Parser {
        toks: tokenize(src)?,
        pos: 0,
        depth: 0,
        segments,
    };
    let expr = p.expr()?;
    p.expect_tok(&Tok::Eof, "an operator, `&&`, `||` or end of input")?;
    Ok(expr)
}

impl<'s> Parser<'s, '_> {
    fn peek(&self) -> &Token<'s> {
        &self.toks[self.pos]
    }

    fn peek_at(&self, n: usize) -> &Tok<'s> {
        &self.toks[(self.pos + n).min(self.toks.len() - 1)].tok
    }

    /// Takes the current token (the parser never looks back, so its payload
    /// can move out instead of being cloned) and advances; at the end it
    /// keeps answering end of input.
    fn next(&mut self) -> Token<'s> {
        let slot = &mut self.toks[self.pos];
        let tok = std::mem::replace(&mut slot.tok, Tok::Eof);
        let t = Token {
            tok,
            line: slot.line,
            column: slot.column,
            len: slot.len,
        };
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn err_at(&self, t: &Token, expected: &str) -> ParseError {
        ParseError {
            line: t.line,
            column: t.column,
            length: t.len,
            found: t.tok.describe(),
            expected: expected.to_string(),
        }
    }

    fn expect_tok(&mut self, tok: &Tok<'_>, expected: &str) -> Result<Token<'s>, ParseError> {
        if &self.peek().tok == tok {
            Ok(self.next())
        } else {
            Err(self.err_at(self.peek(), expected))
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err_at(
                self.peek(),
                &format!("at most {MAX_DEPTH} levels of nesting"),
            ));
        }
        Ok(())
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        self.enter()?;
        let first = self.and()?;
        // A list only when there is an operator (most operands have none).
        let expr = if self.peek().tok == Tok::Or {
            let mut parts = vec![first];
            while self.peek().tok == Tok::Or {
                self.next();
                parts.push(self.and()?);
            }
            Expr::Or(parts)
        } else {
            first
        };
        self.depth -= 1;
        Ok(expr)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let first = self.unary()?;
        if self.peek().tok != Tok::And {
            return Ok(first);
        }
        let mut parts = vec![first];
        while self.peek().tok == Tok::And {
            self.next();
            parts.push(self.unary()?);
        }
        Ok(Expr::And(parts))
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        match self.peek().tok {
            Tok::Not => {
                self.next();
                self.enter()?;
                let inner = self.unary()?;
                self.depth -= 1;
                Ok(Expr::Not(Box::new(inner)))
            }
            Tok::LParen => {
                self.next();
                let inner = self.expr()?;
                self.expect_tok(&Tok::RParen, "`)`")?;
                Ok(inner)
            }
            _ => self.predicate(),
        }
    }

    fn predicate(&mut self) -> Result<Expr, ParseError> {
        if let Tok::Ident(name) = self.peek().tok
            && *self.peek_at(1) == Tok::LParen
        {
            match name {
                "exists" => {
                    self.next();
                    self.next();
                    let t = self.next();
                    let Tok::Ident(p) = &t.tok else {
                        return Err(self.err_at(&t, "an attribute path"));
                    };
                    let path = self.path(p, &t)?;
                    self.expect_tok(&Tok::RParen, "`)`")?;
                    return Ok(Expr::Exists(path));
                }
                "segment" => {
                    self.next();
                    self.next();
                    let t = self.next();
                    let Tok::Str(key) = &t.tok else {
                        return Err(self.err_at(&t, "a segment key string"));
                    };
                    let index = (self.segments)(key).map_err(|why| ParseError {
                        line: t.line,
                        column: t.column,
                        length: t.len,
                        found: t.tok.describe(),
                        expected: why,
                    })?;
                    self.expect_tok(&Tok::RParen, "`)`")?;
                    return Ok(Expr::Segment(index));
                }
                _ => {}
            }
        }
        let start = self.peek().clone();
        let lhs = self.operand()?;
        let op = match self.peek().tok {
            Tok::Eq => CmpOp::Eq,
            Tok::Ne => CmpOp::Ne,
            Tok::Lt => CmpOp::Lt,
            Tok::Le => CmpOp::Le,
            Tok::Gt => CmpOp::Gt,
            Tok::Ge => CmpOp::Ge,
            Tok::In => CmpOp::In,
            Tok::Contains => CmpOp::Contains,
            Tok::StartsWith => CmpOp::StartsWith,
            Tok::EndsWith => CmpOp::EndsWith,
            Tok::Matches => CmpOp::Matches,
            Tok::Not if *self.peek_at(1) == Tok::In => {
                self.next();
                CmpOp::NotIn
            }
            _ => {
                return match lhs {
                    Operand::Lit(Lit::Bool(b)) => Ok(Expr::Const(b)),
                    Operand::Path(_) => Ok(Expr::Truthy(lhs)),
                    _ => Err(self.err_at(self.peek(), "a comparison operator after this value")),
                };
            }
        };
        if let Operand::Lit(Lit::List(_)) = lhs
            && !matches!(op, CmpOp::Eq | CmpOp::Ne | CmpOp::Contains)
        {
            return Err(self.err_at(&start, "an attribute or a single value on the left"));
        }
        self.next();
        let rhs_tok = self.peek().clone();
        let rhs = self.operand()?;
        self.compile_cmp(op, lhs, rhs, &rhs_tok, &start)
    }

    /// Type-checks a comparison and turns its literals into the types the
    /// other side needs, so evaluation parses nothing it could parse now.
    fn compile_cmp(
        &self,
        op: CmpOp,
        lhs: Operand,
        rhs: Operand,
        rhs_tok: &Token,
        lhs_tok: &Token,
    ) -> Result<Expr, ParseError> {
        let (lhs, rhs) = match op {
            CmpOp::Matches => {
                let Operand::Lit(Lit::Str(pattern)) = rhs else {
                    return Err(self.err_at(rhs_tok, "a regular expression string"));
                };
                let re = regex_lite::Regex::new(&pattern).map_err(|e| ParseError {
                    line: rhs_tok.line,
                    column: rhs_tok.column,
                    length: rhs_tok.len,
                    found: format!(
                        "invalid regular expression {pattern:?} ({})",
                        first_line(&e.to_string())
                    ),
                    expected: "a valid regular expression".into(),
                })?;
                (lhs, Operand::Lit(Lit::Regex(re)))
            }
            CmpOp::In | CmpOp::NotIn => {
                if !matches!(rhs, Operand::Path(_) | Operand::Lit(Lit::List(_))) {
                    return Err(self.err_at(rhs_tok, "a list `[…]` or an attribute holding a list"));
                }
                let rhs = self.coerce(lhs.kind(), rhs, rhs_tok)?;
                (lhs, rhs)
            }
            _ => {
                let rhs = self.coerce(lhs.kind(), rhs, rhs_tok)?;
                let lhs = self.coerce(rhs.kind(), lhs, lhs_tok)?;
                (lhs, rhs)
            }
        };
        Ok(Expr::Cmp(op, lhs, rhs))
    }

    /// Converts string literals (also inside lists) to the kind of the other side.
    fn coerce(&self, kind: Kind, operand: Operand, at: &Token) -> Result<Operand, ParseError> {
        match operand {
            Operand::Lit(lit) => Ok(Operand::Lit(self.coerce_lit(kind, lit, at)?)),
            other => Ok(other),
        }
    }

    fn coerce_lit(&self, kind: Kind, lit: Lit, at: &Token) -> Result<Lit, ParseError> {
        let bad = |what: &str, s: &str| ParseError {
            line: at.line,
            column: at.column,
            length: at.len,
            found: format!("string {s:?}"),
            expected: what.to_string(),
        };
        Ok(match (kind, lit) {
            (Kind::Version, Lit::Str(s)) => Lit::Version(
                lenient_semver(&s)
                    .ok_or_else(|| bad("a semantic version such as \"2.1.0\"", &s))?,
            ),
            (Kind::Time, Lit::Str(s)) => Lit::Time(
                parse_rfc3339_ms(&s)
                    .ok_or_else(|| bad("an RFC 3339 time such as \"2026-12-01T00:00:00Z\"", &s))?,
            ),
            (Kind::Time, Lit::Num(n)) => Lit::Time(n as i64),
            (k @ (Kind::Version | Kind::Time), Lit::List(items)) => Lit::List(
                items
                    .into_iter()
                    .map(|i| self.coerce_lit(k, i, at))
                    .collect::<Result<_, _>>()?,
            ),
            (_, lit) => lit,
        })
    }

    fn operand(&mut self) -> Result<Operand, ParseError> {
        let t = self.next();
        Ok(match &t.tok {
            Tok::Str(s) => Operand::Lit(Lit::Str(s.to_string())),
            Tok::Num(n) => Operand::Lit(Lit::Num(*n)),
            Tok::True => Operand::Lit(Lit::Bool(true)),
            Tok::False => Operand::Lit(Lit::Bool(false)),
            Tok::Null => Operand::Lit(Lit::Null),
            Tok::Now => Operand::Now,
            Tok::LBracket => Operand::Lit(Lit::List(self.list()?)),
            Tok::Ident(name) if self.peek().tok == Tok::LParen => {
                let wrap: fn(Box<Operand>) -> Operand = match *name {
                    "semver" => Operand::Semver,
                    "datetime" => Operand::DateTime,
                    "lower" => Operand::Lower,
                    _ => {
                        return Err(self
                            .err_at(&t, "a function: semver, datetime, lower, exists or segment"));
                    }
                };
                self.next();
                self.enter()?;
                let arg_tok = self.peek().clone();
                let inner = self.operand()?;
                self.depth -= 1;
                self.expect_tok(&Tok::RParen, "`)`")?;
                let inner = match (*name, inner) {
                    ("semver", Operand::Lit(Lit::Str(s))) => Operand::Lit(Lit::Version(
                        lenient_semver(&s)
                            .ok_or_else(|| self.err_at(&arg_tok, "a semantic version"))?,
                    )),
                    ("datetime", Operand::Lit(Lit::Str(s))) => Operand::Lit(Lit::Time(
                        parse_rfc3339_ms(&s)
                            .ok_or_else(|| self.err_at(&arg_tok, "an RFC 3339 time"))?,
                    )),
                    (_, inner) => inner,
                };
                match inner {
                    lit @ Operand::Lit(Lit::Version(_) | Lit::Time(_)) => lit,
                    inner => wrap(Box::new(inner)),
                }
            }
            Tok::Ident(p) => Operand::Path(self.path(p, &t)?),
            _ => {
                return Err(self.err_at(&t, "an attribute, a literal, `now` or `(`"));
            }
        })
    }

    fn list(&mut self) -> Result<Vec<Lit>, ParseError> {
        let mut items = Vec::new();
        if self.peek().tok == Tok::RBracket {
            self.next();
            return Ok(items);
        }
        loop {
            let t = self.next();
            items.push(match t.tok {
                Tok::Str(s) => Lit::Str(s.into_owned()),
                Tok::Num(n) => Lit::Num(n),
                Tok::True => Lit::Bool(true),
                Tok::False => Lit::Bool(false),
                Tok::Null => Lit::Null,
                _ => return Err(self.err_at(&t, "a string, number, boolean or null list item")),
            });
            let t = self.next();
            match t.tok {
                Tok::Comma if self.peek().tok == Tok::RBracket => {
                    self.next();
                    return Ok(items);
                }
                Tok::Comma => {}
                Tok::RBracket => return Ok(items),
                _ => return Err(self.err_at(&t, "`,` or `]`")),
            }
        }
    }

    fn path(&self, text: &str, t: &Token) -> Result<Path, ParseError> {
        let segments: Vec<String> = text.split('.').map(str::to_string).collect();
        if segments.iter().any(String::is_empty) {
            return Err(self.err_at(t, "an attribute path without empty segments"));
        }
        Ok(Path { segments })
    }
}

fn first_line(s: &str) -> &str {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or(s).trim()
}
