//! SVG charts of benchmark reports: latency by percentile (logarithmic
//! axes, as HdrHistogram plots it) and throughput per second. One run, or
//! several overlaid for `corelog bench compare` (later runs dashed).

use super::report::{Latency, Summary};
use std::fmt::Write as _;

const W: f64 = 1120.0;
const H: f64 = 470.0;
/// Left panel (latency) and right panel (throughput): x0, x1, y0 (top), y1.
const LEFT: (f64, f64, f64, f64) = (70.0, 530.0, 60.0, 400.0);
const RIGHT: (f64, f64, f64, f64) = (620.0, 1080.0, 60.0, 400.0);
const PRODUCE: &str = "#1f77b4";
const E2E: &str = "#ff7f0e";
const CONSUMED: &str = "#2ca02c";
/// Percentile axis: log10(1 / (1 - q)), from 0 (0%) to 5 (99.999%).
const X_MAX: f64 = 5.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn x_of_quantile(q: f64) -> f64 {
    if q >= 1.0 - 1e-5 {
        X_MAX
    } else {
        (1.0 / (1.0 - q)).log10().clamp(0.0, X_MAX)
    }
}

/// A chart of `runs` (label, summary); the first run is drawn solid, the
/// others dashed.
pub fn chart(runs: &[(&str, &Summary)]) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"##
    );
    let _ = write!(s, r##"<rect width="{W}" height="{H}" fill="white"/>"##);
    let title = match runs {
        [(_, one)] => format!(
            "corelog bench: {} mode, {} producer(s), {} consumer(s), {} topic(s) × {} partitions, {}, acks={}, fsync {}",
            one.workload.mode,
            one.workload.producers,
            one.workload.consumers,
            one.workload.topics,
            one.workload.partitions,
            one.workload.message_size,
            one.workload.acks,
            one.workload.fsync
        ),
        _ => format!(
            "corelog bench compare: {}",
            runs.iter()
                .map(|(l, _)| *l)
                .collect::<Vec<_>>()
                .join(" vs ")
        ),
    };
    let _ = write!(
        s,
        r##"<text x="{}" y="24" text-anchor="middle" font-size="14" font-weight="bold">{}</text>"##,
        W / 2.0,
        esc(&title)
    );
    latency_panel(&mut s, runs);
    throughput_panel(&mut s, runs);
    legend(&mut s, runs);
    s.push_str("</svg>\n");
    s
}

/// A panel's title and border.
fn frame(s: &mut String, title: &str, (x0, x1, y0, y1): (f64, f64, f64, f64)) {
    let _ = write!(
        s,
        r##"<text x="{}" y="48" text-anchor="middle" font-weight="bold">{title}</text>"##,
        (x0 + x1) / 2.0
    );
    let _ = write!(
        s,
        r##"<rect x="{x0}" y="{y0}" width="{}" height="{}" fill="none" stroke="#888"/>"##,
        x1 - x0,
        y1 - y0
    );
}

