//! A bounded cache of open sealed-segment files, one per executor (shard).
//!
//! A sealed segment does not keep its `.log` open: a read asks this cache
//! for the file, which hands out a shared handle, opening it (and closing
//! the least recently used idle one) when it is not cached. So the
//! descriptors sealed segments hold are bounded by the cache's capacity,
//! not by how many segments the shard's partitions have, and an idle
//! partition holds exactly one descriptor: its active segment's log.
//!
//! * A handle in use is never closed under its reader: handles are `Rc`s,
//!   eviction only drops the cache's own reference of an entry nobody else
//!   holds, and a file is closed when its last reference goes.
//! * The capacity bounds every handle the cache opened, cached or still in
//!   use after eviction ([`OpenFiles::get`] waits for one to close rather
//!   than exceed it), so the bound holds however many reads run at once
//!   (plus, for a moment, evicted files whose close is in flight: they
//!   hand their slot on and close on the executor's next I/O cycle). A
//!   read holds at most one handle while it waits, so waiting cannot
//!   deadlock: every holder finishes its I/O and lets go.
//! * Entries are keyed by segment instance ([`OpenFiles::new_key`]), not by
//!   path: a compaction swap puts a new file at the same path, and the new
//!   segment gets a new key, so no reader of the old one sees the new file.
//!   A segment forgets its entry when it is deleted or dropped.
//!
//! Executor-local, not `Send`, like the rest of the storage engine.

use super::io::{Disk, DiskFile};
use event_listener::Event;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::Path;
use std::rc::{Rc, Weak};

/// Counters of an [`OpenFiles`] cache (for tests, logs and tools).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenFilesStats {
    /// Most files the cache keeps open at once.
    pub capacity: usize,
    /// Files it has open now: cached, or evicted and still being read.
    pub open: usize,
    /// Of those, the ones in the cache.
    pub cached: usize,
    /// Requests answered from the cache.
    pub hits: u64,
    /// Requests that opened the file.
    pub opens: u64,
    /// Idle files closed to make room.
    pub evictions: u64,
    /// Requests that waited because every open file was in use.
    pub waits: u64,
}

struct Entry {
    file: Rc<DiskFile>,
    /// When it was last handed out (a key into `Inner::order`).
    used: u64,
}

struct Inner {
    stats: Cell<OpenFilesStats>,
    entries: RefCell<HashMap<u64, Entry>>,
    /// Entries by last use, oldest first: use tick → key.
    order: RefCell<BTreeMap<u64, u64>>,
    tick: Cell<u64>,
    next_key: Cell<u64>,
    /// Fires when an opened file closes (a slot frees up).
    released: Event,
}

impl Inner {
    fn update(&self, f: impl FnOnce(&mut OpenFilesStats)) {
        let mut stats = self.stats.get();
        f(&mut stats);
        self.stats.set(stats);
    }
}

/// The share of the cache's capacity one opened file takes; freed when the
/// file closes (its [`DiskFile`] drops).
pub(crate) struct Slot(Weak<Inner>);

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(inner) = self.0.upgrade() {
            inner.update(|s| s.open -= 1);
            inner.released.notify(usize::MAX);
        }
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Slot")
    }
}

/// An open file for reads: one the cache handed out, or one a segment
/// holds itself. The file stays open while any clone lives; dropping one
/// wakes readers waiting for the cache (the file may now be evictable).
#[derive(Clone)]
pub struct FileRef {
    file: Rc<DiskFile>,
    cache: Option<Weak<Inner>>,
}

impl FileRef {
    /// A file its owner holds open itself (not the cache's).
    pub fn owned(file: Rc<DiskFile>) -> FileRef {
        FileRef { file, cache: None }
    }

    /// The file, without this reference.
    pub fn into_rc(self) -> Rc<DiskFile> {
        self.file.clone()
    }
}

impl std::ops::Deref for FileRef {
    type Target = DiskFile;

    fn deref(&self) -> &DiskFile {
        &self.file
    }
}

impl Drop for FileRef {
    fn drop(&mut self) {
        if let Some(inner) = self.cache.as_ref().and_then(Weak::upgrade) {
            inner.released.notify(usize::MAX);
        }
    }
}

/// The cache (see the module docs). Cloning shares it.
#[derive(Clone)]
pub struct OpenFiles {
    inner: Rc<Inner>,
}

impl std::fmt::Debug for OpenFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenFiles")
            .field("stats", &self.inner.stats.get())
            .finish()
    }
}

impl OpenFiles {
    pub fn new(capacity: usize) -> OpenFiles {
        OpenFiles {
            inner: Rc::new(Inner {
                stats: Cell::new(OpenFilesStats {
                    capacity: capacity.max(1),
                    ..Default::default()
                }),
                entries: RefCell::new(HashMap::new()),
                order: RefCell::new(BTreeMap::new()),
                tick: Cell::new(0),
                next_key: Cell::new(0),
                released: Event::new(),
            }),
        }
    }

    pub fn stats(&self) -> OpenFilesStats {
        let mut stats = self.inner.stats.get();
        stats.cached = self.inner.entries.borrow().len();
        stats
    }

