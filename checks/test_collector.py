"""Checks of the circuit collectors (role collector: rsyslog relaying to the SIEM)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from _common import Evidence, no_drift, packages_at_expected_version, service_running

from msib import render
from msib.checks import check, rsyslog_action, rsyslog_action_queue, rsyslog_global


def _packages(ctx: dict[str, Any]) -> list[str]:
    pkgs = ["rsyslog", "rsyslog-gnutls", "nftables"]
    if ctx["msib_siem"]["syslog"]["transport"] == "relp+tls":
        pkgs.insert(2, "rsyslog-relp")
    return pkgs


def _tls_client(ctx: dict[str, Any]) -> bool:
    return bool((ctx["collector_cert_file"] and ctx["collector_key_file"]) or ctx["collector_cert_dir"])


@check("MSIB-COL-001")
def test_packages(host: Any, ctx: dict[str, Any], evidence: Evidence) -> None:
    packages_at_expected_version(host, ctx, _packages(ctx), evidence)


@check("MSIB-COL-002")
def test_rsyslog_running_and_listening(host: Any, ctx: dict[str, Any], evidence: Evidence) -> None:
    problems = service_running(host, "rsyslog", evidence)
    wanted = []
    if ctx["collector_udp_port"] is not None:
        wanted.append(("udp", ctx["collector_udp_port"]))
    if ctx["collector_tcp_port"] is not None:
        wanted.append(("tcp", ctx["collector_tcp_port"]))
    if ctx["collector_relp_port"] is not None:
        wanted.append(("tcp", ctx["collector_relp_port"]))
    if _tls_client(ctx):
        wanted.append(("tcp", ctx["collector_tls_port"]))
    listening = host.run("ss -Hlntup").stdout
    for proto, port in wanted:
        lines = [ln for ln in listening.splitlines() if ln.startswith(proto) and f":{port} " in ln]
        rsyslog = [ln for ln in lines if "rsyslogd" in ln]
        state = f"rsyslogd listening ({len(rsyslog)} socket(s))" if rsyslog else "not listening"
        evidence(f"{proto}/{port}: {state}")
        if not rsyslog:
            problems.append(f"rsyslogd is not listening on {proto}/{port}")
    assert not problems, "; ".join(problems)


@check("MSIB-COL-003")
def test_no_drift(host: Any, ctx: dict[str, Any], evidence: Evidence) -> None:
    no_drift(host, "collector", ctx, evidence)


def _siem_action(host: Any, evidence: Evidence) -> tuple[str, dict[str, str]]:
    """The live /etc/rsyslog.conf (read once) and its SIEM action's parameters."""
    valid = host.run("/usr/sbin/rsyslogd -N1 -f /etc/rsyslog.conf")
    evidence(f"rsyslogd -N1: exit {valid.rc}")
    assert valid.rc == 0, f"the live rsyslog configuration does not parse: {valid.stderr.strip()[-300:]}"
    conf = host.file("/etc/rsyslog.conf").content_string
    action = rsyslog_action(conf, "msib_siem")
    assert action is not None, "no action named msib_siem (the relay to the SIEM) in /etc/rsyslog.conf"
    return conf, action


