//! The producer: batches records per partition by size and linger, sends
//! each destination's batches in pipelined produce requests, and resolves
//! one [`Delivery`] per record with its offset or error.
//!
//! * Partitioning: an explicit partition wins; a keyed record goes where
//!   Kafka's default partitioner would put it (murmur2 of the key); a record
//!   without a key sticks to one partition until that partition's batch is
//!   sent, then moves on (Kafka's sticky partitioner).
//! * Ordering: batches of one partition are sent in order on one
//!   connection, and the broker appends a connection's produce requests in
//!   the order they arrive, so records of one key keep their order.
//! * Memory: at most `buffer_bytes` of records wait in the producer; `send`
//!   waits (backpressure) beyond that. No allocation per record: deliveries
//!   of one batch share one state.
//! * Failures are reported, not retried.

use super::admin::{ClusterMetadata, TopicInfo, fetch_metadata};
use super::partitioner::partition_for_key;
use super::{CONNECT_TIMEOUT, ClientError, ConnectionPool, Result, RoundTripHook, Routing, Wire};
use crate::protocol::produce_frame::{ProducePart, encode_produce};
use crate::protocol::wire;
use crate::record::{BatchBuilder, Compression, Header};
use crate::trace::Stage;
use crate::types::Timestamp;
use bytes::Bytes;
use event_listener::Event;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

pub use crate::types::Acks;

/// How a producer batches, compresses and sends.
#[derive(Clone, Debug)]
pub struct ProducerConfig {
    pub acks: Acks,
    /// A partition's batch is sent once it holds this many bytes…
    pub batch_bytes: usize,
    /// …or once its first record waited this long.
    pub linger: Duration,
    /// Produce requests in flight per connection.
    pub max_in_flight: usize,
    pub routing: Routing,
    pub request_timeout: Duration,
    /// Largest produce request.
    pub request_bytes_max: usize,
    /// Record bytes the producer holds before `send` waits.
    pub buffer_bytes: usize,
    /// Codec each batch is compressed with (`None`: uncompressed).
    pub compression: Compression,
    /// The protocol to speak (the broker's Kafka listener for `Kafka`).
    pub wire: Wire,
    /// Told each answered produce request's round trip (none by default).
    pub round_trip: Option<RoundTripHook>,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: Acks::Leader,
            batch_bytes: 64 << 10,
            linger: Duration::from_millis(5),
            max_in_flight: 8,
            routing: Routing::Direct,
            request_timeout: Duration::from_secs(30),
            request_bytes_max: 4 << 20,
            buffer_bytes: 32 << 20,
            compression: Compression::None,
            wire: Wire::Native,
            round_trip: None,
        }
    }
}

/// One record to send.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProducerRecord<'a> {
    pub topic: &'a str,
    pub partition: Option<u32>,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [Header<'a>],
    /// Default: now.
    pub timestamp: Option<Timestamp>,
}

/// Where a record was stored.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RecordMetadata {
    pub partition: u32,
    /// `None` with acks 0 (the broker does not answer).
    pub offset: Option<u64>,
}

/// The outcome shared by every record of a batch.
#[derive(Default)]
struct BatchState {
    outcome: RefCell<Option<Result<Option<u64>>>>,
    wakers: RefCell<Vec<Waker>>,
}

impl BatchState {
    fn resolve(&self, outcome: Result<Option<u64>>) {
        *self.outcome.borrow_mut() = Some(outcome);
        for w in self.wakers.borrow_mut().drain(..) {
            w.wake();
        }
    }
}

/// Completes with a record's offset once its batch was acknowledged.
pub struct Delivery {
    state: Rc<BatchState>,
    index: u32,
    partition: u32,
}

