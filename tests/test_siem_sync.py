"""`msib siem sync` against the lab SIEM over real HTTPS on 127.0.0.1 (fresh CA per test).

Write requests are counted at the server (`GET /msib-lab/stats`), not only by the client.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from msib.errors import SiemError
from msib.siem.base import encode_cdb
from msib.siem.sync import sb_inventory, sync
from msib.site import SB_CODE_PATTERN
from siem_helpers import (
    LabSiem,
    appliance,
    obj,
    prefix_pair_scenario,
    run_cli,
    start_lab_siem,
    write_inventory,
)

APPLIANCES = [appliance("col-int-1", "198.18.31.10"), appliance("ids-int-1", "198.18.31.11"),
              appliance("fw-int-1", "198.18.31.1"), appliance("net-ext-1", "198.18.47.1")]
OBJECTS = [obj(f"198.18.16.{i}", f"pc{i}.mcri.local", "internal", "windows") for i in range(1, 41)] + [
    obj("2001:db8::10", "web.mcri.local", "external", "linux")]


@pytest.fixture
def siem(tmp_path: Path) -> Iterator[LabSiem]:
    server = start_lab_siem(tmp_path / "siem")
    yield server
    server.stop()


def _inv(siem: LabSiem, path: Path, code: str = "lab", appliances: Any = None, objects: Any = None) -> Path:
    return write_inventory(path, code, APPLIANCES if appliances is None else appliances,
                           OBJECTS if objects is None else objects, url=siem.url, ca_file=str(siem.ca_file))


def _sync_json(inv: Path, *extra: str) -> dict[str, Any]:
    r = run_cli("siem", "sync", "--inventory", str(inv), "--json", *extra)
    assert r.returncode == 0, r.stderr
    data: dict[str, Any] = json.loads(r.stdout)
    return data


def _names(siem: LabSiem, prefix: str) -> dict[str, str]:
    return {a["name"]: a["ip"] for a in siem.agents() if a["name"].startswith(prefix)}


def _expected_list(objects: list[dict[str, Any]]) -> dict[str, str]:
    import ipaddress

    return {ipaddress.ip_address(o["ip"]).compressed: f"{o['hostname']},{o['circuit']},{o['os_family']}"
            for o in objects}


# --- full sync and no-op --------------------------------------------------------------------------


def test_full_sync_from_empty_registers_appliances_and_publishes_one_list(siem: LabSiem, tmp_path: Path) -> None:
    inv = _inv(siem, tmp_path / "inv")
    writes_before = siem.writes()
    out = _sync_json(inv)
    assert out == {
        "agents": {"add": sorted(f"lab.{a[0]}" for a in APPLIANCES), "remove": [], "unchanged": 0, "legacy": []},
        "objects": {"add": len(OBJECTS), "remove": 0, "unchanged": 0},
        "requests": {"read": out["requests"]["read"], "write": len(APPLIANCES) + 1},
    }
    assert siem.writes() - writes_before == len(APPLIANCES) + 1  # one per appliance, one for all objects
    assert _names(siem, "lab.") == {f"lab.{n}": ip for n, _, ip in APPLIANCES}
    assert siem.list_text("msib-lab-objects") == encode_cdb(_expected_list(OBJECTS))
    assert '"2001:db8::10":web.mcri.local,external,linux' in (siem.list_text("msib-lab-objects") or "")


def test_second_sync_says_nothing_to_do_and_sends_no_write(siem: LabSiem, tmp_path: Path) -> None:
    inv = _inv(siem, tmp_path / "inv")
    _sync_json(inv)
    writes_before = siem.writes()
    r = run_cli("siem", "sync", "--inventory", str(inv))
    assert r.returncode == 0, r.stderr
    assert "nothing to do" in r.stdout
    assert siem.writes() == writes_before
    out = _sync_json(inv)
    assert out["requests"]["write"] == 0 and siem.writes() == writes_before
    assert out["agents"] == {"add": [], "remove": [], "unchanged": len(APPLIANCES), "legacy": []}
    assert out["objects"] == {"add": 0, "remove": 0, "unchanged": len(OBJECTS)}


def test_dry_run_prints_the_plan_and_writes_nothing(siem: LabSiem, tmp_path: Path) -> None:
    inv = _inv(siem, tmp_path / "inv")
    before = siem.writes()
    r = run_cli("siem", "sync", "--inventory", str(inv), "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "+ lab.col-int-1 (198.18.31.10)" in r.stdout and "dry run" in r.stdout
    assert siem.writes() == before
    assert _names(siem, "lab.") == {} and siem.list_text("msib-lab-objects") is None


# --- changes between quarters ---------------------------------------------------------------------


def test_two_quarters_apply_exactly_the_differences(siem: LabSiem, tmp_path: Path) -> None:
    q1 = _inv(siem, tmp_path / "q1")
    _sync_json(q1)
    q2_objects = [o for o in OBJECTS if o["ip"] not in ("198.18.16.1", "198.18.16.2")]  # 2 left
    q2_objects += [obj("198.18.16.201", "new1.mcri.local"), obj("198.18.16.202", "new2.mcri.local"),
                   obj("198.18.16.203", "new3.mcri.local")]  # 3 came
    q2_objects = [obj(o["ip"], "renamed.mcri.local") if o["ip"] == "198.18.16.3" else o for o in q2_objects]
    q2_appliances = [a for a in APPLIANCES if a[0] != "ids-int-1"] + [appliance("col-int-2", "198.18.31.12")]
    q2 = _inv(siem, tmp_path / "q2", appliances=q2_appliances, objects=q2_objects)
    writes_before = siem.writes()
    out = _sync_json(q2)
    assert out["agents"] == {"add": ["lab.col-int-2"], "remove": ["lab.ids-int-1"], "unchanged": 3, "legacy": []}
    # a changed value counts as one entry removed and one added
    assert out["objects"] == {"add": 4, "remove": 3, "unchanged": len(OBJECTS) - 3}
    assert siem.writes() - writes_before == 3  # one delete, one add, one list
    assert _names(siem, "lab.") == {f"lab.{n}": ip for n, _, ip in q2_appliances}
    assert siem.list_text("msib-lab-objects") == encode_cdb(_expected_list(q2_objects))


def test_an_appliance_with_a_new_address_is_reregistered(siem: LabSiem, tmp_path: Path) -> None:
    _sync_json(_inv(siem, tmp_path / "q1"))
    moved = [appliance("col-int-1", "198.18.31.99"), *APPLIANCES[1:]]
    out = _sync_json(_inv(siem, tmp_path / "q2", appliances=moved))
    assert out["agents"] == {"add": ["lab.col-int-1"], "remove": ["lab.col-int-1"], "unchanged": 3, "legacy": []}
    assert _names(siem, "lab.")["lab.col-int-1"] == "198.18.31.99"


def test_a_deregistered_appliance_reregisters_without_duplicate_name(siem: LabSiem, tmp_path: Path) -> None:
    _sync_json(_inv(siem, tmp_path / "q1"))
    without = [a for a in APPLIANCES if a[0] != "fw-int-1"]
    assert _sync_json(_inv(siem, tmp_path / "q2", appliances=without))["agents"]["remove"] == ["lab.fw-int-1"]
    assert "lab.fw-int-1" not in _names(siem, "lab.")
    r = run_cli("siem", "sync", "--inventory", str(_inv(siem, tmp_path / "q3")), "--json")
    assert r.returncode == 0, r.stderr
    assert "Duplicate" not in r.stderr
    assert json.loads(r.stdout)["agents"]["add"] == ["lab.fw-int-1"]
    assert _names(siem, "lab.")["lab.fw-int-1"] == "198.18.31.1"


def test_an_agent_deleted_by_hand_without_purge_is_registered_again(siem: LabSiem, tmp_path: Path) -> None:
    """Wazuh 4.x frees a name on delete, purged or not: the next sync registers the appliance again."""
    inv = _inv(siem, tmp_path / "q1")
    _sync_json(inv)
    fw = next(a for a in siem.agents() if a["name"] == "lab.fw-int-1")
    with siem.http() as c:
        c.delete("/agents", params={"agents_list": fw["id"], "status": "all", "older_than": "0s"},
                 headers={"Authorization": f"Bearer {siem.token()}"})
    assert _sync_json(inv)["agents"] == {"add": ["lab.fw-int-1"], "remove": [], "unchanged": len(APPLIANCES) - 1,
                                         "legacy": []}
    assert _names(siem, "lab.")["lab.fw-int-1"] == "198.18.31.1"


def test_a_name_registered_after_the_plan_fails_clearly(siem: LabSiem, tmp_path: Path) -> None:
    """Between reading the SIEM and registering, someone else takes the name: 1705, said plainly."""
    from msib.siem.sync import apply_plan, make_plan

    inv = sb_inventory(_inv(siem, tmp_path / "inv"))
    with siem.driver() as d:
        plan = make_plan(inv, d)
        with siem.http() as c:
            c.post("/agents", json={"name": "lab.col-int-1", "ip": "10.9.9.9"},
                   headers={"Authorization": f"Bearer {siem.token()}"})
        with pytest.raises(SiemError) as err:
            apply_plan(plan, d)
    assert "'lab.col-int-1'" in str(err.value) and "Duplicate agent name" in str(err.value)
    assert "run the sync again" in str(err.value)


def test_objects_emptied_deletes_the_list_and_then_sends_nothing(siem: LabSiem, tmp_path: Path) -> None:
    _sync_json(_inv(siem, tmp_path / "q1"))
    q2 = _inv(siem, tmp_path / "q2", objects=[])
    out = _sync_json(q2)
    assert out["objects"] == {"add": 0, "remove": len(OBJECTS), "unchanged": 0}
    assert siem.list_text("msib-lab-objects") is None
    before = siem.writes()
    assert _sync_json(q2)["requests"]["write"] == 0 and siem.writes() == before


# --- CDB list answers as Wazuh gives them (siem.md: item failures are HTTP 200) ----------------------


def test_an_sb_without_objects_reaches_zero_writes_on_the_second_sync(siem: LabSiem, tmp_path: Path) -> None:
    """A missing list is HTTP 200 + error 1 + code 1802: read as "no list", never as list text."""
    inv = _inv(siem, tmp_path / "inv", objects=[])
    first = _sync_json(inv)
    assert first["objects"] == {"add": 0, "remove": 0, "unchanged": 0}
    assert first["requests"]["write"] == len(APPLIANCES)  # agents only: no list to publish or delete
    before = siem.writes()
    second = _sync_json(inv)
    assert second["requests"]["write"] == 0 and siem.writes() == before
    assert siem.list_text("msib-lab-objects") is None


def test_read_list_is_none_for_a_missing_list_and_the_list_otherwise(siem: LabSiem) -> None:
    with siem.driver() as d:
        assert d.read_list("msib-lab-objects") is None
        d.publish_list("msib-lab-objects", {"10.0.0.5": "pc5,internal,windows"})
        assert d.read_list("msib-lab-objects") == {"10.0.0.5": "pc5,internal,windows"}


def test_a_list_upload_the_siem_refuses_is_an_error(siem: LabSiem) -> None:
    """HTTP 200 with error 1 and code 1800 (malformed) is a failed upload, not a success."""
    with siem.driver() as d, pytest.raises(SiemError) as err:
        d.publish_list("msib-lab-objects", {"": "no key"})
    assert "code 1800" in str(err.value) and "Bad format in CDB list" in str(err.value)
    assert siem.list_text("msib-lab-objects") is None


def test_deleting_a_list_that_is_gone_is_fine(siem: LabSiem) -> None:
    with siem.driver() as d:
        d.delete_list("msib-lab-objects")  # 200, error 1, code 1906: already the wanted state
    assert siem.stats()["responses"] == {"200": 2}  # the login and the delete, no HTTP error


def test_a_list_the_siem_cannot_delete_or_read_is_an_error(tmp_path: Path) -> None:
    """Failures other than "missing" come as HTTP 200 too (1907, 1803): the driver raises on them."""
    siem = start_lab_siem(tmp_path / "s", in_process=True)
    try:
        with siem.driver() as d:
            d.publish_list("msib-lab-objects", {"10.0.0.5": "pc5,internal,windows"})

            def broken(_name: str) -> Any:
                raise OSError(13, "Permission denied")

            siem.app.store.delete_list = broken
            with pytest.raises(SiemError, match="code 1907: File could not be deleted"):
                d.delete_list("msib-lab-objects")
            siem.app.store.get_list = broken
            with pytest.raises(SiemError, match="code 1803: Error reading lists file"):
                d.read_list("msib-lab-objects")
    finally:
        siem.stop()


# --- two SBs in one SIEM --------------------------------------------------------------------------


def test_two_sbs_in_one_siem_never_touch_each_other(siem: LabSiem, tmp_path: Path) -> None:
    # "xlab.col-..." contains "lab": Wazuh's search finds it when listing "lab", so ownership is checked
    other_objects = [obj("198.18.16.1", "other.xlab.local", "internal", "linux")]
    xlab = _inv(siem, tmp_path / "xlab", code="xlab", objects=other_objects)
    _sync_json(xlab)
    xlab_agents = _names(siem, "xlab.")
    xlab_list = siem.list_text("msib-xlab-objects")
    lab = _inv(siem, tmp_path / "lab")
    out = _sync_json(lab)
    assert out["agents"]["remove"] == [] and out["agents"]["unchanged"] == 0
    # the lab SB loses every appliance and object: only its own go
    out = _sync_json(_inv(siem, tmp_path / "lab-empty", appliances=[], objects=[]))
    assert sorted(out["agents"]["remove"]) == sorted(f"lab.{a[0]}" for a in APPLIANCES)
    assert _names(siem, "lab.") == {}
    assert _names(siem, "xlab.") == xlab_agents and len(xlab_agents) == len(APPLIANCES)
    assert siem.list_text("msib-xlab-objects") == xlab_list
    assert _sync_json(xlab)["requests"]["write"] == 0


@pytest.mark.parametrize(("first", "emptied"), [("mcri", "mcri"), ("mcri", "mcri-kz"), ("mcri-kz", "mcri"),
                                              ("mcri-kz", "mcri-kz")])
def test_codes_that_are_prefixes_of_each_other_never_touch_each_other(siem: LabSiem, tmp_path: Path, first: str,
                                                                      emptied: str) -> None:
    """#14: the sync of `mcri` deregistered the agents of `mcri-kz`, and the two flapped."""
    prefix_pair_scenario(siem.driver, tmp_path, first, emptied)


