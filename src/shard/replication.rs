//! Partition replication: Kafka's ISR model with leader epochs.
//!
//! Every replica of a replicated partition (see `meta::replicas`) opens its
//! log on the shard that owns the partition. What this module keeps per
//! partition, on that shard, depends on the role the metadata gives this
//! broker at the partition's leader epoch:
//!
//! * **Leader.** Stamps its epoch into every batch it appends (the log's
//!   leader-epoch cache records where each epoch starts), answers the
//!   followers' replica fetches with the same batches (read past the high
//!   watermark), and learns each follower's log end from its fetch offset.
//!   The high watermark is the least log end among the in-sync replicas
//!   (its own counted as durable as the topic's fsync policy says);
//!   consumers read below it, and an `acks=all` produce is answered when
//!   it passes the batch. A follower that has not caught up for
//!   [`REPLICA_LAG_TIME_MAX_MS`] leaves the ISR; one that reaches the high
//!   watermark joins it again — both through the controller (Kafka's
//!   AlterPartition), stamped with the leader epoch so a deposed leader's
//!   request is refused.
//! * **Follower.** One task fetches from the leader's native port with the
//!   epoch it follows and the epoch of its last batch; when the leader
//!   says the logs diverge (a tail written under an older leadership that
//!   the new leader does not have), it truncates to where the leader's
//!   matching epoch ends and fetches again (KIP-101/KIP-595 — never by
//!   the high watermark alone). Batches are appended as they come, with
//!   their offsets and epochs.
//!
//! A change of leader or epoch ends the partition's state and starts a new
//! one: waiting `acks=all` produces fail with NOT_LEADER_OR_FOLLOWER (the
//! client retries on the new leader; an idempotent producer's retry is
//! recognised there, since producer state is replicated with the batches).

use super::Shard;
use crate::client::Connection;
use crate::constants::{REPLICA_FETCH_WAIT_MS, REPLICA_LAG_TIME_MAX_MS};
use crate::error::{BrokerError, ErrorKind};
use crate::meta::{Snapshot, TopicMeta};
use crate::protocol::wire;
use crate::storage::PartitionLog;
use crate::support::Signal;
use crate::types::{Offset, ShardId, TopicId};
use bytes::BytesMut;
use event_listener::Event;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One follower's progress, as its leader sees it.
#[derive(Clone, Copy, Debug)]
struct Progress {
    /// Everything below this is in the follower's log (its last fetch
    /// offset).
    end: Offset,
    /// The last time the follower had caught up with the leader's log
    /// end as it was at the previous answer.
    caught_up: Instant,
    /// The leader's log end when it last answered the follower.
    end_at_answer: Offset,
}

/// The role this broker has for one replicated partition at one epoch.
pub(crate) struct Part {
    pub topic: TopicId,
    pub partition: u32,
    name: Arc<str>,
    pub leader: u32,
    pub epoch: u32,
    me: u32,
    isr: RefCell<Vec<u32>>,
    min_insync: Cell<u32>,
    pub log: Rc<PartitionLog>,
    followers: RefCell<BTreeMap<u32, Progress>>,
    /// Leader: the high watermark (readers see below it).
    hw: Cell<Offset>,
    /// Fires when the high watermark moves or the role ends.
    moved: Event,
    ended: Cell<bool>,
    /// An ISR change was asked of the controller and is not answered yet.
    isr_asked: Cell<bool>,
}

impl Part {
    pub fn is_leader(&self) -> bool {
        self.leader == self.me
    }

    fn end(&self) {
        self.ended.set(true);
        self.moved.notify(usize::MAX);
    }

    pub fn high_watermark(&self) -> Offset {
        self.hw.get()
    }

    pub fn isr(&self) -> Vec<u32> {
        self.isr.borrow().clone()
    }

