//! `corelog user` and `corelog acl`: SASL/SCRAM users and ACLs, managed
//! over the Kafka listener with the requests Kafka's own tools send
//! (AlterUserScramCredentials, DescribeUserScramCredentials, CreateAcls,
//! DescribeAcls, DeleteAcls), so they work against any broker that serves
//! them.
//!
//! A password never leaves this process: like a Kafka client, the command
//! picks a random salt and sends the salted password (PBKDF2), from which
//! the broker derives the keys it stores.

use super::group::Conn;
use crate::cli::out::outln;
use crate::security::{
    CLUSTER_RESOURCE_NAME, Operation, PatternType, Permission, ResourceType, ScramMechanism, scram,
};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::net::SocketAddr;

/// The environment variable `user create` reads the password from when
/// `--password` is not given.
pub const PASSWORD_ENV: &str = "CORELOG_PASSWORD";

/// Kafka's default iteration count (its `kafka-configs` tool's).
const ITERATIONS_DEFAULT: u32 = 4096;

/// ANY in Kafka's ACL filters.
const ANY: i8 = 1;

#[derive(clap::Args, Debug)]
pub struct UserArgs {
    #[command(subcommand)]
    pub command: UserCommand,
    /// The broker's Kafka listener.
    #[arg(long, default_value = "127.0.0.1:9092", global = true)]
    pub kafka_broker: SocketAddr,
}

#[derive(clap::Subcommand, Debug)]
pub enum UserCommand {
    /// Give a user SCRAM credentials (replacing those it has for the same
    /// mechanisms).
    Create {
        name: String,
        /// The password (default: the environment variable
        /// CORELOG_PASSWORD, which keeps it off the command line).
        #[arg(long)]
        password: Option<String>,
        /// SCRAM-SHA-256 or SCRAM-SHA-512 (default: both).
        #[arg(long, value_parser = parse_mechanism)]
        mechanism: Option<ScramMechanism>,
        /// PBKDF2 iterations, 4096 to 16384.
        #[arg(long, default_value_t = ITERATIONS_DEFAULT)]
        iterations: u32,
    },
    /// Delete a user's credentials.
    Delete {
        name: String,
        /// Only this mechanism's credential (default: every one it has).
        #[arg(long, value_parser = parse_mechanism)]
        mechanism: Option<ScramMechanism>,
    },
    /// Every user: its mechanisms and their iteration counts.
    List,
}

#[derive(clap::Args, Debug)]
pub struct AclArgs {
    #[command(subcommand)]
    pub command: AclCommand,
    /// The broker's Kafka listener.
    #[arg(long, default_value = "127.0.0.1:9092", global = true)]
    pub kafka_broker: SocketAddr,
}

#[derive(clap::Subcommand, Debug)]
pub enum AclCommand {
    /// Allow (or with --deny, deny) a principal operations on a resource.
    Add(AclAddArgs),
    /// Remove ACLs: the arguments of `acl add` remove the ACLs it added;
    /// without --principal or --operation, those of any principal or
    /// operation on the resource.
    Remove(AclRemoveArgs),
    /// ACLs, all or those of a principal and/or a resource.
    List(AclListArgs),
}

/// The resource of an ACL: exactly one of them.
#[derive(clap::Args, Debug)]
#[group(required = true, multiple = false)]
pub struct Resource {
    /// A topic (or with --prefixed, the topics starting with this; * is
    /// every topic).
    #[arg(long)]
    topic: Option<String>,
    /// A consumer group (or with --prefixed, the groups starting with
    /// this; * is every group).
    #[arg(long)]
    group: Option<String>,
    /// The cluster (kafka-cluster).
    #[arg(long)]
    cluster: bool,
}

/// A resource to list ACLs of: at most one of them.
#[derive(clap::Args, Debug)]
#[group(required = false, multiple = false)]
pub struct ResourceFilter {
    /// ACLs on this topic name (literal or prefix).
    #[arg(long)]
    topic: Option<String>,
    /// ACLs on this group name (literal or prefix).
    #[arg(long)]
    group: Option<String>,
    /// The cluster (kafka-cluster).
    #[arg(long)]
    cluster: bool,
}

