//! Crash points: a test hook that SIGKILLs the process at a named step of
//! the storage engine, so crash-consistency tests can die exactly where a
//! bug would bite instead of waiting for an unlucky timer.
//!
//! Set `CORELOG_TEST_CRASH_AT=<point>@<n>` in a process's environment and the
//! `n`-th time (1-based) that process reaches `<point>` it kills itself with
//! SIGKILL — the same death an operator's `kill -9` or the OOM killer gives:
//! no destructors, no flush, io_uring requests possibly still in flight.
//! Without the variable every check is one load of an initialised
//! `OnceLock`; nothing is counted.
//!
//! Points (see [`POINTS`] for the full list):
//! * every write, sync and truncate of the disk seam, per file kind (`log`,
//!   `index`, `timeindex`, `other`): `write.<kind>.before` (not submitted),
//!   `write.<kind>.inflight` (submitted to io_uring, completion not awaited),
//!   `write.<kind>.torn` (only the first half of its blocks written),
//!   `write.<kind>.after` (completed, the caller not yet told),
//!   `sync.<kind>.before|after`, `truncate.<kind>.before|after`;
//! * steps of the engine: `roll.*` (a segment rolls), `seal.*` (the
//!   background seal of the rolled segment), `close.*`, `recover.*`,
//!   `retention.*`, `clean.*` (a compaction pass swapping a segment in).
//!
//! The process announces the kill on stderr (`crash point ... reached`), so a
//! test can tell a planned death from a real one.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Environment variable holding `<point>@<n>`.
pub const CRASH_AT_ENV: &str = "CORELOG_TEST_CRASH_AT";

/// File kinds a disk-seam point names.
pub const FILE_KINDS: [&str; 4] = ["log", "index", "timeindex", "other"];

/// The engine's named steps (disk-seam points are built from
/// [`FILE_KINDS`]; see the module docs).
pub const POINTS: &[&str] = &[
    // A segment rolls: its data is written out, then the next one is created.
    "roll.after_write_out",
    "roll.after_create",
    // The background seal of a rolled segment, in order.
    "seal.after_index_write_out",
    "seal.after_log_sync",
    "seal.after_index_sync",
    "seal.after_final_time_entry",
    "seal.done",
    // A clean close of the active segment.
    "close.after_sync",
    "close.after_marker",
    // Recovery itself can die: it must be idempotent.
    "recover.after_marker_removed",
    "recover.after_cut",
    "recover.after_index_rewrite",
    "recover.after_trim_sealed",
    // Retention removes a segment's files one by one.
    "retention.after_log_remove",
    // A compaction pass swaps a cleaned segment in (see log/cleaner.rs).
    "clean.after_cleaned_synced",
    "clean.after_swap_renamed",
    "clean.after_indexes_removed",
    "clean.after_log_replaced",
    "clean.segment_done",
    "recover.after_clean_swap",
];

struct Plan {
    point: String,
    hit: u64,
    seen: AtomicU64,
}

fn plan() -> Option<&'static Plan> {
    static PLAN: OnceLock<Option<Plan>> = OnceLock::new();
    PLAN.get_or_init(|| {
        let spec = std::env::var(CRASH_AT_ENV).ok()?;
        let (point, hit) = match spec.rsplit_once('@') {
            Some((point, n)) => (point.to_string(), n.parse().ok()?),
            None => (spec, 1),
        };
        Some(Plan {
            point,
            hit: hit.max(1),
            seen: AtomicU64::new(0),
        })
    })
    .as_ref()
}

/// Whether any crash point is armed in this process.
pub fn armed() -> bool {
    plan().is_some()
}

/// Counts a pass through `point`, and SIGKILLs the process if this is the
/// pass the plan names.
pub fn point(point: &str) {
    if let Some(plan) = plan()
        && fires(plan, point)
    {
        kill_self(point);
    }
}

/// [`point`] for a disk-seam step, `<op>.<kind>.<phase>` (formatted only
/// when a plan is armed).
pub fn file_point(op: &str, kind: &str, phase: &str) {
    if file_point_fires(op, kind, phase) {
        kill_self(&format!("{op}.{kind}.{phase}"));
    }
}

/// Counts a pass through a disk-seam point and tells whether it is the
/// fatal one, without killing: for points that must act first (write half
/// a buffer, submit a write) and then call [`kill_self`].
pub fn file_point_fires(op: &str, kind: &str, phase: &str) -> bool {
    match plan() {
        Some(plan) => fires(plan, &format!("{op}.{kind}.{phase}")),
        None => false,
    }
}

fn fires(plan: &Plan, point: &str) -> bool {
    plan.point == point && plan.seen.fetch_add(1, Ordering::Relaxed) + 1 == plan.hit
}

/// SIGKILLs this process, after saying why on stderr.
pub fn kill_self(point: &str) -> ! {
    let n = plan().map_or(1, |plan| plan.hit);
    eprintln!("crash point {point}@{n} reached: killing the process with SIGKILL");
    // SAFETY: kill(2) on our own pid; SIGKILL cannot be caught.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    // SIGKILL is delivered before kill(2) returns to user space for the
    // calling thread's own process; this only satisfies the type.
    loop {
        std::thread::park();
    }
}

/// The kind a disk-seam point names for a file, from its extension.
pub fn file_kind(path: &std::path::Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("log") => "log",
        Some("index") => "index",
        Some("timeindex") => "timeindex",
        _ => "other",
    }
}
