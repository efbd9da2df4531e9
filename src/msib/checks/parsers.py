"""Small pure parsers the checks use on what a host says (sshd -T, apt, rsyslog.conf, nft), each tested."""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from typing import Any


def parse_sshd_t(text: str) -> dict[str, str]:
    """``sshd -T`` output as {keyword: value} (keywords lower-case, first value wins).

    >>> parse_sshd_t("permitrootlogin no\\nmaxauthtries 6\\n")["maxauthtries"]
    '6'
    """
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key:
            out.setdefault(key.lower(), value.strip())
    return out


WEAK_SSH = {
    "ciphers": re.compile(r"cbc|3des|arcfour|blowfish|cast128|rijndael", re.I),
    "macs": re.compile(r"md5|-96|ripemd", re.I),
    "kexalgorithms": re.compile(r"group1-sha1|group-exchange-sha1|group14-sha1", re.I),
}


def weak_ssh_algorithms(conf: Mapping[str, str]) -> dict[str, list[str]]:
    """The broken algorithms sshd offers, by keyword (empty when none).

    >>> weak_ssh_algorithms({"ciphers": "aes128-ctr,aes256-cbc", "macs": "hmac-sha2-256"})
    {'ciphers': ['aes256-cbc']}
    """
    out: dict[str, list[str]] = {}
    for key, pattern in WEAK_SSH.items():
        bad = [a for a in conf.get(key, "").split(",") if a and pattern.search(a)]
        if bad:
            out[key] = bad
    return out


_INST_RE = re.compile(r"^Inst (\S+) (?:\[(\S+)\] )?\((\S+) (.*?)\)")


def pending_upgrades(apt_simulation: str) -> list[dict[str, Any]]:
    """Upgrades listed by ``apt-get -s upgrade`` (or dist-upgrade), each marked security or not.

    >>> pending_upgrades("Inst libc6 [2.36-9] (2.36-9+deb12u4 Debian-Security:12/stable-security [amd64])")
    [{'package': 'libc6', 'installed': '2.36-9', 'version': '2.36-9+deb12u4', 'security': True}]
    """
    out: list[dict[str, Any]] = []
    for line in apt_simulation.splitlines():
        m = _INST_RE.match(line)
        if m:
            out.append({"package": m.group(1), "installed": m.group(2), "version": m.group(3),
                        "security": "security" in m.group(4).lower()})
    return out


def apt_policy(text: str) -> dict[str, dict[str, str]]:
    """``apt-cache policy PKG...`` as {package: {installed, candidate}}.

    >>> apt_policy("rsyslog:\\n  Installed: 8.2302.0-1\\n  Candidate: 8.2302.0-1+deb12u2\\n")
    {'rsyslog': {'installed': '8.2302.0-1', 'candidate': '8.2302.0-1+deb12u2'}}
    """
    out: dict[str, dict[str, str]] = {}
    current: str | None = None
    for line in text.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            current = line[:-1]
            out[current] = {}
        elif current is not None:
            key, _, value = line.strip().partition(":")
            if key in ("Installed", "Candidate"):
                out[current][key.lower()] = value.strip()
    return out


def rsyslog_action(conf: str, name: str) -> dict[str, str] | None:
    """The parameters of the RainerScript ``action(... name="NAME" ...)`` in `conf` (lower-case keys).

    >>> rsyslog_action('action(type="omfwd" name="x" Target="h" queue.size="5")', "x")["queue.size"]
    '5'
    """
    text = re.sub(r"(?m)#.*$", "", conf)
    for m in re.finditer(r"\baction\s*\((.*?)\)", text, re.S):
        params = _rsyslog_params(m.group(1))
        if params.get("name") == name:
            return params
    return None


def rsyslog_global(conf: str) -> dict[str, str]:
    """The parameters of every RainerScript ``global(...)`` in `conf` (lower-case keys, later ones win).

    >>> rsyslog_global('global(workDirectory="/w"\\n  defaultNetstreamDriverCAFile="/ca.pem")')
    {'workdirectory': '/w', 'defaultnetstreamdrivercafile': '/ca.pem'}
    """
    out: dict[str, str] = {}
    for m in re.finditer(r"\bglobal\s*\((.*?)\)", re.sub(r"(?m)#.*$", "", conf), re.S):
        out.update(_rsyslog_params(m.group(1)))
    return out


def _rsyslog_params(text: str) -> dict[str, str]:
    params = {k.lower(): v for k, v in re.findall(r'([\w.]+)\s*=\s*"([^"]*)"', text)}
    # list parameters (tls.permittedPeer=["a","b"])
    for k, v in re.findall(r"([\w.]+)\s*=\s*\[([^\]]*)\]", text):
        params[k.lower()] = ",".join(re.findall(r'"([^"]*)"', v))
    return params


