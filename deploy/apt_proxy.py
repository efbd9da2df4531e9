"""pyinfra deploy of the apt_proxy role: apt's package proxy and bounded time-outs.

Same task, same bytes as roles/apt_proxy; the collector, ids_sensor and firewall deploys call it
first, as their Ansible roles depend on it.
"""

from __future__ import annotations

from pyinfra.api.deploy import deploy

from deploy._msib import config, role_context


@deploy("msib apt_proxy")
def apt_proxy() -> None:
    """Write /etc/apt/apt.conf.d/01msib-proxy (roles/apt_proxy)."""
    config(name="Configure apt's proxy and time-outs", role="apt_proxy", template="apt.conf.j2",
           dest="/etc/apt/apt.conf.d/01msib-proxy", mode="0644", context=role_context("apt_proxy"))
