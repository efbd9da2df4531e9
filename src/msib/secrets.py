"""Secrets as a type (masked in str/repr/logs, unmasked only where sent), and the one ansible-vault reader.

Example:
    >>> s = Secret("hunter2")
    >>> str(s), repr(s)
    ('********', "Secret('********')")
    >>> s.unmask()
    'hunter2'
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from msib.errors import InputError

MASK: Final = "********"
#: Where ansible-vault's password file is named when no --vault-password-file is given.
ENV_VAULT_PASSWORD_FILE: Final = "ANSIBLE_VAULT_PASSWORD_FILE"


class Secret:
    """A secret string (password, token, key) that never shows itself by accident.

    `str()`, `repr()`, `format()` and f-strings all give the mask; :meth:`unmask` gives the value,
    and should be called only at the point where the value leaves the process (an HTTP header,
    a TLS library). Two secrets compare equal in constant time.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("a Secret holds a str")
        self._value = value

    def unmask(self) -> str:
        """The secret value itself: only where it is sent, never where it is logged."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __format__(self, spec: str) -> str:
        return format(MASK, spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret is not pickled (it would leave the process unmasked)")


def vault_password_file(vault_file: Path, given: Path | None, env: Mapping[str, str] | None = None) -> Path:
    """The password file of `vault_file`: `given`, else ``$ANSIBLE_VAULT_PASSWORD_FILE``.

    Raises:
        InputError: neither is set.
    """
    env = os.environ if env is None else env
    if given is not None:
        return given
    if env.get(ENV_VAULT_PASSWORD_FILE):
        return Path(env[ENV_VAULT_PASSWORD_FILE])
    raise InputError(str(vault_file), "no vault password file",
                     fix=f"pass --vault-password-file or set {ENV_VAULT_PASSWORD_FILE}")


def read_vault(vault_file: Path, password_file: Path, required: Sequence[str],
               optional: Sequence[str] = ()) -> dict[str, str]:
    """The string values of an ansible-vault encrypted YAML mapping: every `required` key, and the
    `optional` ones it has.

    Raises:
        InputError: a file is unreadable, not a vault (secrets are never kept in plain text), the
            password is wrong, or a key is missing, empty or not a string.
    """
    # imported here: the lab SIEM host runs this module with a bare system python (no yaml, no ansible)
    import yaml
    from ansible.errors import AnsibleError
    from ansible.parsing.vault import VaultLib, VaultSecret, is_encrypted

    try:
        vault_password = password_file.read_bytes().strip()
        data = vault_file.read_bytes()
    except OSError as exc:
        raise InputError(str(exc.filename), f"cannot read: {exc.strerror}") from None
    if not is_encrypted(data):
        raise InputError(str(vault_file), "not an ansible-vault file (secrets are never kept in plain text)",
                         fix="encrypt it with `ansible-vault encrypt`")
    try:
        plain = VaultLib([("default", VaultSecret(vault_password))]).decrypt(data)
    except AnsibleError:
        raise InputError(str(vault_file), "cannot decrypt the vault file",
                         fix="check the vault password file") from None
    try:
        values: Any = yaml.safe_load(plain)
    except yaml.YAMLError:
        values = None
    if not isinstance(values, dict):
        raise InputError(str(vault_file), "the decrypted vault is not a YAML mapping",
                         fix=f"store {' and '.join(required)} in it")
    out: dict[str, str] = {}
    for key in required:
        if not isinstance(values.get(key), str) or not values[key]:
            raise InputError(str(vault_file), "missing or empty", where=key, fix="add it to the vault")
        out[key] = values[key]
    for key in optional:
        if values.get(key) is not None and not isinstance(values[key], str):
            raise InputError(str(vault_file), "not a string", where=key)
        if values.get(key):
            out[key] = values[key]
    return out
