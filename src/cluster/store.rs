//! The Raft log, hard state and snapshot of one controller, in memory for
//! the `raft` crate and on disk so a restart resumes where it stopped.
//!
//! Files in `<data>/.corelog-raft/`:
//!
//! * `hardstate`: term, vote and commit index (24 bytes and a CRC-32C),
//!   replaced whole (temporary file, fsync, rename, directory fsync);
//! * `snapshot`: the last snapshot (its index, term, voters and the
//!   metadata it holds) as a protobuf `eraftpb.Snapshot` behind a length
//!   and a CRC-32C, replaced whole the same way;
//! * `voters`: the node ids of the quorum's voters, as first given;
//! * `log`: entries after the snapshot, appended as records (length,
//!   CRC-32C, protobuf `eraftpb.Entry`) and fdatasync'ed before Raft may
//!   count them. Raft overwrites a divergent suffix by appending entries
//!   at indexes it had already: reading the file back, an entry at index
//!   `i` drops every entry from `i` on before it is added. A torn record at
//!   the end (a crash mid-append, never acknowledged) is cut off. The file
//!   is rewritten whole when a snapshot is taken or installed.
//!
//! Mutations change the memory copy at once and return a [`Write`]: the
//! bytes to put on disk, which the caller runs off the executor and
//! completes before Raft learns the state is durable.

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The directory of the Raft files inside the data directory.
pub const RAFT_DIR_NAME: &str = ".corelog-raft";

/// Largest record the log file may hold (a metadata snapshot in an entry).
const RECORD_BYTES_MAX: usize = 256 << 20;

/// One controller's Raft state.
pub struct Store {
    hard_state: HardState,
    conf_state: ConfState,
    /// The last snapshot: `entries` follow its index without a gap.
    snapshot: Snapshot,
    entries: Vec<Entry>,
}

/// File writes a mutation needs, to be run off the executor (blocking).
#[must_use]
#[derive(Default)]
pub struct Write {
    dir: PathBuf,
    hard_state: Option<Vec<u8>>,
    snapshot: Option<Vec<u8>>,
    /// Replace the log file with these records.
    rewrite_log: Option<Vec<u8>>,
    /// Then append these records.
    append: Vec<u8>,
}

impl Write {
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none()
            && self.snapshot.is_none()
            && self.rewrite_log.is_none()
            && self.append.is_empty()
    }

    /// Adds `later`'s writes after this one's.
    pub fn merge(&mut self, later: Write) {
        if self.dir.as_os_str().is_empty() {
            self.dir = later.dir;
        }
        if later.hard_state.is_some() {
            self.hard_state = later.hard_state;
        }
        if later.snapshot.is_some() {
            self.snapshot = later.snapshot;
        }
        if let Some(log) = later.rewrite_log {
            self.rewrite_log = Some(log);
            self.append.clear();
        }
        self.append.extend_from_slice(&later.append);
    }

    /// Puts everything on disk, durably. Blocking.
    pub fn run(self) -> std::io::Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        // The snapshot goes first: a log rewritten to start after it must
        // never be on disk with an older snapshot.
        if let Some(bytes) = &self.snapshot {
            replace(&self.dir, "snapshot", bytes)?;
        }
        if let Some(bytes) = &self.rewrite_log {
            replace(&self.dir, "log", bytes)?;
        }
        if !self.append.is_empty() {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join("log"))?;
            file.write_all(&self.append)?;
            file.sync_data()?;
        }
        if let Some(bytes) = &self.hard_state {
            replace(&self.dir, "hardstate", bytes)?;
        }
        Ok(())
    }
}

/// Replaces `dir/name` with `bytes` atomically and durably.
fn replace(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()
}

/// `len u32 | crc32c u32 | payload`, little endian.
fn record(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Reads one record at `at`: its payload and the position after it, or
/// `None` at a torn or corrupt end.
fn read_record(bytes: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let header = bytes.get(at..at + 8)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    if len > RECORD_BYTES_MAX {
        return None;
    }
    let payload = bytes.get(at + 8..at + 8 + len)?;
    (crc32c::crc32c(payload) == crc).then_some((payload, at + 8 + len))
}

/// The contents of `dir/name`; `None` if there is no such file.
fn read_file(dir: &Path, name: &str) -> Result<Option<Vec<u8>>, String> {
    match std::fs::read(dir.join(name)) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", dir.join(name).display())),
    }
}

