//! The request schemas the walker follows, and each API's flexible versions.
//!
//! Transcribed from Apache Kafka's message specs,
//! `clients/src/main/resources/common/message/*Request.json` (trunk of
//! October 2024). Four later additions come from the specs `kafka-protocol`
//! 0.18 was generated from (Kafka 4.1): Produce v13's `TopicId`, Fetch v18's
//! `HighWatermark` tag, DescribeCluster v2's `IncludeFencedBrokers` and
//! AlterPartitionReassignments v1's `AllowReplicationFactorChange`.
//!
//! Each struct is a list of fields in wire order, one line per spec entry:
//! `f(name, type, first version)`, then `.until(last version)` for
//! `"versions": "a-b"`, `.null(v)` for `"nullableVersions": "v+"` and
//! `.tagged(tag, v)` for `"tag"` / `"taggedVersions": "v+"`. A schema's
//! versions are those the `kafka-protocol` crate implements.
//!
//! To add an API: transcribe its request spec here as consts (inner structs
//! first), add a [`Schema`] line to [`SCHEMAS`], add its encoder to the
//! cross-check in `tests.rs`, and make sure its key is in
//! [`REQUEST_FLEXIBLE_SINCE`].

use super::{Field, Schema, Span, Ty, f};

const BOOL: Ty = Ty::Fixed(1);
const I8: Ty = Ty::Fixed(1);
const I16: Ty = Ty::Fixed(2);
const I32: Ty = Ty::Fixed(4);
const I64: Ty = Ty::Fixed(8);
const F64: Ty = Ty::Fixed(8);
const UUID: Ty = Ty::Fixed(16);
const STR: Ty = Ty::Str;
const BYTES: Ty = Ty::Bytes;
const RECORDS: Ty = Ty::Records;
const STRS: Ty = Ty::Array(&Ty::Str);
const I32S: Ty = Ty::Array(&I32);

const fn v(min: i16, max: i16) -> Span {
    Span { min, max }
}

