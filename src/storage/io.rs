//! The narrow seam between the storage engine and the disk.
//!
//! Everything the engine reads or writes goes through [`Disk`] and
//! [`DiskFile`]: glommio direct I/O (`O_DIRECT` over io_uring), aligned DMA
//! buffers, `fdatasync`. Nothing else in `storage/` names glommio's file
//! types, so a move to another io_uring runtime touches this file, and a
//! test can inject a failed or torn write here ([`Faults`]).
//!
//! Runs on the executor that owns the log; nothing here is `Send`.
//!
//! # The poll-ring trap
//!
//! glommio decides once per block device and per executor thread whether the
//! io_uring poll ring works, by reading one block of the first file opened
//! with direct I/O. If that first file is empty the probe succeeds
//! trivially, glommio caches "pollable", and every later DMA read on the
//! device fails with `EOPNOTSUPP` on devices (like virtio disks) that cannot
//! poll. [`Disk::open`] therefore writes a non-empty marker file into the
//! data directory and opens it with direct I/O before any data file, so the
//! probe reads real data and caches the right answer.

use super::crash;
use super::files::{OpenFiles, Slot};
use super::readahead::ReadAheadBudget;
use crate::constants::{
    DIRECT_IO_ALIGN_BYTES, OPEN_SEGMENT_FILES_DEFAULT, PROBE_FILE_BYTES, ROLLS_IN_FLIGHT_MAX,
};
use bytes::Bytes;
use glommio::io::{DmaBuffer, DmaFile, OpenOptions};
use std::cell::Cell;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Name of the marker file read at start (see the module docs).
pub const PROBE_FILE_NAME: &str = ".corelog-probe";

/// Converts glommio's error type, keeping the OS error code.
pub(crate) fn io_err(e: glommio::GlommioError<()>) -> io::Error {
    io::Error::from(e)
}

/// Injected failures, for tests of what the engine does when the disk
/// misbehaves. Shared by every file opened through one [`Disk`].
#[derive(Debug, Default)]
pub struct Faults {
    /// Bytes that may still be written before writes start failing.
    write_budget_bytes: Cell<Option<u64>>,
    /// When the budget runs out mid-write, write the part that fits (in
    /// whole aligned blocks) before failing: a torn write.
    tear: Cell<bool>,
    /// Fail every `fdatasync`.
    fail_sync: Cell<bool>,
    /// Failed writes (and syncs) report `ENOSPC`, as a full file system
    /// does, instead of an `EIO`-like error.
    no_space: Cell<bool>,
}

impl Faults {
    /// After `bytes` more bytes have been written, fail writes with `EIO`.
    /// With `tear`, the failing write persists its first whole blocks.
    pub fn fail_writes_after(&self, bytes: u64, tear: bool) {
        self.write_budget_bytes.set(Some(bytes));
        self.tear.set(tear);
    }

    /// Make every later `fdatasync` fail with `EIO`.
    pub fn fail_syncs(&self) {
        self.fail_sync.set(true);
    }

    /// The disk fills: after `bytes` more bytes have been written, every
    /// write fails with `ENOSPC` (the failing write persists the whole
    /// blocks that still fit, as a real file system may) until
    /// [`Faults::heal`] gives the space back.
    pub fn fill_disk_after(&self, bytes: u64) {
        self.write_budget_bytes.set(Some(bytes));
        self.tear.set(true);
        self.no_space.set(true);
    }

    /// Stop injecting failures (for a full disk: the space is back).
    pub fn heal(&self) {
        self.write_budget_bytes.set(None);
        self.fail_sync.set(false);
        self.no_space.set(false);
    }

    fn error(&self, what: &str) -> io::Error {
        if self.no_space.get() {
            io::Error::new(
                io::ErrorKind::StorageFull,
                format!("injected fault: {what}: no space left on device"),
            )
        } else {
            injected(what)
        }
    }
}

fn injected(what: &str) -> io::Error {
    io::Error::other(format!("injected fault: {what}"))
}

/// Whether an I/O error says the file system is out of space (or the
/// user's quota is): a condition that ends when space is freed, unlike a
/// failing device.
pub fn is_no_space(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    ) || matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

/// A process-level test hook: while the file named by
/// `CORELOG_TEST_ENOSPC_FILE` exists, every data write of the process fails
/// with `ENOSPC`, as on a full disk; removing the file gives the space
/// back. Without the variable, one load of an initialised `OnceLock`.
pub const ENOSPC_FILE_ENV: &str = "CORELOG_TEST_ENOSPC_FILE";

