//! `corelog bench` as users run it: real processes, embedded or external
//! broker on 127.0.0.1, short bounded runs.

mod common;

use common::{Broker, corelog_bin, wait_until};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `corelog bench ARGS` to completion, killing it after `within`.
fn bench(args: &[&str], within: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = Command::new(corelog_bin())
        .arg("bench")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start corelog bench");
    wait_until(within, "corelog bench to exit", || {
        child.try_wait().unwrap().is_some()
    });
    (child.wait_with_output().unwrap(), started.elapsed())
}

/// An address nothing listens on: bind an ephemeral port, note it, close.
fn unreachable_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn summary(dir: &Path) -> serde_json::Value {
    let raw = std::fs::read_to_string(dir.join("summary.json")).expect("summary.json");
    serde_json::from_str(&raw).expect("summary.json is JSON")
}

#[test]
fn nonsense_flags_get_a_clear_message() {
    for (args, expect) in [
        (&["--frobnicate"][..], "unexpected argument '--frobnicate'"),
        (&["--mode", "sideways"][..], "invalid value 'sideways'"),
        (&["--message-size", "9..3"][..], "9..3"),
        (&["--acks", "7"][..], "invalid value '7'"),
        (&["--producers", "0", "--mode", "produce"][..], "producer"),
    ] {
        let (o, _) = bench(args, Duration::from_secs(30));
        assert!(!o.status.success(), "{args:?} succeeded");
        let out = text(&o);
        assert!(out.contains(expect), "{args:?}: {out}");
        assert!(!out.contains("panicked"), "{args:?}: {out}");
    }
}

#[test]
fn an_unreachable_broker_fails_within_seconds_naming_the_address() {
    let addr = unreachable_addr();
    let (o, took) = bench(
        &["--broker", &addr, "--duration", "5", "--quiet"],
        Duration::from_secs(30),
    );
    assert!(!o.status.success());
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let out = text(&o);
    assert!(out.contains(&addr), "{out}");
}

#[test]
fn a_workload_the_broker_rejects_names_the_brokers_error() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), 1, &[]);
    let addr = broker.addr.to_string();
    let (o, took) = bench(
        &[
            "--broker",
            &addr,
            "--no-create",
            "--topic-prefix",
            "missing",
            "--duration",
            "5",
            "--quiet",
            "--out",
            dir.path().join("out").to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert!(!o.status.success());
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let out = text(&o);
    assert!(out.contains("UNKNOWN_TOPIC"), "{out}");
    assert!(out.contains("missing-0"), "{out}");
}

#[test]
fn an_embedded_run_writes_the_report_and_compare_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let (o, _) = bench(
        &[
            "--cores",
            "2",
            "--duration",
            "1",
            "--warmup",
            "1",
            "--partitions",
            "2",
            "--out",
            out_dir.to_str().unwrap(),
        ],
        Duration::from_secs(120),
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    for line in [
        "produced (acked)",
        "consumed",
        "produce → ack",
        "end to end",
        "produce request round trip",
        "fetch request round trip",
        "per request, sent → answered",
        "broker CPU: ",
    ] {
        assert!(out.contains(line), "no {line:?} in {out}");
    }
    assert!(out.contains("measure]"), "no progress line: {out}");
    let s = summary(&out_dir);
    assert_eq!(s["interrupted"], false);
    assert!(s["produce"]["messages"].as_u64().unwrap() > 0);
    assert!(s["consume"]["messages"].as_u64().unwrap() > 0);
    assert!(s["e2e_latency_us"]["p99"].as_u64().unwrap() > 0);
    // Per-request round trips beside the per-record latencies, same shape.
    for key in ["round_trip_latency_us", "fetch_round_trip_latency_us"] {
        let l = &s[key];
        assert!(l["count"].as_u64().unwrap() > 0, "{key}: {l}");
        assert!(l["p99"].as_u64().unwrap() > 0, "{key}: {l}");
        assert!(l["max"].as_u64() >= l["p99"].as_u64(), "{key}: {l}");
        assert!(!l["curve"].as_array().unwrap().is_empty(), "{key}: {l}");
    }
    // The embedded broker's CPU: its shard threads only.
    assert!(s["broker_cpu_seconds"].as_f64().unwrap() > 0.0, "{s}");
    assert!(s["broker_cpu_seconds_per_gb_produced"].as_f64().unwrap() > 0.0);
    assert!(
        s["broker_cpu_scope"]
            .as_str()
            .unwrap()
            .contains("shard threads")
    );
    // Each second's worst latencies, to find stalls.
    let seconds = s["per_second"].as_array().unwrap();
    assert!(
        seconds.iter().any(
            |x| x["produce_latency_max_us"].as_u64().is_some_and(|v| v > 0)
                && x["e2e_latency_max_us"].as_u64().is_some_and(|v| v > 0)
        ),
        "{seconds:?}"
    );
    assert!(s["machine"]["cores"].as_u64().unwrap() >= 1);
    assert_ne!(s["git_commit"], "");
    for file in [
        "produce-latency.hgrm",
        "e2e-latency.hgrm",
        "produce-round-trip.hgrm",
        "produce-round-trip.hlog",
        "fetch-round-trip.hgrm",
        "fetch-round-trip.hlog",
        "chart.svg",
    ] {
        let body = std::fs::read_to_string(out_dir.join(file)).unwrap();
        assert!(!body.is_empty(), "{file} is empty");
    }
    // The embedded broker's temporary directory is gone.
    let data = s["broker"].as_str().unwrap();
    let tmp = data
        .split("data in ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap();
    assert!(!Path::new(tmp).exists(), "{tmp} was left behind");

    let chart = dir.path().join("cmp.svg");
    let summary_path = out_dir.join("summary.json");
    let path = summary_path.to_str().unwrap();
    let (o, _) = bench(
        &["compare", path, path, "--out", chart.to_str().unwrap()],
        Duration::from_secs(30),
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("1.00"), "{out}");
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
}

#[test]
fn an_external_run_reports_the_broker_process_cpu_and_produce_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), 1, &[]);
    let out_dir = dir.path().join("run");
    let (o, _) = bench(
        &[
            "--broker",
            &broker.addr.to_string(),
            "--mode",
            "produce",
            "--duration",
            "1",
            "--warmup",
            "1",
            "--partitions",
            "1",
            "--out",
            out_dir.to_str().unwrap(),
        ],
        Duration::from_secs(120),
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    let s = summary(&out_dir);
    assert!(s["round_trip_latency_us"]["count"].as_u64().unwrap() > 0);
    assert!(s["fetch_round_trip_latency_us"].is_null(), "no consumers");
    assert!(s["broker_cpu_seconds"].as_f64().unwrap() > 0.0, "{s}");
    assert!(s["broker_cpu_seconds_per_gb_produced"].as_f64().unwrap() > 0.0);
    assert_eq!(s["broker_cpu_scope"], "broker process");
    assert!(
        out.contains("broker CPU: ") && out.contains("per GB produced"),
        "{out}"
    );
}

