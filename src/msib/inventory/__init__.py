"""Appendix + site plan -> the inventory directory every engine, `siem sync` and `check` reads."""

# One model (model.inventory_model) and its views (views.py), written together and atomically
# (writers.write_atomically) by build.build_inventory:
#
#   hosts.yml               Ansible YAML inventory: the site plan's appliances, groups per role,
#                           circuit and SB, and the vars the roles need (docs/inventory-contract.md)
#   pyinfra_inventory.py    a stub: msib.contract (the one reader) gives pyinfra its groups (a view)
#   objects.json            every accepted object of the appendix
#   report.json/.md         counts, every rejected row with where to fix it, end-of-life OSes
#   site.json               the site plan as validated, without its `excluded` entries
#
# The directory is replaced as a whole: a complete new set appears, or the old one stays. The same
# inputs give byte-identical files; the only date in them is `as_of`. diff.py compares two of them.

from msib.inventory.build import BuildResult, RowsRejected, build_inventory
from msib.inventory.model import INVENTORY_FILES, SshSettings, inventory_model, ssh_common_args
from msib.inventory.views import (
    PYINFRA_INVENTORY,
    iter_inventory_files,
    iter_objects_json,
    render_hosts_yml,
    render_objects_json,
    render_report_md,
    render_site_json,
    report_data,
)
from msib.inventory.writers import check_out_dir, write_atomically

__all__ = [
    "INVENTORY_FILES",
    "PYINFRA_INVENTORY",
    "BuildResult",
    "RowsRejected",
    "SshSettings",
    "build_inventory",
    "check_out_dir",
    "inventory_model",
    "iter_inventory_files",
    "iter_objects_json",
    "render_hosts_yml",
    "render_objects_json",
    "render_report_md",
    "render_site_json",
    "report_data",
    "ssh_common_args",
    "write_atomically",
]
