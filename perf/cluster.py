#!/usr/bin/env python3
"""Figures of a 3-broker cluster on one machine, same run as 1 broker.

* metadata change latency: `CreateTopics` through a broker (the corelog CLI,
  native protocol) until it answers (committed and applied there), and
  until every broker has applied it (polled on each broker's
  /v1/cluster metadata_version every millisecond); 1 broker vs 3;
* controller failover: SIGKILL the Raft leader, then time until a metadata
  change through a survivor succeeds (the CLI retries while the broker
  answers NOT_CONTROLLER), over KILLS kills; the killed broker is started
  again and caught up before the next kill.

    perf/cluster.py                 # 50 changes, 20 kills
    CHANGES=100 KILLS=30 perf/cluster.py

Writes perf/reports/<date>-cluster.md. Every broker runs with --cores 1 on
loopback; the machine is shared, so compare within the run.
"""
import json, os, shutil, signal, statistics, subprocess, sys, tempfile, time, urllib.request, datetime, platform

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("CORELOG", os.path.join(ROOT, "target/release/corelog"))
CHANGES = int(os.environ.get("CHANGES", "50"))
KILLS = int(os.environ.get("KILLS", "20"))
RECORDS = int(os.environ.get("RECORDS", "300000"))


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Broker:
    def __init__(self, data, node=None, controllers=None, cport=None):
        self.data, self.node, self.controllers, self.cport = data, node, controllers, cport
        self.start()

    def start(self):
        args = [BIN, "serve", "--cores", "1", "--data-dir", self.data, "--listen", "127.0.0.1:0",
                "--kafka-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"]
        if self.node:
            args += ["--node-id", str(self.node), "--controllers", self.controllers,
                     "--controller-listen", f"127.0.0.1:{self.cport}"]
        self.log = open(self.data + ".log", "ab")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.http = None
        for line in self.proc.stdout:
            if line.startswith("corelog http listening on "):
                self.http = line.split()[-1]
            if line.startswith("corelog listening on "):
                self.addr = line.split()[3]
                self.kafka = next(f[6:] for f in line.split() if f.startswith("kafka="))
                break

    def status(self):
        with urllib.request.urlopen(f"http://{self.http}/v1/cluster", timeout=5) as r:
            return json.load(r)["controller"]

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait()


def cli(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True)


def create(broker, name, deadline=30):
    end = time.monotonic() + deadline
    while True:
        r = cli("topic", "create", name, "--partitions", "1", "--broker", broker.addr)
        if r.returncode == 0:
            return
        if time.monotonic() > end:
            raise SystemExit(f"creating {name}: {r.stderr}")


