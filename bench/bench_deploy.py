"""Deploy benchmark: msib pyinfra, msib Ansible, the bare pyinfra deploy of the same operations, the floor.

Four whole commands, timed interleaved (each round runs all four, so they see the same load):
- ``msib deploy --engine pyinfra`` and ``--engine ansible``;
- **bare**: a pyinfra CLI deploy generated from each role's manifest with stock operations only
  (``apt.packages``, ``files.directory``, ``files.put`` of the bytes msib renders, ``files.file``,
  ``systemd.service``): the same packages, files, modes and services, without msib's validation
  on the host, preflight, restarts on change or the firewall's commit-confirmed;
- **floor**: ``pyinfra INVENTORY exec -- true`` (connect to every host, one sudo command).
Converged: every host deployed first; fresh (``--fresh``): each run on hosts reset to a new root
filesystem (``msib lab reset``), one round.

Labs: the shared lab (6 appliances) and, with ``--sizes 20 50``, a synthetic lab of N collectors
beside it (msib.lab.write_synthetic_lab, 198.19.232.0/21), torn down after. Run through labrun:
``/work/labrun WT .venv/bin/python bench/bench_deploy.py [--rounds 3] [--sizes 6 20] [--fresh]``.
Prints a table, writes bench/results/bench_deploy.json and the table into docs/deploy.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from msib import contract, manifest, render
from msib.engines.deploy import DEPLOY_ROLES
from msib.lab import Lab, write_synthetic_lab
from msib.lab.siem.host import lab_role_vars

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FAILED_LOG = REPO / "bench" / "results" / "bench_deploy-failed.log"
RUNS = ("msib pyinfra", "msib ansible", "bare pyinfra", "floor")
#: With --before: msib's Ansible invocation before issue 18 (site.yml's three plays one after
#: another, linear strategy), for the record of what the tuning gained.
BEFORE = "ansible site.yml linear"

#: The bare deploy: each host's operations come from its data (written by :func:`write_bare`).
BARE_DEPLOY = '''\
from pyinfra import host
from pyinfra.operations import apt, files, systemd

for op in host.data.bare_ops:
    kind, args = op["op"], op["args"]
    if kind == "packages":
        apt.packages(name=f"packages {args['packages']}", **args)
    elif kind == "directory":
        files.directory(name=f"directory {args['path']}", **args)
    elif kind == "put":
        files.put(name=f"put {args['dest']}", **args)
    elif kind == "file":
        files.file(name=f"file {args['path']}", **args)
    elif kind == "service":
        systemd.service(name=f"service {args['service']}", **args)
'''


def bare_ops(a: contract.Appliance, extra: dict[str, Any], files_dir: Path,
             release: str | None) -> list[dict[str, Any]]:
    """The stock pyinfra operations that install what `a`'s role manifest says (rendered by msib.render).

    `release` is the host's Debian codename, as msib's engines read it from the host (it picks the
    role's vars/<release>.yml: the sensor's Suricata source among them).
    """
    host_vars = {**a.vars, **extra}
    ctx = render.context(a.role, host_vars, release=release)
    m = manifest.load(a.role)
    ops: list[dict[str, Any]] = []
    groups = [g for g in m.packages if a.role != "firewall" or g == "base" or ctx.get("firewall_syslog_forward")]
    for i, group in enumerate(groups):
        args: dict[str, Any] = {"packages": m.package_list(group)}
        if i == 0:
            args.update(update=True, cache_time=86400)
        suite = m.package_release(group, ctx)  # as deploy/ids_sensor.py: vars/<release>.yml's suite
        if suite:
            args["extra_install_args"] = f"-t {suite}"
        ops.append({"op": "packages", "args": args})
    ops += [{"op": "directory", "args": {"path": d.path, "user": "root", "group": "root", "mode": d.mode}}
            for d in m.directories_for(ctx)]
    n = 0
    for role in (*m.depends, a.role):
        rctx = ctx if role == a.role else render.context(role, host_vars, release=release)
        for f in manifest.load(role).install_files(rctx):
            spec = f.args()
            if spec.get("src"):  # a controller file (a key among them): put from where it is, never copied
                local = Path(str(spec["src"])).expanduser()
            else:
                data = (render.render(role, spec["template"], rctx).encode() if spec.get("template")
                        else render.role_file(role, spec["file"]))
                n += 1
                local = files_dir / a.name / str(n)
                local.parent.mkdir(parents=True, exist_ok=True)
                local.write_bytes(data)
            ops.append({"op": "put", "args": {"src": str(local), "dest": spec["dest"], "user": "root",
                                              "group": "root", "mode": spec.get("mode", "0644")}})
    ops += [{"op": "file", "args": {"path": p.path, "present": True, "touch": False, "user": "root",
                                    "group": "root", "mode": p.mode.lstrip("0")}} for p in m.placeholders_for(ctx)]
    for s in m.services:
        if m.applies(s.when, ctx):
            ops.append({"op": "service", "args": {"service": s.unit, "running": True if s.running else None,
                                                  "enabled": True}})
    return ops


def write_bare(inv: contract.Inventory, hosts: list[contract.Appliance], extra: dict[str, Any],
               work: Path, releases: dict[str, str | None]) -> tuple[Path, Path]:
    """The bare deploy's inventory (connection data + each host's operations) and deploy file."""
    entries = []
    for a in hosts:
        data = a.pyinfra_data(inv.ssh)
        data = {k: v for k, v in data.items() if k.startswith(("ssh_", "_sudo"))}
        data["bare_ops"] = bare_ops(a, extra, work / "files", releases[a.name])
        entries.append((a.name, data))
    inventory = work / "bare_inventory.py"
    # (name, data) tuples: pyinfra ignores a group of lists, silently (exit 0, no host)
    inventory.write_text(f"import json\nhosts = [tuple(h) for h in json.loads({json.dumps(json.dumps(entries))})]\n")
    deploy = work / "bare_deploy.py"
    deploy.write_text(BARE_DEPLOY)
    return inventory, deploy


def commands(inv_dir: Path, vars_file: Path, bare_inv: Path, bare_deploy: Path,
             hosts: list[contract.Appliance]) -> dict[str, list[str]]:
    msib = [str(BIN / "msib"), "deploy", "--inventory", str(inv_dir), "--vars", str(vars_file), "--json"]
    pyinfra = [str(BIN / "pyinfra"), "-y"]
    return {
        "msib pyinfra": [*msib, "--engine", "pyinfra"],
        "msib ansible": [*msib, "--engine", "ansible"],
        "bare pyinfra": [*pyinfra, str(bare_inv), str(bare_deploy)],
        "floor": [*pyinfra, str(bare_inv), "exec", "--", "true"],
        BEFORE: ["env", f"ANSIBLE_CONFIG={REPO / 'ansible.cfg'}", "ANSIBLE_STRATEGY=linear",
                 f"ANSIBLE_FORKS={max(len(hosts), 5)}", "ANSIBLE_PIPELINING=True", f"PATH={BIN}:{os.environ['PATH']}",
                 str(BIN / "ansible-playbook"), "-i", str(inv_dir / "hosts.yml"), str(REPO / "playbooks" / "site.yml"),
                 "--limit", ",".join(h.name for h in hosts), "-e", f"@{vars_file}"],
    }


def timed(argv: list[str], cwd: Path, hosts: int = 0) -> tuple[float, int | None, bool]:
    """Seconds, changes (msib's summary; None for pyinfra's CLI) and success of one command.

    A pyinfra CLI run that ignored its inventory's hosts (exit 0 all the same) counts as failed.
    """
    t0 = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=3600, cwd=cwd, stdin=subprocess.DEVNULL)
    seconds = time.monotonic() - t0
    changes = None
    if len(argv) > 1 and argv[1] == "deploy":
        try:
            summary = json.loads(proc.stdout)
            changes = int(summary.get("changed", 0)) if isinstance(summary, dict) else None
        except ValueError:
            pass
    ok = proc.returncode == 0
    out = proc.stdout + proc.stderr
    if argv[0].endswith("/pyinfra") and ("Ignoring host group" in out or "Grand total" not in out):
        ok = False
    if not ok:  # the whole output kept (bench/results is git-ignored): a tail rarely says which host and why
        FAILED_LOG.parent.mkdir(exist_ok=True)
        with FAILED_LOG.open("a") as log:
            log.write(f"=== {time.strftime('%F %T')} {' '.join(argv)} exit {proc.returncode}\n{out}\n")
        print(f"  {' '.join(argv[:4])}… exit {proc.returncode}: {(proc.stderr or proc.stdout)[-600:]}\n"
              f"  (whole output in {FAILED_LOG})", file=sys.stderr)
    return seconds, changes, ok


def bench_lab(lab: Lab, label: str, rounds: int, fresh: bool, work: Path, before: bool) -> list[dict[str, Any]]:
    """Every run on `lab`'s appliances: converged (`rounds` interleaved rounds), then fresh (one each)."""
    extra = dict(lab_role_vars(lab))
    vars_file = work / f"{label}-vars.yml"
    vars_file.write_text(yaml.safe_dump(extra))
    inv = contract.load(lab.inventory_dir)
    hosts = list(inv.of(*DEPLOY_ROLES))
    releases = {h.name: lab.host(h.name).release for h in hosts}
    bare_inv, bare_deploy = write_bare(inv, hosts, extra, work / label, releases)
    cmds = commands(lab.inventory_dir, vars_file, bare_inv, bare_deploy, hosts)
    runs = (*RUNS, BEFORE) if before else RUNS
    rows: list[dict[str, Any]] = []
    for what in ("msib pyinfra", "msib ansible"):  # converge (msib's runs change things bare does not)
        s, _, ok = timed(cmds[what], work, len(hosts))
        print(f"[{label}] converge with {what}: {s:.1f} s ok={ok}", flush=True)
    timed(cmds["bare pyinfra"], work, len(hosts))
    times: dict[str, list[float]] = {r: [] for r in runs}
    changes: dict[str, int] = dict.fromkeys(runs, 0)
    fails: dict[str, int] = dict.fromkeys(runs, 0)
    for i in range(rounds):
        order = runs if i % 2 == 0 else tuple(reversed(runs))  # interleaved, alternating who goes first
        for what in order:
            s, c, ok = timed(cmds[what], work, len(hosts))
            times[what].append(s)
            changes[what] += c or 0
            fails[what] += not ok
        print(f"[{label}] round {i + 1}: " + ", ".join(f"{w} {times[w][-1]:.2f}s" for w in runs), flush=True)
    for what in runs if rounds else ():
        rows.append({"lab": label, "hosts": len(hosts), "state": "converged", "run": what, "rounds": rounds,
                     "median_s": round(statistics.median(times[what]), 2), "min_s": round(min(times[what]), 2),
                     "max_s": round(max(times[what]), 2), "changes": changes[what], "failed_runs": fails[what]})
    if fresh:
        names = [h.name for h in hosts]
        for what in RUNS[:3]:
            lab.reset(names)
            s, c, ok = timed(cmds[what], work, len(hosts))
            print(f"[{label}] fresh {what}: {s:.1f} s ok={ok}", flush=True)
            rows.append({"lab": label, "hosts": len(hosts), "state": "fresh", "run": what, "rounds": 1,
                         "median_s": round(s, 2), "min_s": round(s, 2), "max_s": round(s, 2),
                         "changes": c if c is not None else "", "failed_runs": int(not ok)})
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = "| hosts | state | run | rounds | median s | s/host | min s | max s | changes | failed runs |\n"
    head += "|---|---|---|---|---|---|---|---|---|---|\n"
    return head + "\n".join(
        f"| {r['hosts']} | {r['state']} | {r['run']} | {r['rounds']} | {r['median_s']:.2f} | "
        f"{r['median_s'] / r['hosts']:.2f} | {r['min_s']:.2f} | {r['max_s']:.2f} | {r['changes']} | "
        f"{r['failed_runs']} |" for r in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sizes", type=int, nargs="+", default=[6], help="6 = the shared lab; N: N collectors")
    ap.add_argument("--fresh", action="store_true", help="also time each run once on freshly reset hosts")
    ap.add_argument("--before", action="store_true", help=f"also time {BEFORE!r} (6 appliances)")
    ap.add_argument("--no-docs", action="store_true", help="do not write the table into docs/deploy.md")
    args = ap.parse_args(argv)
    rows: list[dict[str, Any]] = []
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="msib-bench-deploy-") as tmp:
        work = Path(tmp)
        for n in args.sizes:
            if n == 6:
                lab = Lab.from_files(REPO / "inventories" / "lab" / "site.yml")
                own = not lab.is_up()
            else:
                site = write_synthetic_lab(work / f"plan{n}", name="mdep", collectors=n, octet=232, proxy_port=3147)
                lab = Lab.from_files(site, state_dir=work / f"state{n}")
                own = True
            try:
                if own:
                    t0 = time.monotonic()
                    lab.up()
                    print(f"lab of {n} appliances up in {time.monotonic() - t0:.1f} s", flush=True)
                rows += bench_lab(lab, f"lab{n}", args.rounds, args.fresh, work, args.before and n == 6)
            finally:
                if own and n != 6:
                    lab.down()
    load1 = os.getloadavg()
    md = table(rows)
    print(md)
    print(f"load average (1 min) at start {load0[0]:.1f}, at end {load1[0]:.1f} on {os.cpu_count()} CPUs")
    out = REPO / "bench" / "results" / "bench_deploy.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "load_start": load0, "load_end": load1}, indent=2) + "\n")
    if not args.no_docs:
        doc = REPO / "docs" / "deploy.md"
        text = doc.read_text()
        block = f"<!-- BENCH:BEGIN -->\n{md}\n<!-- BENCH:END -->"
        text = re.sub(r"<!-- BENCH:BEGIN -->.*?<!-- BENCH:END -->", lambda _: block, text, flags=re.S)
        doc.write_text(text)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
