//! The controller of one broker: a Raft node on shard 0, its durable
//! store, its peers, and the applier that turns committed entries into
//! metadata every shard uses.
//!
//! One task drives Raft (ticks, received messages, the `Ready` cycle with
//! its durable writes run off the executor); another applies committed
//! entries in order (applying opens and closes partition logs, which may
//! take a while, and must not hold up heartbeats). Proposals come from the
//! controller's metadata handlers on the same shard.

use super::Host;
use super::Voter;
use super::store::{Store, Write};
use super::transport::{self, Peer, Report};
use crate::config::BrokerConfig;
use crate::constants::{
    CONTROLLER_COMMIT_TIMEOUT_MS, RAFT_ELECTION_TICKS, RAFT_HEARTBEAT_TICKS, RAFT_INBOX_MAX,
    RAFT_TICK_MS,
};
use crate::error::{BrokerError, ErrorKind};
use crate::meta::Snapshot;
use crate::metrics::Board;
use crate::support::Signal;
use event_listener::Event;
use futures::future::Either;
use raft::eraftpb::{Entry, EntryType, Message};
use raft::{RawNode, StateRole};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A proposal's header: magic, origin node, sequence, base version.
const PROPOSAL_MAGIC: &[u8; 4] = b"CLM1";
const PROPOSAL_HEADER: usize = 4 + 8 + 8 + 8;

/// A proposal not applied this long is made again.
const REPROPOSE_AFTER: Duration = Duration::from_millis(1000);

/// How a committed proposal turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Applied,
    /// Computed from metadata that another change had replaced.
    Stale,
    /// Raft dropped the proposal: no leader is known.
    NoLeader,
}

enum Apply {
    Entries(Vec<Entry>),
    Snapshot(raft::eraftpb::Snapshot),
}

/// What `/v1/cluster` and `corelog cluster status` show of the quorum.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ControllerStatus {
    pub node_id: u64,
    /// 0: no leader known.
    pub leader_id: u64,
    pub role: &'static str,
    pub term: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    pub snapshot_index: u64,
    pub metadata_version: u64,
    pub voters: Vec<VoterStatus>,
    /// The registered brokers, from the applied metadata.
    pub brokers: Vec<crate::meta::BrokerMeta>,
    /// Replicated partitions with fewer in-sync replicas than replicas,
    /// from the applied metadata (offline ones, whose leader is fenced,
    /// included).
    pub under_replicated: Vec<UnderReplicated>,
}

/// A partition missing some of its in-sync replicas.
#[derive(Clone, Debug, serde::Serialize)]
pub struct UnderReplicated {
    pub topic: String,
    pub partition: u32,
    pub leader: u32,
    pub replicas: Vec<u32>,
    pub isr: Vec<u32>,
    /// Its leader is fenced: no broker serves it until one returns.
    pub offline: bool,
}