def rsyslog_action_queue(conf: str, name: str) -> tuple[str, dict[str, str]] | None:
    """Where the action named `name` queues: its own queue, else the queue of the ruleset holding it.

    Returns (a description, the queue's parameters with lower-case keys), or None if there is no such
    action. An action without a queue of its own (Direct) runs in its ruleset's queue worker, so a
    message it cannot deliver stays in that ruleset's queue.

    >>> rsyslog_action_queue('ruleset(name="r" queue.size="9") {\\n action(type="omfwd" name="x")\\n}', "x")
    ('ruleset r', {'name': 'r', 'queue.size': '9'})
    """
    action = rsyslog_action(conf, name)
    if action is None:
        return None
    if action.get("queue.type", "Direct").lower() != "direct":
        return f"action {name}", action
    text = re.sub(r"(?m)#.*$", "", conf)
    for m in re.finditer(r"\bruleset\s*\((.*?)\)\s*\{", text, re.S):
        depth, end = 1, m.end()
        while depth and end < len(text):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            end += 1
        if rsyslog_action(text[m.end():end], name) is not None:
            params = _rsyslog_params(m.group(1))
            return f"ruleset {params.get('name', '?')}", params
    return f"action {name}", action


def nft_base_chains(ruleset: str) -> list[dict[str, str]]:
    """Base chains of an ``nft list ruleset`` text: table, chain, hook, policy.

    >>> nft_base_chains("table inet t {\\n\\tchain i {\\n\\t\\ttype filter hook input priority filter; policy drop;\\n")
    [{'table': 'inet t', 'chain': 'i', 'hook': 'input', 'policy': 'drop'}]
    """
    out: list[dict[str, str]] = []
    table = chain = ""
    for line in ruleset.splitlines():
        s = line.strip()
        if m := re.match(r"table (\w+ [\w-]+) \{", s):
            table = m.group(1)
        elif m := re.match(r"chain ([\w-]+) \{", s):
            chain = m.group(1)
        elif m := re.match(r"type \w+ hook (\w+) .*?(?:policy (\w+);)?$", s):
            out.append({"table": table, "chain": chain, "hook": m.group(1), "policy": m.group(2) or "accept"})
    return out


def nft_comparable(ruleset: str) -> str:
    """A ruleset listing reduced to what a review approves: no dynamic containment elements.

    Entries of the set ``msib_blocked`` are added at run time by containment and are not drift.

    >>> nft_comparable("set msib_blocked {\\n\\ttimeout 1h\\n\\telements = { 1.2.3.4 timeout 1h }\\n}\\n")
    'set msib_blocked {\\n\\ttimeout 1h\\n}\\n'
    """
    out: list[str] = []
    in_blocked = skipping = False
    for line in ruleset.splitlines():
        s = line.strip()
        if s.startswith("set msib_blocked "):
            in_blocked = True
        elif in_blocked and s == "}":
            in_blocked = False
        if in_blocked and s.startswith("elements = "):
            skipping = not s.endswith("}")
            continue
        if skipping:
            skipping = not s.endswith("}")
            continue
        out.append(line.rstrip())
    return "\n".join(out).strip("\n") + "\n"


def suricata_time(text: str) -> float:
    """An epoch from a time Suricata prints (``ruleset-reload-time``: ``2026-11-25T10:15:26.123456+0000``).

    A time without an offset is UTC.

    >>> suricata_time("2026-11-25T10:15:26.5+0100")
    1795598126.5

    Raises:
        ValueError: not such a time.
    """
    m = re.match(r"\s*(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(\.\d+)?\s*(?:([+-])(\d\d):?(\d\d)|Z)?", text)
    if not m:
        raise ValueError(f"not a Suricata time: {text!r}")
    fields = [int(g) for g in m.groups()[:6]]
    epoch = calendar.timegm((*fields, 0, 0, 0)) + float(m.group(7) or 0)
    if m.group(8):
        offset = int(m.group(9)) * 3600 + int(m.group(10)) * 60
        epoch -= offset if m.group(8) == "+" else -offset
    return epoch


_RULESET_HEADER = re.compile(r"^# msib rule set (\S+) for suricata-(\S+), released (\d{4}-\d\d-\d\d)\s*$", re.M)


def ruleset_header(text: str) -> tuple[str, str, str] | None:
    """(version, series, released) from the header ``msib update --rules`` writes; None if absent.

    >>> ruleset_header("# msib rule set 2026.11.25.1 for suricata-7.0, released 2026-11-25\\n")
    ('2026.11.25.1', '7.0', '2026-11-25')
    >>> ruleset_header("") is None
    True
    """
    m = _RULESET_HEADER.search(text)
    return (m.group(1), m.group(2), m.group(3)) if m else None


def unified_diff(expected: str, actual: str, *, expected_name: str, actual_name: str, limit: int = 60) -> str:
    """A short unified diff (at most `limit` lines) for evidence."""
    import difflib

    lines = list(difflib.unified_diff(expected.splitlines(), actual.splitlines(), expected_name, actual_name,
                                      lineterm="", n=1))
    if len(lines) > limit:
        lines = [*lines[:limit], f"... ({len(lines) - limit} more diff lines)"]
    return "\n".join(lines)