fn test_disk_full() -> bool {
    static FILE: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    FILE.get_or_init(|| std::env::var_os(ENOSPC_FILE_ENV).map(PathBuf::from))
        .as_ref()
        .is_some_and(|f| f.exists())
}

/// Makes sure `root` holds the non-empty probe marker and returns its path.
/// Plain `std::fs`: this is not on the data path, and it must exist before
/// any direct-I/O open. Every executor of a broker may run this at once, so
/// each writes its own temporary file and renames it over the marker (the
/// contents are identical, the rename atomic).
fn write_probe_marker(root: &Path) -> io::Result<PathBuf> {
    let probe = root.join(PROBE_FILE_NAME);
    let probe_len = std::fs::metadata(&probe).map(|m| m.len()).unwrap_or(0);
    if probe_len < PROBE_FILE_BYTES as u64 {
        let mut marker = vec![0u8; PROBE_FILE_BYTES];
        let text = b"corelog direct-I/O probe file: read at start so glommio probes real data\n";
        marker[..text.len()].copy_from_slice(text);
        let tmp = root.join(format!(
            "{PROBE_FILE_NAME}.{}.{:?}.tmp",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&tmp, &marker)?;
        std::fs::rename(&tmp, &probe)?;
    }
    Ok(probe)
}

/// A data directory on one device, opened on the current executor, with
/// the executor's cache of open sealed-segment files (see `files`).
#[derive(Clone, Debug)]
pub struct Disk {
    root: PathBuf,
    faults: Option<Rc<Faults>>,
    files: OpenFiles,
    /// Segment rolls whose old segment is still sealing, across every log
    /// of this executor: each holds a descriptor or two more than an idle
    /// partition, so their number is bounded (see [`Disk::roll_permit`]).
    rolls: Rc<glommio::sync::Semaphore>,
    /// The bytes this executor's logs may hold read ahead of their readers.
    read_ahead: ReadAheadBudget,
}

impl Disk {
    /// Opens (creating if needed) a data directory for direct I/O on this
    /// executor, and primes glommio's poll-ring probe with a non-empty file.
    /// Must be called on every executor before it opens a data file.
    pub async fn open(root: impl Into<PathBuf>) -> io::Result<Disk> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("creating data directory {}: {e}", root.display()),
            )
        })?;
        let probe = write_probe_marker(&root)?;
        let file = DmaFile::open(&probe).await.map_err(io_err)?;
        // The probe happens inside open; one real read makes sure it ran.
        file.read_at(0, DIRECT_IO_ALIGN_BYTES)
            .await
            .map_err(io_err)?;
        file.close().await.map_err(io_err)?;
        Ok(Disk {
            root,
            faults: None,
            files: OpenFiles::new(OPEN_SEGMENT_FILES_DEFAULT),
            rolls: Rc::new(glommio::sync::Semaphore::new(ROLLS_IN_FLIGHT_MAX as u64)),
            read_ahead: ReadAheadBudget::default(),
        })
    }

    /// The same directory with failure injection attached to every file
    /// opened from the returned handle.
    pub fn with_faults(&self, faults: Rc<Faults>) -> Disk {
        Disk {
            root: self.root.clone(),
            faults: Some(faults),
            files: self.files.clone(),
            rolls: self.rolls.clone(),
            read_ahead: self.read_ahead.clone(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The cache of open sealed-segment files shared by every log opened
    /// through this handle (and its clones).
    pub fn open_files(&self) -> &OpenFiles {
        &self.files
    }

    /// The read-ahead budget shared by every log opened through this
    /// handle (and its clones): one per executor (see `readahead`).
    pub fn read_ahead(&self) -> ReadAheadBudget {
        self.read_ahead.clone()
    }

    /// Waits until fewer than [`ROLLS_IN_FLIGHT_MAX`] segment rolls of this
    /// executor are still sealing their old segment; the returned permit is
    /// held until that seal ends. Without the bound, every partition rolling
    /// at once (one producer writing to all of them) would hold its old and
    /// new log open together and run the process out of descriptors.
    pub async fn roll_permit(&self) -> io::Result<glommio::sync::StaticPermit> {
        self.rolls
            .acquire_static_permit(1)
            .await
            .map_err(|_| io::Error::other("the roll limiter is closed"))
    }

    /// Opens a file for direct-I/O reads and writes, creating it if asked.
    pub async fn open_file(&self, path: &Path, create: bool) -> io::Result<DiskFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .dma_open(path)
            .await
            .map_err(io_err)?;
        Ok(DiskFile {
            file,
            path: path.to_path_buf(),
            faults: self.faults.clone(),
            slot: None,
        })
    }

    /// Removes a file (through glommio's blocking pool, off the executor).
    pub async fn remove(&self, path: &Path) -> io::Result<()> {
        glommio::io::remove(path).await.map_err(io_err)
    }

    /// Renames a file (through glommio's blocking pool).
    pub async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        glommio::io::rename(from, to).await.map_err(io_err)
    }

    /// Makes a directory's entries durable (`fsync` of the directory): a
    /// file created, renamed or removed in it survives a machine crash only
    /// after this. Runs on glommio's blocking pool, off the executor.
    pub async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let dir = dir.to_path_buf();
        glommio::executor()
            .spawn_blocking(move || std::fs::File::open(&dir)?.sync_all())
            .await
    }
}

