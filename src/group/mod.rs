//! Consumer groups: Kafka's classic group protocol and committed offsets,
//! independent of any wire protocol.
//!
//! * Committed offsets and group records live in the internal topic
//!   `__consumer_offsets` ([`OFFSETS_TOPIC_PARTITIONS`] partitions, fsync
//!   `always`, created on first use). Group `g` belongs to partition
//!   `murmur2(g) % 50`, and the shard owning that partition is the group's
//!   coordinator: all of the group's state lives there, touched by that
//!   core only. A group request arriving at another shard crosses the mesh
//!   once ([`call`]).
//! * The state machine ([`coordinator`]) follows Kafka's: Empty →
//!   PreparingRebalance (members rejoin, or are dropped at the rebalance
//!   timeout) → CompletingRebalance (the leader's assignment is awaited) →
//!   Stable; members are dropped when their session times out. Generations
//!   fence stale members. Static members (`group.instance.id`) rejoin
//!   without a rebalance.
//! * A commit is acknowledged once its record is durable; on start each
//!   coordinator replays its partitions ([`Coordinator::load`]). Group
//!   membership is not persisted: after a coordinator restart members get
//!   UNKNOWN_MEMBER_ID at their next heartbeat and rejoin, keeping their
//!   committed offsets.

pub mod consumer;
mod coordinator;
pub mod store;

pub use coordinator::Coordinator;

use crate::constants::{GROUP_ID_BYTES_MAX, OFFSETS_TOPIC_PARTITIONS, OFFSETS_TOPIC_SEGMENT_BYTES};
use crate::error::{BrokerError, ErrorKind};
use crate::meta::TopicOverrides;
use crate::shard::{Shard, ShardMsg};
use crate::storage::FsyncPolicy;
use bytes::Bytes;
use futures::channel::oneshot;
use std::rc::Rc;

/// The internal topic of committed offsets and groups.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Whether clients may not create, delete or write `topic`.
pub fn is_internal(topic: &str) -> bool {
    topic == OFFSETS_TOPIC
}

/// The offsets-topic partition that holds group `group`.
pub fn partition_for(group: &str) -> u32 {
    (crate::record::murmur2(group.as_bytes()) & 0x7fff_ffff) % OFFSETS_TOPIC_PARTITIONS
}

/// The group states, named as Kafka names them.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
    /// Consumer-protocol groups: a new target assignment is being computed.
    Assigning,
    /// Consumer-protocol groups: members are moving to the target.
    Reconciling,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
            GroupState::Assigning => "Assigning",
            GroupState::Reconciling => "Reconciling",
        }
    }
}

/// A JoinGroup.
#[derive(Clone, Debug)]
pub struct JoinArgs {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// Protocol name and member metadata, in the member's preference order.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a member without an id is first given one
    /// (MEMBER_ID_REQUIRED) and joins with it.
    pub require_known_member: bool,
}

#[derive(Clone, Debug, Default)]
pub struct JoinResult {
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// For the leader: every member's id, instance id and metadata.
    pub members: Vec<(String, Option<String>, Bytes)>,
    /// A static leader that rejoined without a rebalance: keep the current
    /// assignment.
    pub skip_assignment: bool,
}

#[derive(Clone, Debug)]
pub struct SyncArgs {
    pub generation: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    /// From the leader: each member's assignment.
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Clone, Debug, Default)]
pub struct SyncResult {
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub assignment: Bytes,
}

/// An offset to commit.
#[derive(Clone, Debug)]
pub struct CommitItem {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

#[derive(Clone, Debug)]
pub struct CommitArgs {
    /// -1 with an empty member id: a commit from outside the group protocol
    /// (a consumer using `assign()`), allowed while the group has no
    /// members.
    pub generation: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub items: Vec<CommitItem>,
}

/// A committed offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_ms: i64,
}

#[derive(Clone, Debug)]
pub struct MemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Clone, Debug)]
pub struct GroupDescription {
    pub group: String,
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    pub generation: i32,
    pub members: Vec<MemberDescription>,
}

#[derive(Clone, Debug)]
pub struct GroupListing {
    pub group: String,
    pub protocol_type: String,
    pub state: GroupState,
    /// `classic` or `consumer` (Kafka's group types).
    pub group_type: &'static str,
}

/// A consumer-protocol member, as ConsumerGroupDescribe shows it.
#[derive(Clone, Debug)]
pub struct ConsumerMemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub state: &'static str,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub assignment: Vec<(consumer::TopicUuid, Vec<i32>)>,
    pub target_assignment: Vec<(consumer::TopicUuid, Vec<i32>)>,
}

