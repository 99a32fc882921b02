//! The compression codecs of record batch v2: which codec a batch names in
//! its attribute bits 0–2, and compression and bounded decompression of a
//! batch's records area in the formats Kafka clients use.
//!
//! | id | codec  | format                                                        |
//! |----|--------|---------------------------------------------------------------|
//! | 0  | none   | —                                                             |
//! | 1  | gzip   | gzip stream (RFC 1952); concatenated members are read, as Java's `GZIPInputStream` does |
//! | 2  | snappy | read: xerial framing (Java clients) or raw snappy (librdkafka); written: xerial |
//! | 3  | lz4    | LZ4 frame format (not bare blocks)                            |
//! | 4  | zstd   | zstd frames                                                   |
//!
//! Decompression is bounded: [`decompress`] stops with
//! [`DecompressError::TooLarge`] as soon as the output would pass the
//! caller's limit, so a few hostile bytes cannot make the broker allocate
//! without end. Both directions write into a `Vec` the caller owns, so a hot
//! path reuses one buffer instead of allocating per batch.
//!
//! Default levels when compressing (the codec libraries' usual trade-off,
//! which is also what Kafka's producer uses unless told otherwise):
//! gzip level [`GZIP_LEVEL`], zstd level [`ZSTD_LEVEL`]; lz4 uses
//! `lz4_flex`'s only (fast) level with 64 KiB independent blocks, as
//! Kafka's own LZ4 writer does; snappy has no levels and is cut into xerial
//! blocks of 32 KiB of input, the xerial library's default.

use super::batch::ATTR_COMPRESSION_MASK;
use crate::constants::DECOMPRESS_READ_STEP_BYTES_MIN;
use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

/// gzip level used by [`compress`]: zlib's default (6), which is also what
/// `java.util.zip` and so Kafka's producer use by default.
pub const GZIP_LEVEL: u32 = 6;
/// zstd level used by [`compress`]: the library's default (3), also
/// Kafka's `compression.zstd.level` default.
pub const ZSTD_LEVEL: i32 = 3;

/// Largest zstd window (as a power of two) a frame may ask for. zstd's own
/// default limit, which Kafka's broker (zstd-jni) applies too: producers at
/// the highest levels use windows this large, and a frame asking for more is
/// refused instead of making the decoder allocate it.
const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// LZ4 frame magic number (little-endian on the wire) and FLG bits.
const LZ4_FRAME_MAGIC: u32 = 0x184D_2204;
const LZ4_FLAG_BLOCK_CHECKSUM: u8 = 0x10;
const LZ4_FLAG_CONTENT_SIZE: u8 = 0x08;
const LZ4_FLAG_CONTENT_CHECKSUM: u8 = 0x04;
const LZ4_FLAG_DICTIONARY_ID: u8 = 0x01;

/// The first 8 bytes of a xerial snappy stream.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
/// Magic plus two big-endian i32s: version and compatible version.
const XERIAL_HEADER_BYTES: usize = 16;
/// What Java's xerial library writes in both version fields.
const XERIAL_VERSION: i32 = 1;
/// Uncompressed bytes per xerial block, the xerial library's default.
const XERIAL_BLOCK_BYTES: usize = 32 << 10;

/// A record batch's compression codec.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Compression {
    #[default]
    None = 0,
    Gzip = 1,
    Snappy = 2,
    Lz4 = 3,
    Zstd = 4,
}

impl Compression {
    /// Every codec, in id order.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// The codec with attribute id `id`, or `None` for ids Kafka does not
    /// define (5–7).
    pub fn from_id(id: u8) -> Option<Compression> {
        Compression::ALL.get(usize::from(id)).copied()
    }

    /// The codec named by a batch's attributes (bits 0–2), or `None` for
    /// the undefined ids 5–7.
    pub fn from_attributes(attributes: u16) -> Option<Compression> {
        Compression::from_id((attributes & ATTR_COMPRESSION_MASK) as u8)
    }

    /// The codec id carried in attribute bits 0–2.
    pub fn id(self) -> u8 {
        self as u8
    }

