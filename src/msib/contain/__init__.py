"""Containment through the sources: block an address on every firewall of its circuit(s), with a TTL.

``msib contain`` puts an address (or network) on the firewalls of the circuit(s) it lives in:

* nftables firewalls (group ``firewall``): an element with a timeout in the named set
  ``inet msib_contain msib_blocked`` (the ruleset's containment rules drop what matches, with counters);
  the kernel removes it when the timeout passes (:mod:`.nft`);
* vendor firewalls (group ``netdev``): the deny entries of the ``MSIB-CONTAIN`` ACL through
  :meth:`msib.netdev.NetDevice.block`; IOS has no per-entry expiry, so msib keeps the expiry in
  the audit log and removes expired entries itself on every ``msib contain`` run (a *sweep*).

Before anything changes the request is checked (:mod:`.request`, :mod:`.view`): the management
path (``msib_controllers``), the collectors, the SIEM (syslog and API hosts), every appliance
address (management, LAN, uplink), loopback/unspecified/multicast, and any network containing one
of those are refused (exit 2). Every action appends one JSON line to the audit log (:mod:`.audit`:
who, when, what, why, until when, the outcome per firewall), fsynced, under an exclusive lock that
also serialises concurrent runs (:mod:`.run`).

Example:
    >>> parse_ttl("1h30m")
    5400
    >>> str(parse_target("198.18.16.100"))
    '198.18.16.100/32'
"""

from msib.contain.audit import AuditLog, Held, default_audit_path, held_blocks, who
from msib.contain.describe import describe, describe_list
from msib.contain.nft import NftElement, NftPlan, NftRemote, nft_block, nft_release, parse_nft_set
from msib.contain.request import (
    CHANGED,
    DEFAULT_TTL,
    ENV_AUDIT,
    FAILED,
    GRACE_MAX_S,
    GRACE_MIN_S,
    GRACE_SHARE,
    MAX_TTL_S,
    NFT_SET,
    NFT_TABLE,
    SPECIAL,
    SSH_TIMEOUT_S,
    Action,
    ContainError,
    ContainRefused,
    Platform,
    Protected,
    Result,
    grace_s,
    parse_target,
    parse_ttl,
    refusal,
)
from msib.contain.run import Block, BlockList, ContainRun, FirewallOutcome, Options, contain, list_blocks, release
from msib.contain.view import ContainInventory, Firewall, contain_inventory

__all__ = [
    "CHANGED", "DEFAULT_TTL", "ENV_AUDIT", "FAILED", "GRACE_MAX_S", "GRACE_MIN_S", "GRACE_SHARE", "MAX_TTL_S",
    "NFT_SET", "NFT_TABLE", "SPECIAL", "SSH_TIMEOUT_S", "Action", "AuditLog", "Block", "BlockList", "ContainError",
    "ContainInventory", "ContainRefused", "ContainRun", "Firewall", "FirewallOutcome", "Held", "NftElement", "NftPlan",
    "NftRemote", "Options", "Platform", "Protected", "Result", "contain", "contain_inventory", "default_audit_path",
    "describe", "describe_list", "grace_s", "held_blocks", "list_blocks", "nft_block", "nft_release", "parse_nft_set",
    "parse_target", "parse_ttl", "refusal", "release", "who",
]
