//! Authorization on a shard: may a principal do an operation on a
//! resource? Asked by both protocol adapters before a request touches
//! anything; the answer comes from the ACLs in this shard's metadata
//! snapshot, indexed once per snapshot (a check is a few hash lookups).

use super::Shard;
use crate::metrics::SecurityEvent;
use crate::security::acl::Authorizer;
use crate::security::{Operation, Principal, ResourceType};
use std::rc::Rc;

/// A shard's compiled ACLs: the snapshot version they were built from.
#[derive(Default)]
pub struct AuthzCache {
    built: std::cell::RefCell<Option<(u64, Rc<Authorizer>)>>,
}

impl Shard {
    /// Whether ACLs decide what principals may do (`--authorizer acl`);
    /// otherwise everything is allowed.
    pub fn authorizer_enabled(&self) -> bool {
        self.config.authorizer == crate::config::AuthorizerKind::Acl
    }

    /// The ACLs of the current snapshot, indexed.
    fn authorizer(&self) -> Rc<Authorizer> {
        let snapshot = self.snapshot();
        let mut built = self.authz.built.borrow_mut();
        if let Some((version, a)) = built.as_ref()
            && *version == snapshot.version
        {
            return a.clone();
        }
        let acls: Vec<_> = snapshot.security.acls.iter().cloned().collect();
        let a = Rc::new(Authorizer::new(
            &acls,
            self.config.super_users.clone(),
            self.config.allow_everyone_if_no_acl_found,
        ));
        *built = Some((snapshot.version, a.clone()));
        a
    }

    /// May `principal`, connected from `host` (an IP address), do `op` on
    /// the resource? A refusal is counted and logged (at most once a second
    /// per shard, naming the principal and resource).
    pub fn authorize(
        &self,
        protocol: &'static str,
        principal: &Principal,
        host: &str,
        op: Operation,
        rtype: ResourceType,
        name: &str,
    ) -> bool {
        if !self.authorizer_enabled() {
            return true;
        }
        let allowed = self
            .authorizer()
            .authorize(principal, host, op, rtype, name);
        if !allowed {
            self.denied(protocol, principal, host, op, rtype, name);
        }
        allowed
    }

    /// [`Shard::authorize`] without counting or logging a refusal: for
    /// filtering what a listing shows.
    pub fn authorize_quietly(
        &self,
        principal: &Principal,
        host: &str,
        op: Operation,
        rtype: ResourceType,
        name: &str,
    ) -> bool {
        !self.authorizer_enabled()
            || self
                .authorizer()
                .authorize(principal, host, op, rtype, name)
    }

    /// May `principal` do `op` on some resource of the type (Kafka's
    /// idempotent-write check: WRITE on any topic)?
    pub fn authorize_any(
        &self,
        principal: &Principal,
        host: &str,
        op: Operation,
        rtype: ResourceType,
    ) -> bool {
        !self.authorizer_enabled() || self.authorizer().authorize_any(principal, host, op, rtype)
    }

    fn denied(
        &self,
        protocol: &'static str,
        principal: &Principal,
        host: &str,
        op: Operation,
        rtype: ResourceType,
        name: &str,
    ) {
        self.metrics.security(SecurityEvent::AuthorizationDenied {
            protocol,
            operation: op.name(),
        });
        crate::support::log_limited("authorization-denied", |suppressed| {
            tracing::info!(shard = %self.id, protocol, %principal, host, operation = op.name(), resource = ?rtype, name, suppressed, "authorization denied");
        });
    }
}
