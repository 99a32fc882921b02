#!/usr/bin/env python3
"""Writes compressed record batches encoded by kafka-python, so corelog's
decompression and validation are checked against another implementation of
every codec Kafka uses.

Run once and commit the output (corelog's tests must not need Python):

    pip install kafka-python==3.0.12 python-snappy lz4 zstandard
    python3 tests/vectors/gen_kafka_python_compressed_batches.py \
        > tests/vectors/kafka_python_compressed_batches.bin

Batches, in order: gzip, snappy in the xerial framing (what kafka-python and
the Java client write), snappy raw (what librdkafka writes), lz4 (frame
format, with the content size stored), zstd with idempotent-producer fields.
All hold the same records; `kafka_python_compressed_vector` in
src/record/mod.rs mirrors them exactly; change both together.
"""
import sys

import kafka.codec as codec
import kafka.record.default_records as default_records
from kafka.record.default_records import DefaultRecordBatchBuilder

BASE_TS = 1_700_000_000_000
GZIP, SNAPPY, LZ4, ZSTD = 1, 2, 3, 4


def records():
    out = []
    for i in range(60):
        key = None if i % 7 == 3 else b"key-%d" % (i % 5)
        value = None if i % 11 == 10 else (b"value %d " % i) * (i % 9 + 1)
        if i % 10 == 9:
            headers = [("n", None), ("utf8-\u00fc", b"\x00\xff")]
        elif i % 4 == 0:
            headers = [("trace", b"t-%d" % i)]
        else:
            headers = []
        ts = BASE_TS + 13 * i - (5 if i % 6 == 5 else 0)
        out.append((ts, key, value, headers))
    return out


def batch(codec_id, producer_id=-1, producer_epoch=-1, base_sequence=-1):
    b = DefaultRecordBatchBuilder(
        magic=2, compression_type=codec_id, is_transactional=False,
        producer_id=producer_id, producer_epoch=producer_epoch,
        base_sequence=base_sequence, batch_size=1 << 30)
    for i, (ts, key, value, headers) in enumerate(records()):
        assert b.append(i, ts, key, value, headers) is not None
    out = bytes(b.build())
    # kafka-python falls back to an uncompressed batch when compression does
    # not pay; the records above compress well, so this must not happen.
    assert out[22] & 0x07 == codec_id, "kafka-python did not compress"
    return out


out = bytearray()
out += batch(GZIP)
out += batch(SNAPPY)
xerial = default_records.snappy_encode
default_records.snappy_encode = lambda payload: codec.snappy_encode(
    payload, xerial_compatible=False)
out += batch(SNAPPY)
default_records.snappy_encode = xerial
out += batch(LZ4)
out += batch(ZSTD, producer_id=777, producer_epoch=1, base_sequence=5)
sys.stdout.buffer.write(out)
