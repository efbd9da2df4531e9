"""The pyinfra engine's own process: gevent patches the standard library first, as pyinfra's CLI does.

pyinfra runs hosts as gevent greenlets over paramiko. Unpatched, paramiko's blocking socket reads
never yield: hosts run one after another and an operation's ``_timeout`` cannot fire, so one stuck
host stalls the run for ever (measured on the lab). Patching msib's own process would change the
threads that the live display, Ansible and the tests rely on, so pyinfra gets a process of its own.

Protocol: the parent writes one YAML job to stdin (see :func:`msib.engines.pyinfra.run`: the
inventory directory, the names of the hosts, check, step_timeout, extra_vars); the worker reads
the inventory itself (:func:`msib.contract.load`) and writes JSON lines to stdout:
``{"start": HOST, "what": STEP}`` as a step starts, ``{"event": HOST, "outcome": ..., "what": ...}``
as it ends, and last ``{"result": {...}}``.
"""

from gevent import monkey

monkey.patch_all()

# ruff: noqa: E402  (the patch must come before every other import)
import json
import sys
from typing import Any

import yaml

from msib import contract
from msib.engines.result import Outcome


class _Lines:
    """Progress as JSON lines on stdout (the parent relays them to its display)."""

    def start(self, host: str, what: str) -> None:
        _emit({"start": host, "what": what})

    def event(self, host: str, outcome: Outcome, what: str) -> None:
        _emit({"event": host, "outcome": outcome, "what": what})


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main() -> int:
    """Read the job from stdin, run it, write the result; 0 when the run happened (hosts may fail)."""
    from msib.engines.pyinfra_session import run

    job = yaml.safe_load(sys.stdin.read())
    inventory = contract.load(job["inventory"])
    hosts = [inventory.appliance(name) for name in job["hosts"]]
    result = run(inventory, hosts, check=bool(job["check"]), extra_vars=job["extra_vars"],
                 progress=_Lines(), step_timeout=float(job["step_timeout"]))
    _emit({"result": {name: {"changed": h.changed, "unchanged": h.unchanged, "failed": h.failed,
                             "error": h.error} for name, h in result.hosts.items()}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
