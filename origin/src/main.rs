//! `bunting`: the command-line tool of the origin.
//!
//! ```text
//! bunting validate FILE
//! bunting snapshot FILE --env ENV [-o OUT] [--version N] [--generated-at TIME] [--pretty]
//! bunting publish FILE --env ENV (--local | --remote) [--binding NAME | --namespace-id ID]
//!                 [--version N] [--sdk-key KEY ...] [--wrangler CMD] [--dry-run]
//!
//! bunting import FILE --org ORG --project PROJECT [--create]
//! bunting export --org ORG --project PROJECT [-o FILE] [--format yaml|json]
//! bunting audit verify
//! bunting audit export [--org ORG] [--entity-type T] [--actor A] [--from T] [--until T] [-o FILE]
//! bunting token create --org ORG --role viewer|editor|publisher|admin --name NAME
//! bunting serve [OPTIONS]
//! ```
//!
//! `validate`, `snapshot` and `publish` work on a definition file alone.
//! `import`, `export`, `audit` and `token` work on the origin's store
//! ([`bunting_origin::store`]) named by `--database-url` (or
//! `BUNTING_DATABASE_URL`; default `sqlite://bunting.db`, a file in the
//! working directory): `import` applies a definition file to a project
//! (GitOps: idempotent, never deletes), `export` writes a project back as a
//! definition file ([`bunting_origin::export`]), `audit` verifies and
//! exports the hash-chained audit log, and `token create` makes an API
//! token without the HTTP API (bootstrap). `serve` runs the origin service
//! ([`bunting_origin::serve`]).
//!
//! See `docs/flags.md`. Exit status: 0 on success, 1 when the file has
//! problems, a step fails or the audit log does not verify, 2 on a usage
//! error. Results go to standard output (a token's secret, alone);
//! progress and errors to standard error.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use bunting_defs::{
    self as defs, DefinitionFile, Diagnostic, SnapshotError, SnapshotOptions, Syntax,
};
use bunting_origin::kv::{self, Namespace, Storage, Target, Wrangler};
use bunting_origin::store::{Actor, AuditFault, AuditQuery, Role, Store, StoreError};
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "bunting",
    version,
    about = "bunting's origin tool: check flag definitions, build snapshots, publish them to Cloudflare KV, \
             keep a project of the origin's store in git, check its audit log, run the origin service",
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the `serve` options does not matter.
#[allow(clippy::large_enum_variant)]
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
    /// Apply a definition file to a project of the store (GitOps): create
    /// what is missing, update what differs, delete nothing. Importing the
    /// same file again changes nothing.
    Import(Import),
    /// Write a project of the store as a definition file (YAML or JSON),
    /// which `validate` accepts and `import` applies back.
    Export(Export),
    /// The store's hash-chained audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// API tokens of the store.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Run the origin service: the HTTP API on the store and the publisher.
    Serve(bunting_origin::serve::ServeArgs),
    /// Experiments of the store.
    Experiment {
        #[command(subcommand)]
        command: ExperimentCommand,
    },
}

#[derive(Subcommand)]
enum ExperimentCommand {
    /// Print an experiment's results as a table: per metric and arm the
    /// users, value, relative lift [95% CI], fixed-horizon and sequential
    /// p-values and the chance to beat control; then the sample-ratio check
    /// and every warning.
    Results(ExperimentResultsArgs),
}

#[derive(Args)]
struct ExperimentResultsArgs {
    /// The experiment's key.
    key: String,
    /// The organization's key.
    #[arg(long)]
    org: String,
    /// The project's key.
    #[arg(long)]
    project: String,
    /// The environment's key.
    #[arg(long)]
    env: String,
    #[command(flatten)]
    db: Database,
}

/// The store when neither `--database-url` nor `BUNTING_DATABASE_URL` is
/// given: a SQLite file in the working directory (as for `bunting serve`).
const DEFAULT_DATABASE: &str = "sqlite://bunting.db";

#[derive(Args)]
struct Database {
    /// The store: `sqlite://FILE`, a file path, `sqlite::memory:` or
    /// `postgres://…`.
    #[arg(
        long,
        value_name = "URL",
        env = "BUNTING_DATABASE_URL",
        hide_env_values = true,
        default_value = DEFAULT_DATABASE
    )]
    database_url: String,
}

#[derive(Args)]
struct Import {
    /// The definition file (YAML, or JSON by its `.json` extension).
    file: PathBuf,
    /// The organization's key.
    #[arg(long)]
    org: String,
    /// The project's key.
    #[arg(long)]
    project: String,
    /// Create the organization and the project when they do not exist.
    #[arg(long)]
    create: bool,
    #[command(flatten)]
    db: Database,
}

