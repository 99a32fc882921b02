//! Consumer-protocol groups (Kafka's KIP-848): the broker computes the
//! assignment and hands it out through heartbeats, member by member, so a
//! rebalance never stops the whole group.
//!
//! * The **group epoch** rises whenever what the assignment depends on
//!   changes: a member joins or leaves, a subscription changes, or a
//!   subscribed topic gains partitions (or appears, for a regular
//!   expression). The **target assignment** is then computed at once by the
//!   group's assignor (`uniform`, sticky and balanced, the default; or
//!   `range`), and the **assignment epoch** is the group epoch it was
//!   computed for.
//! * Each member moves to the target on its own heartbeats, at its own
//!   **member epoch**. A member that owns partitions its target no longer
//!   holds is first told to give them up (its epoch stays), and moves to the
//!   new epoch only once a heartbeat reports them released. A partition the
//!   target moves to a member is handed out only once no other member holds
//!   it (assigned or being revoked), so no partition is ever owned by two
//!   members at once; until then the member waits with the rest.
//! * Sessions are kept by heartbeats (broker-side session timeout); a member
//!   that does not release revoked partitions within its rebalance timeout
//!   is removed.
//!
//! Pure state: no I/O, no clock reads (callers pass `now`), so every
//! transition is unit-tested here.

use crate::error::{BrokerError, ErrorKind};
use regex::Regex;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// A topic's id (Kafka's topic UUID).
pub type TopicUuid = [u8; 16];
/// Partitions by topic.
pub type Assignment = BTreeMap<TopicUuid, BTreeSet<i32>>;

/// What the assignors see of a topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub id: TopicUuid,
    pub partitions: u32,
}

/// The server-side assignors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Assignor {
    /// Balanced and sticky: partitions stay where they are unless balance
    /// needs them elsewhere.
    Uniform,
    /// Each topic's partitions in contiguous ranges over the members
    /// subscribed to it, in member-id order.
    Range,
}

impl Assignor {
    pub fn parse(name: &str) -> Option<Assignor> {
        match name {
            "uniform" => Some(Assignor::Uniform),
            "range" => Some(Assignor::Range),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Assignor::Uniform => "uniform",
            Assignor::Range => "range",
        }
    }
}

/// Broker-wide settings of consumer-protocol groups.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub heartbeat_interval: Duration,
    pub session_timeout: Duration,
    pub max_members: usize,
}

/// A ConsumerGroupHeartbeat, protocol-neutral.
#[derive(Clone, Debug, Default)]
pub struct HeartbeatArgs {
    pub member_id: String,
    /// 0 joins, -1 leaves, -2 leaves for now (a static member that will be
    /// back), anything else is the member's current epoch.
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1: unchanged.
    pub rebalance_timeout_ms: i32,
    /// `None`: unchanged.
    pub subscribed_topic_names: Option<Vec<String>>,
    /// `None`: unchanged; empty: no regular expression.
    pub subscribed_topic_regex: Option<String>,
    /// `None`: unchanged (or the group's choice).
    pub server_assignor: Option<String>,
    /// The partitions the member owns now; `None`: unchanged.
    pub owned: Option<Vec<(TopicUuid, Vec<i32>)>>,
    pub client_id: String,
    pub client_host: String,
    /// Whether the broker hands out the member id (version 0) or the
    /// client brings its own (version 1 and later).
    pub broker_assigns_member_id: bool,
}

/// The answer to a heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatResult {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's whole assignment, when it changed since the last
    /// answer (or the member just joined); `None`: unchanged.
    pub assignment: Option<Vec<(TopicUuid, Vec<i32>)>>,
}

/// Where a member is in moving to its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberState {
    /// At the assignment epoch with its whole target.
    Stable,
    /// Must give up partitions before it moves on.
    UnrevokedPartitions,
    /// At the assignment epoch, waiting for partitions other members still
    /// hold.
    UnreleasedPartitions,
}

impl MemberState {
    pub fn name(self) -> &'static str {
        match self {
            MemberState::Stable => "stable",
            MemberState::UnrevokedPartitions => "unrevoked_partitions",
            MemberState::UnreleasedPartitions => "unreleased_partitions",
        }
    }
}

#[derive(Debug)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout: Duration,
    pub subscribed_names: Vec<String>,
    pub subscribed_regex: Option<String>,
    compiled_regex: Option<Regex>,
    pub server_assignor: Option<Assignor>,
    pub epoch: i32,
    previous_epoch: i32,
    pub state: MemberState,
    /// What the member may consume.
    pub assigned: Assignment,
    /// What it must give up (still its own until it says so).
    pub revoking: Assignment,
    session_deadline: Instant,
    revoke_deadline: Option<Instant>,
    /// The assignment last sent to it.
    sent: Option<Assignment>,
    /// A static member that left with epoch -2: its place waits for its
    /// instance until the session times out.
    away: bool,
}

impl Member {
    fn subscribes(&self, topic: &TopicInfo) -> bool {
        self.subscribes_to(&topic.name)
    }