    /// Leader: moves the high watermark to the least log end among the
    /// in-sync replicas, if that is further.
    pub(crate) fn advance(&self) {
        if !self.is_leader() || self.ended.get() {
            return;
        }
        let mut hw = self.log.local_high_watermark();
        let followers = self.followers.borrow();
        for n in self.isr.borrow().iter().filter(|n| **n != self.me) {
            let end = followers.get(n).map_or(Offset(0), |p| p.end);
            hw = hw.min(end);
        }
        if hw > self.hw.get() {
            self.hw.set(hw);
            self.log.set_visible_end(hw);
            self.moved.notify(usize::MAX);
        }
    }

    /// Leader, `acks=all`: waits until the high watermark reaches `end`
    /// (every in-sync replica has the records), the role ends, or
    /// `timeout` passes.
    pub async fn wait_replicated(&self, end: Offset, timeout: Duration) -> Result<(), BrokerError> {
        let deadline = Instant::now() + timeout;
        loop {
            let listener = self.moved.listen();
            if self.ended.get() {
                return Err(BrokerError::new(
                    ErrorKind::NotLeaderOrFollower,
                    format!(
                        "partition {} of topic {:?}: leadership at epoch {} ended before the write was replicated; it may or may not be in the log (retry)",
                        self.partition, self.name, self.epoch
                    ),
                ));
            }
            self.advance();
            if self.hw.get() >= end {
                // Every in-sync replica has it — but if the ISR shrank
                // below min.insync.replicas meanwhile, that is not the
                // promise acks=all made (Kafka answers the same).
                if (self.isr.borrow().len() as u32) < self.min_insync.get() {
                    let isr = self.isr();
                    return Err(BrokerError::new(
                        ErrorKind::NotEnoughReplicasAfterAppend,
                        format!(
                            "partition {} of topic {:?}: offset {} is on the in-sync replicas {isr:?}, fewer than min.insync.replicas {}",
                            self.partition,
                            self.name,
                            end.0.saturating_sub(1),
                            self.min_insync.get()
                        ),
                    ));
                }
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                let isr = self.isr();
                return Err(BrokerError::new(
                    if (isr.len() as u32) < self.min_insync.get() {
                        ErrorKind::NotEnoughReplicasAfterAppend
                    } else {
                        ErrorKind::RequestTimedOut
                    },
                    format!(
                        "partition {} of topic {:?}: the in-sync replicas {isr:?} did not all have offset {} within {} ms (high watermark {})",
                        self.partition,
                        self.name,
                        end.0.saturating_sub(1),
                        timeout.as_millis(),
                        self.hw.get()
                    ),
                ));
            }
            let timer = glommio::timer::sleep(deadline - now);
            futures::pin_mut!(timer);
            let _ = futures::future::select(timer, listener).await;
        }
    }

    /// A new leader: stamps its epoch into what it appends from now on,
    /// starts every follower of `replicas` as unknown (log end 0, caught up
    /// now) and caps readers at its high watermark.
    fn start_leading(&self, replicas: &[u32]) {
        // Takes its place in the append order now: every append after this
        // is stamped with the new epoch.
        let stamping = self.log.set_leader_epoch(self.epoch as i32);
        let (name, partition, epoch) = (self.name.clone(), self.partition, self.epoch);
        glommio::spawn_local(async move {
            if let Err(e) = stamping.await {
                tracing::error!(topic = %name, partition, epoch, error = %e, "recording the new leader epoch failed");
            }
        })
        .detach();
        let now = Instant::now();
        let end = self.log.end_offset();
        self.followers
            .borrow_mut()
            .extend(replicas.iter().filter(|n| **n != self.me).map(|n| {
                (
                    *n,
                    Progress {
                        end: Offset(0),
                        caught_up: now,
                        end_at_answer: end,
                    },
                )
            }));
        self.log.set_visible_end(self.hw.get());
        self.advance();
    }

    /// Refuses an `acks=all` write the ISR is too small for.
    pub fn check_min_insync(&self) -> Result<(), BrokerError> {
        let isr = self.isr.borrow();
        let min = self.min_insync.get();
        if (isr.len() as u32) < min {
            return Err(BrokerError::new(
                ErrorKind::NotEnoughReplicas,
                format!(
                    "partition {} of topic {:?} has {} in-sync replicas {:?}, fewer than min.insync.replicas {min}; nothing was written",
                    self.partition,
                    self.name,
                    isr.len(),
                    *isr
                ),
            ));
        }
        Ok(())
    }
}

