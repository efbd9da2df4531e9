"""Fleets on disk for the tests: the lab's two SBs (inventories/lab, inventories/lab-akm) and variations."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "inventories" / "lab-fleet"
SITES = {"lab": REPO / "inventories" / "lab" / "site.yml", "akm": REPO / "inventories" / "lab-akm" / "site.yml"}


def site_data(code: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(SITES[code].read_text(encoding="utf-8"))
    return data


def write_sb(root: Path, directory: str, site: dict[str, Any], appendices: dict[str, str] | None = None,
             *, known_hosts: str | None = "") -> Path:
    """sbs/<directory>/ with site.yml, appendix files (name -> CSV text) and a known_hosts."""
    sb = root / "sbs" / directory
    (sb / "appendix").mkdir(parents=True, exist_ok=True)
    (sb / "site.yml").write_text(yaml.safe_dump(site, allow_unicode=True, sort_keys=False), encoding="utf-8")
    for name, text in (appendices or {}).items():
        (sb / "appendix" / name).write_text(text, encoding="utf-8")
    if known_hosts is not None:
        (sb / "known_hosts").write_text(known_hosts)
    return sb


def lab_appendices(code: str) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted((TEMPLATE / "appendix" / code).iterdir())}


def write_lab_like_fleet(root: Path, fleet_yml: str | None = None) -> Path:
    """A fleet of the lab's two SBs (their committed site plans and appendices; no lab needed)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "fleet.yml").write_text(fleet_yml if fleet_yml is not None else (TEMPLATE / "fleet.yml").read_text())
    for code in ("lab", "akm"):
        write_sb(root, code, site_data(code), lab_appendices(code))
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def refusing_site(code: str, port: int, *, circuits: int = 1) -> dict[str, Any]:
    """An SB whose appliances are on 127.0.0.x at a port where nothing listens (every connection refused)."""
    names = ["internal", "external"][:circuits]
    return {
        "state_body": f"Test body {code}", "code": code,
        "siem": {"syslog": {"host": "127.0.0.5"}, "api": {"url": "https://127.0.0.5:55000"}},
        "management": {"controllers": ["127.0.0.1/32"]},
        "circuits": {name: {"networks": [f"127.{i}.0.0/16"], "appliances": [
            {"name": f"col-{name[:3]}-1", "role": "collector", "address": f"127.{i}.0.1", "port": port}]}
            for i, name in enumerate(names, start=1)},
    }


def copy_template(root: Path) -> None:
    shutil.copyfile(TEMPLATE / "fleet.yml", root / "fleet.yml")