/// Per API key, the first version whose request is flexible (header v2,
/// compact lengths, tagged fields), `None` if no version is. Covers every
/// API in the specs, not only those with a schema, so any header can be
/// parsed.
pub(super) static REQUEST_FLEXIBLE_SINCE: &[(i16, Option<i16>)] = &[
    (0, Some(9)),  // Produce
    (1, Some(12)), // Fetch
    (2, Some(6)),  // ListOffsets
    (3, Some(9)),  // Metadata
    (4, Some(4)),  // LeaderAndIsr
    (5, Some(2)),  // StopReplica
    (6, Some(6)),  // UpdateMetadata
    (7, Some(3)),  // ControlledShutdown (v0: header v0)
    (8, Some(8)),  // OffsetCommit
    (9, Some(6)),  // OffsetFetch
    (10, Some(3)), // FindCoordinator
    (11, Some(6)), // JoinGroup
    (12, Some(4)), // Heartbeat
    (13, Some(4)), // LeaveGroup
    (14, Some(4)), // SyncGroup
    (15, Some(5)), // DescribeGroups
    (16, Some(3)), // ListGroups
    (17, None),    // SaslHandshake
    (18, Some(3)), // ApiVersions
    (19, Some(5)), // CreateTopics
    (20, Some(4)), // DeleteTopics
    (21, Some(2)), // DeleteRecords
    (22, Some(2)), // InitProducerId
    (23, Some(4)), // OffsetForLeaderEpoch
    (24, Some(3)), // AddPartitionsToTxn
    (25, Some(3)), // AddOffsetsToTxn
    (26, Some(3)), // EndTxn
    (27, Some(1)), // WriteTxnMarkers
    (28, Some(3)), // TxnOffsetCommit
    (29, Some(2)), // DescribeAcls
    (30, Some(2)), // CreateAcls
    (31, Some(2)), // DeleteAcls
    (32, Some(4)), // DescribeConfigs
    (33, Some(2)), // AlterConfigs
    (34, Some(2)), // AlterReplicaLogDirs
    (35, Some(2)), // DescribeLogDirs
    (36, Some(2)), // SaslAuthenticate
    (37, Some(2)), // CreatePartitions
    (38, Some(2)), // CreateDelegationToken
    (39, Some(2)), // RenewDelegationToken
    (40, Some(2)), // ExpireDelegationToken
    (41, Some(2)), // DescribeDelegationToken
    (42, Some(2)), // DeleteGroups
    (43, Some(2)), // ElectLeaders
    (44, Some(1)), // IncrementalAlterConfigs
    (45, Some(0)), // AlterPartitionReassignments
    (46, Some(0)), // ListPartitionReassignments
    (47, None),    // OffsetDelete
    (48, Some(1)), // DescribeClientQuotas
    (49, Some(1)), // AlterClientQuotas
    (50, Some(0)), // DescribeUserScramCredentials
    (51, Some(0)), // AlterUserScramCredentials
    (52, Some(0)), // Vote
    (53, Some(1)), // BeginQuorumEpoch
    (54, Some(1)), // EndQuorumEpoch
    (55, Some(0)), // DescribeQuorum
    (56, Some(0)), // AlterPartition
    (57, Some(0)), // UpdateFeatures
    (58, Some(0)), // Envelope
    (59, Some(0)), // FetchSnapshot
    (60, Some(0)), // DescribeCluster
    (61, Some(0)), // DescribeProducers
    (62, Some(0)), // BrokerRegistration
    (63, Some(0)), // BrokerHeartbeat
    (64, Some(0)), // UnregisterBroker
    (65, Some(0)), // DescribeTransactions
    (66, Some(0)), // ListTransactions
    (67, Some(0)), // AllocateProducerIds
    (68, Some(0)), // ConsumerGroupHeartbeat
    (69, Some(0)), // ConsumerGroupDescribe
    (70, Some(0)), // ControllerRegistration
    (71, Some(0)), // GetTelemetrySubscriptions
    (72, Some(0)), // PushTelemetry
    (73, Some(0)), // AssignReplicasToDirs
    (74, Some(0)), // ListClientMetricsResources (ListConfigResources)
    (75, Some(0)), // DescribeTopicPartitions
    (76, Some(0)), // ShareGroupHeartbeat
    (77, Some(0)), // ShareGroupDescribe
    (78, Some(0)), // ShareFetch
    (79, Some(0)), // ShareAcknowledge
    (80, Some(0)), // AddRaftVoter
    (81, Some(0)), // RemoveRaftVoter
    (82, Some(0)), // UpdateRaftVoter
    (83, Some(0)), // InitializeShareGroupState
    (84, Some(0)), // ReadShareGroupState
    (85, Some(0)), // WriteShareGroupState
    (86, Some(0)), // DeleteShareGroupState
    (87, Some(0)), // ReadShareGroupStateSummary
    (90, Some(0)), // DescribeShareGroupOffsets
    (91, Some(0)), // AlterShareGroupOffsets
    (92, Some(0)), // DeleteShareGroupOffsets
];

