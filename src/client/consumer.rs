//! The consumer: assign partitions, seek, poll. One fetch per destination
//! (owning shard, or the shared port) per poll, all in flight at once;
//! records are slices of the response frame, not copies.

use super::admin::{ClusterMetadata, fetch_metadata};
use super::kafka::{FetchLimits, Fetched};
use super::{CONNECT_TIMEOUT, ClientError, ConnectionPool, Result, RoundTripHook, Routing, Wire};
use crate::protocol::wire;
use crate::record::RecordBatch;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where to start reading a partition.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SeekTo {
    Earliest,
    Latest,
    Offset(u64),
    /// The first record with a timestamp at or after this (ms since epoch);
    /// the end if there is none.
    Timestamp(i64),
}

/// What to do when the position is out of range (deleted by retention, or
/// past the end).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum OffsetReset {
    Earliest,
    #[default]
    Latest,
    /// Return the error from `poll`.
    Error,
}

#[derive(Clone, Debug)]
pub struct ConsumerConfig {
    /// How long a fetch may wait at the broker for `min_bytes`.
    pub max_wait: Duration,
    pub min_bytes: u32,
    /// Most bytes per partition per fetch (at least one batch comes anyway).
    pub partition_max_bytes: u32,
    /// Most bytes per fetch response.
    pub fetch_max_bytes: u32,
    pub routing: Routing,
    pub reset: OffsetReset,
    pub request_timeout: Duration,
    /// The protocol to speak (the broker's Kafka listener for `Kafka`).
    pub wire: Wire,
    /// Told each answered fetch request's round trip (none by default). A
    /// fetch the broker holds for data (up to `max_wait`) counts the wait.
    pub round_trip: Option<RoundTripHook>,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            max_wait: Duration::from_millis(500),
            min_bytes: 1,
            partition_max_bytes: 1 << 20,
            fetch_max_bytes: 50 << 20,
            routing: Routing::Direct,
            reset: OffsetReset::Latest,
            request_timeout: Duration::from_secs(30),
            wire: Wire::Native,
            round_trip: None,
        }
    }
}

/// One batch read by [`Consumer::poll_batches`].
pub struct PolledBatch {
    pub topic: Arc<str>,
    pub partition: u32,
    /// The partition's position before this batch: records with a lower
    /// offset were delivered before (a fetch returns whole batches).
    pub from: u64,
    pub batch: RecordBatch,
}

/// One record read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerRecord {
    pub topic: Arc<str>,
    pub partition: u32,
    pub offset: u64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

struct Assignment {
    topic: Arc<str>,
    partition: u32,
    addr: SocketAddr,
    position: u64,
    high_watermark: u64,
}

/// Reads assigned partitions (see the module docs).
pub struct Consumer {
    config: ConsumerConfig,
    bootstrap: SocketAddr,
    metadata: ClusterMetadata,
    pool: ConnectionPool,
    assignments: Vec<Assignment>,
}

impl Consumer {
    pub async fn connect(bootstrap: SocketAddr, config: ConsumerConfig) -> Result<Consumer> {
        let pool = ConnectionPool::new(config.wire);
        let conn = pool.get(bootstrap, CONNECT_TIMEOUT).await?;
        let metadata = fetch_metadata(&conn, &[]).await?;
        Ok(Consumer {
            config,
            bootstrap,
            metadata,
            pool,
            assignments: Vec::new(),
        })
    }

    /// Adds partitions of `topic` (all when `partitions` is `None`),
    /// starting at `from`.
    pub async fn assign(
        &mut self,
        topic: &str,
        partitions: Option<&[u32]>,
        from: SeekTo,
    ) -> Result<()> {
        if !self.metadata.topics.contains_key(topic) {
            let conn = self.pool.get(self.bootstrap, CONNECT_TIMEOUT).await?;
            let m = fetch_metadata(&conn, &[topic]).await?;
            let info = m.topics.get(topic).cloned().ok_or_else(|| {
                ClientError::broker(
                    wire::ErrorCode::UNKNOWN_TOPIC,
                    Some(&format!("topic {topic:?} does not exist")),
                )
            })?;
            self.metadata.topics.insert(topic.to_string(), info);
        }
        let info = self.metadata.topics[topic].clone();
        let all: Vec<u32> = (0..info.partitions.len() as u32).collect();
        let wanted = partitions.unwrap_or(&all);
        let name: Arc<str> = Arc::from(topic);
        for &p in wanted {
            if p as usize >= info.partitions.len() {
                return Err(ClientError::Invalid(format!(
                    "topic {topic:?} has partitions 0..{}, not {p}",
                    info.partitions.len()
                )));
            }
            if self
                .assignments
                .iter()
                .any(|a| &*a.topic == topic && a.partition == p)
            {
                continue;
            }
            let addr = self.metadata.partition_addr(&info, p, self.config.routing);
            self.assignments.push(Assignment {
                topic: name.clone(),
                partition: p,
                addr,
                position: 0,
                high_watermark: 0,
            });
            self.seek(topic, p, from).await?;
        }
        Ok(())
    }

