//! The `bunting` binary run as a process on real files, each test in a
//! scratch directory of its own.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root (examples are relative to it).
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// A fresh scratch directory `group/name` under the target's temporary
/// directory.
pub(crate) fn scratch(group: &str, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(group)
        .join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// `bunting` to run in `dir`, without the settings the tests' own
/// environment might carry (`BUNTING_WRANGLER`, `BUNTING_DATABASE_URL`,
/// `BUNTING_URL`, `BUNTING_TOKEN`).
pub(crate) fn bunting(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bunting"));
    c.current_dir(dir)
        .env_remove("BUNTING_WRANGLER")
        .env_remove("BUNTING_DATABASE_URL")
        .env_remove("BUNTING_URL")
        .env_remove("BUNTING_TOKEN");
    c
}

/// Runs `bunting args…` in `dir` (as [`bunting`] prepares it) to the end.
pub(crate) fn run(dir: &Path, args: &[&str]) -> Output {
    bunting(dir).args(args).output().expect("running bunting")
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf-8 stdout")
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("utf-8 stderr")
}
