"""The `wazuh` driver: the Wazuh server API (v4) over HTTPS, verified against the site's CA.

- TLS: the server certificate is verified against `ca_file` (or the system's trust store when
  none is given), host name included. There is no switch to turn verification off.
- Login: `POST /security/user/authenticate` with HTTP basic auth; the JWT is renewed shortly
  before it expires and again whenever the SIEM answers 401.
- Rate limit: a 429 (Wazuh code 6001) is waited out with exponential back-off and jitter,
  a bounded number of times; so are transport errors and 502/503/504 on idempotent calls.
- A registration (`POST /agents`) is never blindly repeated: after a transport error the driver
  looks the name up first, so a retry cannot create a duplicate.
- Paging: `GET /agents` is read page by page (`offset`/`limit`) until `total_affected_items`.

Credentials and tokens are :class:`~msib.secrets.Secret` values: never logged, never in errors.

Example:
    >>> creds = credentials.resolve()                                    # doctest: +SKIP
    >>> with WazuhDriver("https://198.18.0.10:55000", creds, ca_file=Path("ca.pem")) as siem:
    ...     siem.list_agents("lab.")                                     # doctest: +SKIP
    [Agent(id='001', name='lab.col-int-1', ip='198.18.31.10', status='never_connected')]
"""

from __future__ import annotations

import json
import logging
import random
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from msib.errors import InputError, SiemError
from msib.secrets import Secret
from msib.siem.base import Agent, RequestCounts, RequestKind, SiemDriver, decode_cdb, encode_cdb
from msib.siem.credentials import Credentials
from msib.siem.jwt import unverified_claims

log = logging.getLogger(__name__)

LOGIN_PATH = "/security/user/authenticate"
LIMIT_MAX = 100_000
RETRY_STATUSES = frozenset({502, 503, 504})
#: agents removed per DELETE request (keeps the URL short)
DELETE_CHUNK = 500
#: Wazuh's item-failure codes msib treats as "already in the wanted state"
AGENT_MISSING = 1701
LIST_MISSING = 1802
LIST_DELETE_MISSING = 1906


