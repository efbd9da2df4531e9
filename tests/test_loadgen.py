"""The load generator numbers what it sends and the counter finds every gap and duplicate."""

from __future__ import annotations

import socket
import threading

import pytest

from msib.lab.loadgen import REMOTE_COUNTER, count_lines, frame, message, send, send_prebuilt


def _lines(seqs: list[int], tag: str = "r1") -> list[str]:
    return [message(s, tag, "h").decode() for s in seqs]


def test_counter_finds_missing_and_duplicates() -> None:
    res = count_lines(_lines([1, 2, 2, 4, 5, 5, 5]), "r1", 6)
    assert (res.received, res.missing, res.duplicates, res.first_missing) == (4, 2, 3, [3, 6])


def test_counter_ignores_other_runs_and_out_of_range() -> None:
    lines = _lines([1, 2, 3]) + _lines([1, 2], tag="r10") + _lines([99])
    res = count_lines(lines, "r1", 3)
    assert (res.received, res.missing, res.duplicates) == (3, 0, 0)


def test_octet_counting_frame() -> None:
    assert frame(b"abc") == b"3 abc"


def test_remote_counter_agrees_with_the_local_one(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json
    import subprocess
    import sys

    f = tmp_path / "events.log"
    f.write_text("\n".join(_lines([1, 3, 3, 4])) + "\n")
    out = subprocess.run([sys.executable, "-", str(tmp_path), "r1", "5"], input=REMOTE_COUNTER,
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == {"expected": 5, "received": 3, "missing": 2, "duplicates": 1, "first_missing": [2, 5]}


def _receive_frames(sender) -> tuple[object, list[str]]:  # type: ignore[no-untyped-def]
    """Run `sender(port)` against a loopback TCP server; its result and the frames the server got."""
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    chunks: list[bytes] = []

    def accept() -> None:
        conn, _ = srv.accept()
        while data := conn.recv(65536):
            chunks.append(data)
        conn.close()

    t = threading.Thread(target=accept)
    t.start()
    res = sender(port)
    t.join(10)
    srv.close()
    blob = b"".join(chunks)
    frames = []
    while blob:
        n, rest = blob.split(b" ", 1)
        frames.append(rest[: int(n)].decode())
        blob = rest[int(n):]
    return res, frames


def test_send_over_tcp_delivers_every_numbered_message() -> None:
    res, frames = _receive_frames(lambda port: send("127.0.0.1", port, 5000, 50000, "tcp1", hostname="unit"))
    counted = count_lines(frames, "tcp1", 5000)
    assert res.sent == 5000 and counted.received == 5000 and counted.missing == 0 and counted.duplicates == 0


@pytest.mark.parametrize("rate", [0.0, 40000.0])
def test_prebuilt_sender_delivers_every_message_flat_out_and_paced(rate: float) -> None:
    # 2,345 is not a multiple of the block (1,000): the last, short block must go out too
    res, frames = _receive_frames(
        lambda port: send_prebuilt("127.0.0.1", port, 2345, "pre1", hostname="unit", rate=rate))
    counted = count_lines(frames, "pre1", 2345)
    assert (counted.received, counted.missing, counted.duplicates) == (2345, 0, 0)
    assert res.sent == 2345 and len(frames) == 2345
    if rate:
        # paced: blocks at 0, 25 and 50 ms of the schedule, so the run cannot end before 50 ms
        assert res.seconds >= 0.05


def test_prebuilt_sender_refuses_a_negative_rate_before_any_io() -> None:
    with pytest.raises(ValueError, match="rate"):
        send_prebuilt("127.0.0.1", 9, 10, "pre2", rate=-1)


def test_bad_tag_is_refused_before_any_io() -> None:
    with pytest.raises(ValueError, match="tag"):
        send("127.0.0.1", 9, 1, 1, "bad tag")
