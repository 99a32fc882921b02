//! Bounds checks for Kafka request frames, done before anything allocates.
//!
//! Owns three things:
//!
//! * [`parse_request_header`]: the request header (api key, api version,
//!   correlation id, client id and, in header v2, the tagged fields), with
//!   the header version chosen per API and version as Kafka does
//!   ([`request_header_version`]).
//! * [`check_request`]: a walker that follows a request body field by field
//!   along a schema transcribed from Kafka's message specs (the tables in
//!   `schemas.rs`), and returns where the body ended.
//! * [`parse_produce`]: Produce read by hand into byte ranges of the body —
//!   topic names and each partition's record data — so the broker carves the
//!   records out of the frame without a copy and never hands Produce to the
//!   `kafka-protocol` crate.
//!
//! Invariants, on any input whatsoever:
//!
//! * No panic, and no allocation sized by a number read off the wire. The
//!   only allocations are an error's field path (bounded by schema depth)
//!   and [`ProduceLayout`]'s lists, which grow one entry per element
//!   actually walked.
//! * Every array count is checked against the bytes left before its first
//!   element is read: `count × smallest encoding of one element` (at least
//!   one byte) may not exceed them. So a decoder that reserves `count`
//!   elements up front reserves at most a multiple of the frame: the
//!   element's size in memory over its smallest encoding, up to 32 for a
//!   compact string array in `kafka-protocol` 0.18 (1 byte on the wire, a
//!   32-byte `StrBytes` in memory). The caller bounds the frame; non-Produce
//!   requests deserve a far smaller bound than Produce.
//! * Every string, bytes and records length is checked against the bytes
//!   left; strings are at most [`KAFKA_STRING_BYTES_MAX`]; an unsigned varint
//!   is at most 5 bytes and fits in 32 bits; null appears only where the
//!   version allows it; negative lengths other than -1 are refused.
//! * In flexible versions every struct's tagged fields are walked: unknown
//!   tags are skipped by their declared size, a known tag's content is
//!   walked within that size and must fill it exactly (the crate decodes a
//!   known tag without looking at its size, so a mismatch would desync it),
//!   and a known tag outside its tagged versions is refused, as Kafka does.
//!   A tag above `i32::MAX` is refused too: the crate keeps tags as `i32`.
//! * Each loop iteration consumes at least one byte, so time is linear in
//!   the frame.
//! * Offsets in errors count from the start of the slice handed in (the
//!   frame body after the length prefix for the header, the request body
//!   for the rest).
//!
//! The walker is never more lenient than `kafka-protocol` about structure,
//! so a body it accepts decodes with the crate to the same end (the crate
//! may still refuse it, e.g. for invalid UTF-8, which the walker does not
//! check outside Produce and the header).

mod schemas;
#[cfg(test)]
mod tests;

use crate::constants::KAFKA_STRING_BYTES_MAX;
use std::fmt;
use std::ops::{Range, RangeInclusive};

/// Longest unsigned varint holding 32 bits: 5 groups of 7 bits.
const UVARINT32_BYTES_MAX: usize = 5;
/// Smallest tagged field: its tag and its size, one byte each.
const TAGGED_FIELD_BYTES_MIN: usize = 2;
/// Produce versions [`parse_produce`] reads (the schema table's range).
const PRODUCE_VERSIONS: RangeInclusive<i16> = 3..=13;
/// From this Produce version on, topics are named by id instead of by name.
const PRODUCE_TOPIC_ID_SINCE: i16 = 13;
const PRODUCE_API_KEY: i16 = 0;
/// ControlledShutdown v0 predates the client id: its header is v0.
const CONTROLLED_SHUTDOWN_API_KEY: i16 = 7;