    /// Takes what a heartbeat says about the member (fields it leaves out
    /// stay); returns whether its subscription or assignor changed.
    fn update(
        &mut self,
        args: &HeartbeatArgs,
        regex: Option<Regex>,
        assignor: Option<Assignor>,
    ) -> bool {
        let mut changed = false;
        self.client_id.clone_from(&args.client_id);
        self.client_host.clone_from(&args.client_host);
        if args.rack_id.is_some() {
            self.rack_id.clone_from(&args.rack_id);
        }
        if args.rebalance_timeout_ms >= 0 {
            self.rebalance_timeout = Duration::from_millis(args.rebalance_timeout_ms as u64);
        }
        if let Some(names) = &args.subscribed_topic_names {
            let mut names: Vec<String> = names.iter().filter(|n| !n.is_empty()).cloned().collect();
            names.sort();
            names.dedup();
            if names != self.subscribed_names {
                self.subscribed_names = names;
                changed = true;
            }
        }
        if let Some(text) = &args.subscribed_topic_regex {
            let text = (!text.is_empty()).then(|| text.clone());
            if text != self.subscribed_regex {
                self.subscribed_regex = text;
                self.compiled_regex = regex;
                changed = true;
            }
        }
        if assignor.is_some() && assignor != self.server_assignor {
            self.server_assignor = assignor;
            changed = true;
        }
        changed
    }

    /// Whether the member's subscription (names or regular expression)
    /// covers the topic `name`.
    pub fn subscribes_to(&self, name: &str) -> bool {
        self.subscribed_names.iter().any(|n| n == name)
            || self
                .compiled_regex
                .as_ref()
                .is_some_and(|r| r.is_match(name))
    }
}

/// A consumer-protocol group's membership and assignment.
#[derive(Debug)]
pub struct ConsumerGroup {
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, Member>,
    /// The target assignment of each member, at `assignment_epoch`.
    pub target: HashMap<String, Assignment>,
    /// Which member holds each partition (assigned or being revoked).
    owners: HashMap<(TopicUuid, i32), String>,
    /// What the target was computed from (subscribed topics' ids and
    /// partition counts), to notice metadata changes.
    fingerprint: Vec<(TopicUuid, u32)>,
}

impl Default for ConsumerGroup {
    fn default() -> Self {
        ConsumerGroup::new()
    }
}

fn fenced_epoch(asked: i32, current: i32) -> BrokerError {
    BrokerError::new(
        ErrorKind::FencedMemberEpoch,
        format!(
            "member epoch {asked} is fenced: the member's epoch is {current}; give up every partition and rejoin with epoch 0"
        ),
    )
}

fn unknown_member(id: &str) -> BrokerError {
    BrokerError::new(
        ErrorKind::UnknownMemberId,
        format!("member {id:?} is not in the group; rejoin with epoch 0"),
    )
}

fn invalid(message: impl Into<String>) -> BrokerError {
    BrokerError::new(ErrorKind::InvalidRequest, message)
}

fn to_wire(a: &Assignment) -> Vec<(TopicUuid, Vec<i32>)> {
    a.iter()
        .filter(|(_, ps)| !ps.is_empty())
        .map(|(t, ps)| (*t, ps.iter().copied().collect()))
        .collect()
}

fn from_wire(owned: &[(TopicUuid, Vec<i32>)]) -> Assignment {
    let mut a = Assignment::new();
    for (t, ps) in owned {
        a.entry(*t).or_default().extend(ps.iter().copied());
    }
    a
}

fn partitions(a: &Assignment) -> impl Iterator<Item = (TopicUuid, i32)> + '_ {
    a.iter()
        .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
}

fn count(a: &Assignment) -> usize {
    a.values().map(BTreeSet::len).sum()
}

fn contains(a: &Assignment, t: &TopicUuid, p: i32) -> bool {
    a.get(t).is_some_and(|ps| ps.contains(&p))
}

fn insert(a: &mut Assignment, t: TopicUuid, p: i32) {
    a.entry(t).or_default().insert(p);
}

fn remove(a: &mut Assignment, t: &TopicUuid, p: i32) {
    if let Some(ps) = a.get_mut(t) {
        ps.remove(&p);
        if ps.is_empty() {
            a.remove(t);
        }
    }
}

/// Kafka matches a subscription's regular expression against the whole
/// topic name.
fn compile(regex: &str) -> Result<Regex, BrokerError> {
    Regex::new(&format!("^(?:{regex})$")).map_err(|e| {
        BrokerError::new(
            ErrorKind::InvalidRegularExpression,
            format!("subscribed topic regex {regex:?} is not valid: {e}"),
        )
    })
}

