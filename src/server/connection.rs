//! One connection, for any [`Protocol`]: frames in, responses out in
//! request order (see the module docs of `server`).

use crate::protocol::{Dispatch, FrameError, FrameReader, Outgoing, Protocol};
use crate::shard::{Counters, Shard};
use futures::future::Either;
use futures::io::AsyncWriteExt;
use glommio::net::TcpStream;
use glommio::task::JoinHandle;
use std::rc::Rc;

/// Serves a connection until the client closes it, it idles out, a frame
/// ends it, or the broker shuts down.
pub async fn serve<P: Protocol>(shard: Rc<Shard>, stream: TcpStream) {
    let peer = stream.peer_addr().ok();
    let _ = stream.set_nodelay(true);
    // Counted by the accept loop; uncounted here when the connection ends.
    let counters = &shard.counters;
    tracing::debug!(shard = %shard.id, ?peer, protocol = P::NAME, "connection opened");
    let (reader, writer) = match crate::protocol::split_stream(stream) {
        Ok(halves) => halves,
        Err(e) => {
            tracing::warn!(shard = %shard.id, ?peer, error = %e, "cannot split the connection; closing it");
            counters.connections.set(counters.connections.get() - 1);
            return;
        }
    };
    let (queue, responses) = glommio::channels::local_channel::new_bounded::<
        JoinHandle<Option<Outgoing>>,
    >(shard.config.max_inflight_per_connection);
    let writer_task = glommio::spawn_local(write_responses(shard.clone(), writer, responses));
    let mut frames = FrameReader::with_prefix(reader, shard.config.max_frame_bytes, P::PREFIX);
    let session = Rc::new(P::session(peer));
    loop {
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
        let next = match started {
            None => None,
            Some(Err(e)) => Some(Err(e)),
            Some(Ok(())) => {
                let frame = frames.next_frame();
                let slow = glommio::timer::sleep(shard.config.frame_timeout);
                let stop = shard.shutdown.wait();
                futures::pin_mut!(frame, slow, stop);
                match futures::future::select(frame, futures::future::select(slow, stop)).await {
                    Either::Left((frame, _)) => Some(frame),
                    Either::Right((Either::Left(_), _)) => {
                        Counters::add(&counters.errors, 1);
                        tracing::info!(shard = %shard.id, ?peer, protocol = P::NAME, frame_timeout_ms = shard.config.frame_timeout.as_millis() as u64, "closing a connection whose frame did not arrive in time");
                        None
                    }
                    Either::Right((Either::Right(_), _)) => None,
                }
            }
        };
        let Some(frame) = next else { break };
        let (handle, close) = match frame {
            Ok(Some(frame)) => {
                Counters::add(&counters.requests, 1);
                Counters::add(&counters.bytes_in, frame.len() as u64);
                match P::dispatch(&shard, &session, frame) {
                    Dispatch::Handle(work) => (glommio::spawn_local(work).detach(), false),
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
    counters.connections.set(counters.connections.get() - 1);
    tracing::debug!(shard = %shard.id, ?peer, protocol = P::NAME, "connection closed");
}

/// Writes each handler's response as it completes, in request order.
async fn write_responses(
    shard: Rc<Shard>,
    mut writer: TcpStream,
    responses: glommio::channels::local_channel::LocalReceiver<JoinHandle<Option<Outgoing>>>,
) {
    while let Some(handle) = responses.recv().await {
        let Some(Some(out)) = handle.await else {
            continue;
        };
        let written = match &out {
            Outgoing::One(bytes) => writer.write_all(bytes).await,
            Outgoing::Parts(parts) => {
                let mut result = Ok(());
                for part in parts {
                    result = writer.write_all(part).await;
                    if result.is_err() {
                        break;
                    }
                }
                result
            }
        };
        if let Err(e) = written {
            tracing::debug!(shard = %shard.id, error = %e, "writing a response failed; closing");
            break;
        }
        Counters::add(&shard.counters.bytes_out, out.len() as u64);
    }
    let _ = writer.close().await;
}

/// A finished response in the shape of a handler's join handle.
fn ready(out: Option<Outgoing>) -> JoinHandle<Option<Outgoing>> {
    glommio::spawn_local(async move { out }).detach()
}