/// A shard's replicated partitions.
#[derive(Default)]
pub(crate) struct Replication {
    parts: RefCell<HashMap<(TopicId, u32), Rc<Part>>>,
}

impl Replication {
    pub fn get(&self, topic: TopicId, partition: u32) -> Option<Rc<Part>> {
        self.parts.borrow().get(&(topic, partition)).cloned()
    }

    pub fn all(&self) -> Vec<Rc<Part>> {
        self.parts.borrow().values().cloned().collect()
    }

    /// Ends every role (the broker is stopping).
    pub fn end_all(&self) {
        for (_, part) in self.parts.borrow_mut().drain() {
            part.end();
        }
    }
}

/// What a replica fetch asks of the leader, per partition.
pub(crate) struct ReplicaAsk {
    pub node: u32,
    pub offset: Offset,
    pub current_leader_epoch: i32,
    pub last_fetched_epoch: i32,
}

/// The leader's answer to a replica fetch before the read: where the
/// follower diverges, if it does.
pub(crate) enum ReplicaCheck {
    Read,
    Diverging(i32, Offset),
}

impl Shard {
    /// Brings this shard's replication roles in line with `snapshot`:
    /// called after its logs were opened for it.
    pub(super) fn sync_replication(self: &Rc<Self>, snapshot: &Snapshot) {
        let me = self.config.node_id as u32;
        let mut wanted: HashMap<(TopicId, u32), (Arc<TopicMeta>, u32)> = HashMap::new();
        for topic in snapshot.topics.values() {
            if topic.replicas.is_empty() {
                continue;
            }
            for p in 0..topic.partitions {
                if self.owner(topic.id, p) == self.id && topic.has_replica(p, me) {
                    wanted.insert((topic.id, p), (topic.clone(), p));
                }
            }
        }
        let mut parts = self.replication.parts.borrow_mut();
        parts.retain(|key, part| {
            let keep = wanted.get(key).is_some_and(|(t, p)| {
                t.node_of(*p) == Some(part.leader) && t.leader_epoch(*p) == part.epoch
            });
            if !keep {
                part.end();
            }
            keep
        });
        for (key, (topic, p)) in wanted {
            let set = &topic.replicas[p as usize];
            let min_insync = topic.config.min_insync_replicas;
            if let Some(part) = parts.get(&key) {
                *part.isr.borrow_mut() = set.isr.clone();
                part.min_insync.set(min_insync);
                part.isr_asked.set(false);
                part.advance();
                continue;
            }
            let Some(log) = self.log(topic.id, p) else {
                continue;
            };
            let leader = topic.node_of(p).expect("replicated partitions are placed");
            let previous_hw = log.high_watermark();
            let part = Rc::new(Part {
                topic: topic.id,
                partition: p,
                name: topic.name.clone(),
                leader,
                epoch: set.epoch,
                me,
                isr: RefCell::new(set.isr.clone()),
                min_insync: Cell::new(min_insync),
                log: log.clone(),
                followers: RefCell::new(BTreeMap::new()),
                hw: Cell::new(previous_hw.min(log.end_offset())),
                moved: Event::new(),
                ended: Cell::new(false),
                isr_asked: Cell::new(false),
            });
            if part.is_leader() {
                part.start_leading(&set.replicas);
                tracing::info!(topic = %topic.name, partition = p, epoch = set.epoch, isr = ?set.isr, high_watermark = %part.hw.get(), "leading partition");
            } else {
                let address = snapshot.brokers.get(&leader).map(|b| b.native.clone());
                tracing::info!(topic = %topic.name, partition = p, epoch = set.epoch, leader, "following partition");
                glommio::spawn_local(follow(
                    part.clone(),
                    address,
                    self.shutdown.clone(),
                    self.id,
                ))
                .detach();
            }
            parts.insert(key, part);
        }
    }