impl ConsumerGroup {
    pub fn new() -> ConsumerGroup {
        ConsumerGroup {
            epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            target: HashMap::new(),
            owners: HashMap::new(),
            fingerprint: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The assignor the group uses: the one most members ask for (ties:
    /// the first in name order), `uniform` when none asks.
    pub fn assignor(&self) -> Assignor {
        let mut votes: BTreeMap<Assignor, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = m.server_assignor {
                *votes.entry(a).or_default() += 1;
            }
        }
        votes
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(a, _)| *a)
            .unwrap_or(Assignor::Uniform)
    }

    /// The group's state, as Kafka names consumer groups' states.
    pub fn state(&self) -> super::GroupState {
        use super::GroupState;
        if self.members.is_empty() {
            GroupState::Empty
        } else if self.assignment_epoch < self.epoch {
            GroupState::Assigning
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.assignment_epoch || m.state != MemberState::Stable)
        {
            GroupState::Reconciling
        } else {
            GroupState::Stable
        }
    }

    /// Checks a commit's (or an offset fetch's) member and epoch.
    pub fn check_member_epoch(&self, member_id: &str, epoch: i32) -> Result<(), BrokerError> {
        let m = self
            .members
            .get(member_id)
            .ok_or_else(|| unknown_member(member_id))?;
        if epoch > m.epoch {
            return Err(fenced_epoch(epoch, m.epoch));
        }
        if epoch < m.epoch {
            return Err(BrokerError::new(
                ErrorKind::StaleMemberEpoch,
                format!(
                    "member epoch {epoch} is stale: the member is at epoch {}",
                    m.epoch
                ),
            ));
        }
        Ok(())
    }

    /// Serves one heartbeat. `topics`: every topic a subscription may name
    /// (internal topics excluded).
    pub fn heartbeat(
        &mut self,
        args: HeartbeatArgs,
        topics: &[TopicInfo],
        settings: &Settings,
        now: Instant,
    ) -> Result<HeartbeatResult, BrokerError> {
        if args.member_epoch < 0 {
            return self.leave(args, topics);
        }
        let assignor = match args.server_assignor.as_deref() {
            None | Some("") => None,
            Some(name) => Some(Assignor::parse(name).ok_or_else(|| {
                BrokerError::new(
                    ErrorKind::UnsupportedAssignor,
                    format!(
                        "server assignor {name:?} is not supported; use \"uniform\" or \"range\""
                    ),
                )
            })?),
        };
        let regex = match args.subscribed_topic_regex.as_deref() {
            None | Some("") => None,
            Some(r) => Some(compile(r)?),
        };
        let mut changed = false;
        let id = if args.member_epoch == 0 {
            let (id, joined) = self.join(&args, settings, now)?;
            changed |= joined;
            id
        } else {
            self.check_epoch(&args)?;
            args.member_id.clone()
        };
        let m = self.members.get_mut(&id).expect("joined or checked");
        m.session_deadline = now + settings.session_timeout;
        changed |= m.update(&args, regex, assignor);
        let fingerprint = self.fingerprint_of(topics);
        if changed || fingerprint != self.fingerprint {
            self.fingerprint = fingerprint;
            self.bump(topics);
        }
        let owned = args.owned.as_deref().map(from_wire);
        let full = args.member_epoch == 0 || owned.is_some();
        self.reconcile(&id, owned.as_ref(), now);
        let m = self.members.get_mut(&id).expect("still there");
        let assignment = if full || m.sent.as_ref() != Some(&m.assigned) {
            m.sent = Some(m.assigned.clone());
            Some(to_wire(&m.assigned))
        } else {
            None
        };
        Ok(HeartbeatResult {
            member_id: id,
            member_epoch: m.epoch,
            heartbeat_interval_ms: settings.heartbeat_interval.as_millis() as i32,
            assignment,
        })
    }

    /// A member with epoch 0: new, rejoining after being fenced, or a
    /// static member's new incarnation. Returns its id and whether the
    /// group changed.
    fn join(
        &mut self,
        args: &HeartbeatArgs,
        settings: &Settings,
        now: Instant,
    ) -> Result<(String, bool), BrokerError> {
        if args.subscribed_topic_names.is_none() && args.subscribed_topic_regex.is_none() {
            return Err(invalid(
                "a joining member must give SubscribedTopicNames or SubscribedTopicRegex",
            ));
        }
        if args.rebalance_timeout_ms < 0 {
            return Err(invalid("a joining member must give RebalanceTimeoutMs"));
        }
        let id = if args.member_id.is_empty() {
            if !args.broker_assigns_member_id {
                return Err(invalid(
                    "ConsumerGroupHeartbeat v1 and later: the member brings its own member id",
                ));
            }
            uuid::Uuid::new_v4().simple().to_string()
        } else {
            args.member_id.clone()
        };
        // A static member's new incarnation takes over its place.
        let mut inherited = None;
        if let Some(instance) = &args.instance_id {
            let holder = self
                .members
                .values()
                .find(|m| m.instance_id.as_ref() == Some(instance))
                .map(|m| (m.id.clone(), m.away));
            match holder {
                Some((holder, _)) if holder == id => {}
                Some((holder, true)) => {
                    inherited = self.members.remove(&holder);
                    if let Some(target) = self.target.remove(&holder) {
                        self.target.insert(id.clone(), target);
                    }
                }
                Some((holder, false)) => {
                    return Err(BrokerError::new(
                        ErrorKind::UnreleasedInstanceId,
                        format!(
                            "instance id {instance:?} is still used by member {holder:?}; it must leave first"
                        ),
                    ));
                }
                None => {}
            }
        }
        if let Some(mut m) = inherited {
            for (t, p) in partitions(&m.assigned).chain(partitions(&m.revoking)) {
                self.owners.insert((t, p), id.clone());
            }
            m.id = id.clone();
            m.away = false;
            m.sent = None;
            self.members.insert(id.clone(), m);
            return Ok((id, false));
        }
        if let Some(old) = self.members.remove(&id) {
            // Rejoining (after being fenced): it gave up everything.
            self.release_all(&old);
        }
        if self.members.len() >= settings.max_members {
            return Err(BrokerError::new(
                ErrorKind::GroupMaxSizeReached,
                format!("the group already has {} members", settings.max_members),
            ));
        }
        self.members.insert(
            id.clone(),
            Member {
                id: id.clone(),
                instance_id: args.instance_id.clone(),
                rack_id: args.rack_id.clone(),
                client_id: args.client_id.clone(),
                client_host: args.client_host.clone(),
                rebalance_timeout: Duration::from_millis(args.rebalance_timeout_ms as u64),
                subscribed_names: Vec::new(),
                subscribed_regex: None,
                compiled_regex: None,
                server_assignor: None,
                epoch: 0,
                previous_epoch: 0,
                state: MemberState::Stable,
                assigned: Assignment::new(),
                revoking: Assignment::new(),
                session_deadline: now + settings.session_timeout,
                revoke_deadline: None,
                sent: None,
                away: false,
            },
        );
        Ok((id, true))
    }

    /// An existing member's epoch: its current one, or its previous one
    /// when the answer that moved it on was lost (it then reports owning
    /// only what it may).
    fn check_epoch(&self, args: &HeartbeatArgs) -> Result<(), BrokerError> {
        let m = self
            .members
            .get(&args.member_id)
            .ok_or_else(|| unknown_member(&args.member_id))?;
        if args.member_epoch == m.epoch {
            return Ok(());
        }
        let lost_answer = args.member_epoch == m.previous_epoch
            && args.owned.as_ref().is_some_and(|owned| {
                owned.iter().all(|(t, ps)| {
                    ps.iter()
                        .all(|p| contains(&m.assigned, t, *p) || contains(&m.revoking, t, *p))
                })
            });
        if lost_answer {
            Ok(())
        } else {
            Err(fenced_epoch(args.member_epoch, m.epoch))
        }
    }

    fn leave(
        &mut self,
        args: HeartbeatArgs,
        topics: &[TopicInfo],
    ) -> Result<HeartbeatResult, BrokerError> {
        let Some(m) = self.members.get_mut(&args.member_id) else {
            return Err(unknown_member(&args.member_id));
        };
        let epoch = args.member_epoch;
        if epoch == -2 && m.instance_id.is_some() {
            // A static member stepping away: its partitions wait for its
            // next incarnation until its session times out.
            m.away = true;
            tracing::info!(member = %args.member_id, "static member left for now");
        } else {
            self.remove(&args.member_id, "left the group", topics);
        }
        Ok(HeartbeatResult {
            member_id: args.member_id,
            member_epoch: epoch,
            heartbeat_interval_ms: 0,
            assignment: None,
        })
    }

    /// Removes a member, frees what it held and reassigns.
    pub fn remove(&mut self, id: &str, why: &str, topics: &[TopicInfo]) {
        let Some(m) = self.members.remove(id) else {
            return;
        };
        tracing::info!(
            member = id,
            reason = why,
            epoch = m.epoch,
            "consumer group member removed"
        );
        self.release_all(&m);
        self.target.remove(id);
        if !self.members.is_empty() {
            self.bump(topics);
        } else {
            self.epoch += 1;
            self.assignment_epoch = self.epoch;
        }
    }

    fn release_all(&mut self, m: &Member) {
        for (t, p) in partitions(&m.assigned).chain(partitions(&m.revoking)) {
            if self.owners.get(&(t, p)) == Some(&m.id) {
                self.owners.remove(&(t, p));
            }
        }
    }

    /// Members whose session or revocation deadline passed; the caller
    /// removes them (with [`ConsumerGroup::remove`]).
    pub fn expired(&self, now: Instant) -> Vec<(String, &'static str)> {
        self.members
            .values()
            .filter_map(|m| {
                if m.session_deadline <= now {
                    Some((m.id.clone(), "session timed out"))
                } else if m.revoke_deadline.is_some_and(|d| d <= now) {
                    Some((
                        m.id.clone(),
                        "did not release revoked partitions within its rebalance timeout",
                    ))
                } else {
                    None
                }
            })
            .collect()
    }

    /// Subscribed topics' ids and partition counts, sorted.
    fn fingerprint_of(&self, topics: &[TopicInfo]) -> Vec<(TopicUuid, u32)> {
        let mut out: Vec<(TopicUuid, u32)> = topics
            .iter()
            .filter(|t| self.members.values().any(|m| m.subscribes(t)))
            .map(|t| (t.id, t.partitions))
            .collect();
        out.sort();
        out
    }

    /// A new group epoch and its target assignment.
    fn bump(&mut self, topics: &[TopicInfo]) {
        self.epoch += 1;
        self.fingerprint = self.fingerprint_of(topics);
        let subscriptions: Vec<(String, Vec<&TopicInfo>)> = self
            .members
            .values()
            .map(|m| {
                (
                    m.id.clone(),
                    topics.iter().filter(|t| m.subscribes(t)).collect(),
                )
            })
            .collect();
        self.target = match self.assignor() {
            Assignor::Uniform => uniform(&subscriptions, &self.target),
            Assignor::Range => range(&subscriptions),
        };
        self.assignment_epoch = self.epoch;
        tracing::debug!(
            epoch = self.epoch,
            members = self.members.len(),
            assignor = self.assignor().name(),
            "consumer group target assignment computed"
        );
    }

    /// Moves a member toward its target as far as it may now.
    fn reconcile(&mut self, id: &str, owned: Option<&Assignment>, now: Instant) {
        let Some(m) = self.members.get_mut(id) else {
            return;
        };
        if m.state == MemberState::UnrevokedPartitions {
            let released = owned
                .is_some_and(|owned| partitions(&m.revoking).all(|(t, p)| !contains(owned, &t, p)));
            if !released {
                return;
            }
            for (t, p) in partitions(&m.revoking) {
                if self.owners.get(&(t, p)).map(String::as_str) == Some(id) {
                    self.owners.remove(&(t, p));
                }
            }
            m.revoking.clear();
            m.revoke_deadline = None;
            m.state = MemberState::Stable;
        } else if m.epoch == self.assignment_epoch && m.state == MemberState::Stable {
            return;
        }
        let empty = Assignment::new();
        let target = self.target.get(id).unwrap_or(&empty);
        let keep: Assignment = m
            .assigned
            .iter()
            .map(|(t, ps)| {
                let kept = ps
                    .iter()
                    .copied()
                    .filter(|p| contains(target, t, *p))
                    .collect();
                (*t, kept)
            })
            .filter(|(_, ps): &(TopicUuid, BTreeSet<i32>)| !ps.is_empty())
            .collect();
        let revoke: Assignment = m
            .assigned
            .iter()
            .map(|(t, ps)| {
                let gone = ps
                    .iter()
                    .copied()
                    .filter(|p| !contains(target, t, *p))
                    .collect();
                (*t, gone)
            })
            .filter(|(_, ps): &(TopicUuid, BTreeSet<i32>)| !ps.is_empty())
            .collect();
        if !revoke.is_empty() {
            m.assigned = keep;
            m.revoking = revoke;
            m.state = MemberState::UnrevokedPartitions;
            m.revoke_deadline = Some(now + m.rebalance_timeout);
            return;
        }
        let mut assigned = keep;
        let mut waiting = false;
        for (t, p) in partitions(target) {
            if contains(&assigned, &t, p) {
                continue;
            }
            match self.owners.get(&(t, p)) {
                Some(holder) if holder != id => waiting = true,
                _ => {
                    self.owners.insert((t, p), id.to_string());
                    insert(&mut assigned, t, p);
                }
            }
        }
        m.assigned = assigned;
        if m.epoch != self.assignment_epoch {
            m.previous_epoch = m.epoch;
            m.epoch = self.assignment_epoch;
        }
        m.state = if waiting {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        };
    }
}

/// Balanced and sticky. With identical subscriptions every member gets
/// `partitions / members` or one more, and a partition moves only when
/// balance needs it to; with different subscriptions each partition goes
/// to the least loaded member subscribed to it, and members are then
/// evened out within what they subscribe to.
fn uniform(
    subscriptions: &[(String, Vec<&TopicInfo>)],
    previous: &HashMap<String, Assignment>,
) -> HashMap<String, Assignment> {
    let mut out: HashMap<String, Assignment> = subscriptions
        .iter()
        .map(|(id, _)| (id.clone(), Assignment::new()))
        .collect();
    if subscriptions.is_empty() {
        return out;
    }
    // Looked up per partition below: hashed once here.
    let by_member: HashMap<&str, BTreeSet<TopicUuid>> = subscriptions
        .iter()
        .map(|(id, ts)| (id.as_str(), ts.iter().map(|t| t.id).collect()))
        .collect();
    let sizes: HashMap<TopicUuid, u32> = subscriptions
        .iter()
        .flat_map(|(_, ts)| ts.iter().map(|t| (t.id, t.partitions)))
        .collect();
    let subscribed = |id: &str, t: &TopicUuid| by_member.get(id).is_some_and(|ts| ts.contains(t));
    let exists = |t: &TopicUuid, p: i32| sizes.get(t).is_some_and(|&n| p >= 0 && (p as u32) < n);
    let mut all: Vec<(TopicUuid, i32)> = Vec::new();
    let mut seen: BTreeSet<TopicUuid> = BTreeSet::new();
    for (_, ts) in subscriptions {
        for t in ts {
            if seen.insert(t.id) {
                all.extend((0..t.partitions as i32).map(|p| (t.id, p)));
            }
        }
    }
    all.sort();
    let homogeneous = subscriptions.windows(2).all(|w| {
        let a: BTreeSet<_> = w[0].1.iter().map(|t| t.id).collect();
        let b: BTreeSet<_> = w[1].1.iter().map(|t| t.id).collect();
        a == b
    });
    let mut taken: BTreeSet<(TopicUuid, i32)> = BTreeSet::new();
    if homogeneous {
        let n = subscriptions.len();
        let (base, extra) = (all.len() / n, all.len() % n);
        // The members that keep the most get the larger quotas.
        let mut order: Vec<(usize, &String)> = subscriptions
            .iter()
            .map(|(id, _)| {
                let kept = previous
                    .get(id)
                    .map(|a| partitions(a).filter(|(t, p)| exists(t, *p)).count())
                    .unwrap_or(0);
                (kept, id)
            })
            .collect();
        order.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
        let quota: HashMap<&String, usize> = order
            .iter()
            .enumerate()
            .map(|(i, (_, id))| (*id, base + usize::from(i < extra)))
            .collect();
        for (_, id) in &order {
            let mine = out.get_mut(*id).expect("every member");
            if let Some(prev) = previous.get(*id) {
                for (t, p) in partitions(prev) {
                    if count(mine) >= quota[id] {
                        break;
                    }
                    if exists(&t, p) && taken.insert((t, p)) {
                        insert(mine, t, p);
                    }
                }
            }
        }
        let mut free = all.iter().filter(|tp| !taken.contains(tp));
        for (_, id) in &order {
            let mine = out.get_mut(*id).expect("every member");
            while count(mine) < quota[id] {
                let Some(&(t, p)) = free.next() else { break };
                insert(mine, t, p);
            }
        }
        return out;
    }
    // Different subscriptions: keep what is still subscribed, give the rest
    // to the least loaded subscriber, then even out.
    for (id, _) in subscriptions {
        if let Some(prev) = previous.get(id) {
            for (t, p) in partitions(prev) {
                if subscribed(id, &t) && exists(&t, p) && taken.insert((t, p)) {
                    insert(out.get_mut(id).expect("every member"), t, p);
                }
            }
        }
    }
    for &(t, p) in &all {
        if taken.contains(&(t, p)) {
            continue;
        }
        let best = subscriptions
            .iter()
            .filter(|(id, _)| subscribed(id, &t))
            .min_by_key(|(id, _)| (count(&out[id]), id.clone()))
            .map(|(id, _)| id.clone());
        if let Some(id) = best {
            insert(out.get_mut(&id).expect("every member"), t, p);
        }
    }
    // Move one partition at a time from a member to a subscriber with at
    // least two fewer, until none can move (bounded by the partitions).
    for _ in 0..all.len() {
        let mut moved = false;
        let mut heavy: Vec<String> = out.keys().cloned().collect();
        heavy.sort_by_key(|id| std::cmp::Reverse(count(&out[id])));
        'outer: for from in &heavy {
            let load = count(&out[from]);
            let candidates: Vec<(TopicUuid, i32)> = partitions(&out[from]).collect();
            for (t, p) in candidates.into_iter().rev() {
                let to = subscriptions
                    .iter()
                    .filter(|(id, _)| id != from && subscribed(id, &t))
                    .map(|(id, _)| id)
                    .min_by_key(|id| (count(&out[*id]), (*id).clone()));
                if let Some(to) = to
                    && count(&out[to]) + 1 < load
                {
                    let to = to.clone();
                    remove(out.get_mut(from).expect("member"), &t, p);
                    insert(out.get_mut(&to).expect("member"), t, p);
                    moved = true;
                    break 'outer;
                }
            }
        }
        if !moved {
            break;
        }
    }
    out
}

