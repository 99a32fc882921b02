//! SASL authentication and ACLs on Kafka listeners, driven by real clients
//! (kcat / librdkafka 2.0, confluent-kafka / librdkafka 2.16, kafka-python)
//! against a real `corelog serve` on 127.0.0.1 with ports the OS picks;
//! raw Kafka frames for what clients never send (requests before
//! authentication, oversized frames, a storm of failed logins).

mod common;

use common::clients::{kcat, roundtrip, sasl_config, timed, tls_args};
use common::pki::Pki;
use common::{Broker, kafka_clients_available, script};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

fn python(args: &[&str]) -> (bool, String) {
    timed(180, "python3", args)
}

/// Creates SCRAM users through the Kafka admin API at `bootstrap`.
fn create_users(bootstrap: SocketAddr, config: &serde_json::Value, specs: &[&str]) {
    let mut args = vec![
        script("scram_users.py"),
        bootstrap.to_string(),
        config.to_string(),
    ];
    args.extend(specs.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, out) = python(&args);
    assert!(ok, "creating users: {out}");
}

/// A broker with PLAINTEXT (the operator's path to create users),
/// SASL_PLAINTEXT and SASL_SSL listeners, SCRAM and PLAIN enabled.
fn sasl_broker(tmp: &tempfile::TempDir, pki: &Pki, extra: &[&str]) -> Broker {
    let server = pki.server("server");
    let mut args = vec![
        "--kafka-listen",
        "PLAINTEXT://127.0.0.1:0",
        "--kafka-listen",
        "SASL_PLAINTEXT://127.0.0.1:0",
        "--kafka-listen",
        "SASL_SSL://127.0.0.1:0",
        "--sasl-enabled-mechanisms",
        "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN",
    ];
    args.extend(tls_args(&server));
    args.extend_from_slice(extra);
    Broker::start(&tmp.path().join("data"), 2, &args)
}

#[test]
fn kafka_clients_authenticate_with_scram_and_plain_and_wrong_credentials_are_refused() {
    if !kafka_clients_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path(), "corelog");
    let broker = sasl_broker(&tmp, &pki, &[]);
    let (plain, sasl_plain, sasl_ssl) = (
        broker.kafka_listener("PLAINTEXT"),
        broker.kafka_listener("SASL_PLAINTEXT"),
        broker.kafka_listener("SASL_SSL"),
    );
    create_users(
        plain,
        &serde_json::json!({}),
        &[
            "alice:alice-secret:SCRAM-SHA-512",
            "alice:alice-secret:SCRAM-SHA-256",
            "bob:bob-secret:SCRAM-SHA-256",
        ],
    );

    // SCRAM-SHA-512 over TLS (confluent-kafka), SCRAM-SHA-256 in the clear
    // (kafka-python), both ways round.
    let alice512 = sasl_config("SASL_SSL", "SCRAM-SHA-512", "alice", "alice-secret", &pki);
    roundtrip("confluent", sasl_ssl, "sasl-a", 1000, &alice512).unwrap();
    let alice256 = sasl_config(
        "SASL_PLAINTEXT",
        "SCRAM-SHA-256",
        "alice",
        "alice-secret",
        &pki,
    );
    roundtrip("kafka-python", sasl_plain, "sasl-b", 200, &alice256).unwrap();
    let bob = sasl_config("SASL_SSL", "SCRAM-SHA-256", "bob", "bob-secret", &pki);
    if let Err(e) = roundtrip("kafka-python", sasl_ssl, "sasl-c", 200, &bob) {
        let log = broker.log();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        panic!("kafka-python over SASL_SSL: {e}\n{}", tail.join("\n"));
    }

    // kcat (librdkafka 2.0): SCRAM in the clear, PLAIN over TLS.
    let (ok, out) = kcat(&[
        "-b",
        &sasl_plain.to_string(),
        "-X",
        "security.protocol=SASL_PLAINTEXT",
        "-X",
        "sasl.mechanisms=SCRAM-SHA-256",
        "-X",
        "sasl.username=alice",
        "-X",
        "sasl.password=alice-secret",
        "-L",
    ]);
    assert!(ok && out.contains("sasl-a"), "{out}");
    let ca = format!("ssl.ca.location={}", pki.ca_pem.display());
    let (ok, out) = kcat(&[
        "-b",
        &sasl_ssl.to_string(),
        "-X",
        "security.protocol=SASL_SSL",
        "-X",
        &ca,
        "-X",
        "sasl.mechanisms=PLAIN",
        "-X",
        "sasl.username=bob",
        "-X",
        "sasl.password=bob-secret",
        "-L",
    ]);
    assert!(ok && out.contains("sasl-a"), "{out}");

    // Wrong password, unknown user: an authentication error, no data.
    let mut wrong = sasl_config("SASL_SSL", "SCRAM-SHA-512", "alice", "guess", &pki);
    wrong["socket.timeout.ms"] = 5000.into();
    let err = roundtrip("confluent", sasl_ssl, "sasl-a", 1, &wrong).unwrap_err();
    assert!(err.starts_with("authentication"), "{err}");
    let mut nobody = sasl_config("SASL_PLAINTEXT", "SCRAM-SHA-256", "mallory", "x", &pki);
    nobody["socket.timeout.ms"] = 5000.into();
    let err = roundtrip("confluent", sasl_plain, "sasl-a", 1, &nobody).unwrap_err();
    assert!(err.starts_with("authentication"), "{err}");
    // kafka-python's admin client reports a refused login as a bootstrap
    // failure; it is refused all the same.
    let http = broker.http.unwrap();
    common::wait_until(
        Duration::from_secs(10),
        "the failures so far counted",
        || failed_logins(http) >= 2.0,
    );
    let failures = failed_logins(http);
    let wrong = sasl_config("SASL_PLAINTEXT", "SCRAM-SHA-256", "bob", "guess", &pki);
    assert!(roundtrip("kafka-python", sasl_plain, "sasl-a", 1, &wrong).is_err());
    common::wait_until(
        Duration::from_secs(10),
        "kafka-python's failed login counted",
        || failed_logins(http) > failures,
    );
    // PLAIN is not offered in the clear.
    let (ok, out) = kcat(&[
        "-b",
        &sasl_plain.to_string(),
        "-X",
        "security.protocol=SASL_PLAINTEXT",
        "-X",
        "sasl.mechanisms=PLAIN",
        "-X",
        "sasl.username=bob",
        "-X",
        "sasl.password=bob-secret",
        "-m",
        "5",
        "-L",
    ]);
    assert!(!ok, "{out}");
    assert!(broker.log().contains("SASL authentication failed"));
}

