"""Benchmark: `msib health` time per SB and per 100 sources, on the lab with real senders.

1. The shared lab (up, deployed with pyinfra): the SB "lab" as its fleet builds it (2 objects, 6
   appliances), `msib health --inventory` three times.
2. The same SB with N more objects (N = 100, 1000, 2000) in its internal circuit, every one a real
   sender: obj-int-1 gets N addresses in its namespace and sends 2 events from each to its
   collector (which spools and counts them per sender), then a minute for impstats to report them;
   `msib health` runs three times per N.
3. On the controller alone: judging and rendering (assess, Prometheus, HTML) of 100, 1000 and 10,000 objects.

Prints a table and writes bench/results/bench_health.json. Usage (as root, the lab's lock held):
    .venv/bin/python bench/bench_health.py
Part 3 alone, without the lab: ``.venv/bin/python bench/bench_health.py --offline``.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from msib.engines.deploy import run_deploy
from msib.inventory import SshSettings, build_inventory
from msib.lab import Lab
from msib.lab.siem.host import lab_role_vars

REPO = Path(__file__).resolve().parents[1]
MSIB = str(REPO / ".venv" / "bin" / "msib")
HEADER = ["№", "Наименование государственного органа", "Структурное подразделение (департамент)",
          "Физическое местонахождение (этаж, кабинет)", "ФИО пользователя/ответственного лица",
          "Сетевое имя рабочей станции/серверного оборудования", "IP-адрес", "Наименование операционной системы"]
SB = "Лабораторное министерство цифрового развития"

SENDER = r'''
import socket, sys, time
target, addrs = sys.argv[1], sys.argv[2:]
for a in addrs:
    s = socket.socket()
    s.bind((a, 0))
    s.connect((target, 514))
    stamp = time.strftime("%b %e %H:%M:%S")
    s.sendall(("<14>%s ws-%s bench: event one\n<14>%s ws-%s bench: event two\n" % (stamp, a, stamp, a)).encode())
    s.close()
'''


def addresses(n: int) -> list[str]:
    """N addresses of the internal circuit outside the excluded 198.18.20.0/24 and the appliances."""
    return [f"198.18.{21 + i // 250}.{1 + i % 250}" for i in range(n)]


def appendix(path: Path, extra: list[str]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerows([["Сведения об объектах МСИБ"] + [""] * 7, [""] * 8, HEADER, [str(i) for i in range(1, 9)],
                 ["Локальная сеть внутреннего контура"] + [""] * 7,
                 ["1", SB, "ДЦ", "201", "Ахметов", "obj-int-1", "198.18.16.100", "Debian 12"]])
    w.writerows([[str(i + 2), SB, "ДЦ", "202", "Иванов", f"ws-{i:05d}", a, "Windows 10 Pro"]
                 for i, a in enumerate(extra)])
    w.writerows([["Локальная сеть внешнего контура"] + [""] * 7,
                 [str(len(extra) + 2), SB, "ПС", "101", "Смагулов", "obj-ext-1", "198.18.32.100", "Debian 12"]])
    path.write_text(buf.getvalue(), encoding="utf-8")


def timed_health(inventory: Path, runs: int = 3) -> dict[str, object]:
    times, data = [], {}
    for _ in range(runs):
        t0 = time.monotonic()
        proc = subprocess.run([MSIB, "health", "--inventory", str(inventory), "--json"], capture_output=True,
                              text=True, timeout=600)
        times.append(time.monotonic() - t0)
        data = json.loads(proc.stdout)
    sb = data["sbs"][0]  # type: ignore[index]
    return {"sources": len(sb["sources"]), "counts": sb["counts"], "seconds": round(statistics.median(times), 2),
            "runs": [round(t, 2) for t in times]}


def offline(inventory: Path, n: int = 10_000) -> dict[str, float]:
    from msib import contract
    from msib.health.assess import assess
    from msib.health.config import HealthConfig
    from msib.health.page import render_page
    from msib.health.probe import CollectorReading, Probed, Report
    from msib.health.prometheus import exposition

    inv = contract.load(inventory)
    now = time.time()
    ips = [f"198.18.{16 + i // 250 % 15}.{1 + i % 250}" for i in range(n)]
    objects = [{"hostname": f"ws-{i}", "ip": ip, "circuit": "internal", "os": "Windows 10", "os_family": "windows"}
               for i, ip in enumerate(ips)]
    reading = CollectorReading("col-int-1", spool={ip: now - 30 for ip in ips},
                               reports=[Report(now - 60 * k, {"msib_senders": dict.fromkeys(ips, 3),
                                                              "msib_relay": {"size": 0}}) for k in range(15)],
                               rsyslog_started=now - 86400)
    t0 = time.perf_counter()
    result = assess(inv, objects, Probed(collectors={"col-int-1": reading}), {}, None, HealthConfig(), now=now)
    t1 = time.perf_counter()
    text = exposition([result])
    t2 = time.perf_counter()
    render_page([result])
    t3 = time.perf_counter()
    return {"objects": n, "assess_s": round(t1 - t0, 3), "prometheus_s": round(t2 - t1, 3),
            "page_s": round(t3 - t2, 3), "exposition_bytes": len(text)}


OFFLINE_SIZES = (100, 1000, 10_000)


def offline_only() -> None:
    """Part 3 alone, without the lab: the lab's site plan and its fleet appendix built in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="msib-bench-health-") as tmp:
        inv = Path(tmp) / "inventory"
        build_inventory(REPO / "inventories" / "lab" / "site.yml",
                        [REPO / "inventories" / "lab-fleet" / "appendix" / "lab" / "2026Q4.csv"], inv)
        for n in OFFLINE_SIZES:
            print(offline(inv, n), flush=True)


