//! Consumer groups for the native client: [`GroupConsumer::subscribe`]
//! joins a group whose assignment the broker computes (the consumer
//! protocol of Kafka's KIP-848, shared with Kafka members of the same
//! group) and applies it incrementally from heartbeats: partitions that move
//! away are committed (with auto-commit) and revoked first, partitions that
//! arrive start at their committed offsets.
//!
//! Heartbeats, auto-commits and rebalances are driven by [`GroupConsumer::poll`]
//! (as librdkafka's poll drives its callbacks): a member that stops polling
//! for longer than the broker's session timeout loses its partitions.

use super::admin::fetch_metadata;
use super::consumer::{Consumer, ConsumerConfig, ConsumerRecord, OffsetReset, SeekTo};
use super::{ClientError, Connection, Result, Routing};
use crate::protocol::wire;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// What a member subscribes to and how it commits.
#[derive(Clone, Debug)]
pub struct GroupConfig {
    pub group: String,
    pub topics: Vec<String>,
    /// A regular expression over topic names (RE2 syntax, whole names).
    pub topic_regex: Option<String>,
    /// `uniform` (the broker's default) or `range`.
    pub assignor: Option<String>,
    /// A static member's id: a restart within the session keeps its place.
    pub instance_id: Option<String>,
    /// How long the member may take to give up partitions that move.
    pub rebalance_timeout: Duration,
    /// Commit every owned partition's position this often from `poll`
    /// (without waiting for the answer), and synchronously before partitions
    /// are revoked or the member closes; `None`: only explicit commits.
    pub auto_commit_interval: Option<Duration>,
}

impl GroupConfig {
    pub fn new(group: &str, topics: &[&str]) -> GroupConfig {
        GroupConfig {
            group: group.to_string(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            topic_regex: None,
            assignor: None,
            instance_id: None,
            rebalance_timeout: Duration::from_secs(300),
            auto_commit_interval: Some(Duration::from_secs(5)),
        }
    }
}

/// A change of the member's partitions, as the rebalance callback sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RebalanceEvent {
    /// Given up (committed first with auto-commit); no longer polled.
    Revoked(Vec<(String, u32)>),
    /// Taken on; polled from their committed offsets.
    Assigned(Vec<(String, u32)>),
    /// Taken away without a chance to commit (the member was fenced or
    /// timed out).
    Lost(Vec<(String, u32)>),
}

type Listener = Box<dyn FnMut(&RebalanceEvent)>;

/// A member of a consumer group (see the module docs).
pub struct GroupConsumer {
    consumer: Consumer,
    coordinator: Rc<Connection>,
    config: GroupConfig,
    reset: OffsetReset,
    member_id: String,
    epoch: i32,
    interval: Duration,
    next_heartbeat: Instant,
    owned: BTreeSet<(String, u32)>,
    /// The next heartbeat reports the owned partitions.
    report_owned: bool,
    listener: Option<Listener>,
    next_auto_commit: Option<Instant>,
    /// The last asynchronous commit's failure, until read.
    async_error: Rc<RefCell<Option<ClientError>>>,
}

fn offsets_vector<'a>(
    fbb: &mut flatbuffers::FlatBufferBuilder<'a>,
    owned: &BTreeSet<(String, u32)>,
) -> flatbuffers::WIPOffset<
    flatbuffers::Vector<'a, flatbuffers::ForwardsUOffset<wire::GroupTopicPartitions<'a>>>,
> {
    let mut by_topic: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for (t, p) in owned {
        by_topic.entry(t).or_default().push(*p);
    }
    let items: Vec<_> = by_topic
        .iter()
        .map(|(t, ps)| {
            let topic = fbb.create_string(t);
            let partitions = fbb.create_vector(ps);
            wire::GroupTopicPartitions::create(
                fbb,
                &wire::GroupTopicPartitionsArgs {
                    topic: Some(topic),
                    partitions: Some(partitions),
                },
            )
        })
        .collect();
    fbb.create_vector(&items)
}