#[derive(clap::Args, Debug)]
pub struct AclAddArgs {
    /// User:NAME, or User:* for every principal.
    #[arg(long)]
    principal: String,
    /// read, write, create, delete, alter, describe, cluster-action,
    /// describe-configs, alter-configs, idempotent-write or all; repeat for
    /// several.
    #[arg(long = "operation", required = true, value_parser = parse_operation)]
    operations: Vec<Operation>,
    #[command(flatten)]
    resource: Resource,
    /// The name is a prefix: the ACL covers every resource starting with it.
    #[arg(long)]
    prefixed: bool,
    /// Deny instead of allow.
    #[arg(long)]
    deny: bool,
    /// The client IP address the ACL is about (* for any).
    #[arg(long, default_value = "*")]
    host: String,
}

#[derive(clap::Args, Debug)]
pub struct AclRemoveArgs {
    /// User:NAME or User:* (default: any principal).
    #[arg(long)]
    principal: Option<String>,
    /// Repeat for several (default: any operation).
    #[arg(long = "operation", value_parser = parse_operation)]
    operations: Vec<Operation>,
    #[command(flatten)]
    resource: Resource,
    /// ACLs on the prefix, not the literal name.
    #[arg(long)]
    prefixed: bool,
    /// Deny ACLs instead of allow ACLs.
    #[arg(long)]
    deny: bool,
    /// ACLs about this client IP address (* for those about any).
    #[arg(long, default_value = "*")]
    host: String,
}

#[derive(clap::Args, Debug)]
pub struct AclListArgs {
    /// Only this principal's ACLs.
    #[arg(long)]
    principal: Option<String>,
    /// Only ACLs on this resource (literal or prefixed by this name).
    #[command(flatten)]
    resource: ResourceFilter,
}

fn parse_mechanism(text: &str) -> Result<ScramMechanism, String> {
    ScramMechanism::from_name(text)
        .ok_or_else(|| format!("{text:?} is not SCRAM-SHA-256 or SCRAM-SHA-512"))
}

fn parse_operation(text: &str) -> Result<Operation, String> {
    Operation::from_name(text).ok_or_else(|| {
        let names: Vec<String> = Operation::ALL
            .iter()
            .map(|o| o.name().to_ascii_lowercase().replace('_', "-"))
            .collect();
        format!("{text:?} is not an operation: {}", names.join(", "))
    })
}

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

