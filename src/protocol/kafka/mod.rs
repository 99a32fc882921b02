//! The Kafka wire protocol over the broker core.
//!
//! A frame is an `i32` big-endian length, a request header (API key,
//! version, correlation id, client id; tagged fields in flexible versions)
//! and a body. For each frame:
//!
//! 1. [`walk`] reads the header and walks the body against the request's
//!    schema, checking every array count and length against the bytes
//!    present — the protocol crate's decoders trust counts, so nothing
//!    reaches them unchecked;
//! 2. Produce is read by [`walk::parse_produce`] and its record data carved
//!    out of the frame without a copy; every other request is decoded with
//!    the `kafka-protocol` crate;
//! 3. the request runs against the broker core (`crate::broker`) and the
//!    answer is encoded in the version the client asked for.
//!
//! What Kafka brokers do, this one does: an unknown API key closes the
//! connection; ApiVersions in a version above the broker's gets a v0
//! answer with UNSUPPORTED_VERSION and the supported ranges; other requests
//! above the advertised version get UNSUPPORTED_VERSION where the version
//! can be read, else the connection closes; a malformed request closes the
//! connection; produce with `acks=0` gets no answer.

mod admin;
mod apis;
mod authz;
mod codes;
mod configs;
mod consumer_groups;
mod epochs;
mod fetch;
mod frame;
mod groups;
mod metadata;
mod offsets;
mod produce;
mod producer_id;
mod sasl;
mod security;
pub mod walk;

pub use apis::SUPPORTED;

use super::{Dispatch, LengthPrefix, Outgoing, Protocol};
use crate::constants::KAFKA_REQUEST_BYTES_MAX;
use crate::security::{Operation, Principal, ResourceType};
use crate::shard::{Counters, ListenerId, ProduceOrder, Shard};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestKind};
use std::cell::RefCell;
use std::rc::Rc;

/// The Kafka protocol, for the server.
pub struct Kafka;

/// A Kafka connection's state: where the client connects from (group
/// members are described with their host), the listener it came in on,
/// who it is.
#[derive(Default)]
pub struct Session {
    host: String,
    /// The client's IP address.
    ip: String,
    /// The listener (its advertised address is the one clients are told).
    listener: ListenerId,
    /// Who the connection acts as.
    principal: RefCell<Rc<Principal>>,
    /// Where it is in SASL authentication.
    auth: RefCell<sasl::AuthState>,
    /// It is encrypted (PLAIN is offered only then).
    tls: bool,
    /// Only metadata and admin requests are served (a connection over the
    /// limit, on a reserved slot).
    admin_only: bool,
    /// The order of this connection's produce requests.
    produce_order: ProduceOrder,
}

/// Bytes of the frame's length prefix.
const PREFIX_BYTES: usize = 4;

impl Protocol for Kafka {
    const NAME: &'static str = "kafka";
    const PREFIX: LengthPrefix = LengthPrefix::I32BigEndian;
    type Session = Session;

    fn session(conn: &super::ConnInfo, admin_only: bool) -> Session {
        Session {
            host: conn
                .peer
                .map(|p| format!("/{}", p.ip()))
                .unwrap_or_default(),
            ip: conn
                .peer
                .map(|p| crate::security::acl::canonical_host(&p.ip().to_string()))
                .unwrap_or_default(),
            listener: conn.listener,
            principal: RefCell::new(Rc::new(
                conn.cert_principal
                    .clone()
                    .unwrap_or_else(Principal::anonymous),
            )),
            auth: RefCell::new(if conn.sasl {
                sasl::AuthState::Start
            } else {
                sasl::AuthState::Done
            }),
            tls: conn.tls,
            admin_only,
            produce_order: ProduceOrder::default(),
        }
    }

    fn frame_limit(session: &Session) -> usize {
        match *session.auth.borrow() {
            sasl::AuthState::Done => usize::MAX,
            _ => sasl::UNAUTHENTICATED_FRAME_BYTES_MAX,
        }
    }

