//! The walker against the `kafka-protocol` crate: every covered request and
//! version is built and encoded with the crate and must walk to its exact
//! end; hostile and random input must be refused without panics; whatever
//! the walker accepts must decode with the crate to the same end.

use super::*;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::alter_client_quotas_request::*;
use kafka_protocol::messages::alter_partition_reassignments_request::*;
use kafka_protocol::messages::alter_user_scram_credentials_request::*;
use kafka_protocol::messages::consumer_group_heartbeat_request::*;
use kafka_protocol::messages::create_acls_request::*;
use kafka_protocol::messages::create_partitions_request::*;
use kafka_protocol::messages::create_topics_request::*;
use kafka_protocol::messages::delete_acls_request::*;
use kafka_protocol::messages::delete_topics_request::*;
use kafka_protocol::messages::describe_client_quotas_request::*;
use kafka_protocol::messages::describe_configs_request::*;
use kafka_protocol::messages::describe_user_scram_credentials_request::*;
use kafka_protocol::messages::fetch_request::*;
use kafka_protocol::messages::incremental_alter_configs_request::*;
use kafka_protocol::messages::join_group_request::*;
use kafka_protocol::messages::leave_group_request::*;
use kafka_protocol::messages::list_offsets_request::*;
use kafka_protocol::messages::list_partition_reassignments_request::*;
use kafka_protocol::messages::metadata_request::*;
use kafka_protocol::messages::offset_commit_request::*;
use kafka_protocol::messages::offset_delete_request::*;
use kafka_protocol::messages::offset_fetch_request::*;
use kafka_protocol::messages::offset_for_leader_epoch_request::*;
use kafka_protocol::messages::produce_request::*;
use kafka_protocol::messages::sync_group_request::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, Message, Request, StrBytes};
use proptest::prelude::*;
use std::collections::BTreeMap;
use uuid::Uuid;

// ---------------------------------------------------------------------------
// Building requests with the crate.

fn s(text: &'static str) -> StrBytes {
    StrBytes::from_static_str(text)
}

fn topic(name: &'static str) -> TopicName {
    TopicName(s(name))
}

fn group(name: &'static str) -> GroupId {
    GroupId(s(name))
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

/// Unknown tagged fields put on every struct (ignored by the crate outside
/// flexible versions). Numbers above any tag a request spec uses.
fn tags() -> BTreeMap<i32, Bytes> {
    BTreeMap::from([
        (90, Bytes::from_static(b"tag")),
        (91, Bytes::new()),
        (300, Bytes::from_static(&[0x80; 130])),
    ])
}

fn encode<T: Encodable>(message: &T, version: i16) -> Vec<u8> {
    let mut buf = BytesMut::new();
    if let Err(e) = message.encode(&mut buf, version) {
        panic!("the crate cannot encode version {version}: {e}");
    }
    buf.to_vec()
}

/// Where the crate's decoder stopped, or why it failed.
fn decoded_end<T: Decodable>(body: &[u8], version: i16) -> Result<usize, String> {
    let mut buf = Bytes::copy_from_slice(body);
    T::decode(&mut buf, version)
        .map(|_| body.len() - buf.len())
        .map_err(|e| e.to_string())
}

fn full_produce(v: i16) -> ProduceRequest {
    let partition = |index: i32, records: Option<&'static [u8]>| {
        PartitionProduceData::default()
            .with_index(index)
            .with_records(records.map(Bytes::from_static))
            .with_unknown_tagged_fields(tags())
    };
    let topic_data = |name: &'static str, n: u128| {
        let t = TopicProduceData::default()
            .with_partition_data(vec![
                partition(0, Some(b"batch-zero")),
                partition(1, None),
                partition(7, Some(b"seven")),
            ])
            .with_unknown_tagged_fields(tags());
        if v >= 13 {
            t.with_topic_id(id(n))
        } else {
            t.with_name(topic(name))
        }
    };
    ProduceRequest::default()
        .with_transactional_id(Some(TransactionalId(s("txn-1"))))
        .with_acks(-1)
        .with_timeout_ms(1500)
        .with_topic_data(vec![topic_data("orders", 1), topic_data("payments", 2)])
        .with_unknown_tagged_fields(tags())
}

fn fetch_partition(v: i16, index: i32) -> FetchPartition {
    let mut p = FetchPartition::default()
        .with_partition(index)
        .with_fetch_offset(100)
        .with_partition_max_bytes(1 << 20)
        .with_unknown_tagged_fields(tags());
    if v >= 5 {
        p = p.with_log_start_offset(7);
    }
    if v >= 9 {
        p = p.with_current_leader_epoch(3);
    }
    if v >= 12 {
        p = p.with_last_fetched_epoch(2);
    }
    if v >= 17 {
        p = p.with_replica_directory_id(id(9));
    }
    if v >= 18 {
        p = p.with_high_watermark(55);
    }
    p
}

fn full_fetch(v: i16) -> FetchRequest {
    let fetch_topic = |name: &'static str, n: u128| {
        let t = FetchTopic::default()
            .with_partitions(vec![fetch_partition(v, 0), fetch_partition(v, 1)])
            .with_unknown_tagged_fields(tags());
        if v >= 13 {
            t.with_topic_id(id(n))
        } else {
            t.with_topic(topic(name))
        }
    };
    let forgotten = |name: &'static str, n: u128| {
        let t = ForgottenTopic::default()
            .with_partitions(vec![4, 5])
            .with_unknown_tagged_fields(tags());
        if v >= 13 {
            t.with_topic_id(id(n))
        } else {
            t.with_topic(topic(name))
        }
    };
    let mut r = FetchRequest::default()
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_isolation_level(1)
        .with_topics(vec![fetch_topic("a", 1), fetch_topic("b", 2)])
        .with_unknown_tagged_fields(tags());
    if v >= 7 {
        r = r
            .with_session_id(12)
            .with_session_epoch(3)
            .with_forgotten_topics_data(vec![forgotten("c", 3), forgotten("d", 4)]);
    }
    if v >= 11 {
        r = r.with_rack_id(s("rack-1"));
    }
    if v >= 12 {
        r = r.with_cluster_id(Some(s("cluster-1")));
    }
    if v >= 15 {
        r = r.with_replica_state(
            ReplicaState::default()
                .with_replica_id(BrokerId(5))
                .with_replica_epoch(8)
                .with_unknown_tagged_fields(tags()),
        );
    }
    r
}

fn full_list_offsets(v: i16) -> ListOffsetsRequest {
    let partition = |index: i32| {
        let p = ListOffsetsPartition::default()
            .with_partition_index(index)
            .with_timestamp(-1)
            .with_unknown_tagged_fields(tags());
        if v >= 4 {
            p.with_current_leader_epoch(2)
        } else {
            p
        }
    };
    let t = |name| {
        ListOffsetsTopic::default()
            .with_name(topic(name))
            .with_partitions(vec![partition(0), partition(1)])
            .with_unknown_tagged_fields(tags())
    };
    let mut r = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![t("a"), t("b")])
        .with_unknown_tagged_fields(tags());
    if v >= 2 {
        r = r.with_isolation_level(1);
    }
    if v >= 10 {
        r = r.with_timeout_ms(3000);
    }
    r
}

