//! What the broker tells an operator: each shard counts on its own core
//! ([`ShardMetrics`], plain cells, no atomics, nothing shared) and every
//! [`PUBLISH_MS`](crate::constants::METRICS_PUBLISH_MS) publishes a
//! [`ShardReport`] — an immutable snapshot — on the [`Board`]. The HTTP
//! side (`crate::http`) reads only published reports: a scrape never
//! touches, locks or waits for a shard, and a shard never waits for a
//! scrape (publishing swaps one pointer).

mod shard_metrics;

pub use shard_metrics::{
    ApiLabel, Histogram, LatencyKind, SecurityEvent, ShardMetrics, fsync_observed, fsync_stats,
};

use arc_swap::ArcSwap;
use std::sync::Arc;
use std::time::SystemTime;

/// Upper bounds of the latency histograms' buckets, in seconds (the last
/// bucket, `+Inf`, is implied).
pub const LATENCY_BUCKETS_SECONDS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// A latency histogram as published: cumulative counts per bucket of
/// [`LATENCY_BUCKETS_SECONDS`] (plus `+Inf`: `count`), and the sum.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistogramReport {
    /// Observations at or below each bound (cumulative).
    pub cumulative: Vec<u64>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl HistogramReport {
    /// The bound below which a `q` share (0..1) of the observations fall,
    /// by bucket (an upper estimate); `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let want = (q * self.count as f64).ceil() as u64;
        for (i, &c) in self.cumulative.iter().enumerate() {
            if c >= want {
                return Some(LATENCY_BUCKETS_SECONDS[i]);
            }
        }
        Some(f64::INFINITY)
    }
}

/// Requests of one API over one protocol.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestCount {
    pub protocol: &'static str,
    pub api: &'static str,
    pub count: u64,
}

/// How often a security event happened on a shard.
#[derive(Clone, Debug, PartialEq)]
pub struct SecurityCount {
    pub event: SecurityEvent,
    pub count: u64,
}

/// Errors answered, by API, protocol and stable error code.
#[derive(Clone, Debug, PartialEq)]
pub struct ErrorCount {
    pub protocol: &'static str,
    pub api: &'static str,
    pub code: &'static str,
    pub count: u64,
}

/// Connections of one protocol on one shard.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConnectionCounts {
    pub protocol: &'static str,
    pub open: u64,
    pub accepted: u64,
    pub closed: u64,
}

/// Bytes and records of one topic through one shard.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TopicTraffic {
    pub topic: Arc<str>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub records_in: u64,
}

/// One partition this shard owns.
#[derive(Clone, Debug, PartialEq)]
pub struct PartitionReport {
    pub topic: Arc<str>,
    pub partition: u32,
    pub start: u64,
    pub end: u64,
    pub high_watermark: u64,
    pub bytes: u64,
    pub segments: u32,
    /// Why the partition cannot serve, if it cannot.
    pub error: Option<String>,
}

/// A committed offset of a group.
#[derive(Clone, Debug, PartialEq)]
pub struct CommittedReport {
    pub topic: String,
    pub partition: u32,
    pub offset: i64,
}

/// A group member.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberReport {
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
}

/// One consumer group this shard coordinates.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupReport {
    pub group: String,
    pub state: String,
    /// `classic` or `consumer`.
    pub group_type: &'static str,
    pub protocol_type: String,
    pub members: Vec<MemberReport>,
    pub committed: Vec<CommittedReport>,
}

/// What one shard published last (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct ShardReport {
    pub shard: u32,
    /// When it was published (`None`: the shard has not published yet).
    pub at: Option<SystemTime>,
    /// Every partition the shard owns is recovered (opened, or recorded
    /// as failed): the shard serves.
    pub recovered: bool,
    pub port: u16,
    pub requests: Vec<RequestCount>,
    pub errors: Vec<ErrorCount>,
    /// TLS handshake failures, SASL outcomes, authorization denials.
    pub security: Vec<SecurityCount>,
    pub connections: Vec<ConnectionCounts>,
    pub hops: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub produce_latency: HistogramReport,
    pub fetch_latency: HistogramReport,
    pub fsync_latency: HistogramReport,
    pub cpu_seconds: f64,
    pub disk_read_bytes: u64,
    pub cache_read_bytes: u64,
    pub topics: Vec<TopicTraffic>,
    pub partitions: Vec<PartitionReport>,
    pub groups: Vec<GroupReport>,
}

