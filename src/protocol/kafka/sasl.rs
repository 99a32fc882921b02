//! SASL on Kafka listeners whose security protocol is SASL_PLAINTEXT or
//! SASL_SSL: SaslHandshake (v1) and SaslAuthenticate (v0–2) with
//! SCRAM-SHA-256, SCRAM-SHA-512 and (over TLS only) PLAIN.
//!
//! The exchange runs synchronously in the connection's dispatch, in
//! arrival order, so a request pipelined right after a successful
//! SaslAuthenticate already sees the authenticated principal. As a Kafka
//! broker does, a connection that sends anything but ApiVersions before it
//! has authenticated is closed without an answer; a failed authentication
//! is answered (SASL_AUTHENTICATION_FAILED, the same for an unknown user
//! and a wrong password) and the connection closed. Sessions do not
//! expire (`session_lifetime_ms` 0: clients never re-authenticate).

use super::{Header, Session, encode_or_log};
use crate::metrics::SecurityEvent;
use crate::protocol::Dispatch;
use crate::security::scram::ScramServer;
use crate::security::{Principal, ScramMechanism};
use crate::shard::Shard;
use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, RequestKind, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use std::rc::Rc;

use super::codes::{ILLEGAL_SASL_STATE, SASL_AUTHENTICATION_FAILED, UNSUPPORTED_SASL_MECHANISM};

/// The largest frame a client may send before it has authenticated
/// (Kafka's `sasl.server.max.receive.size`): an anonymous client cannot
/// make the broker reserve request memory.
pub const UNAUTHENTICATED_FRAME_BYTES_MAX: usize = 512 << 10;

pub use crate::security::SaslMechanism as Mechanism;

/// Where a connection is in authenticating.
#[derive(Default)]
pub enum AuthState {
    /// Authenticated (or on a listener without SASL): everything is served.
    #[default]
    Done,
    /// On a SASL listener, before SaslHandshake.
    Start,
    /// The mechanism is chosen; SaslAuthenticate comes next.
    Handshaked(Mechanism),
    /// SCRAM: server-first was sent; client-final comes next.
    Scram(Box<ScramServer>),
}

/// The mechanisms a listener offers: the configured ones, without PLAIN
/// unless the connection is encrypted (a password must not cross the
/// network in the clear).
pub fn offered(shard: &Shard, tls: bool) -> Vec<Mechanism> {
    shard
        .config
        .sasl_mechanisms
        .iter()
        .copied()
        .filter(|m| tls || *m != Mechanism::Plain)
        .collect()
}

/// What SASL makes of a request: `None` lets it through (the connection is
/// authenticated, or it is ApiVersions); `Some` answers or closes.
pub fn gate(
    shard: &Rc<Shard>,
    session: &Session,
    header: Header,
    request: &RequestKind,
) -> Option<Result<Dispatch, String>> {
    let sasl_api = matches!(header.api, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate);
    let authenticated = matches!(*session.auth.borrow(), AuthState::Done);
    if authenticated {
        if !sasl_api {
            return None;
        }
        // Not a SASL listener, or authenticated already (no
        // re-authentication): Kafka answers ILLEGAL_SASL_STATE.
        return Some(Ok(match request {
            RequestKind::SaslHandshake(_) => match encode_or_log(
                header,
                &SaslHandshakeResponse::default().with_error_code(ILLEGAL_SASL_STATE),
            ) {
                Some(out) => Dispatch::Reply(out),
                None => Dispatch::Close(None),
            },
            _ => Dispatch::Close(encode_or_log(
                header,
                &SaslAuthenticateResponse::default()
                    .with_error_code(ILLEGAL_SASL_STATE)
                    .with_error_message(Some(StrBytes::from_static_str(
                        "SaslAuthenticate on a connection that needs no authentication or has authenticated",
                    ))),
            )),
        }));
    }
    match request {
        RequestKind::ApiVersions(_) => None,
        RequestKind::SaslHandshake(r) => Some(Ok(handshake(shard, session, header, r))),
        RequestKind::SaslAuthenticate(r) => Some(Ok(authenticate(shard, session, header, r))),
        _ => Some(Err(format!(
            "{:?} before SASL authentication (a SASL_PLAINTEXT or SASL_SSL listener serves only ApiVersions, SaslHandshake and SaslAuthenticate until then)",
            header.api
        ))),
    }
}

fn handshake(
    shard: &Shard,
    session: &Session,
    header: Header,
    request: &SaslHandshakeRequest,
) -> Dispatch {
    let offered = offered(shard, session.tls);
    let names: Vec<StrBytes> = offered
        .iter()
        .map(|m| StrBytes::from_static_str(m.name()))
        .collect();
    let mut state = session.auth.borrow_mut();
    if header.version < 1 {
        let out = SaslHandshakeResponse::default()
            .with_error_code(super::codes::UNSUPPORTED_VERSION)
            .with_mechanisms(names);
        return Dispatch::Close(encode_or_log(header, &out));
    }
    if !matches!(*state, AuthState::Start) {
        let out = SaslHandshakeResponse::default()
            .with_error_code(ILLEGAL_SASL_STATE)
            .with_mechanisms(names);
        return Dispatch::Close(encode_or_log(header, &out));
    }
    let asked = request.mechanism.as_str();
    match offered.iter().find(|m| m.name() == asked) {
        Some(&m) => {
            *state = AuthState::Handshaked(m);
            let out = SaslHandshakeResponse::default().with_mechanisms(names);
            match encode_or_log(header, &out) {
                Some(out) => Dispatch::Reply(out),
                None => Dispatch::Close(None),
            }
        }
        None => {
            tracing::info!(shard = %shard.id, peer = %session.host, mechanism = asked, "SASL mechanism not offered; closing");
            let out = SaslHandshakeResponse::default()
                .with_error_code(UNSUPPORTED_SASL_MECHANISM)
                .with_mechanisms(names);
            Dispatch::Close(encode_or_log(header, &out))
        }
    }
}

