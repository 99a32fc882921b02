//! The Rust client: [`Admin`], [`Producer`], [`Consumer`], over pipelined
//! [`Connection`]s. Runs on a glommio executor (a client is `!Send`, like a
//! shard). Uses only the protocol, the record codec and the types — never
//! broker internals.
//!
//! The client is shard-aware: metadata tells, for every partition, the
//! owning shard and that shard's own port, and with [`Routing::Direct`]
//! (the default) the producer and consumer talk to the owning shard
//! directly, so the broker makes no cross-core hop for them.
//!
//! ```no_run
//! use corelog::client::{Admin, Consumer, ConsumerConfig, Producer, ProducerConfig, SeekTo, TopicSettings};
//!
//! glommio::LocalExecutorBuilder::default().spawn(|| async {
//!     let broker = "127.0.0.1:9400".parse().unwrap();
//!     Admin::connect(broker).await?.create_topic("events", 8, &TopicSettings::default()).await?;
//!
//!     let producer = Producer::connect(broker, ProducerConfig::default()).await?;
//!     let delivery = producer.send("events", Some(b"user-1".as_slice()), b"hello").await?;
//!     let metadata = delivery.await?; // partition and offset
//!     producer.close().await?;
//!
//!     let mut consumer = Consumer::connect(broker, ConsumerConfig::default()).await?;
//!     consumer.assign("events", None, SeekTo::Earliest).await?;
//!     for record in consumer.poll().await? {
//!         println!("{}/{} {:?}", record.partition, record.offset, record.value);
//!     }
//!     Ok::<_, corelog::client::ClientError>(())
//! }).unwrap().join().unwrap().unwrap();
//! ```

mod admin;
mod consumer;
mod group;
mod kafka;
pub mod partitioner;
mod producer;

pub use admin::{
    Admin, BrokerStats, ClusterMetadata, ConfigSetting, ConfigSource, ConfigUpdate,
    PartitionDescription, ShardStats, TopicDescription, TopicInfo, TopicSettings, TopicSummary,
};
pub use consumer::{Consumer, ConsumerConfig, ConsumerRecord, OffsetReset, PolledBatch, SeekTo};
pub use group::{GroupConfig, GroupConsumer, RebalanceEvent};
pub use producer::{Acks, Delivery, Producer, ProducerConfig, ProducerRecord, RecordMetadata};

use crate::constants::FRAME_BYTES_MAX;
use crate::protocol::{FrameReader, LengthPrefix, error_name, parse_response, wire};
use bytes::Bytes;
use flatbuffers::{FlatBufferBuilder, UnionWIPOffset, WIPOffset};
use futures::channel::oneshot;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Told the round trip of every request a [`Producer`] (produce) or
/// [`Consumer`] (fetch) got an answer to: when the request was handed to
/// the connection and how long until its answer arrived. Called on the
/// client's executor once per request, never per record; with no hook set
/// (the default) the client does not even read the clock for it.
#[derive(Clone)]
pub struct RoundTripHook(Rc<dyn Fn(Instant, Duration)>);

impl RoundTripHook {
    pub fn new(hook: impl Fn(Instant, Duration) + 'static) -> RoundTripHook {
        RoundTripHook(Rc::new(hook))
    }

    /// Reports a request sent at `sent` and answered now.
    pub(crate) fn answered(&self, sent: Instant) {
        (self.0)(sent, sent.elapsed())
    }
}

impl fmt::Debug for RoundTripHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RoundTripHook")
    }
}

/// Which protocol a client speaks: corelog's own, or Kafka's (to the
/// broker's Kafka listener, as any Kafka client would).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum Wire {
    #[default]
    Native,
    Kafka,
}

impl std::str::FromStr for Wire {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Wire, String> {
        match s {
            "native" => Ok(Wire::Native),
            "kafka" => Ok(Wire::Kafka),
            other => Err(format!("protocol {other:?} is not one of native, kafka")),
        }
    }
}

impl fmt::Display for Wire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Wire::Native => "native",
            Wire::Kafka => "kafka",
        })
    }
}

/// How clients reach partitions.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum Routing {
    /// Connect to the shard that owns each partition (no cross-core hops).
    #[default]
    Direct,
    /// Send everything to the shared port; the broker routes between cores.
    Shared,
}

