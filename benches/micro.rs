//! Micro-benchmarks of the pieces every record passes through.
//!
//! ```text
//! cargo bench --bench micro            # about half a minute
//! cargo bench --bench micro -- crc     # only the cases whose name matches
//! ```
//!
//! Each case runs a fixed amount of work in 7 rounds after one untimed
//! round and prints the median (and the spread: min..max) per operation.
//! Cases:
//!
//! - `batch encode+crc`: build a v2 batch of 64 × 1 KiB records and finish
//!   it (CRC-32C over the batch), as a producer does.
//! - `batch validate+crc`: the broker's check of that batch (framing,
//!   CRC, every record's varints).
//! - `batch decode`: iterate the records of a validated batch, as a
//!   consumer does.
//! - `crc32c 64 KiB`: the raw checksum, the floor under the two above.
//! - `frame verify+decode`: run a produce request carrying one 64 KiB
//!   batch through the flatbuffers verifier and find its batch bytes.
//! - `index lookup`: an offset-index binary search in a 1 GiB segment's
//!   index (262,144 entries, one per 4 KiB).
//! - `segment append`: a 64 KiB batch into an active segment on direct
//!   I/O (fsync never), until the bytes are written to the file.
//! - `cross-core hop`: a round trip of a small message over the glommio
//!   channel mesh between two executors pinned to different CPUs, the
//!   primitive that carries requests to the owning shard (half of it is
//!   one hop).
//! - `hop, spin 50 µs`: the same with executors that spin 50 µs before
//!   parking (glommio's `spin_before_park`), which the broker does not do:
//!   it shows how much of the hop is the wake-up of a parked executor.

use bytes::Bytes;
use corelog::protocol::produce_frame::{ProducePart, encode_produce};
use corelog::protocol::{parse_request, wire};
use corelog::record::{BatchBuilder, RecordBatch, validate};
use corelog::storage::Disk;
use corelog::storage::index::OffsetIndex;
use corelog::storage::segment::{Segment, SegmentSettings};
use corelog::types::{Offset, Timestamp};
use std::hint::black_box;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ROUNDS: usize = 7;
const RECORD_BYTES: usize = 1024;
const RECORDS_PER_BATCH: usize = 64;

struct Case {
    name: &'static str,
    /// Bytes one operation handles (0: report operations only).
    bytes: usize,
}

/// Times `ops` operations of `f` per round and prints the median.
fn report(case: &Case, ops: u64, mut round: impl FnMut() -> Duration) {
    round(); // warm-up, untimed
    let mut per_op: Vec<f64> = (0..ROUNDS)
        .map(|_| round().as_nanos() as f64 / ops as f64)
        .collect();
    per_op.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let median = per_op[ROUNDS / 2];
    let throughput = if case.bytes > 0 {
        format!("{:>9.0} MB/s", case.bytes as f64 / median * 1e3)
    } else {
        format!("{:>9.2} M/s", 1e3 / median)
    };
    println!(
        "{:<22} {:>12} /op  ({} .. {})  {throughput}",
        case.name,
        fmt_ns(median),
        fmt_ns(per_op[0]),
        fmt_ns(per_op[ROUNDS - 1]),
    );
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 10_000.0 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

fn timed(ops: u64, mut f: impl FnMut()) -> Duration {
    let started = Instant::now();
    for _ in 0..ops {
        f();
    }
    started.elapsed()
}

fn value() -> Vec<u8> {
    (0..RECORD_BYTES).map(|i| (i * 31 % 251) as u8).collect()
}

fn build_batch(builder: &mut BatchBuilder, value: &[u8]) -> Bytes {
    for i in 0..RECORDS_PER_BATCH {
        builder.push(
            Timestamp(1_700_000_000_000 + i as i64),
            None,
            Some(value),
            &[],
        );
    }
    builder.finish()
}

fn batch_cases(selected: &dyn Fn(&str) -> bool) {
    let value = value();
    let mut builder = BatchBuilder::with_capacity(RECORDS_PER_BATCH * (RECORD_BYTES + 32));
    let batch = build_batch(&mut builder, &value);
    let batch_len = batch.len();

    let case = Case {
        name: "batch encode+crc",
        bytes: batch_len,
    };
    if selected(case.name) {
        report(&case, 2_000, || {
            timed(2_000, || {
                black_box(build_batch(&mut builder, black_box(&value)));
            })
        });
    }

    let case = Case {
        name: "batch validate+crc",
        bytes: batch_len,
    };
    if selected(case.name) {
        report(&case, 5_000, || {
            timed(5_000, || {
                black_box(validate(black_box(&batch), 1 << 20).unwrap());
            })
        });
    }

    let case = Case {
        name: "batch decode",
        bytes: batch_len,
    };
    if selected(case.name) {
        let parsed = RecordBatch::parse(batch.clone(), 1 << 20).unwrap();
        report(&case, 5_000, || {
            timed(5_000, || {
                let mut sum = 0usize;
                for r in black_box(&parsed).records() {
                    sum += r.value.map_or(0, |v| v.len());
                }
                assert_eq!(sum, RECORDS_PER_BATCH * RECORD_BYTES);
            })
        });
    }

    let case = Case {
        name: "crc32c 64 KiB",
        bytes: 64 << 10,
    };
    if selected(case.name) {
        let data = vec![7u8; 64 << 10];
        report(&case, 5_000, || {
            timed(5_000, || {
                black_box(crc32c::crc32c(black_box(&data)));
            })
        });
    }

    let case = Case {
        name: "frame verify+decode",
        bytes: batch_len,
    };
    if selected(case.name) {
        let frame = encode_produce(
            1,
            1,
            30_000,
            &[(
                "bench-0",
                vec![ProducePart {
                    partition: 3,
                    records: &batch,
                }],
            )],
        )
        .to_vec();
        report(&case, 20_000, || {
            timed(20_000, || {
                let env = parse_request(black_box(&frame)).unwrap();
                let produce = env.request_as_produce_request().unwrap();
                let mut bytes = 0;
                for topic in produce.topics().unwrap() {
                    for p in topic.partitions().unwrap() {
                        bytes += p.records().map_or(0, |r| r.len());
                    }
                }
                assert_eq!(bytes, batch_len);
                black_box(env.request_type() == wire::Request::ProduceRequest);
            })
        });
    }
}

fn index_case(selected: &dyn Fn(&str) -> bool) {
    let case = Case {
        name: "index lookup",
        bytes: 0,
    };
    if !selected(case.name) {
        return;
    }
    // One entry per 4 KiB of a 1 GiB segment, 64 records per entry.
    let entries: Vec<(u32, u32)> = (0..262_144u32).map(|i| (i * 64, i * 4096)).collect();
    let index = OffsetIndex::from_entries(entries);
    let mut x = 0x2545_f491_4f6c_dd1du64;
    report(&case, 1_000_000, || {
        timed(1_000_000, || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            black_box(index.lookup(black_box((x % (262_144 * 64)) as u32)));
        })
    });
}

