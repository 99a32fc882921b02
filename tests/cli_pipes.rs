//! The command line in pipes: output whose reader went away early
//! (`corelog consume … | head -1`) ends the command quietly with status 0,
//! and logs on a pipe are plain text (no colour) or JSON lines that name
//! their module.

mod common;

use common::{Broker, corelog_bin, start_with_kafka};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(60);

/// Waits for `child` to exit, killing it and failing after `within`.
fn wait(child: &mut Child, within: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Reads all of `from` on a thread of its own.
fn collect(mut from: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = from.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Runs corelog with `args` and `stdin`, within [`DEADLINE`].
fn corelog(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(corelog_bin())
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let stdout = collect(child.stdout.take().unwrap());
    let stderr = collect(child.stderr.take().unwrap());
    let status = wait(&mut child, DEADLINE, &format!("corelog {args:?}"));
    writer.join().unwrap();
    Output {
        status,
        stdout: stdout.join().unwrap().into_bytes(),
        stderr: stderr.join().unwrap().into_bytes(),
    }
}

fn ok(args: &[&str], stdin: &[u8]) -> Output {
    let out = corelog(args, stdin);
    assert!(
        out.status.success(),
        "corelog {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Stderr of a command whose stdout went away: no panic, no complaint.
fn assert_quiet(args: &[&str], status: ExitStatus, stderr: &str) {
    assert!(
        status.success(),
        "corelog {args:?} after its reader left: {status}\n{stderr}"
    );
    for bad in ["panicked", "Broken pipe", "error"] {
        assert!(
            !stderr.contains(bad),
            "corelog {args:?} after its reader left said {bad:?}:\n{stderr}"
        );
    }
}

/// Runs corelog like `corelog ARGS | head -1`: reads the first line of its
/// stdout, closes the pipe, and returns that line, the exit status and
/// stderr.
fn first_line_then_close(args: &[&str]) -> (String, ExitStatus, String) {
    let mut child = Command::new(corelog_bin())
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = collect(child.stderr.take().unwrap());
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = stdout.read_line(&mut line);
        // The reader goes away here, as `head -1` does.
        drop(stdout);
        let _ = tx.send(line);
    });
    let line = match rx.recv_timeout(DEADLINE) {
        Ok(line) => line,
        Err(_) => {
            let _ = child.kill();
            panic!("corelog {args:?} printed no line within {DEADLINE:?}");
        }
    };
    let status = wait(&mut child, DEADLINE, &format!("corelog {args:?}"));
    (line, status, stderr.join().unwrap())
}

/// Runs corelog with a stdout pipe whose reader is already closed: its
/// first write fails with EPIPE, whatever the command prints.
fn into_closed_pipe(args: &[&str]) -> (ExitStatus, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut child = Command::new(corelog_bin())
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = collect(child.stderr.take().unwrap());
    let status = wait(&mut child, DEADLINE, &format!("corelog {args:?}"));
    (status, stderr.join().unwrap())
}

/// A broker with a Kafka listener and topic `t` (2 partitions) holding
/// `records` records of about 1 KB each: more than a pipe's buffer, so a
/// consumer printing them blocks until its reader reads or leaves.
fn broker_with_records(dir: &std::path::Path, records: usize) -> Broker {
    let broker = start_with_kafka(&dir.join("data"), 1, &[]);
    let addr = broker.addr.to_string();
    ok(
        &[
            "topic",
            "create",
            "t",
            "--partitions",
            "2",
            "--broker",
            &addr,
        ],
        b"",
    );
    let pad = "x".repeat(1000);
    let input: String = (0..records)
        .map(|i| format!("record-{i} {pad}\n"))
        .collect();
    let produced = ok(
        &["produce", "t", "--acks", "all", "--broker", &addr],
        input.as_bytes(),
    );
    let stderr = String::from_utf8_lossy(&produced.stderr);
    assert!(
        stderr.contains(&format!("produced {records} records")),
        "{stderr}"
    );
    // Not a terminal: no transient progress line.
    assert!(!stderr.contains('\r'), "{stderr:?}");
    broker
}

#[test]
fn consume_into_head_ends_quietly_with_status_0() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = broker_with_records(tmp.path(), 400);
    let addr = broker.addr.to_string();
    let args = ["consume", "t", "--from-beginning", "--broker", &addr];
    let (line, status, stderr) = first_line_then_close(&args);
    assert!(line.starts_with("record-"), "{line:?}");
    assert_quiet(&args, status, &stderr);

    // Following a topic whose few records fit in the pipe: the consumer
    // then waits for more and writes nothing, yet notices its reader leave
    // and ends.
    ok(
        &[
            "topic",
            "create",
            "few",
            "--partitions",
            "1",
            "--broker",
            &addr,
        ],
        b"",
    );
    ok(
        &["produce", "few", "--acks", "all", "--broker", &addr],
        b"one\ntwo\nthree\n",
    );
    let args = [
        "consume",
        "few",
        "--from-beginning",
        "--follow",
        "--broker",
        &addr,
    ];
    let (line, status, stderr) = first_line_then_close(&args);
    assert_eq!(line, "one\n");
    assert_quiet(&args, status, &stderr);
}

#[test]
fn a_group_member_whose_reader_left_leaves_its_group() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = broker_with_records(tmp.path(), 400);
    let kafka = broker.kafka.unwrap().to_string();
    let args = [
        "consume",
        "t",
        "--group",
        "readers",
        "--from-beginning",
        "--kafka-broker",
        &kafka,
    ];
    let (line, status, stderr) = first_line_then_close(&args);
    assert!(line.starts_with("record-"), "{line:?}");
    assert!(status.success(), "{status}\n{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{stderr}"
    );
    // It left rather than waiting for its session to time out.
    let described = ok(
        &["group", "describe", "readers", "--kafka-broker", &kafka],
        b"",
    );
    let text = String::from_utf8_lossy(&described.stdout);
    assert!(text.contains("0 member(s)"), "{text}");
}