def test_names_from_before_the_separator_are_reported_and_never_touched(siem: LabSiem, tmp_path: Path) -> None:
    """`lab-col-int-1` cannot prove its SB (it may be `lab-col`'s `int-1`): reported, left alone."""
    with siem.http() as c:
        h = {"Authorization": f"Bearer {siem.token()}"}
        for name in ("lab-col-int-1", "lab-kz-col-1"):  # ours from before, and one that is no appliance of ours
            assert c.post("/agents", json={"name": name, "ip": "198.18.31.10"}, headers=h).status_code == 200
    inv = _inv(siem, tmp_path / "inv")
    out = _sync_json(inv)
    assert out["agents"]["legacy"] == ["lab-col-int-1"] and out["agents"]["remove"] == []
    r = run_cli("siem", "sync", "--inventory", str(inv))
    assert r.returncode == 0 and "nothing to do" in r.stdout
    assert "note: 1 agent(s) carry this SB's names from before the '.' separator" in r.stdout
    assert {"lab-col-int-1", "lab-kz-col-1"} <= {a["name"] for a in siem.agents()}


def test_agent_names_prove_their_sb() -> None:
    from hypothesis import given
    from hypothesis import strategies as st

    from msib.siem.sync import agent_name, owner

    code = st.from_regex(SB_CODE_PATTERN, fullmatch=True)
    app = st.from_regex(r"[a-z0-9][a-z0-9-]{0,31}", fullmatch=True)

    @given(code, app, code, app)
    def check(a: str, x: str, b: str, y: str) -> None:
        assert owner(agent_name(a, x)) == a
        assert agent_name(a, x).startswith(f"{a}.")
        if a != b:
            assert agent_name(a, x) != agent_name(b, y)
            assert not agent_name(b, y).startswith(f"{a}.")

    check()


