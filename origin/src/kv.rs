//! The Cloudflare KV layout the edge worker reads, and writing it through
//! wrangler.
//!
//! | key | value |
//! |---|---|
//! | `snapshot:<env>` | the sealed snapshot JSON of environment `<env>`, or its packed form carrying that JSON (the default: [`crate::publish::KvFormat`]) |
//! | `snapshot-tables:<env>` | beside a packed `snapshot:<env>`, the same packed snapshot without its JSON text (what the edge worker checks every few seconds) |
//! | `sdk-key:<sha256 hex of the raw SDK key>` | `{"environment":"<env>","kind":"client"\|"server"}` |
//!
//! Only hashes of SDK keys are stored: the edge worker hashes the key a
//! client presents and looks it up. The layout and the hash are defined once,
//! in [`bunting_wire::kv`] (re-exported here), for the origin and the edge
//! alike; `docs/flags.md` documents them.

use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::process::{Command, ExitStatus};

pub use bunting_wire::kv::{
    KeyKind, MAX_KEY_BYTES, SDK_KEY_PREFIX, SNAPSHOT_PREFIX, TABLES_PREFIX, sdk_key_hash,
    sdk_key_key, sdk_key_key_for_hash, sdk_key_value, snapshot_key, tables_key,
};
use thiserror::Error;

/// The longest organization, project and environment key, in bytes.
///
/// The three make the edge's environment name `<org>/<project>/<env>`
/// (at most 3 × 64 + 2 = 194 bytes), which every publisher must be able to
/// store as part of a key:
///
/// - Cloudflare KV: `snapshot:<env>` is at most 9 + 194 = 203 bytes of
///   the [`MAX_KEY_BYTES`] = 512, `snapshot-tables:<env>` 16 + 194 = 210
///   (`sdk-key:<sha256 hex>` is 72);
/// - the directory publisher (`crate::publish::Directory`): the file name
///   is the percent-encoded key, `snapshot%3A<org>%2F<project>%2F<env>`
///   (keys are `A-Z a-z 0-9 - _ .`, which stay as they are), at most
///   11 + 194 + 4 = 209 bytes, and its temporary file adds 18, 227 of the
///   255 bytes a file name may have on ext4, XFS, APFS and NTFS.
///
/// Flag, segment, layer, metric and experiment keys (1–200 bytes) are not
/// part of any KV key.
pub const MAX_SCOPE_KEY_BYTES: usize = 64;

const _: () = assert!(SNAPSHOT_PREFIX.len() + 3 * MAX_SCOPE_KEY_BYTES + 2 <= MAX_KEY_BYTES);
const _: () = assert!(TABLES_PREFIX.len() + 3 * MAX_SCOPE_KEY_BYTES + 2 <= MAX_KEY_BYTES);

/// The wrangler command used when none is configured.
pub const DEFAULT_WRANGLER: &str = "npx wrangler";
/// The KV binding written when none is given (the edge worker's binding).
pub const DEFAULT_BINDING: &str = "FLAGS";

/// Whether `raw` is acceptable as an SDK key: non-empty, printable, no
/// whitespace.
pub fn valid_sdk_key(raw: &str) -> bool {
    !raw.is_empty() && raw.chars().all(|c| c.is_ascii_graphic())
}

/// Which KV namespace to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespace {
    /// A binding of the wrangler configuration (`--binding`).
    Binding(String),
    /// A namespace id (`--namespace-id`).
    Id(String),
}

/// Local (wrangler dev's storage) or remote (Cloudflare's) KV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// `--local`, optionally `--persist-to DIR` (as given to `wrangler dev`).
    Local {
        /// wrangler's local persistence directory, if not the default.
        persist_to: Option<PathBuf>,
    },
    /// `--remote`.
    Remote,
}

/// Where writes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The namespace.
    pub namespace: Namespace,
    /// Local or remote.
    pub storage: Storage,
    /// A wrangler configuration file (`--config`), if not the default.
    pub config: Option<PathBuf>,
}

/// A value to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutValue {
    /// Given on the command line.
    Inline(String),
    /// Read by wrangler from a file (`--path`).
    File(PathBuf),
}

/// One `wrangler kv key put`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Put {
    /// The key.
    pub key: String,
    /// The value.
    pub value: PutValue,
}

/// One change to KV: a [`Put`], or the deletion of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// `wrangler kv key put`.
    Put(Put),
    /// `wrangler kv key delete` of this key (success if it is not there).
    Delete(String),
}

impl Write {
    /// The key written or deleted.
    pub fn key(&self) -> &str {
        match self {
            Write::Put(put) => &put.key,
            Write::Delete(key) => key,
        }
    }
}

