#!/usr/bin/env python3
"""Turns what make.sh recorded into seed corpora (called by make.sh).

    to_corpus.py WORK_DIR CORPUS_DIR

WORK_DIR holds native/ and kafka/ (capture.py's output) and data/ (the
broker's data directory). Writes, each file below 64 KiB:

* frame_decoder/: control byte 0 + a native client's stream, control byte
  1 + a Kafka client's stream, cut at a frame boundary;
* kafka_request/: Kafka request frames, up to two per API and version;
* record_batch/: control byte 0 + batches from the segments the broker
  wrote (single batches of every codec seen, and a few runs of batches);
* segment_recovery/: control byte + a segment file, as an active and as a
  sealed segment, with and without indexes (see the target's docs).
"""

import collections
import glob
import hashlib
import os
import struct
import sys

LIMIT = 60 << 10


def frames(stream, fmt):
    at = 0
    while at + 4 <= len(stream):
        (n,) = struct.unpack(fmt, stream[at : at + 4])
        if n < 0 or at + 4 + n > len(stream):
            break
        yield at, stream[at : at + 4 + n]
        at += 4 + n


def cut(stream, fmt):
    """The longest run of whole frames from the start within LIMIT."""
    end = 0
    for at, frame in frames(stream, fmt):
        if at + len(frame) > LIMIT:
            break
        end = at + len(frame)
    return stream[:end]


def batches(segment):
    at = 0
    while at + 61 <= len(segment):
        (length,) = struct.unpack(">i", segment[at + 8 : at + 12])
        total = 12 + length
        if length < 49 or at + total > len(segment):
            break
        yield segment[at : at + total]
        at += total


class Out:
    def __init__(self, root):
        self.root = root
        self.seen = set()

    def write(self, target, name, data):
        if len(data) >= 64 << 10:
            return False
        digest = hashlib.sha1(data).hexdigest()
        if (target, digest) in self.seen:
            return False
        self.seen.add((target, digest))
        with open(os.path.join(self.root, target, f"{name}-{digest[:8]}"), "wb") as f:
            f.write(data)
        return True


def spread(items, n):
    """Up to n items spread evenly over the list."""
    if len(items) <= n:
        return items
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def main():
    work, corpus = sys.argv[1], sys.argv[2]
    out = Out(corpus)

    for kind, control, fmt in (("native", 0, "<I"), ("kafka", 1, ">i")):
        streams = sorted(glob.glob(os.path.join(work, kind, "stream-*.bin")), key=os.path.getsize)
        for path in spread(streams, 12):
            data = cut(open(path, "rb").read(), fmt)
            if data:
                out.write("frame_decoder", kind, bytes([control]) + data)

    by_api = collections.defaultdict(list)
    for path in glob.glob(os.path.join(work, "kafka", "frame-*.bin")):
        data = open(path, "rb").read()
        if len(data) >= 12:
            api, version = struct.unpack(">hh", data[4:8])
            by_api[(api, version)].append(data)
    for (api, version), found in sorted(by_api.items()):
        found.sort(key=len)
        for data in spread(found, 2):
            out.write("kafka_request", f"api{api}-v{version}", data)

    segments = sorted(glob.glob(os.path.join(work, "data", "**", "*.log"), recursive=True))
    by_codec = collections.defaultdict(list)
    runs = []
    for path in segments:
        found = list(batches(open(path, "rb").read()))
        for b in found:
            by_codec[struct.unpack(">h", b[21:23])[0] & 7].append(b)
        if len(found) >= 3:
            runs.append(b"".join(found[:3]))
    for codec, found in sorted(by_codec.items()):
        for b in spread(sorted(found, key=len), 4):
            out.write("record_batch", f"codec{codec}", b"\x00" + b)
    for run in spread(runs, 4):
        out.write("record_batch", "run", b"\x00" + run)

    usable = []
    for path in segments:
        data = open(path, "rb").read()
        whole = b"".join(batches(data))
        if 0 < len(whole) < LIMIT:
            usable.append(whole)
    usable.sort(key=len)
    # Bit 1 makes base offsets start at the segment's base, whatever
    # segment of its log the file was; bits 2 and 3: sealed, indexed.
    for i, data in enumerate(spread(usable, 6)):
        for control in (0x02, 0x06, 0x0A, 0x0E):
            out.write("segment_recovery", f"seg{i}-c{control:02x}", bytes([control]) + data)

    for target in sorted(os.listdir(corpus)):
        files = os.listdir(os.path.join(corpus, target))
        print(f"{target}: {len(files)} seeds")


if __name__ == "__main__":
    main()
