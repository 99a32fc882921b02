//! The storage engine: each partition is an append-only log of segment
//! files, written and read with glommio direct I/O.
//!
//! * [`io`]: the seam to the disk (direct I/O, sync, fault injection) and
//!   the poll-ring probe every executor runs first.
//! * [`crash`]: named crash points that SIGKILL the process, for tests.
//! * [`appender`](self::appender): write-behind chunks, aligned writes.
//! * [`index`]: sparse offset and time indexes.
//! * [`segment`]: one `.log` with its indexes; recovery scan; reads.
//! * [`files`]: the bounded cache through which sealed segments open their
//!   files on demand (an idle partition keeps one file open).
//! * `readahead`: sequential reads in large aligned blocks, several in
//!   flight ahead of each forward-reading consumer, within a per-executor
//!   budget.
//! * [`producers`]: idempotent producers' sequence state; `snapshot`: its
//!   files.
//! * [`PartitionLog`]: offsets, durability policies, tail cache,
//!   rolling, retention, compaction (`PartitionLog::clean`; the pass, its
//!   file swap and how open recovers an interrupted one are described in
//!   `log/cleaner.rs`), and what replication needs of a log: leader
//!   epochs and their cache (`log/epochs.rs`), replica appends,
//!   truncation, a replicated high watermark.
//!
//! No sockets here, and nothing `Send`: a log lives on the executor that
//! opened it.

mod appender;
mod config;
pub mod crash;
mod error;
pub mod files;
pub mod index;
pub mod io;
mod log;
pub mod producers;
mod readahead;
pub mod segment;
mod snapshot;

pub use config::{DELETE_RETENTION_MS_DEFAULT, FsyncPolicy, LogConfig, TimestampType};
pub use error::{Result, StorageError};
pub use files::{FileRef, OpenFiles, OpenFilesStats};
pub use io::{Disk, Faults};
pub use log::{
    AppendInfo, CleanOptions, CleanOutcome, LogStats, PartitionLog, ReadBatches, RetentionOutcome,
    SegmentIndexes, SegmentInfo,
};
pub use readahead::{ReadAheadBudget, ReadAheadStats};
