//! Replicated partitions in the metadata: each partition's replicas (the
//! preferred leader first), its in-sync replica set (ISR) and its leader
//! epoch, and the controller's rules for electing leaders from the ISR.
//!
//! The leader of a partition is `TopicMeta::nodes[p]`, as for partitions
//! with one replica, so routing does not care whether a topic is
//! replicated. Rules (Kafka's, without unclean election):
//! * the leader is always a member of the ISR;
//! * the ISR never becomes empty: its last member stays in it when it
//!   dies (the partition is then offline until that broker returns);
//! * the leader epoch grows by one at every change of leader, and when a
//!   leader restarts (its log may have lost an unsynced tail), so every
//!   batch a leader stamps names the leadership that wrote it.

use super::metadata_generated::corelog::metadata as file;
use super::{MetaError, Snapshot, TopicMeta};
use crate::types::TopicId;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One replicated partition.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PartitionReplicas {
    /// Node ids, the preferred leader first.
    pub replicas: Vec<u32>,
    /// The in-sync replicas: every record below the high watermark is on
    /// each of them. Always holds the leader.
    pub isr: Vec<u32>,
    pub epoch: u32,
}

impl TopicMeta {
    /// Replicas per partition (1 for a topic that is not replicated).
    pub fn replication_factor(&self) -> u32 {
        self.replicas.first().map_or(1, |r| r.replicas.len() as u32)
    }

    /// Partition `p`'s replication state: for a partition with one replica,
    /// that one (in sync, epoch 0); `None` on a broker that is not in a
    /// cluster.
    pub fn partition_replicas(&self, p: u32) -> Option<PartitionReplicas> {
        if let Some(r) = self.replicas.get(p as usize) {
            return Some(r.clone());
        }
        let node = self.node_of(p)?;
        Some(PartitionReplicas {
            replicas: vec![node],
            isr: vec![node],
            epoch: 0,
        })
    }

    /// Partition `p`'s leader epoch (0 when it is not replicated).
    pub fn leader_epoch(&self, p: u32) -> u32 {
        self.replicas.get(p as usize).map_or(0, |r| r.epoch)
    }

    /// Whether broker `node` holds a replica of partition `p` (every
    /// partition, outside a cluster).
    pub fn has_replica(&self, p: u32, node: u32) -> bool {
        match self.replicas.get(p as usize) {
            Some(r) => r.replicas.contains(&node),
            None => self.node_of(p).is_none_or(|n| n == node),
        }
    }
}

