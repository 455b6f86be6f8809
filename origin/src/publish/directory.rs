//! A directory of files, one per KV key (for hosts that load snapshots from
//! disk, such as a wasmtime host).

use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;

use super::{BoxFuture, PublishError, Publisher, encode_key};

/// Writes each key to the file `<root>/<percent-encoded key>` (see
/// [`encode_key`]): `snapshot%3Aacme%2Fweb%2Fproduction`,
/// `sdk-key%3A<sha256>`. A put writes a temporary file in `root` and
/// renames it over the old one, so readers see the old or the new value,
/// never a mix; a delete removes the file.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use bunting_origin::publish::{Directory, Publisher};
/// let root = std::env::temp_dir().join(format!("bunting-dir-doc-{}", std::process::id()));
/// let dir = Directory::new(&root);
/// dir.put("snapshot:a/b/c", b"{}").await.unwrap();
/// assert_eq!(std::fs::read(dir.path("snapshot:a/b/c")).unwrap(), b"{}");
/// dir.delete("snapshot:a/b/c").await.unwrap();
/// assert!(!dir.path("snapshot:a/b/c").exists());
/// dir.delete("snapshot:a/b/c").await.unwrap(); // already gone: fine
/// # std::fs::remove_dir_all(&root).unwrap();
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct Directory {
    /// The directory (created on the first put).
    pub root: PathBuf,
    name: String,
}

impl Directory {
    /// A publisher named `directory` writing into `root`.
    pub fn new(root: impl AsRef<Path>) -> Directory {
        Directory {
            root: root.as_ref().to_path_buf(),
            name: "directory".into(),
        }
    }

    /// The same under another target name.
    pub fn named(mut self, name: impl Into<String>) -> Directory {
        self.name = name.into();
        self
    }

    /// The file holding `key`.
    pub fn path(&self, key: &str) -> PathBuf {
        self.root.join(encode_key(key))
    }
}

/// The longest file name, in bytes, of the file systems a host would use
/// (ext4, XFS, Btrfs, APFS; NTFS counts 255 UTF-16 units).
pub(super) const MAX_FILE_NAME_BYTES: usize = 255;

/// What the temporary file of a put adds to the name: `.tmp-<12 hex>-`.
const TMP_PREFIX_BYTES: usize = 18;

// Every environment's snapshot fits (see `kv::MAX_SCOPE_KEY_BYTES`): keys
// stay as they are, `snapshot:` becomes `snapshot%3A`, each `/` `%2F`.
const _: () = assert!(
    TMP_PREFIX_BYTES + "snapshot%3A".len() + 3 * crate::kv::MAX_SCOPE_KEY_BYTES + 2 * 3
        <= MAX_FILE_NAME_BYTES
);

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PublishError + '_ {
    move |source| PublishError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Publisher for Directory {
    fn name(&self) -> &str {
        &self.name
    }

    fn put<'a>(&'a self, key: &'a str, value: &'a [u8]) -> BoxFuture<'a, Result<(), PublishError>> {
        Box::pin(async move {
            tokio::fs::create_dir_all(&self.root)
                .await
                .map_err(io(&self.root))?;
            let name = encode_key(key);
            if TMP_PREFIX_BYTES + name.len() > MAX_FILE_NAME_BYTES {
                return Err(PublishError::Unstorable {
                    key: key.to_string(),
                    reason: format!(
                        "its file name would be {} bytes, and file names have at most {MAX_FILE_NAME_BYTES} \
                         (with the {TMP_PREFIX_BYTES} of the temporary file's)",
                        name.len()
                    ),
                });
            }
            let path = self.root.join(&name);
            let mut b = [0u8; 6];
            getrandom::fill(&mut b).map_err(|e| PublishError::Other(e.to_string()))?;
            // A dot file: readers listing the directory skip it.
            let tmp = self.root.join(format!(".tmp-{}-{name}", hex::encode(b)));
            let written = async {
                let mut f = tokio::fs::File::create(&tmp).await?;
                f.write_all(value).await?;
                // On disk before the rename makes it visible.
                f.sync_all().await
            };
            if let Err(e) = written.await {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(io(&tmp)(e));
            }
            if let Err(e) = tokio::fs::rename(&tmp, &path).await {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(io(&path)(e));
            }
            Ok(())
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), PublishError>> {
        Box::pin(async move {
            if encode_key(key).len() > MAX_FILE_NAME_BYTES {
                return Ok(()); // no such file can exist
            }
            let path = self.path(key);
            match tokio::fs::remove_file(&path).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io(&path)(e)),
            }
        })
    }
}
