# The documentation of the msib.appliances.config action; the work is done by the action plugin
# (plugins/action/config.py), which hands the rendered bytes to ansible.builtin.copy.
from __future__ import annotations

DOCUMENTATION = r"""
---
module: config
short_description: Install a file rendered by msib (the same bytes pyinfra installs)
description:
  - Renders C(roles/<role>/templates/<template>) with msib's one Jinja2 environment and the context
    msib builds (the role's defaults overlaid with the host's msib_* and <role>_* variables), or takes
    a role file or a controller file as it is, then installs it with ansible.builtin.copy
    (validated on the host before an atomic move).
options:
  role:
    description: The role whose template or file this is.
    type: str
    required: true
  managed:
    description:
      - The ID of a file of C(roles/<role>/meta/manifest.yml); its dest, source, mode, validate and guard
        come from there, and the task is skipped when the manifest does not install it on this host.
    type: str
  item:
    description: The item of a manifest file installed once per item of a list (its C(loop)).
    type: raw
  template:
    description: Template name under the role's templates/ (one of template, file, src).
    type: str
  file:
    description: File name under the role's files/ (one of template, file, src).
    type: str
  src:
    description: A file on the controller, copied as it is (certificates, keys).
    type: path
  dest:
    description: Where the file goes on the host (required unless managed is given).
    type: path
  mode:
    description: File mode.
    type: str
    default: "0644"
  owner:
    description: File owner.
    type: str
    default: root
  group:
    description: File group.
    type: str
    default: root
  validate:
    description: Command that checks the file before it goes live; C(%s) is the temp file.
    type: str
  guard:
    description: A controller-side check of the rendered text before anything is sent.
    type: str
    choices: [nft_management]
author: [msib project (@msib)]
"""

EXAMPLES = r"""
- name: Write the rsyslog configuration (roles/collector/meta/manifest.yml files.rsyslog)
  msib.appliances.config:
    role: collector
    managed: rsyslog

- name: Write a file given here
  msib.appliances.config:
    role: collector
    template: rsyslog.conf.j2
    dest: /etc/rsyslog.conf
    validate: /usr/sbin/rsyslogd -N1 -f %s
"""

RETURN = r"""
sha256:
  description: SHA-256 of the bytes installed.
  type: str
  returned: always
"""
