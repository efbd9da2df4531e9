"""Every form of secret an IOS configuration carries is masked in what msib keeps (backups, diffs):
one row per form, the secret never survives, the rest of the line does."""

from __future__ import annotations

import pytest

from msib.netdev import ioscfg
from msib.netdev.masking import FORMS, MASK

S = "Zq9xSecret"  # the secret of every row: it must be gone from the masked text

# (form, configuration text holding S, what must be left of the line that held it)
ROWS: list[tuple[str, str, str]] = [
    ("enable secret", f"enable secret 9 {S}\n", f"enable secret 9 {MASK}"),
    ("enable password", f"enable password 7 {S}\n", f"enable password 7 {MASK}"),
    ("username secret", f"username admin privilege 15 secret 9 {S}\n", f"username admin privilege 15 secret 9 {MASK}"),
    ("username password", f"username ops password 0 {S}\n", f"username ops password 0 {MASK}"),
    ("line vty password 7", f"line vty 0 4\n password 7 {S}\n login\n", f" password 7 {MASK}"),
    ("line con password", f"line con 0\n password {S}\n", f" password {MASK}"),
    ("tacacs server key", f"tacacs server TAC1\n address ipv4 10.0.0.5\n key 7 {S}\n", f" key 7 {MASK}"),
    ("tacacs server key (clear)", f"tacacs server TAC2\n key {S}\n", f" key {MASK}"),
    ("radius server key", f"radius server RAD1\n address ipv4 10.0.0.6 auth-port 1812 acct-port 1813\n key 7 {S}\n",
     f" key 7 {MASK}"),
    ("radius server pac key", f"radius server RAD2\n pac key 7 {S}\n", f" pac key 7 {MASK}"),
    ("tacacs-server key", f"tacacs-server key 7 {S}\n", f"tacacs-server key 7 {MASK}"),
    ("tacacs-server host key", f"tacacs-server host 10.0.0.5 key 7 {S}\n", f"tacacs-server host 10.0.0.5 key 7 {MASK}"),
    ("radius-server host key", f"radius-server host 10.0.0.6 auth-port 1645 acct-port 1646 key {S}\n",
     f"radius-server host 10.0.0.6 auth-port 1645 acct-port 1646 key {MASK}"),
    ("radius dynamic-author client", f"aaa server radius dynamic-author\n client 10.0.0.7 server-key 7 {S}\n",
     f" client 10.0.0.7 server-key 7 {MASK}"),
    ("ISAKMP key", f"crypto isakmp key 6 {S} address 198.51.100.1\n",
     f"crypto isakmp key 6 {MASK} address 198.51.100.1"),
    ("ISAKMP key (clear, hostname)", f"crypto isakmp key {S} hostname peer.example\n",
     f"crypto isakmp key {MASK} hostname peer.example"),
    ("keyring pre-shared-key", f"crypto keyring KR1\n pre-shared-key address 198.51.100.1 key {S}\n",
     f" pre-shared-key address 198.51.100.1 key {MASK}"),
    ("keyring pre-shared-key (mask, type 6)",
     f"crypto keyring KR2\n pre-shared-key address 0.0.0.0 0.0.0.0 key 6 {S}\n",
     f" pre-shared-key address 0.0.0.0 0.0.0.0 key 6 {MASK}"),
    ("IKEv2 keyring local/remote", f"crypto ikev2 keyring K2\n peer P\n  address 198.51.100.2\n"
                                   f"  pre-shared-key local {S}\n", f"  pre-shared-key local {MASK}"),
    ("NTP authentication key", f"ntp authentication-key 1 md5 {S} 7\n", f"ntp authentication-key 1 md5 {MASK} 7"),
    ("OSPF authentication-key", f"interface Gi0/1\n ip ospf authentication-key 7 {S}\n",
     f" ip ospf authentication-key 7 {MASK}"),
    ("OSPF message-digest-key", f"interface Gi0/2\n ip ospf message-digest-key 1 md5 7 {S}\n",
     f" ip ospf message-digest-key 1 md5 7 {MASK}"),
    ("OSPF virtual-link key", f"router ospf 1\n area 1 virtual-link 10.0.0.9 message-digest-key 2 md5 {S}\n",
     f" area 1 virtual-link 10.0.0.9 message-digest-key 2 md5 {MASK}"),
    ("HSRP md5 key-string", f"interface Vlan10\n standby 1 authentication md5 key-string 7 {S}\n",
     f" standby 1 authentication md5 key-string 7 {MASK}"),
    ("HSRP text", f"interface Vlan11\n standby 2 authentication text {S}\n", f" standby 2 authentication text {MASK}"),
    ("HSRP plain", f"interface Vlan12\n standby 3 authentication {S}\n", f" standby 3 authentication {MASK}"),
    ("key chain key-string", f"key chain EIGRP\n key 1\n  key-string 7 {S}\n", f"  key-string 7 {MASK}"),
    ("PPP CHAP password", f"interface Serial0/0\n ppp chap hostname r1\n ppp chap password 7 {S}\n",
     f" ppp chap password 7 {MASK}"),
    ("PPP PAP sent-username", f"interface Serial0/1\n ppp pap sent-username r1 password 0 {S}\n",
     f" ppp pap sent-username r1 password 0 {MASK}"),
    ("SNMP community", f"snmp-server community {S} RO 10\n", f"snmp-server community {MASK} RO 10"),
    ("SNMP host community", f"snmp-server host 10.0.0.8 version 2c {S}\n",
     f"snmp-server host 10.0.0.8 version 2c {MASK}"),
    ("SNMPv3 auth and priv", f"snmp-server user mon G3 v3 auth sha {S} priv aes 128 {S}x\n",
     f"snmp-server user mon G3 v3 auth sha {MASK} priv aes 128 {MASK}"),
    ("SNMPv3 auth only", f"snmp-server user mon2 G3 v3 auth md5 {S}\n", f"snmp-server user mon2 G3 v3 auth md5 {MASK}"),
    ("BGP neighbor password", f"router bgp 65000\n neighbor 10.0.0.9 password 7 {S}\n",
     f" neighbor 10.0.0.9 password 7 {MASK}"),
    ("IS-IS area password", f"router isis\n area-password {S}\n", f" area-password {MASK}"),
    ("type 6 master key", f"key config-key password-encrypt {S}\n", f"key config-key password-encrypt {MASK}"),
]


