"""The preflight of a role: its manifest's rules checked on a host's context, one implementation for both engines.

Before a role changes anything on a host, both engines ask :func:`check` (pyinfra in
``deploy/*.py``, Ansible through the ``msib.appliances.preflight`` action on the controller). The
first rule that fails stops that host with the same line on both engines::

    col-int-1 is not a usable collector: the circuit has no networks

Example:
    >>> check("collector", ctx, "col-int-1")                        # doctest: +SKIP
    'col-int-1: collector of circuit internal'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from msib import manifest
from msib.errors import MsibError
from msib.manifest import Rule, lookup


class PreflightError(MsibError):
    """The inventory does not describe a host the role can be deployed on: nothing was changed on it."""

    exit_code = 2


def _paths(args: Any) -> list[str]:
    return [str(a) for a in args] if isinstance(args, list | tuple) else [str(args)]


def holds(rule: Rule, ctx: Mapping[str, Any]) -> bool:
    """Whether `rule` holds for the context `ctx`.

    >>> holds(Rule("in", ["a.b", ["x", None]], "m"), {"a": {}})
    True
    >>> holds(Rule("at_least", ["n", 10], "m"), {"n": "9"})
    False
    """
    test, args = rule.test, rule.args
    if test == "equals":
        return bool(lookup(args[0], ctx) == args[1])
    if test == "in":
        return lookup(args[0], ctx) in args[1]
    if test == "key_of":  # a number is the key of its text (YAML keys "7", a variable 7)
        key, mapping = lookup(args[0], ctx), lookup(args[1], ctx)
        if isinstance(key, int) and not isinstance(key, bool):
            key = str(key)
        return isinstance(mapping, Mapping) and isinstance(key, str) and key in mapping
    if test == "not_empty":
        value = lookup(args, ctx)
        return isinstance(value, list | tuple | Mapping | str) and len(value) > 0
    if test == "string":  # the first of the paths that is set is a string
        value = next((v for v in (lookup(p, ctx) for p in _paths(args)) if v), None)
        return isinstance(value, str)
    if test == "set":
        return lookup(args, ctx) is not None
    if test == "both_or_neither":
        a, b = (lookup(p, ctx) for p in _paths(args))
        return (a is None) == (b is None)
    if test == "at_least":
        try:
            return int(lookup(args[0], ctx)) >= int(args[1])
        except (TypeError, ValueError):
            return False
    if test == "any":
        return any(holds(r, ctx) for r in args)
    raise ValueError(f"unknown preflight test {test!r}")


def failures(role: str, ctx: Mapping[str, Any]) -> list[str]:
    """The messages of the rules of `role` that fail for `ctx`, in the manifest's order."""
    pre = manifest.load(role).preflight
    return [r.message for r in pre.rules if not holds(r, ctx)] if pre else []


def check(role: str, ctx: Mapping[str, Any], host: str) -> str:
    """Check `host`'s context against the preflight of `role`; the success line when every rule holds.

    Raises:
        PreflightError: ``<host> is not a usable <what>: <the first failed rule's message>``.
    """
    pre = manifest.load(role).preflight
    if pre is None:
        return f"{host}: {role} (no preflight)"
    failed = failures(role, ctx)
    if failed:
        try:  # a message may name the host's values ({msib_release})
            message = manifest.fill(failed[0], ctx) or failed[0]
        except (KeyError, IndexError, AttributeError, ValueError):
            message = failed[0]
        raise PreflightError(f"{host} is not a usable {pre.what}: {message}")
    try:
        return f"{host}: " + (manifest.fill(pre.success, ctx) or pre.success)
    except (KeyError, IndexError, AttributeError):
        return f"{host}: {pre.success}"