/// Every request the walker covers (one line each, hence no rustfmt).
#[rustfmt::skip]
pub(super) static SCHEMAS: &[Schema] = &[
    s(0, "ProduceRequest", v(3, 13), PRODUCE),
    s(1, "FetchRequest", v(4, 18), FETCH),
    s(2, "ListOffsetsRequest", v(1, 10), LIST_OFFSETS),
    s(3, "MetadataRequest", v(0, 13), METADATA),
    s(8, "OffsetCommitRequest", v(2, 9), OFFSET_COMMIT),
    s(9, "OffsetFetchRequest", v(1, 9), OFFSET_FETCH),
    s(10, "FindCoordinatorRequest", v(0, 6), FIND_COORDINATOR),
    s(11, "JoinGroupRequest", v(0, 9), JOIN_GROUP),
    s(12, "HeartbeatRequest", v(0, 4), HEARTBEAT),
    s(13, "LeaveGroupRequest", v(0, 5), LEAVE_GROUP),
    s(14, "SyncGroupRequest", v(0, 5), SYNC_GROUP),
    s(15, "DescribeGroupsRequest", v(0, 6), DESCRIBE_GROUPS),
    s(16, "ListGroupsRequest", v(0, 5), LIST_GROUPS),
    s(17, "SaslHandshakeRequest", v(0, 1), SASL_HANDSHAKE),
    s(18, "ApiVersionsRequest", v(0, 4), API_VERSIONS),
    s(19, "CreateTopicsRequest", v(2, 7), CREATE_TOPICS),
    s(20, "DeleteTopicsRequest", v(1, 6), DELETE_TOPICS),
    s(22, "InitProducerIdRequest", v(0, 5), INIT_PRODUCER_ID),
    s(23, "OffsetForLeaderEpochRequest", v(2, 4), OFFSET_FOR_LEADER_EPOCH),
    s(29, "DescribeAclsRequest", v(1, 3), ACL_FILTER),
    s(30, "CreateAclsRequest", v(1, 3), CREATE_ACLS),
    s(31, "DeleteAclsRequest", v(1, 3), DELETE_ACLS),
    s(32, "DescribeConfigsRequest", v(1, 4), DESCRIBE_CONFIGS),
    s(36, "SaslAuthenticateRequest", v(0, 2), SASL_AUTHENTICATE),
    s(37, "CreatePartitionsRequest", v(0, 3), CREATE_PARTITIONS),
    s(42, "DeleteGroupsRequest", v(0, 2), DELETE_GROUPS),
    s(44, "IncrementalAlterConfigsRequest", v(0, 1), INCREMENTAL_ALTER_CONFIGS),
    s(45, "AlterPartitionReassignmentsRequest", v(0, 1), ALTER_REASSIGNMENTS),
    s(46, "ListPartitionReassignmentsRequest", v(0, 0), LIST_REASSIGNMENTS),
    s(47, "OffsetDeleteRequest", v(0, 0), OFFSET_DELETE),
    s(48, "DescribeClientQuotasRequest", v(0, 1), DESCRIBE_CLIENT_QUOTAS),
    s(49, "AlterClientQuotasRequest", v(0, 1), ALTER_CLIENT_QUOTAS),
    s(50, "DescribeUserScramCredentialsRequest", v(0, 0), DESCRIBE_SCRAM),
    s(51, "AlterUserScramCredentialsRequest", v(0, 0), ALTER_SCRAM),
    s(60, "DescribeClusterRequest", v(0, 2), DESCRIBE_CLUSTER),
    s(68, "ConsumerGroupHeartbeatRequest", v(0, 1), CONSUMER_GROUP_HEARTBEAT),
    s(69, "ConsumerGroupDescribeRequest", v(0, 1), CONSUMER_GROUP_DESCRIBE),
];

const fn s(api_key: i16, name: &'static str, versions: Span, fields: &'static [Field]) -> Schema {
    Schema {
        api_key,
        name,
        versions,
        fields,
    }
}

// Produce (0). `parse_produce` reads the same layout by hand.
pub(super) const PRODUCE_PARTITION: &[Field] =
    &[f("Index", I32, 0), f("Records", RECORDS, 0).null(0)];
pub(super) const PRODUCE_TOPIC: &[Field] = &[
    f("Name", STR, 0).until(12),
    f("TopicId", UUID, 13),
    f(
        "PartitionData",
        Ty::Array(&Ty::Struct(PRODUCE_PARTITION)),
        0,
    ),
];
pub(super) const PRODUCE: &[Field] = &[
    f("TransactionalId", STR, 3).null(3),
    f("Acks", I16, 0),
    f("TimeoutMs", I32, 0),
    f("TopicData", Ty::Array(&Ty::Struct(PRODUCE_TOPIC)), 0),
];

