"""ACLs through confluent-kafka (librdkafka) on a SASL listener with
`--authorizer acl`: an admin (a super user) creates topics and ACLs, then
alice and bob are allowed or refused per the ACLs, each refusal with
Kafka's error code and nothing stored.

usage: acl_matrix.py BOOTSTRAP CONFIG_JSON_BASE ADMIN_PASSWORD ALICE_PASSWORD BOB_PASSWORD
  CONFIG_JSON_BASE  security settings without sasl.username/password.
Prints one JSON object of named checks, each true when it behaved as
expected; exits 1 if any is false.
"""
import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                   AdminClient, NewTopic, ResourcePatternType, ResourceType)

bootstrap, base, admin_pw, alice_pw, bob_pw = (
    sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])


def conf(user, password):
    return {"bootstrap.servers": bootstrap, **base,
            "sasl.username": user, "sasl.password": password}


admin = AdminClient(conf("admin", admin_pw))
for f in admin.create_topics([NewTopic(t, 1, 1) for t in
                              ("orders-eu", "orders-secret", "payroll")]).values():
    f.result(20)


def acl(rtype, name, pattern, principal, op, perm=AclPermissionType.ALLOW):
    return AclBinding(rtype, name, pattern, principal, "*", op, perm)


bindings = [
    acl(ResourceType.TOPIC, "orders-", ResourcePatternType.PREFIXED, "User:alice", AclOperation.WRITE),
    acl(ResourceType.TOPIC, "orders-", ResourcePatternType.PREFIXED, "User:alice", AclOperation.READ),
    acl(ResourceType.TOPIC, "orders-secret", ResourcePatternType.LITERAL, "User:alice",
        AclOperation.READ, AclPermissionType.DENY),
    acl(ResourceType.TOPIC, "orders-secret", ResourcePatternType.LITERAL, "User:alice",
        AclOperation.WRITE, AclPermissionType.DENY),
]
for f in admin.create_acls(bindings).values():
    f.result(20)

checks = {}


def produce(user, password, topic, n=5):
    p = Producer({**conf(user, password), "acks": "all", "message.timeout.ms": 10000,
                  "enable.idempotence": False})
    errors, acked = [], []
    for i in range(n):
        p.produce(topic, value=f"{user}-{i}".encode(),
                  on_delivery=lambda e, m: errors.append(e) if e else acked.append(m.offset()))
    p.flush(20)
    return acked, errors


def high_watermark(topic):
    c = Consumer({**conf("admin", admin_pw), "group.id": "admin-hw"})
    lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    c.close()
    return hi


# WRITE through a prefixed ACL.
acked, errors = produce("alice", alice_pw, "orders-eu")
checks["alice_writes_orders_eu_by_prefix"] = len(acked) == 5 and not errors
# DENY beats the prefixed ALLOW; nothing is stored.
acked, errors = produce("alice", alice_pw, "orders-secret")
checks["deny_beats_allow"] = (not acked and errors
                              and errors[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED)
checks["denied_write_stores_nothing"] = high_watermark("orders-secret") == 0
# No ACL at all: denied.
acked, errors = produce("bob", bob_pw, "orders-eu")
checks["bob_without_acls_is_denied"] = (not acked and errors
                                        and errors[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED)

# Metadata: alice sees only what she may describe (READ/WRITE imply DESCRIBE).
a = AdminClient(conf("alice", alice_pw))
listed = set(a.list_topics(timeout=10).topics)
checks["metadata_lists_only_describable_topics"] = (
    "orders-eu" in listed and "payroll" not in listed and "orders-secret" in listed)

# CreateTopics without CREATE: TOPIC_AUTHORIZATION_FAILED.
try:
    a.create_topics([NewTopic("orders-new", 1, 1)])["orders-new"].result(20)
    checks["create_topic_without_create_is_denied"] = False
except KafkaException as e:
    checks["create_topic_without_create_is_denied"] = (
        e.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED)

# A consumer group without READ on the group: GROUP_AUTHORIZATION_FAILED.
def consume(group):
    c = Consumer({**conf("alice", alice_pw), "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe(["orders-eu"])
    got, err = [], None
    deadline = time.time() + 30
    while len(got) < 5 and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            err = m.error()
            break
        got.append(m.value())
    c.close()
    return got, err


got, err = consume("alice-group")
checks["group_without_read_is_denied"] = (err is not None
                                          and err.code() == KafkaError.GROUP_AUTHORIZATION_FAILED)
for f in admin.create_acls([acl(ResourceType.GROUP, "alice-", ResourcePatternType.PREFIXED,
                                "User:alice", AclOperation.READ)]).values():
    f.result(20)
# The new ACL applies at once, to the same principal, without reconnecting.
got, err = consume("alice-group")
checks["group_read_acl_applies_at_once"] = err is None and len(got) == 5

# Describing ACLs needs DESCRIBE on the cluster: alice is refused (librdkafka
# turns the top-level error of DescribeAcls into an empty list, so either
# shows that nothing was disclosed), admin may.
try:
    seen = a.describe_acls(AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None,
                                            None, AclOperation.ANY, AclPermissionType.ANY)).result(20)
    checks["describe_acls_needs_cluster_describe"] = len(seen) == 0
except KafkaException as e:
    checks["describe_acls_needs_cluster_describe"] = (
        e.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED)
listed = admin.describe_acls(AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None,
                                              None, AclOperation.ANY, AclPermissionType.ANY)).result(20)
checks["super_user_describes_every_acl"] = len(listed) == 5

# The super user bypasses ACLs.
acked, errors = produce("admin", admin_pw, "payroll")
checks["super_user_bypasses_acls"] = len(acked) == 5 and not errors

print(json.dumps(checks))
sys.exit(0 if all(checks.values()) else 1)
