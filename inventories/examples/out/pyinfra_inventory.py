"""pyinfra inventory written by `msib inventory build`: do not edit, build again.

A view of this directory (the one model): the same hosts, groups and data as hosts.yml, read by
msib.contract, msib's one reader of an inventory (msib must be importable where pyinfra runs).
Linux appliances only; vendor firewalls (group `netdev`) are driven with netmiko, not pyinfra.

    pyinfra DIR/pyinfra_inventory.py deploy/collector.py
"""

import os as _os

from msib.contract import load as _load

for _name, _hosts in _load(_os.path.dirname(_os.path.abspath(__file__))).pyinfra_groups().items():
    globals()[_name] = _hosts
