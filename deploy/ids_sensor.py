"""pyinfra deploy of the ids_sensor role: Suricata 7 on the SPAN port, alerts to the collector.

Same tasks, same bytes as roles/ids_sensor (see its README); the order is the role's.
"""

from __future__ import annotations

from pyinfra.api.deploy import deploy
from pyinfra.operations import apt, files, systemd

from deploy._msib import config, require, role_context, role_vars
from deploy.apt_proxy import apt_proxy


@deploy("msib ids_sensor")
def ids_sensor() -> None:
    """Install Suricata 7 from backports, its rules and config, and the alert forwarding."""
    ctx = role_context("ids_sensor")
    app, circuits = ctx["msib_appliance"], ctx["msib_circuits"]
    require(app["role"] == "ids_sensor", "msib_appliance.role is not ids_sensor")
    require(ctx["msib_circuit"] in circuits, "msib_circuit is not one of msib_circuits")
    require(isinstance(ctx["ids_sensor_capture_interface"] or app["capture_interface"], str),
            "no capture interface (msib_appliance.capture_interface or ids_sensor_capture_interface)")
    require(ctx["ids_sensor_collector_address"] is not None or bool(circuits[ctx["msib_circuit"]]["collectors"]),
            "the circuit has no collector to send alerts to (set ids_sensor_collector_address)")
    require(bool(ctx["ids_sensor_rule_files"]), "ids_sensor_rule_files is empty")
    pkgs = role_vars("ids_sensor")

    apt_proxy()  # the package proxy and apt time-outs, before any install (role dependency)
    apt.packages(name="Install Suricata 7 from bookworm-backports", packages=pkgs["__ids_sensor_packages"],
                 update=True, cache_time=86400, extra_install_args=f"-t {ctx['ids_sensor_release']}")
    apt.packages(name="Install rsyslog (forwards the alerts)", packages=pkgs["__ids_sensor_rsyslog_packages"])
    rules = [config(name=f"Install the rules msib ships: {r}", role="ids_sensor", file=f"rules/{r}",
                    dest=f"/etc/suricata/rules/{r}",
                    validate="/usr/bin/suricata -T -c /etc/suricata/suricata.yaml -S %s", context=ctx)
             for r in ctx["ids_sensor_rule_files"]]
    if ctx["ids_sensor_update_rule_file"]:
        files.file(name="Create the rule file msib update writes (empty until the first update)",
                   path=ctx["ids_sensor_update_rule_file"], present=True, touch=False,
                   user="root", group="root", mode="644")
    yaml_op = config(name="Write suricata.yaml (checked by suricata -T)", role="ids_sensor",
                     template="suricata.yaml.j2", dest="/etc/suricata/suricata.yaml",
                     validate="/usr/bin/suricata -T -c %s", context=ctx)
    rsyslog = config(name="Write the rsyslog configuration (alerts to the collector)", role="ids_sensor",
                     template="rsyslog.conf.j2", dest="/etc/rsyslog.conf",
                     validate="/usr/sbin/rsyslogd -N1 -f %s", context=ctx)

    systemd.service(name="Reload Suricata's rules", service="suricata.service", reloaded=True,
                    _if=lambda: any(op.did_change() for op in rules))
    systemd.service(name="Restart Suricata", service="suricata.service", restarted=True, _if=yaml_op.did_change)
    systemd.service(name="Restart rsyslog", service="rsyslog.service", restarted=True, _if=rsyslog.did_change)
    for unit in ("suricata.service", "rsyslog.service"):
        systemd.service(name=f"Keep {unit} running and enabled", service=unit, running=True, enabled=True)
