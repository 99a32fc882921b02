//! TLS on corelog's listeners, driven by real clients: kcat (librdkafka
//! 2.0), confluent-kafka (librdkafka 2.16), kafka-python and Python's own
//! `ssl`, against a real `corelog serve` on 127.0.0.1 with ports the OS
//! picks and a test CA made in each test's directory (rcgen). Without the
//! Kafka clients these tests fail and say how to install them
//! (CORELOG_SKIP_KAFKA_CLIENTS=1 skips them).

mod common;

use common::clients::{kcat, roundtrip, ssl_config, tls_args};
use common::pki::{Leaf, Pki};
use common::{Broker, kafka_clients_available, wait_until};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// `config` with 5 s client timeouts, for a client expected to be refused:
/// it gives up soon rather than at librdkafka's defaults (a minute and
/// more).
fn failing_fast(mut config: serde_json::Value) -> serde_json::Value {
    config["socket.timeout.ms"] = 5000.into();
    config["message.timeout.ms"] = 5000.into();
    config
}

#[test]
fn kafka_clients_use_an_ssl_listener_beside_a_plaintext_one_each_advertising_its_own_port() {
    if !kafka_clients_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path(), "corelog");
    let server = pki.server("server");
    let mut args = vec![
        "--kafka-listen",
        "PLAINTEXT://127.0.0.1:0",
        "--kafka-listen",
        "SSL://127.0.0.1:0",
    ];
    args.extend(tls_args(&server));
    let broker = Broker::start(&tmp.path().join("data"), 2, &args);
    let (plain, ssl) = (
        broker.kafka_listener("PLAINTEXT"),
        broker.kafka_listener("SSL"),
    );
    assert_eq!(broker.kafka, Some(plain), "kafka= stays the first listener");

    // kcat (librdkafka 2.0) over SSL: metadata names the SSL port.
    let ca = pki.ca_pem.to_str().unwrap();
    let (ok, out) = kcat(&[
        "-b",
        &ssl.to_string(),
        "-X",
        "security.protocol=SSL",
        "-X",
        &format!("ssl.ca.location={ca}"),
        "-L",
    ]);
    assert!(ok, "kcat -L over SSL: {out}");
    assert!(out.contains(&format!(":{}", ssl.port())), "{out}");
    assert!(!out.contains(&format!(":{}", plain.port())), "{out}");
    // ... and over plaintext, the plaintext port.
    let (ok, out) = kcat(&["-b", &plain.to_string(), "-L"]);
    assert!(ok && out.contains(&format!(":{}", plain.port())), "{out}");

    // Produce and consume through SSL with both Python clients.
    let done = roundtrip("confluent", ssl, "tls-confluent", 2000, &ssl_config(&pki)).unwrap();
    assert_eq!(done["consumed"], 2000);
    let done = roundtrip("kafka-python", ssl, "tls-python", 500, &ssl_config(&pki)).unwrap();
    assert_eq!(done["consumed"], 500);

    // A plaintext client on the SSL port is refused; the broker serves on.
    let refused = roundtrip(
        "confluent",
        ssl,
        "tls-plain",
        1,
        &failing_fast(serde_json::json!({})),
    );
    assert!(refused.is_err(), "{refused:?}");
    let (ok, out) = kcat(&[
        "-b",
        &ssl.to_string(),
        "-X",
        "security.protocol=SSL",
        "-X",
        &format!("ssl.ca.location={ca}"),
        "-C",
        "-t",
        "tls-confluent",
        "-p",
        "0",
        "-o",
        "0",
        "-c",
        "3",
        "-e",
    ]);
    assert!(ok, "{out}");
    assert_eq!(
        out.lines().take(3).collect::<Vec<_>>(),
        ["secure-0", "secure-1", "secure-2"]
    );
}