/// The under-replicated partitions of `s`.
fn under_replicated(s: &Snapshot) -> Vec<UnderReplicated> {
    let mut out = Vec::new();
    for t in s.topics.values() {
        for (p, r) in t.replicas.iter().enumerate() {
            let leader = t.nodes.get(p).copied().unwrap_or(0);
            let offline = s.is_fenced(leader);
            if r.isr.len() < r.replicas.len() || offline {
                out.push(UnderReplicated {
                    topic: t.name.to_string(),
                    partition: p as u32,
                    leader,
                    replicas: r.replicas.clone(),
                    isr: r.isr.clone(),
                    offline,
                });
            }
        }
    }
    out
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct VoterStatus {
    pub id: u64,
    pub addr: String,
    /// Entries the voter is behind the leader's log (known on the leader).
    pub lag: Option<u64>,
}

/// The controller of this broker (shard 0 only).
pub struct Controller {
    pub id: u64,
    data_dir: PathBuf,
    voters: Vec<Voter>,
    node: RefCell<RawNode<Store>>,
    peers: HashMap<u64, Rc<Peer>>,
    inbox: RefCell<VecDeque<Message>>,
    reports: RefCell<Vec<Report>>,
    /// Wakes the Raft task: a message, a proposal, a report, a compaction.
    wake: Event,
    applies: RefCell<VecDeque<Apply>>,
    apply_ready: Event,
    waiters: RefCell<HashMap<u64, futures::channel::oneshot::Sender<Outcome>>>,
    /// Proposals of this broker not yet applied: (entry, last proposed).
    /// A follower's proposal travels to the leader once; if that leader
    /// died or the message was lost, it would never commit. So a pending
    /// proposal is made again when the leader changes and every
    /// [`REPROPOSE_AFTER`]: should two copies commit, the first applies and
    /// the second finds its base version gone and is skipped.
    pending: RefCell<HashMap<u64, (Vec<u8>, Instant)>>,
    /// Proposals for the Raft task to make: raft-rs takes no proposal
    /// between a `Ready` and its `advance`, so only that task proposes.
    to_propose: RefCell<VecDeque<(u64, Vec<u8>)>>,
    /// The leader last seen (to notice a change).
    leader: Cell<u64>,
    /// When this broker last became the leader.
    leader_since: Cell<Option<Instant>>,
    /// When a message from each peer last arrived.
    heard: RefCell<HashMap<u64, Instant>>,
    next_seq: Cell<u64>,
    /// (index, term, metadata) the applier asks the Raft task to keep as
    /// the snapshot.
    compaction: RefCell<Option<(u64, u64, Vec<u8>)>>,
    applied: Cell<u64>,
    snapshot_entries: u64,
    /// Raised when the Raft task stopped on a storage failure.
    failed: Cell<bool>,
    shutdown: Arc<Signal>,
    board: Arc<crate::metrics::Board>,
}

/// A slog drain that hands raft-rs's logs to `tracing`: errors and
/// warnings at their level, the rest (a dozen lines per election) at
/// debug.
struct TracingDrain;

impl slog::Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &slog::Record, values: &slog::OwnedKVList) -> Result<(), slog::Never> {
        struct Kv(String);
        impl slog::Serializer for Kv {
            fn emit_arguments(
                &mut self,
                key: slog::Key,
                val: &std::fmt::Arguments,
            ) -> slog::Result {
                use std::fmt::Write;
                let _ = write!(self.0, " {key}={val}");
                Ok(())
            }
        }
        let mut kv = Kv(String::new());
        let _ = slog::KV::serialize(&record.kv(), record, &mut kv);
        let _ = slog::KV::serialize(values, record, &mut kv);
        let msg = record.msg();
        match record.level() {
            slog::Level::Critical | slog::Level::Error => {
                tracing::error!(target: "corelog::raft", "{msg}{}", kv.0)
            }
            slog::Level::Warning => tracing::warn!(target: "corelog::raft", "{msg}{}", kv.0),
            // Elections and role changes are logged by the controller, once.
            _ => tracing::debug!(target: "corelog::raft", "{msg}{}", kv.0),
        }
        Ok(())
    }
}

