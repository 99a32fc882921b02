#!/usr/bin/env python3
"""Figures of replication on a 3-broker cluster on one machine, same run:

* produce throughput and latency with librdkafka (confluent-kafka, acks=all,
  1000-byte records, 3 partitions, leaders spread over the brokers), replication
  factor 1 vs 3 (min.insync.replicas 2): records/s, MB/s and the
  produce()->delivery latency p50/p99/p99.9 (batching included);
* replication lag under that load: the leader's log end minus its high
  watermark (records not yet on every in-sync replica), sampled every
  100 ms with `corelog topic describe` while the RF=3 run produces;
* failover: an idempotent acks=all producer at 500 records/s into an RF=3
  partition; SIGKILL its leader, then the time until the first record is
  acknowledged again (necessarily by the new leader), over KILLS kills; the
  killed broker is started again, and the next kill waits until it is back
  in the ISR and leads again (preferred leader).

    perf/replication.py                  # 200000 records, 20 kills
    RECORDS=500000 KILLS=30 perf/replication.py

Writes perf/reports/<date>-replication.md. Every broker runs with --cores 1
on loopback; the machine is shared, so compare within the run.
"""
import datetime, json, os, platform, shutil, signal, statistics, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster as c  # noqa: E402  (the cluster harness of perf/cluster.py)

ROOT = c.ROOT
RECORDS = int(os.environ.get("RECORDS", "200000"))
KILLS = int(os.environ.get("KILLS", "20"))


def create(via, name, partitions, rf):
    end = time.monotonic() + 30
    while True:
        r = c.cli("topic", "create", name, "--partitions", str(partitions), "--replication-factor",
                  str(rf), "--min-insync-replicas", str(min(rf, 2)), "--broker", via.addr)
        if r.returncode == 0:
            return
        if time.monotonic() > end:
            raise SystemExit(f"creating {name}: {r.stderr}")
        time.sleep(0.2)


def describe(via, name):
    """[(partition, leader, end, hw, isr, replicas)] from `corelog topic describe`."""
    r = c.cli("topic", "describe", name, "--broker", via.addr)
    rows = []
    header = None
    for line in r.stdout.splitlines():
        cols = line.split()
        if cols and cols[0] == "PARTITION":
            header = cols
            continue
        if header and cols and cols[0].isdigit() and len(cols) >= 11:
            rows.append((int(cols[0]), cols[7], int(cols[3]), int(cols[4]), cols[9], cols[8]))
    return rows


def produce(bootstrap, name):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "perf/kafka_producer.py"), bootstrap, name,
                          str(RECORDS), "1000", "true"], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


FAILOVER_PRODUCER = r"""
import sys, time, os
from confluent_kafka import Producer
bootstrap, topic, log_path, stop_path = sys.argv[1:5]
log = open(log_path, "w", buffering=1)
p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
              "linger.ms": 1, "message.timeout.ms": 120000, "retry.backoff.ms": 20,
              "topic.metadata.refresh.interval.ms": 500})
def cb(err, msg):
    if err is None:
        log.write(f"{time.time()}\n")
n, start = 0, time.time()
while not os.path.exists(stop_path):
    due = start + n / 500
    if due > time.time():
        p.poll(max(0, min(due - time.time(), 0.01)))
        continue
    p.produce(topic, value=b"x" * 100, on_delivery=cb)
    n += 1
    p.poll(0)
p.flush(60)
"""


