"""A real Prometheus server (Debian's `prometheus`) on loopback, with its own config and data directory."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


class Prometheus:
    """A running server: its base URL, and queries of its HTTP API."""

    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector of `expr` (GET /api/v1/query)."""
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}",
                                    timeout=10) as resp:
            data = json.loads(resp.read())
        assert data["status"] == "success", data
        result: list[dict[str, Any]] = data["data"]["result"]
        return result

    def wait_for(self, expr: str, timeout: float = 60) -> list[dict[str, Any]]:
        """Poll `expr` until it has a sample (scrapes come every second)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.query(expr)
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.5)


@contextmanager
def prometheus(tmp_path: Path, port: int, targets: list[str]) -> Iterator[Prometheus]:
    """Run Prometheus on 127.0.0.1:`port` scraping `targets` (host:port) every second; stopped at the end."""
    config = tmp_path / "prometheus.yml"
    config.write_text("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                      "scrape_configs:\n  - job_name: msib_health\n    static_configs:\n"
                      f"      - targets: {json.dumps(targets)}\n")
    data = tmp_path / "prometheus-data"
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={data}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"prometheus did not start: {(tmp_path / 'prometheus.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield Prometheus(url)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
