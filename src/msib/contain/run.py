"""`msib contain`: block or release an address on every firewall of its circuit(s), and list what is blocked.

Every run holds the audit log's lock and sweeps expired vendor entries first. It is write-ahead: the
intent is recorded before any firewall is touched, the outcome of each firewall right after it, and
the run's outcome last, so a run killed half-way leaves what the next run needs (a vendor entry is
swept at its intended expiry even if its outcome was never written). Each firewall is acted on by
itself: whatever it raises (an SSH error, netmiko's OSError or EOFError) is its outcome, the others go on.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from msib import contract
from msib.contain.audit import AuditLog, Held, default_audit_path, held_blocks, iso, who
from msib.contain.nft import NftRemote, nft_block, nft_release
from msib.contain.request import (
    CHANGED,
    DEFAULT_TTL,
    FAILED,
    NFT_SET,
    Action,
    ContainError,
    ContainRefused,
    IPv4Net,
    Result,
    grace_s,
    parse_target,
    parse_ttl,
    refusal,
)
from msib.contain.view import ContainInventory, Firewall, contain_inventory
from msib.errors import InputError, MsibError


@dataclass(frozen=True)
class FirewallOutcome:
    """What happened (or would happen) on one firewall."""

    name: str
    platform: str
    result: Result
    detail: str = ""
    expires: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "platform": self.platform, "result": self.result, "detail": self.detail,
                "expires": iso(self.expires)}


@dataclass(frozen=True)
class ContainRun:
    """One msib contain action: the request, the outcome per firewall, and what was swept first."""

    action: Action
    address: IPv4Net
    circuits: tuple[str, ...]
    firewalls: tuple[FirewallOutcome, ...]
    check: bool = False
    ttl_s: int | None = None
    expires: float | None = None
    reason: str | None = None
    swept: tuple[FirewallOutcome, ...] = ()
    audit: Path | None = None
    at: float = field(default_factory=time.time)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])

    @property
    def changed(self) -> bool:
        return any(f.result in CHANGED for f in self.firewalls)

    @property
    def ok(self) -> bool:
        return not any(f.result in FAILED for f in (*self.firewalls, *self.swept))

    @property
    def outcome(self) -> str:
        if self.action == "refused":
            return "refused"
        if not self.ok:
            return "partial" if self.changed else "failed"
        if self.check:
            return "check"
        return "changed" if self.changed else "unchanged"

    def exit_code(self) -> int:
        return 2 if self.action == "refused" else (0 if self.ok else 1)

    def record(self, phase: str = "outcome") -> dict[str, Any]:
        """The audit record of this action: its ``intent`` (before any change: every firewall ``pending``),
        one firewall's outcome (``firewall``, right after it) or the run's ``outcome`` (last)."""
        outcome = {"intent": "pending", "firewall": "partial-run"}.get(phase, self.outcome)
        return {"ts": iso(time.time() if phase != "outcome" else self.at), "action": self.action, "phase": phase,
                "run": self.run_id, **who(), "address": str(self.address), "circuits": list(self.circuits),
                "ttl_s": self.ttl_s, "expires": iso(self.expires), "reason": self.reason, "outcome": outcome,
                "check": self.check, "firewalls": [f.to_json() for f in self.firewalls]}

    def to_json(self) -> dict[str, Any]:
        return {**self.record(), "exit_code": self.exit_code(), "swept": [f.to_json() for f in self.swept],
                "audit_log": str(self.audit) if self.audit else None}


@dataclass(frozen=True)
class Options:
    """Connection settings of a run (credentials for vendor devices are resolved only when needed)."""

    audit_log: Path | None = None
    backup_dir: Path | None = None
    known_hosts: Path | None = None
    vault_file: Path | None = None
    vault_password_file: Path | None = None
    timeout: float = 20.0
    env: Mapping[str, str] | None = None


class _Runner:
    """Reaches the firewalls of one run: SSH for nftables, netmiko for vendor devices."""

    def __init__(self, inv: ContainInventory, firewalls: Sequence[Firewall], opts: Options) -> None:
        from msib import netdev

        self.inv = inv
        self.opts = opts
        vendor = [f for f in firewalls if not f.is_nftables]
        self.creds: Any = None
        self.targets: dict[str, Any] = {}
        if vendor:
            nd = netdev.NetdevInventory.of(inv.source if inv.source is not None else contract.load(inv.path))
            self.targets = {d.name: d for d in nd.devices}
            self.known_hosts = opts.known_hosts or nd.known_hosts
            self.creds = netdev.DeviceCredentials.resolve(opts.vault_file, opts.vault_password_file, env=opts.env)
        nft = [f for f in firewalls if f.is_nftables]
        self.nft = NftRemote(inv, nft, timeout=max(opts.timeout, 10.0)) if nft else None
        if self.nft is not None:
            for f in nft:
                self.nft.check_strict(f)

    def device(self, fw: Firewall) -> Any:
        from msib.netdev import NetDevice, default_backup_dir

        return NetDevice(self.targets[fw.name], self.creds, known_hosts=self.known_hosts,
                         backup_dir=self.opts.backup_dir or default_backup_dir(), timeout=self.opts.timeout)

    def close(self) -> None:
        if self.nft is not None:
            self.nft.close()


def _validate(inventory: Path) -> ContainInventory:
    inv = contain_inventory(contract.load(inventory))
    if not inv.firewalls:
        raise InputError(str(inventory / "hosts.yml"), "no firewalls (groups firewall, netdev) in the inventory")
    return inv


def _block_one(r: _Runner, fw: Firewall, target: IPv4Net, ttl_s: int, now: float, check: bool,
               held: Mapping[tuple[str, IPv4Net], Held]) -> FirewallOutcome:
    try:
        if fw.is_nftables:
            assert r.nft is not None
            plan = nft_block(r.nft.elements(fw), target, ttl_s)
            expires = now + plan.expires_s if plan.expires_s is not None else None
            if plan.result in ("added", "extended") and check:
                return FirewallOutcome(fw.name, fw.platform, "would-add" if plan.result == "added" else "would-extend",
                                       plan.script.strip().replace("\n", "; "), expires)
            if plan.script:
                r.nft.apply(fw, plan.script)
                # read back: the element is there, with (about) the timeout just set
                got = [e for e in r.nft.elements(fw) if e.network == target]
                if not got or (got[0].expires_s is not None and got[0].expires_s < ttl_s - grace_s(ttl_s) - 5):
                    raise ContainError(f"{fw.name}: {target} is not in {NFT_SET} with its timeout after the change")
            return FirewallOutcome(fw.name, fw.platform, plan.result, plan.detail, expires)
        prior = held.get((fw.name, target))
        with r.device(fw) as dev:
            res = dev.block(target, dry_run=check)
        if res.changed:
            return FirewallOutcome(fw.name, fw.platform, "would-add" if check else "added", "; ".join(
                x.strip() for x in res.lines), now + ttl_s)
        if prior is None:
            return FirewallOutcome(fw.name, fw.platform, "present",
                                   "already in the ACL, not by msib: no expiry is kept for it", None)
        if prior.expires is not None and prior.expires < now + ttl_s - grace_s(ttl_s):
            # the ACL entry stays; only msib's record of when to remove it moves
            return FirewallOutcome(fw.name, fw.platform, "would-extend" if check else "extended",
                                   f"expiry extended (was {iso(prior.expires)})", now + ttl_s)
        return FirewallOutcome(fw.name, fw.platform, "present", "already blocked", prior.expires)
    except Exception as exc:  # one firewall's failure, whatever it is, is its outcome: the others go on
        return FirewallOutcome(fw.name, fw.platform, "error", _why(exc))


def _release_one(r: _Runner, fw: Firewall, target: IPv4Net, check: bool) -> FirewallOutcome:
    try:
        if fw.is_nftables:
            assert r.nft is not None
            plan = nft_release(r.nft.elements(fw), target)
            if plan.result == "removed" and check:
                return FirewallOutcome(fw.name, fw.platform, "would-remove", plan.script.strip())
            if plan.script:
                r.nft.apply(fw, plan.script)
                if nft_release(r.nft.elements(fw), target).result != "absent":
                    raise ContainError(f"{fw.name}: {target} is still in {NFT_SET} after the change")
            return FirewallOutcome(fw.name, fw.platform, plan.result, plan.detail)
        with r.device(fw) as dev:
            res = dev.unblock(target, dry_run=check)
        if res.changed:
            return FirewallOutcome(fw.name, fw.platform, "would-remove" if check else "removed",
                                   "; ".join(x.strip() for x in res.lines))
        return FirewallOutcome(fw.name, fw.platform, "absent", "not blocked")
    except Exception as exc:  # as for a block: this firewall's outcome, the others go on
        return FirewallOutcome(fw.name, fw.platform, "error", _why(exc))


def _why(exc: Exception) -> str:
    """An error as one line: msib's own message, else the exception's type and text (netmiko, OS)."""
    if isinstance(exc, MsibError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}".strip().rstrip(":") or type(exc).__name__


def _due(inv: ContainInventory, log: AuditLog, now: float) -> list[Held]:
    """Vendor blocks msib holds whose expiry (kept in the audit log) has passed."""
    vendors = {f.name for f in inv.firewalls if not f.is_nftables}
    return [h for h in held_blocks(log.records()).values()
            if h.firewall in vendors and h.expires is not None and h.expires <= now]


def _with_due(inv: ContainInventory, firewalls: Sequence[Firewall], due: Sequence[Held]) -> list[Firewall]:
    """`firewalls` plus the vendor firewalls that have an expired block to sweep."""
    names = {h.firewall for h in due}
    chosen = {f.name: f for f in firewalls}
    chosen.update({f.name: f for f in inv.firewalls if f.name in names})
    return list(chosen.values())


def _sweep(inv: ContainInventory, log: AuditLog, r: _Runner, due: Sequence[Held], now: float,
           check: bool) -> tuple[FirewallOutcome, ...]:
    """Remove vendor ACL entries whose expiry has passed; one ``expire`` record each (none in check mode)."""
    by_name = {f.name: f for f in inv.firewalls}
    out: list[FirewallOutcome] = []
    for h in due:
        fw = by_name[h.firewall]
        o = _release_one(r, fw, h.network, check)
        o = replace(o, detail=f"expired {iso(h.expires)}" + (f": {o.detail}" if o.detail else ""))
        out.append(o)
        if not check:
            log.append(ContainRun("expire", h.network, (fw.circuit,), (o,), reason=h.reason, at=now,
                                  expires=h.expires).record())
    return tuple(out)


@contextlib.contextmanager
def _session(inv: ContainInventory, log: AuditLog, firewalls: Sequence[Firewall], opts: Options,
             check: bool) -> Iterator[tuple[_Runner, float, tuple[FirewallOutcome, ...]]]:
    """One run under the audit log's lock: the firewalls reached (plus those with an expired vendor
    block), the expired blocks swept first; yields (runner, now, swept)."""
    with log.locked():
        now = time.time()
        due = _due(inv, log, now)
        runner = _Runner(inv, _with_due(inv, firewalls, due), opts)
        try:
            yield runner, now, _sweep(inv, log, runner, due, now, check)
        finally:
            runner.close()


def _write_ahead(log: AuditLog, run: ContainRun, firewalls: Sequence[Firewall],
                 act: Callable[[Firewall], FirewallOutcome]) -> ContainRun:
    """Act on each firewall in turn: the intent recorded before the first change, each firewall's outcome
    right after it, the run's outcome last (nothing recorded in check mode)."""
    if not run.check:
        pending = tuple(FirewallOutcome(f.name, f.platform, "pending", expires=run.expires) for f in firewalls)
        log.append(replace(run, firewalls=pending).record("intent"), before_change=True)
    outcomes: list[FirewallOutcome] = []
    for f in firewalls:
        outcomes.append(act(f))
        if not run.check:
            log.append(replace(run, firewalls=(outcomes[-1],)).record("firewall"))
    done = replace(run, firewalls=tuple(outcomes))
    if not run.check:
        log.append(done.record())
    return done


