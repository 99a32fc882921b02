//! What a principal may do: ACLs with the semantics of Kafka's
//! AclAuthorizer.
//!
//! An [`Authorizer`] is built from the ACLs (and the super users) and
//! answers checks with a few hash lookups; it is immutable, and a change of
//! ACLs builds a new one. [`AclFilter::matches`] selects ACLs the way
//! Kafka's DescribeAcls and DeleteAcls do, and [`validate`] refuses the
//! ACLs Kafka would refuse to create.
//!
//! Hosts are compared as strings. The authorizer turns ACL hosts that are
//! IP addresses into [`canonical_host`] form; callers pass the peer address
//! in the same form.

use super::{
    AclBinding, AclFilter, CLUSTER_RESOURCE_NAME, Operation, PatternFilter, PatternType,
    Permission, Principal, ResourceType,
};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

/// The principal an ACL names to apply to every principal.
pub const WILDCARD_PRINCIPAL: &str = "User:*";
/// The host an ACL names to apply from every host.
pub const WILDCARD_HOST: &str = "*";
/// The literal resource name an ACL names to apply to every resource of
/// its type.
pub const WILDCARD_RESOURCE: &str = "*";

/// `host` as ACLs and checks compare it: an IP address in Rust's standard
/// text form, IPv4-mapped IPv6 addresses as IPv4 (`::ffff:10.0.0.1` is
/// `10.0.0.1`); anything else (`*`) as it is.
pub fn canonical_host(host: &str) -> String {
    match host.parse::<IpAddr>() {
        Ok(address) => address.to_canonical().to_string(),
        Err(_) => host.to_string(),
    }
}

/// Whether an ACL for `granted` allows `requested`: the same operation,
/// ALL, or one that implies it (READ, WRITE, DELETE and ALTER imply
/// DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS). Deny ACLs do not
/// imply: a DENY applies to its own operation (and ALL to every one).
pub fn implies(granted: Operation, requested: Operation) -> bool {
    use Operation::*;
    granted == requested
        || granted == All
        || match requested {
            Describe => matches!(granted, Read | Write | Delete | Alter),
            DescribeConfigs => granted == AlterConfigs,
            _ => false,
        }
}

/// The operations ACLs on a resource type may name (Kafka's table; ALL on
/// every type).
pub fn supported_operations(resource_type: ResourceType) -> &'static [Operation] {
    use Operation::*;
    match resource_type {
        ResourceType::Topic => &[
            All,
            Read,
            Write,
            Create,
            Delete,
            Alter,
            Describe,
            DescribeConfigs,
            AlterConfigs,
        ],
        ResourceType::Group => &[All, Read, Delete, Describe, DescribeConfigs, AlterConfigs],
        ResourceType::Cluster => &[
            All,
            Create,
            Alter,
            Describe,
            ClusterAction,
            DescribeConfigs,
            AlterConfigs,
            IdempotentWrite,
        ],
    }
}

/// Whether Kafka would create `b`. The reason if not.
///
/// * The resource name is not empty; a cluster ACL is on the literal
///   `kafka-cluster`; a prefixed ACL is not on `*` (only the literal `*` is
///   the wildcard).
/// * The principal is `User:<name>` (or `User:*`).
/// * The host is `*` or an IP address.
/// * The operation is one the resource type has ([`supported_operations`]).
pub fn validate(b: &AclBinding) -> Result<(), String> {
    if b.resource_name.is_empty() {
        return Err("the resource name is empty".to_string());
    }
    if b.resource_type == ResourceType::Cluster
        && (b.resource_name != CLUSTER_RESOURCE_NAME || b.pattern != PatternType::Literal)
    {
        return Err(format!(
            "the cluster resource is the literal name {CLUSTER_RESOURCE_NAME:?}"
        ));
    }
    if b.pattern == PatternType::Prefixed && b.resource_name == WILDCARD_RESOURCE {
        return Err("a prefixed resource name cannot be '*' (the wildcard is literal)".to_string());
    }
    match b.principal.strip_prefix("User:") {
        Some(name) if !name.is_empty() => {}
        _ => {
            return Err(format!(
                "the principal {:?} is not User:<name> or User:*",
                b.principal
            ));
        }
    }
    if b.host != WILDCARD_HOST && b.host.parse::<IpAddr>().is_err() {
        return Err(format!("the host {:?} is not '*' or an IP address", b.host));
    }
    if !supported_operations(b.resource_type).contains(&b.operation) {
        return Err(format!(
            "{:?} is not an operation on a {:?} resource",
            b.operation, b.resource_type
        ));
    }
    Ok(())
}

impl AclFilter {
    /// A filter that matches every ACL.
    pub fn any() -> AclFilter {
        AclFilter {
            resource_type: None,
            resource_name: None,
            pattern: PatternFilter::Any,
            principal: None,
            host: None,
            operation: None,
            permission: None,
        }
    }