#[test]
fn every_printing_command_ends_quietly_when_stdout_is_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = broker_with_records(tmp.path(), 50);
    let addr = broker.addr.to_string();
    let kafka = broker.kafka.unwrap().to_string();
    // A group with committed offsets and no members, to describe.
    ok(
        &[
            "group",
            "reset-offsets",
            "idle",
            "--topic",
            "t",
            "--to-earliest",
            "--execute",
            "--kafka-broker",
            &kafka,
        ],
        b"",
    );
    let native: &[&[&str]] = &[
        &["topic", "list"],
        &["topic", "describe", "t"],
        &["topic", "create", "u", "--partitions", "1"],
        &["topic", "alter", "u", "--set", "retention.ms=60000"],
        &["stats"],
        &["consume", "t", "--from-beginning"],
        &["consume", "t", "--from-beginning", "--format", "{offset}"],
    ];
    for args in native {
        let args = [*args, &["--broker", addr.as_str()][..]].concat();
        let (status, stderr) = into_closed_pipe(&args);
        assert_quiet(&args, status, &stderr);
    }
    let groups: &[&[&str]] = &[
        &["group", "list"],
        &["group", "describe", "idle"],
        &[
            "group",
            "reset-offsets",
            "idle",
            "--topic",
            "t",
            "--to-latest",
        ],
    ];
    for args in groups {
        let args = [*args, &["--kafka-broker", kafka.as_str()][..]].concat();
        let (status, stderr) = into_closed_pipe(&args);
        assert_quiet(&args, status, &stderr);
    }
    // The commands did their work all the same.
    let listed = ok(&["topic", "list", "--broker", &addr], b"");
    assert!(String::from_utf8_lossy(&listed.stdout).contains("u "));
}

