"""The fleet health page in a real headless browser (Debian's chromium): a row per SB, a drill-down per source."""

from __future__ import annotations

from pathlib import Path

from chromium_helpers import CHROMIUM, chromium
from msib.health.model import SbHealth, SourceHealth
from msib.health.page import render_page

NOW = 1_800_000_000.0


def _src(key: str, name: str, kind: str, state: str, heard: float | None, **kw: object) -> SourceHealth:
    return SourceHealth(key, name, kind, kw.pop("circuit", "internal"), kw.pop("address", "198.18.16.100"),  # type: ignore[arg-type]
                        900.0, "siem" if kind == "collector" else "collector", state=state,  # type: ignore[arg-type]
                        last_heard=heard, **kw)  # type: ignore[arg-type]


def results() -> list[SbHealth]:
    lab = SbHealth("lab", "Лабораторное министерство", NOW, seconds=1.4, sources=[
        _src("col-int-1", "col-int-1", "collector", "ok", NOW - 30, rate=None,
             metrics={"queue_size": 3, "queue_max_size": 40, "discarded_total": 0, "convergence_age_s": 600}),
        _src("ids-int-1", "ids-int-1", "ids_sensor", "ok", NOW - 45, rate=2.0,
             metrics={"capture_packets": 120000, "capture_drops": 12, "capture_loss": 0.0001, "rules_loaded": 6,
                      "rules_age_s": 7200, "rules_reload_age_s": 3600, "convergence_age_s": 600}),
        _src("object:198.18.16.100", "obj-int-1", "workstation", "silent", NOW - 4000, rate=0.0,
             reasons=["nothing for 67 min (threshold 60 s)"]),
        _src("object:198.18.32.100", "<b>obj-ext-1</b>", "workstation", "degraded", NOW - 20, rate=1.0,
             baseline=20.0, severe=True, circuit="external", address="198.18.32.100",
             reasons=["rate 1.00/min is 5% of its baseline 20.00/min"]),
    ])
    akm = SbHealth("akm", "Лабораторный акимат", NOW, seconds=0.6, sources=[
        _src("col-1", "col-1", "collector", "ok", NOW - 10),
        _src("object:198.19.232.100", "obj-1", "workstation", "ok", NOW - 5, rate=12.0)])
    broken = SbHealth("zzz", None, NOW, error="sbs/zzz/site.yml: not valid YAML")
    return [akm, lab, broken]


def test_the_page_renders_in_headless_chromium_one_row_per_sb_worst_first(tmp_path: Path) -> None:
    assert Path(CHROMIUM).exists(), "Debian's chromium is needed (scripts/setup installs it)"
    page = tmp_path / "health.html"
    page.write_text(render_page(results(), title="Lab fleet: health", now=NOW))
    png = tmp_path / "health.png"
    shot = chromium(tmp_path, f"--screenshot={png}", "--window-size=1280,900", page.as_uri())
    assert png.is_file(), shot.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(data[16:20], "big") == 1280
    dom = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert '<div class="n" id="total-sbs">3</div>' in html
    assert '<div class="n" id="total-silent">1</div>' in html and '<div class="n" id="total-degraded">1</div>' in html
    # worst first: lab (silent), then the SB that could not be read (unknown), then akm (ok)
    assert html.index('id="sb-lab"') < html.index('id="sb-zzz"') < html.index('id="sb-akm"')
    assert 'id="detail-lab" open=""' in html and 'id="detail-akm">' in html  # silent SBs open, others folded
    assert "&lt;b&gt;obj-ext-1&lt;/b&gt;" in html and "<b>obj-ext-1</b>" not in html
    assert "degraded (severe)" in html and "capture 120000 pkts, 12 drops (0.01%)" in html
    assert "sbs/zzz/site.yml: not valid YAML" in html
    # the drill-down of lab lists its silent object before its ok collector
    assert html.index('id="src-lab-object:198.18.16.100"') < html.index('id="src-lab-col-int-1"')
