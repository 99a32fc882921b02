//! The command line in pipes: logs on a pipe are plain text (no colour)
//! or JSON lines that name their module.

mod common;

use common::corelog_bin;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
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
