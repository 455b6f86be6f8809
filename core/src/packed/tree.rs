//! Precompiled conditions in packed snapshots (format version 2): a rule
//! or segment condition as the rule compiler left it — its tree, literals
//! typed, `segment("key")` resolved to the segment's position — or the
//! problem it has, written where the snapshot is packed so that a reader
//! compiles an engine without the rule language's lexer and parser.
//!
//! A *tree* is a tag byte, then:
//!
//! | tag | condition | then |
//! |---|---|---|
//! | 0 | a problem | line, column, length (ints), found, expected (strings) |
//! | 1, 2 | `false`, `true` | |
//! | 3, 4 | all of, any of | list of trees |
//! | 5 | not | tree |
//! | 6 | comparison | operator (byte, [`OPS`]), two operands |
//! | 7 | a bare operand | operand |
//! | 8 | `exists(path)` | path |
//! | 9 | `segment(…)` | the segment's position (int) |
//!
//! An operand: a tag byte, then a path 0 (list of strings), a literal 1,
//! `now` 2, `semver(…)` 3, `datetime(…)` 4 or `lower(…)` 5 (an operand).
//! A literal: null 0, false 1, true 2, a number 3 (`f64`, 8 bytes, any
//! bits), a string 4, a list 5 (list of literals), a version 6 (major,
//! minor, patch (ints), pre-release, build (strings, empty for none)), a time 7 (zigzag int of Unix
//! milliseconds), a regular expression 8 (string: its pattern, compiled
//! again by the reader).

use std::sync::Arc;

use super::{PackedError, Reader};
#[cfg(feature = "rule-parser")]
use super::{Writer, put_int};
use crate::compile::Precompiled;
use crate::rules::ast::{CmpOp, Expr, Lit, Operand, Path};
use crate::rules::{Condition, ParseError};

/// The comparison operators by their code.
const OPS: [CmpOp; 12] = [
    CmpOp::Eq,
    CmpOp::Ne,
    CmpOp::Lt,
    CmpOp::Le,
    CmpOp::Gt,
    CmpOp::Ge,
    CmpOp::In,
    CmpOp::NotIn,
    CmpOp::Contains,
    CmpOp::StartsWith,
    CmpOp::EndsWith,
    CmpOp::Matches,
];

/// How deep a tree may nest (expressions and operands together): the
/// parser stops at 64 levels of each.
const MAX_NESTING: usize = 256;

const C_PROBLEM: u8 = 0;
const C_FALSE: u8 = 1;
const C_TRUE: u8 = 2;
const C_ALL: u8 = 3;
const C_ANY: u8 = 4;
const C_NOT: u8 = 5;
const C_CMP: u8 = 6;
const C_TRUTHY: u8 = 7;
const C_EXISTS: u8 = 8;
const C_SEGMENT: u8 = 9;

const O_PATH: u8 = 0;
const O_LIT: u8 = 1;
const O_NOW: u8 = 2;
const O_SEMVER: u8 = 3;
const O_DATETIME: u8 = 4;
const O_LOWER: u8 = 5;

const L_NULL: u8 = 0;
const L_FALSE: u8 = 1;
const L_TRUE: u8 = 2;
const L_NUM: u8 = 3;
const L_STR: u8 = 4;
const L_LIST: u8 = 5;
const L_VERSION: u8 = 6;
const L_TIME: u8 = 7;
const L_REGEX: u8 = 8;

/// An `i64` as an unsigned int, small for small magnitudes of either sign
/// (…, −1 → 1, 0 → 0, 1 → 2, …): how negative numbers are packed.
#[cfg(feature = "rule-parser")]
pub(super) fn zigzag(i: i64) -> u64 {
    ((i << 1) ^ (i >> 63)) as u64
}

/// The `i64` whose `zigzag` form is `z`.
pub(super) fn unzigzag(z: u64) -> i64 {
    (z >> 1) as i64 ^ -((z & 1) as i64)
}

