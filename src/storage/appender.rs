//! Write-behind appends to one file through direct I/O.
//!
//! Bytes are copied once, into an aligned chunk; a full chunk is handed to
//! the device as one write while the next chunk fills. [`Appender::flush`]
//! writes a partly filled chunk padded with zeros to the block boundary and
//! keeps the partial last block (the *carry*) in memory, so the next write
//! starts at the aligned position and rewrites that block with more data.
//! The file's length on disk may therefore run past the logical end (zero
//! padding); the owner truncates it when the file is sealed, and recovery
//! trims padding after a crash.
//!
//! Invariants:
//! * `written() <= end()`: every byte below `written()` is in the file (the
//!   device accepted it); bytes above it live only in chunks.
//! * Two writes that cover the same block never run at once: a write that
//!   starts with a carry waits for the write before it to finish, so a stale
//!   copy of the block can never land last.
//! * At most [`WRITES_INFLIGHT_MAX`] full chunks of this file, and at most
//!   [`WRITE_INFLIGHT_SHARD_BYTES`] over the shard, are in flight; the append
//!   that would exceed it waits (backpressure), plus at most one flush.
//! * After a failed write every call returns the same error (with the same
//!   [`io::ErrorKind`], so a full disk stays recognisable): the file's
//!   state on disk is unknown and only recovery may touch it again.
//!   `written()` stops at the first failed write, even when later writes
//!   succeed, so everything below it is known to be in the file.
//!
//! The owner serializes mutating calls (`append`, `flush`); glommio runs
//! everything on one thread, so this is about not interleaving across
//! `.await`, not about locks.

use super::io::DiskFile;
use crate::constants::{DIRECT_IO_ALIGN_BYTES, WRITE_INFLIGHT_SHARD_BYTES, WRITES_INFLIGHT_MAX};
use crate::trace::{self, Stage};
use event_listener::Event;
use glommio::io::DmaBuffer;
use glommio::sync::Semaphore;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::rc::Rc;

fn align_down(v: u64) -> u64 {
    v / DIRECT_IO_ALIGN_BYTES as u64 * DIRECT_IO_ALIGN_BYTES as u64
}

fn align_up(v: u64) -> u64 {
    v.div_ceil(DIRECT_IO_ALIGN_BYTES as u64) * DIRECT_IO_ALIGN_BYTES as u64
}

thread_local! {
    /// This executor's (this shard's) budget of in-flight write chunk bytes,
    /// in direct-I/O blocks.
    static SHARD_WRITE_BUDGET: Rc<Semaphore> = Rc::new(Semaphore::new(
        (WRITE_INFLIGHT_SHARD_BYTES / DIRECT_IO_ALIGN_BYTES) as u64,
    ));
}

fn shard_write_budget() -> Rc<Semaphore> {
    SHARD_WRITE_BUDGET.with(|b| b.clone())
}

/// State shared with the write tasks.
#[derive(Default)]
struct Writes {
    /// Dispatched writes in file order: (end of their data, written,
    /// finished).
    pending: RefCell<VecDeque<(u64, bool, bool)>>,
    /// Sequence number of `pending[0]`.
    first_seq: Cell<u64>,
    written: Cell<u64>,
    failed: RefCell<Option<(io::ErrorKind, String)>>,
    progress: Event,
}

impl Writes {
    fn complete(&self, seq: u64, result: io::Result<()>, what: impl FnOnce() -> String) {
        let mut pending = self.pending.borrow_mut();
        let index = (seq - self.first_seq.get()) as usize;
        // Finished (for `settle`) either way; written only if it succeeded,
        // so `written` never moves past a failed write.
        pending[index].2 = true;
        match result {
            Ok(()) => pending[index].1 = true,
            Err(e) => {
                let mut failed = self.failed.borrow_mut();
                if failed.is_none() {
                    *failed = Some((e.kind(), format!("{}: {e}", what())));
                }
            }
        }
        while let Some(&(end, true, _)) = pending.front() {
            pending.pop_front();
            self.first_seq.set(self.first_seq.get() + 1);
            self.written.set(end);
        }
        drop(pending);
        self.progress.notify(usize::MAX);
    }

    fn check(&self) -> io::Result<()> {
        match &*self.failed.borrow() {
            None => Ok(()),
            Some((kind, reason)) => Err(io::Error::new(*kind, reason.clone())),
        }
    }

