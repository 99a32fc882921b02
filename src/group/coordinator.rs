//! One shard's groups: the classic protocol's state machine and the
//! committed offsets, persisted in this shard's partitions of the offsets
//! topic. Everything here runs on the owning shard's executor; waits
//! (JoinGroup until the rebalance completes, a follower's SyncGroup until
//! the leader's) are `oneshot` channels completed by the state machine, and
//! no `RefCell` borrow is held across an await.

use super::consumer::{self, ConsumerGroup, TopicInfo};
use super::store::{self, Entry, GroupValue, OffsetValue};
use super::{
    CommitArgs, Committed, ConsumerGroupDescription, ConsumerMemberDescription, GroupCall,
    GroupDescription, GroupListing, GroupReply, GroupState, JoinArgs, JoinResult,
    MemberDescription, OFFSETS_TOPIC, SyncArgs, SyncResult, partition_for,
};
use crate::constants::{
    GROUP_MAX_SESSION_TIMEOUT_MS, GROUP_MEMBERS_MAX, GROUP_MIN_SESSION_TIMEOUT_MS,
    GROUPS_PER_SHARD_MAX, OFFSET_METADATA_BYTES_MAX, OFFSETS_RETENTION_MS,
};
use crate::error::{BrokerError, ErrorKind};
use crate::record::{BatchBuilder, RecordBatch};
use crate::shard::Shard;
use crate::types::Timestamp;
use bytes::{Bytes, BytesMut};
use futures::channel::oneshot;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// What a `consumer` member gets when the leader assigned it nothing: a
/// ConsumerProtocolAssignment v0 with no partitions and null user data.
/// An empty byte string is what Kafka relays, but some clients fail to
/// parse it.
const EMPTY_CONSUMER_ASSIGNMENT: &[u8] = &[0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];

type JoinSender = oneshot::Sender<Result<JoinResult, (BrokerError, String)>>;
type SyncSender = oneshot::Sender<Result<SyncResult, BrokerError>>;

struct Member {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    /// When the session expires without a heartbeat.
    deadline: Instant,
    /// A JoinGroup waiting for the rebalance to complete.
    join: Option<JoinSender>,
    /// A follower's SyncGroup waiting for the leader's.
    sync: Option<SyncSender>,
}

struct Group {
    state: GroupState,
    protocol_type: Option<String>,
    protocol: Option<String>,
    generation: i32,
    leader: Option<String>,
    /// In join order.
    members: Vec<Member>,
    /// Ids handed out with MEMBER_ID_REQUIRED, until they join or expire.
    pending: HashMap<String, Instant>,
    offsets: HashMap<(String, i32), Committed>,
    /// Set while the group is a consumer-protocol (KIP-848) group; the
    /// classic fields above then stay unused (`state` only tells Empty
    /// from not, for the offsets' retention).
    consumer: Option<ConsumerGroup>,
    rebalance_deadline: Option<Instant>,
    /// When the group entered its state (ms since the epoch).
    state_since_ms: i64,
}

impl Group {
    fn new() -> Group {
        Group {
            state: GroupState::Empty,
            protocol_type: None,
            protocol: None,
            generation: 0,
            leader: None,
            members: Vec::new(),
            pending: HashMap::new(),
            offsets: HashMap::new(),
            consumer: None,
            rebalance_deadline: None,
            state_since_ms: Timestamp::now().0,
        }
    }

    fn set_state(&mut self, state: GroupState) {
        self.state = state;
        self.state_since_ms = Timestamp::now().0;
    }

    /// Whether any member, classic or consumer-protocol, is in the group.
    fn has_members(&self) -> bool {
        !self.members.is_empty() || self.consumer.as_ref().is_some_and(|c| !c.is_empty())
    }

    /// Keeps `state` (and with it the time the group became empty, for
    /// the offsets' retention) in step with a consumer group's membership.
    fn consumer_changed(&mut self) {
        let empty = self.consumer.as_ref().is_none_or(ConsumerGroup::is_empty);
        if empty && self.state != GroupState::Empty {
            self.set_state(GroupState::Empty);
        } else if !empty && self.state == GroupState::Empty {
            self.set_state(GroupState::Stable);
        }
    }

    fn member(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    fn member_mut(&mut self, id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.id == id)
    }

    fn by_instance(&self, instance: &str) -> Option<usize> {
        self.members
            .iter()
            .position(|m| m.instance_id.as_deref() == Some(instance))
    }