class SiemTlsError(SiemError):
    """The SIEM's certificate could not be verified: never retried, never bypassed."""


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying when the SIEM is busy (429) or briefly unreachable.

    Args:
        attempts: tries per request, the first included (so `attempts - 1` back-offs).
        base: first back-off ceiling in seconds; doubles per retry up to `cap`.
        cap: largest back-off ceiling in seconds. Wazuh's limit window is 60 s, so the default
            attempts and cap outlast a full window.
    """

    attempts: int = 10
    base: float = 1.0
    cap: float = 30.0

    def delay(self, retry: int, rng: Callable[[], float] = random.random) -> float:
        """Back-off before retry number `retry` (1, 2, ...): half the ceiling fixed, half random."""
        ceiling = min(self.cap, self.base * 2.0 ** (retry - 1))
        return ceiling * (0.5 + 0.5 * rng())


@dataclass(frozen=True)
class _Token:
    value: Secret
    expires: float  # local monotonic time after which it is renewed


class WazuhDriver(SiemDriver):
    """The Wazuh server API as a :class:`~msib.siem.base.SiemDriver`.

    Args:
        url: the API's base URL, `https://HOST:55000`.
        credentials: API user and password.
        ca_file: the CA that signed the SIEM's certificate (the site's CA file); None = system trust.
        timeout: seconds for connecting and for each read/write on the socket.
        retry: back-off for 429, transport errors and 502/503/504.
        page_size: agents per `GET /agents` page (1..100000; Wazuh's default is 500).
        proactive_refresh: renew the token shortly before its `exp` (else only on a 401).
        sleep, rng: injectable for tests of the back-off itself.
    """

    def __init__(
        self,
        url: str,
        credentials: Credentials,
        *,
        ca_file: Path | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        page_size: int = 500,
        proactive_refresh: bool = True,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if not url.startswith("https://"):
            raise InputError(url, "the SIEM API URL must be https://", fix="use https://HOST:PORT")
        if not 1 <= page_size <= LIMIT_MAX:
            raise InputError(str(page_size), f"page_size must be within 1..{LIMIT_MAX}")
        self.url = url.rstrip("/")
        self.credentials = credentials
        self.ca_file = ca_file
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.page_size = page_size
        self.proactive_refresh = proactive_refresh
        self.counts = RequestCounts()
        self.logins = 0
        self.backoffs = 0
        self._sleep, self._rng = sleep, rng
        self._client: httpx.Client | None = None
        self._token: _Token | None = None

    # --- connection -----------------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        if self.ca_file is not None and not self.ca_file.is_file():
            raise InputError(str(self.ca_file), "the SIEM CA file does not exist",
                             fix="give the CA that signed the SIEM's certificate (--ca-file or msib_siem.api.ca_file)")
        try:
            ctx = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        except ssl.SSLError as exc:
            raise InputError(str(self.ca_file), f"not a usable CA file ({exc.reason})",
                             fix="give a PEM CA certificate") from None
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    def open(self) -> None:
        """Open the HTTPS connection pool (certificate checks happen on the first request)."""
        if self._client is None:
            self._client = httpx.Client(
                base_url=self.url, verify=self._ssl_context(), timeout=httpx.Timeout(self.timeout),
                headers={"Accept": "application/json", "User-Agent": "msib-siem-sync"},
            )

    def close(self) -> None:
        """Close the connection pool and forget the token."""
        if self._client is not None:
            self._client.close()
            self._client = None
        self._token = None

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self.open()
        assert self._client is not None
        return self._client

    # --- requests -------------------------------------------------------------------------------

    def _transport_error(self, exc: httpx.TransportError) -> SiemError:
        text = str(exc)
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, ssl.SSLCertVerificationError):
                text = cause.verify_message or str(cause)
                ca = self.ca_file or "the system trust store"
                return SiemTlsError(
                    f"cannot verify the SIEM's TLS certificate at {self.url}: {text} (checked against {ca}); "
                    "give the CA that signed it with --ca-file or msib_siem.api.ca_file"
                )
            cause = cause.__cause__ or cause.__context__
        if isinstance(exc, httpx.TimeoutException):
            return SiemError(f"the SIEM at {self.url} did not answer within {self.timeout:g} s ({type(exc).__name__})")
        return SiemError(f"cannot reach the SIEM at {self.url}: {text or type(exc).__name__}")

    def _back_off(self, retry: int, why: str) -> None:
        delay = self.retry.delay(retry, self._rng)
        self.backoffs += 1
        log.info("SIEM %s; retry %d/%d in %.2f s", why, retry, self.retry.attempts - 1, delay)
        self._sleep(delay)

    def _login(self) -> _Token:
        user = self.credentials.user
        retry = 0
        while True:
            self.counts.add("read")
            self.logins += 1
            try:
                resp = self.client.post(LOGIN_PATH, auth=(user, self.credentials.password.unmask()))
            except httpx.TransportError as exc:
                err = self._transport_error(exc)
                retry += 1
                if isinstance(err, SiemTlsError) or retry >= self.retry.attempts:
                    raise err from None
                self._back_off(retry, "unreachable at login")
                continue
            if resp.status_code == 429 or resp.status_code in RETRY_STATUSES:
                retry += 1
                if retry >= self.retry.attempts:
                    raise self._answer_error(resp, "POST", LOGIN_PATH)
                self._back_off(retry, f"answered {resp.status_code} to the login")
                continue
            if resp.status_code == 401:
                raise SiemError(f"the SIEM at {self.url} refused the login of user {user!r}: "
                                f"{_detail(resp)} (HTTP 401); check MSIB_SIEM_USER/MSIB_SIEM_PASSWORD or the vault")
            if resp.status_code != 200:
                raise self._answer_error(resp, "POST", LOGIN_PATH)
            token = _json(resp).get("data", {}).get("token")
            if not isinstance(token, str) or not token:
                raise SiemError(f"the SIEM at {self.url} sent no token in its login answer")
            claims = unverified_claims(token)
            lifetime = 900.0
            exp, nbf = claims.get("exp"), claims.get("iat", claims.get("nbf"))
            if isinstance(exp, int | float) and isinstance(nbf, int | float) and exp > nbf:
                lifetime = float(exp - nbf)
            margin = min(10.0, lifetime * 0.1) if self.proactive_refresh else -1e9
            return _Token(Secret(token), time.monotonic() + lifetime - margin)

    def _auth_header(self) -> dict[str, str]:
        if self._token is None or (self.proactive_refresh and time.monotonic() >= self._token.expires):
            self._token = self._login()
        return {"Authorization": f"Bearer {self._token.value.unmask()}"}

    def _request(
        self,
        method: str,
        path: str,
        kind: RequestKind,
        *,
        params: Mapping[str, str | int] | None = None,
        json_body: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
    ) -> httpx.Response:
        retry = 0
        relogged = False
        while True:
            hdrs = {**(headers or {}), **self._auth_header()}
            self.counts.add(kind)
            try:
                resp = self.client.request(method, path, params=params, json=json_body, content=content,
                                           headers=hdrs)
            except httpx.TransportError as exc:
                err = self._transport_error(exc)
                retry += 1
                if not idempotent or isinstance(err, SiemTlsError) or retry >= self.retry.attempts:
                    raise err from None
                self._back_off(retry, f"unreachable ({type(exc).__name__})")
                continue
            if resp.status_code == 401 and not relogged:
                relogged = True
                self._token = None
                continue
            if resp.status_code == 429 or (idempotent and resp.status_code in RETRY_STATUSES):
                retry += 1
                if retry >= self.retry.attempts:
                    raise SiemError(f"the SIEM at {self.url} still answers {resp.status_code} to {method} {path} "
                                    f"after {retry} attempts: {_detail(resp)}")
                self._back_off(retry, f"answered {resp.status_code} ({_detail(resp)})")
                continue
            return resp

    def _answer_error(self, resp: httpx.Response, method: str, path: str) -> SiemError:
        return SiemError(f"the SIEM at {self.url} refused {method} {path}: {_detail(resp)} "
                         f"(HTTP {resp.status_code}{_code(resp)})")

    # --- the interface --------------------------------------------------------------------------

    def list_agents(self, prefix: str) -> list[Agent]:
        """Every agent whose name starts with `prefix`, paging through `GET /agents`.

        Wazuh's `search` matches a substring in any field, so the exact prefix is checked here:
        `search=lab` also finds `xlab.col-1`, which belongs to another SB.
        """
        agents: list[Agent] = []
        offset = 0
        while True:
            params: dict[str, str | int] = {"search": prefix, "offset": offset, "limit": self.page_size,
                                            "select": "id,name,ip,status", "sort": "+id"}
            resp = self._request("GET", "/agents", "read", params=params)
            if resp.status_code != 200:
                raise self._answer_error(resp, "GET", "/agents")
            data = _json(resp).get("data", {})
            items = data.get("affected_items", [])
            total = int(data.get("total_affected_items", 0))
            for item in items:
                name = str(item.get("name", ""))
                if name.startswith(prefix) and item.get("id") != "000":
                    agents.append(Agent(str(item["id"]), name, str(item.get("ip", "")),
                                        str(item.get("status", ""))))
            offset += len(items)
            if not items or offset >= total:
                return agents

    def _find(self, name: str) -> Agent | None:
        resp = self._request("GET", "/agents", "read",
                             params={"name": name, "select": "id,name,ip,status", "limit": 1})
        if resp.status_code != 200:
            raise self._answer_error(resp, "GET", "/agents")
        items = _json(resp).get("data", {}).get("affected_items", [])
        for item in items:
            if item.get("name") == name:
                return Agent(str(item["id"]), name, str(item.get("ip", "")), str(item.get("status", "")))
        return None

    def register(self, name: str, ip: str) -> Agent:
        """`POST /agents {"name", "ip"}`; a transport error is resolved by looking the name up."""
        try:
            resp = self._request("POST", "/agents", "write", json_body={"name": name, "ip": ip}, idempotent=False)
        except SiemTlsError:
            raise
        except SiemError:
            found = self._find(name)  # did it land before the connection broke?
            if found is not None:
                return found
            resp = self._request("POST", "/agents", "write", json_body={"name": name, "ip": ip}, idempotent=False)
        if resp.status_code != 200:
            body = _json(resp)
            if body.get("error") == 1705:
                raise SiemError(
                    f"the SIEM at {self.url} refuses to register {name!r}: {_detail(resp)}. An agent of that name "
                    "appeared after this sync read the SIEM (another sync or a person registered it): run the "
                    "sync again; if it stays, the SIEM keeps the name reserved and its key must be removed there"
                )
            raise self._answer_error(resp, "POST", "/agents")
        agent_id = _json(resp).get("data", {}).get("id")
        if not isinstance(agent_id, str):
            raise SiemError(f"the SIEM at {self.url} registered {name!r} but sent no agent id")
        return Agent(agent_id, name, ip)

    def deregister(self, agents: Sequence[Agent]) -> None:
        """`DELETE /agents?agents_list=..&status=all&older_than=0s&purge=true`, in chunks.

        All three of `status=all`, `older_than=0s` and `purge=true` matter: without `older_than`
        Wazuh skips agents added this week (code 1731); `purge` removes the key for good.
        """
        ids = [a.id for a in agents if a.id != "000"]
        for start in range(0, len(ids), DELETE_CHUNK):
            chunk = ids[start: start + DELETE_CHUNK]
            params = {"agents_list": ",".join(chunk), "status": "all", "older_than": "0s", "purge": "true"}
            resp = self._request("DELETE", "/agents", "write", params=params)
            if resp.status_code != 200:
                raise self._answer_error(resp, "DELETE", "/agents")
            # 1701 "does not exist" is the state we want (removed meanwhile by someone else)
            real = [f for f in _failures(resp) if f.code != AGENT_MISSING]
            if real:
                raise SiemError(f"the SIEM at {self.url} did not remove agents: {'; '.join(map(str, real))}")

    def publish_list(self, name: str, entries: Mapping[str, str]) -> None:
        """`PUT /lists/files/{name}?overwrite=true` with the whole list as one body.

        Wazuh answers a refused upload (1800 malformed, 1905 exists) with HTTP 200 and the code in
        `data.failed_items`: the envelope is checked, not only the status.
        """
        body = encode_cdb(entries).encode("utf-8")
        path = f"/lists/files/{name}"
        resp = self._request("PUT", path, "write", params={"overwrite": "true"}, content=body,
                             headers={"Content-Type": "application/octet-stream"})
        if resp.status_code != 200:
            raise self._answer_error(resp, "PUT", path)
        self._all_done(resp, "PUT", path)

    def read_list(self, name: str) -> dict[str, str] | None:
        """`GET /lists/files/{name}?raw=true`: the list, or None when the SIEM has none (1802).

        The list comes as text; anything else is Wazuh's JSON envelope, read as one and never as
        list text (a missing list is HTTP 200 with `error` 1 and code 1802 in `failed_items`).
        """
        path = f"/lists/files/{name}"
        resp = self._request("GET", path, "read", params={"raw": "true"})
        if resp.status_code != 200:
            raise self._answer_error(resp, "GET", path)
        if _is_json(resp):
            failed = _failures(resp)
            if failed and all(f.code == LIST_MISSING for f in failed):
                return None
            if failed:
                raise self._item_error(failed, "GET", path)
            raise SiemError(f"the SIEM at {self.url} answered GET {path}?raw=true with a JSON envelope and no "
                            f"list (error {_json(resp).get('error')!r}: {_detail(resp)})")
        try:
            return decode_cdb(resp.text)
        except ValueError as exc:
            raise SiemError(f"the SIEM's list {name} is not CDB text: {exc}") from None

    def delete_list(self, name: str) -> None:
        """`DELETE /lists/files/{name}`; a list that is already gone (1906) is fine."""
        path = f"/lists/files/{name}"
        resp = self._request("DELETE", path, "write")
        if resp.status_code != 200:
            raise self._answer_error(resp, "DELETE", path)
        real = [f for f in _failures(resp) if f.code != LIST_DELETE_MISSING]
        if real:
            raise self._item_error(real, "DELETE", path)

    def _all_done(self, resp: httpx.Response, method: str, path: str) -> None:
        """Raise unless the envelope says every item succeeded (`error` 0, no failed item)."""
        failed = _failures(resp)
        if failed:
            raise self._item_error(failed, method, path)
        if _json(resp).get("error") != 0:
            raise SiemError(f"the SIEM at {self.url} did not confirm {method} {path}: "
                            f"error {_json(resp).get('error')!r} ({_detail(resp)})")

    def _item_error(self, failed: Sequence[ItemFailure], method: str, path: str) -> SiemError:
        return SiemError(f"the SIEM at {self.url} refused {method} {path}: {'; '.join(map(str, failed))}")


@dataclass(frozen=True)
class ItemFailure:
    """One entry of a Wazuh envelope's `data.failed_items`: a code, its message, the items."""

    code: int | None
    message: str
    ids: tuple[str, ...]

    def __str__(self) -> str:
        which = f" ({', '.join(self.ids)})" if self.ids else ""
        return f"code {self.code}: {self.message}{which}"


def _failures(resp: httpx.Response) -> list[ItemFailure]:
    """The item failures of an envelope (HTTP 200 with `error` 1 or 2); none for other bodies."""
    data = _json(resp).get("data")
    items = data.get("failed_items") if isinstance(data, dict) else None
    out: list[ItemFailure] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        raw_error, raw_ids = item.get("error"), item.get("id")
        error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
        ids: list[Any] = raw_ids if isinstance(raw_ids, list) else []
        code = error.get("code")
        out.append(ItemFailure(code if isinstance(code, int) else None, str(error.get("message", "?")),
                               tuple(str(i) for i in ids)))
    if not out and _json(resp).get("error") in (1, 2):
        out.append(ItemFailure(None, _detail(resp), ()))
    return out


def _is_json(resp: httpx.Response) -> bool:
    ctype = str(resp.headers.get("content-type", ""))
    return ctype.split(";")[0].strip().lower() == "application/json"


def _json(resp: httpx.Response) -> dict[str, Any]:
    try:
        data = resp.json()
    except (ValueError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _detail(resp: httpx.Response) -> str:
    body = _json(resp)
    detail = body.get("detail") or body.get("message") or resp.reason_phrase
    title = body.get("title")
    return f"{title}: {detail}" if title and title not in str(detail) else str(detail)


def _code(resp: httpx.Response) -> str:
    code = _json(resp).get("error")
    return f", error {code}" if isinstance(code, int) and code != resp.status_code else ""
