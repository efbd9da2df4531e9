"""SIEM API credentials: from the environment or an ansible-vault file, never from a file in git.

- Environment: `MSIB_SIEM_USER` and `MSIB_SIEM_PASSWORD`.
- ansible-vault: a vault-encrypted YAML file holding `msib_siem_user` and `msib_siem_password`,
  opened with the vault password file given (or `ANSIBLE_VAULT_PASSWORD_FILE`).

The password is a :class:`~msib.secrets.Secret`: masked in str/repr/logs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from msib import secrets
from msib.errors import InputError
from msib.secrets import Secret, read_vault

ENV_USER = "MSIB_SIEM_USER"
ENV_PASSWORD = "MSIB_SIEM_PASSWORD"


@dataclass(frozen=True)
class Credentials:
    """A SIEM API user and its password (masked)."""

    user: str
    password: Secret


def from_env(env: Mapping[str, str] | None = None) -> Credentials | None:
    """Credentials from `MSIB_SIEM_USER` / `MSIB_SIEM_PASSWORD`, or None when either is unset."""
    env = os.environ if env is None else env
    user, password = env.get(ENV_USER), env.get(ENV_PASSWORD)
    if not user or not password:
        return None
    return Credentials(user, Secret(password))


def from_vault(vault_file: Path, password_file: Path) -> Credentials:
    """Credentials from an ansible-vault encrypted YAML file (:func:`msib.secrets.read_vault`).

    Raises:
        InputError: a file is unreadable, not a vault, the vault password is wrong, or a key is missing.
    """
    values = read_vault(vault_file, password_file, ("msib_siem_user", "msib_siem_password"))
    return Credentials(values["msib_siem_user"], Secret(values["msib_siem_password"]))


def resolve(vault_file: Path | None = None, vault_password_file: Path | None = None,
            env: Mapping[str, str] | None = None) -> Credentials:
    """The credentials to use: the vault file when one is given, else the environment.

    Raises:
        InputError: none found, or the vault cannot be opened.
    """
    env = os.environ if env is None else env
    if vault_file is not None:
        return from_vault(vault_file, secrets.vault_password_file(vault_file, vault_password_file, env))
    creds = from_env(env)
    if creds is None:
        raise InputError("environment", "no SIEM API credentials",
                         fix=f"set {ENV_USER} and {ENV_PASSWORD}, or pass --vault-file")
    return creds
