//! What a shard does with partitions: locally for those it owns, through a
//! message to the owner for the others. Each public operation takes items
//! tagged with their position in the client's request (`idx`), groups them
//! by owning shard, sends one message per remote shard (one hop each), runs
//! the local group itself, and returns the outcomes in request order.

use super::replication::ReadKind;
use super::{Shard, ShardMsg, Turn};
use crate::constants::REPLICATION_ACK_TIMEOUT_MS;
use crate::error::{BrokerError, ErrorKind};
use crate::storage::{AppendInfo, StorageError};
use crate::trace::{self, Stage};
use crate::types::{Acks, Offset, OffsetSpec, ShardId, Timestamp, TopicId};
use bytes::{Bytes, BytesMut};
use futures::channel::oneshot;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Records for one partition.
pub struct ProduceItem {
    pub idx: usize,
    pub topic: TopicId,
    pub partition: u32,
    pub data: BytesMut,
}

pub struct ProduceOutcome {
    pub idx: usize,
    pub result: Result<AppendInfo, BrokerError>,
}

/// A read of one partition.
#[derive(Clone, Debug)]
pub struct FetchItem {
    pub idx: usize,
    pub topic: TopicId,
    pub partition: u32,
    pub offset: Offset,
    pub max_bytes: usize,
    /// A follower broker replicating the partition (reads past the high
    /// watermark, reports what it has); `None` for consumers.
    pub replica: Option<u32>,
    /// See [`crate::broker::FetchPartition`].
    pub current_leader_epoch: i32,
    pub last_fetched_epoch: i32,
}

/// What a read found.
#[derive(Clone, Debug, Default)]
pub struct FetchData {
    pub chunks: Vec<Bytes>,
    pub bytes: usize,
    pub high_watermark: Offset,
    pub log_start: Offset,
    /// For a follower whose log diverges from the leader's: the largest
    /// leader epoch at or below its last fetched one and where it ends.
    pub diverging: Option<(i32, Offset)>,
}

pub struct FetchOutcome {
    pub idx: usize,
    /// On error, the partition's range if known (for out-of-range offsets).
    pub result: Result<FetchData, (BrokerError, Option<(Offset, Offset)>)>,
}

/// The offset and timestamp answered for a partition (`None`: no record
/// matches, as for a timestamp after every record), or why not.
pub type OffsetAnswer = Result<Option<(Offset, Option<Timestamp>)>, BrokerError>;

/// A list-offsets question about one partition.
pub struct OffsetQuery {
    pub idx: usize,
    pub topic: TopicId,
    pub partition: u32,
    pub spec: OffsetSpec,
}

/// A partition's state for `describe`.
#[derive(Clone, Debug)]
pub struct PartitionState {
    pub partition: u32,
    pub shard: ShardId,
    pub error: Option<BrokerError>,
    pub start: Offset,
    pub end: Offset,
    pub high_watermark: Offset,
    pub bytes: u64,
    pub segments: u32,
}

/// One shard's counters.
#[derive(Clone, Debug, Default)]
pub struct ShardStatsData {
    pub shard: u32,
    pub port: u16,
    pub connections: u32,
    pub requests: u64,
    pub hops: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub partitions: u32,
    pub errors: u64,
    /// CPU time of the shard's thread (user + system), microseconds.
    pub cpu_us: u64,
    /// Bytes of batches fetches read from segment files (disk).
    pub disk_read_bytes: u64,
    /// Bytes of batches fetches read from the partitions' tail caches.
    pub cache_read_bytes: u64,
}

/// Splits `items` into this shard's and each other shard's.
pub(super) fn group_by_owner<T>(
    shard: &Shard,
    items: Vec<T>,
    key: impl Fn(&T) -> (TopicId, u32),
) -> (Vec<T>, BTreeMap<ShardId, Vec<T>>) {
    let mut local = Vec::new();
    let mut remote: BTreeMap<ShardId, Vec<T>> = BTreeMap::new();
    for item in items {
        let (topic, partition) = key(&item);
        let owner = shard.owner(topic, partition);
        if owner == shard.id {
            local.push(item);
        } else {
            remote.entry(owner).or_default().push(item);
        }
    }
    (local, remote)
}

