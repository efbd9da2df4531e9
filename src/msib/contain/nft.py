"""The nftables side of containment: the set's elements as data, the one operation, and SSH to the firewalls."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from msib.contain.request import NFT_SET, NFT_TABLE, SSH_TIMEOUT_S, ContainError, IPv4Net, Result, grace_s
from msib.contain.view import ContainInventory, Firewall


@dataclass(frozen=True)
class NftElement:
    """One element of the containment set: a network and the seconds until it expires (None: never)."""

    network: IPv4Net
    expires_s: int | None


def parse_nft_set(text: str) -> tuple[NftElement, ...]:
    """The elements of ``nft -j list set inet msib_contain msib_blocked`` output.

    Raises:
        ContainError: not that output, or the set is missing.

    >>> parse_nft_set('{"nftables": [{"set": {"name": "msib_blocked", "elem": '
    ...               '[{"elem": {"val": "198.18.16.100", "timeout": 60, "expires": 59}}]}}]}')
    (NftElement(network=IPv4Network('198.18.16.100/32'), expires_s=59),)
    """
    try:
        data = json.loads(text)
        sets = [o["set"] for o in data["nftables"] if "set" in o]
    except (ValueError, KeyError, TypeError):
        raise ContainError(f"cannot read the set {NFT_SET}: not nft JSON output") from None
    if not sets:
        raise ContainError(f"no set {NFT_SET} on the firewall (deploy the firewall role first)")
    out: list[NftElement] = []
    for item in sets[0].get("elem") or []:
        elem = item.get("elem", item) if isinstance(item, dict) else item
        val = elem.get("val") if isinstance(elem, dict) else elem
        expires = elem.get("expires") if isinstance(elem, dict) else None
        for net in _nft_networks(val):
            out.append(NftElement(net, int(expires) if expires is not None else None))
    return tuple(out)


def _nft_networks(val: Any) -> list[IPv4Net]:
    if isinstance(val, str):
        return [IPv4Net(val)]
    if isinstance(val, dict) and "prefix" in val:
        return [IPv4Net(f"{val['prefix']['addr']}/{val['prefix']['len']}")]
    if isinstance(val, dict) and "range" in val:
        lo, hi = (ipaddress.IPv4Address(a) for a in val["range"])
        return list(ipaddress.summarize_address_range(lo, hi))
    raise ContainError(f"unexpected element in set {NFT_SET}: {val!r}")


def _nft_elem(net: IPv4Net) -> str:
    return str(net.network_address) if net.prefixlen == 32 else str(net)


@dataclass(frozen=True)
class NftPlan:
    """What the containment operation does on one nftables firewall: a script, or why nothing."""

    result: Result
    script: str = ""
    detail: str = ""
    expires_s: int | None = None


def nft_block(current: Sequence[NftElement], target: IPv4Net, ttl_s: int) -> NftPlan:
    """Block `target` for `ttl_s` seconds given the set's `current` elements (one transaction).

    Present with an expiry no earlier than requested (less :func:`grace_s`) → ``present`` and no
    script; present but expiring sooner → delete + add in one ``nft -f`` transaction (a kernel
    that cannot update an element's timeout still gets the new one); absent → ``add``. Another
    element overlapping `target` → ``conflict`` (interval sets refuse overlaps; release it first).

    >>> nft_block([], IPv4Net("198.18.16.100/32"), 60).script
    'add element inet msib_contain msib_blocked { 198.18.16.100 timeout 60s }\\n'
    """
    t_set = f"{' '.join(NFT_TABLE)} {NFT_SET}"
    add = f"add element {t_set} {{ {_nft_elem(target)} timeout {ttl_s}s }}\n"
    for e in current:
        if e.network == target:
            if e.expires_s is None or e.expires_s >= ttl_s - grace_s(ttl_s):
                return NftPlan("present", detail="already blocked", expires_s=e.expires_s)
            return NftPlan("extended", f"delete element {t_set} {{ {_nft_elem(target)} }}\n" + add,
                           detail=f"expiry extended (was {e.expires_s}s)", expires_s=ttl_s)
        if e.network.overlaps(target):
            if target.subnet_of(e.network) and (e.expires_s is None or e.expires_s >= ttl_s - grace_s(ttl_s)):
                return NftPlan("present", detail=f"covered by the block of {e.network}", expires_s=e.expires_s)
            return NftPlan("conflict", detail=f"overlaps the block of {e.network} (expires in {e.expires_s}s); "
                                              f"release that first")
    return NftPlan("added", add, expires_s=ttl_s)


def nft_release(current: Sequence[NftElement], target: IPv4Net) -> NftPlan:
    """Remove `target`'s element; ``absent`` when there is none, ``conflict`` when a larger block holds it."""
    t_set = f"{' '.join(NFT_TABLE)} {NFT_SET}"
    for e in current:
        if e.network == target:
            return NftPlan("removed", f"delete element {t_set} {{ {_nft_elem(target)} }}\n")
    for e in current:
        if e.network.overlaps(target):
            return NftPlan("conflict", detail=f"inside the block of {e.network}; release that instead")
    return NftPlan("absent", detail="not blocked")


# --- SSH to the nftables firewalls (the engines' settings, strict host keys) ----------------------------


class NftRemote:
    """Runs ``nft`` as root on nftables firewalls over SSH: the inventory's ssh settings, strict host keys.

    One multiplexed master per firewall for the run (closed by :meth:`close`). A host whose
    effective ssh settings do not check host keys strictly is refused before any connection.
    """

    def __init__(self, inv: ContainInventory, firewalls: Sequence[Firewall], timeout: float = SSH_TIMEOUT_S) -> None:
        self.timeout = timeout
        self.workdir = Path(tempfile.mkdtemp(prefix="msib-contain-"))
        control = self.workdir / "cm"
        control.mkdir(mode=0o700)
        self.config = self.workdir / "ssh_config"
        verified = inv.ssh.verified()
        ssh = replace(verified, user=verified.user or "root")
        self.user = str(ssh.user)
        self.firewalls = list(firewalls)
        self.config.write_text(ssh.run_config(firewalls, control, persist="30s",
                                              header="written by msib contain for one run"))

    def check_strict(self, fw: Firewall) -> None:
        """Raise ContainError unless ssh would check `fw`'s host key strictly against a pinned file."""
        proc = subprocess.run(["ssh", "-G", "-F", str(self.config), fw.name], capture_output=True, text=True,
                              timeout=30, check=False)
        conf = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
        if conf.get("stricthostkeychecking") not in ("true", "yes"):
            raise ContainError(f"{fw.name}: StrictHostKeyChecking is {conf.get('stricthostkeychecking')!r}, "
                               f"not yes: refusing to connect")

    def run(self, fw: Firewall, command: str, stdin: str = "") -> str:
        """Run `command` as root on `fw`; its stdout. Raises ContainError naming the firewall."""
        remote = command if self.user == "root" else "sudo -n " + command
        argv = ["ssh", "-F", str(self.config), fw.name, remote]
        try:
            proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=self.timeout,
                                  check=False)
        except subprocess.TimeoutExpired:
            raise ContainError(f"{fw.name}: no answer within {self.timeout:.0f} s") from None
        if proc.returncode != 0:
            err = " / ".join(proc.stderr.strip().splitlines()[-2:]) or f"exit {proc.returncode}"
            raise ContainError(f"{fw.name}: `{command}` failed: {err}")
        return proc.stdout

    def elements(self, fw: Firewall) -> tuple[NftElement, ...]:
        """The containment set's elements on `fw` (the fact)."""
        try:
            return parse_nft_set(self.run(fw, f"nft -j list set {' '.join(NFT_TABLE)} {NFT_SET}"))
        except ContainError as exc:
            raise ContainError(f"{fw.name}: {exc}" if not str(exc).startswith(fw.name) else str(exc)) from None

    def apply(self, fw: Firewall, script: str) -> None:
        """Apply `script` atomically (``nft -f -``: all of it or nothing)."""
        self.run(fw, "nft -f -", stdin=script)

    def close(self) -> None:
        for f in self.firewalls:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                subprocess.run(["ssh", "-F", str(self.config), "-O", "exit", f.name], capture_output=True,
                               timeout=10, stdin=subprocess.DEVNULL, check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)