fn latency_panel(s: &mut String, runs: &[(&str, &Summary)]) {
    let (x0, x1, y0, y1) = LEFT;
    let curves: Vec<(&Latency, &str, bool)> = runs
        .iter()
        .enumerate()
        .flat_map(|(i, (_, r))| {
            [
                (r.produce_latency_us.as_ref(), PRODUCE),
                (r.e2e_latency_us.as_ref(), E2E),
            ]
            .into_iter()
            .filter_map(move |(l, c)| l.filter(|l| !l.curve.is_empty()).map(|l| (l, c, i > 0)))
        })
        .collect();
    frame(s, "latency by percentile", (x0, x1, y0, y1));
    if curves.is_empty() {
        let _ = write!(
            s,
            r##"<text x="{}" y="{}" text-anchor="middle" fill="#888">no latency recorded</text>"##,
            (x0 + x1) / 2.0,
            (y0 + y1) / 2.0
        );
        return;
    }
    // Logarithmic latency axis in milliseconds, whole decades.
    let values = curves
        .iter()
        .flat_map(|(l, _, _)| l.curve.iter().map(|&(_, v)| v.max(1) as f64 / 1000.0));
    let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (d0, d1) = (
        lo.log10().floor(),
        hi.log10().ceil().max(lo.log10().floor() + 1.0),
    );
    let px = |x: f64| x0 + (x1 - x0) * x / X_MAX;
    let py = |ms: f64| y1 - (y1 - y0) * ((ms.max(1e-9).log10() - d0) / (d1 - d0));
    for (x, label) in [
        (0.0, "0%"),
        (std::f64::consts::LOG10_2, "50%"),
        (1.0, "90%"),
        (2.0, "99%"),
        (3.0, "99.9%"),
        (4.0, "99.99%"),
        (5.0, "99.999%"),
    ] {
        let _ = write!(
            s,
            r##"<line x1="{0}" y1="{y0}" x2="{0}" y2="{y1}" stroke="#eee"/><text x="{0}" y="{1}" text-anchor="middle">{label}</text>"##,
            px(x),
            y1 + 16.0
        );
    }
    let mut d = d0;
    while d <= d1 + 1e-9 {
        let ms = 10f64.powf(d);
        let label = if ms >= 1.0 {
            format!("{ms:.0} ms")
        } else {
            format!("{:.0} µs", ms * 1000.0)
        };
        let _ = write!(
            s,
            r##"<line x1="{x0}" y1="{0}" x2="{x1}" y2="{0}" stroke="#eee"/><text x="{1}" y="{2}" text-anchor="end">{label}</text>"##,
            py(ms),
            x0 - 6.0,
            py(ms) + 4.0
        );
        d += 1.0;
    }
    let _ = write!(
        s,
        r##"<text x="{}" y="{}" text-anchor="middle">percentile</text>"##,
        (x0 + x1) / 2.0,
        y1 + 34.0
    );
    for (l, color, dashed) in curves {
        let points: Vec<String> = l
            .curve
            .iter()
            .map(|&(q, v)| {
                format!(
                    "{:.1},{:.1}",
                    px(x_of_quantile(q)),
                    py(v.max(1) as f64 / 1000.0)
                )
            })
            .collect();
        let dash = if dashed {
            r##" stroke-dasharray="6,4""##
        } else {
            ""
        };
        let _ = write!(
            s,
            r##"<polyline fill="none" stroke="{color}" stroke-width="2"{dash} points="{}"/>"##,
            points.join(" ")
        );
    }
}

fn throughput_panel(s: &mut String, runs: &[(&str, &Summary)]) {
    let (x0, x1, y0, y1) = RIGHT;
    frame(s, "throughput per second (MB/s)", (x0, x1, y0, y1));
    let seconds = runs
        .iter()
        .map(|(_, r)| r.per_second.len())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let peak = runs
        .iter()
        .flat_map(|(_, r)| {
            r.per_second
                .iter()
                .map(|p| p.produced_bytes.max(p.consumed_bytes) as f64 / 1e6)
        })
        .fold(0.0f64, f64::max)
        .max(1.0)
        * 1.1;
    let px = |sec: f64| x0 + (x1 - x0) * sec / seconds;
    let py = |mbps: f64| y1 - (y1 - y0) * mbps / peak;
    if let Some((_, first)) = runs.first() {
        let warm = first.per_second.iter().filter(|p| p.warmup).count() as f64;
        if warm > 0.0 {
            let _ = write!(
                s,
                r##"<rect x="{x0}" y="{y0}" width="{}" height="{}" fill="#f3f3f3"/><text x="{}" y="{}" text-anchor="middle" fill="#999">warm-up</text>"##,
                px(warm) - x0,
                y1 - y0,
                (x0 + px(warm)) / 2.0,
                y0 + 14.0
            );
        }
    }
    for i in 0..=5 {
        let v = peak * i as f64 / 5.0;
        let _ = write!(
            s,
            r##"<line x1="{x0}" y1="{0}" x2="{x1}" y2="{0}" stroke="#eee"/><text x="{1}" y="{2}" text-anchor="end">{v:.0}</text>"##,
            py(v),
            x0 - 6.0,
            py(v) + 4.0
        );
    }
    let step = (seconds / 10.0).ceil().max(1.0);
    let mut t = 0.0;
    while t <= seconds {
        let _ = write!(
            s,
            r##"<text x="{}" y="{}" text-anchor="middle">{t:.0}</text>"##,
            px(t),
            y1 + 16.0
        );
        t += step;
    }
    let _ = write!(
        s,
        r##"<text x="{}" y="{}" text-anchor="middle">seconds</text>"##,
        (x0 + x1) / 2.0,
        y1 + 34.0
    );
    for (i, (_, r)) in runs.iter().enumerate() {
        let dash = if i > 0 {
            r##" stroke-dasharray="6,4""##
        } else {
            ""
        };
        for (color, pick) in [(PRODUCE, 0), (CONSUMED, 1)] {
            let points: Vec<String> = r
                .per_second
                .iter()
                .map(|p| {
                    let bytes = if pick == 0 {
                        p.produced_bytes
                    } else {
                        p.consumed_bytes
                    };
                    format!(
                        "{:.1},{:.1}",
                        px(p.second as f64 + 0.5),
                        py(bytes as f64 / 1e6)
                    )
                })
                .collect();
            if r.per_second.iter().any(|p| {
                if pick == 0 {
                    p.produced_bytes > 0
                } else {
                    p.consumed_bytes > 0
                }
            }) {
                let _ = write!(
                    s,
                    r##"<polyline fill="none" stroke="{color}" stroke-width="2"{dash} points="{}"/>"##,
                    points.join(" ")
                );
            }
        }
    }
}