    /// The name Kafka's `compression.type` uses.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// A codec name that is not one of `none|gzip|snappy|lz4|zstd`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseCompressionError {
    pub found: String,
}

impl fmt::Display for ParseCompressionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown compression codec {:?}: expected one of none, gzip, snappy, lz4, zstd",
            self.found
        )
    }
}

impl std::error::Error for ParseCompressionError {}

impl FromStr for Compression {
    type Err = ParseCompressionError;

    /// Parses a codec name, ignoring ASCII case.
    fn from_str(s: &str) -> Result<Compression, ParseCompressionError> {
        Compression::ALL
            .into_iter()
            .find(|codec| codec.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| ParseCompressionError {
                found: s.to_string(),
            })
    }
}

/// Why a payload could not be decompressed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecompressError {
    /// The output would be larger than `max` bytes.
    TooLarge { max: usize },
    /// The payload is not valid for its codec; `reason` is the codec
    /// library's explanation.
    Corrupt { reason: String },
}

impl fmt::Display for DecompressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecompressError::TooLarge { max } => {
                write!(f, "decompresses to more than {max} bytes")
            }
            DecompressError::Corrupt { reason } => f.write_str(reason),
        }
    }
}

impl std::error::Error for DecompressError {}

fn corrupt(reason: impl fmt::Display) -> DecompressError {
    DecompressError::Corrupt {
        reason: reason.to_string(),
    }
}

/// Decompresses `input` (a batch's records area) into `out`, which is
/// cleared first; its capacity is reused. Fails with
/// [`DecompressError::TooLarge`] as soon as the output would exceed
/// `max_bytes`, having allocated at most about that much.
pub fn decompress(
    codec: Compression,
    input: &[u8],
    out: &mut Vec<u8>,
    max_bytes: usize,
) -> Result<(), DecompressError> {
    out.clear();
    match codec {
        Compression::None => read_bounded(input, out, max_bytes),
        Compression::Gzip => {
            read_bounded(flate2::bufread::MultiGzDecoder::new(input), out, max_bytes)
        }
        Compression::Snappy => match input.strip_prefix(XERIAL_MAGIC) {
            Some(rest) => xerial_decompress(rest, out, max_bytes),
            None => snappy_block_decompress(input, out, max_bytes),
        },
        Compression::Lz4 => {
            lz4_check_frames(input)?;
            read_bounded(lz4_flex::frame::FrameDecoder::new(input), out, max_bytes)
        }
        Compression::Zstd => zstd_decompress(input, out, max_bytes),
    }
}

/// Checks that `input` is whole LZ4 frames, each closed by its end mark.
/// The decoder takes a frame cut off at a block boundary for a complete
/// one; Kafka's reader refuses it, and so do we. Only the block headers are
/// read; the decoder checks the rest.
fn lz4_check_frames(mut input: &[u8]) -> Result<(), DecompressError> {
    while !input.is_empty() {
        input = lz4_skip_frame(input)?;
    }
    Ok(())
}

/// Steps over one LZ4 frame (magic, descriptor, blocks, end mark, optional
/// content checksum) and returns what follows it.
fn lz4_skip_frame(frame: &[u8]) -> Result<&[u8], DecompressError> {
    let truncated = || corrupt("an LZ4 frame ends before its end mark");
    let le_u32_at = |at: usize| {
        frame
            .get(at..)
            .and_then(|rest| rest.first_chunk::<4>())
            .map(|word| u32::from_le_bytes(*word))
    };
    if le_u32_at(0).ok_or_else(truncated)? != LZ4_FRAME_MAGIC {
        return Err(corrupt("not an LZ4 frame (wrong magic number)"));
    }
    let flags = *frame.get(4).ok_or_else(truncated)?;
    // Magic, FLG, BD and the header checksum, then the optional fields.
    let mut pos = 7;
    if flags & LZ4_FLAG_CONTENT_SIZE != 0 {
        pos += 8;
    }
    if flags & LZ4_FLAG_DICTIONARY_ID != 0 {
        pos += 4;
    }
    let block_checksum = if flags & LZ4_FLAG_BLOCK_CHECKSUM != 0 {
        4
    } else {
        0
    };
    loop {
        let word = le_u32_at(pos).ok_or_else(truncated)?;
        pos += 4;
        if word == 0 {
            break;
        }
        // The top bit only says the block is stored uncompressed.
        let size = (word & 0x7fff_ffff) as usize;
        pos = pos.saturating_add(size + block_checksum);
    }
    if flags & LZ4_FLAG_CONTENT_CHECKSUM != 0 {
        pos += 4;
    }
    frame.get(pos..).ok_or_else(truncated)
}

