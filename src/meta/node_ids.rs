//! Kafka node ids of the shard-brokers: in the shard-aware Kafka mode
//! (`--kafka-shard-brokers`) every shard is advertised to Kafka clients as a
//! broker of its own, and needs a node id no other broker or shard of a
//! cluster uses.
//!
//! The id of shard `s` of the broker with node id `n` is
//!
//! ```text
//! 2^20 + n × 1024 + s        n in 0..=2^20 − 1, s in 0..256
//! ```
//!
//! * plain broker ids are `0..2^20` ([`NODE_ID_MAX`]), shard-broker ids
//!   start at `2^20` ([`SHARD_BROKER_ID_BASE`]): the two never meet, so
//!   brokers in either mode can share a cluster;
//! * each broker owns a block of 1024 ids ([`SHARD_BROKER_IDS_PER_NODE`]),
//!   more than the 256 cores a broker may run ([`CORES_MAX`]): two brokers'
//!   shards never share an id;
//! * the largest id, `2^20 + (2^20 − 1) × 1024 + 1023 = 2^30 + 2^20 − 1`,
//!   is a valid Kafka `int32` node id.
//!
//! Pure: every shard computes the same ids without coordination.

use crate::constants::{CORES_MAX, NODE_ID_MAX, SHARD_BROKER_ID_BASE, SHARD_BROKER_IDS_PER_NODE};
use crate::types::ShardId;

/// The Kafka node id of shard `shard` of the broker whose node id is
/// `node_id` (see the module docs for the formula and ranges).
///
/// Panics when `node_id` or `shard` is out of range: the configuration is
/// validated against the same bounds before any shard starts, so an id out
/// of range here is a bug, not an input.
pub fn shard_broker_id(node_id: i32, shard: ShardId) -> i32 {
    assert!(
        (0..=NODE_ID_MAX).contains(&node_id),
        "node id {node_id} is outside 0..={NODE_ID_MAX}"
    );
    assert!(
        (shard.0 as usize) < CORES_MAX,
        "shard {shard} is outside 0..{CORES_MAX}"
    );
    SHARD_BROKER_ID_BASE + node_id * SHARD_BROKER_IDS_PER_NODE + shard.0 as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn shard_broker_ids_follow_the_documented_formula() {
        assert_eq!(shard_broker_id(0, ShardId(0)), 1 << 20);
        assert_eq!(shard_broker_id(0, ShardId(1)), (1 << 20) + 1);
        assert_eq!(shard_broker_id(3, ShardId(7)), (1 << 20) + 3 * 1024 + 7);
        let last = shard_broker_id(NODE_ID_MAX, ShardId(CORES_MAX as u32 - 1));
        assert_eq!(last, (1 << 20) + ((1 << 20) - 1) * 1024 + 255);
        assert!(last > 0, "no overflow into negative ids");
    }

    #[test]
    fn shard_broker_ids_never_collide_with_plain_ids_or_other_brokers_shards() {
        // Node ids at both ends of the range and some in between, every
        // core of each.
        let nodes = [0, 1, 2, 1023, 1024, 4096, NODE_ID_MAX - 1, NODE_ID_MAX];
        let mut seen = HashSet::new();
        for node in nodes {
            for s in 0..CORES_MAX as u32 {
                let id = shard_broker_id(node, ShardId(s));
                assert!(id > NODE_ID_MAX, "{id} is in the plain node id range");
                assert!(seen.insert(id), "node {node} shard {s}: id {id} taken");
            }
        }
        // Neighbouring brokers' blocks do not overlap: the last shard of
        // node n is below the first of node n + 1.
        for node in [0, 77, NODE_ID_MAX - 1] {
            assert!(
                shard_broker_id(node, ShardId(CORES_MAX as u32 - 1))
                    < shard_broker_id(node + 1, ShardId(0))
            );
        }
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn a_node_id_beyond_the_range_is_refused() {
        shard_broker_id(NODE_ID_MAX + 1, ShardId(0));
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn a_shard_beyond_the_core_limit_is_refused() {
        shard_broker_id(0, ShardId(CORES_MAX as u32));
    }
}
