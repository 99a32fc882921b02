//! One segment: `<base offset, 20 digits>.log` with its `.index` and
//! `.timeindex`.
//!
//! A segment is *active* (the last one of a log: it takes appends through
//! an [`Appender`]) or *sealed* (immutable; its files have exact sizes and
//! are synced). Reads validate every batch they return — the CRC was
//! checked when the batch was appended and is checked again when it comes
//! back from the disk — and report a bad one with file and position rather
//! than skipping it.
//!
//! Open files: an active segment (and one still being sealed) keeps its
//! `.log` open; its indexes live in memory and are written whole, synced
//! and closed when it is sealed or its log closes (and rewritten when
//! recovery reopens it), so an idle partition holds one descriptor. A
//! sealed segment keeps no file open: reads take its `.log` from the
//! executor's [`OpenFiles`](super::files::OpenFiles) cache, which opens it
//! on demand and bounds how many stay open.
//!
//! Owned by the executor of its log; nothing here is `Send`. No `RefCell`
//! borrow lives across an `.await`.

use super::appender::Appender;
use super::error::{Result, StorageError};
use super::files::FileRef;
use super::index::{Decoded, OffsetIndex, TimeIndex};
use super::io::{Disk, DiskFile};
use super::readahead::ReadStream;
use crate::constants::{DIRECT_IO_ALIGN_BYTES, READ_AHEAD_BYTES};
use crate::record::{HEADER_BYTES, LOG_OVERHEAD_BYTES, read_framing, verify_stored};
use crate::types::{Offset, Timestamp};
use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

/// Size of one read while scanning a segment for recovery or an index rebuild.
const SCAN_READ_BYTES: usize = 1 << 20;

/// File name of a segment's log for `base`.
pub fn log_file_name(base: Offset) -> String {
    format!("{:020}.log", base.0)
}

/// Parses `00000000000000001234.log` into its base offset.
pub fn parse_log_file_name(name: &str) -> Option<Offset> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(Offset)
}

fn align_down(v: u64) -> u64 {
    v / DIRECT_IO_ALIGN_BYTES as u64 * DIRECT_IO_ALIGN_BYTES as u64
}

/// Why a batch-by-batch scan stopped before the end of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanStop {
    /// Only zeros follow: write padding past the last batch.
    ZeroPadding,
    /// Fewer bytes remain than a batch's length prefix.
    ShortTail { bytes: u64 },
    /// A batch declares more bytes than the file holds.
    Torn { declared: u64, present: u64 },
    /// A length field no batch can have.
    ImplausibleLength { total: u64 },
    /// The bytes fail validation (magic, CRC, record count, …).
    Invalid { reason: String },
    /// A batch's base offset does not continue the one before it.
    Discontinuity { found: i64, expected: Offset },
    /// A batch holds offsets at or past `limit`, where the next segment
    /// begins.
    PastLimit { base: Offset, limit: Offset },
}

impl std::fmt::Display for ScanStop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScanStop::ZeroPadding => write!(f, "zero padding"),
            ScanStop::ShortTail { bytes } => {
                write!(f, "{bytes} bytes at the end are too short for a batch")
            }
            ScanStop::Torn { declared, present } => {
                write!(
                    f,
                    "torn batch: {declared} bytes declared, {present} present"
                )
            }
            ScanStop::ImplausibleLength { total } => {
                write!(f, "batch length field {total} is not plausible")
            }
            ScanStop::Invalid { reason } => write!(f, "{reason}"),
            ScanStop::Discontinuity { found, expected } => write!(
                f,
                "batch base offset {found} breaks continuity (expected {expected})"
            ),
            ScanStop::PastLimit { base, limit } => write!(
                f,
                "the batch at offset {base} reaches offset {limit}, where the next segment begins"
            ),
        }
    }
}

/// What a batch-by-batch scan of a segment found.
pub struct ScanOutcome {
    /// Position after the last valid batch.
    pub valid_end: u64,
    /// Offset after the last valid batch.
    pub next_offset: Offset,
    /// Why the scan stopped before the end of the file, if it did.
    pub stopped: Option<ScanStop>,
}

/// Validates batches from `pos` to `file_end`, expecting the first to start
/// at offset `expected` and every record to lie below `limit`, calling
/// `on_batch(position, base offset, bytes, max timestamp, records)` for each
/// valid one. Stops at the first batch that is torn, fails validation,
/// breaks offset continuity or reaches `limit`.
pub async fn scan(
    file: &DiskFile,
    mut pos: u64,
    file_end: u64,
    mut expected: Offset,
    limit: Offset,
    batch_bytes_max: usize,
    mut on_batch: impl FnMut(u64, Offset, u64, Timestamp, u32),
) -> Result<ScanOutcome> {
    let mut window = SCAN_READ_BYTES;
    while pos < file_end {
        let want = window.min((file_end - pos) as usize);
        let buf = file
            .read_dma(pos, want)
            .await
            .map_err(|e| StorageError::io("reading", file.path(), e))?;
        let mut p = 0usize;
        let mut stop: Option<ScanStop> = None;
        let mut need_bigger = None;
        while p < buf.len() {
            let rest = &buf[p..];
            let Some(framing) = read_framing(rest) else {
                stop = Some(if rest.iter().all(|&b| b == 0) {
                    ScanStop::ZeroPadding
                } else {
                    ScanStop::ShortTail {
                        bytes: rest.len() as u64,
                    }
                });
                break;
            };
            if rest.len() >= LOG_OVERHEAD_BYTES && rest.iter().all(|&b| b == 0) {
                stop = Some(ScanStop::ZeroPadding);
                break;
            }
            let total = framing.total_bytes;
            if total < HEADER_BYTES as u64 || total > batch_bytes_max as u64 {
                stop = Some(ScanStop::ImplausibleLength { total });
                break;
            }
            if total > rest.len() as u64 {
                if pos + p as u64 + total > file_end {
                    stop = Some(ScanStop::Torn {
                        declared: total,
                        present: file_end - pos - p as u64,
                    });
                    break;
                }
                need_bigger = Some(total as usize);
                break;
            }
            let batch = &rest[..total as usize];
            let info = match verify_stored(batch, batch_bytes_max) {
                Ok(info) => info,
                Err(e) => {
                    stop = Some(ScanStop::Invalid {
                        reason: e.to_string(),
                    });
                    break;
                }
            };
            let base = framing.base_offset;
            if base != expected.0 as i64 {
                stop = Some(ScanStop::Discontinuity {
                    found: base,
                    expected,
                });
                break;
            }
            if expected.plus(info.records as u64) > limit {
                stop = Some(ScanStop::PastLimit {
                    base: expected,
                    limit,
                });
                break;
            }
            on_batch(
                pos + p as u64,
                expected,
                total,
                info.max_timestamp,
                info.records,
            );
            expected = expected.plus(info.records as u64);
            p += total as usize;
        }
        pos += p as u64;
        if let Some(reason) = stop {
            return Ok(ScanOutcome {
                valid_end: pos,
                next_offset: expected,
                stopped: Some(reason),
            });
        }
        if let Some(total) = need_bigger {
            window = window.max(total);
        }
    }
    Ok(ScanOutcome {
        valid_end: pos,
        next_offset: expected,
        stopped: None,
    })
}

