"""Unattended updates of the appliances: packages, and the IDS rule set fetched once centrally.

``msib update --inventory DIR [--packages] [--rules]`` is made for a timer nobody watches:

- **one run at a time**: an exclusive ``flock`` on a lock file; a second run refuses at once with
  a clear message and exit status :data:`EXIT_LOCKED` (75, EX_TEMPFAIL: "try again later");
- **no prompts**: apt runs non-interactively and keeps the configuration files msib manages;
- **packages**: first, on every host, ``apt-get update`` and the **apt preflight**
  (:mod:`msib.apt_preflight`): a repository apt refuses (a key bound with SHA-1 on Debian 13, no
  signature, no Release file, unreachable) stops the whole run before any host is upgraded. Then
  per host the upgrades from the security archive first, then the rest; then every service still
  running deleted (replaced) binaries or libraries is restarted; the report lists what was
  upgraded and restarted and whether a reboot is needed;
- **rules**: the sensors' Suricata series (``7.0``, ``8.0``) are asked first, each checked against
  the inventory's ``ids_sensor_suricata_major``; the rule set of each series is fetched **once**
  from the source (a directory or an HTTP URL the project serves, see :func:`publish_ruleset`), its
  checksums verified and cached on the controller, tested with ``suricata -T`` on one sensor, then
  pushed to every sensor of the series (temp file + rename), reloaded **without restart**
  (``suricatasc -c reload-rules``) and **verified**: the file's sha256 on the sensor, the engine's
  rule count equal to what ``suricata -T`` loads from the same configuration, no rule failed, and
  the engine's ``ruleset-reload-time`` at or after the pushed file's mtime. Anything else is a failure.
- a JSON summary (:meth:`UpdateRun.as_json`) and the exit status tell the scheduler what happened:
  0 done (changed or not), 1 something failed, 2 unusable input, 75 another run holds the lock.

Source layout (a "new rule set" is a new version there)::

    <source>/suricata-7.0/latest.json             {"version": "...", "released": "YYYY-MM-DD",
                                                   "files": {"name.rules": "<sha256>", ...}}
    <source>/suricata-7.0/<version>/name.rules
    <source>/suricata-8.0/...                     the set built for Suricata 8.0 (its own keywords)

Example:
    >>> run = run_update(Path("/var/lib/msib-lab/inventory"), rules=True)   # doctest: +SKIP
    >>> run.exit_code(), run.as_json()["rules"]["sensors"]["ids-int-1"]["status"]   # doctest: +SKIP
    (0, 'updated')
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from msib import contract, render
from msib.apt_preflight import Refusal, refused_repositories
from msib.checks.parsers import pending_upgrades, suricata_time
from msib.contract import Appliance, Inventory
from msib.errors import InputError, Locked, MsibError
from msib.fsutil import atomic_write, exclusive_lock
from msib.systemd import UnitError, install_units

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_LOCKED = 0, 1, 2, 75
DEFAULT_LOCK = Path(os.environ.get("MSIB_UPDATE_LOCK", "/run/lock/msib-update.lock"))
DEFAULT_CACHE = Path(os.environ.get("MSIB_RULES_CACHE", "/var/cache/msib/rules"))
SSH_TIMEOUT_S = 900.0
SensorStatus = Literal["updated", "unchanged", "failed"]


def default_rules_source() -> str:
    """``$MSIB_RULES_SOURCE``, else the rule sets shipped in the repository (``rulesets/``)."""
    return os.environ.get("MSIB_RULES_SOURCE") or str(Path(__file__).resolve().parents[2] / "rulesets")


class UpdateError(MsibError):
    """An update step failed on a host (reported in the summary, exit status 1)."""


class UpdateLocked(Locked):
    """Another ``msib update`` holds the lock: this run did nothing."""

    exit_code = EXIT_LOCKED


# --- the lock -------------------------------------------------------------------------------------


@contextlib.contextmanager
def update_lock(path: Path = DEFAULT_LOCK) -> Iterator[Path]:
    """Hold the exclusive update lock (:func:`msib.fsutil.exclusive_lock`, ``O_NOFOLLOW``) for the block.

    Raises:
        UpdateLocked: another process holds the lock (nothing was done).
        InputError: the lock's path is a symbolic link or not a regular file.
    """
    with exclusive_lock(path, "msib update", UpdateLocked) as held:
        yield held


# --- SSH to the appliances ------------------------------------------------------------------------


class Remote:
    """Runs root commands on appliances over SSH (strict host keys, one multiplexed master each)."""

    def __init__(self, inv: Inventory, hosts: Sequence[Appliance]) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="msib-update-"))
        control = self.workdir / "cm"
        control.mkdir(mode=0o700)
        self.config = self.workdir / "ssh_config"
        self.config.write_text(inv.ssh.verified().run_config(hosts, control,
                                                            header="written by msib update for one run"))
        self.hosts = list(hosts)

    def run(self, host: str, script: str, *, stdin: bytes | None = None,
            timeout: float = SSH_TIMEOUT_S) -> subprocess.CompletedProcess[bytes]:
        """Run `script` with ``sudo -n sh -c`` on `host`; `stdin` is fed to it."""
        argv = ["ssh", "-F", str(self.config), host, "sudo -n sh -c " + shlex.quote(script)]
        try:
            return subprocess.run(argv, input=stdin or b"", capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise UpdateError(f"{host}: no answer within {timeout:.0f} s") from None

    def text(self, host: str, script: str, *, stdin: bytes | None = None, check: bool = True) -> str:
        """Run `script` and return its stdout; with `check`, a non-zero exit raises UpdateError."""
        proc = self.run(host, script, stdin=stdin)
        if check and proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
            raise UpdateError(f"{host}: `{script.splitlines()[0][:80]}` exited {proc.returncode}: {' / '.join(err)}")
        return proc.stdout.decode(errors="replace")

    def close(self) -> None:
        for h in self.hosts:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                subprocess.run(["ssh", "-F", str(self.config), "-O", "exit", h.name], capture_output=True,
                               timeout=10, stdin=subprocess.DEVNULL)
        shutil.rmtree(self.workdir, ignore_errors=True)


# --- packages -------------------------------------------------------------------------------------

_APT = ("DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=l LC_ALL=C apt-get -y -q "
        "-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold")

# services whose processes still map deleted (replaced) executables or libraries
_NEEDS_RESTART = r"""
for d in /proc/[0-9]*; do
  if grep -qE '(/(usr/)?(s?bin|lib(exec)?|lib64)/[^ ]*) \(deleted\)$' "$d/maps" 2>/dev/null; then
    ps -o unit= -p "${d#/proc/}" 2>/dev/null
  fi
