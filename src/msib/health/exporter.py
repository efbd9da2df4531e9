"""A Prometheus exporter of health: ``GET /metrics`` serves the latest saved results of the inventories given.

It never runs health itself (a scrape must not fan out SSH to every appliance): the timer's runs
save their results beside each inventory (msib.health.history), and each scrape reads those.
``msib_health_run_timestamp_seconds`` shows how old they are.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from msib.health.history import History
from msib.health.model import SbHealth
from msib.health.prometheus import CONTENT_TYPE, exposition


def latest_results(inventories: Sequence[Path]) -> list[SbHealth]:
    """The latest saved result of each inventory that has one."""
    return [r for r in (History(p).latest() for p in inventories) if r is not None]


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "msib-health-exporter"
    sources: Callable[[], Sequence[Path]] = staticmethod(lambda: [])

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == "/metrics":
            body = exposition(latest_results(list(type(self).sources()))).encode()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
        elif self.path == "/":
            body = b"msib health exporter: /metrics\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
        else:
            body = b"not found\n"
            self.send_response(404)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # scrapes every few seconds: nothing worth a line each


def make_server(listen: str, port: int, sources: Callable[[], Sequence[Path]]) -> http.server.ThreadingHTTPServer:
    """An HTTP server on listen:port whose /metrics shows the inventories `sources()` names (read per scrape)."""
    handler = type("Handler", (_Handler,), {"sources": staticmethod(sources)})
    server = http.server.ThreadingHTTPServer((listen, port), handler)
    server.daemon_threads = True
    return server


def serve_in_thread(listen: str, port: int, sources: Callable[[], Sequence[Path]]) -> tuple[
        http.server.ThreadingHTTPServer, threading.Thread]:
    """Start the exporter in a thread (tests); ``server.shutdown()`` stops it."""
    server = make_server(listen, port, sources)
    thread = threading.Thread(target=server.serve_forever, name="msib-health-exporter", daemon=True)
    thread.start()
    return server, thread