impl Future for Delivery {
    type Output = Result<RecordMetadata>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &*self.state.outcome.borrow() {
            Some(Ok(base)) => Poll::Ready(Ok(RecordMetadata {
                partition: self.partition,
                offset: base.map(|b| b + self.index as u64),
            })),
            Some(Err(e)) => Poll::Ready(Err(e.clone())),
            None => {
                self.state.wakers.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

struct OpenBatch {
    builder: BatchBuilder,
    state: Rc<BatchState>,
    opened: Instant,
}

struct TopicState {
    name: Arc<str>,
    info: TopicInfo,
    open: Vec<Option<OpenBatch>>,
    sticky: u32,
}

struct ReadyBatch {
    topic: Arc<str>,
    partition: u32,
    addr: SocketAddr,
    bytes: Bytes,
    /// Record bytes the batch held before compression: what it counts
    /// against `buffer_bytes` until it is answered.
    held: usize,
    state: Rc<BatchState>,
    /// When its first record was added (latency tracing).
    opened: Instant,
}

struct Inner {
    config: ProducerConfig,
    bootstrap: SocketAddr,
    metadata: RefCell<ClusterMetadata>,
    pool: ConnectionPool,
    topics: RefCell<HashMap<String, TopicState>>,
    ready: RefCell<VecDeque<ReadyBatch>>,
    /// Record bytes held (open, ready and in flight).
    buffered: Cell<usize>,
    /// Batches not yet resolved.
    outstanding: Cell<usize>,
    wake_sender: Event,
    progress: Event,
    closed: Cell<bool>,
    slots: RefCell<HashMap<SocketAddr, Rc<glommio::sync::Semaphore>>>,
    /// Buffers of sent batches, reused for new ones: no allocation (and no
    /// page faults) per batch once the producer is warm.
    spare: RefCell<Vec<bytes::BytesMut>>,
}

/// Most spare batch buffers kept.
const SPARE_BUFFERS_MAX: usize = 64;

impl Inner {
    /// A builder for a new batch whose first record takes `first` bytes.
    fn new_builder(&self, first: usize) -> BatchBuilder {
        let want = self.config.batch_bytes.max(first + 128);
        match self.spare.borrow_mut().pop() {
            Some(buf) if buf.capacity() >= want => BatchBuilder::from_buffer(buf),
            _ => BatchBuilder::with_capacity(want),
        }
    }

    /// Takes back a sent batch's buffer if nothing else holds it.
    fn recycle(&self, bytes: Bytes) {
        let mut spare = self.spare.borrow_mut();
        if spare.len() < SPARE_BUFFERS_MAX
            && let Ok(buf) = bytes.try_into_mut()
        {
            spare.push(buf);
        }
    }
}

/// Sends records to a broker (see the module docs).
pub struct Producer {
    inner: Rc<Inner>,
    sender: Option<glommio::task::JoinHandle<()>>,
}

impl Producer {
    /// Connects to `bootstrap` and reads the cluster's metadata.
    pub async fn connect(bootstrap: SocketAddr, config: ProducerConfig) -> Result<Producer> {
        if config.batch_bytes == 0
            || config.max_in_flight == 0
            || config.batch_bytes > config.request_bytes_max
        {
            return Err(ClientError::Invalid(
                "batch bytes and max in flight must be positive, and a batch must fit in a request"
                    .into(),
            ));
        }
        let pool = ConnectionPool::new(config.wire);
        let conn = pool.get(bootstrap, CONNECT_TIMEOUT).await?;
        let metadata = fetch_metadata(&conn, &[]).await?;
        let inner = Rc::new(Inner {
            config,
            bootstrap,
            metadata: RefCell::new(metadata),
            pool,
            topics: RefCell::new(HashMap::new()),
            ready: RefCell::new(VecDeque::new()),
            buffered: Cell::new(0),
            outstanding: Cell::new(0),
            wake_sender: Event::new(),
            progress: Event::new(),
            closed: Cell::new(false),
            slots: RefCell::new(HashMap::new()),
            spare: RefCell::new(Vec::new()),
        });
        let sender = glommio::spawn_local(sender_loop(inner.clone())).detach();
        Ok(Producer {
            inner,
            sender: Some(sender),
        })
    }

    /// The metadata the producer routes by.
    pub fn metadata(&self) -> ClusterMetadata {
        self.inner.metadata.borrow().clone()
    }

    /// Shorthand for [`Producer::send_record`] with a key and value.
    pub async fn send(&self, topic: &str, key: Option<&[u8]>, value: &[u8]) -> Result<Delivery> {
        self.send_record(ProducerRecord {
            topic,
            key,
            value: Some(value),
            ..Default::default()
        })
        .await
    }

    /// Adds a record to its partition's batch. Returns once the record is
    /// buffered (waiting only for metadata or buffer space); await the
    /// [`Delivery`] for its offset.
    pub async fn send_record(&self, record: ProducerRecord<'_>) -> Result<Delivery> {
        let inner = &self.inner;
        if inner.closed.get() {
            return Err(ClientError::Invalid("producer is closed".into()));
        }
        // Backpressure: wait for room.
        while inner.buffered.get() >= inner.config.buffer_bytes {
            let listener = inner.progress.listen();
            if inner.buffered.get() < inner.config.buffer_bytes {
                break;
            }
            listener.await;
        }
        if !inner.topics.borrow().contains_key(record.topic) {
            self.load_topic(record.topic).await?;
        }
        let timestamp = record.timestamp.unwrap_or_else(Timestamp::now);
        let mut topics = inner.topics.borrow_mut();
        let topic = topics.get_mut(record.topic).expect("loaded above");
        let count = topic.info.partitions.len() as u32;
        let partition = match (record.partition, record.key) {
            (Some(p), _) if p >= count => {
                return Err(ClientError::Invalid(format!(
                    "topic {:?} has partitions 0..{count}, not {p}",
                    record.topic
                )));
            }
            (Some(p), _) => p,
            (None, Some(key)) => partition_for_key(key, count),
            (None, None) => topic.sticky % count,
        };
        let slot = partition as usize;
        let size = match &topic.open[slot] {
            Some(open) => {
                open.builder
                    .record_size(timestamp, record.key, record.value, record.headers)
            }
            None => BatchBuilder::with_capacity(0).record_size(
                timestamp,
                record.key,
                record.value,
                record.headers,
            ),
        };
        // Seal a batch the record would push over the size.
        if topic.open[slot].as_ref().is_some_and(|o| {
            !o.builder.is_empty() && o.builder.size_bytes() + size > inner.config.batch_bytes
        }) {
            self.seal(topic, partition);
        }
        let was_empty = topic.open[slot].is_none();
        let open = topic.open[slot].get_or_insert_with(|| OpenBatch {
            builder: inner.new_builder(size),
            state: Rc::new(BatchState::default()),
            opened: Instant::now(),
        });
        open.builder
            .push(timestamp, record.key, record.value, record.headers);
        let delivery = Delivery {
            state: open.state.clone(),
            index: open.builder.record_count() - 1,
            partition,
        };
        inner.buffered.set(inner.buffered.get() + size);
        if open.builder.size_bytes() >= inner.config.batch_bytes {
            self.seal(topic, partition);
        } else if was_empty {
            // A new batch: the sender must know its linger deadline.
            inner.wake_sender.notify(1);
        }
        Ok(delivery)
    }

    /// Moves a partition's open batch to the send queue.
    fn seal(&self, topic: &mut TopicState, partition: u32) {
        let Some(mut open) = topic.open[partition as usize].take() else {
            return;
        };
        let metadata = self.inner.metadata.borrow();
        let addr = metadata.partition_addr(&topic.info, partition, self.inner.config.routing);
        self.inner.ready.borrow_mut().push_back(ReadyBatch {
            topic: topic.name.clone(),
            partition,
            addr,
            held: open.builder.size_bytes(),
            bytes: finish_batch(&mut open.builder, self.inner.config.compression),
            state: open.state,
            opened: open.opened,
        });
        self.inner.outstanding.set(self.inner.outstanding.get() + 1);
        if topic.sticky == partition {
            topic.sticky = (topic.sticky + 1) % topic.info.partitions.len() as u32;
        }
        self.inner.wake_sender.notify(1);
    }

    async fn load_topic(&self, name: &str) -> Result<()> {
        let conn = self
            .inner
            .pool
            .get(self.inner.bootstrap, CONNECT_TIMEOUT)
            .await?;
        let metadata = fetch_metadata(&conn, &[name]).await?;
        let info = metadata.topics.get(name).cloned().ok_or_else(|| {
            ClientError::broker(
                wire::ErrorCode::UNKNOWN_TOPIC,
                Some(&format!("topic {name:?} does not exist")),
            )
        })?;
        {
            // Keep the topics already known; take the rest from the answer.
            let mut known = self.inner.metadata.borrow_mut();
            let topics = std::mem::take(&mut known.topics);
            *known = ClusterMetadata { topics, ..metadata };
            known.topics.insert(name.to_string(), info.clone());
        }
        let n = info.partitions.len();
        let sticky = (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos() as usize
            % n) as u32;
        // Another send may have loaded the topic (and opened batches) while
        // this one waited: keep its state, or those batches would be lost.
        self.inner
            .topics
            .borrow_mut()
            .entry(name.to_string())
            .or_insert_with(|| TopicState {
                name: Arc::from(name),
                info,
                open: (0..n).map(|_| None).collect(),
                sticky,
            });
        Ok(())
    }

    /// Sends every buffered record now and waits until all are acknowledged
    /// (or failed).
    pub async fn flush(&self) -> Result<()> {
        {
            let mut topics = self.inner.topics.borrow_mut();
            for topic in topics.values_mut() {
                for p in 0..topic.open.len() as u32 {
                    self.seal(topic, p);
                }
            }
        }
        loop {
            let listener = self.inner.progress.listen();
            if self.inner.outstanding.get() == 0 {
                return Ok(());
            }
            listener.await;
        }
    }

    /// Flushes and stops the sender.
    pub async fn close(mut self) -> Result<()> {
        let result = self.flush().await;
        self.inner.closed.set(true);
        self.inner.wake_sender.notify(usize::MAX);
        if let Some(sender) = self.sender.take() {
            sender.await;
        }
        result
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.inner.closed.set(true);
        self.inner.wake_sender.notify(usize::MAX);
    }
}

/// Moves lingering batches to the queue and sends queued batches, grouped
/// per destination into requests, at most `max_in_flight` per connection.
async fn sender_loop(inner: Rc<Inner>) {
    loop {
        let listener = inner.wake_sender.listen();
        let now = Instant::now();
        let mut earliest: Option<Instant> = None;
        {
            // Batches whose linger expired join the queue.
            let mut topics = inner.topics.borrow_mut();
            let metadata = inner.metadata.borrow();
            for topic in topics.values_mut() {
                for p in 0..topic.open.len() {
                    let expired = topic.open[p]
                        .as_ref()
                        .map(|o| o.opened + inner.config.linger);
                    match expired {
                        Some(at) if at <= now => {
                            let mut open = topic.open[p].take().unwrap();
                            let addr = metadata.partition_addr(
                                &topic.info,
                                p as u32,
                                inner.config.routing,
                            );
                            inner.ready.borrow_mut().push_back(ReadyBatch {
                                topic: topic.name.clone(),
                                partition: p as u32,
                                addr,
                                held: open.builder.size_bytes(),
                                bytes: finish_batch(&mut open.builder, inner.config.compression),
                                state: open.state,
                                opened: open.opened,
                            });
                            inner.outstanding.set(inner.outstanding.get() + 1);
                            if topic.sticky == p as u32 {
                                topic.sticky = (topic.sticky + 1) % topic.open.len() as u32;
                            }
                        }
                        Some(at) => earliest = Some(earliest.map_or(at, |e| e.min(at))),
                        None => {}
                    }
                }
            }
        }
        if inner.ready.borrow().is_empty() {
            if inner.closed.get() && inner.outstanding.get() == 0 {
                return;
            }
            match earliest {
                Some(at) => {
                    let timer = glommio::timer::sleep(at.saturating_duration_since(Instant::now()));
                    futures::pin_mut!(timer);
                    let _ = futures::future::select(timer, listener).await;
                }
                None => listener.await,
            }
            continue;
        }
        let (addr, batches) = take_request(&inner);
        let slots = inner
            .slots
            .borrow_mut()
            .entry(addr)
            .or_insert_with(|| {
                Rc::new(glommio::sync::Semaphore::new(
                    inner.config.max_in_flight as u64,
                ))
            })
            .clone();
        let Ok(permit) = slots.acquire_static_permit(1).await else {
            return;
        };
        // The connection is taken here, one request after another, and the
        // request task queues its frame on its first poll (tasks start in
        // the order they were spawned): requests to one address go out in
        // the order they were built, even while the connection is being
        // opened — so a partition's batches are appended in order.
        let conn = inner.pool.get(addr, CONNECT_TIMEOUT).await;
        let inner = inner.clone();
        let sent = batches.len();
        glommio::spawn_local(async move {
            let outcome = send_batches(&inner, addr, conn, &batches).await;
            drop(permit);
            for (batch, result) in batches.into_iter().zip(outcome) {
                batch.state.resolve(result);
                inner
                    .buffered
                    .set(inner.buffered.get().saturating_sub(batch.held));
                inner.recycle(batch.bytes);
            }
            inner.outstanding.set(inner.outstanding.get() - sent);
            inner.progress.notify(usize::MAX);
        })
        .detach();
    }
}

/// Takes the next request's batches off the queue: the first ready
/// batch's destination, and its batches up to a request's size.
fn take_request(inner: &Inner) -> (SocketAddr, Vec<ReadyBatch>) {
    let mut ready = inner.ready.borrow_mut();
    let addr = ready.front().unwrap().addr;
    let mut batches = Vec::new();
    let mut bytes = 0;
    let mut i = 0;
    while i < ready.len() {
        if ready[i].addr != addr {
            i += 1;
            continue;
        }
        // The request is full at the first batch that does not fit:
        // taking a later, smaller one instead could send a
        // partition's batches out of order.
        if !batches.is_empty() && bytes + ready[i].bytes.len() > inner.config.request_bytes_max {
            break;
        }
        let b = ready.remove(i).unwrap();
        bytes += b.bytes.len();
        batches.push(b);
    }
    (addr, batches)
}

/// Sends batches in one produce request; one outcome per batch.
async fn send_batches(
    inner: &Inner,
    addr: SocketAddr,
    conn: Result<Rc<super::Connection>>,
    batches: &[ReadyBatch],
) -> Vec<Result<Option<u64>>> {
    let fail = |e: ClientError| batches.iter().map(|_| Err(e.clone())).collect();
    let conn = match conn {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let acks = inner.config.acks;
    // Where each batch sits in the request (topic index, partition index):
    // the response lists results in request order, and one partition may
    // appear twice (two batches).
    let mut order: Vec<&str> = Vec::new();
    let mut counts: Vec<usize> = Vec::new();
    let positions: Vec<(usize, usize)> = batches
        .iter()
        .map(|b| {
            let t = match order.iter().position(|t| *t == &*b.topic) {
                Some(t) => t,
                None => {
                    order.push(&b.topic);
                    counts.push(0);
                    order.len() - 1
                }
            };
            counts[t] += 1;
            (t, counts[t] - 1)
        })
        .collect();
    // Group batches under their topics in the order `positions` assumed;
    // the frame carries each batch straight from its buffer.
    let mut topics: Vec<(&str, Vec<ProducePart<'_>>)> =
        order.iter().map(|t| (*t, Vec::new())).collect();
    for (b, &(t, _)) in batches.iter().zip(&positions) {
        topics[t].1.push(ProducePart {
            partition: b.partition,
            records: &b.bytes,
        });
    }
    let timeout_ms = inner
        .config
        .request_timeout
        .as_millis()
        .min(u32::MAX as u128) as u32;
    let corr = conn.next_correlation_id();
    let parts = match conn.wire() {
        Wire::Native => encode_produce(corr, acks.to_wire() as i8, timeout_ms, &topics)
            .parts()
            .to_vec(),
        Wire::Kafka => super::kafka::produce_parts(corr, acks.to_wire(), timeout_ms, &topics),
    };
    if acks == Acks::None {
        return match conn.send_frame(parts).await {
            Ok(()) => batches.iter().map(|_| Ok(None)).collect(),
            Err(e) => fail(e),
        };
    }
    if crate::trace::enabled()
        && let Some(oldest) = batches.iter().map(|b| b.opened).min()
    {
        crate::trace::record(Stage::ClientQueue, oldest.elapsed());
    }
    let sent_at = crate::trace::now();
    let sent = inner.config.round_trip.as_ref().map(|_| Instant::now());
    let call = conn.call_frame(corr, parts);
    let timer = glommio::timer::sleep(inner.config.request_timeout + Duration::from_secs(5));
    futures::pin_mut!(call, timer);
    let response = match futures::future::select(call, timer).await {
        futures::future::Either::Left((Ok(r), _)) => {
            crate::trace::since(Stage::ClientRoundTrip, sent_at);
            if let (Some(hook), Some(sent)) = (&inner.config.round_trip, sent) {
                hook.answered(sent);
            }
            r
        }
        futures::future::Either::Left((Err(e), _)) => return fail(e),
        futures::future::Either::Right(_) => {
            return fail(ClientError::Timeout(format!("produce request to {addr}")));
        }
    };
    if conn.wire() == Wire::Kafka {
        let sent: Vec<(&str, u32)> = batches.iter().map(|b| (&*b.topic, b.partition)).collect();
        return super::kafka::produce_results(&response, &sent, &positions);
    }
    if let Err(e) = response.check() {
        return fail(e);
    }
    let Some(body) = response.envelope().response_as_produce_response() else {
        return fail(ClientError::Protocol(
            "produce response without a body".into(),
        ));
    };
    let topics: Vec<_> = body.topics().iter().flatten().collect();
    batches
        .iter()
        .zip(positions)
        .map(|(b, (t, i))| {
            let part = topics
                .get(t)
                .filter(|topic| topic.topic() == Some(&*b.topic))
                .and_then(|topic| {
                    topic
                        .partitions()
                        .and_then(|parts| (i < parts.len()).then(|| parts.get(i)))
                })
                .filter(|p| p.partition() == b.partition);
            match part {
                None => Err(ClientError::Protocol(format!(
                    "no result for {}/{}",
                    b.topic, b.partition
                ))),
                Some(p) if p.error() != wire::ErrorCode::NONE => {
                    Err(ClientError::broker(p.error(), p.error_message()))
                }
                Some(p) => Ok(Some(p.base_offset() as u64)),
            }
        })
        .collect()
}

/// Ends a batch, compressed with `codec`. A codec that fails to set itself
/// up (it compresses into memory, so only a library fault can) leaves the
/// batch uncompressed rather than losing it.
fn finish_batch(builder: &mut BatchBuilder, codec: Compression) -> Bytes {
    if codec == Compression::None {
        return builder.finish();
    }
    builder.finish_compressed(codec).unwrap_or_else(|e| {
        tracing::warn!(%codec, error = %e, "compression failed; sending the batch uncompressed");
        builder.finish()
    })
}
