//! InitProducerId: ids and epochs for idempotent producers. Transactions
//! are not supported: a request naming a transactional id is refused.

use super::codes;
use crate::broker;
use crate::shard::Shard;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use std::rc::Rc;

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let mut out = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if request.transactional_id.is_some() {
        tracing::debug!("refusing InitProducerId for a transactional producer");
        out.error_code = codes::TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
        return out;
    }
    // v3+ may carry the producer's current id and epoch (to bump it).
    let current = (version >= 3 && request.producer_id.0 >= 0)
        .then_some((request.producer_id.0, request.producer_epoch));
    match broker::init_producer_id(shard, current).await {
        Ok((id, epoch)) => {
            out.producer_id = ProducerId(id);
            out.producer_epoch = epoch;
        }
        Err(e) => out.error_code = codes::code(e.kind),
    }
    out
}
