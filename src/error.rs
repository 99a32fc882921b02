//! What went wrong, as the broker tells a client — independent of any wire
//! protocol.
//!
//! The broker core, the shards and the metadata layer report failures as a
//! [`BrokerError`]: an [`ErrorKind`] plus a message written for the person
//! reading it ("topic \"orders\" has partitions 0..4, not 7"). Each protocol
//! adapter maps the kind to its own stable code (`protocol::native`,
//! `protocol::kafka`); nothing below `protocol/` knows a wire code.
//!
//! Kinds are never removed or renumbered by meaning: an adapter's mapping
//! is part of its protocol's compatibility promise.

use crate::record::BatchError;
use crate::storage::StorageError;
use crate::storage::producers::ProducerError;
use std::fmt;

/// The kind of a failure, as clients of either protocol see it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A bug or unexpected condition in the broker; the message says more.
    UnknownServerError,
    /// The request is malformed or a required field is missing.
    InvalidRequest,
    /// The client speaks a protocol or request version the broker does not.
    UnsupportedVersion,
    /// The request kind is unknown to this broker.
    UnknownRequestKind,
    /// A frame longer than the broker's limit.
    FrameTooLarge,
    /// The broker is shutting down and takes no new work (retriable).
    ShuttingDown,
    /// The request did not complete within its timeout (retriable).
    RequestTimedOut,
    /// The metadata change reached no controller leader, or was computed
    /// from metadata another broker changed meanwhile (retriable).
    NotController,
    /// The partition is on another broker of the cluster (retriable: the
    /// client refreshes its metadata and goes there).
    NotLeaderOrFollower,
    /// The partition's broker is fenced (not heard from): unavailable
    /// until it returns (retriable).
    LeaderNotAvailable,
    /// The group is coordinated by another broker of the cluster
    /// (retriable: the client finds the coordinator again).
    NotCoordinator,
    /// An argument is outside its valid range (acks, max bytes, …).
    InvalidArgument,
    /// The broker is at its connection limit: the connection is refused,
    /// or (on a connection reserved for administration) the request is not
    /// one of metadata, stats or administration (retriable).
    ConnectionLimit,
    /// No topic with this name.
    UnknownTopic,
    /// The topic has no partition with this number.
    UnknownPartition,
    TopicAlreadyExists,
    /// A partition count of zero, above the limit, (when adding
    /// partitions) not above the current count, or more partitions than the
    /// broker's file-descriptor budget lets it hold.
    InvalidPartitionCount,
    /// Topic names are 1–249 characters of `[a-zA-Z0-9._-]`.
    InvalidTopicName,
    /// A topic configuration key or value is not accepted.
    InvalidConfig,
    /// A replication factor this broker cannot provide.
    InvalidReplicationFactor,
    /// The partition has fewer in-sync replicas than its
    /// `min.insync.replicas`: an `acks=all` write is refused, nothing
    /// appended (retriable).
    NotEnoughReplicas,
    /// The write was appended on the leader but the ISR shrank below
    /// `min.insync.replicas` before it was replicated (retriable).
    NotEnoughReplicasAfterAppend,
    /// The request names an older leader epoch than the partition's.
    FencedLeaderEpoch,
    /// The request names a newer leader epoch than this broker knows
    /// (its metadata is behind; retriable).
    UnknownLeaderEpoch,
    /// Internal topics take no writes, creates or deletes from clients.
    InternalTopic,
    /// A batch's CRC does not match its bytes.
    CorruptBatch,
    /// A batch's declared record count disagrees with its records.
    InvalidRecord,
    /// A batch with a magic other than 2.
    UnsupportedMagic,
    /// A batch larger than the topic accepts.
    BatchTooLarge,
    /// A batch is malformed in another way (length, record fields).
    InvalidBatch,
    /// A compression codec the broker cannot decode.
    UnsupportedCompression,
    /// Transactional and control batches are not supported.
    UnsupportedBatchAttributes,
    /// A produce request with no records for a partition.
    EmptyProduce,
    /// An idempotent producer's batch does not follow its last one.
    OutOfOrderSequence,
    /// An idempotent producer's epoch is older than one already seen.
    ProducerFenced,
    /// The offset is below the log start or past the high watermark.
    OffsetOutOfRange,
    /// Stored data failed validation when read back.
    CorruptStoredData,
    /// The partition's storage failed; it is unavailable until reopened.
    StorageFailed,
    /// Group ids are 1 to 255 bytes.
    InvalidGroupId,
    /// The group's coordinator cannot serve it now (retriable).
    CoordinatorNotAvailable,
    /// The member is not (or no longer) in the group: rejoin.
    UnknownMemberId,
    /// The member's generation is not the group's current one.
    IllegalGeneration,
    /// The group is rebalancing: rejoin.
    RebalanceInProgress,
    /// The member's protocol type or protocols do not match the group's.
    InconsistentGroupProtocol,
    /// A new member must join again with the member id it was given.
    MemberIdRequired,
    /// A newer member with the same `group.instance.id` replaced this one.
    FencedInstanceId,
    /// A session timeout outside the broker's accepted range.
    InvalidSessionTimeout,
    GroupIdNotFound,
    /// The group still has members.
    NonEmptyGroup,
    GroupMaxSizeReached,
    /// Commit metadata longer than the broker accepts.
    OffsetMetadataTooLarge,
    /// Offsets of a topic a member is subscribed to cannot be deleted.
    GroupSubscribedToTopic,
    /// The disk is full, or its free space is below the broker's
    /// `--disk-free-min-bytes`: the write was refused or failed and nothing
    /// of it was acknowledged (retriable: writes are taken again once
    /// space is freed, without a restart).
    DiskFull,
    /// A consumer-protocol member's epoch is not one the group gave it:
    /// it must give up its partitions and rejoin.
    FencedMemberEpoch,
    /// A commit or offset fetch from an older member epoch (retriable once
    /// the member has its current epoch).
    StaleMemberEpoch,
    /// A static member's instance id is held by a member still in the group.
    UnreleasedInstanceId,
    /// A server-side assignor the broker does not have.
    UnsupportedAssignor,
    /// A subscription's regular expression does not compile.
    InvalidRegularExpression,
    /// ACLs are not enabled on this broker (`--authorizer none`).
    SecurityDisabled,
    /// A SASL mechanism this broker does not offer.
    UnsupportedSaslMechanism,
    /// The same resource more than once in one request.
    DuplicateResource,
    /// The resource (a user's credential) does not exist.
    ResourceNotFound,
    /// A SCRAM credential the broker does not accept (an empty user name or
    /// salt, an iteration count outside 4096..=16384).
    UnacceptableCredential,
    /// The principal may not do this to the topic (ACLs).
    TopicAuthorizationFailed,
    /// The principal may not do this to the consumer group (ACLs).
    GroupAuthorizationFailed,
    /// The principal may not do this to the cluster (ACLs).
    ClusterAuthorizationFailed,
}

