//! Sequential reads of segment files: large aligned direct-I/O blocks,
//! several in flight ahead of a forward-reading consumer.
//!
//! A [`ReadStream`] follows one reader of a log. It holds consecutive
//! blocks of a segment's `.log` — [`READ_BLOCK_BYTES`] each, at positions
//! aligned to [`DIRECT_IO_ALIGN_BYTES`] — read or still being read, and
//! remembers where the reader's last read ended (offset and file position),
//! so the next read at that offset starts there without an index lookup
//! and finds its bytes in blocks already read. After each read the stream
//! starts the blocks for the next [`READ_AHEAD_BYTES`](crate::constants::READ_AHEAD_BYTES) (into the next
//! segment too when the current one ends), so the device works while the
//! broker answers and the consumer handles what it got.
//!
//! * Bounded: a stream reads ahead at most `READ_AHEAD_BYTES`, a log
//!   keeps at most `READ_STREAMS_PER_LOG` streams, and every block read
//!   ahead takes its bytes from the shard's [`ReadAheadBudget`]
//!   ([`READ_AHEAD_SHARD_BYTES`]); with the budget spent, reads go on
//!   without read-ahead (blocks a read needs itself are always read). A
//!   stream idle for [`READ_AHEAD_IDLE_MS`] gives its blocks back when
//!   another reader of the shard needs budget.
//! * Correct: a block only vouches for the bytes that were in the file
//!   when it was issued (`valid`, at most the segment's written length then
//!   — bytes below it never change), and is keyed by segment instance (a
//!   compaction swap or a tail recovery makes a new instance), so a stream
//!   never serves bytes its segment does not hold. A reader that jumps
//!   elsewhere drops the blocks it no longer needs.
//! * One copy: batches are copied once, out of the DMA blocks into the
//!   `Bytes` a fetch answers with (glommio's buffers are executor-local and
//!   cannot travel to another shard's connection).
//!
//! Executor-local, not `Send`, like the rest of the storage engine.

use super::error::{Result, StorageError};
use super::files::FileRef;
use super::io::DmaRead;
use crate::constants::{
    DIRECT_IO_ALIGN_BYTES, READ_AHEAD_IDLE_MS, READ_AHEAD_SHARD_BYTES, READ_BLOCK_BYTES,
};
use crate::types::Offset;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::Path;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

/// Counters of a shard's read-ahead (for stats and tests).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadAheadStats {
    /// Bytes of blocks held now (in flight or read, not yet consumed).
    pub held_bytes: u64,
    /// Blocks read because a read needed them at once.
    pub demand_blocks: u64,
    /// Blocks read ahead of a reader.
    pub ahead_blocks: u64,
    /// Blocks read ahead that a reader then used.
    pub ahead_hits: u64,
    /// Read-ahead skipped because the shard's budget was spent.
    pub budget_misses: u64,
    /// Bytes of batches fetches returned from segment files, over every
    /// log of the shard.
    pub disk_read_bytes: u64,
    /// Bytes of batches fetches returned from tail caches (memory).
    pub cache_read_bytes: u64,
}

/// The streams of one log, as the budget sees them (to reclaim idle ones).
pub(crate) type StreamSet = RefCell<Vec<ReadStream>>;

/// The bytes one shard may hold in blocks read ahead (see the module docs).
/// Cloning shares it.
#[derive(Clone)]
pub struct ReadAheadBudget {
    inner: Rc<BudgetInner>,
}

struct BudgetInner {
    limit: Cell<u64>,
    stats: Cell<ReadAheadStats>,
    /// Every log's stream set that ever read ahead (dead ones are pruned).
    holders: RefCell<Vec<Weak<StreamSet>>>,
}

impl std::fmt::Debug for ReadAheadBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadAheadBudget")
            .field("limit", &self.inner.limit.get())
            .field("stats", &self.inner.stats.get())
            .finish()
    }
}

impl Default for ReadAheadBudget {
    fn default() -> Self {
        ReadAheadBudget::new(READ_AHEAD_SHARD_BYTES as u64)
    }
}

impl ReadAheadBudget {
    pub fn new(limit: u64) -> ReadAheadBudget {
        ReadAheadBudget {
            inner: Rc::new(BudgetInner {
                limit: Cell::new(limit),
                stats: Cell::new(ReadAheadStats::default()),
                holders: RefCell::new(Vec::new()),
            }),
        }
    }

    pub fn stats(&self) -> ReadAheadStats {
        self.inner.stats.get()
    }

