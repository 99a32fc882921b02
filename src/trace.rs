//! Where a produce request's time goes: per-stage latency histograms,
//! switched on with `corelog serve --trace-latency` or
//! `corelog bench --trace-latency` and off (one relaxed atomic load per
//! stage) otherwise.
//!
//! Stages are measured per request (per chunk for device writes), not per
//! record, so even switched on the cost is a few clock readings per request.
//! Every thread of the process records into one registry: in `corelog
//! bench` with its embedded broker the client's stages and the broker's land
//! in the same table. A broker started with `--trace-latency` logs the last
//! second's breakdown once a second; `perf/latency-breakdown.md` describes
//! the method.

use hdrhistogram::Histogram;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// One step of a produce request's life, in the order a request meets them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Client: the batch's first record was added → the request was
    /// handed to the socket (batching, linger, queueing behind other
    /// requests of the connection).
    ClientQueue,
    /// Client: request handed to the socket → its answer read back.
    ClientRoundTrip,
    /// Load generator: how much later than asked its pacing sleep ended
    /// (executor or operating-system scheduling delay on the client side).
    ClientWakeLate,
    /// Broker: first byte of the request frame read → last byte read.
    Receive,
    /// Broker: frame read → its handler first runs (task scheduling).
    Queue,
    /// Broker: the handler sent the partition's records to the owning
    /// shard → that shard starts the append (cross-core hop; only for
    /// requests that arrive on another shard's port).
    Hop,
    /// Broker: the log's append call → its return (copy into the write
    /// chunk; waits while too many chunks are in flight to the device).
    Append,
    /// Broker: one write chunk handed to the device → the device finished
    /// it (direct I/O completion; per chunk, not per request).
    DiskWrite,
    /// Broker: append returned → the records are durable, for requests
    /// that wait for it (acks=all, or fsync `always`).
    Durable,
    /// Broker: handler first runs → its answer is ready.
    Handler,
    /// Broker: answer ready → written to the socket (includes waiting for
    /// earlier answers of the connection, which go out in request order).
    Answer,
    /// Broker: frame read → answer written: the broker's whole share.
    Broker,
}

impl Stage {
    pub const ALL: [Stage; 12] = [
        Stage::ClientQueue,
        Stage::ClientRoundTrip,
        Stage::ClientWakeLate,
        Stage::Receive,
        Stage::Queue,
        Stage::Hop,
        Stage::Append,
        Stage::DiskWrite,
        Stage::Durable,
        Stage::Handler,
        Stage::Answer,
        Stage::Broker,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::ClientQueue => "client queue",
            Stage::ClientRoundTrip => "client round trip",
            Stage::ClientWakeLate => "client wake-up late",
            Stage::Receive => "receive frame",
            Stage::Queue => "queue to handler",
            Stage::Hop => "cross-core hop",
            Stage::Append => "append",
            Stage::DiskWrite => "device write",
            Stage::Durable => "fsync wait",
            Stage::Handler => "handler",
            Stage::Answer => "answer write",
            Stage::Broker => "broker total",
        }
    }

    /// The key in summary files.
    pub fn key(self) -> &'static str {
        match self {
            Stage::ClientQueue => "client_queue",
            Stage::ClientRoundTrip => "client_round_trip",
            Stage::ClientWakeLate => "client_wake_late",
            Stage::Receive => "receive",
            Stage::Queue => "queue",
            Stage::Hop => "hop",
            Stage::Append => "append",
            Stage::DiskWrite => "disk_write",
            Stage::Durable => "durable",
            Stage::Handler => "handler",
            Stage::Answer => "answer",
            Stage::Broker => "broker",
        }
    }
}

static ENABLED: AtomicBool = AtomicBool::new(false);

/// (since the last interval was taken, since the last reset), by stage.
type Registry = Option<(Vec<Histogram<u64>>, Vec<Histogram<u64>>)>;
static REGISTRY: Mutex<Registry> = Mutex::new(None);