/// What opening a sealed segment found (see [`Segment::open_sealed`]).
pub enum SealedOpen {
    /// The segment holds every record up to the next segment's base and
    /// ends after the last one (any remnant trimmed) — or its damage is
    /// beyond what recovery may repair, and was logged.
    Ready(Box<Segment>),
    /// A seal interrupted by a crash lost records: the log must end in
    /// this segment, after offset `found_end` (file position `position`).
    EndsShort {
        found_end: Offset,
        position: u64,
        reason: String,
    },
}

/// Indexes built by a scan.
struct BuiltIndexes {
    index: OffsetIndex,
    time_index: TimeIndex,
    max_timestamp: Timestamp,
}

/// Mutable bookkeeping of a segment.
struct State {
    /// Logical size: bytes of whole batches.
    size: u64,
    next_offset: Offset,
    max_timestamp: Timestamp,
    index: OffsetIndex,
    time_index: TimeIndex,
    bytes_since_index: u64,
    created: Instant,
}

/// The writer of an active segment's log (its indexes are in `State`).
struct Writers {
    log: Appender,
}

pub struct Segment {
    base: Offset,
    log_path: PathBuf,
    index_path: PathBuf,
    time_path: PathBuf,
    /// The data directory (and its open-file cache).
    disk: Disk,
    /// This segment's key in the open-file cache.
    key: u64,
    /// The `.log` this segment holds open itself: while it is active or
    /// being sealed or validated, or (after a compaction swap replaced the
    /// file at its path) the file it was opened on. `None`: reads take it
    /// from the cache.
    file: RefCell<Option<FileRef>>,
    /// Retention removed its files.
    deleted: Cell<bool>,
    index_interval_bytes: u64,
    batch_bytes_max: usize,
    state: RefCell<State>,
    writers: RefCell<Option<Rc<Writers>>>,
    /// Where recovery from a full disk cut the file ([`Segment::reopen_at`]):
    /// reads through this handle stop there.
    cut_at: Cell<Option<u64>>,
}

/// Paths of a segment's three files.
pub fn segment_paths(dir: &Path, base: Offset) -> (PathBuf, PathBuf, PathBuf) {
    let log = dir.join(log_file_name(base));
    (
        log.clone(),
        log.with_extension("index"),
        log.with_extension("timeindex"),
    )
}

fn encode_index(index: &OffsetIndex) -> Vec<u8> {
    index
        .entries()
        .iter()
        .flat_map(|&(o, p)| OffsetIndex::encode_entry(o, p))
        .collect()
}

fn encode_time_index(index: &TimeIndex) -> Vec<u8> {
    index
        .entries()
        .iter()
        .flat_map(|&(t, o)| TimeIndex::encode_entry(t, o))
        .collect()
}

/// Settings a segment needs from its log's configuration.
#[derive(Copy, Clone, Debug)]
pub struct SegmentSettings {
    pub index_interval_bytes: u64,
    pub batch_bytes_max: usize,
    pub write_chunk_bytes: usize,
}