    fn dispatch(shard: &Rc<Shard>, session: &Rc<Session>, frame: BytesMut) -> Dispatch {
        match route(shard, session, frame) {
            Ok(dispatch) => dispatch,
            Err(reason) => {
                Counters::add(&shard.counters.errors, 1);
                shard.metrics.error(
                    ("kafka", "Unknown"),
                    crate::error::ErrorKind::InvalidRequest,
                );
                tracing::info!(shard = %shard.id, %reason, "closing a Kafka connection");
                Dispatch::Close(None)
            }
        }
    }

    fn frame_too_large(_declared: u64, _max: usize) -> Option<Outgoing> {
        // Kafka closes the connection without an answer.
        None
    }
}

/// A request header, as the handlers need it.
#[derive(Clone, Copy, Debug)]
struct Header {
    api: ApiKey,
    version: i16,
    correlation_id: i32,
}

/// A request frame, decoded without the broker: what [`route`] runs.
pub(crate) struct Decoded {
    header: Header,
    /// Bytes of the frame (length prefix included) that the header and
    /// body took; anything after them is ignored.
    pub(crate) used: usize,
    pub(crate) body: Body,
}

/// What a decoded request asks for.
pub(crate) enum Body {
    /// An answer to send at once: ApiVersions in a version this broker
    /// does not speak, or Produce with acks other than 0, 1 or -1.
    Reply(Outgoing),
    Produce(crate::broker::ProduceRequest),
    /// Any other supported API, decoded by the protocol crate.
    /// `unread` is what the crate left of the frame: it must agree with
    /// `used`, since the walker is never more lenient than the crate.
    Other {
        request: Box<RequestKind>,
        unread: usize,
        /// The client id, for JoinGroup (members are described with it).
        client_id: Option<String>,
    },
}

impl Decoded {
    pub(crate) fn api_key(&self) -> i16 {
        self.header.api as i16
    }

    pub(crate) fn version(&self) -> i16 {
        self.header.version
    }

    pub(crate) fn correlation_id(&self) -> i32 {
        self.header.correlation_id
    }
}

/// The name of a Kafka API (`Produce`, `Fetch`, ...), for metrics.
pub(crate) fn api_name(api: ApiKey) -> &'static str {
    use std::collections::HashMap;
    static NAMES: std::sync::OnceLock<HashMap<i16, &'static str>> = std::sync::OnceLock::new();
    let names = NAMES.get_or_init(|| {
        // Once per process, for the API keys the crate knows (bounded).
        (0..i16::MAX)
            .take(1000)
            .filter_map(|k| ApiKey::try_from(k).ok().map(|a| (k, a)))
            .map(|(k, a)| (k, &*Box::leak(format!("{a:?}").into_boxed_str())))
            .collect()
    });
    names.get(&(api as i16)).copied().unwrap_or("Unknown")
}