// Fetch (1).
const FETCH_REPLICA_STATE: &[Field] = &[f("ReplicaId", I32, 15), f("ReplicaEpoch", I64, 15)];
const FETCH_PARTITION: &[Field] = &[
    f("Partition", I32, 0),
    f("CurrentLeaderEpoch", I32, 9),
    f("FetchOffset", I64, 0),
    f("LastFetchedEpoch", I32, 12),
    f("LogStartOffset", I64, 5),
    f("PartitionMaxBytes", I32, 0),
    f("ReplicaDirectoryId", UUID, 17).tagged(0, 17),
    f("HighWatermark", I64, 18).tagged(1, 18),
];
const FETCH_TOPIC: &[Field] = &[
    f("Topic", STR, 0).until(12),
    f("TopicId", UUID, 13),
    f("Partitions", Ty::Array(&Ty::Struct(FETCH_PARTITION)), 0),
];
const FETCH_FORGOTTEN_TOPIC: &[Field] = &[
    f("Topic", STR, 7).until(12),
    f("TopicId", UUID, 13),
    f("Partitions", I32S, 7),
];
const FETCH: &[Field] = &[
    f("ClusterId", STR, 12).null(12).tagged(0, 12),
    f("ReplicaId", I32, 0).until(14),
    f("ReplicaState", Ty::Struct(FETCH_REPLICA_STATE), 15).tagged(1, 15),
    f("MaxWaitMs", I32, 0),
    f("MinBytes", I32, 0),
    f("MaxBytes", I32, 3),
    f("IsolationLevel", I8, 4),
    f("SessionId", I32, 7),
    f("SessionEpoch", I32, 7),
    f("Topics", Ty::Array(&Ty::Struct(FETCH_TOPIC)), 0),
    f(
        "ForgottenTopicsData",
        Ty::Array(&Ty::Struct(FETCH_FORGOTTEN_TOPIC)),
        7,
    ),
    f("RackId", STR, 11),
];

// ListOffsets (2).
const LIST_OFFSETS_PARTITION: &[Field] = &[
    f("PartitionIndex", I32, 0),
    f("CurrentLeaderEpoch", I32, 4),
    f("Timestamp", I64, 0),
    f("MaxNumOffsets", I32, 0).until(0),
];
const LIST_OFFSETS_TOPIC: &[Field] = &[
    f("Name", STR, 0),
    f(
        "Partitions",
        Ty::Array(&Ty::Struct(LIST_OFFSETS_PARTITION)),
        0,
    ),
];
const LIST_OFFSETS: &[Field] = &[
    f("ReplicaId", I32, 0),
    f("IsolationLevel", I8, 2),
    f("Topics", Ty::Array(&Ty::Struct(LIST_OFFSETS_TOPIC)), 0),
    f("TimeoutMs", I32, 10),
];

// Metadata (3).
const METADATA_TOPIC: &[Field] = &[f("TopicId", UUID, 10), f("Name", STR, 0).null(10)];
const METADATA: &[Field] = &[
    f("Topics", Ty::Array(&Ty::Struct(METADATA_TOPIC)), 0).null(1),
    f("AllowAutoTopicCreation", BOOL, 4),
    f("IncludeClusterAuthorizedOperations", BOOL, 8).until(10),
    f("IncludeTopicAuthorizedOperations", BOOL, 8),
];

// OffsetCommit (8).
const OFFSET_COMMIT_PARTITION: &[Field] = &[
    f("PartitionIndex", I32, 0),
    f("CommittedOffset", I64, 0),
    f("CommittedLeaderEpoch", I32, 6),
    f("CommitTimestamp", I64, 1).until(1),
    f("CommittedMetadata", STR, 0).null(0),
];
const OFFSET_COMMIT_TOPIC: &[Field] = &[
    f("Name", STR, 0),
    f(
        "Partitions",
        Ty::Array(&Ty::Struct(OFFSET_COMMIT_PARTITION)),
        0,
    ),
];
const OFFSET_COMMIT: &[Field] = &[
    f("GroupId", STR, 0),
    f("GenerationIdOrMemberEpoch", I32, 1),
    f("MemberId", STR, 1),
    f("GroupInstanceId", STR, 7).null(7),
    f("RetentionTimeMs", I64, 2).until(4),
    f("Topics", Ty::Array(&Ty::Struct(OFFSET_COMMIT_TOPIC)), 0),
];