def _refused_run(inv: ContainInventory, log: AuditLog, target: IPv4Net, circuits: tuple[str, ...], why: str,
                 ttl_s: int, reason: str | None, check: bool) -> ContainRefused:
    run = ContainRun("refused", target, circuits, (), check=check, ttl_s=ttl_s, reason=reason)
    rec = run.record()
    rec["refusal"] = why
    if not check:
        with log.locked():
            log.append(rec)
    return ContainRefused("--ip", f"refused: {why}; nothing was changed",
                          fix="containment never cuts the management path, the log path or an appliance")


def contain(inventory: Path, address: str, *, ttl: str = DEFAULT_TTL, circuits: Sequence[str] = (),
            reason: str | None = None, check: bool = False, opts: Options = Options()) -> ContainRun:
    """Block `address` on every firewall of its circuit(s) for `ttl`.

    Args:
        inventory: the inventory directory (hosts.yml).
        address: ``A.B.C.D`` or ``A.B.C.D/NN``.
        ttl: how long (``1h``, ``30m``...); nftables expires it itself, vendor entries are swept by msib.
        circuits: restrict to these circuits (default: the circuits whose networks hold the address, else all).
        reason: why (goes to the audit record).
        check: read the firewalls and say what would change; change nothing, write no record.
        opts: audit log path, device credentials, timeouts.

    Returns:
        The run, with one outcome per firewall (exit code 0, or 1 when a firewall failed).

    Raises:
        InputError: bad address, TTL or circuit, or no device credentials (exit 2, nothing changed).
        ContainRefused: the address is protected (exit 2, nothing changed, a ``refused`` record written).

    Example:
        >>> contain(Path("inv"), "198.18.16.100", ttl="30m", reason="beaconing")  # doctest: +SKIP
    """
    target = parse_target(address)
    ttl_s = parse_ttl(ttl)
    reason = reason.strip() if reason and reason.strip() else None
    inv = _validate(inventory)
    chosen = inv.select_circuits(target, circuits)
    log = AuditLog(opts.audit_log or default_audit_path(inventory))
    why = refusal(target, inv.protected)
    if why is not None:
        raise _refused_run(inv, log, target, chosen, why, ttl_s, reason, check)
    firewalls = inv.firewalls_of(chosen)
    if not firewalls:
        raise InputError(str(inventory / "hosts.yml"), f"no firewalls in circuit(s) {', '.join(chosen)}")
    with _session(inv, log, firewalls, opts, check) as (runner, now, swept):
        held = held_blocks(log.records())
        run = ContainRun("block", target, chosen, (), check=check, ttl_s=ttl_s, expires=now + ttl_s,
                         reason=reason, swept=swept, audit=log.path, at=now)
        return _write_ahead(log, run, firewalls, lambda f: _block_one(runner, f, target, ttl_s, now, check, held))