impl GroupConsumer {
    /// Connects, joins `config.group` and applies the first assignment.
    /// `consumer_config.reset` says where a partition without a committed
    /// offset starts.
    pub async fn subscribe(
        bootstrap: SocketAddr,
        consumer_config: ConsumerConfig,
        config: GroupConfig,
    ) -> Result<GroupConsumer> {
        if config.topics.is_empty() && config.topic_regex.is_none() {
            return Err(ClientError::Invalid(
                "subscribe to at least one topic or a regular expression".into(),
            ));
        }
        let reset = consumer_config.reset;
        let routing = consumer_config.routing;
        let consumer = Consumer::connect(bootstrap, consumer_config).await?;
        let coordinator = coordinator(&consumer, bootstrap, routing, &config.group).await?;
        let mut member = GroupConsumer {
            consumer,
            coordinator,
            config,
            reset,
            member_id: String::new(),
            epoch: 0,
            interval: Duration::from_secs(5),
            next_heartbeat: Instant::now(),
            owned: BTreeSet::new(),
            report_owned: true,
            listener: None,
            next_auto_commit: None,
            async_error: Rc::default(),
        };
        member.heartbeat().await?;
        member.next_auto_commit = member
            .config
            .auto_commit_interval
            .map(|i| Instant::now() + i);
        Ok(member)
    }

    /// Called with every revocation, assignment and loss, before the
    /// partitions stop or after they start being polled.
    pub fn on_rebalance(&mut self, listener: impl FnMut(&RebalanceEvent) + 'static) {
        self.listener = Some(Box::new(listener));
    }

    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    pub fn member_epoch(&self) -> i32 {
        self.epoch
    }

    /// The partitions this member owns now.
    pub fn assignment(&self) -> Vec<(String, u32)> {
        self.owned.iter().cloned().collect()
    }

    /// Heartbeats and auto-commits when due, applies assignment changes,
    /// then polls the owned partitions once.
    pub async fn poll(&mut self) -> Result<Vec<ConsumerRecord>> {
        if !self.maintain().await? {
            return Ok(Vec::new());
        }
        self.consumer.poll().await
    }

    /// Like [`GroupConsumer::poll`], with whole batches (see
    /// [`Consumer::poll_batches`]).
    pub async fn poll_batches(&mut self) -> Result<Vec<super::PolledBatch>> {
        if !self.maintain().await? {
            return Ok(Vec::new());
        }
        self.consumer.poll_batches().await
    }

    /// Moves an owned partition's position (committed by the next commit).
    pub async fn seek(&mut self, topic: &str, partition: u32, to: SeekTo) -> Result<()> {
        self.consumer.seek(topic, partition, to).await
    }

    pub fn position(&self, topic: &str, partition: u32) -> Option<u64> {
        self.consumer.position(topic, partition)
    }

    pub fn high_watermark(&self, topic: &str, partition: u32) -> Option<u64> {
        self.consumer.high_watermark(topic, partition)
    }

