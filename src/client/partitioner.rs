//! Kafka's default key partitioner: `toPositive(murmur2(key)) % partitions`,
//! so a keyed record lands on the partition a Kafka client would pick.

pub use crate::record::murmur2;

/// The partition Kafka's default partitioner picks for `key`.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    assert!(partitions > 0, "a topic has at least one partition");
    (murmur2(key) & 0x7fff_ffff) % partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // Values from kafka-python's independent murmur2 (kafka.partitioner.
        // default); "21" → -973932308 is also the constant in Kafka's own
        // UtilsTest.
        let cases: &[(&[u8], u32, u32)] = &[
            (b"", 275646681, 1),
            (b"a", 2731586172, 4),
            (b"ab", 316155434, 2),
            (b"abc", 479470107, 3),
            (b"abcd", 2971317748, 4),
            (b"21", 3321034988, 4),
            (b"foobar", 3504634814, 6),
            (b"a-little-bit-long-string", 3308985760, 0),
            (b"a-little-bit-longer-string", 2808662467, 3),
            (b"a-little-bit-long-string-with-a-long-tail", 1443842914, 2),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                4236069325,
                5,
            ),
            (b"\x00\xff\x80\x7f", 578742699, 3),
            (b"key-12345", 3342263381, 5),
        ];
        for &(key, hash, p8) in cases {
            assert_eq!(
                murmur2(key),
                hash,
                "murmur2({:?})",
                String::from_utf8_lossy(key)
            );
            assert_eq!(partition_for_key(key, 8), p8);
        }
        assert_eq!(murmur2(b"21") as i32, -973932308);
    }
}