impl Controller {
    /// The controller of a broker with `config` over its Raft state;
    /// [`Controller::run`] starts it once the shard it runs on has it (its
    /// tasks commit metadata changes through that shard).
    pub(crate) fn new(
        config: &BrokerConfig,
        store: Store,
        shutdown: Arc<Signal>,
        board: Arc<Board>,
    ) -> Result<Rc<Controller>, String> {
        let id = config.node_id as u64;
        let applied = store.snapshot_index();
        let raft_config = raft::Config {
            id,
            election_tick: RAFT_ELECTION_TICKS,
            heartbeat_tick: RAFT_HEARTBEAT_TICKS,
            applied,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            // A leader cut off from a majority steps down (so the isolated
            // side stops taking proposals), and a rejoining node does not
            // disrupt the quorum with a higher term.
            check_quorum: true,
            pre_vote: true,
            ..raft::Config::default()
        };
        raft_config.validate().map_err(|e| e.to_string())?;
        let logger = slog::Logger::root(slog::Fuse(TracingDrain), slog::o!("node" => id));
        let node = RawNode::new(&raft_config, store, &logger).map_err(|e| e.to_string())?;
        let peers = config
            .controllers
            .iter()
            .filter(|v| v.id != id)
            .map(|v| (v.id, Peer::new(v.id, v.addr.clone())))
            .collect();
        let controller = Rc::new(Controller {
            id,
            data_dir: config.data_dir.clone(),
            voters: config.controllers.clone(),
            node: RefCell::new(node),
            peers,
            inbox: RefCell::new(VecDeque::new()),
            reports: RefCell::new(Vec::new()),
            wake: Event::new(),
            applies: RefCell::new(VecDeque::new()),
            apply_ready: Event::new(),
            waiters: RefCell::new(HashMap::new()),
            pending: RefCell::new(HashMap::new()),
            to_propose: RefCell::new(VecDeque::new()),
            leader: Cell::new(0),
            leader_since: Cell::new(None),
            heard: RefCell::new(HashMap::new()),
            next_seq: Cell::new(1),
            compaction: RefCell::new(None),
            applied: Cell::new(applied),
            snapshot_entries: config.raft_snapshot_entries.max(1),
            failed: Cell::new(false),
            shutdown,
            board,
        });
        Ok(controller)
    }

    /// Starts the controller's tasks on `shard`: the Raft driver, the
    /// applier, registration and fencing, the listener and a sender per
    /// peer.
    pub(crate) fn run<H: Host>(
        self: &Rc<Self>,
        shard: &Rc<H>,
        listener: glommio::net::TcpListener,
    ) {
        let (controller, id) = (self.clone(), self.id);
        let report: Rc<dyn Fn(Report)> = {
            let c = Rc::downgrade(&controller);
            Rc::new(move |r| {
                if let Some(c) = c.upgrade() {
                    c.reports.borrow_mut().push(r);
                    c.wake.notify(1);
                }
            })
        };
        for peer in controller.peers.values() {
            glommio::spawn_local(transport::send_loop(
                id,
                peer.clone(),
                report.clone(),
                self.shutdown.clone(),
            ))
            .detach();
        }
        let deliver: Rc<dyn Fn(Message)> = {
            let c = Rc::downgrade(&controller);
            Rc::new(move |m| {
                if let Some(c) = c.upgrade() {
                    c.heard.borrow_mut().insert(m.from, Instant::now());
                    let mut inbox = c.inbox.borrow_mut();
                    if inbox.len() < RAFT_INBOX_MAX {
                        inbox.push_back(m);
                    }
                    drop(inbox);
                    c.wake.notify(1);
                }
            })
        };
        glommio::spawn_local(transport::accept_loop(
            listener,
            deliver,
            self.shutdown.clone(),
        ))
        .detach();
        glommio::spawn_local(controller.clone().raft_loop()).detach();
        glommio::spawn_local(controller.clone().apply_loop(shard.clone())).detach();
        glommio::spawn_local(controller.clone().membership_loop(shard.clone())).detach();
        controller.publish_status(Some(&shard.snapshot()));
    }

