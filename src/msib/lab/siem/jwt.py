"""A minimal HS256 JSON Web Token (RFC 7519), enough for the lab SIEM's login tokens.

Example:
    >>> token = encode({"sub": "msib", "exp": 2_000_000_000}, b"k" * 32)
    >>> decode(token, b"k" * 32, now=1_000_000_000)["sub"]
    'msib'
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from msib.siem.jwt import b64url_decode


class InvalidToken(Exception):
    """The token is malformed, forged, not yet valid or expired."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def encode(claims: dict[str, Any], key: bytes) -> str:
    """Sign `claims` with HMAC-SHA256 under `key` and return the compact JWT."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    return f"{header}.{payload}.{_b64(hmac.new(key, signing_input, hashlib.sha256).digest())}"


def decode(token: str, key: bytes, now: float | None = None) -> dict[str, Any]:
    """Verify `token` (signature, `nbf`, `exp`) and return its claims.

    Raises:
        InvalidToken: for any token that must not be accepted.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("not a JWT")
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
        signature = b64url_decode(parts[2])
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidToken("malformed JWT") from exc
    if not isinstance(header, dict) or header.get("alg") != "HS256" or not isinstance(claims, dict):
        raise InvalidToken("unsupported JWT")
    expected = hmac.new(key, f"{parts[0]}.{parts[1]}".encode("ascii"), hashlib.sha256).digest()
    if not hmac.compare_digest(signature, expected):
        raise InvalidToken("bad signature")
    now = time.time() if now is None else now
    exp, nbf = claims.get("exp"), claims.get("nbf", 0)
    if not isinstance(exp, int | float) or not isinstance(nbf, int | float):
        raise InvalidToken("no expiry")
    if now >= exp:
        raise InvalidToken("expired")
    if now < nbf:
        raise InvalidToken("not yet valid")
    return claims