/// Why a header or request body was refused. Every variant that concerns a
/// field names it as a path (`ProduceRequest.TopicData[2].Name`) and gives
/// the byte offset where the offending value starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalkError {
    /// No schema covers this API key and version.
    NoSchema { api_key: i16, version: i16 },
    /// The header names an API key this build does not know, so its header
    /// version (and where the body starts) is unknown.
    UnknownApiKey {
        api_key: i16,
        api_version: i16,
        correlation_id: i32,
    },
    /// A fixed-size value or varint runs past the end.
    Truncated {
        field: String,
        offset: usize,
        needed: usize,
        remaining: usize,
    },
    /// An array (or tagged-field) count claims more elements than the bytes
    /// left could hold.
    CountTooLarge {
        field: String,
        offset: usize,
        count: u64,
        element_bytes_min: usize,
        remaining: usize,
    },
    /// A string, bytes or records length runs past the end.
    LengthTooLarge {
        field: String,
        offset: usize,
        length: u64,
        remaining: usize,
    },
    /// A string longer than Kafka allows.
    StringTooLong {
        field: String,
        offset: usize,
        length: u64,
        max: usize,
    },
    /// A length or count below -1.
    NegativeLength {
        field: String,
        offset: usize,
        length: i64,
    },
    /// Null where this version does not allow it.
    UnexpectedNull {
        field: String,
        offset: usize,
        version: i16,
    },
    /// An unsigned varint longer than 5 bytes or beyond 32 bits.
    BadVarint { field: String, offset: usize },
    /// A known tag in a version where the field is not tagged.
    TagNotValidForVersion {
        field: String,
        offset: usize,
        tag: u32,
        version: i16,
    },
    /// A known tag whose content is shorter than the size it declares.
    TaggedFieldSize {
        field: String,
        offset: usize,
        declared: usize,
        used: usize,
    },
    /// A string that must be text is not UTF-8.
    InvalidUtf8 { field: String, offset: usize },
    /// A tagged field number above `i32::MAX`: the protocol crate keeps
    /// tags as `i32`, so it would hold a different number than was sent
    /// (and drop the field when encoding it again).
    TagTooLarge {
        field: String,
        offset: usize,
        tag: u32,
    },
}

impl fmt::Display for WalkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use WalkError::*;
        match self {
            NoSchema { api_key, version } => {
                write!(
                    f,
                    "no request schema for API key {api_key} version {version}"
                )
            }
            UnknownApiKey {
                api_key,
                api_version,
                correlation_id,
            } => write!(
                f,
                "unknown API key {api_key} (version {api_version}, correlation id \
                 {correlation_id}): its header layout is unknown"
            ),
            Truncated {
                field,
                offset,
                needed,
                remaining,
            } => write!(
                f,
                "{field} at byte {offset} needs {needed} bytes but only {remaining} remain"
            ),
            CountTooLarge {
                field,
                offset,
                count,
                element_bytes_min,
                remaining,
            } => write!(
                f,
                "{field} at byte {offset} claims {count} elements of at least \
                 {element_bytes_min} bytes each but only {remaining} bytes remain"
            ),
            LengthTooLarge {
                field,
                offset,
                length,
                remaining,
            } => write!(
                f,
                "{field} at byte {offset} has length {length} but only {remaining} bytes remain"
            ),
            StringTooLong {
                field,
                offset,
                length,
                max,
            } => write!(
                f,
                "{field} at byte {offset} has length {length}, over the string limit of {max} bytes"
            ),
            NegativeLength {
                field,
                offset,
                length,
            } => write!(f, "{field} at byte {offset} has negative length {length}"),
            UnexpectedNull {
                field,
                offset,
                version,
            } => write!(
                f,
                "{field} at byte {offset} is null, which version {version} does not allow"
            ),
            BadVarint { field, offset } => write!(
                f,
                "{field} at byte {offset} is a varint longer than 5 bytes or wider than 32 bits"
            ),
            TagNotValidForVersion {
                field,
                offset,
                tag,
                version,
            } => write!(
                f,
                "{field} at byte {offset}: tag {tag} is not valid in version {version}"
            ),
            TaggedFieldSize {
                field,
                offset,
                declared,
                used,
            } => write!(
                f,
                "{field} at byte {offset} declares {declared} bytes but its content is {used}"
            ),
            InvalidUtf8 { field, offset } => {
                write!(f, "{field} at byte {offset} is not valid UTF-8")
            }
            TagTooLarge { field, offset, tag } => write!(
                f,
                "{field} at byte {offset} has tag {tag}, above the largest tag {}",
                i32::MAX
            ),
        }
    }
}

impl std::error::Error for WalkError {}