/// Reads `reader` to its end into `out`, but never more than one byte past
/// `max_bytes`: that byte tells "exactly at the limit" from "over it".
///
/// The buffer grows by doubling, each step reserved exactly and read
/// through a `take` of that size, so its capacity stays within the limit
/// too; a plain `read_to_end` could double it past the limit.
fn read_bounded(
    mut reader: impl Read,
    out: &mut Vec<u8>,
    max_bytes: usize,
) -> Result<(), DecompressError> {
    let limit = max_bytes.saturating_add(1);
    while out.len() < limit {
        let step = out
            .len()
            .max(DECOMPRESS_READ_STEP_BYTES_MIN)
            .min(limit - out.len());
        out.reserve_exact(step);
        let read = (&mut reader)
            .take(step as u64)
            .read_to_end(out)
            .map_err(corrupt)?;
        if read < step {
            break;
        }
    }
    if out.len() > max_bytes {
        return Err(DecompressError::TooLarge { max: max_bytes });
    }
    Ok(())
}

fn zstd_decompress(
    input: &[u8],
    out: &mut Vec<u8>,
    max_bytes: usize,
) -> Result<(), DecompressError> {
    // `with_buffer`: a slice is already a `BufRead`, no second buffer needed.
    let mut decoder = zstd::stream::read::Decoder::with_buffer(input).map_err(corrupt)?;
    decoder
        .window_log_max(ZSTD_WINDOW_LOG_MAX)
        .map_err(corrupt)?;
    read_bounded(decoder, out, max_bytes)
}

/// Reads the xerial framing after its magic: the two version fields, then
/// blocks of a big-endian i32 length and a raw snappy block. A first pass
/// adds up the lengths the blocks declare, so the output is checked against
/// the bound and allocated once, before anything is decompressed.
fn xerial_decompress(
    after_magic: &[u8],
    out: &mut Vec<u8>,
    max_bytes: usize,
) -> Result<(), DecompressError> {
    let versions = XERIAL_HEADER_BYTES - XERIAL_MAGIC.len();
    let blocks = after_magic
        .get(versions..)
        .ok_or_else(|| corrupt("xerial snappy header is truncated"))?;
    let mut total = 0usize;
    let mut rest = blocks;
    while !rest.is_empty() {
        let block = next_xerial_block(&mut rest)?;
        total = total.saturating_add(snap::raw::decompress_len(block).map_err(corrupt)?);
        if total > max_bytes {
            return Err(DecompressError::TooLarge { max: max_bytes });
        }
    }
    out.reserve_exact(total);
    let mut rest = blocks;
    while !rest.is_empty() {
        snappy_block_decompress(next_xerial_block(&mut rest)?, out, max_bytes)?;
    }
    Ok(())
}

/// Splits the next length-prefixed block off `rest`.
fn next_xerial_block<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], DecompressError> {
    let (length, tail) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| corrupt("a xerial snappy block length is truncated"))?;
    let length = usize::try_from(i32::from_be_bytes(*length))
        .map_err(|_| corrupt("a xerial snappy block length is negative"))?;
    if length > tail.len() {
        return Err(corrupt(
            "a xerial snappy block runs past the end of the payload",
        ));
    }
    let (block, after) = tail.split_at(length);
    *rest = after;
    Ok(block)
}

