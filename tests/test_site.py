"""The site plan: validated as strictly as the appendix, with a published schema.

Every error names the file, the key path and what to do; `msib site validate` says it in one line
with exit status 2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from data.appendix_forms import SITE_YAML
from msib.errors import InputError
from msib.site import json_schema, json_schema_text, load_site, parse_site

REPO = Path(__file__).resolve().parent.parent
SCHEMA_FILE = REPO / "schemas" / "site.schema.json"


def _plan(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(SITE_YAML)
    for path, value in changes.items():
        node = data
        keys = path.split("__")
        for key in keys[:-1]:
            node = node[int(key)] if key.isdigit() else node[key]
        last = keys[-1]
        if value is _DELETE:
            del node[last]
        elif last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value
    return data


_DELETE = object()


def test_committed_schema_is_the_generated_one() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == json_schema_text()


def test_the_siem_transport_defaults_to_relp_over_tls_and_the_port_follows_it() -> None:
    from msib.site import SyslogEndpoint

    assert (SyslogEndpoint(host="siem.example").transport, SyslogEndpoint(host="siem.example").port) == (
        "relp+tls", 2514)
    assert SyslogEndpoint(host="siem.example", transport="tls").port == 6514
    assert SyslogEndpoint(host="siem.example", transport="tls", port=7514).port == 7514
    lab = load_site(REPO / "inventories" / "lab" / "site.yml").siem.syslog
    assert (lab.transport, lab.port) == ("relp+tls", 2514), "the lab must prove the shipped default"


def test_schema_accepts_the_plans_the_model_accepts() -> None:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    for path in (REPO / "inventories" / "lab" / "site.yml",):
        jsonschema.validate(yaml.safe_load(path.read_text(encoding="utf-8")), schema)
    jsonschema.validate(yaml.safe_load(SITE_YAML), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(_plan(colour="blue"), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(_plan(circuits__internal__appliances__0__role="router"), schema)


@pytest.mark.parametrize(
    ("changes", "where", "words"),
    [
        ({"colour": "blue"}, "colour", "unknown key"),
        ({"circuits__internal__appliances__0__adress": "10.20.250.10"}, "circuits.internal.appliances[0].adress",
         "unknown key"),
        ({"code": "MCRI!"}, "code", "pattern"),
        ({"circuits__internal__appliances__0__role": "router"}, "circuits.internal.appliances[0].role", "'collector'"),
        ({"circuits__external__networks": ["192.0.2.0/24", "10.20.128.0/17"]}, "circuits.internal.networks",
         "overlaps circuits.external.networks"),
        ({"circuits__internal__networks": ["10.20.0.0/16", "10.20.5.0/24"]}, "circuits.internal.networks",
         "overlaps"),
        ({"circuits__internal__networks": ["10.20.0.1/16"]}, "circuits.internal.networks", "network address"),
        ({"circuits__internal__appliances__0__address": "192.0.2.77"}, "circuits.internal.appliances[0].address",
         "outside the circuit"),
        ({"circuits__internal__appliances__1__address": "10.20.250.10"}, "circuits.internal.appliances[1].address",
         "is also circuits.internal.appliances[0].address"),
        ({"circuits__internal__appliances__0__address": "10.20.99.10"}, "circuits.internal.appliances[0].address",
         "lies in excluded[0]"),
        ({"circuits__internal__appliances__1__capture_interface": _DELETE}, "circuits.internal.appliances[1]",
         "capture_interface"),
        ({"circuits__internal__appliances__0__platform": "nftables"}, "circuits.internal.appliances[0]",
         "only for role firewall"),
        ({"excluded__0__hostname": "x-*"}, "excluded[0]", "exactly one of network or hostname"),
        ({"excluded__0__reason": "secret"}, "excluded[0].reason", "'state_secrets'"),
        ({"siem__syslog__transport": "udp"}, "siem.syslog.transport", "'tls'"),
        ({"siem": _DELETE}, "siem", "Field required"),
    ],
)
def test_invalid_plan_names_key_path_and_fix(changes: dict[str, Any], where: str, words: str) -> None:
    with pytest.raises(InputError) as info:
        parse_site(_plan(**changes), "site.yml")
    err = info.value
    assert err.file == "site.yml"
    assert err.where == where
    assert words in err.message
    assert err.fix
    assert err.exit_code == 2


@pytest.mark.parametrize(
    ("text", "words"),
    [("state_body: [unclosed\n", "not valid YAML"), ("- a list\n", "a YAML mapping"), ("", "a YAML mapping")],
)
def test_unparsable_plan_is_an_input_error(text: str, words: str, tmp_path: Path) -> None:
    path = tmp_path / "site.yml"
    path.write_text(text)
    with pytest.raises(InputError, match=words):
        load_site(path)


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from msib.cli import main; main()", *map(str, args)],
                          capture_output=True, text=True, check=False, env={**os.environ, "COLUMNS": "200"})


def test_cli_schema_prints_the_committed_schema(tmp_path: Path) -> None:
    proc = _cli("site", "schema")
    assert proc.returncode == 0
    assert proc.stdout == SCHEMA_FILE.read_text(encoding="utf-8")
    assert _cli("site", "schema", "--out", tmp_path / "s.json").returncode == 0
    assert json.loads((tmp_path / "s.json").read_text()) == json_schema()


def test_cli_validate_ok_and_one_line_error(tmp_path: Path) -> None:
    good = tmp_path / "good.yml"
    good.write_text(SITE_YAML)
    bad = tmp_path / "bad[1].yml"
    bad.write_text(yaml.safe_dump(_plan(circuits__internal__appliances__0__address="192.0.2.77"), allow_unicode=True))
    ok = _cli("site", "validate", good)
    assert ok.returncode == 0
    assert "ok:" in ok.stdout and "mcri" in ok.stdout
    proc = _cli("site", "validate", good, bad)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {bad}: ")
    assert "outside the circuit" in lines[0]
