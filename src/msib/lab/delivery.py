"""The lab's side of delivery: the lab SIEM's events watched over SSH, numbered load, its count.

- :class:`LabSiemFiles` is the lab SIEM's :class:`~msib.delivery.EventQuery`: a small watcher,
  run over SSH on the SIEM host, reads only what is appended to its per-source files
  (`/var/lib/msib-siem/events/<HOSTNAME>.log`) after the watch began; latency is the SIEM host's
  clock when the watcher first read the event (the lab's hosts share one kernel clock; the
  watcher polls every 0.1 s).
- `send_load`, `count_at_siem` and `wait_for_count` run the numbered load generator
  (:mod:`msib.lab.loadgen`) inside an object's network namespace and count at the lab SIEM; the
  fault tests and the delivery benchmark use them.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from msib.delivery import Watch
from msib.errors import InputError
from msib.lab.loadgen import REMOTE_COUNTER
from msib.lab.plan import LabView
from msib.lab.siem.host import EVENTS_DIR

# Runs on the lab SIEM host with its own python3 (stdin is this script; argv: dir timeout tokens...).
# Remembers where every file ended, then reads only what is appended; prints "ready", then
# "found TOKEN EPOCH" per token, and exits when all were found or at the timeout.
WATCHER = r'''
import os, sys, time
d, timeout, tokens = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
left = {t.encode(): t for t in tokens}
keep = max(len(t) for t in left) if left else 0
def sizes():
    out = {}
    for f in os.listdir(d):
        try:
            out[f] = os.path.getsize(os.path.join(d, f))
        except OSError:
            pass
    return out
pos = sizes(); tail = {}
print("ready", flush=True)
end = time.time() + timeout
while left and time.time() < end:
    for f, size in sizes().items():
        start = pos.get(f, 0)
        if size < start:
            start = 0
        if size == start:
            continue
        with open(os.path.join(d, f), "rb") as fh:
            fh.seek(start)
            chunk = tail.get(f, b"") + fh.read(size - start)
        pos[f] = size
        tail[f] = chunk[-keep:]
        now = time.time()
        for b in [b for b in left if b in chunk]:
            print("found %s %.6f" % (left.pop(b), now), flush=True)
    time.sleep(0.1)
'''


class _SshWatch:
    def __init__(self, argv: list[str], tokens: Sequence[str], timeout: float) -> None:
        self.proc = subprocess.Popen([*argv, "sudo", "python3", "-", EVENTS_DIR, str(timeout), *tokens],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(WATCHER)
        self.proc.stdin.close()
        first = self.proc.stdout.readline().strip()
        if first != "ready":
            err = self.proc.stderr.read() if self.proc.stderr else ""
            self.proc.kill()
            raise InputError("siem", f"cannot watch the lab SIEM's events: {(err.strip() or first)[-200:]}",
                             fix="is the lab up (msib lab status)?")

    def results(self, timeout: float) -> dict[str, float]:
        found: dict[str, float] = {}
        killer = threading.Timer(timeout + 30, self.proc.kill)  # the watcher ends by itself at its timeout
        killer.start()
        try:
            assert self.proc.stdout is not None
            out = self.proc.stdout.read()
            self.proc.wait()
        finally:
            killer.cancel()
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "found":
                found[parts[1]] = float(parts[2])
        return found


class LabSiemFiles:
    """The lab SIEM's per-source event files, read over SSH (lab only: a real SIEM has its own search)."""

    verifiable = True

    def __init__(self, ssh: Sequence[str]) -> None:
        self.ssh = list(ssh)

    def watch(self, tokens: Sequence[str], timeout: float) -> Watch:
        return _SshWatch(self.ssh, tokens, timeout)


# --- numbered load and its count at the lab SIEM ---------------------------------------------------


def send_load(lab: LabView, host: str, *, target: str, port: int, count: int, rate: float, tag: str,
              transport: str = "tcp", extra: Sequence[str] = ()) -> subprocess.Popen[str]:
    """Start msib.lab.loadgen inside lab host `host`'s network namespace (read `.communicate()` for its JSON).

    The events carry the hostname `load-<tag>`, so the lab SIEM writes them to `load-<tag>.log`.
    """
    netns = lab.host(host).netns(lab.spec.name)
    argv = ["ip", "netns", "exec", netns, sys.executable, "-m", "msib.lab.loadgen", "send", "--transport", transport,
            "--host", target, "--port", str(port), "--count", str(count), "--rate", str(rate), "--tag", tag,
            "--hostname", f"load-{tag}", *extra]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def load_result(proc: subprocess.Popen[str], timeout: float = 900) -> dict[str, Any]:
    """The loadgen's JSON result once it has finished (raises with its stderr if it failed)."""
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"loadgen failed ({proc.returncode}): {err.strip()[-300:]}")
    data: dict[str, Any] = json.loads(out)
    return data


def count_at_siem(lab: LabView, tag: str, expected: int) -> dict[str, Any]:
    """Count run `tag` at the lab SIEM (received, missing, duplicates), from `load-<tag>.log`."""
    path = f"{EVENTS_DIR}/load-{tag}.log"
    proc = subprocess.run(lab.ssh_argv(lab.spec.siem.name, ["sudo", "sh", "-c",
                                                            shlex.quote(f"test -e {path} || touch {path}; "
                                                                        f"python3 - {path} {tag} {expected}")]),
                          input=REMOTE_COUNTER, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"counting at the lab SIEM failed: {proc.stderr.strip()[-300:]}")
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def wait_for_count(lab: LabView, tag: str, expected: int, *, timeout: float = 300, settle: float = 10,
                   require_all: bool = True) -> dict[str, Any]:
    """Poll the lab SIEM until all `expected` arrived and nothing more came for `settle` s (or timeout).

    With `require_all=False` it stops as soon as nothing more came for `settle` s (a run that is
    known to lose events).

    Returns the last count with `drain_s`: seconds from the call until the last event arrived.
    """
    t0 = time.monotonic()
    last: dict[str, Any] = {}
    last_change = t0
    seen = (-1, -1)
    while time.monotonic() - t0 < timeout:
        last = count_at_siem(lab, tag, expected)
        now = (int(last["received"]), int(last["duplicates"]))
        if now != seen:
            seen, last_change = now, time.monotonic()
        if (last["received"] == expected or not require_all) and time.monotonic() - last_change >= settle:
            break
        time.sleep(2)
    last["drain_s"] = round(last_change - t0, 1)
    return last
