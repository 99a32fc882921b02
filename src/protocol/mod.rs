//! Wire protocols: the framing both share, the native flatbuffers protocol
//! ([`native`]), the Kafka protocol ([`kafka`]), and the [`Protocol`] trait
//! through which the server drives either. No sockets beyond reading and
//! writing frames on a stream handed in by the caller.
//!
//! A frame is a 4-byte length and that many bytes: little-endian `u32` for
//! the native protocol (flatbuffers' own size prefix, so a response built
//! with `finish_size_prefixed` is a complete frame without a copy),
//! big-endian `i32` for Kafka. Lengths are checked against the limit before
//! any allocation.
//!
//! Adapters turn frames into the broker core's domain requests
//! (`crate::broker`) and its responses back into frames; they are the only
//! code that knows a wire type or a wire code.

#[rustfmt::skip]
#[allow(clippy::all, clippy::pedantic, unsafe_op_in_unsafe_fn, mismatched_lifetime_syntaxes, unused_imports, dead_code)]
mod corelog_generated;

pub use corelog_generated::corelog::wire;

pub mod kafka;
pub mod native;
pub mod produce_frame;

pub use native::{PROTOCOL_VERSION, error_name, parse_request, parse_response, verifier_options};

use crate::constants::FRAME_BYTES_MAX;
use crate::shard::Shard;
use bytes::{Buf, Bytes, BytesMut};
use futures::future::LocalBoxFuture;
use futures::io::{AsyncRead, AsyncReadExt};
use std::io;
use std::rc::Rc;

/// How a protocol's frames announce their length.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LengthPrefix {
    /// `u32` little-endian (the native protocol, flatbuffers' size prefix).
    U32LittleEndian,
    /// `i32` big-endian (Kafka); a negative length is an error.
    I32BigEndian,
}

/// A response ready to write: one buffer, or several written in order
/// (record data stays in the buffers it was read into).
#[derive(Debug)]
pub enum Outgoing {
    One(Bytes),
    Parts(Vec<Bytes>),
}

