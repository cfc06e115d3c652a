//! Key transparency: the server's akd directory of every account's keys.
//!
//! [`service::KeyDirectory`] runs the directory: it publishes an epoch after
//! account changes (batched), signs every epoch root, and answers lookup,
//! key-history and append-only (audit) proofs. [`storage::KtDatabase`] is
//! akd's `Database` trait on the server's own [`crate::store::Store`], so the
//! directory lives in the same SQLite or PostgreSQL database as everything
//! else. `docs/key-transparency.md` is the threat model.

pub mod batch;
#[cfg(feature = "fault-injection")]
pub mod faults;
pub mod service;
pub mod storage;

pub use service::KeyDirectory;

use thiserror::Error;

use crate::store::StoreError;

/// Why a directory operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KtError {
    /// The username has never been in the directory.
    #[error("{0} is not in the key directory")]
    UnknownUser(String),
    /// No root was published for this epoch.
    #[error("epoch {0} has not been published")]
    NoSuchEpoch(u64),
    /// An audit range that is empty or past the newest epoch.
    #[error(
        "no audit proof from epoch {from} to {to}: the newest epoch is {latest} and from must be below to"
    )]
    BadRange {
        /// Older epoch asked for.
        from: u64,
        /// Newer epoch asked for.
        to: u64,
        /// The newest epoch.
        latest: u64,
    },
    /// The server's storage failed.
    #[error(transparent)]
    Store(StoreError),
    /// akd failed.
    #[error("key directory: {0}")]
    Directory(String),
}
