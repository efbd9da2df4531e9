"""The quarterly report to the KNB (§13 of the Rules): per SB, what changed and what happened in the quarter.

Per SB, for the quarter: the appendix changes (this quarter's appendix against the previous one,
both built afresh and compared as ``msib inventory diff`` does), registration changes at the SIEM
(``msib siem sync`` runs in the run log), check results (the last run and every failure of the
quarter, from the run log), containment actions (the audit log) and silent periods per source
(health's history). Written as Markdown and as a self-contained HTML page; every value is escaped
(:mod:`msib.escape`: ``html_text`` and ``md_cell``, at each call site).
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from msib import runlog
from msib.contain.audit import AuditLog
from msib.errors import InputError
from msib.escape import html_text, md_cell
from msib.fleet.build import build_sb
from msib.fleet.model import Fleet, SbEntry, appendix_sets, private_umask, survey
from msib.fsutil import atomic_write
from msib.health.history import History
from msib.health.model import span
from msib.inventory.diff import diff_inventories

QUARTER = re.compile(r"^(\d{4})Q([1-4])$")


def quarter_bounds(quarter: str) -> tuple[float, float]:
    """Epoch seconds of the quarter's first instant and of the next quarter's (UTC).

    Raises:
        InputError: not a quarter like 2026Q4.

    >>> [dt.datetime.fromtimestamp(t, dt.UTC).date().isoformat() for t in quarter_bounds("2026Q4")]
    ['2026-10-01', '2027-01-01']
    """
    m = QUARTER.match(quarter)
    if not m:
        raise InputError("--quarter", f"{quarter!r} is not a quarter", fix="give it as YYYYQn, e.g. 2026Q4")
    year, q = int(m.group(1)), int(m.group(2))
    start = dt.datetime(year, 3 * q - 2, 1, tzinfo=dt.UTC)
    end = dt.datetime(year + (q == 4), 1 if q == 4 else 3 * q + 1, 1, tzinfo=dt.UTC)
    return start.timestamp(), end.timestamp()


def in_quarter(ts: Any, start: float, end: float) -> bool:
    t = runlog.from_iso(ts)
    return t is not None and start <= t < end


@dataclass
class SbQuarter:
    """One SB's section of the report."""

    code: str
    state_body: str | None
    error: str | None = None
    appendix: dict[str, Any] = field(default_factory=dict)
    registration: list[dict[str, Any]] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)
    containment: list[dict[str, Any]] = field(default_factory=list)
    silences: list[dict[str, Any]] = field(default_factory=list)


def _appendix_changes(fleet: Fleet, entry: SbEntry, quarter: str, work: Path) -> dict[str, Any]:
    sets = appendix_sets(entry.directory)
    if None in sets:
        return {"note": "the appendices are not named by quarter: their changes cannot be told"}
    if quarter not in sets:
        return {"note": f"no appendix of {quarter}"}
    earlier = [q for q in sets if q is not None and q < quarter]
    new = build_sb(fleet, entry, out_dir=work / entry.code / str(quarter), quarter=quarter)
    if not new.ok:
        return {"note": f"the appendix of {quarter} does not build: {new.error}"}
    if not earlier:
        return {"note": f"first appendix on record: {new.result.objects if new.result else 0} objects"}
    old = build_sb(fleet, entry, out_dir=work / entry.code / str(earlier[-1]), quarter=earlier[-1])
    if not old.ok:
        return {"note": f"the appendix of {earlier[-1]} does not build: {old.error}"}
    diff = diff_inventories(work / entry.code / str(earlier[-1]), work / entry.code / str(quarter))
    return {"from": earlier[-1], "to": quarter, **diff.to_json()}