impl Outgoing {
    pub fn len(&self) -> usize {
        match self {
            Outgoing::One(b) => b.len(),
            Outgoing::Parts(parts) => parts.iter().map(Bytes::len).sum(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pieces to write, in order.
    pub fn parts(&self) -> &[Bytes] {
        match self {
            Outgoing::One(b) => std::slice::from_ref(b),
            Outgoing::Parts(parts) => parts,
        }
    }
}

/// What the server does with one frame.
pub enum Dispatch {
    /// Run the handler concurrently with later requests; its answer (if
    /// any) is written in request order.
    Handle(LocalBoxFuture<'static, Option<Outgoing>>, RequestKind),
    /// Answer at once (in request order).
    Reply(Outgoing),
    /// Answer (if given), then close the connection.
    Close(Option<Outgoing>),
}

/// What a handled request is, for the latency breakdown
/// ([`crate::trace`]), which follows produce requests only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    Produce,
    Fetch,
    Other,
}

/// A wire protocol the server speaks on a listener. The server owns
/// sockets, framing, pipelining, in-order answers and limits; a protocol
/// only says what a frame means.
pub trait Protocol: 'static {
    /// For logs.
    const NAME: &'static str;
    const PREFIX: LengthPrefix;
    /// Per-connection state (e.g. what the client said about itself).
    type Session: Default + 'static;

    /// The state of a new connection (`conn`: who and where from).
    /// `admin_only`: the connection holds one of the slots a shard keeps
    /// beyond its connection limit, and may only send metadata, stats and
    /// admin requests (an operator can always look).
    fn session(conn: &ConnInfo, admin_only: bool) -> Self::Session;

    /// The largest frame the connection may send now (e.g. small until a
    /// client has authenticated); the server's own limit applies too.
    fn frame_limit(session: &Self::Session) -> usize {
        let _ = session;
        usize::MAX
    }

    /// Decides what a frame (length prefix included) becomes. Called in
    /// arrival order on the connection's reader task; must not block.
    fn dispatch(shard: &Rc<Shard>, session: &Rc<Self::Session>, frame: BytesMut) -> Dispatch;

    /// The answer (if any) to a frame longer than the limit; the
    /// connection closes after it.
    fn frame_too_large(declared: u64, max: usize) -> Option<Outgoing>;

    /// The answer to the first request of a connection refused at the
    /// connection limit (`None`: the protocol has none; the connection just
    /// closes). The server reads that request only when this is
    /// implemented, bounded in size and time.
    const ANSWERS_REFUSALS: bool = false;
    fn refusal(frame: &[u8]) -> Option<Outgoing> {
        let _ = frame;
        None
    }
}

/// What the server knows of a connection when its session starts.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub peer: Option<std::net::SocketAddr>,
    /// The listener it came in on.
    pub listener: crate::shard::ListenerId,
    /// It is encrypted (TLS).
    pub tls: bool,
    /// Under mutual TLS, who the client certificate names.
    pub cert_principal: Option<crate::security::Principal>,
    /// The listener wants SASL authentication first.
    pub sasl: bool,
}

impl ConnInfo {
    /// A plaintext connection from `peer` on `listener`.
    pub fn plain(peer: Option<std::net::SocketAddr>, listener: crate::shard::ListenerId) -> Self {
        ConnInfo {
            peer,
            listener,
            tls: false,
            cert_principal: None,
            sasl: false,
        }
    }
}

/// Splits `frame` into the pieces at `spans` (`(start, len)` into the
/// frame; `len` 0 gives an empty piece), in the order given, without
/// copying: each piece shares the frame's allocation and can be changed in
/// place (the log stamps offsets into batches). Spans must not overlap.
pub fn carve(frame: BytesMut, spans: &[(usize, usize)]) -> Result<Vec<BytesMut>, String> {
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by_key(|&i| spans[i].0);
    let mut rest = frame;
    let mut consumed = 0usize;
    let mut pieces: Vec<Option<BytesMut>> = (0..spans.len()).map(|_| None).collect();
    for i in order {
        let (start, len) = spans[i];
        if len == 0 {
            pieces[i] = Some(BytesMut::new());
            continue;
        }
        if start < consumed {
            return Err("two partitions' record data overlap in the frame".into());
        }
        if start + len > consumed + rest.len() {
            return Err("record data runs past the end of the frame".into());
        }
        rest.advance(start - consumed);
        pieces[i] = Some(rest.split_to(len));
        consumed = start + len;
    }
    Ok(pieces
        .into_iter()
        .map(|p| p.expect("every span was carved"))
        .collect())
}

/// Bytes of the length prefix.
pub const FRAME_HEADER_BYTES: usize = 4;

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

impl<T: FrameSource> FrameSource for &mut T {
    async fn read_into(&mut self, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
        (**self).read_into(buf, max).await
    }
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

/// Where responses go: a socket, or a TLS session over one.
#[allow(async_fn_in_trait)] // executor-local by design: futures need not be Send
pub trait ResponseSink {
    /// Writes one whole response (or request: clients use it too), given
    /// as its parts in order.
    async fn send(&mut self, parts: &[Bytes]) -> io::Result<()>;
    /// Ends the stream (best effort).
    async fn finish(&mut self);
}

/// A plain socket writes each part from its own buffer (record data goes
/// out without a copy).
impl ResponseSink for glommio::net::TcpStream {
    async fn send(&mut self, parts: &[Bytes]) -> io::Result<()> {
        use futures::io::AsyncWriteExt;
        for part in parts {
            self.write_all(part).await?;
        }
        Ok(())
    }

    async fn finish(&mut self) {
        use futures::io::AsyncWriteExt;
        let _ = self.close().await;
    }
}

/// Responses through TLS: the parts go to the TLS session together (so
/// small parts share records), then the session is flushed — a TLS writer
/// may accept plaintext and keep ciphertext buffered, which without the
/// flush would wait for the next response.
pub struct TlsSink<W>(pub W);

impl<W: futures::io::AsyncWrite + Unpin> ResponseSink for TlsSink<W> {
    async fn send(&mut self, parts: &[Bytes]) -> io::Result<()> {
        use futures::io::AsyncWriteExt;
        let mut slices: Vec<io::IoSlice<'_>> = parts.iter().map(|p| io::IoSlice::new(p)).collect();
        self.0.write_all_vectored(&mut slices).await?;
        self.0.flush().await
    }