    /// Whether every dispatched write has finished, failed or not.
    fn settled(&self) -> bool {
        self.pending
            .borrow()
            .iter()
            .all(|&(_, _, finished)| finished)
    }

    /// Waits until everything below `pos` is written, or a write failed.
    async fn wait_written(&self, pos: u64) -> io::Result<()> {
        loop {
            self.check()?;
            if self.written.get() >= pos {
                return Ok(());
            }
            let listener = self.progress.listen();
            self.check()?;
            if self.written.get() >= pos {
                return Ok(());
            }
            listener.await;
        }
    }
}

struct Chunk {
    buf: DmaBuffer,
    /// Aligned file position of `buf[0]`.
    pos: u64,
    /// Valid bytes in `buf`.
    len: usize,
}

/// Appends bytes to one file with write-behind (see the module docs).
pub struct Appender {
    file: Rc<DiskFile>,
    chunk_bytes: usize,
    chunk: RefCell<Option<Chunk>>,
    /// When no chunk is allocated: the aligned position the next chunk
    /// starts at, and the bytes of the partial block already at it.
    next_pos: Cell<u64>,
    carry: RefCell<Vec<u8>>,
    /// End of the data handed to write tasks.
    dispatched: Cell<u64>,
    /// End of the last dispatched write's blocks (to order overlaps).
    dispatched_blocks_end: Cell<u64>,
    next_seq: Cell<u64>,
    writes: Rc<Writes>,
    slots: Rc<Semaphore>,
}

impl Appender {
    /// An appender whose data ends at `end`. `tail` must be the file's bytes
    /// from `align_down(end)` to `end` (the partial last block).
    pub fn new(file: Rc<DiskFile>, chunk_bytes: usize, end: u64, tail: &[u8]) -> Appender {
        assert_eq!(
            tail.len() as u64,
            end - align_down(end),
            "the carried tail must be exactly the partial last block"
        );
        assert!(
            chunk_bytes >= DIRECT_IO_ALIGN_BYTES
                && chunk_bytes.is_multiple_of(DIRECT_IO_ALIGN_BYTES),
            "chunk size {chunk_bytes} must be a multiple of {DIRECT_IO_ALIGN_BYTES}"
        );
        let writes = Writes::default();
        writes.written.set(end);
        Appender {
            file,
            chunk_bytes,
            chunk: RefCell::new(None),
            next_pos: Cell::new(align_down(end)),
            carry: RefCell::new(tail.to_vec()),
            dispatched: Cell::new(end),
            dispatched_blocks_end: Cell::new(align_up(end)),
            next_seq: Cell::new(0),
            writes: Rc::new(writes),
            slots: Rc::new(Semaphore::new(WRITES_INFLIGHT_MAX as u64)),
        }
    }

    /// Logical end of the data appended so far.
    pub fn end(&self) -> u64 {
        match &*self.chunk.borrow() {
            Some(chunk) => chunk.pos + chunk.len as u64,
            None => self.next_pos.get() + self.carry.borrow().len() as u64,
        }
    }

    /// Everything below this position is in the file.
    pub fn written(&self) -> u64 {
        self.writes.written.get()
    }

    /// `Err` once any write failed.
    pub fn check(&self) -> io::Result<()> {
        self.writes.check()
    }

    /// Whether bytes are appended but not yet handed to a write.
    pub fn has_undispatched(&self) -> bool {
        self.end() > self.dispatched.get()
    }

    /// Copies `data` into chunks, dispatching each chunk that fills. Returns
    /// once the data is in memory and every full chunk is dispatched: the
    /// data is *not* in the file yet (see [`Appender::flush`]). Waits when
    /// the in-flight write limit is reached.
    pub async fn append(&self, mut data: &[u8]) -> io::Result<()> {
        self.check()?;
        while !data.is_empty() {
            let full = {
                let mut slot = self.chunk.borrow_mut();
                let chunk = slot.get_or_insert_with(|| self.new_chunk());
                let n = data.len().min(self.chunk_bytes - chunk.len);
                chunk.buf.as_bytes_mut()[chunk.len..chunk.len + n].copy_from_slice(&data[..n]);
                chunk.len += n;
                data = &data[n..];
                chunk.len == self.chunk_bytes
            };
            if full {
                let permit = self
                    .slots
                    .clone()
                    .acquire_static_permit(1)
                    .await
                    .map_err(|_| io::Error::other("appender closed"))?;
                // And the shard's share: a shard with many busy logs keeps
                // at most WRITE_INFLIGHT_SHARD_BYTES of buffers in flight.
                let shard_permit = shard_write_budget()
                    .acquire_static_permit(self.chunk_bytes as u64 / DIRECT_IO_ALIGN_BYTES as u64)
                    .await
                    .map_err(|_| io::Error::other("appender closed"))?;
                // A flush may have dispatched the chunk while we waited.
                let chunk = self
                    .chunk
                    .borrow_mut()
                    .take_if(|c| c.len == self.chunk_bytes);
                if let Some(chunk) = chunk {
                    self.next_pos.set(chunk.pos + chunk.len as u64);
                    self.carry.borrow_mut().clear();
                    self.dispatch(chunk, Some((permit, shard_permit)));
                }
            }
        }
        Ok(())
    }

