//! Listeners and connections of one shard.
//!
//! Each shard accepts on the shared port (SO_REUSEPORT: the kernel spreads
//! connections over shards) and on its own port (for shard-aware clients).
//! A connection is read by one task and written by another:
//!
//! * the reader checks each frame's length before allocating, verifies it,
//!   decodes it into an owned request and starts its handler as a detached
//!   task (so a closed connection never cancels an append halfway);
//! * handlers run concurrently; their join handles go into a bounded queue
//!   (at most `max_inflight_per_connection`), so a client that pipelines
//!   faster than the broker answers is slowed by TCP backpressure, not
//!   buffered without limit;
//! * the writer takes handles in request order and writes each response,
//!   so responses leave in request order whatever order handlers finish.
//!
//! A frame too large, truncated, or unreadable ends the connection (after an
//! error response where one can be sent); a frame that fails verification or
//! names an unknown request kind gets an error response and the connection
//! goes on. Nothing a client sends can panic the shard.

mod handlers;
mod request;

pub use handlers::ResponseFrame;

use crate::constants::SHUTDOWN_DRAIN_MS_MAX;
use crate::protocol::{FrameError, FrameReader, wire};
use crate::shard::{ApiError, Counters, Shard};
use futures::future::Either;
use futures::io::AsyncWriteExt;
use glommio::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::time::Duration;

/// Accepts and serves connections until shutdown, then waits (bounded) for
/// open connections to finish their in-flight requests.
pub async fn serve(shard: Rc<Shard>, shared: TcpListener, own: TcpListener) {
    let gate = Rc::new(glommio::sync::Gate::new());
    let per_shard_max = shard
        .config
        .max_connections
        .div_ceil(shard.count as usize)
        .max(1);
    let accept = |listener: TcpListener, which: &'static str| {
        let (shard, gate) = (shard.clone(), gate.clone());
        glommio::spawn_local(async move {
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
                let stream = match accepted {
                    Ok(stream) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: log, back off.
                        tracing::warn!(shard = %shard.id, port = which, error = %e, "accept failed");
                        glommio::timer::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                if shard.counters.connections.get() as usize >= per_shard_max {
                    tracing::warn!(shard = %shard.id, limit = per_shard_max, peer = ?stream.peer_addr().ok(), "connection refused: shard at its connection limit");
                    drop(stream);
                    continue;
                }
                let shard = shard.clone();
                // Detach: dropping a glommio Task cancels it.
                match gate.spawn(async move { connection(shard, stream).await }) {
                    Ok(task) => {
                        task.detach();
                    }
                    Err(_) => return,
                }
            }
        })
    };
    let shared_task = accept(shared, "shared");
    let own_task = accept(own, "own");
    shared_task.await;
    own_task.await;
    let drained = glommio::timer::timeout(Duration::from_millis(SHUTDOWN_DRAIN_MS_MAX), async {
        gate.close()
            .await
            .map_err(|_| glommio::GlommioError::<()>::IoError(std::io::Error::other("gate")))
    })
    .await;
    if drained.is_err() {
        tracing::warn!(shard = %shard.id, "connections still open after the drain timeout");
    }
}

async fn connection(shard: Rc<Shard>, stream: TcpStream) {
    let peer = stream.peer_addr().ok();
    let _ = stream.set_nodelay(true);
    let counters = &shard.counters;
    counters.connections.set(counters.connections.get() + 1);
    tracing::debug!(shard = %shard.id, ?peer, "connection opened");
    let (reader, mut writer) = match crate::protocol::split_stream(stream) {
        Ok(halves) => halves,
        Err(e) => {
            tracing::warn!(shard = %shard.id, ?peer, error = %e, "cannot split the connection; closing it");
            counters.connections.set(counters.connections.get() - 1);
            return;
        }
    };
    let (queue, responses) = glommio::channels::local_channel::new_bounded::<
        glommio::task::JoinHandle<Option<ResponseFrame>>,
    >(shard.config.max_inflight_per_connection);
    let writer_task = {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            while let Some(handle) = responses.recv().await {
                let Some(Some(frame)) = handle.await else {
                    continue;
                };
                let bytes = frame.as_bytes();
                if let Err(e) = writer.write_all(bytes).await {
                    tracing::debug!(shard = %shard.id, error = %e, "writing a response failed; closing");
                    break;
                }
                Counters::add(&shard.counters.bytes_out, bytes.len() as u64);
            }
            let _ = writer.close().await;
        })
    };
    let mut frames = FrameReader::new(reader, shard.config.max_frame_bytes);
    let defaults = shard.config.topic_defaults.clone();
    loop {
        let next = {
            let frame = frames.next_frame();
            let idle = glommio::timer::sleep(shard.config.idle_timeout);
            let stop = shard.shutdown.wait();
            futures::pin_mut!(frame, idle, stop);
            match futures::future::select(frame, futures::future::select(idle, stop)).await {
                Either::Left((frame, _)) => Some(frame),
                Either::Right((Either::Left(_), _)) => {
                    tracing::info!(shard = %shard.id, ?peer, idle_ms = shard.config.idle_timeout.as_millis() as u64, "closing idle connection");
                    None
                }
                Either::Right((Either::Right(_), _)) => None,
            }
        };
        let Some(frame) = next else { break };
        let handle = match frame {
            Ok(Some(frame)) => {
                Counters::add(&counters.requests, 1);
                Counters::add(&counters.bytes_in, frame.len() as u64);
                match request::decode(frame, &defaults) {
                    Ok((corr, request)) => {
                        let shard = shard.clone();
                        glommio::spawn_local(async move {
                            handlers::handle(&shard, corr, request).await
                        })
                        .detach()
                    }
                    Err((corr, error)) => {
                        Counters::add(&counters.errors, 1);
                        tracing::debug!(shard = %shard.id, ?peer, error = %handlers::describe_error(&error), "bad request");
                        ready_response(handlers::error_response(corr, &error))
                    }
                }
            }
            Ok(None) => break,
            Err(FrameError::TooLarge { declared, max }) => {
                Counters::add(&counters.errors, 1);
                tracing::warn!(shard = %shard.id, ?peer, declared, max, "frame too large; closing the connection");
                let error = ApiError::new(
                    wire::ErrorCode::FRAME_TOO_LARGE,
                    format!("frame of {declared} bytes exceeds the limit of {max}"),
                );
                let _ = queue
                    .send(ready_response(handlers::error_response(0, &error)))
                    .await;
                break;
            }
            Err(e) => {
                tracing::debug!(shard = %shard.id, ?peer, error = %e, "connection ended");
                break;
            }
        };
        if queue.send(handle).await.is_err() {
            break;
        }
    }
    drop(queue);
    writer_task.await;
    counters.connections.set(counters.connections.get() - 1);
    tracing::debug!(shard = %shard.id, ?peer, "connection closed");
}

/// A finished response in the shape of a handler's join handle.
fn ready_response(frame: ResponseFrame) -> glommio::task::JoinHandle<Option<ResponseFrame>> {
    glommio::spawn_local(async move { Some(frame) }).detach()
}
