//! The commands on the origin's store: `import`, `export`, `audit verify`,
//! `audit export`, `token create` and `experiment results`. Each opens the
//! store named by `--database-url`, runs on a single-threaded runtime and
//! closes the pool before it returns.

use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use bunting_origin::serve::redact;
use bunting_origin::store::{Actor, AuditFault, AuditQuery, Role, Store, StoreError};

use crate::args::{AuditExport, Database, ExperimentResultsArgs, Export, Format, Import};
use crate::file_cmds::load;
use crate::output::{entries, plural, write_atomically};

impl Database {
    async fn open(&self) -> Result<Store> {
        Store::open(&self.database_url)
            .await
            .with_context(|| format!("opening the store {}", redact(&self.database_url)))
    }
}

/// `bunting experiment results`: the results table of one experiment.
pub(crate) async fn experiment_results(a: ExperimentResultsArgs) -> Result<ExitCode> {
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
    let (metrics, data) = store
        .results_data(project.id, &x)
        .await
        .with_context(|| format!("computing the results of {:?}", a.key))?;
    let r = bunting_origin::results::assemble(&bunting_origin::results::Input {
        experiment: &x,
        metrics: &metrics,
        data: &data,
    });
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

/// `bunting import`: applies a definition file to a project.
pub(crate) async fn import(i: Import) -> Result<ExitCode> {
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

/// `bunting export`: writes a project as a definition file.
pub(crate) async fn export(e: Export) -> Result<ExitCode> {
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

/// `bunting audit verify`: checks the audit log's hash chain.
pub(crate) async fn audit_verify(db: Database) -> Result<ExitCode> {
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

/// `bunting audit export`: writes audit entries as JSON lines.
pub(crate) async fn audit_export(a: AuditExport) -> Result<ExitCode> {
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

/// `bunting token create`: makes an API token in the store.
pub(crate) async fn token_create(
    org: String,
    role: Role,
    name: String,
    db: Database,
) -> Result<ExitCode> {
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
