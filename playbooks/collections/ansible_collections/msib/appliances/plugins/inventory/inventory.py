"""msib.appliances.inventory: an msib inventory directory as an Ansible inventory source (AWX, AAP, runner).

The directory is checked by msib's one reader (msib.contract) first, so a broken or hostile one
fails with msib's error (file, place, fix); its hosts.yml is then read by Ansible's own YAML
inventory plugin, exactly as ``msib deploy --engine ansible`` reads it. With ``site`` and
``appendix`` the directory is first built by msib (``msib inventory build``).
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: inventory
author: [msib project (@msib)]
short_description: Read (or build) an msib inventory directory
description:
  - Reads an msib inventory directory (C(hosts.yml), C(site.json)) written by C(msib inventory build)
    or C(msib lab up), after checking it with msib's own reader (C(msib.contract)).
  - With O(site) and O(appendix), builds the directory first from the site plan and the appendix,
    as C(msib inventory build) does.
  - Sets C(appliances_inventory_dir) on group C(all) so that playbooks can hand the directory to msib's
    commands (update, contain).
  - The configuration file's name must end in C(msib.yml) or C(msib.yaml).
  - Relative paths are taken from the configuration file's directory.
  - Needs the C(msib) Python package on the controller (the execution environment has it).
options:
  plugin:
    description: The name of this plugin.
    required: true
    type: str
    choices: [msib.appliances.inventory]
  directory:
    description: The msib inventory directory (read, or written when O(site) is given).
    required: true
    type: path
  site:
    description: The SB's site plan (C(site.yml)); with O(appendix), the directory is built first.
    type: path
  appendix:
    description: The appendix files (.xlsx, .xls, .ods, .csv), in order.
    type: list
    elements: path
    default: []
  ssh_config:
    description: ssh_config every connection uses (when building).
    type: path
  known_hosts:
    description: known_hosts of the site (when building); host keys are always checked.
    type: path
  ssh_key:
    description: Private key to log in with (when building).
    type: path
  ssh_user:
    description: Login user (when building; default the site plan's).
    type: str
"""

EXAMPLES = r"""
# inventory/msib.yml of an AWX inventory source (sourced from the project)
plugin: msib.appliances.inventory
directory: inventories/mcri

# build from the site plan and the appendix at sync time
plugin: msib.appliances.inventory
directory: /runner/msib-inventory
site: sites/mcri/site.yml
appendix: [sites/mcri/appendix.xlsx]
known_hosts: sites/mcri/known_hosts
"""

import os  # noqa: E402 (ansible-test: documentation before imports)
from typing import Any  # noqa: E402 (ansible-test: documentation before imports)

from ansible.errors import AnsibleParserError  # noqa: E402 (ansible-test: documentation before imports)
from ansible.plugins.inventory import BaseInventoryPlugin  # noqa: E402 (ansible-test: documentation before imports)
from ansible.plugins.loader import inventory_loader  # noqa: E402 (ansible-test: documentation before imports)

_SUFFIXES = ("msib.yml", "msib.yaml")


class InventoryModule(BaseInventoryPlugin):
    """Hosts, groups and variables of an msib inventory directory."""

    NAME = "msib.appliances.inventory"

    def verify_file(self, path: str) -> bool:
        return bool(super().verify_file(path)) and path.endswith(_SUFFIXES)

    def parse(self, inventory: Any, loader: Any, path: str, cache: bool = True) -> None:
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        base = os.path.dirname(os.path.abspath(path))

        def where(value: Any) -> str | None:
            return None if value in (None, "") else os.path.join(base, os.path.expanduser(str(value)))

        directory = where(self.get_option("directory"))
        try:
            from msib import contract
            from msib.errors import MsibError
        except ImportError as exc:  # the execution environment installs msib beside ansible-core
            raise AnsibleParserError(f"{path}: msib is not importable by this Ansible ({exc})") from None
        try:
            if self.get_option("site"):
                self._build(str(directory), where(self.get_option("site")) or "",
                            [where(a) or "" for a in self.get_option("appendix")], where)
            contract.load(str(directory))
        except MsibError as exc:
            raise AnsibleParserError(f"{path}: {exc}") from None
        yaml_plugin = inventory_loader.get("ansible.builtin.yaml")
        yaml_plugin.parse(inventory, loader, os.path.join(str(directory), "hosts.yml"), cache=False)
        inventory.set_variable("all", "appliances_inventory_dir", str(directory))

    def _build(self, directory: str, site: str, appendix: list[str], where: Any) -> None:
        """Write the directory from the site plan and the appendix (``msib inventory build``)."""
        from pathlib import Path

        from msib.inventory import SshSettings, build_inventory

        def opt(name: str) -> Path | None:
            value = where(self.get_option(name))
            return Path(value) if value else None

        ssh = SshSettings(ssh_config=opt("ssh_config"), known_hosts=opt("known_hosts"),
                          identity_file=opt("ssh_key"), user=self.get_option("ssh_user"))
        build_inventory(Path(site), [Path(a) for a in appendix], Path(directory), ssh=ssh)
