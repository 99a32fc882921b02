"""Rebalance time, classic protocol against KIP-848, on a running broker.

A third confluent-kafka member joins a 2-member group over a 64-partition
topic, RUNS times per protocol (it leaves again in between). Measured from
its subscribe() until every member has its new assignment and has polled
once after it: median and max. Also counted: partitions the two existing
members gave up during the join (the classic protocol's eager assignors
revoke everything, a full stop of the group; KIP-848 revokes only what
moves).

Classic: heartbeat.interval.ms=HEARTBEAT_MS (client side), session 6 s.
KIP-848: the broker's --group-consumer-heartbeat-interval-ms decides; run
the broker with the same HEARTBEAT_MS.

usage: group-rebalance.py BOOTSTRAP NATIVE_BROKER CORELOG_BIN [RUNS] [HEARTBEAT_MS]
"""
import json
import statistics
import subprocess
import sys
import time

from confluent_kafka import Consumer

bootstrap, native, corelog = sys.argv[1], sys.argv[2], sys.argv[3]
runs = int(sys.argv[4]) if len(sys.argv) > 4 else 20
heartbeat_ms = int(sys.argv[5]) if len(sys.argv) > 5 else 50
topic = "rebalance64"
subprocess.run([corelog, "topic", "create", topic, "--partitions", "64", "--broker", native],
               capture_output=True)


class Member:
    def __init__(self, tag, protocol, group):
        self.tag, self.owned, self.revoked = tag, set(), 0
        self.changed, self.polled_after = None, False
        conf = {"bootstrap.servers": bootstrap, "group.id": group,
                "auto.offset.reset": "latest", "enable.auto.commit": False}
        if protocol == "consumer":
            conf["group.protocol"] = "consumer"
        else:
            conf.update({"session.timeout.ms": 6000, "heartbeat.interval.ms": heartbeat_ms})
        self.c = Consumer(conf)
        self.incremental = protocol == "consumer"
        self.c.subscribe([topic], on_assign=self.on_assign, on_revoke=self.on_revoke,
                         on_lost=self.on_revoke)

    def on_assign(self, c, parts):
        if not self.incremental:
            self.owned = set()
        self.owned |= {p.partition for p in parts}
        self.changed, self.polled_after = time.perf_counter(), False

    def on_revoke(self, c, parts):
        gone = {p.partition for p in parts}
        self.revoked += len(gone & self.owned)
        self.owned -= gone
        self.changed, self.polled_after = time.perf_counter(), False

    def poll(self):
        self.c.poll(0.002)
        if self.changed is not None:
            self.polled_after = True


def settled(members):
    owned = [m.owned for m in members]
    union = set().union(*owned)
    return (all(m.polled_after and m.owned for m in members)
            and len(union) == 64 and sum(len(o) for o in owned) == 64)


def pump(members, deadline_s=60):
    end = time.perf_counter() + deadline_s
    while time.perf_counter() < end:
        for m in members:
            m.poll()
        if settled(members):
            return time.perf_counter()
    raise SystemExit("timed out: " + ", ".join(f"{m.tag}={sorted(m.owned)}" for m in members))


def measure(protocol):
    group = f"rebalance-{protocol}-{int(time.time())}"
    a, b = Member("a", protocol, group), Member("b", protocol, group)
    pump([a, b])
    times, stopped = [], []
    for _ in range(runs):
        a.revoked = b.revoked = 0
        t0 = time.perf_counter()
        c = Member("c", protocol, group)
        done = pump([a, b, c])
        times.append((done - t0) * 1000)
        stopped.append(a.revoked + b.revoked)
        c.c.close()
        pump([a, b])
    a.c.close()
    b.c.close()
    return {"runs": runs, "median_ms": round(statistics.median(times), 1),
            "max_ms": round(max(times), 1), "min_ms": round(min(times), 1),
            "partitions_revoked_from_existing_members_median": statistics.median(stopped)}


print(json.dumps({"heartbeat_ms": heartbeat_ms,
                  "classic": measure("classic"), "consumer": measure("consumer")}))
