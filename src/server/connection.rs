//! One connection, for any [`Protocol`]: frames in, responses out in
//! request order (see the module docs of `server`).

use super::admission::{RequestMemory, Slot};
use crate::metrics::LatencyKind;
use crate::protocol::{
    ConnInfo, Dispatch, FrameError, FrameReader, FrameSource, Outgoing, Protocol, RequestKind,
    ResponseSink, TlsSink, Zeroing,
};
use crate::shard::{Counters, ListenerId, Shard};
use crate::trace::{self, Stage};
use bytes::BytesMut;
use futures::future::Either;
use glommio::net::TcpStream;
use glommio::sync::StaticPermit;
use glommio::task::JoinHandle;
use std::rc::Rc;
use std::time::Instant;

/// Serves a connection until the client closes it, it idles out, a frame
/// ends it, or the broker shuts down. `slot` is the connection's place under
/// the connection limit (freed when this returns); `memory` the shard's
/// budget of request bytes.
pub async fn serve<P: Protocol>(
    shard: Rc<Shard>,
    stream: TcpStream,
    listener: ListenerId,
    slot: Slot,
    memory: RequestMemory,
) {
    let peer = stream.peer_addr().ok();
    let _ = stream.set_nodelay(true);
    // Counted by the accept loop; uncounted here when the connection ends.
    let counters = &shard.counters;
    counters.connections.set(counters.connections.get() + 1);
    shard.metrics.connection_accepted(P::NAME);
    let info = shard.listener(listener);
    tracing::debug!(shard = %shard.id, ?peer, protocol = P::NAME, listener = info.name, admin_only = slot.admin_only(), "connection opened");
    match info.tls.clone() {
        None => match crate::protocol::split_stream(stream) {
            Ok((reader, writer)) => {
                let conn = ConnInfo {
                    sasl: info.sasl,
                    ..ConnInfo::plain(peer, listener)
                };
                run::<P, _, _>(&shard, reader, writer, conn, &slot, &memory).await;
            }
            Err(e) => {
                tracing::warn!(shard = %shard.id, ?peer, error = %e, "cannot split the connection; closing it");
            }
        },
        Some(tls) => {
            let acceptor = futures_rustls::TlsAcceptor::from(tls.config());
            let io = futures::io::BufReader::with_capacity(TLS_READ_BUFFER_BYTES, stream);
            let deadline = Instant::now() + shard.config.frame_timeout;
            match bounded(&shard, Some(deadline), acceptor.accept(io)).await {
                Ok(Ok(stream)) => {
                    let session = stream.get_ref().1;
                    let cert_principal = session
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .and_then(crate::security::tls::principal_from_cert);
                    tracing::debug!(shard = %shard.id, ?peer, listener = info.name, version = ?session.protocol_version(), principal = ?cert_principal, "TLS handshake done");
                    let conn = ConnInfo {
                        peer,
                        listener,
                        tls: true,
                        cert_principal,
                        sasl: info.sasl,
                    };
                    let (reader, writer) = futures::io::AsyncReadExt::split(stream);
                    run::<P, _, _>(
                        &shard,
                        Zeroing::new(reader),
                        TlsSink(writer),
                        conn,
                        &slot,
                        &memory,
                    )
                    .await;
                }
                Ok(Err(e)) => handshake_failed(&shard, peer, info.name, &e.to_string()),
                Err(Stop::TimedOut) => handshake_failed(
                    &shard,
                    peer,
                    info.name,
                    "no handshake within the frame timeout",
                ),
                Err(Stop::Shutdown) => {}
            }
        }
    }
    counters.connections.set(counters.connections.get() - 1);
    shard.metrics.connection_closed(P::NAME);
    drop(slot);
    tracing::debug!(shard = %shard.id, ?peer, protocol = P::NAME, "connection closed");
}

/// Bytes the TLS side reads from the socket at once: rustls asks for 4 KiB
/// at a time, which would be a system call per 4 KiB of a large produce.
const TLS_READ_BUFFER_BYTES: usize = 32 << 10;

