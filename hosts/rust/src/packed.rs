//! Values in the packed snapshot form (`bunting serve --kv-format packed`,
//! `bunting publish --packed`) from the KV and directory sources.
//!
//! A packed value starts with [`packed::MAGIC`] (`BSNP`) and carries the
//! snapshot's published JSON text, byte for byte, as its last bytes
//! (the format: [`bunting_core::packed`]). The SDK takes that text and
//! checks it exactly as a JSON value; the packed tables before it are the
//! edge's business and are read only to explain a document that does not
//! read ([`snapshot_text`]).

use bunting_core::ParsedSnapshot;
use bunting_core::packed::{self, PackedError};

use crate::error::SnapshotError;

/// The snapshot JSON text of a value a KV or directory source read: the
/// document a packed value carries, or the value itself otherwise.
///
/// A packed value of another format version is refused with
/// [`SnapshotError::PackedVersion`]; one without a document, cut short or
/// with a document that is not UTF-8, with [`SnapshotError::Packed`]. A
/// value cut short makes its header place the document early, inside the
/// tables, where it may look like text that is not UTF-8: when the
/// document does not read, the tables' digest is checked, and a value
/// that fails it is reported as damaged or short, which is what it is.
pub(crate) fn snapshot_text(value: Vec<u8>) -> Result<String, SnapshotError> {
    if !value.starts_with(&packed::MAGIC) {
        return String::from_utf8(value)
            .map_err(|e| SnapshotError::NotJson(format!("the value is not UTF-8: {e}")));
    }
    match packed::document(&value) {
        Ok(Some(document)) => Ok(document.to_owned()),
        Ok(None) => Err(SnapshotError::Packed(
            "it carries no JSON document (the origin's publishers always pack one)".into(),
        )),
        Err(PackedError::Version { found }) => Err(SnapshotError::PackedVersion {
            found,
            reads: packed::FORMAT_VERSION,
        }),
        Err(e) => Err(SnapshotError::Packed(
            damage(&value).unwrap_or(e).to_string(),
        )),
    }
}

/// Why `value`'s tables do not read, if their digest does not match or
/// they end early: the cause of a document that does not read either.
fn damage(value: &[u8]) -> Option<PackedError> {
    match ParsedSnapshot::from_packed(value) {
        Err(e @ (PackedError::Damaged | PackedError::Truncated { .. })) => Some(e),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packed header of format `version` carrying `document` (no digest,
    /// no tables: the reader reads them only to explain a document that
    /// does not read, so these values are for the header's cases).
    fn packed_value(version: u16, document: &[u8]) -> Vec<u8> {
        let mut v = packed::MAGIC.to_vec();
        v.extend_from_slice(&version.to_le_bytes());
        v.push(0);
        let mut n = document.len() as u64 + 1;
        while n >= 0x80 {
            v.push(n as u8 | 0x80);
            n >>= 7;
        }
        v.push(n as u8);
        v.extend_from_slice(document);
        v
    }

    /// A sealed packed value with its document, and the document: one
    /// flag whose value has characters of two bytes.
    fn sealed_value() -> (String, Vec<u8>) {
        let mut snapshot: bunting_core::model::Snapshot = serde_json::from_str(
            r#"{"schemaVersion": 1, "environment": "p", "version": 3,
              "generatedAt": "2026-11-25T00:00:00Z",
              "flags": [{"key": "f", "type": "string", "variants": {"a": "été"},
                         "offVariant": "a", "fallthrough": {"variant": "a"}}]}"#,
        )
        .unwrap();
        bunting_core::snapshot::seal(&mut snapshot);
        let text = serde_json::to_string(&snapshot).unwrap();
        let value =
            packed::pack_with_document(&ParsedSnapshot::parse(&text).unwrap(), &text).unwrap();
        (text, value)
    }

    #[test]
    fn json_passes_through_and_packed_gives_its_document() {
        assert_eq!(snapshot_text(b"{\"a\":1}".to_vec()).unwrap(), "{\"a\":1}");
        let long = format!("{{\"pad\":\"{}\"}}", "x".repeat(300));
        assert_eq!(
            snapshot_text(packed_value(1, long.as_bytes())).unwrap(),
            long
        );
        assert!(matches!(
            snapshot_text(vec![0xff, b'{']),
            Err(SnapshotError::NotJson(_))
        ));
    }

    #[test]
    fn unreadable_packed_values_are_typed_errors() {
        assert_eq!(
            snapshot_text(packed_value(3, b"{}"))
                .unwrap_err()
                .to_string(),
            "packed snapshot format version 3 is not one this package reads (1 to 2); \
             upgrade the package"
        );
        let mut none = packed_value(1, b"");
        *none.last_mut().unwrap() = 0; // length 0: no document
        assert!(matches!(
            snapshot_text(none),
            Err(SnapshotError::Packed(m)) if m.contains("no JSON document")
        ));
        let mut cut = packed_value(1, b"{\"a\":1}");
        cut.truncate(cut.len() - 3);
        assert!(matches!(
            snapshot_text(cut),
            Err(SnapshotError::Packed(m)) if m.contains("ends early")
        ));
        // A document that is not UTF-8 in a value whose tables read.
        let (_, mut bad) = sealed_value();
        let at = bad.len() - 3;
        bad[at] = 0xff;
        assert!(matches!(
            snapshot_text(bad),
            Err(SnapshotError::Packed(m)) if m.contains("a document that is not UTF-8")
        ));
        assert!(matches!(
            snapshot_text(b"BSNP\x01".to_vec()),
            Err(SnapshotError::Packed(_))
        ));
    }

    /// A sealed value cut at its tail never reads as a document that is
    /// not UTF-8: its digest says it is damaged (or it ends early).
    #[test]
    fn a_value_cut_at_its_tail_is_damaged_not_bad_text() {
        let (text, value) = sealed_value();
        assert_eq!(snapshot_text(value.clone()).unwrap(), text);
        let mut refused = 0;
        for cut in 1..value.len() - 8 {
            match snapshot_text(value[..value.len() - cut].to_vec()) {
                // The document read: a wrong text, which the JSON checks refuse.
                Ok(document) => assert_ne!(document, text),
                Err(SnapshotError::Packed(m)) => {
                    refused += 1;
                    assert!(
                        m.contains("does not match its digest") || m.contains("ends early"),
                        "{cut} bytes cut: {m}"
                    );
                }
                Err(e) => panic!("{cut} bytes cut: {e}"),
            }
        }
        assert!(refused > 0);
    }
}