/// Kafka's name of an error code (`UNACCEPTABLE_CREDENTIAL`).
fn error_name(code: i16) -> String {
    let Some(e) = kafka_protocol::error::ResponseError::try_from_code(code) else {
        return format!("ERROR_{code}");
    };
    let camel = format!("{e:?}");
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// `Err` for a failed result: what failed, Kafka's error name and code, and
/// the broker's message.
fn check(code: i16, message: Option<&StrBytes>, what: &str) -> Result<(), String> {
    if code == 0 {
        return Ok(());
    }
    let mut text = format!("{what}: {} ({code})", error_name(code));
    if let Some(m) = message.filter(|m| !m.is_empty()) {
        text.push_str(": ");
        text.push_str(m);
    }
    Err(text)
}

pub fn user(args: UserArgs) -> Result<(), String> {
    let mut conn = Conn::open(args.kafka_broker)?;
    match args.command {
        UserCommand::Create {
            name,
            password,
            mechanism,
            iterations,
        } => {
            let password = match password {
                Some(p) => p,
                None => std::env::var(PASSWORD_ENV)
                    .map_err(|_| format!("no password: give --password or set {PASSWORD_ENV}"))?,
            };
            if password.is_empty() {
                return Err("the password is empty".into());
            }
            let mechanisms = mechanism.map_or(ScramMechanism::ALL.to_vec(), |m| vec![m]);
            let upsertions = mechanisms
                .iter()
                .map(|&m| {
                    let salt = scram::random_salt();
                    let salted = scram::salted_password(m, password.as_bytes(), &salt, iterations);
                    ScramCredentialUpsertion::default()
                        .with_name(s(&name))
                        .with_mechanism(m.code())
                        .with_iterations(iterations.min(i32::MAX as u32) as i32)
                        .with_salt(salt.into())
                        .with_salted_password(salted.into())
                })
                .collect();
            let request = AlterUserScramCredentialsRequest::default().with_upsertions(upsertions);
            alter(&mut conn, request, &format!("creating user {name:?}"))?;
            let names: Vec<&str> = mechanisms.iter().map(|m| m.name()).collect();
            outln!("created user {name} ({})", names.join(", "));
            Ok(())
        }
        UserCommand::Delete { name, mechanism } => {
            let mechanisms = match mechanism {
                Some(m) => vec![m],
                None => {
                    let had = describe(&mut conn, Some(&name))?;
                    let had: Vec<ScramMechanism> = had.into_iter().map(|(_, m, _)| m).collect();
                    if had.is_empty() {
                        return Err(format!("user {name:?} has no SCRAM credential"));
                    }
                    had
                }
            };
            let deletions = mechanisms
                .iter()
                .map(|m| {
                    ScramCredentialDeletion::default()
                        .with_name(s(&name))
                        .with_mechanism(m.code())
                })
                .collect();
            let request = AlterUserScramCredentialsRequest::default().with_deletions(deletions);
            alter(&mut conn, request, &format!("deleting user {name:?}"))?;
            let names: Vec<&str> = mechanisms.iter().map(|m| m.name()).collect();
            outln!("deleted user {name} ({})", names.join(", "));
            Ok(())
        }
        UserCommand::List => {
            let users = describe(&mut conn, None)?;
            outln!("{:<32} {:<14} ITERATIONS", "USER", "MECHANISM");
            for (user, mechanism, iterations) in users {
                outln!("{user:<32} {:<14} {iterations}", mechanism.name());
            }
            Ok(())
        }
    }
}

fn alter(
    conn: &mut Conn,
    request: AlterUserScramCredentialsRequest,
    what: &str,
) -> Result<(), String> {
    let response: AlterUserScramCredentialsResponse =
        conn.call(ApiKey::AlterUserScramCredentials, 0, &request)?;
    for r in &response.results {
        check(r.error_code, r.error_message.as_ref(), what)?;
    }
    Ok(())
}

/// (user, mechanism, iterations) of every user, or of `user`, sorted.
fn describe(
    conn: &mut Conn,
    user: Option<&str>,
) -> Result<Vec<(String, ScramMechanism, i32)>, String> {
    let request = DescribeUserScramCredentialsRequest::default()
        .with_users(user.map(|u| vec![UserName::default().with_name(s(u))]));
    let response: DescribeUserScramCredentialsResponse =
        conn.call(ApiKey::DescribeUserScramCredentials, 0, &request)?;
    check(
        response.error_code,
        response.error_message.as_ref(),
        "listing users",
    )?;
    let mut out = Vec::new();
    for r in response.results {
        let what = format!("describing user {:?}", r.user.as_str());
        check(r.error_code, r.error_message.as_ref(), &what)?;
        for info in r.credential_infos {
            let m = ScramMechanism::from_code(info.mechanism)
                .ok_or_else(|| format!("{what}: unknown mechanism {}", info.mechanism))?;
            out.push((r.user.to_string(), m, info.iterations));
        }
    }
    out.sort();
    Ok(out)
}

/// (type, name) of a resource named by flags.
fn resource(
    topic: &Option<String>,
    group: &Option<String>,
    cluster: bool,
) -> Option<(ResourceType, String)> {
    match (topic, group, cluster) {
        (Some(t), _, _) => Some((ResourceType::Topic, t.clone())),
        (_, Some(g), _) => Some((ResourceType::Group, g.clone())),
        (_, _, true) => Some((ResourceType::Cluster, CLUSTER_RESOURCE_NAME.to_string())),
        _ => None,
    }
}

/// The ACL version this command speaks (pattern types exist from v1).
const ACL_VERSION: i16 = 1;

pub fn acl(args: AclArgs) -> Result<(), String> {
    let mut conn = Conn::open(args.kafka_broker)?;
    match args.command {
        AclCommand::Add(a) => {
            let (rtype, name) = resource(&a.resource.topic, &a.resource.group, a.resource.cluster)
                .expect("clap requires a resource");
            let pattern = pattern(a.prefixed);
            let permission = permission(a.deny);
            let creations = a
                .operations
                .iter()
                .map(|op| {
                    AclCreation::default()
                        .with_resource_type(rtype.kafka_code())
                        .with_resource_name(s(&name))
                        .with_resource_pattern_type(pattern.kafka_code())
                        .with_principal(s(&a.principal))
                        .with_host(s(&a.host))
                        .with_operation(op.kafka_code())
                        .with_permission_type(permission.kafka_code())
                })
                .collect();
            let request = CreateAclsRequest::default().with_creations(creations);
            let response: CreateAclsResponse =
                conn.call(ApiKey::CreateAcls, ACL_VERSION, &request)?;
            let mut failed = Vec::new();
            for (op, r) in a.operations.iter().zip(&response.results) {
                let line = describe_acl(
                    &a.principal,
                    &a.host,
                    *op,
                    permission,
                    rtype,
                    &name,
                    pattern,
                );
                match check(
                    r.error_code,
                    r.error_message.as_ref(),
                    &format!("adding ACL {line}"),
                ) {
                    Ok(()) => outln!("added: {line}"),
                    Err(e) => failed.push(e),
                }
            }
            if failed.is_empty() {
                Ok(())
            } else {
                Err(failed.join("\n"))
            }
        }
        AclCommand::Remove(a) => {
            let (rtype, name) = resource(&a.resource.topic, &a.resource.group, a.resource.cluster)
                .expect("clap requires a resource");
            let operations: Vec<i8> = if a.operations.is_empty() {
                vec![ANY]
            } else {
                a.operations.iter().map(|o| o.kafka_code()).collect()
            };
            let filters = operations
                .into_iter()
                .map(|op| {
                    DeleteAclsFilter::default()
                        .with_resource_type_filter(rtype.kafka_code())
                        .with_resource_name_filter(Some(s(&name)))
                        .with_pattern_type_filter(pattern(a.prefixed).kafka_code())
                        .with_principal_filter(a.principal.as_deref().map(s))
                        .with_host_filter(Some(s(&a.host)))
                        .with_operation(op)
                        .with_permission_type(permission(a.deny).kafka_code())
                })
                .collect();
            let request = DeleteAclsRequest::default().with_filters(filters);
            let response: DeleteAclsResponse =
                conn.call(ApiKey::DeleteAcls, ACL_VERSION, &request)?;
            let mut removed = 0;
            for r in &response.filter_results {
                check(r.error_code, r.error_message.as_ref(), "removing ACLs")?;
                for m in &r.matching_acls {
                    check(m.error_code, m.error_message.as_ref(), "removing an ACL")?;
                    removed += 1;
                    outln!("removed: {}", wire_acl(m));
                }
            }
            if removed == 0 {
                outln!("no ACL matched");
            }
            Ok(())
        }
        AclCommand::List(a) => {
            let r = &a.resource;
            let (rtype, name) = match resource(&r.topic, &r.group, r.cluster) {
                Some((t, n)) => (t.kafka_code(), Some(s(&n))),
                None => (ANY, None),
            };
            let request = DescribeAclsRequest::default()
                .with_resource_type_filter(rtype)
                .with_resource_name_filter(name)
                .with_pattern_type_filter(ANY)
                .with_principal_filter(a.principal.as_deref().map(s))
                .with_host_filter(None)
                .with_operation(ANY)
                .with_permission_type(ANY);
            let response: DescribeAclsResponse =
                conn.call(ApiKey::DescribeAcls, ACL_VERSION, &request)?;
            check(
                response.error_code,
                response.error_message.as_ref(),
                "listing ACLs",
            )?;
            outln!(
                "{:<28} {:<16} {:<18} {:<10} {:<8} {:<9} NAME",
                "PRINCIPAL",
                "HOST",
                "OPERATION",
                "PERMISSION",
                "RESOURCE",
                "PATTERN"
            );
            for resource in &response.resources {
                for acl in &resource.acls {
                    outln!(
                        "{:<28} {:<16} {:<18} {:<10} {:<8} {:<9} {}",
                        acl.principal.as_str(),
                        acl.host.as_str(),
                        code_name(acl.operation, Operation::from_kafka_code),
                        code_name(acl.permission_type, Permission::from_kafka_code),
                        code_name(resource.resource_type, ResourceType::from_kafka_code),
                        code_name(resource.pattern_type, PatternType::from_kafka_code),
                        resource.resource_name.as_str()
                    );
                }
            }
            Ok(())
        }
    }
}

fn pattern(prefixed: bool) -> PatternType {
    if prefixed {
        PatternType::Prefixed
    } else {
        PatternType::Literal
    }
}

fn permission(deny: bool) -> Permission {
    if deny {
        Permission::Deny
    } else {
        Permission::Allow
    }
}

/// The name of a code, or the code when this version does not know it.
fn code_name<T: std::fmt::Display>(code: i8, from: fn(i8) -> Option<T>) -> String {
    from(code).map_or_else(|| code.to_string(), |v| v.to_string())
}

/// One ACL in words, as `add` and `remove` print it.
fn describe_acl(
    principal: &str,
    host: &str,
    operation: Operation,
    permission: Permission,
    rtype: ResourceType,
    name: &str,
    pattern: PatternType,
) -> String {
    format!("{permission} {principal} {operation} on {rtype} {name} ({pattern}) from host {host}")
}

fn wire_acl(m: &kafka_protocol::messages::delete_acls_response::DeleteAclsMatchingAcl) -> String {
    format!(
        "{} {} {} on {} {} ({}) from host {}",
        code_name(m.permission_type, Permission::from_kafka_code),
        m.principal.as_str(),
        code_name(m.operation, Operation::from_kafka_code),
        code_name(m.resource_type, ResourceType::from_kafka_code),
        m.resource_name.as_str(),
        code_name(m.pattern_type, PatternType::from_kafka_code),
        m.host.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_error_names_are_upper_snake_case() {
        assert_eq!(error_name(93), "UNACCEPTABLE_CREDENTIAL");
        assert_eq!(error_name(54), "SECURITY_DISABLED");
        assert_eq!(error_name(42), "INVALID_REQUEST");
        assert_eq!(error_name(-12345), "UNKNOWN(-12345)");
        let e = check(91, Some(&s("gone")), "deleting user \"x\"").unwrap_err();
        assert_eq!(e, "deleting user \"x\": RESOURCE_NOT_FOUND (91): gone");
    }

    #[test]
    fn operations_and_mechanisms_parse_as_operators_write_them() {
        assert_eq!(parse_operation("read"), Ok(Operation::Read));
        assert_eq!(
            parse_operation("describe-configs"),
            Ok(Operation::DescribeConfigs)
        );
        assert_eq!(
            parse_operation("IDEMPOTENT_WRITE"),
            Ok(Operation::IdempotentWrite)
        );
        assert!(
            parse_operation("any")
                .unwrap_err()
                .contains("cluster-action")
        );
        assert_eq!(parse_mechanism("scram-sha-512"), Ok(ScramMechanism::Sha512));
        assert!(parse_mechanism("PLAIN").is_err());
    }
}
