"""Delivery throughput on the lab: object -> collector -> SIEM, one rsyslog pair, three configurations.

    .venv/bin/python bench/bench_delivery.py [--count 1000000] [--runs 2] [--seconds 10] [--pin] [--write-docs]

The pair is col-ext-1 (relay) and the lab SIEM host (receiver), through fw-ext-1, with a second
rsyslogd on each (its own config, ports, pid and work directory, run as a transient systemd unit)
so the deployed services are not touched. For the run, one accept rule for the bench ports is
inserted in fw-ext-1's forward chain and deleted afterwards (by its handle).

- `tcp`: plain TCP relay, no queue of its own (rsyslog's main queue, which blocks its input when
  full): the ceiling on this machine;
- `tls`: TLS (x509/name, the SIEM's lab certificate), likewise no queue of its own: the TLS ceiling;
- `tls+da`: TLS with the collector role's disk-assisted queue, built like the role's relay: the
  input's ruleset has the queue (every `queue.*` value read from the ruleset the role's SIEM action
  runs in on col-ext-1) and the SIEM action, with the role's `action.resume*`, runs in its worker.
- `relp+da`: the same queue with RELP over TLS to the SIEM (omrelp, the collector's certificate,
  the SIEM's name checked): the shipped default transport, which the SIEM acknowledges event by event.

Two measurements, in one run:

1. **Burst** (`--runs` rounds of the three configurations): the object sends N numbered messages
   over plain TCP as fast as the relay takes them (the stream is built before the clock starts).
   Without the role's queue the relay pushes back on the sender (TCP flow control), so this is
   each configuration's ceiling. With the role's queue, which never blocks its inputs
   (`timeoutEnqueue=0`), a burst faster than the SIEM link fills the queue and what does not
   fit is discarded (counted): the burst row says how much.
2. **Sustained** (`tls` and `tls+da`, interleaved step by step so both meet the machine in the same
   state; `relp+da` on a ladder of its own, from its own best burst rate): the object offers a
   constant rate for `--seconds`, in steps of 5 % of the best burst rate from 60 % up; a step holds
   when every event arrives (0 lost), the relay delivers at >= 95 % of the offered rate and never
   pushes the sender more than 5 % behind its schedule. A step that does not hold is tried once more
   (sender, relay and receiver share two cores: one noisy 10 s should not end a ladder; the same
   rule for both). A configuration's sustained rate is the offered rate of its highest step that
   holds (its steps stop at the first one that fails twice, at 150 % at most); the target compares
   the two sustained rates. The delivered rates of those steps are shown beside them.

The SIEM side timestamps the arrivals of each run (a watcher reading the appended bytes);
events/s is the rate between the 10 % and the 90 % marks of the run (steady state: the lab
receiver flushes its file once a second, which would add up to 1 s to a first-to-last time), or
received / (last - first) for a run that never reached its 90 % mark. Loss is counted by sequence number
(msib.lab.loadgen's counter), CPU of the relay's rsyslogd from /proc/<pid>/stat (utime + stime)
before and after: milliseconds per 10k events.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from msib.checks import rsyslog_action, rsyslog_action_queue  # noqa: E402
from msib.lab import Lab  # noqa: E402
from msib.lab.delivery import load_result, send_load  # noqa: E402
from msib.lab.loadgen import REMOTE_COUNTER  # noqa: E402

COLLECTOR, COLLECTOR_LAN, FIREWALL, OBJECT = "col-ext-1", "198.18.32.10", "fw-ext-1", "obj-ext-1"
IN_PORT, TCP_PORT, TLS_PORT, RELP_PORT = 10514, 10515, 10516, 10517
WORK = "/var/tmp/msib-bench"
UNIT = "msib-bench-rsyslog"
CONFIGS = ("tcp", "tls", "tls+da", "relp+da")

SIEM_CONF = f"""\
global(workDirectory="{WORK}/work"
  DefaultNetstreamDriverCAFile="/etc/msib-siem/ca.pem"
  DefaultNetstreamDriverCertFile="/etc/msib-siem/siem.pem"
  DefaultNetstreamDriverKeyFile="/etc/msib-siem/siem.key")
