"""Benchmark: `msib check` wall time vs number of hosts.

1. The shared lab (up already; its appliances deployed): 1, 3 and 6 appliances (``--limit``).
2. A synthetic lab "mchk" of 20 collectors (198.19.216.0/21, beside the shared one): booted,
   deployed with pyinfra, checked with 5, 10 and 20 hosts, then torn down.

Prints a table and writes bench/results/bench_checks.json. Usage (as root):
    .venv/bin/python bench/bench_checks.py [--collectors 20] [--repeat 2] [--skip-synthetic] [--skip-shared]
        [--msib /other/checkout/.venv/bin/msib --msib .venv/bin/msib]   (two versions, interleaved)
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from msib import checks as mc
from msib.lab import Lab, write_synthetic_lab
from msib.lab.siem.host import lab_role_vars

REPO = Path(__file__).resolve().parents[1]
MSIB = str(REPO / ".venv" / "bin" / "msib")  # --msib: another checkout's, to compare two versions


def hosts_cpu_s(lab_name: str) -> float:
    """CPU seconds used so far by every process of the lab's hosts (sshd, sudo, the checks' commands):
    the lab's cgroup in the unified hierarchy (msib.lab puts each host there)."""
    for root in (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup")):
        stat = root / f"msib-lab-{lab_name}" / "cpu.stat"
        if stat.exists():
            return int(stat.read_text().split("usage_usec ")[1].split()[0]) / 1e6
    return float("nan")


def controller_cpu_s() -> float:
    """CPU seconds of this process's finished children (msib check, its pytest processes, ssh)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def timed_checks(msibs: list[str], inventory: Path, vars_file: Path, hosts: list[str], report: Path, repeat: int,
                 lab_name: str) -> list[dict[str, Any]]:
    """Per msib executable: median wall time of `repeat` runs (the executables interleaved run by
    run, so they see the same load), and where the CPU went: on the controller and on the hosts.

    On this machine both share the same 2 cores, so wall time >= (controller + hosts CPU) / cores.
    """
    times: dict[str, list[float]] = {m: [] for m in msibs}
    ctl: dict[str, list[float]] = {m: [] for m in msibs}
    hst: dict[str, list[float]] = {m: [] for m in msibs}
    summary: dict[str, dict[str, Any]] = {}
    for _ in range(repeat):
        for msib in msibs:
            argv = [msib, "check", "--inventory", str(inventory), "--vars", str(vars_file), "--report", str(report),
                    "--json", *[w for h in hosts for w in ("--limit", h)]]
            c0, h0, t0 = controller_cpu_s(), hosts_cpu_s(lab_name), time.monotonic()
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
            times[msib].append(time.monotonic() - t0)
            ctl[msib].append(controller_cpu_s() - c0)
            hst[msib].append(hosts_cpu_s(lab_name) - h0)
            summary[msib] = json.loads(proc.stdout)
    return [{"msib": msib, "hosts": len(hosts),
             "checks": sum(int(summary[msib][k]) for k in ("passed", "failed", "errors")),
             "passed": summary[msib]["passed"], "failed": summary[msib]["failed"], "errors": summary[msib]["errors"],
             "seconds": round(statistics.median(times[msib]), 2), "runs": [round(t, 2) for t in times[msib]],
             "controller_cpu_s": round(statistics.median(ctl[msib]), 2),
             "hosts_cpu_s": round(statistics.median(hst[msib]), 2)} for msib in msibs]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--collectors", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--skip-synthetic", action="store_true")
    ap.add_argument("--skip-shared", action="store_true", help="only the synthetic lab (no shared lab needed)")
    ap.add_argument("--msib", action="append", default=[],
                    help="msib executable to time (repeatable: interleaved run by run); default this checkout's")
    args = ap.parse_args()
    msibs = args.msib or [MSIB]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="msib-bench-checks-") as tmp:
        work = Path(tmp)
        if not args.skip_shared:
            shared = Path("/var/lib/msib-lab/inventory")
            names = [h.name for h in mc.load(shared).of(*mc.CHECKED_ROLES)]
            for n in (1, 3, len(names)):
                for row in timed_checks(msibs, shared, REPO / "playbooks/vars/lab.yml", names[:n], work / "r",
                                        args.repeat, "msib"):
                    rows.append({"lab": "shared", **row})
                    print(rows[-1], flush=True)
        if not args.skip_synthetic:
            site = write_synthetic_lab(work / "plan", name="mchk", collectors=args.collectors, octet=216,
                                       proxy_port=3146)
            lab = Lab.from_files(site, state_dir=work / "state")
            try:
                t0 = time.monotonic()
                lab.up()
                print(f"mchk up in {time.monotonic() - t0:.1f}s", flush=True)
                vars_file = work / "vars.yml"
                # the lab's certificates issued, as the shared lab's playbooks/vars/lab.yml names them
                vars_file.write_text(yaml.safe_dump(dict(lab_role_vars(lab))))
                t0 = time.monotonic()
                dep = subprocess.run([MSIB, "deploy", "--inventory", str(lab.inventory_dir), "--engine", "pyinfra",
                                      "--vars", str(vars_file)], capture_output=True, text=True, timeout=3600)
                print(f"mchk deploy rc={dep.returncode} in {time.monotonic() - t0:.1f}s", flush=True)
                if dep.returncode != 0:  # checks of hosts never deployed would time the wrong thing
                    raise SystemExit(f"mchk deploy failed:\n{(dep.stderr or dep.stdout)[-2000:]}")
                syn = [h.name for h in mc.load(lab.inventory_dir).of(*mc.CHECKED_ROLES)]
                for n in sorted({5, 10, len(syn)}):
                    for row in timed_checks(msibs, lab.inventory_dir, vars_file, syn[:n], work / "r2", args.repeat,
                                            "mchk"):
                        rows.append({"lab": "mchk", **row})
                        print(rows[-1], flush=True)
            finally:
                lab.down()
    print(f"\n{'lab':<8}{'hosts':>6}{'checks':>8}{'failed':>8}{'errors':>8}{'seconds':>9}{'s/host':>8}"
          f"{'ctl CPU s':>10}{'hosts CPU s':>12}  msib")
    for r in rows:
        print(f"{r['lab']:<8}{r['hosts']:>6}{r['checks']:>8}{r['failed']:>8}{r['errors']:>8}{r['seconds']:>9}"
              f"{float(r['seconds']) / int(r['hosts']):>8.2f}"
              f"{r['controller_cpu_s']:>10}{r['hosts_cpu_s']:>12}  {r['msib']}")
    out = REPO / "bench" / "results" / "bench_checks.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