fn legend(s: &mut String, runs: &[(&str, &Summary)]) {
    let mut x = 70.0;
    let y = H - 22.0;
    let mut item = |s: &mut String, color: &str, dashed: bool, text: &str| {
        let dash = if dashed {
            r##" stroke-dasharray="6,4""##
        } else {
            ""
        };
        let _ = write!(
            s,
            r##"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{color}" stroke-width="3"{dash}/><text x="{}" y="{}">{}</text>"##,
            x + 24.0,
            x + 30.0,
            y + 4.0,
            esc(text)
        );
        x += 40.0 + 7.0 * text.chars().count() as f64;
    };
    for (i, (label, _)) in runs.iter().enumerate() {
        let prefix = if runs.len() > 1 {
            format!("{label}: ")
        } else {
            String::new()
        };
        item(
            s,
            PRODUCE,
            i > 0,
            &format!("{prefix}produce (ack latency, MB/s produced)"),
        );
        item(s, E2E, i > 0, &format!("{prefix}end to end"));
        item(s, CONSUMED, i > 0, &format!("{prefix}MB/s consumed"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::{Second, new_histogram};

    fn summary() -> Summary {
        let mut h = new_histogram();
        for v in [120u64, 150, 900, 20_000] {
            h.record(v).unwrap();
        }
        Summary {
            produce_latency_us: Some(Latency::of(&h)),
            per_second: (0..5)
                .map(|i| Second {
                    second: i,
                    warmup: i < 1,
                    produced_bytes: 1_000_000 * i as u64,
                    ..Second::default()
                })
                .collect(),
            ..Summary::default()
        }
    }

    #[test]
    fn a_chart_is_well_formed_svg_with_both_panels() {
        let svg = chart(&[("a", &summary())]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("latency by percentile") && svg.contains("throughput per second"));
        assert!(svg.contains("99.99%") && svg.contains("warm-up"));
        assert_eq!(
            svg.matches("<polyline").count(),
            2,
            "one latency curve and one throughput line"
        );
        let compared = chart(&[("a", &summary()), ("b", &summary())]);
        assert!(
            compared.contains("stroke-dasharray"),
            "the second run is dashed"
        );
        assert!(compared.contains("a vs b"));
    }

    #[test]
    fn percentiles_map_to_decades() {
        assert_eq!(x_of_quantile(0.0), 0.0);
        assert!((x_of_quantile(0.99) - 2.0).abs() < 1e-9);
        assert_eq!(x_of_quantile(1.0), X_MAX);
    }
}