def release(inventory: Path, address: str, *, circuits: Sequence[str] = (), reason: str | None = None,
            check: bool = False, opts: Options = Options()) -> ContainRun:
    """Remove the block of `address` from every firewall that has it (default: every firewall).

    Raises:
        InputError: bad address or circuit, no device credentials (exit 2, nothing changed).
    """
    target = parse_target(address, "--release")
    reason = reason.strip() if reason and reason.strip() else None
    inv = _validate(inventory)
    chosen = inv.select_circuits(target, circuits) if circuits else tuple(inv.circuits)
    firewalls = inv.firewalls_of(chosen)
    log = AuditLog(opts.audit_log or default_audit_path(inventory))
    with _session(inv, log, firewalls, opts, check) as (runner, now, swept):
        run = ContainRun("release", target, chosen, (), check=check, reason=reason, swept=swept, audit=log.path,
                         at=now)
        return _write_ahead(log, run, firewalls, lambda f: _release_one(runner, f, target, check))


@dataclass(frozen=True)
class Block:
    """An active block as ``--list`` shows it."""

    address: IPv4Net
    firewalls: tuple[str, ...]
    expires: float | None
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        return {"address": str(self.address), "firewalls": list(self.firewalls), "expires": iso(self.expires),
                "reason": self.reason}