    /// The leader's side of a replica fetch: checks the epochs, records
    /// the follower's progress, and says whether to read or where the
    /// follower's log diverges.
    pub(crate) fn replica_check(
        self: &Rc<Self>,
        part: &Rc<Part>,
        ask: &ReplicaAsk,
    ) -> Result<ReplicaCheck, BrokerError> {
        check_epoch(part, ask.current_leader_epoch)?;
        if ask.last_fetched_epoch >= 0 {
            let (epoch, end) = part
                .log
                .end_offset_for_epoch(ask.last_fetched_epoch)
                .unwrap_or((-1, part.log.start_offset()));
            if epoch != ask.last_fetched_epoch || end < ask.offset {
                return Ok(ReplicaCheck::Diverging(epoch, end));
            }
        }
        let end = part.log.end_offset();
        if ask.offset > end {
            return Err(BrokerError::new(
                ErrorKind::OffsetOutOfRange,
                format!(
                    "follower {} fetches partition {} of topic {:?} at {}, past the leader's end {end}",
                    ask.node, part.partition, part.name, ask.offset
                ),
            ));
        }
        let now = Instant::now();
        let mut join = false;
        {
            let mut followers = part.followers.borrow_mut();
            // Only the partition's own replicas count as followers.
            let Some(progress) = followers.get_mut(&ask.node) else {
                return Err(BrokerError::new(
                    ErrorKind::NotLeaderOrFollower,
                    format!(
                        "node {} is not a replica of partition {} of topic {:?}",
                        ask.node, part.partition, part.name
                    ),
                ));
            };
            progress.end = ask.offset;
            if ask.offset >= progress.end_at_answer {
                progress.caught_up = now;
            }
            progress.end_at_answer = end;
            if !part.isr.borrow().contains(&ask.node) && ask.offset >= part.hw.get() {
                // Kafka also asks that the follower has reached the start
                // of this leader's epoch.
                let epoch_start = part
                    .log
                    .epoch_entries()
                    .iter()
                    .find(|(e, _)| *e == part.epoch as i32)
                    .map_or(Offset(0), |(_, start)| *start);
                join = ask.offset >= epoch_start;
            }
        }
        part.advance();
        if join {
            let mut isr = part.isr();
            isr.push(ask.node);
            self.ask_isr(part, isr, "caught up");
        }
        Ok(ReplicaCheck::Read)
    }

    /// Asks the controller (through shard 0) to make `isr` the partition's
    /// in-sync replicas, once at a time per partition.
    fn ask_isr(self: &Rc<Self>, part: &Rc<Part>, isr: Vec<u32>, why: &'static str) {
        if part.isr_asked.replace(true) {
            return;
        }
        let shard = self.clone();
        let part = part.clone();
        glommio::spawn_local(async move {
            let (topic, p, leader, epoch) = (part.topic, part.partition, part.leader, part.epoch);
            let result = shard.alter_isr(topic, p, leader, epoch, isr.clone()).await;
            match result {
                Ok(()) => {
                    tracing::info!(topic = %part.name, partition = p, epoch, isr = ?isr, why, "in-sync replicas changed")
                }
                Err(e) => {
                    tracing::warn!(topic = %part.name, partition = p, epoch, isr = ?isr, error = %e, "changing the in-sync replicas failed")
                }
            }
            part.isr_asked.set(false);
        })
        .detach();
    }

    /// Commits an ISR change (on shard 0, through the controller).
    pub(crate) async fn alter_isr(
        self: &Rc<Self>,
        topic: TopicId,
        partition: u32,
        leader: u32,
        epoch: u32,
        isr: Vec<u32>,
    ) -> Result<(), BrokerError> {
        if self.id != ShardId(0) {
            let (tx, rx) = futures::channel::oneshot::channel();
            self.send_to(
                ShardId(0),
                super::ShardMsg::AlterIsr {
                    topic,
                    partition,
                    leader,
                    epoch,
                    isr,
                    reply: tx,
                },
            )
            .await?;
            return rx.await.map_err(|_| BrokerError::shutting_down())?;
        }
        let refused = RefCell::new(None);
        self.change_metadata(
            |s| match s.with_isr(topic, partition, leader, epoch, &isr) {
                Ok(next) => next,
                Err(e) => {
                    *refused.borrow_mut() = Some(e);
                    None
                }
            },
        )
        .await?;
        match refused.into_inner() {
            Some(e) => Err(BrokerError::new(ErrorKind::FencedLeaderEpoch, e)),
            None => Ok(()),
        }
    }