fn histograms() -> Vec<Histogram<u64>> {
    Stage::ALL
        .iter()
        .map(|_| Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"))
        .collect()
}

/// Switches tracing on or off for the whole process.
pub fn enable(on: bool) {
    if on {
        let mut registry = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
        if registry.is_none() {
            *registry = Some((histograms(), histograms()));
        }
    }
    ENABLED.store(on, Ordering::Relaxed);
}

#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The time now if tracing is on.
#[inline]
pub fn now() -> Option<Instant> {
    enabled().then(Instant::now)
}

/// Records `stage` as the time since `from` (nothing when `from` is
/// `None`, i.e. tracing was off when it started) and returns the time now.
#[inline]
pub fn since(stage: Stage, from: Option<Instant>) -> Option<Instant> {
    let from = from?;
    let now = Instant::now();
    record(stage, now.saturating_duration_since(from));
    Some(now)
}

/// Records one observation of `stage`.
pub fn record(stage: Stage, took: Duration) {
    if !enabled() {
        return;
    }
    let us = (took.as_micros() as u64).clamp(1, 3_600_000_000);
    let mut registry = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((interval, total)) = registry.as_mut() {
        let i = stage as usize;
        let _ = interval[i].record(us);
        let _ = total[i].record(us);
    }
}

/// Forgets everything recorded so far (the start of a measured phase).
pub fn reset() {
    let mut registry = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((interval, total)) = registry.as_mut() {
        interval.iter_mut().for_each(|h| h.reset());
        total.iter_mut().for_each(|h| h.reset());
    }
}

/// Everything since the last [`reset`], by stage (stages never seen are
/// left out).
pub fn totals() -> Vec<(Stage, Histogram<u64>)> {
    let registry = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    match registry.as_ref() {
        None => Vec::new(),
        Some((_, total)) => seen(total),
    }
}

/// What was recorded since the last call, by stage, and starts a new
/// interval.
pub fn take_interval() -> Vec<(Stage, Histogram<u64>)> {
    let mut registry = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    match registry.as_mut() {
        None => Vec::new(),
        Some((interval, _)) => {
            let out = seen(interval);
            interval.iter_mut().for_each(|h| h.reset());
            out
        }
    }
}

fn seen(hists: &[Histogram<u64>]) -> Vec<(Stage, Histogram<u64>)> {
    Stage::ALL
        .iter()
        .zip(hists)
        .filter(|(_, h)| !h.is_empty())
        .map(|(s, h)| (*s, h.clone()))
        .collect()
}

/// One line per stage: count, p50, p99, p99.9 and max in microseconds.
pub fn table(stages: &[(Stage, Histogram<u64>)]) -> String {
    let mut out = format!(
        "{:<20} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        "stage (µs)", "count", "p50", "p90", "p99", "p99.9", "max"
    );
    for (stage, h) in stages {
        out.push_str(&format!(
            "{:<20} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
            stage.name(),
            h.len(),
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.9),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max()
        ));
    }
    out
}

/// The stages as one log-friendly line: `stage=p50/p99/max` in µs.
pub fn line(stages: &[(Stage, Histogram<u64>)]) -> String {
    stages
        .iter()
        .map(|(s, h)| {
            format!(
                "{}={}/{}/{}",
                s.key(),
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.max()
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// JSON of the stages for summary files: per stage count and percentiles
/// in microseconds.
pub fn json(stages: &[(Stage, Histogram<u64>)]) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for (stage, h) in stages {
        map.insert(
            stage.key().to_string(),
            serde_json::json!({
                "count": h.len(),
                "p50": h.value_at_quantile(0.5),
                "p90": h.value_at_quantile(0.9),
                "p99": h.value_at_quantile(0.99),
                "p999": h.value_at_quantile(0.999),
                "max": h.max(),
            }),
        );
    }
    serde_json::Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_are_recorded_only_while_tracing_is_on() {
        // One test touches the process-wide switch, so tests cannot race.
        enable(false);
        assert!(now().is_none());
        record(Stage::Append, Duration::from_micros(5));
        enable(true);
        reset();
        let t = now();
        assert!(t.is_some());
        record(Stage::Append, Duration::from_micros(7));
        record(Stage::Append, Duration::from_micros(900));
        since(Stage::Answer, t);
        let totals = totals();
        let append = &totals.iter().find(|(s, _)| *s == Stage::Append).unwrap().1;
        assert_eq!(append.len(), 2);
        assert!(append.max() >= 900);
        assert!(totals.iter().any(|(s, _)| *s == Stage::Answer));
        assert!(!totals.iter().any(|(s, _)| *s == Stage::Hop));
        let first = take_interval();
        assert_eq!(first.len(), 2);
        assert!(take_interval().is_empty(), "an interval starts empty");
        assert_eq!(self::totals().len(), 2, "totals outlive intervals");
        assert!(table(&totals).contains("append"));
        assert!(line(&totals).starts_with("append=7/"));
        enable(false);
        record(Stage::Hop, Duration::from_micros(1));
        assert!(!self::totals().iter().any(|(s, _)| *s == Stage::Hop));
    }
}