impl Shard {
    /// Appends each item's records to its partition, wherever it lives.
    /// `turn` is the request's place in its connection's order (see
    /// `order`): its appends start after the connection's earlier
    /// requests' have, so a connection's requests are appended in the
    /// order they arrived. `None`: no order to keep (one request alone).
    pub async fn produce(
        self: &Rc<Self>,
        items: Vec<ProduceItem>,
        acks: Acks,
        turn: Option<Turn>,
    ) -> Vec<ProduceOutcome> {
        let (local, remote) = group_by_owner(self, items, |i| (i.topic, i.partition));
        if let Some(turn) = &turn {
            turn.come().await;
        }
        let mut waits = Vec::new();
        let mut failed = Vec::new();
        for (owner, items) in remote {
            let idxs: Vec<usize> = items.iter().map(|i| i.idx).collect();
            let (tx, rx) = oneshot::channel();
            // The owner starts a hop's appends in the order its messages
            // arrive (see `spawn_mesh_receivers`).
            match self
                .send_to(
                    owner,
                    ShardMsg::Produce {
                        items,
                        acks,
                        sent: crate::trace::now(),
                        reply: tx,
                    },
                )
                .await
            {
                Ok(()) => waits.push((idxs, rx)),
                Err(e) => failed.extend(idxs.into_iter().map(|idx| ProduceOutcome {
                    idx,
                    result: Err(e.clone()),
                })),
            }
        }
        let local = self.produce_local(local, acks);
        if let Some(turn) = turn {
            turn.end();
        }
        let mut out = local.await;
        out.extend(failed);
        for (idxs, rx) in waits {
            match rx.await {
                Ok(results) => out.extend(results),
                Err(_) => out.extend(idxs.into_iter().map(|idx| ProduceOutcome {
                    idx,
                    result: Err(BrokerError::shutting_down()),
                })),
            }
        }
        out
    }

    /// Starts every item's append on this shard before it returns (in
    /// item order); the future waits for the outcomes.
    pub(super) fn produce_local(
        &self,
        items: Vec<ProduceItem>,
        acks: Acks,
    ) -> impl std::future::Future<Output = Vec<ProduceOutcome>> + use<> {
        let refusal = self.disk_refusal();
        let metrics = &self.metrics;
        let appends: Vec<_> = items
            .into_iter()
            .map(|item| {
                let bytes = item.data.len() as u64;
                // acks=all needs min.insync.replicas in sync before anything
                // is appended.
                let served =
                    self.serving_log(item.topic, item.partition)
                        .and_then(|(log, part)| {
                            match &part {
                                Some(p) if acks == Acks::All => p.check_min_insync()?,
                                _ => {}
                            }
                            Ok((log, part))
                        });
                let started = match served {
                    Err(e) => Err(e),
                    Ok(_) if refusal.is_some() => Err(refusal.clone().expect("checked above")),
                    Ok((log, part)) => {
                        let began = trace::now();
                        let pending = log.start_append(item.data);
                        Ok((log, part, pending, began))
                    }
                };
                let (idx, topic) = (item.idx, item.topic);
                let metrics = metrics.clone();
                async move {
                    let result = match started {
                        Err(e) => Err(e),
                        Ok((log, part, pending, began)) => {
                            let appended = pending.await;
                            let appended_at = trace::since(Stage::Append, began);
                            if let Ok(info) = &appended {
                                metrics.appended(
                                    topic,
                                    bytes,
                                    info.last_offset.0 + 1 - info.base_offset.0,
                                );
                            }
                            match appended {
                                Ok(info) => match acks {
                                    Acks::All => {
                                        let end = info.last_offset.plus(1);
                                        let durable = log.make_durable(end).await;
                                        trace::since(Stage::Durable, appended_at);
                                        match (durable, part) {
                                            (Err(e), _) => Err(BrokerError::storage(&e)),
                                            (Ok(()), None) => Ok(info),
                                            (Ok(()), Some(part)) => part
                                                .wait_replicated(
                                                    end,
                                                    Duration::from_millis(
                                                        REPLICATION_ACK_TIMEOUT_MS,
                                                    ),
                                                )
                                                .await
                                                .map(|()| info),
                                        }
                                    }
                                    _ => {
                                        if let Some(part) = part {
                                            part.advance();
                                        }
                                        Ok(info)
                                    }
                                },
                                Err(e) => Err(BrokerError::storage(&e)),
                            }
                        }
                    };
                    ProduceOutcome { idx, result }
                }
            })
            .collect();
        futures::future::join_all(appends)
    }

