"""Helpers shared by the role checks (not checks themselves)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from msib import releases
from msib.checks import apt_policy
from msib.manifest import ManagedFile, managed_files

Evidence = Callable[[str], None]


def packages_at_expected_version(host: Any, ctx: Mapping[str, Any], packages: list[str], evidence: Evidence) -> None:
    """Assert every package is installed at its pin for the host's release (msib.releases.pins), else
    at the source's candidate."""
    pinned = releases.pins(ctx.get("msib_package_versions"), ctx.get("msib_release"))
    policy = apt_policy(host.run("LC_ALL=C apt-cache policy " + " ".join(packages)).stdout)
    problems = []
    for pkg in packages:
        info = policy.get(pkg, {})
        installed = info.get("installed") or "(none)"
        expected = pinned.get(pkg) or info.get("candidate") or "(none)"
        source = f"pinned for {ctx.get('msib_release') or 'every release'}" if pkg in pinned else "newest available"
        evidence(f"{pkg}: installed {installed}, expected {expected} ({source})")
        if installed in ("(none)", ""):
            problems.append(f"{pkg} is not installed")
        elif installed != expected:
            problems.append(f"{pkg} is {installed}, expected {expected}")
    assert not problems, "; ".join(problems)


def service_running(host: Any, name: str, evidence: Evidence, *, active: bool = True) -> list[str]:
    """Problems with a systemd service (enabled; active unless `active` is False)."""
    svc = host.service(name)
    is_active, is_enabled = svc.is_running, svc.is_enabled
    state = host.run(f"systemctl show -p ActiveState -p SubState -p UnitFileState --value {name}").stdout.split()
    evidence(f"{name}: {' / '.join(state)}")
    problems = []
    if active and not is_active:
        problems.append(f"{name} is not active")
    if not is_enabled:
        problems.append(f"{name} is not enabled at boot")
    return problems


def no_drift(host: Any, role: str, ctx: Mapping[str, Any], evidence: Evidence) -> None:
    """Assert every file the role manages (its meta/manifest.yml) has the sha256 msib renders now."""
    files: list[ManagedFile] = managed_files(role, ctx)
    paths = " ".join(f"'{f.path}'" for f in files)
    out = host.run(f"for f in {paths}; do if [ -f \"$f\" ]; then sha256sum \"$f\"; else echo \"missing $f\"; fi; done")
    live: dict[str, str] = {}
    for line in out.stdout.splitlines():
        word, _, path = line.partition(" ")
        live[path.strip()] = "missing" if word == "missing" else word
    drift = []
    for f in files:
        got = live.get(f.path, "missing")
        if f.sha256 is None:
            evidence(f"{f.path}: sha256 {got[:16]}… (not compared: {f.source} is not readable here)")
            continue
        ok = got == f.sha256
        evidence(f"{f.path}: {'equal' if ok else 'DRIFT'} (host {got[:16]}…, rendered {f.sha256[:16]}…, {f.source})")
        if not ok:
            drift.append(f.path if got != "missing" else f"{f.path} (missing)")
    assert not drift, f"{len(drift)} managed file(s) differ from what msib renders now: {', '.join(drift)}"