/// Decides what a frame becomes; `Err` closes the connection (with the
/// reason logged).
fn route(shard: &Rc<Shard>, session: &Rc<Session>, frame: BytesMut) -> Result<Dispatch, String> {
    let Decoded { header, body, .. } = decode(frame)?;
    shard.metrics.request(("kafka", api_name(header.api)));
    match &body {
        Body::Other { request, .. } => {
            if let Some(gated) = sasl::gate(shard, session, header, request) {
                return gated;
            }
        }
        _ if !matches!(*session.auth.borrow(), sasl::AuthState::Done) => {
            return Err(format!("{:?} before SASL authentication", header.api));
        }
        _ => {}
    }
    if session.admin_only
        && matches!(
            header.api,
            ApiKey::Produce
                | ApiKey::Fetch
                | ApiKey::JoinGroup
                | ApiKey::SyncGroup
                | ApiKey::Heartbeat
                | ApiKey::ConsumerGroupHeartbeat
                | ApiKey::InitProducerId
        )
    {
        // Kafka has no error a client would read as "too many connections":
        // the connection closes, as a Kafka broker's would.
        return Err(format!(
            "{:?} on a connection kept for metadata and admin requests (the broker is at its connection limit)",
            header.api
        ));
    }
    match body {
        Body::Reply(answer) => Ok(Dispatch::Reply(answer)),
        Body::Produce(request) => {
            let shard = shard.clone();
            // Taken now, in arrival order (see `shard::order`).
            let turn = session.produce_order.turn();
            let caller = Caller {
                client_id: String::new(),
                host: String::new(),
                ip: session.ip.clone(),
                listener: session.listener,
                principal: session.principal.borrow().clone(),
            };
            Ok(Dispatch::Handle(
                Box::pin(async move {
                    let response =
                        produce::handle(&shard, &caller, header.version, request, turn).await?;
                    encode_or_log(header, &response)
                }),
                super::RequestKind::Produce,
            ))
        }
        Body::Other {
            request, client_id, ..
        } => {
            let caller = Caller {
                client_id: client_id.unwrap_or_default(),
                host: session.host.clone(),
                ip: session.ip.clone(),
                listener: session.listener,
                principal: session.principal.borrow().clone(),
            };
            let shard = shard.clone();
            let kind = if header.api == ApiKey::Fetch {
                super::RequestKind::Fetch
            } else {
                super::RequestKind::Other
            };
            Ok(Dispatch::Handle(
                Box::pin(
                    async move { answer(header, handle(&shard, header, *request, caller).await) },
                ),
                kind,
            ))
        }
    }
}

/// Reads a whole request frame (length prefix included): header, version
/// checks, the walker's bounds checks, then the body. `Err` is a request
/// the connection cannot continue after. Needs nothing but the bytes.
pub(crate) fn decode(frame: BytesMut) -> Result<Decoded, String> {
    if frame.len() < PREFIX_BYTES {
        return Err(format!("a frame of {} bytes has no length", frame.len()));
    }
    let (raw, body_offset) =
        walk::parse_request_header(&frame[PREFIX_BYTES..]).map_err(|e| e.to_string())?;
    let api =
        ApiKey::try_from(raw.api_key).map_err(|_| format!("unknown API key {}", raw.api_key))?;
    let header = Header {
        api,
        version: raw.api_version,
        correlation_id: raw.correlation_id,
    };
    let body_at = PREFIX_BYTES + body_offset;
    let Some((min, max)) = apis::range(api) else {
        return Err(format!("API {api:?} is not supported by this broker"));
    };
    if api == ApiKey::ApiVersions && !(min..=max).contains(&header.version) {
        // Answered in v0, whatever was asked, so the client can read it.
        let answer = apis::unsupported_api_versions();
        return Ok(Decoded {
            header,
            used: body_at,
            body: Body::Reply(frame::response(api, 0, header.correlation_id, &answer)?),
        });
    }
    if !(min..=max).contains(&header.version) {
        return Err(format!(
            "{api:?} v{} is not supported (this broker speaks v{min} to v{max})",
            header.version
        ));
    }
    if api != ApiKey::Produce && frame.len() > KAFKA_REQUEST_BYTES_MAX {
        return Err(format!(
            "{api:?} request of {} bytes exceeds the limit of {KAFKA_REQUEST_BYTES_MAX} for requests other than Produce",
            frame.len()
        ));
    }
    let end = walk::check_request(raw.api_key, header.version, &frame[body_at..])
        .map_err(|e| format!("malformed {api:?} v{} request: {e}", header.version))?;
    let used = body_at + end;
    if used != frame.len() {
        tracing::debug!(api = ?api, version = header.version, trailing = frame.len() - used, "ignoring bytes after a Kafka request body");
    }
    if api == ApiKey::Produce {
        let layout = walk::parse_produce(header.version, &frame[body_at..])
            .map_err(|e| format!("malformed Produce v{} request: {e}", header.version))?;
        let body = match produce::decode(frame, body_at, layout)? {
            produce::Decoded::BadAcks(response) => Body::Reply(frame::response(
                header.api,
                header.version,
                header.correlation_id,
                &response,
            )?),
            produce::Decoded::Request(request) => Body::Produce(request),
        };
        return Ok(Decoded { header, used, body });
    }
    // Who the client is matters to groups only (members are described
    // with their client id and host).
    let client_id = matches!(api, ApiKey::JoinGroup | ApiKey::ConsumerGroupHeartbeat)
        .then(|| raw.client_id.unwrap_or_default().to_string());
    let mut body: Bytes = frame.freeze().slice(body_at..);
    let request = RequestKind::decode(api, &mut body, header.version)
        .map_err(|e| format!("malformed {api:?} v{} request: {e}", header.version))?;
    Ok(Decoded {
        header,
        used,
        body: Body::Other {
            request: Box::new(request),
            unread: body.len(),
            client_id,
        },
    })
}

