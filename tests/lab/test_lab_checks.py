"""msib check on the lab: the converged lab passes, but for MSIB-HOST-007 on its Debian 12 hosts (on
LTS since 2026-06-10, as the check says); breaking one thing fails exactly its check.

Each break is undone in a `finally`, and the host is checked again to prove it was.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from msib import checks as mc
from msib import releases
from msib.lab import Lab
from msib.update import publish_ruleset

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[2]
MSIB = str(REPO / ".venv" / "bin" / "msib")
LAB_VARS = REPO / "playbooks" / "vars" / "lab.yml"


def ssh(lab: Lab, name: str, script: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(lab.ssh_argv(name, ["sudo", "sh", "-c", f"'{script}'"]), capture_output=True,
                          text=True, timeout=300)
    return proc


def msib_check(inventory: Path, report: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run([MSIB, "check", "--inventory", str(inventory), "--vars", str(LAB_VARS),
                           "--report", str(report), "--json", *extra], capture_output=True, text=True, timeout=900)
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


@pytest.fixture(scope="module")
def converged(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The lab's appliances deployed (pyinfra), their packages updated and a rule set released today
    running on the sensors: what `converged` means."""
    inventory = lab.inventory_dir
    assert (inventory / "hosts.yml").is_file(), "msib lab up writes the inventory"
    deploy = subprocess.run([MSIB, "deploy", "--inventory", str(inventory), "--engine", "pyinfra",
                             "--vars", str(LAB_VARS)], capture_output=True, text=True, timeout=1800)
    assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]
    source = tmp_path_factory.mktemp("rules")
    for series in sorted((REPO / "rulesets").glob("suricata-*")):  # today's set for each series (ids-ext-1 runs 8)
        shipped = sorted(series.glob("*/msib-update.rules"))[-1]
        publish_ruleset(source, series.name.removeprefix("suricata-"), time.strftime("%Y.%m.%d.1"),
                        {"msib-update.rules": shipped.read_bytes()})
    update = subprocess.run([MSIB, "update", "--inventory", str(inventory), "--vars", str(LAB_VARS), "--packages",
                             "--rules", "--rules-source", str(source), "--json",
                             "--lock-file", "/run/lock/msib-update-tests.lock"],
                            capture_output=True, text=True, timeout=1800)
    assert update.returncode == 0, update.stdout[-3000:] + update.stderr[-3000:]
    yield inventory


def expected_total(inventory: Path) -> int:
    inv = mc.load(inventory)
    return sum(len(mc.checks_for(h.role)) for h in inv.of(*mc.CHECKED_ROLES))


def release_findings(inventory: Path, host: str | None = None) -> set[tuple[str, str]]:
    """What a converged lab rightly fails: MSIB-HOST-007 on every appliance whose Debian release is past
    its regular security support today (the internal circuit's Debian 12: LTS since 2026-06-10)."""
    today = dt.date.today()
    return {(h.name, "MSIB-HOST-007") for h in mc.load(inventory).of(*mc.CHECKED_ROLES)
            if h.release and releases.get(h.release).support(today) != "regular" and host in (None, h.name)}


def test_converged_lab_passes_every_check_and_writes_every_report(converged: Path, tmp_path: Path) -> None:
    rc, summary = msib_check(converged, tmp_path / "report")
    findings = release_findings(converged)
    assert {(f["host"], f["check"]) for f in summary["failures"]} == findings
    assert all("LTS" in f["evidence"] for f in summary["failures"]), summary["failures"]
    assert (summary["failed"], summary["errors"]) == (len(findings), 0)
    assert rc == (1 if findings else 0)
    assert summary["passed"] == expected_total(converged) - len(findings)
    junit = ET.parse(tmp_path / "report" / "junit.xml").getroot()
    assert int(junit.get("tests") or 0) == summary["passed"] + len(findings)
    assert junit.get("failures") == str(len(findings))
    page = (tmp_path / "report" / "report.html").read_text()
    assert f'id="count-passed">{summary["passed"]}<' in page
    # evidence is recorded for passing checks too (what the auditor reads)
    data = json.loads((tmp_path / "report" / "report.json").read_text())
    assert all(r["evidence"] for r in data["results"])


