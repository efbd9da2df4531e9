"""Benchmark: a 50,000-row appendix -> inventory, beside a bare python-calamine read of the same file.

    .venv/bin/python bench/bench_inventory.py [--rows 50000] [--repeat 7] [--keep DIR] [--update-docs]
    .venv/bin/python -m pytest -m bench bench/bench_inventory.py -s      # the same, as a test

What it does, in one run on one machine:

1. writes a realistic appendix workbook (tests/data/appendix_forms.py, the one appendix writer; not
   timed): title rows, Russian headers, the row of column numbers, both circuit sections merged
   across the row, the state body's name typed once and merged down each run of its rows, bordered
   cells, long department / location / name texts, OS names spelled many ways, and ~1 % of rows with
   the mistakes SBs make (bad and duplicate IPs, Cyrillic hostnames, rows of another state body,
   excluded objects);
2. times, interleaved, `--repeat` times each: a bare read (open the workbook with python-calamine
   and turn every sheet into Python lists: the least any reader must do) and `build_inventory()`
   (read, check, write all six files atomically with fsync);
3. times the same two as whole commands, interleaved, `--repeat` times each: a child process that
   imports python-calamine and reads the workbook (the bare read as a command), and `msib inventory
   build` as a child process (interpreter start and imports included); the first CLI child also gives
   the peak RSS (ru_maxrss of that child, from wait4). The workbook is generated in another child, and
   the children are started before anything big is loaded here: a child's ru_maxrss starts from its
   parent's RSS at fork;
4. writes a `--big-rows` workbook (200,000 rows by default; 0 to skip) and runs the command line build
   on it once, for its peak RSS;
5. prints a table (and with --update-docs writes it into docs/inventory.md); the targets are
   build <= 2 x bare read, in process and as whole commands, and peak RSS <= 300 MB at 200,000 rows.

Times are the best of the repeats (the machine may be shared); medians are printed too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import python_calamine
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests")]

from data.appendix_forms import SITE_YAML, Row, write_xlsx_sections  # noqa: E402  (the one appendix writer)
from msib.inventory import build_inventory  # noqa: E402


def site_yaml() -> str:
    """The tests' site plan (tests/data/appendix_forms.py), its networks large enough for 50,000 objects."""
    site = yaml.safe_load(SITE_YAML)
    site["circuits"]["internal"]["networks"] = ["10.20.0.0/16", "10.21.0.0/16"]
    external = site["circuits"]["external"]
    external["networks"] = ["10.30.0.0/16"]
    for appliance, address in zip(external["appliances"], ("10.30.250.10", "10.30.250.1"), strict=True):
        appliance["address"] = address
    return yaml.safe_dump(site, allow_unicode=True, sort_keys=False)


DEPARTMENTS = [
    "Департамент цифровой трансформации и информационных технологий",
    "Департамент информационной безопасности",
    "Департамент государственных услуг",
    "Департамент кадровой службы и документационного обеспечения",
    "Юридический департамент",
    "Департамент финансов и государственных закупок",
    "Департамент аэрокосмической промышленности",
    "Департамент инноваций и технологического развития",
    "Департамент связи и телекоммуникаций",
    "Административный департамент",
]
OS_SPELLINGS = [
    "Windows 10 Pro", "Win 10 Корп.", "Windows 10 Корпоративная", "Microsoft Windows 10 Enterprise",
    "Windows 11 Pro", "Win11", "Windows 7 Профессиональная", "Astra Linux SE 1.7", "Астра Линукс 1.7",
    "ALT Linux 10", "Альт Рабочая станция 10", "RED OS 7.3", "Windows Server 2019 Standard",
    "Windows Server 2012 R2", "Debian 12", "Ubuntu 22.04 LTS", "CentOS 7.9",
]
SURNAMES = ["Ахметов", "Иванов", "Сейткали", "Жумабаев", "Ким", "Нурпеисов", "Омаров", "Петров", "Садыков",
            "Тлеубаев", "Беков", "Касымов", "Мухамеджанов", "Абенов", "Серикбаев"]
NAMES = ["Ерлан", "Сергей", "Нурлан", "Алия", "Динара", "Виктор", "Айгерим", "Марат", "Ольга", "Даурен"]
PATRONYMICS = ["Серикович", "Петрович", "Бекишевич", "Маратович", "Ерланович", "Викторович"]


