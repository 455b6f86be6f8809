//! The packed fixture the server SDK hosts test their KV and directory
//! sources with (`tests/conformance/packed/`, listed in its `cases.json`)
//! is exactly what this build packs and refuses: `snapshot.bsnp` is
//! `snapshot.json` packed with its document, and each refused value is
//! derived from it as `cases.json` says and fails to give a document with
//! the error it names (a `damaged` one: a document that does not read, in
//! a value whose tables fail their digest). A format change that would make the fixture stale
//! fails here, with the commands that write it again.

use std::path::PathBuf;

use bunting_core::packed::{
    FORMAT_VERSION, MAGIC, PackedError, document, pack, pack_with_document,
};
use bunting_core::{Engine, ParsedSnapshot};
use serde_json::Value;

/// How `snapshot.bsnp` is written (from the repository root).
const PACK: &str = "cargo run -p bunting-origin --bin bunting -- pack \
                    tests/conformance/packed/snapshot.json -o tests/conformance/packed/snapshot.bsnp";

/// How the refused values are written (from the repository root), once
/// `snapshot.bsnp` is right.
const DERIVE: &str =
    "BUNTING_WRITE_PACKED_FIXTURES=1 cargo test -p bunting-core --test packed_fixture";

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance/packed")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}; write it with `{PACK}`, then `{DERIVE}`"))
}

/// The packed value `case` of `cases.json` describes, made from `packed`
/// (the fixture's packed bytes) and `parsed` (its snapshot).
fn derive(case: &Value, packed: &[u8], parsed: &ParsedSnapshot<'_>) -> Vec<u8> {
    match case["derive"].as_str().expect("derive") {
        "format-version-3" => {
            let mut v = packed.to_vec();
            v[4..6].copy_from_slice(&3u16.to_le_bytes());
            v
        }
        "no-document" => pack(parsed).expect("packs"),
        "first-64-bytes" => packed[..64].to_vec(),
        "last-278-bytes-cut" => packed[..packed.len() - 278].to_vec(),
        "last-byte-0xff" => {
            let mut v = packed.to_vec();
            *v.last_mut().unwrap() = 0xff;
            v
        }
        other => panic!("cases.json: unknown derivation {other:?}"),
    }
}

/// Whether `error` is the one `cases.json` names for a refused value.
fn is(problem: &str, error: &PackedError) -> bool {
    match problem {
        "version" => matches!(error, PackedError::Version { found: 3 }),
        "truncated" => matches!(error, PackedError::Truncated { .. }),
        "encoding" => matches!(error, PackedError::Corrupt { what, .. } if what.contains("UTF-8")),
        _ => false,
    }
}

#[test]
fn the_checked_in_packed_fixture_is_what_this_build_packs() {
    let text = String::from_utf8(read("snapshot.json")).expect("UTF-8");
    let parsed = ParsedSnapshot::parse(&text).expect("the fixture snapshot parses");
    let (_, problems) = Engine::from_parsed_lenient(&parsed);
    assert!(problems.is_empty(), "{problems:?}");
    let packed = pack_with_document(&parsed, &text).expect("packs");
    assert!(
        packed == read("snapshot.bsnp"),
        "tests/conformance/packed/snapshot.bsnp is not what this build packs from snapshot.json: \
         write it again with `{PACK}`, then `{DERIVE}`"
    );
    assert_eq!(packed[..4], MAGIC);
    assert_eq!(u16::from_le_bytes([packed[4], packed[5]]), FORMAT_VERSION);
    assert_eq!(packed[6], 1, "sealed: the pack carries a digest");
    assert_eq!(document(&packed), Ok(Some(text.as_str())));
    assert!(packed.ends_with(text.as_bytes()));
    let read_back = ParsedSnapshot::from_packed(&packed).expect("reads back");
    assert_eq!(read_back.checksum(), parsed.checksum());
}

#[test]
fn every_refused_value_is_derived_as_cases_json_says_and_refused() {
    let cases: Value = serde_json::from_slice(&read("cases.json")).expect("cases.json is JSON");
    let text = String::from_utf8(read(cases["snapshot"].as_str().unwrap())).unwrap();
    let parsed = ParsedSnapshot::parse(&text).unwrap();
    let packed = read(cases["packed"].as_str().unwrap());
    assert_eq!(parsed.environment(), cases["environment"].as_str().unwrap());
    let write = std::env::var_os("BUNTING_WRITE_PACKED_FIXTURES").is_some();
    let refused = cases["refused"].as_array().expect("refused");
    assert!(refused.len() >= 4);
    for case in refused {
        let file = case["file"].as_str().expect("file");
        let want = derive(case, &packed, &parsed);
        if write {
            std::fs::write(dir().join(file), &want).unwrap();
        }
        assert!(
            read(file) == want,
            "tests/conformance/packed/{file} is not `{}` of snapshot.bsnp: write it again with `{DERIVE}`",
            case["derive"].as_str().unwrap_or_default()
        );
        let problem = case["problem"].as_str().expect("problem");
        match document(&want) {
            Ok(None) => assert_eq!(problem, "no-document", "{file}"),
            Ok(Some(_)) => panic!("{file} gives a document"),
            // A document that does not read because the value is cut: the
            // tables' digest says why (the hosts check it then).
            Err(e) if problem == "damaged" => assert_eq!(
                ParsedSnapshot::from_packed(&want).err(),
                Some(PackedError::Damaged),
                "{file}: its document fails with {e}"
            ),
            Err(e) => assert!(is(problem, &e), "{file}: {problem} expected, got {e}"),
        }
    }
}
