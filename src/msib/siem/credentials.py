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
from typing import Any

import yaml

from msib.errors import InputError
from msib.secrets import Secret

ENV_USER = "MSIB_SIEM_USER"
ENV_PASSWORD = "MSIB_SIEM_PASSWORD"
ENV_VAULT_PASSWORD_FILE = "ANSIBLE_VAULT_PASSWORD_FILE"


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
    """Credentials from an ansible-vault encrypted YAML file.

    Raises:
        InputError: a file is unreadable, the vault password is wrong, or a key is missing.
    """
    from ansible.errors import AnsibleError
    from ansible.parsing.vault import VaultLib, VaultSecret

    try:
        vault_password = password_file.read_bytes().strip()
        data = vault_file.read_bytes()
    except OSError as exc:
        raise InputError(str(exc.filename), f"cannot read: {exc.strerror}") from None
    try:
        plain = VaultLib([("default", VaultSecret(vault_password))]).decrypt(data)
    except AnsibleError:
        raise InputError(str(vault_file), "cannot decrypt the vault file",
                         fix="check the vault password file and that the file is ansible-vault encrypted") from None
    try:
        values: Any = yaml.safe_load(plain)
    except yaml.YAMLError:
        values = None
    if not isinstance(values, dict):
        raise InputError(str(vault_file), "the decrypted vault is not a YAML mapping",
                         fix="store msib_siem_user and msib_siem_password in it")
    user, password = values.get("msib_siem_user"), values.get("msib_siem_password")
    for key, value in (("msib_siem_user", user), ("msib_siem_password", password)):
        if not isinstance(value, str) or not value:
            raise InputError(str(vault_file), "missing or empty", where=key, fix="add it to the vault")
    assert isinstance(user, str) and isinstance(password, str)
    return Credentials(user, Secret(password))


def resolve(vault_file: Path | None = None, vault_password_file: Path | None = None,
            env: Mapping[str, str] | None = None) -> Credentials:
    """The credentials to use: the vault file when one is given, else the environment.

    Raises:
        InputError: none found, or the vault cannot be opened.
    """
    env = os.environ if env is None else env
    if vault_file is not None:
        pw_file = vault_password_file or (Path(env[ENV_VAULT_PASSWORD_FILE])
                                          if env.get(ENV_VAULT_PASSWORD_FILE) else None)
        if pw_file is None:
            raise InputError(str(vault_file), "no vault password file",
                             fix=f"pass --vault-password-file or set {ENV_VAULT_PASSWORD_FILE}")
        return from_vault(vault_file, pw_file)
    creds = from_env(env)
    if creds is None:
        raise InputError("environment", "no SIEM API credentials",
                         fix=f"set {ENV_USER} and {ENV_PASSWORD}, or pass --vault-file")
    return creds
