//! The HTTP port of a real `corelog serve`: Prometheus metrics parsed by a
//! real parser, the JSON admin API, health before and after recovery, and
//! the web console in a headless Chromium.

mod common;

use common::{Broker, corelog_bin, run, wait_until};
use corelog::client::{
    Admin, Consumer, ConsumerConfig, GroupConfig, GroupConsumer, OffsetReset, Producer,
    ProducerConfig, ProducerRecord, SeekTo, TopicSettings,
};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// GET `path`: (status, body).
fn get(http: SocketAddr, path: &str) -> (u16, String) {
    request("GET", http, path)
}

fn request(method: &str, http: SocketAddr, path: &str) -> (u16, String) {
    let url = format!("http://{http}{path}");
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    match agent.request(method, &url).call() {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

fn json(http: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let (status, body) = get(http, path);
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (status, value)
}

fn produce(addr: SocketAddr, topic: &str, partitions: u32, records: u32) {
    let topic = topic.to_string();
    run(async move {
        let p = Producer::connect(addr, ProducerConfig::default())
            .await
            .unwrap();
        let mut pending = Vec::new();
        for i in 0..records {
            let value = format!("record-{i:06}-{}", "x".repeat(100));
            let record = ProducerRecord {
                topic: &topic,
                partition: Some(i % partitions),
                value: Some(value.as_bytes()),
                ..Default::default()
            };
            pending.push(p.send_record(record).await.unwrap());
        }
        p.flush().await.unwrap();
        for d in pending {
            d.await.expect("acknowledged");
        }
        p.close().await.unwrap();
    });
}

/// Scrapes `/metrics` and parses it with a Prometheus text parser.
fn scrape(http: SocketAddr) -> prometheus_parse::Scrape {
    let (status, body) = get(http, "/metrics");
    assert_eq!(status, 200, "{body}");
    let lines = body.lines().map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines).expect("Prometheus text that parses")
}

/// The sum of a family's samples whose labels include `labels`.
fn sum(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(buckets) => {
                buckets.iter().map(|b| b.count).fold(0.0, f64::max)
            }
            prometheus_parse::Value::Summary(_) => 0.0,
        })
        .sum()
}

fn has(scrape: &prometheus_parse::Scrape, name: &str) -> bool {
    scrape.samples.iter().any(|s| s.metric == name)
}

