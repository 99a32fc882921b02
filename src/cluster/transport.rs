//! How controllers exchange Raft messages: one TCP connection per
//! direction and peer. A connection starts with 8 magic bytes and the
//! sender's node id (u64, little endian); then each message is a u32
//! length (little endian) and a protobuf `eraftpb.Message`.
//!
//! Each peer has a bounded queue; a message that finds it full, or a peer
//! that cannot be reached, is dropped (Raft resends what matters, and a
//! leader is told the peer is unreachable so it stops pipelining to it).
//! Received messages go to the controller's bounded inbox.

use crate::constants::{RAFT_CONNECT_TIMEOUT_MS, RAFT_MESSAGE_BYTES_MAX, RAFT_PEER_QUEUE_MAX};
use crate::support::Signal;
use event_listener::Event;
use futures::future::Either;
use futures::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// The first bytes of a controller connection (and a version).
pub const MAGIC: [u8; 8] = *b"CLGRAFT1";

/// What a sender tells the controller about a peer.
#[derive(Debug, Clone, Copy)]
pub enum Report {
    /// The peer could not be reached (or the connection broke).
    Unreachable(u64),
    /// A snapshot message was written to the peer (`true`) or lost.
    Snapshot(u64, bool),
}

/// The messages waiting for one peer.
pub struct Peer {
    pub id: u64,
    pub addr: String,
    queue: RefCell<VecDeque<Message>>,
    ready: Event,
}

impl Peer {
    pub fn new(id: u64, addr: String) -> Rc<Peer> {
        Rc::new(Peer {
            id,
            addr,
            queue: RefCell::new(VecDeque::new()),
            ready: Event::new(),
        })
    }

    /// Queues `m`; false if the queue is full (the message is dropped).
    pub fn push(&self, m: Message) -> bool {
        let mut queue = self.queue.borrow_mut();
        if queue.len() >= RAFT_PEER_QUEUE_MAX {
            return false;
        }
        queue.push_back(m);
        drop(queue);
        self.ready.notify(1);
        true
    }

    async fn next_batch(&self, shutdown: &Signal) -> Option<Vec<Message>> {
        loop {
            {
                let mut queue = self.queue.borrow_mut();
                if !queue.is_empty() {
                    return Some(queue.drain(..).collect());
                }
            }
            let listener = self.ready.listen();
            if !self.queue.borrow().is_empty() {
                continue;
            }
            let stop = shutdown.wait();
            futures::pin_mut!(listener, stop);
            if let Either::Right(_) = futures::future::select(listener, stop).await {
                return None;
            }
        }
    }
}

/// Resolves `HOST:PORT` (an IP without a lookup; a name off the executor).
async fn resolve(addr: &str) -> std::io::Result<SocketAddr> {
    if let Ok(a) = addr.parse() {
        return Ok(a);
    }
    let addr = addr.to_string();
    glommio::executor()
        .spawn_blocking(move || {
            use std::net::ToSocketAddrs;
            addr.to_socket_addrs()?
                .next()
                .ok_or_else(|| std::io::Error::other("the name resolves to no address"))
        })
        .await
}