    /// Proposes `next` (computed from the metadata version before it) and waits
    /// until every step of applying it has run on this broker. A change
    /// computed from stale metadata, or proposed while there is no leader,
    /// is `NOT_CONTROLLER` (the controller's handler computes it again);
    /// one not committed in time is `REQUEST_TIMED_OUT`.
    pub async fn commit(&self, next: &Snapshot) -> Result<(), BrokerError> {
        // Every change moves the version by one (see `Snapshot::with_*`).
        let base = next.version.saturating_sub(1);
        if self.failed.get() {
            return Err(BrokerError::new(
                ErrorKind::UnknownServerError,
                "this broker's controller stopped after a storage failure (see its log); metadata changes are taken by the other brokers",
            ));
        }
        let seq = self.next_seq.get();
        self.next_seq.set(seq + 1);
        let mut data = Vec::with_capacity(PROPOSAL_HEADER + 1024);
        data.extend_from_slice(PROPOSAL_MAGIC);
        data.extend_from_slice(&self.id.to_le_bytes());
        data.extend_from_slice(&seq.to_le_bytes());
        data.extend_from_slice(&base.to_le_bytes());
        data.extend_from_slice(&next.encode());
        let (tx, rx) = futures::channel::oneshot::channel();
        self.waiters.borrow_mut().insert(seq, tx);
        self.to_propose.borrow_mut().push_back((seq, data));
        self.wake.notify(1);
        let waited =
            glommio::timer::timeout(Duration::from_millis(CONTROLLER_COMMIT_TIMEOUT_MS), async {
                rx.await.map_err(|_| {
                    glommio::GlommioError::<()>::Closed(glommio::ResourceType::Channel(()))
                })
            })
            .await;
        self.waiters.borrow_mut().remove(&seq);
        self.pending.borrow_mut().remove(&seq);
        match waited {
            Ok(Outcome::Applied) => Ok(()),
            Ok(Outcome::Stale) => Err(BrokerError::new(
                ErrorKind::NotController,
                "the metadata changed on another broker while this change was proposed",
            )),
            Ok(Outcome::NoLeader) => Err(BrokerError::new(
                ErrorKind::NotController,
                "no controller leader is known (an election is under way, or this broker cannot reach a majority of the controllers)",
            )),
            Err(_) => Err(BrokerError::new(
                ErrorKind::RequestTimedOut,
                format!(
                    "the metadata change was not committed within {CONTROLLER_COMMIT_TIMEOUT_MS} ms (is a majority of the controllers up and reachable?); it may still take effect"
                ),
            )),
        }
    }

    /// Whether this broker is the Raft leader.
    pub fn is_leader(&self) -> bool {
        self.node.borrow().raft.state == StateRole::Leader
    }

    /// On the leader, before it stops: waits (at most `within`) until
    /// every voter holds the whole log, then one heartbeat interval, so
    /// they also learn that the last changes are committed and apply them
    /// without waiting for a new leader. At once on a follower.
    pub async fn let_followers_catch_up(&self, within: Duration) {
        if !self.is_leader() {
            return;
        }
        let deadline = Instant::now() + within;
        loop {
            let done = {
                let node = self.node.borrow();
                let last = node.raft.raft_log.last_index();
                self.voters
                    .iter()
                    .all(|v| node.raft.prs().get(v.id).is_none_or(|p| p.matched >= last))
            };
            if done || Instant::now() >= deadline {
                break;
            }
            glommio::timer::sleep(Duration::from_millis(10)).await;
        }
        let heartbeat = RAFT_TICK_MS * crate::constants::RAFT_HEARTBEAT_TICKS as u64;
        glommio::timer::sleep(Duration::from_millis(heartbeat + RAFT_TICK_MS)).await;
    }

    async fn raft_loop(self: Rc<Self>) {
        let tick = Duration::from_millis(RAFT_TICK_MS);
        let mut next_tick = Instant::now() + tick;
        let mut last_status = Instant::now();
        loop {
            let listener = self.wake.listen();
            if !self.has_work() {
                let wait = next_tick.saturating_duration_since(Instant::now());
                let sleep = glommio::timer::sleep(wait);
                let stop = self.shutdown.wait();
                futures::pin_mut!(sleep, stop, listener);
                let woken = futures::future::select(sleep, listener);
                if let Either::Right(_) = futures::future::select(woken, stop).await {
                    return;
                }
            } else {
                drop(listener);
            }
            if self.shutdown.is_raised() {
                return;
            }
            let tick_due = Instant::now() >= next_tick;
            if tick_due {
                next_tick = Instant::now() + tick;
            }
            self.step(tick_due);
            if self.compact_if_asked().await.is_err() || self.handle_ready().await.is_err() {
                return;
            }
            if last_status.elapsed() >= Duration::from_millis(500) {
                last_status = Instant::now();
                self.refresh_status();
                self.propose_again(false);
            }
        }
    }

