//! Errors of the storage layer. Each says what happened and where, so the
//! operator paged at 3 a.m. can act on the message alone.

use crate::record::BatchError;
use crate::types::Offset;
use std::fmt;
use std::io;
use std::path::PathBuf;

#[derive(Debug)]
#[non_exhaustive]
pub enum StorageError {
    /// A read or lookup below the log start or past the end.
    OffsetOutOfRange {
        requested: Offset,
        start: Offset,
        end: Offset,
    },
    /// Batch `index` (0-based) of an append is invalid; nothing of the
    /// append was stored.
    InvalidBatch { index: usize, error: BatchError },
    /// An append with no bytes.
    EmptyAppend,
    /// Stored data failed validation when read back.
    Corrupt {
        file: PathBuf,
        position: u64,
        reason: String,
    },
    /// The operating system refused an operation.
    Io {
        op: &'static str,
        path: PathBuf,
        error: io::Error,
    },
    /// A write or sync failed earlier; the log accepts nothing until it is
    /// reopened (and recovered).
    Failed { reason: String },
    /// The file system is full (`ENOSPC`, or the quota is used up). The
    /// appends in flight failed; the log cuts its tail back to what was
    /// acknowledged and takes appends again once space is freed, without a
    /// reopen.
    DiskFull { reason: String },
    /// The log was closed.
    Closed,
    /// The configuration is invalid.
    Config(String),
    /// An idempotent producer's batch is out of sequence or fenced; nothing
    /// of the append was stored.
    Producer(super::producers::ProducerError),
    /// A replica append's batch does not start where the log (or the batch
    /// before it) ends; nothing of the append was stored.
    ReplicaOffsetMismatch { expected: Offset, got: Offset },
    /// A truncation below the log start offset.
    TruncateBelowStart { requested: Offset, start: Offset },
    /// Records waiting to become durable (up to `offset`) were cut by a
    /// truncation to `cut_to` (a replica dropping its divergent tail).
    Truncated { offset: Offset, cut_to: Offset },
    /// A leader epoch below 0 or below the newest the log holds.
    InvalidLeaderEpoch { epoch: i32, latest: Option<i32> },
}

impl StorageError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, error: io::Error) -> Self {
        StorageError::Io {
            op,
            path: path.into(),
            error,
        }
    }

    /// A failed write or sync, described by `what`: [`StorageError::DiskFull`]
    /// when the file system is out of space, else [`StorageError::Failed`].
    pub(crate) fn write_failed(what: impl fmt::Display, error: &io::Error) -> Self {
        let what = what.to_string();
        let reason = if what.is_empty() {
            error.to_string()
        } else {
            format!("{what}: {error}")
        };
        if super::io::is_no_space(error) {
            StorageError::DiskFull { reason }
        } else {
            StorageError::Failed { reason }
        }
    }

    /// Whether the error says the disk is full: a condition that ends when
    /// space is freed.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StorageError::DiskFull { .. } => true,
            StorageError::Io { error, .. } => super::io::is_no_space(error),
            _ => false,
        }
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::OffsetOutOfRange {
                requested,
                start,
                end,
            } => write!(
                f,
                "offset {requested} is out of range: the log holds {start}..{end}"
            ),
            StorageError::InvalidBatch { index, error } => {
                write!(f, "batch {index} of the append is invalid: {error}")
            }
            StorageError::EmptyAppend => write!(f, "append carries no batches"),
            StorageError::Corrupt {
                file,
                position,
                reason,
            } => write!(
                f,
                "corrupt data in {} at position {position}: {reason}",
                file.display()
            ),
            StorageError::Io { op, path, error } => {
                write!(f, "{op} {} failed: {error}", path.display())
            }
            StorageError::Failed { reason } => write!(
                f,
                "log is failed after an I/O error and must be reopened: {reason}"
            ),
            StorageError::DiskFull { reason } => write!(
                f,
                "no space left on the disk ({reason}); the partition takes writes again once space is freed"
            ),
            StorageError::Closed => write!(f, "log is closed"),
            StorageError::Config(reason) => write!(f, "invalid log configuration: {reason}"),
            StorageError::Producer(e) => write!(f, "{e}"),
            StorageError::ReplicaOffsetMismatch { expected, got } => write!(
                f,
                "a replicated batch starts at offset {got}, but the log expects {expected}; nothing of the append was stored"
            ),
            StorageError::TruncateBelowStart { requested, start } => write!(
                f,
                "cannot truncate to offset {requested}: the log starts at {start}"
            ),
            StorageError::Truncated { offset, cut_to } => write!(
                f,
                "the records below offset {offset} were cut by a truncation to {cut_to} before they became durable"
            ),
            StorageError::InvalidLeaderEpoch { epoch, latest } => match latest {
                Some(latest) => write!(
                    f,
                    "leader epoch {epoch} is invalid: the log already holds epoch {latest}, and epochs never go back"
                ),
                None => write!(f, "leader epoch {epoch} is invalid: epochs start at 0"),
            },
        }
    }
}

impl std::error::Error for StorageError {}

pub type Result<T> = std::result::Result<T, StorageError>;