    /// Stops reading a partition.
    pub fn unassign(&mut self, topic: &str, partition: u32) {
        self.assignments
            .retain(|a| !(&*a.topic == topic && a.partition == partition));
    }

    /// A connection from this consumer's pool.
    pub(crate) async fn connection(
        &self,
        addr: SocketAddr,
    ) -> Result<std::rc::Rc<super::Connection>> {
        self.pool.get(addr, CONNECT_TIMEOUT).await
    }

    /// Moves a partition's position.
    pub async fn seek(&mut self, topic: &str, partition: u32, to: SeekTo) -> Result<()> {
        let i = self
            .assignments
            .iter()
            .position(|a| &*a.topic == topic && a.partition == partition)
            .ok_or_else(|| ClientError::Invalid(format!("{topic}/{partition} is not assigned")))?;
        let position = match to {
            SeekTo::Offset(o) => o,
            SeekTo::Earliest => self.list_offset(i, wire::OffsetSpec::EARLIEST, 0).await?,
            SeekTo::Latest => self.list_offset(i, wire::OffsetSpec::LATEST, 0).await?,
            SeekTo::Timestamp(ts) => match self
                .list_offset_raw(i, wire::OffsetSpec::TIMESTAMP, ts)
                .await?
            {
                -1 => self.list_offset(i, wire::OffsetSpec::LATEST, 0).await?,
                o => o as u64,
            },
        };
        self.assignments[i].position = position;
        Ok(())
    }

    async fn list_offset(&self, i: usize, spec: wire::OffsetSpec, ts: i64) -> Result<u64> {
        Ok(self.list_offset_raw(i, spec, ts).await?.max(0) as u64)
    }

    async fn list_offset_raw(
        &self,
        i: usize,
        spec: wire::OffsetSpec,
        timestamp: i64,
    ) -> Result<i64> {
        let a = &self.assignments[i];
        let conn = self.pool.get(a.addr, CONNECT_TIMEOUT).await?;
        if conn.wire() == Wire::Kafka {
            let kafka_spec = match spec {
                wire::OffsetSpec::EARLIEST => super::kafka::EARLIEST,
                wire::OffsetSpec::LATEST => super::kafka::LATEST,
                _ => timestamp,
            };
            return super::kafka::list_offset(
                &conn,
                &a.topic,
                a.partition,
                kafka_spec,
                self.config.request_timeout,
            )
            .await;
        }
        let response = conn
            .call_timeout(self.config.request_timeout, 256, |fbb| {
                let part = wire::ListOffsetsPartition::create(
                    fbb,
                    &wire::ListOffsetsPartitionArgs {
                        partition: a.partition,
                        spec,
                        timestamp,
                    },
                );
                let parts = fbb.create_vector(&[part]);
                let name = fbb.create_string(&a.topic);
                let topic = wire::ListOffsetsTopic::create(
                    fbb,
                    &wire::ListOffsetsTopicArgs {
                        topic: Some(name),
                        partitions: Some(parts),
                    },
                );
                let topics = fbb.create_vector(&[topic]);
                let body = wire::ListOffsetsRequest::create(
                    fbb,
                    &wire::ListOffsetsRequestArgs {
                        topics: Some(topics),
                    },
                );
                (wire::Request::ListOffsetsRequest, body.as_union_value())
            })
            .await?;
        let body = response
            .check()?
            .envelope()
            .response_as_list_offsets_response()
            .ok_or_else(|| ClientError::Protocol("list offsets response without a body".into()))?;
        let p = body
            .topics()
            .and_then(|t| t.iter().next())
            .and_then(|t| t.partitions())
            .and_then(|p| p.iter().next())
            .ok_or_else(|| {
                ClientError::Protocol("list offsets response without a partition".into())
            })?;
        if p.error() != wire::ErrorCode::NONE {
            return Err(ClientError::broker(p.error(), p.error_message()));
        }
        Ok(p.offset())
    }

