//! The commands on a definition file alone: `validate`, `snapshot` and
//! `publish` (to Cloudflare KV through wrangler).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use bunting_core::packed::{FORMAT_VERSION, FORMAT_VERSION_1};
use bunting_defs::{
    self as defs, DefinitionFile, Diagnostic, SnapshotError, SnapshotOptions, Syntax,
};
use bunting_origin::kv::{self, Namespace, Storage, Target, Wrangler};
use bunting_origin::publish::KvFormat;

use crate::args::{Meta, Publish};
use crate::output::{plural, write_atomically};

/// `bunting validate`: checks `file`, prints every problem or a summary.
pub(crate) fn validate(file: &Path) -> Result<ExitCode> {
    let Some(project) = load(file)? else {
        return Ok(ExitCode::FAILURE);
    };
    println!(
        "ok: {}, {}",
        plural(project.flags.len(), "flag"),
        plural(project.environments.len(), "environment")
    );
    Ok(ExitCode::SUCCESS)
}

/// `bunting snapshot`: writes one environment's sealed snapshot to `output`
/// or standard output, as JSON or (`packed`) in its packed form.
pub(crate) fn snapshot_cmd(
    file: &Path,
    env: &str,
    output: Option<PathBuf>,
    meta: &Meta,
    pretty: bool,
    packed: bool,
) -> Result<ExitCode> {
    if packed {
        crate::pack_cmd::refuse_a_terminal(output.as_deref())?;
    }
    let Some(project) = load(file)? else {
        return Ok(ExitCode::FAILURE);
    };
    let options = meta.options(1)?;
    let Some(snapshot) = snapshot(&project, file, env, &options)? else {
        return Ok(ExitCode::FAILURE);
    };
    let mut json = if pretty {
        serde_json::to_string_pretty(&snapshot)
    } else {
        serde_json::to_string(&snapshot)
    }
    .context("serializing the snapshot")?;
    json.push('\n');
    if packed {
        let name = format!("the snapshot of {env}");
        let Some(packed) = crate::pack_cmd::pack_text(&name, &json, FORMAT_VERSION)? else {
            return Ok(ExitCode::FAILURE);
        };
        crate::pack_cmd::write(&packed, output.as_deref())?;
        return Ok(ExitCode::SUCCESS);
    }
    match output {
        Some(out) => {
            write_atomically(&out, &json)?;
            eprintln!(
                "wrote {} (environment {env}, version {}, {})",
                out.display(),
                snapshot.version,
                plural(snapshot.flags.len(), "flag")
            );
        }
        None => io::stdout()
            .write_all(json.as_bytes())
            .context("writing the snapshot")?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `bunting publish`: writes the snapshot (its packed form carrying the
/// JSON text, or with `--kv-format json` the JSON) and SDK-key
/// registrations into KV.
pub(crate) fn publish(p: Publish) -> Result<ExitCode> {
    let Some(project) = load(&p.file)? else {
        return Ok(ExitCode::FAILURE);
    };
    let keys: Vec<(String, kv::KeyKind)> = (p.sdk_keys.iter().map(|k| (k, kv::KeyKind::Client)))
        .chain(p.server_sdk_keys.iter().map(|k| (k, kv::KeyKind::Server)))
        .map(|(k, kind)| (k.clone(), kind))
        .collect();
    if let Some((bad, _)) = keys.iter().find(|(k, _)| !kv::valid_sdk_key(k)) {
        bail!("SDK key {bad:?} is empty or has spaces or non-ASCII characters");
    }
    let options = p.meta.options(unix_seconds())?;
    let Some(snapshot) = snapshot(&project, &p.file, &p.env, &options)? else {
        return Ok(ExitCode::FAILURE);
    };
    let json = serde_json::to_string(&snapshot).context("serializing the snapshot")?;
    let packed = p.kv_format.is_packed() || p.packed;
    // A packed value goes with its tables alone (`snapshot-tables:<env>`,
    // what edge workers check every few seconds).
    let (temp, tables) = if packed {
        let name = format!("the snapshot of {}", p.env);
        let version = if p.kv_format == KvFormat::PackedV1 {
            FORMAT_VERSION_1
        } else {
            FORMAT_VERSION
        };
        let Some(packed) = crate::pack_cmd::pack_text(&name, &json, version)? else {
            return Ok(ExitCode::FAILURE);
        };
        let tables = bunting_core::packed::without_document(packed.bytes())
            .context("the packed snapshot's tables alone")?;
        (
            TempFile::write(&p.env, "bin", packed.bytes())?,
            Some(TempFile::write(&p.env, "tables.bin", &*tables)?),
        )
    } else {
        (TempFile::write(&p.env, "json", &json)?, None)
    };

    let namespace = match (p.namespace_id, p.binding) {
        (Some(id), _) => Namespace::Id(id),
        (None, b) => Namespace::Binding(b.unwrap_or_else(|| kv::DEFAULT_BINDING.to_string())),
    };
    let storage = if p.storage.remote {
        Storage::Remote
    } else {
        Storage::Local {
            persist_to: p.persist_to,
        }
    };
    let target = Target {
        namespace,
        storage,
        config: p.wrangler_config,
    };
    let wrangler = Wrangler::from_command_line(&p.wrangler)?;
    let tables = tables.as_ref().map(|t| t.path.clone());
    for write in kv::publish_plan(&p.env, temp.path.clone(), tables, &keys) {
        eprintln!("$ {}", wrangler.display(&write, &target));
        if !p.dry_run {
            wrangler.run(&write, &target)?;
        }
    }
    let place = match (&target.namespace, &target.storage) {
        (Namespace::Binding(b), Storage::Remote) => format!("binding {b}, remote"),
        (Namespace::Binding(b), Storage::Local { .. }) => format!("binding {b}, local"),
        (Namespace::Id(id), Storage::Remote) => format!("namespace {id}, remote"),
        (Namespace::Id(id), Storage::Local { .. }) => format!("namespace {id}, local"),
    };
    println!(
        "{}{} version {} ({}{}) and {} to KV ({place})",
        if p.dry_run {
            "dry run: would publish "
        } else {
            "published "
        },
        kv::snapshot_key(&p.env),
        snapshot.version,
        plural(snapshot.flags.len(), "flag"),
        if packed { ", packed" } else { "" },
        plural(keys.len(), "SDK key"),
    );
    Ok(ExitCode::SUCCESS)
}

impl Meta {
    fn options(&self, default_version: u64) -> Result<SnapshotOptions> {
        let generated_at = match &self.generated_at {
            Some(t) => t.clone(),
            None => bunting_core::time::format_rfc3339_ms(
                i64::try_from(unix_seconds()).unwrap_or(i64::MAX / 1000) * 1000,
            )
            .context("formatting the current time")?,
        };
        Ok(SnapshotOptions::new(
            self.version.unwrap_or(default_version),
            generated_at,
        ))
    }
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Reads and checks `file`. Prints every problem and returns `None` when
/// there are any.
pub(crate) fn load(file: &Path) -> Result<Option<DefinitionFile>> {
    let src = fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let syntax = match file.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("json") => Syntax::Json,
        _ => Syntax::Yaml,
    };
    match defs::load(&src, syntax) {
        Ok(project) => Ok(Some(project)),
        Err(diagnostics) => {
            report(file, &diagnostics);
            Ok(None)
        }
    }
}

/// Prints every diagnostic (a rule-language error followed by its
/// condition with carets under the error), then how many there are.
fn report(file: &Path, diagnostics: &[Diagnostic]) {
    let name = file.display().to_string();
    for d in diagnostics {
        eprintln!("{}", d.render(&name));
        if let Some(excerpt) = d.excerpt() {
            eprint!("{excerpt}");
        }
    }
    eprintln!("{name}: {}", plural(diagnostics.len(), "problem"));
}

fn snapshot(
    project: &DefinitionFile,
    file: &Path,
    env: &str,
    options: &SnapshotOptions,
) -> Result<Option<bunting_core::Snapshot>> {
    match project.snapshot(env, options) {
        Ok(s) => Ok(Some(s)),
        Err(SnapshotError::Invalid(diagnostics)) => {
            report(file, &diagnostics);
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// The snapshot handed to wrangler with `--path`; removed when dropped.
struct TempFile {
    path: PathBuf,
}

impl TempFile {
    /// Writes `content` to a new file named after `env`, ending in
    /// `.{extension}`.
    fn write(env: &str, extension: &str, content: impl AsRef<[u8]>) -> Result<TempFile> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "bunting-snapshot-{env}-{}-{nanos}.{extension}",
            std::process::id()
        ));
        fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
        Ok(TempFile { path })
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}
