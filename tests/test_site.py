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

from data.appendix_forms import SB as SB_NAME
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
        ({"code": "MCRI!"}, "code", "is not an SB code"),
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


# --- hostile strings (#14 item 20): nothing reaches a config file or a template unchecked ------------

#: the line a newline in siem.syslog.host would add to rsyslog.conf
INJECTED = 'siem.example"\n*.* action(type="omfile" file="/tmp/pwned")\n#'
PIPE = "{{ lookup('pipe', 'touch /tmp/pwned') }}"

HOSTILE = [
    ({"siem__syslog__host": INJECTED}, "siem.syslog.host", "U+000A (a line break)"),
    ({"siem__syslog__host": "siem.example rsyslog"}, "siem.syslog.host", "is not a host name or an IP address"),
    ({"siem__syslog__host": "fe80::1::2"}, "siem.syslog.host", "neither a host name nor an IPv6 address"),
    ({"siem__syslog__peer_name": "siem\r.example"}, "siem.syslog.peer_name", "U+000D (a carriage return)"),
    ({"siem__api__url": "https://siem.example:8443/\nx"}, "siem.api.url", "U+000A"),
    ({"siem__api__url": 'https://siem.example:8443/" x'}, "siem.api.url", "is not an https:// URL"),
    ({"siem__api__url": "https://" + PIPE}, "siem.api.url", "is not an https:// URL"),
    ({"siem__api__driver": "wa\nzuh"}, "siem.api.driver", "U+000A"),
    ({"siem__api__ca_file": PIPE}, "siem.api.ca_file", "is not a file path"),
    ({"siem__ca_file": "ca\n.pem"}, "siem.ca_file", "U+000A"),
    ({"management__package_proxy": 'http://10.20.250.5:3142"; Acquire::X "1'}, "management.package_proxy",
     "is not an http(s):// proxy URL"),
    ({"management__known_hosts": "known hosts"}, "management.known_hosts", "is not a file path"),
    ({"management__known_hosts": PIPE}, "management.known_hosts", "is not a file path"),
    ({"state_body": "МЦРИАП\nline two"}, "state_body", "U+000A (a line break)"),
    ({"state_body": "МЦРИАП\x00"}, "state_body", "U+0000 (a NUL byte)"),
    ({"state_body": "МЦ\u202eРИАП"}, "state_body", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
    ({"state_body": "\x1b]0;pwned\x07"}, "state_body", "U+001B"),
    ({"state_body": "x" * 501}, "state_body", "at most 500 characters"),
    ({"aliases": ["МЦРИАП РК", "two\nlines"]}, "aliases[1]", "U+000A"),
    ({"excluded__0": {"hostname": "kgs\n-*", "reason": "classified_system"}}, "excluded[0].hostname", "U+000A"),
    ({"code": "mcri.kz"}, "code", "never '.'"),
    ({"code": "-mcri"}, "code", "is not an SB code"),
    ({"code": "mcri-"}, "code", "is not an SB code"),
    ({"code": "m"}, "code", "is not an SB code"),
    ({"code": "m" * 33}, "code", "is not an SB code"),
    ({"circuits__internal__appliances__0__name": "col.int"}, "circuits.internal.appliances[0].name",
     "is not an appliance name"),
    ({"circuits__internal__appliances__1__capture_interface": "et\nh1"}, "circuits.internal.appliances[1]"
     ".capture_interface", "U+000A"),
    ({"management__ssh_user": "msib;id"}, "management.ssh_user", "is not a login name"),
]


@pytest.mark.parametrize(("changes", "where", "words"), HOSTILE, ids=[h[1] + ":" + h[2][:20] for h in HOSTILE])
def test_hostile_strings_are_refused_by_the_model_and_the_schema(changes: dict[str, Any], where: str,
                                                                 words: str) -> None:
    data = _plan(**changes)
    with pytest.raises(InputError) as info:
        parse_site(data, "site.yml")
    err = info.value
    assert (err.file, err.where) == ("site.yml", where)
    assert words in f"{err.message} ({err.fix})", err
    assert err.fix and err.exit_code == 2
    assert "\n" not in str(err) and "\x1b" not in str(err)  # the error line itself stays one clean line
    if "IPv6" in words:  # JSON Schema has no IPv6 parser: the model checks what the pattern lets through
        return
    # (values end without a newline: Python's `$` matches before one, ECMA-262's and the model's do not)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, json_schema())


@pytest.mark.parametrize("changes", [
    {"siem__syslog__host": "198.19.0.10"}, {"siem__syslog__host": "2001:db8::10"},
    {"siem__syslog__host": "siem-1.soc.example.kz"}, {"siem__syslog__peer_name": "siem.lab.msib"},
    {"siem__api__url": "https://[2001:db8::10]:55000/"}, {"siem__api__url": "https://198.18.0.10:55000"},
    {"management__package_proxy": "http://[2001:db8::5]:3142/"}, {"siem__ca_file": "../pki/ca.pem"},
    {"state_body": "«Қазақстан» Республикасы — Министерство (МЦРИАП), №1; 100% {x}"},
    {"state_body": PIPE},  # free text is data: accepted here, never templated (tests/test_templating_safety.py)
    {"code": "mcri-kz"}, {"code": "ab"},
])
def test_ordinary_values_stay_valid(changes: dict[str, Any]) -> None:
    data = _plan(**changes)
    parse_site(data, "site.yml")
    jsonschema.validate(data, json_schema())


def test_rsyslog_injection_is_refused_before_any_file_is_written(tmp_path: Path) -> None:
    """`msib site validate` and `msib inventory build` refuse the plan; nothing reaches rsyslog.conf."""
    site = tmp_path / "site.yml"
    site.write_text(yaml.safe_dump(_plan(siem__syslog__host=INJECTED), allow_unicode=True))
    proc = _cli("site", "validate", site)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert "siem.syslog.host" in line and "U+000A (a line break)" in line and "give a DNS name" in line
    appendix = tmp_path / "appendix.csv"
    appendix.write_text("Наименование ГО,IP-адрес,Имя хоста\n" + SB_NAME + ",10.20.1.5,pc5\n", encoding="utf-8")
    out = tmp_path / "inv"
    build = _cli("inventory", "build", appendix, "--site", site, "--out", out)
    assert build.returncode == 2 and "siem.syslog.host" in build.stderr and "Traceback" not in build.stderr
    assert not out.exists()


def test_an_error_naming_a_key_with_a_line_break_stays_one_line() -> None:
    data = yaml.safe_load(SITE_YAML)
    data["a\nb"] = 1  # found by the fuzz run of #14
    with pytest.raises(InputError) as info:
        parse_site(data, "site.yml")
    assert "\n" not in str(info.value) and info.value.where == "'a\\nb'"