fn segment_case(selected: &dyn Fn(&str) -> bool) {
    let case = Case {
        name: "segment append",
        bytes: 0,
    };
    if !selected(case.name) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("corelog-micro-{}", std::process::id()));
    let dir2 = dir.clone();
    glommio::LocalExecutorBuilder::default()
        .spawn(move || async move {
            let disk = Disk::open(&dir2).await.unwrap();
            let value = value();
            let mut builder = BatchBuilder::with_capacity(RECORDS_PER_BATCH * (RECORD_BYTES + 32));
            let batch = build_batch(&mut builder, &value);
            let info = validate(&batch, 1 << 20).unwrap();
            let settings = SegmentSettings {
                index_interval_bytes: 4096,
                batch_bytes_max: 1 << 20,
                write_chunk_bytes: 1 << 20,
            };
            const OPS: u64 = 2_000; // 128 MiB per round
            let mut rounds = Vec::new();
            let mut base = 0u64;
            for _ in 0..=ROUNDS {
                let segment = Segment::create(&disk, &dir2, Offset(base), settings)
                    .await
                    .unwrap();
                let mut next = base;
                let mut stamped = batch.to_vec();
                let started = Instant::now();
                for _ in 0..OPS {
                    corelog::record::stamp_base_offset(&mut stamped, Offset(next));
                    segment
                        .append_batch(&stamped, Offset(next), info.max_timestamp, info.records)
                        .await
                        .unwrap();
                    next += info.records as u64;
                }
                let end = segment.flush_log().unwrap();
                segment.wait_written(end).await.unwrap();
                rounds.push(started.elapsed());
                segment.delete(&disk).await.unwrap();
                base = next;
            }
            let mut it = rounds.into_iter();
            report(
                &Case {
                    name: "segment append",
                    bytes: batch.len(),
                },
                OPS,
                || it.next().unwrap(),
            );
        })
        .unwrap()
        .join()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

fn hop_case(selected: &dyn Fn(&str) -> bool, name: &'static str, spin: Option<Duration>) {
    use glommio::channels::channel_mesh::MeshBuilder;
    let case = Case { name, bytes: 0 };
    if !selected(case.name) {
        return;
    }
    const OPS: u64 = 20_000;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mesh = MeshBuilder::<u64, _>::full(2, corelog::constants::MESH_CHANNEL_CAPACITY);
    let handles: Vec<_> = (0..2)
        .map(|i| {
            let mesh = mesh.clone();
            let mut builder =
                glommio::LocalExecutorBuilder::new(glommio::Placement::Fixed(i % cpus));
            if let Some(spin) = spin {
                builder = builder.spin_before_park(spin);
            }
            builder
                .spawn(move || async move {
                    let (senders, receivers) = mesh.join().await.unwrap();
                    let me = senders.peer_id();
                    let other = 1 - me;
                    let mut rounds = Vec::new();
                    for _ in 0..=ROUNDS {
                        let started = Instant::now();
                        for n in 0..OPS {
                            if me == 0 {
                                senders.send_to(other, n).await.unwrap();
                                let back = receivers.recv_from(other).await.unwrap();
                                assert_eq!(back, Some(n));
                            } else {
                                let got = receivers.recv_from(other).await.unwrap().unwrap();
                                senders.send_to(other, got).await.unwrap();
                            }
                        }
                        rounds.push(started.elapsed());
                    }
                    (me, rounds)
                })
                .unwrap()
        })
        .collect();
    for h in handles {
        let (me, rounds) = h.join().unwrap();
        if me == 0 {
            let mut it = rounds.into_iter();
            report(&case, OPS, || it.next().unwrap());
        }
    }
    if cpus < 2 {
        println!("  (one CPU: both executors share it, so this is not a cross-core figure)");
    }
}

fn main() {
    // `cargo bench` passes --bench; anything else is a name filter.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let selected = move |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f));
    println!(
        "{:<22} {:>12}      {:<22}  throughput",
        "case", "median", "(min .. max)"
    );
    batch_cases(&selected);
    index_case(&selected);
    segment_case(&selected);
    hop_case(&selected, "cross-core hop", None);
    hop_case(
        &selected,
        "hop, spin 50 µs",
        Some(Duration::from_micros(50)),
    );
}