#[cfg(feature = "rule-parser")]
impl<'s> Writer<'s> {
    /// Appends a compiled condition or its problem, its strings (paths,
    /// literals, messages) in the string table.
    pub(super) fn tree(&mut self, out: &mut Vec<u8>, condition: &'s Precompiled) {
        match condition {
            Ok(c) => self.expr(out, c.expr()),
            Err(e) => {
                out.push(C_PROBLEM);
                put_int(out, u64::from(e.line));
                put_int(out, u64::from(e.column));
                put_int(out, u64::from(e.length));
                self.str(out, &e.found);
                self.str(out, &e.expected);
            }
        }
    }

    fn expr(&mut self, out: &mut Vec<u8>, e: &'s Expr) {
        match e {
            Expr::Const(false) => out.push(C_FALSE),
            Expr::Const(true) => out.push(C_TRUE),
            Expr::And(all) | Expr::Or(all) => {
                out.push(if matches!(e, Expr::And(_)) {
                    C_ALL
                } else {
                    C_ANY
                });
                put_int(out, all.len() as u64);
                for e in all {
                    self.expr(out, e);
                }
            }
            Expr::Not(e) => {
                out.push(C_NOT);
                self.expr(out, e);
            }
            Expr::Cmp(op, a, b) => {
                out.push(C_CMP);
                out.push(OPS.iter().position(|o| o == op).expect("every operator") as u8);
                self.operand(out, a);
                self.operand(out, b);
            }
            Expr::Truthy(o) => {
                out.push(C_TRUTHY);
                self.operand(out, o);
            }
            Expr::Exists(p) => {
                out.push(C_EXISTS);
                self.path(out, p);
            }
            Expr::Segment(i) => {
                out.push(C_SEGMENT);
                put_int(out, *i as u64);
            }
        }
    }

    fn path(&mut self, out: &mut Vec<u8>, p: &'s Path) {
        put_int(out, p.segments.len() as u64);
        for s in &p.segments {
            self.str(out, s);
        }
    }

    fn operand(&mut self, out: &mut Vec<u8>, o: &'s Operand) {
        let inner = match o {
            Operand::Path(p) => {
                out.push(O_PATH);
                return self.path(out, p);
            }
            Operand::Lit(l) => {
                out.push(O_LIT);
                return self.lit(out, l);
            }
            Operand::Now => return out.push(O_NOW),
            Operand::Semver(inner) => {
                out.push(O_SEMVER);
                inner
            }
            Operand::DateTime(inner) => {
                out.push(O_DATETIME);
                inner
            }
            Operand::Lower(inner) => {
                out.push(O_LOWER);
                inner
            }
        };
        self.operand(out, inner);
    }

    fn lit(&mut self, out: &mut Vec<u8>, l: &'s Lit) {
        match l {
            Lit::Null => out.push(L_NULL),
            Lit::Bool(false) => out.push(L_FALSE),
            Lit::Bool(true) => out.push(L_TRUE),
            Lit::Num(x) => {
                out.push(L_NUM);
                out.extend_from_slice(&x.to_le_bytes());
            }
            Lit::Str(s) => {
                out.push(L_STR);
                self.str(out, s);
            }
            Lit::List(items) => {
                out.push(L_LIST);
                put_int(out, items.len() as u64);
                for item in items {
                    self.lit(out, item);
                }
            }
            Lit::Version(v) => {
                out.push(L_VERSION);
                put_int(out, v.major);
                put_int(out, v.minor);
                put_int(out, v.patch);
                self.str(out, v.pre.as_str());
                self.str(out, v.build.as_str());
            }
            Lit::Time(ms) => {
                out.push(L_TIME);
                put_int(out, zigzag(*ms));
            }
            Lit::Regex(re) => {
                out.push(L_REGEX);
                self.str(out, re.as_str());
            }
        }
    }
}