/// A response body of any supported API.
enum Answer {
    ApiVersions(kafka_protocol::messages::ApiVersionsResponse),
    Metadata(kafka_protocol::messages::MetadataResponse),
    Fetch(kafka_protocol::messages::FetchResponse),
    ListOffsets(kafka_protocol::messages::ListOffsetsResponse),
    OffsetForLeaderEpoch(kafka_protocol::messages::OffsetForLeaderEpochResponse),
    CreateTopics(kafka_protocol::messages::CreateTopicsResponse),
    DeleteTopics(kafka_protocol::messages::DeleteTopicsResponse),
    CreatePartitions(kafka_protocol::messages::CreatePartitionsResponse),
    InitProducerId(kafka_protocol::messages::InitProducerIdResponse),
    FindCoordinator(kafka_protocol::messages::FindCoordinatorResponse),
    JoinGroup(kafka_protocol::messages::JoinGroupResponse),
    SyncGroup(kafka_protocol::messages::SyncGroupResponse),
    Heartbeat(kafka_protocol::messages::HeartbeatResponse),
    LeaveGroup(kafka_protocol::messages::LeaveGroupResponse),
    OffsetCommit(kafka_protocol::messages::OffsetCommitResponse),
    OffsetFetch(kafka_protocol::messages::OffsetFetchResponse),
    ListGroups(kafka_protocol::messages::ListGroupsResponse),
    DescribeGroups(kafka_protocol::messages::DescribeGroupsResponse),
    DeleteGroups(kafka_protocol::messages::DeleteGroupsResponse),
    OffsetDelete(kafka_protocol::messages::OffsetDeleteResponse),
    DescribeConfigs(kafka_protocol::messages::DescribeConfigsResponse),
    IncrementalAlterConfigs(kafka_protocol::messages::IncrementalAlterConfigsResponse),
    ConsumerGroupHeartbeat(kafka_protocol::messages::ConsumerGroupHeartbeatResponse),
    ConsumerGroupDescribe(kafka_protocol::messages::ConsumerGroupDescribeResponse),
    DescribeUserScramCredentials(kafka_protocol::messages::DescribeUserScramCredentialsResponse),
    AlterUserScramCredentials(kafka_protocol::messages::AlterUserScramCredentialsResponse),
    CreateAcls(kafka_protocol::messages::CreateAclsResponse),
    DescribeAcls(kafka_protocol::messages::DescribeAclsResponse),
    DeleteAcls(kafka_protocol::messages::DeleteAclsResponse),
}

/// Who sent a request, and on which listener.
pub(crate) struct Caller {
    /// The client id (read for the APIs that describe members with it).
    pub(crate) client_id: String,
    /// `/IP` of the client.
    pub(crate) host: String,
    /// The client's IP address (what host ACLs match).
    pub(crate) ip: String,
    pub(crate) listener: ListenerId,
    pub(crate) principal: Rc<Principal>,
}

impl Caller {
    /// May the caller do `op` on the resource? (A refusal is counted and
    /// logged.)
    pub(crate) fn may(
        &self,
        shard: &Shard,
        op: Operation,
        rtype: ResourceType,
        name: &str,
    ) -> bool {
        shard.authorize("kafka", &self.principal, &self.ip, op, rtype, name)
    }

