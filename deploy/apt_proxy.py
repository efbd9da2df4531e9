"""pyinfra deploy of the apt_proxy role: apt's package proxy and bounded time-outs.

Same task, same bytes as roles/apt_proxy (its file is meta/manifest.yml's); the collector,
ids_sensor and firewall deploys call it first, as their Ansible roles depend on it.
"""

from __future__ import annotations

from pyinfra.api.deploy import deploy

from deploy._msib import install, role_context


@deploy("msib apt_proxy")
def apt_proxy() -> None:
    """Write /etc/apt/apt.conf.d/01msib-proxy (roles/apt_proxy)."""
    install("Configure apt's proxy and time-outs", "apt_proxy", "proxy", role_context("apt_proxy"))
