"""pyinfra deploy of the ids_sensor role: Suricata (7, or 8 on Debian 13) on the SPAN port, alerts to the collector.

Same steps, same bytes as roles/ids_sensor (see its README); the order is the role's. What is
installed (packages, files, services) is roles/ids_sensor/meta/manifest.yml's.
"""

from __future__ import annotations

from pyinfra.api.deploy import deploy
from pyinfra.operations import apt, files, systemd

from deploy._msib import changed, install, role_context, role_manifest, suricata_major
from deploy.apt_proxy import apt_proxy


@deploy("msib ids_sensor")
def ids_sensor() -> None:
    """Install Suricata from the release's suite, its rules and config, and the alert forwarding."""
    ctx = role_context("ids_sensor")
    m = role_manifest("ids_sensor", ctx)  # the preflight first: nothing runs on a host that fails it

    apt_proxy()  # the package proxy and apt time-outs, before any install (role dependency)
    suite = m.package_release("suricata", ctx)  # vars/<release>.yml by the host's facts
    apt.packages(name="Install Suricata from the suite of the host's Debian release",
                 packages=m.package_list("suricata"), update=True, cache_time=86400,
                 extra_install_args=f"-t {suite}" if suite else None)
    suricata_major(name="Check that the installed Suricata is the major asked for",
                   major=int(ctx["ids_sensor_suricata_major"]))
    apt.packages(name="Install rsyslog (forwards the alerts)", packages=m.package_list("rsyslog"))
    rules = [install(f"Install the rules msib ships: {r}", "ids_sensor", "rules", ctx, item=r)
             for r in ctx["ids_sensor_rule_files"]]
    for p in m.placeholders_for(ctx):
        files.file(name="Create the rule file msib update writes (empty until the first update)",
                   path=p.path, present=True, touch=False, user="root", group="root", mode=p.mode.lstrip("0"))
    yaml_op = install("Write suricata.yaml (checked by suricata -T)", "ids_sensor", "suricata", ctx)
    rsyslog = install("Write the rsyslog configuration (alerts to the collector)", "ids_sensor", "rsyslog", ctx)

    systemd.service(name="Reload Suricata's rules", service="suricata.service", reloaded=True,
                    _if=changed(*rules))
    systemd.service(name="Restart Suricata", service="suricata.service", restarted=True, _if=changed(yaml_op))
    systemd.service(name="Restart rsyslog", service="rsyslog.service", restarted=True, _if=changed(rsyslog))
    for unit in m.services_for(ctx, running=True):
        systemd.service(name=f"Keep {unit} running and enabled", service=unit, running=True, enabled=True)
