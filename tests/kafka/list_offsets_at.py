"""Asks one Kafka port for the latest offset of every partition of a topic,
with a hand-written ListOffsets v1 request — whichever broker metadata names
as the partitions' leaders. This is what a client with stale metadata does;
real clients always follow the leaders, so they cannot be made to.

usage: list_offsets_at.py HOST:PORT TOPIC PARTITIONS
Prints one JSON object: {"<partition>": [error_code, offset], ...}.
"""
import json
import socket
import struct
import sys

address, topic, partitions = sys.argv[1], sys.argv[2], int(sys.argv[3])
host, port = address.rsplit(":", 1)
CORRELATION_ID = 7
LIST_OFFSETS, VERSION = 2, 1
LATEST = -1


def string(text):
    data = text.encode()
    return struct.pack(">h", len(data)) + data


body = struct.pack(">ii", -1, 1) + string(topic) + struct.pack(">i", partitions)
body += b"".join(struct.pack(">iq", p, LATEST) for p in range(partitions))
frame = struct.pack(">hhi", LIST_OFFSETS, VERSION, CORRELATION_ID) + string("list-offsets-at") + body

sock = socket.create_connection((host, int(port)), timeout=30)
sock.sendall(struct.pack(">i", len(frame)) + frame)


def read(n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            sys.exit(f"the broker closed the connection after {len(data)} of {n} bytes")
        data += chunk
    return data


(size,) = struct.unpack(">i", read(4))
response = read(size)
correlation_id, topics = struct.unpack_from(">ii", response, 0)
if correlation_id != CORRELATION_ID:
    sys.exit(f"correlation id {correlation_id}, sent {CORRELATION_ID}")
at = 8
answers = {}
for _ in range(topics):
    (name_len,) = struct.unpack_from(">h", response, at)
    at += 2 + name_len
    (count,) = struct.unpack_from(">i", response, at)
    at += 4
    for _ in range(count):
        partition, error, _timestamp, offset = struct.unpack_from(">ihqq", response, at)
        at += 22
        answers[partition] = [error, offset]
print(json.dumps(answers))
