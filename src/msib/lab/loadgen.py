"""Numbered syslog load, and the count of what arrived: the proof that nothing is lost.

`send` emits N numbered RFC 5424 messages at a target rate over TCP (RFC 6587 octet counting),
TLS (RFC 5425), UDP or RELP (acknowledged, sent again after a reconnect), and measures how long
the sender was ever blocked (a receiver whose inputs are blocked shows as a send that stalls).
`count` reads a receiver's file and reports what arrived of one run: received, missing (by
sequence number), duplicated.

Each message carries `run=<tag> seq=<n>`; the tag keeps runs apart in one file.

The lab runs the sender inside an object host's network namespace, so the load really comes
from the circuit's LAN:

    ip netns exec msib-obj-int-1 .venv/bin/python -m msib.lab.loadgen send --host 198.18.16.10 \\
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


@dataclass(frozen=True)
class RelpResult:
    """What a RELP sender did: every message acknowledged by the receiver, and what it took."""

    sent: int  # distinct sequence numbers acknowledged (== count when the run completed)
    seconds: float
    rate: float
    max_stall_s: float  # the longest time the sender could hand nothing over (window full or reconnecting)
    behind_s: float
    reconnects: int
    resent: int  # messages sent again after a reconnect (their first copy may have arrived: duplicates)


def relp_frame(txnr: int, command: str, data: bytes = b"") -> bytes:
    """One RELP frame: TXNR SP COMMAND SP DATALEN [SP DATA] LF."""
    head = f"{txnr} {command} {len(data)}".encode()
    return head + (b" " + data if data else b"") + b"\n"


_RELP_OFFERS = b"relp_version=0\nrelp_software=msib-loadgen\ncommands=syslog"


class _RelpReader:
    """Incremental parser of the receiver's RELP frames (responses)."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> list[tuple[int, str, bytes]]:
        self.buf += data
        frames: list[tuple[int, str, bytes]] = []
        while True:
            parts = self.buf.split(b" ", 3)
            if len(parts) < 3:
                return frames
            txnr, cmd = int(parts[0]), parts[1].decode()
            if len(parts) == 3 or not parts[2].isdigit():
                # "N rsp 0\n": no data, the length runs into the trailer
                head, sep, _ = self.buf.partition(b"\n")
                if not sep:
                    return frames
                n = int(head.split(b" ")[2])
                if n != 0:
                    return frames
                frames.append((txnr, cmd, b""))
                self.buf = self.buf[len(head) + 1:]
                continue
            n = int(parts[2])
            start = len(parts[0]) + len(parts[1]) + len(parts[2]) + 3
            if n == 0:
                start -= 1
            if len(self.buf) < start + n + 1:
                return frames
            frames.append((txnr, cmd, self.buf[start:start + n]))
            self.buf = self.buf[start + n + 1:]


def send_relp(host: str, port: int, count: int, rate: float, tag: str, *, hostname: str = "loadgen",
              window: int = 1024, batch_ms: float = 5.0, give_up_s: float = 300.0) -> RelpResult:
    """Send `count` numbered messages over RELP at `rate`; every one is acknowledged or sent again.

    RELP (rsyslog's reliable event logging protocol) acknowledges each message once the receiver
    has taken it; on a broken session the sender reconnects and sends again every message not yet
    acknowledged. Nothing is lost that way, and what was taken but not yet acknowledged when the
    session broke arrives twice (counted as duplicates at the end). The schedule keeps running
    while the sender reconnects: messages due meanwhile wait in the sender's memory.

    Raises:
        OSError: the receiver could not be reached again within `give_up_s`.
    """
    import select
    from collections import OrderedDict, deque

    if not TAG_RE.match(tag):
        raise ValueError("tag: 1-64 of [A-Za-z0-9_.-]")
    if count < 1 or rate <= 0 or window < 1:
        raise ValueError("count >= 1, rate > 0 and window >= 1")
    t0 = time.monotonic()
    pending: deque[int] = deque()  # due, not yet sent in the current session
    unacked: OrderedDict[int, int] = OrderedDict()  # txnr -> seq
    acked = bytearray(count)
    n_acked = 0
    generated = 0
    reconnects = resent = 0
    max_stall = 0.0
    last_progress = time.monotonic()
    sock: socket.socket | None = None
    reader = _RelpReader()
    txnr = 1

    def connect() -> socket.socket:
        nonlocal txnr, reader
        deadline = time.monotonic() + give_up_s
        while True:
            try:
                s = socket.create_connection((host, port), timeout=5)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                reader = _RelpReader()
                s.sendall(relp_frame(1, "open", _RELP_OFFERS))
                got: list[tuple[int, str, bytes]] = []
                while not got:
                    data = s.recv(65536)
                    if not data:
                        raise ConnectionError("RELP open: connection closed")
                    got = reader.feed(data)
                if got[0][1] != "rsp" or not got[0][2].startswith(b"200"):
                    raise ConnectionError(f"RELP open refused: {got[0][2][:60]!r}")
                s.setblocking(False)
                txnr = 2
                return s
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def broken() -> None:
        nonlocal sock, resent, reconnects
        if sock is not None:
            sock.close()
        sock = None
        again = [seq for seq in unacked.values() if not acked[seq - 1]]
        resent += len(again)
        pending.extendleft(reversed(again))
        unacked.clear()
        reconnects += 1

    out = b""
    try:
        while n_acked < count:
            now = time.monotonic()
            due = min(count, int((now - t0) * rate) + 1)
            while generated < due:
                generated += 1
                pending.append(generated)
            if sock is None:
                before = time.monotonic()
                sock = connect()
                max_stall = max(max_stall, time.monotonic() - before)
                out = b""
            while pending and len(unacked) < window:
                seq = pending.popleft()
                if acked[seq - 1]:
                    continue
                unacked[txnr] = seq
                out += relp_frame(txnr, "syslog", message(seq, tag, hostname))
                txnr = txnr + 1 if txnr < 999_999_999 else 1
            try:
                if out:
                    n = sock.send(out)
                    out = out[n:]
                r, _, _ = select.select([sock], [sock] if out else [], [], batch_ms / 1000)
                if r:
                    data = sock.recv(1 << 20)
                    if not data:
                        raise ConnectionError("receiver closed the session")
                    for t, cmd, body in reader.feed(data):
                        if cmd == "serverclose":
                            raise ConnectionError("receiver closed the session (serverclose)")
                        seq_acked = unacked.pop(t, None)
                        if seq_acked is None:
                            continue
                        if not body.startswith(b"200"):
                            pending.appendleft(seq_acked)
                            continue
                        if not acked[seq_acked - 1]:
                            acked[seq_acked - 1] = 1
                            n_acked += 1
                            last_progress = time.monotonic()
            except (BlockingIOError, InterruptedError):
                pass
            except (OSError, ValueError):
                broken()
                continue
            stalled = time.monotonic() - last_progress
            if unacked or pending:
                max_stall = max(max_stall, stalled if len(unacked) >= window or sock is None else 0.0)
            else:
                last_progress = time.monotonic()
            if not r and not pending and generated < count:
                pause = t0 + generated / rate - time.monotonic()
                if pause > 0:
                    time.sleep(min(pause, batch_ms / 1000))
        if sock is not None:
            sock.setblocking(True)
            sock.settimeout(5)
            try:
                sock.sendall(relp_frame(txnr, "close"))
                sock.recv(4096)
            except OSError:
                pass
    finally:
        if sock is not None:
            sock.close()
    seconds = time.monotonic() - t0
    return RelpResult(n_acked, round(seconds, 3), round(n_acked / seconds, 1), round(max_stall, 4),
                      round(max(0.0, seconds - count / rate), 3), reconnects, resent)


