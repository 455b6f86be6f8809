//! The rule language through its public API: errors with positions, and
//! semantics that fixtures cannot express (segment-free conditions).

use bunting_core::rules::{Condition, ParseError};
use serde_json::json;

fn err(src: &str) -> ParseError {
    Condition::parse(src).expect_err(src)
}

fn holds(src: &str, ctx: serde_json::Value) -> bool {
    Condition::parse(src)
        .unwrap_or_else(|e| panic!("{src}: {e}"))
        .matches(&ctx, 1_764_547_200_000)
}

#[test]
fn errors_carry_line_column_found_and_expected() {
    let e = err("country == ");
    assert_eq!((e.line, e.column), (1, 12));
    assert_eq!(e.found, "end of input");
    assert!(e.expected.contains("attribute"), "{e}");

    let e = err("country in [\"US\",\n   \"CA\"\n  && plan == \"pro\"");
    assert_eq!((e.line, e.column), (3, 3));
    assert_eq!(e.found, "`&&`");
    assert_eq!(e.expected, "`,` or `]`");

    let e = err("a = 1");
    assert_eq!((e.line, e.column, e.expected.as_str()), (1, 3, "`==`"));

    let e = err("email matches \"([a-z\"");
    assert_eq!((e.line, e.column), (1, 15));
    assert!(e.found.contains("invalid regular expression"), "{e}");

    let e = err("semver(v) >= \"two\"");
    assert_eq!((e.line, e.column), (1, 14));
    assert!(e.expected.contains("semantic version"), "{e}");

    let e = err("now > \"next tuesday\"");
    assert!(e.expected.contains("RFC 3339"), "{e}");

    let e = err("segment(\"beta\")");
    assert!(e.expected.contains("segment"), "{e}");

    let e = err("(a == 1");
    assert_eq!((e.line, e.column, e.found.as_str()), (1, 8, "end of input"));

    let e = err("frobnicate(x) == 1");
    assert!(e.expected.contains("function"), "{e}");

    let e = err("x in 5");
    assert!(e.expected.contains("list"), "{e}");

    let e = err("\"lonely string\"");
    assert!(e.expected.contains("comparison"), "{e}");

    let e = err("name == \"unterminated");
    assert_eq!((e.line, e.column), (1, 9));
}

#[test]
fn display_is_line_colon_column() {
    assert_eq!(
        err("a ==").to_string(),
        "1:5: expected an attribute, a literal, `now` or `(`, found end of input"
    );
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    let src = format!("{}a == 1{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(err(&src).expected.contains("nesting"));
    let src = format!("{}a", "!".repeat(10_000));
    assert!(err(&src).expected.contains("nesting"));
}

#[test]
fn word_and_symbol_operators_are_equivalent() {
    let ctx = json!({"a": 1, "b": 2});
    for src in [
        "a == 1 && !(b == 3) || false",
        "a == 1 and not (b == 3) or false",
    ] {
        assert!(holds(src, ctx.clone()), "{src}");
    }
    assert!(
        holds("a == 2 || b == 2 && a == 1", ctx.clone()),
        "&& binds tighter than ||"
    );
    assert!(!holds("(a == 2 || b == 2) && a == 2", ctx));
}

#[test]
fn missing_attributes_and_mismatches_are_false_never_errors() {
    let ctx = json!({"n": 5, "s": "x", "o": {"k": 1}, "l": [1, 2]});
    for src in [
        "missing == 1",
        "missing != 1",
        "missing < 1",
        "n == \"5\"",
        "n != \"5\"",
        "s > 1",
        "o == 1",
        "s in s",
        "n starts_with \"5\"",
        "n matches \"5\"",
        "semver(n) > \"1.0.0\"",
        "datetime(s) < now",
        "l contains \"1\"",
        "o.k.deeper == 1",
        "lower(n) == \"5\"",
    ] {
        assert!(!holds(src, ctx.clone()), "{src} should be false");
    }
    assert!(holds("!(missing == 1)", ctx.clone()));
    assert!(holds("l contains 2 && o.k == 1 && l.1 == 2", ctx));
}

#[test]
fn times_and_versions() {
    let ctx =
        json!({"signup": "2026-11-30T23:00:00-02:00", "v": "v2.10", "ms": 1_764_547_200_000i64});
    // Evaluation time is 2025-12-01T00:00:00Z (1_764_547_200_000 ms).
    assert!(holds("now == \"2025-12-01T00:00:00Z\"", ctx.clone()));
    assert!(holds("datetime(ms) == now", ctx.clone()));
    assert!(holds("datetime(signup) > now", ctx.clone()));
    assert!(holds(
        "semver(v) > \"2.9.9\" && semver(v) < \"2.10.1-beta\"",
        ctx.clone()
    ));
    assert!(holds("semver(v) in [\"2.10.0\", \"3.0.0\"]", ctx.clone()));
    assert!(holds("semver(\"1.0.0-alpha\") < semver(\"1.0.0\")", ctx));
}
