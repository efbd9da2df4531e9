"""The vendor firewalls of an inventory (group ``netdev``) and where their circuits log to, from the contract."""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from msib.contract import Inventory
from msib.errors import InputError
from msib.netdev.model import DeviceTarget, IPAddress, LoggingTarget


@dataclass(frozen=True)
class NetdevInventory:
    """The vendor firewalls of one inventory directory, and where their circuits log to."""

    site: str
    devices: tuple[DeviceTarget, ...]
    collectors: Mapping[str, tuple[IPAddress, ...]]
    known_hosts: Path

    def select(self, limit: str | None) -> tuple[DeviceTarget, ...]:
        """The devices named by `limit` (comma-separated names), or all.

        Raises:
            InputError: a name in `limit` is not a netdev host of the inventory.
        """
        if not limit:
            return self.devices
        names = [n.strip() for n in limit.split(",") if n.strip()]
        known = {d.name: d for d in self.devices}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise InputError("--limit", f"not a vendor firewall of the inventory: {', '.join(unknown)}",
                             fix=f"one of: {', '.join(known) or '(none)'}")
        return tuple(known[n] for n in names)

    def logging_targets(self, device: DeviceTarget, transport: Literal["udp", "tcp"] = "tcp",
                        port: int = 514) -> list[LoggingTarget]:
        """The collectors of the device's circuit as syslog targets.

        Raises:
            InputError: the circuit has no collector.
        """
        addresses = self.collectors.get(device.circuit or "", ())
        if not addresses:
            raise InputError("hosts.yml", f"circuit {device.circuit!r} of {device.name} has no collector",
                             where=f"all.vars.msib_circuits.{device.circuit}.collectors")
        return [LoggingTarget(a, transport, port) for a in addresses]


    @classmethod
    def of(cls, inv: Inventory) -> NetdevInventory:
        """The vendor firewalls of `inv`: per host its management address, port, platform (a netmiko
        device_type: ``msib_device_type``, else ``msib_appliance.platform``) and circuit.

        The known_hosts file is ``msib_ssh.known_hosts_file``, else the ``Host *`` block's of its
        ssh_config, else ``DIR/known_hosts``. Collectors: each circuit's collectors' service addresses.

        Raises:
            InputError: naming hosts.yml and the key path when something is missing or malformed.
        """
        file = str(inv.hosts_file)
        site = inv.sb_code or "default"
        collectors = {name: tuple(ipaddress.ip_address(c.service_address) for c in circuit.collectors)
                      for name, circuit in inv.circuits.items()}
        devices: list[DeviceTarget] = []
        for a in inv.of("netdev"):
            where = f"all.children.netdev.hosts.{a.name}"
            if not a.platform:
                raise InputError(file, "no platform (a netmiko device_type)", where=f"{where}.msib_device_type")
            try:
                devices.append(DeviceTarget(name=a.name, host=a.address, port=a.port, platform=a.platform, site=site,
                                            circuit=a.circuit))
            except InputError as exc:
                raise InputError(file, exc.message, where=where, fix=exc.fix) from None
        ssh = inv.ssh
        if not ssh.known_hosts_file and ssh.config_file:
            with contextlib.suppress(InputError):  # an unreadable ssh_config names no known_hosts
                ssh = ssh.effective()
        known_hosts = Path(ssh.known_hosts_file) if ssh.known_hosts_file else inv.directory / "known_hosts"
        return cls(site, tuple(devices), collectors, known_hosts)
