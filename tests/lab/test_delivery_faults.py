"""Nothing is lost: numbered load object -> collector -> SIEM through real faults (reliability.md).

Every test runs on the external circuit (obj-ext-1 -> col-ext-1 198.18.32.10 -> fw-ext-1 -> the lab
SIEM 198.19.0.10), counts what arrived one sequence number at a time, asserts sent == received and
missing == 0 exactly, and writes its numbers (duplicates, drain time, sender stalls) to
reports/delivery-faults.jsonl for docs/delivery.md. Whatever a test breaks it restores in `finally`.

Every test but the one named "plain TLS" runs the shipped defaults: the collector relays to the SIEM over
RELP/TLS (the site plan's default transport) through the role's queue.

Why RELP from the object for the restart test: over plain TCP an object cannot know what its collector had read
when the collector went away (what sits in the kernel buffers of a closed connection is gone, and
the sender is never told), so "nothing lost" cannot be proven, nor achieved, from the object's
side. RELP acknowledges every message once the collector has taken it and the sender sends again
what was not acknowledged; the price is duplicates, which are counted.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, ssh
from msib import render
from msib.engines.deploy import run_deploy
from msib.lab import Lab
from msib.lab.delivery import count_at_siem, load_result, send_load, wait_for_count

pytestmark = pytest.mark.lab

COLLECTOR = "col-ext-1"
COLLECTOR_LAN = "198.18.32.10"
OBJECT = "obj-ext-1"
FIREWALL = "fw-ext-1"
RATE = 10_000
OUTAGE_S = 60
RESULTS = REPO / "reports" / "delivery-faults.jsonl"
STALL_BOUND_S = 1.0  # "never blocked": generous, not a benchmark


def _record(name: str, **numbers: Any) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as fh:
        fh.write(json.dumps({"test": name, "at": time.strftime("%Y-%m-%dT%H:%M:%S"), **numbers}) + "\n")


def _tag(kind: str) -> str:
    return f"{kind}{uuid.uuid4().hex[:10]}"


def _siem_netns(lab: Lab) -> str:
    return str(lab.host(lab.spec.siem.name).netns(lab.spec.name))


DROP_TABLE = "msib_delivery_fault"


def _drop_collector_at_siem(lab: Lab, on: bool) -> None:
    """An nft drop (not a reject) in the SIEM host's input for this collector's traffic only."""
    ns = _siem_netns(lab)
    subprocess.run(["ip", "netns", "exec", ns, "nft", "delete", "table", "inet", DROP_TABLE],
                   capture_output=True, check=False)
    if on:
        rules = (f"table inet {DROP_TABLE} {{\n chain input {{\n  type filter hook input priority -50; policy accept;\n"
                 f"  ip saddr {COLLECTOR_LAN} tcp dport {{ 6514, 2514 }} counter drop\n }}\n}}\n")
        subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=rules, text=True, check=True)


def _drops(lab: Lab) -> int:
    out = subprocess.run(["ip", "netns", "exec", _siem_netns(lab), "nft", "list", "table", "inet", DROP_TABLE],
                         capture_output=True, text=True, check=False).stdout
    m = re.search(r"packets (\d+)", out)
    return int(m.group(1)) if m else 0


def _spilled(lab: Lab) -> int:
    """Bytes of the forwarding queue's disk files on the collector right now."""
    out = ssh(lab, COLLECTOR, "cat /var/spool/rsyslog/msib_siem.0* 2>/dev/null | wc -c", check=False)
    return int(out.strip() or 0)


@pytest.fixture
def converged_collector(deploy_lab: Lab, inventory_dir: Path, lab_vars: dict[str, Any]) -> Iterator[Path]:
    """col-ext-1 as the role deploys it, before and after the test."""
    assert run_deploy(inventory_dir, "pyinfra", limit=COLLECTOR, extra_vars=lab_vars).ok
    yield inventory_dir
    _drop_collector_at_siem(deploy_lab, on=False)
    ssh(deploy_lab, "siem", "systemctl start rsyslog.service syslog.socket")
    assert run_deploy(inventory_dir, "pyinfra", limit=COLLECTOR, extra_vars=lab_vars).ok