@pytest.mark.parametrize(("form", "text", "kept"), ROWS, ids=[r[0] for r in ROWS])
def test_every_form_of_secret_is_masked_and_the_rest_of_the_line_kept(form: str, text: str, kept: str) -> None:
    cleaned = ioscfg.clean_config(f"hostname r1\n{text}!\nend\n")
    assert S not in cleaned, cleaned
    assert kept in cleaned.splitlines(), cleaned
    assert ioscfg.is_masked(kept)
    assert ioscfg.clean_config(cleaned) == cleaned  # a backup read again is masked once, not twice


# lines that look like secrets but are not: masking them would lose configuration (never sent back)
NOT_SECRETS = [
    "service password-encryption",
    "security passwords min-length 10",
    "password encryption aes",
    "key chain EIGRP\n key 1\n  accept-lifetime infinite",
    "ntp trusted-key 1",
    "crypto isakmp profile P\n keyring KR1",
    "ip ospf authentication message-digest",
    "standby 1 authentication md5 key-chain HSRP",
]


@pytest.mark.parametrize("text", NOT_SECRETS)
def test_what_is_not_a_secret_is_left_alone(text: str) -> None:
    assert MASK not in ioscfg.clean_config(text + "\n")


def test_every_form_of_the_table_is_exercised() -> None:
    # a form added to msib.netdev.masking gets a row here (the table is the specification)
    assert len(FORMS) <= len(ROWS)