    /// Every half second: each partition this shard leads drops from its
    /// ISR the followers that have not caught up within
    /// [`REPLICA_LAG_TIME_MAX_MS`].
    pub(super) async fn replication_loop(self: Rc<Self>) {
        let lag_max = Duration::from_millis(REPLICA_LAG_TIME_MAX_MS);
        loop {
            let sleep = glommio::timer::sleep(Duration::from_millis(500));
            let stop = self.shutdown.wait();
            futures::pin_mut!(sleep, stop);
            if let futures::future::Either::Right(_) = futures::future::select(sleep, stop).await {
                self.replication.end_all();
                return;
            }
            for part in self.replication.all() {
                if !part.is_leader() || part.ended.get() {
                    continue;
                }
                part.advance();
                let now = Instant::now();
                let isr = part.isr();
                let lagging: Vec<u32> = {
                    let followers = part.followers.borrow();
                    let end = part.log.end_offset();
                    isr.iter()
                        .copied()
                        .filter(|n| *n != part.me)
                        .filter(|n| {
                            followers.get(n).is_none_or(|p| {
                                p.end < end && now.duration_since(p.caught_up) > lag_max
                            })
                        })
                        .collect()
                };
                if !lagging.is_empty() {
                    let keep: Vec<u32> = isr.into_iter().filter(|n| !lagging.contains(n)).collect();
                    tracing::warn!(topic = %part.name, partition = part.partition, lagging = ?lagging, lag_max_ms = REPLICA_LAG_TIME_MAX_MS, "followers fell behind; taking them out of the in-sync replicas");
                    self.ask_isr(&part, keep, "followers fell behind");
                }
            }
        }
    }
}

/// Checks the leader epoch a fetcher names against the partition's.
pub(crate) fn check_epoch(part: &Part, asked: i32) -> Result<(), BrokerError> {
    if asked < 0 || asked as u32 == part.epoch {
        return Ok(());
    }
    let (kind, how) = if (asked as u32) < part.epoch {
        (ErrorKind::FencedLeaderEpoch, "older than")
    } else {
        (ErrorKind::UnknownLeaderEpoch, "newer than")
    };
    Err(BrokerError::new(
        kind,
        format!(
            "partition {} of topic {:?}: leader epoch {asked} is {how} this broker's {}",
            part.partition, part.name, part.epoch
        ),
    ))
}

fn parse_address(address: &str) -> Option<SocketAddr> {
    use std::net::ToSocketAddrs;
    address
        .parse()
        .ok()
        .or_else(|| address.to_socket_addrs().ok()?.next())
}

/// A follower's fetch loop: runs until the role ends or the broker stops.
async fn follow(part: Rc<Part>, address: Option<String>, shutdown: Arc<Signal>, shard: ShardId) {
    let mut conn: Option<Rc<Connection>> = None;
    let mut pause = Duration::from_millis(50);
    let wait = Duration::from_millis(REPLICA_FETCH_WAIT_MS);
    let mut warned = false;
    while !part.ended.get() && !shutdown.is_raised() {
        let step = follow_once(&part, address.as_deref(), &mut conn, wait).await;
        match step {
            Ok(()) => {
                pause = Duration::from_millis(50);
                warned = false;
                continue;
            }
            Err(e) => {
                if !warned {
                    tracing::warn!(topic = %part.name, partition = part.partition, leader = part.leader, epoch = part.epoch, %shard, error = %e, "replica fetch failed; retrying");
                    warned = true;
                } else {
                    tracing::debug!(topic = %part.name, partition = part.partition, error = %e, "replica fetch failed again");
                }
            }
        }
        let sleep = glommio::timer::sleep(pause);
        let stop = shutdown.wait();
        futures::pin_mut!(sleep, stop);
        let _ = futures::future::select(sleep, stop).await;
        pause = (pause * 2).min(Duration::from_millis(1000));
    }
}

