//! `GET /metrics`: the shards' published reports in the Prometheus text
//! format (or OpenMetrics, when the scraper asks for it), encoded by
//! `prometheus-client`. Names follow Prometheus conventions: `corelog_`
//! prefix, base units (seconds, bytes), `_total` on counters.

use super::Answer;
use crate::metrics::{Board, BrokerReport, HistogramReport, LATENCY_BUCKETS_SECONDS, ShardReport};
use hyper::StatusCode;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::Arc;

pub(super) fn answer(board: &Board, accept: &str) -> Answer {
    let reports = Reports {
        shards: board.shards(),
        broker: board.broker(),
    };
    let mut registry = Registry::default();
    registry.register_collector(Box::new(reports));
    let mut text = String::with_capacity(64 << 10);
    let openmetrics = accept.contains("application/openmetrics-text");
    let encoded = if openmetrics {
        prometheus_client::encoding::text::encode(&mut text, &registry)
    } else {
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)
    };
    match encoded {
        Ok(()) if openmetrics => Answer::new(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            text,
        ),
        Ok(()) => Answer::new(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            text,
        ),
        Err(_) => Answer::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ENCODING_FAILED",
            "the metrics could not be encoded",
        ),
    }
}

/// One scrape's view: the reports as they were when it began.
struct Reports {
    shards: Vec<Arc<ShardReport>>,
    broker: Arc<BrokerReport>,
}

impl std::fmt::Debug for Reports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reports")
            .field("shards", &self.shards.len())
            .finish()
    }
}

type Labels = Vec<(&'static str, String)>;

/// A counter or gauge family with one value per label set.
struct Family<'a> {
    name: &'a str,
    help: &'a str,
    kind: MetricType,
    samples: Vec<(Labels, f64)>,
}

impl<'a> Family<'a> {
    fn counter(name: &'a str, help: &'a str) -> Family<'a> {
        Family {
            name,
            help,
            kind: MetricType::Counter,
            samples: Vec::new(),
        }
    }

    fn gauge(name: &'a str, help: &'a str) -> Family<'a> {
        Family {
            name,
            help,
            kind: MetricType::Gauge,
            samples: Vec::new(),
        }
    }

    fn add(&mut self, labels: Labels, value: f64) {
        self.samples.push((labels, value));
    }

    fn encode(self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut metric = encoder.encode_descriptor(self.name, self.help, None, self.kind)?;
        for (labels, value) in &self.samples {
            let mut sample = metric.encode_family(labels)?;
            match self.kind {
                MetricType::Counter => {
                    sample.encode_counter::<NoLabelSet, _, f64>(value, None)?;
                }
                _ => sample.encode_gauge(value)?,
            }
        }
        Ok(())
    }
}

fn shard_label(shard: u32) -> Labels {
    vec![("shard", shard.to_string())]
}

/// Encodes one histogram family, a member per label set.
fn histograms(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    members: Vec<(Labels, &HistogramReport)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in members {
        // prometheus-client takes per-bucket counts and accumulates them.
        let mut previous = 0;
        let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS_SECONDS
            .iter()
            .zip(h.cumulative.iter().chain(std::iter::repeat(&0)))
            .map(|(&bound, &c)| {
                let n = c.saturating_sub(previous);
                previous = c.max(previous);
                (bound, n)
            })
            .collect();
        metric
            .encode_family(&labels)?
            .encode_histogram::<NoLabelSet>(h.sum_seconds, h.count, &buckets, None)?;
    }
    Ok(())
}

impl Collector for Reports {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.encode_broker(&mut encoder)?;
        self.encode_requests(&mut encoder)?;
        self.encode_shards(&mut encoder)?;
        self.encode_topics(&mut encoder)?;
        self.encode_partitions(&mut encoder)?;
        self.encode_groups(&mut encoder)?;
        Ok(())
    }
}

