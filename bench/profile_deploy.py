"""Where a converged pyinfra deploy spends its time: phases, per-operation wall time, a cProfile.

Run through labrun (it brings the lab up if it is not, deploys once to converge, then profiles):
``/work/labrun WT .venv/bin/python bench/profile_deploy.py [--top 25] [--runs 2]``.
The deploy runs in this process (gevent-patched first, as the pyinfra worker is), so cProfile
sees the controller's CPU; the phase and per-operation times are wall clock.
"""

from gevent import monkey

monkey.patch_all()

# ruff: noqa: E402  (the patch must come before every other import)
import argparse
import cProfile
import io
import pstats
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _timed_session(inv: Any, hosts: list[Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Run the pyinfra session once, converged, with its phases and per-op wall times measured."""
    import importlib

    # sys.modules, not "import a.b as m": pyinfra.api re-exports functions named like its modules
    connect_mod, deploy_mod, facts_mod, ops_mod = (
        importlib.import_module(f"pyinfra.api.{m}") and sys.modules[f"pyinfra.api.{m}"]
        for m in ("connect", "deploy", "facts", "operations"))
    from msib.engines import pyinfra_session

    phases: dict[str, float] = defaultdict(float)
    facts: dict[str, list[float]] = defaultdict(list)
    originals = (connect_mod.connect_all, deploy_mod.add_deploy, ops_mod.run_ops, facts_mod._get_fact)

    def wrap(name: str, fn: Any) -> Any:
        def inner(*a: Any, **kw: Any) -> Any:
            t0 = time.monotonic()
            try:
                return fn(*a, **kw)
            finally:
                phases[name] += time.monotonic() - t0
        return inner

    def fact(state: Any, host: Any, cls: Any, *a: Any, **kw: Any) -> Any:
        t0 = time.monotonic()
        try:
            return originals[3](state, host, cls, *a, **kw)
        finally:
            facts[cls.__name__].append(time.monotonic() - t0)

    connect_mod.connect_all = wrap("connect", originals[0])
    deploy_mod.add_deploy = wrap("add_deploy (facts, op generation)", originals[1])
    ops_mod.run_ops = wrap("run_ops (execute)", originals[2])
    facts_mod._get_fact = fact
    try:
        t0 = time.monotonic()
        r = pyinfra_session.run(inv, hosts, check=False, extra_vars=extra, progress=None, step_timeout=300)
        total = time.monotonic() - t0
    finally:
        connect_mod.connect_all, deploy_mod.add_deploy, ops_mod.run_ops, facts_mod._get_fact = originals
    return {"total": total, "phases": dict(phases), "facts": dict(facts), "changed": r.changed, "ok": r.ok}


def main(argv: list[str] | None = None) -> int:
    from msib import contract
    from msib.engines.deploy import DEPLOY_ROLES, run_deploy
    from msib.lab import Lab
    from msib.lab.siem.host import lab_role_vars

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--no-converge", action="store_true", help="the lab is already converged")
    args = ap.parse_args(argv)
    lab = Lab.from_files(REPO / "inventories" / "lab" / "site.yml")
    t0 = time.monotonic()
    if not lab.is_up():
        lab.up()
    print(f"lab up: {time.monotonic() - t0:.1f} s", flush=True)
    extra = dict(lab_role_vars(lab))
    inv = contract.load(lab.inventory_dir)
    hosts = inv.of(*DEPLOY_ROLES)
    if not args.no_converge:
        t0 = time.monotonic()
        fresh = run_deploy(lab.inventory_dir, "pyinfra", extra_vars=extra)
        print(f"fresh pyinfra deploy: {time.monotonic() - t0:.1f} s ok={fresh.ok} changed={fresh.changed}",
              flush=True)
    for i in range(args.runs):
        t0 = time.monotonic()
        r = run_deploy(lab.inventory_dir, "pyinfra", extra_vars=extra)
        print(f"converged msib deploy (worker process) {i + 1}: {time.monotonic() - t0:.2f} s "
              f"changed={r.changed} ok={r.ok}", flush=True)
    prof = cProfile.Profile()
    prof.enable()
    m = _timed_session(inv, hosts, extra)
    prof.disable()
    print(f"\nin-process converged session: {m['total']:.2f} s, changed={m['changed']} ok={m['ok']}")
    for name, s in m["phases"].items():
        print(f"  {name:40s} {s:6.2f} s")
    n = sum(len(v) for v in m["facts"].values())
    print(f"  facts read one by one (not in a batch): {n} commands, "
          f"{sum(sum(v) for v in m['facts'].values()):.2f} s summed over hosts")
    for name, ts in sorted(m["facts"].items(), key=lambda kv: -sum(kv[1])):
        print(f"    {name:32s} n={len(ts):4d} sum={sum(ts):6.2f} s mean={sum(ts) / len(ts) * 1000:6.1f} ms")
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(args.top)
    print(out.getvalue())
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(args.top)
    print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