fn full_metadata(v: i16) -> MetadataRequest {
    let t = |name, n| {
        let t = MetadataRequestTopic::default()
            .with_name(Some(topic(name)))
            .with_unknown_tagged_fields(tags());
        if v >= 10 { t.with_topic_id(id(n)) } else { t }
    };
    let mut r = MetadataRequest::default()
        .with_topics(Some(vec![t("a", 1), t("b", 2)]))
        .with_unknown_tagged_fields(tags());
    if v >= 4 {
        r = r.with_allow_auto_topic_creation(false);
    }
    if (8..=10).contains(&v) {
        r = r.with_include_cluster_authorized_operations(true);
    }
    if v >= 8 {
        r = r.with_include_topic_authorized_operations(true);
    }
    r
}

fn full_offset_commit(v: i16) -> OffsetCommitRequest {
    let partition = |index: i32| {
        let p = OffsetCommitRequestPartition::default()
            .with_partition_index(index)
            .with_committed_offset(10)
            .with_committed_metadata(Some(s("meta")))
            .with_unknown_tagged_fields(tags());
        if v >= 6 {
            p.with_committed_leader_epoch(4)
        } else {
            p
        }
    };
    let t = |name| {
        OffsetCommitRequestTopic::default()
            .with_name(topic(name))
            .with_partitions(vec![partition(0), partition(1)])
            .with_unknown_tagged_fields(tags())
    };
    let mut r = OffsetCommitRequest::default()
        .with_group_id(group("g"))
        .with_generation_id_or_member_epoch(5)
        .with_member_id(s("member"))
        .with_topics(vec![t("a"), t("b")])
        .with_unknown_tagged_fields(tags());
    if v >= 7 {
        r = r.with_group_instance_id(Some(s("instance")));
    }
    if v <= 4 {
        r = r.with_retention_time_ms(1000);
    }
    r
}

fn full_offset_fetch(v: i16) -> OffsetFetchRequest {
    let mut r = OffsetFetchRequest::default().with_unknown_tagged_fields(tags());
    if v <= 7 {
        let t = |name| {
            OffsetFetchRequestTopic::default()
                .with_name(topic(name))
                .with_partition_indexes(vec![0, 1])
                .with_unknown_tagged_fields(tags())
        };
        r = r
            .with_group_id(group("g"))
            .with_topics(Some(vec![t("a"), t("b")]));
    } else {
        let t = |name| {
            OffsetFetchRequestTopics::default()
                .with_name(topic(name))
                .with_partition_indexes(vec![0, 1])
                .with_unknown_tagged_fields(tags())
        };
        let g = |name| {
            let g = OffsetFetchRequestGroup::default()
                .with_group_id(group(name))
                .with_topics(Some(vec![t("a"), t("b")]))
                .with_unknown_tagged_fields(tags());
            if v >= 9 {
                g.with_member_id(Some(s("member"))).with_member_epoch(3)
            } else {
                g
            }
        };
        r = r.with_groups(vec![g("g1"), g("g2")]);
    }
    if v >= 7 {
        r = r.with_require_stable(true);
    }
    r
}

fn full_find_coordinator(v: i16) -> FindCoordinatorRequest {
    let mut r = FindCoordinatorRequest::default().with_unknown_tagged_fields(tags());
    if v <= 3 {
        r = r.with_key(s("g"));
    }
    if v >= 1 {
        r = r.with_key_type(1);
    }
    if v >= 4 {
        r = r.with_coordinator_keys(vec![s("a"), s("b")]);
    }
    r
}

fn full_join_group(v: i16) -> JoinGroupRequest {
    let protocol = |name| {
        JoinGroupRequestProtocol::default()
            .with_name(s(name))
            .with_metadata(Bytes::from_static(b"\x00\x01meta"))
            .with_unknown_tagged_fields(tags())
    };
    let mut r = JoinGroupRequest::default()
        .with_group_id(group("g"))
        .with_session_timeout_ms(10_000)
        .with_member_id(s("member"))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![protocol("range"), protocol("roundrobin")])
        .with_unknown_tagged_fields(tags());
    if v >= 1 {
        r = r.with_rebalance_timeout_ms(20_000);
    }
    if v >= 5 {
        r = r.with_group_instance_id(Some(s("instance")));
    }
    if v >= 8 {
        r = r.with_reason(Some(s("rejoin")));
    }
    r
}

fn full_heartbeat(v: i16) -> HeartbeatRequest {
    let r = HeartbeatRequest::default()
        .with_group_id(group("g"))
        .with_generation_id(4)
        .with_member_id(s("member"))
        .with_unknown_tagged_fields(tags());
    if v >= 3 {
        r.with_group_instance_id(Some(s("instance")))
    } else {
        r
    }
}

fn full_leave_group(v: i16) -> LeaveGroupRequest {
    let r = LeaveGroupRequest::default()
        .with_group_id(group("g"))
        .with_unknown_tagged_fields(tags());
    if v <= 2 {
        return r.with_member_id(s("member"));
    }
    let member = |name| {
        let m = MemberIdentity::default()
            .with_member_id(s(name))
            .with_group_instance_id(Some(s("instance")))
            .with_unknown_tagged_fields(tags());
        if v >= 5 {
            m.with_reason(Some(s("bye")))
        } else {
            m
        }
    };
    r.with_members(vec![member("m1"), member("m2")])
}

fn full_sync_group(v: i16) -> SyncGroupRequest {
    let assignment = |name| {
        SyncGroupRequestAssignment::default()
            .with_member_id(s(name))
            .with_assignment(Bytes::from_static(b"assignment"))
            .with_unknown_tagged_fields(tags())
    };
    let mut r = SyncGroupRequest::default()
        .with_group_id(group("g"))
        .with_generation_id(4)
        .with_member_id(s("member"))
        .with_assignments(vec![assignment("m1"), assignment("m2")])
        .with_unknown_tagged_fields(tags());
    if v >= 3 {
        r = r.with_group_instance_id(Some(s("instance")));
    }
    if v >= 5 {
        r = r
            .with_protocol_type(Some(s("consumer")))
            .with_protocol_name(Some(s("range")));
    }
    r
}

fn full_describe_groups(v: i16) -> DescribeGroupsRequest {
    let r = DescribeGroupsRequest::default()
        .with_groups(vec![group("a"), group("b")])
        .with_unknown_tagged_fields(tags());
    if v >= 3 {
        r.with_include_authorized_operations(true)
    } else {
        r
    }
}

fn full_list_groups(v: i16) -> ListGroupsRequest {
    let mut r = ListGroupsRequest::default().with_unknown_tagged_fields(tags());
    if v >= 4 {
        r = r.with_states_filter(vec![s("Stable"), s("Empty")]);
    }
    if v >= 5 {
        r = r.with_types_filter(vec![s("classic"), s("consumer")]);
    }
    r
}

fn full_sasl_handshake(_v: i16) -> SaslHandshakeRequest {
    SaslHandshakeRequest::default().with_mechanism(s("PLAIN"))
}

fn full_api_versions(v: i16) -> ApiVersionsRequest {
    let r = ApiVersionsRequest::default().with_unknown_tagged_fields(tags());
    if v >= 3 {
        r.with_client_software_name(s("corelog"))
            .with_client_software_version(s("0.1.0"))
    } else {
        r
    }
}

