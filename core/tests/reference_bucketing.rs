//! Cross-checks `Bucketer` against the independent pure-Python reference in
//! `tests/reference/bucketing.py`, which the hash-dependent conformance
//! fixtures were written from.

use std::process::Command;

use bunting_core::bucket::{BUCKETS, Bucketer};

#[test]
fn bucketer_matches_the_python_reference() {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/reference/bucketing.py");
    let output = match Command::new("python3")
        .arg(&script)
        .arg("--table")
        .env("PYTHONIOENCODING", "utf-8")
        .output()
    {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("SKIPPED reference_bucketing: python3 is not installed");
            return;
        }
        Err(e) => panic!("cannot run python3: {e}"),
    };
    assert!(
        output.status.success(),
        "{} --table failed: {}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("the table is UTF-8");
    let mut checked = 0;
    let mut mismatches = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let [salt, key, want] = fields[..] else {
            panic!("malformed table line {line:?}");
        };
        let want: u32 = want.parse().expect("bucket is a number");
        assert!(want < BUCKETS, "reference bucket {want} out of range");
        let got = Bucketer::new(salt).bucket(key);
        if got != want {
            mismatches.push(format!(
                "salt {salt:?} key {key:?}: python {want}, rust {got}"
            ));
        }
        checked += 1;
    }
    assert!(checked >= 200, "only {checked} reference lines");
    assert!(
        mismatches.is_empty(),
        "{} mismatch(es):\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