impl Segment {
    pub fn base(&self) -> Offset {
        self.base
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Logical size in bytes.
    pub fn size(&self) -> u64 {
        self.state.borrow().size
    }

    /// Offset after the last record.
    pub fn next_offset(&self) -> Offset {
        self.state.borrow().next_offset
    }

    /// Largest record timestamp, or [`Timestamp::NONE`] if empty.
    pub fn max_timestamp(&self) -> Timestamp {
        self.state.borrow().max_timestamp
    }

    pub fn age(&self) -> std::time::Duration {
        self.state.borrow().created.elapsed()
    }

    pub fn is_active(&self) -> bool {
        self.writers.borrow().is_some()
    }

    /// Everything below this position is in the file (reads beyond it must
    /// be served from memory).
    pub fn written(&self) -> u64 {
        let written = match &*self.writers.borrow() {
            Some(w) => w.log.written(),
            None => self.size(),
        };
        self.cut_at.get().map_or(written, |cut| written.min(cut))
    }

    /// The entries of the sparse offset index (for tests and tools).
    pub fn index_entries(&self) -> Vec<(u32, u32)> {
        self.state.borrow().index.entries().to_vec()
    }

    /// The entries of the time index (for tests and tools).
    pub fn time_index_entries(&self) -> Vec<(Timestamp, u32)> {
        self.state.borrow().time_index.entries().to_vec()
    }

    fn writers(&self) -> Result<Rc<Writers>> {
        self.writers
            .borrow()
            .clone()
            .ok_or_else(|| StorageError::Failed {
                reason: format!("segment {} is sealed", self.log_path.display()),
            })
    }

    /// The file this segment holds open itself (active, sealing, being
    /// validated at open).
    fn owned_file(&self) -> Result<FileRef> {
        self.file
            .borrow()
            .clone()
            .ok_or_else(|| StorageError::Failed {
                reason: format!(
                    "segment {} holds no open file to write",
                    self.log_path.display()
                ),
            })
    }

    /// The segment's open `.log` for a read: its own, or the cache's
    /// (opened now if need be). Hold it only for the read.
    async fn file(&self) -> Result<FileRef> {
        if let Some(file) = self.file.borrow().clone() {
            return Ok(file);
        }
        if self.deleted.get() {
            return Err(self.gone());
        }
        let file = self
            .disk
            .open_files()
            .get(&self.disk, self.key, &self.log_path)
            .await
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound && self.deleted.get() {
                    self.gone()
                } else {
                    StorageError::io("opening", &self.log_path, e)
                }
            })?;
        // A file the segment took while that open ran (a compaction swap
        // holding the file it replaces) is the one this segment describes.
        if let Some(own) = self.file.borrow().clone() {
            return Ok(own);
        }
        if self.deleted.get() {
            // Deleted while the open ran: this read may use the file, the
            // cache must not keep it.
            self.disk.open_files().forget(self.key);
        }
        Ok(file)
    }

    fn gone(&self) -> StorageError {
        StorageError::io(
            "reading",
            &self.log_path,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the segment was deleted by retention",
            ),
        )
    }

    /// Whether retention deleted this segment (a read that started before
    /// may fail; the log start has moved past it).
    pub fn is_deleted(&self) -> bool {
        self.deleted.get()
    }

    /// Hands the file this segment holds to the open-file cache (the
    /// segment is sealed: reads open it from there). If a read still holds
    /// it, it closes when that read is done instead.
    fn release_file(&self) {
        let Some(file) = self.file.borrow_mut().take() else {
            return;
        };
        if let Ok(file) = Rc::try_unwrap(file.into_rc()) {
            self.disk.open_files().offer(self.key, file);
        }
    }

    /// Makes this sealed segment hold its current file itself, so its
    /// reads keep reading this file after another replaces it at the same
    /// path (a compaction swap). Released when the segment is dropped.
    pub async fn hold_file(&self) -> Result<()> {
        let file = self.file().await?;
        *self.file.borrow_mut() = Some(file);
        Ok(())
    }

    /// Creates a new, empty active segment (replacing stale files).
    pub async fn create(
        disk: &Disk,
        dir: &Path,
        base: Offset,
        settings: SegmentSettings,
    ) -> Result<Segment> {
        let (log_path, index_path, time_path) = segment_paths(dir, base);
        let open = |path: PathBuf| async move {
            let file = disk
                .open_file(&path, true)
                .await
                .map_err(|e| StorageError::io("creating", &path, e))?;
            file.truncate(0)
                .await
                .map_err(|e| StorageError::io("truncating", &path, e))?;
            Ok::<_, StorageError>(file)
        };
        let opened = async {
            let file = Rc::new(open(log_path.clone()).await?);
            // Empty index files, as every segment has them; the entries stay
            // in memory until the segment is sealed or its log closes.
            for path in [&index_path, &time_path] {
                open(path.clone())
                    .await?
                    .close()
                    .await
                    .map_err(|e| StorageError::io("closing", path, e))?;
            }
            // The new names must survive a machine crash: an `always` append
            // to this segment is acknowledged after an fdatasync of the file,
            // which does not cover the directory entry.
            disk.sync_dir(dir)
                .await
                .map_err(|e| StorageError::io("syncing directory", dir, e))?;
            Ok::<_, StorageError>(file)
        }
        .await;
        let file = match opened {
            Ok(file) => file,
            Err(e) => {
                // A full disk can refuse the second or third file. An empty
                // segment left behind would end the log at the next open
                // (its base past the real end), so its files go.
                for path in [&log_path, &index_path, &time_path] {
                    let _ = disk.remove(path).await;
                }
                return Err(e);
            }
        };
        let writers = Writers {
            log: Appender::new(file.clone(), settings.write_chunk_bytes, 0, &[]),
        };
        Ok(Segment {
            base,
            log_path,
            index_path,
            time_path,
            disk: disk.clone(),
            key: disk.open_files().new_key(),
            file: RefCell::new(Some(FileRef::owned(file))),
            deleted: Cell::new(false),
            index_interval_bytes: settings.index_interval_bytes,
            batch_bytes_max: settings.batch_bytes_max,
            state: RefCell::new(State {
                size: 0,
                next_offset: base,
                max_timestamp: Timestamp::NONE,
                index: OffsetIndex::default(),
                time_index: TimeIndex::default(),
                bytes_since_index: 0,
                created: Instant::now(),
            }),
            writers: RefCell::new(Some(Rc::new(writers))),
            cut_at: Cell::new(None),
        })
    }

    /// A segment handle over `file`, with empty state and no writers.
    fn unopened(
        disk: &Disk,
        base: Offset,
        dir: &Path,
        file: Rc<DiskFile>,
        size: u64,
        next_offset: Offset,
        settings: SegmentSettings,
    ) -> Segment {
        let (log_path, index_path, time_path) = segment_paths(dir, base);
        Segment {
            base,
            log_path,
            index_path,
            time_path,
            disk: disk.clone(),
            key: disk.open_files().new_key(),
            file: RefCell::new(Some(FileRef::owned(file))),
            deleted: Cell::new(false),
            index_interval_bytes: settings.index_interval_bytes,
            batch_bytes_max: settings.batch_bytes_max,
            state: RefCell::new(State {
                size,
                next_offset,
                max_timestamp: Timestamp::NONE,
                index: OffsetIndex::default(),
                time_index: TimeIndex::default(),
                bytes_since_index: 0,
                created: Instant::now(),
            }),
            writers: RefCell::new(None),
            cut_at: Cell::new(None),
        }
    }

    /// Opens a sealed segment whose records must end just before
    /// `next_base`, and checks that they do: every offset from its base up
    /// to `next_base`, in whole valid batches, and nothing after the last.
    ///
    /// * If its seal completed — the time index ends with the final entry,
    ///   which sealing writes only after the log is trimmed and synced — the
    ///   batches from the last offset-index entry to the end of the file are
    ///   validated (a few KiB); the rest was validated when appended and has
    ///   been on stable media since.
    /// * If the seal did not complete (a crash cut it short) or an index is
    ///   missing or damaged, every batch is validated and both indexes are
    ///   rebuilt.
    ///
    /// Bytes after the last record (write padding, a torn remnant) are
    /// trimmed, which finishes an interrupted seal. Records missing from a
    /// segment whose seal had not completed were never on stable media —
    /// only a machine crash loses written data, and under `always` nothing
    /// at or past the segment's base is acknowledged before its seal — so
    /// [`SealedOpen::EndsShort`] tells the log to end here. Records missing
    /// from a segment whose seal completed mean something outside corelog
    /// damaged it: the segment opens, the damage is logged as an error with
    /// file, position and offsets, and reads that reach it fail with the
    /// same position.
    pub async fn open_sealed(
        disk: &Disk,
        dir: &Path,
        base: Offset,
        next_base: Offset,
        settings: SegmentSettings,
    ) -> Result<SealedOpen> {
        let (log_path, _, _) = segment_paths(dir, base);
        let file = disk
            .open_file(&log_path, false)
            .await
            .map_err(|e| StorageError::io("opening", &log_path, e))?;
        let size = file
            .size()
            .await
            .map_err(|e| StorageError::io("sizing", &log_path, e))?;
        let segment = Segment::unopened(disk, base, dir, Rc::new(file), size, next_base, settings);
        let opened = segment.check_sealed(disk, size, next_base).await?;
        if let SealedOpen::Ready(segment) = &opened {
            segment.release_file();
        }
        Ok(opened)
    }

    /// The checks of [`Segment::open_sealed`] on a segment holding its file.
    async fn check_sealed(self, disk: &Disk, size: u64, next_base: Offset) -> Result<SealedOpen> {
        let index = self.load_offset_index(disk, size).await?;
        let time_index = self.load_time_index(disk).await?;
        let records = next_base.distance_from(self.base);
        let seal_completed = time_index
            .as_ref()
            .is_some_and(|t| records == 0 || t.last().is_some_and(|(_, o)| o as u64 == records));
        if seal_completed
            && let (Some(index), Some(time_index)) = (index, time_index)
            && index.last().is_none_or(|(o, _)| (o as u64) < records)
        {
            self.use_indexes(BuiltIndexes {
                max_timestamp: time_index.last().map_or(Timestamp::NONE, |(t, _)| t),
                index,
                time_index,
            });
            if self.tail_ends_at_next_base().await? {
                return Ok(SealedOpen::Ready(Box::new(self)));
            }
        }
        self.validate_whole(disk, seal_completed).await
    }

    /// Validates a sealed segment's batches from its last index entry to the
    /// end of the file; true if they end exactly at the next segment's base
    /// (after trimming any remnant).
    async fn tail_ends_at_next_base(&self) -> Result<bool> {
        let (size, next_base) = (self.size(), self.next_offset());
        let (rel, pos) = self.state.borrow().index.last().unwrap_or((0, 0));
        let file = self.owned_file()?;
        let tail = scan(
            &file,
            pos as u64,
            size,
            self.base.plus(rel as u64),
            next_base,
            self.batch_bytes_max,
            |_, _, _, _, _| {},
        )
        .await?;
        if tail.next_offset == next_base {
            if let Some(stop) = &tail.stopped {
                self.trim_after_last_batch(tail.valid_end, stop).await?;
            }
            return Ok(true);
        }
        tracing::warn!(
            file = %self.log_path.display(),
            position = tail.valid_end,
            found_end = %tail.next_offset,
            next_segment_base = %next_base,
            "the tail of a sealed segment does not end where the next segment begins; validating the whole segment"
        );
        Ok(false)
    }

    /// Validates every batch of a sealed segment and acts on what it finds
    /// (see [`Segment::open_sealed`]).
    async fn validate_whole(self, disk: &Disk, seal_completed: bool) -> Result<SealedOpen> {
        let next_base = self.next_offset();
        let (outcome, built) = self.scan_whole().await?;
        let reason = || {
            outcome
                .stopped
                .as_ref()
                .map_or_else(|| "end of file".to_string(), |s| s.to_string())
        };
        if outcome.next_offset == next_base {
            if let Some(stop) = &outcome.stopped {
                self.trim_after_last_batch(outcome.valid_end, stop).await?;
            }
            self.write_indexes(disk, &built).await?;
        } else if !seal_completed {
            return Ok(SealedOpen::EndsShort {
                found_end: outcome.next_offset,
                position: outcome.valid_end,
                reason: reason(),
            });
        } else {
            // The index files stay as they are (their final entry records
            // that the seal completed); reads use the prefix found here.
            tracing::error!(
                file = %self.log_path.display(),
                position = outcome.valid_end,
                reason = %reason(),
                last_offset_found = %outcome.next_offset,
                next_segment_base = %next_base,
                "sealed segment is damaged: records are missing although its seal completed (the file was changed outside corelog, or the disk lost it); reads that reach the damage fail"
            );
        }
        self.use_indexes(built);
        Ok(SealedOpen::Ready(Box::new(self)))
    }

    /// Reads the `.index` file. `None` if missing or damaged.
    async fn load_offset_index(
        &self,
        disk: &Disk,
        segment_bytes: u64,
    ) -> Result<Option<OffsetIndex>> {
        let Some(bytes) = read_whole(disk, &self.index_path).await? else {
            return Ok(None);
        };
        match OffsetIndex::decode(&bytes, segment_bytes) {
            Decoded::Clean(entries) => Ok(Some(OffsetIndex::from_entries(entries))),
            Decoded::Damaged { at_byte, .. } => {
                tracing::warn!(file = %self.index_path.display(), at_byte, "offset index is damaged; it will be rebuilt from the log");
                Ok(None)
            }
        }
    }

    /// Reads the `.timeindex` file. `None` if missing or damaged.
    async fn load_time_index(&self, disk: &Disk) -> Result<Option<TimeIndex>> {
        let Some(bytes) = read_whole(disk, &self.time_path).await? else {
            return Ok(None);
        };
        match TimeIndex::decode(&bytes) {
            Decoded::Clean(entries) => Ok(Some(TimeIndex::from_entries(entries))),
            Decoded::Damaged { at_byte, .. } => {
                tracing::warn!(file = %self.time_path.display(), at_byte, "time index is damaged; it will be rebuilt from the log");
                Ok(None)
            }
        }
    }

    /// Validates every batch of a sealed segment from its start and builds
    /// both indexes for the valid prefix (the final time entry included).
    async fn scan_whole(&self) -> Result<(ScanOutcome, BuiltIndexes)> {
        let size = self.size();
        let next_base = self.next_offset();
        let started = Instant::now();
        let mut builder = IndexBuilder::new(self.index_interval_bytes);
        let file = self.owned_file()?;
        let outcome = scan(
            &file,
            0,
            size,
            self.base,
            next_base,
            self.batch_bytes_max,
            |pos, base, bytes, ts, records| builder.add(self.base, pos, base, bytes, ts, records),
        )
        .await?;
        let (index, mut time_index, max_timestamp) = builder.finish();
        let records = outcome.next_offset.distance_from(self.base) as u32;
        if records > 0 {
            time_index.push_final(max_timestamp, records);
        }
        tracing::info!(
            file = %self.log_path.display(),
            bytes = outcome.valid_end,
            millis = started.elapsed().as_millis() as u64,
            "validated a whole sealed segment"
        );
        Ok((
            outcome,
            BuiltIndexes {
                index,
                time_index,
                max_timestamp,
            },
        ))
    }

    /// Cuts whatever follows the last record of a sealed segment (zero
    /// padding or a torn remnant, left by a crash during its seal) and syncs
    /// the cut.
    async fn trim_after_last_batch(&self, valid_end: u64, stop: &ScanStop) -> Result<()> {
        let size = self.size();
        let file = self.owned_file()?;
        file.truncate(valid_end)
            .await
            .map_err(|e| StorageError::io("truncating", &self.log_path, e))?;
        file.sync()
            .await
            .map_err(|e| StorageError::io("syncing", &self.log_path, e))?;
        self.state.borrow_mut().size = valid_end;
        super::crash::point("recover.after_trim_sealed");
        tracing::warn!(
            file = %self.log_path.display(),
            position = valid_end,
            bytes = size - valid_end,
            reason = %stop,
            "finished sealing a segment whose seal a crash interrupted: trimmed what follows its last record"
        );
        Ok(())
    }

    /// Writes both indexes of a sealed segment, the time index last: its
    /// final entry marks the seal complete.
    async fn write_indexes(&self, disk: &Disk, built: &BuiltIndexes) -> Result<()> {
        write_whole(disk, &self.index_path, &encode_index(&built.index)).await?;
        write_whole(disk, &self.time_path, &encode_time_index(&built.time_index)).await?;
        tracing::info!(
            file = %self.log_path.display(),
            entries = built.index.len(),
            "rebuilt segment indexes"
        );
        Ok(())
    }

    /// Takes indexes into use.
    fn use_indexes(&self, built: BuiltIndexes) {
        let mut st = self.state.borrow_mut();
        st.max_timestamp = built.max_timestamp;
        st.index = built.index;
        st.time_index = built.time_index;
    }

    /// Opens the last segment of a log and makes it active again: validates
    /// its batches, cuts a torn or corrupt tail (logging file, position and
    /// bytes cut) and rewrites both indexes to exactly what survived.
    ///
    /// After a clean close (`closed_at`, the size the log's close marker
    /// recorded for this segment, equals its size now) the indexes were trimmed and synced
    /// with the log, so validation starts at the last index entry. After a
    /// crash every batch is validated from the start: writes may have been
    /// in flight in any order, and an index entry written before the crash
    /// can point past a block that never reached the file, so no entry is
    /// trusted.
    pub async fn recover_active(
        disk: &Disk,
        dir: &Path,
        base: Offset,
        settings: SegmentSettings,
        closed_at: Option<u64>,
    ) -> Result<Segment> {
        let (log_path, index_path, time_path) = segment_paths(dir, base);
        let file = Rc::new(
            disk.open_file(&log_path, true)
                .await
                .map_err(|e| StorageError::io("opening", &log_path, e))?,
        );
        let file_size = file
            .size()
            .await
            .map_err(|e| StorageError::io("sizing", &log_path, e))?;
        let segment = Segment::unopened(disk, base, dir, file.clone(), 0, base, settings);
        let (start_pos, start_offset, mut index, mut time_index) = if closed_at == Some(file_size) {
            segment.trusted_start(disk, file_size).await?
        } else {
            (0, base, OffsetIndex::default(), TimeIndex::default())
        };
        let mut builder = IndexBuilder::resume(settings.index_interval_bytes, &time_index);
        let outcome = scan(
            &file,
            start_pos,
            file_size,
            start_offset,
            Offset(u64::MAX),
            settings.batch_bytes_max,
            |pos, off, bytes, ts, records| builder.add(base, pos, off, bytes, ts, records),
        )
        .await?;
        if outcome.valid_end < file_size {
            let cut = file_size - outcome.valid_end;
            match &outcome.stopped {
                Some(ScanStop::ZeroPadding) => {
                    tracing::debug!(file = %log_path.display(), position = outcome.valid_end, bytes = cut, "trimmed write padding after the last batch")
                }
                stopped => tracing::warn!(
                    file = %log_path.display(),
                    position = outcome.valid_end,
                    bytes = cut,
                    reason = %stopped.as_ref().map_or_else(|| "unknown".to_string(), |s| s.to_string()),
                    "recovery cut the log's tail"
                ),
            }
            file.truncate(outcome.valid_end)
                .await
                .map_err(|e| StorageError::io("truncating", &log_path, e))?;
        }
        // After the tail is cut (if it had one), before the indexes are
        // rewritten: the next recovery starts from a half-done one.
        super::crash::point("recover.after_cut");
        let (scanned_index, scanned_time, max_ts) = builder.finish();
        for &(o, p) in scanned_index.entries() {
            if index.last().is_none_or(|(lo, _)| o > lo) {
                index.push(o, p);
            }
        }
        for &(t, o) in scanned_time.entries() {
            time_index.maybe_push(t, o);
        }
        let size = outcome.valid_end;
        let bytes_since_index = size - index.last().map_or(0, |(_, p)| p as u64);

        // Rewrite both index files to exactly the trusted entries (no
        // sync: recovery checks index entries against the log). From here
        // on the entries are kept in memory and written whole at the seal
        // or close.
        for (path, bytes) in [
            (&index_path, encode_index(&index)),
            (&time_path, encode_time_index(&time_index)),
        ] {
            reset_file(disk, path, &bytes)
                .await?
                .close()
                .await
                .map_err(|e| StorageError::io("closing", path, e))?;
        }
        super::crash::point("recover.after_index_rewrite");
        let tail = read_tail(&file, size).await?;
        let writers = Writers {
            log: Appender::new(file.clone(), settings.write_chunk_bytes, size, &tail),
        };
        {
            let mut st = segment.state.borrow_mut();
            st.size = size;
            st.next_offset = outcome.next_offset;
            st.max_timestamp = max_ts;
            st.index = index;
            st.time_index = time_index;
            st.bytes_since_index = bytes_since_index;
        }
        *segment.writers.borrow_mut() = Some(Rc::new(writers));
        Ok(segment)
    }

    /// Where validation of a cleanly closed active segment starts: its last
    /// offset-index entry, if that points at a valid batch with the offset
    /// it promises, with both indexes cut back to it; else the start of the
    /// file with empty indexes.
    async fn trusted_start(
        &self,
        disk: &Disk,
        file_size: u64,
    ) -> Result<(u64, Offset, OffsetIndex, TimeIndex)> {
        let base = self.base;
        let from_scratch = (0, base, OffsetIndex::default(), TimeIndex::default());
        let (Some(mut index), Some(mut time_index)) = (
            self.load_offset_index(disk, file_size).await?,
            self.load_time_index(disk).await?,
        ) else {
            return Ok(from_scratch);
        };
        let Some((rel, pos)) = index.last() else {
            return Ok(from_scratch);
        };
        let offset = base.plus(rel as u64);
        if !self
            .batch_is_valid_at(pos as u64, offset, file_size)
            .await?
        {
            tracing::warn!(file = %self.log_path.display(), position = pos, "the last index entry of a cleanly closed segment does not point at its batch; validating the whole segment");
            return Ok(from_scratch);
        }
        // The largest timestamp of the data before the start comes from the
        // last time entry at or before it, so the scan starts at that entry
        // (the offset index has an entry wherever the time index has one).
        time_index.truncate_to_offset(rel);
        let time_rel = time_index.last().map_or(0, |(_, o)| o);
        let (start_pos, start_rel) = if time_rel < rel {
            match index.lookup(time_rel) {
                (o, p) if o == time_rel => (p as u64, o),
                _ => return Ok(from_scratch),
            }
        } else {
            (pos as u64, rel)
        };
        time_index.truncate_to_offset(start_rel);
        index.truncate_to_position(start_pos + 1);
        Ok((start_pos, base.plus(start_rel as u64), index, time_index))
    }

    /// Whether a valid batch starting at `offset` sits at `pos`.
    async fn batch_is_valid_at(&self, pos: u64, offset: Offset, file_size: u64) -> Result<bool> {
        if pos + HEADER_BYTES as u64 > file_size {
            return Ok(false);
        }
        let file = self.owned_file()?;
        let head = file
            .read_bytes(pos, LOG_OVERHEAD_BYTES)
            .await
            .map_err(|e| StorageError::io("reading", &self.log_path, e))?;
        let Some(framing) = read_framing(&head) else {
            return Ok(false);
        };
        if framing.base_offset != offset.0 as i64
            || framing.total_bytes > self.batch_bytes_max as u64
            || pos + framing.total_bytes > file_size
        {
            return Ok(false);
        }
        let batch = file
            .read_bytes(pos, framing.total_bytes as usize)
            .await
            .map_err(|e| StorageError::io("reading", &self.log_path, e))?;
        Ok(verify_stored(&batch, self.batch_bytes_max).is_ok())
    }

    /// Appends one validated, offset-stamped batch. `first` is its base
    /// offset, `max_timestamp` and `records` come from validation. Returns
    /// once the bytes are in the write chunk (not yet in the file).
    pub async fn append_batch(
        &self,
        batch: &[u8],
        first: Offset,
        max_timestamp: Timestamp,
        records: u32,
    ) -> Result<()> {
        let writers = self.writers()?;
        {
            let mut st = self.state.borrow_mut();
            assert_eq!(
                first, st.next_offset,
                "appended batch must continue the segment's offsets"
            );
            if st.size > 0 && st.bytes_since_index >= self.index_interval_bytes {
                let rel = first.distance_from(self.base) as u32;
                let pos = st.size as u32;
                st.index.push(rel, pos);
                let max = st.max_timestamp;
                st.time_index.maybe_push(max, rel);
                st.bytes_since_index = 0;
            }
            st.size += batch.len() as u64;
            st.bytes_since_index += batch.len() as u64;
            st.next_offset = first.plus(records as u64);
            st.max_timestamp = st.max_timestamp.max(max_timestamp);
        }
        writers.log.append(batch).await.map_err(|e| {
            StorageError::write_failed(format_args!("appending to {}", self.log_path.display()), &e)
        })
    }

    /// Hands the partly filled log chunk to a write; returns the position
    /// to wait for with [`Segment::wait_written`].
    pub fn flush_log(&self) -> Result<u64> {
        let writers = self.writers()?;
        writers
            .log
            .flush()
            .map_err(|e| StorageError::write_failed("", &e))
    }

    /// Waits until the log file holds everything below `pos` (at once for
    /// a sealed segment: sealing wrote everything).
    pub async fn wait_written(&self, pos: u64) -> Result<()> {
        let Some(writers) = self.writers.borrow().clone() else {
            return Ok(());
        };
        writers
            .log
            .wait_written(pos)
            .await
            .map_err(|e| StorageError::write_failed("", &e))
    }

    /// Relative offset to start a search for the first record with a
    /// timestamp at or after `target` (see [`TimeIndex::lookup`]).
    pub fn time_lookup(&self, target: Timestamp) -> u32 {
        self.state.borrow().time_index.lookup(target)
    }

    /// `fdatasync` of the log file. A segment that no longer holds its
    /// file is sealed, and sealing synced it.
    pub async fn sync_log(&self) -> Result<()> {
        let Some(file) = self.file.borrow().clone() else {
            return Ok(());
        };
        file.sync().await.map_err(|e| {
            StorageError::write_failed(format_args!("fdatasync of {}", self.log_path.display()), &e)
        })
    }

    /// Whether the appender holds bytes not yet handed to a write.
    pub fn has_undispatched(&self) -> bool {
        match &*self.writers.borrow() {
            Some(w) => w.log.has_undispatched(),
            None => false,
        }
    }

    /// Writes out everything appended to the log file (no sync).
    pub async fn write_out_log(&self) -> Result<()> {
        let writers = self.writers()?;
        writers
            .log
            .write_out()
            .await
            .map(|_| ())
            .map_err(|e| StorageError::write_failed("", &e))
    }

    /// Seals the active segment: writes everything out, adds the final time
    /// index entry, trims every file to its exact size and syncs all three.
    /// Afterwards the segment is immutable, and its log is handed to the
    /// open-file cache (reads open it from there).
    pub async fn seal(&self) -> Result<()> {
        self.finish_writing(true).await?;
        *self.writers.borrow_mut() = None;
        self.release_file();
        Ok(())
    }

    /// Writes out and syncs everything and trims the log to its exact size
    /// (so a restart finds no padding), then writes both indexes whole from
    /// memory and syncs them; when `seal`, the time index ends with the
    /// final entry.
    ///
    /// The order is what recovery relies on: the log is trimmed and synced
    /// first, then the offset index, and the time index last — so a final
    /// time-index entry on disk proves the log file is exact and durable
    /// (see [`Segment::open_sealed`]). A crash at any step leaves a segment
    /// that recovery either trusts or validates whole.
    pub async fn finish_writing(&self, seal: bool) -> Result<()> {
        let writers = self.writers()?;
        let failed = |e: std::io::Error| StorageError::write_failed("", &e);
        let end = writers.log.write_out().await.map_err(failed)?;
        let point = |step: &str| {
            if seal {
                super::crash::point(step);
            }
        };
        point("seal.after_index_write_out");
        let file = self.owned_file()?;
        self.trim_and_sync(&file, end, &self.log_path).await?;
        point("seal.after_log_sync");
        let (index_bytes, time_bytes) = {
            let mut st = self.state.borrow_mut();
            if seal {
                let records = st.next_offset.distance_from(self.base) as u32;
                let max = st.max_timestamp;
                if records > 0 {
                    st.time_index.push_final(max, records);
                }
            }
            (encode_index(&st.index), encode_time_index(&st.time_index))
        };
        write_whole(&self.disk, &self.index_path, &index_bytes).await?;
        point("seal.after_index_sync");
        let time = reset_file(&self.disk, &self.time_path, &time_bytes).await?;
        point("seal.after_final_time_entry");
        self.trim_and_sync(&time, time_bytes.len() as u64, &self.time_path)
            .await?;
        time.close()
            .await
            .map_err(|e| StorageError::io("closing", &self.time_path, e))
    }

    async fn trim_and_sync(&self, file: &DiskFile, len: u64, path: &Path) -> Result<()> {
        file.truncate(len)
            .await
            .map_err(|e| StorageError::io("truncating", path, e))?;
        file.sync().await.map_err(|e| {
            StorageError::write_failed(format_args!("fdatasync of {}", path.display()), &e)
        })
    }

    /// Waits until no write of this segment's appenders is in flight (each
    /// finished, succeeded or failed).
    pub async fn settle(&self) {
        let Some(writers) = self.writers.borrow().clone() else {
            return;
        };
        // The indexes have no appenders: they live in memory until the
        // segment is sealed or its log closes.
        writers.log.settle().await;
    }

    /// The file position where the batch starting at `offset` begins (the
    /// end of the one before it), found by scanning from the index entry
    /// at or before it. `offset` must be a batch boundary in the part of
    /// the file known to be written.
    pub async fn position_of(&self, offset: Offset) -> Result<u64> {
        if offset == self.base {
            return Ok(0);
        }
        let (rel, pos) = {
            let st = self.state.borrow();
            st.index
                .lookup(offset.distance_from(self.base).min(u32::MAX as u64) as u32)
        };
        let file = self.file().await?;
        let outcome = scan(
            &file,
            pos as u64,
            self.written(),
            self.base.plus(rel as u64),
            offset,
            self.batch_bytes_max,
            |_, _, _, _, _| {},
        )
        .await?;
        if outcome.next_offset != offset {
            return Err(StorageError::Corrupt {
                file: self.log_path.clone(),
                position: outcome.valid_end,
                reason: format!(
                    "no batch boundary at offset {offset} in the written part of the segment (the scan ended at {})",
                    outcome.next_offset
                ),
            });
        }
        Ok(outcome.valid_end)
    }

    /// The start of the batch holding `offset` (or `offset` itself, if a
    /// batch starts there): its offset and file position, found by
    /// scanning the written part of the file from the index entry at or
    /// before it. If `offset` is at or past the segment's end, that is the
    /// end of the written part.
    pub async fn batch_start_at_or_below(&self, offset: Offset) -> Result<(Offset, u64)> {
        if offset <= self.base {
            return Ok((self.base, 0));
        }
        let (rel, pos) = {
            let st = self.state.borrow();
            st.index
                .lookup(offset.distance_from(self.base).min(u32::MAX as u64) as u32)
        };
        let file = self.file().await?;
        let outcome = scan(
            &file,
            pos as u64,
            self.written(),
            self.base.plus(rel as u64),
            offset,
            self.batch_bytes_max,
            |_, _, _, _, _| {},
        )
        .await?;
        match &outcome.stopped {
            None | Some(ScanStop::PastLimit { .. }) => Ok((outcome.next_offset, outcome.valid_end)),
            Some(stop) => Err(StorageError::Corrupt {
                file: self.log_path.clone(),
                position: outcome.valid_end,
                reason: format!(
                    "looking for the batch that holds offset {offset}, the scan stopped at offset {}: {stop}",
                    outcome.next_offset
                ),
            }),
        }
    }

    /// Cuts the segment at `pos` and makes it active again, without
    /// reopening the log: the log file is cut at `pos` (a batch boundary
    /// below which everything is known to be written) and synced, the
    /// index files are rewritten with the entries below `pos`, and a new
    /// active segment over the same files continues at `pos` with fresh
    /// appenders. Used by the recovery of the active segment after a
    /// failed write (a full disk), and by a truncation (on the active
    /// segment, or on a sealed one that becomes the last). This segment
    /// must be settled ([`Segment::settle`]) and is not to be used
    /// afterwards. Fails (and may be retried) while the disk is still full.
    pub async fn reopen_at(
        &self,
        disk: &Disk,
        dir: &Path,
        pos: u64,
        settings: SegmentSettings,
    ) -> Result<Segment> {
        // Readers still holding this handle read no further than the cut
        // (the log serves what lies above it from its tail cache).
        self.cut_at
            .set(Some(self.cut_at.get().map_or(pos, |cut| cut.min(pos))));
        // Its own file if active; a sealed one's from the open-file cache.
        let file = self.file().await?;
        file.truncate(pos)
            .await
            .map_err(|e| StorageError::io("truncating", &self.log_path, e))?;
        file.sync().await.map_err(|e| {
            StorageError::write_failed(format_args!("fdatasync of {}", self.log_path.display()), &e)
        })?;
        let (index, time_index, created) = {
            let st = self.state.borrow();
            let mut index = st.index.clone();
            index.truncate_to_position(pos);
            let mut time_index = st.time_index.clone();
            time_index.truncate_to_offset(index.last().map_or(0, |(o, _)| o));
            (index, time_index, st.created)
        };
        write_whole(disk, &self.index_path, &encode_index(&index)).await?;
        write_whole(disk, &self.time_path, &encode_time_index(&time_index)).await?;
        // The indexes are now exact for the first `pos` bytes, as after a
        // clean close: recovery validates from the last entry only.
        let segment = Segment::recover_active(disk, dir, self.base, settings, Some(pos)).await?;
        segment.state.borrow_mut().created = created;
        Ok(segment)
    }

    /// Finishes the seal of a rolled segment whose background seal failed
    /// (a full disk): its data is all in the file (a roll writes it out
    /// first), so the log file is trimmed and synced and both indexes are
    /// written whole from memory, the time index last with its final entry
    /// (the mark of a completed seal, see [`Segment::open_sealed`]).
    pub async fn reseal(&self, disk: &Disk) -> Result<()> {
        self.settle().await;
        let size = self.size();
        let file = self.file().await?;
        self.trim_and_sync(&file, size, &self.log_path).await?;
        let (index, time_index) = {
            let mut st = self.state.borrow_mut();
            let records = st.next_offset.distance_from(self.base) as u32;
            let max = st.max_timestamp;
            if records > 0 {
                st.time_index.push_final(max, records);
            }
            (st.index.clone(), st.time_index.clone())
        };
        write_whole(disk, &self.index_path, &encode_index(&index)).await?;
        write_whole(disk, &self.time_path, &encode_time_index(&time_index)).await?;
        *self.writers.borrow_mut() = None;
        // Sealed now: its file goes to the open-file cache, as after a seal.
        drop(file);
        self.release_file();
        Ok(())
    }

    /// Reads whole batches starting with the one that holds `from`: at most
    /// `max_bytes`, but always at least one batch; only batches starting
    /// below `stop` and ending at or below `limit_pos` (data the file holds).
    /// Returns the bytes and the offset after the last batch, or `None` if
    /// no such batch is in the file. Every batch is validated; a bad one is
    /// [`StorageError::Corrupt`] with its file and position.
    ///
    /// The bytes come through `stream` (see `readahead`): a read that
    /// continues the stream's last one starts where it ended and finds its
    /// blocks read ahead, and then has the stream read ahead up to
    /// `ahead_limit` (a file position: what the log does not serve from
    /// memory).
    pub(crate) async fn read(
        &self,
        from: Offset,
        max_bytes: usize,
        stop: Offset,
        limit_pos: u64,
        stream: &mut ReadStream,
        ahead_limit: u64,
    ) -> Result<Option<(Bytes, Offset)>> {
        let sequential = stream.continues(from);
        let (start_pos, mut expected) = match stream.position_of(self.key, from) {
            Some(pos) => (pos, from),
            None => {
                let st = self.state.borrow();
                let rel = from.distance_from(self.base).min(u32::MAX as u64) as u32;
                let (o, p) = st.index.lookup(rel);
                (p as u64, self.base.plus(o as u64))
            }
        };
        if start_pos >= limit_pos {
            return Ok(None);
        }
        stream.seek(self.key, start_pos);
        let budget = self.disk.read_ahead();
        // Held for this read: the cache does not close it under us.
        let file = self.file().await?;
        // Every block this read will likely need, at once (the reads go to
        // the device together): its bytes, plus the batches an index
        // lookup may have to skip first.
        let window = max_bytes.saturating_add(self.index_interval_bytes as usize + HEADER_BYTES);
        stream.issue(
            &file,
            self.key,
            start_pos,
            start_pos.saturating_add(window as u64),
            limit_pos,
            false,
            &budget,
        );
        // Walk the batches by their framing and header alone, so the
        // read-ahead can start before their CRCs are checked.
        let mut header = [0u8; HEADER_BYTES];
        let mut pos = start_pos;
        let mut taken: Option<(u64, u64)> = None;
        let mut next = expected;
        while pos < limit_pos {
            let have = ((limit_pos - pos) as usize).min(HEADER_BYTES);
            if have < LOG_OVERHEAD_BYTES {
                break;
            }
            let head_end = pos + have as u64;
            stream.issue(&file, self.key, pos, head_end, limit_pos, false, &budget);
            stream
                .ready(self.key, pos, head_end, &self.log_path, &budget)
                .await?;
            let head: &[u8] = match stream.slice(self.key, pos, have) {
                Some(bytes) => bytes,
                None => {
                    stream.copy_out(self.key, pos, &mut header[..have]);
                    &header[..have]
                }
            };
            let framing = read_framing(head).expect("a framing's bytes are there");
            let total = framing.total_bytes;
            let problem = if total < HEADER_BYTES as u64 || total > self.batch_bytes_max as u64 {
                Some(format!("batch length field {total} is not plausible"))
            } else if framing.base_offset != expected.0 as i64 {
                Some(format!(
                    "batch base offset {} where {expected} was expected",
                    framing.base_offset
                ))
            } else {
                None
            };
            if let Some(reason) = problem {
                // A damaged earlier batch explains this better: report it.
                if let Some((start, end)) = taken {
                    self.copy_verified(stream, start, end).await?;
                }
                return Err(StorageError::Corrupt {
                    file: self.log_path.clone(),
                    position: pos,
                    reason,
                });
            }
            if framing.base_offset as u64 >= stop.0 || pos + total > limit_pos {
                // Served from memory, or not whole in the file yet.
                break;
            }
            // The offsets the batch spans: its last offset delta + 1 (the
            // record count, except in a batch compaction rewrote).
            let last_delta = i32::from_be_bytes(head[23..27].try_into().unwrap());
            let after = expected.plus(last_delta.max(0) as u64 + 1);
            if after > from {
                match taken {
                    None => taken = Some((pos, pos + total)),
                    Some((start, end)) => {
                        if end - start + total > max_bytes as u64 {
                            break;
                        }
                        taken = Some((start, end + total));
                    }
                }
                next = after;
            } else {
                // Skipped batches (at most an index interval) are checked
                // now, so a bad count cannot shift the offsets after it.
                self.copy_verified(stream, pos, pos + total).await?;
            }
            expected = after;
            pos += total;
        }
        let Some((start, end)) = taken else {
            return Ok(None);
        };
        if sequential {
            let to = end.saturating_add(READ_AHEAD_BYTES as u64);
            let limit = ahead_limit.min(limit_pos);
            if stream.issue(&file, self.key, end, to, limit, true, &budget) {
                // glommio hands queued reads to the kernel only when no task
                // is runnable; step off the CPU for a moment so the
                // read-ahead starts before this read's CRCs and copy.
                glommio::timer::sleep(std::time::Duration::from_micros(1)).await;
            }
        }
        let bytes = self.copy_verified(stream, start, end).await?;
        stream.ended(self.key, next, end, sequential);
        Ok(Some((bytes, next)))
    }

    /// The whole batches at `[start, end)`, copied out of the stream's
    /// blocks (read now if need be) and verified; the first bad one is
    /// [`StorageError::Corrupt`].
    async fn copy_verified(&self, stream: &mut ReadStream, start: u64, end: u64) -> Result<Bytes> {
        let budget = self.disk.read_ahead();
        let len = (end - start) as usize;
        if stream.ahead_of(self.key, start) < len as u64 {
            let file = self.file().await?;
            stream.issue(&file, self.key, start, end, end, false, &budget);
        }
        stream
            .ready(self.key, start, end, &self.log_path, &budget)
            .await?;
        let mut out = Vec::with_capacity(len);
        let copied = stream.append_to(self.key, start, len, &mut out);
        if copied < len {
            return Err(StorageError::Corrupt {
                file: self.log_path.clone(),
                position: start + copied as u64,
                reason: "the file ends before the bytes it should hold".into(),
            });
        }
        self.verify_range(&out, start, 0, len)?;
        Ok(Bytes::from(out))
    }

    /// Verifies the whole batches in `buf[start..end]` (`buf` starts at
    /// file position `pos`); the first bad one is [`StorageError::Corrupt`].
    fn verify_range(&self, buf: &[u8], pos: u64, start: usize, end: usize) -> Result<()> {
        let mut at = start;
        while at < end {
            let info = verify_stored(&buf[at..end], self.batch_bytes_max).map_err(|e| {
                StorageError::Corrupt {
                    file: self.log_path.clone(),
                    position: pos + at as u64,
                    reason: e.to_string(),
                }
            })?;
            at += info.bytes;
        }
        Ok(())
    }

    /// Starts reading this segment from position 0 into `stream`, up to
    /// `len` bytes below `limit` (the reader will come here next: the
    /// previous segment's read-ahead reached its end).
    pub(crate) async fn read_ahead_from_start(
        &self,
        stream: &mut ReadStream,
        len: u64,
        limit: u64,
    ) -> Result<()> {
        if limit == 0 || len == 0 {
            return Ok(());
        }
        let file = self.file().await?;
        let budget = self.disk.read_ahead();
        stream.issue(&file, self.key, 0, len, limit, true, &budget);
        Ok(())
    }

    /// The key of this segment instance (its blocks in a read stream).
    pub(crate) fn key(&self) -> u64 {
        self.key
    }

    /// Closes the file handles of a sealed segment and removes its files.
    /// A read already holding the file finishes on it; a later one fails
    /// (see [`Segment::is_deleted`]).
    pub async fn delete(&self, disk: &Disk) -> Result<()> {
        self.deleted.set(true);
        self.disk.open_files().forget(self.key);
        drop(self.file.borrow_mut().take());
        for path in [&self.log_path, &self.index_path, &self.time_path] {
            match disk.remove(path).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io("removing", path, e)),
            }
            if path == &self.log_path {
                super::crash::point("retention.after_log_remove");
            }
        }
        Ok(())
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        self.disk.open_files().forget(self.key);
    }
}

