"""The pyinfra engine: the deploys run in a worker process of their own; its progress is relayed.

See :mod:`msib.engines.pyinfra_worker` for why pyinfra runs in its own (gevent-patched) process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import Any

import yaml

from msib.contract import Appliance, Inventory
from msib.engines.result import DeployResult, HostResult, Progress
from msib.errors import DeployError, InputError

#: The worker's module (``python -m``): see :mod:`msib.engines.pyinfra_worker`.
WORKER = "msib.engines.pyinfra_worker"


def run(inventory: Inventory, hosts: Sequence[Appliance], *, check: bool, extra_vars: dict[str, Any],
        progress: Progress | None, step_timeout: float) -> DeployResult:
    """Deploy `hosts` with pyinfra (only detect changes when `check`), every step bounded by `step_timeout`.

    The worker reads the same inventory directory (:func:`msib.contract.load`) and deploys the
    hosts named in its job.

    Raises:
        InputError: no known_hosts for a host, or role variables that cannot be handed to the
            worker (not plain YAML data); both before the worker starts.
        DeployError: the worker died without a result.
    """
    for h in hosts:  # the connection settings are complete (strict host keys) before anything runs
        h.pyinfra_data(inventory.ssh)
    try:
        job = yaml.safe_dump({
            "inventory": str(inventory.directory), "check": check, "step_timeout": step_timeout,
            "extra_vars": extra_vars, "hosts": [h.name for h in hosts],
        })
    except yaml.YAMLError as exc:
        raise InputError("--vars", f"role variables must be plain data: {exc}") from None
    proc = subprocess.Popen([sys.executable, "-m", WORKER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    errors: list[str] = []
    drain = threading.Thread(target=lambda: errors.extend(proc.stderr or []), daemon=True)
    drain.start()
    final: dict[str, Any] | None = None
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(job)
        proc.stdin.close()
        for line in proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                errors.append(line)  # a stray print from a library: keep it for the error message
                continue
            if "result" in msg:
                final = msg["result"]
            elif progress is None:
                continue
            elif "start" in msg:
                progress.start(msg["start"], msg["what"])
            elif "event" in msg:
                progress.event(msg["event"], msg["outcome"], msg["what"])
        proc.wait()
    finally:
        if proc.poll() is None:  # interrupted (Ctrl-C): stop the worker and its SSH sessions
            proc.kill()
            proc.wait()
    drain.join(timeout=5)
    if final is None:
        tail = "".join(errors)[-1500:].strip()
        raise DeployError(f"the pyinfra worker ended without a result (exit {proc.returncode}): {tail}")
    result = DeployResult("pyinfra", check)
    for h in hosts:
        r = final.get(h.name) or {"failed": 1, "error": "no result from the pyinfra worker"}
        result.hosts[h.name] = HostResult(r.get("changed", 0), r.get("unchanged", 0), r.get("failed", 0),
                                          r.get("error"))
    return result