    /// Heartbeat and auto-commit when due; `false` (after a short wait)
    /// when the member owns nothing to poll.
    async fn maintain(&mut self) -> Result<bool> {
        if Instant::now() >= self.next_heartbeat {
            self.heartbeat().await?;
        }
        if let Some(at) = self.next_auto_commit
            && Instant::now() >= at
        {
            // As Kafka's clients do: the periodic commit does not hold up
            // the poll (revocation and close commit synchronously).
            if let Some(e) = self.take_async_commit_error() {
                tracing::warn!(group = %self.config.group, error = %e, "an automatic commit failed; the next one retries");
            }
            self.commit_async();
            self.next_auto_commit = self.config.auto_commit_interval.map(|i| Instant::now() + i);
        }
        if self.owned.is_empty() {
            // Nothing to read until the next heartbeat brings partitions.
            let wait = self
                .next_heartbeat
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(100));
            glommio::timer::sleep(wait).await;
            return Ok(false);
        }
        Ok(true)
    }

    /// Commits every owned partition's position and waits until it is
    /// durable.
    pub async fn commit(&mut self) -> Result<()> {
        let offsets = self.positions();
        if offsets.is_empty() {
            return Ok(());
        }
        match commit_offsets(
            &self.coordinator,
            &self.config.group,
            &self.member_id,
            self.epoch,
            &offsets,
        )
        .await
        {
            Err(e) if e.code() == Some(wire::ErrorCode::STALE_MEMBER_EPOCH) => {
                self.heartbeat().await?;
                let offsets = self.positions();
                commit_offsets(
                    &self.coordinator,
                    &self.config.group,
                    &self.member_id,
                    self.epoch,
                    &offsets,
                )
                .await
            }
            other => other,
        }
    }

    /// Commits every owned partition's position without waiting; a failure
    /// is kept for [`GroupConsumer::take_async_commit_error`].
    pub fn commit_async(&mut self) {
        let offsets = self.positions();
        if offsets.is_empty() {
            return;
        }
        let (conn, group, member, epoch) = (
            self.coordinator.clone(),
            self.config.group.clone(),
            self.member_id.clone(),
            self.epoch,
        );
        let slot = self.async_error.clone();
        glommio::spawn_local(async move {
            if let Err(e) = commit_offsets(&conn, &group, &member, epoch, &offsets).await {
                *slot.borrow_mut() = Some(e);
            }
        })
        .detach();
    }

    /// The failure of the last asynchronous commit that failed, if any.
    pub fn take_async_commit_error(&mut self) -> Option<ClientError> {
        self.async_error.borrow_mut().take()
    }

    /// Committed offsets of `partitions` (`None`: none committed).
    pub async fn committed(
        &self,
        partitions: &[(String, u32)],
    ) -> Result<Vec<(String, u32, Option<u64>)>> {
        fetch_committed(
            &self.coordinator,
            &self.config.group,
            &self.member_id,
            self.epoch,
            partitions,
        )
        .await
    }

    /// Commits (with auto-commit) and leaves the group, so its partitions
    /// move at once rather than after the session timeout.
    pub async fn close(mut self) -> Result<()> {
        if self.config.auto_commit_interval.is_some() {
            self.commit().await?;
        }
        let all: Vec<(String, u32)> = self.owned.iter().cloned().collect();
        if !all.is_empty() {
            self.notify(&RebalanceEvent::Revoked(all));
        }
        self.epoch = -1;
        self.send_heartbeat().await.map(|_| ())
    }

    fn positions(&self) -> Vec<(String, u32, u64)> {
        self.owned
            .iter()
            .filter_map(|(t, p)| self.consumer.position(t, *p).map(|o| (t.clone(), *p, o)))
            .collect()
    }

    fn notify(&mut self, event: &RebalanceEvent) {
        if let Some(l) = &mut self.listener {
            l(event);
        }
    }

    async fn send_heartbeat(&mut self) -> Result<super::Response> {
        let joining = self.epoch == 0;
        let report = joining || self.report_owned;
        let config = &self.config;
        let (member_id, epoch, owned) = (&self.member_id, self.epoch, &self.owned);
        let response = self
            .coordinator
            .call(256, |fbb| {
                let group = fbb.create_string(&config.group);
                let member = fbb.create_string(member_id);
                let instance = config.instance_id.as_deref().map(|i| fbb.create_string(i));
                let topics = joining.then(|| {
                    let names: Vec<_> =
                        config.topics.iter().map(|t| fbb.create_string(t)).collect();
                    fbb.create_vector(&names)
                });
                let regex = (joining && config.topic_regex.is_some())
                    .then(|| fbb.create_string(config.topic_regex.as_deref().unwrap_or("")));
                let assignor = joining
                    .then_some(config.assignor.as_deref())
                    .flatten()
                    .map(|a| fbb.create_string(a));
                let owned = report.then(|| offsets_vector(fbb, owned));
                let body = wire::GroupHeartbeatRequest::create(
                    fbb,
                    &wire::GroupHeartbeatRequestArgs {
                        group: Some(group),
                        member_id: Some(member),
                        member_epoch: epoch,
                        instance_id: instance,
                        rebalance_timeout_ms: if joining {
                            config.rebalance_timeout.as_millis() as i32
                        } else {
                            -1
                        },
                        topics,
                        topic_regex: regex,
                        assignor,
                        owned,
                    },
                );
                (wire::Request::GroupHeartbeatRequest, body.as_union_value())
            })
            .await?;
        if report {
            self.report_owned = false;
        }
        Ok(response)
    }

    /// One heartbeat, and whatever it changes.
    async fn heartbeat(&mut self) -> Result<()> {
        let response = self.send_heartbeat().await?;
        let env = response.envelope();
        match env.error() {
            wire::ErrorCode::NONE => {}
            code @ (wire::ErrorCode::UNKNOWN_MEMBER_ID | wire::ErrorCode::FENCED_MEMBER_EPOCH) => {
                // Out of the group: everything is lost; join again.
                let lost: Vec<(String, u32)> = self.owned.iter().cloned().collect();
                for (t, p) in &lost {
                    self.consumer.unassign(t, *p);
                }
                self.owned.clear();
                if !lost.is_empty() {
                    self.notify(&RebalanceEvent::Lost(lost));
                }
                if code == wire::ErrorCode::UNKNOWN_MEMBER_ID {
                    self.member_id.clear();
                }
                self.epoch = 0;
                self.next_heartbeat = Instant::now();
                return Ok(());
            }
            code => return Err(ClientError::broker(code, env.error_message())),
        }
        let r = env
            .response_as_group_heartbeat_response()
            .ok_or_else(|| ClientError::Protocol("a heartbeat answer without a body".into()))?;
        self.member_id = r.member_id().unwrap_or("").to_string();
        self.epoch = r.member_epoch();
        self.interval = Duration::from_millis(r.heartbeat_interval_ms().max(1) as u64);
        self.next_heartbeat = Instant::now() + self.interval;
        let Some(assignment) = r.assignment() else {
            return Ok(());
        };
        let target: BTreeSet<(String, u32)> = assignment
            .iter()
            .flat_map(|tp| {
                let topic = tp.topic().unwrap_or("").to_string();
                tp.partitions()
                    .into_iter()
                    .flatten()
                    .map(move |p| (topic.clone(), p))
            })
            .collect();
        drop(response);
        self.apply(target).await
    }

    /// Moves to `target`: revoke what goes (committing it first), start
    /// what comes at its committed offset, and report the result.
    async fn apply(&mut self, target: BTreeSet<(String, u32)>) -> Result<()> {
        let revoked: Vec<(String, u32)> = self.owned.difference(&target).cloned().collect();
        let added: Vec<(String, u32)> = target.difference(&self.owned).cloned().collect();
        if !revoked.is_empty() {
            if self.config.auto_commit_interval.is_some() {
                let offsets: Vec<(String, u32, u64)> = revoked
                    .iter()
                    .filter_map(|(t, p)| self.consumer.position(t, *p).map(|o| (t.clone(), *p, o)))
                    .collect();
                if let Err(e) = commit_offsets(
                    &self.coordinator,
                    &self.config.group,
                    &self.member_id,
                    self.epoch,
                    &offsets,
                )
                .await
                {
                    tracing::warn!(group = %self.config.group, error = %e, "committing revoked partitions failed");
                }
            }
            self.notify(&RebalanceEvent::Revoked(revoked.clone()));
            for (t, p) in &revoked {
                self.consumer.unassign(t, *p);
                self.owned.remove(&(t.clone(), *p));
            }
        }
        if !added.is_empty() {
            let committed = self.committed(&added).await?;
            for (t, p, offset) in committed {
                let from = match (offset, self.reset) {
                    (Some(o), _) => SeekTo::Offset(o),
                    (None, OffsetReset::Earliest) => SeekTo::Earliest,
                    (None, _) => SeekTo::Latest,
                };
                self.consumer.assign(&t, Some(&[p]), from).await?;
                self.owned.insert((t, p));
            }
            self.notify(&RebalanceEvent::Assigned(added));
        }
        if !revoked.is_empty() || !self.owned.is_empty() {
            // Tell the broker at once what this member holds now.
            self.report_owned = true;
            if !revoked.is_empty() {
                self.next_heartbeat = Instant::now();
            }
        }
        Ok(())
    }
}

