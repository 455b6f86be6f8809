//! wrangler's local KV (what `wrangler dev` reads).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;

use super::{BoxFuture, PublishError, Publisher};
use crate::kv::{self, Namespace, Put, PutValue, Storage, Target, Wrangler};

/// Writes the local KV of `wrangler dev` by running
/// `wrangler kv key put KEY --path FILE --binding FLAGS --local [--persist-to DIR]`
/// and `wrangler kv key delete KEY …` (through [`kv::Wrangler`]). Run it from
/// (or set [`WranglerLocal::cwd`] to) the directory holding `wrangler.toml`,
/// which resolves the binding; `persist_to` must match `wrangler dev
/// --persist-to` when that is given.
///
/// ```
/// use bunting_origin::kv::Wrangler;
/// use bunting_origin::publish::{Publisher, WranglerLocal};
/// let w = WranglerLocal::new(Wrangler::from_command_line("npx wrangler").unwrap(), None, None);
/// assert_eq!(w.name(), "wrangler-local");
/// ```
#[derive(Debug, Clone)]
pub struct WranglerLocal {
    /// The wrangler command.
    pub wrangler: Wrangler,
    /// Namespace, storage (local) and configuration file.
    pub target: Target,
    /// The working directory of wrangler (default: the process's).
    pub cwd: Option<PathBuf>,
    name: String,
}

impl WranglerLocal {
    /// A publisher named `wrangler-local` writing the `FLAGS` binding's
    /// local KV (in `persist_to`, or wrangler's default `.wrangler/state`),
    /// with wrangler configuration `config` (`--config`; default: wrangler
    /// finds `wrangler.toml`).
    pub fn new(
        wrangler: Wrangler,
        persist_to: Option<PathBuf>,
        config: Option<PathBuf>,
    ) -> WranglerLocal {
        WranglerLocal {
            wrangler,
            target: Target {
                namespace: Namespace::Binding(kv::DEFAULT_BINDING.into()),
                storage: Storage::Local { persist_to },
                config,
            },
            cwd: None,
            name: "wrangler-local".into(),
        }
    }

    /// The same run in directory `cwd`.
    pub fn in_dir(mut self, cwd: impl Into<PathBuf>) -> WranglerLocal {
        self.cwd = Some(cwd.into());
        self
    }

    /// The same under another target name.
    pub fn named(mut self, name: impl Into<String>) -> WranglerLocal {
        self.name = name.into();
        self
    }

    async fn run(&self, args: Vec<OsString>) -> Result<(), PublishError> {
        let (program, leading) = self.wrangler.command();
        let command = std::iter::once(program.to_string())
            .chain(leading.iter().cloned())
            .chain(args.iter().map(|a| a.to_string_lossy().into_owned()))
            .collect::<Vec<_>>()
            .join(" ");
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(leading)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        let out = cmd.output().await.map_err(|source| kv::KvError::Spawn {
            command: command.clone(),
            source,
        })?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: String = stderr
            .trim()
            .chars()
            .rev()
            .take(500)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        Err(PublishError::Command {
            command,
            status: out.status,
            stderr: tail,
        })
    }
}

impl Publisher for WranglerLocal {
    fn name(&self) -> &str {
        &self.name
    }

    fn put<'a>(&'a self, key: &'a str, value: &'a [u8]) -> BoxFuture<'a, Result<(), PublishError>> {
        Box::pin(async move {
            // The value goes through a file: snapshots are too big for argv.
            let mut b = [0u8; 8];
            getrandom::fill(&mut b).map_err(|e| PublishError::Other(e.to_string()))?;
            let file = std::env::temp_dir().join(format!("bunting-kv-{}.json", hex::encode(b)));
            tokio::fs::write(&file, value)
                .await
                .map_err(|source| PublishError::Io {
                    path: file.clone(),
                    source,
                })?;
            let put = Put {
                key: key.to_string(),
                value: PutValue::File(file.clone()),
            };
            let result = self.run(Wrangler::put_args(&put, &self.target)).await;
            let _ = tokio::fs::remove_file(&file).await;
            result
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), PublishError>> {
        Box::pin(async move { self.run(Wrangler::delete_args(key, &self.target)).await })
    }

    fn splits_tables(&self) -> bool {
        true
    }
}
