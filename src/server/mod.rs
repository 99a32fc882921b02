//! Listeners and connections of one shard, for every protocol.
//!
//! Each shard accepts on the shared native port and the Kafka port
//! (SO_REUSEPORT: the kernel spreads connections over shards), on its own
//! native port (for shard-aware clients) and, in the shard-aware Kafka mode,
//! on its own Kafka port (where Kafka clients reach the partitions it owns).
//! Connection handling is generic over the [`Protocol`]: a connection is
//! read by one task and written by another —
//!
//! * the reader checks each frame's length before allocating and hands the
//!   frame to the protocol, which decodes it and returns a handler; handlers
//!   run as detached tasks (so a closed connection never cancels an append
//!   halfway);
//! * handlers run concurrently; their join handles go into a bounded queue
//!   (at most `max_inflight_per_connection`), so a client that pipelines
//!   faster than the broker answers is slowed by TCP backpressure, not
//!   buffered without limit;
//! * the writer takes handles in request order and writes each response,
//!   so responses leave in request order whatever order handlers finish.
//!
//! A frame too large, truncated, or unreadable ends the connection (after an
//! error response where the protocol has one). Nothing a client sends can
//! panic the shard.

mod admission;
mod connection;

use crate::config::BrokerConfig;
use crate::constants::{REFUSAL_ANSWER_MS_MAX, REFUSALS_ANSWERED_MAX, SHUTDOWN_DRAIN_MS_MAX};
use crate::protocol::kafka::Kafka;
use crate::protocol::native::Native;
use crate::protocol::{FrameReader, Protocol};
pub use crate::shard::BrokerHandle;
use crate::shard::{Counters, ListenerId, ListenerKind, Listeners, Shard, ShardMsg};
use crate::types::ShardId;
use admission::{Admission, RequestMemory, Slots};
use futures::AsyncWriteExt;
use futures::future::Either;
use glommio::net::{TcpListener, TcpStream};
use std::cell::Cell;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// Starts a broker (every shard, every listener) and returns once all
/// shards accept connections.
pub fn start(config: BrokerConfig) -> Result<BrokerHandle, String> {
    let board = Arc::new(crate::metrics::Board::new(config.cores));
    start_with(config, board)
}

/// [`start`], publishing the shards' figures on `board`.
pub fn start_with(
    config: BrokerConfig,
    board: Arc<crate::metrics::Board>,
) -> Result<BrokerHandle, String> {
    crate::shard::start_with(
        config,
        Arc::new(|shard, listeners| Box::pin(serve(shard, listeners))),
        board,
    )
}

/// Accepts and serves connections until shutdown, then waits (bounded) for
/// open connections to finish their in-flight requests.
pub async fn serve(shard: Rc<Shard>, listeners: Listeners) {
    let server = Rc::new(Server {
        shard: shard.clone(),
        gate: glommio::sync::Gate::new(),
        slots: Slots::new(&shard),
        memory: admission::request_memory(shard.config.request_memory_per_shard()),
        answering: Cell::new(0),
    });
    {
        let server = server.clone();
        shard.set_adopt(Some(Rc::new(move |socket, listener| {
            server.adopt(socket, listener)
        })));
    }
    let mut tasks = vec![
        accept::<Native>(&server, listeners.shared, ListenerId::NATIVE, "shared"),
        accept::<Native>(&server, listeners.own, ListenerId::NATIVE, "own"),
    ];
    for (id, kafka) in listeners.kafka {
        tasks.push(accept::<Kafka>(&server, kafka, id, "kafka"));
    }
    if let Some((id, kafka_own)) = listeners.kafka_own {
        tasks.push(accept::<Kafka>(&server, kafka_own, id, "kafka-own"));
    }
    for task in tasks {
        task.await;
    }
    shard.set_adopt(None);
    let drained = glommio::timer::timeout(Duration::from_millis(SHUTDOWN_DRAIN_MS_MAX), async {
        server
            .gate
            .close()
            .await
            .map_err(|_| glommio::GlommioError::<()>::IoError(std::io::Error::other("gate")))
    })
    .await;
    if drained.is_err() {
        tracing::warn!(shard = %shard.id, "connections still open after the drain timeout");
    }
}

/// One shard's server: its connections run in the gate (so shutdown can
/// wait for them), admitted by its slots, reading frames within its request
/// memory.
struct Server {
    shard: Rc<Shard>,
    gate: glommio::sync::Gate,
    slots: Rc<Slots>,
    memory: RequestMemory,
    /// Refused connections being answered (bounded).
    answering: Cell<u32>,
}