/// Appends one raw snappy block to `out`. The block's preamble declares its
/// decompressed length, which is checked against the bound before anything
/// is allocated.
fn snappy_block_decompress(
    block: &[u8],
    out: &mut Vec<u8>,
    max_bytes: usize,
) -> Result<(), DecompressError> {
    let length = snap::raw::decompress_len(block).map_err(corrupt)?;
    let start = out.len();
    if length > max_bytes.saturating_sub(start) {
        return Err(DecompressError::TooLarge { max: max_bytes });
    }
    // Exact, so a lone raw block does not over-allocate; a xerial stream
    // has reserved its whole output already.
    out.reserve_exact(length);
    out.resize(start + length, 0);
    // The decoder fails unless the block fills exactly the declared length.
    snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(corrupt)?;
    Ok(())
}

/// Compresses `input` (a batch's records area) with `codec` into `out`,
/// which is cleared first; its capacity is reused. Snappy is written in the
/// xerial framing, which Java consumers need and every client reads.
///
/// Fails only if a codec library cannot set itself up (out of memory) or
/// the input is beyond what the codec can encode (snappy: 4 GiB).
pub fn compress(codec: Compression, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    out.clear();
    match codec {
        Compression::None => out.extend_from_slice(input),
        Compression::Gzip => {
            let level = flate2::Compression::new(GZIP_LEVEL);
            let mut encoder = flate2::write::GzEncoder::new(out, level);
            encoder.write_all(input)?;
            encoder.finish()?;
        }
        Compression::Snappy => xerial_compress(input, out)?,
        Compression::Lz4 => {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(info, out);
            encoder.write_all(input)?;
            encoder.finish().map_err(io::Error::other)?;
        }
        Compression::Zstd => {
            let mut encoder = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)?;
            // Declaring the size stores it in the frame header and lets zstd
            // pick a window no larger than the input, so decoders allocate
            // less.
            encoder.set_pledged_src_size(Some(input.len() as u64))?;
            encoder.write_all(input)?;
            encoder.finish()?;
        }
    }
    Ok(())
}

