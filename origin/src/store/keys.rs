//! Key checks that refuse a write ([`StoreError::Invalid`]).

use super::{Problem, Result, StoreError};
use crate::model::key::check_key;

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
