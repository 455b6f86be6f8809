//! The rule for keys (URL path segments and file names).

use super::{Problem, Result, StoreError};

pub(super) fn check_key(problems: &mut Vec<Problem>, key: &str) {
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

pub(super) fn valid_key(key: &str) -> Result<()> {
    let mut p = Vec::new();
    check_key(&mut p, key);
    if p.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Invalid(p))
    }
}

/// The key of an organization, project or environment: a key
/// ([`check_key`]) of at most [`crate::kv::MAX_SCOPE_KEY_BYTES`] bytes, so
/// that every publisher can store `snapshot:<org>/<project>/<env>`.
pub(super) fn valid_scope_key(key: &str) -> Result<()> {
    let mut p = Vec::new();
    check_key(&mut p, key);
    if p.is_empty() && key.len() > crate::kv::MAX_SCOPE_KEY_BYTES {
        p.push(Problem::new(
            "key",
            format!(
                "{key:?} is {} characters; organization, project and environment keys have at most {} \
                 (the edge's KV keys and file names are made of all three)",
                key.len(),
                crate::kv::MAX_SCOPE_KEY_BYTES
            ),
        ));
    }
    if p.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Invalid(p))
    }
}
