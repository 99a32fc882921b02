//! Security administration over Kafka: SCRAM credentials
//! (DescribeUserScramCredentials, AlterUserScramCredentials) and ACLs
//! (CreateAcls, DescribeAcls, DeleteAcls), with Kafka's semantics and
//! error codes. Changes go through the controller (one save per request);
//! reads come from this shard's snapshot.
//!
//! The SCRAM APIs always work. The ACL APIs need `--authorizer acl`:
//! without it they answer SECURITY_DISABLED, as a Kafka broker without an
//! authorizer does.

use super::codes;
use crate::config::AuthorizerKind;
use crate::error::{BrokerError, ErrorKind};
use crate::security::{
    AclBinding, AclFilter, Operation, PatternFilter, PatternType, Permission, ResourceType,
    ScramCredential, ScramMechanism,
};
use crate::shard::Shard;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, CreateAclsRequest,
    CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse, DescribeAclsRequest,
    DescribeAclsResponse, DescribeUserScramCredentialsRequest,
    DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

/// Kafka's codes for "any" and "match" in filters, and the enumeration
/// values this broker has no resource or operation for.
const ANY: i8 = 1;
const MATCH: i8 = 2;
/// Kafka's resource types TRANSACTIONAL_ID, DELEGATION_TOKEN and USER.
const UNSERVED_RESOURCE_TYPES: [(i8, &str); 3] = [
    (5, "TRANSACTIONAL_ID"),
    (6, "DELEGATION_TOKEN"),
    (7, "USER"),
];
/// Kafka's operations CREATE_TOKENS and DESCRIBE_TOKENS (on USER resources).
const UNSERVED_OPERATIONS: [(i8, &str); 2] = [(13, "CREATE_TOKENS"), (14, "DESCRIBE_TOKENS")];

fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

fn invalid(message: impl Into<String>) -> BrokerError {
    BrokerError::new(ErrorKind::InvalidRequest, message)
}

/// The refusal of an ACL API when the broker keeps no ACLs.
fn security_disabled() -> BrokerError {
    BrokerError::new(
        ErrorKind::SecurityDisabled,
        "no authorizer is configured on this broker: ACLs need --authorizer acl",
    )
}

fn acls_enabled(shard: &Shard) -> Result<(), BrokerError> {
    match shard.config.authorizer {
        AuthorizerKind::Acl => Ok(()),
        AuthorizerKind::None => Err(security_disabled()),
    }
}

/// (code, message) of a result.
fn error_fields(result: &Result<(), BrokerError>) -> (i16, Option<StrBytes>) {
    match result {
        Ok(()) => (codes::NONE, None),
        Err(e) => (codes::code(e.kind), Some(text(e.message.clone()))),
    }
}

// ---------------------------------------------------------------------------
// SCRAM credentials

pub fn describe_user_scram_credentials(
    shard: &Rc<Shard>,
    request: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let snapshot = shard.snapshot();
    let security = &snapshot.security;
    let info = |user: &str| -> Vec<CredentialInfo> {
        security
            .user_credentials(user)
            .map(|c| {
                CredentialInfo::default()
                    .with_mechanism(c.mechanism.code())
                    .with_iterations(c.iterations.min(i32::MAX as u32) as i32)
            })
            .collect()
    };
    let mut out = DescribeUserScramCredentialsResponse::default();
    let asked: Vec<String> = request
        .users
        .unwrap_or_default()
        .into_iter()
        .map(|u| u.name.to_string())
        .collect();
    // No users (null or empty, as Kafka reads it): every user.
    if asked.is_empty() {
        let mut users: Vec<&str> = security
            .credentials
            .keys()
            .map(|(u, _)| u.as_str())
            .collect();
        users.dedup();
        out.results = users
            .into_iter()
            .map(|user| {
                DescribeUserScramCredentialsResult::default()
                    .with_user(text(user))
                    .with_credential_infos(info(user))
            })
            .collect();
        return out;
    }
    let mut count: HashMap<&str, usize> = HashMap::new();
    for user in &asked {
        *count.entry(user).or_default() += 1;
    }
    let mut answered = Vec::new();
    for user in &asked {
        if answered.contains(user) {
            continue;
        }
        answered.push(user.clone());
        let result = if count[user.as_str()] > 1 {
            Err(BrokerError::new(
                ErrorKind::DuplicateResource,
                format!("user {user:?} is named more than once in the request"),
            ))
        } else if !security.has_user(user) {
            Err(BrokerError::new(
                ErrorKind::ResourceNotFound,
                format!("user {user:?} has no SCRAM credential"),
            ))
        } else {
            Ok(())
        };
        let (code, message) = error_fields(&result);
        let mut r = DescribeUserScramCredentialsResult::default()
            .with_user(text(user.clone()))
            .with_error_code(code)
            .with_error_message(message);
        if result.is_ok() {
            r.credential_infos = info(user);
        }
        out.results.push(r);
    }
    out
}

