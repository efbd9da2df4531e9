"""pyinfra inventory written by `msib inventory build`: do not edit, build again.

A view of hosts.yml beside this file (the one model): the same hosts, groups and data, made by
msib.inventory.pyinfra_loader (msib must be importable where pyinfra runs: its venv).
Linux appliances only; vendor firewalls (group `netdev`) are driven with netmiko, not pyinfra.

    pyinfra DIR/pyinfra_inventory.py deploy/collector.py
"""

import os as _os

from msib.inventory.pyinfra_loader import load_groups as _load_groups

_HOSTS_YML = _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "hosts.yml")

for _name, _hosts in _load_groups(_HOSTS_YML).items():
    globals()[_name] = _hosts
