//! The rule for keys (URL path segments and file names).

use super::Problem;

/// Adds a problem at `key` to `problems` unless `key` is 1-200 characters
/// of `A-Z a-z 0-9 - _ .` and not `.` or `..`.
pub(crate) fn check_key(problems: &mut Vec<Problem>, key: &str) {
    if key.is_empty()
        || key.len() > 200
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        problems.push(Problem::new(
            "key",
            format!("{key:?} must be 1-200 characters of A-Z a-z 0-9 - _ ."),
        ));
    } else if key == "." || key == ".." {
        // Keys are URL path segments and file names: these two mean "this"
        // and "the parent" there.
        problems.push(Problem::new(
            "key",
            format!("{key:?} is not a key: `.` and `..` name directories in paths"),
        ));
    }
}