// OffsetFetch (9): one group up to v7, a list of groups from v8.
const OFFSET_FETCH_TOPIC: &[Field] = &[
    f("Name", STR, 0).until(7),
    f("PartitionIndexes", I32S, 0).until(7),
];
const OFFSET_FETCH_GROUP_TOPIC: &[Field] = &[f("Name", STR, 8), f("PartitionIndexes", I32S, 8)];
const OFFSET_FETCH_GROUP: &[Field] = &[
    f("GroupId", STR, 8),
    f("MemberId", STR, 9).null(9),
    f("MemberEpoch", I32, 9),
    f(
        "Topics",
        Ty::Array(&Ty::Struct(OFFSET_FETCH_GROUP_TOPIC)),
        8,
    )
    .null(8),
];
const OFFSET_FETCH: &[Field] = &[
    f("GroupId", STR, 0).until(7),
    f("Topics", Ty::Array(&Ty::Struct(OFFSET_FETCH_TOPIC)), 0)
        .until(7)
        .null(2),
    f("Groups", Ty::Array(&Ty::Struct(OFFSET_FETCH_GROUP)), 8),
    f("RequireStable", BOOL, 7),
];

// FindCoordinator (10).
const FIND_COORDINATOR: &[Field] = &[
    f("Key", STR, 0).until(3),
    f("KeyType", I8, 1),
    f("CoordinatorKeys", STRS, 4),
];

// JoinGroup (11).
const JOIN_GROUP_PROTOCOL: &[Field] = &[f("Name", STR, 0), f("Metadata", BYTES, 0)];
const JOIN_GROUP: &[Field] = &[
    f("GroupId", STR, 0),
    f("SessionTimeoutMs", I32, 0),
    f("RebalanceTimeoutMs", I32, 1),
    f("MemberId", STR, 0),
    f("GroupInstanceId", STR, 5).null(5),
    f("ProtocolType", STR, 0),
    f("Protocols", Ty::Array(&Ty::Struct(JOIN_GROUP_PROTOCOL)), 0),
    f("Reason", STR, 8).null(8),
];

// Heartbeat (12).
const HEARTBEAT: &[Field] = &[
    f("GroupId", STR, 0),
    f("GenerationId", I32, 0),
    f("MemberId", STR, 0),
    f("GroupInstanceId", STR, 3).null(3),
];

// LeaveGroup (13): one member up to v2, a list of members from v3.
const LEAVE_GROUP_MEMBER: &[Field] = &[
    f("MemberId", STR, 3),
    f("GroupInstanceId", STR, 3).null(3),
    f("Reason", STR, 5).null(5),
];
const LEAVE_GROUP: &[Field] = &[
    f("GroupId", STR, 0),
    f("MemberId", STR, 0).until(2),
    f("Members", Ty::Array(&Ty::Struct(LEAVE_GROUP_MEMBER)), 3),
];

// SyncGroup (14).
const SYNC_GROUP_ASSIGNMENT: &[Field] = &[f("MemberId", STR, 0), f("Assignment", BYTES, 0)];
const SYNC_GROUP: &[Field] = &[
    f("GroupId", STR, 0),
    f("GenerationId", I32, 0),
    f("MemberId", STR, 0),
    f("GroupInstanceId", STR, 3).null(3),
    f("ProtocolType", STR, 5).null(5),
    f("ProtocolName", STR, 5).null(5),
    f(
        "Assignments",
        Ty::Array(&Ty::Struct(SYNC_GROUP_ASSIGNMENT)),
        0,
    ),
];

// DescribeGroups (15), ListGroups (16).
const DESCRIBE_GROUPS: &[Field] = &[
    f("Groups", STRS, 0),
    f("IncludeAuthorizedOperations", BOOL, 3),
];
const LIST_GROUPS: &[Field] = &[f("StatesFilter", STRS, 4), f("TypesFilter", STRS, 5)];