/// The one record of `dir/name` (a file replaced whole), as a `M`.
fn read_message<M: protobuf::Message>(dir: &Path, name: &str) -> Result<Option<M>, String> {
    let Some(bytes) = read_file(dir, name)? else {
        return Ok(None);
    };
    let (payload, _) =
        read_record(&bytes, 0).ok_or_else(|| format!("{}/{name} is corrupt", dir.display()))?;
    M::parse_from_bytes(payload)
        .map(Some)
        .map_err(|e| format!("{}/{name}: {e}", dir.display()))
}

/// The voters are fixed by `--controllers` when the quorum is made (and
/// kept in `dir/voters`); a different list would be a membership change,
/// which goes through Raft (not yet).
fn check_voters(dir: &Path, voters: &[u64]) -> Result<(), String> {
    let mut given = voters.to_vec();
    given.sort_unstable();
    let stored: Vec<u64> = match read_file(dir, "voters")? {
        Some(text) => String::from_utf8_lossy(&text)
            .trim()
            .split(',')
            .filter_map(|id| id.parse().ok())
            .collect(),
        None => {
            let listed: Vec<String> = given.iter().map(u64::to_string).collect();
            replace(dir, "voters", listed.join(",").as_bytes())
                .map_err(|e| format!("{}/voters: {e}", dir.display()))?;
            return Ok(());
        }
    };
    if stored != given {
        return Err(format!(
            "this data directory's controller quorum has voters {stored:?}, but --controllers names {given:?}; changing the voters is not supported yet"
        ));
    }
    Ok(())
}

fn encode<M: protobuf::Message>(m: &M) -> Vec<u8> {
    m.write_to_bytes().expect("raft messages always encode")
}

impl Store {
    /// Opens (or creates) the Raft state in `data_dir`. A new controller
    /// starts with `voters` as its configuration. `.0`: whether the state
    /// existed.
    pub fn open(data_dir: &Path, voters: &[u64]) -> Result<(Store, bool), String> {
        let dir = data_dir.join(RAFT_DIR_NAME);
        let existed = dir.join("hardstate").exists();
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut store = Store {
            hard_state: read_message(&dir, "hardstate")?.unwrap_or_default(),
            conf_state: ConfState::default(),
            snapshot: Snapshot::default(),
            entries: Vec::new(),
        };
        store.conf_state.voters = voters.to_vec();
        if let Some(snapshot) = read_message::<Snapshot>(&dir, "snapshot")? {
            store.conf_state = snapshot.get_metadata().get_conf_state().clone();
            store.snapshot = snapshot;
        }
        store.read_log(&dir)?;
        check_voters(&dir, voters)?;
        if !existed {
            Write {
                dir: dir.clone(),
                hard_state: Some(store.hard_state_bytes()),
                ..Write::default()
            }
            .run()
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        Ok((store, existed))
    }

    /// Adds the entries of `dir/log`, cutting a torn record at its end off
    /// (durably).
    fn read_log(&mut self, dir: &Path) -> Result<(), String> {
        let Some(bytes) = read_file(dir, "log")? else {
            return Ok(());
        };
        let mut at = 0;
        while let Some((payload, next)) = read_record(&bytes, at) {
            let entry = Entry::parse_from_bytes(payload)
                .map_err(|e| format!("{}/log at byte {at}: {e}", dir.display()))?;
            self.put(entry);
            at = next;
        }
        if at == bytes.len() {
            return Ok(());
        }
        tracing::warn!(
            file = %dir.join("log").display(),
            kept = at,
            dropped = bytes.len() - at,
            "the Raft log ends in a torn record (a crash during an append); it is cut off"
        );
        let mut kept = Vec::new();
        for e in &self.entries {
            record(&encode(e), &mut kept);
        }
        Write {
            dir: dir.to_path_buf(),
            rewrite_log: Some(kept),
            ..Write::default()
        }
        .run()
        .map_err(|e| format!("{}/log: {e}", dir.display()))
    }

    /// Adds `entry`, dropping any at its index or after.
    fn put(&mut self, entry: Entry) {
        let snap = self.snapshot_index();
        if entry.index <= snap {
            return;
        }
        let keep = (entry.index - snap - 1) as usize;
        if keep > self.entries.len() {
            // A gap cannot come from our own appends; keep what is whole.
            return;
        }
        self.entries.truncate(keep);
        self.entries.push(entry);
    }

    fn hard_state_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        record(&encode(&self.hard_state), &mut out);
        out
    }