done | grep '\.service$' | sort -u
"""
#: Units never restarted automatically (restarting them cuts the host's own plumbing).
NO_AUTO_RESTART = ("dbus.service", "systemd-logind.service")


@dataclass
class HostPackages:
    """What ``--packages`` did on one host."""

    upgraded: list[dict[str, Any]] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    still_needs_restart: list[str] = field(default_factory=list)
    reboot_required: bool = False
    refused: list[Refusal] = field(default_factory=list)
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"upgraded": self.upgraded, "security": sum(bool(u["security"]) for u in self.upgraded),
                "restarted": self.restarted, "still_needs_restart": self.still_needs_restart,
                "reboot_required": self.reboot_required, "refused_repositories": [r.as_json() for r in self.refused],
                "error": self.error}


def apt_preflight(remote: Remote, host: str) -> HostPackages:
    """``apt-get update`` on one host and the repositories apt refused there (nothing is upgraded)."""
    out = HostPackages()
    try:
        proc = remote.run(host, f"{_APT} update 2>&1")
    except UpdateError as exc:
        out.error = str(exc)
        return out
    text = proc.stdout.decode(errors="replace")
    out.refused = refused_repositories(text)
    if out.refused:
        out.error = "apt refuses " + "; ".join(f"{r.repository} ({r.reason})" for r in out.refused)
    elif proc.returncode != 0:
        tail = " / ".join((text + proc.stderr.decode(errors="replace")).strip().splitlines()[-3:])
        out.error = f"apt-get update exited {proc.returncode}: {tail}"
    return out


def update_packages(remote: Remote, host: str) -> HostPackages:
    """Upgrade one host's packages (security first), restart what runs replaced code, report.

    Its package lists are those the apt preflight (:func:`apt_preflight`) has just refreshed.
    """
    out = HostPackages()
    try:
        pending = pending_upgrades(remote.text(host, f"{_APT} -s upgrade"))
        security = [p for p in pending if p["security"]]
        if security:
            names = " ".join(shlex.quote(p["package"]) for p in security)
            remote.text(host, f"{_APT} install --only-upgrade {names}")
        if len(pending) > len(security):
            remote.text(host, f"{_APT} upgrade")
        after = {p["package"] for p in pending_upgrades(remote.text(host, f"{_APT} -s upgrade"))}
        out.upgraded = [p for p in pending if p["package"] not in after]
        units = [u for u in remote.text(host, _NEEDS_RESTART).split() if u]
        for unit in units:
            if unit in NO_AUTO_RESTART or unit.startswith("user@"):
                out.still_needs_restart.append(unit)
                continue
            remote.text(host, f"systemctl restart {shlex.quote(unit)}")
            out.restarted.append(unit)
        out.reboot_required = remote.run(host, "test -e /var/run/reboot-required").returncode == 0
        left = [p["package"] for p in pending if p["package"] in after]
        if left:
            out.error = f"not upgraded (held back or failed): {', '.join(left)}"
    except UpdateError as exc:
        out.error = str(exc)
    return out


def _packages(remote: Remote, hosts: Sequence[Appliance], workers: int) -> dict[str, HostPackages]:
    """The apt preflight on every host, then, only when no host failed it, the upgrades on every host.

    All or nothing: a refused repository anywhere leaves every host as it was (not half the
    fleet upgraded), and the report names each refused repository and why.
    """
    names = [h.name for h in hosts]
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(workers, len(hosts))) as pool:
        checked = dict(zip(names, pool.map(lambda h: apt_preflight(remote, h.name), hosts), strict=True))
    blocked = sorted(n for n, p in checked.items() if p.error)
    if blocked:
        for p in checked.values():
            if not p.error:
                p.error = (f"not upgraded: the apt preflight failed on {', '.join(blocked)} "
                           "(nothing was upgraded anywhere)")
        return checked
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(workers, len(hosts))) as pool:
        return dict(zip(names, pool.map(lambda h: update_packages(remote, h.name), hosts), strict=True))


# --- rules: the source, the central cache ---------------------------------------------------------


@dataclass(frozen=True)
class Ruleset:
    """One version of the rule set of one Suricata series, as fetched and verified."""

    series: str
    version: str
    released: str
    files: tuple[tuple[str, bytes], ...]

    def bundle(self) -> bytes:
        """The one rule file pushed to the sensors: a header naming the version, then every file."""
        head = (f"# msib rule set {self.version} for suricata-{self.series}, released {self.released}\n"
                f"# written by msib update --rules: do not edit (the next update replaces it)\n")
        body = b"".join(f"# --- {name}\n".encode() + data.rstrip(b"\n") + b"\n" for name, data in self.files)
        return head.encode() + body

    @property
    def sha256(self) -> str:
        return render.sha256(self.bundle())

    def rule_lines(self) -> int:
        """Rule lines in the bundle (not comments, not blank)."""
        return sum(1 for ln in self.bundle().decode(errors="replace").splitlines()
                   if ln.strip() and not ln.lstrip().startswith("#"))


def _read_source(source: str, rel: str) -> bytes:
    """Read `rel` under `source` (a directory, file:// or http(s):// URL); never through a proxy."""
    parsed = urllib.parse.urlparse(source)
    if parsed.scheme in ("http", "https"):
        url = source.rstrip("/") + "/" + rel
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(url, timeout=30) as resp:
                data: bytes = resp.read()
                return data
        except OSError as exc:
            raise UpdateError(f"rule source: cannot fetch {url}: {exc}") from None
    base = Path(parsed.path if parsed.scheme == "file" else source)
    try:
        return (base / rel).read_bytes()
    except OSError as exc:
        raise UpdateError(f"rule source: cannot read {base / rel}: {exc.strerror}") from None


_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def fetch_ruleset(source: str, series: str, cache: Path = DEFAULT_CACHE) -> tuple[Ruleset, bool]:
    """The latest rule set of `series` from `source`, checksums verified; cached on the controller.

    Returns:
        (the rule set, True when its files came from the cache and were not downloaded again).

    Raises:
        UpdateError: the source cannot be read, its index is malformed or a checksum differs.
    """
    index_rel = f"suricata-{series}/latest.json"
    try:
        index = json.loads(_read_source(source, index_rel))
        version, files = str(index["version"]), dict(index["files"])
        released = str(index.get("released", "unknown"))
    except (ValueError, KeyError, TypeError) as exc:
        raise UpdateError(f"rule source: {index_rel} is malformed ({exc})") from None
    if not _SAFE.match(version) or not files or not all(_SAFE.match(n) for n in files):
        raise UpdateError(f"rule source: {index_rel}: unsafe or empty version/file names")
    where = cache / f"suricata-{series}" / version
    got: list[tuple[str, bytes]] = []
    cached = True
    for name, digest in sorted(files.items()):
        path = where / name
        data = path.read_bytes() if path.is_file() else b""
        if render.sha256(data) != digest:
            cached = False
            data = _read_source(source, f"suricata-{series}/{version}/{name}")
            if render.sha256(data) != digest:
                raise UpdateError(f"rule source: {version}/{name} has sha256 {render.sha256(data)[:16]}…, "
                                  f"the index says {str(digest)[:16]}…: refusing it")
            atomic_write(path, data)
        got.append((name, data))
    return Ruleset(series=series, version=version, released=released, files=tuple(got)), cached


def publish_ruleset(source_dir: Path, series: str, version: str, files: dict[str, str | bytes],
                    released: str | None = None) -> Path:
    """Publish a new rule set version into a source directory (how a new rule set reaches msib).

    Writes the files under ``suricata-<series>/<version>/`` and then, atomically, ``latest.json``.

    Example:
        >>> publish_ruleset(Path("rulesets"), "7.0", "2026.11.26.1", {"msib.rules": "alert ..."})  # doctest: +SKIP
    """
    if not _SAFE.match(version) or not all(_SAFE.match(n) for n in files):
        raise InputError("publish_ruleset", "unsafe version or file name")
    vdir = source_dir / f"suricata-{series}" / version
    vdir.mkdir(parents=True, exist_ok=True)
    digests: dict[str, str] = {}
    for name, data in files.items():
        raw = data.encode() if isinstance(data, str) else data
        (vdir / name).write_bytes(raw)
        digests[name] = render.sha256(raw)
    index = {"version": version, "released": released or time.strftime("%Y-%m-%d", time.gmtime()),
             "files": digests}
    atomic_write(vdir.parent / "latest.json", json.dumps(index, indent=2) + "\n")
    return vdir


# --- rules: on the sensors ------------------------------------------------------------------------


@dataclass
class SensorRules:
    """What ``--rules`` found and did on one sensor."""

    series: str | None = None
    status: SensorStatus = "failed"
    version: str | None = None
    sha256: str | None = None
    rules_loaded: int | None = None
    rules_expected: int | None = None
    last_reload: str | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


_LOADED_RE = re.compile(r"(\d+) rules successfully loaded, (\d+) rules failed")


def _test_load(remote: Remote, host: str, rules_only: bytes | None = None) -> tuple[int, int]:
    """``suricata -T`` on `host`: (loaded, failed) for its configuration, or for `rules_only` alone (-S)."""
    if rules_only is None:
        script = ('d=$(mktemp -d); suricata -T -c /etc/suricata/suricata.yaml -l "$d" -v >/dev/null 2>&1; '
                  'rc=$?; cat "$d/suricata.log"; rm -rf "$d"; exit $rc')
        proc = remote.run(host, script)
    else:
        script = ('d=$(mktemp -d); cat > "$d/test.rules"; '
                  'suricata -T -c /etc/suricata/suricata.yaml -S "$d/test.rules" -l "$d" -v >/dev/null 2>&1; '
                  'rc=$?; cat "$d/suricata.log"; rm -rf "$d"; exit $rc')
        proc = remote.run(host, script, stdin=rules_only)
    log = proc.stdout.decode(errors="replace")
    found = list(_LOADED_RE.finditer(log))
    m = found[-1] if found else None
    if proc.returncode != 0 or m is None:
        errors = [ln.split("Error: ", 1)[-1] for ln in log.splitlines() if "Error:" in ln][:5]
        raise UpdateError(f"{host}: suricata -T refused the rules (exit {proc.returncode}): "
                          + ("; ".join(errors) or "no rule count in its log"))
    return int(m.group(1)), int(m.group(2))


def _engine(remote: Remote, host: str, socket: str) -> tuple[int, int, float, str]:
    """(rules loaded, rules failed, last reload as epoch, last reload text) of the running engine."""
    q = shlex.quote(socket)
    out = remote.text(host, f"suricatasc -c ruleset-stats {q}; echo; suricatasc -c ruleset-reload-time {q}")
    parts = [json.loads(p) for p in _json_documents(out)]
    try:
        stats = parts[0]["message"]
        reload = parts[1]["message"]
        loaded = sum(int(e["rules_loaded"]) for e in stats)
        failed = sum(int(e["rules_failed"]) for e in stats)
        text = str(reload[0]["last_reload"])
        epoch = suricata_time(text)
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise UpdateError(f"{host}: cannot read the engine's rule state over {socket}: {exc}: {out[:200]}") from None
    return loaded, failed, epoch, text


def _json_documents(text: str) -> list[str]:
    """The JSON documents in `text`, one after the other (suricatasc 7 prints one a line, 8 may indent them)."""
    decoder = json.JSONDecoder()
    docs, i = [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        try:
            _, end = decoder.raw_decode(text, i)
        except ValueError:
            break
        docs.append(text[i:end])
        i = end
    return docs


def _probe(remote: Remote, h: Appliance) -> tuple[str, str, str, str, float]:
    """(series, socket, rule file, its sha256 or 'missing', its mtime) of a sensor.

    Raises:
        UpdateError: no Suricata, or one of another major than the inventory's
            ``ids_sensor_suricata_major`` (a rule set is only ever pushed for the version it was built for).
    """
    ctx = render.context(h.role, h.vars)
    rule_file = ctx.get("ids_sensor_update_rule_file")
    if not rule_file:
        raise UpdateError(f"{h.name}: ids_sensor_update_rule_file is null: this sensor takes no rule updates")
    q = shlex.quote(str(rule_file))
    out = remote.text(h.name, "suricata -V; suricata --dump-config -c /etc/suricata/suricata.yaml 2>/dev/null "
                      f"| grep '^unix-command.filename ' ; if [ -f {q} ]; then sha256sum {q}; stat -c '%.9Y' {q}; "
                      "else echo missing; fi")
    m = re.search(r"version (\d+)\.(\d+)\.\d+", out)
    if not m:
        raise UpdateError(f"{h.name}: Suricata is not installed or did not say its version")
    wanted = str(ctx.get("ids_sensor_suricata_major"))
    if m.group(1) != wanted:
        raise UpdateError(f"{h.name}: runs Suricata {m.group(1)}.{m.group(2)}, the inventory says "
                          f"ids_sensor_suricata_major {wanted}: deploy the sensor first (no rule set is pushed "
                          "for a version other than the one it was built for)")
    sock = re.search(r"^unix-command\.filename = (\S+)", out, re.M)
    lines = out.strip().splitlines()
    if lines[-1] == "missing":
        sha, mtime = "missing", 0.0
    else:
        sha, mtime = lines[-2].split()[0], float(lines[-1])
    return f"{m.group(1)}.{m.group(2)}", sock.group(1) if sock else "/var/run/suricata-command.socket", \
        str(rule_file), sha, mtime


def _converge_sensor(remote: Remote, h: Appliance, rs: Ruleset, socket: str, rule_file: str,
                     current_sha: str, mtime: float) -> SensorRules:
    """Push the rule set to one sensor (unless it has it), reload without restart, verify.

    Verified means: the file's sha256 is the pushed one, the engine's ``ruleset-reload-time`` is at
    or after the file's mtime, and the engine runs exactly the rules ``suricata -T`` loads, none failed.
    """
    out = SensorRules(series=rs.series, version=rs.version, sha256=rs.sha256)
    bundle = rs.bundle()
    q = shlex.quote(rule_file)
    if current_sha == rs.sha256:
        expected, failed = _test_load(remote, h.name)
        loaded, live_failed, reload_at, reload_text = _engine(remote, h.name, socket)
        out.rules_expected, out.rules_loaded, out.last_reload = expected, loaded, reload_text
        if loaded == expected and live_failed == 0 and failed == 0 and reload_at >= mtime:
            out.status = "unchanged"
            return out
        # the file is there but the engine does not run it: reload below, without rewriting the file
    else:
        remote.text(h.name, f"set -e; mkdir -p \"$(dirname {q})\"; if [ -f {q} ]; then cp -p {q} {q}.prev; fi; "
                    f"cat > {q}.msib-tmp; chmod 0644 {q}.msib-tmp; mv -f {q}.msib-tmp {q}", stdin=bundle)
        try:
            expected, failed = _test_load(remote, h.name)
        except UpdateError:
            remote.run(h.name, f"if [ -f {q}.prev ]; then mv -f {q}.prev {q}; fi")
            raise
        out.rules_expected = expected
    reply = remote.text(h.name, f"suricatasc -c reload-rules {shlex.quote(socket)}")
    loaded, live_failed, reload_at, reload_text = _engine(remote, h.name, socket)
    live_sha, live_mtime = remote.text(h.name, f"sha256sum {q} | cut -d' ' -f1; stat -c '%.9Y' {q}").split()
    out.rules_loaded, out.last_reload = loaded, reload_text
    problems = []
    if '"OK"' not in reply:
        problems.append(f"reload-rules answered {reply.strip()[:120]}")
    if live_sha != rs.sha256:
        problems.append(f"the rule file has sha256 {live_sha[:16]}…, pushed {rs.sha256[:16]}…")
    if reload_at < float(live_mtime):
        problems.append(f"the engine's last reload ({reload_text}) is older than the pushed rules "
                        f"({dt.datetime.fromtimestamp(float(live_mtime), dt.UTC).isoformat()})")
    if loaded != out.rules_expected or live_failed:
        problems.append(f"the engine runs {loaded} rules ({live_failed} failed), expected {out.rules_expected}")
    if problems:
        out.error = "the update did not take effect: " + "; ".join(problems)
        return out
    out.status = "updated"
    return out


def update_rules(remote: Remote, sensors: Sequence[Appliance], source: str, cache: Path,
                 workers: int) -> dict[str, Any]:
    """Fetch once per Suricata series, test, push, reload without restart, verify; the rules summary."""
    results: dict[str, SensorRules] = {h.name: SensorRules() for h in sensors}
    probes: dict[str, tuple[str, str, str, str, float]] = {}

    def probe(h: Appliance) -> None:
        try:
            probes[h.name] = _probe(remote, h)
            results[h.name].series = probes[h.name][0]
        except UpdateError as exc:
            results[h.name].error = str(exc)

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(workers, len(sensors)))) as pool:
        list(pool.map(probe, sensors))
    series_info: dict[str, dict[str, Any]] = {}
    rulesets: dict[str, Ruleset] = {}
    for series in sorted({p[0] for p in probes.values()}):
        members = [h for h in sensors if h.name in probes and probes[h.name][0] == series]
        info: dict[str, Any] = {"sensors": [h.name for h in members]}
        series_info[series] = info
        try:
            rs, cached = fetch_ruleset(source, series, cache)
            info.update(version=rs.version, released=rs.released, sha256=rs.sha256, rule_lines=rs.rule_lines(),
                        fetched="cache" if cached else "source")
            loaded, failed = _test_load(remote, members[0].name, rs.bundle())
            info.update(tested_on=members[0].name, test_loaded=loaded, test_failed=failed)
            if failed or loaded == 0:
                raise UpdateError(f"{members[0].name}: suricata -T loaded {loaded} rules, {failed} failed")
            rulesets[series] = rs
        except UpdateError as exc:
            info["error"] = str(exc)
            for h in members:
                results[h.name].error = f"rule set of suricata-{series} not usable: {exc}"

    def converge(h: Appliance) -> None:
        series, socket, rule_file, sha, mtime = probes[h.name]
        try:
            results[h.name] = _converge_sensor(remote, h, rulesets[series], socket, rule_file, sha, mtime)
        except UpdateError as exc:
            results[h.name].error = str(exc)
            results[h.name].status = "failed"

    todo = [h for h in sensors if h.name in probes and probes[h.name][0] in rulesets]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(workers, len(todo) or 1))) as pool:
        list(pool.map(converge, todo))
    return {"source": source, "series": series_info,
            "sensors": {name: r.as_json() for name, r in results.items()}}