impl Snapshot {
    fn active_brokers(&self) -> Vec<u32> {
        self.brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| b.node_id)
            .collect()
    }

    /// Places `rf` replicas of each of a topic's partitions up to `total`
    /// on distinct active brokers, keeping the existing ones (`had`): the
    /// least loaded brokers (by replicas) hold a new partition, and the one
    /// of them leading the fewest partitions leads it. Returns the leaders
    /// and the replica sets, by partition.
    pub(super) fn place_replicas(
        &self,
        had: Option<(&[u32], &[PartitionReplicas])>,
        total: u32,
        rf: u32,
    ) -> Result<(Vec<u32>, Vec<PartitionReplicas>), MetaError> {
        let active = self.active_brokers();
        if rf == 0 || rf as usize > active.len() {
            return Err(MetaError::InvalidReplicationFactor {
                asked: rf,
                brokers: active.len(),
            });
        }
        let mut load: BTreeMap<u32, (usize, usize)> = active.iter().map(|&n| (n, (0, 0))).collect();
        for t in self.topics.values() {
            for p in 0..t.partitions {
                if let Some(r) = t.partition_replicas(p) {
                    for (i, n) in r.replicas.iter().enumerate() {
                        if let Some(l) = load.get_mut(n) {
                            l.0 += 1;
                            if i == 0 {
                                l.1 += 1;
                            }
                        }
                    }
                }
            }
        }
        let (mut leaders, mut sets) = match had {
            Some((n, r)) => (n.to_vec(), r.to_vec()),
            None => (Vec::new(), Vec::new()),
        };
        while (sets.len() as u32) < total {
            let mut by_load: Vec<(u32, (usize, usize))> =
                load.iter().map(|(n, l)| (*n, *l)).collect();
            by_load.sort_by_key(|(n, l)| (l.0, *n));
            let mut chosen: Vec<u32> = by_load.iter().take(rf as usize).map(|(n, _)| *n).collect();
            let leader = *chosen
                .iter()
                .min_by_key(|n| (load[n].1, **n))
                .expect("rf >= 1");
            chosen.retain(|n| *n != leader);
            chosen.insert(0, leader);
            for (i, n) in chosen.iter().enumerate() {
                let l = load.get_mut(n).expect("active");
                l.0 += 1;
                if i == 0 {
                    l.1 += 1;
                }
            }
            leaders.push(leader);
            sets.push(PartitionReplicas {
                isr: chosen.clone(),
                replicas: chosen,
                epoch: 0,
            });
        }
        Ok((leaders, sets))
    }

    /// Re-elects leaders where they are needed, in every replicated
    /// partition: fenced brokers (and `gone`, a broker that restarted or is
    /// shutting down) leave the ISR unless they are its last member, and a
    /// partition whose leader is one of them, or is out of the ISR, gets
    /// the first live in-sync replica (in replica order) as leader, with a
    /// new epoch. A partition led by `gone` with no other in-sync replica
    /// keeps it, with a new epoch. Returns whether anything changed.
    pub(super) fn settle_leaders(&mut self, gone: Option<u32>) -> bool {
        let fenced: Vec<u32> = self
            .brokers
            .values()
            .filter(|b| b.fenced)
            .map(|b| b.node_id)
            .collect();
        let dead = |n: u32| fenced.contains(&n) || Some(n) == gone;
        self.rewrite_partitions(|leader, set| {
            let live: Vec<u32> = set.isr.iter().copied().filter(|n| !dead(*n)).collect();
            let isr = if live.is_empty() {
                set.isr.clone()
            } else {
                live
            };
            let new_leader = if !dead(*leader) && isr.contains(leader) {
                *leader
            } else {
                set.replicas
                    .iter()
                    .copied()
                    .find(|n| isr.contains(n) && !dead(*n))
                    .unwrap_or(*leader)
            };
            let restarted = Some(*leader) == gone && new_leader == *leader;
            let mut touched = false;
            if new_leader != *leader || restarted {
                set.epoch += 1;
                *leader = new_leader;
                touched = true;
            }
            if isr != set.isr {
                set.isr = isr;
                touched = true;
            }
            touched
        })
    }

    /// Applies `change` to every replicated partition's leader and replica
    /// state; a topic whose partitions it changed (it returns true) is
    /// replaced. Returns whether any changed.
    fn rewrite_partitions(
        &mut self,
        mut change: impl FnMut(&mut u32, &mut PartitionReplicas) -> bool,
    ) -> bool {
        let mut changed = false;
        for topic in self.topics.values_mut() {
            if topic.replicas.is_empty() {
                continue;
            }
            let mut nodes = topic.nodes.to_vec();
            let mut sets = topic.replicas.to_vec();
            let mut touched = false;
            for (leader, set) in nodes.iter_mut().zip(sets.iter_mut()) {
                touched |= change(leader, set);
            }
            if touched {
                let t = Arc::make_mut(topic);
                t.nodes = nodes.into();
                t.replicas = sets.into();
                changed = true;
            }
        }
        changed
    }

    /// Moves leadership of every partition broker `node` leads to another
    /// in-sync replica, and takes `node` out of every ISR it is not the
    /// last member of (a controlled shutdown); `None` if nothing changes.
    pub fn with_leaders_moved_from(&self, node: u32) -> Option<Snapshot> {
        let mut next = self.clone();
        if !next.settle_leaders(Some(node)) {
            return None;
        }
        next.version += 1;
        Some(next)
    }

    /// Hands leadership back to each partition's preferred replica (its
    /// first) where that one is live and in sync; `None` if every
    /// partition is led by it already (or cannot be).
    pub fn with_preferred_leaders(&self) -> Option<Snapshot> {
        let mut next = self.clone();
        let changed = next.rewrite_partitions(|leader, set| {
            let preferred = set.replicas[0];
            if *leader == preferred || !set.isr.contains(&preferred) || self.is_fenced(preferred) {
                return false;
            }
            *leader = preferred;
            set.epoch += 1;
            true
        });
        changed.then(|| {
            next.version += 1;
            next
        })
    }

    /// Partition `p` of topic `id` with `isr` as its in-sync replicas, as
    /// its leader `leader` at `epoch` asks (Kafka's AlterPartition).
    /// `Ok(None)` if it is so already; an error if the leader or epoch is
    /// no longer current (the request is stale) or `isr` is not a set of
    /// the partition's replicas holding the leader.
    pub fn with_isr(
        &self,
        id: TopicId,
        p: u32,
        leader: u32,
        epoch: u32,
        isr: &[u32],
    ) -> Result<Option<Snapshot>, String> {
        let topic = self
            .topic_by_id(id)
            .ok_or_else(|| format!("topic id {id} no longer exists"))?;
        let set = topic
            .replicas
            .get(p as usize)
            .ok_or_else(|| format!("partition {p} of topic {:?} is not replicated", topic.name))?;
        if topic.node_of(p) != Some(leader) || set.epoch != epoch {
            return Err(format!(
                "stale ISR change for partition {p} of topic {:?}: asked by broker {leader} at epoch {epoch}, the leader is {:?} at epoch {}",
                topic.name,
                topic.node_of(p),
                set.epoch
            ));
        }
        if !isr.contains(&leader) || isr.iter().any(|n| !set.replicas.contains(n)) {
            return Err(format!(
                "ISR {isr:?} of partition {p} of topic {:?} must hold the leader {leader} and only replicas {:?}",
                topic.name, set.replicas
            ));
        }
        let mut sorted: Vec<u32> = set
            .replicas
            .iter()
            .copied()
            .filter(|n| isr.contains(n))
            .collect();
        sorted.dedup();
        if sorted == set.isr {
            return Ok(None);
        }
        let mut sets = topic.replicas.to_vec();
        sets[p as usize].isr = sorted;
        let meta = Arc::new(TopicMeta {
            replicas: sets.into(),
            ..(**topic).clone()
        });
        let mut next = self.clone();
        next.version += 1;
        next.topics.insert(meta.name.clone(), meta);
        Ok(Some(next))
    }
}