@pytest.fixture
def plain_tls_to_siem(deploy_lab: Lab, converged_collector: Path, lab_vars: dict[str, Any]) -> Iterator[Path]:
    """The external circuit relays over plain RFC 5425 TLS (the lab SIEM's 6514), the option a site plan may
    choose: collector and firewall re-deployed, and back to the shipped default afterwards."""
    from msib import contract

    siem = dict(contract.load(converged_collector).appliance(COLLECTOR).vars["msib_siem"])
    tls = {**lab_vars, "msib_siem": {**siem, "syslog": {**siem["syslog"], "transport": "tls", "port": 6514}}}
    try:
        for host in (FIREWALL, COLLECTOR):
            result = run_deploy(converged_collector, "pyinfra", limit=host, extra_vars=tls)
            assert result.ok, result.to_json()
        yield converged_collector
    finally:
        assert run_deploy(converged_collector, "pyinfra", limit=FIREWALL, extra_vars=lab_vars).ok


def _steady_stream_through(lab: Lab, name: str, fault_on: Any, fault_off: Any, *,
                           max_missing: int = 0) -> dict[str, Any]:
    """10k events/s for 10 s + OUTAGE_S + 20 s over plain TCP; the fault spans OUTAGE_S in the middle."""
    count = RATE * (OUTAGE_S + 30)
    tag = _tag(name[:6])
    proc = send_load(lab, OBJECT, target=COLLECTOR_LAN, port=514, count=count, rate=RATE, tag=tag)
    spilled = 0
    try:
        time.sleep(10)
        fault_on()
        t_fault = time.monotonic()
        time.sleep(OUTAGE_S - 5)
        spilled = _spilled(lab)
        time.sleep(max(0.0, t_fault + OUTAGE_S - time.monotonic()))
    finally:
        fault_off()
    t_back = time.monotonic()
    sent = load_result(proc)
    # a run allowed to lose waits out the sender's retry interval (10 s) before it calls the count final
    counted = wait_for_count(lab, tag, count, timeout=600, require_all=max_missing == 0,
                             settle=10 if max_missing == 0 else 40)
    drain = round(t_back + counted["drain_s"] - t_back, 1)
    _record(name, sent=sent["sent"], received=counted["received"], missing=counted["missing"],
            duplicates=counted["duplicates"], first_missing=counted["first_missing"],
            max_stall_s=sent["max_stall_s"], behind_s=sent["behind_s"], spilled_bytes=spilled,
            drain_after_fault_s=drain)
    assert sent["sent"] == count
    assert counted["received"] + counted["missing"] == count and counted["missing"] <= max_missing, counted
    assert spilled > 0, "the queue never went to disk: the fault did not hold the events back"
    assert sent["max_stall_s"] < STALL_BOUND_S and sent["behind_s"] < STALL_BOUND_S, sent
    return counted


def _stop_receiver(lab: Lab) -> None:
    # syslog.socket would start rsyslog again at the first local log line
    ssh(lab, "siem", "systemctl stop syslog.socket rsyslog.service")
    assert ssh(lab, "siem", "systemctl is-active rsyslog.service", check=False).strip() != "active"


def _start_receiver(lab: Lab) -> None:
    assert ssh(lab, "siem", "systemctl is-active rsyslog.service", check=False).strip() != "active", \
        "the receiver came back before the end of the outage"
    ssh(lab, "siem", "systemctl start rsyslog.service syslog.socket")


def test_siem_receiver_stopped_60s_under_10k_per_s_loses_nothing_and_never_blocks_the_object(
        deploy_lab: Lab, converged_collector: Path) -> None:
    # the shipped defaults: RELP over TLS to the SIEM, the role's queue
    conf = ssh(deploy_lab, COLLECTOR, "cat /etc/rsyslog.conf")
    assert 'type="omrelp"' in conf and 'port="2514"' in conf, "not the shipped default transport"
    _steady_stream_through(deploy_lab, "siem_receiver_stopped", lambda: _stop_receiver(deploy_lab),
                           lambda: _start_receiver(deploy_lab))


def test_siem_receiver_stopped_with_plain_tls_loses_at_most_what_was_in_flight(
        deploy_lab: Lab, plain_tls_to_siem: Path) -> None:
    """The option a site plan may choose, measured: RFC 5425 has no acknowledgement, so what the collector
    had written into the connection when the receiver went away is lost (at most one dequeue batch)."""
    batch = int(render.defaults("collector")["collector_queue_dequeue_batch_size"])
    counted = _steady_stream_through(deploy_lab, "siem_receiver_stopped_plain_tls",
                                     lambda: _stop_receiver(deploy_lab), lambda: _start_receiver(deploy_lab),
                                     max_missing=batch)
    print(f"\nplain TLS, receiver stopped {OUTAGE_S} s: {counted['missing']} of {RATE * (OUTAGE_S + 30)} lost")


