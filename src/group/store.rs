//! The records of `__consumer_offsets`, in Kafka's own layouts so Kafka's
//! tools could read them:
//!
//! * offset commit — key version 1: `group`, `topic`, `partition`; value
//!   version 3: `offset i64`, `leader_epoch i32`, `metadata string`,
//!   `commit_timestamp i64`; a null value (tombstone) deletes the commit;
//! * group — key version 2: `group`; value version 3 with the protocol
//!   type, generation, protocol, leader and state timestamp, and no members
//!   (members rejoin after a coordinator restart); a tombstone deletes the
//!   group.
//!
//! Strings are `i16` length + UTF-8 (`-1` for null), integers big-endian.

use bytes::{BufMut, Bytes, BytesMut};

const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_KEY_VERSION: i16 = 2;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_VALUE_VERSION: i16 = 3;

/// One record of the offsets topic, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    Offset {
        group: String,
        topic: String,
        partition: i32,
        /// `None`: the commit was deleted.
        value: Option<OffsetValue>,
    },
    Group {
        group: String,
        /// `None`: the group was deleted.
        value: Option<GroupValue>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub state_ms: i64,
}

fn put_str(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        None => buf.put_i16(-1),
        Some(s) => {
            // Callers bound every string far below i16::MAX.
            buf.put_i16(s.len().min(i16::MAX as usize) as i16);
            buf.put_slice(&s.as_bytes()[..s.len().min(i16::MAX as usize)]);
        }
    }
}

/// The key of a partition's committed offset.
pub fn offset_key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut buf = BytesMut::with_capacity(10 + group.len() + topic.len());
    buf.put_i16(OFFSET_KEY_VERSION);
    put_str(&mut buf, Some(group));
    put_str(&mut buf, Some(topic));
    buf.put_i32(partition);
    buf.freeze()
}

pub fn offset_value(v: &OffsetValue) -> Bytes {
    let mut buf = BytesMut::with_capacity(26 + v.metadata.len());
    buf.put_i16(OFFSET_VALUE_VERSION);
    buf.put_i64(v.offset);
    buf.put_i32(v.leader_epoch);
    put_str(&mut buf, Some(&v.metadata));
    buf.put_i64(v.commit_ms);
    buf.freeze()
}

pub fn group_key(group: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(4 + group.len());
    buf.put_i16(GROUP_KEY_VERSION);
    put_str(&mut buf, Some(group));
    buf.freeze()
}

pub fn group_value(v: &GroupValue) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i16(GROUP_VALUE_VERSION);
    put_str(&mut buf, Some(&v.protocol_type));
    buf.put_i32(v.generation);
    put_str(&mut buf, v.protocol.as_deref());
    put_str(&mut buf, v.leader.as_deref());
    buf.put_i64(v.state_ms);
    buf.put_i32(0); // members: not kept
    buf.freeze()
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| format!("record ends at byte {}", self.buf.len()))?;
        let out = &self.buf[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into().expect("2")))
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into().expect("8")))
    }
    fn string(&mut self) -> Result<Option<String>, String> {
        let n = self.i16()?;
        if n < 0 {
            return Ok(None);
        }
        let bytes = self.take(n as usize)?;
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| "a string is not UTF-8".to_string())
    }
    fn required(&mut self, what: &str) -> Result<String, String> {
        self.string()?.ok_or_else(|| format!("{what} is null"))
    }
}

/// Decodes one record of the offsets topic. Errors name what is wrong; the
/// caller logs and skips such a record.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Entry, String> {
    let mut k = Reader { buf: key, at: 0 };
    match k.i16()? {
        0 | 1 => {
            let group = k.required("group")?;
            let topic = k.required("topic")?;
            let partition = k.i32()?;
            let value = value.map(decode_offset_value).transpose()?;
            Ok(Entry::Offset {
                group,
                topic,
                partition,
                value,
            })
        }
        2 => {
            let group = k.required("group")?;
            let value = value.map(decode_group_value).transpose()?;
            Ok(Entry::Group { group, value })
        }
        v => Err(format!("unknown key version {v}")),
    }
}

fn decode_offset_value(bytes: &[u8]) -> Result<OffsetValue, String> {
    let mut r = Reader { buf: bytes, at: 0 };
    let version = r.i16()?;
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = r.string()?.unwrap_or_default();
    let commit_ms = r.i64()?;
    Ok(OffsetValue {
        offset,
        leader_epoch,
        metadata,
        commit_ms,
    })
}

fn decode_group_value(bytes: &[u8]) -> Result<GroupValue, String> {
    let mut r = Reader { buf: bytes, at: 0 };
    let version = r.i16()?;
    let protocol_type = r.required("protocol type")?;
    let generation = r.i32()?;
    let protocol = r.string()?;
    let leader = r.string()?;
    let state_ms = if version >= 2 { r.i64()? } else { -1 };
    Ok(GroupValue {
        protocol_type,
        generation,
        protocol,
        leader,
        state_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_and_groups_round_trip() {
        let v = OffsetValue {
            offset: 42,
            leader_epoch: -1,
            metadata: "m".into(),
            commit_ms: 7,
        };
        let e = decode(&offset_key("g", "t", 3), Some(&offset_value(&v))).unwrap();
        assert_eq!(
            e,
            Entry::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 3,
                value: Some(v)
            }
        );
        let g = GroupValue {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: None,
            state_ms: 9,
        };
        let e = decode(&group_key("g"), Some(&group_value(&g))).unwrap();
        assert_eq!(
            e,
            Entry::Group {
                group: "g".into(),
                value: Some(g)
            }
        );
        assert_eq!(
            decode(&group_key("g"), None).unwrap(),
            Entry::Group {
                group: "g".into(),
                value: None
            }
        );
        assert!(decode(&[0, 9], None).is_err());
        assert!(decode(&offset_key("g", "t", 3)[..5], None).is_err());
    }
}
