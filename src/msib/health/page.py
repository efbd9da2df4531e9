"""The fleet's health as one self-contained HTML page: a row per SB, a drill-down per source.

Nothing but a browser is needed: inline CSS, no script (the drill-down is ``<details>``), no
external asset. Every value from an inventory or a host is escaped (:func:`msib.escape.html_text`, at
each call site).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from msib.escape import html_text
from msib.health.model import SEVERITY, STATES, SbHealth, SourceHealth, span

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1b1f24;background:#fafafa}
h1{font-size:22px;margin:0 0 4px} .sub{color:#57606a;margin-bottom:16px}
.tiles{display:flex;gap:12px;margin:12px 0 20px}
.tile{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:8px 16px;min-width:110px}
.tile .n{font-size:26px;font-weight:600} .tile .l{color:#57606a}
table{border-collapse:collapse;width:100%;background:#fff} th,td{border-bottom:1px solid #d8dee4;padding:5px 8px;
text-align:left;vertical-align:top} th{background:#f0f3f6;font-weight:600}
.st{display:inline-block;border-radius:10px;padding:0 8px;font-weight:600;font-size:12px}
.ok{background:#dafbe1;color:#116329} .silent{background:#ffebe9;color:#a40e26}
.degraded{background:#fff8c5;color:#7d4e00} .unknown{background:#eaeef2;color:#424a53}
details{margin:0 0 14px;background:#fff;border:1px solid #d0d7de;border-radius:6px}
summary{cursor:pointer;padding:8px 12px;font-weight:600} details table{border-top:1px solid #d0d7de}
.why{color:#57606a;font-size:12px} .num{text-align:right;font-variant-numeric:tabular-nums}
"""


def _when(t: float | None) -> str:
    return "never" if t is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def ago(t: float | None, now: float) -> str:
    """How long before `now` time `t` was ("never" for None)."""
    return "never" if t is None else span(max(0.0, now - t))


def _badge(state: str, severe: bool = False) -> str:
    text = state + (" (severe)" if severe else "")
    return f'<span class="st {html_text(state)}">{html_text(text)}</span>'


def _extra(s: SourceHealth) -> str:
    """The appliance readings that apply, as short text."""
    parts = []
    m = s.metrics
    if m.get("queue_size") is not None:
        parts.append(f"queue {m['queue_size']} (max {m.get('queue_max_size')}), discarded {m.get('discarded_total')}")
    if m.get("capture_packets") is not None:
        loss = m.get("capture_loss")
        parts.append(f"capture {m['capture_packets']} pkts, {m.get('capture_drops')} drops"
                     + (f" ({float(loss):.2%})" if isinstance(loss, int | float) else ""))
    if m.get("rules_loaded") is not None:
        parts.append(f"{m['rules_loaded']} rules, file age {_age_s(m.get('rules_age_s'))}, "
                     f"reloaded {_age_s(m.get('rules_reload_age_s'))} ago")
    if "convergence_age_s" in m:
        parts.append(f"converged {_age_s(m['convergence_age_s'])} ago" if m["convergence_age_s"] is not None
                     else "no converged deploy recorded")
    return "; ".join(parts)


def _age_s(value: object) -> str:
    return span(float(value)) if isinstance(value, int | float) else "?"


def _sources(r: SbHealth) -> str:
    rows = []
    order = sorted(r.sources, key=lambda s: (-SEVERITY[s.state], not s.is_appliance, s.circuit or "", s.name))
    for s in order:
        rate = "" if s.rate is None else f"{s.rate:.2f}"
        base = "" if s.baseline is None else f"{s.baseline:.2f}"
        why = "; ".join(s.reasons)
        extra = _extra(s)
        rows.append(
            f'<tr id="src-{html_text(r.sb)}-{html_text(s.key)}"><td>{html_text(s.name)}'
            f'<div class="why">{html_text(s.address or "")}</div></td>'
            f"<td>{html_text(s.kind)}</td><td>{html_text(s.circuit or '')}</td>"
            f"<td>{_badge(s.state, s.severe)}</td>"
            f'<td title="{html_text(_when(s.last_heard))}">{html_text(ago(s.last_heard, r.at))} '
            f'<span class="why">at {html_text(s.heard_at)}</span></td>'
            f'<td class="num">{rate}</td><td class="num">{base}</td>'
            f'<td class="why">{html_text(why)}{"<br>" if why and extra else ""}{html_text(extra)}</td></tr>')
    head = ("<tr><th>source</th><th>kind</th><th>circuit</th><th>state</th><th>last heard</th>"
            "<th>events/min</th><th>baseline</th><th>why, readings</th></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def render_page(results: Sequence[SbHealth], *, title: str = "msib fleet health", now: float | None = None) -> str:
    """The whole page: totals, one row per SB (worst state first), then each SB's sources."""
    now = time.time() if now is None else now
    totals = {state: sum(r.counts()[state] for r in results) for state in STATES}
    tiles = "".join(f'<div class="tile"><div class="n" id="total-{state}">{totals[state]}</div>'
                    f'<div class="l">{state}</div></div>' for state in ("silent", "degraded", "unknown", "ok"))
    tiles = (f'<div class="tile"><div class="n" id="total-sbs">{len(results)}</div><div class="l">SBs</div></div>'
             + tiles)
    ordered = sorted(results, key=lambda r: (-SEVERITY[r.worst], r.sb))
    rows = []
    for r in ordered:
        c = r.counts()
        silent = ", ".join(s.name for s in r.silent[:5]) + (" …" if len(r.silent) > 5 else "")
        note = r.error or "; ".join(f"{k}: {v}" for k, v in sorted(r.unreachable.items()))
        rows.append(
            f'<tr id="sb-{html_text(r.sb)}"><td><a href="#detail-{html_text(r.sb)}">{html_text(r.sb)}</a></td>'
            f"<td>{html_text(r.state_body or '')}</td><td>{_badge(r.worst)}</td>"
            + "".join(f'<td class="num">{c[state]}</td>' for state in ("silent", "degraded", "unknown", "ok"))
            + f"<td>{html_text(silent)}</td><td>{html_text(_when(r.at))}</td>"
            f'<td class="why">{html_text(note)}</td></tr>')
    head = ("<tr><th>SB</th><th>state body</th><th>worst</th><th>silent</th><th>degraded</th><th>unknown</th>"
            "<th>ok</th><th>silent sources</th><th>checked</th><th>could not ask</th></tr>")
    details = "".join(
        f'<details id="detail-{html_text(r.sb)}"{" open" if r.worst in ("silent", "degraded") else ""}>'
        f"<summary>{html_text(r.sb)}: {len(r.sources)} sources, {_badge(r.worst)}</summary>{_sources(r)}</details>"
        for r in ordered)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html_text(title)}</title>'
            f"<style>{_CSS}</style></head><body><h1>{html_text(title)}</h1>"
            f'<div class="sub">generated {html_text(_when(now))}; a source is silent after its class\'s threshold '
            f"without an event, degraded below its share of its own baseline, unknown when nothing could tell</div>"
            f'<div class="tiles" id="summary">{tiles}</div>'
            f'<table id="fleet">{head}{"".join(rows)}</table><h2>Sources</h2>{details}</body></html>\n')