/// The writes publishing an environment makes, in order: the snapshot
/// (from `snapshot_file`) first, so a registered key never points at an
/// environment without a snapshot, then one registration per SDK key (raw
/// key and kind). A packed snapshot's tables alone (`tables_file`, see
/// [`tables_key`]) are put right after it; without them (a JSON text) the
/// tables key is deleted before it, so no edge worker keeps reading
/// tables older than the text.
pub fn publish_plan(
    env: &str,
    snapshot_file: PathBuf,
    tables_file: Option<PathBuf>,
    sdk_keys: &[(String, KeyKind)],
) -> Vec<Write> {
    let snapshot = Write::Put(Put {
        key: snapshot_key(env),
        value: PutValue::File(snapshot_file),
    });
    let mut writes = match tables_file {
        Some(file) => vec![
            snapshot,
            Write::Put(Put {
                key: tables_key(env),
                value: PutValue::File(file),
            }),
        ],
        None => vec![Write::Delete(tables_key(env)), snapshot],
    };
    writes.extend(sdk_keys.iter().map(|(raw, kind)| {
        Write::Put(Put {
            key: sdk_key_key(raw),
            value: PutValue::Inline(sdk_key_value(env, *kind)),
        })
    }));
    writes
}

/// Why a write failed.
#[derive(Debug, Error)]
pub enum KvError {
    /// The wrangler command is empty.
    #[error("the wrangler command is empty")]
    NoCommand,
    /// wrangler could not be started.
    #[error("could not run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The error.
        source: io::Error,
    },
    /// wrangler failed.
    #[error("`{command}` failed ({status})")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: ExitStatus,
    },
}

/// How to run wrangler: a program and leading arguments (`npx wrangler`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wrangler {
    program: String,
    args: Vec<String>,
}

impl Wrangler {
    /// A wrangler command from a command line split on whitespace, e.g.
    /// `npx wrangler` or `/path/to/fake-wrangler.sh`.
    pub fn from_command_line(line: &str) -> Result<Wrangler, KvError> {
        let mut words = line.split_whitespace().map(str::to_string);
        let program = words.next().ok_or(KvError::NoCommand)?;
        Ok(Wrangler {
            program,
            args: words.collect(),
        })
    }

    /// The arguments after the wrangler command for `put` to `target`:
    /// `kv key put KEY [VALUE] [--path FILE] --binding B|--namespace-id ID
    /// --local [--persist-to DIR]|--remote [--config FILE]`.
    pub fn put_args(put: &Put, target: &Target) -> Vec<OsString> {
        let mut a: Vec<OsString> = vec!["kv".into(), "key".into(), "put".into(), (&put.key).into()];
        match &put.value {
            PutValue::Inline(v) => a.push(v.into()),
            PutValue::File(p) => {
                a.push("--path".into());
                a.push(p.into());
            }
        }
        target_args(&mut a, target);
        a
    }

    /// The arguments after the wrangler command deleting `key` from
    /// `target`: `kv key delete KEY` and the target's options as in
    /// [`Wrangler::put_args`].
    ///
    /// ```
    /// use bunting_origin::kv::{Namespace, Storage, Target, Wrangler};
    /// let local = Target { namespace: Namespace::Binding("FLAGS".into()),
    ///     storage: Storage::Local { persist_to: None }, config: None };
    /// let args: Vec<String> = Wrangler::delete_args("sdk-key:ab", &local)
    ///     .into_iter().map(|a| a.into_string().unwrap()).collect();
    /// assert_eq!(args, ["kv", "key", "delete", "sdk-key:ab", "--binding", "FLAGS", "--local"]);
    /// ```
    pub fn delete_args(key: &str, target: &Target) -> Vec<OsString> {
        let mut a: Vec<OsString> = vec!["kv".into(), "key".into(), "delete".into(), key.into()];
        target_args(&mut a, target);
        a
    }

    /// The program to run and the arguments before wrangler's own, e.g.
    /// `("npx", ["wrangler"])`.
    ///
    /// ```
    /// let w = bunting_origin::kv::Wrangler::from_command_line("npx wrangler").unwrap();
    /// assert_eq!(w.command(), ("npx", &["wrangler".to_string()][..]));
    /// ```
    pub fn command(&self) -> (&str, &[String]) {
        (&self.program, &self.args)
    }

    /// The arguments after the wrangler command for `write` to `target`
    /// ([`Wrangler::put_args`] or [`Wrangler::delete_args`]).
    pub fn args(write: &Write, target: &Target) -> Vec<OsString> {
        match write {
            Write::Put(put) => Self::put_args(put, target),
            Write::Delete(key) => Self::delete_args(key, target),
        }
    }