// SaslHandshake (17), ApiVersions (18).
const SASL_HANDSHAKE: &[Field] = &[f("Mechanism", STR, 0)];
const API_VERSIONS: &[Field] = &[
    f("ClientSoftwareName", STR, 3),
    f("ClientSoftwareVersion", STR, 3),
];

// CreateTopics (19).
const CREATE_TOPICS_ASSIGNMENT: &[Field] = &[f("PartitionIndex", I32, 0), f("BrokerIds", I32S, 0)];
const CREATE_TOPICS_CONFIG: &[Field] = &[f("Name", STR, 0), f("Value", STR, 0).null(0)];
const CREATE_TOPICS_TOPIC: &[Field] = &[
    f("Name", STR, 0),
    f("NumPartitions", I32, 0),
    f("ReplicationFactor", I16, 0),
    f(
        "Assignments",
        Ty::Array(&Ty::Struct(CREATE_TOPICS_ASSIGNMENT)),
        0,
    ),
    f("Configs", Ty::Array(&Ty::Struct(CREATE_TOPICS_CONFIG)), 0),
];
const CREATE_TOPICS: &[Field] = &[
    f("Topics", Ty::Array(&Ty::Struct(CREATE_TOPICS_TOPIC)), 0),
    f("timeoutMs", I32, 0),
    f("validateOnly", BOOL, 1),
];

// DeleteTopics (20): names up to v5, names or ids from v6.
const DELETE_TOPICS_STATE: &[Field] = &[f("Name", STR, 6).null(6), f("TopicId", UUID, 6)];
const DELETE_TOPICS: &[Field] = &[
    f("Topics", Ty::Array(&Ty::Struct(DELETE_TOPICS_STATE)), 6),
    f("TopicNames", STRS, 0).until(5),
    f("TimeoutMs", I32, 0),
];

// InitProducerId (22).
const INIT_PRODUCER_ID: &[Field] = &[
    f("TransactionalId", STR, 0).null(0),
    f("TransactionTimeoutMs", I32, 0),
    f("ProducerId", I64, 3),
    f("ProducerEpoch", I16, 3),
];

// OffsetForLeaderEpoch (23).
const OFFSET_FOR_LEADER_EPOCH_PARTITION: &[Field] = &[
    f("Partition", I32, 0),
    f("CurrentLeaderEpoch", I32, 2),
    f("LeaderEpoch", I32, 0),
];
const OFFSET_FOR_LEADER_EPOCH_TOPIC: &[Field] = &[
    f("Topic", STR, 0),
    f(
        "Partitions",
        Ty::Array(&Ty::Struct(OFFSET_FOR_LEADER_EPOCH_PARTITION)),
        0,
    ),
];
const OFFSET_FOR_LEADER_EPOCH: &[Field] = &[
    f("ReplicaId", I32, 3),
    f(
        "Topics",
        Ty::Array(&Ty::Struct(OFFSET_FOR_LEADER_EPOCH_TOPIC)),
        0,
    ),
];

// DescribeAcls (29) is one filter; DeleteAcls (31) a list of them.
const ACL_FILTER: &[Field] = &[
    f("ResourceTypeFilter", I8, 0),
    f("ResourceNameFilter", STR, 0).null(0),
    f("PatternTypeFilter", I8, 1),
    f("PrincipalFilter", STR, 0).null(0),
    f("HostFilter", STR, 0).null(0),
    f("Operation", I8, 0),
    f("PermissionType", I8, 0),
];
const DELETE_ACLS: &[Field] = &[f("Filters", Ty::Array(&Ty::Struct(ACL_FILTER)), 0)];

// CreateAcls (30).
const ACL_CREATION: &[Field] = &[
    f("ResourceType", I8, 0),
    f("ResourceName", STR, 0),
    f("ResourcePatternType", I8, 1),
    f("Principal", STR, 0),
    f("Host", STR, 0),
    f("Operation", I8, 0),
    f("PermissionType", I8, 0),
];
const CREATE_ACLS: &[Field] = &[f("Creations", Ty::Array(&Ty::Struct(ACL_CREATION)), 0)];