#[test]
fn mutual_tls_lets_in_clients_with_a_certificate_of_the_ca_and_nobody_else() {
    if !kafka_clients_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path(), "corelog");
    let server = pki.server("server");
    let alice = pki.client("alice");
    let stranger_ca = Pki::new(tmp.path(), "stranger");
    let mallory = stranger_ca.client("mallory");
    let mut args = vec!["--kafka-listen", "SSL://127.0.0.1:0"];
    args.extend(tls_args(&server));
    args.extend(["--tls-client-ca", pki.ca_pem.to_str().unwrap()]);
    let broker = Broker::start(&tmp.path().join("data"), 1, &args);
    let ssl = broker.kafka_listener("SSL");
    let with_cert = |leaf: &Leaf| {
        let mut c = ssl_config(&pki);
        c["ssl.certificate.location"] = leaf.cert.to_str().unwrap().into();
        c["ssl.key.location"] = leaf.key.to_str().unwrap().into();
        failing_fast(c)
    };
    roundtrip("confluent", ssl, "mtls", 100, &with_cert(&alice)).unwrap();
    roundtrip("kafka-python", ssl, "mtls", 100, &with_cert(&alice)).unwrap();
    // No certificate, or one from another CA: the handshake fails.
    let none = failing_fast(ssl_config(&pki));
    let err = roundtrip("confluent", ssl, "mtls", 1, &none).unwrap_err();
    assert!(err.starts_with("transport"), "{err}");
    let err = roundtrip("confluent", ssl, "mtls", 1, &with_cert(&mallory)).unwrap_err();
    assert!(err.starts_with("transport"), "{err}");
    wait_until(
        Duration::from_secs(10),
        "the failed handshakes logged",
        || broker.log().contains("TLS handshake failed"),
    );
}

#[test]
fn clients_refuse_an_expired_or_untrusted_server_certificate() {
    if !kafka_clients_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path(), "corelog");
    let expired = pki.expired_server("expired");
    let mut args = vec!["--kafka-listen", "SSL://127.0.0.1:0"];
    args.extend(tls_args(&expired));
    let broker = Broker::start(&tmp.path().join("data"), 1, &args);
    let ssl = broker.kafka_listener("SSL");
    let config = failing_fast(ssl_config(&pki));
    let err = roundtrip("confluent", ssl, "expired", 1, &config).unwrap_err();
    assert!(err.starts_with("transport"), "{err}");
    // A CA the client does not trust.
    let other = Pki::new(tmp.path(), "other");
    let config = failing_fast(ssl_config(&other));
    let err = roundtrip("kafka-python", ssl, "expired", 1, &config).unwrap_err();
    assert!(
        err.starts_with("transport") || err.starts_with("other"),
        "{err}"
    );
}