pub(super) fn encode<'a>(
    sets: &[PartitionReplicas],
    fbb: &mut flatbuffers::FlatBufferBuilder<'a>,
) -> Option<
    flatbuffers::WIPOffset<
        flatbuffers::Vector<'a, flatbuffers::ForwardsUOffset<file::PartitionRecord<'a>>>,
    >,
> {
    if sets.is_empty() {
        return None;
    }
    let records: Vec<_> = sets
        .iter()
        .map(|r| {
            let replicas = fbb.create_vector(&r.replicas);
            let isr = fbb.create_vector(&r.isr);
            file::PartitionRecord::create(
                fbb,
                &file::PartitionRecordArgs {
                    replicas: Some(replicas),
                    isr: Some(isr),
                    leader_epoch: r.epoch,
                },
            )
        })
        .collect();
    Some(fbb.create_vector(&records))
}

/// Checks a decoded topic's replication state: one entry per partition,
/// a leader per partition that is in its ISR, the ISR within the replicas.
pub(super) fn check(t: &TopicMeta) -> Result<(), String> {
    if t.replicas.is_empty() {
        return Ok(());
    }
    if t.replicas.len() != t.partitions as usize || t.nodes.len() != t.partitions as usize {
        return Err(format!(
            "topic {}: {} replica sets and {} leaders for {} partitions",
            t.name,
            t.replicas.len(),
            t.nodes.len(),
            t.partitions
        ));
    }
    for (p, r) in t.replicas.iter().enumerate() {
        if r.replicas.is_empty()
            || !r.isr.contains(&t.nodes[p])
            || r.isr.iter().any(|n| !r.replicas.contains(n))
        {
            return Err(format!(
                "topic {} partition {p}: leader {} with replicas {:?} and ISR {:?} is not consistent",
                t.name, t.nodes[p], r.replicas, r.isr
            ));
        }
    }
    Ok(())
}

