//! Security administration on corelog's Kafka listener, driven by real
//! Kafka clients (confluent-kafka and kafka-python, see tests/kafka/) and by
//! `corelog user` / `corelog acl`, against a real `corelog serve` with two
//! shards (so requests reach the controller from either) on ports the OS
//! picks: SCRAM credentials, ACLs, `--authorizer`, `--bootstrap-user`, and
//! that all of it survives a restart in a metadata file only its owner can
//! read. Without the Python clients the client tests fail and say how to
//! install them (CORELOG_SKIP_KAFKA_CLIENTS=1 skips them); the CLI tests
//! need nothing but the binary.

mod common;

use common::{Broker, corelog_bin, kafka_clients_available, script};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// With ACLs enforced, these tests administer the broker over its
/// loopback plaintext Kafka listener, whose anonymous principal is made a
/// super user (the operator's path; real deployments would use a SASL or
/// mTLS principal).
const OPERATOR: &str = "User:ANONYMOUS";

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(out: Output, what: &str) -> String {
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    stdout
}

/// A Python script with a two-minute ceiling.
fn python(args: &[&str]) -> String {
    let out = Command::new("timeout")
        .args(["120", "python3"])
        .args(args)
        .output()
        .unwrap();
    ok(out, &format!("python3 {args:?}"))
}