fn full_create_topics(_v: i16) -> CreateTopicsRequest {
    let assignment = |index| {
        CreatableReplicaAssignment::default()
            .with_partition_index(index)
            .with_broker_ids(vec![BrokerId(1), BrokerId(2)])
            .with_unknown_tagged_fields(tags())
    };
    let config = |name| {
        CreatableTopicConfig::default()
            .with_name(s(name))
            .with_value(Some(s("1000")))
            .with_unknown_tagged_fields(tags())
    };
    let t = |name| {
        CreatableTopic::default()
            .with_name(topic(name))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(vec![assignment(0), assignment(1)])
            .with_configs(vec![config("retention.ms"), config("segment.ms")])
            .with_unknown_tagged_fields(tags())
    };
    CreateTopicsRequest::default()
        .with_topics(vec![t("a"), t("b")])
        .with_timeout_ms(5000)
        .with_validate_only(true)
        .with_unknown_tagged_fields(tags())
}

fn full_delete_topics(v: i16) -> DeleteTopicsRequest {
    let r = DeleteTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_unknown_tagged_fields(tags());
    if v <= 5 {
        return r.with_topic_names(vec![topic("a"), topic("b")]);
    }
    let state = |name, n| {
        DeleteTopicState::default()
            .with_name(Some(topic(name)))
            .with_topic_id(id(n))
            .with_unknown_tagged_fields(tags())
    };
    r.with_topics(vec![state("a", 1), state("b", 2)])
}

fn full_init_producer_id(v: i16) -> InitProducerIdRequest {
    let r = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(s("txn-1"))))
        .with_transaction_timeout_ms(60_000)
        .with_unknown_tagged_fields(tags());
    if v >= 3 {
        r.with_producer_id(ProducerId(5)).with_producer_epoch(2)
    } else {
        r
    }
}

fn full_offset_for_leader_epoch(v: i16) -> OffsetForLeaderEpochRequest {
    let partition = |index| {
        OffsetForLeaderPartition::default()
            .with_partition(index)
            .with_current_leader_epoch(1)
            .with_leader_epoch(2)
            .with_unknown_tagged_fields(tags())
    };
    let t = |name| {
        OffsetForLeaderTopic::default()
            .with_topic(topic(name))
            .with_partitions(vec![partition(0), partition(1)])
            .with_unknown_tagged_fields(tags())
    };
    let r = OffsetForLeaderEpochRequest::default()
        .with_topics(vec![t("a"), t("b")])
        .with_unknown_tagged_fields(tags());
    if v >= 3 {
        r.with_replica_id(BrokerId(3))
    } else {
        r
    }
}

fn full_describe_acls(_v: i16) -> DescribeAclsRequest {
    DescribeAclsRequest::default()
        .with_resource_type_filter(2)
        .with_resource_name_filter(Some(s("orders")))
        .with_pattern_type_filter(3)
        .with_principal_filter(Some(s("User:alice")))
        .with_host_filter(Some(s("*")))
        .with_operation(2)
        .with_permission_type(3)
        .with_unknown_tagged_fields(tags())
}

fn full_create_acls(_v: i16) -> CreateAclsRequest {
    let creation = |name| {
        AclCreation::default()
            .with_resource_type(2)
            .with_resource_name(s(name))
            .with_resource_pattern_type(3)
            .with_principal(s("User:alice"))
            .with_host(s("*"))
            .with_operation(2)
            .with_permission_type(3)
            .with_unknown_tagged_fields(tags())
    };
    CreateAclsRequest::default()
        .with_creations(vec![creation("a"), creation("b")])
        .with_unknown_tagged_fields(tags())
}

fn full_delete_acls(_v: i16) -> DeleteAclsRequest {
    let filter = |name| {
        DeleteAclsFilter::default()
            .with_resource_type_filter(2)
            .with_resource_name_filter(Some(s(name)))
            .with_pattern_type_filter(3)
            .with_principal_filter(Some(s("User:alice")))
            .with_host_filter(Some(s("*")))
            .with_operation(2)
            .with_permission_type(3)
            .with_unknown_tagged_fields(tags())
    };
    DeleteAclsRequest::default()
        .with_filters(vec![filter("a"), filter("b")])
        .with_unknown_tagged_fields(tags())
}

fn full_describe_configs(v: i16) -> DescribeConfigsRequest {
    let resource = |name| {
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(name))
            .with_configuration_keys(Some(vec![s("retention.ms"), s("segment.ms")]))
            .with_unknown_tagged_fields(tags())
    };
    let r = DescribeConfigsRequest::default()
        .with_resources(vec![resource("a"), resource("b")])
        .with_include_synonyms(true)
        .with_unknown_tagged_fields(tags());
    if v >= 3 {
        r.with_include_documentation(true)
    } else {
        r
    }
}

fn full_sasl_authenticate(_v: i16) -> SaslAuthenticateRequest {
    SaslAuthenticateRequest::default()
        .with_auth_bytes(Bytes::from_static(b"\0alice\0secret"))
        .with_unknown_tagged_fields(tags())
}

fn full_create_partitions(_v: i16) -> CreatePartitionsRequest {
    let assignment = || {
        CreatePartitionsAssignment::default()
            .with_broker_ids(vec![BrokerId(1), BrokerId(2)])
            .with_unknown_tagged_fields(tags())
    };
    let t = |name| {
        CreatePartitionsTopic::default()
            .with_name(topic(name))
            .with_count(6)
            .with_assignments(Some(vec![assignment(), assignment()]))
            .with_unknown_tagged_fields(tags())
    };
    CreatePartitionsRequest::default()
        .with_topics(vec![t("a"), t("b")])
        .with_timeout_ms(100)
        .with_validate_only(true)
        .with_unknown_tagged_fields(tags())
}

fn full_delete_groups(_v: i16) -> DeleteGroupsRequest {
    DeleteGroupsRequest::default()
        .with_groups_names(vec![group("a"), group("b")])
        .with_unknown_tagged_fields(tags())
}

fn full_incremental_alter_configs(_v: i16) -> IncrementalAlterConfigsRequest {
    let config = |name| {
        AlterableConfig::default()
            .with_name(s(name))
            .with_config_operation(0)
            .with_value(Some(s("1000")))
            .with_unknown_tagged_fields(tags())
    };
    let resource = |name| {
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(name))
            .with_configs(vec![config("retention.ms"), config("segment.ms")])
            .with_unknown_tagged_fields(tags())
    };
    IncrementalAlterConfigsRequest::default()
        .with_resources(vec![resource("a"), resource("b")])
        .with_validate_only(true)
        .with_unknown_tagged_fields(tags())
}

fn full_alter_reassignments(v: i16) -> AlterPartitionReassignmentsRequest {
    let partition = |index| {
        ReassignablePartition::default()
            .with_partition_index(index)
            .with_replicas(Some(vec![BrokerId(1), BrokerId(2)]))
            .with_unknown_tagged_fields(tags())
    };
    let t = |name| {
        ReassignableTopic::default()
            .with_name(topic(name))
            .with_partitions(vec![partition(0), partition(1)])
            .with_unknown_tagged_fields(tags())
    };
    let r = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(100)
        .with_topics(vec![t("a"), t("b")])
        .with_unknown_tagged_fields(tags());
    if v >= 1 {
        r.with_allow_replication_factor_change(false)
    } else {
        r
    }
}

fn full_list_reassignments(_v: i16) -> ListPartitionReassignmentsRequest {
    let t = |name| {
        ListPartitionReassignmentsTopics::default()
            .with_name(topic(name))
            .with_partition_indexes(vec![0, 1])
            .with_unknown_tagged_fields(tags())
    };
    ListPartitionReassignmentsRequest::default()
        .with_timeout_ms(100)
        .with_topics(Some(vec![t("a"), t("b")]))
        .with_unknown_tagged_fields(tags())
}

