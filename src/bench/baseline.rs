//! The raw limits a broker's figures are judged against, measured on the
//! spot for the same number of bytes: a loopback TCP sink, and direct-I/O
//! writes to a disk.

use futures::io::{AsyncReadExt, AsyncWriteExt};
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

/// MB/s of `bytes` written with direct I/O in 1 MiB writes (4 in flight)
/// to a new file in `dir`, ending with an `fdatasync`. The file is removed.
pub fn direct_write(dir: &Path, bytes: u64) -> Result<f64, String> {
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
                let next = Rc::new(std::cell::Cell::new(0u64));
                let started = Instant::now();
                let writers: Vec<_> = (0..4)
                    .map(|_| {
                        let (file, next) = (file.clone(), next.clone());
                        glommio::spawn_local(async move {
                            let mut buf = file.alloc_dma_buffer(WRITE_BYTES);
                            buf.as_bytes_mut().fill(0x5a);
                            let buf = Rc::new(buf);
                            loop {
                                let i = next.get();
                                if i >= blocks {
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
                file.fdatasync().await.map_err(|e| e.to_string())?;
                let mbps =
                    (blocks * WRITE_BYTES as u64) as f64 / started.elapsed().as_secs_f64() / 1e6;
                if let Ok(file) = Rc::try_unwrap(file) {
                    let _ = file.close().await;
                }
                Ok::<f64, String>(mbps)
            }
        })
        .map_err(|e| e.to_string())?;
    let result = run.join().map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&path);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_baselines_move_the_bytes_they_are_asked_to() {
        let dir = tempfile::tempdir().unwrap();
        assert!(tcp_sink(8 << 20).unwrap() > 0.0);
        assert!(direct_write(dir.path(), 8 << 20).unwrap() > 0.0);
        assert!(
            !dir.path()
                .join(format!(".corelog-baseline-{}", std::process::id()))
                .exists(),
            "the file is removed"
        );
    }
}
