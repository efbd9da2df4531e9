"""Checks of the circuit firewalls (role firewall, platform nftables)."""

from __future__ import annotations

import base64
import shlex
from typing import Any

from _common import Evidence, no_drift, packages_at_expected_version, service_running

from msib import render
from msib.checks import check, nft_base_chains, nft_comparable, unified_diff
from msib.engines import guards

#: msib contain's table (roles/firewall/templates/ruleset.nft.j2): its chains only drop contained addresses
CONTAIN_TABLE = "inet msib_contain"


def _live(host: Any) -> str:
    out = host.run("nft -s list ruleset")
    assert out.rc == 0, f"nft list ruleset failed: {out.stderr.strip()}"
    return str(out.stdout)


@check("MSIB-FW-001")
def test_nftables_installed_and_enabled(host: Any, ctx: dict[str, Any], evidence: Evidence) -> None:
    packages_at_expected_version(host, ctx, ["nftables"], evidence)
    # nftables.service is a oneshot that loads /etc/nftables.conf at boot: enabled is what matters
    problems = service_running(host, "nftables", evidence, active=False)
    assert not problems, "; ".join(problems)


@check("MSIB-FW-002")
def test_no_drift(host: Any, ctx: dict[str, Any], evidence: Evidence) -> None:
    no_drift(host, "firewall", ctx, evidence)


@check("MSIB-FW-003")
def test_live_ruleset_is_the_rendered_one(host: Any, ctx: dict[str, Any], evidence: Evidence) -> None:
    rendered = render.render("firewall", "ruleset.nft.j2", ctx)
    # the host's own nft canonicalises the rendered ruleset in a scratch network namespace
    data = base64.b64encode(rendered.encode()).decode()
    out = host.run(f"echo {data} | base64 -d | unshare --net sh -c "
                   + shlex.quote("nft -f - && nft -s list ruleset"))
    assert out.rc == 0, f"the rendered ruleset does not load in a scratch namespace: {out.stderr.strip()}"
    expected, live = nft_comparable(out.stdout), nft_comparable(_live(host))
    evidence(f"rendered ruleset: {len(expected.splitlines())} lines (sha256 {render.sha256(expected)[:16]}…); "
             f"live: {len(live.splitlines())} lines (sha256 {render.sha256(live)[:16]}…)")
    if expected != live:
        evidence(unified_diff(expected, live, expected_name="rendered", actual_name="live"))
    assert expected == live, "the live ruleset differs from the rendered one"


@check("MSIB-FW-004")
def test_default_drop(host: Any, evidence: Evidence) -> None:
    chains = nft_base_chains(_live(host))
    for c in chains:
        evidence(f"{c['table']} chain {c['chain']}: hook {c['hook']}, policy {c['policy']}")
    hooks = {c["hook"] for c in chains}
    assert {"input", "forward"} <= hooks, f"no base chain on {sorted({'input', 'forward'} - hooks)}: all accepted"
    # a packet passes a hook only if every base chain on it lets it through: one chain of policy drop
    # per hook is default deny; the containment table's chains (policy accept) only ever drop
    undenied = [h for h in ("input", "forward") if not any(c["hook"] == h and c["policy"] == "drop" for c in chains)]
    assert not undenied, f"no base chain of policy drop on {', '.join(undenied)}"
    open_chains = [f"{c['table']}/{c['chain']}" for c in chains if c["hook"] in ("input", "forward")
                   and c["policy"] != "drop" and c["table"] != CONTAIN_TABLE]
    assert not open_chains, f"policy is not drop in: {', '.join(open_chains)}"


@check("MSIB-FW-005")
def test_management_path_first(host: Any, ctx: dict[str, Any], evidence: Evidence) -> None:
    live = host.run("nft list ruleset").stdout
    port = ctx["firewall_ssh_port"] or ctx["msib_appliance"]["port"]
    first = [ln.strip() for ln in live.splitlines() if "msib management path" in ln]
    evidence(f"controllers {', '.join(ctx['msib_controllers'])}, SSH port {port}")
    evidence("management rule: " + (first[0] if first else "(none)"))
    hooks = {c["hook"] for c in nft_base_chains(live)}
    assert "input" in hooks, "no input chain in the live ruleset: nothing guarantees the path"
    try:
        guards.nft_management(live, ctx["msib_controllers"], int(port))
    except guards.LockoutError as exc:
        raise AssertionError(f"the management path is not open first: {exc}") from None
    evidence("every input chain accepts SSH from every controller before its first drop")


@check("MSIB-FW-006")
def test_no_pending_commit(host: Any, evidence: Evidence) -> None:
    status = host.run("/usr/local/sbin/msib-nft-commit status")
    timer = host.run("systemctl is-active msib-nft-rollback.timer").stdout.strip()
    evidence(f"msib-nft-commit status: {status.stdout.strip() or status.stderr.strip()}")
    evidence(f"rollback timer: {timer}")
    assert status.rc == 0 and status.stdout.strip() == "applied", \
        "the staged ruleset is not applied and confirmed"
    assert timer != "active", "a rollback timer is armed: the last commit was not confirmed"