    /// Hands Raft what arrived since the last cycle — received messages,
    /// peer reports, a tick if due, this broker's new proposals — outside
    /// any `Ready` (raft-rs refuses input between a `Ready` and its
    /// `advance`).
    fn step(&self, tick_due: bool) {
        let mut node = self.node.borrow_mut();
        let messages: Vec<Message> = self.inbox.borrow_mut().drain(..).collect();
        for m in messages {
            // A message for another term or a stale one is Raft's to
            // ignore; errors here are not fatal.
            if let Err(e) = node.step(m) {
                tracing::debug!(error = %e, "a Raft message was not taken");
            }
        }
        let reports: Vec<Report> = self.reports.borrow_mut().drain(..).collect();
        for r in reports {
            match r {
                Report::Unreachable(id) => node.report_unreachable(id),
                Report::Snapshot(id, true) => {
                    node.report_snapshot(id, raft::SnapshotStatus::Finish)
                }
                Report::Snapshot(id, false) => {
                    node.report_snapshot(id, raft::SnapshotStatus::Failure)
                }
            }
        }
        if tick_due {
            node.tick();
        }
        let proposals: Vec<(u64, Vec<u8>)> = self.to_propose.borrow_mut().drain(..).collect();
        for (seq, data) in proposals {
            match node.propose(Vec::new(), data.clone()) {
                Ok(()) => {
                    self.pending
                        .borrow_mut()
                        .insert(seq, (data, Instant::now()));
                }
                Err(e) => {
                    if !matches!(e, raft::Error::ProposalDropped) {
                        tracing::warn!(error = %e, "proposing a metadata change failed");
                    }
                    if let Some(waiter) = self.waiters.borrow_mut().remove(&seq) {
                        let _ = waiter.send(Outcome::NoLeader);
                    }
                }
            }
        }
    }

    /// Takes the snapshot the applier asked for, if it did.
    async fn compact_if_asked(&self) -> Result<(), ()> {
        let Some((index, term, data)) = self.compaction.borrow_mut().take() else {
            return Ok(());
        };
        let write = self
            .node
            .borrow_mut()
            .mut_store()
            .compact(&self.data_dir, index, term, data);
        self.persist(write).await?;
        tracing::info!(
            index,
            "took a metadata snapshot; the Raft log before it is dropped"
        );
        Ok(())
    }

    fn has_work(&self) -> bool {
        !self.inbox.borrow().is_empty()
            || !self.reports.borrow().is_empty()
            || !self.to_propose.borrow().is_empty()
            || self.compaction.borrow().is_some()
            || self.node.borrow().has_ready()
    }

    /// Runs one `Ready` cycle: messages out, snapshot and entries stored,
    /// committed entries handed to the applier.
    async fn handle_ready(&self) -> Result<(), ()> {
        let mut ready = {
            let mut node = self.node.borrow_mut();
            if !node.has_ready() {
                return Ok(());
            }
            node.ready()
        };
        let role_changed = ready.ss().is_some();
        self.send(ready.take_messages());
        let write = self.store_ready(&mut ready);
        self.persist(write).await?;
        self.send(ready.take_persisted_messages());
        let mut light = self.node.borrow_mut().advance(ready);
        if let Some(commit) = light.commit_index() {
            let write = self
                .node
                .borrow_mut()
                .mut_store()
                .set_commit(&self.data_dir, commit);
            self.persist(write).await?;
        }
        self.send(light.take_messages());
        let committed = light.take_committed_entries();
        if !committed.is_empty() {
            self.push_apply(Apply::Entries(committed));
        }
        self.node.borrow_mut().advance_apply();
        if role_changed {
            self.on_role_change();
        }
        Ok(())
    }