impl ErrorKind {
    /// A stable upper-case name for logs (`UNKNOWN_TOPIC`).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::UnknownServerError => "UNKNOWN_SERVER_ERROR",
            ErrorKind::InvalidRequest => "INVALID_REQUEST",
            ErrorKind::UnsupportedVersion => "UNSUPPORTED_VERSION",
            ErrorKind::UnknownRequestKind => "UNKNOWN_REQUEST_KIND",
            ErrorKind::FrameTooLarge => "FRAME_TOO_LARGE",
            ErrorKind::ShuttingDown => "SHUTTING_DOWN",
            ErrorKind::RequestTimedOut => "REQUEST_TIMED_OUT",
            ErrorKind::NotController => "NOT_CONTROLLER",
            ErrorKind::NotLeaderOrFollower => "NOT_LEADER_OR_FOLLOWER",
            ErrorKind::LeaderNotAvailable => "LEADER_NOT_AVAILABLE",
            ErrorKind::NotCoordinator => "NOT_COORDINATOR",
            ErrorKind::InvalidArgument => "INVALID_ARGUMENT",
            ErrorKind::ConnectionLimit => "CONNECTION_LIMIT",
            ErrorKind::UnknownTopic => "UNKNOWN_TOPIC",
            ErrorKind::UnknownPartition => "UNKNOWN_PARTITION",
            ErrorKind::TopicAlreadyExists => "TOPIC_ALREADY_EXISTS",
            ErrorKind::InvalidPartitionCount => "INVALID_PARTITION_COUNT",
            ErrorKind::InvalidTopicName => "INVALID_TOPIC_NAME",
            ErrorKind::InvalidConfig => "INVALID_CONFIG",
            ErrorKind::InvalidReplicationFactor => "INVALID_REPLICATION_FACTOR",
            ErrorKind::NotEnoughReplicas => "NOT_ENOUGH_REPLICAS",
            ErrorKind::NotEnoughReplicasAfterAppend => "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
            ErrorKind::FencedLeaderEpoch => "FENCED_LEADER_EPOCH",
            ErrorKind::UnknownLeaderEpoch => "UNKNOWN_LEADER_EPOCH",
            ErrorKind::InternalTopic => "INTERNAL_TOPIC",
            ErrorKind::CorruptBatch => "CORRUPT_BATCH",
            ErrorKind::InvalidRecord => "INVALID_RECORD",
            ErrorKind::UnsupportedMagic => "UNSUPPORTED_MAGIC",
            ErrorKind::BatchTooLarge => "BATCH_TOO_LARGE",
            ErrorKind::InvalidBatch => "INVALID_BATCH",
            ErrorKind::UnsupportedCompression => "UNSUPPORTED_COMPRESSION",
            ErrorKind::UnsupportedBatchAttributes => "UNSUPPORTED_BATCH_ATTRIBUTES",
            ErrorKind::EmptyProduce => "EMPTY_PRODUCE",
            ErrorKind::OutOfOrderSequence => "OUT_OF_ORDER_SEQUENCE",
            ErrorKind::ProducerFenced => "PRODUCER_FENCED",
            ErrorKind::OffsetOutOfRange => "OFFSET_OUT_OF_RANGE",
            ErrorKind::CorruptStoredData => "CORRUPT_STORED_DATA",
            ErrorKind::StorageFailed => "STORAGE_FAILED",
            ErrorKind::InvalidGroupId => "INVALID_GROUP_ID",
            ErrorKind::CoordinatorNotAvailable => "COORDINATOR_NOT_AVAILABLE",
            ErrorKind::UnknownMemberId => "UNKNOWN_MEMBER_ID",
            ErrorKind::IllegalGeneration => "ILLEGAL_GENERATION",
            ErrorKind::RebalanceInProgress => "REBALANCE_IN_PROGRESS",
            ErrorKind::InconsistentGroupProtocol => "INCONSISTENT_GROUP_PROTOCOL",
            ErrorKind::MemberIdRequired => "MEMBER_ID_REQUIRED",
            ErrorKind::FencedInstanceId => "FENCED_INSTANCE_ID",
            ErrorKind::InvalidSessionTimeout => "INVALID_SESSION_TIMEOUT",
            ErrorKind::GroupIdNotFound => "GROUP_ID_NOT_FOUND",
            ErrorKind::FencedMemberEpoch => "FENCED_MEMBER_EPOCH",
            ErrorKind::StaleMemberEpoch => "STALE_MEMBER_EPOCH",
            ErrorKind::UnreleasedInstanceId => "UNRELEASED_INSTANCE_ID",
            ErrorKind::UnsupportedAssignor => "UNSUPPORTED_ASSIGNOR",
            ErrorKind::InvalidRegularExpression => "INVALID_REGULAR_EXPRESSION",
            ErrorKind::NonEmptyGroup => "NON_EMPTY_GROUP",
            ErrorKind::GroupMaxSizeReached => "GROUP_MAX_SIZE_REACHED",
            ErrorKind::OffsetMetadataTooLarge => "OFFSET_METADATA_TOO_LARGE",
            ErrorKind::GroupSubscribedToTopic => "GROUP_SUBSCRIBED_TO_TOPIC",
            ErrorKind::DiskFull => "DISK_FULL",
            ErrorKind::SecurityDisabled => "SECURITY_DISABLED",
            ErrorKind::UnsupportedSaslMechanism => "UNSUPPORTED_SASL_MECHANISM",
            ErrorKind::DuplicateResource => "DUPLICATE_RESOURCE",
            ErrorKind::ResourceNotFound => "RESOURCE_NOT_FOUND",
            ErrorKind::UnacceptableCredential => "UNACCEPTABLE_CREDENTIAL",
            ErrorKind::TopicAuthorizationFailed => "TOPIC_AUTHORIZATION_FAILED",
            ErrorKind::GroupAuthorizationFailed => "GROUP_AUTHORIZATION_FAILED",
            ErrorKind::ClusterAuthorizationFailed => "CLUSTER_AUTHORIZATION_FAILED",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A failure with its kind and a message for the person reading it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerError {
    pub kind: ErrorKind,
    pub message: String,
}

impl BrokerError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> BrokerError {
        BrokerError {
            kind,
            message: message.into(),
        }
    }

