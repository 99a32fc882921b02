//! What metrics cost: the shard-side counting a produce request does, and
//! a scrape of `/metrics` and `/v1/topics` with 10,000 partitions.
//!
//! ```text
//! cargo bench --bench metrics               # both parts
//! perf stat -e instructions target/release/deps/metrics-* --count on
//! perf stat -e instructions target/release/deps/metrics-* --count off
//! ```
//!
//! `--count on|off` runs only the counting loop (10 million simulated
//! requests) with or without the metrics calls, so `perf stat` can count
//! the instructions each costs; the difference divided by 10 million is
//! the per-request cost. Without arguments both loops are timed (median
//! of 7 rounds) and then the scrapes (median of 21).

use corelog::metrics::{
    Board, CommittedReport, GroupReport, HistogramReport, LatencyKind, PartitionReport,
    ShardMetrics, ShardReport, TopicTraffic,
};
use corelog::types::TopicId;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

const REQUESTS: u64 = 10_000_000;
const PARTITIONS: u32 = 10_000;

/// What the broker counts for one produce request of one partition.
fn count_loop(metrics: Option<&ShardMetrics>) -> Duration {
    let started = Instant::now();
    for i in 0..REQUESTS {
        let elapsed = Duration::from_nanos(black_box(150_000 + (i & 1023)));
        let topic = TopicId(black_box((i & 7) as u32));
        if let Some(m) = metrics {
            m.request(("native", "Produce"));
            m.latency(LatencyKind::Produce, elapsed);
            m.appended(topic, 1024, 1);
        } else {
            black_box((elapsed, topic));
        }
    }
    started.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// A board as a 2-shard broker with `PARTITIONS` partitions (100 topics of
/// 100) and 50 groups would publish it.
fn board() -> Arc<Board> {
    let board = Arc::new(Board::new(2));
    for shard in 0..2u32 {
        let partitions = (0..PARTITIONS / 2)
            .map(|i| {
                let p = i * 2 + shard;
                PartitionReport {
                    topic: format!("topic-{:03}", p / 100).into(),
                    partition: p % 100,
                    start: 0,
                    end: 1_000_000,
                    high_watermark: 1_000_000,
                    bytes: 1 << 30,
                    segments: 2,
                    error: None,
                }
            })
            .collect();
        let topics = (0..100)
            .map(|t| TopicTraffic {
                topic: format!("topic-{t:03}").into(),
                bytes_in: 1 << 40,
                bytes_out: 1 << 40,
                records_in: 1 << 30,
            })
            .collect();
        let groups = (0..25)
            .map(|g| GroupReport {
                group: format!("group-{shard}-{g}"),
                state: "Stable".into(),
                group_type: "classic",
                protocol_type: "consumer".into(),
                members: Vec::new(),
                committed: (0..100)
                    .map(|p| CommittedReport {
                        topic: format!("topic-{g:03}"),
                        partition: p,
                        offset: 999_000,
                    })
                    .collect(),
            })
            .collect();
        let h = HistogramReport {
            cumulative: vec![1; 16],
            count: 1,
            sum_seconds: 0.001,
        };
        board.publish(ShardReport {
            shard,
            at: Some(std::time::SystemTime::now()),
            recovered: true,
            produce_latency: h.clone(),
            fetch_latency: h.clone(),
            fsync_latency: h,
            partitions,
            topics,
            groups,
            ..ShardReport::default()
        });
    }
    board
}

fn scrape(url: &str) -> (Duration, usize) {
    let started = Instant::now();
    let body = ureq::get(url).call().unwrap().into_string().unwrap();
    (started.elapsed(), body.len())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--count") {
        let on = args.get(i + 1).map(String::as_str) == Some("on");
        let metrics = ShardMetrics::default();
        let took = count_loop(on.then_some(&metrics));
        println!(
            "{} requests, metrics {}: {:.1} ns per request",
            REQUESTS,
            if on { "on" } else { "off" },
            took.as_nanos() as f64 / REQUESTS as f64
        );
        return;
    }
    let metrics = ShardMetrics::default();
    let on = median((0..7).map(|_| count_loop(Some(&metrics))).collect());
    let off = median((0..7).map(|_| count_loop(None)).collect());
    println!(
        "counting per produce request: {:.1} ns with metrics, {:.1} ns without ({:.1} ns for metrics)",
        on.as_nanos() as f64 / REQUESTS as f64,
        off.as_nanos() as f64 / REQUESTS as f64,
        (on.as_nanos() as f64 - off.as_nanos() as f64) / REQUESTS as f64
    );
    let board = board();
    let server = corelog::http::start("127.0.0.1:0".parse().unwrap(), board).unwrap();
    for path in ["/metrics", "/v1/topics", "/v1/groups"] {
        let url = format!("http://{}{path}", server.addr());
        scrape(&url);
        let mut size = 0;
        let times: Vec<Duration> = (0..21)
            .map(|_| {
                let (t, n) = scrape(&url);
                size = n;
                t
            })
            .collect();
        println!(
            "GET {path} with {PARTITIONS} partitions: median {:.1} ms, {} KB",
            median(times).as_secs_f64() * 1e3,
            size / 1000
        );
    }
}