impl Reports {
    fn encode_broker(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut info = Family::gauge("corelog_build_info", "The broker's version (always 1).");
        info.add(vec![("version", self.broker.version.to_string())], 1.0);
        info.encode(encoder)?;
        let mut ready = Family::gauge(
            "corelog_shard_ready",
            "1 once the shard has recovered its partitions and serves.",
        );
        for s in &self.shards {
            ready.add(shard_label(s.shard), if s.recovered { 1.0 } else { 0.0 });
        }
        ready.encode(encoder)?;
        let process = process_figures();
        let mut memory = Family::gauge(
            "corelog_process_resident_memory_bytes",
            "Resident memory of the broker process.",
        );
        memory.add(Vec::new(), process.resident_bytes as f64);
        memory.encode(encoder)?;
        let mut fds = Family::gauge(
            "corelog_process_open_fds",
            "File descriptors the broker process has open.",
        );
        fds.add(Vec::new(), process.open_fds as f64);
        fds.encode(encoder)?;
        let mut limit = Family::gauge(
            "corelog_process_max_fds",
            "The broker process's open-file limit.",
        );
        limit.add(Vec::new(), process.max_fds as f64);
        limit.encode(encoder)?;
        let mut cpu = Family::counter(
            "corelog_process_cpu_seconds",
            "CPU time of the broker process (user and system).",
        );
        cpu.add(Vec::new(), process.cpu_seconds);
        cpu.encode(encoder)?;
        if let Some(started) = self.broker.started {
            let mut start = Family::gauge(
                "corelog_process_start_time_seconds",
                "When the broker started, in seconds since the Unix epoch.",
            );
            let secs = started
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            start.add(Vec::new(), secs);
            start.encode(encoder)?;
        }
        Ok(())
    }

    fn encode_security(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use crate::metrics::SecurityEvent;
        let mut tls = Family::counter(
            "corelog_tls_handshake_failures",
            "TLS handshakes that failed (untrusted or expired certificates, plaintext clients on a TLS port, stalls), by listener and shard.",
        );
        let mut sasl = Family::counter(
            "corelog_sasl_authentications",
            "SASL authentications, by mechanism, result (ok, failed) and shard.",
        );
        let mut denied = Family::counter(
            "corelog_authorization_denied",
            "Requests or resources in them the authorizer refused, by protocol, operation and shard.",
        );
        for s in &self.shards {
            let shard = ("shard", s.shard.to_string());
            for c in &s.security {
                let n = c.count as f64;
                match c.event {
                    SecurityEvent::TlsHandshakeFailed { listener } => {
                        tls.add(vec![("listener", listener.to_string()), shard.clone()], n)
                    }
                    SecurityEvent::SaslAuthentication { mechanism, result } => sasl.add(
                        vec![
                            ("mechanism", mechanism.to_string()),
                            ("result", result.to_string()),
                            shard.clone(),
                        ],
                        n,
                    ),
                    SecurityEvent::AuthorizationDenied {
                        protocol,
                        operation,
                    } => denied.add(
                        vec![
                            ("protocol", protocol.to_string()),
                            ("operation", operation.to_string()),
                            shard.clone(),
                        ],
                        n,
                    ),
                }
            }
        }
        tls.encode(encoder)?;
        sasl.encode(encoder)?;
        denied.encode(encoder)
    }

    fn encode_requests(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut requests = Family::counter(
            "corelog_requests",
            "Requests received, by protocol, API and shard.",
        );
        let mut errors = Family::counter(
            "corelog_request_errors",
            "Errors answered (per partition for produce and fetch), by protocol, API, error code and shard.",
        );
        for s in &self.shards {
            for r in &s.requests {
                requests.add(
                    vec![
                        ("protocol", r.protocol.to_string()),
                        ("api", r.api.to_string()),
                        ("shard", s.shard.to_string()),
                    ],
                    r.count as f64,
                );
            }
            for e in &s.errors {
                errors.add(
                    vec![
                        ("protocol", e.protocol.to_string()),
                        ("api", e.api.to_string()),
                        ("code", e.code.to_string()),
                        ("shard", s.shard.to_string()),
                    ],
                    e.count as f64,
                );
            }
        }
        requests.encode(encoder)?;
        errors.encode(encoder)?;
        self.encode_security(encoder)?;
        histograms(
            encoder,
            "corelog_produce_latency_seconds",
            "Produce requests, from the frame's arrival to the answer, by shard (acks=all includes the wait for durability).",
            self.shards
                .iter()
                .map(|s| (shard_label(s.shard), &s.produce_latency))
                .collect(),
        )?;
        histograms(
            encoder,
            "corelog_fetch_latency_seconds",
            "Fetch requests, from the frame's arrival to the answer, by shard (includes a long poll's wait for data).",
            self.shards
                .iter()
                .map(|s| (shard_label(s.shard), &s.fetch_latency))
                .collect(),
        )
    }