    /// The whole command line of `write`, shell-quoted, for display.
    pub fn display(&self, write: &Write, target: &Target) -> String {
        std::iter::once(self.program.as_str().into())
            .chain(self.args.iter().map(OsString::from))
            .chain(Self::args(write, target))
            .map(|a| shell_quote(&a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs `write` (wrangler's output goes to ours).
    pub fn run(&self, write: &Write, target: &Target) -> Result<(), KvError> {
        let status = Command::new(&self.program)
            .args(&self.args)
            .args(Self::args(write, target))
            .status()
            .map_err(|source| KvError::Spawn {
                command: self.display(write, target),
                source,
            })?;
        if status.success() {
            Ok(())
        } else {
            Err(KvError::Failed {
                command: self.display(write, target),
                status,
            })
        }
    }
}

/// Quotes `s` for a POSIX shell when it needs it.
/// Appends the namespace, storage and configuration options of `target`.
fn target_args(a: &mut Vec<OsString>, target: &Target) {
    match &target.namespace {
        Namespace::Binding(b) => {
            a.push("--binding".into());
            a.push(b.into());
        }
        Namespace::Id(id) => {
            a.push("--namespace-id".into());
            a.push(id.into());
        }
    }
    match &target.storage {
        Storage::Local { persist_to } => {
            a.push("--local".into());
            if let Some(dir) = persist_to {
                a.push("--persist-to".into());
                a.push(dir.into());
            }
        }
        Storage::Remote => a.push("--remote".into()),
    }
    if let Some(config) = &target.config {
        a.push("--config".into());
        a.push(config.into());
    }
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    /// A put of `key` from `value`.
    fn put(key: &str, value: PutValue) -> Write {
        Write::Put(Put {
            key: key.into(),
            value,
        })
    }

    #[test]
    fn plans_snapshot_first_then_key_hashes() {
        let keys = [
            ("sk-live-1".to_string(), KeyKind::Client),
            ("sk-server-1".to_string(), KeyKind::Server),
        ];
        let registrations = [
            put(
                &format!("sdk-key:{}", sdk_key_hash("sk-live-1")),
                PutValue::Inline(r#"{"environment":"production","kind":"client"}"#.into()),
            ),
            put(
                &format!("sdk-key:{}", sdk_key_hash("sk-server-1")),
                PutValue::Inline(r#"{"environment":"production","kind":"server"}"#.into()),
            ),
        ];
        // Packed: the whole value, then its tables alone.
        let plan = publish_plan(
            "production",
            PathBuf::from("/tmp/s.bin"),
            Some(PathBuf::from("/tmp/t.bin")),
            &keys,
        );
        let mut expected = vec![
            put("snapshot:production", PutValue::File("/tmp/s.bin".into())),
            put(
                "snapshot-tables:production",
                PutValue::File("/tmp/t.bin".into()),
            ),
        ];
        expected.extend(registrations.iter().cloned());
        assert_eq!(plan, expected);
        // A JSON text: tables an earlier packed value left are deleted first.
        let plan = publish_plan("production", PathBuf::from("/tmp/s.json"), None, &keys);
        let mut expected = vec![
            Write::Delete("snapshot-tables:production".into()),
            put("snapshot:production", PutValue::File("/tmp/s.json".into())),
        ];
        expected.extend(registrations.iter().cloned());
        assert_eq!(plan, expected);
        assert_eq!(plan[0].key(), "snapshot-tables:production");
    }

    #[test]
    fn wrangler_arguments_follow_wrangler_4() {
        let put = Put {
            key: "snapshot:dev".into(),
            value: PutValue::File("/tmp/s.json".into()),
        };
        let local = Target {
            namespace: Namespace::Binding("FLAGS".into()),
            storage: Storage::Local { persist_to: None },
            config: None,
        };
        assert_eq!(
            strings(Wrangler::put_args(&put, &local)),
            [
                "kv",
                "key",
                "put",
                "snapshot:dev",
                "--path",
                "/tmp/s.json",
                "--binding",
                "FLAGS",
                "--local"
            ]
        );
        let remote = Target {
            namespace: Namespace::Id("0f2ac74b498b48028cb68387c421e279".into()),
            storage: Storage::Remote,
            config: Some("wrangler.toml".into()),
        };
        let key = Put {
            key: "sdk-key:ab".into(),
            value: PutValue::Inline(r#"{"environment":"dev"}"#.into()),
        };
        assert_eq!(
            strings(Wrangler::put_args(&key, &remote)),
            [
                "kv",
                "key",
                "put",
                "sdk-key:ab",
                r#"{"environment":"dev"}"#,
                "--namespace-id",
                "0f2ac74b498b48028cb68387c421e279",
                "--remote",
                "--config",
                "wrangler.toml"
            ]
        );
        let w = Wrangler::from_command_line("npx wrangler").unwrap();
        assert_eq!(
            w.display(&Write::Delete("snapshot-tables:dev".into()), &remote),
            "npx wrangler kv key delete snapshot-tables:dev --namespace-id \
             0f2ac74b498b48028cb68387c421e279 --remote --config wrangler.toml"
        );
        assert_eq!(
            w.display(&Write::Put(key), &remote),
            r#"npx wrangler kv key put sdk-key:ab '{"environment":"dev"}' --namespace-id 0f2ac74b498b48028cb68387c421e279 --remote --config wrangler.toml"#
        );
        assert!(matches!(
            Wrangler::from_command_line("  "),
            Err(KvError::NoCommand)
        ));
    }

    #[test]
    fn sdk_keys_must_be_printable_without_spaces() {
        assert!(valid_sdk_key("bnt_live_3f9a"));
        assert!(!valid_sdk_key(""));
        assert!(!valid_sdk_key("a b"));
    }
}
