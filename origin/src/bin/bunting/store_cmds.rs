//! The commands on the origin's store: `audit verify`, `sign-in-link`, and the
//! operator's forms of `audit export` and `token create` (`--database-url`). Each opens the store named by
//! `--database-url`, runs on a single-threaded runtime and closes the pool
//! before it returns.

use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use bunting_origin::serve::redact;
use bunting_origin::store::{Actor, AuditFault, AuditQuery, Store, StoreError};

use crate::args::{AuditExport, Database, SignInLink, TokenCreate};
use crate::output::entries;

impl Database {
    async fn open(&self) -> Result<Store> {
        Store::open(&self.database_url)
            .await
            .with_context(|| format!("opening the store {}", redact(&self.database_url)))
    }
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
pub(crate) async fn audit_export(a: AuditExport, database_url: String) -> Result<ExitCode> {
    let store = Database { database_url }.open().await?;
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

/// `bunting token create --database-url URL`: makes an API token directly
/// in the store, for bootstrapping an origin that has no administrator
/// token (recorded as actor `cli:token`).
pub(crate) async fn token_create(t: TokenCreate, database_url: String) -> Result<ExitCode> {
    let store = Database { database_url }.open().await?;
    let result = async {
        let org = match store.org_by_key(&t.org).await {
            Ok(org) => org,
            Err(StoreError::NotFound { .. }) => bail!("organization {:?} not found", t.org),
            Err(e) => return Err(e).with_context(|| format!("reading organization {:?}", t.org)),
        };
        let actor = Actor::new("cli:token").in_org(org.id);
        let (token, secret) = store
            .create_token(&actor, org.id, &t.name, t.role)
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

/// `bunting sign-in-link`: a new one-time sign-in link for the instance's
/// administrator, on standard output.
pub(crate) async fn sign_in_link(a: SignInLink) -> Result<ExitCode> {
    let store = a.db.open().await?;
    let ttl = std::time::Duration::from_secs(a.seconds);
    let result = bunting_origin::serve::sign_in_link(&store, &a.public_url, &a.email, ttl).await;
    store.pool().close().await;
    let link = result.context("making a sign-in link")?;
    eprintln!("sign in as {} once, within {} s, at:", a.email, a.seconds);
    println!("{link}");
    Ok(ExitCode::SUCCESS)
}
