"""Helpers for the SIEM tests: a real lab SIEM API server (subprocess, real HTTPS, fresh CA) and
hand-written inventory directories (hosts.yml + objects.json per docs/inventory-contract.md)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from msib.lab.pki import LabCA
from msib.lab.siem.users import write_users_file
from msib.secrets import Secret
from msib.siem.credentials import Credentials
from msib.siem.wazuh import RetryPolicy, WazuhDriver

USER, PASSWORD = "msib-sync", "s3cret-Lab-pw"
READONLY_USER, READONLY_PASSWORD = "auditor", "read-0nly-pw"


@dataclass
class LabSiem:
    """One running lab SIEM API server."""

    root: Path
    ca: LabCA
    args: list[str]
    proc: subprocess.Popen[str] | None = None
    port: int = 0
    stderr: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.ca.cert_path

    def start(self) -> None:
        port = ["--port", str(self.port)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "msib.lab.siem.api", *self.args, *port],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        line = _readline(self.proc, 20.0)
        m = re.search(r"listening on https://127\.0\.0\.1:(\d+)", line)
        if not m:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            self.stop()
            raise RuntimeError(f"lab SIEM did not start: {line!r} {err}")
        self.port = int(m.group(1))
        assert self.proc.stderr is not None
        threading.Thread(target=_drain, args=(self.proc.stderr, self.stderr), daemon=True).start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def http(self, **kw: Any) -> httpx.Client:
        """A plain HTTPS client verifying the lab CA (for pinning the API itself)."""
        return httpx.Client(base_url=self.url, verify=_ctx(self.ca_file), timeout=10, **kw)

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """One request; the tests' own checks wait out the server's rate limit (429) too."""
        with self.http() as c:
            for _ in range(100):
                r = c.request(method, path, **kw)
                if r.status_code != 429:
                    return r
                time.sleep(0.2)
        raise AssertionError(f"{method} {path}: still 429")

    def token(self, user: str = USER, password: str = PASSWORD) -> str:
        r = self.call("POST", "/security/user/authenticate", auth=(user, password))
        r.raise_for_status()
        return str(r.json()["data"]["token"])

    def stats(self) -> dict[str, Any]:
        with self.http() as c:
            r = c.get("/msib-lab/stats")
            r.raise_for_status()
            data: dict[str, Any] = r.json()
            return data

    def writes(self) -> int:
        return int(self.stats()["requests"]["write"])

    def driver(self, **kw: Any) -> WazuhDriver:
        kw.setdefault("ca_file", self.ca_file)
        kw.setdefault("retry", RetryPolicy(attempts=12, base=0.25, cap=2.0))
        return WazuhDriver(self.url, Credentials(USER, Secret(PASSWORD)), **kw)

    def agents(self, search: str | None = None) -> list[dict[str, Any]]:
        """Every agent the SIEM lists (manager included), through the API itself."""
        params: dict[str, Any] = {"limit": 100000}
        if search:
            params["search"] = search
        r = self.call("GET", "/agents", params=params, headers={"Authorization": f"Bearer {self.token()}"})
        r.raise_for_status()
        items: list[dict[str, Any]] = r.json()["data"]["affected_items"]
        return items

    def list_text(self, name: str) -> str | None:
        r = self.call("GET", f"/lists/files/{name}", params={"raw": "true"},
                      headers={"Authorization": f"Bearer {self.token()}"})
        r.raise_for_status()
        if r.headers["content-type"].startswith("application/json"):  # Wazuh's envelope: no such list
            codes = [f["error"]["code"] for f in r.json()["data"]["failed_items"]]
            assert codes == [1802], r.text
            return None
        return r.text


@dataclass
class InProcessLabSiem(LabSiem):
    """The same lab SIEM served from a thread of the test process (real HTTPS on 127.0.0.1), so a
    test can reach into :attr:`app` to inject a fault the real Wazuh can have (a file it cannot delete)."""

    server: Any = None
    thread: threading.Thread | None = None

    @property
    def app(self) -> Any:
        return self.server.app

    def start(self) -> None:
        from msib.lab.siem.api import _parse_args, make_server

        self.server = make_server(_parse_args([*self.args, "--port", str(self.port)]))
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server.app.store.close()
            self.server = None


def _ctx(ca: Path) -> Any:
    import ssl

    return ssl.create_default_context(cafile=str(ca))


def _readline(proc: subprocess.Popen[str], timeout: float) -> str:
    box: list[str] = []
    assert proc.stdout is not None
    t = threading.Thread(target=lambda: box.append(proc.stdout.readline() if proc.stdout else ""), daemon=True)
    t.start()
    t.join(timeout)
    return box[0] if box else ""


def _drain(stream: Any, sink: list[str]) -> None:
    for line in stream:
        sink.append(line)


def start_lab_siem(
    root: Path,
    *,
    token_ttl: float = 900,
    max_rpm: int = 100_000,
    window: float = 60.0,
    max_upload: int | None = None,
    client_ca: Path | None = None,
    in_process: bool = False,
) -> LabSiem:
    """Start a lab SIEM on 127.0.0.1 with a fresh CA under `root` (certificate for 127.0.0.1); a
    subprocess, or a thread of this process with `in_process`."""
    root.mkdir(parents=True, exist_ok=True)
    ca = LabCA.ensure(root / "pki")
    server = ca.server_cert("siem", dns_names=["siem.lab.msib", "localhost"], ip_addresses=["127.0.0.1"])
    users = root / "users.json"
    write_users_file(users, {USER: (PASSWORD, "administrator"), READONLY_USER: (READONLY_PASSWORD, "readonly")},
                     iterations=1000)
    args = ["--listen", "127.0.0.1", "--state", str(root / "state"), "--cert", str(server.cert),
            "--key", str(server.key), "--users-file", str(users), "--token-ttl", str(token_ttl),
            "--max-requests-per-minute", str(max_rpm), "--rate-window", str(window), "--quiet"]
    if max_upload is not None:
        args += ["--max-upload-size", str(max_upload)]
    if client_ca is not None:
        args += ["--client-ca", str(client_ca)]
    siem = InProcessLabSiem(root, ca, args) if in_process else LabSiem(root, ca, args)
    siem.start()
    return siem


# --- inventories ------------------------------------------------------------------------------------

ROLE_BY_PREFIX = {"col": "collector", "ids": "ids_sensor", "fw": "firewall", "net": "netdev"}


def appliance(name: str, address: str) -> tuple[str, str, str]:
    """(name, group, address); the group follows the name's prefix (col/ids/fw/net)."""
    return name, ROLE_BY_PREFIX[name.split("-")[0]], address