impl Server {
    /// Admits, hands over or refuses a connection. `handed`: another shard
    /// already handed it here.
    fn admit<P: Protocol>(self: &Rc<Self>, stream: TcpStream, listener: ListenerId, handed: bool) {
        match self.slots.admit(!handed) {
            Admission::Serve(slot) => {
                let (shard, memory) = (self.shard.clone(), self.memory.clone());
                // Detach: dropping a glommio Task cancels it. A TLS
                // handshake happens in there, on the shard that serves the
                // connection (a handed-over socket still holds the client's
                // hello unread).
                if let Ok(task) = self.gate.spawn(async move {
                    connection::serve::<P>(shard, stream, listener, slot, memory).await
                }) {
                    task.detach();
                }
            }
            Admission::HandOff(to) => self.hand_off(stream, listener, to),
            Admission::Refuse => self.refuse::<P>(stream, listener),
        }
    }

    /// A connection another shard handed over.
    fn adopt(self: &Rc<Self>, socket: OwnedFd, listener: ListenerId) {
        // SAFETY: the descriptor is a connected TCP socket this process owns
        // (dup'ed by the shard that accepted it); ownership moves here.
        let stream = unsafe { TcpStream::from_raw_fd(socket.into_raw_fd()) };
        match self.shard.listener(listener).kind {
            ListenerKind::Native => self.admit::<Native>(stream, listener, true),
            ListenerKind::Kafka => self.admit::<Kafka>(stream, listener, true),
        }
    }

    /// Sends the connection to shard `to`, which has room in its share.
    fn hand_off(self: &Rc<Self>, stream: TcpStream, listener: ListenerId, to: usize) {
        // SAFETY: dup(2) of a descriptor we own; the result is checked and
        // then owned by the OwnedFd.
        let fd = unsafe { libc::dup(stream.as_raw_fd()) };
        drop(stream);
        if fd < 0 {
            tracing::warn!(shard = %self.shard.id, error = %std::io::Error::last_os_error(), "cannot hand a connection to another shard; closing it");
            return;
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        let shard = self.shard.clone();
        glommio::spawn_local(async move {
            let msg = ShardMsg::Adopt { socket, listener };
            // A failed send (shutdown) drops the message and closes the
            // socket.
            let _ = shard.send_to(ShardId(to as u32), msg).await;
        })
        .detach();
    }

    /// Over the limit with no reserved slot free: answer the first request
    /// with the limit error where the protocol has one (a bounded number at
    /// a time, each bounded in size and time), then close. A TLS
    /// connection just closes: answering would take a handshake the broker
    /// has no room for.
    fn refuse<P: Protocol>(self: &Rc<Self>, stream: TcpStream, listener: ListenerId) {
        Counters::add(&self.shard.counters.errors, 1);
        if !P::ANSWERS_REFUSALS
            || self.shard.listener(listener).tls.is_some()
            || self.answering.get() >= REFUSALS_ANSWERED_MAX
        {
            return;
        }
        self.answering.set(self.answering.get() + 1);
        let server = self.clone();
        glommio::spawn_local(async move {
            let answer = async {
                let mut stream = stream;
                let mut frames =
                    FrameReader::with_prefix(&mut stream, REFUSAL_FRAME_BYTES_MAX, P::PREFIX);
                let frame = frames.next_frame().await.ok().flatten();
                drop(frames);
                if let Some(out) = frame.and_then(|f| P::refusal(&f)) {
                    for part in out.parts() {
                        if stream.write_all(part).await.is_err() {
                            break;
                        }
                    }
                }
                let _ = stream.close().await;
            };
            let _ = glommio::timer::timeout(Duration::from_millis(REFUSAL_ANSWER_MS_MAX), async {
                answer.await;
                Ok(())
            })
            .await;
            server.answering.set(server.answering.get() - 1);
        })
        .detach();
    }
}

/// Largest first request read from a refused connection.
const REFUSAL_FRAME_BYTES_MAX: usize = 64 << 10;

/// The accept loop of one listener.
fn accept<P: Protocol>(
    server: &Rc<Server>,
    listener: TcpListener,
    id: ListenerId,
    which: &'static str,
) -> glommio::task::JoinHandle<()> {
    let server = server.clone();
    glommio::spawn_local(async move {
        let shard = server.shard.clone();
        loop {
            let accepted = {
                let accept = listener.accept();
                let stop = shard.shutdown.wait();
                futures::pin_mut!(accept, stop);
                match futures::future::select(accept, stop).await {
                    Either::Left((result, _)) => result,
                    Either::Right(_) => return,
                }
            };
            match accepted {
                Ok(stream) => server.admit::<P>(stream, id, false),
                Err(e) => {
                    // Out of file descriptors and the like: log, back off.
                    tracing::warn!(shard = %shard.id, port = which, error = %e, "accept failed");
                    glommio::timer::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    })
    .detach()
}