/// A parsed request header. `client_id` borrows from the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader<'a> {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
    /// `None` when the client sent null (Kafka treats it as empty) and in
    /// header v0, which has no client id.
    pub client_id: Option<&'a str>,
    /// 0 (ControlledShutdown v0 only), 1, or 2 (flexible: tagged fields).
    pub header_version: i16,
}

/// Where a Produce request's parts lie in its body. Ranges index the body
/// slice given to [`parse_produce`]; nothing is copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceLayout {
    /// UTF-8 checked; `None` when null (not transactional).
    pub transactional_id: Option<Range<usize>>,
    pub acks: i16,
    pub timeout_ms: i32,
    pub topics: Vec<ProduceTopic>,
    /// Every topic's partitions, in request order; see
    /// [`ProduceLayout::partitions_of`].
    pub partitions: Vec<ProducePartition>,
    /// Where the body ended; the caller decides about trailing bytes.
    pub end: usize,
}

/// One topic of a Produce request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceTopic {
    pub topic: TopicRef,
    /// Indexes into [`ProduceLayout::partitions`].
    pub partitions: Range<usize>,
}

/// How a Produce request names a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicRef {
    /// Byte range of the UTF-8 checked name (versions 3–12).
    Name(Range<usize>),
    /// The topic id (version 13 on).
    Id([u8; 16]),
}

/// One partition of a Produce request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducePartition {
    pub index: i32,
    /// Byte range of the record data; `None` when null.
    pub records: Option<Range<usize>>,
}

impl ProduceLayout {
    /// The partitions of one of this layout's topics.
    pub fn partitions_of(&self, topic: &ProduceTopic) -> &[ProducePartition] {
        self.partitions
            .get(topic.partitions.clone())
            .unwrap_or_default()
    }
}

/// The text at `range` of `body`, or `None` if the range is outside it or
/// not UTF-8 (ranges from [`parse_produce`] are always inside and UTF-8).
pub fn str_at<'a>(body: &'a [u8], range: &Range<usize>) -> Option<&'a str> {
    body.get(range.clone())
        .and_then(|b| std::str::from_utf8(b).ok())
}

/// The request header version for an API key and version: 2 in the API's
/// flexible versions, 1 before them, and 0 for ControlledShutdown v0.
/// `None` for an API key this build does not know. ApiVersions follows the
/// same rule (v2 from request v3); only its *response* header is special
/// (always v0).
pub fn request_header_version(api_key: i16, api_version: i16) -> Option<i16> {
    let flexible_since = flexible_since(api_key)?;
    if api_key == CONTROLLED_SHUTDOWN_API_KEY && api_version == 0 {
        return Some(0);
    }
    Some(if flexible_since.is_some_and(|v| api_version >= v) {
        2
    } else {
        1
    })
}

/// Parses the request header at the start of `frame` (the bytes after the
/// 4-byte length prefix). Returns the header and the offset where the
/// request body starts.
pub fn parse_request_header(frame: &[u8]) -> Result<(RequestHeader<'_>, usize), WalkError> {
    let root = Path::root("RequestHeader");
    let mut r = Reader::new(frame);
    let api_key = r.i16(&root.child("RequestApiKey"))?;
    let api_version = r.i16(&root.child("RequestApiVersion"))?;
    let correlation_id = r.i32(&root.child("CorrelationId"))?;
    let header_version =
        request_header_version(api_key, api_version).ok_or(WalkError::UnknownApiKey {
            api_key,
            api_version,
            correlation_id,
        })?;
    // The client id keeps its INT16 length even in the flexible header v2.
    let classic = Ctx {
        version: header_version,
        flexible: false,
    };
    let client_id = if header_version >= 1 {
        read_str(&mut r, true, classic, &root.child("ClientId"))?
    } else {
        None
    };
    if header_version >= 2 {
        let flexible = Ctx {
            flexible: true,
            ..classic
        };
        walk_tagged_fields(&mut r, &[], flexible, &root)?;
    }
    let header = RequestHeader {
        api_key,
        api_version,
        correlation_id,
        client_id: client_id.map(|(_, s)| s),
        header_version,
    };
    Ok((header, r.pos))
}