    /// [`Caller::may`] without counting a refusal (listings, fallbacks).
    pub(crate) fn may_quietly(
        &self,
        shard: &Shard,
        op: Operation,
        rtype: ResourceType,
        name: &str,
    ) -> bool {
        shard.authorize_quietly(&self.principal, &self.ip, op, rtype, name)
    }

    /// May the caller do `op` on the cluster?
    pub(crate) fn may_cluster(&self, shard: &Shard, op: Operation) -> bool {
        self.may(
            shard,
            op,
            ResourceType::Cluster,
            crate::security::CLUSTER_RESOURCE_NAME,
        )
    }
}

async fn handle(shard: &Rc<Shard>, header: Header, request: RequestKind, caller: Caller) -> Answer {
    let (request, after) = match authz::check(shard, &caller, request) {
        authz::Checked::Run(request, after) => (*request, after),
        authz::Checked::Deny(answer) => return answer,
    };
    let mut answer = run(shard, header, request, &caller).await;
    authz::finish(shard, &caller, &mut answer, after);
    answer
}

/// Runs a request the caller may send.
async fn run(shard: &Rc<Shard>, header: Header, request: RequestKind, caller: &Caller) -> Answer {
    let v = header.version;
    match request {
        RequestKind::ApiVersions(_) => Answer::ApiVersions(apis::api_versions(codes::NONE)),
        RequestKind::Metadata(r) => Answer::Metadata(metadata::handle(shard, caller, v, r).await),
        RequestKind::Fetch(r) => Answer::Fetch(fetch::handle(shard, caller, v, r).await),
        RequestKind::ListOffsets(r) => Answer::ListOffsets(offsets::handle(shard, v, r).await),
        RequestKind::OffsetForLeaderEpoch(r) => {
            Answer::OffsetForLeaderEpoch(epochs::handle(shard, caller, r).await)
        }
        RequestKind::CreateTopics(r) => {
            Answer::CreateTopics(admin::create_topics(shard, v, r).await)
        }
        RequestKind::DeleteTopics(r) => {
            Answer::DeleteTopics(admin::delete_topics(shard, v, r).await)
        }
        RequestKind::CreatePartitions(r) => {
            Answer::CreatePartitions(admin::create_partitions(shard, r).await)
        }
        RequestKind::InitProducerId(r) => {
            Answer::InitProducerId(producer_id::handle(shard, v, r).await)
        }
        RequestKind::FindCoordinator(r) => {
            Answer::FindCoordinator(groups::find_coordinator(shard, caller, v, r).await)
        }
        RequestKind::JoinGroup(r) => Answer::JoinGroup(
            groups::join_group(shard, v, r, caller.client_id.clone(), caller.host.clone()).await,
        ),
        RequestKind::SyncGroup(r) => Answer::SyncGroup(groups::sync_group(shard, v, r).await),
        RequestKind::Heartbeat(r) => Answer::Heartbeat(groups::heartbeat(shard, r).await),
        RequestKind::LeaveGroup(r) => Answer::LeaveGroup(groups::leave_group(shard, v, r).await),
        RequestKind::OffsetCommit(r) => {
            Answer::OffsetCommit(groups::offset_commit(shard, v, r).await)
        }
        RequestKind::OffsetFetch(r) => Answer::OffsetFetch(groups::offset_fetch(shard, v, r).await),
        RequestKind::ListGroups(r) => Answer::ListGroups(groups::list_groups(shard, v, r).await),
        RequestKind::DescribeGroups(r) => {
            Answer::DescribeGroups(groups::describe_groups(shard, v, r).await)
        }
        RequestKind::DeleteGroups(r) => Answer::DeleteGroups(groups::delete_groups(shard, r).await),
        RequestKind::OffsetDelete(r) => Answer::OffsetDelete(groups::offset_delete(shard, r).await),
        RequestKind::DescribeConfigs(r) => Answer::DescribeConfigs(configs::describe(shard, v, r)),
        RequestKind::IncrementalAlterConfigs(r) => {
            Answer::IncrementalAlterConfigs(configs::incremental_alter(shard, r).await)
        }
        RequestKind::ConsumerGroupHeartbeat(r) => Answer::ConsumerGroupHeartbeat(
            consumer_groups::heartbeat(shard, v, r, caller.client_id.clone(), caller.host.clone())
                .await,
        ),
        RequestKind::ConsumerGroupDescribe(r) => {
            Answer::ConsumerGroupDescribe(consumer_groups::describe(shard, v, r).await)
        }
        RequestKind::DescribeUserScramCredentials(r) => Answer::DescribeUserScramCredentials(
            security::describe_user_scram_credentials(shard, r),
        ),
        RequestKind::AlterUserScramCredentials(r) => Answer::AlterUserScramCredentials(
            security::alter_user_scram_credentials(shard, r).await,
        ),
        RequestKind::CreateAcls(r) => Answer::CreateAcls(security::create_acls(shard, r).await),
        RequestKind::DescribeAcls(r) => Answer::DescribeAcls(security::describe_acls(shard, r)),
        RequestKind::DeleteAcls(r) => Answer::DeleteAcls(security::delete_acls(shard, r).await),
        other => unreachable!(
            "route() only decodes supported APIs, got {:?}",
            std::mem::discriminant(&other)
        ),
    }
}

