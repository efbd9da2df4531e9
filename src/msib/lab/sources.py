"""The lab's side of health: its SIEM answering for the collectors, objects that log, faults to make.

- :class:`LabSiemView` is the lab SIEM's :class:`~msib.health.probe.SiemView`: the modification
  time of its per-source event file (``/var/lib/msib-siem/events/<HOSTNAME>.log``, flushed every
  second) is when it last had an event from that host, read over SSH (strict host keys).
  :func:`lab_siem_view` finds it from an inventory whose ssh_config is a running lab's.
- An SB workstation logs all the time; a lab object host does not (no syslog daemon in the base
  image). :func:`start_object_logging` runs a heartbeat on it, ``logger`` over TCP to its
  circuit's collector every few seconds, as a transient unit; :func:`stop_object_logging` is the
  object falling silent.
- :func:`block_forwarding` drops a collector's traffic to the SIEM (its own nftables table),
  :func:`unblock_forwarding` removes that table again.
"""

from __future__ import annotations

import shlex
import subprocess
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path

from msib import contract
from msib.errors import LabError, MsibError
from msib.health.probe import SiemUnavailable
from msib.lab.plan import LabView
from msib.lab.siem.host import EVENTS_DIR

HEARTBEAT_UNIT = "msib-lab-heartbeat"
FAULT_TABLE = "msib_lab_fault"


class LabSiemView:
    """When the lab SIEM last had an event from each host: its event files' modification times, over SSH."""

    def __init__(self, ssh: Sequence[str]) -> None:
        self.ssh = list(ssh)

    def last_heard(self, names: Sequence[str]) -> Mapping[str, float | None]:
        files = " ".join(shlex.quote(f"{EVENTS_DIR}/{n}.log") for n in names)
        script = f"date +%s.%N; for f in {files}; do stat -c '%Y %n' \"$f\" 2>/dev/null || echo \"- $f\"; done"
        try:
            proc = subprocess.run([*self.ssh, "sudo", "sh", "-c", shlex.quote(script)], capture_output=True,
                                  text=True, timeout=60)
        except subprocess.TimeoutExpired:
            raise SiemUnavailable("the lab SIEM did not answer within 60 s") from None
        import time

        now = time.time()
        lines = proc.stdout.splitlines()
        if proc.returncode != 0 or not lines:
            raise SiemUnavailable(f"the lab SIEM could not be asked: {(proc.stderr.strip() or 'no answer')[-200:]}")
        shift = now - float(lines[0])
        out: dict[str, float | None] = {n: None for n in names}
        for line in lines[1:]:
            stamp, _, path = line.partition(" ")
            name = Path(path).name.removesuffix(".log")
            if name in out and stamp != "-":
                out[name] = float(stamp) + shift
        return out


def lab_siem_view(inventory: str | Path) -> LabSiemView | None:
    """The lab SIEM's view for an inventory built on a running lab (its ssh_config in the lab state), else None.

    The SIEM host is the ssh_config entry whose HostName is the host of the inventory's SIEM API URL.
    """
    try:
        inv = contract.load(inventory)
    except MsibError:
        return None
    cfg = inv.ssh.config_file
    url = inv.siem.api.url
    if not cfg or not url:
        return None
    config = Path(cfg).resolve()
    state = config.parent
    if not (state / "up").is_file() or not (state / "siem" / "credentials.env").is_file():
        return None
    host = urllib.parse.urlparse(url).hostname
    name = None
    current = None
    for line in config.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].lower() == "host":
            current = parts[1]
        elif len(parts) == 2 and parts[0].lower() == "hostname" and parts[1] == host:
            name = current
    return None if name is None else LabSiemView(["ssh", "-F", str(config), name])


# --- objects that log, and faults -------------------------------------------------------------------


def _ssh(lab: LabView, host: str, script: str, *, check: bool = True) -> str:
    proc = subprocess.run(lab.ssh_argv(host, ["sudo", "sh", "-c", shlex.quote(script)]), capture_output=True,
                          text=True, timeout=120)
    if check and proc.returncode != 0:
        raise LabError(f"{host}: {script[:60]!r} failed: {proc.stderr.strip()[-300:]}")
    return proc.stdout


def object_collector(lab: LabView, name: str) -> str:
    """The LAN address of the first collector of object host `name`'s circuit (where it sends)."""
    obj = next((o for o in lab.spec.objects if o.name == name), None)
    if obj is None:
        raise LabError(f"{name} is not an object host of lab {lab.spec.name}")
    for cname, app in lab.plan.appliances():
        if cname == obj.circuit and app.role == "collector":
            return str(app.service_address)
    raise LabError(f"circuit {obj.circuit} of lab {lab.spec.name} has no collector")


def start_object_logging(lab: LabView, name: str, *, every: float = 5.0) -> None:
    """Object host `name` logs a heartbeat to its collector every `every` seconds (until stopped)."""
    target = object_collector(lab, name)
    loop = (f"while :; do logger --server {target} --tcp --port 514 -t msib-lab-heartbeat "
            f"-- \"heartbeat from $(hostname)\"; sleep {every}; done")
    _ssh(lab, name, f"systemctl stop {HEARTBEAT_UNIT} 2>/dev/null; systemctl reset-failed {HEARTBEAT_UNIT} "
                    f"2>/dev/null; systemd-run --quiet --unit={HEARTBEAT_UNIT} --property=Restart=always "
                    f"/bin/sh -c {shlex.quote(loop)}")


def stop_object_logging(lab: LabView, name: str) -> None:
    """Object host `name` falls silent (its heartbeat stops)."""
    _ssh(lab, name, f"systemctl stop {HEARTBEAT_UNIT} 2>/dev/null; systemctl reset-failed {HEARTBEAT_UNIT} "
                    "2>/dev/null; true")


def block_forwarding(lab: LabView, collector: str) -> None:
    """Collector `collector` can no longer reach the SIEM's syslog receiver (its packets are dropped)."""
    syslog = lab.plan.siem.syslog
    _ssh(lab, collector, f"nft -f - <<'EOF'\ntable inet {FAULT_TABLE} {{\n chain output {{\n"
                         f"  type filter hook output priority 0; policy accept;\n"
                         f"  ip daddr {syslog.host} tcp dport {{ {syslog.port}, 2514 }} drop\n }}\n}}\nEOF")


def unblock_forwarding(lab: LabView, collector: str) -> None:
    """Undo :func:`block_forwarding`."""
    _ssh(lab, collector, f"nft delete table inet {FAULT_TABLE} 2>/dev/null; true")