# --- the run --------------------------------------------------------------------------------------


@dataclass
class UpdateRun:
    """Everything one ``msib update`` did."""

    inventory: str
    started: float
    lock: str
    finished: float = 0.0
    packages: dict[str, HostPackages] | None = None
    rules: dict[str, Any] | None = None

    def failures(self) -> list[str]:
        out = [f"{h}: packages: {p.error}" for h, p in (self.packages or {}).items() if p.error]
        if self.rules:
            out += [f"{h}: rules: {s['error']}" for h, s in self.rules["sensors"].items() if s["status"] == "failed"]
        return out

    def changed(self) -> bool:
        pk = any(p.upgraded or p.restarted for p in (self.packages or {}).values())
        rl = any(s["status"] == "updated" for s in (self.rules or {"sensors": {}})["sensors"].values())
        return pk or rl

    def exit_code(self) -> int:
        return EXIT_FAILED if self.failures() else EXIT_OK

    def as_json(self) -> dict[str, Any]:
        """The summary a scheduler reads (also written as the last line of the journal)."""
        return {"ok": not self.failures(), "exit_code": self.exit_code(), "changed": self.changed(),
                "inventory": self.inventory, "lock": self.lock,
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
                "seconds": round(self.finished - self.started, 2),
                "packages": None if self.packages is None else
                {h: p.as_json() for h, p in sorted(self.packages.items())},
                "rules": self.rules, "failures": self.failures()}