def test_siem_unreachable_by_drop_60s_under_10k_per_s_loses_nothing_and_never_blocks_the_object(
        deploy_lab: Lab, converged_collector: Path) -> None:
    dropped: list[int] = []

    def off() -> None:
        dropped.append(_drops(deploy_lab))
        _drop_collector_at_siem(deploy_lab, on=False)

    _steady_stream_through(deploy_lab, "siem_dropped", lambda: _drop_collector_at_siem(deploy_lab, on=True), off)
    assert dropped and dropped[0] > 0, "the drop rule never saw the collector's packets"


def test_collector_restarted_twice_under_load_loses_nothing_over_relp(
        deploy_lab: Lab, converged_collector: Path) -> None:
    count = RATE * 40
    tag = _tag("restart")
    proc = send_load(deploy_lab, OBJECT, target=COLLECTOR_LAN, port=2514, count=count, rate=RATE, tag=tag,
                     transport="relp")
    pids = []
    for pause in (10, 15):
        time.sleep(pause)
        pids.append(ssh(deploy_lab, COLLECTOR, "systemctl show -p MainPID --value rsyslog").strip())
        ssh(deploy_lab, COLLECTOR, "systemctl restart rsyslog")
    pids.append(ssh(deploy_lab, COLLECTOR, "systemctl show -p MainPID --value rsyslog").strip())
    sent = load_result(proc)
    counted = wait_for_count(deploy_lab, tag, count, timeout=300)
    _record("collector_restarted", sent=sent["sent"], received=counted["received"], missing=counted["missing"],
            duplicates=counted["duplicates"], reconnects=sent["reconnects"], resent=sent["resent"],
            max_stall_s=sent["max_stall_s"], behind_s=sent["behind_s"], drain_s=counted["drain_s"])
    assert len(set(pids)) == 3, f"rsyslog was not restarted twice: {pids}"
    assert sent["sent"] == count and sent["reconnects"] >= 2
    assert (counted["received"], counted["missing"]) == (count, 0), counted
    # a restart holds the object up for as long as the collector is away, not longer
    assert sent["max_stall_s"] < 5 and sent["behind_s"] < STALL_BOUND_S, sent


def _stats(lab: Lab) -> dict[str, int]:
    """The last impstats line of the forwarding queue (and its disk part), summed."""
    out = ssh(lab, COLLECTOR, "grep -h 'msib_relay.*origin=core.queue' /var/log/syslog | tail -2")
    totals: dict[str, int] = {}
    for line in out.splitlines():
        for key, value in re.findall(r"(\w[\w.]*)=(\d+)", line):
            totals[key] = totals.get(key, 0) + int(value)
    return totals


RANGES = r'''
import re, sys
seen = set(int(m.group(1)) for line in open(sys.argv[1], errors="replace")
           for m in [re.search(r"run=%s seq=(\d+)" % sys.argv[2], line)] if m)
out, start, prev = [], None, None
for n in sorted(seen):
    if start is None:
        start = prev = n
    elif n == prev + 1:
        prev = n
    else:
        out.append([start, prev]); start = prev = n
if start is not None:
    out.append([start, prev])
print(out)
'''


def _received_ranges(lab: Lab, tag: str) -> list[list[int]]:
    """The runs of consecutive sequence numbers of `tag` the lab SIEM has."""
    proc = subprocess.run(lab.ssh_argv("siem", ["sudo", "python3", "-", f"/var/lib/msib-siem/events/load-{tag}.log",
                                                tag]), input=RANGES, capture_output=True, text=True, timeout=120)
    ranges: list[list[int]] = json.loads(proc.stdout)
    return ranges


