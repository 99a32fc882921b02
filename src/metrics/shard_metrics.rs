//! One shard's counters, on its own core: cells, no atomics, no locks.
//! Counting a request costs a short scan of a small vector (by pointer)
//! and a few cell updates; nothing allocates once an API was seen.

use super::{
    ConnectionCounts, ErrorCount, HistogramReport, LATENCY_BUCKETS_SECONDS, RequestCount,
    TopicTraffic,
};
use crate::error::ErrorKind;
use crate::types::TopicId;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::Duration;

/// An API of a protocol, as metrics label it: (`native` | `kafka`, API name).
pub type ApiLabel = (&'static str, &'static str);

/// Which latency a request's time counts in.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LatencyKind {
    Produce,
    Fetch,
}

/// A histogram over [`LATENCY_BUCKETS_SECONDS`] (counts per bucket, not
/// cumulative, and a last `+Inf` bucket).
#[derive(Default)]
pub struct Histogram {
    counts: [Cell<u64>; LATENCY_BUCKETS_SECONDS.len() + 1],
    sum_nanos: Cell<u128>,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let i = LATENCY_BUCKETS_SECONDS.partition_point(|&bound| bound < seconds);
        self.counts[i].set(self.counts[i].get() + 1);
        self.sum_nanos
            .set(self.sum_nanos.get() + elapsed.as_nanos());
    }

    pub fn report(&self) -> HistogramReport {
        let mut cumulative = Vec::with_capacity(LATENCY_BUCKETS_SECONDS.len());
        let mut running = 0;
        for c in &self.counts[..LATENCY_BUCKETS_SECONDS.len()] {
            running += c.get();
            cumulative.push(running);
        }
        let count = running + self.counts[LATENCY_BUCKETS_SECONDS.len()].get();
        HistogramReport {
            cumulative,
            count,
            sum_seconds: self.sum_nanos.get() as f64 / 1e9,
        }
    }
}

/// Per-topic traffic counted on this shard.
#[derive(Clone, Copy, Default)]
struct Traffic {
    bytes_in: u64,
    bytes_out: u64,
    records_in: u64,
}

/// Hashes a topic id with one multiplication (Fibonacci hashing): topic
/// ids are small sequential integers the broker hands out, not input an
/// attacker picks, and SipHash cost more than the rest of the counting.
#[derive(Default)]
struct TopicIdHasher(u64);

