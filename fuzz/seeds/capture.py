#!/usr/bin/env python3
"""Splits a loopback packet capture into what clients sent to a broker.

    capture.py PCAP OUT_DIR native=PORT[,PORT...] kafka=PORT[,PORT...]

PCAP is a tcpdump capture (`tcpdump -i lo -w PCAP`, classic pcap format).
Every TCP connection to one of the given broker ports is reassembled in
sequence order, client to broker only, and written to OUT_DIR/<kind>/ as
`stream-<n>.bin` (the whole stream) and `frame-<n>-<i>.bin` (each request
frame, length prefix included: little-endian u32 for native, big-endian
i32 for Kafka).
"""

import os
import struct
import sys

LINKTYPE_ETHERNET = 1
LINKTYPE_LINUX_SLL = 113
LINKTYPE_RAW = 101


def packets(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        sys.exit(f"{path}: not a classic pcap file")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    at = 24
    while at + 16 <= len(data):
        incl = struct.unpack(endian + "I", data[at + 8 : at + 12])[0]
        frame = data[at + 16 : at + 16 + incl]
        at += 16 + incl
        if linktype == LINKTYPE_ETHERNET:
            if frame[12:14] != b"\x08\x00":
                continue
            ip = frame[14:]
        elif linktype == LINKTYPE_LINUX_SLL:
            if frame[14:16] != b"\x08\x00":
                continue
            ip = frame[16:]
        elif linktype == LINKTYPE_RAW:
            ip = frame
        else:
            sys.exit(f"link type {linktype} is not handled")
        yield ip


def segments(path):
    """(connection key, seq, syn, payload) of every TCP segment over IPv4."""
    for ip in packets(path):
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
            continue
        ihl = (ip[0] & 15) * 4
        total = struct.unpack(">H", ip[2:4])[0]
        tcp = ip[ihl:total]
        sport, dport, seq = struct.unpack(">HHI", tcp[:8])
        offset = (tcp[12] >> 4) * 4
        syn = bool(tcp[13] & 2)
        src, dst = ip[12:16], ip[16:20]
        yield (src, sport, dst, dport), seq, syn, tcp[offset:]


def frames(stream, fmt):
    at = 0
    while at + 4 <= len(stream):
        (n,) = struct.unpack(fmt, stream[at : at + 4])
        if n < 0 or at + 4 + n > len(stream):
            break
        yield stream[at : at + 4 + n]
        at += 4 + n


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    path, out = sys.argv[1], sys.argv[2]
    kinds = {}
    for arg in sys.argv[3:]:
        kind, ports = arg.split("=", 1)
        for port in ports.split(","):
            kinds[int(port)] = kind
    # Each connection (a SYN starts a new one on a reused 4-tuple): its
    # initial sequence number and its data segments.
    conns = []
    current = {}
    for key, seq, syn, payload in segments(path):
        if key[3] not in kinds:
            continue
        if syn:
            conn = {"kind": kinds[key[3]], "isn": (seq + 1) & 0xFFFFFFFF, "data": {}}
            conns.append(conn)
            current[key] = conn
            continue
        conn = current.get(key)
        if conn is not None and payload:
            rel = (seq - conn["isn"]) & 0xFFFFFFFF
            conn["data"].setdefault(rel, payload)
    counts = {}
    for conn in conns:
        stream = bytearray()
        for rel in sorted(conn["data"]):
            payload = conn["data"][rel]
            if rel > len(stream):
                break  # a gap: keep what came before it
            stream.extend(payload[len(stream) - rel :])
        if not stream:
            continue
        kind = conn["kind"]
        n = counts[kind] = counts.get(kind, 0) + 1
        folder = os.path.join(out, kind)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"stream-{n}.bin"), "wb") as f:
            f.write(stream)
        fmt = "<I" if kind == "native" else ">i"
        for i, frame in enumerate(frames(bytes(stream), fmt)):
            with open(os.path.join(folder, f"frame-{n}-{i}.bin"), "wb") as f:
                f.write(frame)
    for kind, n in sorted(counts.items()):
        print(f"{kind}: {n} connections")


if __name__ == "__main__":
    main()
