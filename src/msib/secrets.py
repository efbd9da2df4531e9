"""Secrets as a type: masked in str/repr/logs, unmasked only where they are sent.

Example:
    >>> s = Secret("hunter2")
    >>> str(s), repr(s)
    ('********', "Secret('********')")
    >>> s.unmask()
    'hunter2'
"""

from __future__ import annotations

import hmac
from typing import Final

MASK: Final = "********"


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
