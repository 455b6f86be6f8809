//! `bunting pack` run as a process: a snapshot written by `bunting
//! snapshot` packs into bytes that read back as the same snapshot and
//! carry its text verbatim; a snapshot with problems is refused.

use std::fs;
use std::path::{Path, PathBuf};

use bunting_core::packed;
use bunting_core::{Engine, ParsedSnapshot};
use serde_json::json;

use crate::common::cli::{self, root, run as bunting, stderr};

fn scratch(name: &str) -> PathBuf {
    cli::scratch("bunting-cli-pack", name)
}

/// The examples' production snapshot, pretty, written into `dir` as
/// `snapshot.json`; its text.
fn example_snapshot(dir: &Path) -> String {
    let o = bunting(
        &root(),
        &[
            "snapshot",
            "examples/flags.yaml",
            "--env",
            "production",
            "-o",
            dir.join("snapshot.json").to_str().unwrap(),
            "--version",
            "42",
            "--generated-at",
            "2026-11-25T10:00:00Z",
            "--pretty",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    fs::read_to_string(dir.join("snapshot.json")).unwrap()
}

#[test]
fn pack_writes_the_snapshot_the_edge_loads() {
    let dir = scratch("packs");
    let text = example_snapshot(&dir);
    let o = bunting(&dir, &["pack", "snapshot.json", "-o", "snapshot.bin"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = fs::read(dir.join("snapshot.bin")).unwrap();
    assert!(!dir.join("snapshot.bin.tmp").exists());
    assert_eq!(
        stderr(&o),
        format!(
            "wrote snapshot.bin: {} bytes packed (from {} bytes of JSON; \
             environment production, version 42, 8 flags)\n",
            bytes.len(),
            text.len()
        )
    );
    assert!(bytes.starts_with(&packed::MAGIC));
    assert_eq!(packed::document(&bytes), Ok(Some(text.as_str())));

    let json = ParsedSnapshot::parse(&text).unwrap();
    let read = ParsedSnapshot::from_packed(&bytes).unwrap();
    assert_eq!(read.checksum(), json.checksum());
    assert!(read.checksum().is_some_and(|c| c.starts_with("sha256:")));
    let from_packed = Engine::from_parsed(&read).expect("loads without problems");
    let from_json = Engine::from_parsed(&json).unwrap();
    assert_eq!(from_packed.version(), 42);
    assert!(from_packed.flag_keys().eq(from_json.flag_keys()));
    let contexts = [
        json!({}),
        json!({"targetingKey": "u1", "plan": "pro", "device": {"type": "desktop"},
               "app": {"version": "3.4.0"}, "geo": {"country": "US"}}),
        json!({"targetingKey": "user-chen", "email": "a@bunting.dev", "qa": {"variant": "x"},
               "beta_opt_in": true, "merchant": {"country": "US"}, "account": {"id": "a9"}}),
    ];
    for ctx in &contexts {
        for now in [0, 1_796_083_200_000, 1_796_428_800_000, 1_800_000_000_000] {
            assert_eq!(
                serde_json::to_value(from_packed.evaluate_all(ctx, now)).unwrap(),
                serde_json::to_value(from_json.evaluate_all(ctx, now)).unwrap(),
                "{ctx} at {now}"
            );
        }
    }

    // To standard output: the same bytes.
    let o = bunting(&dir, &["pack", "snapshot.json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, bytes);
    assert!(stderr(&o).starts_with(&format!("wrote {} bytes packed", bytes.len())));

    // With the tables alone beside (`snapshot-tables:<env>`): the same
    // packed value, and the same snapshot without its text.
    let o = bunting(
        &dir,
        &["pack", "snapshot.json", "--tables-output", "tables.bin"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, bytes);
    let tables = fs::read(dir.join("tables.bin")).unwrap();
    assert!(
        stderr(&o).starts_with(&format!(
            "wrote tables.bin: the tables alone, {} bytes\n",
            tables.len()
        )),
        "{}",
        stderr(&o)
    );
    assert_eq!(tables, &*packed::without_document(&bytes).unwrap());
    assert_eq!(packed::document(&tables), Ok(None));
    assert!(
        tables.len() * 2 < bytes.len(),
        "{} of {}",
        tables.len(),
        bytes.len()
    );
    let read = ParsedSnapshot::from_packed(&tables).unwrap();
    assert_eq!((read.version(), read.checksum()), (42, json.checksum()));
}

#[test]
fn pack_refuses_a_snapshot_with_problems() {
    let dir = scratch("refuses");
    let text = example_snapshot(&dir);
    // An unknown off variant, which also breaks the sealed checksum.
    let broken = text.replace("\"offVariant\": \"small\"", "\"offVariant\": \"nope\"");
    assert_ne!(broken, text);
    fs::write(dir.join("broken.json"), &broken).unwrap();
    let o = bunting(&dir, &["pack", "broken.json", "-o", "broken.bin"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(!dir.join("broken.bin").exists());
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 4, "{err}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("broken.json: checksum: checksum mismatch")),
        "{err}"
    );
    assert!(
        lines
            .contains(&"broken.json: max-upload-mb: flags[7].offVariant: unknown variant \"nope\""),
        "{err}"
    );
    assert_eq!(lines[2], "broken.json: 2 problems");
    assert!(
        lines[3].starts_with("error: broken.json is not packed"),
        "{err}"
    );

    // Not a snapshot at all.
    fs::write(dir.join("not.json"), "{\"schemaVersion\": 1,").unwrap();
    let o = bunting(&dir, &["pack", "not.json", "-o", "not.bin"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).starts_with("not.json: snapshot is not a valid document"));
    assert!(!dir.join("not.bin").exists());
}

#[test]
fn snapshot_packed_writes_what_pack_writes() {
    let dir = scratch("snapshot-packed");
    example_snapshot(&dir);
    let o = bunting(&dir, &["pack", "snapshot.json", "-o", "packed.bin"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = bunting(
        &root(),
        &[
            "snapshot",
            "examples/flags.yaml",
            "--env",
            "production",
            "-o",
            dir.join("direct.bin").to_str().unwrap(),
            "--version",
            "42",
            "--generated-at",
            "2026-11-25T10:00:00Z",
            "--pretty",
            "--packed",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("bytes packed"), "{}", stderr(&o));
    let direct = fs::read(dir.join("direct.bin")).unwrap();
    assert_eq!(direct, fs::read(dir.join("packed.bin")).unwrap());
}