    async fn finish(&mut self) {
        use futures::io::AsyncWriteExt;
        let _ = self.0.close().await;
    }
}

/// Adapts any `AsyncRead` (a TLS session): reads into a scratch buffer
/// zeroed once (an `AsyncRead` needs an initialized slice) and appends what
/// arrived. Zero-filling the frame buffer itself for each read would cost a
/// memset of the whole space asked for — up to a large frame's remainder —
/// per TLS record of at most 16 KiB; the copy out of the scratch costs only
/// the bytes that came.
pub struct Zeroing<R> {
    reader: R,
    scratch: Box<[u8]>,
}

/// Bytes of [`Zeroing`]'s scratch: two TLS records of plaintext.
const ZEROING_SCRATCH_BYTES: usize = 32 << 10;

impl<R> Zeroing<R> {
    pub fn new(reader: R) -> Zeroing<R> {
        Zeroing {
            reader,
            scratch: vec![0; ZEROING_SCRATCH_BYTES].into_boxed_slice(),
        }
    }
}

impl<R: AsyncRead + Unpin> FrameSource for Zeroing<R> {
    async fn read_into(&mut self, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
        let want = max.min(self.scratch.len());
        let n = self.reader.read(&mut self.scratch[..want]).await?;
        buf.extend_from_slice(&self.scratch[..n]);
        Ok(n)
    }
}

/// Reads length-prefixed frames through one reusable buffer. Small frames
/// share the buffer's allocation (split off without copying); a frame
/// larger than the free space gets a buffer of its own size.
pub struct FrameReader<S> {
    source: S,
    buf: BytesMut,
    max_bytes: usize,
    prefix: LengthPrefix,
    /// Bytes asked of the source per read when the buffer is refilled.
    read_bytes: usize,
}

impl<S: FrameSource> FrameReader<S> {
    /// Changes the largest frame accepted from the next frame on (never
    /// above the protocol-wide maximum).
    pub fn set_max_bytes(&mut self, max_bytes: usize) {
        self.max_bytes = max_bytes.min(FRAME_BYTES_MAX);
    }

    /// A reader of native frames (little-endian `u32` lengths).
    pub fn new(source: S, max_bytes: usize) -> FrameReader<S> {
        FrameReader::with_prefix(source, max_bytes, LengthPrefix::U32LittleEndian)
    }

    pub fn with_prefix(source: S, max_bytes: usize, prefix: LengthPrefix) -> FrameReader<S> {
        let read_bytes = 64 << 10;
        FrameReader {
            source,
            buf: BytesMut::with_capacity(read_bytes),
            max_bytes: max_bytes.min(FRAME_BYTES_MAX),
            prefix,
            read_bytes,
        }
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Waits for the next frame's first bytes (at once if some are
    /// buffered); `Ok(0)` at the end of the stream. Lets the caller time
    /// the wait for a frame apart from the time the frame takes to arrive.
    pub async fn fill(&mut self) -> Result<usize, FrameError> {
        if !self.buf.is_empty() {
            return Ok(self.buf.len());
        }
        self.source
            .read_into(&mut self.buf, self.read_bytes)
            .await
            .map_err(FrameError::Io)
    }

    /// The next frame, length prefix included (flatbuffers aligns fields
    /// relative to the start of the size-prefixed buffer, so the prefix must
    /// stay for verification), or `None` at a clean end of stream between
    /// frames.
    pub async fn next_frame(&mut self) -> Result<Option<BytesMut>, FrameError> {
        match self.next_header().await? {
            Some(total) => self.frame_body(total).await.map(Some),
            None => Ok(None),
        }
    }

    /// Reads the next frame's length prefix and returns the frame's whole
    /// size (prefix included), or `None` at a clean end of stream between
    /// frames. Nothing is allocated for the frame yet: the caller may
    /// reserve memory for it before [`FrameReader::frame_body`] reads it.
    pub async fn next_header(&mut self) -> Result<Option<usize>, FrameError> {
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
        let head: [u8; 4] = self.buf[..4].try_into().expect("four bytes");
        let declared = match self.prefix {
            LengthPrefix::U32LittleEndian => u32::from_le_bytes(head) as u64,
            // A negative length reads as a huge one: too large.
            LengthPrefix::I32BigEndian => i32::from_be_bytes(head) as i64 as u64,
        };
        if declared > self.max_bytes as u64 {
            return Err(FrameError::TooLarge {
                declared,
                max: self.max_bytes,
            });
        }
        Ok(Some(FRAME_HEADER_BYTES + declared as usize))
    }

    /// Reads the rest of the frame whose header [`FrameReader::next_header`]
    /// returned (`total` bytes, prefix included).
    pub async fn frame_body(&mut self, total: usize) -> Result<BytesMut, FrameError> {
        debug_assert!(
            self.buf.len() >= FRAME_HEADER_BYTES && total <= FRAME_HEADER_BYTES + self.max_bytes
        );
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
            return Ok(own);
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
        Ok(self.buf.split_to(total))
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
        let mut reader = FrameReader::new(Zeroing::new(futures::io::Cursor::new(bytes)), 1 << 20);
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
            Zeroing::new(futures::io::Cursor::new(framed(&[&[0u8; 100]]))),
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
        let mut reader = FrameReader::new(Zeroing::new(futures::io::Cursor::new(bytes)), 1000);
        assert!(matches!(
            block_on(reader.next_frame()),
            Err(FrameError::Truncated { missing: 24 })
        ));
        let mut reader =
            FrameReader::new(Zeroing::new(futures::io::Cursor::new(vec![1u8, 0])), 1000);
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
            Zeroing::new(futures::io::Cursor::new(fbb.finished_data().to_vec())),
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
