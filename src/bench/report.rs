//! The benchmark report: the JSON summary, the table, and the HdrHistogram
//! files.
//!
//! Honest figures (DESIGN.md): MB/s is payload bytes (10^6 bytes) over the
//! wall-clock seconds of the measured phase, a group's total is its bytes
//! over its time, and percentiles come straight from HDR histograms (so max
//! is never below p99.99). The summary records what was acknowledged to
//! what durability (acks, fsync policy).

use super::workload::Workload;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::V2Serializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;

/// Latency histograms record microseconds: 1 µs to 1 hour, 3 digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: usize,
    pub kernel: String,
    pub memory_gib: f64,
}

impl Machine {
    /// Reads the machine's description from /proc.
    pub fn describe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        let memory_gib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines().find_map(|l| {
                    l.strip_prefix("MemTotal:")
                        .map(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
                })
            })
            .flatten()
            .map_or(0.0, |kb| (kb / 1024.0 / 1024.0 * 10.0).round() / 10.0);
        Machine {
            cpu_model,
            cores: crate::config::online_cpus(),
            kernel,
            memory_gib,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Throughput {
    pub messages: u64,
    pub bytes: u64,
    /// Payload bytes / 10^6 / measured seconds.
    pub mb_per_s: f64,
    pub msgs_per_s: f64,
}

impl Throughput {
    pub fn new(messages: u64, bytes: u64, secs: f64) -> Throughput {
        let secs = secs.max(1e-9);
        Throughput {
            messages,
            bytes,
            mb_per_s: bytes as f64 / 1e6 / secs,
            msgs_per_s: messages as f64 / secs,
        }
    }
}

/// Latency percentiles in microseconds, and the curve for charts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Latency {
    pub count: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub p9999: u64,
    pub max: u64,
    /// (quantile, microseconds) along the percentile distribution.
    pub curve: Vec<(f64, u64)>,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        let curve = if h.is_empty() {
            Vec::new()
        } else {
            h.iter_quantiles(5)
                .map(|v| {
                    (
                        v.quantile_iterated_to(),
                        h.highest_equivalent(v.value_iterated_to()),
                    )
                })
                .collect()
        };
        Latency {
            count: h.len(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            p9999: h.value_at_quantile(0.9999),
            max: h.max(),
            curve,
        }
    }
}

/// One second of the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Second {
    /// Seconds since the start (warm-up included).
    pub second: u32,
    pub warmup: bool,
    pub produced_msgs: u64,
    pub produced_bytes: u64,
    pub consumed_msgs: u64,
    pub consumed_bytes: u64,
    /// The highest produce→ack latency of records acknowledged in this
    /// second (µs; `None`: none acknowledged). A stall shows here.
    pub produce_latency_max_us: Option<u64>,
    /// The highest end-to-end latency of records consumed in this second.
    pub e2e_latency_max_us: Option<u64>,
}

/// Raw limits for the same bytes, measured in the same run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Baseline {
    /// Bytes pushed through a loopback TCP sink that discards them.
    pub tcp_mb_per_s: f64,
    /// Bytes written with O_DIRECT in 1 MiB writes, synced at the end.
    pub disk_mb_per_s: f64,
    pub bytes: u64,
    /// The written file read back with O_DIRECT, `disk_read_io_bytes` per
    /// read, `disk_reads_in_flight` reads at a time (0: not measured).
    pub disk_read_mb_per_s: f64,
    pub disk_read_bytes: u64,
    pub disk_read_io_bytes: u64,
    pub disk_reads_in_flight: u32,
}

impl Baseline {
    /// What a consumer could reach at most: the slower of reading the disk
    /// and pushing bytes through loopback TCP (0 if either is unknown).
    pub fn consume_limit_mb_per_s(&self) -> f64 {
        self.disk_read_mb_per_s.min(self.tcp_mb_per_s)
    }
}