fn full_offset_delete(_v: i16) -> OffsetDeleteRequest {
    let partition = |index| OffsetDeleteRequestPartition::default().with_partition_index(index);
    let t = |name| {
        OffsetDeleteRequestTopic::default()
            .with_name(topic(name))
            .with_partitions(vec![partition(0), partition(1)])
    };
    OffsetDeleteRequest::default()
        .with_group_id(group("g"))
        .with_topics(vec![t("a"), t("b")])
}

fn full_describe_client_quotas(_v: i16) -> DescribeClientQuotasRequest {
    let component = |entity| {
        ComponentData::default()
            .with_entity_type(s(entity))
            .with_match_type(0)
            .with_match(Some(s("alice")))
            .with_unknown_tagged_fields(tags())
    };
    DescribeClientQuotasRequest::default()
        .with_components(vec![component("user"), component("client-id")])
        .with_strict(true)
        .with_unknown_tagged_fields(tags())
}

fn full_alter_client_quotas(_v: i16) -> AlterClientQuotasRequest {
    let entity = |kind| {
        EntityData::default()
            .with_entity_type(s(kind))
            .with_entity_name(Some(s("alice")))
            .with_unknown_tagged_fields(tags())
    };
    let op = |key| {
        OpData::default()
            .with_key(s(key))
            .with_value(1024.0)
            .with_remove(false)
            .with_unknown_tagged_fields(tags())
    };
    let entry = || {
        EntryData::default()
            .with_entity(vec![entity("user"), entity("client-id")])
            .with_ops(vec![op("producer_byte_rate"), op("consumer_byte_rate")])
            .with_unknown_tagged_fields(tags())
    };
    AlterClientQuotasRequest::default()
        .with_entries(vec![entry(), entry()])
        .with_validate_only(true)
        .with_unknown_tagged_fields(tags())
}

fn full_describe_scram(_v: i16) -> DescribeUserScramCredentialsRequest {
    let user = |name| {
        UserName::default()
            .with_name(s(name))
            .with_unknown_tagged_fields(tags())
    };
    DescribeUserScramCredentialsRequest::default()
        .with_users(Some(vec![user("alice"), user("bob")]))
        .with_unknown_tagged_fields(tags())
}

fn full_alter_scram(_v: i16) -> AlterUserScramCredentialsRequest {
    let deletion = |name| {
        ScramCredentialDeletion::default()
            .with_name(s(name))
            .with_mechanism(1)
            .with_unknown_tagged_fields(tags())
    };
    let upsertion = |name| {
        ScramCredentialUpsertion::default()
            .with_name(s(name))
            .with_mechanism(2)
            .with_iterations(4096)
            .with_salt(Bytes::from_static(b"salt"))
            .with_salted_password(Bytes::from_static(b"salted"))
            .with_unknown_tagged_fields(tags())
    };
    AlterUserScramCredentialsRequest::default()
        .with_deletions(vec![deletion("a"), deletion("b")])
        .with_upsertions(vec![upsertion("c"), upsertion("d")])
        .with_unknown_tagged_fields(tags())
}

fn full_describe_cluster(v: i16) -> DescribeClusterRequest {
    let mut r = DescribeClusterRequest::default()
        .with_include_cluster_authorized_operations(true)
        .with_unknown_tagged_fields(tags());
    if v >= 1 {
        r = r.with_endpoint_type(2);
    }
    if v >= 2 {
        r = r.with_include_fenced_brokers(true);
    }
    r
}

fn full_consumer_group_heartbeat(v: i16) -> ConsumerGroupHeartbeatRequest {
    let partitions = |n| {
        TopicPartitions::default()
            .with_topic_id(id(n))
            .with_partitions(vec![0, 1])
            .with_unknown_tagged_fields(tags())
    };
    let r = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(group("g"))
        .with_member_id(s("member"))
        .with_member_epoch(0)
        .with_instance_id(Some(s("instance")))
        .with_rack_id(Some(s("rack")))
        .with_rebalance_timeout_ms(1000)
        .with_subscribed_topic_names(Some(vec![topic("a"), topic("b")]))
        .with_server_assignor(Some(s("uniform")))
        .with_topic_partitions(Some(vec![partitions(1), partitions(2)]))
        .with_unknown_tagged_fields(tags());
    if v >= 1 {
        r.with_subscribed_topic_regex(Some(s("^orders-.*")))
    } else {
        r
    }
}

fn full_consumer_group_describe(_v: i16) -> ConsumerGroupDescribeRequest {
    ConsumerGroupDescribeRequest::default()
        .with_group_ids(vec![group("a"), group("b")])
        .with_include_authorized_operations(true)
        .with_unknown_tagged_fields(tags())
}

/// One covered request type: how the crate builds, encodes and decodes it.
struct Case {
    api_key: i16,
    name: &'static str,
    versions: RangeInclusive<i16>,
    /// Non-empty arrays at every level, non-null strings, tagged fields.
    full: fn(i16) -> Vec<u8>,
    /// The crate's defaults: empty arrays, spec defaults (often null).
    default: fn(i16) -> Vec<u8>,
    decode: fn(&[u8], i16) -> Result<usize, String>,
}

macro_rules! case {
    ($ty:ty, $full:expr) => {
        Case {
            api_key: <$ty as Request>::KEY,
            name: stringify!($ty),
            versions: <$ty as Message>::VERSIONS.min..=<$ty as Message>::VERSIONS.max,
            full: |v| encode(&$full(v), v),
            default: |v| encode(&<$ty>::default(), v),
            decode: |body, v| decoded_end::<$ty>(body, v),
        }
    };
}

fn cases() -> Vec<Case> {
    vec![
        case!(ProduceRequest, full_produce),
        case!(FetchRequest, full_fetch),
        case!(ListOffsetsRequest, full_list_offsets),
        case!(MetadataRequest, full_metadata),
        case!(OffsetCommitRequest, full_offset_commit),
        case!(OffsetFetchRequest, full_offset_fetch),
        case!(FindCoordinatorRequest, full_find_coordinator),
        case!(JoinGroupRequest, full_join_group),
        case!(HeartbeatRequest, full_heartbeat),
        case!(LeaveGroupRequest, full_leave_group),
        case!(SyncGroupRequest, full_sync_group),
        case!(DescribeGroupsRequest, full_describe_groups),
        case!(ListGroupsRequest, full_list_groups),
        case!(SaslHandshakeRequest, full_sasl_handshake),
        case!(ApiVersionsRequest, full_api_versions),
        case!(CreateTopicsRequest, full_create_topics),
        case!(DeleteTopicsRequest, full_delete_topics),
        case!(InitProducerIdRequest, full_init_producer_id),
        case!(OffsetForLeaderEpochRequest, full_offset_for_leader_epoch),
        case!(DescribeAclsRequest, full_describe_acls),
        case!(CreateAclsRequest, full_create_acls),
        case!(DeleteAclsRequest, full_delete_acls),
        case!(DescribeConfigsRequest, full_describe_configs),
        case!(SaslAuthenticateRequest, full_sasl_authenticate),
        case!(CreatePartitionsRequest, full_create_partitions),
        case!(DeleteGroupsRequest, full_delete_groups),
        case!(
            IncrementalAlterConfigsRequest,
            full_incremental_alter_configs
        ),
        case!(AlterPartitionReassignmentsRequest, full_alter_reassignments),
        case!(ListPartitionReassignmentsRequest, full_list_reassignments),
        case!(OffsetDeleteRequest, full_offset_delete),
        case!(DescribeClientQuotasRequest, full_describe_client_quotas),
        case!(AlterClientQuotasRequest, full_alter_client_quotas),
        case!(DescribeUserScramCredentialsRequest, full_describe_scram),
        case!(AlterUserScramCredentialsRequest, full_alter_scram),
        case!(DescribeClusterRequest, full_describe_cluster),
        case!(ConsumerGroupHeartbeatRequest, full_consumer_group_heartbeat),
        case!(ConsumerGroupDescribeRequest, full_consumer_group_describe),
    ]
}