def _checks(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    runs = list(records)
    failures: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in runs:
        for f in rec.get("failures") or []:
            if isinstance(f, dict):
                key = (str(f.get("host")), str(f.get("check")))
                item = failures.setdefault(key, {"host": key[0], "check": key[1], "runs": 0,
                                                 "first": rec.get("finished"), "last": rec.get("finished")})
                item["runs"] += 1
                item["last"] = rec.get("finished")
    last = runs[-1] if runs else None
    return {"runs": len(runs), "last": None if last is None else {
        k: last.get(k) for k in ("finished", "ok", "passed", "failed", "errors")},
        "failures": sorted(failures.values(), key=lambda f: (f["host"], f["check"]))}


def sb_quarter(fleet: Fleet, entry: SbEntry, quarter: str, work: Path, now: float) -> SbQuarter:
    start, end = quarter_bounds(quarter)
    out = SbQuarter(entry.code, entry.plan.state_body if entry.plan else None, error=entry.error)
    if not entry.ok:
        return out
    inventory = fleet.inventory_dir(entry.code)
    out.appendix = _appendix_changes(fleet, entry, quarter, work)
    out.registration = [r for r in runlog.records(inventory, "siem_sync") if in_quarter(r.get("finished"), start, end)]
    out.checks = _checks(r for r in runlog.records(inventory, "check") if in_quarter(r.get("finished"), start, end))
    audit = AuditLog(inventory.parent / f"{inventory.name}.contain-audit.jsonl")
    out.containment = [r for r in audit.records() if in_quarter(r.get("ts"), start, end)]
    for p in History(inventory).silences(start, end, now):
        begin, stop = max(p["from"], start), min(p["to"] if p["to"] is not None else now, end)
        out.silences.append({**p, "duration_s": max(0.0, stop - begin)})
    return out


def quarterly(fleet: Fleet, quarter: str, *, only: Iterable[str] = (), now: float | None = None) -> list[SbQuarter]:
    """Every SB's section (or those in `only`). Appendices are built in ``state/tmp`` (0700) and removed after."""
    quarter_bounds(quarter)
    now = time.time() if now is None else now
    wanted = set(only)
    work = fleet.private_dir(fleet.state_dir / "tmp" / f"quarterly-{quarter}")
    try:
        with private_umask():
            return [sb_quarter(fleet, e, quarter, work, now) for e in survey(fleet) if not wanted or e.code in wanted]
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- rendering ------------------------------------------------------------------------------------


def _when(t: float | None) -> str:
    return "ongoing" if t is None else time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t))


def _dig(rec: Mapping[str, Any], *keys: str) -> Any:
    for k in keys:
        rec = rec.get(k) if isinstance(rec, Mapping) else None  # type: ignore[assignment]
    return rec


def _n(value: Any) -> str:
    """A count of a list, or the number itself; "-" when there is neither."""
    return str(len(value)) if isinstance(value, list) else "-" if value is None else str(value)


def _sections(sb: SbQuarter) -> list[tuple[str, list[str], list[list[str]], str]]:
    """(title, header, rows, note) of each part of an SB's section, as plain text (escaped when rendered)."""
    parts: list[tuple[str, list[str], list[list[str]], str]] = []
    a = sb.appendix
    rows: list[list[str]] = []
    note = str(a.get("note") or "")
    if "counts" in a:
        note = f"{a['from']} → {a['to']}: " + ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in a["counts"].items())
        rows += [["added", o.get("hostname") or "", o.get("ip") or "", o.get("circuit") or "", ""] for o in a["added"]]
        rows += [["removed", o.get("hostname") or "", o.get("ip") or "", o.get("circuit") or "", ""]
                 for o in a["removed"]]
        rows += [[", ".join(c["kinds"]), c.get("hostname") or "", c.get("ip") or "", "",
                  "; ".join(f"{k}: {v[0]} → {v[1]}" for k, v in c["fields"].items())] for c in a["changed"]]
    parts.append(("Appendix changes", ["change", "hostname", "IP", "circuit", "details"], rows, note))
    reg = [[str(r.get("finished")), ", ".join(_dig(r, "agents", "add") or []) or "-",
            ", ".join(_dig(r, "agents", "remove") or []) or "-",
            _n(_dig(r, "objects", "add")), _n(_dig(r, "objects", "remove"))] for r in sb.registration]
    parts.append(("Registration changes at the SIEM", ["sync", "agents registered", "agents removed",
                                                       "objects added", "objects removed"], reg,
                  "" if reg else "no SIEM sync recorded in the quarter"))
    c = sb.checks
    last = c.get("last")
    note = (f"{c.get('runs', 0)} check runs; last {last['finished']}: {last['passed']} passed, "
            f"{last['failed']} failed, {last['errors']} errors" if last else "no check run recorded in the quarter")
    parts.append(("Check results", ["host", "check", "failed runs", "first", "last"],
                  [[f["host"], f["check"], str(f["runs"]), str(f["first"]), str(f["last"])]
                   for f in c.get("failures") or []], note))
    cont = [[str(r.get("ts")), str(r.get("action")), str(r.get("address")), str(r.get("outcome")),
             str(r.get("reason") or ""), str(r.get("user") or ""),
             ", ".join(f"{f.get('name')} {f.get('result')}" for f in r.get("firewalls") or [] if isinstance(f, dict))]
            for r in sb.containment]
    parts.append(("Containment actions", ["when", "action", "address", "outcome", "reason", "by", "firewalls"], cont,
                  "" if cont else "none in the quarter"))
    sil = [[str(p.get("name")), str(p.get("kind")), str(p.get("circuit") or ""), _when(p.get("from")),
            _when(p.get("to")), span(float(p["duration_s"]))] for p in sb.silences]
    parts.append(("Silent periods", ["source", "kind", "circuit", "from", "to", "duration"], sil,
                  "" if sil else "no source was silent in the quarter"))
    return parts