pub(super) fn decode(t: &file::TopicRecord) -> Vec<PartitionReplicas> {
    t.partition_replicas()
        .iter()
        .flatten()
        .map(|r| PartitionReplicas {
            replicas: r.replicas().map(|v| v.iter().collect()).unwrap_or_default(),
            isr: r.isr().map(|v| v.iter().collect()).unwrap_or_default(),
            epoch: r.leader_epoch(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{BrokerMeta, TopicOverrides};

    fn cluster(n: u32) -> Snapshot {
        let mut s = Snapshot::default();
        for node_id in 1..=n {
            s = s
                .with_broker(BrokerMeta {
                    node_id,
                    native: format!("127.0.0.1:{}", 9400 + node_id),
                    kafka: Vec::new(),
                    shards: 1,
                    fenced: false,
                    incarnation: 1,
                })
                .unwrap();
        }
        s
    }

    #[test]
    fn replicas_go_to_distinct_brokers_and_leaders_spread() {
        let s = cluster(3);
        let (s, t) = s
            .with_replicated_topic("r", 6, TopicOverrides::default(), 3)
            .unwrap();
        assert_eq!(t.replication_factor(), 3);
        let mut leaders = BTreeMap::new();
        for p in 0..6 {
            let r = t.partition_replicas(p).unwrap();
            let mut sorted = r.replicas.clone();
            sorted.sort();
            assert_eq!(sorted, vec![1, 2, 3], "partition {p}");
            assert_eq!(r.isr, r.replicas, "all in sync at first");
            assert_eq!(
                t.node_of(p),
                Some(r.replicas[0]),
                "the preferred replica leads"
            );
            *leaders.entry(r.replicas[0]).or_insert(0) += 1;
        }
        assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
        // More replicas than brokers is refused.
        assert!(matches!(
            s.with_replicated_topic("x", 1, TopicOverrides::default(), 4),
            Err(MetaError::InvalidReplicationFactor {
                asked: 4,
                brokers: 3
            })
        ));
        // Survives encoding; growing keeps the old partitions' replicas.
        let back = Snapshot::decode(&s.encode()).unwrap();
        assert_eq!(back.topic("r"), s.topic("r"));
        let (grown, g) = s.with_partitions("r", 8).unwrap();
        assert_eq!(g.replicas[..6], t.replicas[..]);
        assert_eq!(g.replicas.len(), 8);
        assert!(grown.version > s.version);
    }

    #[test]
    fn a_fenced_leader_is_replaced_from_the_isr_with_a_new_epoch() {
        let (s, t) = cluster(3)
            .with_replicated_topic("r", 1, TopicOverrides::default(), 3)
            .unwrap();
        let leader = t.node_of(0).unwrap();
        let fenced = s.with_fenced(leader, true).unwrap();
        let t2 = fenced.topic("r").unwrap();
        let r = t2.partition_replicas(0).unwrap();
        assert_ne!(t2.node_of(0), Some(leader));
        assert_eq!(r.epoch, 1);
        assert!(!r.isr.contains(&leader), "the fenced broker left the ISR");
        assert!(r.isr.contains(&t2.node_of(0).unwrap()));
        // Fencing the other two leaves the last one as the only ISR member
        // (offline while fenced), never an empty ISR.
        let mut s = fenced;
        for n in r.isr.clone() {
            s = s.with_fenced(n, true).unwrap();
        }
        let last = s.topic("r").unwrap().partition_replicas(0).unwrap();
        assert_eq!(last.isr.len(), 1);
        assert_eq!(s.topic("r").unwrap().node_of(0), Some(last.isr[0]));
        // It returns and leads again; the first one back is not in sync.
        let back = s.with_fenced(last.isr[0], false).unwrap();
        assert_eq!(back.topic("r").unwrap().node_of(0), Some(last.isr[0]));
        let back = back.with_fenced(leader, false).unwrap();
        assert!(
            !back
                .topic("r")
                .unwrap()
                .partition_replicas(0)
                .unwrap()
                .isr
                .contains(&leader)
        );
    }

    #[test]
    fn a_restart_moves_leadership_away_and_a_controlled_shutdown_too() {
        let (s, t) = cluster(3)
            .with_replicated_topic("r", 3, TopicOverrides::default(), 3)
            .unwrap();
        let node = t.node_of(0).unwrap();
        let mut again = s.brokers[&node].clone();
        again.incarnation = 2;
        let restarted = s.with_broker(again).unwrap();
        let t2 = restarted.topic("r").unwrap();
        for p in 0..3 {
            assert_ne!(t2.node_of(p), Some(node));
            assert!(!t2.partition_replicas(p).unwrap().isr.contains(&node));
        }
        assert_eq!(t2.leader_epoch(0), 1);
        let moved = s.with_leaders_moved_from(node).unwrap();
        assert!((0..3).all(|p| moved.topic("r").unwrap().node_of(p) != Some(node)));
        assert!(
            moved.with_leaders_moved_from(node).is_none(),
            "nothing left to move"
        );
    }

    #[test]
    fn isr_changes_need_the_current_leader_and_epoch() {
        let (s, t) = cluster(3)
            .with_replicated_topic("r", 1, TopicOverrides::default(), 3)
            .unwrap();
        let leader = t.node_of(0).unwrap();
        let others: Vec<u32> = t.replicas[0].replicas[1..].to_vec();
        let shrunk = s
            .with_isr(t.id, 0, leader, 0, &[leader, others[0]])
            .unwrap()
            .unwrap();
        assert_eq!(shrunk.topic("r").unwrap().replicas[0].isr.len(), 2);
        assert!(
            s.with_isr(t.id, 0, others[0], 0, &[others[0]]).is_err(),
            "not the leader"
        );
        assert!(
            s.with_isr(t.id, 0, leader, 5, &[leader]).is_err(),
            "stale epoch"
        );
        assert!(
            s.with_isr(t.id, 0, leader, 0, &[others[0]]).is_err(),
            "leader missing"
        );
        assert!(
            s.with_isr(t.id, 0, leader, 0, &t.replicas[0].isr)
                .unwrap()
                .is_none()
        );
        // The preferred leader takes over again once it is in sync.
        let fenced = s.with_fenced(leader, true).unwrap();
        let back = fenced.with_fenced(leader, false).unwrap();
        let t3 = back.topic("r").unwrap().clone();
        let mut isr = t3.replicas[0].isr.clone();
        isr.push(leader);
        let rejoined = back
            .with_isr(t3.id, 0, t3.node_of(0).unwrap(), t3.leader_epoch(0), &isr)
            .unwrap()
            .unwrap();
        let preferred = rejoined.with_preferred_leaders().unwrap();
        assert_eq!(preferred.topic("r").unwrap().node_of(0), Some(leader));
        assert_eq!(preferred.topic("r").unwrap().leader_epoch(0), 2);
    }
}
