"""The RELP sender of the load generator: every message acknowledged, sent again after a break.

No lab needed: a small RELP receiver in a thread speaks the protocol (open, syslog, close) and can
break the session after a number of messages, taking some of them without acknowledging them.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter

from msib.lab.loadgen import _RelpReader, count_lines, relp_frame, send_relp


class _RelpServer:
    """Accepts RELP sessions; the first one breaks after `break_after` messages (unacknowledged tail)."""

    def __init__(self, break_after: int | None, unacked_tail: int = 0) -> None:
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.srv.getsockname()[1])
        self.break_after = break_after
        self.unacked_tail = unacked_tail
        self.received: list[str] = []
        self.sessions = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            self.sessions += 1
            self._session(conn, breaking=self.sessions == 1 and self.break_after is not None)

    def _session(self, conn: socket.socket, *, breaking: bool) -> None:
        reader = _RelpReader()
        taken = 0
        with conn:
            while data := conn.recv(65536):
                for txnr, cmd, body in reader.feed(data):
                    if cmd == "open":
                        conn.sendall(relp_frame(txnr, "rsp", b"200 OK\nrelp_version=0\ncommands=syslog"))
                    elif cmd == "close":
                        conn.sendall(relp_frame(txnr, "rsp"))
                        return
                    elif cmd == "syslog":
                        self.received.append(body.decode())
                        taken += 1
                        if breaking and self.break_after is not None and taken >= self.break_after:
                            return  # the tail of unacknowledged messages was taken: duplicates follow
                        if not (breaking and self.break_after is not None
                                and taken > self.break_after - self.unacked_tail):
                            conn.sendall(relp_frame(txnr, "rsp", b"200 OK"))

    def close(self) -> None:
        self.srv.close()


def test_relp_frames_round_trip_through_the_reader() -> None:
    reader = _RelpReader()
    blob = relp_frame(7, "rsp", b"200 OK") + relp_frame(8, "rsp") + relp_frame(0, "serverclose")
    assert reader.feed(blob[:5]) == []
    assert reader.feed(blob[5:]) == [(7, "rsp", b"200 OK"), (8, "rsp", b""), (0, "serverclose", b"")]


def test_relp_sender_delivers_everything_in_one_session() -> None:
    srv = _RelpServer(break_after=None)
    try:
        res = send_relp("127.0.0.1", srv.port, 3000, 30000, "relp1", hostname="unit")
    finally:
        srv.close()
    counted = count_lines(srv.received, "relp1", 3000)
    assert (res.sent, res.reconnects, res.resent) == (3000, 0, 0)
    assert (counted.received, counted.missing, counted.duplicates) == (3000, 0, 0)


def test_relp_sender_resends_what_a_broken_session_left_unacknowledged() -> None:
    srv = _RelpServer(break_after=1000, unacked_tail=50)
    try:
        res = send_relp("127.0.0.1", srv.port, 3000, 30000, "relp2", hostname="unit", window=200)
    finally:
        srv.close()
    counted = count_lines(srv.received, "relp2", 3000)
    assert res.sent == 3000 and res.reconnects == 1 and srv.sessions == 2
    assert counted.received == 3000 and counted.missing == 0
    # The 50 taken but not acknowledged came again. The server closes with the sender's next
    # messages unread, so the kernel answers with a reset, and a reset may also discard acks that
    # were sent but not yet read by the sender: those messages come again too. So: at least the
    # 50, every one of them resent by the sender, and only messages of the broken session.
    times = Counter(int(line.rsplit("seq=", 1)[1]) for line in srv.received)
    twice = {seq for seq, n in times.items() if n > 1}
    assert set(range(951, 1001)) <= twice
    assert max(twice) == 1000
    assert counted.duplicates == sum(n - 1 for n in times.values()) <= res.resent