/// A consumer-protocol group, as ConsumerGroupDescribe shows it.
#[derive(Clone, Debug)]
pub struct ConsumerGroupDescription {
    pub group: String,
    pub state: GroupState,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: &'static str,
    pub members: Vec<ConsumerMemberDescription>,
}

/// One group operation, run on the group's coordinator shard.
#[derive(Debug)]
pub enum GroupCall {
    Join(JoinArgs),
    Sync(SyncArgs),
    Heartbeat {
        generation: i32,
        member_id: String,
        instance_id: Option<String>,
    },
    /// Members leaving: (member id, instance id).
    Leave(Vec<(String, Option<String>)>),
    Commit(CommitArgs),
    /// Committed offsets of the given partitions, or all (`None`); with a
    /// consumer-protocol member's id and epoch, checked first (OffsetFetch
    /// v9).
    FetchOffsets {
        partitions: Option<Vec<(String, i32)>>,
        member: Option<(String, i32)>,
    },
    /// A consumer-protocol (KIP-848) heartbeat: join, stay, leave.
    ConsumerHeartbeat(consumer::HeartbeatArgs),
    ConsumerDescribe,
    Describe,
    Delete,
    DeleteOffsets(Vec<(String, i32)>),
}

/// The answer to a [`GroupCall`], variant for variant.
#[derive(Debug)]
pub enum GroupReply {
    Join(Result<JoinResult, (BrokerError, String)>),
    Sync(Result<SyncResult, BrokerError>),
    Heartbeat(Result<(), BrokerError>),
    Leave(Vec<Result<(), BrokerError>>),
    Commit(Result<Vec<Result<(), BrokerError>>, BrokerError>),
    FetchOffsets(Result<Vec<(String, i32, Option<Committed>)>, BrokerError>),
    Describe(Result<GroupDescription, BrokerError>),
    ConsumerHeartbeat(Result<consumer::HeartbeatResult, BrokerError>),
    ConsumerDescribe(Result<ConsumerGroupDescription, BrokerError>),
    Delete(Result<(), BrokerError>),
    DeleteOffsets(Result<Vec<Result<(), BrokerError>>, BrokerError>),
}

fn check_group_id(group: &str) -> Result<(), BrokerError> {
    if group.is_empty() || group.len() > GROUP_ID_BYTES_MAX {
        return Err(BrokerError::new(
            ErrorKind::InvalidGroupId,
            format!(
                "group id must be 1 to {GROUP_ID_BYTES_MAX} bytes, got {}",
                group.len()
            ),
        ));
    }
    Ok(())
}

/// The settings of the offsets topic, set on the topic itself so the
/// broker's topic defaults never change them.
fn offsets_topic_config() -> TopicOverrides {
    TopicOverrides {
        fsync: Some(FsyncPolicy::Always),
        segment_bytes: Some(OFFSETS_TOPIC_SEGMENT_BYTES),
        retention_ms: Some(None),
        retention_bytes: Some(None),
        // Kafka's: the latest commit of each group and partition is kept,
        // and tombstones (deleted groups and offsets) go in time.
        cleanup_policy: Some(crate::meta::CleanupPolicy::Compact),
        ..TopicOverrides::default()
    }
}

/// Makes an offsets topic created before compaction existed compacted, as
/// new ones are (run once by the controller shard at start). A failure is
/// logged: the topic then keeps its old policy until the next start.
pub async fn compact_offsets_topic(shard: Rc<Shard>) {
    let Some(topic) = shard.snapshot().topic(OFFSETS_TOPIC).cloned() else {
        return;
    };
    if topic.config.cleanup_policy.compacts() {
        return;
    }
    let change = crate::meta::ConfigChange::set("cleanup.policy", "compact");
    match shard
        .alter_configs(OFFSETS_TOPIC.to_string(), vec![change])
        .await
    {
        Ok(_) => tracing::info!("the consumer offsets topic is compacted from now on"),
        Err(e) => {
            tracing::warn!(error = %e, "making the consumer offsets topic compacted failed")
        }
    }
}