    /// Takes a `Ready`'s snapshot, entries and hard state into the store
    /// (returning the writes that make them durable) and hands its snapshot
    /// and committed entries to the applier.
    fn store_ready(&self, ready: &mut raft::Ready) -> Write {
        let mut node = self.node.borrow_mut();
        let store = node.mut_store();
        let mut write = Write::default();
        if !ready.snapshot().is_empty() {
            let snapshot = ready.snapshot().clone();
            tracing::info!(
                index = snapshot.get_metadata().index,
                term = snapshot.get_metadata().term,
                "installing the leader's metadata snapshot"
            );
            write.merge(store.install(&self.data_dir, snapshot.clone()));
            self.push_apply(Apply::Snapshot(snapshot));
        }
        let committed = ready.take_committed_entries();
        if !committed.is_empty() {
            self.push_apply(Apply::Entries(committed));
        }
        if !ready.entries().is_empty() {
            write.merge(store.append(&self.data_dir, &ready.take_entries()));
        }
        if let Some(hs) = ready.hs() {
            write.merge(store.set_hard_state(&self.data_dir, hs.clone()));
        }
        write
    }

    /// Logs a change of leader or role, notes when this broker began to
    /// lead, and proposes pending changes again to a new leader.
    fn on_role_change(&self) {
        let (leader, term, role) = {
            let node = self.node.borrow();
            (node.raft.leader_id, node.raft.term, node.raft.state)
        };
        tracing::info!(leader, term, role = ?role, "controller quorum changed");
        self.refresh_status();
        let leads = role == StateRole::Leader;
        if leads != self.leader_since.get().is_some() {
            self.leader_since.set(leads.then(Instant::now));
        }
        if leader != 0 && leader != self.leader.get() {
            self.propose_again(true);
        }
        self.leader.set(leader);
    }

    /// Proposes again this broker's pending changes: all of them (the
    /// leader changed) or those waiting longer than [`REPROPOSE_AFTER`].
    fn propose_again(&self, all: bool) {
        let mut pending = self.pending.borrow_mut();
        if pending.is_empty() {
            return;
        }
        let mut node = self.node.borrow_mut();
        if node.raft.leader_id == 0 {
            return;
        }
        let mut again = 0;
        for (data, at) in pending.values_mut() {
            if all || at.elapsed() >= REPROPOSE_AFTER {
                if node.propose(Vec::new(), data.clone()).is_ok() {
                    again += 1;
                }
                *at = Instant::now();
            }
        }
        drop(node);
        if again > 0 {
            tracing::debug!(again, "proposed pending metadata changes again");
            self.wake.notify(1);
        }
    }