/// A mechanism by Kafka's code, or UNSUPPORTED_SASL_MECHANISM.
fn mechanism(code: i8, user: &str) -> Result<ScramMechanism, BrokerError> {
    ScramMechanism::from_code(code).ok_or_else(|| {
        BrokerError::new(
            ErrorKind::UnsupportedSaslMechanism,
            format!(
                "user {user:?}: SCRAM mechanism {code} is unknown (1 is SCRAM-SHA-256, 2 SCRAM-SHA-512)"
            ),
        )
    })
}

fn unacceptable(message: String) -> BrokerError {
    BrokerError::new(ErrorKind::UnacceptableCredential, message)
}

pub async fn alter_user_scram_credentials(
    shard: &Rc<Shard>,
    request: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    // Users in the order they first appear, each answered once.
    let mut order: Vec<String> = Vec::new();
    let mut named: HashMap<(String, i8), usize> = HashMap::new();
    let all = request
        .deletions
        .iter()
        .map(|d| (d.name.to_string(), d.mechanism))
        .chain(
            request
                .upsertions
                .iter()
                .map(|u| (u.name.to_string(), u.mechanism)),
        );
    for (user, code) in all {
        if !order.contains(&user) {
            order.push(user.clone());
        }
        *named.entry((user, code)).or_default() += 1;
    }
    let mut errors: HashMap<String, BrokerError> = HashMap::new();
    let mut fail = |user: &str, e: BrokerError| {
        errors.entry(user.to_string()).or_insert(e);
    };
    for ((user, code), n) in &named {
        if *n > 1 {
            let what = ScramMechanism::from_code(*code).map_or("one mechanism", |m| m.name());
            fail(
                user,
                BrokerError::new(
                    ErrorKind::DuplicateResource,
                    format!("user {user:?} has more than one change for {what} in the request"),
                ),
            );
        }
    }
    let mut deletions = Vec::new();
    for d in &request.deletions {
        let user = d.name.to_string();
        let checked = if user.is_empty() {
            Err(unacceptable("the user name is empty".into()))
        } else {
            mechanism(d.mechanism, &user)
        };
        match checked {
            Ok(m) => deletions.push((user, m)),
            Err(e) => fail(&user, e),
        }
    }
    let mut upsertions = Vec::new();
    for u in &request.upsertions {
        let user = u.name.to_string();
        match upsertion(&user, u) {
            Ok(c) => upsertions.push(c),
            Err(e) => fail(&user, e),
        }
    }
    // A user with an invalid change keeps everything it has.
    deletions.retain(|(user, _)| !errors.contains_key(user));
    upsertions.retain(|c| !errors.contains_key(&c.user));
    let mut applied: HashMap<String, Result<(), BrokerError>> = HashMap::new();
    if !deletions.is_empty() || !upsertions.is_empty() {
        let users: Vec<String> = deletions
            .iter()
            .map(|(u, _)| u.clone())
            .chain(upsertions.iter().map(|c| c.user.clone()))
            .collect();
        match shard.alter_scram_credentials(upsertions, deletions).await {
            Ok(results) => applied.extend(results),
            Err(e) => applied.extend(users.into_iter().map(|u| (u, Err(e.clone())))),
        }
    }
    let mut out = AlterUserScramCredentialsResponse::default();
    for user in order {
        let result = match errors.remove(&user) {
            Some(e) => Err(e),
            None => applied.remove(&user).unwrap_or(Ok(())),
        };
        let (code, message) = error_fields(&result);
        out.results.push(
            AlterUserScramCredentialsResult::default()
                .with_user(text(user))
                .with_error_code(code)
                .with_error_message(message),
        );
    }
    out
}