/// Walks a request body of the given API key and version and returns where
/// it ended. Fails if there is no schema for them or the body is malformed.
pub fn check_request(api_key: i16, version: i16, body: &[u8]) -> Result<usize, WalkError> {
    let schema = find_schema(api_key, version).ok_or(WalkError::NoSchema { api_key, version })?;
    let ctx = Ctx {
        version,
        flexible: is_flexible(api_key, version),
    };
    let mut r = Reader::new(body);
    walk_struct(&mut r, schema.fields, ctx, &Path::root(schema.name))?;
    Ok(r.pos)
}

/// Whether [`check_request`] has a schema for this API key and version.
pub fn has_schema(api_key: i16, version: i16) -> bool {
    find_schema(api_key, version).is_some()
}

/// The versions of an API key that [`check_request`] covers, if any.
pub fn schema_versions(api_key: i16) -> Option<RangeInclusive<i16>> {
    schemas::SCHEMAS
        .iter()
        .find(|s| s.api_key == api_key)
        .map(|s| s.versions.min..=s.versions.max)
}

/// Reads a Produce request body (versions 3–13) into byte ranges without
/// copying: the transactional id, acks, timeout, and per topic its name (or
/// id) and per partition its index and record data.
pub fn parse_produce(version: i16, body: &[u8]) -> Result<ProduceLayout, WalkError> {
    if !PRODUCE_VERSIONS.contains(&version) {
        return Err(WalkError::NoSchema {
            api_key: PRODUCE_API_KEY,
            version,
        });
    }
    let ctx = Ctx {
        version,
        flexible: is_flexible(PRODUCE_API_KEY, version),
    };
    let root = Path::root("ProduceRequest");
    let mut r = Reader::new(body);
    let transactional_id = read_str(&mut r, true, ctx, &root.child("TransactionalId"))?
        .map(|(start, s)| start..start + s.len());
    let acks = r.i16(&root.child("Acks"))?;
    let timeout_ms = r.i32(&root.child("TimeoutMs"))?;
    let mut layout = ProduceLayout {
        transactional_id,
        acks,
        timeout_ms,
        topics: Vec::new(),
        partitions: Vec::new(),
        end: 0,
    };
    let topics_at = root.child("TopicData");
    let topic = Ty::Struct(schemas::PRODUCE_TOPIC);
    let count = read_count(&mut r, false, min_bytes(&topic, ctx), ctx, &topics_at)?;
    for i in 0..count.unwrap_or(0) {
        parse_produce_topic(&mut r, ctx, &topics_at.element(i), &mut layout)?;
    }
    if ctx.flexible {
        walk_tagged_fields(&mut r, schemas::PRODUCE, ctx, &root)?;
    }
    layout.end = r.pos;
    Ok(layout)
}

fn parse_produce_topic(
    r: &mut Reader<'_>,
    ctx: Ctx,
    at: &Path<'_>,
    layout: &mut ProduceLayout,
) -> Result<(), WalkError> {
    let topic = if ctx.version >= PRODUCE_TOPIC_ID_SINCE {
        TopicRef::Id(r.array(&at.child("TopicId"))?)
    } else {
        let (start, name) = read_required_str(r, ctx, &at.child("Name"))?;
        TopicRef::Name(start..start + name.len())
    };
    let parts_at = at.child("PartitionData");
    let partition = Ty::Struct(schemas::PRODUCE_PARTITION);
    let count = read_count(r, false, min_bytes(&partition, ctx), ctx, &parts_at)?;
    let first = layout.partitions.len();
    for i in 0..count.unwrap_or(0) {
        let part_at = parts_at.element(i);
        let index = r.i32(&part_at.child("Index"))?;
        let records = read_sized(r, LenKind::Bytes, true, ctx, &part_at.child("Records"))?;
        if ctx.flexible {
            walk_tagged_fields(r, schemas::PRODUCE_PARTITION, ctx, &part_at)?;
        }
        layout.partitions.push(ProducePartition { index, records });
    }
    if ctx.flexible {
        walk_tagged_fields(r, schemas::PRODUCE_TOPIC, ctx, at)?;
    }
    layout.topics.push(ProduceTopic {
        topic,
        partitions: first..layout.partitions.len(),
    });
    Ok(())
}

// ---------------------------------------------------------------------------
// Schemas: the data the walker follows.