def produce(bootstrap, via):
    """librdkafka produce throughput (acks=all) into a fresh 6-partition topic."""
    name = f"load-{time.monotonic_ns()}"
    r = cli("topic", "create", name, "--partitions", "6", "--broker", via.addr)
    if r.returncode != 0:
        raise SystemExit(r.stderr)
    out = subprocess.run([sys.executable, os.path.join(ROOT, "perf/kafka_producer.py"), bootstrap, name,
                          str(RECORDS), "1000", "false"], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def leader_of(brokers):
    for b in brokers:
        try:
            s = b.status()
            if s["leader_id"]:
                return s["leader_id"]
        except Exception:
            pass
    return 0


def wait_version(brokers, version, deadline=30):
    end = time.monotonic() + deadline
    pending = list(brokers)
    while pending:
        pending = [b for b in pending if b.status()["metadata_version"] < version]
        if time.monotonic() > end:
            raise SystemExit("metadata did not reach every broker")
        if pending:
            time.sleep(0.001)


def main():
    tmp = tempfile.mkdtemp(prefix="corelog-cluster-")
    out = {}
    try:
        # One broker.
        single = Broker(os.path.join(tmp, "single"))
        t = []
        for i in range(CHANGES):
            s = time.monotonic()
            create(single, f"s{i}")
            t.append((time.monotonic() - s) * 1000)
        out["single_create_ms"] = t
        out["single_produce"] = [produce(single.kafka, single) for _ in range(3)]
        single.stop()

        # Three brokers.
        ports = [free_port() for _ in range(3)]
        controllers = ",".join(f"{n + 1}@127.0.0.1:{p}" for n, p in enumerate(ports))
        brokers = [Broker(os.path.join(tmp, f"node{n + 1}"), n + 1, controllers, ports[n]) for n in range(3)]
        end = time.monotonic() + 30
        while not all(len(b.status()["brokers"]) == 3 for b in brokers):
            if time.monotonic() > end:
                raise SystemExit("the cluster did not form")
            time.sleep(0.05)
        answered, everywhere = [], []
        for i in range(CHANGES):
            via = brokers[i % 3]
            s = time.monotonic()
            create(via, f"c{i}")
            answered.append((time.monotonic() - s) * 1000)
            v = via.status()["metadata_version"]
            wait_version(brokers, v)
            everywhere.append((time.monotonic() - s) * 1000)
        out["cluster_create_ms"] = answered
        out["cluster_visible_ms"] = everywhere
        out["cluster_produce"] = [produce(brokers[0].kafka, brokers[0]) for _ in range(3)]

        failover = []
        for k in range(KILLS):
            lead = leader_of(brokers)
            victim = brokers[lead - 1]
            survivor = brokers[lead % 3]
            s = time.monotonic()
            victim.kill()
            create(survivor, f"k{k}")
            failover.append((time.monotonic() - s) * 1000)
            victim.start()
            v = survivor.status()["metadata_version"]
            wait_version(brokers, v, deadline=60)
        out["failover_ms"] = failover
        for b in brokers:
            b.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def row(name, xs):
        return f"| {name} | {len(xs)} | {statistics.median(xs):.1f} | {pct(xs, 99):.1f} | {max(xs):.1f} |"

    def mbs(runs_):
        return f"{statistics.median(r['mb_per_s'] for r in runs_):.0f}"

    def runs(runs_):
        return ", ".join(f"{r['mb_per_s']:.0f}" for r in runs_)

    def p99(runs_):
        return f"{statistics.median(r['latency_ms']['p99'] for r in runs_):.1f}"

    day = datetime.date.today().isoformat()
    cpus = os.cpu_count()
    report = f"""# Cluster: metadata through Raft, {day}

Machine: {platform.node()}, {cpus} vCPU, Linux {platform.release()}; shared and noisy.
Command: `perf/cluster.py` (CHANGES={CHANGES}, KILLS={KILLS}); every broker
`--cores 1` on loopback, fsync of the Raft log on every append (the
metadata file as before). Times in milliseconds, measured by the script
around the `corelog` CLI (each call is a process start, a connection and
the request; the 1-broker row is the baseline for that overhead).

| what | n | p50 | p99 | max |
|---|---:|---:|---:|---:|
{row("create topic, 1 broker (answered)", out["single_create_ms"])}
{row("create topic, 3 brokers (answered by the broker asked)", out["cluster_create_ms"])}
{row("create topic, 3 brokers (applied on all three)", out["cluster_visible_ms"])}
{row("controller failover: leader SIGKILLed → next change succeeds", out["failover_ms"])}

Ratio 3 brokers / 1 broker (p50, answered): {statistics.median(out["cluster_create_ms"]) / statistics.median(out["single_create_ms"]):.2f}.

librdkafka (confluent-kafka) producing {RECORDS} records of 1000 bytes,
acks=all, linger 5 ms, into a new topic of 6 partitions, bootstrapped from
one broker, 3 runs each (median MB/s; one producer process, so the
client's own CPU counts; the 3 brokers' 6 partitions are 2 per broker):

| setup | MB/s (median) | runs | produce→delivery p99 ms (median) |
|---|---:|---|---:|
| 1 broker, `--cores 1` | {mbs(out["single_produce"])} | {runs(out["single_produce"])} | {p99(out["single_produce"])} |
| 3 brokers, `--cores 1` each | {mbs(out["cluster_produce"])} | {runs(out["cluster_produce"])} | {p99(out["cluster_produce"])} |

Ratio 3 brokers / 1 broker (MB/s): {float(mbs(out["cluster_produce"])) / float(mbs(out["single_produce"])):.2f}.
This box has 2 vCPUs: three brokers and the client share them, so this
shows the cost of spreading partitions and routing across brokers, not
scale-out.

Failover is bounded below by the election timeout (10–20 ticks of 100 ms,
randomized) plus a pre-vote round; the CLI retries NOT_CONTROLLER meanwhile.
"""
    path = os.path.join(ROOT, "perf/reports", f"{day}-cluster.md")
    with open(path, "w") as f:
        f.write(report)
    print(report)
    print("written to", path)


if __name__ == "__main__":
    main()
