"""The firewall's commit helper (roles/firewall/templates/msib-nft-commit.sh.j2) under /bin/sh without the
lab: the rendered script, with stand-ins for nft and systemd that record what they are asked (the lab
proves the same on a real firewall: tests/lab/test_firewall_commit.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from inventory_helpers import host_vars
from msib import render

STUBS = {
    # nft: tables are listed from a file; every other call succeeds and is logged
    "nft": """#!/bin/sh
echo "nft $*" >> "$LOG"
case "$*" in
"list tables") cat "$STUBDIR/tables" 2>/dev/null ;;
"list table "*) echo "table $3 $4 { }" ;;
esac
exit 0
""",
    # systemctl / systemd-run: one transient timer, "active" while its marker file exists
    "systemctl": """#!/bin/sh
echo "systemctl $*" >> "$LOG"
case "$*" in
*is-active*) [ -e "$STUBDIR/timer" ] ;;
stop*) rm -f "$STUBDIR/timer" ;;
*) exit 0 ;;
esac
""",
    "systemd-run": """#!/bin/sh
echo "systemd-run $*" >> "$LOG"
touch "$STUBDIR/timer"
""",
    "logger": "#!/bin/sh\nexit 0\n",
}


def _helper(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name, text in STUBS.items():
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    ctx = render.context("firewall", host_vars("fw-ext-1", "firewall"))
    ctx.update(firewall_ruleset_path=str(tmp_path / "ruleset.nft"), firewall_state_dir=str(tmp_path / "state"))
    (tmp_path / "ruleset.nft").write_text(render.render("firewall", "ruleset.nft.j2", ctx))
    script = render.render("firewall", "msib-nft-commit.sh.j2", ctx).replace("/usr/sbin/nft", str(stubs / "nft"))
    helper = tmp_path / "msib-nft-commit"
    helper.write_text(script)
    helper.chmod(0o755)
    env = {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}", "LOG": str(tmp_path / "calls"),
           "STUBDIR": str(stubs)}
    return helper, env


def _run(helper: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/sh", str(helper), *args], env=env, capture_output=True, text=True, timeout=60)


def test_a_second_apply_while_the_first_is_unconfirmed_is_refused_and_leaves_its_rollback(tmp_path: Path) -> None:
    helper, env = _helper(tmp_path)
    (tmp_path / "stubs" / "tables").write_text("table inet msib\ntable inet msib_contain\n")
    first = _run(helper, env, "apply", "60")
    assert first.returncode == 0 and first.stdout.strip() == "armed", first.stderr
    saved = (tmp_path / "state" / "rollback.nft").read_text()
    # containment's table is never saved whole (only its chains: the test with real nft below)
    assert "delete table inet msib_contain" not in saved and "table inet msib" in saved
    calls = (tmp_path / "calls").read_text()
    second = _run(helper, env, "apply", "60")
    assert second.returncode == 75 and "not confirmed yet" in second.stderr
    # nothing of the first apply was touched: same rollback copy, its timer still armed, no call made
    assert (tmp_path / "state" / "rollback.nft").read_text() == saved
    assert (tmp_path / "stubs" / "timer").exists()
    asked = (tmp_path / "calls").read_text().replace(calls, "").split("\n")
    assert [c for c in asked if c and not c.startswith(("systemctl is-active", "systemctl show"))] == []
    assert _run(helper, env, "confirm").stdout.strip() == "confirmed"
    assert _run(helper, env, "apply", "60").returncode == 0  # once confirmed, the next apply goes ahead


def test_apply_replaces_every_table_but_containments_in_one_transaction(tmp_path: Path) -> None:
    helper, env = _helper(tmp_path)
    (tmp_path / "stubs" / "tables").write_text("table inet msib\ntable ip foreign\ntable inet msib_contain\n")
    assert _run(helper, env, "apply", "60").returncode == 0
    script = (tmp_path / "state" / "apply.nft").read_text()
    head = script.split("\n#!/usr/sbin/nft")[0].splitlines()
    assert head == ["delete table inet msib", "delete table ip foreign"]
    assert not any(line.strip() == "flush ruleset" for line in script.splitlines())
    assert "table inet msib_contain {" in script


def test_rollback_restores_the_containment_tables_rules_too_and_keeps_its_blocks(tmp_path: Path) -> None:
    """Real nft in a scratch network namespace: a bad apply (another SSH port) then the rollback.

    The management path sits in the containment table as well; a rollback that restored only msib's
    own table left the bad port there (seen on the lab: tests/lab/test_deploy_behaviour.py)."""
    ctx = render.context("firewall", host_vars("fw-ext-1", "firewall"))
    ctx.update(firewall_ruleset_path=str(tmp_path / "ruleset.nft"), firewall_state_dir=str(tmp_path / "state"))
    (tmp_path / "good.nft").write_text(render.render("firewall", "ruleset.nft.j2", ctx))
    bad = {**ctx, "firewall_ssh_port": 2222}
    (tmp_path / "ruleset.nft").write_text(render.render("firewall", "ruleset.nft.j2", bad))
    (tmp_path / "msib-nft-commit").write_text(render.render("firewall", "msib-nft-commit.sh.j2", ctx))
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name in ("systemctl", "systemd-run", "logger"):
        (stubs / name).write_text(STUBS[name])
        (stubs / name).chmod(0o755)
    d = tmp_path
    drill = (f"nft -f {d}/good.nft && nft add element inet msib_contain msib_blocked '{{ 198.18.16.66 }}' && "
             f"nft -s list ruleset > {d}/before && sh {d}/msib-nft-commit apply 60 && "
             f"nft -s list ruleset > {d}/applied && sh {d}/msib-nft-commit rollback && "
             f"nft -s list ruleset > {d}/after")
    env = {**os.environ, "PATH": f"{stubs}:/usr/sbin:{os.environ['PATH']}", "LOG": str(d / "calls"),
           "STUBDIR": str(stubs)}
    proc = subprocess.run(["unshare", "--net", "sh", "-c", drill], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    before, applied, after = ((d / f).read_text() for f in ("before", "applied", "after"))
    assert "dport 2222" in applied and "dport 2222" not in before
    assert after == before
    assert "198.18.16.66" in after  # a block is live state: neither saved nor lost