    fn write(&self, dir: &Path) -> Write {
        Write {
            dir: dir.join(RAFT_DIR_NAME),
            ..Write::default()
        }
    }

    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }

    pub fn snapshot_data(&self) -> &[u8] {
        &self.snapshot.data
    }

    #[cfg(test)]
    fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    fn last(&self) -> u64 {
        self.snapshot_index() + self.entries.len() as u64
    }

    /// Appends entries Raft handed over (possibly replacing a suffix).
    pub fn append(&mut self, data_dir: &Path, entries: &[Entry]) -> Write {
        let mut write = self.write(data_dir);
        for e in entries {
            record(&encode(e), &mut write.append);
            self.put(e.clone());
        }
        write
    }

    pub fn set_hard_state(&mut self, data_dir: &Path, hs: HardState) -> Write {
        self.hard_state = hs;
        Write {
            hard_state: Some(self.hard_state_bytes()),
            ..self.write(data_dir)
        }
    }

    pub fn set_commit(&mut self, data_dir: &Path, commit: u64) -> Write {
        let mut hs = self.hard_state.clone();
        hs.commit = commit;
        self.set_hard_state(data_dir, hs)
    }

    /// Installs a snapshot the leader sent: the log is replaced by it.
    pub fn install(&mut self, data_dir: &Path, snapshot: Snapshot) -> Write {
        let meta = snapshot.get_metadata();
        if meta.index <= self.snapshot_index() {
            return Write::default();
        }
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.hard_state.commit = self.hard_state.commit.max(meta.index);
        self.conf_state = meta.get_conf_state().clone();
        self.entries.clear();
        self.snapshot = snapshot;
        let mut snap = Vec::new();
        record(&encode(&self.snapshot), &mut snap);
        Write {
            snapshot: Some(snap),
            rewrite_log: Some(Vec::new()),
            hard_state: Some(self.hard_state_bytes()),
            ..self.write(data_dir)
        }
    }

    /// Takes a snapshot of the state machine at `index` (applied, with
    /// `term`): the entries up to it are dropped.
    pub fn compact(&mut self, data_dir: &Path, index: u64, term: u64, data: Vec<u8>) -> Write {
        if index <= self.snapshot_index() || index > self.last() {
            return Write::default();
        }
        let drop = (index - self.snapshot_index()) as usize;
        self.entries.drain(..drop);
        let mut snapshot = Snapshot {
            data: data.into(),
            ..Snapshot::default()
        };
        let meta = snapshot.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(self.conf_state.clone());
        self.snapshot = snapshot;
        let mut snap = Vec::new();
        record(&encode(&self.snapshot), &mut snap);
        let mut log = Vec::new();
        for e in &self.entries {
            record(&encode(e), &mut log);
        }
        Write {
            snapshot: Some(snap),
            rewrite_log: Some(log),
            ..self.write(data_dir)
        }
    }
}