#[derive(Args)]
struct Export {
    /// The organization's key.
    #[arg(long)]
    org: String,
    /// The project's key.
    #[arg(long)]
    project: String,
    /// Where to write the file; standard output when omitted.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// The format [default: json for an output file ending in `.json`, yaml
    /// otherwise].
    #[arg(long, value_enum)]
    format: Option<Format>,
    #[command(flatten)]
    db: Database,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Yaml,
    Json,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain: prints `ok: N entries, head HASH` (exit 0), or
    /// the first bad entry's sequence number and what is wrong (exit 1).
    Verify {
        #[command(flatten)]
        db: Database,
    },
    /// Write audit entries as JSON lines, oldest first.
    Export(AuditExport),
}

#[derive(Args)]
struct AuditExport {
    /// Only entries of this organization (by key).
    #[arg(long)]
    org: Option<String>,
    /// Only entries about this entity type (`flag`, `flagConfig`,
    /// `segment`, `environment`, `project`, `organization`, `layer`,
    /// `token`, `sdkKey`).
    #[arg(long, value_name = "T")]
    entity_type: Option<String>,
    /// Only entries by this actor.
    #[arg(long, value_name = "A")]
    actor: Option<String>,
    /// Entries at or after this time (UTC, `2026-11-25T10:00:00Z` or any
    /// prefix of it, e.g. `2026-11-25`).
    #[arg(long, value_name = "T")]
    from: Option<String>,
    /// Entries strictly before this time (same format).
    #[arg(long, value_name = "T")]
    until: Option<String>,
    /// Where to write; standard output when omitted.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    db: Database,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make an API token directly in the store (bootstrap, without the
    /// HTTP API). Prints the secret, once, on standard output.
    Create {
        /// The organization's key.
        #[arg(long)]
        org: String,
        /// The role: viewer, editor, publisher or admin.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// A label for the token.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        db: Database,
    },
}