#[test]
fn a_bad_certificate_path_or_a_mismatched_key_stops_the_start_with_the_file_named() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path(), "corelog");
    let a = pki.server("a");
    let b = pki.server("b");
    let run = |cert: &Path, key: &Path| {
        let out = Command::new(common::corelog_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--http-listen", "none"])
            .args(["--kafka-listen", "SSL://127.0.0.1:0", "--data-dir"])
            .arg(tmp.path().join("data"))
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(&tmp.path().join("absent.pem"), &a.key);
    assert!(err.contains("absent.pem"), "{err}");
    let err = run(&a.cert, &b.key);
    assert!(err.contains("a.pem") && err.contains("b.key"), "{err}");
    // SSL without a certificate at all: a configuration error.
    let out = Command::new(common::corelog_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--http-listen", "none"])
        .args(["--kafka-listen", "SSL://127.0.0.1:0", "--data-dir"])
        .arg(tmp.path().join("data"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--tls-cert"), "{err}");
}

/// Python's `ssl`: connects to `addr`, returns the server certificate's
/// serial (hex) or the error.
fn python_tls_serial(addr: SocketAddr, ca: &Path) -> Result<String, String> {
    let code = r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[3])
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10) as s:
    with ctx.wrap_socket(s, server_hostname="localhost") as t:
        print(format(t.getpeercert()["serialNumber"]).lower())
"#;
    let out = Command::new("timeout")
        .args(["30", "python3", "-c", code])
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .arg(ca)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn sighup_reloads_certificates_without_dropping_open_connections_and_a_broken_file_keeps_the_old_one()
 {
    if !kafka_clients_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path(), "corelog");
    let server = pki.server("server");
    let mut args = vec!["--kafka-listen", "SSL://127.0.0.1:0"];
    args.extend(tls_args(&server));
    let mut broker = Broker::start(&tmp.path().join("data"), 1, &args);
    let ssl = broker.kafka_listener("SSL");
    let first = python_tls_serial(ssl, &pki.ca_pem).unwrap();

    // A client connection that stays open across the reload: a TLS
    // session opened with Python's ssl, then used after the reload.
    let code = r#"
import socket, ssl, sys, struct
ctx = ssl.create_default_context(cafile=sys.argv[3])
s = ctx.wrap_socket(socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20), server_hostname="localhost")
def api_versions():
    body = struct.pack(">hhih", 18, 0, 7, -1)
    s.sendall(struct.pack(">i", len(body)) + body)
    n = struct.unpack(">i", s.recv(4))[0]
    data = b""
    while len(data) < n:
        data += s.recv(n - len(data))
    assert struct.unpack(">i", data[:4])[0] == 7
api_versions()
print("open", flush=True)
sys.stdin.readline()
api_versions()
print("still served", flush=True)
"#;
    let mut open = Command::new("timeout")
        .args(["60", "python3", "-c", code])
        .arg(ssl.ip().to_string())
        .arg(ssl.port().to_string())
        .arg(&pki.ca_pem)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(open.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(line.trim(), "open");

    // Replace the files (a new serial), then SIGHUP.
    let renewed = pki.server("renewed");
    std::fs::copy(&renewed.cert, &server.cert).unwrap();
    std::fs::copy(&renewed.key, &server.key).unwrap();
    broker.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = python_tls_serial(ssl, &pki.ca_pem).unwrap();
        if now != first {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(broker.log().contains("reloaded TLS certificates"));
    open.stdin.take().unwrap().write_all(b"go\n").unwrap();
    line.clear();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(
        line.trim(),
        "still served",
        "the open connection was dropped"
    );
    let _ = open.wait();

    // A broken certificate: the reload fails, the old one keeps serving.
    let serving = python_tls_serial(ssl, &pki.ca_pem).unwrap();
    std::fs::write(&server.cert, "-----BEGIN CERTIFICATE-----\ngarbage\n").unwrap();
    broker.signal(libc::SIGHUP);
    wait_until(Duration::from_secs(10), "the failed reload logged", || {
        broker.log().contains("reloading TLS certificates failed")
    });
    assert_eq!(python_tls_serial(ssl, &pki.ca_pem).unwrap(), serving);
}

#[test]
fn the_http_port_serves_https_and_refuses_plain_http() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path(), "corelog");
    let server = pki.server("server");
    let mut args = vec!["--http-listen", "127.0.0.1:0", "--http-security", "tls"];
    args.extend(tls_args(&server));
    let broker = Broker::start(&tmp.path().join("data"), 1, &args);
    let http = broker.http.unwrap();
    let code = r#"
import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2])
for path in ("/v1/health", "/metrics"):
    with urllib.request.urlopen(f"https://localhost:{sys.argv[1]}{path}", context=ctx, timeout=10) as r:
        body = r.read().decode()
        assert r.status == 200, r.status
print(body.count("corelog_"))
"#;
    let out = Command::new("timeout")
        .args(["30", "python3", "-c", code])
        .arg(http.port().to_string())
        .arg(&pki.ca_pem)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let series: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(series > 10, "{series}");
    // Plain HTTP gets no HTTP answer.
    let mut plain = TcpStream::connect(http).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain
        .write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
}