def main():
    tmp = tempfile.mkdtemp(prefix="corelog-replication-")
    out = {}
    brokers = []
    try:
        ports = [c.free_port() for _ in range(3)]
        controllers = ",".join(f"{i + 1}@127.0.0.1:{p}" for i, p in enumerate(ports))
        brokers = [c.Broker(os.path.join(tmp, f"node{i + 1}"), i + 1, controllers, ports[i]) for i in range(3)]
        c.wait_version(brokers, 3)
        bootstrap = ",".join(b.kafka for b in brokers)

        # Throughput and latency, RF 1 vs RF 3, alternating twice.
        runs = {1: [], 3: []}
        for rnd in range(2):
            for rf in (1, 3):
                name = f"load-rf{rf}-{rnd}"
                create(brokers[0], name, 3, rf)
                lag = []
                stop = threading.Event()

                def sample():
                    while not stop.is_set():
                        for row in describe(brokers[0], name):
                            lag.append(row[2] - row[3])
                        time.sleep(0.1)

                sampler = threading.Thread(target=sample) if rf == 3 else None
                if sampler:
                    sampler.start()
                r = produce(bootstrap, name)
                stop.set()
                if sampler:
                    sampler.join()
                    r["lag"] = lag
                runs[rf].append(r)
                print(f"rf {rf}: {r['mb_per_s']:.1f} MB/s p50 {r['latency_ms']['p50']:.2f} p99 {r['latency_ms']['p99']:.2f} ms", flush=True)
        out["runs"] = runs

        # Failover.
        create(brokers[0], "failover", 1, 3)
        log_path, stop_path = os.path.join(tmp, "acks.log"), os.path.join(tmp, "stop")
        script = os.path.join(tmp, "failover_producer.py")
        open(script, "w").write(FAILOVER_PRODUCER)
        prod = subprocess.Popen([sys.executable, script, bootstrap, "failover", log_path, stop_path])
        time.sleep(3)
        gaps = []
        for k in range(KILLS):
            # Kill only a settled leader: the preferred one (handed back
            # every 10 s), with every replica in sync, as the leader itself
            # sees it — so the kill is always a leader's.
            end = time.monotonic() + 90
            victim = None
            while victim is None and time.monotonic() < end:
                for b in brokers:
                    rows = describe(b, "failover")
                    if (rows and rows[0][1] == str(b.node) and len(rows[0][4].split(",")) == 3
                            and rows[0][5].split(",")[0] == str(b.node)):
                        victim = b
                        break
                else:
                    time.sleep(0.3)
            if victim is None:
                raise SystemExit(f"kill {k}: the partition did not settle on its preferred leader")
            killed_at = time.time()
            victim.kill()
            end = time.monotonic() + 60
            first = None
            while first is None and time.monotonic() < end:
                time.sleep(0.05)
                for line in open(log_path).read().splitlines():
                    t = float(line)
                    # Answers already on their way when the leader died
                    # (delivered within 50 ms) are not the new leader's.
                    if t > killed_at + 0.05:
                        first = t
                        break
            if first is None:
                raise SystemExit(f"kill {k}: no acknowledgement within 60 s")
            gaps.append(first - killed_at)
            print(f"kill {k}: first ack after {1000 * (first - killed_at):.0f} ms", flush=True)
            victim.start()
        open(stop_path, "w").close()
        prod.wait(120)
        out["failover_s"] = gaps
    finally:
        for b in brokers:
            if b.proc.poll() is None:
                b.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    def med(rf, key):
        def get(r):
            return r["latency_ms"][key] if key in r["latency_ms"] else r[key]
        return statistics.median(get(r) for r in out["runs"][rf])

    lag = sorted(x for r in out["runs"][3] for x in r.get("lag", []))
    today = datetime.date.today().isoformat()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    lines = [
        f"# Replication on one machine — {today}",
        "",
        f"Machine: {os.cpu_count()} vCPU ({cpu}), Linux {platform.release()}; three brokers with `--cores 1` on",
        "loopback, fsync never, so the figures show the replication protocol's cost, not the disk's.",
        f"Command: `perf/replication.py` (RECORDS={RECORDS}, KILLS={KILLS}).",
        "",
        "## Produce, replication factor 1 vs 3 (acks=all, min.insync.replicas 2)",
        "",
        f"librdkafka (confluent-kafka), {RECORDS} records of 1000 bytes, idempotent, linger 5 ms, into 3",
        "partitions (leaders spread over the brokers); median of 2 runs each, alternated. Latency is produce() to",
        "delivery report per record, batching included.",
        "",
        "| RF | records/s | MB/s | p50 ms | p99 ms | p99.9 ms |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for rf in (1, 3):
        lines.append(f"| {rf} | {med(rf, 'records_per_s'):.0f} | {med(rf, 'mb_per_s'):.1f} | {med(rf, 'p50'):.2f} | "
                     f"{med(rf, 'p99'):.2f} | {med(rf, 'p999'):.2f} |")
    lines += [
        "",
        f"RF 3 / RF 1 throughput: {med(3, 'mb_per_s') / med(1, 'mb_per_s'):.2f}.",
        "",
        "## Replication lag under that load (RF 3)",
        "",
        "Leader log end minus high watermark, records, sampled every 100 ms during the RF 3 runs "
        f"({len(lag)} samples): median {c.pct(lag, 50) if lag else 0}, p99 {c.pct(lag, 99) if lag else 0}, "
        f"max {lag[-1] if lag else 0}.",
        "",
        "## Failover",
        "",
        "An idempotent acks=all producer at 500 records/s into an RF 3 partition; SIGKILL the leader, time",
        "until the first acknowledgement after the kill (acknowledgements delivered within 50 ms of it",
        f"were already on their way from the old leader and are skipped), over {len(out['failover_s'])} kills:",
        f"p50 {c.pct(out['failover_s'], 50):.2f} s, p99 {c.pct(out['failover_s'], 99):.2f} s, "
        f"max {max(out['failover_s']):.2f} s.",
        "The controller fences a silent broker after 4 s (BROKER_SESSION_TIMEOUT_MS) and elects the next",
        "in-sync replica at once; most of the time is that session timeout.",
    ]
    os.makedirs(os.path.join(ROOT, "perf/reports"), exist_ok=True)
    path = os.path.join(ROOT, f"perf/reports/{today}-replication.md")
    open(path, "w").write("\n".join(lines) + "\n")
    print("written to", path)


if __name__ == "__main__":
    main()
