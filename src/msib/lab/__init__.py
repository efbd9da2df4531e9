"""The lab wing: a local stand-in for a site (hosts, SIEM, vendor device, load, CA), never used by the product.

- :mod:`msib.lab.core`: :class:`Lab`, one lab on this machine (up, reset, down, status, check);
  :mod:`msib.lab.plan` its plan and topology, :mod:`msib.lab.hosts` its hosts,
  :mod:`msib.lab.network` its network, :mod:`msib.lab.system` the commands it runs;
- :mod:`msib.lab.mirror`: the lab's package proxy (nginx in front of Debian's mirrors);
- :mod:`msib.lab.pki`: the lab CA and its certificates;
- :mod:`msib.lab.siem`: the lab SIEM (receiver and a stand-in for the Wazuh server API);
- :mod:`msib.lab.devsim`: the Cisco IOS device simulator;
- :mod:`msib.lab.loadgen` and :mod:`msib.lab.delivery`: numbered load and what arrived of it.

The lab may import the product; the product never imports the lab. The names below are loaded on
first use, so that the lab's stand-alone programs (``python -m msib.lab.siem.api`` on the SIEM host,
with the standard library only; ``python -m msib.lab.devsim``; ``python -m msib.lab.loadgen``) load
only what they need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from msib.lab.core import Lab
    from msib.lab.plan import LAB_RANGE, LabHost, LabSpec, Topology, build_topology, write_synthetic_lab

__all__ = ["LAB_RANGE", "Lab", "LabHost", "LabSpec", "Topology", "build_topology", "write_synthetic_lab"]

_HOME = {
    "Lab": "msib.lab.core",
    "LAB_RANGE": "msib.lab.plan",
    "LabHost": "msib.lab.plan",
    "LabSpec": "msib.lab.plan",
    "Topology": "msib.lab.plan",
    "build_topology": "msib.lab.plan",
    "write_synthetic_lab": "msib.lab.plan",
}


def __getattr__(name: str) -> Any:
    """`from msib.lab import Lab` and the other public names, imported when first asked for."""
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'msib.lab' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