# --- tokens, rate limit ---------------------------------------------------------------------------


def test_an_expired_token_is_renewed_after_a_401(tmp_path: Path) -> None:
    siem = start_lab_siem(tmp_path / "s", token_ttl=1.0)
    try:
        import time

        with siem.driver(proactive_refresh=False) as d:
            assert d.list_agents("lab.") == []
            time.sleep(1.3)  # the token has expired; the driver does not know it
            d.register("lab.col-int-1", "198.18.31.10")
            assert d.logins == 2
        assert siem.stats()["responses"]["401"] == 1
        assert _names(siem, "lab.") == {"lab.col-int-1": "198.18.31.10"}
    finally:
        siem.stop()


def test_token_expiry_mid_sync_is_handled(tmp_path: Path) -> None:
    # a 1 s token and a rate limit that stretches the sync over several windows
    siem = start_lab_siem(tmp_path / "s", token_ttl=1.0, max_rpm=6, window=0.8)
    try:
        apps = [appliance(f"col-int-{i}", f"198.18.31.{i}") for i in range(1, 13)]
        inv = sb_inventory(_inv(siem, tmp_path / "inv", appliances=apps))
        with siem.driver() as d:
            result = sync(inv, d)
            assert d.logins >= 2  # renewed at least once during the sync
        assert not result.plan.remove and len(result.plan.add) == 12
        assert _names(siem, "lab.") == {f"lab.{n}": ip for n, _, ip in apps}
        with siem.driver() as d:
            assert sync(inv, d).plan.nothing_to_do
    finally:
        siem.stop()


