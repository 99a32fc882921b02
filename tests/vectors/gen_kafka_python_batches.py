#!/usr/bin/env python3
"""Writes record batches encoded by kafka-python, an encoder independent of
corelog, so corelog's parser and builder are checked against another
implementation of the v2 format.

Run once and commit the output (corelog's tests must not need Python):

    pip install kafka-python==3.0.12
    python3 tests/vectors/gen_kafka_python_batches.py > tests/vectors/kafka_python_batches.bin

The records below are mirrored exactly by `kafka_python_vector` in
src/record/mod.rs; change both together.
"""
import sys

from kafka.record.default_records import DefaultRecordBatchBuilder

BASE_TS = 1_700_000_000_000


def batch(records, producer_id=-1, producer_epoch=-1, base_sequence=-1):
    b = DefaultRecordBatchBuilder(
        magic=2, compression_type=0, is_transactional=False,
        producer_id=producer_id, producer_epoch=producer_epoch,
        base_sequence=base_sequence, batch_size=1 << 30)
    for i, (ts, key, value, headers) in enumerate(records):
        assert b.append(i, ts, key, value, headers) is not None
    return bytes(b.build())


out = bytearray()
# 1: nulls, empty key, a negative timestamp delta, a null header value,
#    a non-ASCII header key.
out += batch([
    (BASE_TS, b"key-0", b"value-0", [("h1", b"v1")]),
    (BASE_TS + 5, None, b"v", []),
    (BASE_TS - 3, b"", None, [("n", None), ("utf8-\u00fc", b"\x00\xff")]),
])
# 2: 200 records whose value lengths cross the one- and two-byte varint
#    boundaries.
out += batch([
    (BASE_TS + 7 * i, b"k%d" % i, bytes((i + j) % 256 for j in range((i * 37) % 301)), [])
    for i in range(200)
])
# 3: idempotent-producer fields.
out += batch([(BASE_TS, b"a", b"1", []), (BASE_TS + 1, b"b", b"2", [])],
             producer_id=12345, producer_epoch=3, base_sequence=42)
sys.stdout.buffer.write(out)