    /// Protocol names every member supports.
    fn common_protocols(&self) -> Vec<String> {
        let Some(first) = self.members.first() else {
            return Vec::new();
        };
        first
            .protocols
            .iter()
            .map(|(n, _)| n.clone())
            .filter(|n| {
                self.members
                    .iter()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == n))
            })
            .collect()
    }

    /// Whether a member with these protocols could join.
    fn accepts(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        let common = self.common_protocols();
        protocols.iter().any(|(n, _)| common.contains(n))
    }

    /// Moves the group to PreparingRebalance: members must rejoin.
    fn prepare_rebalance(&mut self, why: &str, group: &str) {
        if self.state == GroupState::CompletingRebalance {
            for m in &mut self.members {
                if let Some(tx) = m.sync.take() {
                    let _ = tx.send(Err(rebalancing()));
                }
            }
        }
        let timeout = self
            .members
            .iter()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        self.rebalance_deadline = Some(Instant::now() + timeout);
        if self.state != GroupState::PreparingRebalance {
            tracing::info!(
                group,
                generation = self.generation,
                reason = why,
                "preparing to rebalance"
            );
            self.set_state(GroupState::PreparingRebalance);
        }
    }

    /// Completes the join phase if every member has rejoined (or `force`,
    /// at the rebalance deadline: those that have not are dropped).
    fn maybe_complete_join(&mut self, force: bool, group: &str) -> bool {
        if self.state != GroupState::PreparingRebalance {
            return false;
        }
        let all_in = self.members.iter().all(|m| m.join.is_some());
        if !all_in && !force {
            return false;
        }
        let before = self.members.len();
        self.members.retain(|m| m.join.is_some());
        if self.members.len() < before {
            tracing::info!(
                group,
                dropped = before - self.members.len(),
                "members did not rejoin within the rebalance timeout"
            );
        }
        self.generation += 1;
        self.rebalance_deadline = None;
        if self.members.is_empty() {
            self.protocol = None;
            self.leader = None;
            self.set_state(GroupState::Empty);
            return true;
        }
        // Each member votes for its first choice among the protocols all
        // support; the most votes wins (ties: the earliest member's order).
        let common = self.common_protocols();
        let mut votes: Vec<(String, usize)> = common.iter().map(|p| (p.clone(), 0)).collect();
        for m in &self.members {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| common.contains(n))
                && let Some(v) = votes.iter_mut().find(|(p, _)| p == name)
            {
                v.1 += 1;
            }
        }
        let protocol = votes
            .iter()
            .fold(None::<&(String, usize)>, |best, v| match best {
                Some(b) if b.1 >= v.1 => Some(b),
                _ => Some(v),
            })
            .map(|(p, _)| p.clone());
        self.protocol = protocol.clone();
        if self
            .leader
            .as_deref()
            .is_none_or(|l| self.member(l).is_none())
        {
            self.leader = Some(self.members[0].id.clone());
        }
        let leader = self.leader.clone().unwrap_or_default();
        let all: Vec<(String, Option<String>, Bytes)> = self
            .members
            .iter()
            .map(|m| {
                let metadata = m
                    .protocols
                    .iter()
                    .find(|(n, _)| Some(n) == protocol.as_ref())
                    .map(|(_, md)| md.clone())
                    .unwrap_or_default();
                (m.id.clone(), m.instance_id.clone(), metadata)
            })
            .collect();
        self.set_state(GroupState::CompletingRebalance);
        tracing::info!(group, generation = self.generation, members = self.members.len(), protocol = ?protocol, leader = %leader, "rebalance: members joined");
        let now = Instant::now();
        for m in &mut self.members {
            m.deadline = now + m.session_timeout;
            m.assignment = Bytes::new();
            if let Some(tx) = m.join.take() {
                let _ = tx.send(Ok(JoinResult {
                    generation: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol: protocol.clone(),
                    leader: leader.clone(),
                    member_id: m.id.clone(),
                    members: if m.id == leader {
                        all.clone()
                    } else {
                        Vec::new()
                    },
                    skip_assignment: false,
                }));
            }
        }
        true
    }

    /// Removes a member; the group rebalances (or becomes Empty).
    fn remove_member(&mut self, id: &str, why: &str, group: &str) {
        let Some(pos) = self.members.iter().position(|m| m.id == id) else {
            return;
        };
        let m = self.members.remove(pos);
        if let Some(tx) = m.join {
            let _ = tx.send(Err((unknown_member(id), String::new())));
        }
        if let Some(tx) = m.sync {
            let _ = tx.send(Err(unknown_member(id)));
        }
        tracing::info!(group, member = id, reason = why, "member removed");
        if self.leader.as_deref() == Some(id) {
            self.leader = None;
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                if self.members.is_empty() {
                    self.generation += 1;
                    self.protocol = None;
                    self.set_state(GroupState::Empty);
                } else {
                    self.prepare_rebalance(why, group);
                }
            }
            GroupState::PreparingRebalance => {
                if self.members.is_empty() {
                    self.maybe_complete_join(true, group);
                } else {
                    self.maybe_complete_join(false, group);
                }
            }
            GroupState::Empty
            | GroupState::Dead
            | GroupState::Assigning
            | GroupState::Reconciling => {}
        }
    }

    fn value(&self) -> GroupValue {
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            state_ms: self.state_since_ms,
        }
    }
}

fn unknown_member(id: &str) -> BrokerError {
    BrokerError::new(
        ErrorKind::UnknownMemberId,
        format!("member {id:?} is not in the group"),
    )
}

fn rebalancing() -> BrokerError {
    BrokerError::new(
        ErrorKind::RebalanceInProgress,
        "the group is rebalancing; rejoin",
    )
}

fn illegal_generation(asked: i32, current: i32) -> BrokerError {
    BrokerError::new(
        ErrorKind::IllegalGeneration,
        format!("generation {asked} is not the group's current generation {current}"),
    )
}

fn new_member_id(client_id: &str) -> String {
    let client: String = client_id.chars().take(64).collect();
    format!("{client}-{}", uuid::Uuid::new_v4())
}

fn topics_of_subscription(metadata: &[u8]) -> Vec<String> {
    // ConsumerProtocolSubscription: version i16, topics [string], ...
    let mut out = Vec::new();
    if metadata.len() < 6 {
        return out;
    }
    let n = i32::from_be_bytes([metadata[2], metadata[3], metadata[4], metadata[5]]);
    let mut at = 6;
    for _ in 0..n.clamp(0, 10_000) {
        let Some(len) = metadata.get(at..at + 2) else {
            break;
        };
        let len = i16::from_be_bytes([len[0], len[1]]).max(0) as usize;
        let Some(name) = metadata.get(at + 2..at + 2 + len) else {
            break;
        };
        out.push(String::from_utf8_lossy(name).into_owned());
        at += 2 + len;
    }
    out
}

/// A shard's groups.
#[derive(Default)]
pub struct Coordinator {
    groups: RefCell<HashMap<String, Group>>,
}

impl Coordinator {
    pub async fn run(&self, shard: &Rc<Shard>, group: String, call: GroupCall) -> GroupReply {
        match call {
            GroupCall::Join(args) => GroupReply::Join(self.join(shard, &group, args).await),
            GroupCall::Sync(args) => GroupReply::Sync(self.sync(shard, &group, args).await),
            GroupCall::Heartbeat {
                generation,
                member_id,
                instance_id,
            } => GroupReply::Heartbeat(self.heartbeat(
                &group,
                generation,
                &member_id,
                instance_id.as_deref(),
            )),
            GroupCall::Leave(members) => GroupReply::Leave(self.leave(shard, &group, members)),
            GroupCall::Commit(args) => GroupReply::Commit(self.commit(shard, &group, args).await),
            GroupCall::FetchOffsets { partitions, member } => GroupReply::FetchOffsets(
                self.check_consumer_member(&group, member.as_ref())
                    .map(|()| self.fetch_offsets(&group, partitions)),
            ),
            GroupCall::ConsumerHeartbeat(args) => {
                GroupReply::ConsumerHeartbeat(self.consumer_heartbeat(shard, &group, args))
            }
            GroupCall::ConsumerDescribe => {
                GroupReply::ConsumerDescribe(self.consumer_describe(&group))
            }
            GroupCall::Describe => GroupReply::Describe(Ok(self.describe(&group))),
            GroupCall::Delete => GroupReply::Delete(self.delete(shard, &group).await),
            GroupCall::DeleteOffsets(partitions) => {
                GroupReply::DeleteOffsets(self.delete_offsets(shard, &group, partitions).await)
            }
        }
    }