#[test]
fn trace_latency_breaks_produce_down_by_stage_in_the_bench_and_in_a_brokers_log() {
    // Embedded: the client's and the broker's stages in one table.
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let (o, _) = bench(
        &[
            "--mode",
            "produce",
            "--duration",
            "1",
            "--warmup",
            "1",
            "--partitions",
            "2",
            "--routing",
            "shared",
            "--cores",
            "2",
            "--trace-latency",
            "--out",
            out_dir.to_str().unwrap(),
        ],
        Duration::from_secs(120),
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("produce latency breakdown"), "{out}");
    let raw = std::fs::read_to_string(out_dir.join("latency-breakdown.json")).unwrap();
    let stages: serde_json::Value = serde_json::from_str(&raw).unwrap();
    for stage in [
        "client_queue",
        "client_round_trip",
        "receive",
        "queue",
        "hop",
        "append",
        "disk_write",
        "handler",
        "answer",
        "broker",
    ] {
        let count = stages[stage]["count"].as_u64().unwrap_or(0);
        assert!(count > 0, "stage {stage} not measured: {raw}");
        assert!(stages[stage]["max"].as_u64().unwrap() >= stages[stage]["p50"].as_u64().unwrap());
    }
    // acks=1 under fsync never: nothing waits for a sync.
    assert!(stages["durable"].is_null(), "{raw}");

    // External: `serve --trace-latency` logs the breakdown every second.
    let broker = Broker::start(&dir.path().join("data"), 1, &["--trace-latency"]);
    let (o, _) = bench(
        &[
            "--broker",
            &broker.addr.to_string(),
            "--mode",
            "produce",
            "--duration",
            "1",
            "--warmup",
            "1",
            "--partitions",
            "1",
            "--out",
            dir.path().join("external").to_str().unwrap(),
        ],
        Duration::from_secs(120),
    );
    assert!(o.status.success(), "{}", text(&o));
    wait_until(
        Duration::from_secs(10),
        "the broker to log a breakdown",
        || {
            broker
                .log()
                .lines()
                .any(|l| l.contains("produce latency breakdown") && l.contains("append="))
        },
    );
}