/// The credential an upsertion asks for: the client sent the salt and
/// the salted password (never the password); the keys come from them.
fn upsertion(
    user: &str,
    u: &kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion,
) -> Result<ScramCredential, BrokerError> {
    if user.is_empty() {
        return Err(unacceptable("the user name is empty".into()));
    }
    let m = mechanism(u.mechanism, user)?;
    let (min, max) = (
        ScramMechanism::MIN_ITERATIONS,
        ScramMechanism::MAX_ITERATIONS,
    );
    if !(min as i64..=max as i64).contains(&(u.iterations as i64)) {
        return Err(unacceptable(format!(
            "user {user:?}: {} iterations for {} are not between {min} and {max}",
            u.iterations,
            m.name()
        )));
    }
    if u.salt.is_empty() {
        return Err(unacceptable(format!(
            "user {user:?}: the {} salt is empty",
            m.name()
        )));
    }
    if u.salted_password.len() != m.hash_len() {
        return Err(unacceptable(format!(
            "user {user:?}: a {} salted password is {} bytes, not {}",
            m.name(),
            m.hash_len(),
            u.salted_password.len()
        )));
    }
    Ok(crate::security::scram::credential_from_salted_password(
        user,
        m,
        &u.salt,
        &u.salted_password,
        u.iterations as u32,
    ))
}

// ---------------------------------------------------------------------------
// ACLs

/// A binding to create, from Kafka's codes: ANY, MATCH and UNKNOWN are no
/// value here, and the resource types and operations this broker has no
/// use for are refused by name.
fn binding(c: &AclCreation) -> Result<AclBinding, BrokerError> {
    if let Some((_, name)) = UNSERVED_RESOURCE_TYPES
        .iter()
        .find(|(code, _)| *code == c.resource_type)
    {
        return Err(invalid(format!(
            "ACLs on {name} resources are not supported by this broker"
        )));
    }
    if let Some((_, name)) = UNSERVED_OPERATIONS
        .iter()
        .find(|(code, _)| *code == c.operation)
    {
        return Err(invalid(format!(
            "the {name} operation is not supported by this broker"
        )));
    }
    let resource_type = ResourceType::from_kafka_code(c.resource_type).ok_or_else(|| {
        invalid(format!(
            "resource type {} cannot be created: TOPIC (2), GROUP (3) or CLUSTER (4)",
            c.resource_type
        ))
    })?;
    let pattern = PatternType::from_kafka_code(c.resource_pattern_type).ok_or_else(|| {
        invalid(format!(
            "pattern type {} cannot be created: LITERAL (3) or PREFIXED (4)",
            c.resource_pattern_type
        ))
    })?;
    let operation = Operation::from_kafka_code(c.operation).ok_or_else(|| {
        invalid(format!(
            "operation {} cannot be created: ALL (2) to IDEMPOTENT_WRITE (12)",
            c.operation
        ))
    })?;
    let permission = Permission::from_kafka_code(c.permission_type).ok_or_else(|| {
        invalid(format!(
            "permission type {} cannot be created: DENY (2) or ALLOW (3)",
            c.permission_type
        ))
    })?;
    Ok(AclBinding {
        resource_type,
        resource_name: c.resource_name.to_string(),
        pattern,
        principal: c.principal.to_string(),
        host: c.host.to_string(),
        operation,
        permission,
    })
}

pub async fn create_acls(shard: &Rc<Shard>, request: CreateAclsRequest) -> CreateAclsResponse {
    let mut results: Vec<Result<(), BrokerError>> = Vec::with_capacity(request.creations.len());
    let mut valid = Vec::new();
    let mut slots = Vec::new();
    for c in &request.creations {
        let checked = acls_enabled(shard).and_then(|()| binding(c));
        match checked {
            Ok(b) => {
                slots.push(results.len());
                valid.push(b);
                results.push(Ok(()));
            }
            Err(e) => results.push(Err(e)),
        }
    }
    if !valid.is_empty() {
        match shard.create_acls(valid).await {
            Ok(created) => {
                for (slot, r) in slots.into_iter().zip(created) {
                    results[slot] = r;
                }
            }
            Err(e) => {
                for slot in slots {
                    results[slot] = Err(e.clone());
                }
            }
        }
    }
    let mut out = CreateAclsResponse::default();
    out.results = results
        .iter()
        .map(|r| {
            let (code, message) = error_fields(r);
            AclCreationResult::default()
                .with_error_code(code)
                .with_error_message(message)
        })
        .collect();
    out
}

/// The fields of a DescribeAcls or DeleteAcls filter, in Kafka's codes.
struct WireFilter<'a> {
    resource_type: i8,
    resource_name: Option<&'a StrBytes>,
    pattern_type: i8,
    principal: Option<&'a StrBytes>,
    host: Option<&'a StrBytes>,
    operation: i8,
    permission: i8,
}