/// Versions `min..=max`; an open-ended range ("3+") has `max == i16::MAX`.
#[derive(Debug, Clone, Copy)]
struct Span {
    min: i16,
    max: i16,
}

impl Span {
    const NONE: Span = Span { min: 1, max: 0 };

    const fn from(min: i16) -> Span {
        Span { min, max: i16::MAX }
    }

    const fn contains(self, version: i16) -> bool {
        self.min <= version && version <= self.max
    }
}

/// A field's type, as far as walking it goes: Kafka's bool, int8, int16,
/// int32, int64, float64 and uuid differ only in size.
#[derive(Debug, Clone, Copy)]
enum Ty {
    /// That many bytes.
    Fixed(usize),
    /// INT16 length, or compact in flexible versions.
    Str,
    /// INT32 length, or compact in flexible versions.
    Bytes,
    /// Encoded like `Bytes`; holds record batches the walker does not open.
    Records,
    Struct(&'static [Field]),
    Array(&'static Ty),
}

/// Where a field is tagged: its tag number and the versions it is tagged in.
#[derive(Debug, Clone, Copy)]
struct Tag {
    id: u32,
    versions: Span,
}

/// One field of a struct: a line of a Kafka message spec.
#[derive(Debug, Clone, Copy)]
struct Field {
    name: &'static str,
    ty: Ty,
    versions: Span,
    nullable: Span,
    tag: Option<Tag>,
}

/// A field present from version `since` on (spec: `"versions": "since+"`).
const fn f(name: &'static str, ty: Ty, since: i16) -> Field {
    Field {
        name,
        ty,
        versions: Span::from(since),
        nullable: Span::NONE,
        tag: None,
    }
}

impl Field {
    /// Last version the field is present in (spec: `"versions": "a-max"`).
    const fn until(mut self, max: i16) -> Field {
        self.versions.max = max;
        self
    }

    /// Nullable from version `since` on (spec: `"nullableVersions"`); it
    /// only matters where the field is present.
    const fn null(mut self, since: i16) -> Field {
        self.nullable = Span::from(since);
        self
    }

    /// Tagged with `id` from version `since` on (spec: `"tag"`,
    /// `"taggedVersions"`).
    const fn tagged(mut self, id: u32, since: i16) -> Field {
        self.tag = Some(Tag {
            id,
            versions: Span::from(since),
        });
        self
    }

    /// Present in this version as a tagged field.
    fn tagged_in(&self, version: i16) -> bool {
        self.versions.contains(version) && self.tag.is_some_and(|t| t.versions.contains(version))
    }

    /// Present in this version in the struct's fixed sequence of fields.
    fn in_body(&self, version: i16) -> bool {
        self.versions.contains(version) && !self.tagged_in(version)
    }
}

/// A request: its API key, the name errors use, the versions covered and
/// its top-level fields.
struct Schema {
    api_key: i16,
    name: &'static str,
    versions: Span,
    fields: &'static [Field],
}

fn find_schema(api_key: i16, version: i16) -> Option<&'static Schema> {
    schemas::SCHEMAS
        .iter()
        .find(|s| s.api_key == api_key && s.versions.contains(version))
}

/// `Some(first flexible version)`, `Some(None)` for an API that is never
/// flexible, `None` for an unknown API key.
fn flexible_since(api_key: i16) -> Option<Option<i16>> {
    schemas::REQUEST_FLEXIBLE_SINCE
        .iter()
        .find(|(key, _)| *key == api_key)
        .map(|(_, since)| *since)
}

fn is_flexible(api_key: i16, version: i16) -> bool {
    flexible_since(api_key)
        .flatten()
        .is_some_and(|v| version >= v)
}

// ---------------------------------------------------------------------------
// Reading.

/// A field's place in the request, for error messages; built on the stack
/// as the walk descends and rendered only when something is wrong.
#[derive(Clone, Copy)]
struct Path<'p> {
    parent: Option<&'p Path<'p>>,
    name: &'static str,
    index: Option<usize>,
}

impl<'p> Path<'p> {
    const fn root(name: &'static str) -> Path<'static> {
        Path {
            parent: None,
            name,
            index: None,
        }
    }

    fn child(&'p self, name: &'static str) -> Path<'p> {
        Path {
            parent: Some(self),
            name,
            index: None,
        }
    }