/// A TLS handshake failed (a plaintext client on a TLS port, an untrusted
/// or expired certificate, a client that stalled): logged at info, at most
/// one line a second per shard (a port scanner must not flood the log),
/// with how many were not logged.
fn handshake_failed(
    shard: &Shard,
    peer: Option<std::net::SocketAddr>,
    listener: &'static str,
    why: &str,
) {
    Counters::add(&shard.counters.errors, 1);
    shard.metrics.tls_handshake_failed(listener);
    crate::support::log_limited("tls-handshake-failed", |suppressed| {
        tracing::info!(shard = %shard.id, ?peer, listener, error = why, suppressed, "TLS handshake failed; closing the connection");
    });
}

/// Serves a connection's frames (read from `reader`, answered on `writer`)
/// until the client closes it, it idles out, a frame ends it, or the
/// broker shuts down.
async fn run<P: Protocol, R: FrameSource, W: ResponseSink + 'static>(
    shard: &Rc<Shard>,
    reader: R,
    writer: W,
    conn: ConnInfo,
    slot: &Slot,
    memory: &RequestMemory,
) {
    let peer = conn.peer;
    let counters = &shard.counters;
    let (queue, responses) = glommio::channels::local_channel::new_bounded::<Answer>(
        shard.config.max_inflight_per_connection,
    );
    let writer_task = glommio::spawn_local(write_responses(shard.clone(), writer, responses));
    let mut frames = FrameReader::with_prefix(reader, shard.config.max_frame_bytes, P::PREFIX);
    let session = Rc::new(P::session(&conn, slot.admin_only()));
    loop {
        frames.set_max_bytes(shard.config.max_frame_bytes.min(P::frame_limit(&session)));
        // The wait for a frame's first byte is timed by the idle timeout;
        // the frame itself must then arrive within the frame timeout.
        let started = {
            let first = frames.fill();
            let idle = glommio::timer::sleep(shard.config.idle_timeout);
            let stop = shard.shutdown.wait();
            futures::pin_mut!(first, idle, stop);
            match futures::future::select(first, futures::future::select(idle, stop)).await {
                Either::Left((Ok(0), _)) => None,
                Either::Left((Ok(_), _)) => Some(Ok(())),
                Either::Left((Err(e), _)) => Some(Err(e)),
                Either::Right((Either::Left(_), _)) => {
                    tracing::info!(shard = %shard.id, ?peer, protocol = P::NAME, idle_ms = shard.config.idle_timeout.as_millis() as u64, "closing idle connection");
                    None
                }
                Either::Right((Either::Right(_), _)) => None,
            }
        };
        let first_byte = trace::now();
        // Request latencies (metrics) run from here: the frame's first byte.
        let arrived = Instant::now();
        let next = match started {
            None => None,
            Some(Err(e)) => Some(Err(e)),
            Some(Ok(())) => match receive(shard, &mut frames, memory).await {
                Ok(received) => Some(received),
                Err(Stop::TimedOut) => {
                    Counters::add(&counters.errors, 1);
                    tracing::info!(shard = %shard.id, ?peer, protocol = P::NAME, frame_timeout_ms = shard.config.frame_timeout.as_millis() as u64, "closing a connection whose frame did not arrive in time");
                    None
                }
                Err(Stop::Shutdown) => None,
            },
        };
        let Some(frame) = next else { break };
        let (handle, close) = match frame {
            Ok(Some((frame, permit))) => {
                Counters::add(&counters.requests, 1);
                Counters::add(&counters.bytes_in, frame.len() as u64);
                match P::dispatch(shard, &session, frame) {
                    // The frame's memory stays reserved until its handler
                    // has answered.
                    Dispatch::Handle(work, kind) => {
                        let traced = match kind {
                            RequestKind::Produce => trace::since(Stage::Receive, first_byte),
                            _ => None,
                        };
                        let latency = match kind {
                            RequestKind::Produce => Some(LatencyKind::Produce),
                            RequestKind::Fetch => Some(LatencyKind::Fetch),
                            RequestKind::Other => None,
                        };
                        let shard = shard.clone();
                        (
                            glommio::spawn_local(async move {
                                let began = trace::since(Stage::Queue, traced);
                                let out = work.await;
                                drop(permit);
                                if let Some(kind) = latency {
                                    shard.metrics.latency(kind, arrived.elapsed());
                                }
                                let done = trace::since(Stage::Handler, began);
                                (out, traced.zip(done))
                            })
                            .detach(),
                            false,
                        )
                    }
                    Dispatch::Reply(out) => (ready(Some(out)), false),
                    Dispatch::Close(out) => (ready(out), true),
                }
            }
            Ok(None) => break,
            Err(FrameError::TooLarge { declared, max }) => {
                Counters::add(&counters.errors, 1);
                tracing::warn!(shard = %shard.id, ?peer, protocol = P::NAME, declared, max, "frame too large; closing the connection");
                (ready(P::frame_too_large(declared, max)), true)
            }
            Err(e) => {
                tracing::debug!(shard = %shard.id, ?peer, protocol = P::NAME, error = %e, "connection ended");
                break;
            }
        };
        if queue.send(handle).await.is_err() || close {
            break;
        }
    }
    drop(queue);
    writer_task.await;
}

