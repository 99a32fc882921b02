//! What a shard publishes for metrics and the HTTP API (see `metrics`).

use super::Shard;
use crate::constants::METRICS_PUBLISH_MS;
use crate::metrics::{PartitionReport, ShardReport};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

/// Partitions a report takes between yields to the shard's other tasks.
const PUBLISH_CHUNK: usize = 64;

impl Shard {
    /// Publishes this shard's figures now (a snapshot: nothing the HTTP
    /// side reads is shared with the shard). Built [`PUBLISH_CHUNK`]
    /// partitions at a time, letting requests run in between, so a shard
    /// with thousands of partitions never stalls for the whole pass.
    pub(crate) async fn publish(&self) {
        let started = std::time::Instant::now();
        let (report, longest) = self.report().await;
        let partitions = report.partitions.len();
        self.board.publish(report);
        tracing::debug!(
            shard = %self.id,
            partitions,
            took_us = started.elapsed().as_micros() as u64,
            longest_step_us = longest.as_micros() as u64,
            "published metrics"
        );
    }

    /// Publishes every [`METRICS_PUBLISH_MS`] until dropped.
    pub(crate) async fn publish_loop(self: Rc<Self>) {
        loop {
            glommio::timer::sleep(Duration::from_millis(METRICS_PUBLISH_MS)).await;
            self.publish().await;
        }
    }

    /// The report, and the longest step between yields.
    async fn report(&self) -> (ShardReport, Duration) {
        let snapshot = self.snapshot();
        let names: HashMap<_, _> = snapshot
            .topics
            .values()
            .map(|t| (t.id, t.name.clone()))
            .collect();
        let (mut partitions, longest) = self.partition_reports(&names).await;
        let step = std::time::Instant::now();
        for ((topic, partition), reason) in self.failed.borrow().iter() {
            if let Some(name) = names.get(topic) {
                partitions.push(PartitionReport {
                    topic: name.clone(),
                    partition: *partition,
                    start: 0,
                    end: 0,
                    high_watermark: 0,
                    bytes: 0,
                    segments: 0,
                    error: Some(reason.clone()),
                });
            }
        }
        let (produce_latency, fetch_latency) = self.metrics.latencies();
        let reads = self.disk.read_ahead().stats();
        let c = &self.counters;
        let report = ShardReport {
            shard: self.id.0,
            at: Some(SystemTime::now()),
            recovered: true,
            port: self.ports[self.id.0 as usize],
            requests: self.metrics.requests(),
            errors: self.metrics.errors(),
            security: self.metrics.security_counts(),
            connections: self.metrics.connections(),
            hops: c.hops.get(),
            bytes_in: c.bytes_in.get(),
            bytes_out: c.bytes_out.get(),
            produce_latency,
            fetch_latency,
            // Read on the shard's own thread: its fsyncs and CPU time.
            fsync_latency: crate::metrics::fsync_stats(),
            cpu_seconds: crate::support::thread_cpu_us() as f64 / 1e6,
            disk_read_bytes: reads.disk_read_bytes,
            cache_read_bytes: reads.cache_read_bytes,
            topics: self.metrics.traffic(|id| names.get(&id).cloned()),
            partitions,
            groups: self.groups.report(),
        };
        (report, longest.max(step.elapsed()))
    }

    /// Every open partition's report, [`PUBLISH_CHUNK`] at a time with a
    /// yield between chunks; and the longest step between yields.
    async fn partition_reports(
        &self,
        names: &HashMap<crate::types::TopicId, std::sync::Arc<str>>,
    ) -> (Vec<PartitionReport>, Duration) {
        let mut longest = Duration::ZERO;
        let mut step = std::time::Instant::now();
        let logs: Vec<_> = self
            .logs
            .borrow()
            .iter()
            .map(|(&key, log)| (key, log.clone()))
            .collect();
        let mut partitions: Vec<PartitionReport> = Vec::with_capacity(logs.len());
        for chunk in logs.chunks(PUBLISH_CHUNK) {
            partitions.extend(chunk.iter().filter_map(|&((topic, partition), ref log)| {
                Some(PartitionReport {
                    topic: names.get(&topic)?.clone(),
                    partition,
                    start: log.start_offset().0,
                    end: log.end_offset().0,
                    high_watermark: log.high_watermark().0,
                    bytes: log.size_bytes(),
                    segments: log.segment_count() as u32,
                    error: log.failure(),
                })
            }));
            if logs.len() > PUBLISH_CHUNK {
                longest = longest.max(step.elapsed());
                crate::support::yield_to_ready_tasks().await;
                step = std::time::Instant::now();
            }
        }
        (partitions, longest.max(step.elapsed()))
    }
}
