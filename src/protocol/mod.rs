//! The native wire protocol: framing, the code generated from
//! `schemas/corelog.fbs`, verification, and the mapping of internal errors
//! to stable error codes. No I/O beyond reading and writing frames on a
//! stream handed in by the caller.
//!
//! A frame is a `u32` little-endian length and that many bytes of one
//! flatbuffer — which is exactly flatbuffers' own size prefix, so a response
//! built with `finish_size_prefixed` is a complete frame without a copy.
//! Lengths are checked against [`FRAME_BYTES_MAX`] before any allocation, and
//! every frame runs through the flatbuffers verifier before it is read.

#[rustfmt::skip]
#[allow(clippy::all, clippy::pedantic, unsafe_op_in_unsafe_fn, mismatched_lifetime_syntaxes, unused_imports, dead_code)]
mod corelog_generated;

pub use corelog_generated::corelog::wire;

pub mod produce_frame;

use crate::constants::FRAME_BYTES_MAX;
use crate::record::BatchError;
use crate::storage::StorageError;
use bytes::BytesMut;
use futures::io::{AsyncRead, AsyncReadExt};
use std::io;
use wire::ErrorCode;

/// Bytes of the length prefix.
pub const FRAME_HEADER_BYTES: usize = 4;

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = wire::ProtocolVersion::V1.0;

