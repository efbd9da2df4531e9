"""The lab's package proxy (real nginx) against a strict origin server on loopback.

The origin checks every request it receives the way a strict HTTP/1.1 server does (RFC 9112):
origin-form request line, exactly one Host naming the mirror, no header twice, no proxy headers
passed on. apt-cacher-ng 3.7.4 sent two Host and two User-Agent headers here, and a strict
upstream answered 400 to every `apt-get update` of the lab.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from msib.lab.mirror import Mirror, PackageProxy, render_config

pytestmark = pytest.mark.skipif(not Path("/usr/sbin/nginx").exists(), reason="nginx not installed: run ./scripts/setup")

MIRROR_HOST = "deb.debian.org"
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_FIELD_VALUE = re.compile(r"^[\x20-\x7e\t]*$")
_REQUEST_LINE = re.compile(r"^(GET|HEAD) (/[\x21-\x7e]*) HTTP/1\.[01]$")


@dataclass
class StrictOrigin:
    """A strict HTTP/1.1 origin on loopback: records every request and what was wrong with it."""

    files: dict[str, bytes] = field(default_factory=dict)
    delay_s: float = 0.0
    requests: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    port: int = 0

    def start(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        self._sock.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    try:
                        data = conn.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                status, body, close = self._answer(head)
                reply = (f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n"
                         f"Last-Modified: Sat, 05 Dec 2026 00:00:00 GMT\r\n"
                         + ("Connection: close\r\n" if close else "") + "\r\n").encode() + body
                time.sleep(self.delay_s)
                conn.sendall(reply)
                if close:
                    return

    def _answer(self, head: bytes) -> tuple[str, bytes, bool]:
        bad: list[str] = []
        try:
            text = head.decode("ascii")
        except UnicodeDecodeError:
            self.violations.append("request head is not ASCII")
            return "400 Bad Request", b"", True
        line, *lines = text.split("\r\n")
        m = _REQUEST_LINE.match(line)
        if not m:
            bad.append(f"request line not in origin form: {line!r}")
        headers: list[tuple[str, str]] = []
        for h in lines:
            name, sep, value = h.partition(":")
            if not sep or not _TOKEN.match(name) or not _FIELD_VALUE.match(value):
                bad.append(f"malformed header line {h!r}")
                continue
            headers.append((name.lower(), value.strip()))
        names = [n for n, _ in headers]
        for n in sorted(set(names)):
            if names.count(n) > 1:
                bad.append(f"header {n} sent {names.count(n)} times")
        hosts = [v for n, v in headers if n == "host"]
        if hosts != [MIRROR_HOST]:
            bad.append(f"Host must be exactly [{MIRROR_HOST!r}], got {hosts}")
        for n in ("proxy-connection", "proxy-authorization", "transfer-encoding"):
            if n in names:
                bad.append(f"{n} passed on to the origin")
        self.requests.append((line, headers))
        if bad:
            self.violations.extend(bad)
            return "400 Bad Request", b"", True
        path = m.group(2) if m else ""
        close = ("connection", "close") in headers
        if path in self.files:
            return "200 OK", self.files[path] if m and m.group(1) == "GET" else b"", close
        return "404 Not Found", b"", close

    def count(self, path: str) -> int:
        return sum(1 for line, _ in self.requests if line.split(" ")[1] == path)


@pytest.fixture
def origin() -> Iterator[StrictOrigin]:
    o = StrictOrigin()
    o.start()
    yield o
    o.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def proxy_for(tmp_path: Path) -> Iterator[object]:
    started: list[PackageProxy] = []
    # nginx's worker drops root: its cache must be on a path it can reach (pytest's tmp is 0700)
    cache = Path(tempfile.mkdtemp(prefix="msib-test-mirror-", dir="/var/tmp"))
    cache.chmod(0o755)

    def make(origin: StrictOrigin, index_valid_s: int = 300) -> PackageProxy:
        mirrors = [Mirror.parse(f"http://{MIRROR_HOST}/debian", connect=f"127.0.0.1:{origin.port}"),
                   Mirror.parse(f"http://{MIRROR_HOST}/debian-security", connect=f"127.0.0.1:{origin.port}")]
        p = PackageProxy(mirrors, listen="127.0.0.1", port=_free_port(), state_dir=tmp_path / "proxy",
                         cache_dir=cache / "cache", index_valid_s=index_valid_s)
        p.start()
        started.append(p)
        return p

    yield make
    for p in started:
        p.stop()
    shutil.rmtree(cache, ignore_errors=True)


def _get(proxy: PackageProxy, url: str, headers: dict[str, str] | None = None,
         method: str = "GET") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(proxy.listen, proxy.port, timeout=30)
    conn.request(method, url, headers=headers or {})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, body


def test_real_apt_through_the_proxy_sends_only_well_formed_requests(origin: StrictOrigin, proxy_for, tmp_path: Path
                                                                   ) -> None:
    # the control node is Debian (README: Requirements): a missing apt-get is a broken machine, not a skip
    assert shutil.which("apt-get"), "apt-get is not on this machine: the control node must be Debian 12 or 13"
    proxy = proxy_for(origin)
    root = tmp_path / "apt"
    for d in ("state/lists/partial", "cache/archives/partial", "etc/preferences.d", "etc/apt.conf.d"):
        (root / d).mkdir(parents=True)
    (root / "etc/sources.list").write_text(
        f"deb [trusted=yes] http://{MIRROR_HOST}/debian bookworm main\n"
        f"deb [trusted=yes] http://{MIRROR_HOST}/debian-security bookworm-security main\n")
    argv = ["apt-get", "update", "-o", f"Dir::State={root / 'state'}", "-o", f"Dir::Cache={root / 'cache'}",
            "-o", f"Dir::Etc::SourceList={root / 'etc/sources.list'}", "-o", "Dir::Etc::SourceParts=/nonexistent",
            "-o", f"Dir::Etc::Preferences={root / 'etc/preferences'}",
            "-o", f"Dir::Etc::PreferencesParts={root / 'etc/preferences.d'}",
            "-o", f"Acquire::http::Proxy=http://127.0.0.1:{proxy.port}", "-o", "Debug::NoLocking=1",
            "-o", "APT::Sandbox::User=root", "-o", "Acquire::Retries=0"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    # the origin has no repository (404 for every file): what counts is what reached it
    assert len(origin.requests) >= 2, proc.stdout + proc.stderr
    assert origin.violations == []
    assert all(line.split(" ")[1].startswith(("/debian/", "/debian-security/")) for line, _ in origin.requests)


def test_client_proxy_headers_and_duplicates_do_not_reach_the_origin(origin: StrictOrigin, proxy_for) -> None:
    origin.files["/debian/dists/bookworm/InRelease"] = b"release"
    proxy = proxy_for(origin)
    # what apt sends to a proxy: absolute URI, Host, its agent, cache and proxy headers
    status, body = _get(proxy, f"http://{MIRROR_HOST}/debian/dists/bookworm/InRelease", {
        "Host": MIRROR_HOST, "User-Agent": "Debian APT-HTTP/1.3 (2.6.1)", "Cache-Control": "max-age=0",
        "If-Modified-Since": "Fri, 04 Dec 2026 00:00:00 GMT", "Proxy-Connection": "keep-alive",
        "Proxy-Authorization": "Basic c2VjcmV0"})
    assert (status, body) == (200, b"release")
    assert origin.violations == []
    assert origin.count("/debian/dists/bookworm/InRelease") == 1


def test_other_hosts_and_paths_are_refused_and_never_fetched(origin: StrictOrigin, proxy_for) -> None:
    proxy = proxy_for(origin)
    for url in ("http://example.org/debian/dists/bookworm/InRelease", f"http://{MIRROR_HOST}/other/file",
                f"http://{MIRROR_HOST}/debian/../etc/passwd"):
        status, _ = _get(proxy, url, {"Host": url.split("/")[2]})
        assert status in (400, 403), url
    status, _ = _get(proxy, f"http://{MIRROR_HOST}/debian/pool/x.deb", {"Host": MIRROR_HOST}, method="DELETE")
    assert status == 405
    assert origin.requests == []


def test_concurrent_fetches_of_a_new_file_reach_the_origin_once(origin: StrictOrigin, proxy_for) -> None:
    path = "/debian/pool/main/s/suricata/suricata_7.0.10_amd64.deb"
    origin.files[path] = bytes(range(256)) * 4096  # 1 MiB
    origin.delay_s = 1.0  # a slow mirror: every client asks while the first fetch is still running
    proxy = proxy_for(origin)
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda _: _get(proxy, f"http://{MIRROR_HOST}{path}", {"Host": MIRROR_HOST}),
                                range(20)))
    assert {status for status, _ in results} == {200}
    assert all(body == origin.files[path] for _, body in results)
    assert origin.count(path) == 1
    assert origin.violations == []


def test_an_expired_index_is_refreshed_by_one_request_while_the_others_get_the_cached_copy(
        origin: StrictOrigin, proxy_for) -> None:
    path = "/debian/dists/bookworm/InRelease"
    valid_s = 4  # long enough that the refreshed copy outlives the burst, even on a loaded machine
    origin.files[path] = b"old"
    proxy = proxy_for(origin, index_valid_s=valid_s)
    assert _get(proxy, f"http://{MIRROR_HOST}{path}", {"Host": MIRROR_HOST}) == (200, b"old")
    time.sleep(valid_s + 1.5)  # nginx counts validity in whole seconds: up to 1 s more
    origin.files[path] = b"new"
    origin.delay_s = 1.0
    start = threading.Barrier(20)

    def one(_: int) -> tuple[int, bytes]:
        start.wait()
        return _get(proxy, f"http://{MIRROR_HOST}{path}", {"Host": MIRROR_HOST})

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        results = list(pool.map(one, range(20)))
    assert {status for status, _ in results} == {200}
    assert {body for _, body in results} <= {b"old", b"new"}
    deadline = time.monotonic() + 10
    while origin.count(path) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert origin.count(path) == 2  # the first fill and one refresh, not one per client
    time.sleep(1.5)  # the background refresh has landed (and is still valid)
    assert _get(proxy, f"http://{MIRROR_HOST}{path}", {"Host": MIRROR_HOST}) == (200, b"new")
    assert origin.count(path) == 2
    assert origin.violations == []


def test_the_config_is_accepted_by_nginx_and_names_no_host_but_the_mirrors(tmp_path: Path) -> None:
    mirrors = [Mirror.parse("http://deb.debian.org/debian"), Mirror.parse("https://security.debian.org/debian-security")]
    text = render_config(mirrors, listen="127.0.0.1", port=_free_port(), state_dir=tmp_path, cache_dir=tmp_path / "c")
    assert '"~^deb\\.debian\\.org/debian/"' in text and '"~^security\\.debian\\.org/debian\\-security/"' in text
    assert "proxy_ssl_verify on;" in text
    (tmp_path / "log").mkdir()
    (tmp_path / "c" / "tmp").mkdir(parents=True)
    (tmp_path / "nginx.conf").write_text(text)
    proc = subprocess.run(["/usr/sbin/nginx", "-t", "-q", "-c", str(tmp_path / "nginx.conf"),
                           "-e", str(tmp_path / "log/error.log"), "-p", str(tmp_path)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("url", ["ftp://deb.debian.org/debian", "http:///debian", "http://a b/debian",
                                 "http://host;rm/debian"])
def test_a_mirror_that_is_not_a_plain_http_url_is_refused(url: str) -> None:
    from msib.errors import LabError

    with pytest.raises(LabError):
        Mirror.parse(url)
