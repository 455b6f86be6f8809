//! The command line: every subcommand and option (clap). The doc comments
//! are the help text.

use std::path::PathBuf;

use bunting_origin::kv;
use bunting_origin::publish::KvFormat;
use bunting_origin::serve::DEFAULT_DATABASE;
use bunting_origin::store::Role;
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "bunting",
    version,
    about = "bunting's origin tool: check flag definitions, build snapshots, publish them to Cloudflare KV, \
             keep a project of the origin in git through its API (plan, apply, export), check its audit log, \
             run the origin service",
    long_about = None
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

// Parsed once per process: the size of the `serve` options does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub(crate) enum Command {
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
        /// Write the packed binary form instead (as `pack` writes it),
        /// the JSON text carried inside.
        #[arg(long)]
        packed: bool,
    },
    /// Write a snapshot (the JSON `snapshot` writes) in its packed binary
    /// form, which the edge loads from KV `snapshot:<env>` faster than the
    /// JSON; the JSON text is carried inside, verbatim. A snapshot with
    /// problems (a checksum that does not match is one) is refused.
    Pack {
        /// The snapshot's JSON document.
        file: PathBuf,
        /// Where to write the packed bytes; standard output when omitted.
        #[arg(short, long, value_name = "OUT")]
        output: Option<PathBuf>,
        /// Pack a snapshot with problems too (printed as warnings): for
        /// tests of how the edge serves one, never for publishing.
        #[arg(long, hide = true)]
        allow_problems: bool,
        /// The packed format version: 2 (conditions precompiled, what
        /// current edge workers read) or 1 (for workers from before it).
        #[arg(long, value_name = "N", default_value_t = bunting_core::packed::FORMAT_VERSION,
              value_parser = clap::value_parser!(u16).range(1..=2))]
        format_version: u16,
        /// Also write the same snapshot without its JSON text here: the
        /// `snapshot-tables:<env>` value edge workers check every few
        /// seconds, for publishing through your own tooling (put it after
        /// `snapshot:<env>`).
        #[arg(long, value_name = "FILE")]
        tables_output: Option<PathBuf>,
    },
    /// Build one environment's snapshot and write it, and SDK-key
    /// registrations, into Cloudflare KV through `wrangler kv key put`.
    Publish(Publish),
    /// GitOps through the origin's API: show what applying a definition
    /// file to a project would create, change and delete (`--plan`; exit 0
    /// without a difference, 2 with one), or apply it. `--prune` deletes
    /// the flags, segments and layers the file no longer holds.
    Apply(Apply),
    /// Apply a definition file to a project through the origin's API:
    /// create what is missing, update what differs, delete nothing
    /// (`apply` without `--prune`). Importing the same file again changes
    /// nothing.
    Import(Import),
    /// Write a project as a definition file (YAML or JSON), read through the
    /// origin's API, which `validate` accepts and `apply` applies back.
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
    /// Print a new one-time sign-in link for the instance's administrator
    /// (as `bunting serve` does at start), valid on every origin of the
    /// store.
    SignInLink(SignInLink),
    /// Experiments, through the origin's API.
    Experiment {
        #[command(subcommand)]
        command: ExperimentCommand,
    },
}

#[derive(Subcommand)]
pub(crate) enum ExperimentCommand {
    /// Print an experiment's results as a table: per metric and arm the
    /// users, value, relative lift [95% CI], fixed-horizon and sequential
    /// p-values and the chance to beat control; then the sample-ratio check
    /// and every warning.
    Results(ExperimentResultsArgs),
}

#[derive(Args)]
pub(crate) struct ExperimentResultsArgs {
    /// The experiment's key.
    pub(crate) key: String,
    /// The organization's key.
    #[arg(long)]
    pub(crate) org: String,
    /// The project's key.
    #[arg(long)]
    pub(crate) project: String,
    /// The environment's key.
    #[arg(long)]
    pub(crate) env: String,
    #[command(flatten)]
    pub(crate) remote: Remote,
}

#[derive(Args)]
pub(crate) struct Database {
    /// The store: `sqlite://FILE`, a file path, `sqlite::memory:` or
    /// `postgres://…`.
    #[arg(
        long,
        value_name = "URL",
        env = "BUNTING_DATABASE_URL",
        hide_env_values = true,
        default_value = DEFAULT_DATABASE
    )]
    pub(crate) database_url: String,
}

/// Where the origin's API is and the token to call it with.
#[derive(Args)]
pub(crate) struct Remote {
    /// The origin's base URL (the API is under `/api/v1`).
    #[arg(
        long,
        value_name = "URL",
        env = "BUNTING_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub(crate) url: String,
    /// An API token of the organization (or the administrator token).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "BUNTING_TOKEN",
        hide_env_values = true
    )]
    pub(crate) token: Option<String>,
}