    /// Changes the limit (0: no read-ahead). Blocks held stay until used.
    pub fn set_limit(&self, limit: u64) {
        self.inner.limit.set(limit);
    }

    /// Counts what a fetch read from the files and from memory.
    pub(crate) fn count_read(&self, disk: u64, cache: u64) {
        self.update(|s| {
            s.disk_read_bytes += disk;
            s.cache_read_bytes += cache;
        });
    }

    fn update(&self, f: impl FnOnce(&mut ReadAheadStats)) {
        let mut stats = self.inner.stats.get();
        f(&mut stats);
        self.inner.stats.set(stats);
    }

    pub(crate) fn register(&self, set: &Rc<StreamSet>) {
        let mut holders = self.inner.holders.borrow_mut();
        if !holders.iter().any(|h| h.as_ptr() == Rc::as_ptr(set)) {
            holders.push(Rc::downgrade(set));
        }
    }

    /// Takes `bytes` for a block read ahead, first reclaiming idle streams'
    /// blocks if the budget is spent. `None`: no room.
    fn reserve(&self, bytes: u64) -> Option<Reservation> {
        let fits = |s: &ReadAheadStats| s.held_bytes + bytes <= self.inner.limit.get();
        if !fits(&self.stats()) {
            self.reclaim_idle();
        }
        if !fits(&self.stats()) {
            self.update(|s| s.budget_misses += 1);
            return None;
        }
        Some(self.held(bytes))
    }

    /// Counts `bytes` held, whatever the limit (a block a read needs now).
    fn held(&self, bytes: u64) -> Reservation {
        self.update(|s| s.held_bytes += bytes);
        Reservation {
            budget: self.clone(),
            bytes,
        }
    }

    /// Drops the blocks of streams no reader used for
    /// [`READ_AHEAD_IDLE_MS`] (a stream being read is not in its set).
    fn reclaim_idle(&self) {
        let idle = Duration::from_millis(READ_AHEAD_IDLE_MS);
        let holders: Vec<Rc<StreamSet>> = {
            let mut holders = self.inner.holders.borrow_mut();
            holders.retain(|h| h.strong_count() > 0);
            holders.iter().filter_map(Weak::upgrade).collect()
        };
        for set in holders {
            // Dropping blocks runs no reader code; skip a set in use.
            let dropped: Vec<Block> = match set.try_borrow_mut() {
                Ok(mut streams) => streams
                    .iter_mut()
                    .filter(|s| s.last_used.elapsed() >= idle)
                    .flat_map(|s| s.blocks.drain(..))
                    .collect(),
                Err(_) => continue,
            };
            drop(dropped);
        }
    }
}

/// Bytes of one block counted in the budget; given back when it drops.
struct Reservation {
    budget: ReadAheadBudget,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.update(|s| s.held_bytes -= self.bytes);
    }
}

enum BlockData {
    Reading(glommio::Task<std::io::Result<DmaRead>>),
    Read(DmaRead),
    /// The read failed (reported to the reader that needs it).
    Failed(std::io::Error),
}

/// A stretch of one segment's file, read or being read.
struct Block {
    /// The segment instance (its open-file cache key).
    segment: u64,
    pos: u64,
    /// Bytes from `pos` this block vouches for: what the file held when
    /// the read was issued.
    valid: usize,
    data: BlockData,
    /// Read ahead of the reader (not yet asked for).
    ahead: bool,
    _held: Reservation,
}

impl Block {
    fn end(&self) -> u64 {
        self.pos + self.valid as u64
    }
}

/// One reader's position and blocks (see the module docs).
pub(crate) struct ReadStream {
    /// The segment instance the last read ended in, and where: the next
    /// offset a continuing reader asks for and its file position.
    at: Option<(u64, Offset, u64)>,
    /// The last read continued the one before (the reader reads forward).
    sequential: bool,
    blocks: VecDeque<Block>,
    last_used: Instant,
}

impl Default for ReadStream {
    fn default() -> Self {
        ReadStream {
            at: None,
            sequential: false,
            blocks: VecDeque::new(),
            last_used: Instant::now(),
        }
    }
}

impl ReadStream {
    /// Whether a read of `from` continues where this stream's last read
    /// ended.
    pub(crate) fn continues(&self, from: Offset) -> bool {
        self.at.is_some_and(|(_, next, _)| next == from)
    }

    /// The file position a read of `from` in `segment` may start at
    /// without an index lookup (it continues the last read).
    pub(crate) fn position_of(&self, segment: u64, from: Offset) -> Option<u64> {
        match self.at {
            Some((s, next, pos)) if s == segment && next == from => Some(pos),
            _ => None,
        }
    }