#[test]
fn ctrl_c_stops_the_run_and_still_writes_the_partial_report() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let mut child = Command::new(corelog_bin())
        .args([
            "bench",
            "--cores",
            "1",
            "--duration",
            "120",
            "--warmup",
            "1",
            "--partitions",
            "1",
            "--out",
        ])
        .arg(&out_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first measured second, then interrupt.
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("measure]") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("a measured progress line");
    // SAFETY: kill(2) on the child we spawned.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let started = Instant::now();
    wait_until(
        Duration::from_secs(30),
        "bench to stop after SIGINT",
        || child.try_wait().unwrap().is_some(),
    );
    let o = child.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(!o.status.success(), "an interrupted run is not a success");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("INTERRUPTED"), "{stdout}");
    let s = summary(&out_dir);
    assert_eq!(s["interrupted"], true);
    assert!(s["measured_seconds"].as_f64().unwrap() < 100.0);
    assert!(out_dir.join("produce-latency.hgrm").exists());
}

#[test]
fn workload_files_give_flags_and_their_mistakes_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "partitions = 16\nfrobnicate = 3\n").unwrap();
    let (o, _) = bench(
        &["--workload", bad.to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert!(!o.status.success());
    let out = text(&o);
    assert!(
        out.contains("bad.toml") && out.contains("--frobnicate"),
        "{out}"
    );

    // The standard workloads all parse (checked without running them: an
    // unreachable broker fails after parsing, naming itself).
    let addr = unreachable_addr();
    let workloads = Path::new(env!("CARGO_MANIFEST_DIR")).join("perf/workloads");
    let mut seen = 0;
    for entry in std::fs::read_dir(workloads).unwrap() {
        let path = entry.unwrap().path();
        let (o, _) = bench(
            &[
                "--workload",
                path.to_str().unwrap(),
                "--broker",
                &addr,
                "--rate",
                "1000",
            ],
            Duration::from_secs(30),
        );
        let out = text(&o);
        assert!(
            out.contains(&addr) && !out.contains("workload file"),
            "{}: {out}",
            path.display()
        );
        seen += 1;
    }
    assert!(seen >= 5);
}

#[test]
fn a_failed_embedded_run_still_removes_its_data_directory() {
    let (o, _) = bench(
        &["--cores", "1", "--no-create", "--duration", "1"],
        Duration::from_secs(60),
    );
    assert!(!o.status.success());
    let out = text(&o);
    assert!(out.contains("UNKNOWN_TOPIC"), "{out}");
    let dir = out
        .split("data in ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("no data directory named in {out}"));
    assert!(!Path::new(dir).exists(), "{dir} was left behind");
}

#[test]
fn a_kafka_protocol_run_with_compression_drives_the_kafka_listener() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let (o, _) = bench(
        &[
            "--cores",
            "2",
            "--protocol",
            "kafka",
            "--compression",
            "lz4",
            "--duration",
            "1",
            "--warmup",
            "1",
            "--partitions",
            "2",
            "--out",
            out_dir.to_str().unwrap(),
        ],
        Duration::from_secs(120),
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("kafka protocol") && out.contains("compression lz4"),
        "{out}"
    );
    let s = summary(&out_dir);
    assert_eq!(s["workload"]["protocol"], "kafka");
    assert_eq!(s["workload"]["compression"], "lz4");
    assert_eq!(s["errors"], 0, "{out}");
    assert!(s["produce"]["messages"].as_u64().unwrap() > 0);
    assert!(s["consume"]["messages"].as_u64().unwrap() > 0);
    // A Kafka run against an external broker needs its Kafka address.
    let (o, _) = bench(
        &[
            "--protocol",
            "kafka",
            "--broker",
            "127.0.0.1:9",
            "--duration",
            "1",
        ],
        Duration::from_secs(30),
    );
    assert!(text(&o).contains("--kafka-broker"), "{}", text(&o));
}

#[test]
fn a_group_run_reports_the_settle_time_and_each_member() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let (o, _) = bench(
        &[
            "--cores",
            "2",
            "--duration",
            "2",
            "--warmup",
            "1",
            "--partitions",
            "4",
            "--consumers",
            "2",
            "--group",
            "bench-group",
            "--out",
            out_dir.to_str().unwrap(),
        ],
        Duration::from_secs(120),
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("group bench-group: settled in"), "{out}");
    let s = summary(&out_dir);
    let g = &s["group"];
    assert_eq!(g["group"], "bench-group");
    assert!(g["settle_ms"].as_f64().unwrap() > 0.0, "{g}");
    let members = g["members"].as_array().unwrap();
    assert_eq!(members.len(), 2);
    for m in members {
        assert!(
            m["messages"].as_u64().unwrap() > 0,
            "every member reads: {g}"
        );
    }
    assert!(s["e2e_latency_us"]["p99"].as_u64().unwrap() > 0);
    // Groups need the native protocol.
    let (o, _) = bench(
        &["--group", "g", "--protocol", "kafka", "--duration", "1"],
        Duration::from_secs(30),
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("--group"), "{}", text(&o));
}
