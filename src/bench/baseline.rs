//! The raw limits a broker's figures are judged against, measured on the
//! spot for the same number of bytes: a loopback TCP sink, direct-I/O
//! writes to a disk, and direct-I/O reads of what was written.

use futures::io::{AsyncReadExt, AsyncWriteExt};
use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;
use std::time::Instant;

/// Size of one write in both baselines.
pub const WRITE_BYTES: usize = 1 << 20;

/// MB/s of `bytes` written over loopback TCP in 64 KiB writes to a sink
/// that reads and discards them (each side on its own executor thread).
pub fn tcp_sink(bytes: u64) -> Result<f64, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = glommio::LocalExecutorBuilder::default()
        .name("baseline-sink")
        .spawn(move || async move {
            let listener =
                glommio::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            tx.send(listener.local_addr().map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
            let mut stream = listener.accept().await.map_err(|e| e.to_string())?;
            let mut buf = vec![0u8; 256 << 10];
            let mut total = 0u64;
            while total < bytes {
                let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("baseline sink: the stream ended early".to_string());
                }
                total += n as u64;
            }
            stream.write_all(b"k").await.map_err(|e| e.to_string())
        })
        .map_err(|e| e.to_string())?;
    let addr = rx
        .recv()
        .map_err(|_| "baseline sink did not start".to_string())?;
    let writer = glommio::LocalExecutorBuilder::default()
        .name("baseline-writer")
        .spawn(move || async move {
            let mut stream = glommio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| e.to_string())?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            let chunk = vec![0x42u8; 64 << 10];
            let started = Instant::now();
            let mut sent = 0u64;
            while sent < bytes {
                let n = (chunk.len() as u64).min(bytes - sent) as usize;
                stream
                    .write_all(&chunk[..n])
                    .await
                    .map_err(|e| e.to_string())?;
                sent += n as u64;
            }
            let mut ack = [0u8; 1];
            stream
                .read_exact(&mut ack)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<f64, String>(bytes as f64 / started.elapsed().as_secs_f64() / 1e6)
        })
        .map_err(|e| e.to_string())?;
    let mbps = writer.join().map_err(|e| e.to_string())??;
    sink.join().map_err(|e| e.to_string())??;
    Ok(mbps)
}

/// Size of one read in the disk read baseline: the size of the broker's own
/// segment reads for the bench's consumers. A fetch asks each partition for
/// at most `ConsumerConfig::partition_max_bytes` (1 MiB by default, what
/// the bench uses), and a segment reads that window from disk in one
/// direct read (plus at most an index interval), with the next window read
/// ahead; `constants::READ_BYTES_MAX` (8 MiB) only caps it.
pub const READ_IO_BYTES: usize = 1 << 20;
const _: () = assert!(READ_IO_BYTES <= crate::constants::READ_BYTES_MAX);

/// Reads in flight at once in the disk read baseline.
pub const READS_IN_FLIGHT: usize = 4;

/// The disk baselines: direct writes, then reading the file back.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DiskFigures {
    pub write_mb_per_s: f64,
    pub read_mb_per_s: f64,
    pub read_bytes: u64,
}

/// Writes `bytes` with direct I/O in 1 MiB writes (4 in flight) to a new
/// file in `dir`, ending with an `fdatasync`: the write figure. Then (not
/// timed) grows the file to at least `read_bytes_min`, and reads it all
/// back with direct I/O, [`READ_IO_BYTES`] per read, [`READS_IN_FLIGHT`]
/// at a time: the read figure. Direct I/O bypasses the page cache, so the
/// reads go to the device. The file is removed.
pub fn direct_write_read(
    dir: &Path,
    bytes: u64,
    read_bytes_min: u64,
) -> Result<DiskFigures, String> {
    let path = dir.join(format!(".corelog-baseline-{}", std::process::id()));
    let run = glommio::LocalExecutorBuilder::default()
        .name("baseline-disk")
        .spawn({
            let path = path.clone();
            move || async move {
                // Prime glommio's poll-ring probe with a non-empty file first.
                crate::storage::Disk::open(path.parent().unwrap())
                    .await
                    .map_err(|e| e.to_string())?;
                let file = Rc::new(
                    glommio::io::OpenOptions::new()
                        .create(true)
                        .truncate(true)
                        .read(true)
                        .write(true)
                        .dma_open(&path)
                        .await
                        .map_err(|e| e.to_string())?,
                );
                let blocks = bytes.div_ceil(WRITE_BYTES as u64);
                let started = Instant::now();
                write_blocks(&file, 0, blocks).await?;
                let write_mb_per_s =
                    (blocks * WRITE_BYTES as u64) as f64 / started.elapsed().as_secs_f64() / 1e6;
                let total = blocks.max(read_bytes_min.div_ceil(WRITE_BYTES as u64));
                if total > blocks {
                    write_blocks(&file, blocks, total).await?;
                }
                let read_bytes = total * WRITE_BYTES as u64;
                let started = Instant::now();
                read_all(&file, read_bytes).await?;
                let read_mb_per_s = read_bytes as f64 / started.elapsed().as_secs_f64() / 1e6;
                if let Ok(file) = Rc::try_unwrap(file) {
                    let _ = file.close().await;
                }
                Ok::<DiskFigures, String>(DiskFigures {
                    write_mb_per_s,
                    read_mb_per_s,
                    read_bytes,
                })
            }
        })
        .map_err(|e| e.to_string())?;
    let result = run.join().map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&path);
    result
}

