"""pyinfra deploy of the collector role: rsyslog relay of one circuit to the SIEM.

Same steps, same bytes as roles/collector (see its README); the order is the role's. What is
installed (packages, directories, files, services) is roles/collector/meta/manifest.yml's.
"""

from __future__ import annotations

from pyinfra.api.deploy import deploy
from pyinfra.operations import apt, systemd

from deploy._msib import changed, directories, install, role_context, role_manifest
from deploy.apt_proxy import apt_proxy


@deploy("msib collector")
def collector() -> None:
    """Install and configure the circuit's rsyslog collector (roles/collector)."""
    ctx = role_context("collector")
    m = role_manifest("collector", ctx)  # the preflight first: nothing runs on a host that fails it

    apt_proxy()  # the package proxy and apt time-outs, before any install (role dependency)
    apt.packages(name="Install rsyslog (GnuTLS, RELP) and nftables", packages=m.package_list("base"), update=True,
                 cache_time=86400)
    directories("collector's", m, ctx)
    tls = [
        install("Install the CA certificate of the SIEM", "collector", "ca", ctx),
        install("Install the collector's certificate", "collector", "cert", ctx),
        install("Install the collector's private key", "collector", "key", ctx),
    ]
    table = install("Write the collector's own nftables table (syslog from the circuit only)", "collector", "table",
                    ctx)
    unit = install("Write the unit that loads the table at boot", "collector", "unit", ctx)
    rsyslog = install("Write the rsyslog configuration", "collector", "rsyslog", ctx)

    if unit is not None:
        systemd.daemon_reload(name="Reload systemd units", _if=changed(unit))
    for service in m.services_for(ctx, running=True):
        systemd.service(name=f"Keep {service} running and enabled", service=service, running=True, enabled=True)
    if table is not None:
        systemd.service(name="Reload the collector's nftables table", service="msib-collector-nft.service",
                        reloaded=True, _if=changed(table))
    systemd.service(name="Restart rsyslog", service="rsyslog.service", restarted=True, _if=changed(*tls, rsyslog))