def _ip(circuit: str, i: int) -> str:
    if circuit == "internal":
        net = 20 + (i // 60000)
        i %= 60000
        third = 1 + i // 250
        if third >= 99:
            third += 1  # 10.20.99.0/24 is excluded: only the deliberate rows go there
        return f"10.{net}.{third}.{1 + i % 250}"
    return f"10.30.{1 + i // 250}.{1 + i % 250}"


def make_workbook(path: Path, rows: int, seed: int = 7) -> dict[str, int]:
    """Write the appendix; returns how many rows of each deliberate mistake it holds."""
    rnd = random.Random(seed)
    mistakes = {"invalid_ip": 0, "duplicate_ip": 0, "invalid_hostname": 0, "unknown_state_body": 0, "excluded": 0}
    table: list[Row] = []
    per_circuit = {"internal": rows * 3 // 5, "external": rows - rows * 3 // 5}
    for circuit in ("internal", "external"):
        for i in range(per_circuit[circuit]):
            host = f"{'arm' if i % 10 else 'srv'}-{circuit[:3]}-{i:06d}"
            ip = _ip(circuit, i)
            sb = None  # the SB name merged down the section
            roll = rnd.random()
            if roll < 0.002:
                ip = ip.rsplit(".", 1)[0] + ".300"
                mistakes["invalid_ip"] += 1
            elif roll < 0.004 and i > 10:
                ip = _ip(circuit, i - 7)
                mistakes["duplicate_ip"] += 1
            elif roll < 0.006:
                host = f"АРМ-{i}"
                mistakes["invalid_hostname"] += 1
            elif roll < 0.008:
                sb = "Министерство финансов Республики Казахстан"
                mistakes["unknown_state_body"] += 1
            elif roll < 0.009 and circuit == "internal":
                host, ip = f"kgs-{i:05d}", f"10.20.99.{1 + i % 250}"
                mistakes["excluded"] += 1
            elif roll < 0.05:
                ip = ".".join(f"{int(o):03d}" for o in ip.split("."))  # zero-padded: normalised
            elif roll < 0.06:
                host = host.upper() + ".MCRI.LOCAL"  # FQDN in capitals: normalised
            table.append(Row(
                host=host, ip=ip, os=rnd.choice(OS_SPELLINGS), circuit=circuit, sb=sb, dept=rnd.choice(DEPARTMENTS),
                loc=f"г. Астана, пр. Мангилик Ел, 55/{1 + i % 20}, этаж {1 + i % 9}, каб. {100 + i % 400}",
                resp=f"{rnd.choice(SURNAMES)} {rnd.choice(NAMES)} {rnd.choice(PATRONYMICS)}",
            ))
    write_xlsx_sections(path, table, sheet="Приложение")
    return mistakes


def bare_read(path: Path) -> int:
    """The least any reader does: open the workbook, every sheet as Python lists."""
    wb = python_calamine.CalamineWorkbook.from_path(str(path))
    total = 0
    for name in wb.sheet_names:
        total += len(wb.get_sheet_by_name(name).to_python())
    return total


BARE_COMMAND = (
    "import sys, python_calamine\n"
    "wb = python_calamine.CalamineWorkbook.from_path(sys.argv[1])\n"
    "sum(len(wb.get_sheet_by_name(n).to_python()) for n in wb.sheet_names)\n"
)


def bare_command(book: Path) -> float:
    """The bare read as a whole command: a child process importing python-calamine and reading `book`."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", BARE_COMMAND, str(book)], check=True)
    return time.perf_counter() - t0


def child_rss(site: Path, book: Path, out: Path) -> tuple[float, float, int]:
    """Run the command line build in a child: (wall seconds, peak RSS MB from wait4, exit status)."""
    cmd = [sys.executable, "-c", "from msib.cli import main; main()", "inventory", "build", "--site", str(site),
           "--out", str(out), "--as-of", "2025-07-01", str(book)]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        print(err.decode(errors="replace"), file=sys.stderr)
    return wall, usage.ru_maxrss / 1024, proc.returncode


DOCS = REPO / "docs" / "inventory.md"


def update_docs(table: str) -> None:
    """Replace the measured numbers in docs/inventory.md (between the bench markers)."""
    text = DOCS.read_text(encoding="utf-8")
    new = re.sub(r"(<!-- bench:start -->\n).*?(<!-- bench:end -->)", lambda m: m[1] + table + m[2], text,
                 flags=re.S)
    DOCS.write_text(new, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--keep", type=Path, help="write the workbook and inventory here (default: a temp dir)")
    ap.add_argument("--big-rows", type=int, default=200_000, help="rows of the workbook for the RSS target (0: skip)")
    ap.add_argument("--update-docs", action="store_true", help="write the results into docs/inventory.md")
    ap.add_argument("--generate", type=Path, help=argparse.SUPPRESS)  # the child that writes the workbook
    args = ap.parse_args(argv)
    if args.generate:
        print(json.dumps(make_workbook(args.generate, args.rows)))
        return 0
    with tempfile.TemporaryDirectory(prefix="msib-bench-") as tmp_name:
        work = args.keep or Path(tmp_name)
        work.mkdir(parents=True, exist_ok=True)
        site, book, out = work / "site.yml", work / "appendix.xlsx", work / "inventory"
        site.write_text(site_yaml(), encoding="utf-8")
        t0 = time.perf_counter()
        gen = subprocess.run([sys.executable, __file__, "--generate", str(book), "--rows", str(args.rows)],
                             capture_output=True, text=True, check=True)
        mistakes = json.loads(gen.stdout)
        print(f"generated {book.name}: {args.rows} rows, {book.stat().st_size / 1e6:.1f} MB "
              f"in {time.perf_counter() - t0:.0f} s; deliberate mistakes {mistakes}")
        _, rss, status = child_rss(site, book, work / "inventory-cli")  # the first: its peak RSS
        bare_cmd, cli_cmd = [], []
        for _ in range(args.repeat):
            bare_cmd.append(bare_command(book))
            cli_cmd.append(child_rss(site, book, work / "inventory-cli")[0])
        big_rss = big_wall = 0.0
        big_objects = 0
        if args.big_rows:
            big = work / "appendix-big.xlsx"
            subprocess.run([sys.executable, __file__, "--generate", str(big), "--rows", str(args.big_rows)],
                           capture_output=True, text=True, check=True)
            big_wall, big_rss, big_status = child_rss(site, big, work / "inventory-big")
            assert big_status == 0, "the big build failed"
            big_objects = len(json.loads((work / "inventory-big" / "objects.json").read_text(encoding="utf-8")))

        bare, build = [], []
        result = None
        for _ in range(args.repeat):
            t = time.perf_counter()
            bare_read(book)
            bare.append(time.perf_counter() - t)
            t = time.perf_counter()
            result = build_inventory(site, [book], out, as_of=dt.date(2025, 7, 1))
            build.append(time.perf_counter() - t)
        assert result is not None
        best_bare, best_build = min(bare), min(build)
        ratio = best_build / best_bare
        cmd_ratio = min(cli_cmd) / min(bare_cmd)
        rows = [
            ("bare python-calamine read", f"{best_bare:.3f} s", f"median {statistics.median(bare):.3f} s"),
            ("build_inventory()", f"{best_build:.3f} s", f"median {statistics.median(build):.3f} s"),
            ("ratio build / bare read, in process", f"{ratio:.2f}", "target <= 2.0"),
            ("bare read as a command", f"{min(bare_cmd):.3f} s", f"median {statistics.median(bare_cmd):.3f} s; "
             "python -c, import python-calamine, read"),
            ("`msib inventory build` as a command", f"{min(cli_cmd):.3f} s",
             f"median {statistics.median(cli_cmd):.3f} s; exit {status}"),
            ("ratio build / bare read, whole commands", f"{cmd_ratio:.2f}", "target <= 2.0"),
            ("peak RSS of the CLI child", f"{rss:.0f} MB", f"{args.rows:,} rows"),
        ]
        if args.big_rows:
            rows.append((f"peak RSS at {args.big_rows:,} rows", f"{big_rss:.0f} MB",
                         f"target <= 300 MB; {big_objects:,} objects in {big_wall:.1f} s"))
        width = max(len(r[0]) for r in rows)
        print()
        print(f"{'measure'.ljust(width)}  {'value':>10}  note")
        for name, value, note in rows:
            print(f"{name.ljust(width)}  {value:>10}  {note}")
        print()
        size = (out / "objects.json").stat().st_size / 1e6
        print(f"objects {result.objects}, rejected {result.rejected} (of which excluded {result.excluded}), "
              f"objects.json {size:.1f} MB")
        summary = {"rows": args.rows, "bare_s": round(best_bare, 3), "build_s": round(best_build, 3),
                   "ratio": round(ratio, 2), "bare_cmd_s": round(min(bare_cmd), 3), "cli_cmd_s": round(min(cli_cmd), 3),
                   "cmd_ratio": round(cmd_ratio, 2), "peak_rss_mb": round(rss), "big_rows": args.big_rows,
                   "big_peak_rss_mb": round(big_rss), "cpus": os.cpu_count(),
                   "load": round(os.getloadavg()[0], 1)}
        print(json.dumps(summary))
        if args.update_docs:
            md = ["| measure | value | note |", "|---|---:|---|"]
            md += [f"| {name} | {value} | {note} |" for name, value, note in rows]
            md += ["", f"{args.rows} rows ({result.objects} objects, {result.rejected} rejected), workbook "
                   f"{book.stat().st_size / 1e6:.1f} MB, objects.json {size:.1f} MB; best of {args.repeat}, "
                   f"measured {dt.date.today().isoformat()} on {os.cpu_count()} CPUs, Python "
                   f"{platform.python_version()}, python-calamine {importlib.metadata.version('python-calamine')}; "
                   f"load average {os.getloadavg()[0]:.1f} at the end (the machine is shared).", ""]
            update_docs("\n".join(md))
        return 0 if ratio <= 2.0 and cmd_ratio <= 2.0 and rss <= 300 and big_rss <= 300 else 1


def test_bench_inventory() -> None:
    """The benchmark as a test (`pytest -m bench bench/bench_inventory.py -s`): fails when a target is missed."""
    assert main(["--repeat", "5"]) == 0


try:  # a marker only when pytest is the runner: the script itself needs nothing but msib
    import pytest

    test_bench_inventory = pytest.mark.bench(test_bench_inventory)
except ImportError:  # pragma: no cover
    pass


if __name__ == "__main__":
    sys.exit(main())