    async fn join(
        &self,
        shard: &Rc<Shard>,
        group: &str,
        args: JoinArgs,
    ) -> Result<JoinResult, (BrokerError, String)> {
        let plain = |e: BrokerError| (e, String::new());
        if !(GROUP_MIN_SESSION_TIMEOUT_MS..=GROUP_MAX_SESSION_TIMEOUT_MS)
            .contains(&(args.session_timeout_ms as i64))
        {
            return Err(plain(BrokerError::new(
                ErrorKind::InvalidSessionTimeout,
                format!(
                    "session timeout {} ms is outside {GROUP_MIN_SESSION_TIMEOUT_MS}..={GROUP_MAX_SESSION_TIMEOUT_MS}",
                    args.session_timeout_ms
                ),
            )));
        }
        if args.protocol_type.is_empty() || args.protocols.is_empty() {
            return Err(plain(BrokerError::new(
                ErrorKind::InconsistentGroupProtocol,
                "a member must name a protocol type and at least one protocol",
            )));
        }
        let rx = {
            let mut groups = self.groups.borrow_mut();
            if !groups.contains_key(group) && groups.len() >= GROUPS_PER_SHARD_MAX {
                return Err(plain(BrokerError::new(
                    ErrorKind::CoordinatorNotAvailable,
                    format!("this coordinator already holds {GROUPS_PER_SHARD_MAX} groups"),
                )));
            }
            let g = groups.entry(group.to_string()).or_insert_with(Group::new);
            if let Some(cg) = &g.consumer {
                if !cg.is_empty() {
                    return Err(plain(BrokerError::new(
                        ErrorKind::InconsistentGroupProtocol,
                        format!(
                            "group {group:?} is a consumer-protocol (KIP-848) group with members; a classic member cannot join it (this broker does not migrate groups between protocols: use group.protocol=consumer, or another group id)"
                        ),
                    )));
                }
                g.consumer = None;
            }
            if !g.accepts(&args.protocol_type, &args.protocols) {
                return Err(plain(BrokerError::new(
                    ErrorKind::InconsistentGroupProtocol,
                    format!(
                        "the group's members use protocol type {:?} with protocols {:?}; this member offers {:?} {:?}",
                        g.protocol_type,
                        g.common_protocols(),
                        args.protocol_type,
                        args.protocols.iter().map(|(n, _)| n).collect::<Vec<_>>()
                    ),
                )));
            }
            let now = Instant::now();
            g.pending.retain(|_, deadline| *deadline > now);
            let session = Duration::from_millis(args.session_timeout_ms as u64);
            let admitted = if args.member_id.is_empty() {
                admit_new(g, group, &args, now)
            } else {
                admit_known(g, &args, now)
            };
            let member_id = match admitted {
                Admit::Wait(id) => id,
                Admit::Answer(answer) => return answer,
            };
            let (tx, rx) = oneshot::channel();
            let m = g.member_mut(&member_id).expect("added or found above");
            if let Some(old) = m.join.replace(tx) {
                let _ = old.send(Err((rebalancing(), String::new())));
            }
            m.deadline = now + session;
            if g.protocol_type.is_none() || g.members.len() == 1 {
                g.protocol_type = Some(args.protocol_type.clone());
            }
            if g.state != GroupState::PreparingRebalance {
                g.prepare_rebalance(&format!("member {member_id} joined"), group);
            }
            if g.maybe_complete_join(false, group) {
                persist_soon(shard, group, g);
            }
            rx
        };
        match rx.await {
            Ok(result) => result,
            Err(_) => Err(plain(rebalancing())),
        }
    }

    async fn sync(
        &self,
        shard: &Rc<Shard>,
        group: &str,
        args: SyncArgs,
    ) -> Result<SyncResult, BrokerError> {
        let rx = {
            let mut groups = self.groups.borrow_mut();
            let g = groups
                .get_mut(group)
                .ok_or_else(|| unknown_member(&args.member_id))?;
            check_member(g, &args.member_id, args.instance_id.as_deref())?;
            if args.generation != g.generation {
                return Err(illegal_generation(args.generation, g.generation));
            }
            if args.protocol_type.is_some() && args.protocol_type != g.protocol_type
                || args.protocol.is_some() && args.protocol != g.protocol
            {
                return Err(BrokerError::new(
                    ErrorKind::InconsistentGroupProtocol,
                    format!(
                        "the group uses {:?}/{:?}, not {:?}/{:?}",
                        g.protocol_type, g.protocol, args.protocol_type, args.protocol
                    ),
                ));
            }
            let result = |g: &Group, assignment: Bytes| SyncResult {
                protocol_type: g.protocol_type.clone(),
                protocol: g.protocol.clone(),
                assignment: relayed(g, assignment),
            };
            match g.state {
                GroupState::Empty
                | GroupState::Dead
                | GroupState::Assigning
                | GroupState::Reconciling => {
                    return Err(unknown_member(&args.member_id));
                }
                GroupState::PreparingRebalance => return Err(rebalancing()),
                GroupState::Stable => {
                    let m = g.member_mut(&args.member_id).expect("checked");
                    m.deadline = Instant::now() + m.session_timeout;
                    let assignment = m.assignment.clone();
                    return Ok(result(g, assignment));
                }
                GroupState::CompletingRebalance => {}
            }
            let now = Instant::now();
            if g.leader.as_deref() == Some(args.member_id.as_str()) {
                for m in &mut g.members {
                    m.assignment = args
                        .assignments
                        .iter()
                        .find(|(id, _)| *id == m.id)
                        .map(|(_, a)| a.clone())
                        .unwrap_or_default();
                    m.deadline = now + m.session_timeout;
                }
                g.set_state(GroupState::Stable);
                tracing::info!(
                    group,
                    generation = g.generation,
                    members = g.members.len(),
                    "group is stable"
                );
                let replies: Vec<(SyncSender, Bytes)> = g
                    .members
                    .iter_mut()
                    .filter_map(|m| m.sync.take().map(|tx| (tx, m.assignment.clone())))
                    .collect();
                for (tx, assignment) in replies {
                    let _ = tx.send(Ok(result(g, assignment)));
                }
                persist_soon(shard, group, g);
                let own = g
                    .member(&args.member_id)
                    .expect("checked")
                    .assignment
                    .clone();
                return Ok(result(g, own));
            }
            let (tx, rx) = oneshot::channel();
            let m = g.member_mut(&args.member_id).expect("checked");
            m.deadline = now + m.session_timeout;
            if let Some(old) = m.sync.replace(tx) {
                let _ = old.send(Err(rebalancing()));
            }
            rx
        };
        rx.await.unwrap_or_else(|_| Err(rebalancing()))
    }