def run_update(inventory: str | Path, *, packages: bool = False, rules: bool = False,
               vars_files: Sequence[Path] = (), limit: Sequence[str] = (), rules_source: str | None = None,
               cache: Path = DEFAULT_CACHE, lock: Path = DEFAULT_LOCK, workers: int = 8,
               on_step: Callable[[str], None] | None = None) -> UpdateRun:
    """Run an unattended update of the inventory's appliances, under the update lock.

    Args:
        inventory: the inventory directory.
        packages: upgrade packages (security first) and restart what needs it.
        rules: fetch, test, push, reload and verify the IDS rule set.
        vars_files: role variables as given to ``msib deploy --vars``.
        limit: host names (default: every appliance).
        rules_source: directory or URL of the rule sets (default: ``msib_ids_rules_source`` of
            the inventory, else :func:`default_rules_source`).
        cache: the controller's rule set cache.
        lock: the lock file.
        workers: hosts handled at once.
        on_step: called with a line of progress.

    Raises:
        UpdateLocked: another run holds the lock (nothing done).
        InputError: unusable inventory or arguments (nothing done).
    """
    if not packages and not rules:
        packages = rules = True
    if workers < 1:
        raise InputError("--workers", "must be 1 or more")
    say = on_step or (lambda _line: None)
    inv = contract.load(inventory).with_vars(contract.read_vars(vars_files))
    hosts = [inv.appliance(n) for n in limit] if limit else list(inv.of(*contract.LINUX_ROLES))
    if not hosts:
        raise InputError(str(inv.hosts_file), "no appliance to update")
    with update_lock(lock):
        run = UpdateRun(inventory=str(inv.directory), started=time.time(), lock=str(lock))
        remote = Remote(inv, hosts)
        try:
            if packages:
                say(f"packages: {len(hosts)} hosts, apt preflight first")
                run.packages = _packages(remote, hosts, workers)
            if rules:
                sensors = [h for h in hosts if h.role == "ids_sensor"]
                source = rules_source or str(sensors[0].vars.get("msib_ids_rules_source") or "") \
                    if sensors else (rules_source or "")
                source = source or default_rules_source()
                say(f"rules: {len(sensors)} sensors from {source}")
                run.rules = update_rules(remote, sensors, source, cache, workers)
        finally:
            remote.close()
        run.finished = time.time()
        return run


