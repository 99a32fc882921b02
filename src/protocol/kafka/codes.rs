//! Kafka's error codes for the broker's error kinds. The numbers are
//! Kafka's own (its `Errors` table); clients decide retry or fail by them,
//! so a kind maps to the code whose client behaviour fits it.

use crate::error::ErrorKind;

pub const NONE: i16 = 0;
pub const UNKNOWN_SERVER_ERROR: i16 = -1;
pub const OFFSET_OUT_OF_RANGE: i16 = 1;
pub const CORRUPT_MESSAGE: i16 = 2;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
pub const REQUEST_TIMED_OUT: i16 = 7;
pub const NOT_CONTROLLER: i16 = 41;
pub const MESSAGE_TOO_LARGE: i16 = 10;
pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
pub const INVALID_REQUIRED_ACKS: i16 = 21;
pub const UNSUPPORTED_VERSION: i16 = 35;
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
pub const INVALID_PARTITIONS: i16 = 37;
pub const INVALID_REPLICATION_FACTOR: i16 = 38;
pub const INVALID_CONFIG: i16 = 40;
pub const INVALID_REQUEST: i16 = 42;
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
pub const INVALID_PRODUCER_EPOCH: i16 = 47;
/// Answered to a transactional producer: this broker has no transactions.
pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;
pub const KAFKA_STORAGE_ERROR: i16 = 56;
pub const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
pub const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
pub const INVALID_RECORD: i16 = 87;
pub const UNKNOWN_TOPIC_ID: i16 = 100;
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
pub const NOT_COORDINATOR: i16 = 16;
pub const LEADER_NOT_AVAILABLE: i16 = 5;
pub const ILLEGAL_GENERATION: i16 = 22;
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
pub const INVALID_GROUP_ID: i16 = 24;
pub const UNKNOWN_MEMBER_ID: i16 = 25;
pub const INVALID_SESSION_TIMEOUT: i16 = 26;
pub const REBALANCE_IN_PROGRESS: i16 = 27;
pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
pub const GROUP_ID_NOT_FOUND: i16 = 69;
pub const NON_EMPTY_GROUP: i16 = 68;
pub const MEMBER_ID_REQUIRED: i16 = 79;
pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
pub const FENCED_INSTANCE_ID: i16 = 82;
pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
pub const THROTTLING_QUOTA_EXCEEDED: i16 = 89;
pub const FENCED_MEMBER_EPOCH: i16 = 110;
pub const UNRELEASED_INSTANCE_ID: i16 = 111;
pub const UNSUPPORTED_ASSIGNOR: i16 = 112;
pub const STALE_MEMBER_EPOCH: i16 = 113;
pub const INVALID_REGULAR_EXPRESSION: i16 = 128;
// Answered by authentication (SASL) and authorization (ACLs) on the
// connection layer.
pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
pub const GROUP_AUTHORIZATION_FAILED: i16 = 30;
pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
pub const NOT_ENOUGH_REPLICAS: i16 = 19;
pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = 20;
pub const FENCED_LEADER_EPOCH: i16 = 74;
pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
pub const SASL_AUTHENTICATION_FAILED: i16 = 58;
pub const ILLEGAL_SASL_STATE: i16 = 34;
pub const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
pub const SECURITY_DISABLED: i16 = 54;
pub const RESOURCE_NOT_FOUND: i16 = 91;
pub const DUPLICATE_RESOURCE: i16 = 92;
pub const UNACCEPTABLE_CREDENTIAL: i16 = 93;

