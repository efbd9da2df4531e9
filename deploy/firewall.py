"""pyinfra deploy of the firewall role (platform nftables), applied "commit confirmed".

Same tasks, same bytes as roles/firewall (see its README). msib refuses a ruleset that would cut
the management path before anything is sent (guard); the host arms a rollback timer, applies,
and only a NEW SSH connection from the controller confirms (disarms) it.
"""

from __future__ import annotations

from pyinfra.api.deploy import deploy
from pyinfra.operations import apt, files, systemd

from deploy._msib import commit_ruleset, config, require, role_context, role_vars
from deploy.apt_proxy import apt_proxy


@deploy("msib firewall")
def firewall() -> None:
    """Stage the circuit's ruleset and apply it transactionally (roles/firewall)."""
    ctx = role_context("firewall")
    app, circuits = ctx["msib_appliance"], ctx["msib_circuits"]
    require(app["role"] == "firewall", "msib_appliance.role is not firewall")
    require((app.get("platform") or "nftables") == "nftables", "only platform nftables is deployed here")
    require(ctx["msib_circuit"] in circuits, "msib_circuit is not one of msib_circuits")
    require(bool(circuits[ctx["msib_circuit"]]["collectors"]), "the circuit has no collector")
    require(bool(ctx["msib_controllers"]), "msib_controllers is empty: the management path cannot be kept")
    require(int(ctx["firewall_rollback_seconds"]) >= 10, "firewall_rollback_seconds must be 10 or more")
    internal = role_vars("firewall")
    helper = str(internal["__firewall_commit"])
    ruleset_path = str(ctx["firewall_ruleset_path"])

    apt_proxy()  # the package proxy and apt time-outs, before any install (role dependency)
    apt.packages(name="Install nftables", packages=internal["__firewall_packages"], update=True, cache_time=86400)
    for path in (ruleset_path.rsplit("/", 1)[0], str(ctx["firewall_state_dir"])):
        files.directory(name=f"Create the firewall's directory {path}", path=path, user="root", group="root",
                        mode="0700")
    config(name="Install the commit helper (apply, confirm, rollback)", role="firewall",
                    template="msib-nft-commit.sh.j2", dest=helper, mode="0755", validate="/bin/sh -n %s",
                    context=ctx)
    config(name="Stage the ruleset (checked by msib, validated by nft -c)", role="firewall",
                    template="ruleset.nft.j2", dest=ruleset_path, mode="0600", guard="nft_management",
                    validate="/usr/sbin/nft -c -f %s", context=ctx)
    forward = bool(ctx["firewall_syslog_forward"])
    rsyslog = None
    if forward:
        apt.packages(name="Install rsyslog (forwards the firewall's own syslog)",
                     packages=internal["__firewall_rsyslog_packages"])
        rsyslog = config(name="Write the rsyslog configuration (own syslog to the collector)", role="firewall",
                         template="rsyslog.conf.j2", dest="/etc/rsyslog.conf",
                         validate="/usr/sbin/rsyslogd -N1 -f %s", context=ctx)
    # enabled only, as the Ansible role: starting the unit would load /etc/nftables.conf outside the
    # commit-confirmed path (running=None leaves its run state alone)
    systemd.service(name="Load the confirmed ruleset at boot", service="nftables.service", running=None,
                    enabled=True)
    commit_ruleset(name="Apply with the rollback timer armed, confirm over a fresh SSH connection",
                   helper=helper, rollback_seconds=int(ctx["firewall_rollback_seconds"]))
    if rsyslog is not None:
        systemd.service(name="Restart rsyslog", service="rsyslog.service", restarted=True, _if=rsyslog.did_change)
        systemd.service(name="Keep rsyslog running and enabled (own syslog to the collector)",
                        service="rsyslog.service", running=True, enabled=True)
