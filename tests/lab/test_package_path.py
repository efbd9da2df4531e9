"""The lab's package path holds from an empty cache with every host updating at the same moment.

Every lab host that has a package path (appliances and the SIEM host; objects have none) drops
its apt lists and runs `apt-get update` at the same moment, 5 rounds in a row, the first from an
empty proxy cache. apt-cacher-ng failed here in both of its modes (400 from a strict upstream;
a hung `apt-get update` when several hosts refreshed one InRelease in the same second).
"""

from __future__ import annotations

import re
import subprocess
import threading
import time

import pytest

from msib.lab import Lab

pytestmark = pytest.mark.lab
ROUNDS = 5
#: apt's own bounds (30 s per connection and read, 3 retries) end a stuck fetch well within this
ROUND_TIMEOUT_S = 300


def _update_at_once(lab: Lab, names: list[str]) -> dict[str, subprocess.CompletedProcess[str]]:
    """`apt-get update` from no lists on every host in `names`, released together by a barrier."""
    barrier = threading.Barrier(len(names))
    out: dict[str, subprocess.CompletedProcess[str]] = {}
    command = ("sudo sh -c 'rm -rf /var/lib/apt/lists/* && "
               "apt-get update --error-on=any -o Acquire::Retries=0'")

    def one(name: str) -> None:
        argv = lab.ssh_argv(name, [command])
        barrier.wait()
        try:
            out[name] = subprocess.run(argv, capture_output=True, text=True, timeout=ROUND_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            out[name] = subprocess.CompletedProcess(argv, -1, str(exc.stdout or ""), f"hung: {exc}")

    threads = [threading.Thread(target=one, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_every_host_updates_at_once_five_times_from_an_empty_cache(lab: Lab) -> None:
    proxy = lab.package_proxy
    proxy.stop()
    proxy.wipe_cache()
    proxy.start()
    names = [h.name for h in lab.hosts if not h.console_only and h.role != "device"]
    assert len(names) >= 7
    log_start = proxy.access_log.stat().st_size if proxy.access_log.exists() else 0
    rounds = []
    for n in range(ROUNDS):
        t0 = time.monotonic()
        results = _update_at_once(lab, names)
        rounds.append(time.monotonic() - t0)
        failed = {name: (r.returncode, r.stderr.strip()[-400:]) for name, r in results.items()
                  if r.returncode != 0 or re.search(r"^(W|E):", r.stdout + r.stderr, re.M)}
        assert failed == {}, f"round {n + 1}: {failed}"
    with open(proxy.access_log) as f:
        f.seek(log_start)
        lines = f.read().splitlines()
    fetched = [ln for ln in lines if " upstream=-" not in ln]
    served = len(lines)
    print(f"\n{len(names)} hosts x {ROUNDS} rounds: " + ", ".join(f"{s:.1f}s" for s in rounds)
          + f"; {served} requests served, {len(fetched)} fetched upstream")
    # every round after the first is served from the cache: upstream saw each file about once
    assert len(fetched) < served / len(names) * 2
