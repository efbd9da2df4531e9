"""The lab SIEM's API, pinned against the table in shared/spec/siem.md (Wazuh server API v4).

Every test talks to the real server over real HTTPS on 127.0.0.1, verified against a fresh CA.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from siem_helpers import PASSWORD, READONLY_PASSWORD, READONLY_USER, USER, LabSiem, start_lab_siem


@pytest.fixture
def siem(tmp_path: Path) -> Iterator[LabSiem]:
    server = start_lab_siem(tmp_path / "siem")
    yield server
    server.stop()


def _auth(siem: LabSiem) -> dict[str, str]:
    return {"Authorization": f"Bearer {siem.token()}"}


def _error_shape(r: httpx.Response, status: int, code: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert {"title", "detail", "error"} <= set(body)
    assert body["error"] == code
    return body


def _item_failure(r: httpx.Response, code: int, item: str) -> dict[str, Any]:
    """Wazuh's answer when the one item of a call failed (siem.md): HTTP 200, JSON, `error` 1, the code
    in `data.failed_items` -- never an HTTP error, never list text."""
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = r.json()
    assert body["error"] == 1
    data = body["data"]
    assert data["affected_items"] == [] and data["total_affected_items"] == 0 and data["total_failed_items"] == 1
    (failed,) = data["failed_items"]
    assert failed["error"]["code"] == code and failed["error"]["message"] and failed["id"] == [item]
    return body


def _add(c: httpx.Client, h: dict[str, str], name: str, ip: str = "10.0.0.1") -> httpx.Response:
    return c.post("/agents", json={"name": name, "ip": ip}, headers=h)


# --- log in ---------------------------------------------------------------------------------------


def test_login_with_basic_auth_returns_a_jwt_living_900_s(siem: LabSiem) -> None:
    from msib.siem.jwt import unverified_claims

    with siem.http() as c:
        r = c.post("/security/user/authenticate", auth=(USER, PASSWORD))
        assert r.status_code == 200
        body = r.json()
        assert body["error"] == 0
        token = body["data"]["token"]
        claims = unverified_claims(token)
        assert 899.9 <= claims["exp"] - claims["iat"] <= 900.1 and claims["nbf"] <= claims["iat"]
        assert c.get("/agents", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_login_raw_true_returns_the_token_as_text(siem: LabSiem) -> None:
    with siem.http() as c:
        r = c.post("/security/user/authenticate", params={"raw": "true"}, auth=(USER, PASSWORD))
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        assert c.get("/agents", headers={"Authorization": f"Bearer {r.text}"}).status_code == 200


def test_wrong_password_is_401_in_the_error_shape(siem: LabSiem) -> None:
    with siem.http() as c:
        body = _error_shape(c.post("/security/user/authenticate", auth=(USER, "wrong")), 401, 401)
        assert body["detail"] == "Invalid credentials"


def test_calls_without_or_with_a_forged_token_are_401(siem: LabSiem) -> None:
    token = siem.token()
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with siem.http() as c:
        _error_shape(c.get("/agents"), 401, 401)
        body = _error_shape(c.get("/agents", headers={"Authorization": f"Bearer {forged}"}), 401, 401)
        assert body["detail"] == "Invalid token"


def test_token_expires_after_the_configured_lifetime(tmp_path: Path) -> None:
    siem = start_lab_siem(tmp_path / "s", token_ttl=1.0)
    try:
        h = _auth(siem)
        with siem.http() as c:
            assert c.get("/agents", headers=h).status_code == 200
            time.sleep(1.3)
            assert _error_shape(c.get("/agents", headers=h), 401, 401)["detail"] == "Invalid token"
    finally:
        siem.stop()


# --- list -----------------------------------------------------------------------------------------


def test_list_envelope_and_the_manager_is_agent_000(siem: LabSiem) -> None:
    with siem.http() as c:
        body = c.get("/agents", params={"select": "id,name,ip,status"}, headers=_auth(siem)).json()
    assert body["error"] == 0 and isinstance(body["message"], str)
    data = body["data"]
    assert set(data) == {"affected_items", "total_affected_items", "total_failed_items", "failed_items"}
    assert data["total_affected_items"] == 1 and data["failed_items"] == [] and data["total_failed_items"] == 0
    assert data["affected_items"][0]["id"] == "000"
    assert set(data["affected_items"][0]) == {"id", "name", "ip", "status"}


def test_limit_defaults_to_500_and_is_at_most_100000(siem: LabSiem) -> None:
    h = _auth(siem)
    with siem.http() as c:
        for i in range(501):
            assert _add(c, h, f"bulk-{i:04d}", f"10.1.{i // 250}.{i % 250 + 1}").status_code == 200
        page = c.get("/agents", headers=h).json()["data"]
        assert len(page["affected_items"]) == 500
        assert page["total_affected_items"] == 502  # the manager too
        rest = c.get("/agents", params={"offset": 500}, headers=h).json()["data"]
        assert [a["name"] for a in rest["affected_items"]] == ["bulk-0499", "bulk-0500"]
        assert len(c.get("/agents", params={"limit": 100000}, headers=h).json()["data"]["affected_items"]) == 502
        _error_shape(c.get("/agents", params={"limit": 100001}, headers=h), 400, 400)
        _error_shape(c.get("/agents", params={"limit": 0}, headers=h), 400, 400)


def test_search_matches_a_substring_anywhere_not_a_prefix(siem: LabSiem) -> None:
    """Wazuh's `search` is a substring match: the driver must check the prefix itself."""
    h = _auth(siem)
    with siem.http() as c:
        _add(c, h, "lab-col-1", "10.0.0.1")
        _add(c, h, "xlab-col-1", "10.0.0.2")
        _add(c, h, "other-1", "10.0.0.3")
        names = [a["name"] for a in c.get("/agents", params={"search": "lab-"}, headers=h).json()["data"]
                 ["affected_items"]]
    assert names == ["lab-col-1", "xlab-col-1"]


