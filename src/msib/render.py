"""The one renderer: every config file msib installs comes out of :func:`render`.

Ansible (through the ``msib_config`` action plugin in ``plugins/action/``) and pyinfra (the deploys
in ``deploy/``) both call :func:`render` with the same context, so both engines install the same
bytes. The context of a role is its ``defaults/main.yml`` overlaid with the inventory variables
that belong to it (``msib_*`` and ``<role>_*``); nothing else reaches a template.

One Jinja2 environment, built by :func:`environment`: ``StrictUndefined`` (a missing variable is an
error, never an empty string), ``trim_blocks``/``lstrip_blocks``, ``keep_trailing_newline``, one
loader over ``roles/*/templates`` and msib's own small pure filters (:data:`FILTERS`).

Example:
    >>> ctx = context("firewall", {"msib_controllers": ["198.18.0.1/32"]})   # doctest: +SKIP
    >>> render("firewall", "ruleset.nft.j2", ctx)[:20]                        # doctest: +SKIP
    '#!/usr/sbin/nft -f\\n'
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import jinja2
import yaml

from msib import releases
from msib.errors import InputError

#: The roles this renderer serves (each has ``roles/<role>/defaults/main.yml``).
ROLES: tuple[str, ...] = ("apt_proxy", "collector", "ids_sensor", "firewall")


def roles_dir() -> Path:
    """Where the roles live: ``$MSIB_ROLES_DIR`` or ``roles/`` at the repository root."""
    env = os.environ.get("MSIB_ROLES_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "roles"


# --- filters: small and pure ----------------------------------------------------------------------


def _networks(items: Iterable[Any]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(str(i), strict=False) for i in items]


def ip_family(items: Iterable[Any], version: int) -> list[str]:
    """Keep the addresses/networks of one IP version, as strings, in their order.

    >>> ip_family(["10.0.0.0/8", "2001:db8::/32", "192.0.2.1"], 4)
    ['10.0.0.0/8', '192.0.2.1']
    """
    out: list[str] = []
    for item in items:
        text = str(item)
        if ipaddress.ip_network(text, strict=False).version == version:
            out.append(text)
    return out


def nft_set(items: Iterable[Any]) -> str:
    """An nftables set literal of addresses/networks (``{ a, b }``): collapsed, sorted, unique.

    Networks that overlap are merged (nft refuses overlapping intervals), host networks are
    written as plain addresses, as ``nft list ruleset`` shows them.

    >>> nft_set(["198.18.16.0/20", "198.18.31.10", "198.18.0.1/32", "198.18.0.1"])
    '{ 198.18.0.1, 198.18.16.0/20 }'
    """
    nets = _networks(items)
    merged: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for version in (4, 6):
        same = [n for n in nets if n.version == version]
        merged += list(ipaddress.collapse_addresses(same))  # type: ignore[type-var]
    if not merged:
        raise ValueError("nft_set: an empty set cannot be written inline")
    words = [str(n.network_address) if n.prefixlen == n.max_prefixlen else str(n) for n in merged]
    return "{ " + ", ".join(words) + " }"


def port_set(ports: Iterable[Any]) -> str:
    """An nftables port set literal, sorted and unique (``{ 514, 6514 }``); one port stays bare.

    >>> port_set([6514, 514, 514])
    '{ 514, 6514 }'
    >>> port_set([22])
    '22'
    """
    values = sorted({int(p) for p in ports})
    if not values or any(not 0 < p < 65536 for p in values):
        raise ValueError(f"port_set: ports must be 1..65535, got {values}")
    return str(values[0]) if len(values) == 1 else "{ " + ", ".join(map(str, values)) + " }"


def rsyslog_string(value: Any) -> str:
    """A double-quoted RainerScript string literal, with backslash and quote escaped; refuses control
    characters (a line break would end the statement and start one of the value's own).

    >>> rsyslog_string('a "b" \\\\ c')
    '"a \\\\"b\\\\" \\\\\\\\ c"'
    >>> rsyslog_string('siem"\\n*.* /tmp/x')
    Traceback (most recent call last):
    ...
    ValueError: rsyslog_string: control characters in 'siem"\\n*.* /tmp/x'
    """
    text = str(value)
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in text):
        raise ValueError(f"rsyslog_string: control characters in {text!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def apt_string(value: Any) -> str:
    """An apt.conf string literal; refuses what apt.conf cannot hold safely (quotes, ``;``, controls).

    >>> apt_string("http://198.18.0.1:3142")
    '"http://198.18.0.1:3142"'
    >>> apt_string('http://x"; APT::X "1')
    Traceback (most recent call last):
    ...
    ValueError: apt_string: quotes, ';', '{', '}' or control characters in 'http://x"; APT::X "1'
    """
    text = str(value)
    if any(c in text for c in '";{}') or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValueError(f"apt_string: quotes, ';', '{{', '}}' or control characters in {text!r}")
    return f'"{text}"'


def yaml_list(items: Iterable[Any]) -> str:
    """A one-line YAML flow list of strings, each quoted (for Suricata's ``vars``).

    >>> yaml_list(["198.18.16.0/20", "10.0.0.0/8"])
    '"[198.18.16.0/20,10.0.0.0/8]"'
    """
    return '"[' + ",".join(str(i) for i in items) + ']"'


def onoff(value: Any) -> str:
    """RainerScript's ``on``/``off`` for a boolean.

    >>> onoff(True), onoff(False)
    ('on', 'off')
    """
    if not isinstance(value, bool):
        raise TypeError(f"onoff: expected a boolean, got {value!r}")
    return "on" if value else "off"


def yesno(value: Any) -> str:
    """Suricata's ``yes``/``no`` for a boolean.

    >>> yesno(True), yesno(False)
    ('yes', 'no')
    """
    if not isinstance(value, bool):
        raise TypeError(f"yesno: expected a boolean, got {value!r}")
    return "yes" if value else "no"


def host_address(value: Any) -> str:
    """The address part of an address or interface (``198.18.0.1/24`` → ``198.18.0.1``).

    >>> host_address("198.18.0.1/24")
    '198.18.0.1'
    """
    return str(ipaddress.ip_interface(str(value)).ip)


#: msib's own Jinja filters, by name.
FILTERS: dict[str, Callable[..., Any]] = {
    "ip_family": ip_family,
    "nft_set": nft_set,
    "port_set": port_set,
    "rsyslog_string": rsyslog_string,
    "yaml_list": yaml_list,
    "apt_string": apt_string,
    "onoff": onoff,
    "yesno": yesno,
    "host_address": host_address,
}


# --- the environment and the context --------------------------------------------------------------


@functools.cache
def environment(root: Path | None = None) -> jinja2.Environment:
    """The one Jinja2 environment of msib (cached per roles directory).

    Args:
        root: the roles directory; :func:`roles_dir` by default.

    Returns:
        An environment whose loader finds ``<role>/<template>`` under ``root/<role>/templates``.
    """
    root = root or roles_dir()
    mapping: dict[str, jinja2.BaseLoader] = {}
    for role_dir in sorted(p for p in root.glob("*") if (p / "templates").is_dir()):
        mapping[role_dir.name] = jinja2.FileSystemLoader(str(role_dir / "templates"))
    env = jinja2.Environment(
        loader=jinja2.PrefixLoader(mapping, delimiter="/"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
        auto_reload=False,
    )
    env.filters.update(FILTERS)
    return env


def defaults(role: str, root: Path | None = None) -> dict[str, Any]:
    """The role's ``defaults/main.yml`` as a dict.

    Raises:
        InputError: unknown role, or a defaults file that is not a YAML mapping.
    """
    root = root or roles_dir()
    path = root / role / "defaults" / "main.yml"
    if not path.is_file():
        raise InputError(role, "no such role", fix=f"one of: {', '.join(ROLES)}")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise InputError(str(path), "role defaults must be a YAML mapping")
    return data


def plain(value: Any) -> Any:
    """A copy of `value` made of plain JSON types (str, int, float, bool, None, list, dict).

    Engines hand over their own subclasses (Ansible's tagged strings, pyinfra's host data); this
    makes the context the same whichever engine built it.

    >>> plain({"a": (1, "x"), "b": None})
    {'a': [1, 'x'], 'b': None}
    """
    return json.loads(json.dumps(value, default=str))


def release_vars(role: str, release: str, root: Path | None = None) -> dict[str, Any]:
    """The role's values for one Debian release: ``roles/<role>/vars/<release>.yml`` ({} when it has none).

    Every name starts with ``__<role>_``: they are the role's own, never the inventory's.

    Raises:
        InputError: `release` is not one msib supports, or the file is not a mapping of such names.
    """
    releases.get(release)
    path = (root or roles_dir()) / role / "vars" / f"{release}.yml"
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict) or not all(str(k).startswith(f"__{role}_") for k in data):
        raise InputError(str(path), f"release values must be a mapping of names starting with __{role}_")
    return data


def context(role: str, variables: Mapping[str, Any], root: Path | None = None, *,
            release: str | None = None) -> dict[str, Any]:
    """The render context of `role`: its defaults, overlaid with its inventory variables.

    Only ``msib_*`` and ``<role>_*`` variables are taken from `variables` (an engine's host vars);
    everything else an engine knows (connection settings, facts) never reaches a template, but for
    one fact: `release`, the host's Debian codename (Ansible's ``ansible_distribution_release``,
    pyinfra's ``LinuxDistribution``). It becomes ``msib_release`` (whatever the inventory says) and
    brings the role's values for that release (:func:`release_vars`).

    Raises:
        InputError: `release` is not a release msib supports.
    """
    ctx = defaults(role, root)
    if release is not None:
        ctx.update(release_vars(role, release, root))
    prefixes = ("msib_", f"{role}_")
    for key, value in variables.items():
        if key.startswith(prefixes):
            ctx[key] = value
    if release is not None:
        ctx["msib_release"] = release
    out: dict[str, Any] = plain(ctx)
    return out


def render(role: str, template: str, ctx: Mapping[str, Any], root: Path | None = None) -> str:
    """Render ``roles/<role>/templates/<template>`` with `ctx` (see :func:`context`).

    Args:
        role: the role that owns the template.
        template: its file name under the role's ``templates/``.
        ctx: the render context.
        root: the roles directory; :func:`roles_dir` by default.

    Returns:
        The file's text, exactly as it is to be installed.

    Raises:
        InputError: the template is missing or uses a variable the context does not have.
    """
    env = environment(root)
    try:
        return env.get_template(f"{role}/{template}").render(**ctx)
    except jinja2.TemplateNotFound:
        raise InputError(f"roles/{role}/templates/{template}", "no such template") from None
    except jinja2.UndefinedError as exc:
        raise InputError(f"roles/{role}/templates/{template}", f"undefined variable: {exc.message}",
                         fix=f"set it in the inventory or in roles/{role}/defaults/main.yml") from None
    except (ValueError, TypeError) as exc:
        raise InputError(f"roles/{role}/templates/{template}", f"bad value: {exc}",
                         fix="check the inventory variables this template uses") from None


def role_file(role: str, name: str, root: Path | None = None) -> bytes:
    """The bytes of a static file shipped by a role (``roles/<role>/files/<name>``)."""
    root = root or roles_dir()
    path = (root / role / "files" / name).resolve()
    if not path.is_relative_to((root / role / "files").resolve()) or not path.is_file():
        raise InputError(f"roles/{role}/files/{name}", "no such file in the role")
    return path.read_bytes()


def sha256(data: str | bytes) -> str:
    """Hex SHA-256 of the text (UTF-8) or bytes.

    >>> sha256("")[:12]
    'e3b0c44298fc'
    """
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()
