"""Reading a JSON Web Token's claims without verifying them: a client reading its own token's expiry.

The signing and verifying side (HS256) is the lab SIEM's (:mod:`msib.lab.siem.jwt`); it decodes
with :func:`b64url_decode` from here.

Example:
    >>> unverified_claims("eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjEwfQ.x")
    {'exp': 10}
"""

from __future__ import annotations

import base64
import json
from typing import Any


def b64url_decode(text: str) -> bytes:
    """base64url without padding (RFC 7515 section 2), as JWTs carry their parts."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def unverified_claims(token: str) -> dict[str, Any]:
    """The claims of `token` without checking anything (a client reading its own token's `exp`)."""
    try:
        claims = json.loads(b64url_decode(token.split(".")[1]))
    except (IndexError, ValueError, UnicodeDecodeError):
        return {}
    return claims if isinstance(claims, dict) else {}