    fn heartbeat(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), BrokerError> {
        let mut groups = self.groups.borrow_mut();
        let g = groups
            .get_mut(group)
            .ok_or_else(|| unknown_member(member_id))?;
        check_member(g, member_id, instance_id)?;
        if generation != g.generation {
            return Err(illegal_generation(generation, g.generation));
        }
        let state = g.state;
        let m = g.member_mut(member_id).expect("checked");
        m.deadline = Instant::now() + m.session_timeout;
        match state {
            GroupState::PreparingRebalance => Err(rebalancing()),
            GroupState::Empty | GroupState::Dead => Err(unknown_member(member_id)),
            _ => Ok(()),
        }
    }

    fn leave(
        &self,
        shard: &Rc<Shard>,
        group: &str,
        members: Vec<(String, Option<String>)>,
    ) -> Vec<Result<(), BrokerError>> {
        let mut groups = self.groups.borrow_mut();
        let Some(g) = groups.get_mut(group) else {
            return members
                .iter()
                .map(|(id, _)| Err(unknown_member(id)))
                .collect();
        };
        let mut out = Vec::with_capacity(members.len());
        for (id, instance) in members {
            let target = match instance.as_deref() {
                Some(i) => match g.by_instance(i) {
                    Some(pos) if id.is_empty() || g.members[pos].id == id => {
                        Ok(g.members[pos].id.clone())
                    }
                    Some(_) => Err(fenced(&id)),
                    None => Err(unknown_member(&id)),
                },
                None => g
                    .member(&id)
                    .map(|m| m.id.clone())
                    .ok_or_else(|| unknown_member(&id)),
            };
            out.push(target.map(|id| g.remove_member(&id, "left the group", group)));
        }
        persist_soon(shard, group, g);
        out
    }

    async fn commit(
        &self,
        shard: &Rc<Shard>,
        group: &str,
        args: CommitArgs,
    ) -> Result<Vec<Result<(), BrokerError>>, BrokerError> {
        {
            let mut groups = self.groups.borrow_mut();
            let simple = args.generation < 0 && args.member_id.is_empty();
            match groups.get_mut(group) {
                Some(g) if simple => {
                    if g.has_members() {
                        return Err(unknown_member(""));
                    }
                }
                Some(g) if g.consumer.is_some() => {
                    let cg = g.consumer.as_ref().expect("checked");
                    cg.check_member_epoch(&args.member_id, args.generation)?;
                }
                None if simple => {
                    if groups.len() >= GROUPS_PER_SHARD_MAX {
                        return Err(BrokerError::new(
                            ErrorKind::CoordinatorNotAvailable,
                            format!("this coordinator already holds {GROUPS_PER_SHARD_MAX} groups"),
                        ));
                    }
                    groups.insert(group.to_string(), Group::new());
                }
                None => return Err(unknown_member(&args.member_id)),
                Some(g) => {
                    check_member(g, &args.member_id, args.instance_id.as_deref())?;
                    if args.generation != g.generation {
                        return Err(illegal_generation(args.generation, g.generation));
                    }
                    if g.state == GroupState::CompletingRebalance {
                        return Err(rebalancing());
                    }
                    let m = g.member_mut(&args.member_id).expect("checked");
                    m.deadline = Instant::now() + m.session_timeout;
                }
            }
        }
        let snapshot = shard.snapshot();
        let now = Timestamp::now().0;
        let mut results = Vec::with_capacity(args.items.len());
        let mut records = Vec::new();
        let mut values = Vec::new();
        for item in &args.items {
            let known = snapshot
                .topic(&item.topic)
                .is_some_and(|t| item.partition >= 0 && (item.partition as u32) < t.partitions);
            let metadata = item.metadata.clone().unwrap_or_default();
            if !known {
                results.push(Err(BrokerError::new(
                    ErrorKind::UnknownPartition,
                    format!("topic {:?} has no partition {}", item.topic, item.partition),
                )));
            } else if metadata.len() > OFFSET_METADATA_BYTES_MAX {
                results.push(Err(BrokerError::new(
                    ErrorKind::OffsetMetadataTooLarge,
                    format!(
                        "commit metadata of {} bytes exceeds {OFFSET_METADATA_BYTES_MAX}",
                        metadata.len()
                    ),
                )));
            } else {
                let value = OffsetValue {
                    offset: item.offset,
                    leader_epoch: item.leader_epoch,
                    metadata,
                    commit_ms: now,
                };
                records.push((
                    store::offset_key(group, &item.topic, item.partition),
                    Some(store::offset_value(&value)),
                ));
                values.push((item.topic.clone(), item.partition, value));
                results.push(Ok(()));
            }
        }
        if !records.is_empty() {
            append(shard, group, records).await?;
            let mut groups = self.groups.borrow_mut();
            let g = groups.entry(group.to_string()).or_insert_with(Group::new);
            for (topic, partition, v) in values {
                g.offsets.insert(
                    (topic, partition),
                    Committed {
                        offset: v.offset,
                        leader_epoch: v.leader_epoch,
                        metadata: v.metadata,
                        commit_ms: v.commit_ms,
                    },
                );
            }
        }
        Ok(results)
    }

