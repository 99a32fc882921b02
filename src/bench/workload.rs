//! What a benchmark run does, as recorded in its report.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Which side is measured.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Producers only: throughput and produce→ack latency.
    Produce,
    /// Topics are filled first (not measured), then consumers read them
    /// (from the start again whenever they reach the end).
    Consume,
    /// Producers and consumers together: also end-to-end latency.
    #[default]
    E2e,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Produce => "produce",
            Mode::Consume => "consume",
            Mode::E2e => "e2e",
        })
    }
}

/// Message sizes: one size, or an inclusive range drawn uniformly.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizeRange {
    pub min: usize,
    pub max: usize,
}

/// Every message carries its send time and a sequence number.
pub const MESSAGE_BYTES_MIN: usize = 16;

impl FromStr for SizeRange {
    type Err = String;

    fn from_str(s: &str) -> Result<SizeRange, String> {
        let parse = |v: &str| {
            v.trim()
                .parse::<usize>()
                .map_err(|_| format!("message size {v:?} is not a number of bytes"))
        };
        let (min, max) = match s.split_once("..") {
            Some((a, b)) => (parse(a)?, parse(b)?),
            None => {
                let v = parse(s)?;
                (v, v)
            }
        };
        if min > max {
            return Err(format!("message size range {s:?} is empty (min above max)"));
        }
        if min < MESSAGE_BYTES_MIN {
            return Err(format!(
                "messages must be at least {MESSAGE_BYTES_MIN} bytes (they carry their send time), got {min}"
            ));
        }
        if max > 8 << 20 {
            return Err(format!("messages above 8 MiB are not supported, got {max}"));
        }
        Ok(SizeRange { min, max })
    }
}

impl fmt::Display for SizeRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == self.max {
            write!(f, "{} B", self.min)
        } else {
            write!(f, "{}..{} B", self.min, self.max)
        }
    }
}

impl Default for SizeRange {
    fn default() -> Self {
        SizeRange {
            min: 1024,
            max: 1024,
        }
    }
}

/// The whole workload, as the report records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Workload {
    pub mode: Mode,
    pub producers: u32,
    pub consumers: u32,
    pub topics: u32,
    pub partitions: u32,
    pub topic_prefix: String,
    pub message_size: SizeRange,
    pub keyed: bool,
    pub batch_bytes: usize,
    pub linger_ms: u64,
    /// Batch compression: "none", "gzip", "snappy", "lz4" or "zstd".
    pub compression: String,
    /// What producers and consumers speak: "native" or "kafka".
    pub protocol: String,
    /// "0", "1" or "all".
    pub acks: String,
    /// The fsync policy topics were created with ("existing" if they were
    /// not created by the run).
    pub fsync: String,
    /// Total messages to produce (all producers); `None`: run for
    /// `duration_secs`.
    pub messages: Option<u64>,
    pub duration_secs: u64,
    pub warmup_secs: u64,
    /// Target messages per second over all producers (open loop); `None`:
    /// as fast as possible (closed loop).
    pub rate: Option<f64>,
    /// "direct" (shard-aware) or "shared".
    pub routing: String,
    /// e2e at unlimited rate: producers hold back while consumers are more
    /// than this many bytes behind, so the run measures the rate the whole
    /// pipeline sustains instead of a growing backlog. 0: no limit.
    pub max_lag_bytes: u64,
    /// Consumers join this consumer group and the broker assigns them the
    /// partitions; `None`: partitions are dealt round robin (manual
    /// assignment).
    pub group: Option<String>,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            mode: Mode::E2e,
            producers: 1,
            consumers: 1,
            topics: 1,
            partitions: 4,
            topic_prefix: "bench".into(),
            message_size: SizeRange::default(),
            keyed: false,
            batch_bytes: 256 << 10,
            linger_ms: 5,
            compression: "none".into(),
            protocol: "native".into(),
            acks: "1".into(),
            fsync: "never".into(),
            messages: None,
            duration_secs: 10,
            warmup_secs: 2,
            rate: None,
            routing: "direct".into(),
            max_lag_bytes: 4 << 20,
            group: None,
        }
    }
}

impl Workload {
    /// Topic names of the run.
    pub fn topic_names(&self) -> Vec<String> {
        (0..self.topics)
            .map(|t| format!("{}-{t}", self.topic_prefix))
            .collect()
    }

    /// Checks that the workload makes sense; explains the first problem.
    pub fn validate(&self) -> Result<(), String> {
        if self.topics == 0 || self.partitions == 0 {
            return Err("topics and partitions must be at least 1".into());
        }
        if self.mode != Mode::Consume && self.producers == 0 {
            return Err(format!("{} mode needs at least one producer", self.mode));
        }
        if self.mode != Mode::Produce && self.consumers == 0 {
            return Err(format!("{} mode needs at least one consumer", self.mode));
        }
        if self.messages == Some(0) {
            return Err("--messages must be at least 1".into());
        }
        if self.messages.is_none() && self.duration_secs == 0 {
            return Err("give --duration above 0 or --messages".into());
        }
        if let Err(e) = self.compression.parse::<crate::record::Compression>() {
            return Err(e.to_string());
        }
        let protocol: crate::client::Wire = self.protocol.parse()?;
        if protocol == crate::client::Wire::Kafka && self.routing == "shared" {
            return Err("--routing shared is a native-protocol setting; Kafka clients always reach the broker's Kafka listener".into());
        }
        if self.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
            return Err("--rate must be a positive number of messages per second".into());
        }
        if self.batch_bytes < self.message_size.max + 128 {
            return Err(format!(
                "--batch-bytes {} must exceed the largest message ({}) by at least 128",
                self.batch_bytes, self.message_size.max
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_explain_mistakes() {
        assert_eq!(
            "1024".parse::<SizeRange>(),
            Ok(SizeRange {
                min: 1024,
                max: 1024
            })
        );
        assert_eq!(
            "100..1000".parse::<SizeRange>(),
            Ok(SizeRange {
                min: 100,
                max: 1000
            })
        );
        assert!(
            "8".parse::<SizeRange>()
                .unwrap_err()
                .contains("at least 16")
        );
        assert!(
            "900..100"
                .parse::<SizeRange>()
                .unwrap_err()
                .contains("empty")
        );
        assert!(
            "big"
                .parse::<SizeRange>()
                .unwrap_err()
                .contains("not a number")
        );
    }

    #[test]
    fn workloads_validate() {
        Workload::default().validate().unwrap();
        let w = Workload {
            consumers: 0,
            ..Workload::default()
        };
        assert!(
            w.validate()
                .unwrap_err()
                .contains("e2e mode needs at least one consumer")
        );
        let w = Workload {
            mode: Mode::Produce,
            consumers: 0,
            ..Workload::default()
        };
        w.validate().unwrap();
        let w = Workload {
            batch_bytes: 1000,
            ..Workload::default()
        };
        assert!(w.validate().unwrap_err().contains("--batch-bytes"));
        assert_eq!(
            Workload {
                topics: 3,
                ..Workload::default()
            }
            .topic_names(),
            vec!["bench-0", "bench-1", "bench-2"]
        );
    }
}
