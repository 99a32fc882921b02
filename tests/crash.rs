//! Kill a process that appends with `fsync always` at random moments and
//! check that every append it acknowledged survives, in order, without gaps
//! or duplicates.

use corelog::record::RecordBatch;
use corelog::storage::{Disk, LogConfig, PartitionLog};
use corelog::types::Offset;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CYCLES_MIN: usize = 20;
const CYCLES_MAX: usize = 40;
const BUDGET: Duration = Duration::from_secs(90);

/// A small deterministic generator, so a failing seed can be replayed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// (base offset → (records, writer, sequence)) for every acknowledged append.
type Acks = BTreeMap<u64, (u32, u32, u64)>;

fn parse_ack(line: &str) -> (u64, u32, u32, u64) {
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(f[0], "ack", "unexpected child output: {line}");
    (
        f[1].parse().unwrap(),
        f[2].parse().unwrap(),
        f[3].parse().unwrap(),
        f[4].parse().unwrap(),
    )
}

/// Runs the child until it has acknowledged `acks_before_kill` appends (or
/// a short time passed), SIGKILLs it, and returns every ack it printed.
fn run_and_kill(
    data: &Path,
    acks_before_kill: u64,
    delay_after: Duration,
) -> Vec<(u64, u32, u32, u64)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_corelog"))
        .args([
            "debug",
            "append-loop",
            "--fsync",
            "always",
            "--writers",
            "8",
            "--dir",
        ])
        .arg(data)
        .env("RUST_LOG", "corelog=warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the child");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(parse_ack(&line)).is_err() {
                break;
            }
        }
    });
    let mut acks = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while (acks.len() as u64) < acks_before_kill && Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(ack) => acks.push(ack),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(_) => panic!("child exited early: {:?}", child.try_wait()),
        }
    }
    assert!(
        !acks.is_empty() || acks_before_kill == 0,
        "child acknowledged nothing within 10 s"
    );
    // Kill at a moment not aligned with an ack.
    std::thread::sleep(delay_after);
    child.kill().expect("SIGKILL the child");
    child.wait().unwrap();
    reader.join().unwrap();
    // Acks printed before the kill and still in the pipe count too.
    acks.extend(rx.try_iter());
    acks
}

/// Reopens the log (recovery) and returns each batch as
/// base offset → (records, keys).
fn read_back(data: &Path) -> (Offset, Vec<(u64, Vec<String>)>) {
    let data = data.to_path_buf();
    glommio::LocalExecutorBuilder::default()
        .make()
        .unwrap()
        .run(async move {
            let disk = Disk::open(&data).await.unwrap();
            let log = PartitionLog::open(&disk, data.join("crash").join("0"), LogConfig::default())
                .await
                .unwrap();
            let mut batches = Vec::new();
            let mut pos = log.start_offset();
            while pos < log.high_watermark() {
                let read = log
                    .read(pos, 1 << 20)
                    .await
                    .expect("reading after recovery");
                for bytes in read.batches() {
                    let batch = RecordBatch::parse(bytes, usize::MAX).unwrap();
                    let keys = batch
                        .records()
                        .map(|r| String::from_utf8(r.key.unwrap().to_vec()).unwrap())
                        .collect();
                    batches.push((batch.base_offset().0, keys));
                }
                pos = read.next_offset;
            }
            let end = log.end_offset();
            log.close().await.unwrap();
            (end, batches)
        })
}

#[test]
fn every_acknowledged_append_survives_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("crash test seed {seed} (replay with CRASH_SEED={seed})");
    let mut rng = XorShift(seed);
    let mut acked = Acks::new();
    let started = Instant::now();
    let mut cycles = 0;
    while cycles < CYCLES_MAX && (cycles < CYCLES_MIN || started.elapsed() < BUDGET / 3) {
        assert!(
            started.elapsed() < BUDGET,
            "crash test over its time budget after {cycles} cycles"
        );
        let kill_after = rng.next() % 400;
        let delay = Duration::from_micros(rng.next() % 3000);
        for (base, records, writer, seq) in run_and_kill(&data, kill_after, delay) {
            let previous = acked.insert(base, (records, writer, seq));
            assert!(
                previous.is_none(),
                "offset {base} acknowledged twice (cycle {cycles})"
            );
        }
        let (end, batches) = read_back(&data);
        // Dense offsets, in order, no duplicates.
        let mut expected = 0u64;
        for (base, keys) in &batches {
            assert_eq!(
                *base, expected,
                "gap or overlap at offset {expected} (cycle {cycles}, seed {seed})"
            );
            expected += keys.len() as u64;
        }
        assert_eq!(expected, end.0);
        // Every acknowledged append is there with its own records.
        let stored: BTreeMap<u64, &Vec<String>> = batches.iter().map(|(b, k)| (*b, k)).collect();
        for (base, (records, writer, seq)) in &acked {
            let keys = stored
                .get(base)
                .unwrap_or_else(|| panic!("acknowledged batch at offset {base} is missing after cycle {cycles} (seed {seed})"));
            let want: Vec<String> = (0..*records)
                .map(|i| corelog::cli::crash_key(*writer, *seq, i))
                .collect();
            assert_eq!(
                *keys, &want,
                "batch at {base} holds other records (seed {seed})"
            );
        }
        cycles += 1;
    }
    eprintln!(
        "{cycles} SIGKILL cycles, {} acknowledged appends, all present ({:.1} s)",
        acked.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(cycles >= CYCLES_MIN);
}