    fn fetch_offsets(
        &self,
        group: &str,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Vec<(String, i32, Option<Committed>)> {
        let groups = self.groups.borrow();
        let g = groups.get(group);
        match partitions {
            Some(list) => list
                .into_iter()
                .map(|(t, p)| {
                    let c = g.and_then(|g| g.offsets.get(&(t.clone(), p)).cloned());
                    (t, p, c)
                })
                .collect(),
            None => {
                let mut all: Vec<_> = g
                    .map(|g| {
                        g.offsets
                            .iter()
                            .map(|((t, p), c)| (t.clone(), *p, Some(c.clone())))
                            .collect()
                    })
                    .unwrap_or_default();
                all.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
                all
            }
        }
    }

    fn describe(&self, group: &str) -> GroupDescription {
        let groups = self.groups.borrow();
        let Some(g) = groups.get(group) else {
            return GroupDescription {
                group: group.to_string(),
                state: GroupState::Dead,
                protocol_type: String::new(),
                protocol: String::new(),
                generation: -1,
                members: Vec::new(),
            };
        };
        if let Some(cg) = &g.consumer {
            // DescribeGroups shows a consumer group's members with neither
            // metadata nor assignment (ConsumerGroupDescribe has those).
            return GroupDescription {
                group: group.to_string(),
                state: cg.state(),
                protocol_type: "consumer".into(),
                protocol: cg.assignor().name().into(),
                generation: cg.epoch,
                members: cg
                    .members
                    .values()
                    .map(|m| MemberDescription {
                        member_id: m.id.clone(),
                        instance_id: m.instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        metadata: Bytes::new(),
                        assignment: Bytes::new(),
                    })
                    .collect(),
            };
        }
        let stable = g.state == GroupState::Stable;
        GroupDescription {
            group: group.to_string(),
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if stable {
                g.protocol.clone().unwrap_or_default()
            } else {
                String::new()
            },
            generation: g.generation,
            members: g
                .members
                .iter()
                .map(|m| MemberDescription {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: m
                        .protocols
                        .iter()
                        .find(|(n, _)| Some(n) == g.protocol.as_ref())
                        .map(|(_, md)| md.clone())
                        .unwrap_or_default(),
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        }
    }

    async fn delete(&self, shard: &Rc<Shard>, group: &str) -> Result<(), BrokerError> {
        let records = {
            let groups = self.groups.borrow();
            let g = groups.get(group).ok_or_else(|| {
                BrokerError::new(
                    ErrorKind::GroupIdNotFound,
                    format!("group {group:?} does not exist"),
                )
            })?;
            if g.has_members() {
                return Err(BrokerError::new(
                    ErrorKind::NonEmptyGroup,
                    format!("group {group:?} has members"),
                ));
            }
            let mut records: Vec<(Bytes, Option<Bytes>)> = g
                .offsets
                .keys()
                .map(|(t, p)| (store::offset_key(group, t, *p), None))
                .collect();
            records.push((store::group_key(group), None));
            records
        };
        append(shard, group, records).await?;
        self.groups.borrow_mut().remove(group);
        tracing::info!(group, "group deleted");
        Ok(())
    }

    async fn delete_offsets(
        &self,
        shard: &Rc<Shard>,
        group: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<Result<(), BrokerError>>, BrokerError> {
        let (results, records) = {
            let groups = self.groups.borrow();
            let g = groups.get(group).ok_or_else(|| {
                BrokerError::new(
                    ErrorKind::GroupIdNotFound,
                    format!("group {group:?} does not exist"),
                )
            })?;
            let consumer_subscribed: Vec<String> = partitions
                .iter()
                .map(|(t, _)| t.clone())
                .filter(|t| {
                    g.consumer
                        .as_ref()
                        .is_some_and(|c| c.members.values().any(|m| m.subscribes_to(t)))
                })
                .collect();
            let subscribed: Vec<String> = g
                .members
                .iter()
                .filter(|_| g.protocol_type.as_deref() == Some("consumer"))
                .flat_map(|m| {
                    m.protocols
                        .iter()
                        .find(|(n, _)| Some(n) == g.protocol.as_ref())
                        .map(|(_, md)| topics_of_subscription(md))
                        .unwrap_or_default()
                })
                .chain(consumer_subscribed)
                .collect();
            if !g.members.is_empty() && g.protocol_type.as_deref() != Some("consumer") {
                return Err(BrokerError::new(
                    ErrorKind::NonEmptyGroup,
                    format!("group {group:?} has members"),
                ));
            }
            let mut results = Vec::new();
            let mut records = Vec::new();
            for (t, p) in &partitions {
                if subscribed.contains(t) {
                    results.push(Err(BrokerError::new(
                        ErrorKind::GroupSubscribedToTopic,
                        format!("a member of {group:?} is subscribed to {t:?}"),
                    )));
                } else {
                    if g.offsets.contains_key(&(t.clone(), *p)) {
                        records.push((store::offset_key(group, t, *p), None));
                    }
                    results.push(Ok(()));
                }
            }
            (results, records)
        };
        if !records.is_empty() {
            append(shard, group, records).await?;
        }
        if let Some(g) = self.groups.borrow_mut().get_mut(group) {
            for ((t, p), r) in partitions.iter().zip(&results) {
                if r.is_ok() {
                    g.offsets.remove(&(t.clone(), *p));
                }
            }
        }
        Ok(results)
    }

    fn consumer_heartbeat(
        &self,
        shard: &Rc<Shard>,
        group: &str,
        args: consumer::HeartbeatArgs,
    ) -> Result<consumer::HeartbeatResult, BrokerError> {
        let topics = topic_infos(shard);
        let settings = consumer::Settings {
            heartbeat_interval: shard.config.group_consumer_heartbeat_interval,
            session_timeout: shard.config.group_consumer_session_timeout,
            max_members: GROUP_MEMBERS_MAX,
        };
        let mut groups = self.groups.borrow_mut();
        if !groups.contains_key(group) {
            if args.member_epoch != 0 {
                return Err(BrokerError::new(
                    ErrorKind::UnknownMemberId,
                    format!(
                        "group {group:?} has no member {:?}; rejoin with epoch 0",
                        args.member_id
                    ),
                ));
            }
            if groups.len() >= GROUPS_PER_SHARD_MAX {
                return Err(BrokerError::new(
                    ErrorKind::CoordinatorNotAvailable,
                    format!("this coordinator already holds {GROUPS_PER_SHARD_MAX} groups"),
                ));
            }
        }
        let g = groups.entry(group.to_string()).or_insert_with(Group::new);
        if g.consumer.is_none() {
            if !g.members.is_empty() {
                return Err(BrokerError::new(
                    ErrorKind::InconsistentGroupProtocol,
                    format!(
                        "group {group:?} is a classic group with members; a consumer-protocol (KIP-848) member cannot join it (this broker does not migrate groups between protocols: use group.protocol=classic, or another group id)"
                    ),
                ));
            }
            g.consumer = Some(ConsumerGroup::new());
        }
        let cg = g.consumer.as_mut().expect("set above");
        let before = (cg.epoch, cg.members.len());
        let result = cg.heartbeat(args, &topics, &settings, Instant::now());
        if (cg.epoch, cg.members.len()) != before {
            tracing::info!(
                group,
                epoch = cg.epoch,
                members = cg.members.len(),
                assignor = cg.assignor().name(),
                "consumer group has a new epoch"
            );
        }
        g.consumer_changed();
        result
    }

    fn consumer_describe(&self, group: &str) -> Result<ConsumerGroupDescription, BrokerError> {
        let groups = self.groups.borrow();
        let cg = match groups.get(group) {
            None => {
                return Err(BrokerError::new(
                    ErrorKind::GroupIdNotFound,
                    format!("group {group:?} does not exist"),
                ));
            }
            Some(g) => g.consumer.as_ref().ok_or_else(|| {
                BrokerError::new(
                    ErrorKind::GroupIdNotFound,
                    format!("group {group:?} is not a consumer-protocol group (describe it with DescribeGroups)"),
                )
            })?,
        };
        let wire = |a: &consumer::Assignment| -> Vec<(consumer::TopicUuid, Vec<i32>)> {
            a.iter()
                .map(|(t, ps)| (*t, ps.iter().copied().collect()))
                .collect()
        };
        Ok(ConsumerGroupDescription {
            group: group.to_string(),
            state: cg.state(),
            group_epoch: cg.epoch,
            assignment_epoch: cg.assignment_epoch,
            assignor: cg.assignor().name(),
            members: cg
                .members
                .values()
                .map(|m| ConsumerMemberDescription {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.epoch,
                    state: m.state.name(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topic_names: m.subscribed_names.clone(),
                    subscribed_topic_regex: m.subscribed_regex.clone(),
                    assignment: wire(&m.assigned),
                    target_assignment: cg.target.get(&m.id).map(wire).unwrap_or_default(),
                })
                .collect(),
        })
    }

    /// OffsetFetch v9 names the consumer-protocol member asking: it must be
    /// in the group at that epoch. Classic groups and anonymous fetches
    /// (no member, or epoch -1) are not checked.
    fn check_consumer_member(
        &self,
        group: &str,
        member: Option<&(String, i32)>,
    ) -> Result<(), BrokerError> {
        let Some((id, epoch)) = member else {
            return Ok(());
        };
        if *epoch < 0 {
            return Ok(());
        }
        let groups = self.groups.borrow();
        match groups.get(group).and_then(|g| g.consumer.as_ref()) {
            Some(cg) => cg.check_member_epoch(id, *epoch),
            None => Ok(()),
        }
    }

    /// Every group of this shard with its members and committed offsets,
    /// for metrics and the HTTP API.
    pub fn report(&self) -> Vec<crate::metrics::GroupReport> {
        self.list()
            .into_iter()
            .map(|listing| {
                let description = self.describe(&listing.group);
                let committed = self
                    .fetch_offsets(&listing.group, None)
                    .into_iter()
                    .filter_map(|(topic, partition, c)| {
                        Some(crate::metrics::CommittedReport {
                            topic,
                            partition: u32::try_from(partition).ok()?,
                            offset: c?.offset,
                        })
                    })
                    .collect();
                crate::metrics::GroupReport {
                    state: listing.state.name().to_string(),
                    group_type: listing.group_type,
                    protocol_type: listing.protocol_type,
                    members: description
                        .members
                        .into_iter()
                        .map(|m| crate::metrics::MemberReport {
                            member_id: m.member_id,
                            client_id: m.client_id,
                            client_host: m.client_host,
                        })
                        .collect(),
                    committed,
                    group: listing.group,
                }
            })
            .collect()
    }

    /// Every group of this shard.
    pub fn list(&self) -> Vec<GroupListing> {
        self.groups
            .borrow()
            .iter()
            .map(|(name, g)| match &g.consumer {
                Some(cg) => GroupListing {
                    group: name.clone(),
                    protocol_type: "consumer".into(),
                    state: cg.state(),
                    group_type: "consumer",
                },
                None => GroupListing {
                    group: name.clone(),
                    protocol_type: g.protocol_type.clone().unwrap_or_default(),
                    state: g.state,
                    group_type: "classic",
                },
            })
            .collect()
    }

    /// Expires sessions, rebalance deadlines, member ids never used, and the
    /// offsets of groups empty for longer than the retention.
    pub async fn tick(&self, shard: &Rc<Shard>) {
        let now = Instant::now();
        let mut expired_groups = Vec::new();
        // The topic list is built only when a consumer-protocol member
        // expired (its partitions are then reassigned), not on every tick.
        let mut topics: Option<Vec<TopicInfo>> = None;
        {
            let mut groups = self.groups.borrow_mut();
            let wall = Timestamp::now().0;
            for (name, g) in groups.iter_mut() {
                if let Some(cg) = &mut g.consumer {
                    let expired = cg.expired(now);
                    if !expired.is_empty() && topics.is_none() {
                        topics = Some(topic_infos(shard));
                    }
                    let topics = topics.as_deref().unwrap_or_default();
                    for (id, why) in expired {
                        tracing::info!(group = %name, member = %id, reason = why, "removing a consumer group member");
                        cg.remove(&id, why, topics);
                    }
                    g.consumer_changed();
                }
                g.pending.retain(|_, d| *d > now);
                let timed_out: Vec<String> = g
                    .members
                    .iter()
                    .filter(|m| m.join.is_none() && m.deadline <= now)
                    .map(|m| m.id.clone())
                    .collect();
                let changed = !timed_out.is_empty();
                for id in timed_out {
                    g.remove_member(&id, "session timed out", name);
                }
                let forced = g.state == GroupState::PreparingRebalance
                    && g.rebalance_deadline.is_some_and(|d| d <= now)
                    && g.maybe_complete_join(true, name);
                if changed || forced {
                    persist_soon(shard, name, g);
                }
                if g.state == GroupState::Empty
                    && !g.has_members()
                    && wall.saturating_sub(g.state_since_ms) > OFFSETS_RETENTION_MS as i64
                {
                    expired_groups.push(name.clone());
                }
            }
        }
        for name in expired_groups {
            tracing::info!(group = %name, retention_ms = OFFSETS_RETENTION_MS, "expiring the offsets of a group empty for longer than the retention");
            if let Err(e) = self.delete(shard, &name).await {
                tracing::warn!(group = %name, error = %e, "expiring a group failed");
            }
        }
    }

    /// Rebuilds the groups of this shard's offsets-topic partitions from
    /// their records.
    pub async fn load(&self, shard: &Rc<Shard>) -> Result<(), String> {
        let Some(topic) = shard.snapshot().topic(OFFSETS_TOPIC).cloned() else {
            return Ok(());
        };
        let started = Instant::now();
        let mut records = 0u64;
        for p in 0..topic.partitions {
            let Some(log) = shard.log(topic.id, p) else {
                continue;
            };
            let mut pos = log.start_offset();
            let end = log.end_offset();
            while pos < end {
                let read = log
                    .read(pos, 1 << 20)
                    .await
                    .map_err(|e| format!("reading {OFFSETS_TOPIC}/{p}: {e}"))?;
                if read.chunks.is_empty() {
                    break;
                }
                for bytes in read.batches() {
                    let batch = RecordBatch::parse(bytes, usize::MAX)
                        .map_err(|e| format!("{OFFSETS_TOPIC}/{p}: {e}"))?;
                    for r in batch.records() {
                        records += 1;
                        let Some(key) = r.key else { continue };
                        match store::decode(key, r.value) {
                            Ok(entry) => self.apply(entry),
                            Err(e) => {
                                tracing::warn!(partition = p, error = %e, "skipping an unreadable offsets record")
                            }
                        }
                    }
                }
                pos = read.next_offset;
            }
        }
        let groups = self.groups.borrow().len();
        if records > 0 {
            tracing::info!(shard = %shard.id, groups, records, millis = started.elapsed().as_millis() as u64, "loaded consumer groups");
        }
        Ok(())
    }

    fn apply(&self, entry: Entry) {
        let mut groups = self.groups.borrow_mut();
        match entry {
            Entry::Offset {
                group,
                topic,
                partition,
                value,
            } => match value {
                Some(v) => {
                    let g = groups.entry(group).or_insert_with(Group::new);
                    g.offsets.insert(
                        (topic, partition),
                        Committed {
                            offset: v.offset,
                            leader_epoch: v.leader_epoch,
                            metadata: v.metadata,
                            commit_ms: v.commit_ms,
                        },
                    );
                }
                None => {
                    if let Some(g) = groups.get_mut(&group) {
                        g.offsets.remove(&(topic, partition));
                    }
                }
            },
            Entry::Group { group, value } => match value {
                Some(v) => {
                    let g = groups.entry(group).or_insert_with(Group::new);
                    g.generation = g.generation.max(v.generation);
                    g.protocol_type = (!v.protocol_type.is_empty()).then_some(v.protocol_type);
                    if v.state_ms > 0 {
                        g.state_since_ms = v.state_ms;
                    }
                }
                None => {
                    groups.remove(&group);
                }
            },
        }
    }
}

/// What a JoinGroup gets without waiting for a rebalance.
type JoinAnswer = Result<JoinResult, (BrokerError, String)>;

/// Whether a joining member waits for the rebalance or is answered now.
enum Admit {
    Wait(String),
    Answer(JoinAnswer),
}

/// The group's current generation, as answered to `member_id` (with every
/// member's metadata when it leads).
fn current_generation(g: &Group, member_id: &str, skip_assignment: bool) -> JoinResult {
    let leads = g.leader.as_deref() == Some(member_id);
    JoinResult {
        generation: g.generation,
        protocol_type: g.protocol_type.clone(),
        protocol: g.protocol.clone(),
        leader: g.leader.clone().unwrap_or_default(),
        member_id: member_id.to_string(),
        members: if leads { member_list(g) } else { Vec::new() },
        skip_assignment,
    }
}

/// A JoinGroup without a member id: a static member back under a new id, a
/// new member told its id first (v4+), or a new member. `Ok`: the member
/// to wait for the rebalance; `Err`: the answer now.
fn admit_new(g: &mut Group, group: &str, args: &JoinArgs, now: Instant) -> Admit {
    let refuse = |e: BrokerError| Admit::Answer(Err((e, String::new())));
    let session = Duration::from_millis(args.session_timeout_ms as u64);
    let id = new_member_id(&args.client_id);
    if let Some(pos) = args.instance_id.as_deref().and_then(|i| g.by_instance(i)) {
        // It replaces its old self, keeping the assignment.
        let same = g.members[pos].protocols == args.protocols;
        let old_id = std::mem::replace(&mut g.members[pos].id, id.clone());
        if let Some(tx) = g.members[pos].join.take() {
            let _ = tx.send(Err((fenced(&old_id), String::new())));
        }
        if let Some(tx) = g.members[pos].sync.take() {
            let _ = tx.send(Err(fenced(&old_id)));
        }
        let was_leader = g.leader.as_deref() == Some(old_id.as_str());
        if was_leader {
            g.leader = Some(id.clone());
        }
        g.members[pos].deadline = now + session;
        g.members[pos].session_timeout = session;
        if g.state == GroupState::Stable && same {
            tracing::info!(group, member = %id, instance = ?args.instance_id, "static member rejoined without a rebalance");
            return Admit::Answer(Ok(current_generation(g, &id, was_leader)));
        }
        g.members[pos].protocols = args.protocols.clone();
        return Admit::Wait(id);
    }
    if args.require_known_member && args.instance_id.is_none() {
        if g.pending.len() >= GROUP_MEMBERS_MAX {
            return refuse(group_full());
        }
        g.pending.insert(id.clone(), now + session);
        let e = BrokerError::new(
            ErrorKind::MemberIdRequired,
            "join again with the member id in this answer",
        );
        return Admit::Answer(Err((e, id)));
    }
    match add_member(g, args, id.clone(), now) {
        Ok(()) => Admit::Wait(id),
        Err(e) => refuse(e),
    }
}

/// A JoinGroup with a member id: one handed out by MEMBER_ID_REQUIRED, or
/// a member rejoining (answered at once when nothing changed).
fn admit_known(g: &mut Group, args: &JoinArgs, now: Instant) -> Admit {
    let refuse = |e: BrokerError| Admit::Answer(Err((e, String::new())));
    let id = &args.member_id;
    if g.pending.remove(id).is_some() {
        return match add_member(g, args, id.clone(), now) {
            Ok(()) => Admit::Wait(id.clone()),
            Err(e) => refuse(e),
        };
    }
    let Some(m) = g.member(id) else {
        let replaced = args.instance_id.as_deref().and_then(|i| g.by_instance(i));
        return refuse(match replaced {
            Some(_) => fenced(id),
            None => unknown_member(id),
        });
    };
    if args.instance_id.is_some() && m.instance_id != args.instance_id {
        return refuse(fenced(id));
    }
    let same = m.protocols == args.protocols;
    let is_leader = g.leader.as_deref() == Some(id.as_str());
    let settled = matches!(
        g.state,
        GroupState::Stable | GroupState::CompletingRebalance
    );
    let unchanged = settled && same && (!is_leader || g.state == GroupState::CompletingRebalance);
    let m = g.member_mut(id).expect("found above");
    m.deadline = now + Duration::from_millis(args.session_timeout_ms as u64);
    if unchanged {
        // Nothing changed: the current generation again.
        return Admit::Answer(Ok(current_generation(g, id, false)));
    }
    m.protocols = args.protocols.clone();
    m.session_timeout = Duration::from_millis(args.session_timeout_ms as u64);
    m.rebalance_timeout = Duration::from_millis(args.rebalance_timeout_ms.max(0) as u64);
    m.client_id = args.client_id.clone();
    m.client_host = args.client_host.clone();
    Admit::Wait(id.clone())
}

fn fenced(id: &str) -> BrokerError {
    BrokerError::new(
        ErrorKind::FencedInstanceId,
        format!("member {id:?} was replaced by a newer member with the same group.instance.id"),
    )
}

fn group_full() -> BrokerError {
    BrokerError::new(
        ErrorKind::GroupMaxSizeReached,
        format!("the group already has {GROUP_MEMBERS_MAX} members"),
    )
}

fn member_list(g: &Group) -> Vec<(String, Option<String>, Bytes)> {
    g.members
        .iter()
        .map(|m| {
            let metadata = m
                .protocols
                .iter()
                .find(|(n, _)| Some(n) == g.protocol.as_ref())
                .map(|(_, md)| md.clone())
                .unwrap_or_default();
            (m.id.clone(), m.instance_id.clone(), metadata)
        })
        .collect()
}

fn add_member(g: &mut Group, args: &JoinArgs, id: String, now: Instant) -> Result<(), BrokerError> {
    if g.members.len() >= GROUP_MEMBERS_MAX {
        return Err(group_full());
    }
    g.members.push(Member {
        id,
        instance_id: args.instance_id.clone(),
        client_id: args.client_id.clone(),
        client_host: args.client_host.clone(),
        session_timeout: Duration::from_millis(args.session_timeout_ms as u64),
        rebalance_timeout: Duration::from_millis(args.rebalance_timeout_ms.max(0) as u64),
        protocols: args.protocols.clone(),
        assignment: Bytes::new(),
        deadline: now + Duration::from_millis(args.session_timeout_ms as u64),
        join: None,
        sync: None,
    });
    Ok(())
}

fn check_member(g: &Group, member_id: &str, instance_id: Option<&str>) -> Result<(), BrokerError> {
    if let Some(i) = instance_id
        && let Some(pos) = g.by_instance(i)
        && g.members[pos].id != member_id
    {
        return Err(fenced(member_id));
    }
    if g.member(member_id).is_none() {
        return Err(unknown_member(member_id));
    }
    Ok(())
}

/// The assignment as relayed to a member: an empty one is encoded for
/// `consumer` groups (see [`EMPTY_CONSUMER_ASSIGNMENT`]).
fn relayed(g: &Group, assignment: Bytes) -> Bytes {
    if assignment.is_empty() && g.protocol_type.as_deref() == Some("consumer") {
        Bytes::from_static(EMPTY_CONSUMER_ASSIGNMENT)
    } else {
        assignment
    }
}

/// Writes records for `group` to its offsets-topic partition (on this
/// shard) and waits until they are durable.
async fn append(
    shard: &Rc<Shard>,
    group: &str,
    records: Vec<(Bytes, Option<Bytes>)>,
) -> Result<(), BrokerError> {
    let unavailable = |why: String| BrokerError::new(ErrorKind::CoordinatorNotAvailable, why);
    let topic = shard
        .snapshot()
        .topic(OFFSETS_TOPIC)
        .map(|t| t.id)
        .ok_or_else(|| unavailable("the offsets topic does not exist".into()))?;
    let partition = partition_for(group);
    let log = shard.log(topic, partition).ok_or_else(|| {
        unavailable(format!(
            "{OFFSETS_TOPIC} partition {partition} is not open here"
        ))
    })?;
    let mut builder = BatchBuilder::with_capacity(
        records
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, |v| v.len()) + 32)
            .sum(),
    );
    let now = Timestamp::now();
    for (key, value) in &records {
        builder.push(now, Some(key), value.as_deref(), &[]);
    }
    let batch = builder.finish();
    log.append(BytesMut::from(&batch[..]))
        .await
        .map(|_| ())
        .map_err(|e| {
            tracing::error!(group, partition, error = %e, "writing to the offsets topic failed");
            BrokerError::new(
                ErrorKind::CoordinatorNotAvailable,
                format!("writing the group's records failed: {e}"),
            )
        })
}

/// Persists the group's record in the background (its generation and
/// protocol type survive a restart); a failure is logged.
fn persist_soon(shard: &Rc<Shard>, group: &str, g: &Group) {
    let (shard, group, value) = (shard.clone(), group.to_string(), g.value());
    glommio::spawn_local(async move {
        let records = vec![(store::group_key(&group), Some(store::group_value(&value)))];
        if let Err(e) = append(&shard, &group, records).await {
            tracing::warn!(group = %group, error = %e, "persisting group state failed");
        }
    })
    .detach();
}

/// The topics a consumer-protocol subscription may name (internal topics
/// never match).
fn topic_infos(shard: &Shard) -> Vec<TopicInfo> {
    shard
        .snapshot()
        .topics
        .values()
        .filter(|t| !super::is_internal(&t.name))
        .map(|t| TopicInfo {
            name: t.name.to_string(),
            id: t.uuid,
            partitions: t.partitions,
        })
        .collect()
}
