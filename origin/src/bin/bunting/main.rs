//! `bunting`: the command-line tool of the origin.
//!
//! ```text
//! bunting validate FILE
//! bunting snapshot FILE --env ENV [-o OUT] [--version N] [--generated-at TIME] [--pretty] [--packed]
//! bunting pack SNAPSHOT.json [-o OUT]
//! bunting publish FILE --env ENV (--local | --remote) [--binding NAME | --namespace-id ID]
//!                 [--version N] [--sdk-key KEY ...] [--server-sdk-key KEY ...]
//!                 [--wrangler CMD] [--dry-run]
//!
//! bunting apply FILE --org ORG --project PROJECT [--plan] [--prune] [--expected-base BASE]
//! bunting import FILE --org ORG --project PROJECT [--create]
//! bunting export --org ORG --project PROJECT [-o FILE] [--format yaml|json]
//! bunting audit verify
//! bunting audit export --org ORG [--entity-type T] [--actor A] [--from T] [--until T] [-o FILE]
//!                      [--database-url URL]
//! bunting token create --org ORG --role viewer|editor|publisher|admin --name NAME [--database-url URL]
//! bunting serve [OPTIONS]
//! ```
//!
//! `validate`, `snapshot` and `publish` work on a definition file alone;
//! `pack` writes a snapshot in the packed form the edge also loads.
//! `apply`, `import`, `export`, `token create` and `experiment results`
//! work through the origin's HTTP API (`--url` or `BUNTING_URL`, default `http://127.0.0.1:8080`; `--token` or
//! `BUNTING_TOKEN`): `apply --plan` prints what applying a definition file
//! would create, change and delete, `apply` applies it (`--prune` deletes
//! what the file no longer holds), `import` is `apply` without deleting,
//! `export` writes a project back as a definition file, and `token create`
//! makes an API token (`--database-url URL` writes it into the store
//! instead, to bootstrap an origin without an administrator token), and
//! `experiment results` prints an experiment's results table, and `audit
//! export` writes an organization's audit log (`--database-url URL` reads
//! the store instead, every organization's). `audit verify` works on the
//! origin's store
//! ([`bunting_origin::store`]) named by `--database-url` (or
//! `BUNTING_DATABASE_URL`; default `sqlite://bunting.db`, a file in the
//! working directory): it checks the hash-chained audit log. `serve` runs the origin service ([`bunting_origin::serve`]).
//!
//! See `docs/flags.md`. Exit status: 0 on success, 1 when the file has
//! problems, a step fails or the audit log does not verify, 2 on a usage
//! error, and for `apply --plan` 2 when applying would change the project.
//! Results go to standard output (a token's secret, alone); progress and
//! errors to standard error.

mod api_cmds;
mod args;
mod file_cmds;
mod output;
mod pack_cmd;
mod store_cmds;

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

use args::{AuditCommand, Cli, Command, ExperimentCommand, TokenCommand};

/// mimalloc rather than the system allocator: event ingestion allocates
/// and frees a few short strings per event on several threads (issue 16,
/// ingest bench over HTTP on PostgreSQL: ≈ 0.15 µs less of the origin's
/// CPU per event, parse + validate ≈ 22 % faster).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        Command::Validate { file } => file_cmds::validate(&file),
        Command::Snapshot {
            file,
            env,
            output,
            meta,
            pretty,
            packed,
        } => file_cmds::snapshot_cmd(&file, &env, output, &meta, pretty, packed),
        Command::Pack {
            file,
            output,
            allow_problems,
            format_version,
            tables_output,
        } => pack_cmd::pack(
            &file,
            (output, tables_output),
            allow_problems,
            format_version,
        ),
        Command::Publish(p) => file_cmds::publish(p),
        Command::Apply(a) => block_on(api_cmds::apply(a)),
        Command::Import(i) => block_on(api_cmds::import(i)),
        Command::Export(e) => block_on(api_cmds::export(e)),
        Command::Audit {
            command: AuditCommand::Verify { db },
        } => block_on(store_cmds::audit_verify(db)),
        Command::Audit {
            command: AuditCommand::Export(mut a),
        } => match a.database_url.take() {
            Some(url) => block_on(store_cmds::audit_export(a, url)),
            None => block_on(api_cmds::audit_export(a)),
        },
        Command::Token {
            command: TokenCommand::Create(mut t),
        } => match t.database_url.take() {
            Some(url) => block_on(store_cmds::token_create(t, url)),
            None => block_on(api_cmds::token_create(t)),
        },
        Command::Experiment {
            command: ExperimentCommand::Results(a),
        } => block_on(api_cmds::experiment_results(a)),
        Command::SignInLink(a) => block_on(store_cmds::sign_in_link(a)),
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