#[test]
fn garbage_and_stalled_handshakes_on_a_tls_port_cost_other_clients_nothing() {
    if !kafka_clients_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path(), "corelog");
    let server = pki.server("server");
    let mut args = vec![
        "--kafka-listen",
        "SSL://127.0.0.1:0",
        "--frame-timeout-ms",
        "2000",
    ];
    args.extend(tls_args(&server));
    let broker = Broker::start(&tmp.path().join("data"), 1, &args);
    let ssl = broker.kafka_listener("SSL");
    // Clients that stall mid-handshake: half a ClientHello, then silence.
    let stalled: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = TcpStream::connect(ssl).unwrap();
            s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
            s
        })
        .collect();
    // Garbage instead of a handshake.
    for i in 0..200u32 {
        let mut s = TcpStream::connect(ssl).unwrap();
        let junk: Vec<u8> = (0..512).map(|j| (i * 31 + j * 7) as u8).collect();
        let _ = s.write_all(&junk);
    }
    // A real client is served meanwhile.
    let started = Instant::now();
    roundtrip("confluent", ssl, "beside-garbage", 200, &ssl_config(&pki)).unwrap();
    eprintln!(
        "a client beside 50 stalled and 200 garbage handshakes: {:?}",
        started.elapsed()
    );
    // The stalled handshakes are closed at the frame timeout.
    for mut s in stalled {
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        // Closed (0), or an alert record before the close.
        assert!(n == 0 || buf[0] == 0x15, "{:?}", &buf[..n]);
    }
    assert!(broker.log().contains("TLS handshake failed"));
}

/// `corelog ARGS --broker ADDR` with `stdin`: (success, stdout, stderr).
fn corelog_cli(broker: SocketAddr, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(common::corelog_bin())
        .args(args)
        .args(["--broker", &broker.to_string()])
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_native_listener_and_its_shard_ports_speak_tls_to_corelogs_own_client() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path(), "corelog");
    let server = pki.server("server");
    let alice = pki.client("alice");
    let mut args = vec!["--native-security", "tls"];
    args.extend(tls_args(&server));
    args.extend(["--tls-client-ca", pki.ca_pem.to_str().unwrap()]);
    let broker = Broker::start(&tmp.path().join("data"), 2, &args);
    let ca = pki.ca_pem.to_str().unwrap();
    let tls = [
        "--tls-ca",
        ca,
        "--tls-cert",
        alice.cert.to_str().unwrap(),
        "--tls-key",
        alice.key.to_str().unwrap(),
    ];
    let with_tls = |args: &[&str]| -> Vec<String> {
        args.iter()
            .chain(tls.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let run = |args: Vec<String>, stdin: &str| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        corelog_cli(broker.addr, &args, stdin)
    };
    let (ok, _, err) = run(
        with_tls(&["topic", "create", "secure", "--partitions", "4"]),
        "",
    );
    assert!(ok, "{err}");
    // The producer and consumer reach each partition's shard on its own
    // port: over TLS too.
    let lines: String = (0..500).map(|i| format!("k{}:line-{i}\n", i % 7)).collect();
    let (ok, _, err) = run(
        with_tls(&["produce", "secure", "--key-separator", ":", "--acks", "all"]),
        &lines,
    );
    assert!(ok, "{err}");
    let (ok, out, err) = run(
        with_tls(&[
            "consume",
            "secure",
            "--from-beginning",
            "--max-messages",
            "500",
        ]),
        "",
    );
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 500, "{out}");
    let (ok, out, err) = run(with_tls(&["stats"]), "");
    assert!(ok && !out.is_empty(), "{out}{err}");

    // Without a client certificate (mutual TLS is required), or without
    // TLS at all: refused, and the broker serves on.
    let (ok, _, err) = run(vec!["stats".into(), "--tls-ca".into(), ca.into()], "");
    assert!(!ok, "{err}");
    let (ok, _, err) = run(vec!["stats".into()], "");
    assert!(
        !ok,
        "a plaintext client got an answer from a TLS port: {err}"
    );
    let (ok, _, err) = run(with_tls(&["stats"]), "");
    assert!(ok, "{err}");
}