impl std::hash::Hasher for TopicIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = (n as u64 ^ self.0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type TopicMap<V> = HashMap<TopicId, V, std::hash::BuildHasherDefault<TopicIdHasher>>;

/// The protocols connections are counted for.
const PROTOCOLS: [&str; 2] = ["native", "kafka"];

/// One shard's counters (see the module docs).
#[derive(Default)]
pub struct ShardMetrics {
    requests: RefCell<Vec<(ApiLabel, u64)>>,
    errors: RefCell<Vec<(ApiLabel, ErrorKind, u64)>>,
    produce: Histogram,
    fetch: Histogram,
    accepted: [Cell<u64>; PROTOCOLS.len()],
    closed: [Cell<u64>; PROTOCOLS.len()],
    traffic: RefCell<TopicMap<Traffic>>,
    security: RefCell<Vec<(SecurityEvent, u64)>>,
}

/// A security event, as metrics count it: the series' name and its two
/// label values (see [`super::SecurityCount`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecurityEvent {
    /// A TLS handshake failed on a listener.
    TlsHandshakeFailed { listener: &'static str },
    /// A SASL authentication ended: `ok` or `failed`.
    SaslAuthentication {
        mechanism: &'static str,
        result: &'static str,
    },
    /// A request (or a resource in it) was refused by the authorizer.
    AuthorizationDenied {
        protocol: &'static str,
        operation: &'static str,
    },
}

fn protocol_index(protocol: &str) -> usize {
    PROTOCOLS.iter().position(|p| *p == protocol).unwrap_or(0)
}

fn same(a: ApiLabel, b: ApiLabel) -> bool {
    std::ptr::eq(a.0, b.0) && std::ptr::eq(a.1, b.1) || a == b
}

impl ShardMetrics {
    /// A request of `api` arrived.
    pub fn request(&self, api: ApiLabel) {
        let mut requests = self.requests.borrow_mut();
        match requests.iter_mut().find(|(a, _)| same(*a, api)) {
            Some((_, n)) => *n += 1,
            None => requests.push((api, 1)),
        }
    }

    /// A request of `api` was answered with `kind` (for a partition, or as
    /// a whole).
    pub fn error(&self, api: ApiLabel, kind: ErrorKind) {
        let mut errors = self.errors.borrow_mut();
        match errors
            .iter_mut()
            .find(|(a, k, _)| *k == kind && same(*a, api))
        {
            Some((_, _, n)) => *n += 1,
            None => errors.push((api, kind, 1)),
        }
    }

    /// A request took `elapsed` from its frame's arrival to its answer.
    pub fn latency(&self, kind: LatencyKind, elapsed: Duration) {
        match kind {
            LatencyKind::Produce => self.produce.observe(elapsed),
            LatencyKind::Fetch => self.fetch.observe(elapsed),
        }
    }

    pub fn connection_accepted(&self, protocol: &str) {
        let c = &self.accepted[protocol_index(protocol)];
        c.set(c.get() + 1);
    }

    pub fn connection_closed(&self, protocol: &str) {
        let c = &self.closed[protocol_index(protocol)];
        c.set(c.get() + 1);
    }

    pub fn tls_handshake_failed(&self, listener: &'static str) {
        self.security(SecurityEvent::TlsHandshakeFailed { listener });
    }

    pub fn security(&self, event: SecurityEvent) {
        let mut events = self.security.borrow_mut();
        match events.iter_mut().find(|(e, _)| *e == event) {
            Some((_, n)) => *n += 1,
            None => events.push((event, 1)),
        }
    }

    pub fn security_counts(&self) -> Vec<super::SecurityCount> {
        self.security
            .borrow()
            .iter()
            .map(|&(event, count)| super::SecurityCount { event, count })
            .collect()
    }

    /// Records appended to `topic`: `bytes` of batches holding `records`.
    pub fn appended(&self, topic: TopicId, bytes: u64, records: u64) {
        let mut traffic = self.traffic.borrow_mut();
        let t = traffic.entry(topic).or_default();
        t.bytes_in += bytes;
        t.records_in += records;
    }

    /// `bytes` of `topic`'s batches were read for a fetch.
    pub fn fetched(&self, topic: TopicId, bytes: u64) {
        if bytes == 0 {
            return;
        }
        self.traffic
            .borrow_mut()
            .entry(topic)
            .or_default()
            .bytes_out += bytes;
    }

    /// Forgets a deleted topic's traffic.
    pub fn forget_topic(&self, topic: TopicId) {
        self.traffic.borrow_mut().remove(&topic);
    }

    pub fn requests(&self) -> Vec<RequestCount> {
        self.requests
            .borrow()
            .iter()
            .map(|&((protocol, api), count)| RequestCount {
                protocol,
                api,
                count,
            })
            .collect()
    }

    pub fn errors(&self) -> Vec<ErrorCount> {
        self.errors
            .borrow()
            .iter()
            .map(|&((protocol, api), kind, count)| ErrorCount {
                protocol,
                api,
                code: kind.name(),
                count,
            })
            .collect()
    }

    pub fn latencies(&self) -> (HistogramReport, HistogramReport) {
        (self.produce.report(), self.fetch.report())
    }

    /// Connections by protocol; `open` is filled in by the caller.
    pub fn connections(&self) -> Vec<ConnectionCounts> {
        PROTOCOLS
            .iter()
            .enumerate()
            .map(|(i, &protocol)| ConnectionCounts {
                protocol,
                open: self.accepted[i].get().saturating_sub(self.closed[i].get()),
                accepted: self.accepted[i].get(),
                closed: self.closed[i].get(),
            })
            .collect()
    }

    /// Traffic by topic, named by `name` (topics it cannot name are gone).
    pub fn traffic(
        &self,
        name: impl Fn(TopicId) -> Option<std::sync::Arc<str>>,
    ) -> Vec<TopicTraffic> {
        self.traffic
            .borrow()
            .iter()
            .filter_map(|(&id, t)| {
                Some(TopicTraffic {
                    topic: name(id)?,
                    bytes_in: t.bytes_in,
                    bytes_out: t.bytes_out,
                    records_in: t.records_in,
                })
            })
            .collect()
    }
}

thread_local! {
    /// `fdatasync`s of this executor's files (the storage engine is
    /// executor-local, so this is one shard's).
    static FSYNCS: Histogram = Histogram::default();
}

/// An `fdatasync` on this thread took `elapsed`.
pub fn fsync_observed(elapsed: Duration) {
    FSYNCS.with(|h| h.observe(elapsed));
}

/// This thread's `fdatasync`s.
pub fn fsync_stats() -> HistogramReport {
    FSYNCS.with(Histogram::report)
}