/// Why receiving a frame stopped early.
enum Stop {
    /// The frame did not arrive within the frame timeout.
    TimedOut,
    Shutdown,
}

/// Receives the frame whose first bytes are buffered: reads its length,
/// reserves its size from the shard's request memory (waiting, not reading,
/// while the budget is spent), then reads the rest. The frame timeout runs
/// from the first byte; time spent waiting for memory does not count
/// against the client.
async fn receive<S: FrameSource>(
    shard: &Shard,
    frames: &mut FrameReader<S>,
    memory: &RequestMemory,
) -> Result<Result<Option<(BytesMut, StaticPermit)>, FrameError>, Stop> {
    let mut deadline = Instant::now() + shard.config.frame_timeout;
    let total = match bounded(shard, Some(deadline), frames.next_header()).await? {
        Ok(Some(total)) => total,
        Ok(None) => return Ok(Ok(None)),
        Err(e) => return Ok(Err(e)),
    };
    let asked = Instant::now();
    let permit = match memory.try_acquire_static_permit(total as u64) {
        Ok(permit) => permit,
        Err(_) => {
            tracing::debug!(shard = %shard.id, bytes = total, available = memory.available(), "request memory spent; waiting before reading a frame");
            bounded(shard, None, memory.acquire_static_permit(total as u64))
                .await?
                .map_err(|_| Stop::Shutdown)?
        }
    };
    deadline += asked.elapsed();
    match bounded(shard, Some(deadline), frames.frame_body(total)).await? {
        Ok(frame) => Ok(Ok(Some((frame, permit)))),
        Err(e) => Ok(Err(e)),
    }
}

/// Runs `work` until it completes, the deadline passes, or the broker shuts
/// down.
async fn bounded<T>(
    shard: &Shard,
    deadline: Option<Instant>,
    work: impl std::future::Future<Output = T>,
) -> Result<T, Stop> {
    let slow = async {
        match deadline {
            Some(at) => glommio::timer::sleep(at.saturating_duration_since(Instant::now())).await,
            None => futures::future::pending().await,
        }
    };
    let stop = shard.shutdown.wait();
    futures::pin_mut!(work, slow, stop);
    match futures::future::select(work, futures::future::select(slow, stop)).await {
        Either::Left((done, _)) => Ok(done),
        Either::Right((Either::Left(_), _)) => Err(Stop::TimedOut),
        Either::Right((Either::Right(_), _)) => Err(Stop::Shutdown),
    }
}

/// A request's answer in the making: the handler's task, which yields the
/// answer and, when traced, (frame read, answer ready).
type Answer = JoinHandle<(Option<Outgoing>, Option<(Instant, Instant)>)>;

/// Writes each handler's response as it completes, in request order.
async fn write_responses<W: ResponseSink>(
    shard: Rc<Shard>,
    mut writer: W,
    responses: glommio::channels::local_channel::LocalReceiver<Answer>,
) {
    while let Some(handle) = responses.recv().await {
        let Some((Some(out), traced)) = handle.await else {
            continue;
        };
        if let Err(e) = writer.send(out.parts()).await {
            tracing::debug!(shard = %shard.id, error = %e, "writing a response failed; closing");
            break;
        }
        Counters::add(&shard.counters.bytes_out, out.len() as u64);
        if let Some((read, ready)) = traced {
            trace::since(Stage::Answer, Some(ready));
            trace::since(Stage::Broker, Some(read));
        }
    }
    writer.finish().await;
}

/// A finished response in the shape of a handler's join handle.
fn ready(out: Option<Outgoing>) -> Answer {
    glommio::spawn_local(async move { (out, None) }).detach()
}