/// One covered request at one version, fully populated and encoded.
struct Encoded {
    api_key: i16,
    version: i16,
    name: &'static str,
    body: Vec<u8>,
    decode: fn(&[u8], i16) -> Result<usize, String>,
}

fn full_bodies() -> Vec<Encoded> {
    let mut out = Vec::new();
    for case in cases() {
        for version in case.versions.clone() {
            out.push(Encoded {
                api_key: case.api_key,
                version,
                name: case.name,
                body: (case.full)(version),
                decode: case.decode,
            });
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Coverage and agreement with the crate.

/// The APIs and versions the broker needs, as asked for.
const REQUIRED: &[(i16, i16, i16)] = &[
    (18, 0, 4), // ApiVersions
    (3, 0, 12), // Metadata
    (0, 3, 9),  // Produce
    (1, 4, 12), // Fetch
    (2, 1, 7),  // ListOffsets
    (19, 2, 7), // CreateTopics
    (20, 1, 6), // DeleteTopics
    (37, 0, 3), // CreatePartitions
    (22, 0, 4), // InitProducerId
    (32, 1, 4), // DescribeConfigs
    (44, 0, 1), // IncrementalAlterConfigs
    (10, 0, 4), // FindCoordinator
    (11, 0, 7), // JoinGroup
    (14, 0, 5), // SyncGroup
    (12, 0, 4), // Heartbeat
    (13, 0, 4), // LeaveGroup
    (8, 2, 9),  // OffsetCommit
    (9, 1, 9),  // OffsetFetch
    (16, 0, 4), // ListGroups
    (15, 0, 5), // DescribeGroups
    (42, 0, 2), // DeleteGroups
    (47, 0, 0), // OffsetDelete
    (68, 0, 1), // ConsumerGroupHeartbeat
    (69, 0, 1), // ConsumerGroupDescribe
    (23, 2, 4), // OffsetForLeaderEpoch
    (17, 0, 1), // SaslHandshake
    (36, 0, 2), // SaslAuthenticate
    (30, 1, 3), // CreateAcls
    (29, 1, 3), // DescribeAcls
    (31, 1, 3), // DeleteAcls
    (50, 0, 0), // DescribeUserScramCredentials
    (51, 0, 0), // AlterUserScramCredentials
    (48, 0, 1), // DescribeClientQuotas
    (49, 0, 1), // AlterClientQuotas
    (60, 0, 1), // DescribeCluster
    (45, 0, 0), // AlterPartitionReassignments
    (46, 0, 0), // ListPartitionReassignments
];

#[test]
fn every_required_api_and_version_has_a_schema() {
    for &(key, min, max) in REQUIRED {
        for v in min..=max {
            assert!(
                has_schema(key, v),
                "API key {key} version {v} has no schema"
            );
        }
    }
}

#[test]
fn schemas_cover_exactly_the_versions_the_crate_implements() {
    let cases = cases();
    assert_eq!(cases.len(), schemas::SCHEMAS.len());
    for case in &cases {
        assert_eq!(
            schema_versions(case.api_key),
            Some(case.versions.clone()),
            "{}",
            case.name
        );
        assert!(!has_schema(case.api_key, case.versions.end() + 1));
        assert!(!has_schema(case.api_key, case.versions.start() - 1));
    }
}

#[test]
fn every_covered_request_encoded_by_the_crate_walks_to_its_exact_end() {
    for Encoded {
        api_key: key,
        version: v,
        name,
        body,
        decode,
    } in full_bodies()
    {
        assert_eq!(
            decode(&body, v),
            Ok(body.len()),
            "{name} v{v}: crate round trip"
        );
        assert_eq!(
            check_request(key, v, &body),
            Ok(body.len()),
            "{name} v{v}: {body:?}"
        );
        // Trailing bytes are the caller's business: the walk still stops at
        // the end of the request.
        let mut padded = body.clone();
        padded.extend_from_slice(&[0xff; 7]);
        assert_eq!(
            check_request(key, v, &padded),
            Ok(body.len()),
            "{name} v{v}"
        );
    }
}

#[test]
fn default_requests_of_every_covered_version_walk_to_their_exact_end() {
    for case in cases() {
        for v in case.versions.clone() {
            let body = (case.default)(v);
            assert_eq!(
                (case.decode)(&body, v),
                Ok(body.len()),
                "{} v{v}",
                case.name
            );
            assert_eq!(
                check_request(case.api_key, v, &body),
                Ok(body.len()),
                "{} v{v}: {body:?}",
                case.name
            );
        }
    }
}

#[test]
fn every_truncated_prefix_of_every_covered_request_is_refused() {
    for e in full_bodies() {
        let (key, v, name, body) = (e.api_key, e.version, e.name, &e.body);
        for len in 0..body.len() {
            assert!(
                check_request(key, v, &body[..len]).is_err(),
                "{name} v{v} accepted a prefix of {len} of {} bytes",
                body.len()
            );
        }
    }
}

/// A tiny deterministic generator, so failures reproduce.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Whatever the walker accepts, the crate decodes to the same end or
/// refuses for a reason the walker leaves to it (UTF-8); the walker is never
/// the more lenient of the two about structure.
fn assert_crate_agrees(e: &Encoded, body: &[u8]) {
    let (v, name) = (e.version, e.name);
    let Ok(end) = check_request(e.api_key, v, body) else {
        return;
    };
    match (e.decode)(body, v) {
        Ok(crate_end) => assert_eq!(crate_end, end, "{name} v{v}: {body:?}"),
        Err(e) => assert!(
            e.contains("utf-8") || e.contains("UTF-8"),
            "{name} v{v}: walker accepted what the crate refuses ({e}): {body:?}"
        ),
    }
}

#[test]
fn walker_accepted_byte_mutations_decode_with_the_crate_to_the_same_end() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    // Empty bodies (ApiVersions v0-2, ListGroups v0-3) have nothing to mutate.
    for e in full_bodies().into_iter().filter(|e| !e.body.is_empty()) {
        for _ in 0..200 {
            let mut mutated = e.body.clone();
            for _ in 0..=rng.below(3) {
                let at = rng.below(mutated.len());
                mutated[at] = match rng.below(4) {
                    0 => 0,
                    1 => 0xff,
                    2 => mutated[at].wrapping_add(1),
                    _ => rng.next() as u8,
                };
            }
            assert_crate_agrees(&e, &mutated);
        }
    }
}

#[test]
fn a_huge_count_written_at_every_offset_never_reaches_the_crate() {
    // i32::MAX as INT32, and 2^31 - 1 and u32::MAX - 1 as compact varints.
    let hostile: [&[u8]; 3] = [
        &[0x7f, 0xff, 0xff, 0xff],
        &[0x80, 0x80, 0x80, 0x80, 0x08],
        &[0xff, 0xff, 0xff, 0xff, 0x0f],
    ];
    for e in full_bodies() {
        for patch in hostile {
            for at in 0..e.body.len() {
                let mut mutated = e.body.clone();
                let end = (at + patch.len()).min(mutated.len());
                mutated[at..end].copy_from_slice(&patch[..end - at]);
                // If the walker let a huge count through, the crate would
                // try to reserve it and abort the test process.
                assert_crate_agrees(&e, &mutated);
            }
        }
    }
}

proptest! {
    #[test]
    fn random_bytes_never_panic_the_walker(
        schema in 0..schemas::SCHEMAS.len(),
        version in 0i16..20,
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let key = schemas::SCHEMAS[schema].api_key;
        if let Ok(end) = check_request(key, version, &body) {
            prop_assert!(end <= body.len());
        }
        let _ = parse_produce(version, &body);
    }

    #[test]
    fn random_bytes_never_panic_the_header_parser(
        frame in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        if let Ok((_, body_at)) = parse_request_header(&frame) {
            prop_assert!(body_at <= frame.len());
        }
    }
}

// ---------------------------------------------------------------------------
// Hostile input, by hand.

fn metadata_v1_body(topics_count: i32) -> Vec<u8> {
    let mut body = topics_count.to_be_bytes().to_vec();
    body.extend_from_slice(&[0, 3, b'a', b'b', b'c']);
    body
}

#[test]
fn an_int32_array_count_of_i32_max_in_a_tiny_frame_is_refused_naming_the_field() {
    let err = check_request(3, 1, &metadata_v1_body(i32::MAX)).unwrap_err();
    assert_eq!(
        err,
        WalkError::CountTooLarge {
            field: "MetadataRequest.Topics".into(),
            offset: 0,
            count: i32::MAX as u64,
            element_bytes_min: 2,
            remaining: 5,
        }
    );
    assert!(
        err.to_string().contains("MetadataRequest.Topics at byte 0"),
        "{err}"
    );
}

#[test]
fn a_nested_array_count_of_i32_max_is_refused_with_its_path() {
    let mut body = Vec::new();
    body.extend_from_slice(&(-1i16).to_be_bytes()); // null transactional id
    body.extend_from_slice(&1i16.to_be_bytes()); // acks
    body.extend_from_slice(&1000i32.to_be_bytes()); // timeout
    body.extend_from_slice(&1i32.to_be_bytes()); // one topic
    body.extend_from_slice(&[0, 1, b't']); // its name
    body.extend_from_slice(&i32::MAX.to_be_bytes()); // partitions
    body.extend_from_slice(&[0; 8]);
    let field = "ProduceRequest.TopicData[0].PartitionData".to_string();
    let expected = WalkError::CountTooLarge {
        field,
        offset: 15,
        count: i32::MAX as u64,
        element_bytes_min: 8,
        remaining: 8,
    };
    assert_eq!(check_request(0, 3, &body), Err(expected.clone()));
    assert_eq!(parse_produce(3, &body), Err(expected));
}

#[test]
fn compact_array_counts_past_the_bytes_left_are_refused_naming_the_field() {
    // 2^31 and u32::MAX as varints: counts 2^31 - 1 and 2^32 - 2.
    for (varint, count) in [
        (&[0x80, 0x80, 0x80, 0x80, 0x08][..], (1u64 << 31) - 1),
        (&[0xff, 0xff, 0xff, 0xff, 0x0f][..], u64::from(u32::MAX) - 1),
        (&[0x03][..], 2),
    ] {
        let mut body = varint.to_vec();
        body.extend_from_slice(&[0x00, 0x01, 0x00]);
        let err = check_request(3, 12, &body).unwrap_err();
        assert!(
            matches!(&err, WalkError::CountTooLarge { field, offset: 0, count: c, .. }
                if field == "MetadataRequest.Topics" && *c == count),
            "{err:?}"
        );
    }
}

#[test]
fn a_varint_longer_than_five_bytes_or_wider_than_32_bits_is_refused() {
    for varint in [
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0x01][..],
        &[0x80, 0x80, 0x80, 0x80, 0x10],
    ] {
        let mut body = varint.to_vec();
        body.extend_from_slice(&[0; 16]);
        assert_eq!(
            check_request(3, 12, &body),
            Err(WalkError::BadVarint {
                field: "MetadataRequest.Topics".into(),
                offset: 0
            })
        );
    }
}

#[test]
fn a_string_length_past_the_end_is_refused_at_its_offset() {
    // SaslHandshake v1: one INT16-length string.
    let body = [0x00, 0x09, b'P', b'L'];
    assert_eq!(
        check_request(17, 1, &body),
        Err(WalkError::LengthTooLarge {
            field: "SaslHandshakeRequest.Mechanism".into(),
            offset: 0,
            length: 9,
            remaining: 2,
        })
    );
}

#[test]
fn a_compact_string_longer_than_kafka_allows_is_refused() {
    // ApiVersions v3: a compact string of 40000 bytes, all present.
    let mut body = vec![0xc1, 0xb8, 0x02]; // 40001 = length 40000
    body.resize(3 + 40_000, b'a');
    body.extend_from_slice(&[0x01, 0x00]);
    assert!(matches!(
        check_request(18, 3, &body),
        Err(WalkError::StringTooLong {
            length: 40_000,
            max: KAFKA_STRING_BYTES_MAX,
            ..
        })
    ));
}

#[test]
fn a_negative_length_other_than_minus_one_is_refused() {
    let body = [0xff, 0xfe, 0x00];
    assert!(matches!(
        check_request(17, 0, &body),
        Err(WalkError::NegativeLength {
            length: -2,
            offset: 0,
            ..
        })
    ));
    assert!(matches!(
        check_request(3, 1, &metadata_v1_body(-7)),
        Err(WalkError::NegativeLength { length: -7, .. })
    ));
}

#[test]
fn null_is_refused_where_the_version_does_not_allow_it() {
    // Metadata topics became nullable in v1.
    assert_eq!(
        check_request(3, 0, &(-1i32).to_be_bytes()),
        Err(WalkError::UnexpectedNull {
            field: "MetadataRequest.Topics".into(),
            offset: 0,
            version: 0
        })
    );
    assert_eq!(check_request(3, 1, &(-1i32).to_be_bytes()), Ok(4));
    // A non-nullable compact string (SaslAuthenticate v2's bytes) as null.
    assert!(matches!(
        check_request(36, 2, &[0x00, 0x00]),
        Err(WalkError::UnexpectedNull { .. })
    ));
}

/// Fetch v12 with no topics, ending in the given top-level tagged fields.
fn fetch_v12_with_tags(tagged: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for value in [-1i32, 500, 1, 1 << 20] {
        body.extend_from_slice(&value.to_be_bytes()); // replica, wait, min, max
    }
    body.push(0); // isolation level
    body.extend_from_slice(&0i32.to_be_bytes()); // session id
    body.extend_from_slice(&(-1i32).to_be_bytes()); // session epoch
    body.extend_from_slice(&[0x01, 0x01, 0x01]); // no topics, no forgotten, rack ""
    body.extend_from_slice(tagged);
    body
}

#[test]
fn a_known_tagged_field_is_walked_and_must_fill_its_declared_size() {
    // ClusterId (tag 0): compact string "ab" is 3 bytes.
    let good = fetch_v12_with_tags(&[0x01, 0x00, 0x03, 0x03, b'a', b'b']);
    assert_eq!(check_request(1, 12, &good), Ok(good.len()));
    // Declared 4 bytes, content 3, one byte of padding.
    let loose = fetch_v12_with_tags(&[0x01, 0x00, 0x04, 0x03, b'a', b'b', 0x00]);
    assert!(matches!(
        check_request(1, 12, &loose),
        Err(WalkError::TaggedFieldSize { declared: 4, used: 3, ref field, .. })
            if field == "FetchRequest.ClusterId"
    ));
    // Declared 2 bytes: the string's length runs past them.
    let tight = fetch_v12_with_tags(&[0x01, 0x00, 0x02, 0x03, b'a', b'b']);
    assert!(matches!(
        check_request(1, 12, &tight),
        Err(WalkError::LengthTooLarge { length: 2, remaining: 1, ref field, .. })
            if field == "FetchRequest.ClusterId"
    ));
}

#[test]
fn a_known_tag_outside_its_tagged_versions_is_refused() {
    // ReplicaState (tag 1) only exists from Fetch v15.
    let body = fetch_v12_with_tags(&[0x01, 0x01, 0x01, 0x00]);
    assert!(matches!(
        check_request(1, 12, &body),
        Err(WalkError::TagNotValidForVersion {
            tag: 1,
            version: 12,
            ..
        })
    ));
}

#[test]
fn unknown_tags_are_skipped_by_their_size_and_checked_against_the_end() {
    let skipped = fetch_v12_with_tags(&[0x02, 0x07, 0x02, 0xaa, 0xbb, 0x7f, 0x00]);
    assert_eq!(check_request(1, 12, &skipped), Ok(skipped.len()));
    let past_end = fetch_v12_with_tags(&[0x01, 0x07, 0x09, 0xaa]);
    assert!(matches!(
        check_request(1, 12, &past_end),
        Err(WalkError::LengthTooLarge {
            length: 9,
            remaining: 1,
            ..
        })
    ));
    let too_many = fetch_v12_with_tags(&[0x7f, 0x07, 0x00]);
    assert!(matches!(
        check_request(1, 12, &too_many),
        Err(WalkError::CountTooLarge { count: 127, element_bytes_min: 2, ref field, .. })
            if field == "FetchRequest.(tagged fields)"
    ));
}

/// Found by fuzzing (fuzz/README.md): the crate keeps tags as `i32`, so an
/// unknown tag above `i32::MAX` decoded as a negative number and was
/// dropped when the request was encoded again, while still counted.
#[test]
fn a_tag_above_i32_max_is_refused() {
    // Tag 2^31 (uvarint 80 80 80 80 08), 1 byte of content.
    let body = fetch_v12_with_tags(&[0x01, 0x80, 0x80, 0x80, 0x80, 0x08, 0x01, 0xaa]);
    let at = body.len() - 7;
    assert_eq!(
        check_request(1, 12, &body),
        Err(WalkError::TagTooLarge {
            field: "FetchRequest.(tagged fields)".into(),
            offset: at,
            tag: 1 << 31,
        })
    );
    // i32::MAX itself (uvarint ff ff ff ff 07) is an unknown tag like any.
    let body = fetch_v12_with_tags(&[0x01, 0xff, 0xff, 0xff, 0xff, 0x07, 0x01, 0xaa]);
    assert_eq!(check_request(1, 12, &body), Ok(body.len()));
    let mut bytes = Bytes::from(body);
    let request = FetchRequest::decode(&mut bytes, 12).unwrap();
    assert_eq!(
        request.unknown_tagged_fields.keys().collect::<Vec<_>>(),
        [&i32::MAX]
    );
}

#[test]
fn a_request_without_a_schema_is_refused() {
    assert_eq!(
        check_request(26, 3, &[]),
        Err(WalkError::NoSchema {
            api_key: 26,
            version: 3
        })
    );
    assert!(!has_schema(3, 14));
    assert_eq!(schema_versions(26), None);
}

// ---------------------------------------------------------------------------
// Schema tables.

fn each_struct(fields: &'static [Field], visit: &mut dyn FnMut(&'static [Field])) {
    visit(fields);
    for field in fields {
        let mut ty = &field.ty;
        while let Ty::Array(element) = ty {
            ty = element;
        }
        if let Ty::Struct(inner) = ty {
            each_struct(inner, visit);
        }
    }
}