/// Accumulates index entries while batches are scanned, with the same
/// rules [`Segment::append_batch`] applies.
struct IndexBuilder {
    interval: u64,
    index: OffsetIndex,
    time_index: TimeIndex,
    bytes_since: u64,
    max_timestamp: Timestamp,
    seen_bytes: bool,
}

impl IndexBuilder {
    fn new(interval: u64) -> IndexBuilder {
        IndexBuilder {
            interval,
            index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            bytes_since: 0,
            max_timestamp: Timestamp::NONE,
            seen_bytes: false,
        }
    }

    /// Continues after data summarised by `time_index`: the scan starts at
    /// an index entry, so the bytes-since-entry count starts at zero.
    fn resume(interval: u64, time_index: &TimeIndex) -> IndexBuilder {
        let mut builder = IndexBuilder::new(interval);
        builder.max_timestamp = time_index.last().map_or(Timestamp::NONE, |(t, _)| t);
        builder.time_index = time_index.clone();
        builder
    }

    fn add(
        &mut self,
        segment_base: Offset,
        pos: u64,
        first: Offset,
        bytes: u64,
        max_timestamp: Timestamp,
        _records: u32,
    ) {
        if pos > 0 && self.seen_bytes && self.bytes_since >= self.interval {
            let rel = first.distance_from(segment_base) as u32;
            self.index.push(rel, pos as u32);
            self.time_index.maybe_push(self.max_timestamp, rel);
            self.bytes_since = 0;
        }
        self.seen_bytes = true;
        self.bytes_since += bytes;
        self.max_timestamp = self.max_timestamp.max(max_timestamp);
    }