/// One file opened for direct I/O. Positions and lengths of writes must be
/// aligned to [`DiskFile::alignment`]; reads may be unaligned.
#[derive(Debug)]
pub struct DiskFile {
    file: DmaFile,
    path: PathBuf,
    faults: Option<Rc<Faults>>,
    /// Its place in the open-file cache's count, if the cache opened it.
    pub(crate) slot: Option<Slot>,
}

impl DiskFile {
    pub(crate) fn set_slot(&mut self, slot: Slot) {
        self.slot = Some(slot);
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The device's direct-I/O alignment; divides [`DIRECT_IO_ALIGN_BYTES`].
    pub fn alignment(&self) -> usize {
        self.file.alignment() as usize
    }

    /// An aligned buffer for [`DiskFile::write_at`].
    pub fn alloc(&self, bytes: usize) -> DmaBuffer {
        self.file.alloc_dma_buffer(bytes)
    }

    /// Writes all of `buf` at `pos` (both aligned). Completes when the
    /// device has accepted the data — in its cache, not necessarily on
    /// stable media: only [`DiskFile::sync`] promises that. A short write is
    /// an error (`WriteZero`), so a caller never has to track partial writes.
    pub async fn write_at(&self, mut buf: DmaBuffer, pos: u64) -> io::Result<()> {
        let len = buf.len();
        if let Some(faults) = &self.faults
            && let Some(budget) = faults.write_budget_bytes.get()
        {
            if budget < len as u64 {
                faults.write_budget_bytes.set(Some(0));
                let keep = (budget as usize) / DIRECT_IO_ALIGN_BYTES * DIRECT_IO_ALIGN_BYTES;
                if faults.tear.get() && keep > 0 {
                    buf.trim_to_size(keep);
                    self.file.write_at(buf, pos).await.map_err(io_err)?;
                }
                return Err(faults.error("write failed"));
            }
            faults.write_budget_bytes.set(Some(budget - len as u64));
        }
        if test_disk_full() {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        if crash::armed() {
            self.crash_points_before_write(&mut buf, pos).await;
        }
        let written = self.file.write_at(buf, pos).await.map_err(io_err)?;
        if written != len {
            // A regular file takes a direct-I/O write whole unless the file
            // system ran out of blocks part way: report it as a full disk.
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!(
                    "short write to {}: {written} of {len} bytes at position {pos} (the file system is probably full)",
                    self.path.display()
                ),
            ));
        }
        self.crash_point("write", "after");
        Ok(())
    }

    /// Passes the crash point `<op>.<kind of this file>.<phase>`.
    fn crash_point(&self, op: &str, phase: &str) {
        if crash::armed() {
            crash::file_point(op, crash::file_kind(&self.path), phase);
        }
    }

