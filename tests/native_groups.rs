//! Consumer groups over the native protocol: the Rust client's
//! `GroupConsumer` against a real broker — split, incremental rebalance, a
//! member that dies, commits that resume where they stopped.

mod common;

use common::{Broker, run};
use corelog::client::{
    Admin, ConsumerConfig, GroupConfig, GroupConsumer, OffsetReset, Producer, ProducerConfig,
    RebalanceEvent, TopicSettings,
};
use std::cell::RefCell;
use std::collections::{BTreeSet, HashSet};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

async fn produce(addr: SocketAddr, topic: &str, prefix: &str, n: usize) -> Vec<String> {
    let p = Producer::connect(addr, ProducerConfig::default())
        .await
        .unwrap();
    let mut values = Vec::new();
    let mut pending = Vec::new();
    for i in 0..n {
        let value = format!("{prefix}-{i}");
        let key = format!("k{i}");
        pending.push(
            p.send(topic, Some(key.as_bytes()), value.as_bytes())
                .await
                .unwrap(),
        );
        values.push(value);
    }
    p.flush().await.unwrap();
    for d in pending {
        d.await.unwrap();
    }
    values
}

/// A member and what it saw.
struct Member {
    consumer: GroupConsumer,
    events: Rc<RefCell<Vec<RebalanceEvent>>>,
}

async fn join(addr: SocketAddr, group: &str) -> Member {
    let config = ConsumerConfig {
        max_wait: Duration::from_millis(20),
        reset: OffsetReset::Earliest,
        ..ConsumerConfig::default()
    };
    let mut group = GroupConfig::new(group, &["orders"]);
    group.auto_commit_interval = Some(Duration::from_millis(100));
    let mut consumer = GroupConsumer::subscribe(addr, config, group).await.unwrap();
    let events: Rc<RefCell<Vec<RebalanceEvent>>> = Rc::default();
    let log = events.clone();
    consumer.on_rebalance(move |e| log.borrow_mut().push(e.clone()));
    Member { consumer, events }
}

fn split(members: &[&Member], n: u32) -> bool {
    let mut all = Vec::new();
    for m in members {
        let a = m.consumer.assignment();
        if a.is_empty() {
            return false;
        }
        all.extend(a.into_iter().map(|(_, p)| p));
    }
    let set: BTreeSet<u32> = all.iter().copied().collect();
    set.len() == all.len() && set == (0..n).collect()
}

/// Polls every member until `done` holds (or panics at the deadline).
async fn poll_until(
    members: &mut [&mut Member],
    seen: &mut HashSet<String>,
    what: &str,
    mut done: impl FnMut(&[&mut Member], &HashSet<String>) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for m in members.iter_mut() {
            for r in m.consumer.poll().await.unwrap() {
                seen.insert(String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into());
            }
        }
        if done(members, seen) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out: {what}");
    }
}

#[test]
fn native_members_split_rebalance_incrementally_and_resume_from_commits() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = Broker::start(
        &tmp.path().join("data"),
        2,
        &[
            "--group-consumer-heartbeat-interval-ms",
            "100",
            "--group-consumer-session-timeout-ms",
            "2000",
        ],
    );
    let addr = broker.addr;
    run(async move {
        let admin = Admin::connect(addr).await.unwrap();
        admin
            .create_topic("orders", 8, &TopicSettings::default())
            .await
            .unwrap();
        let mut all: Vec<String> = produce(addr, "orders", "a", 400).await;
        let mut seen = HashSet::new();

        let mut a = join(addr, "native").await;
        let mut b = join(addr, "native").await;
        poll_until(
            &mut [&mut a, &mut b],
            &mut seen,
            "two members split 8",
            |ms, seen| split(&[&*ms[0], &*ms[1]], 8) && all.iter().all(|v| seen.contains(v)),
        )
        .await;

        // A third joins: a and b revoke only what moves.
        let before = [a.consumer.assignment(), b.consumer.assignment()];
        a.events.borrow_mut().clear();
        b.events.borrow_mut().clear();
        let mut c = join(addr, "native").await;
        poll_until(
            &mut [&mut a, &mut b, &mut c],
            &mut seen,
            "three members split 8",
            |ms, _| split(&[&*ms[0], &*ms[1], &*ms[2]], 8),
        )
        .await;
        for (m, before) in [&a, &b].into_iter().zip(&before) {
            let before: BTreeSet<_> = before.iter().cloned().collect();
            let after: BTreeSet<_> = m.consumer.assignment().into_iter().collect();
            assert!(after.is_subset(&before), "kept {after:?} of {before:?}");
            let revoked: BTreeSet<_> = m
                .events
                .borrow()
                .iter()
                .flat_map(|e| match e {
                    RebalanceEvent::Revoked(ps) => ps.clone(),
                    RebalanceEvent::Lost(ps) => panic!("lost {ps:?}"),
                    RebalanceEvent::Assigned(ps) => panic!("assigned {ps:?} during a join"),
                })
                .collect();
            assert_eq!(revoked, before.difference(&after).cloned().collect());
        }
        all.extend(produce(addr, "orders", "b", 400).await);
        poll_until(
            &mut [&mut a, &mut b, &mut c],
            &mut seen,
            "records after the join",
            |_, seen| all.iter().all(|v| seen.contains(v)),
        )
        .await;

        // b dies without leaving: after the session timeout its partitions
        // move, starting at what it committed (nothing skipped).
        drop(b);
        all.extend(produce(addr, "orders", "c", 400).await);
        poll_until(
            &mut [&mut a, &mut c],
            &mut seen,
            "two members after a death",
            |ms, seen| split(&[&*ms[0], &*ms[1]], 8) && all.iter().all(|v| seen.contains(v)),
        )
        .await;

        // A clean close commits and leaves: c takes everything at once and
        // re-reads nothing a committed.
        a.consumer.commit().await.unwrap();
        let committed = a
            .consumer
            .committed(&a.consumer.assignment())
            .await
            .unwrap();
        assert!(
            committed.iter().all(|(_, _, o)| o.is_some()),
            "{committed:?}"
        );
        a.consumer.close().await.unwrap();
        all.extend(produce(addr, "orders", "d", 200).await);
        poll_until(
            &mut [&mut c],
            &mut seen,
            "the last member takes all",
            |ms, seen| {
                ms[0].consumer.assignment().len() == 8 && all.iter().all(|v| seen.contains(v))
            },
        )
        .await;
    });
}