/// The group's coordinator: the shard owning the group's partition of the
/// offsets topic (shard-aware routing), else the shared port.
async fn coordinator(
    consumer: &Consumer,
    bootstrap: SocketAddr,
    routing: Routing,
    group: &str,
) -> Result<Rc<Connection>> {
    let conn = consumer.connection(bootstrap).await?;
    if routing == Routing::Shared {
        return Ok(conn);
    }
    let metadata = fetch_metadata(&conn, &[crate::group::OFFSETS_TOPIC]).await?;
    match metadata.topics.get(crate::group::OFFSETS_TOPIC) {
        Some(info) => {
            let p = crate::group::partition_for(group);
            let addr = metadata.partition_addr(info, p, Routing::Direct);
            consumer.connection(addr).await
        }
        // Not created yet (the first group request creates it): the
        // shared port routes the requests.
        None => Ok(conn),
    }
}

async fn commit_offsets(
    conn: &Connection,
    group: &str,
    member_id: &str,
    epoch: i32,
    offsets: &[(String, u32, u64)],
) -> Result<()> {
    let response = conn
        .call(64 + offsets.len() * 64, |fbb| {
            let items: Vec<_> = offsets
                .iter()
                .map(|(t, p, o)| {
                    let topic = fbb.create_string(t);
                    wire::GroupOffset::create(
                        fbb,
                        &wire::GroupOffsetArgs {
                            topic: Some(topic),
                            partition: *p,
                            offset: *o as i64,
                            ..Default::default()
                        },
                    )
                })
                .collect();
            let offsets = fbb.create_vector(&items);
            let group = fbb.create_string(group);
            let member = fbb.create_string(member_id);
            let body = wire::OffsetCommitRequest::create(
                fbb,
                &wire::OffsetCommitRequestArgs {
                    group: Some(group),
                    member_id: Some(member),
                    member_epoch: if member_id.is_empty() { -1 } else { epoch },
                    offsets: Some(offsets),
                },
            );
            (wire::Request::OffsetCommitRequest, body.as_union_value())
        })
        .await?;
    let env = response.check()?.envelope();
    let r = env
        .response_as_offset_commit_response()
        .ok_or_else(|| ClientError::Protocol("a commit answer without a body".into()))?;
    r.offsets().iter().flatten().try_for_each(offset_error)
}

