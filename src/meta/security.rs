//! The security part of the metadata: SASL/SCRAM credentials and ACLs, kept
//! in the [`Snapshot`](super::Snapshot) like topics (one writer, the
//! controller; every shard sees them swapped in whole) and stored in the
//! metadata file's `scram_credentials` and `acls` tables.

use super::metadata_generated::corelog::metadata as file;
use crate::security::{
    AclBinding, Operation, PatternType, Permission, ResourceType, ScramCredential, ScramMechanism,
};
use std::collections::{BTreeMap, BTreeSet};

/// Every SCRAM credential and every ACL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecurityState {
    /// By user and mechanism (a user has one credential per mechanism).
    pub credentials: BTreeMap<(String, ScramMechanism), ScramCredential>,
    /// Each binding once.
    pub acls: BTreeSet<AclBinding>,
}

impl SecurityState {
    /// The credentials of one user, by mechanism.
    pub fn user_credentials(&self, user: &str) -> impl Iterator<Item = &ScramCredential> {
        ScramMechanism::ALL
            .into_iter()
            .filter_map(move |m| self.credentials.get(&(user.to_string(), m)))
    }

    /// Whether `user` has a credential for any mechanism.
    pub fn has_user(&self, user: &str) -> bool {
        self.user_credentials(user).next().is_some()
    }
}

/// Bytes of a SCRAM key (the mechanism's digest).
fn key_len(mechanism: ScramMechanism) -> usize {
    match mechanism {
        ScramMechanism::Sha256 => 32,
        ScramMechanism::Sha512 => 64,
    }
}

/// The `scram_credentials` and `acls` vectors of the metadata file (`None`
/// when there are none, as files written before they existed).
#[allow(clippy::type_complexity)]
pub(super) fn encode<'a>(
    state: &SecurityState,
    fbb: &mut flatbuffers::FlatBufferBuilder<'a>,
) -> (
    Option<
        flatbuffers::WIPOffset<
            flatbuffers::Vector<'a, flatbuffers::ForwardsUOffset<file::ScramCredentialRecord<'a>>>,
        >,
    >,
    Option<
        flatbuffers::WIPOffset<
            flatbuffers::Vector<'a, flatbuffers::ForwardsUOffset<file::AclRecord<'a>>>,
        >,
    >,
) {
    let credentials = (!state.credentials.is_empty()).then(|| {
        let records: Vec<_> = state
            .credentials
            .values()
            .map(|c| {
                let user = fbb.create_string(&c.user);
                let salt = fbb.create_vector(&c.salt);
                let stored_key = fbb.create_vector(&c.stored_key);
                let server_key = fbb.create_vector(&c.server_key);
                file::ScramCredentialRecord::create(
                    fbb,
                    &file::ScramCredentialRecordArgs {
                        user: Some(user),
                        mechanism: c.mechanism.code() as u8,
                        iterations: c.iterations,
                        salt: Some(salt),
                        stored_key: Some(stored_key),
                        server_key: Some(server_key),
                    },
                )
            })
            .collect();
        fbb.create_vector(&records)
    });
    let acls = (!state.acls.is_empty()).then(|| {
        let records: Vec<_> = state
            .acls
            .iter()
            .map(|a| {
                let resource_name = fbb.create_string(&a.resource_name);
                let principal = fbb.create_string(&a.principal);
                let host = fbb.create_string(&a.host);
                file::AclRecord::create(
                    fbb,
                    &file::AclRecordArgs {
                        resource_type: a.resource_type.kafka_code() as u8,
                        resource_name: Some(resource_name),
                        pattern_type: a.pattern.kafka_code() as u8,
                        principal: Some(principal),
                        host: Some(host),
                        operation: a.operation.kafka_code() as u8,
                        permission: a.permission.kafka_code() as u8,
                    },
                )
            })
            .collect();
        fbb.create_vector(&records)
    });
    (credentials, acls)
}

/// Reads the credentials and ACLs of a metadata file. A record this
/// version cannot read (a code it does not know, a missing field, a key of
/// the wrong length) is an error naming it: dropping it would lose it at
/// the next save, and a missing ACL can grant what it denied.
pub(super) fn decode(root: &file::MetadataFile<'_>) -> Result<SecurityState, String> {
    let mut state = SecurityState::default();
    for (i, r) in root.scram_credentials().iter().flatten().enumerate() {
        let user = r
            .user()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| format!("SCRAM credential #{i} has no user name"))?;
        let what = || format!("the SCRAM credential of user {user:?}");
        let mechanism = i8::try_from(r.mechanism())
            .ok()
            .and_then(ScramMechanism::from_code)
            .ok_or_else(|| {
                format!(
                    "{}: unknown mechanism code {} (1 is SCRAM-SHA-256, 2 SCRAM-SHA-512; written by a newer version?)",
                    what(),
                    r.mechanism()
                )
            })?;
        let bytes = |v: Option<flatbuffers::Vector<'_, u8>>| v.map(|v| v.bytes().to_vec());
        let salt = bytes(r.salt())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("{} for {}: no salt", what(), mechanism.name()))?;
        let len = key_len(mechanism);
        let key = |k: Option<Vec<u8>>, name: &str| {
            k.filter(|k| k.len() == len).ok_or_else(|| {
                format!(
                    "{} for {}: the {name} is not {len} bytes",
                    what(),
                    mechanism.name()
                )
            })
        };
        let stored_key = key(bytes(r.stored_key()), "stored key")?;
        let server_key = key(bytes(r.server_key()), "server key")?;
        if r.iterations() == 0 {
            return Err(format!(
                "{} for {}: zero iterations",
                what(),
                mechanism.name()
            ));
        }
        let credential = ScramCredential {
            user: user.to_string(),
            mechanism,
            iterations: r.iterations(),
            salt,
            stored_key,
            server_key,
        };
        if state
            .credentials
            .insert((user.to_string(), mechanism), credential)
            .is_some()
        {
            return Err(format!("{} for {} appears twice", what(), mechanism.name()));
        }
    }
    for (i, r) in root.acls().iter().flatten().enumerate() {
        let code = |field: &str, value: u8| {
            format!("ACL #{i}: unknown {field} code {value} (written by a newer version?)")
        };
        let resource_type = i8::try_from(r.resource_type())
            .ok()
            .and_then(ResourceType::from_kafka_code)
            .ok_or_else(|| code("resource type", r.resource_type()))?;
        let pattern = i8::try_from(r.pattern_type())
            .ok()
            .and_then(PatternType::from_kafka_code)
            .ok_or_else(|| code("pattern type", r.pattern_type()))?;
        let operation = i8::try_from(r.operation())
            .ok()
            .and_then(Operation::from_kafka_code)
            .ok_or_else(|| code("operation", r.operation()))?;
        let permission = i8::try_from(r.permission())
            .ok()
            .and_then(Permission::from_kafka_code)
            .ok_or_else(|| code("permission", r.permission()))?;
        let text = |v: Option<&str>, field: &str| {
            v.map(str::to_string)
                .ok_or_else(|| format!("ACL #{i}: no {field}"))
        };
        state.acls.insert(AclBinding {
            resource_type,
            resource_name: text(r.resource_name(), "resource name")?,
            pattern,
            principal: text(r.principal(), "principal")?,
            host: text(r.host(), "host")?,
            operation,
            permission,
        });
    }
    Ok(state)
}
