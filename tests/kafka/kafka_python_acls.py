"""kafka-python's KafkaAdminClient.describe_acls reads corelog's ACLs (an
ANY filter, then a MATCH filter on the topic "orders").

usage: kafka_python_acls.py BOOTSTRAP [disabled]
Prints one JSON line: {"any": [...], "match_orders": [...]}, each ACL as
[resource type, name, pattern type, principal, host, operation, permission]
in Kafka's names. With "disabled" (a broker without --authorizer acl),
describe_acls must raise SecurityDisabledError; prints {"disabled": MESSAGE}.
"""
import json
import sys

from kafka.admin import (ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType,
                         KafkaAdminClient, ResourcePatternFilter, ResourceType)

from kafka.errors import SecurityDisabledError

bootstrap = sys.argv[1]
admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)


def describe(resource_type, name, pattern):
    acls, error = admin.describe_acls(ACLFilter(
        principal=None, host=None, operation=ACLOperation.ANY,
        permission_type=ACLPermissionType.ANY,
        resource_pattern=ResourcePatternFilter(resource_type, name, pattern)))
    if error.errno != 0:
        sys.exit(f"describe_acls: {error}")
    return sorted([a.resource_pattern.resource_type.name, a.resource_pattern.resource_name,
                   a.resource_pattern.pattern_type.name, a.principal, a.host, a.operation.name,
                   a.permission_type.name] for a in acls)


if sys.argv[2:] == ["disabled"]:
    try:
        describe(ResourceType.ANY, None, ACLResourcePatternType.ANY)
        sys.exit("describe_acls worked without an authorizer")
    except SecurityDisabledError as e:
        print(json.dumps({"disabled": str(e)}))
    admin.close()
    sys.exit(0)

print(json.dumps({
    "any": describe(ResourceType.ANY, None, ACLResourcePatternType.ANY),
    "match_orders": describe(ResourceType.TOPIC, "orders", ACLResourcePatternType.MATCH),
}))
admin.close()