/// A partition's error in a commit or offset-fetch answer.
fn offset_error(o: wire::GroupOffset<'_>) -> Result<()> {
    match o.error() {
        wire::ErrorCode::NONE => Ok(()),
        code => Err(ClientError::broker(code, o.error_message())),
    }
}

async fn fetch_committed(
    conn: &Connection,
    group: &str,
    member_id: &str,
    epoch: i32,
    partitions: &[(String, u32)],
) -> Result<Vec<(String, u32, Option<u64>)>> {
    let set: BTreeSet<(String, u32)> = partitions.iter().cloned().collect();
    let response = conn
        .call(64 + partitions.len() * 32, |fbb| {
            let list = offsets_vector(fbb, &set);
            let group = fbb.create_string(group);
            let member = fbb.create_string(member_id);
            let body = wire::OffsetFetchRequest::create(
                fbb,
                &wire::OffsetFetchRequestArgs {
                    group: Some(group),
                    member_id: Some(member),
                    member_epoch: epoch,
                    partitions: Some(list),
                },
            );
            (wire::Request::OffsetFetchRequest, body.as_union_value())
        })
        .await?;
    let env = response.check()?.envelope();
    let r = env
        .response_as_offset_fetch_response()
        .ok_or_else(|| ClientError::Protocol("an offset fetch answer without a body".into()))?;
    let mut out = Vec::new();
    for o in r.offsets().iter().flatten() {
        offset_error(o)?;
        out.push((
            o.topic().unwrap_or("").to_string(),
            o.partition(),
            (o.offset() >= 0).then_some(o.offset() as u64),
        ));
    }
    Ok(out)
}
