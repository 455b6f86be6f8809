//! What every command writes the same way: counted nouns and files
//! replaced atomically.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// `1 entry`, `n entries`.
pub(crate) fn entries(n: usize) -> String {
    if n == 1 {
        "1 entry".to_string()
    } else {
        format!("{n} entries")
    }
}

/// `1 word`, `n words`.
pub(crate) fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Writes `out` through a temporary file in the same directory, so a reader
/// never sees half a snapshot.
pub(crate) fn write_atomically(out: &Path, content: impl AsRef<[u8]>) -> Result<()> {
    let mut tmp = out.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    fs::write(&tmp, content).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))
}