def render_markdown(fleet_name: str, quarter: str, sbs: list[SbQuarter], now: float) -> str:
    out = [f"# {md_cell(fleet_name)}: quarterly report {md_cell(quarter)} (§13 of the Rules)", "",
           f"Generated {md_cell(_when(now))} for {len(sbs)} SBs.", ""]
    for sb in sbs:
        out += [f"## {md_cell(sb.code)}: {md_cell(sb.state_body or '')}", ""]
        if sb.error:
            out += [f"Skipped: {md_cell(sb.error)}", ""]
            continue
        for title, header, rows, note in _sections(sb):
            out += [f"### {md_cell(title)}", ""]
            if note:
                out += [md_cell(note), ""]
            if rows:
                out += ["| " + " | ".join(md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
                out += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
                out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


_CSS = ("body{font:14px/1.45 system-ui,sans-serif;margin:28px;color:#1b1f24}h1{font-size:22px}"
        "h2{margin-top:28px;border-bottom:1px solid #d0d7de}table{border-collapse:collapse;margin:6px 0 14px}"
        "th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f0f3f6}"
        ".note{color:#57606a}")


def render_html(fleet_name: str, quarter: str, sbs: list[SbQuarter], now: float) -> str:
    body = [f"<h1>{html_text(fleet_name)}: quarterly report {html_text(quarter)} (§13 of the Rules)</h1>",
            f'<p class="note">Generated {html_text(_when(now))} for {len(sbs)} SBs.</p>']
    for sb in sbs:
        body.append(f'<h2 id="sb-{html_text(sb.code)}">{html_text(sb.code)}: {html_text(sb.state_body or "")}'
                    "</h2>")
        if sb.error:
            body.append(f'<p class="note">Skipped: {html_text(sb.error)}</p>')
            continue
        for title, header, rows, note in _sections(sb):
            body.append(f"<h3>{html_text(title)}</h3>")
            if note:
                body.append(f'<p class="note">{html_text(note)}</p>')
            if rows:
                body.append("<table><tr>" + "".join(f"<th>{html_text(h)}</th>" for h in header) + "</tr>"
                            + "".join("<tr>" + "".join(f"<td>{html_text(c)}</td>" for c in row) + "</tr>"
                                      for row in rows) + "</table>")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html_text(fleet_name)} '
            f"{html_text(quarter)}</title><style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n")


def write_quarterly(fleet: Fleet, quarter: str, out_dir: Path | None = None, *, only: Iterable[str] = (),
                    now: float | None = None) -> dict[str, Path]:
    """Write ``quarterly-<quarter>.md`` and ``.html`` (default: the fleet's ``reports/``, 0600/0700)."""
    now = time.time() if now is None else now
    sbs = quarterly(fleet, quarter, only=only, now=now)
    target = fleet.private_dir(fleet.root / "reports") if out_dir is None else out_dir
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    name = fleet.settings.name
    paths = {"markdown": target / f"quarterly-{quarter}.md", "html": target / f"quarterly-{quarter}.html"}
    atomic_write(paths["markdown"], render_markdown(name, quarter, sbs, now), mode=0o600)
    atomic_write(paths["html"], render_html(name, quarter, sbs, now), mode=0o600)
    return paths