    /// The reader is at `pos` of `segment`: drops every block before it
    /// (or every block, if none holds it).
    pub(crate) fn seek(&mut self, segment: u64, pos: u64) {
        self.last_used = Instant::now();
        while let Some(front) = self.blocks.front() {
            if front.segment != segment || front.end() <= pos {
                self.blocks.pop_front();
            } else {
                break;
            }
        }
        if self.blocks.front().is_some_and(|b| b.pos > pos) {
            self.blocks.clear();
        }
    }

    /// Remembers where a read ended: `next` is the offset after its last
    /// batch, at position `pos` of `segment`; `sequential`: the read
    /// continued the one before. Blocks wholly below it go.
    pub(crate) fn ended(&mut self, segment: u64, next: Offset, pos: u64, sequential: bool) {
        self.at = Some((segment, next, pos));
        self.sequential = sequential;
        self.seek(segment, pos);
    }

    /// Where the last read ended in `segment`, if it did and it continued
    /// the read before it (a forward reader, worth reading ahead for).
    pub(crate) fn sequential_end(&self, segment: u64) -> Option<u64> {
        match self.at {
            Some((s, _, pos)) if s == segment && self.sequential => Some(pos),
            _ => None,
        }
    }

    pub(crate) fn last_used(&self) -> Instant {
        self.last_used
    }

    /// Drops the blocks of `segment` (retention deleted it).
    pub(crate) fn drop_segment(&mut self, segment: u64) {
        self.blocks.retain(|b| b.segment != segment);
    }

    /// Forgets the position and the blocks: the stream follows a new reader.
    pub(crate) fn restart(&mut self) {
        self.at = None;
        self.sequential = false;
        self.blocks.clear();
    }

    /// Where the blocks of `segment` end (`None`: it has none).
    fn covered_end(&self, segment: u64) -> Option<u64> {
        self.blocks
            .iter()
            .rev()
            .find(|b| b.segment == segment)
            .map(Block::end)
    }

