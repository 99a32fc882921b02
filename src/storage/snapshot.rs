//! Producer-state snapshot files of one partition:
//! `<offset, 20 digits>.snapshot`, the state of every batch below that
//! offset (format in [`Producers::encode`]). Written whole to a temporary
//! file, synced, renamed and the directory synced, so a snapshot file is
//! either complete or absent; a damaged one is skipped at load (the state
//! is rebuilt from an older one and the log).
//!
//! Runs on the log's executor; file operations go through the [`Disk`]
//! seam.

use super::error::{Result, StorageError};
use super::io::Disk;
use super::producers::Producers;
use super::segment::{read_whole, write_whole};
use crate::types::Offset;
use std::path::{Path, PathBuf};

const SUFFIX: &str = ".snapshot";

/// The file name of the snapshot at `offset`.
pub fn file_name(offset: Offset) -> String {
    format!("{:020}{SUFFIX}", offset.0)
}

fn parse_name(name: &str) -> Option<Offset> {
    let digits = name.strip_suffix(SUFFIX)?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok().map(Offset))
        .flatten()
}

/// Snapshot files in `dir`, oldest first.
pub fn list(dir: &Path) -> Result<Vec<(Offset, PathBuf)>> {
    let entries = std::fs::read_dir(dir).map_err(|e| StorageError::io("listing", dir, e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io("listing", dir, e))?;
        if let Some(offset) = entry.file_name().to_str().and_then(parse_name) {
            out.push((offset, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Writes a snapshot durably (temporary file, sync, rename, directory
/// sync).
pub async fn write(disk: &Disk, dir: &Path, offset: Offset, bytes: &[u8]) -> Result<()> {
    let path = dir.join(file_name(offset));
    let tmp = dir.join(format!("{}.tmp", file_name(offset)));
    write_whole(disk, &tmp, bytes).await?;
    disk.rename(&tmp, &path)
        .await
        .map_err(|e| StorageError::io("renaming", &tmp, e))?;
    disk.sync_dir(dir)
        .await
        .map_err(|e| StorageError::io("syncing directory", dir, e))?;
    Ok(())
}

/// The newest readable snapshot at or below `at_most`: its offset and
/// state. Damaged ones are skipped (and logged).
pub async fn load_newest(
    disk: &Disk,
    dir: &Path,
    at_most: Offset,
) -> Result<Option<(Offset, Producers)>> {
    for (offset, path) in list(dir)?.into_iter().rev() {
        if offset > at_most {
            continue;
        }
        let Some(bytes) = read_whole(disk, &path).await? else {
            continue;
        };
        match Producers::decode(&bytes) {
            Ok((stored, producers)) if stored == offset => return Ok(Some((offset, producers))),
            Ok((stored, _)) => {
                tracing::warn!(file = %path.display(), stored = %stored, "producer snapshot names another offset than its file; skipping it")
            }
            Err(reason) => {
                tracing::warn!(file = %path.display(), %reason, "producer snapshot is damaged; skipping it")
            }
        }
    }
    Ok(None)
}

/// Removes snapshots beyond the newest `keep`, those below `start` (their
/// data is gone) but never the newest, and those above `end` (a log cut
/// back by recovery no longer holds what they describe).
pub async fn prune(disk: &Disk, dir: &Path, keep: usize, start: Offset, end: Offset) -> Result<()> {
    let all = list(dir)?;
    let newest_valid = all.iter().rev().find(|(o, _)| *o <= end).map(|(o, _)| *o);
    let mut kept = 0;
    for (offset, path) in all.into_iter().rev() {
        let keep_it =
            offset <= end && kept < keep && (offset >= start || Some(offset) == newest_valid);
        if keep_it {
            kept += 1;
            continue;
        }
        match disk.remove(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::io("removing", &path, e)),
        }
    }
    Ok(())
}
