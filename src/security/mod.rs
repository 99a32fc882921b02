//! Security: TLS on listeners ([`tls`]), who a connection is (its
//! [`Principal`]), SASL/SCRAM credentials ([`scram`]) and what a principal
//! may do ([`acl`]).
//!
//! The types here are the broker's own; the Kafka adapter maps Kafka's
//! numeric codes (resource types, operations, mechanisms) to and from them,
//! and the metadata file stores them.

pub mod acl;
pub mod scram;
pub mod tls;

use std::fmt;

/// Who a connection acts as: `User:NAME` after SASL, `User:CN=…,O=…` from
/// a client certificate under mutual TLS, `User:ANONYMOUS` otherwise.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Principal(pub String);

impl Principal {
    pub const ANONYMOUS: &'static str = "User:ANONYMOUS";

    pub fn anonymous() -> Principal {
        Principal(Self::ANONYMOUS.to_string())
    }

    pub fn user(name: &str) -> Principal {
        Principal(format!("User:{name}"))
    }

    pub fn is_anonymous(&self) -> bool {
        self.0 == Self::ANONYMOUS
    }
}

impl Default for Principal {
    fn default() -> Principal {
        Principal::anonymous()
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A SCRAM mechanism (Kafka's codes: 1 and 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];
    /// Kafka's bounds on a credential's iteration count.
    pub const MIN_ITERATIONS: u32 = 4096;
    pub const MAX_ITERATIONS: u32 = 16384;

    /// The SASL mechanism name (`SCRAM-SHA-256`).
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<ScramMechanism> {
        ScramMechanism::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }

    /// Kafka's ScramMechanism code.
    pub fn code(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_code(code: i8) -> Option<ScramMechanism> {
        ScramMechanism::ALL.into_iter().find(|m| m.code() == code)
    }
}

/// One user's credential for one mechanism, in SCRAM's storage form: the
/// password is never kept, only the salt, the iteration count and the two
/// keys derived from the salted password (RFC 5802 §3).
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub user: String,
    pub mechanism: ScramMechanism,
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl fmt::Debug for ScramCredential {
    // Keys stay out of logs and panics.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramCredential")
            .field("user", &self.user)
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// What an ACL is about (Kafka's resource types TOPIC, GROUP, CLUSTER).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    Topic,
    Group,
    Cluster,
}

/// Kafka's numeric codes and names of the ACL enumerations, which the
/// Kafka adapter speaks and the metadata file stores. Each enumeration's
/// `ALL` lists its values; the codes never change.
macro_rules! kafka_codes {
    ($ty:ident { $($variant:ident = $code:literal, $name:literal;)+ }) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// Kafka's code.
            pub fn kafka_code(self) -> i8 {
                match self {
                    $($ty::$variant => $code,)+
                }
            }

            pub fn from_kafka_code(code: i8) -> Option<$ty> {
                match code {
                    $($code => Some($ty::$variant),)+
                    _ => None,
                }
            }

            /// Kafka's name (`TOPIC`, `CLUSTER_ACTION`, …).
            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)+
                }
            }

            /// The value Kafka names so; case and `-`/`_` do not matter
            /// (`cluster-action`, `ClusterAction`).
            pub fn from_name(name: &str) -> Option<$ty> {
                let wanted: String = name
                    .chars()
                    .filter(|c| *c != '_' && *c != '-')
                    .collect();
                $ty::ALL.iter().copied().find(|v| {
                    v.name().replace('_', "").eq_ignore_ascii_case(&wanted)
                })
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

kafka_codes!(ResourceType {
    Topic = 2, "TOPIC";
    Group = 3, "GROUP";
    Cluster = 4, "CLUSTER";
});

/// The only cluster resource's name (Kafka's).
pub const CLUSTER_RESOURCE_NAME: &str = "kafka-cluster";

/// How an ACL's resource name matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PatternType {
    /// The name itself, or `*` for every resource of the type.
    Literal,
    /// Every resource whose name starts with it.
    Prefixed,
}

kafka_codes!(PatternType {
    Literal = 3, "LITERAL";
    Prefixed = 4, "PREFIXED";
});

/// An operation on a resource (Kafka's AclOperation names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
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
}