def test_full_disk_queue_discards_the_newest_and_says_so(
        deploy_lab: Lab, converged_collector: Path, lab_vars: dict[str, Any]) -> None:
    small = {**lab_vars, "collector_queue_size": 10000, "collector_queue_highwatermark": 8000,
             "collector_queue_lowwatermark": 2000, "collector_queue_max_disk_space": "2m",
             "collector_stats_interval": 2}
    assert run_deploy(converged_collector, "pyinfra", limit=COLLECTOR, extra_vars=small).ok
    count = RATE * 10
    tag = _tag("full")
    since = ssh(deploy_lab, COLLECTOR, "date '+%Y-%m-%d %H:%M:%S'").strip()
    own_lines = "cat /var/log/syslog /var/log/auth.log | wc -l"
    own_before = int(ssh(deploy_lab, COLLECTOR, own_lines).strip())
    _drop_collector_at_siem(deploy_lab, on=True)
    try:
        time.sleep(2)
        sent = load_result(send_load(deploy_lab, OBJECT, target=COLLECTOR_LAN, port=514, count=count, rate=RATE,
                                     tag=tag))
        time.sleep(6)  # three impstats intervals
        stats = _stats(deploy_lab)
        # the collector's own messages meanwhile (sshd, impstats) went to the same full queue
        own = int(ssh(deploy_lab, COLLECTOR, own_lines).strip()) - own_before
        errors = ssh(deploy_lab, COLLECTOR, f"journalctl -u rsyslog --since '{since}' --no-pager -o cat "
                                            "| grep -iE 'queue|disk|discard' | sort | uniq -c | head -5",
                     check=False)
        disk = int(ssh(deploy_lab, COLLECTOR, "cat /var/spool/rsyslog/msib_siem.0* | wc -c").strip())
    finally:
        _drop_collector_at_siem(deploy_lab, on=False)
    counted = wait_for_count(deploy_lab, tag, count, timeout=180, settle=15, require_all=False)
    discarded = stats.get("discarded.full", 0) + stats.get("discarded.nf", 0)
    ranges = _received_ranges(deploy_lab, tag)
    _record("disk_queue_full", sent=sent["sent"], received=counted["received"], missing=counted["missing"],
            received_ranges=ranges[:10],
            duplicates=counted["duplicates"], impstats_discarded=discarded, own_messages_meanwhile=own,
            impstats=stats, queue_disk_bytes=disk, first_missing=counted["first_missing"],
            max_stall_s=sent["max_stall_s"], drain_s=counted["drain_s"], log_lines=errors.strip())
    assert sent["sent"] == count and sent["max_stall_s"] < STALL_BOUND_S, "a full queue must not block the object"
    assert counted["missing"] > 0, "the limit was never reached"
    assert counted["received"] + counted["missing"] == count and counted["duplicates"] == 0
    # never silent: every event missing at the SIEM is counted as discarded by the collector (the
    # rest of the discards are the collector's own messages of the same minutes)
    assert counted["missing"] <= discarded <= counted["missing"] + own, (counted, stats, own)
    # the disk part stopped at its bound (2m: rsyslog rounds up to whole 1 MiB queue files)
    assert disk <= 2 * 1024 * 1024 + 4096
    # what is kept: the oldest (up to the disk bound) and the newest (what the memory part held
    # when the SIEM came back); what came in between, while both were full, was discarded
    assert ranges[0][0] == 1 and ranges[0][1] > 1000
    assert ranges[-1][1] == count


