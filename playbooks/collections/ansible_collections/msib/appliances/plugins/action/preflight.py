"""msib.appliances.preflight: the role's preflight (msib.preflight), checked on the controller.

The rules are the role's ``meta/manifest.yml`` ``preflight``; the pyinfra deploys check the same
rules with the same code, so a host that is not usable fails with the same line on both engines.
Nothing is sent to the host.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.msib.appliances.plugins.plugin_utils.msib_context import role_context


class ActionModule(ActionBase):
    """Check the inventory of this host against the role's preflight rules."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("role",))

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        super().run(tmp, task_vars)
        role = self._task.args.get("role")
        if not role:
            raise AnsibleActionFail("msib.appliances.preflight needs role")
        try:
            from msib import preflight
            from msib.errors import MsibError
        except ImportError as exc:  # the controller runs Ansible from msib's own venv
            raise AnsibleActionFail(f"msib is not importable by this Ansible ({exc})") from None
        host = str(task_vars.get("inventory_hostname", "?"))
        try:
            message = preflight.check(str(role), role_context(self._templar, str(role), task_vars), host)
        except MsibError as exc:
            raise AnsibleActionFail(str(exc)) from None
        return {"changed": False, "msg": message}