def test_a_burst_over_the_rate_limit_completes_through_backoff(tmp_path: Path) -> None:
    siem = start_lab_siem(tmp_path / "s", max_rpm=8, window=1.5)
    try:
        apps = [appliance(f"col-int-{i}", f"198.18.31.{i}") for i in range(1, 21)]
        inv = sb_inventory(_inv(siem, tmp_path / "inv", appliances=apps))
        with siem.driver() as d:
            result = sync(inv, d)
            assert d.backoffs >= 1
        stats = siem.stats()
        assert stats["responses"].get("429", 0) >= 1
        agents = [a["name"] for a in siem.agents() if a["name"].startswith("lab.")]
        assert sorted(agents) == sorted(f"lab.{a[0]}" for a in apps)  # each exactly once
        assert len(result.plan.add) == 20
    finally:
        siem.stop()


def test_backoff_is_bounded(tmp_path: Path) -> None:
    from msib.siem.wazuh import RetryPolicy

    siem = start_lab_siem(tmp_path / "s", max_rpm=2, window=60)
    try:
        with siem.driver(retry=RetryPolicy(attempts=3, base=0.05, cap=0.1)) as d, pytest.raises(SiemError) as err:
            for _ in range(5):
                d.list_agents("lab.")
        assert "429" in str(err.value) and "3 attempts" in str(err.value)
    finally:
        siem.stop()


