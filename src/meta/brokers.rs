//! The brokers of a cluster in the metadata: each registers itself (its
//! addresses and shards) when it starts, and the controller leader fences
//! one that stops answering and unfences it when it returns.

use super::Snapshot;
use super::metadata_generated::corelog::metadata as file;

/// One registered broker.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BrokerMeta {
    pub node_id: u32,
    /// HOST:PORT of the native protocol's shared port.
    pub native: String,
    /// PROTOCOL://HOST:PORT of each Kafka listener, as advertised.
    pub kafka: Vec<String>,
    pub shards: u32,
    /// Not heard from by the controller leader within the session timeout.
    pub fenced: bool,
    /// Random at every start of the broker: a restart always changes the
    /// record, so the controller moves leadership off the restarted
    /// broker's partitions (its log may have lost an unsynced tail).
    pub incarnation: u64,
}

impl Snapshot {
    /// Registers (or re-registers, unfenced) `broker`; `None` if the
    /// metadata has it exactly so already.
    pub fn with_broker(&self, broker: BrokerMeta) -> Option<Snapshot> {
        if self.brokers.get(&broker.node_id) == Some(&broker) {
            return None;
        }
        let restarted = self
            .brokers
            .get(&broker.node_id)
            .is_none_or(|b| b.incarnation != broker.incarnation);
        let node = broker.node_id;
        let mut next = self.clone();
        next.brokers.insert(node, broker);
        next.settle_leaders(restarted.then_some(node));
        next.version += 1;
        Some(next)
    }

    /// Whether broker `node` is registered and fenced.
    pub fn is_fenced(&self, node: u32) -> bool {
        self.brokers.get(&node).is_some_and(|b| b.fenced)
    }

    /// Fences or unfences broker `node`; `None` if it is unknown or already
    /// so.
    pub fn with_fenced(&self, node: u32, fenced: bool) -> Option<Snapshot> {
        let broker = self.brokers.get(&node)?;
        if broker.fenced == fenced {
            return None;
        }
        let mut next = self.clone();
        next.brokers.insert(
            node,
            BrokerMeta {
                fenced,
                ..broker.clone()
            },
        );
        next.settle_leaders(None);
        next.version += 1;
        Some(next)
    }
}

pub(super) fn encode<'a>(
    snapshot: &Snapshot,
    fbb: &mut flatbuffers::FlatBufferBuilder<'a>,
) -> Option<
    flatbuffers::WIPOffset<
        flatbuffers::Vector<'a, flatbuffers::ForwardsUOffset<file::BrokerRecord<'a>>>,
    >,
> {
    if snapshot.brokers.is_empty() {
        return None;
    }
    let records: Vec<_> = snapshot
        .brokers
        .values()
        .map(|b| {
            let native = fbb.create_string(&b.native);
            let kafka: Vec<_> = b.kafka.iter().map(|k| fbb.create_string(k)).collect();
            let kafka = fbb.create_vector(&kafka);
            file::BrokerRecord::create(
                fbb,
                &file::BrokerRecordArgs {
                    node_id: b.node_id,
                    native: Some(native),
                    kafka: Some(kafka),
                    shards: b.shards,
                    fenced: b.fenced,
                    incarnation: b.incarnation,
                },
            )
        })
        .collect();
    Some(fbb.create_vector(&records))
}

pub(super) fn decode(root: &file::MetadataFile) -> std::collections::BTreeMap<u32, BrokerMeta> {
    root.brokers()
        .iter()
        .flatten()
        .map(|b| {
            let meta = BrokerMeta {
                node_id: b.node_id(),
                native: b.native().unwrap_or("").to_string(),
                kafka: b.kafka().iter().flatten().map(str::to_string).collect(),
                shards: b.shards(),
                fenced: b.fenced(),
                incarnation: b.incarnation(),
            };
            (meta.node_id, meta)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brokers_register_fence_and_survive_encoding() {
        let b = BrokerMeta {
            node_id: 2,
            native: "127.0.0.1:9400".into(),
            kafka: vec!["PLAINTEXT://127.0.0.1:9092".into()],
            shards: 4,
            fenced: false,
            incarnation: 1,
        };
        let s = Snapshot::default().with_broker(b.clone()).unwrap();
        assert_eq!(s.version, 1);
        assert!(s.with_broker(b.clone()).is_none(), "unchanged");
        let fenced = s.with_fenced(2, true).unwrap();
        assert!(fenced.brokers[&2].fenced);
        assert!(fenced.with_fenced(2, true).is_none());
        assert!(fenced.with_fenced(7, true).is_none());
        let back = Snapshot::decode(&fenced.encode()).unwrap();
        assert_eq!(back.brokers, fenced.brokers);
        // Re-registering unfences.
        assert!(!fenced.with_broker(b).unwrap().brokers[&2].fenced);
    }

    fn broker(node_id: u32) -> BrokerMeta {
        BrokerMeta {
            node_id,
            native: format!("127.0.0.1:{}", 9400 + node_id),
            kafka: Vec::new(),
            shards: 1,
            fenced: false,
            incarnation: 1,
        }
    }

    #[test]
    fn partitions_spread_over_active_brokers_and_keep_their_place() {
        use crate::meta::TopicOverrides;
        // One broker: nothing placed, every partition is local.
        let (single, t) = Snapshot::default()
            .with_topic("a", 4, TopicOverrides::default())
            .unwrap();
        assert!(t.nodes.is_empty() && t.node_of(0).is_none());
        let mut s = single;
        for n in [3, 1, 2] {
            s = s.with_broker(broker(n)).unwrap();
        }
        // "a" was not placed and stays so when it grows.
        let (s, a) = s.with_partitions("a", 6).unwrap();
        assert!(a.nodes.is_empty());
        let (s, b) = s.with_topic("b", 6, TopicOverrides::default()).unwrap();
        assert_eq!(&*b.nodes, &[1, 2, 3, 1, 2, 3]);
        // The least loaded first; a fenced broker gets nothing.
        let s = s.with_fenced(3, true).unwrap();
        let (s, c) = s.with_topic("c", 3, TopicOverrides::default()).unwrap();
        assert_eq!(&*c.nodes, &[1, 2, 1]);
        let (s, c) = s.with_partitions("c", 5).unwrap();
        assert_eq!(&c.nodes[..3], &[1, 2, 1], "existing partitions stay");
        assert_eq!(&c.nodes[3..], &[2, 1]);
        let back = Snapshot::decode(&s.encode()).unwrap();
        assert_eq!(back.topic("c").unwrap().nodes, c.nodes);
        assert!(back.topic("a").unwrap().nodes.is_empty());
    }
}
