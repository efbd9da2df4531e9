"""Fresh and converged deploy times per Debian release, with each engine, on the lab's appliances.

For each engine and each release: the lab's appliances of that release are reset (newly installed),
deployed (fresh: packages through the lab proxy, every config, services), then deployed again
`--rounds` times (converged, no change). Run with the lab up:
``.venv/bin/python bench/bench_releases.py [--rounds N]``; it prints a table and writes it into
docs/releases.md between the BENCH markers.
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


def main(argv: list[str] | None = None) -> int:
    from msib import contract
    from msib.engines.deploy import run_deploy
    from msib.lab import Lab

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", type=Path, default=REPO / "inventories/lab/site.yml")
    parser.add_argument("--vars", type=Path, default=REPO / "playbooks/vars/lab.yml")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    lab = Lab.from_files(args.site)
    if not lab.is_up():
        print("the lab is not up: run `msib lab up` first", file=sys.stderr)
        return 2
    extra = contract.read_vars([args.vars])
    inventory = lab.inventory_dir
    appliances = contract.load(inventory).of(*contract.LINUX_ROLES)
    by_release: dict[str, list[str]] = {}
    for a in appliances:
        by_release.setdefault(lab.host(a.name).release or "?", []).append(a.name)
    rows: list[list[str]] = []
    for engine in ("pyinfra", "ansible"):
        for release, names in sorted(by_release.items()):
            lab.reset(names)
            limit = ",".join(names)
            fresh = run_deploy(inventory, engine, limit=limit, extra_vars=extra)  # type: ignore[arg-type]
            if not fresh.ok:
                print(f"{engine} on {release}: fresh deploy failed: {fresh.to_json()}", file=sys.stderr)
                return 1
            runs = [run_deploy(inventory, engine, limit=limit, extra_vars=extra)  # type: ignore[arg-type]
                    for _ in range(args.rounds)]
            times = [r.seconds for r in runs]
            rows.append([engine, release, str(len(names)), f"{fresh.seconds:.1f}", str(fresh.changed),
                         f"{statistics.median(times):.1f}", f"{min(times):.1f}", f"{max(times):.1f}",
                         str(sum(r.changed for r in runs))])
    head = ["engine", "release", "hosts", "fresh s", "fresh changes", "converged median s", "min s", "max s",
            "converged changes"]
    table = Table(*head, title=f"deploy per Debian release ({args.rounds} converged rounds)")
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    doc = REPO / "docs" / "releases.md"
    md = ("<!-- BENCH:BEGIN -->\n| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n"
          + "\n".join("| " + " | ".join(r) + " |" for r in rows) + "\n<!-- BENCH:END -->")
    text = doc.read_text()
    if "<!-- BENCH:BEGIN -->" in text:
        text = re.sub(r"<!-- BENCH:BEGIN -->.*?<!-- BENCH:END -->", md, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n## Deploy times per release\n\n" + md + "\n"
    doc.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
