//! Several brokers that agree on one metadata log through Raft.
//!
//! With `--controllers`, every change to the cluster metadata (topics,
//! configurations, producer-id blocks, users, ACLs) is an entry of a log
//! replicated with Raft among the voters named there (tikv's `raft` crate:
//! a state machine without I/O, driven here on shard 0's executor). Any
//! broker accepts a change: its controller shard computes the next
//! metadata [`Snapshot`](crate::meta::Snapshot) from the one it has, and
//! proposes it together with the version it was computed from; Raft
//! forwards the proposal to the leader. Every broker applies the committed
//! entries in log order, and an entry takes effect only when its base
//! version is the version in force (compare-and-set). A change computed
//! from stale metadata (another broker's change committed first) is
//! skipped everywhere and retried by its proposer on the newer metadata,
//! so every broker arrives at the same metadata, one version at a time.
//! Applying is what a one-broker controller does after a change: save the
//! metadata file, have every shard swap the snapshot in (opening and
//! closing logs), and remove a deleted topic's files.
//!
//! The Raft log (with hard state and snapshots) is durable — see
//! [`store`] — and compacted by snapshot every
//! [`RAFT_SNAPSHOT_ENTRIES`](crate::constants::RAFT_SNAPSHOT_ENTRIES)
//! applied entries; a broker that was away longer catches up from the
//! leader's snapshot. Controllers talk over their own TCP listener
//! (`--controller-listen`; plaintext, meant for a private network), see
//! [`transport`].
//!
//! Not yet: partitions placed on (and routed to) brokers — every broker
//! serves each partition from its own disk — and brokers that are not
//! voters.

pub mod node;
pub mod store;
pub mod transport;

pub use node::{Controller, ControllerStatus, VoterStatus};

use crate::error::BrokerError;
use crate::meta::{BrokerMeta, Snapshot, TopicConfig};
use std::future::Future;
use std::sync::Arc;

/// What the controller needs of the shard it runs on (shard 0 of a cluster
/// broker): the metadata in force, applying a committed change on every
/// shard, and proposing a change. The shard implements it; a trait, so
/// that this module does not depend on the shard's (which depends on it).
pub(crate) trait Host: 'static {
    fn snapshot(&self) -> Arc<Snapshot>;
    /// The broker's topic defaults (committed metadata decodes over them).
    fn topic_defaults(&self) -> &TopicConfig;
    /// This broker as it registers with the cluster.
    fn broker_record(&self) -> BrokerMeta;
    /// Applies committed metadata on every shard of this broker.
    fn apply_committed(&self, next: Arc<Snapshot>) -> impl Future<Output = ()>;
    /// Commits the change `change` computes from the metadata in force, if
    /// it computes one; whether it did.
    fn change_metadata(
        &self,
        change: impl Fn(&Snapshot) -> Option<Snapshot>,
    ) -> impl Future<Output = Result<bool, BrokerError>>;
}

/// One voter of the controller quorum: its node id and the address the
/// others reach its controller listener at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Voter {
    pub id: u64,
    /// `HOST:PORT`, resolved when connecting.
    pub addr: String,
}

/// Parses `--controllers`: `ID@HOST:PORT` items separated by commas.
pub fn parse_controllers(text: &str) -> Result<Vec<Voter>, String> {
    let mut voters: Vec<Voter> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, addr) = item
            .split_once('@')
            .ok_or_else(|| format!("{item:?}: expected ID@HOST:PORT"))?;
        let id: u64 = id
            .parse()
            .map_err(|_| format!("{item:?}: the node id must be a number"))?;
        if id == 0 || id > crate::constants::NODE_ID_MAX as u64 {
            return Err(format!(
                "{item:?}: node ids of a cluster are 1 to {}",
                crate::constants::NODE_ID_MAX
            ));
        }
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| format!("{item:?}: expected ID@HOST:PORT"))?;
        if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!(
                "{item:?}: expected ID@HOST:PORT with a port above 0"
            ));
        }
        if voters.iter().any(|v| v.id == id) {
            return Err(format!("node id {id} appears twice in the controllers"));
        }
        voters.push(Voter {
            id,
            addr: addr.to_string(),
        });
    }
    if voters.is_empty() {
        return Err("no controllers given".into());
    }
    if voters.len().is_multiple_of(2) {
        tracing::warn!(
            voters = voters.len(),
            "an even number of controllers tolerates no more failures than one fewer; 3 or 5 are usual"
        );
    }
    Ok(voters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controllers_parse_and_bad_lists_are_refused() {
        let v = parse_controllers("1@127.0.0.1:9500, 2@host-b:9500,3@[::1]:9501").unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[2].addr, "[::1]:9501");
        for bad in [
            "",
            "1@127.0.0.1",
            "x@h:1",
            "0@h:1",
            "1@h:0",
            "1@h:1,1@h:2",
            "1-h:1",
        ] {
            assert!(parse_controllers(bad).is_err(), "{bad:?}");
        }
    }
}