kafka_codes!(Operation {
    All = 2, "ALL";
    Read = 3, "READ";
    Write = 4, "WRITE";
    Create = 5, "CREATE";
    Delete = 6, "DELETE";
    Alter = 7, "ALTER";
    Describe = 8, "DESCRIBE";
    ClusterAction = 9, "CLUSTER_ACTION";
    DescribeConfigs = 10, "DESCRIBE_CONFIGS";
    AlterConfigs = 11, "ALTER_CONFIGS";
    IdempotentWrite = 12, "IDEMPOTENT_WRITE";
});

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    Allow,
    Deny,
}

kafka_codes!(Permission {
    Deny = 2, "DENY";
    Allow = 3, "ALLOW";
});

/// One ACL: `principal` from `host` is allowed (or denied) `operation` on
/// the resources `(resource_type, name, pattern)` names.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern: PatternType,
    /// `User:NAME`, or `User:*` for every principal.
    pub principal: String,
    /// A client IP address, or `*`.
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

/// How a filter matches ACLs' resource patterns (Kafka's PatternTypeFilter).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PatternFilter {
    /// Every pattern type.
    Any,
    /// The ACLs that would apply to the filter's name taken literally: the
    /// literal name, the literal `*`, and every prefix of it.
    Match,
    Exactly(PatternType),
}

/// Selects ACLs (DescribeAcls, DeleteAcls, `corelog acl list`): `None`
/// matches anything.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub resource_name: Option<String>,
    pub pattern: PatternFilter,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<Operation>,
    pub permission: Option<Permission>,
}

/// A SASL mechanism this broker offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaslMechanism {
    Scram(ScramMechanism),
    Plain,
}

impl SaslMechanism {
    pub const ALL: [SaslMechanism; 3] = [
        SaslMechanism::Scram(ScramMechanism::Sha256),
        SaslMechanism::Scram(ScramMechanism::Sha512),
        SaslMechanism::Plain,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Scram(m) => m.name(),
            SaslMechanism::Plain => "PLAIN",
        }
    }

    pub fn parse(text: &str) -> Result<SaslMechanism, String> {
        SaslMechanism::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| {
                format!("{text:?} is not a SASL mechanism this broker offers (SCRAM-SHA-256, SCRAM-SHA-512, PLAIN)")
            })
    }
}

/// A Kafka listener's security protocol (Kafka's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub enum SecurityProtocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub const ALL: [SecurityProtocol; 4] = [
        SecurityProtocol::Plaintext,
        SecurityProtocol::Ssl,
        SecurityProtocol::SaslPlaintext,
        SecurityProtocol::SaslSsl,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    pub fn parse(text: &str) -> Result<SecurityProtocol, String> {
        SecurityProtocol::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(text))
            .ok_or_else(|| {
                format!("{text:?} is not a security protocol (PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)")
            })
    }

    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    pub fn sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod code_tests {
    use super::*;

    #[test]
    fn kafka_codes_and_names_round_trip_and_match_kafka() {
        for t in ResourceType::ALL {
            assert_eq!(ResourceType::from_kafka_code(t.kafka_code()), Some(*t));
            assert_eq!(ResourceType::from_name(t.name()), Some(*t));
        }
        for p in PatternType::ALL {
            assert_eq!(PatternType::from_kafka_code(p.kafka_code()), Some(*p));
        }
        for o in Operation::ALL {
            assert_eq!(Operation::from_kafka_code(o.kafka_code()), Some(*o));
            assert_eq!(Operation::from_name(o.name()), Some(*o));
        }
        for p in Permission::ALL {
            assert_eq!(Permission::from_kafka_code(p.kafka_code()), Some(*p));
        }
        // Kafka's own numbers (AclOperation, ResourceType, PatternType,
        // AclPermissionType); ANY/MATCH/UNKNOWN are no value here.
        assert_eq!(ResourceType::Cluster.kafka_code(), 4);
        assert_eq!(PatternType::Prefixed.kafka_code(), 4);
        assert_eq!(Operation::IdempotentWrite.kafka_code(), 12);
        assert_eq!(Permission::Allow.kafka_code(), 3);
        for unknown in [0, 1, 13, -1] {
            assert_eq!(Operation::from_kafka_code(unknown), None);
        }
        assert_eq!(ResourceType::from_kafka_code(1), None);
        assert_eq!(
            Operation::from_name("cluster-action"),
            Some(Operation::ClusterAction)
        );
        assert_eq!(
            Operation::from_name("DescribeConfigs"),
            Some(Operation::DescribeConfigs)
        );
        assert_eq!(Operation::from_name("any"), None);
    }
}
