"""The lab SIEM's HTTPS API server: the Wazuh server API (v4) calls msib uses, and nothing else.

What it implements, after `shared/spec/siem.md` (paths, parameters, defaults, envelopes, codes):

- `POST /security/user/authenticate`: HTTP basic auth -> `{"data": {"token": JWT}, "error": 0}`
  (`?raw=true`: the token as text); a token lives `--token-ttl` seconds (900, as in Wazuh).
- `GET /agents`: `agents_list, offset, limit (1..100000, default 500), select, sort, search,
  status, older_than, name, ip, registerIP, node_name`; agent 000 is the manager itself.
- `POST /agents`: JSON `{"name", "ip"}` -> `{"data": {"id", "key"}, "error": 0}`; a taken name
  is error 1705 ("Duplicate agent name").
- `DELETE /agents`: `agents_list` and `status` required, `older_than` default `7d`, `purge`
  default false; a delete frees the name, purged or not (as Wazuh 4.x does).
- `GET/PUT/DELETE /lists/files/{filename}`: `raw`, `overwrite` (default false). What Wazuh's
  framework refuses for the one list (missing 1802 or 1906, exists 1905, malformed 1800) is an
  item failure: HTTP 200, `error` 1, the code in `data.failed_items`.

Envelopes carry `error` 0 when every item succeeded, 1 when none did, 2 when some did.

Errors are `{"title", "detail", "remediation", "error"}` with HTTP 400/401/403/404/405/406/413/429;
`error` is Wazuh's code where Wazuh has one (1018, 1705, 1724, 1738, 1911, 1912, 4000, 6001, 6002)
and the HTTP status otherwise. Every request to the API counts against one per-minute limit
(`--max-requests-per-minute`, 300 as in Wazuh's api.yaml); over it the answer is 429, code 6001.

Lab-only, not Wazuh: `GET /msib-lab/stats` (no auth, not rate-limited, not counted) returns the
requests received since start: `read` (GET), `write` (POST/PUT/DELETE other than login), `login`.

Run it standalone::

    python -m msib.lab.siem.api --listen 198.18.0.10 --port 55000 --state /var/lib/msib-siemlab \\
        --cert siem.pem --key siem.key --users-file users.json
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import re
import secrets
import signal
import socket
import sqlite3
import ssl
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from msib.errors import InputError
from msib.lab.siem import jwt
from msib.lab.siem.store import AgentRow, DuplicateName, Store
from msib.lab.siem.users import User, load_users
from msib.lab.siem.wire import (
    AGENT_ERRORS,
    AGENT_FIELDS,
    LIMIT_DEFAULT,
    LIMIT_MAX,
    ApiError,
    Counters,
    RateLimiter,
    Response,
    check_params,
    failures,
    haystack,
    iso,
    json_response,
    param_bool,
    param_duration,
    param_ids,
    param_int,
    param_statuses,
    parse_cdb,
    sort_agents,
    valid_agent_ip,
)

_NAME_RE = re.compile(r"^[\w.-]+$", re.ASCII)
_LIST_NAME_RE = re.compile(r"^[\w.-]+$", re.ASCII)
MANAGER_KEEPALIVE = "9999-12-31T23:59:59+00:00"
#: where Wazuh keeps user CDB lists; its answers name a list by this relative path
LISTS_DIR = "etc/lists"
#: Wazuh's messages for the CDB list item failures (framework/wazuh/core/exception.py)
LIST_ERRORS: dict[int, tuple[str, str | None]] = {
    1800: ("Bad format in CDB list {path}", None),
    1802: ("Lists file not found", "Please, use `GET /lists/files` to find all available lists"),
    1803: ("Error reading lists file", "Please, make sure you have read permissions over the file"),
    1905: ("File could not be updated, it already exists",
           "Please, provide a different file or set overwrite=True to overwrite actual file"),
    1906: ("File does not exist", "Please, provide a different file or make sure provided file path is correct"),
    1907: ("File could not be deleted", "Please, ensure you have the right file permissions"),
}


# --- configuration ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """Settings of one lab SIEM API server (the CLI flags of ``python -m msib.lab.siem.api``)."""

    state: Path
    cert: Path
    key: Path
    users_file: Path
    listen: str = "127.0.0.1"
    port: int = 55000
    client_ca: Path | None = None
    token_ttl: float = 900.0
    max_requests_per_minute: int = 300
    rate_window: float = 60.0
    max_upload_size: int = 10_485_760
    manager_name: str = "siem"
    quiet: bool = False



# --- the application --------------------------------------------------------------------------


class SiemLab:
    """The API's behaviour, independent of HTTP: :meth:`handle` maps one request to one response."""

    def __init__(self, config: Config, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.store = Store(config.state)
        self.jwt_key = self._jwt_key(config.state)
        self.limiter = RateLimiter(config.max_requests_per_minute, config.rate_window)
        self.counters = Counters()
        self.started = clock()
        self._users: dict[str, User] = {}
        self._users_mtime = -1.0
        self._users_lock = threading.Lock()
        self.users()  # fail at start on a bad users file

    @staticmethod
    def _jwt_key(state: Path) -> bytes:
        path = state / "jwt_secret"
        if path.exists():
            return path.read_bytes()
        key = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
        return key

    def users(self) -> dict[str, User]:
        """The users file, re-read when it changes (users can be added while the server runs)."""
        with self._users_lock:
            mtime = self.config.users_file.stat().st_mtime
            if mtime != self._users_mtime:
                self._users = load_users(self.config.users_file)
                self._users_mtime = mtime
            return self._users

    # --- dispatch -------------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes, client: str) -> Response:
        """Answer one request (method, path?query, lower-cased headers, body, client address)."""
        parts = urlsplit(target)
        path = unquote(parts.path).rstrip("/") or "/"
        if path.startswith("/msib-lab/"):
            return self._lab(method, path)
        login = method == "POST" and path == "/security/user/authenticate"
        self.counters.request("login" if login else "read" if method in ("GET", "HEAD") else "write")
        try:
            raw_query = parse_qs(parts.query, keep_blank_values=True)
            query = {k: v[-1] for k, v in raw_query.items()}
            pretty = "pretty" in query and param_bool("pretty", query["pretty"])
            if not self.limiter.allow():
                raise ApiError(429, "Maximum number of requests per minute reached", 6001,
                               "This limit can be changed in api.yaml (access.max_request_per_minute)",
                               title="Too Many Requests")
            return self._route(method, path, query, headers, body, client, pretty)
        except ApiError as err:
            return json_response(err.body(), err.status)

    def _route(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes,
               client: str, pretty: bool) -> Response:
        routes: dict[str, dict[str, Callable[[], Response]]] = {}
        if path == "/security/user/authenticate":
            routes[path] = {"POST": lambda: self._login(query, headers)}
        elif path == "/agents":
            routes[path] = {
                "GET": lambda: self._list_agents(query, pretty),
                "POST": lambda: self._add_agent(query, headers, body, client, pretty),
                "DELETE": lambda: self._delete_agents(query, pretty),
            }
        elif path.startswith("/lists/files/") and path.count("/") == 3:
            name = path.rsplit("/", 1)[1]
            routes[path] = {
                "GET": lambda: self._get_list(name, query, pretty),
                "PUT": lambda: self._put_list(name, query, headers, body, pretty),
                "DELETE": lambda: self._delete_list(name, query, pretty),
            }
        elif path == "/":
            routes[path] = {"GET": lambda: self._info(query, pretty)}
        if path not in routes:
            raise ApiError(404, "The requested URL was not found on the server. If you entered the URL "
                                "manually please check your spelling and try again.")
        handler = routes[path].get(method)
        if handler is None:
            raise ApiError(405, "The method is not allowed for the requested URL.")
        if path != "/security/user/authenticate":
            user = self._authorize(headers)
            if method != "GET" and user.role != "administrator":
                raise ApiError(403, "Permission denied: Resource type: *:*", 4000,
                               f"The user {user.name} has the role {user.role}, which only reads")
        return handler()

    def _lab(self, method: str, path: str) -> Response:
        if path != "/msib-lab/stats" or method != "GET":
            return json_response(ApiError(404, "no such lab-only endpoint").body(), 404)
        data = self.counters.snapshot()
        data.update({
            "lab_only": "msib lab SIEM counters: not part of the Wazuh API",
            "uptime": round(self.clock() - self.started, 3),
            "rate_limit": {"max_requests_per_minute": self.config.max_requests_per_minute,
                           "window_seconds": self.config.rate_window},
        })
        return json_response(data)

    # --- security -------------------------------------------------------------------------------

    def _login(self, query: dict[str, str], headers: dict[str, str]) -> Response:
        check_params(query, {"raw"})
        raw = "raw" in query and param_bool("raw", query["raw"])
        auth = headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "basic" or not value:
            raise ApiError(401, "No authorization token provided")
        try:
            name, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise ApiError(401, "Invalid credentials") from None
        user = self.users().get(name)
        if not sep or user is None or not user.check(password):
            raise ApiError(401, "Invalid credentials")
        now = self.clock()
        token = jwt.encode({
            "iss": "wazuh", "aud": "Wazuh API REST", "nbf": int(now), "iat": round(now, 3),
            "exp": round(now + self.config.token_ttl, 3), "sub": user.name, "run_as": False,
            "rbac_roles": [1 if user.role == "administrator" else 2], "rbac_mode": "white",
        }, self.jwt_key)
        if raw:
            return Response(200, token.encode(), "text/plain")
        return json_response({"data": {"token": token}, "error": 0})

    def _authorize(self, headers: dict[str, str]) -> User:
        auth = headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "No authorization token provided")
        try:
            claims = jwt.decode(token.strip(), self.jwt_key, now=self.clock())
        except jwt.InvalidToken:
            raise ApiError(401, "Invalid token") from None
        user = self.users().get(str(claims.get("sub")))
        if user is None:
            raise ApiError(401, "Invalid token")
        return user

    def _info(self, query: dict[str, str], pretty: bool) -> Response:
        check_params(query, set())
        return json_response({"data": {"title": "Wazuh API REST (msib lab SIEM stand-in)", "api_version": "4",
                               "hostname": self.config.manager_name, "timestamp": iso(self.clock())},
                      "error": 0}, pretty=pretty)

    # --- agents ---------------------------------------------------------------------------------

    def _manager(self) -> dict[str, Any]:
        return {
            "id": "000", "name": self.config.manager_name, "ip": "127.0.0.1", "registerIP": "127.0.0.1",
            "status": "active", "dateAdd": iso(self.started), "lastKeepAlive": MANAGER_KEEPALIVE,
            "node_name": "node01", "manager": self.config.manager_name, "version": "msib-siemlab",
        }

    def _agent(self, row: AgentRow) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": f"{row.id:03d}", "name": row.name, "ip": row.ip, "registerIP": row.register_ip,
            "status": row.status, "dateAdd": iso(row.date_add), "node_name": "node01",
            "manager": self.config.manager_name, "group": ["default"], "group_config_status": "not synced",
        }
        if row.last_keepalive is not None:
            out["lastKeepAlive"] = iso(row.last_keepalive)
        return out

    def _reference_time(self, agent: dict[str, Any], rows: dict[str, AgentRow]) -> float:
        row = rows.get(agent["id"])
        if row is None:  # the manager is always alive
            return float("inf")
        return row.last_keepalive if row.last_keepalive is not None else row.date_add

    def _list_agents(self, query: dict[str, str], pretty: bool) -> Response:
        check_params(
            query,
            {"agents_list", "offset", "limit", "select", "sort", "search", "status", "older_than", "name", "ip",
             "registerIP", "node_name"},
            {"q", "os.platform", "os.version", "os.name", "manager", "version", "group", "group_config_status",
             "distinct"},
        )
        offset = param_int("offset", query.get("offset", "0"), 0)
        limit = param_int("limit", query.get("limit", str(LIMIT_DEFAULT)), 1, LIMIT_MAX)
        select = [s.strip() for s in query["select"].split(",") if s.strip()] if "select" in query else None
        if select is not None:
            bad = [s for s in select if s not in AGENT_FIELDS]
            if bad or not select:
                raise ApiError(400, f"Not a valid select field: {', '.join(bad) or '(empty)'}", 1724,
                               f"Please, use only allowed select fields: {', '.join(AGENT_FIELDS)}")
        rows = {f"{r.id:03d}": r for r in self.store.agents()}
        agents = [self._manager()] + [self._agent(r) for r in rows.values()]
        failed: dict[int, list[str]] = {}
        if "agents_list" in query:
            wanted = param_ids(query["agents_list"])
            known = {a["id"] for a in agents}
            failed_ids = [i for i in wanted if i not in known]
            if failed_ids:
                failed[1701] = failed_ids
            agents = [a for a in agents if a["id"] in wanted]
        if "status" in query:
            statuses = param_statuses(query["status"])
            if "all" not in statuses:
                agents = [a for a in agents if a["status"] in statuses]
        if "older_than" in query:
            limit_s = param_duration("older_than", query["older_than"])
            now = self.clock()
            agents = [a for a in agents if now - self._reference_time(a, rows) >= limit_s]
        for exact in ("name", "ip", "registerIP", "node_name"):
            if exact in query:
                agents = [a for a in agents if a.get(exact) == query[exact]]
        if "search" in query:
            term = query["search"]
            negate = term.startswith("-")
            term = (term[1:] if negate else term).lower()
            agents = [a for a in agents if (term in haystack(a)) != negate]
        if "sort" in query:
            agents = sort_agents(agents, query["sort"])
        total = len(agents)
        page = agents[offset: offset + limit]
        if select is not None:
            fields = ["id", *[s for s in select if s != "id"]]
            page = [{k: a[k] for k in fields if k in a} for a in page]
        failed_items = failures(failed, AGENT_ERRORS)
        n_failed = sum(len(v) for v in failed.values())
        if n_failed and total:
            message, error = "Some agents information was not returned", 2
        elif n_failed:
            message, error = "No agent information was returned", 1
        elif total:
            message, error = "All selected agents information was returned", 0
        else:
            message, error = "No agent information was returned", 0
        return json_response({"data": {"affected_items": page, "total_affected_items": total,
                               "total_failed_items": n_failed, "failed_items": failed_items},
                      "message": message, "error": error}, pretty=pretty)

    def _add_agent(self, query: dict[str, str], headers: dict[str, str], body: bytes, client: str,
                   pretty: bool) -> Response:
        check_params(query, set())
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise ApiError(406, "The body type is not the one specified in the content-type", 6002)
        try:
            data = json.loads(body or b"null")
        except ValueError:
            raise ApiError(400, "Body request is not a valid JSON", 1018) from None
        if not isinstance(data, dict):
            raise ApiError(400, "Body request is not a valid JSON object", 1018)
        extra = sorted(set(data) - {"name", "ip"})
        if extra:
            raise ApiError(400, f"Additional properties are not allowed ({', '.join(map(repr, extra))} "
                                "were unexpected)")
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise ApiError(400, "'name' is a required property")
        if len(name) > 128:
            raise ApiError(400, "Agent name is too long", 1738, "Max length allowed for agent name is 128")
        if not _NAME_RE.match(name):
            raise ApiError(400, f"'{name}' does not match '^[\\w.\\-]+$' - 'name'")
        ip = data.get("ip", client)
        if not isinstance(ip, str) or not valid_agent_ip(ip):
            raise ApiError(400, f"'{ip}' is not a 'ip' - 'ip'")
        try:
            row = self.store.add_agent(name, ip)
        except DuplicateName:
            raise ApiError(400, f"Duplicate agent name: {name}", 1705, "Please choose another name") from None
        return json_response({"data": {"id": f"{row.id:03d}", "key": row.key}, "error": 0}, pretty=pretty)

    def _delete_agents(self, query: dict[str, str], pretty: bool) -> Response:
        check_params(
            query, {"agents_list", "status", "older_than", "purge"},
            {"q", "os.platform", "os.version", "os.name", "manager", "version", "group", "node_name", "name", "ip",
             "registerIP"},
        )
        for required in ("agents_list", "status"):
            if required not in query:
                raise ApiError(400, f"Missing query parameter '{required}'")
        if "purge" in query:  # validated; a delete frees the name either way (Wazuh 4.x)
            param_bool("purge", query["purge"])
        older_than = query.get("older_than", "7d")
        min_age = param_duration("older_than", older_than)
        statuses = param_statuses(query["status"])
        rows = {f"{r.id:03d}": r for r in self.store.agents()}
        wanted = list(rows) if query["agents_list"].strip() == "all" else param_ids(query["agents_list"])
        now = self.clock()
        failed: dict[int, list[str]] = {}
        deleted: list[str] = []
        for agent_id in wanted:
            if agent_id == "000":
                failed.setdefault(1703, []).append(agent_id)
                continue
            row = rows.get(agent_id)
            if row is None:
                failed.setdefault(1701, []).append(agent_id)
                continue
            ref = row.last_keepalive if row.last_keepalive is not None else row.date_add
            if ("all" not in statuses and row.status not in statuses) or now - ref < min_age:
                failed.setdefault(1731, []).append(agent_id)
                continue
            deleted.append(agent_id)
        self.store.remove_agents([int(i) for i in deleted])
        messages = dict(AGENT_ERRORS)
        messages[1731] = (
            f"Agent is not eligible for removal: The agent has a status different to '{query['status']}' or "
            f"the time frame 'older_than: {older_than}' does not match", AGENT_ERRORS[1731][1])
        n_failed = sum(len(v) for v in failed.values())
        if not n_failed:
            message, error = "All selected agents were deleted", 0
        elif deleted:
            message, error = "Some agents were not deleted", 2
        else:
            message, error = "No agents were deleted", 1
        return json_response({"data": {"affected_items": deleted, "total_affected_items": len(deleted),
                               "total_failed_items": n_failed, "failed_items": failures(failed, messages),
                               "older_than": older_than},
                      "message": message, "error": error}, pretty=pretty)

    # --- CDB lists ------------------------------------------------------------------------------

    @staticmethod
    def _list_name(name: str) -> None:
        if not _LIST_NAME_RE.match(name) or name.startswith(".") or len(name) > 255:
            raise ApiError(400, f"'{name}' does not match '^[\\w.\\-]+$' - 'filename'")

    def _get_list(self, name: str, query: dict[str, str], pretty: bool) -> Response:
        check_params(query, {"raw"}, {"relative_dirname"})
        self._list_name(name)
        raw = "raw" in query and param_bool("raw", query["raw"])
        try:
            content = self.store.get_list(name)
        except (OSError, sqlite3.Error):  # Wazuh: a list file it cannot read
            return _item_failure(name, 1803, "No list was returned", pretty)
        if content is None:  # an item failure, not an HTTP error (raw or not)
            return _item_failure(name, 1802, "No list was returned", pretty)
        if raw:
            return Response(200, content.encode(), "text/plain")
        items = [{"key": k, "value": v} for k, v in parse_cdb(content)]
        return json_response({"data": {"affected_items": items, "total_affected_items": len(items),
                                        "total_failed_items": 0, "failed_items": []},
                              "message": "CDB list was returned", "error": 0}, pretty=pretty)

    def _put_list(self, name: str, query: dict[str, str], headers: dict[str, str], body: bytes,
                  pretty: bool) -> Response:
        check_params(query, {"overwrite"}, {"relative_dirname"})
        self._list_name(name)
        overwrite = "overwrite" in query and param_bool("overwrite", query["overwrite"])
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/octet-stream":
            raise ApiError(406, "The body type is not the one specified in the content-type", 6002)
        # the body checks of Wazuh's controller are request errors (HTTP 400) ...
        if not body:
            raise ApiError(400, "Body is empty", 1912, "Please, check the content of the file to be uploaded")
        try:
            content = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(400, "Error parsing body request to UTF-8", 1911) from None
        # ... what the framework refuses is an item failure with HTTP 200 (upload_list_file)
        path = f"{LISTS_DIR}/{name}"
        failed = "Could not upload CDB list file"
        try:
            parse_cdb(content)
        except ValueError:
            return _item_failure(path, 1800, failed, pretty, {"path": path})
        if not self.store.put_list(name, content, overwrite):
            return _item_failure(path, 1905, failed, pretty)
        return json_response({"data": {"affected_items": [path], "total_affected_items": 1, "total_failed_items": 0,
                                        "failed_items": []},
                              "message": "CDB list file uploaded successfully", "error": 0}, pretty=pretty)

    def _delete_list(self, name: str, query: dict[str, str], pretty: bool) -> Response:
        check_params(query, set(), {"relative_dirname"})
        self._list_name(name)
        path = f"{LISTS_DIR}/{name}"
        try:
            deleted = self.store.delete_list(name)
        except (OSError, sqlite3.Error):  # Wazuh: a list file it cannot remove
            return _item_failure(path, 1907, "Could not delete CDB list file", pretty)
        if not deleted:
            return _item_failure(path, 1906, "Could not delete CDB list file", pretty)
        return json_response({"data": {"affected_items": [path], "total_affected_items": 1, "total_failed_items": 0,
                                        "failed_items": []},
                              "message": "CDB list file was successfully deleted", "error": 0}, pretty=pretty)


