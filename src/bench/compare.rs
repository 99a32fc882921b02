//! `corelog bench compare A.json B.json`: two reports side by side.

use super::report::{Latency, Summary, Throughput};
use crate::cli::out::outln;
use std::fmt::Write as _;
use std::path::Path;

/// Picks one percentile out of a latency summary.
type LatencyField = fn(&Latency) -> u64;
/// Picks the produce or consume figures out of a report.
type ThroughputSide = fn(&Summary) -> Option<&Throughput>;
/// Picks the produce-ack or end-to-end latency out of a report.
type LatencySide = fn(&Summary) -> Option<&Latency>;

fn load(path: &Path) -> Result<Summary, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a corelog bench summary: {e}", path.display()))
}

/// The comparison table (B / A ratios).
pub fn table(a: &Summary, b: &Summary, a_name: &str, b_name: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<28} {:>16} {:>16} {:>9}",
        "", a_name, b_name, "B / A"
    );
    let mut row = |name: &str, va: Option<f64>, vb: Option<f64>| {
        if va.is_none() && vb.is_none() {
            return;
        }
        let show = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        let ratio = match (va, vb) {
            (Some(a), Some(b)) if a > 0.0 => format!("{:.2}", b / a),
            _ => "-".into(),
        };
        let _ = writeln!(
            out,
            "{:<28} {:>16} {:>16} {:>9}",
            name,
            show(va),
            show(vb),
            ratio
        );
    };
    let throughput: [(&str, ThroughputSide); 2] = [
        ("produced", |s| s.produce.as_ref()),
        ("consumed", |s| s.consume.as_ref()),
    ];
    for (side, get) in throughput {
        row(
            &format!("{side} MB/s"),
            get(a).map(|t| t.mb_per_s),
            get(b).map(|t| t.mb_per_s),
        );
        row(
            &format!("{side} msgs/s"),
            get(a).map(|t| t.msgs_per_s),
            get(b).map(|t| t.msgs_per_s),
        );
    }
    let latency: [(&str, LatencySide); 4] = [
        ("produce→ack", |s| s.produce_latency_us.as_ref()),
        ("end to end", |s| s.e2e_latency_us.as_ref()),
        ("produce round trip", |s| s.round_trip_latency_us.as_ref()),
        ("fetch round trip", |s| {
            s.fetch_round_trip_latency_us.as_ref()
        }),
    ];
    let fields: [(&str, LatencyField); 6] = [
        ("p50", |l| l.p50),
        ("p90", |l| l.p90),
        ("p99", |l| l.p99),
        ("p99.9", |l| l.p999),
        ("p99.99", |l| l.p9999),
        ("max", |l| l.max),
    ];
    for (side, get) in latency {
        for (label, f) in fields {
            row(
                &format!("{side} {label} (ms)"),
                get(a).map(|l| f(l) as f64 / 1000.0),
                get(b).map(|l| f(l) as f64 / 1000.0),
            );
        }
    }
    row(
        "broker CPU s per GB produced",
        a.broker_cpu_seconds_per_gb_produced,
        b.broker_cpu_seconds_per_gb_produced,
    );
    let disk_read = |s: &Summary| {
        s.baseline
            .as_ref()
            .map(|b| b.disk_read_mb_per_s)
            .filter(|&v| v > 0.0)
    };
    row("baseline disk read MB/s", disk_read(a), disk_read(b));
    let same = a.workload == b.workload;
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "workloads {}",
        if same {
            "are identical"
        } else {
            "DIFFER: compare with care"
        }
    );
    for (name, s) in [(a_name, a), (b_name, b)] {
        let _ = writeln!(
            out,
            "  {name}: {} on {} ({} cores, kernel {}), corelog {} {}, acks={}, fsync {}",
            s.started_at,
            s.machine.cpu_model,
            s.machine.cores,
            s.machine.kernel,
            s.corelog_version,
            s.git_commit,
            s.workload.acks,
            s.workload.fsync
        );
    }
    out
}

pub fn run(a: &Path, b: &Path, out: Option<&Path>) -> Result<(), String> {
    let (sa, sb) = (load(a)?, load(b)?);
    let name = |p: &Path| {
        p.parent()
            .and_then(|d| d.file_name())
            .or(p.file_name())
            .map_or("?".to_string(), |n| n.to_string_lossy().into_owned())
    };
    let (na, nb) = (format!("A {}", name(a)), format!("B {}", name(b)));
    let out = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| "compare.svg".into());
    // The chart first: printing ends the process if stdout's reader has
    // gone (`corelog bench compare a b | head`), and the file must exist
    // all the same.
    std::fs::write(&out, super::svg::chart(&[(&na, &sa), (&nb, &sb)]))
        .map_err(|e| format!("writing {}: {e}", out.display()))?;
    outln!("{}", table(&sa, &sb, &na, &nb));
    outln!("chart: {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::{Throughput, new_histogram};

    fn summary(mbps_bytes: u64, latency: u64) -> Summary {
        let mut h = new_histogram();
        h.record(latency).unwrap();
        Summary {
            produce: Some(Throughput::new(1000, mbps_bytes, 1.0)),
            produce_latency_us: Some(Latency::of(&h)),
            ..Summary::default()
        }
    }

    #[test]
    fn compare_reads_two_reports_and_prints_ratios_and_a_chart() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
        std::fs::write(
            &a,
            serde_json::to_string(&summary(100_000_000, 2000)).unwrap(),
        )
        .unwrap();
        std::fs::write(
            &b,
            serde_json::to_string(&summary(150_000_000, 1000)).unwrap(),
        )
        .unwrap();
        let text = table(&load(&a).unwrap(), &load(&b).unwrap(), "A", "B");
        let line = text
            .lines()
            .find(|l| l.starts_with("produced MB/s"))
            .unwrap();
        assert!(
            line.contains("100.0") && line.contains("150.0") && line.trim_end().ends_with("1.50"),
            "{line}"
        );
        let p50 = text
            .lines()
            .find(|l| l.starts_with("produce→ack p50"))
            .unwrap();
        assert!(p50.trim_end().ends_with("0.50"), "{p50}");
        assert!(text.contains("workloads are identical"));
        let svg = dir.path().join("c.svg");
        run(&a, &b, Some(&svg)).unwrap();
        assert!(
            std::fs::read_to_string(&svg)
                .unwrap()
                .contains("stroke-dasharray")
        );
        assert!(
            load(&dir.path().join("missing.json"))
                .unwrap_err()
                .contains("missing.json")
        );
        std::fs::write(&a, "{}").unwrap();
        assert!(
            load(&a).is_ok(),
            "older or partial reports still load (every field has a default)"
        );
    }
}