    /// The next offset to read of a partition.
    pub fn position(&self, topic: &str, partition: u32) -> Option<u64> {
        self.assignments
            .iter()
            .find(|a| &*a.topic == topic && a.partition == partition)
            .map(|a| a.position)
    }

    /// The high watermark seen by the last poll of a partition.
    pub fn high_watermark(&self, topic: &str, partition: u32) -> Option<u64> {
        self.assignments
            .iter()
            .find(|a| &*a.topic == topic && a.partition == partition)
            .map(|a| a.high_watermark)
    }

    /// Fetches once from every destination (waiting at most `max_wait` at
    /// the broker) and returns the records past each position, in offset
    /// order per partition.
    pub async fn poll(&mut self) -> Result<Vec<ConsumerRecord>> {
        let mut out = Vec::new();
        for polled in self.poll_batches().await? {
            let batch = &polled.batch;
            for r in batch.records() {
                let offset = batch.base_offset().0 + r.offset_delta as u64;
                if offset < polled.from {
                    continue;
                }
                out.push(ConsumerRecord {
                    topic: polled.topic.clone(),
                    partition: polled.partition,
                    offset,
                    // A log-append-time batch gives every record the
                    // broker's append time.
                    timestamp: batch.record_timestamp(&r).0,
                    key: r.key.map(|k| batch.slice_of(k)),
                    value: r.value.map(|v| batch.slice_of(v)),
                    headers: r
                        .headers()
                        .map(|h| (h.key.to_string(), h.value.map(|v| batch.slice_of(v))))
                        .collect(),
                });
            }
        }
        Ok(out)
    }

    /// Like [`Consumer::poll`], but hands out whole batches (validated,
    /// slices of the response) instead of records: no work per record. A
    /// batch may start before the partition's position; records below
    /// [`PolledBatch::from`] were delivered before.
    pub async fn poll_batches(&mut self) -> Result<Vec<PolledBatch>> {
        let mut by_addr: BTreeMap<SocketAddr, Vec<usize>> = BTreeMap::new();
        for (i, a) in self.assignments.iter().enumerate() {
            by_addr.entry(a.addr).or_default().push(i);
        }
        let this = &*self;
        let fetches = by_addr.into_iter().map(|(addr, idxs)| async move {
            let fetched = this.fetch_partitions(addr, &idxs).await;
            (idxs, fetched)
        });
        let results = futures::future::join_all(fetches).await;
        let mut out = Vec::new();
        for (idxs, fetched) in results {
            for (p, &i) in fetched?.into_iter().zip(&idxs) {
                self.take_batches(i, p, &mut out)?;
            }
        }
        Ok(out)
    }

    /// Applies one partition's fetch answer: moves its position past the
    /// batches it returned (or resets it when out of range) and adds them
    /// to `out`.
    fn take_batches(&mut self, i: usize, p: Fetched, out: &mut Vec<PolledBatch>) -> Result<()> {
        let reset = self.config.reset;
        let a = &mut self.assignments[i];
        if p.out_of_range {
            a.position = match reset {
                OffsetReset::Earliest if p.log_start >= 0 => p.log_start as u64,
                OffsetReset::Latest if p.high_watermark >= 0 => p.high_watermark as u64,
                _ => return Err(p.error.expect("out of range is an error")),
            };
            return Ok(());
        }
        if let Some(e) = p.error {
            return Err(e);
        }
        a.high_watermark = p.high_watermark.max(0) as u64;
        let Some(bytes) = p.records else {
            return Ok(());
        };
        let mut at = 0;
        while at < bytes.len() {
            let framing = crate::record::read_framing(&bytes[at..])
                .ok_or_else(|| ClientError::Protocol("truncated batch in fetch response".into()))?;
            let end = at
                .checked_add(framing.total_bytes as usize)
                .filter(|&e| e <= bytes.len())
                .ok_or_else(|| {
                    ClientError::Protocol("batch runs past the fetch response".into())
                })?;
            let batch = RecordBatch::parse(bytes.slice(at..end), usize::MAX)
                .map_err(|e| ClientError::Protocol(format!("invalid batch from broker: {e}")))?;
            at = end;
            let next = batch.last_offset().0 + 1;
            if next <= a.position {
                continue;
            }
            out.push(PolledBatch {
                topic: a.topic.clone(),
                partition: a.partition,
                from: a.position,
                batch,
            });
            a.position = next;
        }
        Ok(())
    }