def send_prebuilt(host: str, port: int, count: int, tag: str, *, hostname: str = "loadgen",
                  rate: float = 0.0, block: int = 1000) -> SendResult:
    """Send `count` numbered messages over plain TCP, built before the clock starts.

    The sender's own CPU is then not what is measured (benchmarks: the receiver's ceiling).
    `rate` 0 sends as fast as the receiver takes them; otherwise blocks of `block` messages go out
    on a fixed schedule (a constant offered load, for "sustained" rates). `seconds` is the time
    the sending took; `behind_s` how far it ended behind the schedule (the receiver pushed back).
    """
    if not TAG_RE.match(tag):
        raise ValueError("tag: 1-64 of [A-Za-z0-9_.-]")
    if count < 1 or rate < 0 or block < 1:
        raise ValueError("count >= 1, rate >= 0 and block >= 1")
    blocks = [b"".join(frame(message(i, tag, hostname) + b"\n") for i in range(lo, min(lo + block, count + 1)))
              for lo in range(1, count + 1, block)]
    sock = _connect(host, port, "tcp", None, None)
    max_stall = 0.0
    t0 = time.monotonic()
    try:
        for n, data in enumerate(blocks):
            if rate:
                pause = t0 + n * block / rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            before = time.monotonic()
            sock.sendall(data)
            max_stall = max(max_stall, time.monotonic() - before)
    finally:
        sock.close()
    seconds = time.monotonic() - t0
    behind = max(0.0, seconds - count / rate) if rate else 0.0
    return SendResult(count, round(seconds, 3), round(count / seconds, 1), round(max_stall, 4), round(behind, 3))


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
    ap = argparse.ArgumentParser(prog="python -m msib.lab.loadgen", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send", help="send numbered messages")
    s.add_argument("--host", required=True)
    s.add_argument("--port", type=int, default=514)
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--rate", type=float, default=10000, help="messages/s; 0 = as fast as possible (plain TCP)")
    s.add_argument("--prebuilt", action="store_true",
                   help="plain TCP: build every message before the clock starts (benchmarks); --rate 0 implies it")
    s.add_argument("--tag", required=True)
    s.add_argument("--hostname", default="loadgen")
    s.add_argument("--transport", choices=("tcp", "tls", "udp", "relp"), default="tcp")
    s.add_argument("--window", type=int, default=1024, help="RELP: messages in flight unacknowledged")
    s.add_argument("--ca-file")
    s.add_argument("--peer-name")
    c = sub.add_parser("count", help="count a run in a receiver's file(s)")
    c.add_argument("path")
    c.add_argument("--tag", required=True)
    c.add_argument("--expected", type=int, required=True)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "send" and args.transport == "relp":
            res: SendResult | CountResult | RelpResult = send_relp(
                args.host, args.port, args.count, args.rate, args.tag, hostname=args.hostname,
                window=args.window)
        elif args.cmd == "send" and (args.rate == 0 or args.prebuilt):
            if args.transport != "tcp":
                raise ValueError("--prebuilt and --rate 0 send over plain TCP only")
            res = send_prebuilt(args.host, args.port, args.count, args.tag, hostname=args.hostname,
                                rate=args.rate)
        elif args.cmd == "send":
            res = send(
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