#[derive(Args)]
pub(crate) struct Apply {
    /// The definition file (YAML, or JSON by its `.json` extension).
    pub(crate) file: PathBuf,
    /// The organization's key.
    #[arg(long)]
    pub(crate) org: String,
    /// The project's key.
    #[arg(long)]
    pub(crate) project: String,
    /// Only print the plan: exit 0 when the project matches the file, 2
    /// when applying would change it, 1 on an error.
    #[arg(long)]
    pub(crate) plan: bool,
    /// Delete the flags, layers and segments (of the file's environments)
    /// that the file does not hold. Environments are never deleted.
    #[arg(long)]
    pub(crate) prune: bool,
    /// Apply only if the project is still in the state a plan reported
    /// (its `base`); refused otherwise.
    #[arg(long, value_name = "BASE", conflicts_with = "plan")]
    pub(crate) expected_base: Option<String>,
    #[command(flatten)]
    pub(crate) remote: Remote,
}

#[derive(Args)]
pub(crate) struct Import {
    /// The definition file (YAML, or JSON by its `.json` extension).
    pub(crate) file: PathBuf,
    /// The organization's key.
    #[arg(long)]
    pub(crate) org: String,
    /// The project's key.
    #[arg(long)]
    pub(crate) project: String,
    /// Create the organization (the administrator token only) and the
    /// project when they do not exist.
    #[arg(long)]
    pub(crate) create: bool,
    #[command(flatten)]
    pub(crate) remote: Remote,
}

#[derive(Args)]
pub(crate) struct Export {
    /// The organization's key.
    #[arg(long)]
    pub(crate) org: String,
    /// The project's key.
    #[arg(long)]
    pub(crate) project: String,
    /// Where to write the file; standard output when omitted.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// The format [default: json for an output file ending in `.json`, yaml
    /// otherwise].
    #[arg(long, value_enum)]
    pub(crate) format: Option<Format>,
    #[command(flatten)]
    pub(crate) remote: Remote,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Yaml,
    Json,
}

#[derive(Subcommand)]
pub(crate) enum AuditCommand {
    /// Check the hash chain: prints `ok: N entries, head HASH` (exit 0), or
    /// the first bad entry's sequence number and what is wrong (exit 1).
    Verify {
        #[command(flatten)]
        db: Database,
    },
    /// Write audit entries as JSON lines, oldest first: an organization's
    /// through the API (`--org`, an admin token), or with `--database-url`
    /// straight from the store.
    Export(AuditExport),
}

#[derive(Args)]
pub(crate) struct AuditExport {
    /// Only entries of this organization (by key).
    #[arg(long)]
    pub(crate) org: Option<String>,
    /// Only entries about this entity type (`flag`, `flagConfig`,
    /// `segment`, `environment`, `project`, `organization`, `layer`,
    /// `token`, `sdkKey`).
    #[arg(long, value_name = "T")]
    pub(crate) entity_type: Option<String>,
    /// Only entries by this actor.
    #[arg(long, value_name = "A")]
    pub(crate) actor: Option<String>,
    /// Entries at or after this time (UTC, `2026-11-25T10:00:00Z` or any
    /// prefix of it, e.g. `2026-11-25`).
    #[arg(long, value_name = "T")]
    pub(crate) from: Option<String>,
    /// Entries strictly before this time (same format).
    #[arg(long, value_name = "T")]
    pub(crate) until: Option<String>,
    /// Where to write; standard output when omitted.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Read this store directly (`sqlite://FILE`, `postgres://…`) instead of
    /// calling the API: the operator's export, of every organization when
    /// `--org` is not given. Only this flag selects it (not
    /// `BUNTING_DATABASE_URL`); `--url` and `--token` are then unused.
    #[arg(long, value_name = "URL")]
    pub(crate) database_url: Option<String>,
    #[command(flatten)]
    pub(crate) remote: Remote,
}

#[derive(Subcommand)]
pub(crate) enum TokenCommand {
    /// Make an API token of an organization through the origin's API
    /// (with an admin token of the organization, or the administrator
    /// token), or with `--database-url` directly in the store (bootstrap).
    /// Prints the secret, once, on standard output.
    Create(TokenCreate),
}

#[derive(Args)]
pub(crate) struct TokenCreate {
    /// The organization's key.
    #[arg(long)]
    pub(crate) org: String,
    /// The role: viewer, editor, publisher or admin.
    #[arg(long, value_parser = parse_role)]
    pub(crate) role: Role,
    /// A label for the token.
    #[arg(long)]
    pub(crate) name: String,
    /// Bootstrap: write the token directly into this store (`sqlite://FILE`,
    /// `postgres://…`) instead of calling the API, for an origin without an
    /// administrator token. Only this flag selects it (not
    /// `BUNTING_DATABASE_URL`); `--url` and `--token` are then unused.
    #[arg(long, value_name = "URL")]
    pub(crate) database_url: Option<String>,
    #[command(flatten)]
    pub(crate) remote: Remote,
}