/// corelog_sasl_authentications_total{result="failed"}, over shards and
/// mechanisms.
fn failed_logins(http: SocketAddr) -> f64 {
    let text = ureq::get(&format!("http://{http}/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with("corelog_sasl_authentications_total") && l.contains("result=\"failed\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

// ---- raw Kafka frames -------------------------------------------------

fn frame(api_key: i16, version: i16, correlation: i32, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&api_key.to_be_bytes());
    f.extend_from_slice(&version.to_be_bytes());
    f.extend_from_slice(&correlation.to_be_bytes());
    f.extend_from_slice(&(-1i16).to_be_bytes()); // client id: null
    f.extend_from_slice(body);
    let mut out = (f.len() as i32).to_be_bytes().to_vec();
    out.extend(f);
    out
}

fn string(s: &str) -> Vec<u8> {
    let mut v = (s.len() as i16).to_be_bytes().to_vec();
    v.extend_from_slice(s.as_bytes());
    v
}

fn bytes(b: &[u8]) -> Vec<u8> {
    let mut v = (b.len() as i32).to_be_bytes().to_vec();
    v.extend_from_slice(b);
    v
}

/// Reads one response frame; `None` if the connection closed first.
fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).ok()?;
    Some(body)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// SaslHandshake v1 for `mechanism`: (error code, offered mechanisms).
fn handshake(s: &mut TcpStream, mechanism: &str) -> Option<(i16, Vec<String>)> {
    s.write_all(&frame(17, 1, 1, &string(mechanism))).unwrap();
    let r = read_frame(s)?;
    let error = i16::from_be_bytes([r[4], r[5]]);
    let n = i32::from_be_bytes([r[6], r[7], r[8], r[9]]);
    let mut at = 10;
    let mut names = Vec::new();
    for _ in 0..n {
        let len = i16::from_be_bytes([r[at], r[at + 1]]) as usize;
        names.push(String::from_utf8(r[at + 2..at + 2 + len].to_vec()).unwrap());
        at += 2 + len;
    }
    Some((error, names))
}

/// SaslAuthenticate v0: (error code, auth bytes).
fn authenticate(s: &mut TcpStream, payload: &[u8]) -> Option<(i16, Vec<u8>)> {
    s.write_all(&frame(36, 0, 2, &bytes(payload))).unwrap();
    let r = read_frame(s)?;
    let error = i16::from_be_bytes([r[4], r[5]]);
    let msg_len = i16::from_be_bytes([r[6], r[7]]);
    let at = 8 + msg_len.max(0) as usize;
    let n = i32::from_be_bytes([r[at], r[at + 1], r[at + 2], r[at + 3]]) as usize;
    Some((error, r[at + 4..at + 4 + n].to_vec()))
}

#[test]
fn before_authentication_a_sasl_listener_serves_only_the_handshake() {
    if !kafka_clients_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path(), "corelog");
    let broker = sasl_broker(&tmp, &pki, &[]);
    let (plain, sasl_plain) = (
        broker.kafka_listener("PLAINTEXT"),
        broker.kafka_listener("SASL_PLAINTEXT"),
    );
    create_users(
        plain,
        &serde_json::json!({}),
        &["carol:carol-secret:SCRAM-SHA-256"],
    );

    // Metadata before authenticating: closed without an answer.
    let mut s = connect(sasl_plain);
    s.write_all(&frame(3, 1, 9, &(-1i32).to_be_bytes()))
        .unwrap();
    assert_eq!(read_frame(&mut s), None);
    // A mechanism not offered: 33 and the offered list (PLAIN is not
    // offered in the clear), then closed.
    let mut s = connect(sasl_plain);
    let (error, offered) = handshake(&mut s, "GSSAPI").unwrap();
    assert_eq!(error, 33);
    assert_eq!(offered, ["SCRAM-SHA-256", "SCRAM-SHA-512"]);
    assert_eq!(read_frame(&mut s), None);
    // A 1 MiB frame before authenticating: closed.
    let mut s = connect(sasl_plain);
    let _ = s.write_all(&(1i32 << 20).to_be_bytes());
    let _ = s.write_all(&vec![0u8; 64 << 10]);
    assert_eq!(read_frame(&mut s), None);
    // On a listener without SASL, SaslHandshake gets ILLEGAL_SASL_STATE.
    let mut s = connect(plain);
    assert_eq!(handshake(&mut s, "SCRAM-SHA-256").unwrap().0, 34);

    // 1,000 failed SCRAM logins in a row, then a good one: the broker stays
    // responsive.
    let started = Instant::now();
    for i in 0..1000 {
        let mut s = connect(sasl_plain);
        assert_eq!(handshake(&mut s, "SCRAM-SHA-256").unwrap().0, 0);
        let nonce = format!("nonce{i}");
        let (error, server_first) =
            authenticate(&mut s, format!("n,,n=carol,r={nonce}").as_bytes()).unwrap();
        assert_eq!(error, 0);
        let server_first = String::from_utf8(server_first).unwrap();
        let r = server_first
            .split(',')
            .find_map(|a| a.strip_prefix("r="))
            .unwrap();
        let final_msg = format!("c=biws,r={r},p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        let (error, _) = authenticate(&mut s, final_msg.as_bytes()).unwrap();
        assert_eq!(error, 58);
        assert_eq!(read_frame(&mut s), None, "closed after a failed login");
    }
    let storm = started.elapsed();
    let started = Instant::now();
    let carol = sasl_config(
        "SASL_PLAINTEXT",
        "SCRAM-SHA-256",
        "carol",
        "carol-secret",
        &pki,
    );
    roundtrip("confluent", sasl_plain, "after-storm", 10, &carol).unwrap();
    eprintln!(
        "1000 failed SCRAM logins: {storm:?} ({:.0}/s); a client right after: {:?}",
        1000.0 / storm.as_secs_f64(),
        started.elapsed()
    );
    // Logged at most once a second, with how many were not.
    let logged = broker.log().matches("SASL authentication failed").count();
    assert!(logged < 200, "{logged} lines for 1000 failures");
}

#[test]
fn acls_decide_what_each_principal_may_do_and_deny_wins() {
    if !kafka_clients_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path(), "corelog");
    // Users first (authorizer off), then the broker restarts with ACLs on.
    let mut broker = sasl_broker(&tmp, &pki, &[]);
    create_users(
        broker.kafka_listener("PLAINTEXT"),
        &serde_json::json!({}),
        &[
            "admin:admin-secret:SCRAM-SHA-256",
            "alice:alice-secret:SCRAM-SHA-256",
            "bob:bob-secret:SCRAM-SHA-256",
        ],
    );
    broker.terminate(Duration::from_secs(30));
    let broker = sasl_broker(
        &tmp,
        &pki,
        &["--authorizer", "acl", "--super-users", "User:admin"],
    );
    let sasl_plain = broker.kafka_listener("SASL_PLAINTEXT");
    let base = serde_json::json!({
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanisms": "SCRAM-SHA-256",
    });
    let (ok, out) = python(&[
        &script("acl_matrix.py"),
        &sasl_plain.to_string(),
        &base.to_string(),
        "admin-secret",
        "alice-secret",
        "bob-secret",
    ]);
    assert!(ok, "{out}");
    // kcat names the refusal.
    let (ok, out) = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo hello | timeout 60 kcat -b {sasl_plain} -X security.protocol=SASL_PLAINTEXT -X sasl.mechanisms=SCRAM-SHA-256 -X sasl.username=bob -X sasl.password=bob-secret -P -t orders-eu"
        ))
        .output()
        .map(|o| {
            (
                o.status.success(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                ),
            )
        })
        .unwrap();
    assert!(!ok && out.to_lowercase().contains("authorization"), "{out}");
    // Denials are counted.
    let metrics = ureq::get(&format!("http://{}/metrics", broker.http.unwrap()))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        metrics.contains("corelog_authorization_denied_total"),
        "no denial series"
    );
    // The plaintext listener's anonymous principal is denied too.
    let (ok, out) = kcat(&["-b", &broker.kafka_listener("PLAINTEXT").to_string(), "-L"]);
    assert!(ok && !out.contains("orders-eu"), "{out}");
}
