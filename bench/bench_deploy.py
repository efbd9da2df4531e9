"""Converged (no-change) deploy of every lab appliance: pyinfra vs Ansible, side by side.

Ansible runs with pipelining on and forks >= hosts (msib.engines.ansible sets both).
Run: ``.venv/bin/python bench/bench_deploy.py [--rounds N] [--inventory DIR]``; it prints a table and
writes the numbers into docs/deploy.md between the BENCH markers. Needs the lab up and converged
(it deploys once with each engine first, which is the converge step).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "lab"))


def main(argv: list[str] | None = None) -> int:
    from msib.cli.deploy import read_vars
    from msib.engines.deploy import run_deploy

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inventory", type=Path, default=Path("/var/lib/msib-lab/inventory"))
    parser.add_argument("--vars", type=Path, default=REPO / "playbooks/vars/lab.yml")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    extra = read_vars([args.vars])
    times: dict[str, list[float]] = {"pyinfra": [], "ansible": []}
    changes: dict[str, int] = {"pyinfra": 0, "ansible": 0}
    hosts = 0
    for engine in times:
        warm = run_deploy(args.inventory, engine, extra_vars=extra)  # type: ignore[arg-type]
        if not warm.ok:
            print(f"{engine}: converge failed: {warm.to_json()}", file=sys.stderr)
            return 1
    for _ in range(args.rounds):
        for engine in times:  # interleaved, so that both see the same machine load
            r = run_deploy(args.inventory, engine, extra_vars=extra)  # type: ignore[arg-type]
            times[engine].append(r.seconds)
            changes[engine] += r.changed
            hosts = len(r.hosts)
    table = Table("engine", "hosts", "rounds", "median s", "min s", "max s", "changes",
                  title="converged no-change deploy of every lab appliance")
    rows = []
    for engine, ts in times.items():
        row = [engine, str(hosts), str(len(ts)), f"{statistics.median(ts):.1f}", f"{min(ts):.1f}",
               f"{max(ts):.1f}", str(changes[engine])]
        table.add_row(*row)
        rows.append("| " + " | ".join(row) + " |")
    Console().print(table)
    doc = REPO / "docs" / "deploy.md"
    md = ("<!-- BENCH:BEGIN -->\n| engine | hosts | rounds | median s | min s | max s | changes |\n"
          "|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n<!-- BENCH:END -->")
    text = doc.read_text() if doc.exists() else ""
    if "<!-- BENCH:BEGIN -->" in text:
        text = re.sub(r"<!-- BENCH:BEGIN -->.*?<!-- BENCH:END -->", lambda _: md, text, flags=re.S)
    else:
        text += "\n" + md + "\n"
    doc.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