#[test]
fn topic_list_into_head_ends_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = broker_with_records(tmp.path(), 10);
    let addr = broker.addr.to_string();
    let args = ["topic", "list", "--broker", &addr];
    let (line, status, stderr) = first_line_then_close(&args);
    assert!(line.starts_with("TOPIC"), "{line:?}");
    assert_quiet(&args, status, &stderr);
}

/// `corelog serve` with `extra` flags and stderr on a pipe; returns the
/// child and a channel of its stderr lines. Stdout is drained.
fn serve(dir: &std::path::Path, extra: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(corelog_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--cores", "1"])
        .args(["--kafka-listen", "none", "--data-dir"])
        .arg(dir)
        .args(extra)
        .env("RUST_LOG", "corelog=info")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _stdout = collect(child.stdout.take().unwrap());
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Lines from `rx` up to and including the first that `wanted` accepts.
fn lines_until(
    rx: &mpsc::Receiver<String>,
    child: &mut Child,
    wanted: impl Fn(&str) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + DEADLINE;
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let done = wanted(&line);
                lines.push(line);
                if done {
                    return lines;
                }
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no such log line within {DEADLINE:?}; saw:\n{lines:#?}");
            }
        }
    }
}

/// SIGTERM, then the rest of stderr; the broker must exit 0.
fn stop(mut child: Child, rx: mpsc::Receiver<String>) -> Vec<String> {
    // The broker installs its handler after its shards are ready; a
    // SIGTERM before that would kill it. /proc says when it is caught.
    let status = format!("/proc/{}/status", child.id());
    let deadline = Instant::now() + DEADLINE;
    while !std::fs::read_to_string(&status)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("SigCgt:"))
        .any(|mask| {
            u64::from_str_radix(mask.trim(), 16).unwrap_or(0) & (1 << (libc::SIGTERM - 1)) != 0
        })
    {
        assert!(
            Instant::now() < deadline,
            "no SIGTERM handler within {DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: kill(2) on the child we spawned.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let status = wait(&mut child, DEADLINE, "corelog serve after SIGTERM");
    assert!(status.success(), "{status}");
    rx.iter().collect()
}

#[test]
fn json_logs_are_one_object_a_line_naming_the_module() {
    let tmp = tempfile::tempdir().unwrap();
    // After the subcommand: the option is global.
    let (mut child, rx) = serve(&tmp.path().join("data"), &["--log-format", "json"]);
    let mut lines = lines_until(&rx, &mut child, |l| l.contains("shard ready"));
    lines.extend(stop(child, rx));
    let events: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    for e in &events {
        assert!(e["timestamp"].is_string(), "{e}");
        assert!(e["level"].is_string(), "{e}");
        assert!(
            e["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("corelog")),
            "{e}"
        );
    }
    let ready = events
        .iter()
        .find(|e| e["fields"]["message"] == "shard ready")
        .expect("a shard ready event");
    assert_eq!(ready["target"], "corelog::shard", "{ready}");
    assert_eq!(ready["level"], "INFO", "{ready}");
    assert_eq!(ready["fields"]["shard"], 0, "{ready}");
    assert!(
        events
            .iter()
            .any(|e| e["fields"]["message"] == "stopped cleanly"),
        "{events:#?}"
    );
}

#[test]
fn text_logs_on_a_pipe_have_no_colour_and_name_the_module() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, rx) = serve(&tmp.path().join("data"), &[]);
    let mut lines = lines_until(&rx, &mut child, |l| l.contains("shard ready"));
    lines.extend(stop(child, rx));
    let text = lines.join("\n");
    assert!(!text.contains("\x1b["), "ANSI escapes in {text:?}");
    let ready = lines.iter().find(|l| l.contains("shard ready")).unwrap();
    assert!(
        ready.contains(" INFO corelog::shard: shard ready"),
        "{ready}"
    );
    assert!(text.contains("stopped cleanly"), "{text}");
}