/// Why a frame could not be read.
#[derive(Debug)]
pub enum FrameError {
    /// The declared length exceeds the limit; the stream cannot continue.
    TooLarge {
        declared: u64,
        max: usize,
    },
    /// The stream ended in the middle of a frame.
    Truncated {
        missing: usize,
    },
    Io(io::Error),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooLarge { declared, max } => {
                write!(f, "frame of {declared} bytes exceeds the limit of {max}")
            }
            FrameError::Truncated { missing } => {
                write!(
                    f,
                    "connection closed {missing} bytes short of a whole frame"
                )
            }
            FrameError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Where frames come from: something that appends bytes to a buffer.
#[allow(async_fn_in_trait)] // executor-local by design: futures need not be Send
pub trait FrameSource {
    /// Appends up to `max` bytes to `buf` (reserving room as needed);
    /// returns how many, 0 at end of stream.
    async fn read_into(&mut self, buf: &mut BytesMut, max: usize) -> io::Result<usize>;
}

/// A glommio socket receives straight into the buffer's spare capacity:
/// no zero-fill, no intermediate copy. When no data is ready it waits for
/// readability with a one-byte `MSG_PEEK`.
impl FrameSource for glommio::net::TcpStream {
    async fn read_into(&mut self, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
        use std::os::unix::io::AsRawFd;
        buf.reserve(max);
        loop {
            let spare = buf.spare_capacity_mut();
            let len = spare.len().min(max);
            // SAFETY: recv writes at most `len` bytes through the raw pointer
            // into memory the buffer owns; no reference to uninitialized
            // bytes is formed.
            let n = unsafe {
                libc::recv(
                    self.as_raw_fd(),
                    spare.as_mut_ptr().cast(),
                    len,
                    libc::MSG_DONTWAIT,
                )
            };
            if n >= 0 {
                // SAFETY: the kernel initialized exactly `n` bytes past `len()`.
                unsafe { buf.set_len(buf.len() + n as usize) };
                return Ok(n as usize);
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::WouldBlock => {
                    let mut one = [0u8; 1];
                    self.peek(&mut one).await.map_err(io::Error::from)?;
                }
                io::ErrorKind::Interrupted => {}
                _ => return Err(err),
            }
        }
    }
}

/// Adapts any `AsyncRead` (tests, other transports); zero-fills what it
/// offers to the reader, since `AsyncRead` needs an initialized slice.
pub struct Zeroing<R>(pub R);

impl<R: AsyncRead + Unpin> FrameSource for Zeroing<R> {
    async fn read_into(&mut self, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
        let start = buf.len();
        buf.resize(start + max, 0);
        match self.0.read(&mut buf[start..]).await {
            Ok(n) => {
                buf.truncate(start + n);
                Ok(n)
            }
            Err(e) => {
                buf.truncate(start);
                Err(e)
            }
        }
    }
}

/// Reads length-prefixed frames through one reusable buffer. Small frames
/// share the buffer's allocation (split off without copying); a frame
/// larger than the free space gets a buffer of its own size.
pub struct FrameReader<S> {
    source: S,
    buf: BytesMut,
    max_bytes: usize,
    /// Bytes asked of the source per read when the buffer is refilled.
    read_bytes: usize,
}

impl<S: FrameSource> FrameReader<S> {
    pub fn new(source: S, max_bytes: usize) -> FrameReader<S> {
        let read_bytes = 64 << 10;
        FrameReader {
            source,
            buf: BytesMut::with_capacity(read_bytes),
            max_bytes: max_bytes.min(FRAME_BYTES_MAX),
            read_bytes,
        }
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next frame, length prefix included (flatbuffers aligns fields
    /// relative to the start of the size-prefixed buffer, so the prefix must
    /// stay for verification), or `None` at a clean end of stream between
    /// frames.
    pub async fn next_frame(&mut self) -> Result<Option<BytesMut>, FrameError> {
        while self.buf.len() < FRAME_HEADER_BYTES {
            let n = self
                .source
                .read_into(&mut self.buf, self.read_bytes)
                .await
                .map_err(FrameError::Io)?;
            if n == 0 {
                return match self.buf.len() {
                    0 => Ok(None),
                    n => Err(FrameError::Truncated {
                        missing: FRAME_HEADER_BYTES - n,
                    }),
                };
            }
        }
        let len = u32::from_le_bytes(self.buf[..4].try_into().unwrap()) as usize;
        if len > self.max_bytes {
            return Err(FrameError::TooLarge {
                declared: len as u64,
                max: self.max_bytes,
            });
        }
        let total = FRAME_HEADER_BYTES + len;
        if self.buf.len() < total && self.buf.capacity() < total {
            // Big frame: read the rest straight into a buffer of its size.
            let mut own = BytesMut::with_capacity(total);
            own.extend_from_slice(&self.buf);
            self.buf.clear();
            while own.len() < total {
                let missing = total - own.len();
                if self
                    .source
                    .read_into(&mut own, missing)
                    .await
                    .map_err(FrameError::Io)?
                    == 0
                {
                    return Err(FrameError::Truncated { missing });
                }
            }
            return Ok(Some(own));
        }
        while self.buf.len() < total {
            let missing = total - self.buf.len();
            if self
                .source
                .read_into(&mut self.buf, missing.max(self.read_bytes))
                .await
                .map_err(FrameError::Io)?
                == 0
            {
                return Err(FrameError::Truncated { missing });
            }
        }
        Ok(Some(self.buf.split_to(total)))
    }
}

/// Splits a glommio socket into a reading and a writing half that are
/// independent streams on duplicated descriptors (the socket closes when
/// both are dropped).
pub fn split_stream(
    stream: glommio::net::TcpStream,
) -> io::Result<(glommio::net::TcpStream, glommio::net::TcpStream)> {
    use std::os::unix::io::{AsRawFd, FromRawFd};
    // SAFETY: dup returns a new descriptor we own (checked for -1).
    let fd = unsafe { libc::dup(stream.as_raw_fd()) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a valid, owned duplicate of a connected TCP socket.
    let writer = unsafe { glommio::net::TcpStream::from_raw_fd(fd) };
    Ok((stream, writer))
}

/// Verifier limits for requests: generous for real requests, tight enough
/// that a hostile frame cannot make verification expensive.
pub fn verifier_options() -> flatbuffers::VerifierOptions {
    flatbuffers::VerifierOptions {
        max_depth: 16,
        max_tables: 1 << 20,
        max_apparent_size: FRAME_BYTES_MAX * 2,
        ignore_missing_null_terminator: false,
    }
}

/// Verifies and opens a request frame (length prefix included).
pub fn parse_request(
    frame: &[u8],
) -> Result<wire::RequestEnvelope<'_>, flatbuffers::InvalidFlatbuffer> {
    wire::size_prefixed_root_as_request_envelope_with_opts(&verifier_options(), frame)
}

/// Verifies and opens a response frame (length prefix included).
pub fn parse_response(
    frame: &[u8],
) -> Result<wire::ResponseEnvelope<'_>, flatbuffers::InvalidFlatbuffer> {
    flatbuffers::size_prefixed_root_with_opts::<wire::ResponseEnvelope>(&verifier_options(), frame)
}

/// The stable code for a batch that failed validation.
pub fn batch_error_code(e: &BatchError) -> ErrorCode {
    match e {
        BatchError::CrcMismatch { .. } => ErrorCode::CORRUPT_BATCH_CRC,
        BatchError::UnsupportedMagic { .. } => ErrorCode::UNSUPPORTED_MAGIC,
        BatchError::RecordCountMismatch { .. } => ErrorCode::RECORD_COUNT_MISMATCH,
        BatchError::TooLarge { .. } => ErrorCode::BATCH_TOO_LARGE,
        BatchError::UnsupportedCompression { .. } => ErrorCode::UNSUPPORTED_COMPRESSION,
        BatchError::UnsupportedAttributes { .. } => ErrorCode::UNSUPPORTED_BATCH_ATTRIBUTES,
        BatchError::NoRecords => ErrorCode::EMPTY_PRODUCE,
        _ => ErrorCode::INVALID_BATCH,
    }
}

/// The stable code for a storage error.
pub fn storage_error_code(e: &StorageError) -> ErrorCode {
    match e {
        StorageError::OffsetOutOfRange { .. } => ErrorCode::OFFSET_OUT_OF_RANGE,
        StorageError::InvalidBatch { error, .. } => batch_error_code(error),
        StorageError::EmptyAppend => ErrorCode::EMPTY_PRODUCE,
        StorageError::Corrupt { .. } => ErrorCode::CORRUPT_STORED_DATA,
        StorageError::Failed { .. } | StorageError::Io { .. } => ErrorCode::STORAGE_FAILED,
        StorageError::Closed => ErrorCode::SHUTTING_DOWN,
        StorageError::Config(_) => ErrorCode::INVALID_CONFIG,
    }
}

/// A stable, human-readable name for a code (`UNKNOWN_TOPIC`), or its
/// number for codes newer than this build.
pub fn error_name(code: ErrorCode) -> String {
    code.variant_name()
        .map_or_else(|| format!("ERROR_{}", code.0), str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
        futures::executor::block_on(f)
    }

    fn framed(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            out.extend_from_slice(&(p.len() as u32).to_le_bytes());
            out.extend_from_slice(p);
        }
        out
    }

