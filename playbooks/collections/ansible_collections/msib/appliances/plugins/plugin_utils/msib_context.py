"""What the msib.appliances plugins share on the controller: a role's render context, as msib builds it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleError

# An installed collection (scripts/build-collection) carries its own roles/: msib renders from
# those, not from a checkout (an execution environment has none). In the source tree there is
# none here and msib keeps its default (the repository's roles/). An explicit setting wins.
_OWN_ROLES = Path(__file__).resolve().parents[2] / "roles"
if _OWN_ROLES.is_dir():
    os.environ.setdefault("MSIB_ROLES_DIR", str(_OWN_ROLES))


def role_context(templar: Any, role: str, task_vars: dict[str, Any]) -> dict[str, Any]:
    """The render context of `role` for this host: msib.render.context over its msib_* and <role>_* vars.

    The same context the pyinfra deploys build (deploy/_msib.py), so that both engines install the
    same bytes and check the same preflight: the host's Debian release comes from its facts
    (``ansible_distribution_release``, gathered by the role apt_proxy that every role depends on).

    ``msib_*`` values are data that ``msib inventory build`` wrote from the site plan and the
    appendix: they are handed over as they are and never templated, so a ``{{ lookup('pipe', ...) }}``
    in a state body's name stays text and runs nothing (issue #14). Only the operator's ``<role>_*``
    role variables (role defaults, ``--vars`` files) are templated, as Ansible would.

    Raises:
        AnsibleError: msib is not importable (the controller runs Ansible from msib's own venv), or
            the host's release is unknown (its facts were not gathered).
    """
    try:
        from msib import render
    except ImportError as exc:
        raise AnsibleError(f"msib is not importable by this Ansible ({exc})") from None
    facts = task_vars.get("ansible_facts") or {}
    release = facts.get("distribution_release") or task_vars.get("ansible_distribution_release")
    if not release:
        raise AnsibleError(f"{task_vars.get('inventory_hostname', '?')}: the host's Debian release is unknown "
                           "(msib needs its facts: run the role apt_proxy first, or gather the distribution facts)")
    data = {k: v for k, v in task_vars.items() if k.startswith("msib_")}
    role_vars = {k: v for k, v in task_vars.items() if k.startswith(f"{role}_")}
    return render.context(role, {**data, **templar.template(role_vars)}, release=str(release))