fn parse_role(s: &str) -> std::result::Result<Role, String> {
    s.parse()
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
        Command::Import(i) => block_on(import(i)),
        Command::Export(e) => block_on(export(e)),
        Command::Audit {
            command: AuditCommand::Verify { db },
        } => block_on(audit_verify(db)),
        Command::Audit {
            command: AuditCommand::Export(a),
        } => block_on(audit_export(a)),
        Command::Token {
            command:
                TokenCommand::Create {
                    org,
                    role,
                    name,
                    db,
                },
        } => block_on(token_create(org, role, name, db)),
        Command::Experiment {
            command: ExperimentCommand::Results(a),
        } => block_on(experiment_results(a)),
        Command::Serve(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(bunting_origin::serve::run(args))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs one store command on a single-threaded runtime.
fn block_on(f: impl Future<Output = Result<ExitCode>>) -> Result<ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(f)
}

impl Database {
    async fn open(&self) -> Result<Store> {
        Store::open(&self.database_url)
            .await
            .with_context(|| format!("opening the store {}", redact(&self.database_url)))
    }
}

/// `url` without a password (`postgres://user:secret@host` → `postgres://user:***@host`).
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

/// `bunting experiment results`: the results table of one experiment.
async fn experiment_results(a: ExperimentResultsArgs) -> Result<ExitCode> {
    let store = a.db.open().await?;
    let org = store
        .org_by_key(&a.org)
        .await
        .with_context(|| format!("reading organization {:?}", a.org))?;
    let project = store
        .project_by_key(org.id, &a.project)
        .await
        .with_context(|| format!("reading project {}/{}", a.org, a.project))?;
    let env = store
        .environment_by_key(project.id, &a.env)
        .await
        .with_context(|| format!("reading environment {}/{}/{}", a.org, a.project, a.env))?;
    let x = store
        .experiment_by_key(env.id, &a.key)
        .await
        .with_context(|| format!("reading experiment {:?} of {}", a.key, a.env))?;
    let r = bunting_origin::results::load(&store, project.id, &x)
        .await
        .with_context(|| format!("computing the results of {:?}", a.key))?;
    print!("{}", bunting_origin::results::to_table(&r));
    Ok(ExitCode::SUCCESS)
}

/// The organization `key`; with `create`, made when missing.
async fn find_org(
    store: &Store,
    actor: &Actor,
    key: &str,
    create: bool,
) -> Result<bunting_origin::store::Organization> {
    match store.org_by_key(key).await {
        Ok(org) => Ok(org),
        Err(StoreError::NotFound { .. }) if create => {
            let org = store
                .create_org(actor, key, key)
                .await
                .with_context(|| format!("creating organization {key:?}"))?;
            eprintln!("created organization {key}");
            Ok(org)
        }
        Err(StoreError::NotFound { .. }) => {
            bail!("organization {key:?} not found (`--create` creates it)")
        }
        Err(e) => Err(e).with_context(|| format!("reading organization {key:?}")),
    }
}

/// The project `key` of `org`; with `create`, made when missing.
async fn find_project(
    store: &Store,
    actor: &Actor,
    org: &bunting_origin::store::Organization,
    key: &str,
    create: bool,
) -> Result<bunting_origin::store::Project> {
    match store.project_by_key(org.id, key).await {
        Ok(p) => Ok(p),
        Err(StoreError::NotFound { .. }) if create => {
            let p = store
                .create_project(actor, org.id, key, key)
                .await
                .with_context(|| format!("creating project {}/{key}", org.key))?;
            eprintln!("created project {}/{key}", org.key);
            Ok(p)
        }
        Err(StoreError::NotFound { .. }) => bail!(
            "project {key:?} not found in organization {:?} (`--create` creates it)",
            org.key
        ),
        Err(e) => Err(e).with_context(|| format!("reading project {}/{key}", org.key)),
    }
}

async fn import(i: Import) -> Result<ExitCode> {
    // The file is checked before the store is touched: a file with problems
    // changes nothing.
    let Some(defs) = load(&i.file)? else {
        return Ok(ExitCode::FAILURE);
    };
    let store = i.db.open().await?;
    let result = async {
        let org = find_org(&store, &Actor::new("cli:import"), &i.org, i.create).await?;
        let actor = Actor::new("cli:import").in_org(org.id);
        let project = find_project(&store, &actor, &org, &i.project, i.create).await?;
        let sum = store
            .import(&actor, project.id, &defs)
            .await
            .with_context(|| {
                format!(
                    "importing {} into {}/{}",
                    i.file.display(),
                    org.key,
                    project.key
                )
            })?;
        let in_file: Vec<&str> = defs.flags.iter().map(|f| f.key.value.as_str()).collect();
        let left: Vec<String> = store
            .flags(project.id)
            .await?
            .into_iter()
            .map(|f| f.spec.key)
            .filter(|k| !in_file.contains(&k.as_str()))
            .collect();
        if !left.is_empty() {
            eprintln!(
                "note: {} of {}/{} not in {} left as they are (import never deletes): {}",
                plural(left.len(), "flag"),
                org.key,
                project.key,
                i.file.display(),
                left.join(", ")
            );
        }
        println!(
            "imported {} into {}/{}: created {}, {}, {}, {}; updated {}, {}, {}",
            i.file.display(),
            org.key,
            project.key,
            plural(sum.environments_created as usize, "environment"),
            plural(sum.layers_created as usize, "layer"),
            plural(sum.flags_created as usize, "flag"),
            plural(sum.segments_created as usize, "segment"),
            plural(sum.flags_updated as usize, "flag"),
            plural(sum.configs_updated as usize, "configuration"),
            plural(sum.segments_updated as usize, "segment"),
        );
        Ok(ExitCode::SUCCESS)
    }
    .await;
    store.pool().close().await;
    result
}

async fn export(e: Export) -> Result<ExitCode> {
    let format = e.format.unwrap_or(match &e.output {
        Some(out)
            if out
                .extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| x.eq_ignore_ascii_case("json")) =>
        {
            Format::Json
        }
        _ => Format::Yaml,
    });
    let store = e.db.open().await?;
    let result = async {
        let org = find_org(&store, &Actor::new("cli:export"), &e.org, false).await?;
        let project =
            find_project(&store, &Actor::new("cli:export"), &org, &e.project, false).await?;
        let doc = bunting_origin::export::export(&store, project.id)
            .await
            .with_context(|| format!("exporting {}/{}", org.key, project.key))?;
        let text = match format {
            Format::Yaml => doc.to_yaml(),
            Format::Json => doc.to_json(),
        };
        match &e.output {
            Some(out) => {
                write_atomically(out, &text)?;
                eprintln!(
                    "wrote {} ({}/{} as {})",
                    out.display(),
                    org.key,
                    project.key,
                    if format == Format::Json {
                        "JSON"
                    } else {
                        "YAML"
                    }
                );
            }
            None => io::stdout()
                .write_all(text.as_bytes())
                .context("writing the export")?,
        }
        Ok(ExitCode::SUCCESS)
    }
    .await;
    store.pool().close().await;
    result
}

