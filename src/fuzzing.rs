//! Entry points for the fuzz targets in `fuzz/`: the request decoders as
//! the server runs them on a frame, without a shard. Not an API; only the
//! fuzz targets use it.

use crate::error::BrokerError;
use crate::protocol::kafka;
use crate::protocol::native::decode;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::RequestKind;

pub use crate::protocol::native::decode::Request as NativeRequest;

/// What the native protocol makes of a frame (length prefix included):
/// the correlation id and the request, or the error it answers with.
pub fn decode_native(frame: BytesMut) -> Result<(u64, NativeRequest), (u64, BrokerError)> {
    decode::decode(frame)
}

/// A Kafka request frame as the server decodes it.
#[derive(Debug)]
pub struct KafkaRequest {
    pub api_key: i16,
    pub version: i16,
    pub correlation_id: i32,
    /// Bytes of the frame (length prefix included) the header and body
    /// took.
    pub used: usize,
    pub body: KafkaBody,
}

#[derive(Debug)]
pub enum KafkaBody {
    /// The whole response frame sent at once.
    Reply(Bytes),
    Produce(crate::broker::ProduceRequest),
    /// Decoded by the protocol crate, which left `unread` bytes of the
    /// frame.
    Other {
        request: Box<RequestKind>,
        unread: usize,
    },
}

/// What the Kafka protocol makes of a frame (length prefix included);
/// `Err` closes the connection.
pub fn decode_kafka(frame: BytesMut) -> Result<KafkaRequest, String> {
    let decoded = kafka::decode(frame)?;
    let (api_key, version, correlation_id) = (
        decoded.api_key(),
        decoded.version(),
        decoded.correlation_id(),
    );
    let body = match decoded.body {
        kafka::Body::Reply(out) => KafkaBody::Reply(match out {
            crate::protocol::Outgoing::One(b) => b,
            crate::protocol::Outgoing::Parts(parts) => Bytes::from(parts.concat()),
        }),
        kafka::Body::Produce(request) => KafkaBody::Produce(request),
        kafka::Body::Other {
            request, unread, ..
        } => KafkaBody::Other { request, unread },
    };
    Ok(KafkaRequest {
        api_key,
        version,
        correlation_id,
        used: decoded.used,
        body,
    })
}