#[test]
fn metrics_and_the_admin_api_describe_topics_groups_and_shards_and_change_as_records_flow() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = Broker::start(&tmp.path().join("data"), 2, &[]);
    let http = broker.http.expect("the test broker serves HTTP");
    let addr = broker.addr;
    run(async move {
        Admin::connect(addr)
            .await
            .unwrap()
            .create_topic("orders", 4, &TopicSettings::default())
            .await
            .unwrap();
    });
    produce(addr, "orders", 4, 1000);
    // A group that read part of the topic and committed: it lags.
    run(async move {
        let config = ConsumerConfig {
            max_wait: Duration::from_millis(20),
            reset: OffsetReset::Earliest,
            ..ConsumerConfig::default()
        };
        let mut consumer =
            GroupConsumer::subscribe(addr, config, GroupConfig::new("audit", &["orders"]))
                .await
                .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = 0;
        while seen < 100 {
            assert!(Instant::now() < deadline, "the group read nothing");
            seen += consumer.poll().await.unwrap().len();
        }
        consumer.commit().await.unwrap();
        consumer.close().await.unwrap();
    });

    // A fetch past the end: answered OFFSET_OUT_OF_RANGE, counted by code.
    run(async move {
        let mut consumer = Consumer::connect(addr, ConsumerConfig::default())
            .await
            .unwrap();
        consumer
            .assign("orders", Some(&[0]), SeekTo::Offset(10_000_000))
            .await
            .unwrap();
        let _ = consumer.poll().await;
    });

    // Published every half second: wait for the figures to show.
    let mut metrics = scrape(http);
    wait_until(
        Duration::from_secs(10),
        "the appends show in /metrics",
        || {
            metrics = scrape(http);
            sum(
                &metrics,
                "corelog_topic_records_appended_total",
                &[("topic", "orders")],
            ) == 1000.0
        },
    );
    for family in [
        "corelog_build_info",
        "corelog_shard_ready",
        "corelog_requests_total",
        "corelog_produce_latency_seconds",
        "corelog_fetch_latency_seconds",
        "corelog_topic_bytes_in_total",
        "corelog_topic_bytes_out_total",
        "corelog_topic_records_appended_total",
        "corelog_partition_log_start_offset",
        "corelog_partition_log_end_offset",
        "corelog_partition_high_watermark",
        "corelog_partition_size_bytes",
        "corelog_partition_segments",
        "corelog_fsyncs_total",
        "corelog_fsync_latency_seconds",
        "corelog_cross_core_hops_total",
        "corelog_connections_open",
        "corelog_connections_accepted_total",
        "corelog_connections_closed_total",
        "corelog_consumer_group_committed_offset",
        "corelog_consumer_group_lag",
        "corelog_process_resident_memory_bytes",
        "corelog_process_open_fds",
        "corelog_process_cpu_seconds_total",
    ] {
        assert!(has(&metrics, family), "/metrics has no {family}");
    }
    assert_eq!(
        sum(
            &metrics,
            "corelog_partition_log_end_offset",
            &[("topic", "orders")]
        ),
        1000.0
    );
    assert!(
        sum(
            &metrics,
            "corelog_requests_total",
            &[("protocol", "native"), ("api", "Produce")]
        ) >= 1.0
    );
    assert!(sum(&metrics, "corelog_produce_latency_seconds", &[]) >= 1.0);
    assert!(
        sum(
            &metrics,
            "corelog_request_errors_total",
            &[("api", "Fetch"), ("code", "OFFSET_OUT_OF_RANGE")]
        ) >= 1.0,
        "the out-of-range fetch is counted"
    );
    assert!(
        sum(
            &metrics,
            "corelog_topic_bytes_in_total",
            &[("topic", "orders")]
        ) > 100_000.0
    );
    assert!(sum(&metrics, "corelog_process_resident_memory_bytes", &[]) > 1e6);
    assert!(sum(&metrics, "corelog_process_open_fds", &[]) > 10.0);
    assert!(
        sum(
            &metrics,
            "corelog_connections_accepted_total",
            &[("protocol", "native")]
        ) >= 2.0
    );
    let lag = sum(
        &metrics,
        "corelog_consumer_group_lag",
        &[("group", "audit")],
    );
    let committed = sum(
        &metrics,
        "corelog_consumer_group_committed_offset",
        &[("group", "audit")],
    );
    assert!(committed >= 100.0, "committed {committed}");
    assert_eq!(lag + committed, 1000.0, "lag = high watermark - committed");

    // The figures change as records flow.
    produce(addr, "orders", 4, 500);
    wait_until(
        Duration::from_secs(10),
        "new appends show in /metrics",
        || {
            let m = scrape(http);
            sum(
                &m,
                "corelog_topic_records_appended_total",
                &[("topic", "orders")],
            ) == 1500.0
                && sum(&m, "corelog_consumer_group_lag", &[("group", "audit")]) == lag + 500.0
        },
    );
    // OpenMetrics when asked for.
    let agent = ureq::AgentBuilder::new().build();
    let om = agent
        .get(&format!("http://{http}/metrics"))
        .set("Accept", "application/openmetrics-text; version=1.0.0")
        .call()
        .unwrap();
    assert!(
        om.content_type()
            .starts_with("application/openmetrics-text")
    );
    assert!(om.into_string().unwrap().trim_end().ends_with("# EOF"));

    // The admin API.
    let (status, health) = json(http, "/v1/health");
    assert_eq!((status, health["status"].as_str()), (200, Some("ready")));
    let (status, topics) = json(http, "/v1/topics");
    assert_eq!(status, 200);
    let orders = topics["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "orders")
        .expect("orders is listed");
    assert_eq!(orders["partitions"], 4);
    assert_eq!(orders["records_in_total"], 1500);
    let (status, topic) = json(http, "/v1/topics/orders");
    assert_eq!(status, 200);
    let parts = topic["partition_list"].as_array().unwrap();
    assert_eq!(parts.len(), 4);
    let shards: std::collections::BTreeSet<u64> =
        parts.iter().map(|p| p["shard"].as_u64().unwrap()).collect();
    assert_eq!(shards.len(), 2, "partitions on both shards: {topic}");
    for p in parts {
        assert_eq!(p["log_end_offset"], 375, "{p}");
        assert_eq!(p["high_watermark"], 375, "{p}");
        assert!(p["size_bytes"].as_u64().unwrap() > 375 * 100, "{p}");
        assert!(p["segments"].as_u64().unwrap() >= 1, "{p}");
    }
    let (status, missing) = json(http, "/v1/topics/nope");
    assert_eq!(
        (status, &missing["error"]["code"]),
        (404, &"UNKNOWN_TOPIC".into())
    );
    let (status, groups) = json(http, "/v1/groups");
    assert_eq!(status, 200);
    assert!(
        groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["group"] == "audit" && g["lag"].as_u64() == Some((lag + 500.0) as u64)),
        "{groups}"
    );
    let (status, group) = json(http, "/v1/groups/audit");
    assert_eq!(status, 200);
    let partitions = group["partitions"].as_array().unwrap();
    assert!(!partitions.is_empty(), "{group}");
    for p in partitions {
        assert_eq!(
            p["lag"].as_u64().unwrap() + p["committed_offset"].as_u64().unwrap(),
            p["high_watermark"].as_u64().unwrap(),
            "{p}"
        );
    }
    let (status, missing) = json(http, "/v1/groups/nope");
    assert_eq!(
        (status, &missing["error"]["code"]),
        (404, &"UNKNOWN_GROUP".into())
    );
    let (status, shards) = json(http, "/v1/shards");
    assert_eq!(status, 200);
    assert_eq!(shards["shards"].as_array().unwrap().len(), 2);
    let (status, cluster) = json(http, "/v1/cluster");
    assert_eq!(status, 200);
    assert_eq!(cluster["brokers"][0]["native"], addr.to_string());
    let (status, config) = json(http, "/v1/config");
    assert_eq!(status, 200);
    assert_eq!(config["cores"], 2);
    assert!(config["settings"]["topic_defaults.segment_bytes"].is_string());
    let (status, unknown) = json(http, "/v1/nothing");
    assert_eq!(
        (status, &unknown["error"]["code"]),
        (404, &"NOT_FOUND".into())
    );
    let (status, body) = request("POST", http, "/v1/topics");
    assert_eq!(status, 405, "{body}");
    assert!(body.contains("METHOD_NOT_ALLOWED"));
}