/// [`Summary::broker_cpu_scope`] of an external broker.
pub const CPU_SCOPE_PROCESS: &str = "broker process";
/// [`Summary::broker_cpu_scope`] of the embedded broker.
pub const CPU_SCOPE_SHARDS: &str = "embedded broker's shard threads, bench clients excluded";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Summary {
    pub corelog_version: String,
    pub git_commit: String,
    /// UTC, RFC 3339.
    pub started_at: String,
    pub machine: Machine,
    pub broker: String,
    pub workload: Workload,
    /// Stopped early (Ctrl-C); the figures cover what ran.
    pub interrupted: bool,
    pub measured_seconds: f64,
    pub produce: Option<Throughput>,
    pub consume: Option<Throughput>,
    /// Per record, open loop: from its scheduled send time to its ack.
    pub produce_latency_us: Option<Latency>,
    /// Per record: from its scheduled send time until a consumer read it.
    pub e2e_latency_us: Option<Latency>,
    /// Per produce request: sent → answered (by the request's send time).
    pub round_trip_latency_us: Option<Latency>,
    /// Per fetch request: sent → answered, including the time the broker
    /// held a fetch waiting for data.
    pub fetch_round_trip_latency_us: Option<Latency>,
    /// CPU seconds (user + system) the broker used in the measured phase;
    /// `broker_cpu_scope` says whose (the whole process, or an embedded
    /// broker's shard threads).
    pub broker_cpu_seconds: Option<f64>,
    pub broker_cpu_seconds_per_gb_produced: Option<f64>,
    pub broker_cpu_scope: Option<String>,
    pub per_second: Vec<Second>,
    pub baseline: Option<Baseline>,
    pub errors: u64,
    pub first_error: Option<String>,
    /// With `--group`: how the consumer group settled and what each member
    /// read.
    pub group: Option<GroupFigures>,
}