    /// The crash points of a write (see [`crash`]): die before it, after
    /// writing only the first half of its blocks, or with it submitted to
    /// io_uring and not awaited.
    async fn crash_points_before_write(&self, buf: &mut DmaBuffer, pos: u64) {
        let kind = crash::file_kind(&self.path);
        crash::file_point("write", kind, "before");
        if crash::file_point_fires("write", kind, "torn") {
            let blocks = buf.len() / DIRECT_IO_ALIGN_BYTES;
            if blocks > 1 {
                let mut half = self
                    .file
                    .alloc_dma_buffer(blocks / 2 * DIRECT_IO_ALIGN_BYTES);
                let n = half.len();
                half.as_bytes_mut().copy_from_slice(&buf.as_bytes()[..n]);
                let _ = self.file.write_at(half, pos).await;
            }
            crash::kill_self(&format!("write.{kind}.torn"));
        }
        if crash::file_point_fires("write", kind, "inflight") {
            let mut copy = self.file.alloc_dma_buffer(buf.len());
            copy.as_bytes_mut().copy_from_slice(buf.as_bytes());
            let write = std::pin::pin!(self.file.write_at(copy, pos));
            // Parking the executor on a timer submits the queued write.
            let nap = std::pin::pin!(glommio::timer::sleep(std::time::Duration::from_micros(1)));
            let _ = futures::future::select(write, nap).await;
            crash::kill_self(&format!("write.{kind}.inflight"));
        }
    }

    /// Reads `len` bytes at `pos` (any alignment) into a new `Bytes`: the
    /// one copy out of the DMA buffer. Returns fewer bytes at end of file.
    pub async fn read_bytes(&self, pos: u64, len: usize) -> io::Result<Bytes> {
        let read = self.file.read_at(pos, len).await.map_err(io_err)?;
        Ok(Bytes::copy_from_slice(&read))
    }

    /// Reads `len` bytes at `pos` (any alignment) and keeps them in the DMA
    /// buffer they landed in: no copy. Returns fewer bytes at end of file.
    pub async fn read_dma(&self, pos: u64, len: usize) -> io::Result<DmaRead> {
        let read = self.file.read_at(pos, len).await.map_err(io_err)?;
        Ok(DmaRead(read))
    }

    /// Reads `len` bytes at `pos` (both aligned to [`DiskFile::alignment`])
    /// into a DMA buffer of exactly that size: one device read, no
    /// realignment. Returns fewer bytes at end of file.
    pub async fn read_dma_aligned(&self, pos: u64, len: usize) -> io::Result<DmaRead> {
        let read = self.file.read_at_aligned(pos, len).await.map_err(io_err)?;
        Ok(DmaRead(read))
    }

    /// Makes every completed write durable (`fdatasync`).
    pub async fn sync(&self) -> io::Result<()> {
        if let Some(faults) = &self.faults
            && faults.fail_sync.get()
        {
            return Err(faults.error("fdatasync failed"));
        }
        self.crash_point("sync", "before");
        let started = std::time::Instant::now();
        self.file.fdatasync().await.map_err(io_err)?;
        crate::metrics::fsync_observed(started.elapsed());
        self.crash_point("sync", "after");
        Ok(())
    }

    /// Sets the file length.
    pub async fn truncate(&self, len: u64) -> io::Result<()> {
        self.crash_point("truncate", "before");
        self.file.truncate(len).await.map_err(io_err)?;
        self.crash_point("truncate", "after");
        Ok(())
    }

    /// The file length as the file system reports it.
    pub async fn size(&self) -> io::Result<u64> {
        self.file.file_size().await.map_err(io_err)
    }

    /// Reserves blocks up to `len` without changing the reported size, so
    /// later writes do not allocate extents one by one.
    pub async fn reserve(&self, len: u64) -> io::Result<()> {
        self.file.pre_allocate(len, true).await.map_err(io_err)
    }

    pub async fn close(self) -> io::Result<()> {
        self.file.close().await.map_err(io_err)
    }
}

/// Bytes read with direct I/O, still in their DMA buffer. Executor-local
/// (not `Send`); copy out what must travel.
#[derive(Debug)]
pub struct DmaRead(glommio::io::ReadResult);

impl std::ops::Deref for DmaRead {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_writing_the_probe_marker_at_once_all_succeed() {
        // Regression: every shard wrote the marker through one shared
        // temporary name, so a shard could find it renamed away by another
        // (ENOENT) and the broker failed to start.
        for _ in 0..300 {
            let dir = tempfile::tempdir().unwrap();
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    let (root, barrier) = (dir.path().to_path_buf(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        write_probe_marker(&root)
                    })
                })
                .collect();
            for t in threads {
                let probe = t
                    .join()
                    .unwrap()
                    .expect("every thread finds or writes the marker");
                assert_eq!(
                    std::fs::metadata(probe).unwrap().len(),
                    PROBE_FILE_BYTES as u64
                );
            }
        }
    }
}
