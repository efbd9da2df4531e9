"""Benchmark: `msib siem sync` of one SB with 50,000 objects and 50 appliances.

Against the lab SIEM on 127.0.0.1 (real HTTPS, Wazuh's default limit of 300 requests/minute),
measures the full sync from empty and the no-op re-sync: HTTP requests (read/write, counted by
the client and by the server) and seconds. Compares with registering every object as an agent
(one `POST /agents` each) under the same 300 requests/minute limit — computed, not run.

Run: `python bench/bench_siem_sync.py [--objects N] [--appliances N] [--no-docs]`
or `make bench` (pytest marker `bench`). Writes bench/results/siem_sync.json and the table
between the bench markers of docs/siem.md.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from msib.siem.sync import sb_inventory, sync  # noqa: E402
from siem_helpers import appliance, obj, start_lab_siem, write_inventory  # noqa: E402

RATE_LIMIT = 300  # requests per minute: Wazuh's default access.max_request_per_minute
DOC = REPO / "docs" / "siem.md"
START, END = "<!-- bench:siem-sync:start -->", "<!-- bench:siem-sync:end -->"


def run(n_objects: int = 50_000, n_appliances: int = 50) -> dict[str, Any]:
    """Run the benchmark and return its numbers."""
    base = int(ipaddress.ip_address("198.18.0.0"))
    objects = [obj(str(ipaddress.ip_address(base + 1 + i)), f"host{i:05d}.sb.local",
                   "internal" if i % 3 else "external", ("windows", "linux", "network", "other")[i % 4])
               for i in range(n_objects)]
    apps = [appliance(f"col-int-{i}", str(ipaddress.ip_address(base + 120_000 + i))) for i in range(n_appliances)]
    with tempfile.TemporaryDirectory(prefix="msib-bench-siem-") as tmp:
        root = Path(tmp)
        siem = start_lab_siem(root / "siem", max_rpm=RATE_LIMIT, window=60.0)
        try:
            inv = sb_inventory(write_inventory(root / "inv", "bench", apps, objects, url=siem.url,
                                                 ca_file=str(siem.ca_file)))
            runs: dict[str, Any] = {}
            for label in ("full", "noop"):
                before = siem.stats()["requests"]
                t0 = time.perf_counter()
                with siem.driver() as d:
                    result = sync(inv, d)
                    backoffs = d.backoffs
                seconds = time.perf_counter() - t0
                after = siem.stats()["requests"]
                runs[label] = {
                    "seconds": round(seconds, 3),
                    "client": {"read": result.read_requests, "write": result.write_requests},
                    "server": {k: after[k] - before[k] for k in ("read", "write", "login")},
                    "total": result.read_requests + result.write_requests,
                    "backoffs": backoffs,
                    "plan": result.as_json()["agents"] | {"objects": result.as_json()["objects"]},
                }
            assert runs["noop"]["server"]["write"] == 0
            assert runs["full"]["plan"]["objects"]["add"] == n_objects
            list_bytes = len((siem.list_text(inv.list_name) or "").encode())
        finally:
            siem.stop()
    # registering every object (and appliance) as an agent: one POST each, plus a login and a listing
    per_object = n_objects + n_appliances + 2
    return {
        "objects": n_objects, "appliances": n_appliances, "rate_limit_per_minute": RATE_LIMIT,
        "list_bytes": list_bytes, "full": runs["full"], "noop": runs["noop"],
        "agent_per_object": {
            "requests": per_object,
            "minutes_at_limit": round(per_object / RATE_LIMIT, 1),
            "windows_at_limit": math.ceil(per_object / RATE_LIMIT),
            "noop_requests_re_registering": per_object,
        },
        "full_minutes_at_limit": round(runs["full"]["total"] / RATE_LIMIT, 2),
        "when": time.strftime("%Y-%m-%d"),
    }


def table(r: dict[str, Any]) -> str:
    """The numbers as a Markdown table."""
    f, n, a = r["full"], r["noop"], r["agent_per_object"]
    rows = [
        "| run | requests (read + write) | write requests at the server | seconds | minutes of a 300/min budget |",
        "|---|---|---|---|---|",
        f"| msib sync, from empty | {f['total']} ({f['client']['read']} + {f['client']['write']}) | "
        f"{f['server']['write']} | {f['seconds']} | {f['total'] / r['rate_limit_per_minute']:.2f} |",
        f"| msib sync, no-op re-sync | {n['total']} ({n['client']['read']} + {n['client']['write']}) | "
        f"{n['server']['write']} | {n['seconds']} | {n['total'] / r['rate_limit_per_minute']:.2f} |",
        f"| every object as an agent (computed) | {a['requests']} (2 + {a['requests'] - 2}) | "
        f"{a['requests'] - 2} | ≥ {a['minutes_at_limit'] * 60:,.0f} ({_hm(a['minutes_at_limit'])} waiting on the "
        f"limit) | {a['minutes_at_limit']} |",
    ]
    pages = math.ceil((r["objects"] + r["appliances"]) / 500)
    tail = (f"\nThat way, even a no-op check reads {r['objects'] + r['appliances']:,} agents ({pages} pages at the "
            f"default `limit` of 500), and \"register all again\" repeats all {a['requests'] - 2:,} writes every "
            f"quarter. msib's full sync uses {f['total'] / r['rate_limit_per_minute']:.0%} of one minute's budget; "
            "its no-op sends no write at all (counted at the server).\n")
    head = (f"{r['objects']:,} objects and {r['appliances']} appliances, lab SIEM on 127.0.0.1 over HTTPS, "
            f"limit {r['rate_limit_per_minute']} requests/minute; the object list is {r['list_bytes']:,} bytes "
            f"in one `PUT` (measured {r['when']}).")
    return head + "\n\n" + "\n".join(rows) + "\n" + tail


def _hm(minutes: float) -> str:
    h, m = divmod(round(minutes), 60)
    return f"{h} h {m:02d} min" if h else f"{m} min"


def write_docs(text: str) -> None:
    """Replace the text between the bench markers of docs/siem.md."""
    doc = DOC.read_text(encoding="utf-8")
    if START not in doc or END not in doc:
        raise SystemExit(f"{DOC}: bench markers not found")
    before, rest = doc.split(START, 1)
    _, after = rest.split(END, 1)
    DOC.write_text(f"{before}{START}\n{text}{END}{after}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--objects", type=int, default=50_000)
    p.add_argument("--appliances", type=int, default=50)
    p.add_argument("--no-docs", action="store_true", help="do not update docs/siem.md")
    a = p.parse_args(argv)
    result = run(a.objects, a.appliances)
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "siem_sync.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    text = table(result)
    print(text)
    if not a.no_docs:
        write_docs(text)
    return 0


@pytest.mark.bench
def test_bench_siem_sync() -> None:
    result = run()
    print("\n" + table(result))
    assert result["noop"]["server"]["write"] == 0
    assert result["full"]["server"]["write"] == result["appliances"] + 1
    assert result["full"]["total"] < RATE_LIMIT  # a whole SB fits in one minute's budget


if __name__ == "__main__":
    raise SystemExit(main())