fn authenticate(
    shard: &Rc<Shard>,
    session: &Session,
    header: Header,
    request: &SaslAuthenticateRequest,
) -> Dispatch {
    let state = std::mem::replace(&mut *session.auth.borrow_mut(), AuthState::Start);
    let bytes = &request.auth_bytes;
    let step = match state {
        AuthState::Handshaked(Mechanism::Scram(m)) => {
            let mut server = Box::new(ScramServer::new(m));
            let snapshot = shard.snapshot();
            match server.first(bytes, |user| {
                snapshot
                    .security
                    .credentials
                    .get(&(user.to_string(), m))
                    .cloned()
            }) {
                Ok(server_first) => {
                    *session.auth.borrow_mut() = AuthState::Scram(server);
                    Ok(Step::Continue(server_first))
                }
                Err(e) => Err((m.name(), None, e.to_string())),
            }
        }
        AuthState::Scram(mut server) => {
            let m = server.mechanism();
            match server.last(bytes) {
                Ok((server_final, user)) => Ok(Step::Done(server_final, user, m.name())),
                Err(e) => Err((m.name(), None, e.to_string())),
            }
        }
        AuthState::Handshaked(Mechanism::Plain) => match plain(shard, bytes) {
            Ok(user) => Ok(Step::Done(Vec::new(), user, "PLAIN")),
            Err((user, why)) => Err(("PLAIN", user, why)),
        },
        AuthState::Start | AuthState::Done => {
            let out = SaslAuthenticateResponse::default()
                .with_error_code(ILLEGAL_SASL_STATE)
                .with_error_message(Some(StrBytes::from_static_str(
                    "SaslAuthenticate before SaslHandshake",
                )));
            return Dispatch::Close(encode_or_log(header, &out));
        }
    };
    match step {
        Ok(Step::Continue(reply)) => {
            let out = SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(reply));
            match encode_or_log(header, &out) {
                Some(out) => Dispatch::Reply(out),
                None => Dispatch::Close(None),
            }
        }
        Ok(Step::Done(reply, user, mechanism)) => {
            shard.metrics.security(SecurityEvent::SaslAuthentication {
                mechanism,
                result: "ok",
            });
            let principal = Principal::user(&user);
            tracing::debug!(shard = %shard.id, peer = %session.host, %principal, mechanism, "SASL authentication succeeded");
            *session.principal.borrow_mut() = Rc::new(principal);
            *session.auth.borrow_mut() = AuthState::Done;
            let out = SaslAuthenticateResponse::default()
                .with_auth_bytes(Bytes::from(reply))
                .with_session_lifetime_ms(0);
            match encode_or_log(header, &out) {
                Some(out) => Dispatch::Reply(out),
                None => Dispatch::Close(None),
            }
        }
        Err((mechanism, user, why)) => {
            shard.metrics.security(SecurityEvent::SaslAuthentication {
                mechanism,
                result: "failed",
            });
            crate::support::log_limited("sasl-failed", |suppressed| {
                tracing::info!(shard = %shard.id, peer = %session.host, mechanism, user = user.as_deref().unwrap_or(""), reason = %why, suppressed, "SASL authentication failed; closing the connection");
            });
            let message = format!(
                "Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}"
            );
            let out = SaslAuthenticateResponse::default()
                .with_error_code(SASL_AUTHENTICATION_FAILED)
                .with_error_message(Some(StrBytes::from_string(message)));
            Dispatch::Close(encode_or_log(header, &out))
        }
    }
}

/// One step of an exchange that went well.
enum Step {
    /// Send this and wait for the client's next message.
    Continue(Vec<u8>),
    /// Authenticated as the user; send the last message.
    Done(Vec<u8>, String, &'static str),
}

/// PLAIN (RFC 4616): `authzid NUL authcid NUL password`, checked against
/// the user's SCRAM credential (the password derives its stored key). The
/// derivation costs the credential's PBKDF2 iterations, a millisecond or
/// so, on the shard; PLAIN is offered only over TLS and off by default.
fn plain(shard: &Shard, bytes: &[u8]) -> Result<String, (Option<String>, String)> {
    let mut parts = bytes.split(|&b| b == 0);
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err((
            None,
            "a PLAIN message is authzid NUL user NUL password".into(),
        ));
    };
    let user = String::from_utf8(user.to_vec())
        .map_err(|_| (None, "the PLAIN user name is not UTF-8".to_string()))?;
    if !authzid.is_empty() && authzid != user.as_bytes() {
        return Err((Some(user), "an authorization id other than the user".into()));
    }
    let snapshot = shard.snapshot();
    let credential = ScramMechanism::ALL
        .into_iter()
        .find_map(|m| snapshot.security.credentials.get(&(user.clone(), m)));
    let Some(credential) = credential else {
        return Err((Some(user), "unknown user".into()));
    };
    let derived = crate::security::scram::derive_credential(
        &user,
        credential.mechanism,
        password,
        &credential.salt,
        credential.iterations,
    );
    use subtle::ConstantTimeEq;
    if bool::from(derived.stored_key.ct_eq(&credential.stored_key)) {
        Ok(user)
    } else {
        Err((Some(user), "wrong password".into()))
    }
}
