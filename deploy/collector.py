"""pyinfra deploy of the collector role: rsyslog relay of one circuit to the SIEM.

Same tasks, same bytes as roles/collector (see its README); the order is the role's.
"""

from __future__ import annotations

from pyinfra.api.deploy import deploy
from pyinfra.operations import apt, files, systemd

from deploy._msib import config, require, role_context, role_vars
from deploy.apt_proxy import apt_proxy


def _preflight(ctx: dict[str, object]) -> None:
    app = ctx["msib_appliance"]
    circuits = ctx["msib_circuits"]
    siem = ctx["msib_siem"]
    assert isinstance(app, dict) and isinstance(circuits, dict) and isinstance(siem, dict)
    require(app.get("role") == "collector", "msib_appliance.role is not collector")
    require(ctx["msib_circuit"] in circuits, "msib_circuit is not one of msib_circuits")
    require(siem["syslog"]["transport"] in ("tls", "relp+tls"), "msib_siem.syslog.transport must be tls or relp+tls")
    require(isinstance(ctx["collector_ca_file"], str), "collector_ca_file (the SIEM's CA on the controller) is not set")
    require((ctx["collector_cert_file"] is None) == (ctx["collector_key_file"] is None),
            "give both or neither of collector_cert_file / collector_key_file")


@deploy("msib collector")
def collector() -> None:
    """Install and configure the circuit's rsyslog collector (roles/collector)."""
    ctx = role_context("collector")
    _preflight(ctx)
    name = str(ctx["msib_appliance"]["name"])
    cert_dir = ctx["collector_cert_dir"]
    cert = ctx["collector_cert_file"] or (f"{cert_dir}/{name}.pem" if cert_dir else None)
    key = ctx["collector_key_file"] or (f"{cert_dir}/{name}.key" if cert_dir else None)
    firewall = bool(ctx["collector_manage_firewall"])

    apt_proxy()  # the package proxy and apt time-outs, before any install (role dependency)
    apt.packages(name="Install rsyslog (GnuTLS, RELP) and nftables",
                 packages=role_vars("collector")["__collector_packages"], update=True, cache_time=86400)
    for path, mode in (("/etc/msib", "0755"), ("/etc/msib/tls", "0700"),
                       (str(ctx["collector_spool_dir"]), "0750"), (str(ctx["collector_work_dir"]), "0700")):
        files.directory(name=f"Create the collector's directory {path}", path=path, user="root", group="root",
                        mode=mode)
    changed = [config(name="Install the CA certificate of the SIEM", role="collector",
                      src=str(ctx["collector_ca_file"]), dest="/etc/msib/tls/ca.pem", context=ctx)]
    if cert and key:
        changed.append(config(name="Install the collector's certificate", role="collector", src=str(cert),
                              dest="/etc/msib/tls/collector.pem", context=ctx))
        changed.append(config(name="Install the collector's private key", role="collector", src=str(key),
                              dest="/etc/msib/tls/collector.key", mode="0600", context=ctx))
    table = unit = None
    if firewall:
        table = config(name="Write the collector's own nftables table (syslog from the circuit only)",
                       role="collector", template="collector.nft.j2", dest="/etc/msib/collector.nft", mode="0600",
                       validate="/usr/sbin/nft -c -f %s", context=ctx)
        unit = config(name="Write the unit that loads the table at boot", role="collector",
                      template="msib-collector-nft.service.j2",
                      dest="/etc/systemd/system/msib-collector-nft.service", context=ctx)
    changed.append(config(name="Write the rsyslog configuration", role="collector", template="rsyslog.conf.j2",
                          dest="/etc/rsyslog.conf", validate="/usr/sbin/rsyslogd -N1 -f %s", context=ctx))

    if firewall and table is not None and unit is not None:
        systemd.daemon_reload(name="Reload systemd units", _if=unit.did_change)
        systemd.service(name="Load the collector's nftables table now and at boot",
                        service="msib-collector-nft.service", running=True, enabled=True)
        systemd.service(name="Reload the collector's nftables table", service="msib-collector-nft.service",
                        reloaded=True, _if=table.did_change)
    systemd.service(name="Restart rsyslog", service="rsyslog.service", restarted=True,
                    _if=lambda: any(op.did_change() for op in changed))
    systemd.service(name="Keep rsyslog running and enabled", service="rsyslog.service", running=True, enabled=True)