/// A filter from Kafka's codes; `Ok(None)` for a valid filter that can
/// select nothing here (a resource type or operation this broker keeps no
/// ACLs for). UNKNOWN (or a code Kafka does not have) is INVALID_REQUEST.
fn filter(f: &WireFilter<'_>) -> Result<Option<AclFilter>, BrokerError> {
    let unserved_type = UNSERVED_RESOURCE_TYPES
        .iter()
        .any(|(code, _)| *code == f.resource_type);
    let resource_type = match f.resource_type {
        ANY => None,
        code => match ResourceType::from_kafka_code(code) {
            Some(t) => Some(t),
            None if unserved_type => None,
            None => return Err(invalid(format!("resource type filter {code} is unknown"))),
        },
    };
    let pattern = match f.pattern_type {
        ANY => PatternFilter::Any,
        MATCH => PatternFilter::Match,
        code => PatternFilter::Exactly(
            PatternType::from_kafka_code(code)
                .ok_or_else(|| invalid(format!("pattern type filter {code} is unknown")))?,
        ),
    };
    let unserved_operation = UNSERVED_OPERATIONS
        .iter()
        .any(|(code, _)| *code == f.operation);
    let operation = match f.operation {
        ANY => None,
        code => match Operation::from_kafka_code(code) {
            Some(o) => Some(o),
            None if unserved_operation => None,
            None => return Err(invalid(format!("operation filter {code} is unknown"))),
        },
    };
    let permission = match f.permission {
        ANY => None,
        code => Some(
            Permission::from_kafka_code(code)
                .ok_or_else(|| invalid(format!("permission type filter {code} is unknown")))?,
        ),
    };
    if unserved_type || unserved_operation {
        return Ok(None);
    }
    Ok(Some(AclFilter {
        resource_type,
        resource_name: f.resource_name.map(|n| n.to_string()),
        pattern,
        principal: f.principal.map(|p| p.to_string()),
        host: f.host.map(|h| h.to_string()),
        operation,
        permission,
    }))
}

pub fn describe_acls(shard: &Rc<Shard>, request: DescribeAclsRequest) -> DescribeAclsResponse {
    let mut out = DescribeAclsResponse::default();
    let wire = WireFilter {
        resource_type: request.resource_type_filter,
        resource_name: request.resource_name_filter.as_ref(),
        pattern_type: request.pattern_type_filter,
        principal: request.principal_filter.as_ref(),
        host: request.host_filter.as_ref(),
        operation: request.operation,
        permission: request.permission_type,
    };
    let selected = match acls_enabled(shard).and_then(|()| filter(&wire)) {
        Ok(selected) => selected,
        Err(e) => {
            out.error_code = codes::code(e.kind);
            out.error_message = Some(text(e.message));
            return out;
        }
    };
    let Some(selected) = selected else {
        return out;
    };
    let snapshot = shard.snapshot();
    // Grouped by resource, as Kafka answers.
    let mut resources: BTreeMap<(ResourceType, &str, PatternType), Vec<AclDescription>> =
        BTreeMap::new();
    for b in snapshot
        .security
        .acls
        .iter()
        .filter(|b| selected.matches(b))
    {
        resources
            .entry((b.resource_type, b.resource_name.as_str(), b.pattern))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(text(b.principal.clone()))
                    .with_host(text(b.host.clone()))
                    .with_operation(b.operation.kafka_code())
                    .with_permission_type(b.permission.kafka_code()),
            );
    }
    out.resources = resources
        .into_iter()
        .map(|((resource_type, name, pattern), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(resource_type.kafka_code())
                .with_resource_name(text(name))
                .with_pattern_type(pattern.kafka_code())
                .with_acls(acls)
        })
        .collect();
    out
}