    /// Reads each item's partition once, wherever it lives.
    pub async fn fetch(self: &Rc<Self>, items: Vec<FetchItem>) -> Vec<FetchOutcome> {
        let (local, remote) = group_by_owner(self, items, |i| (i.topic, i.partition));
        let mut waits = Vec::new();
        let mut out = Vec::new();
        for (owner, items) in remote {
            let idxs: Vec<usize> = items.iter().map(|i| i.idx).collect();
            let (tx, rx) = oneshot::channel();
            match self
                .send_to(owner, ShardMsg::Fetch { items, reply: tx })
                .await
            {
                Ok(()) => waits.push((idxs, rx)),
                Err(e) => out.extend(idxs.into_iter().map(|idx| FetchOutcome {
                    idx,
                    result: Err((e.clone(), None)),
                })),
            }
        }
        out.extend(self.fetch_local(local).await);
        for (idxs, rx) in waits {
            match rx.await {
                Ok(results) => out.extend(results),
                Err(_) => out.extend(idxs.into_iter().map(|idx| FetchOutcome {
                    idx,
                    result: Err((BrokerError::shutting_down(), None)),
                })),
            }
        }
        out
    }

    pub(super) async fn fetch_local(&self, items: Vec<FetchItem>) -> Vec<FetchOutcome> {
        let reads = items.into_iter().map(|item| async move {
            let result = match self.serving_read(&item) {
                // A follower past the leader's end learns the leader's
                // range, to cut its log to it.
                Err(e) if e.kind == ErrorKind::OffsetOutOfRange => {
                    let range = self
                        .log(item.topic, item.partition)
                        .map(|log| (log.start_offset(), log.end_offset()));
                    Err((e, range))
                }
                Err(e) => Err((e, None)),
                Ok((_, ReadKind::Diverging(epoch, end, hw, start))) => Ok(FetchData {
                    high_watermark: hw,
                    log_start: start,
                    diverging: Some((epoch, end)),
                    ..FetchData::default()
                }),
                Ok((log, kind)) => match match kind {
                    ReadKind::Replica => log.read_replica(item.offset, item.max_bytes).await,
                    _ => log.read(item.offset, item.max_bytes).await,
                } {
                    Ok(read) => {
                        self.metrics.fetched(item.topic, read.bytes as u64);
                        Ok(FetchData {
                            bytes: read.bytes,
                            chunks: read.chunks,
                            high_watermark: match &kind {
                                ReadKind::Replica => self
                                    .replication
                                    .get(item.topic, item.partition)
                                    .map_or(read.high_watermark, |p| p.high_watermark()),
                                _ => read.high_watermark,
                            },
                            log_start: read.log_start_offset,
                            diverging: None,
                        })
                    }
                    Err(e) => {
                        let range = match &e {
                            StorageError::OffsetOutOfRange { start, end, .. } => {
                                Some((*start, *end))
                            }
                            _ => None,
                        };
                        Err((BrokerError::storage(&e), range))
                    }
                },
            };
            FetchOutcome {
                idx: item.idx,
                result,
            }
        });
        futures::future::join_all(reads).await
    }

    /// Waits until any item's partition has data at or past its offset,
    /// `deadline` passes, or the broker shuts down.
    pub async fn wait_for_data(self: &Rc<Self>, items: Vec<FetchItem>, deadline: Instant) {
        let (local, remote) = group_by_owner(self, items, |i| (i.topic, i.partition));
        let mut waits: Vec<futures::future::LocalBoxFuture<'_, ()>> = Vec::new();
        for (owner, items) in remote {
            let (tx, rx) = oneshot::channel();
            if self
                .send_to(
                    owner,
                    ShardMsg::WaitForData {
                        items,
                        deadline,
                        reply: tx,
                    },
                )
                .await
                .is_ok()
            {
                waits.push(Box::pin(async move {
                    let _ = rx.await;
                }));
            }
        }
        if !local.is_empty() {
            waits.push(Box::pin(
                async move { self.wait_local(&local, deadline).await },
            ));
        }
        waits.push(Box::pin(async move {
            let now = Instant::now();
            glommio::timer::sleep(deadline.saturating_duration_since(now)).await;
        }));
        waits.push(Box::pin(self.shutdown.wait()));
        // The first to finish wins; dropping the rest cancels the remote
        // waits (their reply channels close).
        let _ = futures::future::select_all(waits).await;
    }