@pytest.mark.parametrize("fault", ["wrong_ca", "wrong_name"])
def test_siem_certificate_of_the_wrong_ca_or_name_is_refused_and_logged(
        deploy_lab: Lab, converged_collector: Path, lab_vars: dict[str, Any], tmp_path: Path, fault: str) -> None:
    from msib import contract
    from msib.lab.pki import LabCA

    if fault == "wrong_ca":
        other = LabCA.ensure(tmp_path / "other-ca")
        bad = {**lab_vars, "collector_ca_file": str(other.cert_path)}
    else:
        siem = dict(contract.load(converged_collector).appliance(COLLECTOR).vars["msib_siem"])
        bad = {**lab_vars, "msib_siem": {**siem, "syslog": {**siem["syslog"], "peer_name": "wrong.lab.msib"}}}
    # taken before the bad deploy: the restarted rsyslog's first connection (its own start-up messages)
    # is refused at once, often within the deploy, and an action refused that way is not retried
    since = ssh(deploy_lab, COLLECTOR, "date '+%Y-%m-%d %H:%M:%S'").strip()
    syslog_lines = int(ssh(deploy_lab, COLLECTOR, "cat /var/log/syslog 2>/dev/null | wc -l").strip() or 0)
    assert run_deploy(converged_collector, "pyinfra", limit=COLLECTOR, extra_vars=bad).ok
    count = 500
    tag = _tag(fault.replace("_", ""))
    sent = load_result(send_load(deploy_lab, OBJECT, target=COLLECTOR_LAN, port=514, count=count, rate=1000,
                                 tag=tag))
    time.sleep(15)
    refused = count_at_siem(deploy_lab, tag, count)
    # the refusal as rsyslog reports it (omrelp's "authentication error", GnuTLS's, imtcp's): in the journal or,
    # for rsyslog's own messages that pass its rules, in /var/log/syslog; a retry may come resumeInterval later
    log, deadline = "", time.monotonic() + 60
    while not log.strip() and time.monotonic() < deadline:
        log = ssh(deploy_lab, COLLECTOR,
                  f"{{ journalctl -u rsyslog --since '{since}' --no-pager -o cat; "
                  f"tail -n +{syslog_lines + 1} /var/log/syslog; }} | "
                  "grep -iE 'omrelp|authentication|certificate|not permitted|peer|gnutls' | head -3", check=False)
        if not log.strip():
            time.sleep(5)
    assert run_deploy(converged_collector, "pyinfra", limit=COLLECTOR, extra_vars=lab_vars).ok
    after = wait_for_count(deploy_lab, tag, count, timeout=180)
    _record(f"tls_{fault}", sent=sent["sent"], received_while_refused=refused["received"],
            received_after_fix=after["received"], duplicates=after["duplicates"], log=log.strip()[:400])
    assert sent["sent"] == count
    assert refused["received"] == 0, "an unverified SIEM got events"
    assert log.strip(), "the refusal was not logged"
    # refused, not lost: the queue keeps the events until the SIEM can be verified again
    assert (after["received"], after["missing"]) == (count, 0)


def test_hard_crash_of_the_collector_loses_what_only_its_memory_held(
        deploy_lab: Lab, converged_collector: Path) -> None:
    """The known limit, measured: SIGKILL during an outage loses the queue's memory part.

    The role's high watermark + 90k events at 2 x RATE while the SIEM is unreachable: the first
    high-watermark's worth stay in memory, the rest spill to disk. Then rsyslogd is killed (systemd
    starts it again) and the SIEM comes back.
    """
    high = int(render.defaults("collector")["collector_queue_highwatermark"])
    count = high + 90_000
    tag = _tag("crash")
    _drop_collector_at_siem(deploy_lab, on=True)
    try:
        time.sleep(1)
        sent = load_result(send_load(deploy_lab, OBJECT, target=COLLECTOR_LAN, port=514, count=count,
                                     rate=2 * RATE, tag=tag))
        time.sleep(2)
        spilled = _spilled(deploy_lab)
        pid = ssh(deploy_lab, COLLECTOR, "systemctl show -p MainPID --value rsyslog").strip()
        ssh(deploy_lab, COLLECTOR, "systemctl kill -s KILL rsyslog.service")
        deadline = time.monotonic() + 30
        while ssh(deploy_lab, COLLECTOR, "systemctl show -p MainPID --value rsyslog").strip() in (pid, "0"):
            assert time.monotonic() < deadline, "systemd did not start rsyslog again"
            time.sleep(0.5)
        left = ssh(deploy_lab, COLLECTOR, "ls /var/spool/rsyslog/ | tr '\\n' ' '")
    finally:
        _drop_collector_at_siem(deploy_lab, on=False)
    counted = wait_for_count(deploy_lab, tag, count, timeout=180, settle=15, require_all=False)
    ranges = _received_ranges(deploy_lab, tag)
    _record("collector_hard_crash", sent=sent["sent"], received=counted["received"], missing=counted["missing"],
            duplicates=counted["duplicates"], spilled_bytes_before_kill=spilled, received_ranges=ranges[:10],
            spool_after_restart=left.strip())
    # clean up what a crash leaves behind (queue files without a valid .qi), once all is drained
    ssh(deploy_lab, COLLECTOR, "systemctl stop rsyslog; rm -f /var/spool/rsyslog/msib_siem.*; systemctl start rsyslog")
    assert sent["sent"] == count
    assert counted["missing"] > 0, "a crash with a full memory part lost nothing: not the documented limit"
    assert counted["missing"] <= count and counted["duplicates"] == 0