/// A consumer group's part of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GroupFigures {
    pub group: String,
    /// From the members' first subscribe until every partition was owned
    /// (and every member owned some), in milliseconds.
    pub settle_ms: Option<f64>,
    /// Each member's reads in the measured phase.
    pub members: Vec<Throughput>,
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a time since the Unix epoch.
pub fn utc_rfc3339(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Printed under the latency table: which figure is which.
pub const LATENCY_NOTE: &str = "(produce → ack and end to end: per record, open loop, from the time it was due to be sent, so client queueing and stalls count; round trips: per request, sent → answered, a fetch's including the broker's wait for data)";

fn fmt_us(us: u64) -> String {
    match us {
        0..=9_999 => format!("{us} µs"),
        10_000..=9_999_999 => format!("{:.1} ms", us as f64 / 1000.0),
        _ => format!("{:.2} s", us as f64 / 1e6),
    }
}

impl Summary {
    /// The human-readable report.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let w = &self.workload;
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "corelog bench — {} mode, {} protocol, {} producer(s), {} consumer(s), {} topic(s) × {} partitions, {} messages, acks={}, fsync {}, compression {}, {} routing, {}",
            w.mode,
            w.protocol,
            w.producers,
            w.consumers,
            w.topics,
            w.partitions,
            w.message_size,
            w.acks,
            w.fsync,
            w.compression,
            w.routing,
            match (w.rate, w.max_lag_bytes) {
                (Some(r), _) => format!("target {r} msg/s (open loop)"),
                (None, 0) => "unlimited rate".to_string(),
                (None, lag) => format!(
                    "unlimited rate, producers at most {:.1} MB ahead of consumers",
                    lag as f64 / 1e6
                ),
            }
        );
        let _ = writeln!(
            out,
            "broker: {} | measured {:.1} s after {} s warm-up{} | {} on {} cores, kernel {}",
            self.broker,
            self.measured_seconds,
            w.warmup_secs,
            if self.interrupted {
                " | INTERRUPTED: partial figures"
            } else {
                ""
            },
            self.machine.cpu_model,
            self.machine.cores,
            self.machine.kernel
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<22} {:>14} {:>12} {:>14}",
            "throughput", "messages", "MB/s", "msgs/s"
        );
        for (name, t) in [
            ("produced (acked)", &self.produce),
            ("consumed", &self.consume),
        ] {
            if let Some(t) = t {
                let _ = writeln!(
                    out,
                    "{:<22} {:>14} {:>12.1} {:>14.0}",
                    name, t.messages, t.mb_per_s, t.msgs_per_s
                );
            }
        }
        if let Some(g) = &self.group {
            let _ = writeln!(
                out,
                "group {}: settled in {} over {} member(s)",
                g.group,
                g.settle_ms
                    .map_or("-".to_string(), |ms| format!("{ms:.0} ms")),
                g.members.len()
            );
            for (i, m) in g.members.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{:<22} {:>14} {:>12.1} {:>14.0}",
                    format!("  member {i}"),
                    m.messages,
                    m.mb_per_s,
                    m.msgs_per_s
                );
            }
        }
        let _ = writeln!(out);
        let rows = [
            ("produce → ack", &self.produce_latency_us),
            ("end to end", &self.e2e_latency_us),
            ("produce request round trip", &self.round_trip_latency_us),
            (
                "fetch request round trip",
                &self.fetch_round_trip_latency_us,
            ),
        ];
        if rows.iter().all(|(_, l)| l.is_none()) {
            let _ = writeln!(out, "latency: none measured in {} mode", w.mode);
        } else {
            let _ = writeln!(
                out,
                "{:<27} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
                "latency", "p50", "p90", "p99", "p99.9", "p99.99", "max"
            );
            for (name, l) in rows {
                if let Some(l) = l {
                    let _ = writeln!(
                        out,
                        "{:<27} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
                        name,
                        fmt_us(l.p50),
                        fmt_us(l.p90),
                        fmt_us(l.p99),
                        fmt_us(l.p999),
                        fmt_us(l.p9999),
                        fmt_us(l.max)
                    );
                }
            }
            let _ = writeln!(out, "{LATENCY_NOTE}");
        }
        if let Some(cpu) = self.broker_cpu_seconds {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "broker CPU: {cpu:.2} s over the measured phase ({}){}",
                self.broker_cpu_scope.as_deref().unwrap_or("broker"),
                match (self.broker_cpu_seconds_per_gb_produced, w.mode) {
                    (Some(per_gb), super::workload::Mode::E2e) => {
                        format!(" = {per_gb:.2} s per GB produced (serving the consumers included)")
                    }
                    (Some(per_gb), _) => format!(" = {per_gb:.2} s per GB produced"),
                    (None, _) => String::new(),
                }
            );
        }
        if let Some(b) = &self.baseline {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "baseline for the same {:.1} MB, measured in this run:",
                b.bytes as f64 / 1e6
            );
            let produced = self
                .produce
                .as_ref()
                .or(self.consume.as_ref())
                .map_or(0.0, |t| t.mb_per_s);
            let _ = writeln!(
                out,
                "  loopback TCP sink   {:>10.1} MB/s   corelog = {:.2} of it",
                b.tcp_mb_per_s,
                produced / b.tcp_mb_per_s.max(1e-9)
            );
            let _ = writeln!(
                out,
                "  O_DIRECT disk write {:>10.1} MB/s   corelog = {:.2} of it",
                b.disk_mb_per_s,
                produced / b.disk_mb_per_s.max(1e-9)
            );
            if b.disk_read_mb_per_s > 0.0 {
                let consumed = self.consume.as_ref().map(|t| t.mb_per_s);
                let _ = writeln!(
                    out,
                    "  O_DIRECT disk read  {:>10.1} MB/s   ({:.1} MB, {} KiB reads, {} in flight){}",
                    b.disk_read_mb_per_s,
                    b.disk_read_bytes as f64 / 1e6,
                    b.disk_read_io_bytes >> 10,
                    b.disk_reads_in_flight,
                    consumed.map_or(String::new(), |c| format!(
                        "   consumed = {:.2} of it",
                        c / b.disk_read_mb_per_s
                    ))
                );
                if w.mode == super::workload::Mode::Consume
                    && let Some(c) = consumed
                {
                    let _ = writeln!(
                        out,
                        "  consume = {:.2} of min(disk read, TCP sink) = {:.1} MB/s",
                        c / b.consume_limit_mb_per_s().max(1e-9),
                        b.consume_limit_mb_per_s()
                    );
                }
            }
        }
        if self.errors > 0 {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "{} errors; first: {}",
                self.errors,
                self.first_error.as_deref().unwrap_or("?")
            );
        }
        out
    }
}

/// Writes `h` (microseconds) as HdrHistogram's percentile distribution in
/// milliseconds — the `.hgrm` text the HdrHistogram plotter reads.
pub fn write_hgrm(h: &Histogram<u64>, path: &Path) -> std::io::Result<()> {
    std::fs::write(path, hgrm_text(h))
}