/// Writes blocks `from..to` ([`WRITE_BYTES`] each), 4 in flight, then
/// `fdatasync`s.
async fn write_blocks(file: &Rc<glommio::io::DmaFile>, from: u64, to: u64) -> Result<(), String> {
    let next = Rc::new(Cell::new(from));
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let (file, next) = (file.clone(), next.clone());
            glommio::spawn_local(async move {
                let mut buf = file.alloc_dma_buffer(WRITE_BYTES);
                buf.as_bytes_mut().fill(0x5a);
                let buf = Rc::new(buf);
                loop {
                    let i = next.get();
                    if i >= to {
                        return Ok::<(), String>(());
                    }
                    next.set(i + 1);
                    file.write_rc_at(buf.clone(), i * WRITE_BYTES as u64)
                        .await
                        .map_err(|e| e.to_string())?;
                }
            })
        })
        .collect();
    for w in writers {
        w.await?;
    }
    file.fdatasync().await.map_err(|e| e.to_string())
}

/// Reads the first `bytes` of `file` in [`READ_IO_BYTES`] direct reads,
/// [`READS_IN_FLIGHT`] at a time, checking each read is whole.
async fn read_all(file: &Rc<glommio::io::DmaFile>, bytes: u64) -> Result<(), String> {
    let reads = bytes.div_ceil(READ_IO_BYTES as u64);
    let next = Rc::new(Cell::new(0u64));
    let readers: Vec<_> = (0..READS_IN_FLIGHT)
        .map(|_| {
            let (file, next) = (file.clone(), next.clone());
            glommio::spawn_local(async move {
                loop {
                    let i = next.get();
                    if i >= reads {
                        return Ok::<(), String>(());
                    }
                    next.set(i + 1);
                    let at = i * READ_IO_BYTES as u64;
                    let want = (READ_IO_BYTES as u64).min(bytes - at) as usize;
                    let got = file
                        .read_at_aligned(at, want)
                        .await
                        .map_err(|e| e.to_string())?;
                    if got.len() != want {
                        return Err(format!(
                            "baseline read at {at}: {} bytes of {want}",
                            got.len()
                        ));
                    }
                }
            })
        })
        .collect();
    for r in readers {
        r.await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_baselines_move_the_bytes_they_are_asked_to() {
        let dir = tempfile::tempdir().unwrap();
        assert!(tcp_sink(8 << 20).unwrap() > 0.0);
        let disk = direct_write_read(dir.path(), 8 << 20, 12 << 20).unwrap();
        assert!(disk.write_mb_per_s > 0.0 && disk.read_mb_per_s > 0.0);
        assert_eq!(disk.read_bytes, 12 << 20, "grown to the bytes read");
        assert!(
            !dir.path()
                .join(format!(".corelog-baseline-{}", std::process::id()))
                .exists(),
            "the file is removed"
        );
    }

    #[test]
    fn the_read_baseline_reads_as_the_broker_does_for_the_bench() {
        // The bench's consumers use the default partition_max_bytes; the
        // broker reads that window per segment read.
        assert_eq!(
            READ_IO_BYTES,
            crate::client::ConsumerConfig::default().partition_max_bytes as usize
        );
    }
}