    #[test]
    fn frames_come_out_whole_across_small_and_large_sizes() {
        let big = vec![7u8; 200_000];
        let bytes = framed(&[b"a", b"", &big, b"tail"]);
        let mut reader = FrameReader::new(Zeroing(futures::io::Cursor::new(bytes)), 1 << 20);
        block_on(async {
            assert_eq!(&reader.next_frame().await.unwrap().unwrap()[4..], b"a");
            assert_eq!(&reader.next_frame().await.unwrap().unwrap()[4..], b"");
            assert_eq!(reader.next_frame().await.unwrap().unwrap().len(), 200_004);
            assert_eq!(&reader.next_frame().await.unwrap().unwrap()[4..], b"tail");
            assert!(reader.next_frame().await.unwrap().is_none());
        });
    }

    #[test]
    fn oversized_and_truncated_frames_are_errors() {
        let mut reader = FrameReader::new(
            Zeroing(futures::io::Cursor::new(framed(&[&[0u8; 100]]))),
            99,
        );
        assert!(matches!(
            block_on(reader.next_frame()),
            Err(FrameError::TooLarge {
                declared: 100,
                max: 99
            })
        ));
        let mut bytes = framed(&[&[1u8; 50]]);
        bytes.truncate(30);
        let mut reader = FrameReader::new(Zeroing(futures::io::Cursor::new(bytes)), 1000);
        assert!(matches!(
            block_on(reader.next_frame()),
            Err(FrameError::Truncated { missing: 24 })
        ));
        let mut reader = FrameReader::new(Zeroing(futures::io::Cursor::new(vec![1u8, 0])), 1000);
        assert!(matches!(
            block_on(reader.next_frame()),
            Err(FrameError::Truncated { missing: 2 })
        ));
    }

    #[test]
    fn a_size_prefixed_flatbuffer_is_a_frame() {
        let mut fbb = flatbuffers::FlatBufferBuilder::new();
        let stats = wire::StatsRequest::create(&mut fbb, &wire::StatsRequestArgs {});
        let env = wire::RequestEnvelope::create(
            &mut fbb,
            &wire::RequestEnvelopeArgs {
                correlation_id: 42,
                request_type: wire::Request::StatsRequest,
                request: Some(stats.as_union_value()),
            },
        );
        fbb.finish_size_prefixed(env, None);
        let mut reader = FrameReader::new(
            Zeroing(futures::io::Cursor::new(fbb.finished_data().to_vec())),
            1 << 20,
        );
        let frame = block_on(reader.next_frame()).unwrap().unwrap();
        let request = parse_request(&frame).unwrap();
        assert_eq!(request.correlation_id(), 42);
        assert_eq!(request.request_type(), wire::Request::StatsRequest);
    }

    #[test]
    fn random_bytes_never_verify_as_a_request_with_a_body() {
        let mut seed = 0x1234_5678_u64;
        for len in 0..400 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            // Must not panic; what verifies is handled as a request.
            let _ = parse_request(&bytes);
        }
    }
}