    /// Whether `b` is one of the ACLs this filter selects (Kafka's
    /// AclBindingFilter): a `None` field matches anything, a `Some` field
    /// the equal value (an operation of `Some(All)` matches only ACLs for
    /// ALL). The name and pattern type:
    ///
    /// * [`PatternFilter::Any`]: every pattern type; the name, if given,
    ///   equal.
    /// * [`PatternFilter::Exactly`]: that pattern type; the name, if
    ///   given, equal.
    /// * [`PatternFilter::Match`]: with a name N, the ACLs that apply to
    ///   the resource N: literal N, literal `*`, and the prefixed ACLs
    ///   whose prefix N starts with. Without a name, every ACL.
    pub fn matches(&self, b: &AclBinding) -> bool {
        fn field<T: PartialEq + ?Sized>(filter: Option<&T>, value: &T) -> bool {
            filter.is_none_or(|f| f == value)
        }
        let name = self.resource_name.as_deref();
        let pattern = match self.pattern {
            PatternFilter::Any => field(name, &b.resource_name),
            PatternFilter::Exactly(p) => b.pattern == p && field(name, &b.resource_name),
            PatternFilter::Match => match (name, b.pattern) {
                (None, _) => true,
                (Some(n), PatternType::Literal) => {
                    b.resource_name == n || b.resource_name == WILDCARD_RESOURCE
                }
                (Some(n), PatternType::Prefixed) => n.starts_with(b.resource_name.as_str()),
            },
        };
        pattern
            && field(self.resource_type.as_ref(), &b.resource_type)
            && field(self.principal.as_deref(), &b.principal)
            && field(self.host.as_deref(), &b.host)
            && field(self.operation.as_ref(), &b.operation)
            && field(self.permission.as_ref(), &b.permission)
    }
}

/// One ACL, without its resource (the index key holds it).
#[derive(Clone, Debug)]
struct Entry {
    principal: String,
    /// `*` or [`canonical_host`].
    host: String,
    operation: Operation,
    permission: Permission,
}

impl Entry {
    /// Whether the ACL is about `principal` connecting from `host`.
    fn applies(&self, principal: &str, host: &str) -> bool {
        (self.principal == principal || self.principal == WILDCARD_PRINCIPAL)
            && (self.host == host || self.host == WILDCARD_HOST)
    }

    /// A DENY for `op` (or ALL).
    fn denies(&self, op: Operation) -> bool {
        self.permission == Permission::Deny
            && (self.operation == op || self.operation == Operation::All)
    }

    /// An ALLOW for `op`, ALL or an operation implying `op`.
    fn allows(&self, op: Operation) -> bool {
        self.permission == Permission::Allow && implies(self.operation, op)
    }
}

/// One resource type's ACLs.
#[derive(Debug, Default)]
struct TypeIndex {
    /// Literal ACLs by name, `*` included.
    literal: HashMap<String, Vec<Entry>>,
    /// Prefixed ACLs by prefix.
    prefixed: HashMap<String, Vec<Entry>>,
    /// The lengths (bytes) of the prefixes in `prefixed`, ascending: a
    /// lookup probes a name's prefixes of these lengths only.
    prefix_lengths: Vec<usize>,
}

impl TypeIndex {
    /// The ACL lists whose pattern matches the resource `name`: its
    /// literal ACLs, the literal `*`'s, and those of each prefix of it.
    /// No list is empty.
    fn matching<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [Entry]> + 'a {
        let literal = self.literal.get(name);
        let wildcard = (name != WILDCARD_RESOURCE)
            .then(|| self.literal.get(WILDCARD_RESOURCE))
            .flatten();
        let prefixed = self
            .prefix_lengths
            .iter()
            .take_while(move |&&len| len <= name.len())
            .filter_map(move |&len| name.get(..len))
            .filter_map(|prefix| self.prefixed.get(prefix));
        literal
            .into_iter()
            .chain(wildcard)
            .chain(prefixed)
            .map(Vec::as_slice)
    }
}

/// Answers "may this principal do this", built once from the ACLs.
#[derive(Debug)]
pub struct Authorizer {
    /// By [`type_slot`].
    types: [TypeIndex; 3],
    super_users: HashSet<String>,
    allow_everyone_if_no_acl_found: bool,
    len: usize,
}

fn type_slot(resource_type: ResourceType) -> usize {
    match resource_type {
        ResourceType::Topic => 0,
        ResourceType::Group => 1,
        ResourceType::Cluster => 2,
    }
}

