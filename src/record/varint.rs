//! Zig-zag variable-length integers, as Kafka's record format uses them
//! (protobuf's encoding: 7 bits per byte, least significant group first).
//!
//! Decoding is strict: a varint longer than its type allows, or one that runs
//! off the end of the buffer, is an error, never a silent wrap.

/// Why a varint could not be read.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum VarintError {
    /// The buffer ended in the middle of the varint.
    Truncated,
    /// More continuation bytes than the type can hold.
    Overlong,
}

#[inline]
fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
fn unzigzag64(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Bytes needed to encode `v` as a Kafka varlong (also valid for varints).
#[inline]
pub fn size_of_varlong(v: i64) -> usize {
    let z = zigzag64(v);
    // 1 byte per started group of 7 bits, at least one byte.
    let bits = 64 - (z | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Bytes needed to encode `v` as a Kafka varint.
#[inline]
pub fn size_of_varint(v: i32) -> usize {
    size_of_varlong(v as i64)
}

/// Appends `v` as a varlong to `out`.
#[inline]
pub fn put_varlong(out: &mut impl bytes::BufMut, v: i64) {
    let mut z = zigzag64(v);
    while z >= 0x80 {
        out.put_u8((z as u8) | 0x80);
        z >>= 7;
    }
    out.put_u8(z as u8);
}

/// Appends `v` as a varint to `out`.
#[inline]
pub fn put_varint(out: &mut impl bytes::BufMut, v: i32) {
    put_varlong(out, v as i64);
}

/// Reads a varlong at `*pos`, advancing `*pos` past it.
#[inline]
pub fn read_varlong(buf: &[u8], pos: &mut usize) -> Result<i64, VarintError> {
    read_unsigned(buf, pos, 10).map(unzigzag64)
}

/// Reads a varint at `*pos`, advancing `*pos` past it.
#[inline]
pub fn read_varint(buf: &[u8], pos: &mut usize) -> Result<i32, VarintError> {
    let z = read_unsigned(buf, pos, 5)?;
    if z > u32::MAX as u64 {
        return Err(VarintError::Overlong);
    }
    Ok(unzigzag64(z) as i32)
}

#[inline]
fn read_unsigned(buf: &[u8], pos: &mut usize, max_len: usize) -> Result<u64, VarintError> {
    let mut value: u64 = 0;
    for i in 0..max_len {
        let Some(&byte) = buf.get(*pos + i) else {
            return Err(VarintError::Truncated);
        };
        let group = (byte & 0x7f) as u64;
        let shift = 7 * i as u32;
        // The tenth byte of a varlong may only contribute its lowest bit.
        if shift == 63 && group > 1 {
            return Err(VarintError::Overlong);
        }
        value |= group << shift;
        if byte & 0x80 == 0 {
            *pos += i + 1;
            return Ok(value);
        }
    }
    Err(VarintError::Overlong)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings_match_kafka() {
        // Values and bytes from the Kafka protocol guide's zig-zag table.
        let cases: &[(i64, &[u8])] = &[
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (-2, &[0x03]),
            (63, &[0x7e]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
            (300, &[0xd8, 0x04]),
        ];
        for &(v, bytes) in cases {
            let mut out = Vec::new();
            put_varlong(&mut out, v);
            assert_eq!(out, bytes, "encoding of {v}");
            assert_eq!(size_of_varlong(v), bytes.len());
            let mut pos = 0;
            assert_eq!(read_varlong(bytes, &mut pos), Ok(v));
            assert_eq!(pos, bytes.len());
        }
    }

    #[test]
    fn truncated_and_overlong_varints_are_errors() {
        let mut pos = 0;
        assert_eq!(read_varint(&[0x80], &mut pos), Err(VarintError::Truncated));
        let mut pos = 0;
        assert_eq!(
            read_varint(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01], &mut pos),
            Err(VarintError::Overlong)
        );
        let mut pos = 0;
        assert_eq!(
            read_varlong(&[0xff; 11], &mut pos),
            Err(VarintError::Overlong)
        );
        assert_eq!(pos, 0, "a failed read must not move the cursor");
    }

    proptest! {
        #[test]
        fn varlong_round_trips(v in any::<i64>()) {
            let mut out = Vec::new();
            put_varlong(&mut out, v);
            prop_assert_eq!(out.len(), size_of_varlong(v));
            let mut pos = 0;
            prop_assert_eq!(read_varlong(&out, &mut pos), Ok(v));
            prop_assert_eq!(pos, out.len());
        }

        #[test]
        fn varint_round_trips(v in any::<i32>()) {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            prop_assert_eq!(out.len(), size_of_varint(v));
            let mut pos = 0;
            prop_assert_eq!(read_varint(&out, &mut pos), Ok(v));
        }
    }
}