def _item_failure(item: str, code: int, message: str, pretty: bool, fmt: dict[str, str] | None = None) -> Response:
    """Wazuh's answer when its one item failed: HTTP 200, `error` 1, the code in `data.failed_items`."""
    text, remediation = LIST_ERRORS[code]
    return json_response({"data": {"affected_items": [], "total_affected_items": 0, "total_failed_items": 1,
                                    "failed_items": failures({code: [item]}, {code: (text.format(**(fmt or {})),
                                                                                      remediation)})},
                          "message": message, "error": 1}, pretty=pretty)


# --- HTTP(S) ----------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "msib-siemlab"
    sys_version = ""
    server: _Server

    def setup(self) -> None:
        self.request.settimeout(30)
        super().setup()

    def handle(self) -> None:
        try:
            if isinstance(self.request, ssl.SSLSocket):
                self.request.do_handshake()
            super().handle()
        except (ssl.SSLError, ConnectionError, TimeoutError, OSError):
            self.close_connection = True

    def _serve(self) -> None:
        app = self.server.app
        headers = {k.lower(): v for k, v in self.headers.items()}
        if "transfer-encoding" in headers:
            self._send(Response(411, json.dumps(ApiError(411, "send a Content-Length").body()).encode()),
                       close=True)
            return
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            length = -1
        if length < 0:
            self._send(json_response(ApiError(400, "bad Content-Length").body(), 400), close=True)
            return
        if length > app.config.max_upload_size:
            app.counters.request("write")
            err = ApiError(413, f"The request body is larger than max_upload_size ({app.config.max_upload_size}"
                                " bytes)", remediation="raise max_upload_size in api.yaml")
            self._send(json_response(err.body(), 413), close=True)
            return
        body = self.rfile.read(length) if length else b""
        try:
            response = app.handle(self.command, self.path, headers, body, self.client_address[0])
        except Exception as exc:  # a bug must still answer in the API's shape
            response = json_response(ApiError(500, f"Wazuh Internal Error ({type(exc).__name__})", 1000).body(), 500)
        self._send(response)

    def _send(self, response: Response, close: bool = False) -> None:
        self.server.app.counters.status(response.status)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for k, v in response.headers.items():
            self.send_header(k, v)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.app.config.quiet:
            sys.stderr.write(f"{self.client_address[0]} - {format % args}\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, app: SiemLab, context: ssl.SSLContext) -> None:
        self.app = app
        self.context = context
        family = socket.AF_INET6 if ":" in app.config.listen else socket.AF_INET
        self.address_family = family
        super().__init__((app.config.listen, app.config.port), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms Nagle/delayed-ACK stalls
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ssl.SSLError | ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


def tls_context(config: Config) -> ssl.SSLContext:
    """The server's TLS context: TLS 1.2+, its certificate, client certificates when `client_ca` is set."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(config.cert, config.key)
    if config.client_ca:
        ctx.load_verify_locations(config.client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def make_server(config: Config) -> _Server:
    """Build (bind, not yet serve) the HTTPS server for `config`."""
    return _Server(SiemLab(config), tls_context(config))


def _parse_args(argv: Sequence[str] | None) -> Config:
    p = argparse.ArgumentParser(
        prog="python -m msib.lab.siem.api",
        description="The msib lab SIEM: an HTTPS server that stands in for the Wazuh server API (v4).",
    )
    p.add_argument("--listen", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=55000, help="port (default 55000, 0 = any free port)")
    p.add_argument("--state", type=Path, required=True, help="state directory (SQLite, JWT secret)")
    p.add_argument("--cert", type=Path, required=True, help="server certificate (PEM)")
    p.add_argument("--key", type=Path, required=True, help="server key (PEM)")
    p.add_argument("--users-file", type=Path, required=True, help="API users (python -m msib.lab.siem.users)")
    p.add_argument("--client-ca", type=Path, help="require client certificates signed by this CA (mutual TLS)")
    p.add_argument("--token-ttl", type=float, default=900.0, help="JWT lifetime in seconds (Wazuh: 900)")
    p.add_argument("--max-requests-per-minute", type=int, default=300, help="rate limit (Wazuh: 300)")
    p.add_argument("--rate-window", type=float, default=60.0,
                   help="lab only: length of the rate-limit window in seconds (Wazuh: 60)")
    p.add_argument("--max-upload-size", type=int, default=10_485_760, help="largest body in bytes (Wazuh: 10 MiB)")
    p.add_argument("--manager-name", default="siem", help="name of agent 000 (the manager)")
    p.add_argument("--quiet", action="store_true", help="no access log on stderr")
    a = p.parse_args(argv)
    return Config(
        state=a.state, cert=a.cert, key=a.key, users_file=a.users_file, listen=a.listen, port=a.port,
        client_ca=a.client_ca, token_ttl=a.token_ttl, max_requests_per_minute=a.max_requests_per_minute,
        rate_window=a.rate_window, max_upload_size=a.max_upload_size, manager_name=a.manager_name, quiet=a.quiet,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until SIGTERM/SIGINT. Prints one `listening on https://HOST:PORT` line when ready."""
    config = _parse_args(argv)
    try:
        server = make_server(config)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (OSError, ssl.SSLError) as exc:
        print(f"error: cannot start the lab SIEM API: {exc}", file=sys.stderr)
        return 2

    def stop(_signum: int, _frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = str(server.server_address[0]), int(server.server_address[1])
    shown = f"[{host}]" if ":" in host else host
    print(f"msib-siemlab: listening on https://{shown}:{port} (stands in for the Wazuh server API; lab only)",
          flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        server.app.store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