fn answer(header: Header, answer: Answer) -> Option<Outgoing> {
    match &answer {
        Answer::ApiVersions(r) => encode_or_log(header, r),
        Answer::Metadata(r) => encode_or_log(header, r),
        Answer::Fetch(r) => encode_or_log(header, r),
        Answer::ListOffsets(r) => encode_or_log(header, r),
        Answer::OffsetForLeaderEpoch(r) => encode_or_log(header, r),
        Answer::CreateTopics(r) => encode_or_log(header, r),
        Answer::DeleteTopics(r) => encode_or_log(header, r),
        Answer::CreatePartitions(r) => encode_or_log(header, r),
        Answer::InitProducerId(r) => encode_or_log(header, r),
        Answer::FindCoordinator(r) => encode_or_log(header, r),
        Answer::JoinGroup(r) => encode_or_log(header, r),
        Answer::SyncGroup(r) => encode_or_log(header, r),
        Answer::Heartbeat(r) => encode_or_log(header, r),
        Answer::LeaveGroup(r) => encode_or_log(header, r),
        Answer::OffsetCommit(r) => encode_or_log(header, r),
        Answer::OffsetFetch(r) => encode_or_log(header, r),
        Answer::ListGroups(r) => encode_or_log(header, r),
        Answer::DescribeGroups(r) => encode_or_log(header, r),
        Answer::DeleteGroups(r) => encode_or_log(header, r),
        Answer::OffsetDelete(r) => encode_or_log(header, r),
        Answer::DescribeConfigs(r) => encode_or_log(header, r),
        Answer::IncrementalAlterConfigs(r) => encode_or_log(header, r),
        Answer::ConsumerGroupHeartbeat(r) => encode_or_log(header, r),
        Answer::ConsumerGroupDescribe(r) => encode_or_log(header, r),
        Answer::DescribeUserScramCredentials(r) => encode_or_log(header, r),
        Answer::AlterUserScramCredentials(r) => encode_or_log(header, r),
        Answer::CreateAcls(r) => encode_or_log(header, r),
        Answer::DescribeAcls(r) => encode_or_log(header, r),
        Answer::DeleteAcls(r) => encode_or_log(header, r),
    }
}

/// Encodes a response; a failure is a bug in this adapter (a field set that
/// the version lacks): logged, and the client gets no answer (it times out
/// and retries) rather than a corrupt one.
fn encode_or_log<T: kafka_protocol::protocol::Encodable>(
    header: Header,
    body: &T,
) -> Option<Outgoing> {
    match frame::response(header.api, header.version, header.correlation_id, body) {
        Ok(out) => Some(out),
        Err(e) => {
            tracing::error!(api = ?header.api, version = header.version, error = %e, "could not encode a Kafka response");
            None
        }
    }
}