    /// Element `index` of the array this path names.
    fn element(&self, index: usize) -> Path<'p> {
        Path {
            index: Some(index),
            ..*self
        }
    }

    fn render(&self) -> String {
        use std::fmt::Write;
        let mut chain = Vec::new();
        let mut node = Some(self);
        while let Some(p) = node {
            chain.push(p);
            node = p.parent;
        }
        let mut out = String::new();
        for (i, p) in chain.iter().rev().enumerate() {
            if i > 0 {
                out.push('.');
            }
            out.push_str(p.name);
            if let Some(index) = p.index {
                let _ = write!(out, "[{index}]");
            }
        }
        out
    }
}

/// How the walk reads lengths and which version's fields apply.
#[derive(Debug, Clone, Copy)]
struct Ctx {
    version: i16,
    /// Compact lengths and counts, tagged fields after every struct.
    flexible: bool,
}

/// A cursor over `buf[..end]`. Positions index `buf`, so errors inside a
/// tagged field's content still give offsets in the whole body.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader {
            buf,
            pos: 0,
            end: buf.len(),
        }
    }

    fn remaining(&self) -> usize {
        self.end - self.pos
    }

    /// A reader over the next `len` bytes (which must be within this one).
    fn sub(&self, len: usize) -> Reader<'a> {
        Reader {
            buf: self.buf,
            pos: self.pos,
            end: self.pos + len.min(self.remaining()),
        }
    }

    fn take(&mut self, len: usize, at: &Path<'_>) -> Result<&'a [u8], WalkError> {
        let remaining = self.remaining();
        if len > remaining {
            return Err(WalkError::Truncated {
                field: at.render(),
                offset: self.pos,
                needed: len,
                remaining,
            });
        }
        let bytes = self.buf.get(self.pos..self.pos + len).unwrap_or_default();
        self.pos += len;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, at: &Path<'_>) -> Result<[u8; N], WalkError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, at)?);
        Ok(out)
    }

    fn i16(&mut self, at: &Path<'_>) -> Result<i16, WalkError> {
        Ok(i16::from_be_bytes(self.array(at)?))
    }

    fn i32(&mut self, at: &Path<'_>) -> Result<i32, WalkError> {
        Ok(i32::from_be_bytes(self.array(at)?))
    }

    /// An unsigned varint of at most 32 bits. A fifth byte with a
    /// continuation bit or bits beyond 32 is refused: Kafka refuses the
    /// first, and the crate would silently drop the second, reading a
    /// different length than the walker.
    fn uvarint(&mut self, at: &Path<'_>) -> Result<u32, WalkError> {
        let offset = self.pos;
        let mut value = 0u32;
        for i in 0..UVARINT32_BYTES_MAX {
            let byte = self.take(1, at)?.first().copied().unwrap_or_default();
            let last = i == UVARINT32_BYTES_MAX - 1;
            if last && byte > 0x0f {
                break;
            }
            value |= u32::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(WalkError::BadVarint {
            field: at.render(),
            offset,
        })
    }
}

/// Which length rules apply to a sized value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum LenKind {
    /// INT16 length, at most [`KAFKA_STRING_BYTES_MAX`].
    Str,
    /// INT32 length (bytes and records).
    Bytes,
}

/// The width of a length or count outside flexible versions.
#[derive(Clone, Copy)]
enum Width {
    Int16,
    Int32,
}

/// Reads a length or count prefix: compact (unsigned varint of n + 1, 0 for
/// null) in flexible versions, else a signed INT16/INT32 (-1 for null).
/// Returns `None` for null.
fn read_prefix(
    r: &mut Reader<'_>,
    classic: Width,
    nullable: bool,
    ctx: Ctx,
    at: &Path<'_>,
) -> Result<Option<u64>, WalkError> {
    let offset = r.pos;
    let raw = if ctx.flexible {
        i64::from(r.uvarint(at)?) - 1
    } else {
        match classic {
            Width::Int16 => i64::from(r.i16(at)?),
            Width::Int32 => i64::from(r.i32(at)?),
        }
    };
    match raw {
        -1 if nullable => Ok(None),
        -1 => Err(WalkError::UnexpectedNull {
            field: at.render(),
            offset,
            version: ctx.version,
        }),
        n if n < -1 => Err(WalkError::NegativeLength {
            field: at.render(),
            offset,
            length: n,
        }),
        n => Ok(Some(n.unsigned_abs())),
    }
}