    /// Starts the reads of `[from, to)` of `segment` that no block holds
    /// yet, in blocks of [`READ_BLOCK_BYTES`] (the last may be shorter;
    /// none extends past `limit`, what the file holds now). With `ahead`,
    /// each block needs room in `budget`, and the reads stop where it is
    /// spent. Returns whether any read started.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn issue(
        &mut self,
        file: &FileRef,
        segment: u64,
        from: u64,
        to: u64,
        limit: u64,
        ahead: bool,
        budget: &ReadAheadBudget,
    ) -> bool {
        let to = to.min(limit);
        // Blocks of one segment stay contiguous: a read that needs bytes
        // past them (a batch beyond its first window) reads the gap too;
        // a reader that moved away was sought past them (`seek`).
        // A block cut short by the end of the file (the active segment's
        // written length then) ends unaligned: the next one starts at the
        // aligned position before and overlaps it.
        let mut at = match self.covered_end(segment) {
            Some(end) if end >= to => return false,
            Some(end) => align_down(end),
            None => align_down(from),
        };
        // Blocks of other segments after this one's (read ahead into the
        // next segment): this one comes first.
        if let Some(last) = self.blocks.iter().rposition(|b| b.segment == segment) {
            self.blocks.truncate(last + 1);
        }
        let mut started = false;
        while at < to {
            // Read ahead in whole blocks; a read's own need (a random read
            // of a few bytes) in no more than it needs.
            let len = if ahead {
                READ_BLOCK_BYTES
            } else {
                align_up((to - at) as usize).min(READ_BLOCK_BYTES)
            };
            let valid = (len as u64).min(limit - at) as usize;
            let held = if ahead {
                match budget.reserve(len as u64) {
                    Some(r) => r,
                    None => break,
                }
            } else {
                budget.held(len as u64)
            };
            let file = file.clone();
            let task = glommio::spawn_local(async move { file.read_dma_aligned(at, len).await });
            budget.update(|s| {
                if ahead {
                    s.ahead_blocks += 1
                } else {
                    s.demand_blocks += 1
                }
            });
            self.blocks.push_back(Block {
                segment,
                pos: at,
                valid,
                data: BlockData::Reading(task),
                ahead,
                _held: held,
            });
            at += valid as u64;
            if valid < len {
                break;
            }
            started = true;
        }
        started
    }

    /// Waits until the blocks holding `[from, to)` of `segment` are read
    /// (they must have been issued). A failed read is an I/O error on
    /// `path`; a block shorter than it should be (the file ended early) is
    /// reported as such.
    pub(crate) async fn ready(
        &mut self,
        segment: u64,
        from: u64,
        to: u64,
        path: &Path,
        budget: &ReadAheadBudget,
    ) -> Result<()> {
        for i in 0..self.blocks.len() {
            let b = &mut self.blocks[i];
            if b.segment != segment || b.end() <= from {
                continue;
            }
            if b.pos >= to {
                break;
            }
            if let BlockData::Reading(task) = &mut b.data {
                b.data = match task.await {
                    Ok(read) => BlockData::Read(read),
                    Err(e) => BlockData::Failed(e),
                };
            }
            if b.ahead {
                b.ahead = false;
                budget.update(|s| s.ahead_hits += 1);
            }
            let short = match &b.data {
                BlockData::Read(read) if read.len() < b.valid => Some(b.pos + read.len() as u64),
                _ => None,
            };
            if let Some(at) = short {
                self.blocks.truncate(i);
                return Err(StorageError::Corrupt {
                    file: path.to_path_buf(),
                    position: at,
                    reason: "the file ends before the bytes it should hold".into(),
                });
            }
            if matches!(b.data, BlockData::Failed(_)) {
                let failed = self.blocks.remove(i);
                self.blocks.truncate(i);
                let Some(Block {
                    data: BlockData::Failed(e),
                    ..
                }) = failed
                else {
                    unreachable!("matched above")
                };
                return Err(StorageError::io("reading", path, e));
            }
        }
        Ok(())
    }

    /// The consecutive pieces of `segment`'s bytes from `pos` on, at most
    /// `len` in all, out of the read blocks; they stop early where the
    /// blocks do (a gap, or a block still being read).
    fn pieces(&self, segment: u64, pos: u64, len: usize) -> impl Iterator<Item = &[u8]> {
        let mut done = 0usize;
        let mut stopped = false;
        self.blocks.iter().filter_map(move |b| {
            let at = pos + done as u64;
            if stopped || done == len || b.segment != segment || b.end() <= at {
                return None;
            }
            let BlockData::Read(read) = &b.data else {
                stopped = true;
                return None;
            };
            if b.pos > at {
                stopped = true;
                return None;
            }
            let start = (at - b.pos) as usize;
            let n = (b.valid - start).min(len - done);
            done += n;
            Some(&read[start..start + n])
        })
    }

    /// Copies `dst.len()` bytes of `segment` from `pos` out of the blocks
    /// (which must be [`ready`](Self::ready) for that range). Returns how
    /// many were there (fewer only if the blocks end first).
    pub(crate) fn copy_out(&self, segment: u64, pos: u64, dst: &mut [u8]) -> usize {
        let mut done = 0usize;
        for piece in self.pieces(segment, pos, dst.len()) {
            dst[done..done + piece.len()].copy_from_slice(piece);
            done += piece.len();
        }
        done
    }

    /// The bytes of `segment` at `[pos, pos + len)` if one read block holds
    /// them all: no copy.
    pub(crate) fn slice(&self, segment: u64, pos: u64, len: usize) -> Option<&[u8]> {
        let b = self
            .blocks
            .iter()
            .find(|b| b.segment == segment && b.pos <= pos && pos < b.end())?;
        let BlockData::Read(read) = &b.data else {
            return None;
        };
        let start = (pos - b.pos) as usize;
        (start + len <= b.valid).then(|| &read[start..start + len])
    }

    /// Appends `len` bytes of `segment` from `pos` to `out`, out of the
    /// blocks (which must be [`ready`](Self::ready) for that range): the
    /// one copy of the read path. Returns how many were there.
    pub(crate) fn append_to(&self, segment: u64, pos: u64, len: usize, out: &mut Vec<u8>) -> usize {
        let before = out.len();
        for piece in self.pieces(segment, pos, len) {
            out.extend_from_slice(piece);
        }
        out.len() - before
    }

    /// Bytes of `segment` held from `pos` on, in blocks read or being read
    /// (how far this stream reads ahead of a reader at `pos`).
    pub(crate) fn ahead_of(&self, segment: u64, pos: u64) -> u64 {
        self.covered_end(segment)
            .map_or(0, |end| end.saturating_sub(pos))
    }
}

fn align_down(v: u64) -> u64 {
    v / DIRECT_IO_ALIGN_BYTES as u64 * DIRECT_IO_ALIGN_BYTES as u64
}

fn align_up(v: usize) -> usize {
    v.div_ceil(DIRECT_IO_ALIGN_BYTES) * DIRECT_IO_ALIGN_BYTES
}
