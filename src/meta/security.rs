//! The security part of the metadata: SASL/SCRAM credentials and ACLs, kept
//! in the [`Snapshot`](super::Snapshot) like topics (one writer, the
//! controller; every shard sees them swapped in whole) and stored in the
//! metadata file's `scram_credentials` and `acls` tables.

use super::Snapshot;
use super::metadata_generated::corelog::metadata as file;
use crate::error::{BrokerError, ErrorKind};
use crate::security::{
    AclBinding, AclFilter, Operation, PatternType, Permission, ResourceType, ScramCredential,
    ScramMechanism,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

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
    mechanism.hash_len()
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

/// One user's result in a change of SCRAM credentials.
pub type UserResult = (String, Result<(), BrokerError>);

impl Snapshot {
    /// A new snapshot with `upsertions` stored (replacing a user's
    /// credential for the same mechanism) and `deletions` removed, with
    /// Kafka's rules (AlterUserScramCredentials), per user in the order
    /// users first appear: a user named twice for one mechanism
    /// (DUPLICATE_RESOURCE), an empty name or salt or an iteration count
    /// outside Kafka's bounds (UNACCEPTABLE_CREDENTIAL) and the deletion
    /// of a credential that does not exist (RESOURCE_NOT_FOUND) fail that
    /// user's changes, all of them; other users' changes apply. `None`
    /// when nothing changes.
    pub fn with_scram_changes(
        &self,
        upsertions: Vec<ScramCredential>,
        deletions: Vec<(String, ScramMechanism)>,
    ) -> (Option<Snapshot>, Vec<UserResult>) {
        let mut order: Vec<String> = Vec::new();
        let mut errors: HashMap<String, BrokerError> = HashMap::new();
        let mut seen: HashMap<(String, ScramMechanism), usize> = HashMap::new();
        let named = upsertions
            .iter()
            .map(|c| (&c.user, c.mechanism))
            .chain(deletions.iter().map(|(u, m)| (u, *m)));
        for (user, mechanism) in named {
            if !order.contains(user) {
                order.push(user.clone());
            }
            *seen.entry((user.clone(), mechanism)).or_default() += 1;
        }
        let mut fail = |user: &str, e: BrokerError| {
            errors.entry(user.to_string()).or_insert(e);
        };
        for ((user, mechanism), n) in &seen {
            if *n > 1 {
                fail(
                    user,
                    BrokerError::new(
                        ErrorKind::DuplicateResource,
                        format!(
                            "user {user:?} has more than one change for {} in the request",
                            mechanism.name()
                        ),
                    ),
                );
            }
        }
        for c in &upsertions {
            if let Err(why) = check_credential(c) {
                fail(
                    &c.user,
                    BrokerError::new(ErrorKind::UnacceptableCredential, why),
                );
            }
        }
        for (user, mechanism) in &deletions {
            if user.is_empty() {
                fail(
                    user,
                    BrokerError::new(ErrorKind::UnacceptableCredential, "the user name is empty"),
                );
            } else if !self
                .security
                .credentials
                .contains_key(&(user.clone(), *mechanism))
            {
                fail(
                    user,
                    BrokerError::new(
                        ErrorKind::ResourceNotFound,
                        format!(
                            "user {user:?} has no {} credential to delete",
                            mechanism.name()
                        ),
                    ),
                );
            }
        }
        let mut state = (*self.security).clone();
        let mut changed = false;
        for (user, mechanism) in deletions {
            if !errors.contains_key(&user) {
                changed |= state.credentials.remove(&(user, mechanism)).is_some();
            }
        }
        for c in upsertions {
            if !errors.contains_key(&c.user) {
                state.credentials.insert((c.user.clone(), c.mechanism), c);
                changed = true;
            }
        }
        let results = order
            .into_iter()
            .map(|user| {
                let result = errors.remove(&user).map_or(Ok(()), Err);
                (user, result)
            })
            .collect();
        (changed.then(|| self.with_security(state)), results)
    }

    /// A new snapshot with `bindings` added (Kafka's CreateAcls): each is
    /// checked ([`acl::validate`](crate::security::acl::validate)), and a
    /// result per binding says whether it is stored (one already stored
    /// is, again). `None` when nothing changes.
    pub fn with_acls(
        &self,
        bindings: Vec<AclBinding>,
    ) -> (Option<Snapshot>, Vec<Result<(), BrokerError>>) {
        let mut state = (*self.security).clone();
        let mut changed = false;
        let results = bindings
            .into_iter()
            .map(|b| {
                crate::security::acl::validate(&b).map_err(|why| {
                    BrokerError::new(ErrorKind::InvalidRequest, format!("invalid ACL: {why}"))
                })?;
                changed |= state.acls.insert(b);
                Ok(())
            })
            .collect();
        (changed.then(|| self.with_security(state)), results)
    }

    /// A new snapshot without the ACLs `filters` select (Kafka's
    /// DeleteAcls); per filter, the ACLs it selected (one two filters
    /// select is listed under both). `None` when nothing changes.
    pub fn without_acls(&self, filters: &[AclFilter]) -> (Option<Snapshot>, Vec<Vec<AclBinding>>) {
        let selected: Vec<Vec<AclBinding>> = filters
            .iter()
            .map(|f| {
                self.security
                    .acls
                    .iter()
                    .filter(|b| f.matches(b))
                    .cloned()
                    .collect()
            })
            .collect();
        if selected.iter().all(Vec::is_empty) {
            return (None, selected);
        }
        let mut state = (*self.security).clone();
        for b in selected.iter().flatten() {
            state.acls.remove(b);
        }
        (Some(self.with_security(state)), selected)
    }

    /// A new snapshot with `state` as its credentials and ACLs.
    pub fn with_security(&self, state: SecurityState) -> Snapshot {
        let mut next = self.clone();
        next.version += 1;
        next.security = Arc::new(state);
        next
    }
}

/// Kafka's checks of a credential to store.
fn check_credential(c: &ScramCredential) -> Result<(), String> {
    if c.user.is_empty() {
        return Err("the user name is empty".into());
    }
    if c.salt.is_empty() {
        return Err(format!(
            "the {} salt of user {:?} is empty",
            c.mechanism.name(),
            c.user
        ));
    }
    let (min, max) = (
        ScramMechanism::MIN_ITERATIONS,
        ScramMechanism::MAX_ITERATIONS,
    );
    if !(min..=max).contains(&c.iterations) {
        return Err(format!(
            "{} iterations for user {:?}: {} must be between {min} and {max}",
            c.mechanism.name(),
            c.user,
            c.iterations
        ));
    }
    let len = key_len(c.mechanism);
    if c.stored_key.len() != len || c.server_key.len() != len {
        return Err(format!("{} keys must be {len} bytes", c.mechanism.name()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ScramMechanism::{Sha256, Sha512};

    fn credential(user: &str, mechanism: ScramMechanism, iterations: u32) -> ScramCredential {
        let len = key_len(mechanism);
        ScramCredential {
            user: user.to_string(),
            mechanism,
            iterations,
            salt: vec![7; 16],
            stored_key: vec![1; len],
            server_key: vec![2; len],
        }
    }

    fn kinds(results: &[UserResult]) -> Vec<(&str, Option<ErrorKind>)> {
        results
            .iter()
            .map(|(u, r)| (u.as_str(), r.as_ref().err().map(|e| e.kind)))
            .collect()
    }

    #[test]
    fn scram_changes_follow_kafka_s_rules_per_user() {
        let base = Snapshot::default();
        let (next, results) = base.with_scram_changes(
            vec![
                credential("alice", Sha256, 4096),
                credential("bob", Sha512, 16384),
                credential("carol", Sha256, 100),
                credential("dave", Sha256, 4096),
                credential("dave", Sha256, 8192),
                credential("", Sha256, 4096),
            ],
            vec![("erin".into(), Sha512), ("dave".into(), Sha512)],
        );
        assert_eq!(
            kinds(&results),
            vec![
                ("alice", None),
                ("bob", None),
                ("carol", Some(ErrorKind::UnacceptableCredential)),
                ("dave", Some(ErrorKind::DuplicateResource)),
                ("", Some(ErrorKind::UnacceptableCredential)),
                ("erin", Some(ErrorKind::ResourceNotFound)),
            ]
        );
        let next = next.expect("a change");
        assert_eq!(next.version, base.version + 1);
        let users: Vec<_> = next.security.credentials.keys().cloned().collect();
        assert_eq!(
            users,
            vec![("alice".to_string(), Sha256), ("bob".to_string(), Sha512)]
        );

        // A user whose one change fails keeps everything as it was.
        let (again, results) = next.with_scram_changes(
            vec![credential("alice", Sha512, 8192)],
            vec![("alice".into(), Sha256), ("alice".into(), Sha256)],
        );
        assert_eq!(
            kinds(&results),
            vec![("alice", Some(ErrorKind::DuplicateResource))]
        );
        assert!(again.is_none(), "nothing changed");

        // Replace and delete.
        let (last, results) = next.with_scram_changes(
            vec![credential("alice", Sha256, 8192)],
            vec![("bob".into(), Sha512)],
        );
        assert_eq!(kinds(&results), vec![("alice", None), ("bob", None)]);
        let last = last.unwrap();
        assert_eq!(last.security.credentials.len(), 1);
        assert_eq!(
            last.security.credentials[&("alice".to_string(), Sha256)].iterations,
            8192
        );
        assert!(!last.security.has_user("bob"));
    }

    fn binding(
        resource_type: ResourceType,
        name: &str,
        pattern: PatternType,
        principal: &str,
        operation: Operation,
        permission: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type,
            resource_name: name.to_string(),
            pattern,
            principal: principal.to_string(),
            host: "*".to_string(),
            operation,
            permission,
        }
    }

    #[test]
    fn acls_are_created_when_valid_and_deleted_by_filter() {
        use crate::security::PatternFilter;
        let read = binding(
            ResourceType::Topic,
            "orders",
            PatternType::Literal,
            "User:alice",
            Operation::Read,
            Permission::Allow,
        );
        let prefixed = binding(
            ResourceType::Topic,
            "ord",
            PatternType::Prefixed,
            "User:bob",
            Operation::Write,
            Permission::Deny,
        );
        let group = binding(
            ResourceType::Group,
            "billing",
            PatternType::Literal,
            "User:alice",
            Operation::Read,
            Permission::Allow,
        );
        let bad_cluster = binding(
            ResourceType::Cluster,
            "other",
            PatternType::Literal,
            "User:alice",
            Operation::Alter,
            Permission::Allow,
        );
        let bad_principal = AclBinding {
            principal: "alice".into(),
            ..read.clone()
        };
        let (next, results) = Snapshot::default().with_acls(vec![
            read.clone(),
            bad_cluster,
            prefixed.clone(),
            bad_principal,
            group.clone(),
            read.clone(),
        ]);
        let errors: Vec<_> = results
            .iter()
            .map(|r| r.as_ref().err().map(|e| e.kind))
            .collect();
        assert_eq!(
            errors,
            vec![
                None,
                Some(ErrorKind::InvalidRequest),
                None,
                Some(ErrorKind::InvalidRequest),
                None,
                None
            ]
        );
        let next = next.unwrap();
        assert_eq!(next.security.acls.len(), 3);
        // Creating what exists changes nothing.
        let (same, results) = next.with_acls(vec![read.clone()]);
        assert!(same.is_none() && results[0].is_ok());

        // MATCH on "orders": the literal ACL and the prefix "ord"; not the group's.
        let on_orders = AclFilter {
            resource_type: Some(ResourceType::Topic),
            resource_name: Some("orders".into()),
            pattern: PatternFilter::Match,
            ..AclFilter::any()
        };
        let alice = AclFilter {
            principal: Some("User:alice".into()),
            ..AclFilter::any()
        };
        let nothing = AclFilter {
            host: Some("10.0.0.1".into()),
            ..AclFilter::any()
        };
        let (after, deleted) = next.without_acls(&[on_orders, alice, nothing.clone()]);
        assert_eq!(deleted[0], vec![prefixed.clone(), read.clone()]);
        assert_eq!(deleted[1], vec![read.clone(), group.clone()]);
        assert!(deleted[2].is_empty());
        let after = after.unwrap();
        assert!(after.security.acls.is_empty());
        assert_eq!(after.version, next.version + 1);
        assert!(after.without_acls(&[nothing]).0.is_none());
    }
}