impl ShardReport {
    /// Seconds between `earlier`'s publication and this one's (`None` if
    /// either has not published or they are the same).
    pub fn seconds_since(&self, earlier: &ShardReport) -> Option<f64> {
        let dt = self.at?.duration_since(earlier.at?).ok()?.as_secs_f64();
        (dt > 0.0).then_some(dt)
    }
}

/// The broker as a whole, fixed at start.
#[derive(Clone, Debug, Default)]
pub struct BrokerReport {
    pub version: &'static str,
    pub started: Option<SystemTime>,
    /// The broker's configuration, as `key = value` pairs to show.
    pub config: Vec<(String, String)>,
    pub native_addr: Option<String>,
    pub kafka_addr: Option<String>,
    pub data_dir: String,
    pub cores: usize,
    pub node_id: i32,
}

/// Where shards publish and the HTTP side reads (see the module docs).
pub struct Board {
    shards: Vec<ArcSwap<ShardReport>>,
    /// Each shard's report before its last (for rates per second).
    previous: Vec<ArcSwap<ShardReport>>,
    broker: ArcSwap<BrokerReport>,
    /// The controller quorum as this broker sees it (cluster mode).
    controller: arc_swap::ArcSwapOption<crate::cluster::ControllerStatus>,
}

impl Board {
    pub fn new(shards: usize) -> Board {
        Board {
            shards: (0..shards)
                .map(|i| {
                    ArcSwap::from_pointee(ShardReport {
                        shard: i as u32,
                        ..ShardReport::default()
                    })
                })
                .collect(),
            previous: (0..shards)
                .map(|i| {
                    ArcSwap::from_pointee(ShardReport {
                        shard: i as u32,
                        ..ShardReport::default()
                    })
                })
                .collect(),
            broker: ArcSwap::from_pointee(BrokerReport {
                version: env!("CARGO_PKG_VERSION"),
                started: Some(SystemTime::now()),
                ..BrokerReport::default()
            }),
            controller: arc_swap::ArcSwapOption::empty(),
        }
    }

    /// Replaces shard `report.shard`'s report.
    pub fn publish(&self, report: ShardReport) {
        let i = report.shard as usize;
        if let (Some(slot), Some(previous)) = (self.shards.get(i), self.previous.get(i)) {
            let old = slot.swap(Arc::new(report));
            previous.store(old);
        }
    }

    /// Every shard's (report before the last, last report): what rates per
    /// second are computed from (over the time between the two).
    pub fn shard_pairs(&self) -> Vec<(Arc<ShardReport>, Arc<ShardReport>)> {
        self.shards
            .iter()
            .zip(&self.previous)
            .map(|(cur, prev)| {
                let cur = cur.load_full();
                (prev.load_full(), cur)
            })
            .collect()
    }

    /// Every shard's last report, by shard.
    pub fn shards(&self) -> Vec<Arc<ShardReport>> {
        self.shards.iter().map(|s| s.load_full()).collect()
    }

    pub fn broker(&self) -> Arc<BrokerReport> {
        self.broker.load_full()
    }

    /// Changes the broker's description (its addresses once bound).
    pub fn set_broker(&self, f: impl FnOnce(&mut BrokerReport)) {
        let mut report = (*self.broker.load_full()).clone();
        f(&mut report);
        self.broker.store(Arc::new(report));
    }

    /// The controller quorum's last published state, in cluster mode.
    pub fn controller(&self) -> Option<Arc<crate::cluster::ControllerStatus>> {
        self.controller.load_full()
    }

    pub fn set_controller(&self, status: crate::cluster::ControllerStatus) {
        self.controller.store(Some(Arc::new(status)));
    }

    /// Whether every shard has recovered its partitions.
    pub fn ready(&self) -> bool {
        self.shards.iter().all(|s| s.load().recovered)
    }
}
