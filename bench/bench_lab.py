"""Benchmark: `lab up` from nothing (no cached base image) and from a warm cache, N = 3 and 20 hosts.

Runs its own synthetic labs (198.19.200.0/21, name "mbench") beside any lab that is up, so it
disturbs nothing. Usage (as root): .venv/bin/python bench/bench_lab.py [--sizes 3 20]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from msib.lab import Lab, write_synthetic_lab


def _one(n: int, cache: Path, work: Path) -> dict[str, float]:
    site = write_synthetic_lab(work / f"plan{n}", name="mbench", collectors=n - 2, octet=200, proxy_port=3144)
    lab = Lab.from_files(site, state_dir=work / f"state{n}", cache_dir=cache)
    t0 = time.monotonic()
    lab.up()
    up_s = time.monotonic() - t0
    assert all(h["up"] for h in lab.status()["hosts"])
    t0 = time.monotonic()
    lab.down()
    down_s = time.monotonic() - t0
    assert lab.leftovers() == []
    return {"up_s": round(up_s, 2), "down_s": round(down_s, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[3, 20])
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="msib-bench-lab-") as tmp:
        work = Path(tmp)
        for n in args.sizes:
            cache = work / f"cache{n}"  # empty: "from nothing" builds the base image too
            cold = _one(n, cache, work)
            warm = _one(n, cache, work)
            rows.append({"hosts": n, "cold_up_s": cold["up_s"], "warm_up_s": warm["up_s"],
                         "down_s": warm["down_s"]})
            shutil.rmtree(cache, ignore_errors=True)
    print(f"{'hosts':>5} {'up from nothing (s)':>20} {'up, warm cache (s)':>19} {'down (s)':>9}")
    for r in rows:
        print(f"{r['hosts']:>5} {r['cold_up_s']:>20} {r['warm_up_s']:>19} {r['down_s']:>9}")
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "lab.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
