//! `bunting pack`: a snapshot's JSON document in its packed binary form
//! ([`bunting_core::packed`]), which the edge loads from KV without a JSON
//! parser. The JSON text is carried verbatim inside (the edge serves it to
//! server SDKs as published), so the packed form replaces the JSON value
//! of `snapshot:<env>` one for one.

use std::fs;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use bunting_core::packed::{self, PackedError};
use bunting_core::{Engine, ParsedSnapshot};

use crate::output::{plural, write_atomically};

/// `bunting pack`: reads the snapshot `file`, refuses it if it has any
/// problem (each printed as `FILE: problem`, then how many; a checksum
/// that does not match is one), else writes its packed form to `output`
/// or standard output and says what it wrote on standard error.
pub(crate) fn pack(file: &Path, output: Option<PathBuf>) -> Result<ExitCode> {
    if output.is_none() && io::stdout().is_terminal() {
        bail!("the packed snapshot is binary: give -o FILE or redirect standard output");
    }
    let text = fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let name = file.display().to_string();
    let parsed = match ParsedSnapshot::parse(&text) {
        Ok(p) => p,
        Err(e) => return Ok(refuse(&name, &[e.to_string()])),
    };
    let (_, problems) = Engine::from_parsed_lenient(&parsed);
    if !problems.is_empty() {
        let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Ok(refuse(&name, &problems));
    }
    let bytes = packed::pack_with_document(&parsed, &text).context("packing the snapshot")?;
    check(&bytes, &parsed, &text).context("the packed snapshot does not read back")?;
    let what = format!(
        "{} bytes packed (from {} bytes of JSON; environment {}, version {}, {})",
        bytes.len(),
        text.len(),
        parsed.environment(),
        parsed.version(),
        plural(parsed.flags().len(), "flag")
    );
    match output {
        Some(out) => {
            write_atomically(&out, &bytes)?;
            eprintln!("wrote {}: {what}", out.display());
        }
        None => {
            io::stdout()
                .write_all(&bytes)
                .and_then(|()| io::stdout().flush())
                .context("writing the packed snapshot")?;
            eprintln!("wrote {what}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints `problems` of `name` as `bunting validate` does (one per line,
/// then how many) and gives the exit status of a refusal.
fn refuse(name: &str, problems: &[String]) -> ExitCode {
    for p in problems {
        eprintln!("{name}: {p}");
    }
    eprintln!("{name}: {}", plural(problems.len(), "problem"));
    eprintln!("error: {name} is not packed: a snapshot with problems is not published");
    ExitCode::FAILURE
}

/// Why packed bytes are not what was packed.
#[derive(Debug, thiserror::Error)]
enum CheckError {
    /// They do not read.
    #[error(transparent)]
    Unreadable(#[from] PackedError),
    /// They read as something else.
    #[error("{0} differs from the JSON document's")]
    Differs(&'static str),
}

/// Reads `bytes` back: the same snapshot, loading without problems, and
/// `text` as its document. A guard against a packer bug reaching KV.
fn check(bytes: &[u8], parsed: &ParsedSnapshot<'_>, text: &str) -> Result<(), CheckError> {
    let read = ParsedSnapshot::from_packed(bytes)?;
    if packed::document(bytes)? != Some(text) {
        return Err(CheckError::Differs("the carried document"));
    }
    if (read.environment(), read.version(), read.checksum())
        != (parsed.environment(), parsed.version(), parsed.checksum())
    {
        return Err(CheckError::Differs("the environment, version or checksum"));
    }
    if !Engine::from_parsed_lenient(&read).1.is_empty() {
        return Err(CheckError::Differs("the problems"));
    }
    Ok(())
}