def obj(ip: str, hostname: str, circuit: str = "internal", os_family: str = "windows") -> dict[str, Any]:
    """One objects.json entry with the fields the contract names."""
    return {"sb": "test", "department": "IT", "location": "HQ", "responsible": "admin", "hostname": hostname,
            "ip": ip, "os": "Windows 10", "os_family": os_family, "os_eol": False, "circuit": circuit,
            "source": {"file": "appendix.xlsx", "sheet": "Лист1", "row": 5}}


def write_inventory(
    directory: Path,
    code: str,
    appliances: Sequence[tuple[str, str, str]],
    objects: Iterable[dict[str, Any]],
    *,
    url: str | None = None,
    ca_file: str | None = None,
) -> Path:
    """Write hosts.yml and objects.json as `msib inventory build` does (docs/inventory-contract.md)."""
    directory.mkdir(parents=True, exist_ok=True)
    groups: dict[str, Any] = {g: {"hosts": {}} for g in ("collector", "ids_sensor", "firewall", "netdev")}
    circuit_hosts: dict[str, Any] = {}
    for name, group, address in appliances:
        role = "firewall" if group == "netdev" else group
        groups[group]["hosts"][name] = {
            "ansible_host": address, "msib_circuit": "internal",
            "msib_appliance": {"name": name, "role": role, "address": address, "lan_address": None,
                               "uplink_address": None, "capture_interface": "eth1" if role == "ids_sensor" else None,
                               "platform": "cisco_ios" if group == "netdev" else None, "port": 22},
        }
        circuit_hosts[name] = {}
    api: dict[str, Any] = {"driver": "wazuh"}
    if url:
        api["url"] = url
    if ca_file:
        api["ca_file"] = ca_file
    hosts = {"all": {
        "vars": {"msib_sb_code": code, "msib_state_body": "Test SB",
                 "msib_siem": {"syslog": {"host": "127.0.0.1", "port": 6514, "transport": "tls"}, "api": api},
                 "ansible_user": "msib"},
        "children": {code: {"children": {"collector": {}, "ids_sensor": {}, "firewall": {}}},
                     **groups, "circuit_internal": {"hosts": circuit_hosts}},
    }}
    (directory / "hosts.yml").write_text(yaml.safe_dump(hosts, allow_unicode=True, sort_keys=False), encoding="utf-8")
    (directory / "objects.json").write_text(json.dumps(list(objects), ensure_ascii=False, indent=1), encoding="utf-8")
    return directory


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `msib ARGS` as a user would, with the lab SIEM credentials in the environment."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MSIB_SIEM_")}
    full_env.update({"MSIB_SIEM_USER": USER, "MSIB_SIEM_PASSWORD": PASSWORD})
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", "from msib.cli import main; main()", *args],
                          capture_output=True, text=True, env=full_env, timeout=timeout)


