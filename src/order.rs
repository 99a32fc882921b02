//! Turns: a strict first-come order for work that must start in the order
//! it was queued, whatever order its tasks are polled or woken in.
//!
//! Two users:
//! * a connection's produce requests (`shard::Shard::produce`): requests
//!   run as concurrent tasks (pipelining) and one may wait before its
//!   appends start, for room in a cross-core channel to a partition's
//!   owner; without an order, request N+1 could start its appends while N
//!   waits, and a partition written by both would hold N+1's records first
//!   — Kafka promises a connection's produce requests are appended in the
//!   order they were sent. A request takes its turn when its frame is
//!   dispatched and ends it once every append has started, so only the
//!   start is serialised: waits for completion, fsyncs and replication
//!   stay concurrent;
//! * a partition log's appends (`storage::log`): each takes a turn when it
//!   is queued and ends it once it holds the append lock, because glommio's
//!   semaphore lets a new acquirer take units freed for a woken waiter.

use event_listener::Event;
use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::rc::Rc;

/// The turns of one connection's produce requests. Cloning shares it.
#[derive(Clone, Default)]
pub struct ProduceOrder {
    inner: Rc<OrderInner>,
}

#[derive(Default)]
struct OrderInner {
    /// The next turn handed out.
    issued: Cell<u64>,
    /// The turn whose appends may start now.
    current: Cell<u64>,
    /// Turns given up before they came (their request timed out or was
    /// dropped): skipped when reached.
    abandoned: RefCell<BTreeSet<u64>>,
    changed: Event,
}

impl ProduceOrder {
    /// The next request's turn. Take it where requests are still in
    /// arrival order (the connection's dispatch).
    pub fn turn(&self) -> Turn {
        let n = self.inner.issued.get();
        self.inner.issued.set(n + 1);
        Turn {
            order: self.inner.clone(),
            n,
            ended: false,
        }
    }
}

/// One produce request's place in its connection's order. Dropped without
/// [`Turn::end`], it ends itself (or, if its turn has not come, is
/// skipped when it does), so an abandoned request never blocks the next.
pub struct Turn {
    order: Rc<OrderInner>,
    n: u64,
    ended: bool,
}

impl Turn {
    /// Waits until every earlier request of the connection has started its
    /// appends.
    pub async fn come(&self) {
        loop {
            if self.order.current.get() == self.n {
                return;
            }
            let listener = self.order.changed.listen();
            if self.order.current.get() == self.n {
                return;
            }
            listener.await;
        }
    }

    /// This request's appends have all started: the next one's may.
    pub fn end(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        if self.ended {
            return;
        }
        self.ended = true;
        let order = &self.order;
        if order.current.get() != self.n {
            // Not come yet: skipped when it does.
            order.abandoned.borrow_mut().insert(self.n);
            return;
        }
        let mut next = self.n + 1;
        {
            let mut abandoned = order.abandoned.borrow_mut();
            while abandoned.remove(&next) {
                next += 1;
            }
        }
        order.current.set(next);
        order.changed.notify(usize::MAX);
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn turns_come_in_the_order_they_were_taken_and_abandoned_ones_are_skipped() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let order = ProduceOrder::default();
                let (a, b, c, d) = (order.turn(), order.turn(), order.turn(), order.turn());
                assert!(
                    a.come().now_or_never().is_some(),
                    "the first turn comes at once"
                );
                assert!(b.come().now_or_never().is_none());
                // c gives up before its turn; d waits behind b.
                drop(c);
                let log = Rc::new(RefCell::new(Vec::new()));
                let waiter = {
                    let log = log.clone();
                    glommio::spawn_local(async move {
                        d.come().await;
                        log.borrow_mut().push('d');
                        d.end();
                    })
                };
                glommio::executor().yield_task_queue_now().await;
                assert!(log.borrow().is_empty(), "d waits for a and b");
                a.end();
                glommio::executor().yield_task_queue_now().await;
                assert!(log.borrow().is_empty(), "d still waits for b");
                b.come().await;
                log.borrow_mut().push('b');
                b.end();
                waiter.await;
                assert_eq!(*log.borrow(), vec!['b', 'd']);
                // A turn dropped while current passes it on.
                let e = order.turn();
                let f = order.turn();
                e.come().await;
                drop(e);
                assert!(f.come().now_or_never().is_some());
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
