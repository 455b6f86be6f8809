//! The SDK's errors: one enum for building a client, one for a snapshot a
//! source served that was not accepted.

use std::path::PathBuf;

/// Why a snapshot was not accepted (the last good one stays in use).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The source could not be reached or answered with an error.
    #[error("cannot fetch the snapshot: {0}")]
    Fetch(String),
    /// A packed value (KV or directory source) is of a format version this
    /// package does not read.
    #[error(
        "packed snapshot format version {found} is not one this package reads (1 to {reads}); \
         upgrade the package"
    )]
    PackedVersion {
        /// The format version the value declares.
        found: u16,
        /// The newest this package reads (it reads 1 to this one).
        reads: u16,
    },
    /// A packed value (KV or directory source) holds no readable JSON
    /// document: none, cut short, or not UTF-8.
    #[error("cannot read the snapshot in the packed value: {0}")]
    Packed(String),
    /// The bytes are not a JSON object.
    #[error("the snapshot is not a JSON object: {0}")]
    NotJson(String),
    /// Published snapshots always carry a checksum; this one does not.
    #[error("the snapshot has no `checksum`")]
    MissingChecksum,
    /// The snapshot's schema is not the engine's.
    #[error("snapshot schema {found} is not the engine's {engine}; upgrade the package")]
    Schema {
        /// The snapshot's `schemaVersion`.
        found: String,
        /// The engine's.
        engine: u32,
    },
    /// The snapshot is for another environment.
    #[error("the snapshot is for environment {found:?}, not {expected:?}")]
    Environment {
        /// The snapshot's environment.
        found: String,
        /// The configured (or current) one.
        expected: String,
    },
    /// The snapshot is older than the one in use.
    #[error("snapshot version {found} is older than the current version {current}")]
    Older {
        /// The fetched version.
        found: u64,
        /// The version in use.
        current: u64,
    },
    /// The engine refused it (invalid flags, checksum mismatch…).
    #[error("the engine rejected the snapshot: {0}")]
    Rejected(String),
}

/// Errors of building or using a [`crate::Client`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SdkError {
    /// The options are inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The WASM engine could not be set up.
    #[cfg(feature = "wasm")]
    #[error(transparent)]
    Wasm(#[from] bunting_wasm_host::HostError),
    /// The bootstrap file could not be read.
    #[error("cannot read the bootstrap file {}: {source}", .path.display())]
    Bootstrap {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No snapshot is loaded yet (the source failed and no bootstrap file
    /// was given).
    #[error("no snapshot is loaded: {0}")]
    NotReady(String),
    /// A snapshot was refused.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// `track` was called with a name or value the ingest would refuse.
    #[error("invalid event: {0}")]
    InvalidEvent(String),
}