pub async fn delete_acls(shard: &Rc<Shard>, request: DeleteAclsRequest) -> DeleteAclsResponse {
    let checked: Vec<Result<Option<AclFilter>, BrokerError>> = request
        .filters
        .iter()
        .map(|f: &DeleteAclsFilter| {
            acls_enabled(shard)?;
            filter(&WireFilter {
                resource_type: f.resource_type_filter,
                resource_name: f.resource_name_filter.as_ref(),
                pattern_type: f.pattern_type_filter,
                principal: f.principal_filter.as_ref(),
                host: f.host_filter.as_ref(),
                operation: f.operation,
                permission: f.permission_type,
            })
        })
        .collect();
    let usable: Vec<AclFilter> = checked
        .iter()
        .filter_map(|c| c.as_ref().ok().cloned().flatten())
        .collect();
    let deleted = if usable.is_empty() {
        Ok(Vec::new())
    } else {
        shard.delete_acls(usable).await
    };
    let mut deleted = match deleted {
        Ok(deleted) => Ok(deleted.into_iter()),
        Err(e) => Err(e),
    };
    let mut out = DeleteAclsResponse::default();
    for c in checked {
        let result = match c {
            Err(e) => Err(e),
            Ok(None) => Ok(Vec::new()),
            Ok(Some(_)) => match &mut deleted {
                Ok(each) => Ok(each.next().unwrap_or_default()),
                Err(e) => Err(e.clone()),
            },
        };
        let r = match result {
            Ok(bindings) => DeleteAclsFilterResult::default().with_matching_acls(
                bindings
                    .into_iter()
                    .map(|b| {
                        DeleteAclsMatchingAcl::default()
                            .with_resource_type(b.resource_type.kafka_code())
                            .with_resource_name(text(b.resource_name))
                            .with_pattern_type(b.pattern.kafka_code())
                            .with_principal(text(b.principal))
                            .with_host(text(b.host))
                            .with_operation(b.operation.kafka_code())
                            .with_permission_type(b.permission.kafka_code())
                    })
                    .collect(),
            ),
            Err(e) => DeleteAclsFilterResult::default()
                .with_error_code(codes::code(e.kind))
                .with_error_message(Some(text(e.message))),
        };
        out.filter_results.push(r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire<'a>(resource_type: i8, pattern: i8, operation: i8, permission: i8) -> WireFilter<'a> {
        WireFilter {
            resource_type,
            resource_name: None,
            pattern_type: pattern,
            principal: None,
            host: None,
            operation,
            permission,
        }
    }

    #[test]
    fn filters_read_kafka_s_any_and_match_codes() {
        let any = filter(&wire(ANY, ANY, ANY, ANY)).unwrap().unwrap();
        assert_eq!(any, AclFilter::any());
        let f = filter(&wire(2, MATCH, 3, 3)).unwrap().unwrap();
        assert_eq!(f.resource_type, Some(ResourceType::Topic));
        assert_eq!(f.pattern, PatternFilter::Match);
        assert_eq!(f.operation, Some(Operation::Read));
        assert_eq!(f.permission, Some(Permission::Allow));
        let f = filter(&wire(4, 4, 2, 2)).unwrap().unwrap();
        assert_eq!(f.pattern, PatternFilter::Exactly(PatternType::Prefixed));
        // Valid in Kafka, nothing here to select.
        assert_eq!(filter(&wire(5, ANY, ANY, ANY)).unwrap(), None);
        assert_eq!(filter(&wire(ANY, ANY, 13, ANY)).unwrap(), None);
        // UNKNOWN (0) and codes Kafka does not have.
        for bad in [
            wire(0, ANY, ANY, ANY),
            wire(ANY, 0, ANY, ANY),
            wire(ANY, ANY, 0, ANY),
            wire(ANY, ANY, ANY, 0),
            wire(9, ANY, ANY, ANY),
            wire(ANY, ANY, 15, ANY),
        ] {
            assert_eq!(filter(&bad).unwrap_err().kind, ErrorKind::InvalidRequest);
        }
    }

    #[test]
    fn creations_take_only_concrete_values() {
        let creation = |resource_type: i8, pattern: i8, operation: i8, permission: i8| {
            AclCreation::default()
                .with_resource_type(resource_type)
                .with_resource_name(text("orders"))
                .with_resource_pattern_type(pattern)
                .with_principal(text("User:alice"))
                .with_host(text("*"))
                .with_operation(operation)
                .with_permission_type(permission)
        };
        let b = binding(&creation(2, 4, 4, 2)).unwrap();
        assert_eq!(
            (b.resource_type, b.pattern, b.operation, b.permission),
            (
                ResourceType::Topic,
                PatternType::Prefixed,
                Operation::Write,
                Permission::Deny
            )
        );
        for (c, needle) in [
            (creation(ANY, 3, 3, 3), "resource type 1"),
            (creation(2, MATCH, 3, 3), "pattern type 2"),
            (creation(2, ANY, 3, 3), "pattern type 1"),
            (creation(2, 3, ANY, 3), "operation 1"),
            (creation(2, 3, 3, ANY), "permission type 1"),
            (creation(0, 3, 3, 3), "resource type 0"),
            (
                creation(5, 3, 3, 3),
                "TRANSACTIONAL_ID resources are not supported",
            ),
            (creation(7, 3, 3, 3), "USER resources are not supported"),
            (
                creation(2, 3, 14, 3),
                "DESCRIBE_TOKENS operation is not supported",
            ),
        ] {
            let e = binding(&c).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidRequest);
            assert!(e.message.contains(needle), "{}", e.message);
        }
    }
}