/// `corelog ARGS --kafka-broker KAFKA`, with extra environment variables.
fn corelog_env(kafka: SocketAddr, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new("timeout")
        .arg("60")
        .arg(corelog_bin())
        .args(args)
        .args(["--kafka-broker", &kafka.to_string()])
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn corelog(kafka: SocketAddr, args: &[&str]) -> String {
    ok(corelog_env(kafka, args, &[]), &format!("corelog {args:?}"))
}

/// `corelog ARGS` that must fail; its stderr.
fn corelog_fails(kafka: SocketAddr, args: &[&str]) -> String {
    let out = corelog_env(kafka, args, &[]);
    let (stdout, stderr) = text(&out);
    assert!(
        !out.status.success(),
        "corelog {args:?} succeeded:\n{stdout}"
    );
    stderr
}

fn start(data: &Path, extra: &[&str]) -> Broker {
    let mut args = vec!["--kafka-listen", "127.0.0.1:0", "--no-pin"];
    args.extend_from_slice(extra);
    Broker::start(data, 2, &args)
}

fn data_dir(tmp: &tempfile::TempDir) -> PathBuf {
    tmp.path().join("data")
}

fn metadata_mode(data: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(data.join(".corelog-metadata"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

/// The rows of a table a `list` command printed, header left out, each
/// split on whitespace.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

#[test]
fn confluent_kafka_manages_scram_credentials_that_survive_a_restart_in_a_private_file() {
    if !kafka_clients_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(&tmp);
    let mut broker = start(&data, &[]);
    let out = python(&[
        &script("confluent_scram_admin.py"),
        &broker.kafka.unwrap().to_string(),
        "setup",
    ]);
    assert!(
        out.contains(r#""users": ["alice", "bob", "erin"]"#),
        "{out}"
    );
    assert_eq!(broker.terminate(Duration::from_secs(30)), 0);
    assert_eq!(metadata_mode(&data), 0o600, "the file holds SCRAM keys");

    let broker = start(&data, &[]);
    let out = python(&[
        &script("confluent_scram_admin.py"),
        &broker.kafka.unwrap().to_string(),
        "check",
    ]);
    assert!(out.contains(r#""phase": "check""#), "{out}");
    // corelog's own listing agrees.
    let listed = rows(&corelog(broker.kafka.unwrap(), &["user", "list"]));
    assert_eq!(
        listed,
        vec![
            vec!["alice", "SCRAM-SHA-256", "4096"],
            vec!["bob", "SCRAM-SHA-512", "8192"],
            vec!["erin", "SCRAM-SHA-256", "4096"],
        ]
    );
    assert_eq!(metadata_mode(&data), 0o600);
}

#[test]
fn confluent_kafka_manages_acls_kafka_python_reads_them_and_they_survive_a_restart() {
    if !kafka_clients_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(&tmp);
    let mut broker = start(&data, &["--authorizer", "acl", "--super-users", OPERATOR]);
    let kafka = broker.kafka.unwrap().to_string();
    let out = python(&[&script("confluent_acls.py"), &kafka, "setup"]);
    assert!(out.contains(r#""acls": 4"#), "{out}");
    let seen = python(&[&script("kafka_python_acls.py"), &kafka]);
    let seen: serde_json::Value = serde_json::from_str(seen.trim()).expect("one JSON line");
    let acl = |fields: [&str; 7]| serde_json::json!(fields);
    let write_ord = acl([
        "TOPIC",
        "ord",
        "PREFIXED",
        "User:alice",
        "*",
        "WRITE",
        "ALLOW",
    ]);
    let deny_bob = acl([
        "TOPIC", "orders", "LITERAL", "User:bob", "10.0.0.7", "READ", "DENY",
    ]);
    assert_eq!(
        seen["any"],
        serde_json::json!([
            acl([
                "CLUSTER",
                "kafka-cluster",
                "LITERAL",
                "User:*",
                "*",
                "DESCRIBE",
                "ALLOW"
            ]),
            acl([
                "GROUP",
                "billing",
                "LITERAL",
                "User:alice",
                "*",
                "READ",
                "ALLOW"
            ]),
            write_ord.clone(),
            deny_bob.clone(),
        ])
    );
    assert_eq!(
        seen["match_orders"],
        serde_json::json!([write_ord, deny_bob])
    );
    assert_eq!(broker.terminate(Duration::from_secs(30)), 0);

    let broker = start(&data, &["--authorizer", "acl", "--super-users", OPERATOR]);
    let out = python(&[
        &script("confluent_acls.py"),
        &broker.kafka.unwrap().to_string(),
        "check",
    ]);
    assert!(out.contains(r#""acls": 4"#), "{out}");
}

#[test]
fn without_an_authorizer_the_acl_apis_answer_security_disabled() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = start(&data_dir(&tmp), &[]);
    let kafka = broker.kafka.unwrap();
    let err = corelog_fails(kafka, &["acl", "list"]);
    assert!(
        err.contains("SECURITY_DISABLED (54)") && err.contains("--authorizer acl"),
        "{err}"
    );
    let err = corelog_fails(
        kafka,
        &[
            "acl",
            "add",
            "--principal",
            "User:alice",
            "--operation",
            "read",
            "--topic",
            "t",
        ],
    );
    assert!(err.contains("SECURITY_DISABLED (54)"), "{err}");
    // SCRAM users need no authorizer.
    ok(
        corelog_env(
            kafka,
            &["user", "create", "alice", "--mechanism", "SCRAM-SHA-512"],
            &[("CORELOG_PASSWORD", "pw")],
        ),
        "user create alice",
    );
    assert_eq!(
        rows(&corelog(kafka, &["user", "list"])),
        vec![vec!["alice", "SCRAM-SHA-512", "4096"]]
    );
    if kafka_clients_available() {
        let out = python(&[&script("confluent_acls.py"), &kafka.to_string(), "disabled"]);
        assert!(out.contains(r#""code": 54"#), "{out}");
        let out = python(&[
            &script("kafka_python_acls.py"),
            &kafka.to_string(),
            "disabled",
        ]);
        assert!(out.contains("--authorizer acl"), "{out}");
    }
}

#[test]
fn the_cli_creates_lists_and_deletes_users_and_acls() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = start(
        &data_dir(&tmp),
        &["--authorizer", "acl", "--super-users", OPERATOR],
    );
    let kafka = broker.kafka.unwrap();

    // Users: the password from the flag or the environment.
    let out = corelog(
        kafka,
        &[
            "user",
            "create",
            "alice",
            "--password",
            "pw",
            "--mechanism",
            "SCRAM-SHA-256",
            "--iterations",
            "8192",
        ],
    );
    assert!(out.contains("created user alice (SCRAM-SHA-256)"), "{out}");
    let out = ok(
        corelog_env(
            kafka,
            &["user", "create", "bob"],
            &[("CORELOG_PASSWORD", "from the environment")],
        ),
        "user create bob",
    );
    assert!(
        out.contains("created user bob (SCRAM-SHA-256, SCRAM-SHA-512)"),
        "{out}"
    );
    assert_eq!(
        rows(&corelog(kafka, &["user", "list"])),
        vec![
            vec!["alice", "SCRAM-SHA-256", "8192"],
            vec!["bob", "SCRAM-SHA-256", "4096"],
            vec!["bob", "SCRAM-SHA-512", "4096"],
        ]
    );
    let err = corelog_fails(
        kafka,
        &[
            "user",
            "create",
            "carol",
            "--password",
            "pw",
            "--iterations",
            "100",
        ],
    );
    assert!(err.contains("UNACCEPTABLE_CREDENTIAL (93)"), "{err}");
    let err = corelog_fails(kafka, &["user", "create", "carol"]);
    assert!(err.contains("CORELOG_PASSWORD"), "{err}");
    let err = corelog_fails(
        kafka,
        &["user", "delete", "alice", "--mechanism", "SCRAM-SHA-512"],
    );
    assert!(err.contains("RESOURCE_NOT_FOUND (91)"), "{err}");
    let out = corelog(kafka, &["user", "delete", "bob"]);
    assert!(
        out.contains("deleted user bob (SCRAM-SHA-256, SCRAM-SHA-512)"),
        "{out}"
    );
    assert_eq!(
        rows(&corelog(kafka, &["user", "list"])),
        vec![vec!["alice", "SCRAM-SHA-256", "8192"]]
    );

    // ACLs.
    let out = corelog(
        kafka,
        &[
            "acl",
            "add",
            "--principal",
            "User:alice",
            "--operation",
            "read",
            "--operation",
            "describe",
            "--topic",
            "orders",
        ],
    );
    assert_eq!(out.matches("added: ALLOW User:alice").count(), 2, "{out}");
    corelog(
        kafka,
        &[
            "acl",
            "add",
            "--principal",
            "User:bob",
            "--operation",
            "write",
            "--topic",
            "ord",
            "--prefixed",
            "--deny",
            "--host",
            "10.0.0.7",
        ],
    );
    corelog(
        kafka,
        &[
            "acl",
            "add",
            "--principal",
            "User:*",
            "--operation",
            "idempotent-write",
            "--cluster",
        ],
    );
    corelog(
        kafka,
        &[
            "acl",
            "add",
            "--principal",
            "User:alice",
            "--operation",
            "read",
            "--group",
            "billing",
        ],
    );
    let err = corelog_fails(
        kafka,
        &[
            "acl",
            "add",
            "--principal",
            "alice",
            "--operation",
            "read",
            "--topic",
            "orders",
        ],
    );
    assert!(
        err.contains("INVALID_REQUEST (42)") && err.contains("User:"),
        "{err}"
    );
    let all = rows(&corelog(kafka, &["acl", "list"]));
    assert_eq!(
        all,
        vec![
            vec![
                "User:bob", "10.0.0.7", "WRITE", "DENY", "TOPIC", "PREFIXED", "ord"
            ],
            vec![
                "User:alice",
                "*",
                "READ",
                "ALLOW",
                "TOPIC",
                "LITERAL",
                "orders"
            ],
            vec![
                "User:alice",
                "*",
                "DESCRIBE",
                "ALLOW",
                "TOPIC",
                "LITERAL",
                "orders"
            ],
            vec![
                "User:alice",
                "*",
                "READ",
                "ALLOW",
                "GROUP",
                "LITERAL",
                "billing"
            ],
            vec![
                "User:*",
                "*",
                "IDEMPOTENT_WRITE",
                "ALLOW",
                "CLUSTER",
                "LITERAL",
                "kafka-cluster"
            ],
        ]
    );
    assert_eq!(
        rows(&corelog(
            kafka,
            &["acl", "list", "--principal", "User:alice"]
        ))
        .len(),
        3
    );
    assert_eq!(
        rows(&corelog(kafka, &["acl", "list", "--topic", "orders"])).len(),
        2
    );
    assert_eq!(
        rows(&corelog(kafka, &["acl", "list", "--cluster"])).len(),
        1
    );

    // Remove with add's arguments: that ACL only.
    let out = corelog(
        kafka,
        &[
            "acl",
            "remove",
            "--principal",
            "User:alice",
            "--operation",
            "read",
            "--topic",
            "orders",
        ],
    );
    assert_eq!(
        out.trim(),
        "removed: ALLOW User:alice READ on TOPIC orders (LITERAL) from host *"
    );
    // Without a principal or operation: any on the resource (a deny needs
    // --deny, a host other than * its --host).
    let out = corelog(
        kafka,
        &[
            "acl",
            "remove",
            "--topic",
            "ord",
            "--prefixed",
            "--deny",
            "--host",
            "10.0.0.7",
        ],
    );
    assert!(out.contains("removed: DENY User:bob WRITE"), "{out}");
    let out = corelog(kafka, &["acl", "remove", "--topic", "nothing-here"]);
    assert_eq!(out.trim(), "no ACL matched");
    let left = rows(&corelog(kafka, &["acl", "list"]));
    assert_eq!(left.len(), 3, "{left:?}");
}

#[test]
fn a_bootstrap_user_gets_both_mechanisms_once_and_needs_its_password() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(&tmp);
    let password = Path::new("bootstrap secret");
    let mut broker = Broker::start_with_env(
        &data,
        2,
        &[
            "--kafka-listen",
            "127.0.0.1:0",
            "--no-pin",
            "--bootstrap-user",
            "admin",
        ],
        &[("CORELOG_BOOTSTRAP_PASSWORD", password)],
    );
    let listed = rows(&corelog(broker.kafka.unwrap(), &["user", "list"]));
    assert_eq!(
        listed,
        vec![
            vec!["admin", "SCRAM-SHA-256", "8192"],
            vec!["admin", "SCRAM-SHA-512", "8192"],
        ]
    );
    assert!(
        broker
            .log()
            .contains("created the bootstrap user's SCRAM credentials"),
        "{}",
        broker.log()
    );
    assert_eq!(broker.terminate(Duration::from_secs(30)), 0);
    let before = std::fs::read(data.join(".corelog-metadata")).unwrap();

    // Another start leaves the credentials alone, whatever the password.
    let mut broker = Broker::start_with_env(
        &data,
        2,
        &[
            "--kafka-listen",
            "127.0.0.1:0",
            "--no-pin",
            "--bootstrap-user",
            "admin",
        ],
        &[("CORELOG_BOOTSTRAP_PASSWORD", Path::new("another"))],
    );
    assert!(
        broker.log().contains("left as they are"),
        "{}",
        broker.log()
    );
    assert_eq!(broker.terminate(Duration::from_secs(30)), 0);
    assert_eq!(
        std::fs::read(data.join(".corelog-metadata")).unwrap(),
        before,
        "nothing was saved"
    );

    // Without the password (unset, or empty) the broker does not start.
    for env in [None, Some("")] {
        let mut command = Command::new(corelog_bin());
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--cores",
                "1",
                "--no-pin",
            ])
            .args(["--kafka-listen", "127.0.0.1:0", "--http-listen", "none"])
            .args(["--bootstrap-user", "admin", "--data-dir"])
            .arg(&data)
            .env_remove("CORELOG_BOOTSTRAP_PASSWORD");
        if let Some(value) = env {
            command.env("CORELOG_BOOTSTRAP_PASSWORD", value);
        }
        let mut child = command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("serve --bootstrap-user without a password did not exit");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let out = child.wait_with_output().unwrap();
        let (_, stderr) = text(&out);
        assert!(!status.success(), "{env:?}: started");
        assert!(
            stderr.contains("--bootstrap-user admin")
                && stderr.contains("CORELOG_BOOTSTRAP_PASSWORD"),
            "{env:?}: {stderr}"
        );
    }
}