    /// Changes the capacity (at least 1), closing idle files beyond it.
    pub fn set_capacity(&self, capacity: usize) {
        self.inner.update(|s| s.capacity = capacity.max(1));
        while self.stats().open > self.stats().capacity {
            // Dropping the slot gives it up.
            if self.evict_one().is_none() {
                break;
            }
        }
        self.inner.released.notify(usize::MAX);
    }

    /// A key no other segment has.
    pub fn new_key(&self) -> u64 {
        let key = self.inner.next_key.get();
        self.inner.next_key.set(key + 1);
        key
    }

    fn handed_out(&self, file: Rc<DiskFile>) -> FileRef {
        FileRef {
            file,
            cache: Some(Rc::downgrade(&self.inner)),
        }
    }

    fn touch(&self, key: u64) -> Option<FileRef> {
        let mut entries = self.inner.entries.borrow_mut();
        let entry = entries.get_mut(&key)?;
        let tick = self.inner.tick.get() + 1;
        self.inner.tick.set(tick);
        let mut order = self.inner.order.borrow_mut();
        order.remove(&entry.used);
        order.insert(tick, key);
        entry.used = tick;
        Some(self.handed_out(entry.file.clone()))
    }

    fn insert(&self, key: u64, file: Rc<DiskFile>) {
        let tick = self.inner.tick.get() + 1;
        self.inner.tick.set(tick);
        self.inner.order.borrow_mut().insert(tick, key);
        if let Some(old) = self
            .inner
            .entries
            .borrow_mut()
            .insert(key, Entry { file, used: tick })
        {
            self.inner.order.borrow_mut().remove(&old.used);
        }
    }

    /// Closes the least recently used file nobody is reading and returns
    /// its slot (the close completes in the background, on the executor's
    /// next I/O cycle); `None` if every cached file is in use.
    fn evict_one(&self) -> Option<Slot> {
        let victim = self
            .inner
            .order
            .borrow()
            .iter()
            .find(|(_, key)| {
                self.inner
                    .entries
                    .borrow()
                    .get(key)
                    .is_some_and(|e| Rc::strong_count(&e.file) == 1)
            })
            .map(|(&tick, &key)| (tick, key));
        let (tick, key) = victim?;
        self.inner.order.borrow_mut().remove(&tick);
        let entry = self.inner.entries.borrow_mut().remove(&key)?;
        self.inner.update(|s| s.evictions += 1);
        let mut file = Rc::try_unwrap(entry.file).ok()?;
        let slot = file.slot.take();
        close_when_unused(Rc::new(file));
        slot
    }

    /// Takes a slot for a file about to be opened or cached, closing an
    /// idle file if the cache is full; `None` if every open file is in use.
    fn try_reserve(&self) -> Option<Slot> {
        let stats = self.inner.stats.get();
        if stats.open >= stats.capacity {
            return self.evict_one();
        }
        self.inner.update(|s| s.open += 1);
        Some(Slot(Rc::downgrade(&self.inner)))
    }

    /// The open file of segment `key` at `path`: from the cache, or opened
    /// now. Waits while every slot is taken by a file in use.
    pub async fn get(&self, disk: &Disk, key: u64, path: &Path) -> io::Result<FileRef> {
        let slot = loop {
            if let Some(file) = self.touch(key) {
                self.inner.update(|s| s.hits += 1);
                return Ok(file);
            }
            if let Some(slot) = self.try_reserve() {
                break slot;
            }
            let released = self.inner.released.listen();
            if let Some(slot) = self.try_reserve() {
                break slot;
            }
            self.inner.update(|s| s.waits += 1);
            released.await;
        };
        self.inner.update(|s| s.opens += 1);
        // On error the slot drops here and frees itself.
        let mut file = disk.open_file(path, false).await?;
        file.set_slot(slot);
        // Another reader of the same segment may have opened it meanwhile:
        // use theirs (ours closes).
        if let Some(existing) = self.touch(key) {
            close_when_unused(Rc::new(file));
            return Ok(existing);
        }
        let file = Rc::new(file);
        self.insert(key, file.clone());
        Ok(self.handed_out(file))
    }

    /// Offers the open file of segment `key` to the cache (a segment just
    /// sealed, or opened at start). Kept if a slot is free or an idle file
    /// can make room; closed otherwise.
    pub fn offer(&self, key: u64, mut file: DiskFile) {
        if !self.inner.entries.borrow().contains_key(&key)
            && let Some(slot) = self.try_reserve()
        {
            file.set_slot(slot);
            self.insert(key, Rc::new(file));
            return;
        }
        close_when_unused(Rc::new(file));
    }

    /// Drops segment `key`'s entry; its file closes once no reader holds it.
    pub fn forget(&self, key: u64) {
        let entry = self.inner.entries.borrow_mut().remove(&key);
        if let Some(entry) = entry {
            self.inner.order.borrow_mut().remove(&entry.used);
            close_when_unused(entry.file);
        }
    }
}

/// Closes `file` now if this was its last reference (its slot frees once
/// the close completes); otherwise its last holder's drop closes it.
fn close_when_unused(file: Rc<DiskFile>) {
    if let Ok(file) = Rc::try_unwrap(file) {
        glommio::spawn_local(async move {
            let _ = file.close().await;
        })
        .detach();
    }
}