#[test]
fn every_array_element_needs_at_least_one_byte_in_every_version() {
    for schema in schemas::SCHEMAS {
        for v in schema.versions.min..=schema.versions.max {
            let ctx = Ctx {
                version: v,
                flexible: is_flexible(schema.api_key, v),
            };
            each_struct(schema.fields, &mut |fields| {
                for field in fields.iter().filter(|f| f.versions.contains(v)) {
                    if let Ty::Array(element) = field.ty {
                        assert!(
                            min_bytes(element, ctx) >= 1,
                            "{}.{} v{v}",
                            schema.name,
                            field.name
                        );
                    }
                }
            });
        }
    }
}

#[test]
fn tags_are_unique_per_struct_and_only_in_flexible_versions() {
    for schema in schemas::SCHEMAS {
        let flexible_since = flexible_since(schema.api_key).flatten();
        each_struct(schema.fields, &mut |fields| {
            let mut seen = Vec::new();
            for field in fields {
                if let Some(tag) = field.tag {
                    assert!(!seen.contains(&tag.id), "{}: tag {}", schema.name, tag.id);
                    seen.push(tag.id);
                    assert!(
                        flexible_since.is_some_and(|f| tag.versions.min >= f),
                        "{}.{} is tagged outside flexible versions",
                        schema.name,
                        field.name
                    );
                }
            }
        });
    }
}