/// The Kafka code for an error kind.
pub fn code(kind: ErrorKind) -> i16 {
    match kind {
        ErrorKind::UnknownServerError => UNKNOWN_SERVER_ERROR,
        ErrorKind::InvalidRequest
        | ErrorKind::UnknownRequestKind
        | ErrorKind::FrameTooLarge
        | ErrorKind::InvalidArgument => INVALID_REQUEST,
        ErrorKind::UnsupportedVersion => UNSUPPORTED_VERSION,
        // Retriable: the client refreshes metadata and tries again, which
        // is what a rolling restart needs.
        ErrorKind::ShuttingDown => NOT_LEADER_OR_FOLLOWER,
        ErrorKind::RequestTimedOut => REQUEST_TIMED_OUT,
        ErrorKind::NotController => NOT_CONTROLLER,
        // Kafka connections over the limit are closed, not answered; a
        // retriable code should one ever be needed.
        ErrorKind::ConnectionLimit => THROTTLING_QUOTA_EXCEEDED,
        ErrorKind::UnknownTopic | ErrorKind::UnknownPartition => UNKNOWN_TOPIC_OR_PARTITION,
        ErrorKind::TopicAlreadyExists => TOPIC_ALREADY_EXISTS,
        ErrorKind::InvalidPartitionCount => INVALID_PARTITIONS,
        ErrorKind::InvalidTopicName | ErrorKind::InternalTopic => INVALID_TOPIC_EXCEPTION,
        ErrorKind::InvalidConfig => INVALID_CONFIG,
        ErrorKind::InvalidReplicationFactor => INVALID_REPLICATION_FACTOR,
        ErrorKind::NotEnoughReplicas => NOT_ENOUGH_REPLICAS,
        ErrorKind::NotEnoughReplicasAfterAppend => NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        ErrorKind::FencedLeaderEpoch => FENCED_LEADER_EPOCH,
        ErrorKind::UnknownLeaderEpoch => UNKNOWN_LEADER_EPOCH,
        ErrorKind::CorruptBatch | ErrorKind::InvalidBatch | ErrorKind::EmptyProduce => {
            CORRUPT_MESSAGE
        }
        ErrorKind::InvalidRecord | ErrorKind::UnsupportedBatchAttributes => INVALID_RECORD,
        ErrorKind::UnsupportedMagic => UNSUPPORTED_FOR_MESSAGE_FORMAT,
        ErrorKind::BatchTooLarge => MESSAGE_TOO_LARGE,
        ErrorKind::UnsupportedCompression => UNSUPPORTED_COMPRESSION_TYPE,
        ErrorKind::OffsetOutOfRange => OFFSET_OUT_OF_RANGE,
        ErrorKind::OutOfOrderSequence => OUT_OF_ORDER_SEQUENCE_NUMBER,
        ErrorKind::ProducerFenced => INVALID_PRODUCER_EPOCH,
        // Retriable for Kafka clients (librdkafka and the Java client retry
        // it after a metadata refresh): a full disk is, once space is freed.
        ErrorKind::CorruptStoredData | ErrorKind::StorageFailed | ErrorKind::DiskFull => {
            KAFKA_STORAGE_ERROR
        }
        ErrorKind::InvalidGroupId => INVALID_GROUP_ID,
        ErrorKind::FencedMemberEpoch => FENCED_MEMBER_EPOCH,
        ErrorKind::StaleMemberEpoch => STALE_MEMBER_EPOCH,
        ErrorKind::UnreleasedInstanceId => UNRELEASED_INSTANCE_ID,
        ErrorKind::UnsupportedAssignor => UNSUPPORTED_ASSIGNOR,
        ErrorKind::InvalidRegularExpression => INVALID_REGULAR_EXPRESSION,
        ErrorKind::CoordinatorNotAvailable => COORDINATOR_NOT_AVAILABLE,
        ErrorKind::NotCoordinator => NOT_COORDINATOR,
        ErrorKind::NotLeaderOrFollower => NOT_LEADER_OR_FOLLOWER,
        ErrorKind::LeaderNotAvailable => LEADER_NOT_AVAILABLE,
        ErrorKind::UnknownMemberId => UNKNOWN_MEMBER_ID,
        ErrorKind::IllegalGeneration => ILLEGAL_GENERATION,
        ErrorKind::RebalanceInProgress => REBALANCE_IN_PROGRESS,
        ErrorKind::InconsistentGroupProtocol => INCONSISTENT_GROUP_PROTOCOL,
        ErrorKind::MemberIdRequired => MEMBER_ID_REQUIRED,
        ErrorKind::FencedInstanceId => FENCED_INSTANCE_ID,
        ErrorKind::InvalidSessionTimeout => INVALID_SESSION_TIMEOUT,
        ErrorKind::GroupIdNotFound => GROUP_ID_NOT_FOUND,
        ErrorKind::NonEmptyGroup => NON_EMPTY_GROUP,
        ErrorKind::GroupMaxSizeReached => GROUP_MAX_SIZE_REACHED,
        ErrorKind::OffsetMetadataTooLarge => OFFSET_METADATA_TOO_LARGE,
        ErrorKind::GroupSubscribedToTopic => GROUP_SUBSCRIBED_TO_TOPIC,
        ErrorKind::SecurityDisabled => SECURITY_DISABLED,
        ErrorKind::UnsupportedSaslMechanism => UNSUPPORTED_SASL_MECHANISM,
        ErrorKind::DuplicateResource => DUPLICATE_RESOURCE,
        ErrorKind::ResourceNotFound => RESOURCE_NOT_FOUND,
        ErrorKind::UnacceptableCredential => UNACCEPTABLE_CREDENTIAL,
        ErrorKind::TopicAuthorizationFailed => TOPIC_AUTHORIZATION_FAILED,
        ErrorKind::GroupAuthorizationFailed => GROUP_AUTHORIZATION_FAILED,
        ErrorKind::ClusterAuthorizationFailed => CLUSTER_AUTHORIZATION_FAILED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_a_storage_error_kafka_clients_retry() {
        // KAFKA_STORAGE_ERROR is retriable for librdkafka and the Java
        // client (a KafkaStorageException is an InvalidMetadataException).
        assert_eq!(code(ErrorKind::DiskFull), KAFKA_STORAGE_ERROR);
        assert_eq!(
            crate::protocol::native::error_code(ErrorKind::DiskFull),
            crate::protocol::wire::ErrorCode::DISK_FULL
        );
    }
}
