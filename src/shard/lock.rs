//! One broker per data directory: an exclusive `flock` on
//! `<data dir>/.corelog.lock`, taken before anything in the directory is
//! read and held for the life of the broker (the kernel drops it when the
//! process dies, so a SIGKILLed broker never leaves a stale lock). The file
//! holds the holder's PID, for the message a second broker prints.
//!
//! Ports: listeners use SO_REUSEPORT so a broker's shards can share one
//! port; another process could join that group and take a share of the
//! connections. Before binding a fixed port the broker checks that nobody
//! accepts connections on it ([`check_port_free`]).

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::net::SocketAddr;
use std::os::unix::io::AsRawFd;
use std::path::Path;

const LOCK_FILE: &str = ".corelog.lock";

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// Locks `data_dir` for this process, or explains who holds it.
pub fn lock_data_dir(data_dir: &Path) -> Result<DataDirLock, String> {
    let path = data_dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("opening the lock file {}: {e}", path.display()))?;
    // SAFETY: flock(2) on a descriptor we own.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(format!(
                "data directory {} is in use by another corelog broker{}; only one broker may use a data directory at a time",
                data_dir.display(),
                if holder.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {holder})")
                }
            ));
        }
        return Err(format!("locking {}: {err}", path.display()));
    }
    let pid = std::process::id().to_string();
    let written = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(pid.as_bytes()))
        .and_then(|()| file.flush());
    if let Err(e) = written {
        // The lock holds without the PID; only the message loses it.
        tracing::warn!(file = %path.display(), error = %e, "could not record this broker's pid in the lock file");
    }
    Ok(DataDirLock { _file: file })
}

/// Fails if something already listens on `addr` (port 0: always free).
///
/// Probed by connecting, not by binding: after a broker is killed, its
/// accepted connections linger (FIN_WAIT) on the port until their peers
/// close them, which makes a plain bind fail although nobody listens.
pub fn check_port_free(addr: SocketAddr, what: &str) -> Result<(), String> {
    if addr.port() == 0 {
        return Ok(());
    }
    let target = if addr.ip().is_unspecified() {
        match addr {
            SocketAddr::V4(_) => SocketAddr::from(([127, 0, 0, 1], addr.port())),
            SocketAddr::V6(_) => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port())),
        }
    } else {
        addr
    };
    match std::net::TcpStream::connect_timeout(&target, std::time::Duration::from_millis(500)) {
        Ok(_) => Err(format!(
            "{what} {addr} is already in use by another process; pick another port (or stop that process)"
        )),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_data_dir(dir.path()).unwrap();
        // flock locks belong to the open file description: a second open
        // in the same process conflicts as another process would.
        let err = lock_data_dir(dir.path()).unwrap_err();
        assert!(err.contains("in use by another corelog broker"), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(held);
        lock_data_dir(dir.path()).expect("free again once released");
    }

    #[test]
    fn a_port_someone_listens_on_is_refused() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let err = check_port_free(addr, "the native port").unwrap_err();
        assert!(err.contains("already in use"), "{err}");
        drop(listener);
        check_port_free(addr, "the native port").unwrap();
    }
}
