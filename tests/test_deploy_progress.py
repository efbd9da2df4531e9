"""`msib deploy`'s display: the step each host is on, and a line when one waits long (no terminal)."""

from __future__ import annotations

import io
import time

from rich.console import Console

from msib.cli.deploy import LiveProgress
from msib.engines.result import step_error


def test_a_long_step_is_reported_once_per_quiet_period_and_not_after_it_ends() -> None:
    p = LiveProgress(None, None, quiet_s=30)
    p.start("fw-ext-1", "Install nftables")
    p.start("col-int-1", "Write the rsyslog configuration")
    t = time.monotonic()
    assert p.waiting(t + 10) == []
    late = p.waiting(t + 31)
    assert [(h, s) for h, s, _ in late] == [("col-int-1", "Write the rsyslog configuration"),
                                           ("fw-ext-1", "Install nftables")]
    assert all(secs >= 30 for _h, _s, secs in late)
    assert p.waiting(t + 45) == []  # told 14 s ago: not again yet
    p.event("col-int-1", "changed", "Write the rsyslog configuration")
    assert [h for h, _s, _x in p.waiting(t + 62)] == ["fw-ext-1"]


def test_without_a_terminal_the_waiting_line_is_printed_as_plain_text() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, width=200)
    with LiveProgress(None, console, quiet_s=1) as p:
        p.start("ids-ext-1", "Install [bold]Suricata[/]")
        time.sleep(2.5)
    out = buf.getvalue()
    assert "ids-ext-1: still on 'Install [bold]Suricata[/]' after" in out  # markup is text, not style


def test_the_live_table_shows_the_current_step_and_counts() -> None:
    p = LiveProgress(None, None)
    p.start("fw-int-1", "Stage the ruleset")
    p.event("fw-int-1", "changed", "Stage the ruleset")
    p.start("fw-int-1", "Apply the ruleset")
    buf = io.StringIO()
    Console(file=buf, width=200).print(p.table())
    row = next(line for line in buf.getvalue().splitlines() if "fw-int-1" in line)
    assert "Apply the ruleset (0 s)" in row
    assert row.split()[1:3] == ["1", "1"]


def test_step_error_names_the_step_the_command_and_the_bound() -> None:
    msg = step_error("Install nftables", command="apt-get install nftables", detail="", timed_out_after=600)
    assert msg == "step 'Install nftables' timed out after 600 s (limit: --step-timeout): apt-get install nftables"
    failed = step_error("Write x", command="mv /tmp/a /etc/x", detail="mv: cannot\n move\x1b[31m")
    assert failed.startswith("step 'Write x' failed: mv /tmp/a /etc/x: mv: cannot move")