async fn audit_verify(db: Database) -> Result<ExitCode> {
    let store = db.open().await?;
    let report = store.verify_audit().await;
    store.pool().close().await;
    let report = report.context("reading the audit log")?;
    match report.first_bad {
        None => {
            println!(
                "ok: {}, head {}",
                entries(report.entries as usize),
                report.head_hash
            );
            Ok(ExitCode::SUCCESS)
        }
        Some((seq, fault)) => {
            let what = match fault {
                AuditFault::Gap => {
                    "gap: sequence numbers missing or out of order (a deleted or renumbered entry)"
                }
                AuditFault::BrokenLink => {
                    "broken link: prevHash is not the previous entry's hash (deleted or reordered entries)"
                }
                AuditFault::HashMismatch => {
                    "hash mismatch: the entry's content does not match its hash (an edited entry)"
                }
                AuditFault::Truncated => {
                    "truncated: the log ends before the recorded head (a deleted tail)"
                }
            };
            println!(
                "FAILED: seq {seq}: {what}; {} read",
                entries(report.entries as usize)
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn audit_export(a: AuditExport) -> Result<ExitCode> {
    let store = a.db.open().await?;
    let result = async {
        let org_id = match &a.org {
            Some(key) => Some(
                store
                    .org_by_key(key)
                    .await
                    .with_context(|| format!("organization {key:?}"))?
                    .id,
            ),
            None => None,
        };
        let mut q = AuditQuery {
            entity_type: a.entity_type.clone(),
            actor: a.actor.clone(),
            org_id,
            from: a.from.clone(),
            until: a.until.clone(),
            limit: 1000,
            ..AuditQuery::default()
        };
        // Streamed page by page: to standard output, or to a temporary file
        // renamed over `-o` at the end (a reader never sees half a log).
        let tmp = a.output.as_ref().map(|out| {
            let mut t = out.as_os_str().to_owned();
            t.push(".tmp");
            PathBuf::from(t)
        });
        let sink: Box<dyn Write> = match &tmp {
            Some(t) => {
                Box::new(fs::File::create(t).with_context(|| format!("writing {}", t.display()))?)
            }
            None => Box::new(io::stdout().lock()),
        };
        let mut sink = io::BufWriter::new(sink);
        let mut count = 0usize;
        let written: Result<()> = async {
            loop {
                let page = store.audit_log(&q).await.context("reading the audit log")?;
                for entry in &page.entries {
                    serde_json::to_writer(&mut sink, entry).context("writing an entry")?;
                    sink.write_all(b"\n").context("writing an entry")?;
                }
                count += page.entries.len();
                match page.next {
                    Some(next) => q.after_seq = next,
                    None => break,
                }
            }
            sink.flush().context("writing the audit log")
        }
        .await;
        drop(sink);
        if let Err(e) = written {
            if let Some(tmp) = &tmp {
                let _ = fs::remove_file(tmp);
            }
            return Err(e);
        }
        if let (Some(out), Some(tmp)) = (&a.output, &tmp) {
            fs::rename(tmp, out).with_context(|| format!("writing {}", out.display()))?;
            eprintln!("wrote {} ({})", out.display(), entries(count));
        }
        Ok(ExitCode::SUCCESS)
    }
    .await;
    store.pool().close().await;
    result
}

async fn token_create(org: String, role: Role, name: String, db: Database) -> Result<ExitCode> {
    let store = db.open().await?;
    let result = async {
        let org = find_org(&store, &Actor::new("cli:token"), &org, false).await?;
        let actor = Actor::new("cli:token").in_org(org.id);
        let (token, secret) = store
            .create_token(&actor, org.id, &name, role)
            .await
            .with_context(|| format!("creating a token in organization {:?}", org.key))?;
        eprintln!(
            "created token {:?} (id {}, role {}, prefix {}) in organization {}; \
             its secret follows on standard output and is not shown again",
            token.name, token.id, token.role, token.prefix, org.key
        );
        println!("{secret}");
        Ok(ExitCode::SUCCESS)
    }
    .await;
    store.pool().close().await;
    result
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
fn load(file: &Path) -> Result<Option<DefinitionFile>> {
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

fn entries(n: usize) -> String {
    if n == 1 {
        "1 entry".to_string()
    } else {
        format!("{n} entries")
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