def test_select_of_an_unknown_field_is_error_1724(siem: LabSiem) -> None:
    with siem.http() as c:
        _error_shape(c.get("/agents", params={"select": "id,nosuch"}, headers=_auth(siem)), 400, 1724)


def test_unknown_query_parameter_is_400(siem: LabSiem) -> None:
    with siem.http() as c:
        body = _error_shape(c.get("/agents", params={"serach": "x"}, headers=_auth(siem)), 400, 400)
    assert "serach" in body["detail"]


# --- add ------------------------------------------------------------------------------------------


def test_add_returns_id_and_key_and_a_taken_name_is_duplicate(siem: LabSiem) -> None:
    h = _auth(siem)
    with siem.http() as c:
        r = _add(c, h, "lab-col-1", "10.0.0.1")
        assert r.status_code == 200
        body = r.json()
        assert body["error"] == 0 and body["data"]["id"] == "001" and body["data"]["key"]
        dup = _error_shape(_add(c, h, "lab-col-1", "10.0.0.9"), 400, 1705)
        assert "Duplicate" in dup["detail"] and "lab-col-1" in dup["detail"]


def test_add_with_a_non_json_body_is_406(siem: LabSiem) -> None:
    with siem.http() as c:
        r = c.post("/agents", content=b"name=x", headers={**_auth(siem), "Content-Type": "text/plain"})
        _error_shape(r, 406, 6002)


# --- delete ---------------------------------------------------------------------------------------


def test_delete_requires_agents_list_and_status(siem: LabSiem) -> None:
    h = _auth(siem)
    with siem.http() as c:
        _add(c, h, "lab-col-1")
        assert "agents_list" in _error_shape(c.delete("/agents", params={"status": "all"}, headers=h), 400, 400)[
            "detail"]
        assert "status" in _error_shape(c.delete("/agents", params={"agents_list": "001"}, headers=h), 400, 400)[
            "detail"]


def test_delete_defaults_older_than_7d_so_a_new_agent_is_not_deleted(siem: LabSiem) -> None:
    h = _auth(siem)
    with siem.http() as c:
        _add(c, h, "lab-col-1")
        body = c.delete("/agents", params={"agents_list": "001", "status": "all"}, headers=h).json()
        assert body["data"]["affected_items"] == [] and body["data"]["older_than"] == "7d"
        assert body["data"]["failed_items"][0]["error"]["code"] == 1731
        assert body["data"]["failed_items"][0]["id"] == ["001"]
        assert [a["name"] for a in c.get("/agents", headers=h).json()["data"]["affected_items"]][1:] == ["lab-col-1"]


def test_delete_without_purge_frees_the_name_as_wazuh_4_does(siem: LabSiem) -> None:
    h = _auth(siem)
    with siem.http() as c:
        _add(c, h, "lab-col-1")
        body = c.delete("/agents", params={"agents_list": "001", "status": "all", "older_than": "0s"},
                        headers=h).json()
        assert body["error"] == 0 and body["data"]["affected_items"] == ["001"]
        listed = c.get("/agents", params={"search": "lab-col-1"}, headers=h).json()["data"]
        assert listed["total_affected_items"] == 0
        again = _add(c, h, "lab-col-1")
        assert again.status_code == 200 and again.json()["data"]["id"] == "002"