/// What went wrong, from the client's side.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientError {
    /// Could not connect.
    Connect { addr: SocketAddr, reason: String },
    /// The connection broke; requests on it failed.
    Disconnected { addr: SocketAddr, reason: String },
    /// The broker sent something that is not a valid response.
    Protocol(String),
    /// The broker answered with an error code.
    Broker {
        code: wire::ErrorCode,
        message: String,
    },
    /// The broker answered a Kafka request with a Kafka error code.
    Kafka { code: i16, message: String },
    /// No answer in time.
    Timeout(String),
    /// A bad argument or configuration on the client side.
    Invalid(String),
}

impl ClientError {
    /// The broker's error code, if the broker sent one.
    pub fn code(&self) -> Option<wire::ErrorCode> {
        match self {
            ClientError::Broker { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub(crate) fn broker(code: wire::ErrorCode, message: Option<&str>) -> ClientError {
        ClientError::Broker {
            code,
            message: message.unwrap_or("").to_string(),
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect { addr, reason } => {
                write!(f, "cannot connect to broker at {addr}: {reason}")
            }
            ClientError::Disconnected { addr, reason } => {
                write!(f, "connection to {addr} lost: {reason}")
            }
            ClientError::Protocol(why) => write!(f, "protocol error: {why}"),
            ClientError::Broker { code, message } => write!(
                f,
                "broker error {} ({}): {message}",
                error_name(*code),
                code.0
            ),
            ClientError::Kafka { code, message } => {
                write!(f, "broker error (Kafka code {code}): {message}")
            }
            ClientError::Timeout(what) => write!(f, "timed out: {what}"),
            ClientError::Invalid(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for ClientError {}

pub type Result<T> = std::result::Result<T, ClientError>;

/// A response frame: verified (native), or framed and matched by
/// correlation id (Kafka).
pub struct Response {
    frame: Bytes,
}

impl Response {
    /// The envelope (verified when the frame arrived). Native responses
    /// only.
    pub fn envelope(&self) -> wire::ResponseEnvelope<'_> {
        // SAFETY: the frame passed the flatbuffers verifier in the reader
        // task before this Response was built, and it is immutable.
        unsafe { flatbuffers::size_prefixed_root_unchecked::<wire::ResponseEnvelope>(&self.frame) }
    }

    /// `Err` if the broker reported a request-level error.
    pub fn check(&self) -> Result<&Response> {
        let env = self.envelope();
        if env.error() != wire::ErrorCode::NONE {
            return Err(ClientError::broker(env.error(), env.error_message()));
        }
        Ok(self)
    }

    /// The frame, for slicing record data out of it without copying.
    pub fn frame(&self) -> &Bytes {
        &self.frame
    }
}

type Reply = oneshot::Sender<Result<Response>>;

/// A frame to write, as slices written in order (a produce request's
/// batches go out from the producer's own buffers).
struct Outgoing {
    parts: Vec<Bytes>,
    reply: Option<(u64, Reply)>,
}

struct ConnState {
    pending: RefCell<VecDeque<(u64, Reply)>>,
    broken: RefCell<Option<String>>,
}

impl ConnState {
    fn fail_all(&self, addr: SocketAddr, reason: &str) {
        self.broken
            .borrow_mut()
            .get_or_insert_with(|| reason.to_string());
        let pending: Vec<_> = self.pending.borrow_mut().drain(..).collect();
        for (_, reply) in pending {
            let _ = reply.send(Err(ClientError::Disconnected {
                addr,
                reason: reason.to_string(),
            }));
        }
    }
}

/// One TCP connection to a broker port. Requests may be pipelined from
/// many tasks; responses are matched to requests in order (the broker
/// answers in request order) and checked by correlation id.
pub struct Connection {
    addr: SocketAddr,
    wire: Wire,
    next_corr: Cell<u64>,
    outgoing: glommio::channels::local_channel::LocalSender<Outgoing>,
    state: Rc<ConnState>,
    _tasks: (glommio::task::JoinHandle<()>, glommio::task::JoinHandle<()>),
}

impl Connection {
    /// Connects within `timeout`, speaking the native protocol.
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Rc<Connection>> {
        Connection::connect_with(addr, timeout, Wire::Native).await
    }

    /// Connects within `timeout`, speaking `wire`, with TLS when the
    /// process's client TLS is set ([`set_tls`]).
    pub async fn connect_with(
        addr: SocketAddr,
        timeout: Duration,
        wire: Wire,
    ) -> Result<Rc<Connection>> {
        let stream = glommio::net::TcpStream::connect_timeout(addr, timeout)
            .await
            .map_err(|e| ClientError::Connect {
                addr,
                reason: std::io::Error::from(e).to_string(),
            })?;
        let _ = stream.set_nodelay(true);
        let state = Rc::new(ConnState {
            pending: RefCell::new(VecDeque::new()),
            broken: RefCell::new(None),
        });
        let (tx, rx) = glommio::channels::local_channel::new_bounded::<Outgoing>(1024);
        let tasks = match tls() {
            None => {
                let (reader, writer) =
                    crate::protocol::split_stream(stream).map_err(|e| ClientError::Connect {
                        addr,
                        reason: e.to_string(),
                    })?;
                spawn_io(addr, wire, &state, reader, writer, rx)
            }
            Some(tls) => {
                let name = match &tls.server_name {
                    Some(name) => name.clone(),
                    None => rustls::pki_types::ServerName::IpAddress(addr.ip().into()),
                };
                let connector = futures_rustls::TlsConnector::from(tls.config.clone());
                let io = futures::io::BufReader::with_capacity(32 << 10, stream);
                let handshake = glommio::timer::timeout(timeout, async {
                    connector
                        .connect(name, io)
                        .await
                        .map_err(glommio::GlommioError::<()>::IoError)
                });
                let stream = handshake.await.map_err(|e| ClientError::Connect {
                    addr,
                    reason: format!("TLS handshake: {e}"),
                })?;
                let (reader, writer) = futures::io::AsyncReadExt::split(stream);
                spawn_io(
                    addr,
                    wire,
                    &state,
                    crate::protocol::Zeroing::new(reader),
                    crate::protocol::TlsSink(writer),
                    rx,
                )
            }
        };
        Ok(Rc::new(Connection {
            addr,
            wire,
            next_corr: Cell::new(1),
            outgoing: tx,
            state,
            _tasks: tasks,
        }))
    }
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn wire(&self) -> Wire {
        self.wire
    }

    /// Why the connection is unusable, if it is.
    pub fn broken(&self) -> Option<String> {
        self.state.broken.borrow().clone()
    }

    /// The correlation id for the next request built by hand.
    pub fn next_correlation_id(&self) -> u64 {
        let corr = self.next_corr.get();
        self.next_corr.set(corr + 1);
        corr
    }

    fn envelope(
        &self,
        build: impl FnOnce(
            &mut FlatBufferBuilder<'static>,
        ) -> (wire::Request, WIPOffset<UnionWIPOffset>),
        capacity: usize,
    ) -> (u64, Vec<Bytes>) {
        let corr = self.next_correlation_id();
        let mut fbb = FlatBufferBuilder::with_capacity(capacity);
        let (kind, body) = build(&mut fbb);
        let env = wire::RequestEnvelope::create(
            &mut fbb,
            &wire::RequestEnvelopeArgs {
                correlation_id: corr,
                request_type: kind,
                request: Some(body),
            },
        );
        fbb.finish_size_prefixed(env, None);
        let (frame, head) = fbb.collapse();
        (corr, vec![Bytes::from(frame).slice(head..)])
    }

    /// Sends a frame made of `parts` carrying correlation id `corr` (from
    /// [`Connection::next_correlation_id`]) and waits for its response.
    pub async fn call_frame(&self, corr: u64, parts: Vec<Bytes>) -> Result<Response> {
        if let Some(reason) = self.broken() {
            return Err(ClientError::Disconnected {
                addr: self.addr,
                reason,
            });
        }
        let (tx, rx) = oneshot::channel();
        self.outgoing
            .send(Outgoing {
                parts,
                reply: Some((corr, tx)),
            })
            .await
            .map_err(|_| ClientError::Disconnected {
                addr: self.addr,
                reason: "connection closed".into(),
            })?;
        rx.await.map_err(|_| ClientError::Disconnected {
            addr: self.addr,
            reason: "connection closed".into(),
        })?
    }

    /// Sends a frame that gets no response (produce with acks 0).
    pub async fn send_frame(&self, parts: Vec<Bytes>) -> Result<()> {
        if let Some(reason) = self.broken() {
            return Err(ClientError::Disconnected {
                addr: self.addr,
                reason,
            });
        }
        self.outgoing
            .send(Outgoing { parts, reply: None })
            .await
            .map_err(|_| ClientError::Disconnected {
                addr: self.addr,
                reason: "connection closed".into(),
            })
    }

    /// Sends a request built by `build` and waits for its response.
    pub async fn call(
        &self,
        capacity: usize,
        build: impl FnOnce(
            &mut FlatBufferBuilder<'static>,
        ) -> (wire::Request, WIPOffset<UnionWIPOffset>),
    ) -> Result<Response> {
        let (corr, parts) = self.envelope(build, capacity);
        self.call_frame(corr, parts).await
    }

    /// Like [`Connection::call`] with a deadline.
    pub async fn call_timeout(
        &self,
        timeout: Duration,
        capacity: usize,
        build: impl FnOnce(
            &mut FlatBufferBuilder<'static>,
        ) -> (wire::Request, WIPOffset<UnionWIPOffset>),
    ) -> Result<Response> {
        let call = self.call(capacity, build);
        let timer = glommio::timer::sleep(timeout);
        futures::pin_mut!(call, timer);
        match futures::future::select(call, timer).await {
            futures::future::Either::Left((r, _)) => r,
            futures::future::Either::Right(_) => Err(ClientError::Timeout(format!(
                "no response from {} within {} ms",
                self.addr,
                timeout.as_millis()
            ))),
        }
    }

    /// Sends a request that gets no response (produce with acks 0).
    pub async fn send_only(
        &self,
        capacity: usize,
        build: impl FnOnce(
            &mut FlatBufferBuilder<'static>,
        ) -> (wire::Request, WIPOffset<UnionWIPOffset>),
    ) -> Result<()> {
        let (_, parts) = self.envelope(build, capacity);
        self.send_frame(parts).await
    }
}

/// Connections by address, made on first use and replaced when broken; all
/// speak the pool's protocol.
/// One connection per broker address, shared by a client's tasks.
///
/// At most one connection to an address is being opened at a time: tasks
/// that need it while it is wait for it rather than open their own. Two
/// connections to one address would let a partition's pipelined produce
/// requests reach the broker out of order (each connection is served by
/// its own task there), and the broker appends in arrival order.
pub(crate) struct ConnectionPool {
    wire: Wire,
    conns: RefCell<std::collections::HashMap<SocketAddr, Rc<Connection>>>,
    /// Held while a connection is being opened (FIFO, one at a time).
    connecting: glommio::sync::Semaphore,
}

impl ConnectionPool {
    pub(crate) fn new(wire: Wire) -> ConnectionPool {
        ConnectionPool {
            wire,
            conns: RefCell::default(),
            connecting: glommio::sync::Semaphore::new(1),
        }
    }

    pub(crate) fn wire(&self) -> Wire {
        self.wire
    }

    fn healthy(&self, addr: SocketAddr) -> Option<Rc<Connection>> {
        let existing = self.conns.borrow().get(&addr).cloned();
        existing.filter(|conn| conn.broken().is_none())
    }

    pub(crate) async fn get(&self, addr: SocketAddr, timeout: Duration) -> Result<Rc<Connection>> {
        if let Some(conn) = self.healthy(addr) {
            return Ok(conn);
        }
        let _opening =
            self.connecting
                .acquire_permit(1)
                .await
                .map_err(|e| ClientError::Connect {
                    addr,
                    reason: e.to_string(),
                })?;
        // Another task may have opened it while this one waited.
        if let Some(conn) = self.healthy(addr) {
            return Ok(conn);
        }
        let conn = Connection::connect_with(addr, timeout, self.wire).await?;
        self.conns.borrow_mut().insert(addr, conn.clone());
        Ok(conn)
    }
}

/// Starts a connection's writer (requests in order) and reader (responses
/// matched to them) over any transport.
fn spawn_io<R, W>(
    addr: SocketAddr,
    wire: Wire,
    state: &Rc<ConnState>,
    reader: R,
    mut writer: W,
    rx: glommio::channels::local_channel::LocalReceiver<Outgoing>,
) -> (glommio::task::JoinHandle<()>, glommio::task::JoinHandle<()>)
where
    R: crate::protocol::FrameSource + 'static,
    W: crate::protocol::ResponseSink + 'static,
{
    let write_task = {
        let state = state.clone();
        glommio::spawn_local(async move {
            while let Some(out) = rx.recv().await {
                if state.broken.borrow().is_some() {
                    if let Some((_, reply)) = out.reply {
                        let _ = reply.send(Err(ClientError::Disconnected {
                            addr,
                            reason: "connection is broken".into(),
                        }));
                    }
                    continue;
                }
                if let Some(reply) = out.reply {
                    state.pending.borrow_mut().push_back(reply);
                }
                if let Err(e) = writer.send(&out.parts).await {
                    state.fail_all(addr, &format!("write failed: {e}"));
                }
            }
            writer.finish().await;
        })
        .detach()
    };
    let read_task = {
        let state = state.clone();
        glommio::spawn_local(async move {
            let prefix = match wire {
                Wire::Native => LengthPrefix::U32LittleEndian,
                Wire::Kafka => LengthPrefix::I32BigEndian,
            };
            let mut frames = FrameReader::with_prefix(reader, FRAME_BYTES_MAX, prefix);
            loop {
                let frame = match frames.next_frame().await {
                    Ok(Some(frame)) => frame.freeze(),
                    Ok(None) => {
                        state.fail_all(addr, "the broker closed the connection");
                        return;
                    }
                    Err(e) => {
                        state.fail_all(addr, &e.to_string());
                        return;
                    }
                };
                let corr = match correlation_id(wire, &frame) {
                    Ok(corr) => corr,
                    Err(e) => {
                        state.fail_all(addr, &format!("invalid response frame: {e}"));
                        return;
                    }
                };
                let next = state.pending.borrow_mut().pop_front();
                // Kafka correlation ids are 32 bits: compare what was sent.
                let sent = |expected: u64| match wire {
                    Wire::Native => expected,
                    Wire::Kafka => expected as u32 as u64,
                };
                match next {
                    Some((expected, reply)) if sent(expected) == corr || corr == 0 => {
                        // Correlation 0 answers a frame the broker could not
                        // read: it belongs to the oldest request.
                        let _ = reply.send(Ok(Response { frame }));
                    }
                    Some((expected, reply)) => {
                        let why = format!(
                            "response for request {corr} arrived where {expected} was expected"
                        );
                        let _ = reply.send(Err(ClientError::Protocol(why.clone())));
                        state.fail_all(addr, &why);
                        return;
                    }
                    None => {
                        state.fail_all(
                            addr,
                            &format!("unexpected response {corr} with nothing pending"),
                        );
                        return;
                    }
                }
            }
        })
        .detach()
    };
    (write_task, read_task)
}

/// TLS for every connection corelog's client opens in this process: the
/// CA to trust, optionally a certificate to present, and the name to check
/// the broker's certificate against (default: its IP address).
#[derive(Clone, Debug)]
pub struct ClientTls {
    pub config: std::sync::Arc<rustls::ClientConfig>,
    pub server_name: Option<rustls::pki_types::ServerName<'static>>,
}

static TLS: std::sync::OnceLock<Option<ClientTls>> = std::sync::OnceLock::new();

/// Makes every connection this process opens use TLS (set once, before
/// connecting: the CLI sets it from `--tls-ca`). Returns false if it was
/// set already.
pub fn set_tls(tls: ClientTls) -> bool {
    TLS.set(Some(tls)).is_ok()
}

fn tls() -> Option<&'static ClientTls> {
    TLS.get().and_then(Option::as_ref)
}

/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The correlation id of a response frame (length prefix included):
/// verified native envelopes, or the first header field of a Kafka
/// response (an `i32`, widened).
fn correlation_id(wire: Wire, frame: &[u8]) -> std::result::Result<u64, String> {
    match wire {
        Wire::Native => parse_response(frame)
            .map(|env| env.correlation_id())
            .map_err(|e| e.to_string()),
        Wire::Kafka => frame
            .get(4..8)
            .map(|b| i32::from_be_bytes(b.try_into().expect("four bytes")) as u32 as u64)
            .ok_or_else(|| format!("a Kafka response of {} bytes has no header", frame.len())),
    }
}