#[test]
fn every_schema_api_key_has_its_flexible_versions_listed() {
    for schema in schemas::SCHEMAS {
        assert!(flexible_since(schema.api_key).is_some(), "{}", schema.name);
    }
    let mut keys: Vec<i16> = schemas::REQUEST_FLEXIBLE_SINCE
        .iter()
        .map(|(k, _)| *k)
        .collect();
    keys.dedup();
    assert_eq!(keys.len(), schemas::REQUEST_FLEXIBLE_SINCE.len());
}

// ---------------------------------------------------------------------------
// Headers.

#[test]
fn header_versions_agree_with_the_crate_for_every_api_key_and_version() {
    for key in ApiKey::iter() {
        let range = key.valid_versions();
        for v in range.min..=range.max + 1 {
            assert_eq!(
                request_header_version(key as i16, v),
                Some(key.request_header_version(v)),
                "{key:?} v{v}"
            );
        }
    }
    assert_eq!(request_header_version(18, 2), Some(1));
    assert_eq!(request_header_version(18, 3), Some(2));
    assert_eq!(request_header_version(7, 0), Some(0));
    assert_eq!(request_header_version(7, 1), Some(1));
    assert_eq!(request_header_version(88, 0), None);
}

fn crate_header(key: i16, v: i16, client_id: Option<&'static str>) -> (Vec<u8>, i16) {
    let header = kafka_protocol::messages::RequestHeader::default()
        .with_request_api_key(key)
        .with_request_api_version(v)
        .with_correlation_id(0x0102_0304)
        .with_client_id(client_id.map(s))
        .with_unknown_tagged_fields(tags());
    let header_version = ApiKey::try_from(key)
        .map(|k| k.request_header_version(v))
        .unwrap_or(1);
    (encode(&header, header_version), header_version)
}