    pub fn shutting_down() -> BrokerError {
        BrokerError::new(ErrorKind::ShuttingDown, "the broker is shutting down")
    }

    pub fn unknown_topic(name: &str) -> BrokerError {
        BrokerError::new(
            ErrorKind::UnknownTopic,
            format!("topic {name:?} does not exist"),
        )
    }

    pub fn unknown_partition(topic: &str, partition: u32, partitions: u32) -> BrokerError {
        BrokerError::new(
            ErrorKind::UnknownPartition,
            format!("topic {topic:?} has partitions 0..{partitions}, not {partition}"),
        )
    }

    /// A storage failure, with the kind its cause deserves.
    pub fn storage(e: &StorageError) -> BrokerError {
        let kind = match e {
            StorageError::OffsetOutOfRange { .. } => ErrorKind::OffsetOutOfRange,
            StorageError::InvalidBatch { error, .. } => batch_error_kind(error),
            StorageError::EmptyAppend => ErrorKind::EmptyProduce,
            StorageError::Corrupt { .. } => ErrorKind::CorruptStoredData,
            e if e.is_disk_full() => ErrorKind::DiskFull,
            StorageError::Failed { .. } | StorageError::Io { .. } => ErrorKind::StorageFailed,
            StorageError::DiskFull { .. } => ErrorKind::DiskFull,
            StorageError::Closed => ErrorKind::ShuttingDown,
            StorageError::Config(_) => ErrorKind::InvalidConfig,
            // Replication's own errors: a broker-to-broker mismatch.
            StorageError::ReplicaOffsetMismatch { .. }
            | StorageError::TruncateBelowStart { .. }
            | StorageError::Truncated { .. }
            | StorageError::InvalidLeaderEpoch { .. } => ErrorKind::InvalidRequest,
            StorageError::Producer(p) => match p {
                ProducerError::OutOfOrder { .. } => ErrorKind::OutOfOrderSequence,
                ProducerError::Fenced { .. } => ErrorKind::ProducerFenced,
                ProducerError::Invalid { .. } => ErrorKind::InvalidRecord,
            },
        };
        BrokerError::new(kind, e.to_string())
    }
}

/// The kind a batch that failed validation deserves.
pub fn batch_error_kind(e: &BatchError) -> ErrorKind {
    match e {
        BatchError::CrcMismatch { .. } => ErrorKind::CorruptBatch,
        BatchError::UnsupportedMagic { .. } => ErrorKind::UnsupportedMagic,
        BatchError::RecordCountMismatch { .. } => ErrorKind::InvalidRecord,
        BatchError::TooLarge { .. } | BatchError::DecompressedTooLarge { .. } => {
            ErrorKind::BatchTooLarge
        }
        BatchError::UnsupportedCompression { .. } => ErrorKind::UnsupportedCompression,
        BatchError::UnsupportedAttributes { .. } => ErrorKind::UnsupportedBatchAttributes,
        BatchError::NoRecords => ErrorKind::EmptyProduce,
        // Length, last offset delta, a malformed record: the bytes are not
        // a batch as the header describes it.
        _ => ErrorKind::InvalidBatch,
    }
}

impl fmt::Display for BrokerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for BrokerError {}
