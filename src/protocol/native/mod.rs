//! corelog's native protocol: flatbuffers frames (`schemas/corelog.fbs`)
//! over the broker core.
//!
//! * [`decode`](self::decode): a verified request frame becomes an owned
//!   request — domain requests of `crate::broker` for the data path, with
//!   produce records carved out of the frame without a copy;
//! * [`handle`](self::handle): runs it against the core and builds the
//!   response flatbuffer (size-prefixed: a complete frame);
//! * this file: verification, and the mapping of each
//!   [`ErrorKind`] to its stable wire code.
//!
//! Every frame runs through the flatbuffers verifier before it is read; a
//! frame that fails gets `INVALID_REQUEST` and the connection goes on.

pub(crate) mod decode;
mod groups;
mod handle;

use super::{Dispatch, LengthPrefix, Outgoing, Protocol, RequestKind, wire};
use crate::constants::FRAME_BYTES_MAX;
use crate::error::{BrokerError, ErrorKind};
use crate::shard::{Counters, ProduceOrder, Shard};
use bytes::BytesMut;
use std::rc::Rc;
use wire::ErrorCode;

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = wire::ProtocolVersion::V1.0;

/// The native protocol, for the server.
pub struct Native;

/// A native connection's state.
#[derive(Default)]
pub struct Session {
    /// Only metadata, stats and admin requests are served (a connection
    /// over the limit, on a reserved slot).
    admin_only: bool,
    /// The order of this connection's produce requests.
    produce_order: ProduceOrder,
    /// Who the connection acts as (the client certificate's subject under
    /// mutual TLS, else anonymous), for the authorizer.
    access: Rc<handle::Access>,
}

impl Protocol for Native {
    const NAME: &'static str = "native";
    const PREFIX: LengthPrefix = LengthPrefix::U32LittleEndian;
    type Session = Session;

    fn session(conn: &super::ConnInfo, admin_only: bool) -> Session {
        Session {
            admin_only,
            produce_order: ProduceOrder::default(),
            access: Rc::new(handle::Access {
                principal: conn
                    .cert_principal
                    .clone()
                    .unwrap_or_else(crate::security::Principal::anonymous),
                ip: conn
                    .peer
                    .map(|p| crate::security::acl::canonical_host(&p.ip().to_string()))
                    .unwrap_or_default(),
            }),
        }
    }

    fn dispatch(shard: &Rc<Shard>, session: &Rc<Session>, frame: BytesMut) -> Dispatch {
        let decoded = decode::decode(frame);
        match &decoded {
            Ok((_, request)) => shard.metrics.request(("native", request.api_name())),
            Err((_, error)) => {
                shard.metrics.request(("native", "Unknown"));
                shard.metrics.error(("native", "Unknown"), error.kind);
            }
        }
        match decoded {
            Ok((corr, request)) if session.admin_only && request.moves_data() => {
                Counters::add(&shard.counters.errors, 1);
                let error = BrokerError::new(
                    ErrorKind::ConnectionLimit,
                    "the broker is at its connection limit; this connection is one kept for metadata, stats and admin requests, so it may not produce or fetch (retry on a new connection later)",
                );
                Dispatch::Reply(Outgoing::One(
                    handle::error_response(corr, &error).into_bytes(),
                ))
            }
            Ok((corr, request)) => {
                let shard = shard.clone();
                // A produce takes its turn now, in arrival order (see
                // `shard::order`).
                let (kind, turn) = match request {
                    decode::Request::Produce(_) => {
                        (RequestKind::Produce, Some(session.produce_order.turn()))
                    }
                    decode::Request::Fetch(_) => (RequestKind::Fetch, None),
                    _ => (RequestKind::Other, None),
                };
                let access = session.access.clone();
                Dispatch::Handle(
                    Box::pin(async move {
                        handle::handle(&shard, &access, corr, request, turn)
                            .await
                            .map(handle::ResponseFrame::into_outgoing)
                    }),
                    kind,
                )
            }
            Err((corr, error)) => {
                Counters::add(&shard.counters.errors, 1);
                tracing::debug!(shard = %shard.id, %error, "bad native request");
                Dispatch::Reply(Outgoing::One(
                    handle::error_response(corr, &error).into_bytes(),
                ))
            }
        }
    }

    const ANSWERS_REFUSALS: bool = true;