    /// Runs `write` off the executor. A failure stops this controller: its
    /// Raft state on disk is no longer known to match what it promised.
    async fn persist(&self, write: Write) -> Result<(), ()> {
        if write.is_empty() {
            return Ok(());
        }
        let result = glommio::executor()
            .spawn_blocking(move || write.run())
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, dir = %self.data_dir.join(super::store::RAFT_DIR_NAME).display(), "writing the Raft state failed; this broker's controller stops (the others keep the quorum); restart the broker once the disk is fixed");
            self.failed.set(true);
            return Err(());
        }
        Ok(())
    }

    fn send(&self, messages: Vec<Message>) {
        for m in messages {
            match self.peers.get(&m.to) {
                Some(peer) => {
                    if !peer.push(m) {
                        tracing::debug!(
                            peer = peer.id,
                            "controller send queue full; message dropped"
                        );
                    }
                }
                None => tracing::debug!(to = m.to, "a Raft message for an unknown node"),
            }
        }
    }

    fn push_apply(&self, item: Apply) {
        self.applies.borrow_mut().push_back(item);
        self.apply_ready.notify(1);
    }

    async fn apply_loop<H: Host>(self: Rc<Self>, shard: Rc<H>) {
        loop {
            let item = loop {
                if let Some(item) = self.applies.borrow_mut().pop_front() {
                    break Some(item);
                }
                let listener = self.apply_ready.listen();
                if !self.applies.borrow().is_empty() {
                    continue;
                }
                let stop = self.shutdown.wait();
                futures::pin_mut!(listener, stop);
                if let Either::Right(_) = futures::future::select(listener, stop).await {
                    break None;
                }
            };
            let Some(item) = item else { return };
            match item {
                Apply::Entries(entries) => {
                    for entry in entries {
                        if entry.index <= self.applied.get() {
                            continue;
                        }
                        self.apply_entry(&*shard, &entry).await;
                        self.applied.set(entry.index);
                        self.maybe_compact(&*shard, entry.index, entry.term);
                    }
                }
                Apply::Snapshot(snapshot) => {
                    let index = snapshot.get_metadata().index;
                    if index <= self.applied.get() {
                        continue;
                    }
                    match Snapshot::decode_with(&snapshot.data, shard.topic_defaults()) {
                        Ok((next, _)) => {
                            if next.version > shard.snapshot().version {
                                shard.apply_committed(Arc::new(next)).await;
                            }
                        }
                        Err(e) => {
                            tracing::error!(index, error = %e, "the leader's metadata snapshot does not decode; kept the metadata as it was")
                        }
                    }
                    self.applied.set(index);
                }
            }
            self.publish_status(Some(&shard.snapshot()));
        }
    }

    /// Registers this broker in the cluster metadata (again at every
    /// start: its ports may have changed), then, while it leads, fences
    /// the brokers it has not heard from within
    /// [`BROKER_SESSION_TIMEOUT_MS`](crate::constants::BROKER_SESSION_TIMEOUT_MS)
    /// and unfences those it hears from again.
    async fn membership_loop<H: Host>(self: Rc<Self>, shard: Rc<H>) {
        use crate::constants::{BROKER_SESSION_TIMEOUT_MS, PREFERRED_LEADER_CHECK_MS};
        let mut last_preferred = std::time::Instant::now();
        let session = Duration::from_millis(BROKER_SESSION_TIMEOUT_MS);
        let record = shard.broker_record();
        loop {
            match shard
                .change_metadata(|s| s.with_broker(record.clone()))
                .await
            {
                Ok(_) => {
                    tracing::info!(node = self.id, native = %record.native, kafka = ?record.kafka, "registered with the cluster");
                    break;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "registering with the cluster: trying again");
                    if self.pause(Duration::from_millis(200)).await {
                        return;
                    }
                }
            }
        }
        loop {
            if self.pause(Duration::from_millis(RAFT_TICK_MS * 5)).await {
                return;
            }
            let led_long_enough = self.is_leader()
                && self
                    .leader_since
                    .get()
                    .is_some_and(|t| t.elapsed() >= session);
            if !led_long_enough {
                continue;
            }
            if last_preferred.elapsed() >= Duration::from_millis(PREFERRED_LEADER_CHECK_MS) {
                last_preferred = std::time::Instant::now();
                match shard.change_metadata(|s| s.with_preferred_leaders()).await {
                    Ok(true) => tracing::info!("handed partitions back to their preferred leaders"),
                    Ok(false) => {}
                    Err(e) => tracing::debug!(error = %e, "preferred leader election"),
                }
            }
            let snapshot = shard.snapshot();
            for broker in snapshot.brokers.values() {
                let node = broker.node_id as u64;
                if node == self.id {
                    continue;
                }
                let silent = self
                    .heard
                    .borrow()
                    .get(&node)
                    .is_none_or(|t| t.elapsed() >= session);
                if broker.fenced == silent {
                    continue;
                }
                let id = broker.node_id;
                match shard.change_metadata(|s| s.with_fenced(id, silent)).await {
                    Ok(true) if silent => {
                        tracing::warn!(
                            node = id,
                            session_timeout_ms = BROKER_SESSION_TIMEOUT_MS,
                            "fenced a broker the controller has not heard from"
                        )
                    }
                    Ok(true) => tracing::info!(node = id, "unfenced a broker that answers again"),
                    Ok(false) => {}
                    Err(e) => tracing::debug!(node = id, error = %e, "changing a broker's fence"),
                }
            }
        }
    }

    /// Sleeps `d`; true if the broker is shutting down.
    async fn pause(&self, d: Duration) -> bool {
        let sleep = glommio::timer::sleep(d);
        let stop = self.shutdown.wait();
        futures::pin_mut!(sleep, stop);
        matches!(futures::future::select(sleep, stop).await, Either::Right(_))
    }

    async fn apply_entry<H: Host>(&self, shard: &H, entry: &Entry) {
        if entry.get_entry_type() != EntryType::EntryNormal {
            tracing::warn!(
                index = entry.index,
                "a Raft configuration change was committed; membership changes are not supported yet, ignored"
            );
            return;
        }
        let data = &entry.data[..];
        if data.is_empty() {
            // A new leader's empty entry.
            return;
        }
        if data.len() < PROPOSAL_HEADER || &data[..4] != PROPOSAL_MAGIC {
            tracing::error!(
                index = entry.index,
                "a committed Raft entry is not a metadata change; skipped"
            );
            return;
        }
        let word = |at: usize| u64::from_le_bytes(data[at..at + 8].try_into().expect("8 bytes"));
        let (origin, seq, base) = (word(4), word(12), word(20));
        let current = shard.snapshot().version;
        let outcome = if base != current {
            Outcome::Stale
        } else {
            match Snapshot::decode_with(&data[PROPOSAL_HEADER..], shard.topic_defaults()) {
                Ok((next, _)) if next.version == base + 1 => {
                    shard.apply_committed(Arc::new(next)).await;
                    Outcome::Applied
                }
                Ok((next, _)) => {
                    tracing::error!(
                        index = entry.index,
                        base,
                        version = next.version,
                        "a committed metadata change skips versions; skipped"
                    );
                    Outcome::Stale
                }
                Err(e) => {
                    tracing::error!(index = entry.index, error = %e, "a committed metadata change does not decode; skipped");
                    Outcome::Stale
                }
            }
        };
        if origin == self.id
            && let Some(waiter) = self.waiters.borrow_mut().remove(&seq)
        {
            self.pending.borrow_mut().remove(&seq);
            let _ = waiter.send(outcome);
        }
    }

    fn maybe_compact<H: Host>(&self, shard: &H, index: u64, term: u64) {
        let since = index.saturating_sub(self.node.borrow().store().snapshot_index());
        if since >= self.snapshot_entries {
            *self.compaction.borrow_mut() = Some((index, term, shard.snapshot().encode()));
            self.wake.notify(1);
        }
    }

    fn refresh_status(&self) {
        self.publish_status(None);
    }

    /// Publishes the quorum's state, with the metadata version and brokers
    /// of `applied` (or those published last).
    fn publish_status(&self, applied: Option<&Snapshot>) {
        let last_published = self.board.controller();
        let (metadata_version, brokers, under) = match applied {
            Some(s) => (
                s.version,
                s.brokers.values().cloned().collect(),
                under_replicated(s),
            ),
            None => last_published
                .map(|s| {
                    (
                        s.metadata_version,
                        s.brokers.clone(),
                        s.under_replicated.clone(),
                    )
                })
                .unwrap_or_default(),
        };
        let node = self.node.borrow();
        let raft = &node.raft;
        let last = raft.raft_log.last_index();
        let voters = self
            .voters
            .iter()
            .map(|v| VoterStatus {
                id: v.id,
                addr: v.addr.clone(),
                lag: (raft.state == StateRole::Leader)
                    .then(|| raft.prs().get(v.id).map(|p| last.saturating_sub(p.matched)))
                    .flatten(),
            })
            .collect();
        let status = ControllerStatus {
            node_id: self.id,
            leader_id: raft.leader_id,
            role: match raft.state {
                StateRole::Leader => "leader",
                StateRole::Follower => "follower",
                StateRole::Candidate => "candidate",
                StateRole::PreCandidate => "pre-candidate",
            },
            term: raft.term,
            commit_index: raft.raft_log.committed,
            applied_index: self.applied.get(),
            snapshot_index: node.store().snapshot_index(),
            metadata_version,
            voters,
            brokers,
            under_replicated: under,
        };
        drop(node);
        self.board.set_controller(status);
    }
}
