"""The lab SIEM's API users: a JSON file of salted PBKDF2 password hashes and a role each.

The file (mode 0600) looks like::

    {"users": {"msib": {"password": "pbkdf2_sha256$200000$SALT$HASH", "role": "administrator"}}}

Roles, after Wazuh's RBAC defaults: `administrator` may do everything, `readonly` only GET.
Passwords never appear in the file, in argv or in a log.

Standalone: ``MSIB_SIEM_PASSWORD=... python -m msib.lab.siem.users FILE USER [--role readonly]``
(or the password on stdin) adds or replaces one user.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import secrets
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from msib.errors import InputError
from msib.fsutil import atomic_write
from msib.secrets import Secret

Role = Literal["administrator", "readonly"]
ROLES: tuple[Role, ...] = ("administrator", "readonly")
ITERATIONS = 200_000


@dataclass(frozen=True)
class User:
    """One API user: name, password hash and role."""

    name: str
    password_hash: str
    role: Role

    def check(self, password: str) -> bool:
        """True when `password` is this user's password (constant-time comparison)."""
        return verify_password(password, self.password_hash)


def hash_password(password: Secret | str, iterations: int = ITERATIONS) -> str:
    """A salted PBKDF2-SHA256 hash of `password`, as `pbkdf2_sha256$ITER$SALT$HASH`."""
    raw = password.unmask() if isinstance(password, Secret) else password
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", raw.encode(), salt, iterations)
    enc = base64.b64encode
    return f"pbkdf2_sha256${iterations}${enc(salt).decode()}${enc(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    """True when `password` matches the hash `encoded`."""
    try:
        scheme, iterations, salt, digest = encoded.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        got = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


def load_users(path: str | Path) -> dict[str, User]:
    """Read the users file.

    Raises:
        InputError: the file is unreadable or not of the shape above.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(str(path), f"cannot read the users file: {exc.strerror}") from None
    except ValueError:
        raise InputError(str(path), "the users file is not JSON") from None
    users = data.get("users") if isinstance(data, dict) else None
    if not isinstance(users, dict) or not users:
        raise InputError(str(path), "no users", where="users", fix='write {"users": {NAME: {...}}}')
    out: dict[str, User] = {}
    for name, entry in users.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("password"), str):
            raise InputError(str(path), "a user needs a password hash", where=f"users.{name}")
        role = entry.get("role", "administrator")
        if role not in ROLES:
            raise InputError(str(path), f"unknown role {role!r}", where=f"users.{name}.role",
                             fix=f"use one of {', '.join(ROLES)}")
        out[name] = User(name, entry["password"], cast(Role, role))
    return out


def write_users_file(path: str | Path, users: Mapping[str, tuple[Secret | str, Role]],
                     iterations: int = ITERATIONS) -> None:
    """Write a users file (mode 0600, atomically) from `{name: (password, role)}`."""
    path = Path(path)
    data = {"users": {name: {"password": hash_password(pw, iterations), "role": role}
                      for name, (pw, role) in users.items()}}
    atomic_write(path, json.dumps(data, indent=2), mode=0o600, make_parents=False)


def main(argv: Sequence[str] | None = None) -> int:
    """Add or replace one user in a users file; the password comes from the environment or stdin."""
    parser = argparse.ArgumentParser(prog="python -m msib.lab.siem.users")
    parser.add_argument("file", type=Path)
    parser.add_argument("user")
    parser.add_argument("--role", choices=ROLES, default="administrator")
    parser.add_argument("--password-env", default="MSIB_SIEM_PASSWORD",
                        help="environment variable holding the password (else read from stdin)")
    args = parser.parse_args(argv)
    password = os.environ.get(args.password_env) or sys.stdin.readline().rstrip("\n")
    if not password:
        print("error: no password given", file=sys.stderr)
        return 2
    existing: dict[str, object] = {}
    if args.file.exists():
        existing = json.loads(args.file.read_text(encoding="utf-8")).get("users", {})
    existing[args.user] = {"password": hash_password(password), "role": args.role}
    atomic_write(args.file, json.dumps({"users": existing}, indent=2), mode=0o600, make_parents=False)
    print(f"user {args.user} ({args.role}) written to {args.file}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
