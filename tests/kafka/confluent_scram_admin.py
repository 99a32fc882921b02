"""confluent-kafka's AdminClient manages SASL/SCRAM users on corelog's Kafka
listener: alter_user_scram_credentials (the client salts and hashes the
password; the broker never sees it) and describe_user_scram_credentials,
with Kafka's per-user errors.

usage: confluent_scram_admin.py BOOTSTRAP setup|check
  setup: alice (SCRAM-SHA-256, 4096 iterations) and bob (SCRAM-SHA-512,
         8192) are created; the refusals are checked: 100 iterations
         (UNACCEPTABLE_CREDENTIAL, 93), deleting an absent credential
         (RESOURCE_NOT_FOUND, 91), a user twice in one request
         (DUPLICATE_RESOURCE, 92), describing an unknown user (91) or one
         named twice (92); the other users of a refused request still change.
  check: after a restart, exactly alice, bob and erin are there.
Prints one JSON line; exits non-zero on any mismatch.
"""
import json
import sys

from confluent_kafka import KafkaException
from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialDeletion, UserScramCredentialUpsertion)

bootstrap, phase = sys.argv[1], sys.argv[2]
admin = AdminClient({"bootstrap.servers": bootstrap})
SHA256, SHA512 = ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512


def upsert(user, mechanism, iterations, password=b"password"):
    return UserScramCredentialUpsertion(user, ScramCredentialInfo(mechanism, iterations), password)


def outcomes(futures):
    """user -> None (done) or the Kafka error code."""
    out = {}
    for user, future in futures.items():
        try:
            future.result(30)
            out[user] = None
        except KafkaException as e:
            out[user] = e.args[0].code()
    return out


def alter(alterations):
    return outcomes(admin.alter_user_scram_credentials(alterations))


def everyone():
    described = admin.describe_user_scram_credentials().result(30)
    return {user: sorted((str(i.mechanism), i.iterations) for i in d.scram_credential_infos)
            for user, d in described.items()}


def expect(what, got, want):
    if got != want:
        sys.exit(f"{what}: got {got}, want {want}")


WANT = {
    "alice": [(str(SHA256), 4096)],
    "bob": [(str(SHA512), 8192)],
    "erin": [(str(SHA256), 4096)],
}

if phase == "setup":
    expect("creating alice and bob", alter([upsert("alice", SHA256, 4096),
                                            upsert("bob", SHA512, 8192)]),
           {"alice": None, "bob": None})
    expect("after creating", everyone(), {k: WANT[k] for k in ("alice", "bob")})
    # One request, each user its own answer; erin's change applies although
    # the others' are refused.
    expect("refusals", alter([upsert("carol", SHA256, 100),
                              UserScramCredentialDeletion("dave", SHA512),
                              upsert("erin", SHA256, 4096)]),
           {"carol": 93, "dave": 91, "erin": None})
    expect("a user twice", alter([upsert("frank", SHA256, 4096),
                                  upsert("frank", SHA256, 8192)]),
           {"frank": 92})
    expect("deleting alice's absent SCRAM-SHA-512", alter([UserScramCredentialDeletion("alice", SHA512)]),
           {"alice": 91})
    expect("after the refusals", everyone(), WANT)
    named = outcomes(admin.describe_user_scram_credentials(["alice", "nobody"]))
    expect("describing a known and an unknown user", named, {"alice": None, "nobody": 91})
    # A deletion that works, then the user is created again.
    expect("deleting bob", alter([UserScramCredentialDeletion("bob", SHA512)]), {"bob": None})
    expect("bob is gone", "bob" in everyone(), False)
    expect("bob again", alter([upsert("bob", SHA512, 8192, b"another")]), {"bob": None})
elif phase == "check":
    expect("after a restart", everyone(), WANT)
else:
    sys.exit(f"unknown phase {phase}")
print(json.dumps({"phase": phase, "users": sorted(everyone())}))