fn parse_role(s: &str) -> std::result::Result<Role, String> {
    s.parse()
}

#[derive(Args)]
pub(crate) struct Meta {
    /// The snapshot version (monotonic per environment). Default: 1 for
    /// `snapshot`, the current Unix time in seconds for `publish`.
    #[arg(long, value_name = "N")]
    pub(crate) version: Option<u64>,
    /// The snapshot's generation time, RFC 3339. Default: now.
    #[arg(long, value_name = "TIME")]
    pub(crate) generated_at: Option<String>,
}

#[derive(Args)]
pub(crate) struct Publish {
    /// The definition file.
    pub(crate) file: PathBuf,
    /// The environment to publish.
    #[arg(long)]
    pub(crate) env: String,
    #[command(flatten)]
    pub(crate) storage: StorageArgs,
    /// The KV binding of the wrangler configuration to write [default: FLAGS].
    #[arg(long, value_name = "NAME", conflicts_with = "namespace_id")]
    pub(crate) binding: Option<String>,
    /// The KV namespace id to write, instead of a binding.
    #[arg(long, value_name = "ID")]
    pub(crate) namespace_id: Option<String>,
    #[command(flatten)]
    pub(crate) meta: Meta,
    /// Register a client SDK key for the environment (repeatable): it
    /// evaluates through OFREP. Only its SHA-256 is stored.
    #[arg(long = "sdk-key", value_name = "KEY")]
    pub(crate) sdk_keys: Vec<String>,
    /// Register a server SDK key for the environment (repeatable): it
    /// evaluates through OFREP and may also download the whole snapshot
    /// (`GET /sdk/v1/snapshot`). Only its SHA-256 is stored.
    #[arg(long = "server-sdk-key", value_name = "KEY")]
    pub(crate) server_sdk_keys: Vec<String>,
    /// The wrangler command, split on whitespace.
    #[arg(long, value_name = "CMD", env = "BUNTING_WRANGLER", default_value = kv::DEFAULT_WRANGLER)]
    pub(crate) wrangler: String,
    /// Local persistence directory (as given to `wrangler dev --persist-to`).
    #[arg(long, value_name = "DIR", requires = "local")]
    pub(crate) persist_to: Option<PathBuf>,
    /// The wrangler configuration file (wrangler's `--config`).
    #[arg(long, value_name = "FILE")]
    pub(crate) wrangler_config: Option<PathBuf>,
    /// The form of the `snapshot:<env>` value: `packed` (the packed binary
    /// form `pack` writes, with the JSON text inside, which the edge loads
    /// about twice as fast for a new version's first request) or `json`
    /// (the JSON text itself, for an edge worker or server SDK from before
    /// packed values: those refuse packed values and keep their last
    /// snapshot; a current edge worker reads it only when built with its
    /// `json-snapshots` feature), or `packed-v1` (the packed form's
    /// version 1, for workers from before version 2, whose precompiled
    /// conditions spare the worker the rule parser).
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = KvFormat::Packed)]
    pub(crate) kv_format: KvFormat,
    /// `--kv-format packed`, the default (the flag of earlier releases).
    #[arg(long, hide = true, conflicts_with = "kv_format")]
    pub(crate) packed: bool,
    /// Print the wrangler commands without running them.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

#[derive(Args)]
#[group(required = true, multiple = false)]
pub(crate) struct StorageArgs {
    /// Write wrangler's local KV (what `wrangler dev` reads).
    #[arg(long)]
    pub(crate) local: bool,
    /// Write Cloudflare's KV (what a deployed worker reads).
    #[arg(long)]
    pub(crate) remote: bool,
}

#[derive(Args)]
pub(crate) struct SignInLink {
    #[command(flatten)]
    pub(crate) db: Database,
    /// The origin's public URL, as browsers reach it.
    #[arg(
        long,
        env = "BUNTING_PUBLIC_URL",
        value_name = "URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub(crate) public_url: String,
    /// The administrator's e-mail.
    #[arg(
        long,
        env = "BUNTING_BOOTSTRAP_EMAIL",
        value_name = "EMAIL",
        default_value = bunting_origin::api::session::DEFAULT_BOOTSTRAP_EMAIL
    )]
    pub(crate) email: String,
    /// How long the link works, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 900)]
    pub(crate) seconds: u64,
}