    fn new_chunk(&self) -> Chunk {
        let mut buf = self.file.alloc(self.chunk_bytes);
        let carry = self.carry.borrow();
        buf.as_bytes_mut()[..carry.len()].copy_from_slice(&carry);
        Chunk {
            buf,
            pos: self.next_pos.get(),
            len: carry.len(),
        }
    }

    /// Hands the partly filled chunk to a write (padded to the block
    /// boundary) if it holds undispatched bytes, and returns the position
    /// the caller can pass to [`Appender::wait_written`]. Does not wait.
    pub fn flush(&self) -> io::Result<u64> {
        self.check()?;
        let end = self.end();
        if end > self.dispatched.get() {
            let chunk = self
                .chunk
                .borrow_mut()
                .take()
                .expect("undispatched bytes live in a chunk");
            let data_end = chunk.pos + chunk.len as u64;
            let carry_from = align_down(data_end);
            let carry_at = (carry_from - chunk.pos) as usize;
            {
                let mut carry = self.carry.borrow_mut();
                carry.clear();
                carry.extend_from_slice(&chunk.buf.as_bytes()[carry_at..chunk.len]);
            }
            self.next_pos.set(carry_from);
            self.dispatch(chunk, None);
        }
        Ok(end)
    }

    /// Waits until every byte below `pos` is in the file.
    pub async fn wait_written(&self, pos: u64) -> io::Result<()> {
        self.writes.wait_written(pos).await
    }

    /// Waits until every dispatched write has finished, successfully or
    /// not: after a failure, nothing of this appender touches the file any
    /// more, so recovery may.
    pub async fn settle(&self) {
        loop {
            if self.writes.settled() {
                return;
            }
            let listener = self.writes.progress.listen();
            if self.writes.settled() {
                return;
            }
            listener.await;
        }
    }

    /// Flushes and waits: on return everything appended is in the file.
    pub async fn write_out(&self) -> io::Result<u64> {
        let end = self.flush()?;
        self.wait_written(end).await?;
        Ok(end)
    }

    fn dispatch(
        &self,
        mut chunk: Chunk,
        permit: Option<(glommio::sync::StaticPermit, glommio::sync::StaticPermit)>,
    ) {
        let data_end = chunk.pos + chunk.len as u64;
        let blocks = align_up(chunk.len as u64) as usize;
        // Zero the padding so the file never holds stale bytes past the end.
        chunk.buf.as_bytes_mut()[chunk.len..blocks].fill(0);
        chunk.buf.trim_to_size(blocks);
        // A write that rewrites the previous write's last block must wait
        // for it, or the older copy of the block could land last.
        let must_follow = (chunk.pos < self.dispatched_blocks_end.get()).then(|| chunk.pos + 1);
        let seq = self.next_seq.get();
        self.next_seq.set(seq + 1);
        self.writes
            .pending
            .borrow_mut()
            .push_back((data_end, false, false));
        self.dispatched.set(data_end);
        self.dispatched_blocks_end.set(chunk.pos + blocks as u64);
        let file = self.file.clone();
        let writes = self.writes.clone();
        let pos = chunk.pos;
        glommio::spawn_local(async move {
            let result = async {
                if let Some(after) = must_follow {
                    writes.wait_written(after).await?;
                }
                let began = trace::now();
                let result = file.write_at(chunk.buf, pos).await;
                trace::since(Stage::DiskWrite, began);
                result
            }
            .await;
            writes.complete(seq, result, || {
                format!("writing {} at position {pos}", file.path().display())
            });
            drop(permit);
        })
        .detach();
    }
}