module(load="imtcp" MaxSessions="20")
input(type="imtcp" port="{TCP_PORT}" ruleset="out" StreamDriver.Name="ptcp")
input(type="imtcp" port="{TLS_PORT}" ruleset="out"
      StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
module(load="imrelp")
input(type="imrelp" port="{RELP_PORT}" ruleset="out" tls="on" tls.caCert="/etc/msib-siem/ca.pem"
      tls.myCert="/etc/msib-siem/siem.pem" tls.myPrivKey="/etc/msib-siem/siem.key" tls.authMode="certvalid")
template(name="line" type="string" string="%HOSTNAME% %msg%\\n")
ruleset(name="out" queue.type="LinkedList" queue.size="500000" queue.dequeueBatchSize="4096") {{
  action(type="omfile" file="{WORK}/out.log" template="line" asyncWriting="on" ioBufferSize="256k"
         flushInterval="1" flushOnTXEnd="off")
}}
"""


def deployed_queue(lab: Lab) -> tuple[str, str]:
    """The SIEM action's queue and retry parameters as the collector role deployed them on COLLECTOR.

    Read from the host's /etc/rsyslog.conf rather than copied here, so the benchmark measures what
    production runs whatever the role's template and defaults become (only the queue's file name
    changes: the bench's rsyslogd has a work directory of its own anyway). Returns (the queue's
    parameters, the action's retry parameters); the queue is the ruleset's the action runs in.
    """
    conf = _ssh(lab, COLLECTOR, "cat /etc/rsyslog.conf")
    action, found = rsyslog_action(conf, "msib_siem"), rsyslog_action_queue(conf, "msib_siem")
    if action is None or found is None:
        raise RuntimeError(f"{COLLECTOR}: no msib_siem action in /etc/rsyslog.conf: deploy the collector first")
    where, params = found
    if not where.startswith("ruleset ") or "queue.filename" not in params:
        raise RuntimeError(f"{COLLECTOR}: the msib_siem action does not run in a disk-assisted ruleset queue "
                           f"({where}): not what the collector role deploys")
    # rsyslog's parameter names are case-insensitive: the lower-cased ones serve as they are
    queue = " ".join(f'{k}="{"bench_siem" if k == "queue.filename" else v}"'
                     for k, v in params.items() if k.startswith("queue."))
    retry = " ".join(f'{k}="{v}"' for k, v in action.items() if k.startswith("action.resume"))
    return queue, retry


def collector_conf(config: str, siem: str, peer: str, queue: tuple[str, str]) -> str:
    """The relay's config for one of CONFIGS (the same input and template every time).

    `tls+da` is built like the role's relay: the input's ruleset has the role's disk-assisted queue
    and the SIEM action, with the role's retries, runs in that queue's worker. The role's local
    spool (written in the input's thread before the queue) is left out of every configuration.
    """
    if config == "tcp":
        action = f'action(type="omfwd" target="{siem}" port="{TCP_PORT}" protocol="tcp" TCP_Framing="octet-counted" '
    elif config == "relp+da":
        action = (f'action(type="omrelp" target="{siem}" port="{RELP_PORT}" tls="on" '
                  'tls.caCert="/etc/msib/tls/ca.pem" tls.myCert="/etc/msib/tls/collector.pem" '
                  f'tls.myPrivKey="/etc/msib/tls/collector.key" tls.authMode="name" tls.permittedPeer=["{peer}"] ')
    else:
        action = (f'action(type="omfwd" target="{siem}" port="{TLS_PORT}" protocol="tcp" StreamDriver="gtls" '
                  f'StreamDriverMode="1" StreamDriverAuthMode="x509/name" StreamDriverPermittedPeers="{peer}" '
                  'TCP_Framing="octet-counted" ')
    action += 'template="RSYSLOG_SyslogProtocol23Format"'
    ruleset = 'ruleset(name="fwd")'
    if config.endswith("+da"):
        action += " " + queue[1]
        ruleset = f'ruleset(name="fwd" {queue[0]})'
    return (f'global(workDirectory="{WORK}/work" maxMessageSize="64k" '
            'defaultNetstreamDriverCAFile="/etc/msib/tls/ca.pem")\n'
            'module(load="imtcp" maxSessions="20")\n'
            + ('module(load="omrelp")\n' if config == "relp+da" else "")
            + f'input(type="imtcp" port="{IN_PORT}" ruleset="fwd")\n'
            f'{ruleset} {{\n  {action})\n}}\n')


def _ssh(lab: Lab, host: str, cmd: str, data: str | None = None, timeout: float = 300) -> str:
    proc = subprocess.run(lab.ssh_argv(host, ["sudo", "sh", "-c", shlex.quote(cmd)]), input=data,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{host}: {cmd[:80]!r}: {proc.stderr.strip()[-300:]}")
    return proc.stdout


# --pin: the CPU each bench rsyslogd runs on (host -> CPU list); empty = wherever the kernel puts it
AFFINITY: dict[str, str] = {}


def _start(lab: Lab, host: str, conf: str) -> None:
    pin = f"-p CPUAffinity={AFFINITY[host]} " if host in AFFINITY else ""
    _ssh(lab, host, f"systemctl stop {UNIT} 2>/dev/null; rm -rf {WORK}; mkdir -p {WORK}/work && "
                    f"cat > {WORK}/rsyslog.conf && rsyslogd -N1 -f {WORK}/rsyslog.conf >/dev/null && "
                    f"systemd-run --quiet --unit={UNIT} --collect {pin}/usr/sbin/rsyslogd -n -f {WORK}/rsyslog.conf "
                    f"-i {WORK}/rsyslogd.pid", conf)
    time.sleep(1.0)


def _stop(lab: Lab, host: str) -> None:
    _ssh(lab, host, f"systemctl stop {UNIT} 2>/dev/null; rm -rf {WORK}; true")


def _cpu_ticks(lab: Lab, host: str) -> int:
    out = _ssh(lab, host, f"cat /proc/$(systemctl show -p MainPID --value {UNIT})/stat")
    fields = out[out.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


# On the SIEM host: wait until `expected` lines of the run are in the file, or nothing new came for
# `idle` s after the first (a run that lost events), or `timeout`. Prints the count and the times
# of the first arrival, of the 10 % and 90 % marks of `expected`, and of the last arrival.
ARRIVALS = r'''
import os, sys, time
path, tag = sys.argv[1], sys.argv[2].encode()
expected, timeout, idle = int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
pos = 0; n = 0; first = last = t10 = t90 = None; end = time.time() + timeout; buf = b""
while n < expected and time.time() < end and not (last and time.time() - last > idle):
    size = os.path.getsize(path) if os.path.exists(path) else 0
    if size > pos:
        with open(path, "rb") as fh:
            fh.seek(pos); chunk = fh.read(size - pos)
        pos = size
        now = time.time()
        buf += chunk
        lines = buf.split(b"\n"); buf = lines.pop()
        got = sum(1 for line in lines if tag in line)
        if got:
            first = first or now
            last = now
            n += got
            if t10 is None and n >= expected // 10:
                t10 = now
            if t90 is None and n >= expected * 9 // 10:
                t90 = now
    time.sleep(0.02)
print(n, first or 0, t10 or 0, t90 or 0, last or 0)
'''


def _fw_rule(lab: Lab, on: bool, siem: str) -> None:
    if on:
        _ssh(lab, FIREWALL, f"nft insert rule inet msib forward ip saddr {COLLECTOR_LAN} ip daddr {siem} "
                            f"tcp dport {{ {TCP_PORT}, {TLS_PORT}, {RELP_PORT} }} accept comment \\\"msib-bench\\\"")
    else:
        out = _ssh(lab, FIREWALL, "nft -a list chain inet msib forward")
        for handle in re.findall(r'comment "msib-bench" # handle (\d+)', out):
            _ssh(lab, FIREWALL, f"nft delete rule inet msib forward handle {handle}")


def run_one(lab: Lab, config: str, count: int, siem: str, peer: str, queue: tuple[str, str],
            rate: float = 0) -> dict[str, Any]:
    """One run of `count` events through `config`, flat out (`rate` 0) or offered at `rate`/s."""
    _start(lab, COLLECTOR, collector_conf(config, siem, peer, queue))
    try:
        tag = f"bench{config.replace('+', '')}{int(time.time())}"
        watcher = subprocess.Popen(lab.ssh_argv("siem", ["sudo", "python3", "-", f"{WORK}/out.log", f"run={tag} ",
                                                         str(count), "300", "15"]),
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert watcher.stdin is not None
        watcher.stdin.write(ARRIVALS)
        watcher.stdin.close()
        cpu0 = _cpu_ticks(lab, COLLECTOR)
        sender = load_result(send_load(lab, OBJECT, target=COLLECTOR_LAN, port=IN_PORT, count=count, rate=rate,
                                       tag=tag, extra=["--prebuilt"]), timeout=600)
        assert watcher.stdout is not None
        out = watcher.stdout.read()  # the watcher ends by itself (all arrived, idle, or its timeout)
        watcher.wait()
        n, first, t10, t90, last = (float(x) for x in out.split())
        cpu1 = _cpu_ticks(lab, COLLECTOR)
        counted = json.loads(_ssh(lab, "siem", f"python3 - {WORK}/out.log {tag} {count}", REMOTE_COUNTER))
        seconds = last - first
        # the middle 80 % of the run: steady state, free of the receiver's 1 s flush at either end
        first_to_last = n / seconds if seconds > 0 else 0
        middle = (count * 9 // 10 - count // 10) / (t90 - t10) if t90 > t10 > 0 else first_to_last
        return {"config": config, "offered_per_s": round(rate), "events": count, "received": counted["received"],
                "lost": counted["missing"], "duplicates": counted["duplicates"], "seconds": round(seconds, 2),
                "events_per_s": round(middle), "first_to_last_per_s": round(first_to_last),
                "sender_s": sender["seconds"], "sender_behind_s": sender["behind_s"],
                "cpu_ms_per_10k": round((cpu1 - cpu0) * 10.0 / count * 10000, 1)}  # ticks are 10 ms
    finally:
        _stop(lab, COLLECTOR)


def holds(r: dict[str, Any], seconds: float) -> bool:
    """A paced step holds: nothing lost, delivered at >= 95 % of the offered rate, sender on schedule."""
    # lost counts missing sequence numbers, so lost == 0 is every event received
    return (r["lost"] == 0 and r["events_per_s"] >= 0.95 * r["offered_per_s"]
            and r["sender_behind_s"] <= 0.05 * seconds)


NAMES = {"tcp": "plain TCP, no queue", "tls": "TLS, no queue", "tls+da": "TLS + the role's queue",
         "relp+da": "RELP/TLS + the role's queue (the shipped default)"}
#: Configurations whose sustained ladders run interleaved from the same base (the first one's best burst)
LADDERS = (("tls", "tls+da"), ("relp+da",))


def ladder(lab: Lab, configs: tuple[str, ...], base: float, seconds: float, siem: str, peer: str,
           queue: tuple[str, str]) -> list[dict[str, Any]]:
    """Constant offered rates from 60 % of `base` in steps of 5 %, `configs` interleaved step by step."""
    steps: list[dict[str, Any]] = []
    running = set(configs)  # interleaved, so they all see the machine in the same state
    for pct in range(60, 151, 5):  # past 100 %: the burst rate is not a cap on the sustained one
        rate = base * pct / 100
        for config in configs:
            # a step that fails is tried once more: one noisy 10 s on shared cores does not end a
            # ladder; the same rule for every configuration
            for attempt in (1, 2):
                if config not in running:
                    break
                r = run_one(lab, config, int(rate * seconds), siem, peer, queue, rate=rate)
                r["step_pct"], r["attempt"] = pct, attempt
                r["holds"] = holds(r, seconds)
                print(json.dumps(r), flush=True)
                steps.append(r)
                _ssh(lab, "siem", f": > {WORK}/out.log")
                if r["holds"]:
                    break
                if attempt == 2:
                    running.discard(config)
        if not running:
            break
    return steps


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1_000_000, help="events per burst run")
    ap.add_argument("--runs", type=int, default=2, help="burst rounds of the configurations")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each sustained step")
    ap.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, of {', '.join(CONFIGS)}")
    ap.add_argument("--write-docs", action="store_true", help="put the table into docs/delivery.md")
    ap.add_argument("--marker", default=None, help="the docs table's marker (default BENCH, BENCH-PINNED with --pin)")
    ap.add_argument("--pin", action="store_true",
                    help="relay on CPU 1; object's sender and SIEM receiver on CPU 0 (as if the relay had a machine "
                         "of its own)")
    args = ap.parse_args()
    configs = tuple(c for c in CONFIGS if c in args.configs.split(","))
    if not configs or set(args.configs.split(",")) - set(CONFIGS):
        ap.error(f"--configs: some of {', '.join(CONFIGS)}")
    if args.pin:
        if len(os.sched_getaffinity(0)) < 2:
            ap.error("--pin needs 2 CPUs")
        os.sched_setaffinity(0, {0})  # inherited by the sender (msib.lab.loadgen, started from here)
        AFFINITY.update({COLLECTOR: "1", "siem": "0"})
    lab = Lab.from_files(REPO / "inventories/lab/site.yml")
    siem = str(lab.spec.siem.address)
    peer = lab.plan.siem.syslog.peer_name or siem
    queue = deployed_queue(lab)
    results: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    _start(lab, "siem", SIEM_CONF)
    _fw_rule(lab, True, siem)
    try:
        for _ in range(args.runs):
            for config in configs:
                r = run_one(lab, config, args.count, siem, peer, queue)
                print(json.dumps(r), flush=True)
                results.append(r)
                _ssh(lab, "siem", f": > {WORK}/out.log")
        for group in LADDERS:
            chosen = tuple(c for c in group if c in configs)
            if chosen:
                # the base is the group's first configuration's best burst (its own, when that one was not run)
                basis = group[0] if group[0] in configs else chosen[0]
                base = max(r["events_per_s"] for r in results if r["config"] == basis)
                steps += ladder(lab, chosen, base, args.seconds, siem, peer, queue)
    finally:
        _fw_rule(lab, False, siem)
        _stop(lab, "siem")
    table = report(results, steps, args.seconds)
    print(table)
    kind = args.marker or ("BENCH-PINNED" if args.pin else "BENCH")  # each run has a table of its own in the docs
    (REPO / "bench" / "results").mkdir(exist_ok=True)
    (REPO / "bench" / "results" / f"delivery-{kind.lower()}.json").write_text(
        json.dumps({"burst": results, "sustained": steps}, indent=2) + "\n")
    if args.write_docs:
        doc = REPO / "docs" / "delivery.md"
        text = doc.read_text()
        begin, end = f"<!-- {kind}:BEGIN -->", f"<!-- {kind}:END -->"
        if begin in text and end in text:
            head, rest = text.split(begin, 1)
            doc.write_text(f"{head}{begin}\n{table}\n\n({args.count:,} events per burst run, {args.runs} runs; "
                           f"sustained steps of {args.seconds:g} s, a failed step tried once more"
                           f"{'; relay pinned to CPU 1, sender and receiver to CPU 0' if args.pin else ''}; "
                           f"{time.strftime('%Y-%m-%d')})\n"
                           f"{end}{rest.split(end, 1)[1]}")
        else:
            print(f"{doc}: no {begin} ... {end} markers; table not written", file=sys.stderr)
    return 0


def report(results: list[dict[str, Any]], steps: list[dict[str, Any]], seconds: float) -> str:
    """The Markdown table: the sustained rates (the target), then each burst configuration at its best run.

    A sustained rate is the offered rate of the highest step that held (exactly what the sender
    kept up, with every event delivered); the delivered rate of that step is shown beside it.
    "vs TLS" compares with TLS without a queue, when it was measured.
    """
    lines = ["| measurement | events/s | vs TLS | lost (worst run) | duplicates | relay CPU ms / 10k |",
             "|---|---|---|---|---|---|"]
    present = [c for c in CONFIGS if any(r["config"] == c for r in results)]
    held = {c: [r for r in steps if r["config"] == c and r["holds"]] for c in present}
    tls_top = held["tls"][-1] if held.get("tls") else None
    for c in present:
        if c == "tcp":
            continue
        name = NAMES[c] + (" (the sustained ceiling)" if c == "tls" else "")
        if not held[c]:
            lines.append(f"| sustained {seconds:g} s, {name} | no step held | | | | |")
            continue
        r = held[c][-1]
        share = (f"{r['offered_per_s'] / tls_top['offered_per_s']:.0%} (delivered "
                 f"{r['events_per_s'] / tls_top['events_per_s']:.0%})") if tls_top else "n/a"
        lines.append(f"| sustained {seconds:g} s, **{name}**: highest step held, {r['step_pct']} % of its base | "
                     f"{r['offered_per_s']:,} offered, {r['events_per_s']:,} delivered | {share} | {r['lost']} | "
                     f"{r['duplicates']} | {r['cpu_ms_per_10k']} |")
    best = {c: max((r for r in results if r["config"] == c), key=lambda r: r["events_per_s"]) for c in present}
    ceiling = best["tls"]["events_per_s"] if "tls" in best else None
    for c in present:
        r = best[c]
        worst_lost = max(x["lost"] for x in results if x["config"] == c)
        share = f"{r['events_per_s'] / ceiling:.0%} of burst TLS" if ceiling else "n/a"
        lines.append(f"| burst, {NAMES[c]} (best of runs) | {r['events_per_s']:,} | {share} | {worst_lost:,} | "
                     f"{r['duplicates']} | {r['cpu_ms_per_10k']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