# --- the nightly timer ----------------------------------------------------------------------------


def install_timer(inventory: Path, *, vars_files: Sequence[Path] = (), args: Sequence[str] = (),
                  unit_dir: Path = Path("/etc/systemd/system"), env_file: Path = Path("/etc/msib/update.env"),
                  msib: str | None = None, enable: bool = True) -> dict[str, str]:
    """Install msib-update.service + msib-update.timer (nightly) and, with `enable`, start the timer.

    Args:
        inventory: the inventory directory the nightly run updates.
        vars_files: role variables for ``--vars`` (as given to ``msib deploy``).
        args: more arguments of ``msib update`` (e.g. ``--rules``; default: packages and rules).
        unit_dir: where the units go.
        env_file: the environment file the service reads (MSIB_INVENTORY, MSIB_UPDATE_ARGS).
        msib: the msib executable (default: the one running now).
        enable: run ``systemctl daemon-reload`` and ``enable --now msib-update.timer``.

    Returns:
        {"service", "timer", "env"} → the paths written.

    Raises:
        InputError: the inventory has no hosts.yml, or an argument would break the unit.
    """
    contract.load(inventory).with_vars(contract.read_vars(vars_files))
    words = [*(w for f in vars_files for w in ("--vars", str(Path(f).resolve()))), *args]
    if any(re.search(r"[\s\"'$\\%;]", w) for w in [str(inventory), *words]):
        raise InputError("install-timer", "paths and arguments must not contain spaces, quotes, $, %, ; or \\")
    exe = msib or str(Path(sys.executable).with_name("msib"))
    env_text = (f"# written by msib update install-timer\nMSIB_INVENTORY={Path(inventory).resolve()}\n"
                f"MSIB_UPDATE_ARGS={' '.join(words)}\n")
    try:
        paths = install_units(["msib-update.service", "msib-update.timer"], replace={"MSIB": exe, "ENV": str(env_file)},
                              env_file=env_file, env_text=env_text, unit_dir=unit_dir,
                              enable=["msib-update.timer"] if enable else [])
    except UnitError as exc:
        raise UpdateError(str(exc)) from None
    return {"env": paths["env"], "service": paths["msib-update.service"], "timer": paths["msib-update.timer"]}