/// Reads a string/bytes/records length and skips the content; returns its
/// byte range, `None` for null.
fn read_sized(
    r: &mut Reader<'_>,
    kind: LenKind,
    nullable: bool,
    ctx: Ctx,
    at: &Path<'_>,
) -> Result<Option<Range<usize>>, WalkError> {
    let offset = r.pos;
    let classic = match kind {
        LenKind::Str => Width::Int16,
        LenKind::Bytes => Width::Int32,
    };
    let Some(len) = read_prefix(r, classic, nullable, ctx, at)? else {
        return Ok(None);
    };
    if kind == LenKind::Str && len > KAFKA_STRING_BYTES_MAX as u64 {
        return Err(WalkError::StringTooLong {
            field: at.render(),
            offset,
            length: len,
            max: KAFKA_STRING_BYTES_MAX,
        });
    }
    let remaining = r.remaining();
    if len > remaining as u64 {
        return Err(WalkError::LengthTooLarge {
            field: at.render(),
            offset,
            length: len,
            remaining,
        });
    }
    let start = r.pos;
    r.take(len as usize, at)?;
    Ok(Some(start..r.pos))
}

/// Reads a string that must be UTF-8: its start offset and text.
fn read_str<'a>(
    r: &mut Reader<'a>,
    nullable: bool,
    ctx: Ctx,
    at: &Path<'_>,
) -> Result<Option<(usize, &'a str)>, WalkError> {
    let offset = r.pos;
    let Some(range) = read_sized(r, LenKind::Str, nullable, ctx, at)? else {
        return Ok(None);
    };
    let bytes = r.buf.get(range.clone()).unwrap_or_default();
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(Some((range.start, text))),
        Err(_) => Err(WalkError::InvalidUtf8 {
            field: at.render(),
            offset,
        }),
    }
}

/// [`read_str`] for a field that is never null.
fn read_required_str<'a>(
    r: &mut Reader<'a>,
    ctx: Ctx,
    at: &Path<'_>,
) -> Result<(usize, &'a str), WalkError> {
    let offset = r.pos;
    read_str(r, false, ctx, at)?.ok_or_else(|| WalkError::UnexpectedNull {
        field: at.render(),
        offset,
        version: ctx.version,
    })
}

/// Reads an array count and checks that `count` elements of at least
/// `element_bytes_min` bytes fit in what is left. `None` for null.
fn read_count(
    r: &mut Reader<'_>,
    nullable: bool,
    element_bytes_min: usize,
    ctx: Ctx,
    at: &Path<'_>,
) -> Result<Option<usize>, WalkError> {
    let offset = r.pos;
    let Some(count) = read_prefix(r, Width::Int32, nullable, ctx, at)? else {
        return Ok(None);
    };
    check_count(r, count, element_bytes_min, offset, at).map(Some)
}

fn check_count(
    r: &Reader<'_>,
    count: u64,
    element_bytes_min: usize,
    offset: usize,
    at: &Path<'_>,
) -> Result<usize, WalkError> {
    // Every element consumes at least a byte, even if a schema ever had an
    // empty struct: this is what bounds both memory and time.
    let element_bytes_min = element_bytes_min.max(1);
    let remaining = r.remaining();
    if count.saturating_mul(element_bytes_min as u64) > remaining as u64 {
        return Err(WalkError::CountTooLarge {
            field: at.render(),
            offset,
            count,
            element_bytes_min,
            remaining,
        });
    }
    Ok(count as usize)
}

/// The smallest encoding of a value of `ty` in this version: the bound an
/// array count is checked against.
fn min_bytes(ty: &Ty, ctx: Ctx) -> usize {
    let prefix = |classic: usize| if ctx.flexible { 1 } else { classic };
    match ty {
        Ty::Fixed(len) => *len,
        Ty::Str => prefix(2),
        Ty::Bytes | Ty::Records | Ty::Array(_) => prefix(4),
        Ty::Struct(fields) => {
            let body: usize = fields
                .iter()
                .filter(|f| f.in_body(ctx.version))
                .map(|f| min_bytes(&f.ty, ctx))
                .sum();
            // The tagged-field count.
            body + usize::from(ctx.flexible)
        }
    }
}