# --- failures and bad input -----------------------------------------------------------------------


def test_wrong_ca_fails_with_a_clear_message_and_exit_1(siem: LabSiem, tmp_path: Path) -> None:
    from msib.lab.pki import LabCA

    other = LabCA.ensure(tmp_path / "other-ca")
    inv = _inv(siem, tmp_path / "inv")
    r = run_cli("siem", "sync", "--inventory", str(inv), "--ca-file", str(other.cert_path))
    assert r.returncode == 1
    assert "cannot verify the SIEM's TLS certificate" in r.stderr and str(other.cert_path) in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) <= 3
    assert siem.stats()["requests"]["total"] == 0  # nothing reached the API


def test_wrong_password_fails_with_a_clear_message_and_exit_1(siem: LabSiem, tmp_path: Path) -> None:
    inv = _inv(siem, tmp_path / "inv")
    r = run_cli("siem", "sync", "--inventory", str(inv), env={"MSIB_SIEM_PASSWORD": "not-the-password"})
    assert r.returncode == 1
    assert "refused the login" in r.stderr and "msib-sync" in r.stderr
    assert "not-the-password" not in r.stderr + r.stdout
    assert "Traceback" not in r.stderr


def test_missing_credentials_is_bad_input_exit_2(siem: LabSiem, tmp_path: Path) -> None:
    inv = _inv(siem, tmp_path / "inv")
    r = run_cli("siem", "sync", "--inventory", str(inv), env={"MSIB_SIEM_PASSWORD": ""})
    assert r.returncode == 2 and "MSIB_SIEM_PASSWORD" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda d: (d / "hosts.yml").unlink(), "no hosts.yml"),
        (lambda d: (d / "objects.json").write_text("[{"), "objects.json"),
        (lambda d: (d / "objects.json").write_text(json.dumps([{"ip": "10.0.0.300", "hostname": "a",
                                                                 "circuit": "internal", "os_family": "linux"}])),
         "is not an IP address"),
        (lambda d: (d / "objects.json").write_text(json.dumps([{"ip": "10.0.0.3", "hostname": "a,b",
                                                                 "circuit": "internal", "os_family": "linux"}])),
         "hostname"),
        (lambda d: (d / "hosts.yml").write_text("all: {vars: {msib_sb_code: 'BAD CODE'}}"), "msib_sb_code"),
        (lambda d: (d / "hosts.yml").write_text("all: [unclosed"), "not valid YAML"),
    ],
    ids=["no-hosts", "broken-json", "bad-ip", "comma-in-hostname", "bad-code", "broken-yaml"],
)
def test_bad_inventory_is_one_clear_line_and_exit_2(siem: LabSiem, tmp_path: Path, damage: Any,
                                                    expected: str) -> None:
    inv = _inv(siem, tmp_path / "inv")
    damage(inv)
    r = run_cli("siem", "sync", "--inventory", str(inv))
    assert r.returncode == 2, r.stderr
    assert expected in r.stderr and "Traceback" not in r.stderr
    assert siem.stats()["requests"]["total"] == 0


