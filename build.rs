//! Records the git commit the binary was built from, for benchmark reports
//! (`CORELOG_GIT_COMMIT`; "unknown" outside a git checkout).

use std::process::Command;

fn main() {
    // Only paths that exist: cargo treats a missing one as always changed,
    // which would rebuild the crate on every cargo command (a fresh clone
    // often has no packed-refs).
    for path in [".git/HEAD", ".git/refs/heads", ".git/packed-refs"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=CORELOG_GIT_COMMIT={commit}");
}