#[test]
fn health_is_503_while_shards_recover_and_200_once_they_have() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut child = Command::new(corelog_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--cores", "2"])
        .args(["--kafka-listen", "none", "--http-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(&data)
        .env("CORELOG_TEST_RECOVERY_DELAY_MS", "3000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    let http: SocketAddr = first
        .strip_prefix("corelog http listening on ")
        .unwrap_or_else(|| panic!("the HTTP address comes first: {first:?}"))
        .parse()
        .unwrap();
    // The shards wait 3 s before recovering: not ready yet.
    let (status, health) = json(http, "/v1/health");
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["status"], "recovering");
    assert_eq!(health["error"]["code"], "NOT_READY");
    let scrape = scrape(http);
    assert_eq!(sum(&scrape, "corelog_shard_ready", &[]), 0.0);
    let listening = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    assert!(
        listening.starts_with("corelog listening on "),
        "{listening}"
    );
    wait_until(Duration::from_secs(10), "health turns ready", || {
        get(http, "/v1/health").0 == 200
    });
    assert_eq!(sum(&self::scrape(http), "corelog_shard_ready", &[]), 2.0);
    let _ = child.kill();
    let _ = child.wait();
}

/// Headless Chromium, or `None` (with a note) when it is not installed and
/// CORELOG_SKIP_BROWSER=1 allows skipping.
fn chromium() -> Option<&'static str> {
    for candidate in ["chromium", "chromium-browser"] {
        if Command::new(candidate)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Some(candidate);
        }
    }
    if std::env::var("CORELOG_SKIP_BROWSER").is_ok_and(|v| v == "1") {
        eprintln!("skipping: no chromium and CORELOG_SKIP_BROWSER=1");
        return None;
    }
    panic!("chromium is not installed: apt-get install chromium (or set CORELOG_SKIP_BROWSER=1)");
}

/// The console's DOM after its script ran for a few (virtual) seconds, and
/// what Chromium logged.
fn dump_dom(browser: &str, http: SocketAddr) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("timeout")
        .arg("60")
        .arg(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=4000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("http://{http}/"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The text of the `records` cell of `topic`'s row in a dumped console.
fn records_cell(dom: &str, topic: &str) -> Option<String> {
    let row = dom.split(&format!("data-topic=\"{topic}\"")).nth(1)?;
    let cell = row.split("class=\"num records\">").nth(1)?;
    Some(cell.split('<').next()?.to_string())
}

#[test]
fn the_console_loads_without_errors_shows_a_topic_and_its_figures_change() {
    let Some(browser) = chromium() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let broker = Broker::start(&tmp.path().join("data"), 2, &[]);
    let http = broker.http.unwrap();
    let addr = broker.addr;
    run(async move {
        Admin::connect(addr)
            .await
            .unwrap()
            .create_topic("clicks", 2, &TopicSettings::default())
            .await
            .unwrap();
    });
    produce(addr, "clicks", 2, 200);
    wait_until(Duration::from_secs(10), "the records are published", || {
        json(http, "/v1/topics/clicks").1["records"] == 200
    });
    let (dom, log) = dump_dom(browser, http);
    assert!(dom.contains("data-js-errors=\"0\""), "script errors: {dom}");
    assert!(!log.contains("Uncaught"), "console errors: {log}");
    assert!(
        !dom.contains("data-refreshes=\"0\""),
        "the console never refreshed: {dom}"
    );
    assert_eq!(
        records_cell(&dom, "clicks").as_deref(),
        Some("200"),
        "{dom}"
    );
    assert!(dom.contains("id=\"health\" class=\"ready\""), "{dom}");

    produce(addr, "clicks", 2, 300);
    wait_until(
        Duration::from_secs(10),
        "the new records are published",
        || json(http, "/v1/topics/clicks").1["records"] == 500,
    );
    let (dom, log) = dump_dom(browser, http);
    assert!(dom.contains("data-js-errors=\"0\""), "script errors: {dom}");
    assert!(!log.contains("Uncaught"), "console errors: {log}");
    assert_eq!(
        records_cell(&dom, "clicks").as_deref(),
        Some("500"),
        "{dom}"
    );
}

#[test]
fn a_taken_http_port_is_refused_at_start_with_a_clear_message() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new("timeout")
        .arg("60")
        .arg(corelog_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--cores", "1"])
        .args(["--kafka-listen", "none", "--http-listen", &port])
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("binding the HTTP listener {port}"))
            && stderr.contains("--http-listen"),
        "{stderr}"
    );
}