impl Authorizer {
    /// An authorizer for `acls`. `super_users` are principals
    /// (`User:admin`) allowed everything; `allow_everyone_if_no_acl_found`
    /// opens a resource no ACL names (Kafka's setting of that name).
    pub fn new(
        acls: &[AclBinding],
        super_users: Vec<String>,
        allow_everyone_if_no_acl_found: bool,
    ) -> Authorizer {
        let mut types: [TypeIndex; 3] = Default::default();
        for acl in acls {
            let index = &mut types[type_slot(acl.resource_type)];
            let map = match acl.pattern {
                PatternType::Literal => &mut index.literal,
                PatternType::Prefixed => &mut index.prefixed,
            };
            map.entry(acl.resource_name.clone())
                .or_default()
                .push(Entry {
                    principal: acl.principal.clone(),
                    host: canonical_host(&acl.host),
                    operation: acl.operation,
                    permission: acl.permission,
                });
        }
        for index in &mut types {
            let mut lengths: Vec<usize> = index.prefixed.keys().map(String::len).collect();
            lengths.sort_unstable();
            lengths.dedup();
            index.prefix_lengths = lengths;
        }
        Authorizer {
            types,
            super_users: super_users.into_iter().collect(),
            allow_everyone_if_no_acl_found,
            len: acls.len(),
        }
    }

