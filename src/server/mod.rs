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

mod connection;

use crate::config::BrokerConfig;
use crate::constants::SHUTDOWN_DRAIN_MS_MAX;
use crate::protocol::Protocol;
use crate::protocol::kafka::Kafka;
use crate::protocol::native::Native;
pub use crate::shard::BrokerHandle;
use crate::shard::{Listeners, Shard};
use futures::future::Either;
use glommio::net::TcpListener;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// Starts a broker (every shard, every listener) and returns once all
/// shards accept connections.
pub fn start(config: BrokerConfig) -> Result<BrokerHandle, String> {
    crate::shard::start(
        config,
        Arc::new(|shard, listeners| Box::pin(serve(shard, listeners))),
    )
}

/// Accepts and serves connections until shutdown, then waits (bounded) for
/// open connections to finish their in-flight requests.
pub async fn serve(shard: Rc<Shard>, listeners: Listeners) {
    let gate = Rc::new(glommio::sync::Gate::new());
    let mut tasks = vec![
        accept::<Native>(&shard, &gate, listeners.shared, "shared"),
        accept::<Native>(&shard, &gate, listeners.own, "own"),
    ];
    if let Some(kafka) = listeners.kafka {
        tasks.push(accept::<Kafka>(&shard, &gate, kafka, "kafka"));
    }
    if let Some(kafka_own) = listeners.kafka_own {
        tasks.push(accept::<Kafka>(&shard, &gate, kafka_own, "kafka-own"));
    }
    for task in tasks {
        task.await;
    }
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

/// The accept loop of one listener: each connection runs in the gate, so
/// shutdown can wait for it.
fn accept<P: Protocol>(
    shard: &Rc<Shard>,
    gate: &Rc<glommio::sync::Gate>,
    listener: TcpListener,
    which: &'static str,
) -> glommio::task::JoinHandle<()> {
    // The file-descriptor budget's share: `max_connections` split over the
    // shards, lowered at start if it would take storage's descriptors.
    let per_shard_max = shard.budget.connections_per_shard;
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
            let connections = &shard.counters.connections;
            if connections.get() as usize >= per_shard_max {
                tracing::warn!(shard = %shard.id, limit = per_shard_max, peer = ?stream.peer_addr().ok(), "connection refused: shard at its connection limit");
                drop(stream);
                continue;
            }
            // Counted here, before the connection's task runs, so a burst of
            // accepts cannot overshoot the limit; the task uncounts it.
            connections.set(connections.get() + 1);
            let shard = shard.clone();
            // Detach: dropping a glommio Task cancels it.
            match gate.spawn(async move { connection::serve::<P>(shard, stream).await }) {
                Ok(task) => {
                    task.detach();
                }
                Err(_) => {
                    connections.set(connections.get() - 1);
                    return;
                }
            }
        }
    })
    .detach()
}
