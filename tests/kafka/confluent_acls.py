"""confluent-kafka's AdminClient manages ACLs on corelog's Kafka listener:
create_acls (literal and prefixed, allow and deny) with a result per
binding, describe_acls with ANY and MATCH filters, delete_acls returning
what it deleted.

usage: confluent_acls.py BOOTSTRAP setup|check|disabled
  setup:    five ACLs are created, two invalid ones refused (a cluster
            resource not named kafka-cluster, a principal without "User:");
            filters are checked; one ACL is deleted, four remain.
  check:    exactly those four are there (after a restart).
  disabled: the broker runs without --authorizer acl: create_acls and
            delete_acls fail with SECURITY_DISABLED (54). (describe_acls is
            checked with kafka-python: librdkafka 2.16 gives an empty list
            for a DescribeAcls answer whose top-level error is set.)
Prints one JSON line; exits non-zero on any mismatch.
"""
import json
import sys

from confluent_kafka import KafkaException
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                   AdminClient, ResourcePatternType, ResourceType)

bootstrap, phase = sys.argv[1], sys.argv[2]
admin = AdminClient({"bootstrap.servers": bootstrap})
T, G, C = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.BROKER
LIT, PRE = ResourcePatternType.LITERAL, ResourcePatternType.PREFIXED
ALLOW, DENY = AclPermissionType.ALLOW, AclPermissionType.DENY
Op = AclOperation

READ_ORDERS = AclBinding(T, "orders", LIT, "User:alice", "*", Op.READ, ALLOW)
WRITE_ORD = AclBinding(T, "ord", PRE, "User:alice", "*", Op.WRITE, ALLOW)
DENY_BOB = AclBinding(T, "orders", LIT, "User:bob", "10.0.0.7", Op.READ, DENY)
GROUP = AclBinding(G, "billing", LIT, "User:alice", "*", Op.READ, ALLOW)
CLUSTER = AclBinding(C, "kafka-cluster", LIT, "User:*", "*", Op.DESCRIBE, ALLOW)
BAD_CLUSTER = AclBinding(C, "other", LIT, "User:alice", "*", Op.ALTER, ALLOW)
BAD_PRINCIPAL = AclBinding(T, "orders", LIT, "alice", "*", Op.READ, ALLOW)


def key(b):
    return (str(b.restype), b.name, str(b.resource_pattern_type), b.principal, b.host,
            str(b.operation), str(b.permission_type))


def keys(bindings):
    return sorted(key(b) for b in bindings)


def filt(restype=ResourceType.ANY, name=None, pattern=ResourcePatternType.ANY, principal=None):
    return AclBindingFilter(restype, name, pattern, principal, None, Op.ANY, AclPermissionType.ANY)


def describe(f):
    return keys(admin.describe_acls(f).result(30))


def expect(what, got, want):
    if got != want:
        sys.exit(f"{what}:\n got  {got}\n want {want}")


def create(bindings):
    out = {}
    for binding, future in admin.create_acls(bindings).items():
        try:
            future.result(30)
            out[key(binding)] = None
        except KafkaException as e:
            out[key(binding)] = (e.args[0].code(), e.args[0].str())
    return out


REMAINING = keys([WRITE_ORD, DENY_BOB, GROUP, CLUSTER])

if phase == "setup":
    created = create([READ_ORDERS, WRITE_ORD, DENY_BOB, GROUP, CLUSTER, BAD_CLUSTER, BAD_PRINCIPAL])
    for good in (READ_ORDERS, WRITE_ORD, DENY_BOB, GROUP, CLUSTER):
        expect(f"creating {key(good)}", created[key(good)], None)
    for bad, needle in ((BAD_CLUSTER, "kafka-cluster"), (BAD_PRINCIPAL, "User:")):
        code, message = created[key(bad)] or (None, "")
        if code != 42 or needle not in message:
            sys.exit(f"creating {key(bad)}: want INVALID_REQUEST (42) naming {needle!r}, "
                     f"got {created[key(bad)]}")
    everything = keys([READ_ORDERS, WRITE_ORD, DENY_BOB, GROUP, CLUSTER])
    expect("ANY", describe(filt()), everything)
    # MATCH: what applies to the topic "orders": its literal ACLs and the
    # prefix "ord"; not the group's or the cluster's.
    expect("MATCH orders", describe(filt(T, "orders", ResourcePatternType.MATCH)),
           keys([READ_ORDERS, WRITE_ORD, DENY_BOB]))
    expect("literal orders", describe(filt(T, "orders", LIT)), keys([READ_ORDERS, DENY_BOB]))
    expect("prefixed", describe(filt(pattern=PRE)), keys([WRITE_ORD]))
    expect("bob's", describe(filt(principal="User:bob")), keys([DENY_BOB]))
    expect("groups", describe(filt(G)), keys([GROUP]))
    # Creating what exists changes nothing.
    expect("again", create([GROUP]), {key(GROUP): None})
    expect("ANY after again", describe(filt()), everything)
    # Delete alice's allow READ on the literal topic "orders".
    deleted = admin.delete_acls([AclBindingFilter(T, "orders", LIT, "User:alice", None, Op.READ,
                                                  ALLOW),
                                 filt(principal="User:nobody")])
    results = [keys(f.result(30)) for f in deleted.values()]
    expect("deleted", results, [keys([READ_ORDERS]), []])
    expect("after deleting", describe(filt()), REMAINING)
elif phase == "check":
    expect("after a restart", describe(filt()), REMAINING)
elif phase == "disabled":
    code, message = create([READ_ORDERS])[key(READ_ORDERS)] or (None, "")
    if code != 54:
        sys.exit(f"want SECURITY_DISABLED (54) without an authorizer, got {code} {message}")
    (future,) = admin.delete_acls([filt()]).values()
    try:
        future.result(30)
        sys.exit("delete_acls worked without an authorizer")
    except KafkaException as e:
        expect("delete without an authorizer", e.args[0].code(), 54)
    print(json.dumps({"phase": phase, "code": code}))
    sys.exit(0)
else:
    sys.exit(f"unknown phase {phase}")
print(json.dumps({"phase": phase, "acls": len(describe(filt()))}))