# --- two SBs whose codes are prefixes of each other (mcri, mcri-kz) ---------------------------------

#: `mcri.kz-col-1` and `mcri-kz.col-1`: with `<code>-<appliance>` both were `mcri-kz-col-1`
PREFIX_PAIR: dict[str, dict[str, Any]] = {
    "mcri": {"appliances": [appliance("col-int-1", "198.18.31.10"), ("kz-col-1", "collector", "198.18.31.11"),
                            appliance("fw-int-1", "198.18.31.1")],
             "objects": [obj(f"198.18.16.{i}", f"pc{i}.mcri.local") for i in range(1, 6)]},
    "mcri-kz": {"appliances": [appliance("col-int-1", "198.18.47.10"), appliance("col-1", "198.18.47.11")],
                "objects": [obj(f"198.18.17.{i}", f"pc{i}.mcri-kz.local", "external", "linux")
                            for i in range(1, 4)]},
}


def siem_state(driver: WazuhDriver, codes: Iterable[str]) -> dict[str, Any]:
    """Every agent of the SIEM (name -> (id, ip)) and the object list of each code, as the SIEM has them."""
    agents = {a.name: (a.id, a.ip) for a in driver.list_agents("")}
    return {"agents": agents, "lists": {c: driver.read_list(f"msib-{c}-objects") for c in codes}}


def prefix_pair_scenario(make_driver: Any, root: Path, first: str, emptied: str, rounds: int = 3) -> None:
    """Sync `mcri` and `mcri-kz` into one SIEM in the order `first`, then alternately `rounds` times,
    then empty `emptied`: each sync touches its own agents and list only, repeated syncs send no
    write (no flapping), and the other SB's agents keep their IDs and its list its bytes."""
    from msib.siem.sync import sb_inventory, sync

    other = next(c for c in PREFIX_PAIR if c != emptied)
    order = [first, next(c for c in PREFIX_PAIR if c != first)]
    invs = {c: sb_inventory(write_inventory(root / c, c, PREFIX_PAIR[c]["appliances"], PREFIX_PAIR[c]["objects"]))
            for c in PREFIX_PAIR}
    with make_driver() as d:
        for code in order:
            result = sync(invs[code], d)
            assert result.plan.remove == (), f"{code} removed {result.plan.remove}"
            assert sorted(s.name for s in result.plan.add) == sorted(
                f"{code}.{n}" for n, _, _ in PREFIX_PAIR[code]["appliances"])
        settled = siem_state(d, PREFIX_PAIR)
        for code in PREFIX_PAIR:
            mine = {n for n in settled["agents"] if n.startswith(f"{code}.")}
            assert mine == {f"{code}.{n}" for n, _, _ in PREFIX_PAIR[code]["appliances"]}
            assert len(settled["lists"][code]) == len(PREFIX_PAIR[code]["objects"])
        for _ in range(rounds):
            for code in order:
                result = sync(invs[code], d)
                assert result.plan.nothing_to_do and result.write_requests == 0, (code, result.as_json())
        assert siem_state(d, PREFIX_PAIR) == settled
        empty = sb_inventory(write_inventory(root / f"{emptied}-empty", emptied, [], []))
        gone = sync(empty, d)
        assert sorted(a.name for a in gone.plan.remove) == sorted(n for n in settled["agents"]
                                                                  if n.startswith(f"{emptied}."))
        after = siem_state(d, PREFIX_PAIR)
        assert {n: v for n, v in after["agents"].items() if n.startswith(f"{other}.")} == {
            n: v for n, v in settled["agents"].items() if n.startswith(f"{other}.")}
        assert not any(n.startswith(f"{emptied}.") for n in after["agents"])
        assert after["lists"] == {emptied: None, other: settled["lists"][other]}
        for _ in range(rounds):
            assert sync(invs[other], d).write_requests == 0
            assert sync(empty, d).write_requests == 0
        assert siem_state(d, PREFIX_PAIR) == after


def empty_sbs(make_driver: Any, root: Path, codes: Iterable[str]) -> None:
    """Sync each SB with no appliances and no objects: what a SIEM shared with other tests starts from."""
    from msib.siem.sync import sb_inventory, sync

    with make_driver() as d:
        for code in codes:
            sync(sb_inventory(write_inventory(root / f"{code}-clean", code, [], [])), d)