/// Creates the offsets topic if it does not exist yet (the first group
/// request does, as in Kafka); returns its id.
pub async fn ensure_offsets_topic(shard: &Rc<Shard>) -> Result<crate::types::TopicId, BrokerError> {
    if let Some(t) = shard.snapshot().topic(OFFSETS_TOPIC) {
        return Ok(t.id);
    }
    match shard
        .create_topic(
            OFFSETS_TOPIC.to_string(),
            OFFSETS_TOPIC_PARTITIONS,
            offsets_topic_config(),
            1,
        )
        .await
    {
        Ok(meta) => {
            tracing::info!(
                partitions = OFFSETS_TOPIC_PARTITIONS,
                "created the consumer offsets topic"
            );
            Ok(meta.id)
        }
        Err(e) if e.kind == ErrorKind::TopicAlreadyExists => shard
            .snapshot()
            .topic(OFFSETS_TOPIC)
            .map(|t| t.id)
            .ok_or_else(|| {
                BrokerError::new(
                    ErrorKind::CoordinatorNotAvailable,
                    "the offsets topic is being created",
                )
            }),
        Err(e) => Err(BrokerError::new(
            ErrorKind::CoordinatorNotAvailable,
            format!("creating the offsets topic failed: {e}"),
        )),
    }
}

/// The shard that coordinates `group` (creating the offsets topic if
/// needed); NOT_COORDINATOR if another broker of the cluster does.
pub async fn coordinator_shard(
    shard: &Rc<Shard>,
    group: &str,
) -> Result<crate::types::ShardId, BrokerError> {
    if let Some(node) = coordinator_elsewhere(shard, group).await? {
        return Err(BrokerError::new(
            ErrorKind::NotCoordinator,
            format!(
                "group {group:?} is coordinated by broker {node}; this is broker {}",
                shard.config.node_id
            ),
        ));
    }
    let topic = ensure_offsets_topic(shard).await?;
    Ok(shard.owner(topic, partition_for(group)))
}

/// In a cluster, the broker that coordinates `group` when it is not this
/// one: the broker its offsets partition is on (creating the offsets
/// topic if needed).
pub async fn coordinator_elsewhere(
    shard: &Rc<Shard>,
    group: &str,
) -> Result<Option<u32>, BrokerError> {
    check_group_id(group)?;
    let topic = ensure_offsets_topic(shard).await?;
    let partition = partition_for(group);
    let snapshot = shard.snapshot();
    Ok(snapshot
        .topic_by_id(topic)
        .filter(|meta| !shard.hosts(meta, partition))
        .and_then(|meta| meta.node_of(partition)))
}

/// Runs `call` for `group` on its coordinator shard.
pub async fn call(shard: &Rc<Shard>, group: String, call: GroupCall) -> GroupReply {
    let owner = match coordinator_shard(shard, &group).await {
        Ok(owner) => owner,
        Err(e) => return GroupReply::failed(&call, e),
    };
    if owner == shard.id {
        return shard.groups.run(shard, group, call).await;
    }
    let (tx, rx) = oneshot::channel();
    // The mesh fails only when the broker is shutting down.
    let failed = GroupReply::failed(&call, BrokerError::shutting_down());
    let msg = ShardMsg::Group {
        group,
        call,
        reply: tx,
    };
    if shard.send_to(owner, msg).await.is_err() {
        return failed;
    }
    rx.await.unwrap_or(failed)
}

/// Every group on every shard.
pub async fn list(shard: &Rc<Shard>) -> Vec<GroupListing> {
    let mut out = shard.groups.list();
    for other in 0..shard.count {
        let other = crate::types::ShardId(other);
        if other == shard.id {
            continue;
        }
        let (tx, rx) = oneshot::channel();
        if shard
            .send_to(other, ShardMsg::ListGroups { reply: tx })
            .await
            .is_ok()
            && let Ok(groups) = rx.await
        {
            out.extend(groups);
        }
    }
    out.sort_by(|a, b| a.group.cmp(&b.group));
    out
}

impl GroupReply {
    /// The reply to `call` when it could not run at all.
    pub fn failed(call: &GroupCall, e: BrokerError) -> GroupReply {
        match call {
            GroupCall::Join(_) => GroupReply::Join(Err((e, String::new()))),
            GroupCall::Sync(_) => GroupReply::Sync(Err(e)),
            GroupCall::Heartbeat { .. } => GroupReply::Heartbeat(Err(e)),
            GroupCall::Leave(members) => {
                GroupReply::Leave(members.iter().map(|_| Err(e.clone())).collect())
            }
            GroupCall::Commit(_) => GroupReply::Commit(Err(e)),
            GroupCall::FetchOffsets { .. } => GroupReply::FetchOffsets(Err(e)),
            GroupCall::ConsumerHeartbeat(_) => GroupReply::ConsumerHeartbeat(Err(e)),
            GroupCall::ConsumerDescribe => GroupReply::ConsumerDescribe(Err(e)),
            GroupCall::Describe => GroupReply::Describe(Err(e)),
            GroupCall::Delete => GroupReply::Delete(Err(e)),
            GroupCall::DeleteOffsets(_) => GroupReply::DeleteOffsets(Err(e)),
        }
    }
}
