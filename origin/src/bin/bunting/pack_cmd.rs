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
/// that does not match is one) unless `allow_problems` (the hidden
/// `--allow-problems`, for tests of the edge: then they are warnings),
/// else writes its packed form (format `version`) to `output` or standard
/// output, and, given `tables_output`, the same without its JSON text
/// there ([`packed::without_document`]), and says what it wrote on
/// standard error.
pub(crate) fn pack(
    file: &Path,
    (output, tables_output): (Option<PathBuf>, Option<PathBuf>),
    allow_problems: bool,
    version: u16,
) -> Result<ExitCode> {
    refuse_a_terminal(output.as_deref())?;
    let text = fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let name = file.display().to_string();
    let Some(packed) = pack_text_allowing(&name, &text, allow_problems, version)? else {
        return Ok(ExitCode::FAILURE);
    };
    if let Some(out) = &tables_output {
        let tables =
            packed::without_document(&packed.bytes).context("the tables alone of the snapshot")?;
        write_atomically(out, &*tables)?;
        eprintln!(
            "wrote {}: the tables alone, {} bytes",
            out.display(),
            tables.len()
        );
    }
    write(&packed, output.as_deref())?;
    Ok(ExitCode::SUCCESS)
}

/// Fails when the packed bytes would go to a terminal (no `output`).
pub(crate) fn refuse_a_terminal(output: Option<&Path>) -> Result<()> {
    if output.is_none() && io::stdout().is_terminal() {
        bail!("the packed snapshot is binary: give -o FILE or redirect standard output");
    }
    Ok(())
}

/// A snapshot packed by [`pack_text`] and what to say about it.
pub(crate) struct Packed {
    /// The packed form.
    bytes: Vec<u8>,
    /// Its size, the JSON's, the environment, version and flags.
    what: String,
}

impl Packed {
    /// The packed form.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Packs the snapshot `text` (from `name`) in format `version` with
/// `text` as its document, read back as a check; `None` (the problems
/// printed) if it has any.
pub(crate) fn pack_text(name: &str, text: &str, version: u16) -> Result<Option<Packed>> {
    pack_text_allowing(name, text, false, version)
}

/// [`pack_text`] in format `version`, packing a snapshot with problems too
/// if `allow_problems` (each printed as a warning; it must still parse).
fn pack_text_allowing(
    name: &str,
    text: &str,
    allow_problems: bool,
    version: u16,
) -> Result<Option<Packed>> {
    let parsed = match ParsedSnapshot::parse(text) {
        Ok(p) => p,
        Err(e) => {
            refuse(name, &[e.to_string()]);
            return Ok(None);
        }
    };
    let (_, problems) = Engine::from_parsed_lenient(&parsed);
    let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
    if !problems.is_empty() {
        if !allow_problems {
            refuse(name, &problems);
            return Ok(None);
        }
        for p in &problems {
            eprintln!("warning: {name}: {p}");
        }
    }
    let bytes = packed::pack_as(&parsed, Some(text), version).context("packing the snapshot")?;
    check(&bytes, &parsed, text, &problems).context("the packed snapshot does not read back")?;
    let what = format!(
        "{} bytes packed (from {} bytes of JSON; environment {}, version {}, {})",
        bytes.len(),
        text.len(),
        parsed.environment(),
        parsed.version(),
        plural(parsed.flags().len(), "flag")
    );
    Ok(Some(Packed { bytes, what }))
}

/// Writes `packed` to `output` (atomically) or standard output, and says
/// so on standard error.
pub(crate) fn write(packed: &Packed, output: Option<&Path>) -> Result<()> {
    match output {
        Some(out) => {
            write_atomically(out, &packed.bytes)?;
            eprintln!("wrote {}: {}", out.display(), packed.what);
        }
        None => {
            io::stdout()
                .write_all(&packed.bytes)
                .and_then(|()| io::stdout().flush())
                .context("writing the packed snapshot")?;
            eprintln!("wrote {}", packed.what);
        }
    }
    Ok(())
}

/// Prints `problems` of `name` as `bunting validate` does (one per line,
/// then how many) and that nothing was packed.
fn refuse(name: &str, problems: &[String]) {
    for p in problems {
        eprintln!("{name}: {p}");
    }
    eprintln!("{name}: {}", plural(problems.len(), "problem"));
    eprintln!("error: {name} is not packed: a snapshot with problems is not published");
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

/// Reads `bytes` back: the same snapshot, loading with the same
/// `problems` (none, unless allowed), and `text` as its document. A guard
/// against a packer bug reaching KV.
fn check(
    bytes: &[u8],
    parsed: &ParsedSnapshot<'_>,
    text: &str,
    problems: &[String],
) -> Result<(), CheckError> {
    let read = ParsedSnapshot::from_packed(bytes)?;
    if packed::document(bytes)? != Some(text) {
        return Err(CheckError::Differs("the carried document"));
    }
    if (read.environment(), read.version(), read.checksum())
        != (parsed.environment(), parsed.version(), parsed.checksum())
    {
        return Err(CheckError::Differs("the environment, version or checksum"));
    }
    let read_problems = Engine::from_parsed_lenient(&read).1;
    if !read_problems
        .iter()
        .map(ToString::to_string)
        .eq(problems.iter().cloned())
    {
        return Err(CheckError::Differs("the problems"));
    }
    Ok(())
}
