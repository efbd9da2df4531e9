"""Secrets in IOS configuration text, replaced by a marker before anything is written (backups, diffs).

One table of forms (:data:`FORMS`): each names where a secret sits in a line (the token after
``password``, ``secret``, ``key``, ``key-string``, a community, SNMPv3 ``auth``/``priv``...), and the
token alone is replaced, so a backup still says what is configured (``crypto isakmp key <masked by
msib> address 10.0.0.1``). A few forms depend on the block a line is in: `` key 7 ...`` is a secret
under ``tacacs server`` or ``radius server`` but a key number under ``key chain``. A masked line is
never sent back to a device (:func:`is_masked`).

Example:
    >>> mask_secrets(" password 7 0822455D0A16", parent="line vty 0 4")
    ' password 7 <masked by msib>'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MASK = "<masked by msib>"

#: an optional encryption type before a secret (0 clear, 5/8/9 hashes, 6 AES, 7 Vigenère)
_TYPE = r"(?:[0-9]\s+)?"


@dataclass(frozen=True)
class Form:
    """One place a secret sits: the `pattern`'s named groups ``s``, ``s2`` are the secret tokens."""

    name: str
    pattern: re.Pattern[str]
    #: only in a block whose first line matches this (None: anywhere)
    parent: re.Pattern[str] | None = None


def _form(name: str, pattern: str, parent: str | None = None) -> Form:
    return Form(name, re.compile(pattern), re.compile(parent) if parent else None)


FORMS: tuple[Form, ...] = (
    _form("enable secret/password", rf"^\s*enable\s+(?:secret|password)\s+(?:level\s+\d+\s+)?{_TYPE}(?P<s>\S+)"),
    _form("username secret/password", rf"^\s*username\s+\S+(?:\s+\S+)*?\s+(?:secret|password)\s+{_TYPE}(?P<s>\S+)"),
    # line con/vty password, BGP neighbor password, PPP CHAP/PAP, ISIS, ip ftp/http client password...
    _form("password", rf"\bpassword\s+(?!encryption\b){_TYPE}(?P<s>\S+)"),
    _form("secret", rf"(?<!enable )\bsecret\s+{_TYPE}(?P<s>\S+)"),
    _form("area/domain password (IS-IS)", r"\b(?:area|domain)-password\s+(?P<s>\S+)"),
    _form("config key (type 6 master key)", r"\bpassword-encrypt\s+(?P<s>\S+)"),
    _form("key-string (key chains, HSRP/VRRP md5)", rf"\bkey-string\s+{_TYPE}(?P<s>\S+)"),
    _form("SNMP community", r"^\s*snmp-server\s+community\s+(?P<s>\S+)"),
    _form("SNMP host community", r"^\s*snmp-server\s+host\s+\S+(?:\s+vrf\s+\S+)?(?:\s+(?:informs|traps))?"
                                 r"(?:\s+version\s+(?:1|2c|3\s+(?:auth|noauth|priv)))?\s+(?P<s>\S+)"),
    _form("SNMPv3 user auth/priv", r"^\s*snmp-server\s+user\s+.*?\bauth\s+(?:md5|sha\S*)\s+(?P<s>\S+)"
                                   r"(?:.*?\bpriv\s+(?:3des|des\S*|aes\s+\d+)\s+(?P<s2>\S+))?"),
    _form("TACACS+/RADIUS global key", rf"^\s*(?:tacacs|radius)-server\s+key\s+{_TYPE}(?P<s>\S+)"),
    _form("TACACS+/RADIUS host key", rf"^\s*(?:tacacs|radius)-server\s+host\s+.*?\bkey\s+{_TYPE}(?P<s>\S+)"),
    _form("tacacs server / radius server key", rf"^\s+(?:pac\s+)?key\s+{_TYPE}(?P<s>\S+)",
          parent=r"^(?:tacacs|radius)\s+server\s"),
    _form("RADIUS dynamic-author client key", rf"\bserver-key\s+{_TYPE}(?P<s>\S+)"),
    _form("ISAKMP key", rf"^\s*crypto\s+isakmp\s+key\s+{_TYPE}(?P<s>\S+)"),
    _form("keyring pre-shared-key (address/hostname ... key)",
          rf"\bpre-shared-key\s+(?:address|hostname)\s+.*?\bkey\s+{_TYPE}(?P<s>\S+)"),
    _form("IKEv2/ASA pre-shared-key", rf"\bpre-shared-key\s+(?!address\b|hostname\b)(?:local\s+|remote\s+)?{_TYPE}"
                                      r"(?P<s>\S+)"),
    _form("NTP authentication key", r"^\s*ntp\s+authentication-key\s+\d+\s+\S+\s+(?P<s>\S+)"),
    _form("OSPF/other authentication-key", rf"^\s*(?!ntp\b)\S.*?\bauthentication-key\s+{_TYPE}(?P<s>\S+)"),
    _form("OSPF message-digest-key", rf"\bmessage-digest-key\s+\d+\s+md5\s+{_TYPE}(?P<s>\S+)"),
    _form("HSRP/VRRP text authentication", r"^\s*(?:standby|vrrp)\s+(?:\d+\s+)?authentication\s+"
                                           r"(?!md5\b)(?:text\s+)?(?P<s>\S+)"),
    _form("wireless WPA pre-shared key", rf"\bwpa-psk\s+(?:ascii|hex)\s+{_TYPE}(?P<s>\S+)"),
)


def mask_secrets(line: str, parent: str | None = None) -> str:
    """`line` with every secret token replaced by :data:`MASK`; `parent` is its block's first line.

    >>> mask_secrets("crypto isakmp key 6 S3cr3t address 10.0.0.1")
    'crypto isakmp key 6 <masked by msib> address 10.0.0.1'
    >>> mask_secrets(" key 1", parent="key chain OSPF")
    ' key 1'
    """
    spans: list[tuple[int, int]] = []
    for form in FORMS:
        if form.parent is not None and not (parent and form.parent.search(parent)):
            continue
        m = form.pattern.search(line)
        if m is None:
            continue
        for group in ("s", "s2"):
            if group in form.pattern.groupindex and m.group(group) is not None:
                start, end = m.span(group)
                if not line.startswith(MASK, start):  # masked already (a backup read again)
                    spans.append((start, end))
    out, last = line, len(line) + 1
    for start, end in sorted(set(spans), key=lambda s: (s[0], -s[1]), reverse=True):
        if end > last:  # overlaps a token already masked (two forms found the same secret)
            continue
        out, last = out[:start] + MASK + out[end:], start
    return out


def is_masked(line: str) -> bool:
    """True when the line carries a masked secret (never sent back to a device)."""
    return MASK in line