// ---------------------------------------------------------------------------
// Walking.

fn walk_struct(
    r: &mut Reader<'_>,
    fields: &[Field],
    ctx: Ctx,
    at: &Path<'_>,
) -> Result<(), WalkError> {
    for field in fields.iter().filter(|f| f.in_body(ctx.version)) {
        let nullable = field.nullable.contains(ctx.version);
        walk_value(r, &field.ty, nullable, ctx, &at.child(field.name))?;
    }
    if ctx.flexible {
        walk_tagged_fields(r, fields, ctx, at)?;
    }
    Ok(())
}

fn walk_value(
    r: &mut Reader<'_>,
    ty: &Ty,
    nullable: bool,
    ctx: Ctx,
    at: &Path<'_>,
) -> Result<(), WalkError> {
    match ty {
        Ty::Fixed(len) => r.take(*len, at).map(drop),
        Ty::Str => read_sized(r, LenKind::Str, nullable, ctx, at).map(drop),
        Ty::Bytes | Ty::Records => read_sized(r, LenKind::Bytes, nullable, ctx, at).map(drop),
        Ty::Struct(fields) => walk_struct(r, fields, ctx, at),
        Ty::Array(element) => walk_array(r, element, nullable, ctx, at),
    }
}

fn walk_array(
    r: &mut Reader<'_>,
    element: &Ty,
    nullable: bool,
    ctx: Ctx,
    at: &Path<'_>,
) -> Result<(), WalkError> {
    let count = read_count(r, nullable, min_bytes(element, ctx), ctx, at)?;
    for i in 0..count.unwrap_or(0) {
        walk_value(r, element, false, ctx, &at.element(i))?;
    }
    Ok(())
}

/// Walks the tagged-field section that ends every struct in flexible
/// versions: a count, then per field its tag, its size and its content.
/// `fields` are the struct's fields, whose tags are known.
fn walk_tagged_fields(
    r: &mut Reader<'_>,
    fields: &[Field],
    ctx: Ctx,
    at: &Path<'_>,
) -> Result<(), WalkError> {
    let here = at.child("(tagged fields)");
    let offset = r.pos;
    let count = u64::from(r.uvarint(&here)?);
    let count = check_count(r, count, TAGGED_FIELD_BYTES_MIN, offset, &here)?;
    for _ in 0..count {
        let tag_offset = r.pos;
        let tag = r.uvarint(&here)?;
        if i32::try_from(tag).is_err() {
            return Err(WalkError::TagTooLarge {
                field: here.render(),
                offset: tag_offset,
                tag,
            });
        }
        let size_offset = r.pos;
        let size = r.uvarint(&here)? as usize;
        if size > r.remaining() {
            return Err(WalkError::LengthTooLarge {
                field: here.render(),
                offset: size_offset,
                length: size as u64,
                remaining: r.remaining(),
            });
        }
        match fields.iter().find(|f| f.tag.is_some_and(|t| t.id == tag)) {
            Some(field) => walk_known_tag(r, field, tag, tag_offset, size, ctx, at)?,
            None => drop(r.take(size, &here)?),
        }
    }
    Ok(())
}

/// Walks a known tag's content, which must fill exactly its declared size.
fn walk_known_tag(
    r: &mut Reader<'_>,
    field: &Field,
    tag: u32,
    tag_offset: usize,
    size: usize,
    ctx: Ctx,
    at: &Path<'_>,
) -> Result<(), WalkError> {
    let here = at.child(field.name);
    if !field.tagged_in(ctx.version) {
        return Err(WalkError::TagNotValidForVersion {
            field: here.render(),
            offset: tag_offset,
            tag,
            version: ctx.version,
        });
    }
    let mut content = r.sub(size);
    let nullable = field.nullable.contains(ctx.version);
    walk_value(&mut content, &field.ty, nullable, ctx, &here)?;
    if content.pos != content.end {
        return Err(WalkError::TaggedFieldSize {
            field: here.render(),
            offset: r.pos,
            declared: size,
            used: content.pos - r.pos,
        });
    }
    r.take(size, &here).map(drop)
}