// DescribeConfigs (32).
const DESCRIBE_CONFIGS_RESOURCE: &[Field] = &[
    f("ResourceType", I8, 0),
    f("ResourceName", STR, 0),
    f("ConfigurationKeys", STRS, 0).null(0),
];
const DESCRIBE_CONFIGS: &[Field] = &[
    f(
        "Resources",
        Ty::Array(&Ty::Struct(DESCRIBE_CONFIGS_RESOURCE)),
        0,
    ),
    f("IncludeSynonyms", BOOL, 1),
    f("IncludeDocumentation", BOOL, 3),
];

// SaslAuthenticate (36).
const SASL_AUTHENTICATE: &[Field] = &[f("AuthBytes", BYTES, 0)];

// CreatePartitions (37).
const CREATE_PARTITIONS_ASSIGNMENT: &[Field] = &[f("BrokerIds", I32S, 0)];
const CREATE_PARTITIONS_TOPIC: &[Field] = &[
    f("Name", STR, 0),
    f("Count", I32, 0),
    f(
        "Assignments",
        Ty::Array(&Ty::Struct(CREATE_PARTITIONS_ASSIGNMENT)),
        0,
    )
    .null(0),
];
const CREATE_PARTITIONS: &[Field] = &[
    f("Topics", Ty::Array(&Ty::Struct(CREATE_PARTITIONS_TOPIC)), 0),
    f("TimeoutMs", I32, 0),
    f("ValidateOnly", BOOL, 0),
];

// DeleteGroups (42).
const DELETE_GROUPS: &[Field] = &[f("GroupsNames", STRS, 0)];

// IncrementalAlterConfigs (44).
const ALTERABLE_CONFIG: &[Field] = &[
    f("Name", STR, 0),
    f("ConfigOperation", I8, 0),
    f("Value", STR, 0).null(0),
];
const ALTER_CONFIGS_RESOURCE: &[Field] = &[
    f("ResourceType", I8, 0),
    f("ResourceName", STR, 0),
    f("Configs", Ty::Array(&Ty::Struct(ALTERABLE_CONFIG)), 0),
];
const INCREMENTAL_ALTER_CONFIGS: &[Field] = &[
    f(
        "Resources",
        Ty::Array(&Ty::Struct(ALTER_CONFIGS_RESOURCE)),
        0,
    ),
    f("ValidateOnly", BOOL, 0),
];

// AlterPartitionReassignments (45).
const REASSIGNABLE_PARTITION: &[Field] =
    &[f("PartitionIndex", I32, 0), f("Replicas", I32S, 0).null(0)];
const REASSIGNABLE_TOPIC: &[Field] = &[
    f("Name", STR, 0),
    f(
        "Partitions",
        Ty::Array(&Ty::Struct(REASSIGNABLE_PARTITION)),
        0,
    ),
];
const ALTER_REASSIGNMENTS: &[Field] = &[
    f("TimeoutMs", I32, 0),
    f("AllowReplicationFactorChange", BOOL, 1),
    f("Topics", Ty::Array(&Ty::Struct(REASSIGNABLE_TOPIC)), 0),
];

// ListPartitionReassignments (46).
const LIST_REASSIGNMENTS_TOPIC: &[Field] = &[f("Name", STR, 0), f("PartitionIndexes", I32S, 0)];
const LIST_REASSIGNMENTS: &[Field] = &[
    f("TimeoutMs", I32, 0),
    f(
        "Topics",
        Ty::Array(&Ty::Struct(LIST_REASSIGNMENTS_TOPIC)),
        0,
    )
    .null(0),
];

