# The documentation of the msib.appliances.preflight action; the work is done by the action plugin
# (plugins/action/preflight.py), which calls msib.preflight on the controller.
from __future__ import annotations

DOCUMENTATION = r"""
---
module: preflight
short_description: Check the inventory of a host against its role's preflight (the same check pyinfra makes)
description:
  - Builds the role's context as msib does (the role's defaults overlaid with the host's msib_* and
    <role>_* variables) and checks the preflight rules of C(roles/<role>/meta/manifest.yml) with
    msib.preflight. The first rule that fails fails the host with one line naming it; nothing is
    sent to the host.
options:
  role:
    description: The role whose preflight this is.
    type: str
    required: true
author: [msib project (@msib)]
"""

EXAMPLES = r"""
- name: Preflight | check the inventory before changing anything
  msib.appliances.preflight:
    role: collector
"""

RETURN = r"""
msg:
  description: "The success line, e.g. C(col-int-1: collector of circuit internal)."
  type: str
  returned: success
"""