/// Each topic's partitions split into contiguous ranges over its
/// subscribers in member-id order; the first `partitions % members` get one
/// more.
fn range(subscriptions: &[(String, Vec<&TopicInfo>)]) -> HashMap<String, Assignment> {
    let mut out: HashMap<String, Assignment> = subscriptions
        .iter()
        .map(|(id, _)| (id.clone(), Assignment::new()))
        .collect();
    let mut topics: BTreeMap<TopicUuid, (u32, Vec<&String>)> = BTreeMap::new();
    for (id, ts) in subscriptions {
        for t in ts {
            topics
                .entry(t.id)
                .or_insert((t.partitions, Vec::new()))
                .1
                .push(id);
        }
    }
    for (t, (n, mut members)) in topics {
        members.sort();
        let m = members.len() as u32;
        let (base, extra) = (n / m, n % m);
        let mut next = 0u32;
        for (i, id) in members.into_iter().enumerate() {
            let take = base + u32::from((i as u32) < extra);
            let mine = out.get_mut(id).expect("every member");
            for p in next..next + take {
                insert(mine, t, p as i32);
            }
            next += take;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, id: u8, partitions: u32) -> TopicInfo {
        TopicInfo {
            name: name.into(),
            id: [id; 16],
            partitions,
        }
    }

    fn settings() -> Settings {
        Settings {
            heartbeat_interval: Duration::from_millis(50),
            session_timeout: Duration::from_secs(10),
            max_members: 100,
        }
    }

    fn join(id: &str, topics: &[&str]) -> HeartbeatArgs {
        HeartbeatArgs {
            member_id: id.into(),
            member_epoch: 0,
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: Some(topics.iter().map(|s| s.to_string()).collect()),
            owned: Some(Vec::new()),
            ..HeartbeatArgs::default()
        }
    }

    fn beat(id: &str, epoch: i32, owned: Option<&Vec<(TopicUuid, Vec<i32>)>>) -> HeartbeatArgs {
        HeartbeatArgs {
            member_id: id.into(),
            member_epoch: epoch,
            rebalance_timeout_ms: -1,
            owned: owned.cloned(),
            ..HeartbeatArgs::default()
        }
    }

    fn n(a: &Option<Vec<(TopicUuid, Vec<i32>)>>) -> usize {
        a.as_ref()
            .map(|a| a.iter().map(|(_, ps)| ps.len()).sum())
            .unwrap_or(0)
    }

    /// No partition is held (assigned or being revoked) by two members.
    fn exclusive(g: &ConsumerGroup) {
        let mut seen = BTreeSet::new();
        for m in g.members.values() {
            for tp in partitions(&m.assigned).chain(partitions(&m.revoking)) {
                assert!(seen.insert(tp), "{tp:?} held twice");
            }
        }
    }

    #[test]
    fn two_members_split_then_a_third_takes_only_what_moves() {
        let topics = vec![topic("t", 1, 8)];
        let now = Instant::now();
        let mut g = ConsumerGroup::new();
        let a = g
            .heartbeat(join("a", &["t"]), &topics, &settings(), now)
            .unwrap();
        assert_eq!((a.member_epoch, n(&a.assignment)), (1, 8));
        let b = g
            .heartbeat(join("b", &["t"]), &topics, &settings(), now)
            .unwrap();
        // b joined at epoch 2 but a still holds everything: b waits.
        assert_eq!((b.member_epoch, n(&b.assignment)), (2, 0));
        assert_eq!(n(&a.assignment), 8);
        let a2 = g
            .heartbeat(beat("a", 1, None), &topics, &settings(), now)
            .unwrap();
        // a must give up 4 before it moves to epoch 2.
        assert_eq!((a2.member_epoch, n(&a2.assignment)), (1, 4));
        exclusive(&g);
        let a3 = g
            .heartbeat(
                beat("a", 1, a2.assignment.as_ref()),
                &topics,
                &settings(),
                now,
            )
            .unwrap();
        assert_eq!(a3.member_epoch, 2);
        let b2 = g
            .heartbeat(beat("b", 2, None), &topics, &settings(), now)
            .unwrap();
        assert_eq!(n(&b2.assignment), 4);
        exclusive(&g);
        assert_eq!(g.state(), crate::group::GroupState::Stable);
        // A third member: a and b each give up what moves, and keep the rest.
        let kept_a: BTreeSet<i32> = a2.assignment.clone().unwrap()[0]
            .1
            .iter()
            .copied()
            .collect();
        let c = g
            .heartbeat(join("c", &["t"]), &topics, &settings(), now)
            .unwrap();
        assert_eq!(c.member_epoch, 3);
        let a4 = g
            .heartbeat(beat("a", 2, None), &topics, &settings(), now)
            .unwrap();
        let still: BTreeSet<i32> = a4.assignment.clone().unwrap()[0]
            .1
            .iter()
            .copied()
            .collect();
        assert!(still.is_subset(&kept_a), "a keeps a subset of what it had");
        assert!(still.len() >= 2);
        g.heartbeat(
            beat("a", 2, a4.assignment.as_ref()),
            &topics,
            &settings(),
            now,
        )
        .unwrap();
        let b3 = g
            .heartbeat(beat("b", 2, None), &topics, &settings(), now)
            .unwrap();
        g.heartbeat(
            beat("b", 2, b3.assignment.as_ref()),
            &topics,
            &settings(),
            now,
        )
        .unwrap();
        let c2 = g
            .heartbeat(beat("c", 3, None), &topics, &settings(), now)
            .unwrap();
        assert_eq!(n(&c2.assignment), 2);
        exclusive(&g);
        let counts: Vec<usize> = g.members.values().map(|m| count(&m.assigned)).collect();
        assert_eq!(counts.iter().sum::<usize>(), 8);
        assert!(counts.iter().all(|c| (2..=3).contains(c)), "{counts:?}");
        assert_eq!(g.state(), crate::group::GroupState::Stable);
    }

    #[test]
    fn a_member_that_times_out_is_removed_and_its_partitions_move() {
        let topics = vec![topic("t", 1, 4)];
        let now = Instant::now();
        let mut g = ConsumerGroup::new();
        g.heartbeat(join("a", &["t"]), &topics, &settings(), now)
            .unwrap();
        let later = now + Duration::from_secs(5);
        g.heartbeat(join("b", &["t"]), &topics, &settings(), later)
            .unwrap();
        let gone = g.expired(now + Duration::from_secs(11));
        assert_eq!(gone, vec![("a".to_string(), "session timed out")]);
        g.remove("a", "session timed out", &topics);
        let epoch = g.members["b"].epoch;
        let b = g
            .heartbeat(beat("b", epoch, None), &topics, &settings(), later)
            .unwrap();
        assert_eq!(n(&b.assignment), 4);
    }

    #[test]
    fn epochs_are_fenced_and_a_lost_answer_is_forgiven() {
        let topics = vec![topic("t", 1, 2)];
        let now = Instant::now();
        let mut g = ConsumerGroup::new();
        g.heartbeat(join("a", &["t"]), &topics, &settings(), now)
            .unwrap();
        let e = g
            .heartbeat(beat("a", 7, None), &topics, &settings(), now)
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::FencedMemberEpoch);
        let e = g
            .heartbeat(beat("x", 1, None), &topics, &settings(), now)
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::UnknownMemberId);
        // b joins (epoch 2); a gives up one partition and moves 1 -> 2,
        // but the answer saying so is lost: a asks again at epoch 1,
        // owning only what it may, and is answered rather than fenced.
        g.heartbeat(join("b", &["t"]), &topics, &settings(), now)
            .unwrap();
        let a = g
            .heartbeat(beat("a", 1, None), &topics, &settings(), now)
            .unwrap();
        let owned = a.assignment.unwrap();
        g.heartbeat(beat("a", 1, Some(&owned)), &topics, &settings(), now)
            .unwrap();
        assert_eq!(g.members["a"].epoch, 2);
        let again = g
            .heartbeat(beat("a", 1, Some(&owned)), &topics, &settings(), now)
            .unwrap();
        assert_eq!(again.member_epoch, 2);
        assert_eq!(
            g.check_member_epoch("a", 1).unwrap_err().kind,
            ErrorKind::StaleMemberEpoch
        );
        assert!(g.check_member_epoch("a", 2).is_ok());
    }

    #[test]
    fn regex_subscriptions_follow_new_topics_and_bad_ones_are_refused() {
        let mut topics = vec![topic("orders-eu", 1, 2), topic("payments", 2, 2)];
        let now = Instant::now();
        let mut g = ConsumerGroup::new();
        let mut args = join("a", &[]);
        args.subscribed_topic_names = None;
        args.subscribed_topic_regex = Some("orders-.*".into());
        let a = g.heartbeat(args, &topics, &settings(), now).unwrap();
        assert_eq!(n(&a.assignment), 2);
        topics.push(topic("orders-us", 3, 3));
        let a = g
            .heartbeat(beat("a", a.member_epoch, None), &topics, &settings(), now)
            .unwrap();
        assert_eq!(n(&a.assignment), 5, "a new matching topic is assigned");
        let mut bad = join("b", &[]);
        bad.subscribed_topic_regex = Some("(".into());
        assert_eq!(
            g.heartbeat(bad, &topics, &settings(), now)
                .unwrap_err()
                .kind,
            ErrorKind::InvalidRegularExpression
        );
    }

    #[test]
    fn the_range_assignor_gives_contiguous_ranges_in_member_order() {
        let t = topic("t", 1, 7);
        let subs = vec![
            ("b".to_string(), vec![&t]),
            ("a".to_string(), vec![&t]),
            ("c".to_string(), vec![&t]),
        ];
        let out = range(&subs);
        let got = |id: &str| out[id][&[1; 16]].iter().copied().collect::<Vec<_>>();
        assert_eq!(got("a"), vec![0, 1, 2]);
        assert_eq!(got("b"), vec![3, 4]);
        assert_eq!(got("c"), vec![5, 6]);
    }

    #[test]
    fn uniform_balances_different_subscriptions() {
        let (x, y) = (topic("x", 1, 6), topic("y", 2, 2));
        let subs = vec![
            ("a".to_string(), vec![&x, &y]),
            ("b".to_string(), vec![&x]),
            ("c".to_string(), vec![&y]),
        ];
        let out = uniform(&subs, &HashMap::new());
        let counts: Vec<usize> = ["a", "b", "c"].iter().map(|m| count(&out[*m])).collect();
        assert_eq!(counts.iter().sum::<usize>(), 8);
        assert!(
            counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 2,
            "{counts:?}"
        );
        assert!(out["c"].keys().all(|t| *t == [2; 16]));
    }
}
