"""pyinfra deploy of the firewall role (platform nftables), applied "commit confirmed".

Same steps, same bytes as roles/firewall (see its README); what is installed is
roles/firewall/meta/manifest.yml's. msib refuses a ruleset that would cut the management path
before anything is sent (guard); the host arms a rollback timer, applies, and only a NEW SSH
connection from the controller confirms (disarms) it.
"""

from __future__ import annotations

from pyinfra.api.deploy import deploy
from pyinfra.operations import apt, systemd

from deploy._msib import changed, commit_ruleset, directories, install, role_context, role_manifest
from deploy.apt_proxy import apt_proxy


@deploy("msib firewall")
def firewall() -> None:
    """Stage the circuit's ruleset and apply it transactionally (roles/firewall)."""
    ctx = role_context("firewall")
    m = role_manifest("firewall", ctx)  # the preflight first: nothing runs on a host that fails it
    helper = m.install_file("commit_helper", ctx)
    assert helper is not None

    apt_proxy()  # the package proxy and apt time-outs, before any install (role dependency)
    apt.packages(name="Install nftables", packages=m.package_list("base"), update=True, cache_time=86400)
    directories("firewall's", m, ctx)
    install("Install the commit helper (apply, confirm, rollback)", "firewall", "commit_helper", ctx)
    install("Stage the ruleset (checked by msib, validated by nft -c)", "firewall", "ruleset", ctx)
    rsyslog = None
    if ctx["firewall_syslog_forward"]:
        apt.packages(name="Install rsyslog (forwards the firewall's own syslog)",
                     packages=m.package_list("syslog_forward"))
        rsyslog = install("Write the rsyslog configuration (own syslog to the collector)", "firewall", "rsyslog",
                          ctx)
    # enabled only, as the Ansible role: starting the unit would load /etc/nftables.conf outside the
    # commit-confirmed path (running=None leaves its run state alone)
    for unit in m.services_for(ctx, running=False):
        systemd.service(name="Load the confirmed ruleset at boot", service=unit, running=None, enabled=True)
    commit_ruleset(name="Apply with the rollback timer armed, confirm over a fresh SSH connection",
                   helper=helper.dest, rollback_seconds=int(ctx["firewall_rollback_seconds"]))
    if rsyslog is not None:
        systemd.service(name="Restart rsyslog", service="rsyslog.service", restarted=True, _if=changed(rsyslog))
    for unit in m.services_for(ctx, running=True):
        systemd.service(name=f"Keep {unit} running and enabled (own syslog to the collector)", service=unit,
                        running=True, enabled=True)
