"""Numbered syslog load, and the count of what arrived: the proof that nothing is lost.

`send` emits N numbered RFC 5424 messages at a target rate over TCP (RFC 6587 octet counting),
TLS (RFC 5425) or UDP, and measures how long the sender was ever blocked (a receiver whose
inputs are blocked shows as a send that stalls). `count` reads a receiver's file and reports
what arrived of one run: received, missing (by sequence number), duplicated.

Each message carries `run=<tag> seq=<n>`; the tag keeps runs apart in one file.

The lab runs the sender inside an object host's network namespace, so the load really comes
from the circuit's LAN:

    ip netns exec msib-obj-int-1 .venv/bin/python -m msib.loadgen send --host 198.18.16.10 \\
        --port 514 --count 600000 --rate 10000 --tag run1 --hostname obj-int-1
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import ssl
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

TAG_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_SEQ = re.compile(r"run=(\S+) seq=(\d+)")


@dataclass(frozen=True)
class SendResult:
    """What the sender did: how many, how fast, and the longest it was held up."""

    sent: int
    seconds: float
    rate: float
    max_stall_s: float  # the longest single send() call: a blocked receiver shows here
    behind_s: float  # how far behind schedule the sender ended (0 when it kept the rate)


@dataclass(frozen=True)
class CountResult:
    """What arrived of one run at the receiver."""

    expected: int
    received: int  # distinct sequence numbers
    missing: int
    duplicates: int
    first_missing: list[int]


def message(seq: int, tag: str, hostname: str) -> bytes:
    """One numbered RFC 5424 message (no framing)."""
    return (f"<134>1 2026-01-01T00:00:00.000Z {hostname} msibload - - - run={tag} seq={seq}").encode()


def frame(msg: bytes) -> bytes:
    """RFC 6587 octet-counting framing (what RFC 5425 and rsyslog's imtcp expect)."""
    return str(len(msg)).encode() + b" " + msg


def _connect(host: str, port: int, transport: str, ca_file: str | None, peer_name: str | None) -> socket.socket:
    if transport == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect((host, port))
        return s
    raw = socket.create_connection((host, port), timeout=30)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if transport == "tls":
        ctx = ssl.create_default_context(cafile=ca_file)
        return ctx.wrap_socket(raw, server_hostname=peer_name or host)
    return raw


def send(host: str, port: int, count: int, rate: float, tag: str, *, hostname: str = "loadgen",
         transport: str = "tcp", ca_file: str | None = None, peer_name: str | None = None,
         start_seq: int = 1, batch_ms: float = 5.0) -> SendResult:
    """Send `count` numbered messages at `rate` per second; returns timing of the run.

    Messages go out in small batches every `batch_ms`, so the rate holds without a busy loop.
    """
    if not TAG_RE.match(tag):
        raise ValueError("tag: 1-64 of [A-Za-z0-9_.-]")
    if count < 1 or rate <= 0:
        raise ValueError("count >= 1 and rate > 0")
    per_batch = max(1, int(rate * batch_ms / 1000))
    sock = _connect(host, port, transport, ca_file, peer_name)
    t0 = time.monotonic()
    max_stall = 0.0
    seq = start_seq
    end = start_seq + count
    try:
        while seq < end:
            n = min(per_batch, end - seq)
            if transport == "udp":
                for i in range(seq, seq + n):
                    sock.send(message(i, tag, hostname))
            else:
                payload = b"".join(frame(message(i, tag, hostname) + b"\n") for i in range(seq, seq + n))
                before = time.monotonic()
                sock.sendall(payload)
                max_stall = max(max_stall, time.monotonic() - before)
            seq += n
            due = t0 + (seq - start_seq) / rate
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
    finally:
        if transport == "tls":
            sock.close()
        else:
            sock.close()
    seconds = time.monotonic() - t0
    planned = count / rate
    return SendResult(count, round(seconds, 3), round(count / seconds, 1), round(max_stall, 4),
                      round(max(0.0, seconds - planned), 3))


def count_lines(lines: Iterable[str], tag: str, expected: int, start_seq: int = 1) -> CountResult:
    """Count one run's sequence numbers in a receiver's lines."""
    seen = bytearray(expected)
    dup = 0
    total = 0
    marker = f"run={tag} "
    for line in lines:
        if marker not in line:
            continue
        m = _SEQ.search(line)
        if not m or m.group(1) != tag:
            continue
        i = int(m.group(2)) - start_seq
        if 0 <= i < expected:
            total += 1
            if seen[i]:
                dup += 1
            seen[i] = 1
    received = sum(seen)
    missing = [i + start_seq for i in range(expected) if not seen[i]]
    return CountResult(expected, received, len(missing), dup, missing[:20])


# A self-contained counter to run where the receiver's files are (the SIEM host's own python3):
# stdin is this script, argv: directory-or-file tag expected. Prints JSON.
REMOTE_COUNTER = r'''
import json, os, re, sys
path, tag, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
seen = bytearray(expected); dup = 0
pat = re.compile(r"run=(\S+) seq=(\d+)")
marker = "run=%s " % tag
files = [os.path.join(path, f) for f in sorted(os.listdir(path))] if os.path.isdir(path) else [path]
for fn in files:
    with open(fn, errors="replace") as fh:
        for line in fh:
            if marker not in line:
                continue
            m = pat.search(line)
            if not m or m.group(1) != tag:
                continue
            i = int(m.group(2)) - 1
            if 0 <= i < expected:
                if seen[i]:
                    dup += 1
                seen[i] = 1
received = sum(seen)
missing = [i + 1 for i in range(expected) if not seen[i]]
print(json.dumps({"expected": expected, "received": received, "missing": len(missing),
                  "duplicates": dup, "first_missing": missing[:20]}))
'''


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m msib.loadgen", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send", help="send numbered messages")
    s.add_argument("--host", required=True)
    s.add_argument("--port", type=int, default=514)
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--rate", type=float, default=10000)
    s.add_argument("--tag", required=True)
    s.add_argument("--hostname", default="loadgen")
    s.add_argument("--transport", choices=("tcp", "tls", "udp"), default="tcp")
    s.add_argument("--ca-file")
    s.add_argument("--peer-name")
    c = sub.add_parser("count", help="count a run in a receiver's file(s)")
    c.add_argument("path")
    c.add_argument("--tag", required=True)
    c.add_argument("--expected", type=int, required=True)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "send":
            res: SendResult | CountResult = send(
                args.host, args.port, args.count, args.rate, args.tag, hostname=args.hostname,
                transport=args.transport, ca_file=args.ca_file, peer_name=args.peer_name)
        else:
            with open(args.path, errors="replace") as fh:
                res = count_lines(fh, args.tag, args.expected)
    except (OSError, ValueError, ssl.SSLError) as exc:
        print(f"loadgen: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(asdict(res)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