# (host, what breaks it, how to undo it, the checks that must fail, words the evidence must show)
BREAKS: dict[str, tuple[str, str, str, set[str], str]] = {
    "stop rsyslog": (
        "col-int-1", "systemctl stop syslog.socket rsyslog.service",
        "systemctl start rsyslog.service",
        {"MSIB-COL-002"}, "rsyslog is not active"),
    "edit a managed file": (
        "col-ext-1",
        "cp -p /etc/rsyslog.conf /root/rsyslog.conf.msib-test && echo \"# local edit\" >> /etc/rsyslog.conf",
        "mv -f /root/rsyslog.conf.msib-test /etc/rsyslog.conf",
        {"MSIB-COL-003"}, "/etc/rsyslog.conf: DRIFT"),
    "flush nftables": (
        "fw-int-1", "nft flush ruleset",
        "nft -f /etc/msib/firewall/ruleset.nft",
        # FW-006 too: the commit helper's status is the LOADED ruleset's, and what is loaded is not the staged one
        {"MSIB-FW-003", "MSIB-FW-004", "MSIB-FW-005", "MSIB-FW-006"}, "the live ruleset differs from the rendered one"),
    "rules released 40 days ago": (
        "ids-int-1",
        "cp -p /var/lib/suricata/rules/msib-update.rules /root/rules.msib-test && "
        "sed -i \"1s/released [0-9-]*/released $(date -d \"40 days ago\" +%F)/\" "
        "/var/lib/suricata/rules/msib-update.rules && suricatasc -c reload-rules",
        "mv -f /root/rules.msib-test /var/lib/suricata/rules/msib-update.rules && suricatasc -c reload-rules",
        {"MSIB-IDS-005"}, "days old (limit 7)"),
    "never updated (the empty file the deploy creates)": (
        "ids-ext-1",
        "cp -p /var/lib/suricata/rules/msib-update.rules /root/rules.msib-test && "
        ": > /var/lib/suricata/rules/msib-update.rules && suricatasc -c reload-rules",
        "mv -f /root/rules.msib-test /var/lib/suricata/rules/msib-update.rules && suricatasc -c reload-rules",
        {"MSIB-IDS-005"}, "no rule update has ever been loaded"),
    "RELP listener gone": (
        "col-int-1",
        "cp -p /etc/rsyslog.conf /root/rsyslog.conf.msib-relp && sed -i \"/type=.imrelp./d\" /etc/rsyslog.conf "
        "&& systemctl restart rsyslog",
        "mv -f /root/rsyslog.conf.msib-relp /etc/rsyslog.conf && systemctl restart rsyslog",
        {"MSIB-COL-002", "MSIB-COL-003"}, "tcp/2514: not listening"),
    "a CA that is not the site's": (
        "col-ext-1",
        "cp -p /etc/msib/tls/ca.pem /root/ca.pem.msib-test && cp /etc/msib/tls/collector.pem /etc/msib/tls/ca.pem",
        "mv -f /root/ca.pem.msib-test /etc/msib/tls/ca.pem",
        {"MSIB-COL-003", "MSIB-COL-004"}, "but it is not the site's CA"),
}


@pytest.mark.parametrize("case", list(BREAKS))
def test_breaking_one_thing_fails_exactly_its_check_with_evidence(
        converged: Path, lab: Lab, tmp_path: Path, case: str) -> None:
    host, breaks, undo, wanted, words = BREAKS[case]
    try:  # the undo runs whatever happens, so that one case cannot break the next ones
        broken = ssh(lab, host, breaks)
        assert broken.returncode == 0, broken.stderr
        rc, summary = msib_check(converged, tmp_path / "broken")
    finally:
        restored = ssh(lab, host, undo)
    assert restored.returncode == 0, restored.stderr
    failed = {(f["host"], f["check"]) for f in summary["failures"]}
    assert failed == {(host, c) for c in wanted} | release_findings(converged), summary["failures"]
    assert (rc, summary["errors"]) == (1, 0)
    assert any(words in f["evidence"] for f in summary["failures"]), summary["failures"]
    page = (tmp_path / "broken" / "report.html").read_text()
    assert 'id="verdict" class="verdict v-fail"' in page
    assert html.escape(words) in page
    for c in wanted:
        assert f'id="{host}-{c}"' in page
    rc_after, after = msib_check(converged, tmp_path / "restored", "--limit", host)
    left = release_findings(converged, host)
    assert {(f["host"], f["check"]) for f in after["failures"]} == left
    assert (rc_after, after["failed"], after["errors"]) == (1 if left else 0, len(left), 0), after["failures"]


def test_an_unknown_host_key_is_an_error_exit_2_not_a_pass(converged: Path, tmp_path: Path) -> None:
    inventory = tmp_path / "inv"
    shutil.copytree(converged, inventory)
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    text = (inventory / "hosts.yml").read_text()
    text = text.replace("known_hosts_file: /var/lib/msib-lab/known_hosts", f"known_hosts_file: {empty}")
    (inventory / "hosts.yml").write_text(text)
    rc, summary = msib_check(inventory, tmp_path / "report", "--limit", "col-int-1")
    assert rc == 2
    assert summary["passed"] == 0 and summary["errors"] == len(mc.checks_for("collector"))
    assert "Host key verification failed" in summary["failures"][0]["evidence"]


def test_checks_run_under_plain_pytest_and_refuse_paramiko(converged: Path, lab: Lab, tmp_path: Path) -> None:
    base = [str(REPO / ".venv" / "bin" / "python"), "-m", "pytest", "-c", str(REPO / "checks" / "pytest.ini"),
            "--rootdir", str(REPO / "checks"), "-p", "no:cacheprovider", str(REPO / "checks"),
            f"--ssh-config={lab.ssh_config}", "--sudo", f"--msib-inventory={converged}", f"--msib-vars={LAB_VARS}"]
    ok = subprocess.run([*base, "--hosts=ssh://fw-ext-1", f"--junit-xml={tmp_path / 'j.xml'}"],
                        capture_output=True, text=True, timeout=600)
    assert ok.returncode == 0, ok.stdout[-3000:]
    assert ET.parse(tmp_path / "j.xml").getroot().find("testsuite").get("tests") == str(  # type: ignore[union-attr]
        len(mc.checks_for("firewall")))
    refused = subprocess.run([*base, "--hosts=paramiko://fw-ext-1"], capture_output=True, text=True, timeout=600)
    assert refused.returncode != 0 and "only ssh:// is allowed" in refused.stdout + refused.stderr
