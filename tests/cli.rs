//! The command line against a real broker: topic admin, produce from
//! stdin, consume with formats, help and bad flags.

mod common;

use common::{Broker, corelog_bin};
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn corelog(broker: &Broker, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(corelog_bin())
        .args(args)
        .args(["--broker", &broker.addr.to_string()])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "command failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_five_minute_tour_works_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = Broker::start(&tmp.path().join("data"), 2, &[]);
    let created = ok(corelog(
        &broker,
        &[
            "topic",
            "create",
            "tour",
            "--partitions",
            "3",
            "--retention-ms",
            "86400000",
            "--fsync",
            "always",
        ],
        None,
    ));
    assert!(
        created.contains("created topic tour with 3 partitions"),
        "{created}"
    );
    let listed = ok(corelog(&broker, &["topic", "list"], None));
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("tour") && l.contains(" 3 ")),
        "{listed}"
    );

    let lines: String = (0..300)
        .map(|i| format!("user-{}:event {i}\n", i % 7))
        .collect();
    let produced = corelog(
        &broker,
        &["produce", "tour", "--key-separator", ":", "--acks", "all"],
        Some(&lines),
    );
    assert!(
        produced.status.success(),
        "{}",
        String::from_utf8_lossy(&produced.stderr)
    );
    assert!(String::from_utf8_lossy(&produced.stderr).contains("produced 300 records"));

    let described = ok(corelog(&broker, &["topic", "describe", "tour"], None));
    assert!(described.contains("fsync always"), "{described}");
    assert_eq!(setting(&described, "retention.ms"), ["86400000", "topic"]);
    assert_eq!(setting(&described, "flush.messages"), ["1", "topic"]);
    let ends: u64 = described
        .lines()
        .filter(|l| l.trim_end().ends_with("ok"))
        .map(|l| l.split_whitespace().nth(3).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(ends, 300, "{described}");

    // Everything, by default one value per line.
    let all = ok(corelog(
        &broker,
        &["consume", "tour", "--from-beginning"],
        None,
    ));
    assert_eq!(all.lines().count(), 300);
    assert!(all.lines().all(|l| l.starts_with("event ")));
    // A key lives on one partition, in order.
    let formatted = ok(corelog(
        &broker,
        &[
            "consume",
            "tour",
            "--from-beginning",
            "--format",
            "{key}\t{partition}\t{offset}\t{value}",
        ],
        None,
    ));
    let mut per_key: std::collections::HashMap<String, (String, i64)> = Default::default();
    for line in formatted.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let n: i64 = f[3].strip_prefix("event ").unwrap().parse().unwrap();
        let entry = per_key
            .entry(f[0].to_string())
            .or_insert((f[1].to_string(), -1));
        assert_eq!(entry.0, f[1], "key {} on one partition", f[0]);
        assert!(n > entry.1, "key {} in order", f[0]);
        entry.1 = n;
    }
    assert_eq!(per_key.len(), 7);
    // One partition, from an offset, a bounded number.
    let some = ok(corelog(
        &broker,
        &[
            "consume",
            "tour",
            "--partition",
            "1",
            "--offset",
            "2",
            "--max-messages",
            "3",
            "--format",
            "{partition}/{offset}",
        ],
        None,
    ));
    assert_eq!(some.lines().collect::<Vec<_>>(), vec!["1/2", "1/3", "1/4"]);
    // The default start is the end, as in Kafka: nothing new, nothing printed.
    assert_eq!(ok(corelog(&broker, &["consume", "tour"], None)), "");

    let stats = ok(corelog(&broker, &["stats"], None));
    assert!(
        stats.contains("HOPS")
            && stats.contains("CPU_S")
            && stats.lines().count() == 4
            && stats.contains("process CPU: "),
        "{stats}"
    );
    assert!(
        ok(corelog(&broker, &["topic", "delete", "tour"], None)).contains("deleted topic tour")
    );
    assert!(!ok(corelog(&broker, &["topic", "list"], None)).contains("tour"));
}

/// The value and source `topic describe` or `topic alter` prints for
/// `name`.
fn setting(out: &str, name: &str) -> Vec<String> {
    let line = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("{name} missing from\n{out}"));
    line.split_whitespace()
        .skip(1)
        .map(str::to_string)
        .collect()
}