def test_credentials_from_an_ansible_vault_file(siem: LabSiem, tmp_path: Path) -> None:
    from ansible.parsing.vault import VaultLib, VaultSecret

    from siem_helpers import PASSWORD, USER

    pw_file = tmp_path / "vault-pass"
    pw_file.write_text("vault-pw\n")
    vault = tmp_path / "siem-vault.yml"
    plain = f"msib_siem_user: {USER}\nmsib_siem_password: {PASSWORD}\n".encode()
    vault.write_bytes(VaultLib([("default", VaultSecret(b"vault-pw"))]).encrypt(plain))
    assert PASSWORD.encode() not in vault.read_bytes()
    inv = _inv(siem, tmp_path / "inv")
    r = run_cli("siem", "sync", "--inventory", str(inv), "--json", "--vault-file", str(vault),
                "--vault-password-file", str(pw_file), env={"MSIB_SIEM_USER": "", "MSIB_SIEM_PASSWORD": ""})
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["agents"]["add"]) == len(APPLIANCES)
    pw_file.write_text("wrong\n")
    r = run_cli("siem", "sync", "--inventory", str(inv), "--vault-file", str(vault),
                "--vault-password-file", str(pw_file))
    assert r.returncode == 2 and "cannot decrypt" in r.stderr


def test_the_url_override_and_paging_through_many_agents(siem: LabSiem, tmp_path: Path) -> None:
    apps = [appliance(f"col-int-{i}", f"198.18.{30 + i // 200}.{i % 200 + 1}") for i in range(1, 31)]
    inv = write_inventory(tmp_path / "inv", "lab", apps, OBJECTS)  # no URL in hosts.yml
    r = run_cli("siem", "sync", "--inventory", str(inv), "--json")
    assert r.returncode == 2 and "--url" in r.stderr
    out = _sync_json(inv, "--url", siem.url, "--ca-file", str(siem.ca_file))
    assert len(out["agents"]["add"]) == 30
    loaded = sb_inventory(inv, url=siem.url, ca_file=siem.ca_file)
    with siem.driver(page_size=7) as d:
        assert len(d.list_agents("lab.")) == 30
        before = d.counts.read
        assert sync(loaded, d).plan.nothing_to_do
        assert d.counts.read - before >= 5  # ceil(30/7) pages, a login, the list


def test_ca_file_of_the_siem_relative_to_the_inventory(siem: LabSiem, tmp_path: Path) -> None:
    """No `api.ca_file`: the SIEM's `ca_file` (site plan `siem.ca_file`) is used, relative to DIR."""
    import shutil

    import yaml

    inv = write_inventory(tmp_path / "inv", "lab", APPLIANCES, OBJECTS, url=siem.url)
    shutil.copy(siem.ca_file, inv / "siem-ca.pem")
    hosts = yaml.safe_load((inv / "hosts.yml").read_text())
    hosts["all"]["vars"]["msib_siem"]["ca_file"] = "siem-ca.pem"
    (inv / "hosts.yml").write_text(yaml.safe_dump(hosts))
    assert sb_inventory(inv).ca_file == inv / "siem-ca.pem"
    assert len(_sync_json(inv)["agents"]["add"]) == len(APPLIANCES)


def test_no_ca_is_refused_before_connecting_unless_told_system_ca(siem: LabSiem, tmp_path: Path) -> None:
    inv = write_inventory(tmp_path / "inv", "lab", APPLIANCES, OBJECTS, url=siem.url)  # no CA anywhere
    r = run_cli("siem", "sync", "--inventory", str(inv), "--json")
    assert r.returncode == 2 and "no CA for the SIEM's certificate" in r.stderr and "--system-ca" in r.stderr
    assert r.stdout == "" and _names(siem, "lab-") == {}
    # told to trust the system's store: it does, and the lab SIEM's private CA is not in it
    told = run_cli("siem", "sync", "--inventory", str(inv), "--json", "--system-ca")
    assert told.returncode == 1 and "the system trust store" in told.stderr, told.stderr
    assert _names(siem, "lab-") == {}
