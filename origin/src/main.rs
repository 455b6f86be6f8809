//! `bunting`: the command-line tool of the origin.
//!
//! ```text
//! bunting validate FILE
//! bunting snapshot FILE --env ENV [-o OUT] [--version N] [--generated-at TIME] [--pretty]
//! bunting publish FILE --env ENV (--local | --remote) [--binding NAME | --namespace-id ID]
//!                 [--version N] [--sdk-key KEY ...] [--wrangler CMD] [--dry-run]
//! ```
//!
//! See `docs/flags.md`. Exit status: 0 on success, 1 when the file has
//! problems or a step fails, 2 on a usage error.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use bunting_origin::defs::{self, Diagnostic, Project, SnapshotError, SnapshotOptions, Syntax};
use bunting_origin::kv::{self, Namespace, Storage, Target, Wrangler};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bunting",
    version,
    about = "bunting's origin tool: check flag definitions, build snapshots, publish them to Cloudflare KV",
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a definition file (YAML, or JSON by its `.json` extension) and
    /// report every problem as FILE:LINE:COLUMN: flag KEY (env ENV): message.
    Validate {
        /// The definition file.
        file: PathBuf,
    },
    /// Write the sealed snapshot of one environment (the JSON the edge loads).
    Snapshot {
        /// The definition file.
        file: PathBuf,
        /// The environment.
        #[arg(long)]
        env: String,
        /// Where to write the snapshot; standard output when omitted.
        #[arg(short, long, value_name = "OUT")]
        output: Option<PathBuf>,
        #[command(flatten)]
        meta: Meta,
        /// Indent the JSON.
        #[arg(long)]
        pretty: bool,
    },
    /// Build one environment's snapshot and write it, and SDK-key
    /// registrations, into Cloudflare KV through `wrangler kv key put`.
    Publish(Publish),
}

#[derive(Args)]
struct Meta {
    /// The snapshot version (monotonic per environment). Default: 1 for
    /// `snapshot`, the current Unix time in seconds for `publish`.
    #[arg(long, value_name = "N")]
    version: Option<u64>,
    /// The snapshot's generation time, RFC 3339. Default: now.
    #[arg(long, value_name = "TIME")]
    generated_at: Option<String>,
}

#[derive(Args)]
struct Publish {
    /// The definition file.
    file: PathBuf,
    /// The environment to publish.
    #[arg(long)]
    env: String,
    #[command(flatten)]
    storage: StorageArgs,
    /// The KV binding of the wrangler configuration to write [default: FLAGS].
    #[arg(long, value_name = "NAME", conflicts_with = "namespace_id")]
    binding: Option<String>,
    /// The KV namespace id to write, instead of a binding.
    #[arg(long, value_name = "ID")]
    namespace_id: Option<String>,
    #[command(flatten)]
    meta: Meta,
    /// Register an SDK key for the environment (repeatable); only its
    /// SHA-256 is stored.
    #[arg(long = "sdk-key", value_name = "KEY")]
    sdk_keys: Vec<String>,
    /// The wrangler command, split on whitespace.
    #[arg(long, value_name = "CMD", env = "BUNTING_WRANGLER", default_value = kv::DEFAULT_WRANGLER)]
    wrangler: String,
    /// Local persistence directory (as given to `wrangler dev --persist-to`).
    #[arg(long, value_name = "DIR", requires = "local")]
    persist_to: Option<PathBuf>,
    /// The wrangler configuration file (wrangler's `--config`).
    #[arg(long, value_name = "FILE")]
    wrangler_config: Option<PathBuf>,
    /// Print the wrangler commands without running them.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args)]
#[group(required = true, multiple = false)]
struct StorageArgs {
    /// Write wrangler's local KV (what `wrangler dev` reads).
    #[arg(long)]
    local: bool,
    /// Write Cloudflare's KV (what a deployed worker reads).
    #[arg(long)]
    remote: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Validate { file } => {
            let Some(project) = load(&file)? else {
                return Ok(ExitCode::FAILURE);
            };
            println!(
                "ok: {}, {}",
                plural(project.flags.len(), "flag"),
                plural(project.environments.len(), "environment")
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Snapshot {
            file,
            env,
            output,
            meta,
            pretty,
        } => {
            let Some(project) = load(&file)? else {
                return Ok(ExitCode::FAILURE);
            };
            let options = meta.options(1)?;
            let Some(snapshot) = snapshot(&project, &file, &env, &options)? else {
                return Ok(ExitCode::FAILURE);
            };
            let mut json = if pretty {
                serde_json::to_string_pretty(&snapshot)
            } else {
                serde_json::to_string(&snapshot)
            }
            .context("serializing the snapshot")?;
            json.push('\n');
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
        Command::Publish(p) => publish(p),
    }
}

fn publish(p: Publish) -> Result<ExitCode> {
    let Some(project) = load(&p.file)? else {
        return Ok(ExitCode::FAILURE);
    };
    if let Some(bad) = p.sdk_keys.iter().find(|k| !kv::valid_sdk_key(k)) {
        bail!("SDK key {bad:?} is empty or has spaces or non-ASCII characters");
    }
    let options = p.meta.options(unix_seconds())?;
    let Some(snapshot) = snapshot(&project, &p.file, &p.env, &options)? else {
        return Ok(ExitCode::FAILURE);
    };
    let json = serde_json::to_string(&snapshot).context("serializing the snapshot")?;
    let temp = TempFile::write(&p.env, &json)?;

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
    for put in kv::publish_plan(&p.env, temp.path.clone(), &p.sdk_keys) {
        eprintln!("$ {}", wrangler.display(&put, &target));
        if !p.dry_run {
            wrangler.run(&put, &target)?;
        }
    }
    let place = match (&target.namespace, &target.storage) {
        (Namespace::Binding(b), Storage::Remote) => format!("binding {b}, remote"),
        (Namespace::Binding(b), Storage::Local { .. }) => format!("binding {b}, local"),
        (Namespace::Id(id), Storage::Remote) => format!("namespace {id}, remote"),
        (Namespace::Id(id), Storage::Local { .. }) => format!("namespace {id}, local"),
    };
    println!(
        "{}{} version {} ({}) and {} to KV ({place})",
        if p.dry_run {
            "dry run: would publish "
        } else {
            "published "
        },
        kv::snapshot_key(&p.env),
        snapshot.version,
        plural(snapshot.flags.len(), "flag"),
        plural(p.sdk_keys.len(), "SDK key"),
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
fn load(file: &Path) -> Result<Option<Project>> {
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

fn report(file: &Path, diagnostics: &[Diagnostic]) {
    let name = file.display().to_string();
    for d in diagnostics {
        eprintln!("{}", d.render(&name));
    }
    eprintln!("{name}: {}", plural(diagnostics.len(), "problem"));
}

fn snapshot(
    project: &Project,
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

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Writes `out` through a temporary file in the same directory, so a reader
/// never sees half a snapshot.
fn write_atomically(out: &Path, content: &str) -> Result<()> {
    let mut tmp = out.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    fs::write(&tmp, content).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))
}

/// The snapshot handed to wrangler with `--path`; removed when dropped.
struct TempFile {
    path: PathBuf,
}

impl TempFile {
    fn write(env: &str, content: &str) -> Result<TempFile> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "bunting-snapshot-{env}-{}-{nanos}.json",
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
