//! Kafka response frames: `i32` big-endian size, the response header (v0:
//! correlation id; v1 adds a tagged-field buffer), then the body.

use crate::protocol::Outgoing;
use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::Encodable;

/// Encodes `body` as the response to a request of `api` at `version`.
/// Fails only if the body sets a field the version does not have (a bug in
/// the adapter, reported to the caller to log).
pub fn response<T: Encodable>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) -> Result<Outgoing, String> {
    let header_version = api.response_header_version(version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let size = header
        .compute_size(header_version)
        .and_then(|h| Ok(h + body.compute_size(version)?))
        .map_err(|e| format!("sizing a {api:?} v{version} response: {e}"))?;
    let mut buf = BytesMut::with_capacity(4 + size);
    buf.put_i32(size as i32);
    header
        .encode(&mut buf, header_version)
        .map_err(|e| format!("encoding a {api:?} v{version} response header: {e}"))?;
    body.encode(&mut buf, version)
        .map_err(|e| format!("encoding a {api:?} v{version} response: {e}"))?;
    debug_assert_eq!(buf.len(), 4 + size, "computed size matches the encoding");
    Ok(Outgoing::One(buf.freeze()))
}
