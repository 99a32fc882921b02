"""Consumer-group figures against a running broker's Kafka listener.

  rebalance: a third confluent-kafka member joins a 2-member group over a
    64-partition topic, 20 times (it leaves again in between): time from
    its subscribe() until every member has its new assignment and has
    polled once after it (median and max); heartbeat.interval.ms=500.
  commits: 1,000 groups committing offsets (OffsetCommit v2, simple
    commits) over 8 connections with 16 requests in flight each for 10 s:
    commits/s and per-request latency percentiles (fsync always: each
    answer waits for the commit to be on stable media).

usage: groups.py BOOTSTRAP NATIVE_BROKER CORELOG_BIN
"""
import json
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time

from confluent_kafka import Consumer

bootstrap, native, corelog = sys.argv[1], sys.argv[2], sys.argv[3]
subprocess.run([corelog, "topic", "create", "rebalance64", "--partitions", "64", "--broker", native],
               check=True, capture_output=True)
subprocess.run([corelog, "topic", "create", "commits", "--partitions", "1", "--broker", native],
               check=True, capture_output=True)


def consumer(tag, state):
    def on_assign(c, parts):
        state[tag] = ("assigned", time.perf_counter(), len(parts))
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "rebalance-bench",
                  "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
                  "auto.offset.reset": "latest"})
    c.subscribe(["rebalance64"], on_assign=on_assign)
    return c


def pump(consumers, until, state, deadline_s=30):
    """Polls every consumer until until(state) holds; returns when it did."""
    end = time.perf_counter() + deadline_s
    while time.perf_counter() < end:
        for tag, c in consumers.items():
            c.poll(0.005)
            s = state.get(tag)
            if s and s[0] == "assigned":
                state[tag] = ("polled", s[1], s[2], time.perf_counter())
        if until(state):
            return time.perf_counter()
    raise SystemExit(f"timed out; state {state}")


state = {}
members = {"a": consumer("a", state), "b": consumer("b", state)}
pump(members, lambda s: all(s.get(t, ("",))[0] == "polled" and s[t][2] == 32 for t in "ab"), state)
times = []
for i in range(20):
    state.clear()
    t0 = time.perf_counter()
    members["c"] = consumer("c", state)
    done = pump(members, lambda s: all(s.get(t, ("",))[0] == "polled" for t in "abc")
                and sum(s[t][2] for t in "abc") == 64, state)
    times.append((done - t0) * 1000)
    state.clear()
    members.pop("c").close()
    pump(members, lambda s: all(s.get(t, ("",))[0] == "polled" for t in "ab")
         and sum(s[t][2] for t in "ab") == 64, state)
for c in members.values():
    c.close()
rebalance = {"runs": len(times), "median_ms": round(statistics.median(times), 1),
             "max_ms": round(max(times), 1), "min_ms": round(min(times), 1)}


def commit_request(corr, group, offset):
    def string(s):
        b = s.encode()
        return struct.pack(">h", len(b)) + b
    body = (string(group) + struct.pack(">i", -1) + string("") + struct.pack(">q", -1)
            + struct.pack(">i", 1) + string("commits") + struct.pack(">i", 1)
            + struct.pack(">iq", 0, offset) + struct.pack(">h", -1))
    header = struct.pack(">hhi", 8, 2, corr) + string("groups-bench")
    msg = header + body
    return struct.pack(">i", len(msg)) + msg


host, port = bootstrap.rsplit(":", 1)
latencies, errors, stop = [], [0], time.perf_counter() + 10


def worker(w):
    s = socket.create_connection((host, int(port)))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = s.makefile("rb")
    sent = {}
    corr, n = 0, 0
    local = []

    def send():
        nonlocal corr, n
        corr += 1
        n += 1
        sent[corr] = time.perf_counter()
        s.sendall(commit_request(corr, f"g-{(w * 1000 + n) % 1000}", n))

    for _ in range(16):
        send()
    while sent:
        size = struct.unpack(">i", f.read(4))[0]
        data = f.read(size)
        c = struct.unpack(">i", data[:4])[0]
        err = struct.unpack(">h", data[-2:])[0]
        if err:
            errors[0] += 1
        local.append(time.perf_counter() - sent.pop(c))
        if time.perf_counter() < stop:
            send()
    latencies.extend(local)
    s.close()


t0 = time.perf_counter()
threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
elapsed = time.perf_counter() - t0
latencies.sort()
pct = lambda q: round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 2)
commits = {"groups": 1000, "connections": 8, "in_flight_per_connection": 16,
           "commits": len(latencies), "errors": errors[0], "seconds": round(elapsed, 2),
           "commits_per_s": round(len(latencies) / elapsed),
           "latency_ms": {"p50": pct(0.5), "p99": pct(0.99), "max": round(latencies[-1] * 1000, 2)}}
print(json.dumps({"rebalance": rebalance, "commits": commits}))