    fn refusal(frame: &[u8]) -> Option<Outgoing> {
        // Answered with the request's correlation id when it has one, so the
        // client reads the error as the answer to what it sent.
        let corr = super::parse_request(frame)
            .map(|envelope| envelope.correlation_id())
            .unwrap_or(0);
        let error = BrokerError::new(
            ErrorKind::ConnectionLimit,
            "the broker is at its connection limit (--max-connections) and refused this connection; retry later or ask the operator to raise the limit",
        );
        Some(Outgoing::One(
            handle::error_response(corr, &error).into_bytes(),
        ))
    }

    fn frame_too_large(declared: u64, max: usize) -> Option<Outgoing> {
        let error = BrokerError::new(
            ErrorKind::FrameTooLarge,
            format!("frame of {declared} bytes exceeds the limit of {max}"),
        );
        Some(Outgoing::One(
            handle::error_response(0, &error).into_bytes(),
        ))
    }
}

/// The stable wire code of an error kind. Codes are never reused; a kind
/// without a code of its own maps to the closest one.
pub fn error_code(kind: ErrorKind) -> ErrorCode {
    match kind {
        ErrorKind::UnknownServerError => ErrorCode::UNKNOWN_SERVER_ERROR,
        ErrorKind::InvalidRequest => ErrorCode::INVALID_REQUEST,
        ErrorKind::UnsupportedVersion => ErrorCode::UNSUPPORTED_VERSION,
        ErrorKind::UnknownRequestKind => ErrorCode::UNKNOWN_REQUEST_KIND,
        ErrorKind::FrameTooLarge => ErrorCode::FRAME_TOO_LARGE,
        ErrorKind::ShuttingDown => ErrorCode::SHUTTING_DOWN,
        // Retriable in both cases; the message says which.
        ErrorKind::RequestTimedOut | ErrorKind::NotController => ErrorCode::REQUEST_TIMED_OUT,
        ErrorKind::ConnectionLimit => ErrorCode::CONNECTION_LIMIT,
        ErrorKind::InvalidArgument => ErrorCode::INVALID_ARGUMENT,
        ErrorKind::UnknownTopic => ErrorCode::UNKNOWN_TOPIC,
        ErrorKind::UnknownPartition => ErrorCode::UNKNOWN_PARTITION,
        ErrorKind::TopicAlreadyExists => ErrorCode::TOPIC_ALREADY_EXISTS,
        ErrorKind::InvalidPartitionCount => ErrorCode::INVALID_PARTITION_COUNT,
        ErrorKind::InvalidTopicName => ErrorCode::INVALID_TOPIC_NAME,
        ErrorKind::InvalidConfig => ErrorCode::INVALID_CONFIG,
        ErrorKind::InvalidReplicationFactor => ErrorCode::INVALID_REPLICATION_FACTOR,
        ErrorKind::NotEnoughReplicas => ErrorCode::NOT_ENOUGH_REPLICAS,
        ErrorKind::NotEnoughReplicasAfterAppend => ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        ErrorKind::FencedLeaderEpoch => ErrorCode::FENCED_LEADER_EPOCH,
        ErrorKind::UnknownLeaderEpoch => ErrorCode::UNKNOWN_LEADER_EPOCH,
        ErrorKind::InternalTopic => ErrorCode::INVALID_ARGUMENT,
        ErrorKind::CorruptBatch => ErrorCode::CORRUPT_BATCH_CRC,
        ErrorKind::InvalidRecord => ErrorCode::RECORD_COUNT_MISMATCH,
        ErrorKind::UnsupportedMagic => ErrorCode::UNSUPPORTED_MAGIC,
        ErrorKind::BatchTooLarge => ErrorCode::BATCH_TOO_LARGE,
        ErrorKind::InvalidBatch => ErrorCode::INVALID_BATCH,
        ErrorKind::UnsupportedCompression => ErrorCode::UNSUPPORTED_COMPRESSION,
        ErrorKind::UnsupportedBatchAttributes => ErrorCode::UNSUPPORTED_BATCH_ATTRIBUTES,
        ErrorKind::EmptyProduce => ErrorCode::EMPTY_PRODUCE,
        ErrorKind::OutOfOrderSequence => ErrorCode::OUT_OF_ORDER_SEQUENCE,
        ErrorKind::ProducerFenced => ErrorCode::PRODUCER_FENCED,
        ErrorKind::OffsetOutOfRange => ErrorCode::OFFSET_OUT_OF_RANGE,
        ErrorKind::CorruptStoredData => ErrorCode::CORRUPT_STORED_DATA,
        ErrorKind::StorageFailed => ErrorCode::STORAGE_FAILED,
        ErrorKind::DiskFull => ErrorCode::DISK_FULL,
        ErrorKind::InvalidGroupId => ErrorCode::INVALID_GROUP_ID,
        ErrorKind::CoordinatorNotAvailable | ErrorKind::NotCoordinator => {
            ErrorCode::COORDINATOR_NOT_AVAILABLE
        }
        ErrorKind::NotLeaderOrFollower | ErrorKind::LeaderNotAvailable => {
            ErrorCode::NOT_LEADER_OR_FOLLOWER
        }
        ErrorKind::UnknownMemberId => ErrorCode::UNKNOWN_MEMBER_ID,
        ErrorKind::FencedMemberEpoch => ErrorCode::FENCED_MEMBER_EPOCH,
        ErrorKind::StaleMemberEpoch => ErrorCode::STALE_MEMBER_EPOCH,
        ErrorKind::UnreleasedInstanceId => ErrorCode::UNRELEASED_INSTANCE_ID,
        ErrorKind::UnsupportedAssignor => ErrorCode::UNSUPPORTED_ASSIGNOR,
        ErrorKind::InvalidRegularExpression => ErrorCode::INVALID_REGULAR_EXPRESSION,
        ErrorKind::GroupMaxSizeReached => ErrorCode::GROUP_MAX_SIZE_REACHED,
        ErrorKind::InconsistentGroupProtocol => ErrorCode::INCONSISTENT_GROUP_PROTOCOL,
        ErrorKind::OffsetMetadataTooLarge => ErrorCode::OFFSET_METADATA_TOO_LARGE,
        ErrorKind::GroupIdNotFound => ErrorCode::GROUP_ID_NOT_FOUND,
        ErrorKind::NonEmptyGroup => ErrorCode::NON_EMPTY_GROUP,
        // Kafka's classic protocol only: native members use the consumer
        // protocol, so these cannot arise here.
        ErrorKind::IllegalGeneration
        | ErrorKind::RebalanceInProgress
        | ErrorKind::MemberIdRequired
        | ErrorKind::FencedInstanceId
        | ErrorKind::InvalidSessionTimeout
        | ErrorKind::GroupSubscribedToTopic => ErrorCode::INVALID_ARGUMENT,
        // Security administration is served on the Kafka listener only.
        ErrorKind::SecurityDisabled
        | ErrorKind::UnsupportedSaslMechanism
        | ErrorKind::DuplicateResource
        | ErrorKind::ResourceNotFound
        | ErrorKind::UnacceptableCredential => ErrorCode::INVALID_ARGUMENT,
        ErrorKind::TopicAuthorizationFailed => ErrorCode::TOPIC_AUTHORIZATION_FAILED,
        ErrorKind::GroupAuthorizationFailed => ErrorCode::GROUP_AUTHORIZATION_FAILED,
        ErrorKind::ClusterAuthorizationFailed => ErrorCode::CLUSTER_AUTHORIZATION_FAILED,
    }
}

