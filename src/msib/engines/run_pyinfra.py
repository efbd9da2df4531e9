"""Run the pyinfra deploys in a worker process of their own and relay its progress.

See :mod:`msib.engines.pyinfra_worker` for why pyinfra runs in its own (gevent-patched) process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import yaml

from msib.deploy import DeployResult, HostResult, InventoryHost, Progress
from msib.errors import DeployError, InputError


def run(hosts_file: Path, hosts: list[InventoryHost], *, check: bool, extra_vars: dict[str, Any],
        progress: Progress | None, step_timeout: float) -> DeployResult:
    """Deploy `hosts` with pyinfra (only detect changes when `check`), every step bounded by `step_timeout`.

    Raises:
        InputError: role variables that cannot be handed to the worker (not plain YAML data).
        DeployError: the worker died without a result.
    """
    try:
        job = yaml.safe_dump({
            "hosts_file": str(hosts_file), "check": check, "step_timeout": step_timeout,
            "extra_vars": extra_vars,
            "hosts": [{"name": h.name, "role": h.role, "vars": dict(h.vars)} for h in hosts],
        })
    except yaml.YAMLError as exc:
        raise InputError("--vars", f"role variables must be plain data: {exc}") from None
    proc = subprocess.Popen([sys.executable, "-m", "msib.engines.pyinfra_worker"], stdin=subprocess.PIPE,
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