/// One replica fetch and what follows from it (append, truncate).
async fn follow_once(
    part: &Rc<Part>,
    address: Option<&str>,
    conn: &mut Option<Rc<Connection>>,
    wait: Duration,
) -> Result<(), String> {
    let address = address.ok_or_else(|| format!("leader {} has no known address", part.leader))?;
    if conn.as_ref().is_some_and(|c| c.broken().is_some()) {
        *conn = None;
    }
    let c = match conn {
        Some(c) => c.clone(),
        None => {
            let addr = parse_address(address)
                .ok_or_else(|| format!("cannot resolve leader address {address}"))?;
            let c = Connection::connect(addr, Duration::from_secs(2))
                .await
                .map_err(|e| e.to_string())?;
            *conn = Some(c.clone());
            c
        }
    };
    let offset = part.log.end_offset();
    let last_epoch = part.log.latest_epoch().unwrap_or(-1);
    let response = c
        .call_timeout(wait + Duration::from_secs(5), 256, |fbb| {
            let fp = wire::FetchPartition::create(
                fbb,
                &wire::FetchPartitionArgs {
                    partition: part.partition,
                    offset: offset.0 as i64,
                    max_bytes: crate::constants::REPLICA_FETCH_BYTES,
                    current_leader_epoch: part.epoch as i32,
                    last_fetched_epoch: last_epoch,
                },
            );
            let parts = fbb.create_vector(&[fp]);
            let name = fbb.create_string(&part.name);
            let topic = wire::FetchTopic::create(
                fbb,
                &wire::FetchTopicArgs {
                    topic: Some(name),
                    partitions: Some(parts),
                },
            );
            let topics = fbb.create_vector(&[topic]);
            let body = wire::FetchRequest::create(
                fbb,
                &wire::FetchRequestArgs {
                    replica_id: part.me as i32,
                    max_wait_ms: wait.as_millis() as u32,
                    min_bytes: 1,
                    max_bytes: crate::constants::REPLICA_FETCH_BYTES,
                    topics: Some(topics),
                },
            );
            (wire::Request::FetchRequest, body.as_union_value())
        })
        .await
        .map_err(|e| e.to_string())?;
    response.check().map_err(|e| e.to_string())?;
    let body = response
        .envelope()
        .response_as_fetch_response()
        .ok_or("fetch response without a body")?;
    let result = body
        .topics()
        .iter()
        .flatten()
        .flat_map(|t| t.partitions().into_iter().flatten())
        .next()
        .ok_or("fetch response without the partition")?;
    if part.ended.get() {
        return Ok(());
    }
    if result.error() != wire::ErrorCode::NONE {
        let message = result.error_message().unwrap_or("");
        if result.error() == wire::ErrorCode::OFFSET_OUT_OF_RANGE
            && result.high_watermark() >= 0
            && offset.0 as i64 > result.high_watermark()
        {
            // Past the leader's end with no epoch to tell where the logs
            // part (a log written before epochs were kept): cut to it.
            let to = Offset(result.high_watermark() as u64);
            tracing::warn!(topic = %part.name, partition = part.partition, from = %offset, to = %to, "follower log is ahead of the leader's; truncating");
            part.log.truncate_to(to).await.map_err(|e| e.to_string())?;
            return Ok(());
        }
        return Err(format!(
            "leader answered {}: {message}",
            crate::protocol::native::error_name(result.error())
        ));
    }
    if result.diverging_epoch() >= 0 || result.diverging_end_offset() >= 0 {
        let leader_end = Offset(result.diverging_end_offset().max(0) as u64);
        // Where our own copy of that epoch ends bounds the cut too.
        let ours = part
            .log
            .end_offset_for_epoch(result.diverging_epoch())
            .map_or(leader_end, |(_, end)| end);
        let to = leader_end.min(ours).min(offset);
        tracing::warn!(topic = %part.name, partition = part.partition, epoch = part.epoch, diverging_epoch = result.diverging_epoch(), from = %offset, to = %to, "follower log diverges from the leader's; truncating to the leader's epoch boundary");
        part.log.truncate_to(to).await.map_err(|e| e.to_string())?;
        return Ok(());
    }
    let leader_hw = Offset(result.high_watermark().max(0) as u64);
    if let Some(records) = result.records()
        && !records.is_empty()
    {
        let data = BytesMut::from(records.bytes());
        part.log
            .start_append_replica(data)
            .await
            .map_err(|e| format!("appending replicated batches at {offset}: {e}"))?;
    }
    // What this replica would let readers see if it became the leader.
    part.log
        .set_visible_end(leader_hw.min(part.log.end_offset()));
    Ok(())
}