/// Verifier limits for requests: generous for real requests, tight enough
/// that a hostile frame cannot make verification expensive.
pub fn verifier_options() -> flatbuffers::VerifierOptions {
    flatbuffers::VerifierOptions {
        max_depth: 16,
        max_tables: 1 << 20,
        max_apparent_size: FRAME_BYTES_MAX * 2,
        ignore_missing_null_terminator: false,
    }
}

/// Verifies and opens a request frame (length prefix included).
pub fn parse_request(
    frame: &[u8],
) -> Result<wire::RequestEnvelope<'_>, flatbuffers::InvalidFlatbuffer> {
    wire::size_prefixed_root_as_request_envelope_with_opts(&verifier_options(), frame)
}

/// Verifies and opens a response frame (length prefix included).
pub fn parse_response(
    frame: &[u8],
) -> Result<wire::ResponseEnvelope<'_>, flatbuffers::InvalidFlatbuffer> {
    flatbuffers::size_prefixed_root_with_opts::<wire::ResponseEnvelope>(&verifier_options(), frame)
}

/// A stable, human-readable name for a code (`UNKNOWN_TOPIC`), or its
/// number for codes newer than this build.
pub fn error_name(code: ErrorCode) -> String {
    code.variant_name()
        .map_or_else(|| format!("ERROR_{}", code.0), str::to_string)
}
