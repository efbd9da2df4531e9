"""Reports of a check run: JUnit XML (CI), one self-contained HTML page (auditors), Markdown, JSON.

The HTML report needs nothing but a browser: inline CSS, no script, no external asset, every value
escaped. It opens with the state body, the inventory, msib's and the engines' versions, the summary
(passed / failed / errors, hosts, when), then
the findings, then every host with every check, its severity, the clause it enforces and the
evidence observed on the host.

Example:
    >>> paths = write_reports(run, Path("report"))       # doctest: +SKIP
    >>> sorted(paths)                                     # doctest: +SKIP
    ['html', 'json', 'junit', 'markdown']
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from msib.checks import CheckResult, CheckRun
from msib.escape import html_text as _e
from msib.escape import md_cell as _md_cell
from msib.escape import md_code, md_fence, xml_text

SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}
_LABEL = {"passed": "PASS", "failed": "FAIL", "error": "ERROR"}


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def _atomic_write(path: Path, data: str) -> None:
    """Write `data` to `path` through a temp file and a rename: a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def findings(run: CheckRun) -> list[CheckResult]:
    """Failed and errored results, most severe first."""
    bad = [r for r in run.results if r.outcome != "passed"]
    return sorted(bad, key=lambda r: (SEVERITY_ORDER.get(r.severity, 9), r.outcome != "error", r.host, r.check_id))


# --- JUnit XML ------------------------------------------------------------------------------------


def junit_xml(run: CheckRun) -> str:
    """JUnit XML: one testsuite per host, one testcase per check (classname = host.role)."""
    x = xml_text
    suites = ET.Element("testsuites", name="msib check", tests=str(len(run.results)),
                        failures=str(run.counts()["failed"]), errors=str(run.counts()["errors"]),
                        time=f"{run.finished - run.started:.3f}")
    for host in run.hosts:
        results = run.by_host().get(host.name, [])
        suite = ET.SubElement(suites, "testsuite", name=x(host.name), hostname=x(host.address),
                              tests=str(len(results)),
                              failures=str(sum(r.outcome == "failed" for r in results)),
                              errors=str(sum(r.outcome == "error" for r in results)), skipped="0",
                              time=f"{sum(r.duration_s for r in results):.3f}", timestamp=_when(run.started))
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="role", value=x(host.role))
        for key, value in _header(run):
            ET.SubElement(props, "property", name=key, value=x(value))
        for r in results:
            case = ET.SubElement(suite, "testcase", classname=x(f"{host.name}.{host.role}"),
                                 name=x(f"{r.check_id} {r.title}"), time=f"{r.duration_s:.3f}")
            cprops = ET.SubElement(case, "properties")
            for key, value in (("id", r.check_id), ("severity", r.severity), ("clause", r.clause)):
                ET.SubElement(cprops, "property", name=key, value=x(value))
            evidence = x(r.evidence)
            if r.outcome == "failed":
                ET.SubElement(case, "failure", message=x(_last_line(r.evidence), newlines=False),
                              type=x(r.severity)).text = evidence
            elif r.outcome == "error":
                ET.SubElement(case, "error", message=x(_last_line(r.evidence), newlines=False),
                              type="error").text = evidence
            ET.SubElement(case, "system-out").text = evidence
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _header(run: CheckRun) -> list[tuple[str, str]]:
    """What every report names first: the SB, the inventory, msib's and the engines' versions."""
    return [("state body", run.sb), ("inventory", run.inventory), ("versions", _versions(run))]


def _versions(run: CheckRun) -> str:
    return ", ".join(f"{name} {version}" for name, version in run.versions.items()) or "versions not recorded"


def _last_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


# --- Markdown -------------------------------------------------------------------------------------