// OffsetDelete (47).
const OFFSET_DELETE_PARTITION: &[Field] = &[f("PartitionIndex", I32, 0)];
const OFFSET_DELETE_TOPIC: &[Field] = &[
    f("Name", STR, 0),
    f(
        "Partitions",
        Ty::Array(&Ty::Struct(OFFSET_DELETE_PARTITION)),
        0,
    ),
];
const OFFSET_DELETE: &[Field] = &[
    f("GroupId", STR, 0),
    f("Topics", Ty::Array(&Ty::Struct(OFFSET_DELETE_TOPIC)), 0),
];

// DescribeClientQuotas (48).
const QUOTA_COMPONENT: &[Field] = &[
    f("EntityType", STR, 0),
    f("MatchType", I8, 0),
    f("Match", STR, 0).null(0),
];
const DESCRIBE_CLIENT_QUOTAS: &[Field] = &[
    f("Components", Ty::Array(&Ty::Struct(QUOTA_COMPONENT)), 0),
    f("Strict", BOOL, 0),
];

// AlterClientQuotas (49).
const QUOTA_ENTITY: &[Field] = &[f("EntityType", STR, 0), f("EntityName", STR, 0).null(0)];
const QUOTA_OP: &[Field] = &[f("Key", STR, 0), f("Value", F64, 0), f("Remove", BOOL, 0)];
const QUOTA_ENTRY: &[Field] = &[
    f("Entity", Ty::Array(&Ty::Struct(QUOTA_ENTITY)), 0),
    f("Ops", Ty::Array(&Ty::Struct(QUOTA_OP)), 0),
];
const ALTER_CLIENT_QUOTAS: &[Field] = &[
    f("Entries", Ty::Array(&Ty::Struct(QUOTA_ENTRY)), 0),
    f("ValidateOnly", BOOL, 0),
];

// DescribeUserScramCredentials (50), AlterUserScramCredentials (51).
const SCRAM_USER: &[Field] = &[f("Name", STR, 0)];
const DESCRIBE_SCRAM: &[Field] = &[f("Users", Ty::Array(&Ty::Struct(SCRAM_USER)), 0).null(0)];
const SCRAM_DELETION: &[Field] = &[f("Name", STR, 0), f("Mechanism", I8, 0)];
const SCRAM_UPSERTION: &[Field] = &[
    f("Name", STR, 0),
    f("Mechanism", I8, 0),
    f("Iterations", I32, 0),
    f("Salt", BYTES, 0),
    f("SaltedPassword", BYTES, 0),
];
const ALTER_SCRAM: &[Field] = &[
    f("Deletions", Ty::Array(&Ty::Struct(SCRAM_DELETION)), 0),
    f("Upsertions", Ty::Array(&Ty::Struct(SCRAM_UPSERTION)), 0),
];

// DescribeCluster (60).
const DESCRIBE_CLUSTER: &[Field] = &[
    f("IncludeClusterAuthorizedOperations", BOOL, 0),
    f("EndpointType", I8, 1),
    f("IncludeFencedBrokers", BOOL, 2),
];

// ConsumerGroupHeartbeat (68).
const CONSUMER_GROUP_TOPIC_PARTITIONS: &[Field] =
    &[f("TopicId", UUID, 0), f("Partitions", I32S, 0)];
const CONSUMER_GROUP_HEARTBEAT: &[Field] = &[
    f("GroupId", STR, 0),
    f("MemberId", STR, 0),
    f("MemberEpoch", I32, 0),
    f("InstanceId", STR, 0).null(0),
    f("RackId", STR, 0).null(0),
    f("RebalanceTimeoutMs", I32, 0),
    f("SubscribedTopicNames", STRS, 0).null(0),
    f("SubscribedTopicRegex", STR, 1).null(1),
    f("ServerAssignor", STR, 0).null(0),
    f(
        "TopicPartitions",
        Ty::Array(&Ty::Struct(CONSUMER_GROUP_TOPIC_PARTITIONS)),
        0,
    )
    .null(0),
];

// ConsumerGroupDescribe (69).
const CONSUMER_GROUP_DESCRIBE: &[Field] = &[
    f("GroupIds", STRS, 0),
    f("IncludeAuthorizedOperations", BOOL, 0),
];