def test_delete_with_purge_frees_the_name_and_ids_are_not_reused(siem: LabSiem) -> None:
    h = _auth(siem)
    with siem.http() as c:
        _add(c, h, "lab-col-1")
        params = {"agents_list": "001", "status": "all", "older_than": "0s", "purge": "true"}
        assert c.delete("/agents", params=params, headers=h).json()["data"]["affected_items"] == ["001"]
        again = _add(c, h, "lab-col-1")
        assert again.status_code == 200 and again.json()["data"]["id"] == "002"


def test_delete_of_the_manager_and_of_unknown_ids_fails_per_item(siem: LabSiem) -> None:
    h = _auth(siem)
    with siem.http() as c:
        body = c.delete("/agents", params={"agents_list": "000,099", "status": "all", "older_than": "0s"},
                        headers=h).json()
    codes = {item["error"]["code"]: item["id"] for item in body["data"]["failed_items"]}
    assert codes == {1703: ["000"], 1701: ["099"]}
    # none deleted: error 1 (siem.md: 0 all, 1 none, 2 some)
    assert body["error"] == 1 and body["data"]["total_failed_items"] == 2
    assert body["message"] == "No agents were deleted"


def test_error_is_2_when_some_items_succeeded_and_some_failed(siem: LabSiem) -> None:
    h = _auth(siem)
    with siem.http() as c:
        _add(c, h, "lab-col-1")
        listed = c.get("/agents", params={"agents_list": "001,099"}, headers=h).json()
        assert listed["error"] == 2 and listed["data"]["total_affected_items"] == 1
        assert listed["data"]["failed_items"][0]["error"]["code"] == 1701
        body = c.delete("/agents", params={"agents_list": "001,099", "status": "all", "older_than": "0s"},
                        headers=h).json()
    assert body["error"] == 2 and body["message"] == "Some agents were not deleted"
    assert body["data"]["affected_items"] == ["001"] and body["data"]["failed_items"][0]["id"] == ["099"]


def test_delete_with_a_status_filter_skips_other_statuses(siem: LabSiem) -> None:
    h = _auth(siem)
    with siem.http() as c:
        _add(c, h, "lab-col-1")
        body = c.delete("/agents", params={"agents_list": "001", "status": "active", "older_than": "0s"},
                        headers=h).json()
    assert body["data"]["affected_items"] == [] and body["data"]["failed_items"][0]["error"]["code"] == 1731


# --- CDB lists ------------------------------------------------------------------------------------


def _put(c: httpx.Client, h: dict[str, str], name: str, text: str, **params: str) -> httpx.Response:
    return c.put(f"/lists/files/{name}", params=params, content=text.encode(),
                 headers={**h, "Content-Type": "application/octet-stream"})


@pytest.mark.parametrize("raw", ["true", "false"])
def test_list_read_of_a_missing_list_is_200_with_error_1_and_code_1802(siem: LabSiem, raw: str) -> None:
    with siem.http() as c:
        r = c.get("/lists/files/msib-lab-objects", params={"raw": raw}, headers=_auth(siem))
    body = _item_failure(r, 1802, "msib-lab-objects")
    assert body["data"]["failed_items"][0]["error"]["message"] == "Lists file not found"


def test_list_publish_read_overwrite_and_delete(siem: LabSiem) -> None:
    h = _auth(siem)
    text = '10.0.0.5:pc5,internal,windows\n"2001:db8::5":srv,external,linux\n'
    with siem.http() as c:
        r = _put(c, h, "msib-lab-objects", text)
        assert r.status_code == 200 and r.json()["error"] == 0
        assert r.json()["data"]["affected_items"] == ["etc/lists/msib-lab-objects"]  # Wazuh's relative path
        got = c.get("/lists/files/msib-lab-objects", params={"raw": "true"}, headers=h)
        assert got.status_code == 200 and got.text == text and got.headers["content-type"].startswith("text/plain")
        # without overwrite over an existing file: 200, error 1, code 1905, and the file unchanged
        _item_failure(_put(c, h, "msib-lab-objects", "10.0.0.6:x,internal,linux\n"), 1905,
                      "etc/lists/msib-lab-objects")
        assert c.get("/lists/files/msib-lab-objects", params={"raw": "true"}, headers=h).text == text
        assert _put(c, h, "msib-lab-objects", "10.0.0.6:x,internal,linux\n", overwrite="true").json()["error"] == 0
        assert c.get("/lists/files/msib-lab-objects", params={"raw": "true"}, headers=h).text == (
            "10.0.0.6:x,internal,linux\n")
        d = c.delete("/lists/files/msib-lab-objects", headers=h)
        assert d.status_code == 200 and d.json()["error"] == 0
        assert d.json()["data"]["affected_items"] == ["etc/lists/msib-lab-objects"]
        _item_failure(c.delete("/lists/files/msib-lab-objects", headers=h), 1906, "etc/lists/msib-lab-objects")
        # a deleted list's name is free again: a PUT without overwrite creates it
        assert _put(c, h, "msib-lab-objects", text).json()["error"] == 0