def markdown(run: CheckRun) -> str:
    """The report as Markdown (for a ticket or a wiki page)."""
    c = run.counts()
    verdict = "PASSED" if run.exit_code() == 0 else ("ERRORS" if c["errors"] else "FAILED")
    out = [f"# msib compliance report: {verdict}", "",
           *(f"- {key}: {md_code(value) if key == 'inventory' else _md_cell(value)}" for key, value in _header(run)),
           f"- run: {_when(run.started)}, {run.finished - run.started:.1f} s, {len(run.hosts)} hosts",
           f"- **passed {c['passed']}, failed {c['failed']}, errors {c['errors']}**", ""]
    bad = findings(run)
    out += ["## Findings", ""]
    if not bad:
        out += ["None: every check passed on every host.", ""]
    else:
        out += ["| host | check | severity | result | evidence |", "|---|---|---|---|---|"]
        out += [f"| {_md_cell(r.host)} | {_md_cell(r.check_id)} {_md_cell(r.title)} | {_md_cell(r.severity)} | "
                f"{_LABEL[r.outcome]} | "
                f"{_md_cell(_last_line(r.evidence))} |" for r in bad]
        out.append("")
    for host in run.hosts:
        results = run.by_host().get(host.name, [])
        out += [f"## {_md_cell(host.name)} ({_md_cell(host.role)}, {_md_cell(host.address)})", "",
                "| check | title | severity | result |", "|---|---|---|---|"]
        out += [f"| {_md_cell(r.check_id)} | {_md_cell(r.title)} | {_md_cell(r.severity)} | {_LABEL[r.outcome]} |"
                for r in results]
        out.append("")
        for r in results:
            out += [f"### {_md_cell(host.name)}: {_md_cell(r.check_id)} {_LABEL[r.outcome]}", "",
                    f"{_md_cell(r.title)}. *Why:* {_md_cell(r.clause)}", "",
                    *md_fence(r.evidence, empty="(no evidence recorded)"), ""]
    return "\n".join(out)