@check("MSIB-COL-004")
def test_tls_to_siem_verified(host: Any, ctx: dict[str, Any], evidence: Evidence) -> None:
    syslog = ctx["msib_siem"]["syslog"]
    peer = syslog.get("peer_name") or syslog["host"]
    conf, a = _siem_action(host, evidence)
    shown = {k: a.get(k) for k in ("type", "target", "port", "streamdriver", "streamdrivermode",
                                   "streamdriverauthmode", "streamdriverpermittedpeers", "streamdriver.cafile", "tls",
                                   "tls.authmode", "tls.permittedpeer", "tls.cacert")}
    evidence("action msib_siem: " + ", ".join(f"{k}={v}" for k, v in shown.items() if v is not None))
    assert a.get("target") == str(syslog["host"]) and a.get("port") == str(syslog["port"]), \
        f"relays to {a.get('target')}:{a.get('port')}, not the SIEM {syslog['host']}:{syslog['port']}"
    if a.get("type") == "omrelp":
        assert a.get("tls") == "on", "RELP without TLS"
        assert a.get("tls.authmode") == "name", f"RELP TLS authMode is {a.get('tls.authmode')}, not name"
        assert peer in (a.get("tls.permittedpeer") or "").split(","), f"peer {peer} is not the permitted peer"
        ca, where = a.get("tls.cacert"), "tls.caCert of the action"
    else:
        assert a.get("type") == "omfwd", f"unexpected action type {a.get('type')}"
        assert a.get("streamdriver") == "gtls" and a.get("streamdrivermode") == "1", "omfwd is not using TLS"
        assert a.get("streamdriverauthmode") == "x509/name", \
            f"the SIEM's certificate and name are not verified (authMode {a.get('streamdriverauthmode')})"
        assert peer in (a.get("streamdriverpermittedpeers") or "").split(","), \
            f"peer name {peer} is not the permitted peer"
        ca, where = a.get("streamdriver.cafile"), "StreamDriver.CAFile of the action"
        if not ca:
            ca, where = rsyslog_global(conf).get("defaultnetstreamdrivercafile"), "global defaultNetstreamDriverCAFile"
    assert ca, ("no CA file is configured for the SIEM's certificate (neither the action's CA parameter nor "
                "the global defaultNetstreamDriverCAFile): the certificate cannot be verified")
    ca_file = host.file(ca)
    evidence(f"CA file ({where}): {ca}, {'present' if ca_file.exists else 'MISSING'}")
    assert ca_file.exists and ca_file.size > 0, f"the CA file {ca} ({where}) is missing or empty"
    site = ctx.get("collector_ca_file")
    try:
        wanted = render.sha256(Path(str(site)).read_bytes())
    except OSError:
        evidence(f"the site's CA ({site}) is not readable here: not compared")
        return
    got = host.run(f"sha256sum '{ca}'").stdout.split()[0]
    evidence(f"{ca}: sha256 {got[:16]}…; the site's CA {site}: sha256 {wanted[:16]}…")
    assert got == wanted, (f"a CA is configured ({ca}, {where}) but it is not the site's CA ({site}): the SIEM is "
                           "verified against another authority")


@check("MSIB-COL-005")
def test_disk_queue(host: Any, ctx: dict[str, Any], evidence: Evidence) -> None:
    conf, a = _siem_action(host, evidence)
    # the SIEM action's own queue, or (Direct) the queue of the ruleset it runs in
    where, q = rsyslog_action_queue(conf, "msib_siem") or ("", {})
    keys = ("queue.type", "queue.filename", "queue.size", "queue.maxdiskspace", "queue.saveonshutdown",
            "queue.timeoutenqueue")
    evidence(f"queue of the action msib_siem ({where}): " + ", ".join(f"{k}={q.get(k)}" for k in keys)
             + f"; action.resumeretrycount={a.get('action.resumeretrycount')}")
    assert q.get("queue.type") in ("LinkedList", "FixedArray"), f"queue.type is {q.get('queue.type')} ({where})"
    assert q.get("queue.filename"), f"no queue.filename ({where}): the queue never spills to disk"
    assert q.get("queue.maxdiskspace"), f"no queue.maxDiskSpace ({where}): disk use is unbounded"
    assert q.get("queue.saveonshutdown") == "on", f"the queue ({where}) is not saved on shutdown"
    assert int(q.get("queue.size") or 1000) >= 10000, \
        f"queue.size {q.get('queue.size') or '1000 (default)'} ({where}) blocks the inputs during an outage"
    assert a.get("action.resumeretrycount") == "-1", "retries to the SIEM are not endless"
    workdir = host.file(ctx["collector_work_dir"])
    evidence(f"workDirectory {ctx['collector_work_dir']}: {'directory' if workdir.is_directory else 'MISSING'}")
    assert workdir.is_directory, f"the queue's work directory {ctx['collector_work_dir']} is missing"


@check("MSIB-COL-006")
def test_senders_limited_to_circuit(host: Any, ctx: dict[str, Any], evidence: Evidence) -> None:
    if not ctx["collector_manage_firewall"]:
        evidence("collector_manage_firewall is false: rsyslog's AllowedSender alone limits the senders")
        conf = host.file("/etc/rsyslog.conf").content_string
        assert "$AllowedSender" in conf, "no AllowedSender in /etc/rsyslog.conf"
        return
    problems = service_running(host, "msib-collector-nft", evidence)
    table = host.run("nft list table inet msib_collector")
    evidence("nft list table inet msib_collector:\n" + (table.stdout.strip() or table.stderr.strip()))
    assert table.rc == 0, "the table inet msib_collector is not loaded"
    for net in ctx["msib_circuits"][ctx["msib_circuit"]]["networks"]:
        if net not in table.stdout:
            problems.append(f"circuit network {net} is not among the allowed senders")
    if "drop" not in table.stdout:
        problems.append("no drop rule for syslog from outside the circuit")
    assert not problems, "; ".join(problems)