    fn finish(self) -> (OffsetIndex, TimeIndex, Timestamp) {
        (self.index, self.time_index, self.max_timestamp)
    }
}

/// Reads a whole small file with direct I/O; `None` if it does not exist.
pub(super) async fn read_whole(disk: &Disk, path: &Path) -> Result<Option<Bytes>> {
    let file = match disk.open_file(path, false).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io("opening", path, e)),
    };
    let size = file
        .size()
        .await
        .map_err(|e| StorageError::io("sizing", path, e))?;
    let bytes = file
        .read_bytes(0, size as usize)
        .await
        .map_err(|e| StorageError::io("reading", path, e))?;
    let _ = file.close().await;
    Ok(Some(bytes))
}

/// Replaces a file's contents with `bytes` (direct I/O, synced, exact size).
pub(super) async fn write_whole(disk: &Disk, path: &Path, bytes: &[u8]) -> Result<()> {
    let file = reset_file(disk, path, bytes).await?;
    file.sync()
        .await
        .map_err(|e| StorageError::io("syncing", path, e))?;
    file.close()
        .await
        .map_err(|e| StorageError::io("closing", path, e))
}

/// Opens (creating) `path` and makes its contents exactly `bytes`.
async fn reset_file(disk: &Disk, path: &Path, bytes: &[u8]) -> Result<DiskFile> {
    let file = disk
        .open_file(path, true)
        .await
        .map_err(|e| StorageError::io("opening", path, e))?;
    if !bytes.is_empty() {
        let len = (bytes.len() as u64).div_ceil(DIRECT_IO_ALIGN_BYTES as u64) as usize
            * DIRECT_IO_ALIGN_BYTES;
        let mut buf = file.alloc(len);
        buf.as_bytes_mut()[..bytes.len()].copy_from_slice(bytes);
        buf.as_bytes_mut()[bytes.len()..].fill(0);
        file.write_at(buf, 0)
            .await
            .map_err(|e| StorageError::io("writing", path, e))?;
    }
    file.truncate(bytes.len() as u64)
        .await
        .map_err(|e| StorageError::io("truncating", path, e))?;
    Ok(file)
}

/// The bytes of the partial last block below `size`.
async fn read_tail(file: &DiskFile, size: u64) -> Result<Vec<u8>> {
    let from = align_down(size);
    if from == size {
        return Ok(Vec::new());
    }
    let bytes = file
        .read_bytes(from, (size - from) as usize)
        .await
        .map_err(|e| StorageError::io("reading", file.path(), e))?;
    Ok(bytes.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_file_names_have_twenty_digits_and_parse_back() {
        assert_eq!(log_file_name(Offset(1234)), "00000000000000001234.log");
        assert_eq!(
            parse_log_file_name("00000000000000001234.log"),
            Some(Offset(1234))
        );
        assert_eq!(parse_log_file_name("1234.log"), None);
        assert_eq!(parse_log_file_name("0000000000000000123x.log"), None);
        assert_eq!(parse_log_file_name("00000000000000001234.index"), None);
    }
}
