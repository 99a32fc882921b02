"""Creates SCRAM credentials through confluent-kafka's AdminClient
(AlterUserScramCredentials: the client salts and hashes the password).

usage: scram_users.py BOOTSTRAP CONFIG_JSON USER:PASSWORD:MECHANISM...
  MECHANISM  SCRAM-SHA-256 or SCRAM-SHA-512
Prints {"created": N}; exits non-zero on any error.
"""
import json
import sys

from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)

bootstrap, config = sys.argv[1], json.loads(sys.argv[2])
admin = AdminClient({"bootstrap.servers": bootstrap, **config})
upserts = []
for spec in sys.argv[3:]:
    user, password, mechanism = spec.split(":")
    m = {"SCRAM-SHA-256": ScramMechanism.SCRAM_SHA_256,
         "SCRAM-SHA-512": ScramMechanism.SCRAM_SHA_512}[mechanism]
    upserts.append(UserScramCredentialUpsertion(user, ScramCredentialInfo(m, 4096), password.encode()))
for user, f in admin.alter_user_scram_credentials(upserts).items():
    f.result(20)
print(json.dumps({"created": len(upserts)}))