    /// How many ACLs it was built from.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_super_user(&self, principal: &Principal) -> bool {
        self.super_users.contains(&principal.0)
    }

    /// Whether `principal`, connected from `host` ([`canonical_host`]
    /// form), may do `op` on the resource `(rtype, name)`:
    ///
    /// 1. super users may do everything;
    /// 2. the ACLs that count are those on the literal name, the literal
    ///    `*` and every prefix of the name, for the principal or `User:*`,
    ///    from the host or `*`;
    /// 3. a DENY for `op` or ALL among them refuses (deny wins);
    /// 4. else an ALLOW for `op`, ALL or an operation implying `op`
    ///    ([`implies`]) allows;
    /// 5. else it is allowed only if `allow_everyone_if_no_acl_found` and
    ///    no ACL at all (for any principal, host or operation) is on the
    ///    resource.
    pub fn authorize(
        &self,
        principal: &Principal,
        host: &str,
        op: Operation,
        rtype: ResourceType,
        name: &str,
    ) -> bool {
        if self.is_super_user(principal) {
            return true;
        }
        let mut any_acl = false;
        let mut allowed = false;
        for entries in self.types[type_slot(rtype)].matching(name) {
            any_acl = true;
            for entry in entries.iter().filter(|e| e.applies(&principal.0, host)) {
                if entry.denies(op) {
                    return false;
                }
                allowed |= entry.allows(op);
            }
        }
        allowed || (!any_acl && self.allow_everyone_if_no_acl_found)
    }

    /// Whether `principal` from `host` may do `op` on at least one resource
    /// of type `rtype` (Kafka's authorizeByResourceType: e.g. a producer
    /// with WRITE on some topic may be given a producer id without
    /// IDEMPOTENT_WRITE on the cluster):
    ///
    /// 1. super users may;
    /// 2. a DENY for `op` or ALL on every resource (literal `*`, or the
    ///    empty prefix) refuses;
    /// 3. else with `allow_everyone_if_no_acl_found` it is allowed (a
    ///    resource no ACL names would be open), as in Kafka;
    /// 4. else it is allowed if an ALLOW (as in [`authorize`]) is on a
    ///    resource pattern not wholly denied: a literal name with no DENY
    ///    on that name or on a prefix of it; the literal `*`; a prefix
    ///    with no DENY on a prefix of it.
    ///
    /// The ACLs counted are, as in [`authorize`], those for the principal
    /// or `User:*` from the host or `*`. It walks the type's ACLs: it is for
    /// occasional checks, not every request.
    ///
    /// [`authorize`]: Authorizer::authorize
    pub fn authorize_any(
        &self,
        principal: &Principal,
        host: &str,
        op: Operation,
        rtype: ResourceType,
    ) -> bool {
        if self.is_super_user(principal) {
            return true;
        }
        let index = &self.types[type_slot(rtype)];
        let applies = |entries: &[Entry], test: &dyn Fn(&Entry) -> bool| {
            entries
                .iter()
                .any(|e| e.applies(&principal.0, host) && test(e))
        };
        let denied = |entries: &[Entry]| applies(entries, &|e| e.denies(op));
        let allowed = |entries: &[Entry]| applies(entries, &|e| e.allows(op));

        let denied_prefixes: Vec<&str> = index
            .prefixed
            .iter()
            .filter(|(_, entries)| denied(entries))
            .map(|(prefix, _)| prefix.as_str())
            .collect();
        let deny_all = denied_prefixes.contains(&"")
            || index
                .literal
                .get(WILDCARD_RESOURCE)
                .is_some_and(|entries| denied(entries));
        if deny_all {
            return false;
        }
        if self.allow_everyone_if_no_acl_found {
            return true;
        }
        let under_denied_prefix = |name: &str| {
            denied_prefixes
                .iter()
                .any(|prefix| name.starts_with(prefix))
        };
        index.literal.iter().any(|(name, entries)| {
            allowed(entries)
                && (name == WILDCARD_RESOURCE || (!denied(entries) && !under_denied_prefix(name)))
        }) || index
            .prefixed
            .iter()
            .any(|(prefix, entries)| allowed(entries) && !under_denied_prefix(prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Operation::*;
    use PatternType::{Literal, Prefixed};
    use Permission::{Allow, Deny};
    use ResourceType::{Cluster, Group, Topic};
    use proptest::prelude::*;

    fn acl(
        rtype: ResourceType,
        name: &str,
        pattern: PatternType,
        principal: &str,
        host: &str,
        operation: Operation,
        permission: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type: rtype,
            resource_name: name.to_string(),
            pattern,
            principal: principal.to_string(),
            host: host.to_string(),
            operation,
            permission,
        }
    }

    /// An ACL for alice from any host on a topic.
    fn alice(name: &str, pattern: PatternType, op: Operation, perm: Permission) -> AclBinding {
        acl(Topic, name, pattern, "User:alice", "*", op, perm)
    }

    fn authorizer(acls: &[AclBinding]) -> Authorizer {
        Authorizer::new(acls, vec![], false)
    }

    const HOST: &str = "10.0.0.1";

    fn can(a: &Authorizer, user: &str, op: Operation, topic: &str) -> bool {
        a.authorize(&Principal::user(user), HOST, op, Topic, topic)
    }

    #[test]
    fn literal_acl_covers_only_its_name() {
        let a = authorizer(&[alice("orders", Literal, Read, Allow)]);
        assert!(can(&a, "alice", Read, "orders"));
        assert!(!can(&a, "alice", Read, "orders-eu"));
        assert!(!can(&a, "alice", Read, "order"));
        assert!(!can(&a, "alice", Write, "orders"));
        assert!(!can(&a, "bob", Read, "orders"));
        assert!(!a.authorize(&Principal::user("alice"), HOST, Read, Group, "orders"));
        assert_eq!(a.len(), 1);
        assert!(!a.is_empty());
    }

    #[test]
    fn literal_wildcard_covers_every_name() {
        let a = authorizer(&[alice("*", Literal, Write, Allow)]);
        assert!(can(&a, "alice", Write, "orders"));
        assert!(can(&a, "alice", Write, "*"));
        assert!(can(&a, "alice", Write, "x"));
        assert!(!can(&a, "alice", Read, "orders"));
    }

    #[test]
    fn prefixed_acls_cover_names_starting_with_them() {
        let a = authorizer(&[
            alice("orders-", Prefixed, Read, Allow),
            alice("payments-eu-", Prefixed, Write, Allow),
            alice("p", Prefixed, Create, Allow),
        ]);
        assert!(can(&a, "alice", Read, "orders-eu"));
        assert!(can(&a, "alice", Read, "orders-"));
        assert!(!can(&a, "alice", Read, "order"));
        assert!(!can(&a, "alice", Read, "Orders-eu"));
        assert!(!can(&a, "alice", Read, "xorders-eu"));
        assert!(can(&a, "alice", Write, "payments-eu-1"));
        assert!(!can(&a, "alice", Write, "payments-us-1"));
        assert!(can(&a, "alice", Create, "payments-us-1"));
        // A prefix is not literal: "*" prefixes only names starting with *.
        let a = authorizer(&[alice("*", Prefixed, Read, Allow)]);
        assert!(!can(&a, "alice", Read, "orders"));
        assert!(can(&a, "alice", Read, "*x"));
        // Names with multi-byte characters: prefixes are probed on
        // character boundaries only.
        let a = authorizer(&[
            alice("é", Prefixed, Read, Allow),
            alice("a", Prefixed, Read, Allow),
        ]);
        assert!(can(&a, "alice", Read, "éa"));
        assert!(can(&a, "alice", Read, "aé"));
        assert!(!can(&a, "alice", Read, "ü"));
    }

    #[test]
    fn deny_beats_allow() {
        let a = authorizer(&[
            alice("orders", Literal, All, Allow),
            alice("orders", Literal, Write, Deny),
        ]);
        assert!(can(&a, "alice", Read, "orders"));
        assert!(!can(&a, "alice", Write, "orders"));

        // Whatever pattern, principal and host the deny comes by.
        for deny in [
            alice("*", Literal, Write, Deny),
            alice("ord", Prefixed, Write, Deny),
            acl(Topic, "orders", Literal, "User:*", "*", Write, Deny),
            acl(Topic, "orders", Literal, "User:alice", HOST, Write, Deny),
            alice("orders", Literal, All, Deny),
        ] {
            let a = authorizer(&[alice("orders", Literal, Write, Allow), deny.clone()]);
            assert!(!can(&a, "alice", Write, "orders"), "{deny:?}");
        }
        // A deny for another principal, host or operation does not count.
        for deny in [
            acl(Topic, "orders", Literal, "User:bob", "*", Write, Deny),
            acl(
                Topic,
                "orders",
                Literal,
                "User:alice",
                "10.9.9.9",
                Write,
                Deny,
            ),
            alice("orders", Literal, Read, Deny),
            alice("orders-", Prefixed, Write, Deny),
        ] {
            let a = authorizer(&[alice("orders", Literal, Write, Allow), deny.clone()]);
            assert!(can(&a, "alice", Write, "orders"), "{deny:?}");
        }
    }

    #[test]
    fn implied_operations() {
        for op in [Read, Write, Delete, Alter, All] {
            let a = authorizer(&[alice("t", Literal, op, Allow)]);
            assert!(can(&a, "alice", Describe, "t"), "{op:?}");
        }
        for op in [Create, DescribeConfigs, AlterConfigs] {
            let a = authorizer(&[alice("t", Literal, op, Allow)]);
            assert!(!can(&a, "alice", Describe, "t"), "{op:?}");
        }
        let a = authorizer(&[alice("t", Literal, AlterConfigs, Allow)]);
        assert!(can(&a, "alice", DescribeConfigs, "t"));
        assert!(!can(&a, "alice", Alter, "t"));
        // Describe implies nothing.
        let a = authorizer(&[alice("t", Literal, Describe, Allow)]);
        assert!(!can(&a, "alice", Read, "t"));
        // A deny of Read does not deny Describe; a deny of Describe does
        // despite the Read.
        let a = authorizer(&[
            alice("t", Literal, Read, Allow),
            alice("t", Literal, Read, Deny),
        ]);
        assert!(!can(&a, "alice", Read, "t"));
        let a = authorizer(&[
            alice("t", Literal, Write, Allow),
            alice("t", Literal, Read, Deny),
        ]);
        assert!(can(&a, "alice", Describe, "t"));
        let a = authorizer(&[
            alice("t", Literal, Read, Allow),
            alice("t", Literal, Describe, Deny),
        ]);
        assert!(!can(&a, "alice", Describe, "t"));
        assert!(can(&a, "alice", Read, "t"));
    }

    #[test]
    fn wildcard_principal_and_hosts() {
        let a = authorizer(&[acl(Topic, "t", Literal, "User:*", "*", Read, Allow)]);
        assert!(can(&a, "alice", Read, "t"));
        assert!(can(&a, "bob", Read, "t"));
        assert!(a.authorize(&Principal::anonymous(), "::1", Read, Topic, "t"));

        let a = authorizer(&[acl(
            Topic,
            "t",
            Literal,
            "User:alice",
            "10.0.0.1",
            Read,
            Allow,
        )]);
        assert!(a.authorize(&Principal::user("alice"), "10.0.0.1", Read, Topic, "t"));
        assert!(!a.authorize(&Principal::user("alice"), "10.0.0.2", Read, Topic, "t"));
        // ACL hosts are compared in canonical form.
        for host in ["::ffff:10.0.0.1", "::FFFF:10.0.0.1"] {
            let a = authorizer(&[acl(Topic, "t", Literal, "User:alice", host, Read, Allow)]);
            assert!(a.authorize(&Principal::user("alice"), "10.0.0.1", Read, Topic, "t"));
        }
        let a = authorizer(&[acl(
            Topic,
            "t",
            Literal,
            "User:alice",
            "0:0::1",
            Read,
            Allow,
        )]);
        assert!(a.authorize(
            &Principal::user("alice"),
            &canonical_host("::1"),
            Read,
            Topic,
            "t"
        ));
        assert_eq!(canonical_host("*"), "*");
        assert_eq!(canonical_host("::ffff:192.168.0.1"), "192.168.0.1");
    }

    #[test]
    fn super_users_may_do_everything() {
        let a = Authorizer::new(
            &[acl(Topic, "*", Literal, "User:*", "*", All, Deny)],
            vec!["User:admin".to_string()],
            false,
        );
        let admin = Principal::user("admin");
        assert!(a.is_super_user(&admin));
        assert!(a.authorize(&admin, HOST, Write, Topic, "t"));
        assert!(a.authorize(&admin, HOST, ClusterAction, Cluster, CLUSTER_RESOURCE_NAME));
        assert!(a.authorize_any(&admin, HOST, Write, Topic));
        assert!(!can(&a, "alice", Write, "t"));
    }

    #[test]
    fn allow_everyone_if_no_acl_found() {
        let acls = [
            acl(Topic, "owned", Literal, "User:bob", "*", Read, Allow),
            acl(Topic, "team-", Prefixed, "User:bob", "*", Read, Allow),
        ];
        let open = Authorizer::new(&acls, vec![], true);
        let closed = Authorizer::new(&acls, vec![], false);
        // No ACL on the resource: open only with the setting.
        assert!(can(&open, "alice", Write, "free"));
        assert!(!can(&closed, "alice", Write, "free"));
        assert!(open.authorize(&Principal::anonymous(), HOST, Read, Group, "g"));
        // ACLs on it (any principal, literal or prefix): they decide.
        assert!(!can(&open, "alice", Read, "owned"));
        assert!(!can(&open, "alice", Read, "team-x"));
        assert!(can(&open, "bob", Read, "team-x"));
        assert!(!can(&open, "bob", Write, "team-x"));
        // The literal "*" is an ACL on every resource of its type.
        let open = Authorizer::new(
            &[acl(Topic, "*", Literal, "User:bob", "*", Read, Allow)],
            vec![],
            true,
        );
        assert!(!can(&open, "alice", Read, "free"));
        assert!(Authorizer::new(&[], vec![], true).authorize(
            &Principal::user("x"),
            HOST,
            Alter,
            Cluster,
            CLUSTER_RESOURCE_NAME
        ));
        assert!(!authorizer(&[]).authorize(&Principal::user("x"), HOST, Read, Topic, "t"));
    }

    fn any_topic(a: &Authorizer, user: &str, op: Operation) -> bool {
        a.authorize_any(&Principal::user(user), HOST, op, Topic)
    }

    #[test]
    fn authorize_any_resource_of_a_type() {
        let allow = alice("orders", Literal, Write, Allow);
        assert!(any_topic(
            &authorizer(std::slice::from_ref(&allow)),
            "alice",
            Write
        ));
        assert!(any_topic(
            &authorizer(std::slice::from_ref(&allow)),
            "alice",
            Describe
        ));
        assert!(!any_topic(
            &authorizer(std::slice::from_ref(&allow)),
            "alice",
            Read
        ));
        assert!(!any_topic(
            &authorizer(std::slice::from_ref(&allow)),
            "bob",
            Write
        ));
        assert!(!authorizer(std::slice::from_ref(&allow)).authorize_any(
            &Principal::user("alice"),
            HOST,
            Write,
            Group
        ));
        assert!(!any_topic(&authorizer(&[]), "alice", Write));

        // Denies that cover the allowed pattern.
        for deny in [
            alice("*", Literal, Write, Deny),
            alice("orders", Literal, Write, Deny),
            alice("ord", Prefixed, All, Deny),
            acl(Topic, "orders", Literal, "User:*", "*", Write, Deny),
        ] {
            let a = authorizer(&[allow.clone(), deny.clone()]);
            assert!(!any_topic(&a, "alice", Write), "{deny:?}");
        }
        // Denies that leave some allowed resource.
        for deny in [
            alice("other", Literal, Write, Deny),
            alice("orders-", Prefixed, Write, Deny),
            alice("orders", Literal, Read, Deny),
            acl(Topic, "*", Literal, "User:bob", "*", Write, Deny),
        ] {
            let a = authorizer(&[allow.clone(), deny.clone()]);
            assert!(any_topic(&a, "alice", Write), "{deny:?}");
        }
        // Prefixed allows: denied by a shorter or equal prefix, not by a
        // longer one or a literal inside it.
        let prefix = alice("ab", Prefixed, Write, Allow);
        for (deny, expected) in [
            (alice("a", Prefixed, Write, Deny), false),
            (alice("ab", Prefixed, Write, Deny), false),
            (alice("abc", Prefixed, Write, Deny), true),
            (alice("ab", Literal, Write, Deny), true),
        ] {
            let a = authorizer(&[prefix.clone(), deny.clone()]);
            assert_eq!(any_topic(&a, "alice", Write), expected, "{deny:?}");
        }
        // The literal "*" allow survives denies on some names.
        let a = authorizer(&[
            alice("*", Literal, Write, Allow),
            alice("x", Prefixed, Write, Deny),
            alice("orders", Literal, Write, Deny),
        ]);
        assert!(any_topic(&a, "alice", Write));

        // allow_everyone_if_no_acl_found: allowed unless everything is
        // denied.
        let open = Authorizer::new(&[], vec![], true);
        assert!(any_topic(&open, "alice", Write));
        let open = Authorizer::new(&[alice("*", Literal, All, Deny)], vec![], true);
        assert!(!any_topic(&open, "alice", Write));
        let open = Authorizer::new(&[alice("", Prefixed, Write, Deny)], vec![], true);
        assert!(!any_topic(&open, "alice", Write));
        let open = Authorizer::new(&[alice("t", Literal, Write, Deny)], vec![], true);
        assert!(any_topic(&open, "alice", Write));
    }

    fn sample_acls() -> Vec<AclBinding> {
        vec![
            alice("orders", Literal, Read, Allow),
            alice("*", Literal, Read, Allow),
            alice("ord", Prefixed, Write, Deny),
            alice("orders-", Prefixed, Read, Allow),
            acl(
                Group, "orders", Literal, "User:bob", "10.0.0.1", Read, Allow,
            ),
        ]
    }

    fn selected(filter: &AclFilter) -> Vec<usize> {
        sample_acls()
            .iter()
            .enumerate()
            .filter(|(_, b)| filter.matches(b))
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn filter_pattern_modes() {
        let named = |pattern, name: Option<&str>| AclFilter {
            resource_name: name.map(str::to_string),
            pattern,
            ..AclFilter::any()
        };
        assert_eq!(selected(&AclFilter::any()), vec![0, 1, 2, 3, 4]);
        // Any: the name taken as it is, any pattern type.
        assert_eq!(
            selected(&named(PatternFilter::Any, Some("orders"))),
            vec![0, 4]
        );
        assert_eq!(selected(&named(PatternFilter::Any, Some("ord"))), vec![2]);
        assert_eq!(selected(&named(PatternFilter::Any, Some("*"))), vec![1]);
        // Exactly: that pattern type, the name if given.
        assert_eq!(
            selected(&named(PatternFilter::Exactly(Prefixed), None)),
            vec![2, 3]
        );
        assert_eq!(
            selected(&named(PatternFilter::Exactly(Literal), Some("orders"))),
            vec![0, 4]
        );
        assert_eq!(
            selected(&named(PatternFilter::Exactly(Literal), Some("ord"))),
            Vec::<usize>::new()
        );
        // Match: what applies to the resource of that name.
        assert_eq!(
            selected(&named(PatternFilter::Match, Some("orders-eu"))),
            vec![1, 2, 3]
        );
        assert_eq!(
            selected(&named(PatternFilter::Match, Some("orders"))),
            vec![0, 1, 2, 4]
        );
        assert_eq!(selected(&named(PatternFilter::Match, Some("or"))), vec![1]);
        assert_eq!(
            selected(&named(PatternFilter::Match, None)),
            vec![0, 1, 2, 3, 4]
        );
    }

    #[test]
    fn filter_other_fields() {
        let f = |f: AclFilter| selected(&f);
        let any = AclFilter::any;
        assert_eq!(
            f(AclFilter {
                resource_type: Some(Group),
                ..any()
            }),
            vec![4]
        );
        assert_eq!(
            f(AclFilter {
                principal: Some("User:alice".into()),
                ..any()
            }),
            vec![0, 1, 2, 3]
        );
        assert_eq!(
            f(AclFilter {
                host: Some("10.0.0.1".into()),
                ..any()
            }),
            vec![4]
        );
        assert_eq!(
            f(AclFilter {
                operation: Some(Write),
                ..any()
            }),
            vec![2]
        );
        // Some(All) is the operation ALL, not "any operation".
        assert_eq!(
            f(AclFilter {
                operation: Some(All),
                ..any()
            }),
            Vec::<usize>::new()
        );
        assert_eq!(
            f(AclFilter {
                permission: Some(Deny),
                ..any()
            }),
            vec![2]
        );
        assert_eq!(
            f(AclFilter {
                resource_type: Some(Topic),
                resource_name: Some("orders".into()),
                pattern: PatternFilter::Match,
                permission: Some(Allow),
                ..any()
            }),
            vec![0, 1]
        );
    }

    #[test]
    fn validation() {
        let ok = [
            alice("orders", Literal, Read, Allow),
            alice("*", Literal, Read, Allow),
            alice("orders-", Prefixed, All, Deny),
            acl(Topic, "t", Literal, "User:*", "*", Write, Allow),
            acl(Topic, "t", Literal, "User:a", "10.1.2.3", Write, Allow),
            acl(Topic, "t", Literal, "User:a", "fe80::1", Write, Allow),
            acl(Group, "g", Literal, "User:a", "*", Read, Allow),
            acl(
                Cluster,
                "kafka-cluster",
                Literal,
                "User:a",
                "*",
                IdempotentWrite,
                Allow,
            ),
            acl(Cluster, "kafka-cluster", Literal, "User:a", "*", All, Allow),
        ];
        for b in &ok {
            assert_eq!(validate(b), Ok(()), "{b:?}");
        }
        let bad = [
            alice("", Literal, Read, Allow),
            alice("*", Prefixed, Read, Allow),
            acl(Cluster, "my-cluster", Literal, "User:a", "*", Alter, Allow),
            acl(
                Cluster,
                "kafka-cluster",
                Prefixed,
                "User:a",
                "*",
                Alter,
                Allow,
            ),
            acl(Cluster, "*", Literal, "User:a", "*", Alter, Allow),
            acl(Topic, "t", Literal, "alice", "*", Read, Allow),
            acl(Topic, "t", Literal, "User:", "*", Read, Allow),
            acl(Topic, "t", Literal, "Group:x", "*", Read, Allow),
            acl(Topic, "t", Literal, "User:a", "example.com", Read, Allow),
            acl(Topic, "t", Literal, "User:a", "", Read, Allow),
            acl(Topic, "t", Literal, "User:a", "10.0.0.0/8", Read, Allow),
            acl(Topic, "t", Literal, "User:a", "*", ClusterAction, Allow),
            acl(Topic, "t", Literal, "User:a", "*", IdempotentWrite, Allow),
            acl(Group, "g", Literal, "User:a", "*", Write, Allow),
            acl(
                Cluster,
                "kafka-cluster",
                Literal,
                "User:a",
                "*",
                Read,
                Allow,
            ),
            acl(
                Cluster,
                "kafka-cluster",
                Literal,
                "User:a",
                "*",
                Write,
                Allow,
            ),
        ];
        for b in &bad {
            let err = validate(b).unwrap_err();
            assert!(!err.is_empty(), "{b:?}");
        }
        assert!(validate(&bad[2]).unwrap_err().contains("kafka-cluster"));
    }

    /// What is asked: principal, host, operation, resource type, name.
    type Query<'a> = (&'a str, &'a str, Operation, ResourceType, &'a str);

    /// Kafka's check, spelled out as a scan over every ACL.
    fn naive_authorize(
        acls: &[AclBinding],
        super_users: &[String],
        allow_if_none: bool,
        (principal, host, op, rtype, name): Query,
    ) -> bool {
        if super_users.iter().any(|s| s == principal) {
            return true;
        }
        let on_resource: Vec<&AclBinding> = acls
            .iter()
            .filter(|b| b.resource_type == rtype)
            .filter(|b| match b.pattern {
                Literal => b.resource_name == name || b.resource_name == "*",
                Prefixed => name.starts_with(&b.resource_name),
            })
            .collect();
        let for_me = |b: &&&AclBinding| {
            (b.principal == principal || b.principal == "User:*")
                && (b.host == host || b.host == "*")
        };
        let granting: &[Operation] = match op {
            Describe => &[Describe, Read, Write, Delete, Alter],
            DescribeConfigs => &[DescribeConfigs, AlterConfigs],
            _ => std::slice::from_ref(&op),
        };
        let denied = on_resource
            .iter()
            .filter(for_me)
            .any(|b| b.permission == Deny && (b.operation == op || b.operation == All));
        let allowed = on_resource.iter().filter(for_me).any(|b| {
            b.permission == Allow && (b.operation == All || granting.contains(&b.operation))
        });
        !denied && (allowed || (on_resource.is_empty() && allow_if_none))
    }

    const NAMES: &[&str] = &["a", "ab", "abc", "b", "*", "", "é", "éa"];
    const PRINCIPALS: &[&str] = &["User:alice", "User:bob", "User:*"];
    const HOSTS: &[&str] = &["*", "10.0.0.1", "10.0.0.2"];
    const OPERATIONS: &[Operation] = &[
        All,
        Read,
        Write,
        Create,
        Delete,
        Alter,
        Describe,
        ClusterAction,
        DescribeConfigs,
        AlterConfigs,
        IdempotentWrite,
    ];

    fn resource_type() -> impl Strategy<Value = ResourceType> {
        prop::sample::select(vec![Topic, Group, Cluster])
    }

    fn binding() -> impl Strategy<Value = AclBinding> {
        (
            resource_type(),
            prop::sample::select(NAMES),
            prop::sample::select(vec![Literal, Prefixed]),
            prop::sample::select(PRINCIPALS),
            prop::sample::select(HOSTS),
            prop::sample::select(OPERATIONS),
            prop::sample::select(vec![Allow, Deny]),
        )
            .prop_map(|(t, n, p, who, host, op, perm)| acl(t, n, p, who, host, op, perm))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn indexed_authorize_agrees_with_a_scan(
            acls in prop::collection::vec(binding(), 0..10),
            super_users in prop::collection::vec(
                prop::sample::select(vec!["User:alice".to_string(), "User:carol".to_string()]), 0..2),
            allow_if_none: bool,
            principal in prop::sample::select(vec!["User:alice", "User:bob", "User:carol"]),
            host in prop::sample::select(vec!["10.0.0.1", "10.0.0.2"]),
            op in prop::sample::select(OPERATIONS),
            rtype in resource_type(),
            name in prop::sample::select(vec!["a", "ab", "abc", "abd", "b", "*", "", "é", "éa", "c"]),
        ) {
            let a = Authorizer::new(&acls, super_users.clone(), allow_if_none);
            let expected = naive_authorize(
                &acls, &super_users, allow_if_none, (principal, host, op, rtype, name),
            );
            prop_assert_eq!(
                a.authorize(&Principal(principal.to_string()), host, op, rtype, name),
                expected
            );
        }
    }
}