fn xerial_compress(input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    out.extend_from_slice(XERIAL_MAGIC);
    out.extend_from_slice(&XERIAL_VERSION.to_be_bytes());
    out.extend_from_slice(&XERIAL_VERSION.to_be_bytes());
    let mut encoder = snap::raw::Encoder::new();
    for chunk in input.chunks(XERIAL_BLOCK_BYTES) {
        let length_at = out.len();
        let bound = snap::raw::max_compress_len(chunk.len());
        out.resize(length_at + 4 + bound, 0);
        let written = encoder
            .compress(chunk, &mut out[length_at + 4..])
            .map_err(io::Error::other)?;
        // A block is at most max_compress_len(32 KiB) bytes: it fits an i32.
        let length = i32::try_from(written).map_err(io::Error::other)?;
        out[length_at..length_at + 4].copy_from_slice(&length.to_be_bytes());
        out.truncate(length_at + 4 + written);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        (0..200_000u32)
            .flat_map(|i| format!("record {} of a compressible run; ", i % 977).into_bytes())
            .collect()
    }

    #[test]
    fn every_codec_round_trips_through_compress_and_decompress() {
        let input = sample();
        let (mut packed, mut unpacked) = (Vec::new(), Vec::new());
        for codec in Compression::ALL {
            compress(codec, &input, &mut packed).unwrap();
            decompress(codec, &packed, &mut unpacked, input.len()).unwrap();
            assert_eq!(unpacked, input, "{codec}");
            if codec != Compression::None {
                assert!(packed.len() < input.len() / 4, "{codec} did not compress");
            }
        }
    }

    #[test]
    fn output_over_the_bound_is_refused_for_every_codec() {
        let input = sample();
        let (mut packed, mut unpacked) = (Vec::new(), Vec::new());
        for codec in Compression::ALL {
            compress(codec, &input, &mut packed).unwrap();
            let max = input.len() - 1;
            assert_eq!(
                decompress(codec, &packed, &mut unpacked, max),
                Err(DecompressError::TooLarge { max }),
                "{codec}"
            );
            assert!(
                unpacked.len() <= input.len(),
                "{codec} wrote past the bound"
            );
        }
    }

    #[test]
    fn a_refused_output_never_allocates_past_the_bound() {
        let input = vec![0u8; 8 << 20];
        let mut packed = Vec::new();
        for codec in Compression::ALL {
            compress(codec, &input, &mut packed).unwrap();
            let max = (1 << 20) + 12_345;
            let mut unpacked = Vec::new();
            let result = decompress(codec, &packed, &mut unpacked, max);
            assert_eq!(result, Err(DecompressError::TooLarge { max }), "{codec}");
            assert!(
                unpacked.capacity() <= max + 1,
                "{codec}: {}",
                unpacked.capacity()
            );
        }
    }

    #[test]
    fn raw_snappy_is_read_as_well_as_xerial() {
        let input = sample();
        let raw = snap::raw::Encoder::new().compress_vec(&input).unwrap();
        let mut unpacked = Vec::new();
        decompress(Compression::Snappy, &raw, &mut unpacked, input.len()).unwrap();
        assert_eq!(unpacked, input);
    }

    #[test]
    fn snappy_is_written_in_the_xerial_framing_java_reads() {
        let input = sample();
        let mut packed = Vec::new();
        compress(Compression::Snappy, &input, &mut packed).unwrap();
        assert_eq!(
            &packed[..16],
            b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01"
        );
        let first = i32::from_be_bytes(packed[16..20].try_into().unwrap()) as usize;
        let block = &packed[20..20 + first];
        assert_eq!(
            snap::raw::decompress_len(block).unwrap(),
            XERIAL_BLOCK_BYTES
        );
    }

    #[test]
    fn truncated_or_garbled_payloads_are_errors_not_panics() {
        let input = sample();
        let (mut packed, mut unpacked) = (Vec::new(), Vec::new());
        for codec in Compression::ALL.into_iter().skip(1) {
            compress(codec, &input, &mut packed).unwrap();
            // An empty payload may decode to nothing; validation then finds
            // the records missing.
            let empty = decompress(codec, &[], &mut unpacked, input.len());
            assert!(empty.is_err() || unpacked.is_empty(), "{codec}");
            for cut in [
                1,
                7,
                17,
                packed.len() / 2,
                packed.len() - 3,
                packed.len() - 1,
            ] {
                let result = decompress(codec, &packed[..cut], &mut unpacked, input.len());
                assert!(
                    matches!(result, Err(DecompressError::Corrupt { .. })),
                    "{codec} cut at {cut}: {result:?}"
                );
            }
            let mut garbled = packed.clone();
            for byte in garbled.iter_mut().skip(3).step_by(5) {
                *byte ^= 0x5a;
            }
            let _ = decompress(codec, &garbled, &mut unpacked, input.len());
        }
    }

    #[test]
    fn xerial_blocks_with_bad_lengths_are_corrupt() {
        let mut unpacked = Vec::new();
        let header = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
        for tail in [&b"\xff\xff\xff\xff"[..], b"\x00\x00\x10\x00ab", b"\x00\x00"] {
            let payload = [&header[..], tail].concat();
            assert!(matches!(
                decompress(Compression::Snappy, &payload, &mut unpacked, 1 << 20),
                Err(DecompressError::Corrupt { .. })
            ));
        }
    }

    #[test]
    fn codec_names_parse_and_print_and_unknown_ones_list_the_valid_names() {
        for codec in Compression::ALL {
            assert_eq!(codec.name().parse::<Compression>(), Ok(codec));
            assert_eq!(codec.to_string(), codec.name());
            assert_eq!(Compression::from_id(codec.id()), Some(codec));
            assert_eq!(
                Compression::from_attributes(0x08 | u16::from(codec.id())),
                Some(codec)
            );
        }
        assert_eq!("ZSTD".parse::<Compression>(), Ok(Compression::Zstd));
        let error = "brotli".parse::<Compression>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown compression codec \"brotli\": expected one of none, gzip, snappy, lz4, zstd"
        );
        for id in 5..=7 {
            assert_eq!(Compression::from_id(id), None);
        }
    }
}