    pub(super) async fn wait_local(&self, items: &[FetchItem], deadline: Instant) {
        loop {
            let mut listeners = Vec::with_capacity(items.len());
            for item in items {
                match self.log(item.topic, item.partition) {
                    // A missing partition or data already there: stop waiting.
                    None => return,
                    Some(log) => {
                        let listener = log.listen_for_data();
                        // A follower waits for the log end, a consumer for
                        // the high watermark.
                        let end = match item.replica {
                            Some(_) => log.end_offset(),
                            None => log.high_watermark(),
                        };
                        if end > item.offset || log.start_offset() > item.offset {
                            return;
                        }
                        listeners.push(listener);
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline || self.shutdown.is_raised() {
                return;
            }
            let timer = glommio::timer::sleep(deadline - now);
            let any = futures::future::select_all(listeners);
            futures::pin_mut!(timer);
            if let futures::future::Either::Left(_) = futures::future::select(timer, any).await {
                return;
            }
        }
    }

    /// Answers list-offsets questions wherever the partitions live.
    pub async fn list_offsets(
        self: &Rc<Self>,
        items: Vec<OffsetQuery>,
    ) -> Vec<(usize, OffsetAnswer)> {
        let (local, remote) = group_by_owner(self, items, |i| (i.topic, i.partition));
        let mut out: Vec<(usize, OffsetAnswer)> = Vec::new();
        let local_idx: Vec<usize> = local.iter().map(|q| q.idx).collect();
        let mut waits = Vec::new();
        for (owner, items) in remote {
            let idxs: Vec<usize> = items.iter().map(|i| i.idx).collect();
            let (tx, rx) = oneshot::channel();
            match self
                .send_to(owner, ShardMsg::ListOffsets { items, reply: tx })
                .await
            {
                Ok(()) => waits.push((idxs, rx)),
                Err(e) => out.extend(idxs.into_iter().map(|i| (i, Err(e.clone())))),
            }
        }
        out.extend(
            local_idx
                .into_iter()
                .zip(self.list_offsets_local(local).await),
        );
        for (idxs, rx) in waits {
            match rx.await {
                Ok(results) => out.extend(idxs.into_iter().zip(results)),
                Err(_) => out.extend(
                    idxs.into_iter()
                        .map(|i| (i, Err(BrokerError::shutting_down()))),
                ),
            }
        }
        out
    }

    pub(super) async fn list_offsets_local(&self, items: Vec<OffsetQuery>) -> Vec<OffsetAnswer> {
        let mut out = Vec::with_capacity(items.len());
        for q in items {
            let Ok((log, _)) = self.serving_log(q.topic, q.partition) else {
                out.push(Err(self.unavailable(q.topic, q.partition)));
                continue;
            };
            out.push(match q.spec {
                OffsetSpec::Earliest => Ok(Some((log.start_offset(), None))),
                OffsetSpec::Latest => Ok(Some((log.high_watermark(), None))),
                OffsetSpec::Timestamp(ts) => log
                    .offset_for_timestamp(ts)
                    .await
                    .map(|found| found.map(|(offset, ts)| (offset, Some(ts))))
                    .map_err(|e| BrokerError::storage(&e)),
                OffsetSpec::MaxTimestamp => log
                    .offset_of_max_timestamp()
                    .await
                    .map(|found| found.map(|(offset, ts)| (offset, Some(ts))))
                    .map_err(|e| BrokerError::storage(&e)),
            });
        }
        out
    }

    /// The state of the given partitions of a topic, wherever they live.
    pub async fn describe(self: &Rc<Self>, topic: TopicId, partitions: u32) -> Vec<PartitionState> {
        let mut by_owner: BTreeMap<ShardId, Vec<u32>> = BTreeMap::new();
        for p in 0..partitions {
            by_owner.entry(self.owner(topic, p)).or_default().push(p);
        }
        let mut out = Vec::new();
        for (owner, parts) in by_owner {
            if owner == self.id {
                out.extend(self.describe_local(topic, &parts));
                continue;
            }
            let (tx, rx) = oneshot::channel();
            let sent = self
                .send_to(
                    owner,
                    ShardMsg::Describe {
                        topic,
                        partitions: parts.clone(),
                        reply: tx,
                    },
                )
                .await;
            match (sent, rx.await) {
                (Ok(()), Ok(states)) => out.extend(states),
                _ => out.extend(parts.into_iter().map(|p| PartitionState {
                    partition: p,
                    shard: owner,
                    error: Some(BrokerError::shutting_down()),
                    start: Offset::ZERO,
                    end: Offset::ZERO,
                    high_watermark: Offset::ZERO,
                    bytes: 0,
                    segments: 0,
                })),
            }
        }
        out.sort_by_key(|s| s.partition);
        out
    }

    pub(super) fn describe_local(&self, topic: TopicId, partitions: &[u32]) -> Vec<PartitionState> {
        partitions
            .iter()
            .map(|&p| match self.log(topic, p) {
                Some(log) => PartitionState {
                    partition: p,
                    shard: self.id,
                    error: log.failure().map(|reason| {
                        let kind = if log.is_disk_full() {
                            ErrorKind::DiskFull
                        } else {
                            ErrorKind::StorageFailed
                        };
                        BrokerError::new(kind, reason)
                    }),
                    start: log.start_offset(),
                    end: log.end_offset(),
                    high_watermark: log.high_watermark(),
                    bytes: log.size_bytes(),
                    segments: log.segments().len() as u32,
                },
                None => PartitionState {
                    partition: p,
                    shard: self.id,
                    error: Some(self.unavailable(topic, p)),
                    start: Offset::ZERO,
                    end: Offset::ZERO,
                    high_watermark: Offset::ZERO,
                    bytes: 0,
                    segments: 0,
                },
            })
            .collect()
    }

    /// Every shard's counters.
    pub async fn stats(self: &Rc<Self>) -> Vec<ShardStatsData> {
        let mut out = vec![self.stats_local()];
        for s in 0..self.count {
            if s == self.id.0 {
                continue;
            }
            let (tx, rx) = oneshot::channel();
            if self
                .send_to(ShardId(s), ShardMsg::Stats { reply: tx })
                .await
                .is_ok()
                && let Ok(stats) = rx.await
            {
                out.push(stats);
            }
        }
        out.sort_by_key(|s| s.shard);
        out
    }

    pub(super) fn stats_local(&self) -> ShardStatsData {
        let c = &self.counters;
        let reads = self.disk.read_ahead().stats();
        ShardStatsData {
            shard: self.id.0,
            port: self.ports[self.id.0 as usize],
            connections: c.connections.get(),
            requests: c.requests.get(),
            hops: c.hops.get(),
            bytes_in: c.bytes_in.get(),
            bytes_out: c.bytes_out.get(),
            partitions: self.partition_count() as u32,
            errors: c.errors.get(),
            // Read on the shard's own thread (stats_local runs there).
            cpu_us: crate::support::thread_cpu_us(),
            disk_read_bytes: reads.disk_read_bytes,
            cache_read_bytes: reads.cache_read_bytes,
        }
    }

    /// Creates a topic through the controller.
    pub async fn create_topic(
        self: &Rc<Self>,
        name: String,
        partitions: u32,
        overrides: crate::meta::TopicOverrides,
        replication: u32,
    ) -> Result<std::sync::Arc<crate::meta::TopicMeta>, BrokerError> {
        if self.id == ShardId(0) {
            return self
                .changing(|| {
                    self.controller_create(name.clone(), partitions, overrides.clone(), replication)
                })
                .await;
        }
        let (tx, rx) = oneshot::channel();
        self.send_to(
            ShardId(0),
            ShardMsg::CreateTopic {
                name,
                partitions,
                overrides,
                replication,
                reply: tx,
            },
        )
        .await?;
        rx.await.map_err(|_| BrokerError::shutting_down())?
    }

    /// Changes a topic's settings through the controller; answers once
    /// every shard applies them.
    pub async fn alter_configs(
        self: &Rc<Self>,
        name: String,
        changes: Vec<crate::meta::ConfigChange>,
    ) -> Result<std::sync::Arc<crate::meta::TopicMeta>, BrokerError> {
        if self.id == ShardId(0) {
            return self.controller_alter_configs(name, changes).await;
        }
        let (tx, rx) = oneshot::channel();
        self.send_to(
            ShardId(0),
            ShardMsg::AlterConfigs {
                name,
                changes,
                reply: tx,
            },
        )
        .await?;
        rx.await.map_err(|_| BrokerError::shutting_down())?
    }

    /// Raises a topic's partition count through the controller.
    pub async fn create_partitions(
        self: &Rc<Self>,
        name: String,
        total: u32,
    ) -> Result<std::sync::Arc<crate::meta::TopicMeta>, BrokerError> {
        if self.id == ShardId(0) {
            return self.controller_create_partitions(name, total).await;
        }
        let (tx, rx) = oneshot::channel();
        self.send_to(
            ShardId(0),
            ShardMsg::CreatePartitions {
                name,
                total,
                reply: tx,
            },
        )
        .await?;
        rx.await.map_err(|_| BrokerError::shutting_down())?
    }

    /// Stores and deletes SCRAM credentials through the controller; per
    /// user, whether its changes were made. Answers once every shard has
    /// the new credentials.
    pub async fn alter_scram_credentials(
        self: &Rc<Self>,
        upsertions: Vec<crate::security::ScramCredential>,
        deletions: Vec<(String, crate::security::ScramMechanism)>,
    ) -> Result<Vec<crate::meta::UserResult>, BrokerError> {
        if self.id == ShardId(0) {
            return self
                .controller_alter_scram_credentials(upsertions, deletions)
                .await;
        }
        let (tx, rx) = oneshot::channel();
        self.send_to(
            ShardId(0),
            ShardMsg::AlterScramCredentials {
                upsertions,
                deletions,
                reply: tx,
            },
        )
        .await?;
        rx.await.map_err(|_| BrokerError::shutting_down())?
    }

    /// Adds ACLs through the controller; per binding, whether it is stored
    /// (an invalid one is not). Answers once every shard has them.
    pub async fn create_acls(
        self: &Rc<Self>,
        bindings: Vec<crate::security::AclBinding>,
    ) -> Result<Vec<Result<(), BrokerError>>, BrokerError> {
        if self.id == ShardId(0) {
            return self.controller_create_acls(bindings).await;
        }
        let (tx, rx) = oneshot::channel();
        self.send_to(
            ShardId(0),
            ShardMsg::CreateAcls {
                bindings,
                reply: tx,
            },
        )
        .await?;
        rx.await.map_err(|_| BrokerError::shutting_down())?
    }

    /// Removes the ACLs `filters` select through the controller; per
    /// filter, the ACLs it selected. Answers once every shard has the
    /// change.
    pub async fn delete_acls(
        self: &Rc<Self>,
        filters: Vec<crate::security::AclFilter>,
    ) -> Result<Vec<Vec<crate::security::AclBinding>>, BrokerError> {
        if self.id == ShardId(0) {
            return self.controller_delete_acls(filters).await;
        }
        let (tx, rx) = oneshot::channel();
        self.send_to(ShardId(0), ShardMsg::DeleteAcls { filters, reply: tx })
            .await?;
        rx.await.map_err(|_| BrokerError::shutting_down())?
    }

    /// A new idempotent producer id, from the controller.
    pub async fn allocate_producer_id(self: &Rc<Self>) -> Result<i64, BrokerError> {
        if self.id == ShardId(0) {
            return self.controller_allocate_producer_id().await;
        }
        let (tx, rx) = oneshot::channel();
        self.send_to(ShardId(0), ShardMsg::AllocateProducerId { reply: tx })
            .await?;
        rx.await.map_err(|_| BrokerError::shutting_down())?
    }

    /// Deletes a topic through the controller.
    pub async fn delete_topic(self: &Rc<Self>, name: String) -> Result<(), BrokerError> {
        if self.id == ShardId(0) {
            return self.controller_delete(name).await;
        }
        let (tx, rx) = oneshot::channel();
        self.send_to(ShardId(0), ShardMsg::DeleteTopic { name, reply: tx })
            .await?;
        rx.await.map_err(|_| BrokerError::shutting_down())?
    }
}