/// How a fetch of a partition is served.
pub(crate) enum ReadKind {
    /// A consumer: below the high watermark.
    Consumer,
    /// A follower: up to the leader's log end.
    Replica,
    /// A follower whose log diverges: (epoch, its end on the leader, the
    /// high watermark, the log start); nothing is read.
    Diverging(i32, Offset, Offset, Offset),
}

impl Shard {
    /// The log to append to or read for clients: this broker must lead
    /// the partition (a follower's log is the leader's copy, not served).
    /// With it, the partition's replication role, if it is replicated.
    pub(crate) fn serving_log(
        &self,
        topic: TopicId,
        partition: u32,
    ) -> Result<(Rc<PartitionLog>, Option<Rc<Part>>), BrokerError> {
        match self.replication.get(topic, partition) {
            Some(part) if part.is_leader() => Ok((part.log.clone(), Some(part))),
            Some(part) => Err(self.not_leading(topic, partition, part.leader)),
            None => self
                .log(topic, partition)
                .map(|log| (log, None))
                .ok_or_else(|| self.unavailable(topic, partition)),
        }
    }

    fn not_leading(&self, topic: TopicId, partition: u32, leader: u32) -> BrokerError {
        match self.snapshot().topic_by_id(topic) {
            Some(meta) => self.elsewhere(meta, partition, leader),
            None => self.unavailable(topic, partition),
        }
    }

    /// How to serve a fetch of `item`'s partition (see [`ReadKind`]).
    pub(crate) fn serving_read(
        &self,
        item: &super::FetchItem,
    ) -> Result<(Rc<PartitionLog>, ReadKind), BrokerError> {
        let part = match self.replication.get(item.topic, item.partition) {
            Some(part) if part.is_leader() => part,
            Some(part) => return Err(self.not_leading(item.topic, item.partition, part.leader)),
            None if item.replica.is_some() => {
                return Err(BrokerError::new(
                    ErrorKind::NotLeaderOrFollower,
                    format!(
                        "partition {} of topic id {} is not replicated from this broker",
                        item.partition, item.topic
                    ),
                ));
            }
            None => {
                return self
                    .log(item.topic, item.partition)
                    .map(|log| (log, ReadKind::Consumer))
                    .ok_or_else(|| self.unavailable(item.topic, item.partition));
            }
        };
        let Some(node) = item.replica else {
            check_epoch(&part, item.current_leader_epoch)?;
            return Ok((part.log.clone(), ReadKind::Consumer));
        };
        let this = self.this.upgrade().ok_or_else(BrokerError::shutting_down)?;
        let ask = ReplicaAsk {
            node,
            offset: item.offset,
            current_leader_epoch: item.current_leader_epoch,
            last_fetched_epoch: item.last_fetched_epoch,
        };
        let kind = match this.replica_check(&part, &ask)? {
            ReplicaCheck::Read => ReadKind::Replica,
            ReplicaCheck::Diverging(epoch, end) => {
                ReadKind::Diverging(epoch, end, part.hw.get(), part.log.start_offset())
            }
        };
        Ok((part.log.clone(), kind))
    }
}