    fn encode_shards(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut open = Family::gauge(
            "corelog_connections_open",
            "Connections open now, by protocol and shard.",
        );
        let mut accepted = Family::counter(
            "corelog_connections_accepted",
            "Connections accepted, by protocol and shard.",
        );
        let mut closed = Family::counter(
            "corelog_connections_closed",
            "Connections closed, by protocol and shard.",
        );
        let mut hops = Family::counter(
            "corelog_cross_core_hops",
            "Requests (or parts) a shard passed to the shard owning a partition.",
        );
        let mut bytes_in = Family::counter(
            "corelog_received_bytes",
            "Bytes of request frames received, by shard.",
        );
        let mut bytes_out = Family::counter(
            "corelog_sent_bytes",
            "Bytes of response frames sent, by shard.",
        );
        let mut cpu = Family::counter(
            "corelog_shard_cpu_seconds",
            "CPU time of each shard's thread.",
        );
        let mut fsyncs = Family::counter("corelog_fsyncs", "fdatasync calls, by shard.");
        let mut disk_reads = Family::counter(
            "corelog_fetch_disk_read_bytes",
            "Bytes of batches fetches read from segment files, by shard.",
        );
        let mut cache_reads = Family::counter(
            "corelog_fetch_cache_read_bytes",
            "Bytes of batches fetches read from memory (tail caches), by shard.",
        );
        for s in &self.shards {
            let shard = s.shard.to_string();
            for c in &s.connections {
                let labels = vec![
                    ("protocol", c.protocol.to_string()),
                    ("shard", shard.clone()),
                ];
                open.add(labels.clone(), c.open as f64);
                accepted.add(labels.clone(), c.accepted as f64);
                closed.add(labels, c.closed as f64);
            }
            hops.add(shard_label(s.shard), s.hops as f64);
            bytes_in.add(shard_label(s.shard), s.bytes_in as f64);
            bytes_out.add(shard_label(s.shard), s.bytes_out as f64);
            cpu.add(shard_label(s.shard), s.cpu_seconds);
            fsyncs.add(shard_label(s.shard), s.fsync_latency.count as f64);
            disk_reads.add(shard_label(s.shard), s.disk_read_bytes as f64);
            cache_reads.add(shard_label(s.shard), s.cache_read_bytes as f64);
        }
        for family in [
            open,
            accepted,
            closed,
            hops,
            bytes_in,
            bytes_out,
            cpu,
            fsyncs,
            disk_reads,
            cache_reads,
        ] {
            family.encode(encoder)?;
        }
        histograms(
            encoder,
            "corelog_fsync_latency_seconds",
            "fdatasync latency, by shard.",
            self.shards
                .iter()
                .map(|s| (shard_label(s.shard), &s.fsync_latency))
                .collect(),
        )
    }

    fn encode_topics(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // A topic's traffic summed over the shards that own its partitions.
        let mut traffic: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
        for s in &self.shards {
            for t in &s.topics {
                let e = traffic.entry(&t.topic).or_default();
                e.0 += t.bytes_in;
                e.1 += t.bytes_out;
                e.2 += t.records_in;
            }
        }
        let mut bytes_in = Family::counter(
            "corelog_topic_bytes_in",
            "Bytes of record batches appended, by topic.",
        );
        let mut bytes_out = Family::counter(
            "corelog_topic_bytes_out",
            "Bytes of record batches fetched, by topic.",
        );
        let mut records = Family::counter(
            "corelog_topic_records_appended",
            "Records appended, by topic.",
        );
        for (topic, (i, o, r)) in traffic {
            let labels = vec![("topic", topic.to_string())];
            bytes_in.add(labels.clone(), i as f64);
            bytes_out.add(labels.clone(), o as f64);
            records.add(labels, r as f64);
        }
        bytes_in.encode(encoder)?;
        bytes_out.encode(encoder)?;
        records.encode(encoder)
    }

    fn encode_partitions(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut start = Family::gauge(
            "corelog_partition_log_start_offset",
            "The first offset a partition holds.",
        );
        let mut end = Family::gauge(
            "corelog_partition_log_end_offset",
            "The offset the next record appended to a partition gets.",
        );
        let mut hw = Family::gauge(
            "corelog_partition_high_watermark",
            "The offset below which a partition's records are readable.",
        );
        let mut size = Family::gauge(
            "corelog_partition_size_bytes",
            "Bytes of a partition's segment files.",
        );
        let mut segments = Family::gauge(
            "corelog_partition_segments",
            "Segment files of a partition.",
        );
        let mut failed = Family::gauge(
            "corelog_partition_failed",
            "1 when a partition cannot serve (its storage failed or is full).",
        );
        for s in &self.shards {
            for p in &s.partitions {
                let labels = vec![
                    ("topic", p.topic.to_string()),
                    ("partition", p.partition.to_string()),
                    ("shard", s.shard.to_string()),
                ];
                start.add(labels.clone(), p.start as f64);
                end.add(labels.clone(), p.end as f64);
                hw.add(labels.clone(), p.high_watermark as f64);
                size.add(labels.clone(), p.bytes as f64);
                segments.add(labels.clone(), p.segments as f64);
                failed.add(labels, if p.error.is_some() { 1.0 } else { 0.0 });
            }
        }
        for family in [start, end, hw, size, segments, failed] {
            family.encode(encoder)?;
        }
        Ok(())
    }

