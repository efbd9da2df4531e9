"""The lab's package path: nginx as a caching HTTP proxy in front of the machine's Debian mirrors.

Lab appliances reach Debian the way an SB's closed circuit does: through one package proxy on the
management network (``Acquire::http::Proxy``). The proxy is Debian's own nginx, started by the lab
with a config of its own (docs/lab.md says why nginx and not apt-cacher-ng):

- **well-formed upstream requests**: nginx writes every upstream request itself (origin-form
  request line, one ``Host``, the client's hop-by-hop and proxy headers dropped);
- **concurrent fetches collapse**: ``proxy_cache_lock`` lets one request fill a new cache entry
  while the others wait for it; an expired entry is refreshed by one background request while the
  others are served the stale copy (``proxy_cache_use_stale updating``);
- **bounded waits**: connect, read and lock timeouts shorter than apt's own, so a slow upstream
  fails a fetch (apt retries) instead of hanging it;
- **only the mirrors**: a request for any other host or path is refused (403), so lab hosts cannot
  use the proxy to reach anything else.

Release files and other ``dists/`` indexes are cached briefly; ``by-hash`` indexes and ``pool/``
packages are immutable and kept for 30 days.

Example:
    >>> m = Mirror.parse("http://deb.debian.org/debian")
    >>> (m.host, m.prefix, m.upstream_server)
    ('deb.debian.org', '/debian/', 'deb.debian.org:80')
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from msib.errors import LabError

NGINX = "/usr/sbin/nginx"
#: Seconds a lab host's apt waits for a connection or for data before it gives up (and retries).
APT_TIMEOUT_S = 30
#: A waiting request stops waiting for another's fetch of the same file after this many seconds and
#: fetches it uncached. Below APT_TIMEOUT_S, so that apt never times out on a waiting request.
LOCK_TIMEOUT_S = 20
#: Seconds a Release file or a non-hashed index is served from the cache before it is refreshed.
INDEX_VALID_S = 300


@dataclass(frozen=True)
class Mirror:
    """One Debian mirror the proxy serves: its URL as apt names it, and where nginx connects."""

    scheme: str
    host: str
    port: int
    prefix: str  # the mirror's path, with a slash at both ends
    connect: str | None = None  # host:port to connect to instead (tests: a local server)

    @classmethod
    def parse(cls, url: str, connect: str | None = None) -> Mirror:
        """A mirror from its URL (``http[s]://host[:port]/path``).

        Raises:
            LabError: not an http(s) URL with a host.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise LabError(f"a Debian mirror must be an http(s) URL, got {url!r}")
        if not re.fullmatch(r"[A-Za-z0-9.-]+", parts.hostname):
            raise LabError(f"a Debian mirror's host must be a plain name or address, got {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        prefix = "/" + parts.path.strip("/") + "/" if parts.path.strip("/") else "/"
        return cls(parts.scheme, parts.hostname.lower(), port, prefix, connect)

    @property
    def upstream_server(self) -> str:
        """What nginx connects to (``host:port``)."""
        return self.connect or f"{self.host}:{self.port}"

    @property
    def upstream_name(self) -> str:
        """The name of the nginx upstream block of this mirror."""
        return "mirror_" + re.sub(r"[^a-z0-9]", "_", f"{self.host}_{self.port}_{self.scheme}")


def render_config(mirrors: list[Mirror], *, listen: str, port: int, state_dir: Path, cache_dir: Path,
                  index_valid_s: int = INDEX_VALID_S, user: str | None = None) -> str:
    """The nginx.conf of the lab's package proxy (one worker, foreground, everything under its dirs).

    `user`: the unprivileged user the worker runs as when nginx starts as root; it must own
    `cache_dir` (the cache and nginx's temporary files live there).
    """
    if not mirrors:
        raise LabError("the package proxy needs at least one Debian mirror")
    upstreams: dict[str, Mirror] = {}
    for m in mirrors:
        upstreams.setdefault(m.upstream_name, m)
    # "$host$uri" -> upstream: only the mirrors' hosts and paths; every other request is refused
    routes = "\n".join(
        f'    "~^{re.escape(m.host)}{re.escape(m.prefix)}" {m.upstream_name};' for m in mirrors)
    schemes = "\n".join(f"    {name} {m.scheme};" for name, m in upstreams.items())
    hosts = "\n".join(f"    {name} {m.host};" for name, m in upstreams.items())
    blocks = "\n".join(f"  upstream {name} {{ server {m.upstream_server}; keepalive 8; }}"
                       for name, m in upstreams.items())
    tmp = cache_dir / "tmp"
    user_line = f"user {user} {user};\n" if user else ""
    return f"""\
# The lab's package proxy (written by `msib lab up`; see msib/lab/mirror.py and docs/lab.md).
{user_line}daemon off;
worker_processes 1;
pid {state_dir / "nginx.pid"};
error_log {state_dir / "log" / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
  log_format mirror '$time_iso8601 $remote_addr "$request" $status $body_bytes_sent '
                    'cache=$upstream_cache_status upstream=$upstream_addr';
  access_log {state_dir / "log" / "access.log"} mirror;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  server_tokens off;
  proxy_cache_path {cache_dir} levels=1:2 keys_zone=debian:16m max_size=8g inactive=30d use_temp_path=off;

{blocks}
  map "$host$uri" $msib_upstream {{
    default "";
{routes}
  }}
  map $msib_upstream $msib_scheme {{
    default http;
{schemes}
  }}
  map $msib_upstream $msib_mirror_host {{
    default "";
{hosts}
  }}

  server {{
    listen {listen}:{port};
    # only GET and HEAD of the mirrors' own paths reach a mirror
    if ($msib_upstream = "") {{ return 403; }}
    if ($request_method !~ ^(GET|HEAD)$) {{ return 405; }}

    proxy_http_version 1.1;
    proxy_set_header Host $msib_mirror_host;
    proxy_set_header Connection "";
    proxy_set_header Proxy-Connection "";
    proxy_set_header Proxy-Authorization "";
    proxy_ssl_server_name on;
    proxy_ssl_name $msib_mirror_host;
    proxy_ssl_verify on;
    proxy_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;
    proxy_connect_timeout 10s;
    proxy_send_timeout {APT_TIMEOUT_S}s;
    proxy_read_timeout {APT_TIMEOUT_S}s;

    proxy_cache debian;
    proxy_cache_key $msib_mirror_host$uri;
    # the mirror's own caching headers do not decide what the lab keeps; the rules below do
    proxy_ignore_headers Cache-Control Expires Set-Cookie X-Accel-Expires;
    proxy_cache_lock on;
    proxy_cache_lock_timeout {LOCK_TIMEOUT_S}s;
    proxy_cache_lock_age {LOCK_TIMEOUT_S}s;
    proxy_cache_use_stale updating error timeout http_500 http_502 http_503 http_504;
    proxy_cache_background_update on;
    proxy_cache_revalidate on;

    # immutable: packages and indexes addressed by their hash
    location ~ (/pool/|/by-hash/) {{
      proxy_pass $msib_scheme://$msib_upstream;
      proxy_cache_valid 200 30d;
    }}
    # Release files and indexes by name: refreshed every few minutes, one fetch at a time
    location / {{
      proxy_pass $msib_scheme://$msib_upstream;
      proxy_cache_valid 200 {index_valid_s}s;
      proxy_cache_valid 404 1m;
    }}
  }}
}}
"""


def machine_mirrors(suite_prefixes: tuple[str, ...] = ("bookworm", "trixie")) -> dict[str, str]:
    """The machine's Debian mirrors (``main`` archive and ``security``), from its own apt sources.

    Raises:
        LabError: no Debian mirror for any of `suite_prefixes` in /etc/apt/sources.list(.d).
    """
    found: dict[str, str] = {}
    texts: list[str] = []
    for p in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        with contextlib.suppress(OSError):
            texts.append(p.read_text())

    def take(uri: str, suite: str) -> None:
        if suite.startswith(suite_prefixes):
            found.setdefault("security" if suite.endswith("-security") else "main", uri.rstrip("/"))

    for text in texts:
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.findall(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.findall(r"^Suites:\s*(.+)$", stanza, re.M)
            for uri in uris:
                for suite in (suites[0].split() if suites else []):
                    take(uri, suite)
        for m in re.finditer(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", text, re.M):
            take(m.group(1), m.group(2))
    if "main" not in found:
        raise LabError("no Debian mirror found in /etc/apt/sources.list(.d): the lab uses the machine's own")
    found.setdefault("security", found["main"].rsplit("/", 1)[0] + "/debian-security")
    return found


class PackageProxy:
    """The lab's nginx package proxy: started and stopped by PID, its files under `state_dir`."""

    def __init__(self, mirrors: list[Mirror], *, listen: str, port: int, state_dir: Path, cache_dir: Path,
                 index_valid_s: int = INDEX_VALID_S):
        self.mirrors = mirrors
        self.index_valid_s = index_valid_s
        self.listen = listen
        self.port = port
        self.state_dir = state_dir
        self.cache_dir = cache_dir

    @property
    def url(self) -> str:
        """The proxy's URL, as a lab host's apt is given it."""
        return f"http://{self.listen}:{self.port}"

    @property
    def pidfile(self) -> Path:
        return self.state_dir / "pid"

    @property
    def access_log(self) -> Path:
        """One line per request: status, cache status (HIT/MISS/UPDATING/STALE...), upstream used."""
        return self.state_dir / "log" / "access.log"

    def pid(self) -> int | None:
        """The running proxy's PID, or None."""
        try:
            pid = int(self.pidfile.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def start(self, timeout_s: float = 10.0) -> None:
        """Start nginx (unless running) and wait until it listens.

        Raises:
            LabError: nginx is missing, its config is refused, or it does not listen in time.
        """
        if self.pid():
            return
        # a crashed lab's proxy (master killed, workers orphaned) would still hold the port
        self._kill(self.processes())
        if _listening(self.listen, self.port):
            raise LabError(f"{self.listen}:{self.port} is taken by another program: the lab's package proxy "
                           "cannot listen there (see `ss -ltnp`; or give the lab another proxy_port)")
        if not Path(NGINX).exists():
            raise LabError(f"{NGINX} is missing: run ./scripts/setup (it installs Debian's nginx)")
        for p in (self.state_dir / "log", self.cache_dir / "tmp"):
            p.mkdir(parents=True, exist_ok=True)
        user = _worker_user()
        if user is not None:  # the worker drops root: it must own the cache (and nothing else)
            uid, gid = user[1], user[2]
            if self.cache_dir.stat().st_uid != uid:
                subprocess.run(["chown", "-R", f"{uid}:{gid}", str(self.cache_dir)], check=True, timeout=120)
        conf = self.state_dir / "nginx.conf"
        conf.write_text(render_config(self.mirrors, listen=self.listen, port=self.port,
                                      state_dir=self.state_dir, cache_dir=self.cache_dir,
                                      index_valid_s=self.index_valid_s, user=user[0] if user else None))
        errlog = self.state_dir / "log" / "error.log"
        # -e: nginx opens its default error log before it reads the config; keep it in the lab's dir
        argv = [NGINX, "-c", str(conf), "-e", str(errlog), "-p", str(self.state_dir)]
        test = subprocess.run([*argv, "-t", "-q"], capture_output=True, text=True, timeout=30)
        if test.returncode != 0:
            raise LabError(f"the package proxy's config was refused: {(test.stderr or test.stdout).strip()[-500:]}")
        with open(self.state_dir / "log" / "stdout.log", "ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        self.pidfile.write_text(f"{proc.pid}\n")
        nginx_pid = self.state_dir / "nginx.pid"  # nginx writes it once its sockets are bound
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = errlog.read_text(errors="replace")[-500:] if errlog.exists() else ""
                raise LabError(f"the package proxy exited at start: {tail.strip()}")
            with contextlib.suppress(OSError):
                if nginx_pid.read_text().strip() == str(proc.pid) and _listening(self.listen, self.port):
                    return
            time.sleep(0.05)
        raise LabError(f"the package proxy did not listen on {self.url} within {timeout_s:.0f}s")

    def stop(self) -> None:
        """Stop nginx (graceful, then by force after 5 s), and any process of a crashed proxy left behind."""
        pid = self.pid()
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGQUIT)  # nginx: graceful shutdown
            for _ in range(50):
                if not _alive(pid):
                    break
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        self._kill(self.processes())
        self.pidfile.unlink(missing_ok=True)

    def processes(self) -> list[int]:
        """Every live process of this proxy, found by the log files it holds open (master or orphaned worker).

        A worker whose master was killed keeps serving, and its title names no path: what ties it to
        this proxy is the log it writes, even when that file has been deleted since.
        """
        logdir = str(self.state_dir / "log") + "/"
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                for fd in (proc / "fd").iterdir():
                    with contextlib.suppress(OSError):
                        if os.readlink(fd).startswith(logdir):
                            if _alive(int(proc.name)):
                                found.append(int(proc.name))
                            break
        return sorted(found)

    @staticmethod
    def _kill(pids: list[int]) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)

    def wipe_cache(self) -> None:
        """Empty the cache (the proxy must be stopped): the next fetches all go upstream."""
        if self.pid():
            raise LabError("stop the package proxy before emptying its cache")
        if self.cache_dir.exists():
            for child in self.cache_dir.iterdir():
                if child.is_dir():
                    subprocess.run(["rm", "-rf", "--one-file-system", str(child)], check=True)
                else:
                    child.unlink()


def _listening(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _worker_user() -> tuple[str, int, int] | None:
    """(name, uid, gid) of the user nginx's worker runs as when started as root; None when not root."""
    if os.geteuid() != 0:
        return None
    import pwd

    for name in ("www-data", "nobody"):
        with contextlib.suppress(KeyError):
            pw = pwd.getpwnam(name)
            return name, pw.pw_uid, pw.pw_gid
    raise LabError("no unprivileged user (www-data or nobody) for the package proxy's worker")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not alive (PID 1 here may never reap it)
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
            return False
    return True