@dataclass(frozen=True)
class BlockList:
    """Active blocks read from the firewalls themselves, and the firewalls that could not be read."""

    blocks: tuple[Block, ...]
    errors: tuple[FirewallOutcome, ...] = ()
    swept: tuple[FirewallOutcome, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"blocks": [b.to_json() for b in self.blocks], "errors": [e.to_json() for e in self.errors],
                "swept": [s.to_json() for s in self.swept]}

    def exit_code(self) -> int:
        return 1 if self.errors or any(s.result in FAILED for s in self.swept) else 0


def list_blocks(inventory: Path, *, opts: Options = Options()) -> BlockList:
    """Sweep expired vendor entries, then read every firewall's active blocks.

    `expires` of a block is the latest expiry over its firewalls (None when one of them holds it
    without expiry, e.g. an ACL entry msib did not make); `reason` comes from the audit log.
    """
    inv = _validate(inventory)
    log = AuditLog(opts.audit_log or default_audit_path(inventory))
    seen: dict[IPv4Net, dict[str, float | None]] = {}
    errors: list[FirewallOutcome] = []
    with _session(inv, log, inv.firewalls, opts, False) as (runner, now, swept):
        held = held_blocks(log.records())
        for fw in inv.firewalls:
            try:
                if fw.is_nftables:
                    assert runner.nft is not None
                    for e in runner.nft.elements(fw):
                        seen.setdefault(e.network, {})[fw.name] = (
                            now + e.expires_s if e.expires_s is not None else None)
                else:
                    with runner.device(fw) as dev:
                        for net in dev.blocks():
                            h = held.get((fw.name, net))
                            seen.setdefault(net, {})[fw.name] = h.expires if h else None
            except Exception as exc:  # one firewall that cannot be read does not hide the others
                errors.append(FirewallOutcome(fw.name, fw.platform, "error", _why(exc)))
    # why: the record that put the block on a firewall (a later identical run does not erase it)
    reasons = {net: h.reason for (_fw, net), h in held.items() if h.reason}
    blocks = []
    for net, per_fw in sorted(seen.items()):
        exps = list(per_fw.values())
        expires = None if any(x is None for x in exps) else max(x for x in exps if x is not None)
        blocks.append(Block(net, tuple(sorted(per_fw)), expires, reasons.get(net)))
    return BlockList(tuple(blocks), tuple(errors), swept)