# --- HTML -----------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;color:#1b1f24;
background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{margin:0 0 4px;font-size:26px}h2{margin:32px 0 8px;font-size:20px;border-bottom:1px solid #d0d7de}
.meta{color:#57606a;margin:0 0 16px}
.summary{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0}
.box{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:12px 20px;min-width:120px}
.box .n{font-size:34px;font-weight:700}.box .l{color:#57606a;text-transform:uppercase;font-size:12px}
.verdict{font-size:18px;font-weight:700;padding:10px 16px;border-radius:8px;display:inline-block}
.v-pass{background:#dafbe1;color:#116329}.v-fail{background:#ffebe9;color:#a40e26}.v-error{background:#fff8c5;color:#7d4e00}
table{border-collapse:collapse;width:100%;background:#fff;margin:8px 0}
th,td{border:1px solid #d0d7de;padding:6px 8px;text-align:left;vertical-align:top;font-size:14px}
th{background:#eaeef2}
.passed{color:#116329;font-weight:700}.failed{color:#a40e26;font-weight:700}.error{color:#7d4e00;font-weight:700}
.sev-critical{color:#a40e26;font-weight:700}.sev-high{color:#bc4c00;font-weight:700}
pre{white-space:pre-wrap;word-break:break-word;background:#f6f8fa;border:1px solid #d0d7de;padding:8px;margin:4px 0;
font-size:12px}
.clause{color:#57606a;font-size:13px}
@media print{details{display:block}details>summary{display:none}}
"""


def html_report(run: CheckRun) -> str:
    """The report as one self-contained HTML page (no script, no external asset)."""
    c = run.counts()
    code = run.exit_code()
    verdict, vclass = {0: ("PASSED: every check passed on every host", "v-pass"),
                       1: ("FAILED: some checks failed", "v-fail"),
                       2: ("ERRORS: some checks could not be made", "v-error")}[code]
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>msib compliance report: {_e(verdict.split(':')[0])}</title>",
             f"<style>{_CSS}</style></head><body><main>",
             "<h1>msib compliance report</h1>",
             f'<p class="meta" id="sb">State body <b>{_e(run.sb)}</b> &middot; inventory '
             f"<code>{_e(run.inventory)}</code></p>",
             f'<p class="meta" id="versions">{_e(_versions(run))}</p>',
             f'<p class="meta">Run {_e(_when(run.started))} &middot; {run.finished - run.started:.1f} s &middot; '
             f"{len(run.hosts)} hosts</p>",
             '<section id="summary">',
             f'<div id="verdict" class="verdict {vclass}">{_e(verdict)}</div>',
             '<div class="summary">',
             f'<div class="box"><div class="n" id="count-passed">{c["passed"]}</div><div class="l">passed</div></div>',
             f'<div class="box"><div class="n" id="count-failed">{c["failed"]}</div><div class="l">failed</div></div>',
             f'<div class="box"><div class="n" id="count-errors">{c["errors"]}</div><div class="l">errors</div></div>',
             f'<div class="box"><div class="n" id="count-hosts">{len(run.hosts)}</div><div class="l">hosts</div></div>',
             "</div>"]
    parts.append("<table><tr><th>host</th><th>role</th><th>address</th><th>passed</th><th>failed</th>"
                 "<th>errors</th></tr>")
    for host in run.hosts:
        rs = run.by_host().get(host.name, [])
        n = {k: sum(r.outcome == k for r in rs) for k in ("passed", "failed", "error")}
        parts.append(f'<tr><td><a href="#host-{_e(host.name)}">{_e(host.name)}</a></td><td>{_e(host.role)}</td>'
                     f"<td>{_e(host.address)}</td><td>{n['passed']}</td>"
                     f'<td class="{"failed" if n["failed"] else ""}">{n["failed"]}</td>'
                     f'<td class="{"error" if n["error"] else ""}">{n["error"]}</td></tr>')
    parts.append("</table></section>")
    bad = findings(run)
    parts.append('<h2 id="findings">Findings</h2>')
    if not bad:
        parts.append("<p>None: every check passed on every host.</p>")
    else:
        parts.append("<table><tr><th>host</th><th>check</th><th>severity</th><th>result</th><th>evidence</th></tr>")
        for r in bad:
            parts.append(f"<tr><td>{_e(r.host)}</td><td><b>{_e(r.check_id)}</b><br>{_e(r.title)}</td>"
                         f'<td class="sev-{_e(r.severity)}">{_e(r.severity)}</td>'
                         f'<td class="{r.outcome}">{_LABEL[r.outcome]}</td><td><pre>{_e(r.evidence)}</pre></td></tr>')
        parts.append("</table>")
    for host in run.hosts:
        parts.append(f'<h2 id="host-{_e(host.name)}">{_e(host.name)} <span class="clause">'
                     f"{_e(host.role)}, {_e(host.address)}</span></h2>")
        parts.append("<table><tr><th>check</th><th>severity</th><th>result</th><th>evidence</th></tr>")
        for r in run.by_host().get(host.name, []):
            parts.append(
                f'<tr id="{_e(host.name)}-{_e(r.check_id)}"><td><b>{_e(r.check_id)}</b><br>{_e(r.title)}'
                f'<div class="clause">Why: {_e(r.clause)}</div></td>'
                f'<td class="sev-{_e(r.severity)}">{_e(r.severity)}</td>'
                f'<td class="{r.outcome}">{_LABEL[r.outcome]}</td>'
                f"<td><details{' open' if r.outcome != 'passed' else ''}><summary>evidence</summary>"
                f"<pre>{_e(r.evidence or '(no evidence recorded)')}</pre></details></td></tr>")
        parts.append("</table>")
    parts.append(f'<p class="meta">Written by msib check. Exit status {code} '
                 "(0 all passed, 1 a check failed, 2 an error prevented checking).</p>")
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def summary_json(run: CheckRun) -> str:
    """The machine-readable run: the summary plus every result."""
    data = {**run.summary(), "exit_code": run.exit_code(), "state_body": run.state_body, "sb_code": run.sb_code,
            "versions": run.versions, "inventory": run.inventory,
            "started": _when(run.started), "seconds": round(run.finished - run.started, 3),
            "hosts": [{"name": h.name, "role": h.role, "address": h.address} for h in run.hosts],
            "results": [r.as_json() for r in run.results]}
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def write_reports(run: CheckRun, directory: Path) -> dict[str, Path]:
    """Write junit.xml, report.html, report.md and report.json into `directory` (atomically each).

    Returns:
        {"junit", "html", "markdown", "json"} → path.
    """
    paths = {"junit": directory / "junit.xml", "html": directory / "report.html",
             "markdown": directory / "report.md", "json": directory / "report.json"}
    _atomic_write(paths["junit"], junit_xml(run))
    _atomic_write(paths["html"], html_report(run))
    _atomic_write(paths["markdown"], markdown(run))
    _atomic_write(paths["json"], summary_json(run))
    return paths