/// The `.hgrm` text for `h` (values in µs, printed in ms).
pub fn hgrm_text(h: &Histogram<u64>) -> String {
    let scale = 1000.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    for v in h.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let value = h.highest_equivalent(v.value_iterated_to()) as f64 / scale;
        let q = v.quantile_iterated_to();
        if q < 1.0 {
            let _ = writeln!(
                out,
                "{value:12.3} {q:2.12} {total:10} {:14.2}",
                1.0 / (1.0 - q)
            );
        } else {
            let _ = writeln!(out, "{value:12.3} {q:2.12} {total:10}");
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        h.mean() / scale,
        h.stdev() / scale
    );
    let _ = writeln!(
        out,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        h.max() as f64 / scale,
        h.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        h.distinct_values()
    );
    out
}

/// Writes per-second histograms as an HdrHistogram interval log (`.hlog`):
/// exact, readable by HdrHistogram tools and the `hdrhistogram` crate.
pub fn write_hlog(
    intervals: &[(f64, Histogram<u64>)],
    tag: &str,
    start: std::time::SystemTime,
    path: &Path,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut serializer = V2Serializer::new();
    {
        let mut builder = IntervalLogWriterBuilder::new();
        builder.add_comment(&format!("corelog bench {tag} latency, microseconds"));
        builder
            .with_start_time(start)
            .with_base_time(start)
            .with_max_value_divisor(1000.0);
        let mut log = builder
            .begin_log_with(&mut buf, &mut serializer)
            .map_err(std::io::Error::other)?;
        let tag = Tag::new(tag).expect("tags have no commas or spaces");
        for (at, h) in intervals {
            log.write_histogram(
                h,
                std::time::Duration::from_secs_f64(*at),
                std::time::Duration::from_secs(1),
                Some(tag),
            )
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        }
    }
    std::fs::write(path, buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::Deserializer;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

    fn sample() -> Histogram<u64> {
        let mut h = new_histogram();
        for i in 1..=100_000u64 {
            h.record(100 + (i * 7919) % 5000).unwrap();
        }
        h.record(2_000_000).unwrap(); // one 2-second outlier
        h
    }

    #[test]
    fn hgrm_percentiles_match_the_histogram() {
        let h = sample();
        let text = hgrm_text(&h);
        assert!(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)"));
        let rows: Vec<(f64, f64, u64)> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty() && !l.contains("Value"))
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (
                    f[0].parse().unwrap(),
                    f[1].parse().unwrap(),
                    f[2].parse().unwrap(),
                )
            })
            .collect();
        assert!(rows.len() > 50);
        for &(value_ms, q, total) in &rows {
            let expected = h.highest_equivalent(h.value_at_quantile(q)) as f64 / 1000.0;
            assert!(
                (value_ms - expected).abs() <= 0.0015 + expected * 1e-3,
                "at {q}: {value_ms} vs {expected}"
            );
            assert!(total <= h.len());
        }
        let last = rows.last().unwrap();
        assert_eq!(last.2, h.len(), "the last row counts every value");
        assert!(
            (last.0 - 2000.0).abs() < 2.0,
            "the outlier is the max: {}",
            last.0
        );
        assert!(
            text.contains("#[Max     =     2000.895, Total count    =       100001]")
                || text.contains("Total count    =       100001]")
        );
    }

    #[test]
    fn hlog_round_trips_through_the_hdrhistogram_reader() {
        let intervals: Vec<(f64, Histogram<u64>)> = (0..3)
            .map(|s| {
                let mut h = new_histogram();
                for i in 0..1000u64 {
                    h.record(50 + i * (s + 1)).unwrap();
                }
                (s as f64, h)
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e2e.hlog");
        write_hlog(&intervals, "e2e", std::time::SystemTime::now(), &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let mut deserializer = Deserializer::new();
        let mut read = Vec::new();
        for entry in IntervalLogIterator::new(&bytes) {
            if let LogEntry::Interval(h) = entry.unwrap() {
                assert_eq!(h.tag().map(|t| t.as_str()), Some("e2e"));
                let raw = base64_decode(h.encoded_histogram());
                let decoded: Histogram<u64> = deserializer.deserialize(&mut &raw[..]).unwrap();
                read.push(decoded);
            }
        }
        assert_eq!(read.len(), 3);
        for (got, (_, want)) in read.iter().zip(&intervals) {
            assert_eq!(got, want, "a histogram must come back exactly");
        }
    }

    /// Standard base64 (the interval log's encoding), decoded by hand so
    /// the test needs no extra crate.
    fn base64_decode(s: &str) -> Vec<u8> {
        let val = |c: u8| -> u32 {
            match c {
                b'A'..=b'Z' => (c - b'A') as u32,
                b'a'..=b'z' => (c - b'a' + 26) as u32,
                b'0'..=b'9' => (c - b'0' + 52) as u32,
                b'+' => 62,
                b'/' => 63,
                _ => 0,
            }
        };
        let clean: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
        let mut out = Vec::new();
        for chunk in clean.chunks(4) {
            let mut n = 0u32;
            for (i, &c) in chunk.iter().enumerate() {
                n |= val(c) << (18 - 6 * i);
            }
            out.push((n >> 16) as u8);
            if chunk.len() > 2 {
                out.push((n >> 8) as u8);
            }
            if chunk.len() > 3 {
                out.push(n as u8);
            }
        }
        out
    }

    #[test]
    fn dates_are_utc_rfc3339() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_458_000);
        // Expected values checked with Python's datetime.
        assert_eq!(utc_rfc3339(t), "2026-11-23T18:20:00Z");
        assert_eq!(utc_rfc3339(std::time::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            utc_rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn max_is_never_below_p9999_and_the_table_names_durability() {
        let l = Latency::of(&sample());
        assert!(l.max >= l.p9999 && l.p9999 >= l.p999 && l.p999 >= l.p99 && l.p99 >= l.p50);
        let s = Summary {
            workload: Workload::default(),
            produce: Some(Throughput::new(1000, 1_000_000, 2.0)),
            produce_latency_us: Some(l),
            ..Summary::default()
        };
        assert_eq!(s.produce.as_ref().unwrap().mb_per_s, 0.5);
        let table = s.table();
        assert!(
            table.contains("acks=1") && table.contains("fsync never"),
            "{table}"
        );
        assert!(table.contains("produce → ack"));
        assert!(
            !table.contains("request round trip"),
            "none measured: {table}"
        );
    }

    #[test]
    fn the_table_shows_round_trips_cpu_and_consume_against_the_read_baseline() {
        let l = Latency::of(&sample());
        let s = Summary {
            workload: Workload {
                mode: super::super::workload::Mode::Consume,
                ..Workload::default()
            },
            consume: Some(Throughput::new(1000, 400_000_000, 1.0)),
            fetch_round_trip_latency_us: Some(l.clone()),
            round_trip_latency_us: Some(l),
            broker_cpu_seconds: Some(1.5),
            broker_cpu_scope: Some(CPU_SCOPE_PROCESS.into()),
            baseline: Some(Baseline {
                tcp_mb_per_s: 1000.0,
                disk_mb_per_s: 900.0,
                bytes: 1 << 30,
                disk_read_mb_per_s: 800.0,
                disk_read_bytes: 1 << 30,
                disk_read_io_bytes: 1 << 20,
                disk_reads_in_flight: 4,
            }),
            ..Summary::default()
        };
        let table = s.table();
        for want in [
            "produce request round trip",
            "fetch request round trip",
            LATENCY_NOTE,
            "broker CPU: 1.50 s over the measured phase (broker process)",
            "O_DIRECT disk read       800.0 MB/s",
            "1024 KiB reads, 4 in flight",
            // 400 MB/s of min(800 disk read, 1000 TCP).
            "consume = 0.50 of min(disk read, TCP sink) = 800.0 MB/s",
        ] {
            assert!(table.contains(want), "no {want:?} in {table}");
        }
        // Reports from before these fields still load.
        let old: Summary = serde_json::from_str(
            r#"{"per_second":[{"second":0,"produced_msgs":1}],"baseline":{"tcp_mb_per_s":1.0}}"#,
        )
        .unwrap();
        assert_eq!(old.per_second[0].produce_latency_max_us, None);
        assert_eq!(old.baseline.unwrap().disk_read_mb_per_s, 0.0);
        assert!(old.round_trip_latency_us.is_none() && old.broker_cpu_seconds.is_none());
    }
}