def main() -> None:
    if "--offline" in sys.argv[1:]:
        offline_only()
        return
    lab = Lab.from_files(REPO / "inventories" / "lab" / "site.yml")
    lab.up()
    rows: list[dict[str, object]] = []
    ssh = SshSettings(ssh_config=lab.ssh_config, known_hosts=lab.known_hosts, identity_file=lab.identity,
                      user=lab.plan.management.ssh_user)
    netns = lab.host("obj-int-1").netns(lab.spec.name)
    with tempfile.TemporaryDirectory(prefix="msib-bench-health-") as tmp:
        work = Path(tmp)
        biggest = addresses(2000)
        # deployed with the biggest appendix: the collector admits only the senders its inventory lists
        (work / "all").mkdir()
        appendix(work / "all" / "2026Q4.csv", biggest)
        build_inventory(lab.effective_site(), [work / "all" / "2026Q4.csv"], work / "inv-all", ssh=ssh)
        dep = run_deploy(work / "inv-all", "pyinfra", extra_vars=lab_role_vars(lab))
        print(f"lab deployed: ok={dep.ok} in {dep.seconds:.1f}s", flush=True)
        for a in biggest:
            subprocess.run(["ip", "-n", netns, "addr", "add", f"{a}/20", "dev", "eth0"], check=True)
        subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-", "198.18.16.10", *biggest], input=SENDER,
                       text=True, check=True, timeout=600)
        subprocess.run(lab.ssh_argv("obj-ext-1", ["logger", "--server", "198.18.32.10", "--tcp", "--port", "514",
                                                  "bench"]), check=True, timeout=60)
        subprocess.run(lab.ssh_argv("obj-int-1", ["logger", "--server", "198.18.16.10", "--tcp", "--port", "514",
                                                  "bench"]), check=True, timeout=60)
        time.sleep(65)  # one impstats interval: the collector reports its counts per sender
        for n in (0, 100, 1000, 2000):
            (work / f"a{n}").mkdir()
            appendix(work / f"a{n}" / "2026Q4.csv", addresses(n))
            inv = work / f"inv{n}"
            build_inventory(lab.effective_site(), [work / f"a{n}" / "2026Q4.csv"], inv, ssh=ssh)
            row = {"extra_objects": n, **timed_health(inv)}
            row["per_100_sources_s"] = round(float(row["seconds"]) / int(row["sources"]) * 100, 3)  # type: ignore[arg-type]
            rows.append(row)
            print(row, flush=True)
    off = [offline(lab.inventory_dir, n) for n in OFFLINE_SIZES]
    print(off, flush=True)
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_health.json").write_text(json.dumps({"lab": rows, "offline": off}, indent=1))
    print(f"\n{'objects+':>9}{'sources':>9}{'seconds':>9}{'s/100 src':>11}  states")
    for r in rows:
        print(f"{r['extra_objects']:>9}{r['sources']:>9}{r['seconds']:>9}{r['per_100_sources_s']:>11}  {r['counts']}")


if __name__ == "__main__":
    main()