async fn connect(from: u64, addr: &str) -> std::io::Result<TcpStream> {
    let target = resolve(addr).await?;
    let mut stream =
        glommio::timer::timeout(Duration::from_millis(RAFT_CONNECT_TIMEOUT_MS), async move {
            TcpStream::connect(target)
                .await
                .map_err(|e| glommio::GlommioError::IoError(std::io::Error::other(e.to_string())))
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    stream.set_nodelay(true)?;
    let mut hello = MAGIC.to_vec();
    hello.extend_from_slice(&from.to_le_bytes());
    stream.write_all(&hello).await?;
    Ok(stream)
}

/// Sends `peer`'s messages until shutdown, connecting (again) as needed.
pub async fn send_loop(
    from: u64,
    peer: Rc<Peer>,
    report: Rc<dyn Fn(Report)>,
    shutdown: Arc<Signal>,
) {
    let mut stream: Option<TcpStream> = None;
    let mut failures = 0u32;
    let mut buf = Vec::new();
    while let Some(batch) = peer.next_batch(&shutdown).await {
        if stream.is_none() {
            match connect(from, &peer.addr).await {
                Ok(s) => {
                    if failures > 0 {
                        tracing::info!(peer = peer.id, addr = %peer.addr, "connected to controller");
                    }
                    failures = 0;
                    stream = Some(s);
                }
                Err(e) => {
                    failures += 1;
                    // Once per outage, then every 50th attempt.
                    if failures == 1 || failures.is_multiple_of(50) {
                        tracing::warn!(peer = peer.id, addr = %peer.addr, error = %e, attempts = failures, "cannot reach controller");
                    }
                    lost(&batch, &report, peer.id);
                    // Do not spin on an unreachable peer; Raft keeps
                    // queueing heartbeats meanwhile and they are dropped.
                    glommio::timer::sleep(Duration::from_millis(100)).await;
                    peer.queue.borrow_mut().clear();
                    continue;
                }
            }
        }
        buf.clear();
        for m in &batch {
            match m.write_to_bytes() {
                Ok(bytes) => {
                    buf.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                    buf.extend_from_slice(&bytes);
                }
                Err(e) => tracing::error!(error = %e, "encoding a Raft message failed"),
            }
        }
        let s = stream.as_mut().expect("connected above");
        let written = async {
            s.write_all(&buf).await?;
            s.flush().await
        }
        .await;
        match written {
            Ok(()) => {
                for m in batch
                    .iter()
                    .filter(|m| m.msg_type == MessageType::MsgSnapshot)
                {
                    report(Report::Snapshot(m.to, true));
                }
            }
            Err(e) => {
                tracing::warn!(peer = peer.id, addr = %peer.addr, error = %e, "sending to controller failed; reconnecting");
                stream = None;
                lost(&batch, &report, peer.id);
            }
        }
    }
}

fn lost(batch: &[Message], report: &Rc<dyn Fn(Report)>, peer: u64) {
    report(Report::Unreachable(peer));
    for m in batch
        .iter()
        .filter(|m| m.msg_type == MessageType::MsgSnapshot)
    {
        report(Report::Snapshot(m.to, false));
    }
}

/// Accepts controller connections until shutdown; each delivers the
/// messages it carries to `deliver`.
pub async fn accept_loop(
    listener: TcpListener,
    deliver: Rc<dyn Fn(Message)>,
    shutdown: Arc<Signal>,
) {
    loop {
        let accepted = {
            let accept = listener.accept();
            let stop = shutdown.wait();
            futures::pin_mut!(accept, stop);
            match futures::future::select(accept, stop).await {
                Either::Left((r, _)) => r,
                Either::Right(_) => return,
            }
        };
        match accepted {
            Ok(stream) => {
                let (deliver, shutdown) = (deliver.clone(), shutdown.clone());
                glommio::spawn_local(async move {
                    let peer = stream.peer_addr().ok();
                    let read = receive(stream, &deliver);
                    let stop = shutdown.wait();
                    futures::pin_mut!(read, stop);
                    if let Either::Left((Err(e), _)) = futures::future::select(read, stop).await {
                        tracing::debug!(?peer, error = %e, "controller connection ended");
                    }
                })
                .detach();
            }
            Err(e) => {
                tracing::warn!(error = %e, "accepting a controller connection failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn receive(mut stream: TcpStream, deliver: &Rc<dyn Fn(Message)>) -> std::io::Result<()> {
    let mut hello = [0u8; 16];
    stream.read_exact(&mut hello).await?;
    if hello[..8] != MAGIC {
        tracing::warn!(peer = ?stream.peer_addr().ok(), "a connection to the controller listener did not speak the controller protocol; closed");
        return Ok(());
    }
    let from = u64::from_le_bytes(hello[8..].try_into().expect("8 bytes"));
    let mut len = [0u8; 4];
    let mut body = Vec::new();
    loop {
        match stream.read_exact(&mut len).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let n = u32::from_le_bytes(len) as usize;
        if n > RAFT_MESSAGE_BYTES_MAX {
            return Err(std::io::Error::other(format!(
                "controller {from} sent a {n}-byte message (at most {RAFT_MESSAGE_BYTES_MAX})"
            )));
        }
        body.resize(n, 0);
        stream.read_exact(&mut body).await?;
        match Message::parse_from_bytes(&body) {
            Ok(m) if m.from == from => deliver(m),
            Ok(m) => {
                return Err(std::io::Error::other(format!(
                    "controller {from} sent a message from {}",
                    m.from
                )));
            }
            Err(e) => {
                return Err(std::io::Error::other(format!(
                    "controller {from} sent an undecodable message: {e}"
                )));
            }
        }
    }
}