impl raft::Storage for Store {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let first = self.snapshot_index() + 1;
        if low < first {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let (lo, hi) = ((low - first) as usize, (high - first) as usize);
        let mut out = self.entries[lo..hi].to_vec();
        raft::util::limit_size(&mut out, max_size.into());
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        let snap = self.snapshot.get_metadata();
        if idx == snap.index {
            return Ok(snap.term);
        }
        if idx < snap.index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(self.entries[(idx - snap.index - 1) as usize].term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.snapshot_index() + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.snapshot_index() == 0 || self.snapshot_index() < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::Storage;

    fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
        Entry {
            index,
            term,
            data: data.to_vec().into(),
            ..Entry::default()
        }
    }

    #[test]
    fn entries_hard_state_and_snapshots_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, existed) = Store::open(dir.path(), &[1, 2, 3]).unwrap();
        assert!(!existed);
        let mut w = store.append(dir.path(), &[entry(1, 1, b"a"), entry(2, 1, b"b")]);
        w.merge(store.append(dir.path(), &[entry(3, 1, b"c")]));
        // A new leader overwrites index 3 onwards.
        w.merge(store.append(dir.path(), &[entry(3, 2, b"C"), entry(4, 2, b"d")]));
        let hs = HardState {
            term: 2,
            vote: 3,
            commit: 3,
            ..HardState::default()
        };
        w.merge(store.set_hard_state(dir.path(), hs.clone()));
        w.run().unwrap();
        let (again, existed) = Store::open(dir.path(), &[3, 2, 1]).unwrap();
        assert!(existed);
        assert_eq!(again.hard_state(), &hs);
        assert_eq!(again.last_index().unwrap(), 4);
        assert_eq!(again.term(3).unwrap(), 2);
        assert_eq!(
            &again
                .entries(3, 5, None, GetEntriesContext::empty(false))
                .unwrap()[0]
                .data[..],
            b"C"
        );

        let mut store = again;
        store
            .compact(dir.path(), 3, 2, b"state@3".to_vec())
            .run()
            .unwrap();
        assert_eq!(store.first_index().unwrap(), 4);
        assert!(matches!(
            store.entries(2, 4, None, GetEntriesContext::empty(false)),
            Err(raft::Error::Store(StorageError::Compacted))
        ));
        let (again, _) = Store::open(dir.path(), &[1, 2, 3]).unwrap();
        assert_eq!(again.snapshot_index(), 3);
        assert_eq!(again.snapshot_data(), b"state@3");
        assert_eq!(again.term(3).unwrap(), 2);
        assert_eq!(again.last_index().unwrap(), 4);
        assert_eq!(again.snapshot(0, 2).unwrap().get_metadata().index, 3);
    }

    #[test]
    fn a_torn_tail_is_cut_and_other_voters_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = Store::open(dir.path(), &[1, 2, 3]).unwrap();
        store
            .append(dir.path(), &[entry(1, 1, b"a"), entry(2, 1, b"b")])
            .run()
            .unwrap();
        let log = dir.path().join(RAFT_DIR_NAME).join("log");
        let len = std::fs::metadata(&log).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&log)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let (again, _) = Store::open(dir.path(), &[1, 2, 3]).unwrap();
        assert_eq!(again.last_index().unwrap(), 1);
        let (again, _) = Store::open(dir.path(), &[1, 2, 3]).unwrap();
        assert_eq!(again.last_index().unwrap(), 1, "the cut is durable");
        let err = Store::open(dir.path(), &[1, 2]).err().unwrap();
        assert!(err.contains("voters"), "{err}");
    }

    #[test]
    fn an_installed_snapshot_replaces_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = Store::open(dir.path(), &[1, 2, 3]).unwrap();
        store
            .append(dir.path(), &[entry(1, 1, b"a")])
            .run()
            .unwrap();
        let mut snap = Snapshot {
            data: b"leader state".to_vec().into(),
            ..Snapshot::default()
        };
        snap.mut_metadata().index = 10;
        snap.mut_metadata().term = 4;
        snap.mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
        store.install(dir.path(), snap).run().unwrap();
        let (again, _) = Store::open(dir.path(), &[1, 2, 3]).unwrap();
        assert_eq!(again.first_index().unwrap(), 11);
        assert_eq!(again.last_index().unwrap(), 10);
        assert_eq!(again.hard_state().commit, 10);
        assert_eq!(again.snapshot_data(), b"leader state");
    }
}
