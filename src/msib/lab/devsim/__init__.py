"""A Cisco IOS device simulator over SSH, standing in for a vendor firewall in tests and the lab.

It is **not** a Cisco device and does not forward packets: it speaks enough of the IOS CLI, over
a real SSH server (asyncssh), for netmiko's ``cisco_ios`` driver and for msib's netdev module:
password login, user EXEC ``>``, ``enable`` with an enable secret, ``terminal length/width``,
``configure terminal`` with the ``ip access-list extended`` and ``interface`` sub-modes,
``logging host``/``logging trap``, ``show running-config``/``show startup-config``/
``show ip access-lists``, ``write memory``/``copy running-config startup-config``, command
abbreviation, and the real IOS error strings (``% Invalid input detected at '^' marker.`` with its
caret line, ``% Incomplete command.``, ``% Ambiguous command:``). docs/devsim.md lists the rest.

State lives in one directory: the SSH host key (generated once, never shipped), the running and
the startup config as IOS text. The simulator boots by feeding the stored text through its own
configuration parser, as a device does with its startup-config.

Run (secrets come from the environment, never from argv)::

    MSIB_SIM_PASSWORD=... MSIB_SIM_ENABLE=... python -m msib.lab.devsim --listen 127.0.0.1 --port 0 \\
        --state /tmp/fw1 --username msib --password-env MSIB_SIM_PASSWORD --enable-env MSIB_SIM_ENABLE

It prints one line ``devsim ready HOST PORT FINGERPRINT`` on stdout once it accepts connections.

The modules: :mod:`.parser` (command trees, ACL entries), :mod:`.device` (the configuration),
:mod:`.session` (a vty session), :mod:`.server` (SSH and the command line).
"""

from __future__ import annotations

from msib.lab.devsim.device import Ace, Device, Interface, LogHost, type9_hash, type9_verify
from msib.lab.devsim.parser import CliError, CommandTree, parse_ace
from msib.lab.devsim.session import TREES, CliSession, Reply, mask_secret_line

__all__ = ["TREES", "Ace", "CliError", "CliSession", "CommandTree", "Device", "Interface", "LogHost", "Reply",
           "mask_secret_line", "parse_ace", "type9_hash", "type9_verify"]