#[test]
fn topic_alter_changes_settings_and_describe_shows_each_source() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let broker = Broker::start(&data, 2, &["--segment-bytes", "8388608"]);
    ok(corelog(
        &broker,
        &["topic", "create", "knobs", "--partitions", "2"],
        None,
    ));
    let described = ok(corelog(&broker, &["topic", "describe", "knobs"], None));
    for (name, value, source) in [
        ("cleanup.policy", "delete", "default"),
        ("delete.retention.ms", "86400000", "default"),
        ("min.compaction.lag.ms", "0", "default"),
        ("retention.ms", "-1", "default"),
        ("retention.bytes", "-1", "default"),
        ("segment.bytes", "8388608", "broker"),
        ("segment.ms", "604800000", "default"),
        ("max.message.bytes", "16777216", "default"),
        ("message.timestamp.type", "CreateTime", "default"),
        ("min.insync.replicas", "1", "default"),
        ("flush.messages", "9223372036854775807", "default"),
        ("flush.ms", "9223372036854775807", "default"),
    ] {
        assert_eq!(setting(&described, name), [value, source], "{described}");
    }

    let altered = ok(corelog(
        &broker,
        &[
            "topic",
            "alter",
            "knobs",
            "--set",
            "retention.ms=3600000,segment.bytes=1048576",
            "--set",
            "flush.ms=250",
            "--set",
            "message.timestamp.type=LogAppendTime",
        ],
        None,
    ));
    assert!(altered.contains("altered topic knobs"), "{altered}");
    assert_eq!(setting(&altered, "retention.ms"), ["3600000", "topic"]);
    let described = ok(corelog(&broker, &["topic", "describe", "knobs"], None));
    assert!(described.contains("fsync interval:250"), "{described}");
    assert_eq!(setting(&described, "segment.bytes"), ["1048576", "topic"]);
    assert_eq!(setting(&described, "flush.ms"), ["250", "topic"]);
    assert_eq!(
        setting(&described, "message.timestamp.type"),
        ["LogAppendTime", "topic"]
    );

    // --delete returns a setting to the broker's value.
    let altered = ok(corelog(
        &broker,
        &[
            "topic",
            "alter",
            "knobs",
            "--delete",
            "segment.bytes,flush.ms",
        ],
        None,
    ));
    assert_eq!(setting(&altered, "segment.bytes"), ["8388608", "broker"]);
    assert_eq!(
        setting(&altered, "flush.ms"),
        ["9223372036854775807", "default"]
    );

    // Bad values: the reason and INVALID_CONFIG, a non-zero exit, and
    // nothing changed.
    let before = ok(corelog(&broker, &["topic", "describe", "knobs"], None));
    for (args, reason) in [
        (
            &["--set", "retention.ms=10,segment.bytes=10"][..],
            "segment.bytes 10 is outside",
        ),
        (
            &["--set", "cleanup.policy=shred"][..],
            "not one of delete, compact",
        ),
        (&["--set", "retention.ms=soon"][..], "whole number"),
        (&["--set", "retention.ms"][..], "not key=value"),
        (&[][..], "nothing to change"),
    ] {
        let out = corelog(
            &broker,
            &[&["topic", "alter", "knobs"][..], args].concat(),
            None,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(reason),
            "{args:?}: {stderr}"
        );
    }
    let out = corelog(
        &broker,
        &["topic", "alter", "knobs", "--set", "segment.ms=0"],
        None,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("INVALID_CONFIG"));
    assert_eq!(
        ok(corelog(&broker, &["topic", "describe", "knobs"], None)),
        before
    );
    let out = corelog(
        &broker,
        &["topic", "alter", "missing", "--set", "retention.ms=1"],
        None,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("UNKNOWN_TOPIC"));
}

#[test]
fn errors_name_the_problem_and_exit_non_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = Broker::start(&tmp.path().join("data"), 1, &[]);
    let out = corelog(&broker, &["topic", "describe", "missing"], None);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("UNKNOWN_TOPIC"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = corelog(&broker, &["produce", "missing"], Some("x\n"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("UNKNOWN_TOPIC"));
    let out = corelog(
        &broker,
        &[
            "topic",
            "create",
            "t",
            "--partitions",
            "1",
            "--fsync",
            "sometimes",
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("always, interval:MS, never"));
    // An unreachable broker fails fast with the address in the message.
    let started = std::time::Instant::now();
    let out = Command::new(corelog_bin())
        .args(["topic", "list", "--broker", "127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("127.0.0.1:1"));
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn help_lists_every_command_and_option() {
    let help = String::from_utf8(
        Command::new(corelog_bin())
            .arg("--help")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    for command in ["serve", "topic", "produce", "consume", "stats", "demo"] {
        assert!(help.contains(command), "{command} missing from --help");
    }
    let serve = String::from_utf8(
        Command::new(corelog_bin())
            .args(["serve", "--help"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    for flag in [
        "--data-dir",
        "--listen",
        "--cores",
        "--shard-ports",
        "--config",
        "--fsync",
        "--retention-ms",
        "--idle-timeout-ms",
    ] {
        assert!(serve.contains(flag), "{flag} missing from serve --help");
    }
    let consume = String::from_utf8(
        Command::new(corelog_bin())
            .args(["consume", "--help"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    for flag in [
        "--from-beginning",
        "--offset",
        "--partition",
        "--max-messages",
        "--follow",
        "--format",
        "--broker",
    ] {
        assert!(consume.contains(flag), "{flag} missing from consume --help");
    }
    let out = Command::new(corelog_bin())
        .args(["serve", "--colour", "blue"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--colour"));
}