#[test]
fn acls_bind_the_native_listener_too_with_the_certificate_subject_as_principal() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path(), "corelog");
    let server = pki.server("server");
    let (admin, alice) = (pki.client("admin"), pki.client("alice"));
    // The operator manages ACLs over a loopback Kafka listener whose
    // (anonymous) principal is a super user, as is the admin certificate.
    let mut args = vec![
        "--native-security",
        "tls",
        "--kafka-listen",
        "PLAINTEXT://127.0.0.1:0",
        "--authorizer",
        "acl",
        "--super-users",
        "User:CN=admin,O=corelog;User:ANONYMOUS",
    ];
    args.extend(tls_args(&server));
    args.extend(["--tls-client-ca", pki.ca_pem.to_str().unwrap()]);
    let broker = Broker::start(&tmp.path().join("data"), 2, &args);
    let kafka = broker.kafka_listener("PLAINTEXT").to_string();
    let ca = pki.ca_pem.to_str().unwrap().to_string();
    let as_user = |leaf: &Leaf, args: &[&str], stdin: &str| {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend([
            "--tls-ca".into(),
            ca.clone(),
            "--tls-cert".into(),
            leaf.cert.to_str().unwrap().into(),
            "--tls-key".into(),
            leaf.key.to_str().unwrap().into(),
        ]);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        corelog_cli(broker.addr, &all, stdin)
    };
    let acl = |args: &[&str]| {
        let out = Command::new(common::corelog_bin())
            .args(["acl", "add", "--kafka-broker", &kafka])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    for topic in ["orders", "payroll"] {
        let (ok, _, err) = as_user(&admin, &["topic", "create", topic, "--partitions", "2"], "");
        assert!(ok, "{err}");
    }
    let (ok, _, err) = as_user(&admin, &["produce", "payroll", "--acks", "all"], "salary\n");
    assert!(ok, "{err}");

    // Alice has no ACL: her produce is refused with the topic's error and
    // stores nothing; she sees no topic; the cluster's stats are closed.
    let (ok, _, err) = as_user(&alice, &["produce", "orders", "--acks", "all"], "one\n");
    assert!(!ok && err.contains("TOPIC_AUTHORIZATION_FAILED"), "{err}");
    let (ok, out, err) = as_user(&alice, &["topic", "list"], "");
    assert!(
        ok && !out.contains("orders") && !out.contains("payroll"),
        "{out}{err}"
    );
    let (ok, _, err) = as_user(&alice, &["stats"], "");
    assert!(!ok && err.contains("CLUSTER_AUTHORIZATION_FAILED"), "{err}");

    // Granted WRITE and READ on orders: she produces and reads it back, and
    // still may not read payroll.
    let alice_principal = "User:CN=alice,O=corelog";
    acl(&[
        "--principal",
        alice_principal,
        "--operation",
        "write",
        "--topic",
        "orders",
    ]);
    acl(&[
        "--principal",
        alice_principal,
        "--operation",
        "read",
        "--topic",
        "orders",
    ]);
    let (ok, _, err) = as_user(
        &alice,
        &["produce", "orders", "--acks", "all"],
        "one\ntwo\n",
    );
    assert!(ok, "{err}");
    let (ok, out, err) = as_user(
        &alice,
        &[
            "consume",
            "orders",
            "--from-beginning",
            "--max-messages",
            "2",
        ],
        "",
    );
    assert!(ok && out.lines().count() == 2, "{out}{err}");
    let (ok, out, _) = as_user(&alice, &["topic", "list"], "");
    assert!(
        ok && out.contains("orders") && !out.contains("payroll"),
        "{out}"
    );
    let (ok, _, err) = as_user(
        &alice,
        &[
            "consume",
            "payroll",
            "--from-beginning",
            "--max-messages",
            "1",
        ],
        "",
    );
    assert!(!ok && err.contains("TOPIC_AUTHORIZATION_FAILED"), "{err}");
}