def test_list_publish_needs_octet_stream_and_key_value_lines(siem: LabSiem) -> None:
    h = _auth(siem)
    with siem.http() as c:
        r = c.put("/lists/files/l1", content=b"a:b\n", headers={**h, "Content-Type": "application/json"})
        _error_shape(r, 406, 6002)
        body = _item_failure(_put(c, h, "l1", "no colon here\n"), 1800, "etc/lists/l1")
        assert body["data"]["failed_items"][0]["error"]["message"] == "Bad format in CDB list etc/lists/l1"
        _item_failure(c.get("/lists/files/l1", params={"raw": "true"}, headers=h), 1802, "l1")  # nothing stored


def test_a_body_over_max_upload_size_is_413(tmp_path: Path) -> None:
    siem = start_lab_siem(tmp_path / "s", max_upload=1000)
    try:
        with siem.http() as c:
            _error_shape(_put(c, _auth(siem), "big", "10.0.0.1:" + "x" * 2000 + "\n"), 413, 413)
    finally:
        siem.stop()


# --- HTTP-level errors, permissions, rate limit ---------------------------------------------------


def test_unknown_path_is_404_and_wrong_method_is_405(siem: LabSiem) -> None:
    h = _auth(siem)
    with siem.http() as c:
        _error_shape(c.get("/nosuch", headers=h), 404, 404)
        _error_shape(c.patch("/agents", headers=h), 405, 405)


def test_a_readonly_user_may_read_but_not_write(siem: LabSiem) -> None:
    h = {"Authorization": f"Bearer {siem.token(READONLY_USER, READONLY_PASSWORD)}"}
    with siem.http() as c:
        assert c.get("/agents", headers=h).status_code == 200
        _error_shape(_add(c, h, "lab-col-1"), 403, 4000)


def test_over_the_per_minute_limit_is_429_code_6001_until_the_window_ends(tmp_path: Path) -> None:
    siem = start_lab_siem(tmp_path / "s", max_rpm=5, window=1.5)
    try:
        time.sleep(1.6)  # a fresh window
        with siem.http() as c:
            h = {"Authorization": f"Bearer {siem.token()}"}  # request 1
            answers = [c.get("/agents", headers=h).status_code for _ in range(5)]  # 2..6
            assert answers == [200, 200, 200, 200, 429]
            body = _error_shape(c.get("/agents", headers=h), 429, 6001)
            assert body["detail"] == "Maximum number of requests per minute reached"
            time.sleep(1.6)
            assert c.get("/agents", headers=h).status_code == 200
    finally:
        siem.stop()


def test_stats_count_reads_writes_and_logins(siem: LabSiem) -> None:
    before = siem.stats()["requests"]
    h = _auth(siem)  # a login
    with siem.http() as c:
        c.get("/agents", headers=h)
        _add(c, h, "lab-col-1")
        _put(c, h, "l1", "a:b\n")
    after = siem.stats()
    assert after["lab_only"]
    delta = {k: after["requests"][k] - before[k] for k in ("read", "write", "login")}
    assert delta == {"read": 1, "write": 2, "login": 1}


# --- persistence ----------------------------------------------------------------------------------


def test_agents_lists_and_used_ids_survive_a_restart(siem: LabSiem) -> None:
    h = _auth(siem)
    with siem.http() as c:
        _add(c, h, "lab-col-1", "10.0.0.1")
        _add(c, h, "lab-fw-1", "10.0.0.2")
        c.delete("/agents", params={"agents_list": "002", "status": "all", "older_than": "0s"}, headers=h)
        _put(c, h, "msib-lab-objects", "10.0.0.5:pc5,internal,windows\n")
    siem.restart()
    h = _auth(siem)
    with siem.http() as c:
        assert [a["name"] for a in c.get("/agents", headers=h).json()["data"]["affected_items"]][1:] == ["lab-col-1"]
        _error_shape(_add(c, h, "lab-col-1"), 400, 1705)
        assert c.get("/lists/files/msib-lab-objects", params={"raw": "true"}, headers=h).text == (
            "10.0.0.5:pc5,internal,windows\n")
        assert _add(c, h, "lab-ids-1").json()["data"]["id"] == "003"  # IDs are never reused