    /// One fetch to `addr` for the assignments `idxs`, answered in their
    /// order, whichever protocol the consumer speaks.
    async fn fetch_partitions(&self, addr: SocketAddr, idxs: &[usize]) -> Result<Vec<Fetched>> {
        let sent = self.config.round_trip.as_ref().map(|_| Instant::now());
        let answered = |sent: Option<Instant>| {
            if let (Some(hook), Some(sent)) = (&self.config.round_trip, sent) {
                hook.answered(sent);
            }
        };
        if self.pool.wire() == Wire::Kafka {
            let conn = self.pool.get(addr, CONNECT_TIMEOUT).await?;
            let config = &self.config;
            let asked: Vec<(&str, u32, u64)> = idxs
                .iter()
                .map(|&i| {
                    let a = &self.assignments[i];
                    (&*a.topic, a.partition, a.position)
                })
                .collect();
            let limits = FetchLimits {
                max_wait: config.max_wait,
                min_bytes: config.min_bytes,
                max_bytes: config.fetch_max_bytes,
                partition_max_bytes: config.partition_max_bytes,
            };
            let fetched = super::kafka::fetch(
                &conn,
                &asked,
                &limits,
                config.request_timeout + config.max_wait,
            )
            .await?;
            answered(sent);
            return Ok(fetched);
        }
        let response = self.fetch(addr, idxs).await?;
        answered(sent);
        response.check()?;
        let body = response
            .envelope()
            .response_as_fetch_response()
            .ok_or_else(|| ClientError::Protocol("fetch response without a body".into()))?;
        let frame = response.frame();
        let parts: Vec<_> = body
            .topics()
            .iter()
            .flatten()
            .flat_map(|t| t.partitions().into_iter().flatten())
            .collect();
        if parts.len() != idxs.len() {
            return Err(ClientError::Protocol(format!(
                "fetch returned {} partitions for {} asked",
                parts.len(),
                idxs.len()
            )));
        }
        Ok(parts
            .iter()
            .map(|p| Fetched {
                error: (p.error() != wire::ErrorCode::NONE)
                    .then(|| ClientError::broker(p.error(), p.error_message())),
                out_of_range: p.error() == wire::ErrorCode::OFFSET_OUT_OF_RANGE,
                log_start: p.log_start_offset(),
                high_watermark: p.high_watermark(),
                records: p.records().map(|r| frame.slice_ref(r.bytes())),
            })
            .collect())
    }

    async fn fetch(&self, addr: SocketAddr, idxs: &[usize]) -> Result<super::Response> {
        let conn = self.pool.get(addr, CONNECT_TIMEOUT).await?;
        let config = &self.config;
        conn.call_timeout(
            config.request_timeout + config.max_wait,
            256 + 64 * idxs.len(),
            |fbb| {
                // One FetchTopic per partition keeps the response in the order
                // of `idxs` without regrouping.
                let topics: Vec<_> = idxs
                    .iter()
                    .map(|&i| {
                        let a = &self.assignments[i];
                        let part = wire::FetchPartition::create(
                            fbb,
                            &wire::FetchPartitionArgs {
                                partition: a.partition,
                                offset: a.position as i64,
                                max_bytes: config.partition_max_bytes,
                                current_leader_epoch: -1,
                                last_fetched_epoch: -1,
                            },
                        );
                        let parts = fbb.create_vector(&[part]);
                        let name = fbb.create_string(&a.topic);
                        wire::FetchTopic::create(
                            fbb,
                            &wire::FetchTopicArgs {
                                topic: Some(name),
                                partitions: Some(parts),
                            },
                        )
                    })
                    .collect();
                let topics = fbb.create_vector(&topics);
                let body = wire::FetchRequest::create(
                    fbb,
                    &wire::FetchRequestArgs {
                        max_wait_ms: config.max_wait.as_millis().min(u32::MAX as u128) as u32,
                        min_bytes: config.min_bytes,
                        max_bytes: config.fetch_max_bytes,
                        topics: Some(topics),
                        replica_id: -1,
                    },
                );
                (wire::Request::FetchRequest, body.as_union_value())
            },
        )
        .await
    }
}
