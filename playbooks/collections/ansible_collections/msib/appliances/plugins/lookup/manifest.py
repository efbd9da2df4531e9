"""msib.appliances.manifest: what a role installs, from its meta/manifest.yml (msib.manifest).

Packages, directories, placeholder files, services and file destinations, with the role's
variables filled in for the current host, so that Ansible and pyinfra read the same data.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase
from ansible_collections.msib.appliances.plugins.plugin_utils.msib_context import role_context

DOCUMENTATION = r"""
name: manifest
author: [msib project (@msib)]
short_description: Read a role's meta/manifest.yml (what it installs) through msib.manifest
description:
  - Returns packages, directories, placeholder files, services or a managed file's destination of
    C(roles/<role>/meta/manifest.yml), with the role's variables of the current host filled in.
options:
  _terms:
    description:
      - The role, then what to read, then (for some) a name.
      - C(packages GROUP) a list of package names; C(directories) and C(placeholders) a list of
        C({path, mode}); C(services [running|boot]) a list of units (all, those kept running, those
        enabled at boot only); C(dest FILE) the destination of a managed file; C(release GROUP)
        apt's target release of a package group on this host (none when apt chooses).
    required: true
"""

EXAMPLES = r"""
- name: Install nftables
  ansible.builtin.apt:
    name: "{{ query('msib.appliances.manifest', 'firewall', 'packages', 'base') }}"
"""

RETURN = r"""
_list:
  description: The values asked for.
  type: list
"""


class LookupModule(LookupBase):
    """Read a role's manifest."""

    def run(self, terms: list[Any], variables: dict[str, Any] | None = None, **kwargs: Any) -> list[Any]:
        if len(terms) < 2:
            raise AnsibleError("msib.appliances.manifest needs a role and what to read")
        role, what, *rest = (str(t) for t in terms)
        name = rest[0] if rest else None
        try:
            from msib import manifest
            from msib.errors import MsibError
        except ImportError as exc:
            raise AnsibleError(f"msib is not importable by this Ansible ({exc})") from None
        try:
            m = manifest.load(role)
            if what == "packages" and name:
                return m.package_list(name)
            ctx = role_context(self._templar, role, variables or {})
            if what in ("directories", "placeholders"):
                paths = m.directories_for(ctx) if what == "directories" else m.placeholders_for(ctx)
                return [{"path": p.path, "mode": p.mode} for p in paths]
            if what == "services":
                running = {"running": True, "boot": False, None: None}.get(name)
                return m.services_for(ctx, running=running)
            if what == "release" and name:
                value = m.package_release(name, ctx)
                return [value] if value else []
            if what == "dest" and name:
                spec = m.install_file(name, ctx)
                return [spec.dest] if spec else []
        except MsibError as exc:
            raise AnsibleError(str(exc)) from None
        raise AnsibleError(f"msib.appliances.manifest: cannot read {what!r}"
                           " (packages GROUP, directories, placeholders, services [running|boot], dest FILE,"
                           " release GROUP)")