#[test]
fn headers_of_every_version_encoded_by_the_crate_round_trip() {
    for key in ApiKey::iter() {
        let range = key.valid_versions();
        for v in range.min..=range.max {
            for client_id in [Some("client-1"), Some(""), None] {
                let (mut frame, header_version) = crate_header(key as i16, v, client_id);
                let header_bytes = frame.len();
                frame.extend_from_slice(&[0xab, 0xcd]);
                let (header, body_at) = parse_request_header(&frame).unwrap();
                assert_eq!(body_at, header_bytes, "{key:?} v{v}");
                assert_eq!(
                    header,
                    super::RequestHeader {
                        api_key: key as i16,
                        api_version: v,
                        correlation_id: 0x0102_0304,
                        client_id,
                        header_version,
                    }
                );
            }
        }
    }
}

#[test]
fn controlled_shutdown_v0_has_a_header_without_a_client_id() {
    let frame = [0, 7, 0, 0, 0, 0, 0, 9, 0xaa];
    let (header, body_at) = parse_request_header(&frame).unwrap();
    assert_eq!(body_at, 8);
    assert_eq!(header.header_version, 0);
    assert_eq!(header.client_id, None);
    assert_eq!(header.correlation_id, 9);
}

#[test]
fn an_unknown_api_key_is_refused_keeping_its_correlation_id() {
    let frame = [0, 88, 0, 1, 0, 0, 0, 42, 0, 0];
    assert_eq!(
        parse_request_header(&frame),
        Err(WalkError::UnknownApiKey {
            api_key: 88,
            api_version: 1,
            correlation_id: 42
        })
    );
}

#[test]
fn a_bad_client_id_is_refused_at_its_offset() {
    let mut frame = vec![0, 3, 0, 1, 0, 0, 0, 5, 0, 100, b'x'];
    assert_eq!(
        parse_request_header(&frame),
        Err(WalkError::LengthTooLarge {
            field: "RequestHeader.ClientId".into(),
            offset: 8,
            length: 100,
            remaining: 1
        })
    );
    frame.truncate(8);
    frame.extend_from_slice(&[0, 2, 0xc3, 0x28]);
    assert_eq!(
        parse_request_header(&frame),
        Err(WalkError::InvalidUtf8 {
            field: "RequestHeader.ClientId".into(),
            offset: 8
        })
    );
}

#[test]
fn every_truncated_header_is_refused() {
    let (frame, _) = crate_header(3, 12, Some("client-1"));
    for len in 0..frame.len() {
        assert!(parse_request_header(&frame[..len]).is_err(), "{len}");
    }
}

// ---------------------------------------------------------------------------
// Produce.

#[test]
fn parse_produce_returns_the_exact_record_ranges_for_every_version() {
    for v in PRODUCE_VERSIONS {
        let request = full_produce(v);
        let body = encode(&request, v);
        let layout = parse_produce(v, &body).unwrap();
        assert_eq!(layout.end, body.len(), "v{v}");
        assert_eq!(layout.acks, -1);
        assert_eq!(layout.timeout_ms, 1500);
        let txn = layout
            .transactional_id
            .as_ref()
            .and_then(|r| str_at(&body, r));
        assert_eq!(txn, Some("txn-1"));
        assert_eq!(layout.topics.len(), request.topic_data.len());
        for (topic, expected) in layout.topics.iter().zip(&request.topic_data) {
            match &topic.topic {
                TopicRef::Name(range) => {
                    assert!(v < PRODUCE_TOPIC_ID_SINCE);
                    assert_eq!(str_at(&body, range), Some(expected.name.0.as_str()));
                }
                TopicRef::Id(topic_id) => {
                    assert!(v >= PRODUCE_TOPIC_ID_SINCE);
                    assert_eq!(topic_id, expected.topic_id.as_bytes());
                }
            }
            let partitions = layout.partitions_of(topic);
            assert_eq!(partitions.len(), expected.partition_data.len());
            for (p, e) in partitions.iter().zip(&expected.partition_data) {
                assert_eq!(p.index, e.index);
                let records = p.records.as_ref().map(|r| &body[r.clone()]);
                assert_eq!(records, e.records.as_deref(), "v{v}");
            }
        }
    }
}

#[test]
fn parse_produce_reads_v3_and_v9_records_at_the_offsets_written() {
    for v in [3, 9] {
        let request = ProduceRequest::default().with_acks(1).with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic("t"))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(4)
                        .with_records(Some(Bytes::from_static(b"RECORDS"))),
                ]),
        ]);
        let body = encode(&request, v);
        let layout = parse_produce(v, &body).unwrap();
        let start = body.windows(7).position(|w| w == b"RECORDS").unwrap();
        assert_eq!(layout.partitions[0].records, Some(start..start + 7), "v{v}");
        assert_eq!(layout.transactional_id, None);
    }
}

#[test]
fn parse_produce_refuses_a_records_length_past_the_end() {
    for v in [3, 9] {
        let request = full_produce(v);
        let mut body = encode(&request, v);
        let records = parse_produce(v, &body).unwrap().partitions[0]
            .records
            .clone()
            .unwrap();
        if v < 9 {
            body[records.start - 4..records.start].copy_from_slice(&100_000i32.to_be_bytes());
        } else {
            body[records.start - 1] = 0x7f; // compact: 126 bytes, single varint byte
            body.truncate(records.start + 100);
        }
        let err = parse_produce(v, &body).unwrap_err();
        assert!(
            matches!(&err, WalkError::LengthTooLarge { field, .. }
                if field == "ProduceRequest.TopicData[0].PartitionData[0].Records"),
            "v{v}: {err}"
        );
        assert!(check_request(0, v, &body).is_err());
    }
}

#[test]
fn parse_produce_keeps_null_records_as_none() {
    let body = encode(&full_produce(3), 3);
    let layout = parse_produce(3, &body).unwrap();
    assert_eq!(layout.partitions[1].index, 1);
    assert_eq!(layout.partitions[1].records, None);
}

#[test]
fn parse_produce_refuses_a_topic_name_that_is_not_utf8() {
    let request = ProduceRequest::default()
        .with_topic_data(vec![TopicProduceData::default().with_name(topic("ab"))]);
    let mut body = encode(&request, 3);
    let at = body.windows(2).position(|w| w == b"ab").unwrap();
    body[at] = 0xc3;
    body[at + 1] = 0x28;
    assert!(matches!(
        parse_produce(3, &body),
        Err(WalkError::InvalidUtf8 { ref field, .. }) if field == "ProduceRequest.TopicData[0].Name"
    ));
}

#[test]
fn parse_produce_refuses_versions_it_does_not_read() {
    for v in [-1, 0, 2, 14] {
        assert!(matches!(
            parse_produce(v, &[]),
            Err(WalkError::NoSchema { .. })
        ));
    }
}

#[test]
fn parse_produce_agrees_with_the_produce_schema_on_mutated_requests() {
    assert_eq!(schema_versions(PRODUCE_API_KEY), Some(PRODUCE_VERSIONS));
    let mut rng = XorShift(0x0123_4567_89ab_cdef);
    for v in PRODUCE_VERSIONS {
        let body = encode(&full_produce(v), v);
        for _ in 0..500 {
            let mut mutated = body.clone();
            let at = rng.below(mutated.len());
            mutated[at] = rng.next() as u8;
            mutated.truncate(mutated.len() - rng.below(3));
            let layout = parse_produce(v, &mutated);
            if matches!(layout, Err(WalkError::InvalidUtf8 { .. })) {
                continue; // the schema walk leaves UTF-8 to the decoder
            }
            assert_eq!(
                layout.map(|l| l.end).map_err(|e| e.to_string()),
                check_request(0, v, &mutated).map_err(|e| e.to_string()),
                "v{v}: {mutated:?}"
            );
        }
    }
}
