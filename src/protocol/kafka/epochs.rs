//! OffsetForLeaderEpoch (v2–4): where a leader epoch ends in a partition's
//! log. Consumers ask it after a leader change to check that the offset
//! they hold was not cut from the log (KIP-320); the answer is the largest
//! epoch at or below the asked one and the offset where it ends (the log
//! end for the current epoch), from the leader's epoch cache. Needs
//! DESCRIBE on the topic when ACLs are on.

use super::{Caller, codes};
use crate::error::BrokerError;
use crate::security::{Operation, ResourceType};
use crate::shard::{EpochQuery, Shard};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use std::rc::Rc;

pub async fn handle(
    shard: &Rc<Shard>,
    caller: &Caller,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let snapshot = shard.snapshot();
    // Per asked partition: its answer, or a question for its shard.
    let mut answers: Vec<Vec<Result<EpochEndOffset, usize>>> = Vec::new();
    let mut queries = Vec::new();
    for t in &request.topics {
        let name = t.topic.0.as_str();
        let allowed = !shard.authorizer_enabled()
            || caller.may(shard, Operation::Describe, ResourceType::Topic, name);
        let meta = snapshot.topic(name);
        let mut row = Vec::new();
        for p in &t.partitions {
            let refuse = |code: i16| {
                Ok(EpochEndOffset::default()
                    .with_partition(p.partition)
                    .with_error_code(code)
                    .with_leader_epoch(-1)
                    .with_end_offset(-1))
            };
            row.push(match meta {
                _ if !allowed => refuse(codes::TOPIC_AUTHORIZATION_FAILED),
                None => refuse(codes::UNKNOWN_TOPIC_OR_PARTITION),
                Some(m) if p.partition < 0 || p.partition as u32 >= m.partitions => {
                    refuse(codes::UNKNOWN_TOPIC_OR_PARTITION)
                }
                Some(m) => {
                    queries.push(EpochQuery {
                        idx: queries.len(),
                        topic: m.id,
                        partition: p.partition as u32,
                        current_leader_epoch: p.current_leader_epoch,
                        leader_epoch: p.leader_epoch,
                    });
                    Err(queries.len() - 1)
                }
            });
        }
        answers.push(row);
    }
    let asked: Vec<i32> = queries.iter().map(|q| q.partition as i32).collect();
    let answered = shard.epoch_ends(queries).await;
    let mut out = OffsetForLeaderEpochResponse::default();
    out.topics = request
        .topics
        .iter()
        .zip(answers)
        .map(|(t, row)| {
            let partitions = row
                .into_iter()
                .map(|slot| match slot {
                    Ok(done) => done,
                    Err(i) => {
                        let r = EpochEndOffset::default().with_partition(asked[i]);
                        match &answered[i].1 {
                            Ok(Some((epoch, end))) => {
                                r.with_leader_epoch(*epoch).with_end_offset(end.0 as i64)
                            }
                            Ok(None) => r.with_leader_epoch(-1).with_end_offset(-1),
                            Err(e) => error(r, e),
                        }
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    out
}

fn error(r: EpochEndOffset, e: &BrokerError) -> EpochEndOffset {
    r.with_error_code(codes::code(e.kind))
        .with_leader_epoch(-1)
        .with_end_offset(-1)
}
