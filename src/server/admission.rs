//! Admission: which connections a shard serves, and how much request memory
//! they may hold.
//!
//! **Connections.** `--max-connections` is split exactly over shards (the
//! shares add up to the limit). A connection is admitted on its shard's
//! share; a shard at its share hands the connection to the shard with the
//! most room (the kernel spreads SO_REUSEPORT connections unevenly), which
//! admits it on its own share or, if it filled up meanwhile, treats it as
//! over the limit. Over the limit, a shard still admits a few connections
//! (`ADMIN_CONNECTIONS_PER_SHARD`) that may only send metadata, stats and
//! admin requests, so an operator can always look; beyond those the
//! connection is refused — with an error answer where the protocol has
//! one — and refusals are logged at most once per interval, with a count.
//!
//! **Request memory.** Each shard has a budget of request bytes (a
//! semaphore of bytes, its share of `--request-memory-bytes`). A frame's
//! whole size is reserved as soon as its length prefix is read, before a
//! buffer for it exists, and released when its handler has answered. When
//! the budget is spent the shard stops reading frames (TCP backpressure
//! slows the senders); nothing is dropped and nothing crashes.

use crate::constants::{ADMIN_CONNECTIONS_PER_SHARD, REFUSAL_LOG_INTERVAL_MS};
use crate::shard::Shard;
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// One shard's connection slots.
pub struct Slots {
    shard: usize,
    /// Each shard's share of the limit, by shard.
    shares: Vec<u32>,
    /// Each shard's connections within its share (this shard writes its own
    /// slot only).
    load: Arc<[AtomicU32]>,
    regular: Cell<u32>,
    admin: Cell<u32>,
    /// Connections over the limit since the last log line about them.
    refused_unlogged: Cell<u64>,
    admin_unlogged: Cell<u64>,
    last_log: Cell<Option<Instant>>,
}

/// What to do with a newly accepted connection.
pub enum Admission {
    Serve(Slot),
    /// Hand it to this shard, which has room.
    HandOff(usize),
    /// Over the limit and the reserved slots are taken.
    Refuse,
}

/// A connection's place; dropping it frees the place.
pub struct Slot {
    slots: Rc<Slots>,
    admin_only: bool,
}

impl Slot {
    /// Whether this connection holds a reserved slot (metadata, stats and
    /// admin requests only).
    pub fn admin_only(&self) -> bool {
        self.admin_only
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let s = &self.slots;
        if self.admin_only {
            s.admin.set(s.admin.get() - 1);
        } else {
            s.regular.set(s.regular.get() - 1);
            s.publish();
        }
    }
}

impl Slots {
    pub fn new(shard: &Shard) -> Rc<Slots> {
        let n = shard.count as usize;
        Rc::new(Slots {
            shard: shard.id.0 as usize,
            // The file-descriptor budget's connections (the configured
            // limit, lowered at start if it would take storage's share).
            shares: (0..n)
                .map(|i| crate::config::connection_share(shard.budget.max_connections, i, n))
                .collect(),
            load: shard.connection_load.clone(),
            regular: Cell::new(0),
            admin: Cell::new(0),
            refused_unlogged: Cell::new(0),
            admin_unlogged: Cell::new(0),
            last_log: Cell::new(None),
        })
    }

    /// Decides on a connection. `may_hand_off`: false for a connection
    /// another shard handed over (it travels once at most).
    pub fn admit(self: &Rc<Self>, may_hand_off: bool) -> Admission {
        if self.regular.get() < self.shares[self.shard] {
            self.regular.set(self.regular.get() + 1);
            self.publish();
            return Admission::Serve(Slot {
                slots: self.clone(),
                admin_only: false,
            });
        }
        if may_hand_off && let Some(other) = self.most_room_elsewhere() {
            return Admission::HandOff(other);
        }
        if self.admin.get() < ADMIN_CONNECTIONS_PER_SHARD {
            self.admin.set(self.admin.get() + 1);
            self.admin_unlogged.set(self.admin_unlogged.get() + 1);
            self.maybe_log();
            return Admission::Serve(Slot {
                slots: self.clone(),
                admin_only: true,
            });
        }
        self.refused_unlogged.set(self.refused_unlogged.get() + 1);
        self.maybe_log();
        Admission::Refuse
    }

    /// The other shard with the most room in its share, if any has room.
    fn most_room_elsewhere(&self) -> Option<usize> {
        (0..self.shares.len())
            .filter(|&i| i != self.shard)
            .map(|i| {
                let used = self.load[i].load(Ordering::Relaxed);
                (self.shares[i].saturating_sub(used), i)
            })
            .filter(|&(room, _)| room > 0)
            .max()
            .map(|(_, i)| i)
    }

    fn publish(&self) {
        self.load[self.shard].store(self.regular.get(), Ordering::Relaxed);
    }

    /// One line per interval at most, however many connections arrive.
    fn maybe_log(&self) {
        let now = Instant::now();
        let interval = Duration::from_millis(REFUSAL_LOG_INTERVAL_MS);
        if self
            .last_log
            .get()
            .is_some_and(|at| now.duration_since(at) < interval)
        {
            return;
        }
        let since = self.last_log.replace(Some(now));
        tracing::warn!(
            shard = self.shard,
            share = self.shares[self.shard],
            limit = self.shares.iter().sum::<u32>(),
            admin_slots_used = self.admin.get(),
            admitted_admin_only = self.admin_unlogged.replace(0),
            refused = self.refused_unlogged.replace(0),
            since_secs = since
                .map(|at| now.duration_since(at).as_secs())
                .unwrap_or(0),
            "at the connection limit: new connections get a slot for metadata, stats and admin requests only, or are refused (raise --max-connections if clients need more)"
        );
    }
}

/// The shard's budget of request bytes in flight.
pub type RequestMemory = Rc<glommio::sync::Semaphore>;

/// A budget of `bytes` (at least one largest frame: see
/// [`crate::config::BrokerConfig::request_memory_per_shard`]).
pub fn request_memory(bytes: usize) -> RequestMemory {
    Rc::new(glommio::sync::Semaphore::new(bytes as u64))
}