    fn encode_groups(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let high_watermarks = high_watermarks(&self.shards);
        let mut committed = Family::gauge(
            "corelog_consumer_group_committed_offset",
            "A group's committed offset, by group, topic and partition.",
        );
        let mut lag = Family::gauge(
            "corelog_consumer_group_lag",
            "Records between a group's committed offset and the partition's high watermark.",
        );
        let mut members =
            Family::gauge("corelog_consumer_group_members", "Members of a group now.");
        for s in &self.shards {
            for g in &s.groups {
                members.add(vec![("group", g.group.clone())], g.members.len() as f64);
                for c in &g.committed {
                    let labels = vec![
                        ("group", g.group.clone()),
                        ("topic", c.topic.clone()),
                        ("partition", c.partition.to_string()),
                    ];
                    committed.add(labels.clone(), c.offset as f64);
                    if let Some(&hw) = high_watermarks.get(&(c.topic.as_str(), c.partition)) {
                        lag.add(labels, hw.saturating_sub(c.offset.max(0) as u64) as f64);
                    }
                }
            }
        }
        committed.encode(encoder)?;
        lag.encode(encoder)?;
        members.encode(encoder)
    }
}

/// What the process uses now, for metrics.
#[derive(Clone, Copy, Debug, Default)]
struct ProcessFigures {
    resident_bytes: u64,
    open_fds: u64,
    max_fds: u64,
    cpu_seconds: f64,
}

/// Reads the process's resident memory (`/proc/self/statm`), open
/// descriptors (`/proc/self/fd`), open-file limit and CPU time. Figures
/// that cannot be read are 0.
fn process_figures() -> ProcessFigures {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u64;
    let resident_pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    let (user, system) = crate::support::process_cpu_us();
    ProcessFigures {
        resident_bytes: resident_pages * page,
        open_fds,
        max_fds: crate::shard::open_file_limit().unwrap_or(0) as u64,
        cpu_seconds: (user + system) as f64 / 1e6,
    }
}

/// Every partition's high watermark, from the shards that own them.
pub(super) fn high_watermarks(shards: &[Arc<ShardReport>]) -> BTreeMap<(&str, u32), u64> {
    shards
        .iter()
        .flat_map(|s| s.partitions.iter())
        .map(|p| ((&*p.topic, p.partition), p.high_watermark))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Histogram, PartitionReport};
    use std::time::Duration;

    #[test]
    fn reports_encode_as_prometheus_text_with_counters_gauges_and_histograms() {
        let board = Board::new(1);
        let h = Histogram::default();
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(30));
        board.publish(ShardReport {
            shard: 0,
            recovered: true,
            produce_latency: h.report(),
            partitions: vec![PartitionReport {
                topic: "orders".into(),
                partition: 3,
                start: 0,
                end: 42,
                high_watermark: 42,
                bytes: 4096,
                segments: 1,
                error: None,
            }],
            ..ShardReport::default()
        });
        let answer = answer(&board, "");
        let text = String::from_utf8(answer.body.to_vec()).unwrap();
        assert!(
            text.contains("# TYPE corelog_produce_latency_seconds histogram"),
            "{text}"
        );
        assert!(
            text.contains("corelog_produce_latency_seconds_bucket{shard=\"0\",le=\"0.0005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("corelog_produce_latency_seconds_bucket{shard=\"0\",le=\"0.05\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("corelog_produce_latency_seconds_count{shard=\"0\"} 2"),
            "{text}"
        );
        assert!(
            text.contains(
                "corelog_partition_high_watermark{topic=\"orders\",partition=\"3\",shard=\"0\"} 42"
            ),
            "{text}"
        );
        assert!(
            text.contains("corelog_shard_ready{shard=\"0\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE corelog_process_cpu_seconds_total counter"),
            "{text}"
        );
    }
}