impl Shard {
    /// A cluster broker asked to stop (shard 0): moves the leadership of
    /// every partition it leads to another in-sync replica and leaves
    /// every ISR it is not the last member of, through the controller,
    /// within [`CONTROLLED_SHUTDOWN_MS`](crate::constants::CONTROLLED_SHUTDOWN_MS).
    /// Clients of those partitions get NOT_LEADER_OR_FOLLOWER (retriable)
    /// and find the new leaders; followers stop waiting for this broker.
    pub(super) async fn controlled_shutdown(&self) {
        let me = self.config.node_id as u32;
        let started = Instant::now();
        let limit = Duration::from_millis(crate::constants::CONTROLLED_SHUTDOWN_MS);
        let moved = self.change_metadata(|s| s.with_leaders_moved_from(me));
        let timer = glommio::timer::sleep(limit);
        futures::pin_mut!(moved, timer);
        match futures::future::select(moved, timer).await {
            futures::future::Either::Left((Ok(true), _)) => {
                if let Some(controller) = self.controller.get() {
                    controller
                        .let_followers_catch_up(Duration::from_secs(1))
                        .await;
                }
                tracing::info!(
                    node = me,
                    millis = started.elapsed().as_millis() as u64,
                    "controlled shutdown: partition leadership moved to other in-sync replicas"
                )
            }
            futures::future::Either::Left((Ok(false), _)) => {
                tracing::info!(
                    node = me,
                    "controlled shutdown: this broker leads no partition another in-sync replica could take"
                )
            }
            futures::future::Either::Left((Err(e), _)) => {
                tracing::warn!(node = me, error = %e, "controlled shutdown: moving leadership failed; stopping anyway (the controller fences this broker)")
            }
            futures::future::Either::Right(_) => {
                tracing::warn!(
                    node = me,
                    limit_ms = limit.as_millis() as u64,
                    "controlled shutdown: leadership not moved in time; stopping anyway"
                )
            }
        }
    }
}

/// An OffsetForLeaderEpoch question about one partition.
#[derive(Clone, Debug)]
pub struct EpochQuery {
    pub idx: usize,
    pub topic: TopicId,
    pub partition: u32,
    /// The leader epoch the client believes current (-1: not checked).
    pub current_leader_epoch: i32,
    /// The epoch whose end offset is asked.
    pub leader_epoch: i32,
}

/// The largest epoch at or below the asked one and where it ends (`None`:
/// the log knows no such epoch), or why not.
pub type EpochAnswer = Result<Option<(i32, Offset)>, BrokerError>;

impl Shard {
    /// Answers OffsetForLeaderEpoch questions wherever the partitions
    /// live (this broker must lead them); in item order of `idx`.
    pub async fn epoch_ends(self: &Rc<Self>, items: Vec<EpochQuery>) -> Vec<(usize, EpochAnswer)> {
        let (local, remote) = super::ops::group_by_owner(self, items, |q| (q.topic, q.partition));
        let mut out: Vec<(usize, EpochAnswer)> = self.epoch_ends_local(local);
        for (owner, items) in remote {
            let idxs: Vec<usize> = items.iter().map(|q| q.idx).collect();
            let (tx, rx) = futures::channel::oneshot::channel();
            let sent = self
                .send_to(owner, super::ShardMsg::EpochEnds { items, reply: tx })
                .await;
            match sent {
                Ok(()) => match rx.await {
                    Ok(answers) => out.extend(answers),
                    Err(_) => out.extend(
                        idxs.into_iter()
                            .map(|i| (i, Err(BrokerError::shutting_down()))),
                    ),
                },
                Err(e) => out.extend(idxs.into_iter().map(|i| (i, Err(e.clone())))),
            }
        }
        out.sort_by_key(|(i, _)| *i);
        out
    }

    pub(super) fn epoch_ends_local(&self, items: Vec<EpochQuery>) -> Vec<(usize, EpochAnswer)> {
        items
            .into_iter()
            .map(|q| {
                let answer = self
                    .serving_log(q.topic, q.partition)
                    .and_then(|(log, part)| {
                        if let Some(part) = &part {
                            check_epoch(part, q.current_leader_epoch)?;
                        }
                        Ok(log.end_offset_for_epoch(q.leader_epoch))
                    });
                (q.idx, answer)
            })
            .collect()
    }
}