impl<'a> Reader<'a> {
    /// Reads a tree [`Writer::tree`] wrote. Segment positions are checked
    /// against the segments once they are read ([`Reader::segments_cited`]).
    pub(super) fn tree(&mut self) -> Result<Precompiled, PackedError> {
        if self.bytes.get(self.at) == Some(&C_PROBLEM) {
            self.at += 1;
            let mut small = || -> Result<u32, PackedError> {
                u32::try_from(self.int()?).map_err(|_| self.corrupt("a position in a condition"))
            };
            let (line, column, length) = (small()?, small()?, small()?);
            return Ok(Err(ParseError {
                line,
                column,
                length,
                found: self.text()?.to_string(),
                expected: self.text()?.to_string(),
            }));
        }
        Ok(Ok(Arc::new(Condition::from_expr(self.expr(0)?))))
    }

    fn nest(&self, depth: usize) -> Result<usize, PackedError> {
        if depth >= MAX_NESTING {
            Err(self.corrupt("a condition nested too deeply"))
        } else {
            Ok(depth + 1)
        }
    }

    fn expr(&mut self, depth: usize) -> Result<Expr, PackedError> {
        let depth = self.nest(depth)?;
        Ok(match self.byte()? {
            C_FALSE => Expr::Const(false),
            C_TRUE => Expr::Const(true),
            C_ALL => Expr::And(self.list(1, |r| r.expr(depth))?),
            C_ANY => Expr::Or(self.list(1, |r| r.expr(depth))?),
            C_NOT => Expr::Not(Box::new(self.expr(depth)?)),
            C_CMP => {
                let op = *OPS
                    .get(usize::from(self.byte()?))
                    .ok_or_else(|| self.corrupt("a comparison operator"))?;
                Expr::Cmp(op, self.operand(depth)?, self.operand(depth)?)
            }
            C_TRUTHY => Expr::Truthy(self.operand(depth)?),
            C_EXISTS => Expr::Exists(self.path()?),
            C_SEGMENT => {
                let i =
                    usize::try_from(self.int()?).map_err(|_| self.corrupt("a segment position"))?;
                self.segments_cited = self.segments_cited.max(i.saturating_add(1));
                Expr::Segment(i)
            }
            _ => return Err(self.corrupt("a condition tag")),
        })
    }

    fn path(&mut self) -> Result<Path, PackedError> {
        Ok(Path {
            segments: self.list(1, |r| Ok(r.text()?.to_string()))?,
        })
    }

    fn operand(&mut self, depth: usize) -> Result<Operand, PackedError> {
        let depth = self.nest(depth)?;
        Ok(match self.byte()? {
            O_PATH => Operand::Path(self.path()?),
            O_LIT => Operand::Lit(self.lit(depth)?),
            O_NOW => Operand::Now,
            O_SEMVER => Operand::Semver(Box::new(self.operand(depth)?)),
            O_DATETIME => Operand::DateTime(Box::new(self.operand(depth)?)),
            O_LOWER => Operand::Lower(Box::new(self.operand(depth)?)),
            _ => return Err(self.corrupt("an operand tag")),
        })
    }

    fn lit(&mut self, depth: usize) -> Result<Lit, PackedError> {
        let depth = self.nest(depth)?;
        Ok(match self.byte()? {
            L_NULL => Lit::Null,
            L_FALSE => Lit::Bool(false),
            L_TRUE => Lit::Bool(true),
            L_NUM => Lit::Num(f64::from_le_bytes(self.array()?)),
            L_STR => Lit::Str(self.text()?.to_string()),
            L_LIST => Lit::List(self.list(1, |r| r.lit(depth))?),
            L_VERSION => {
                let (major, minor, patch) = (self.int()?, self.int()?, self.int()?);
                let pre = semver::Prerelease::new(self.text()?);
                let build = semver::BuildMetadata::new(self.text()?);
                match (pre, build) {
                    (Ok(pre), Ok(build)) => Lit::Version(semver::Version {
                        major,
                        minor,
                        patch,
                        pre,
                        build,
                    }),
                    _ => return Err(self.corrupt("a version")),
                }
            }
            L_TIME => Lit::Time(unzigzag(self.int()?)),
            L_REGEX => {
                let pattern = self.text()?;
                Lit::Regex(
                    regex_lite::Regex::new(pattern)
                        .map_err(|_| self.corrupt("a regular expression"))?,
                )
            }
            _ => return Err(self.corrupt("a literal tag")),
        })
    }
}
