"""What each role installs, said once: ``roles/<role>/meta/manifest.yml``, read by both engines and the checks.

A manifest names the role's packages (and apt's target release of a group: ``package_releases``),
directories, managed files (dest, template | file | src, mode, validate, guard, when, loop),
placeholder files, services and preflight rules. The pyinfra
deploys (``deploy/``), the Ansible plugins (``msib.appliances.config``, ``.preflight``,
``.manifest``), ``msib check`` (no drift) and :mod:`msib.preflight` all read it here.

Values are data, never Jinja: a string may name the role's variables as ``{name}``,
``{name[key]}`` (str.format fields, filled from the render context, see :func:`fill`); ``when``
and the preflight rules name a variable by its dotted path (``msib_siem.syslog.transport``,
``msib_circuits.{msib_circuit}.networks``).

Example:
    >>> m = load("collector")                                        # doctest: +SKIP
    >>> [f.dest for f in m.install_files(ctx)]                       # doctest: +SKIP
    ['/etc/msib/tls/ca.pem', '/etc/msib/collector.nft', ...]
"""

from __future__ import annotations

import functools
import os
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from msib import render
from msib.errors import InputError

Kind = Literal["template", "file", "src"]
KINDS: tuple[Kind, ...] = ("template", "file", "src")
GUARDS: tuple[str, ...] = ("nft_management",)
MODES: tuple[str, ...] = ("0600", "0640", "0644", "0700", "0750", "0755")
#: The preflight tests a rule may use (see :mod:`msib.preflight`).
TESTS: tuple[str, ...] = ("equals", "in", "key_of", "not_empty", "string", "set", "both_or_neither",
                          "at_least", "any")
_FILE_KEYS = frozenset({"dest", *KINDS, "mode", "validate", "guard", "when", "loop", "installed_by"})
_FORMATTER = string.Formatter()


class _Unset(Exception):
    """A field of a value names a variable that is null: the value does not apply."""


# --- values: placeholders and paths -------------------------------------------------------------------


def fill(template: str, scope: Mapping[str, Any]) -> str | None:
    """`template` with its ``{name}`` fields filled from `scope`; None when a field's value is null.

    >>> fill("{d}/{app[name]}.pem", {"d": "/pki", "app": {"name": "col-int-1"}})
    '/pki/col-int-1.pem'
    >>> fill("{d}/x", {"d": None}) is None
    True

    Raises:
        KeyError: a field names no variable of `scope`.
    """
    out: list[str] = []
    for literal, field_name, spec, conversion in _FORMATTER.parse(template):
        out.append(literal)
        if field_name is None:
            continue
        try:
            value, _ = _FORMATTER.get_field(field_name, (), scope)
        except TypeError:  # a step of the field is null ({app[name]} with app null)
            return None
        if value is None:
            return None
        out.append(_FORMATTER.format_field(_FORMATTER.convert_field(value, conversion), spec or ""))
    return "".join(out)


def lookup(path: str, scope: Mapping[str, Any]) -> Any:
    """The value at a dotted `path` of `scope` (None when a step is missing); ``{name}`` fills a step.

    >>> lookup("c.{n}.nets", {"n": "int", "c": {"int": {"nets": [1]}}})
    [1]
    >>> lookup("a.b", {"a": None}) is None
    True
    """
    value: Any = scope
    for step in path.split("."):
        try:
            key = fill(step, scope) if "{" in step else step
        except (KeyError, IndexError, AttributeError):
            return None
        if key is None or not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


# --- the model ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileSpec:
    """One managed file of a manifest, as written there (fields unfilled)."""

    id: str
    dest: str
    kind: Kind
    sources: tuple[str, ...]
    mode: str | None = "0644"
    validate: str | None = None
    guard: str | None = None
    when: str | None = None
    loop: str | None = None
    installed_by: str | None = None


@dataclass(frozen=True)
class InstallFile:
    """A managed file as one host gets it: every field filled from the host's context."""

    id: str
    dest: str
    kind: Kind
    source: str
    mode: str = "0644"
    validate: str | None = None
    guard: str | None = None

    def args(self) -> dict[str, Any]:
        """Arguments of the ``config`` operation/action: dest, template | file | src, mode, validate, guard."""
        out: dict[str, Any] = {"dest": self.dest, self.kind: self.source, "mode": self.mode}
        out.update({k: v for k, v in (("validate", self.validate), ("guard", self.guard)) if v})
        return out


@dataclass(frozen=True)
class PathSpec:
    """A directory or a placeholder file: its path (or the path whose parent it is) and mode."""

    path: str
    mode: str
    parent: bool = False


@dataclass(frozen=True)
class Service:
    """A unit the role keeps enabled (and running, unless `running` is False: enabled at boot only)."""

    unit: str
    running: bool = True
    when: str | None = None


@dataclass(frozen=True)
class Rule:
    """One preflight rule: a test (:data:`TESTS`) with its arguments and what to say when it fails."""

    test: str
    args: Any
    message: str


@dataclass(frozen=True)
class Preflight:
    """The role's preflight: what the host must be (for the message), the rules, the success line."""

    what: str
    success: str
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class ManagedFile:
    """A file a role installs and the sha256 it must have now (None: cannot be known here)."""

    path: str
    sha256: str | None
    source: str


@dataclass(frozen=True)
class Manifest:
    """One role's ``meta/manifest.yml``."""

    role: str
    path: Path
    packages: Mapping[str, tuple[str, ...]]
    package_releases: Mapping[str, tuple[str, ...]]
    directories: tuple[PathSpec, ...]
    files: Mapping[str, FileSpec]
    placeholders: tuple[PathSpec, ...]
    services: tuple[Service, ...]
    preflight: Preflight | None
    depends: tuple[str, ...]

    def _error(self, message: str, where: str | None = None) -> InputError:
        return InputError(str(self.path), message, where=where, fix=f"set it in roles/{self.role}/defaults/main.yml "
                                                                   "or the inventory, or correct the manifest")

    def _fill(self, template: str, ctx: Mapping[str, Any], where: str) -> str | None:
        try:
            return fill(template, ctx)
        except (KeyError, IndexError, AttributeError, ValueError) as exc:
            raise self._error(f"cannot fill {template!r}: no variable {exc}", where) from None

    def applies(self, when: str | None, ctx: Mapping[str, Any]) -> bool:
        """Whether a ``when`` (the dotted path of a boolean variable) holds for `ctx` (null: it does not).

        Raises:
            InputError: the variable is a string (``"false"`` would be true): give a YAML boolean.
        """
        if when is None:
            return True
        value = lookup(when, ctx)
        if isinstance(value, str):
            raise InputError(when, f"must be true or false, not the string {value!r}",
                             fix="give it as a YAML boolean (true/false) in the inventory or --vars")
        return bool(value)

    def package_list(self, group: str) -> list[str]:
        """The packages of one group (``packages.<group>``).

        Raises:
            InputError: no such group.
        """
        if group not in self.packages:
            raise self._error(f"no package group {group!r}", "packages")
        return list(self.packages[group])

    def package_release(self, group: str, ctx: Mapping[str, Any]) -> str | None:
        """apt's target release (``-t``) of a package group on a host with `ctx`: the first of the
        group's ``package_releases`` paths that is set (None: no target release, apt's own choice).

        Raises:
            InputError: no such package group.
        """
        self.package_list(group)
        for path in self.package_releases.get(group, ()):
            value = lookup(path, ctx)
            if value not in (None, ""):
                return str(value)
        return None

    def install_file(self, file_id: str, ctx: Mapping[str, Any], item: Any = None) -> InstallFile | None:
        """The file `file_id` as this host gets it; None when it is not installed here (when, no source).

        Raises:
            InputError: no such file, a loop entry without `item`, or a field naming no variable.
        """
        spec = self.files.get(file_id)
        if spec is None:
            raise self._error(f"no managed file {file_id!r}", "files")
        if spec.installed_by or not self.applies(spec.when, ctx):
            return None
        if spec.loop and item is None:
            raise self._error(f"file {file_id!r} is installed once per item of {spec.loop}: give the item",
                              f"files.{file_id}")
        scope = {**ctx, "item": item} if spec.loop else ctx
        where = f"files.{file_id}"
        source = next((s for s in (self._fill(t, scope, where) for t in spec.sources) if s), None)
        if source is None:
            return None
        dest = self._fill(spec.dest, scope, where)
        if dest is None:
            raise self._error(f"the destination of {file_id!r} names a variable that is null", where)
        return InstallFile(spec.id, dest, spec.kind, source, spec.mode or "0644", spec.validate, spec.guard)

    def install_files(self, ctx: Mapping[str, Any]) -> list[InstallFile]:
        """Every file the engines install on a host with `ctx`, loops expanded, in manifest order."""
        out: list[InstallFile] = []
        for spec in self.files.values():
            for item in self._items(spec, ctx):
                f = self.install_file(spec.id, ctx, item)
                if f is not None:
                    out.append(f)
        return out

    def _items(self, spec: FileSpec, ctx: Mapping[str, Any]) -> list[Any]:
        if not spec.loop:
            return [None]
        items = lookup(spec.loop, ctx)
        if not isinstance(items, list):
            raise self._error(f"{spec.loop} is not a list", f"files.{spec.id}.loop")
        return items

    def dests(self, ctx: Mapping[str, Any]) -> list[str]:
        """Every path the role may write (its conditions ignored, loops expanded over `ctx`)."""
        out: list[str] = []
        for spec in self.files.values():
            for item in self._items(spec, ctx):
                dest = self._fill(spec.dest, {**ctx, "item": item}, f"files.{spec.id}")
                if dest:
                    out.append(dest)
        return out

    def _paths(self, specs: Sequence[PathSpec], ctx: Mapping[str, Any], where: str) -> list[PathSpec]:
        out: list[PathSpec] = []
        for p in specs:
            path = self._fill(p.path, ctx, where)
            if path:
                out.append(PathSpec(os.path.dirname(path) if p.parent else path, p.mode))
        return out

    def directories_for(self, ctx: Mapping[str, Any]) -> list[PathSpec]:
        """The directories the role creates (root-owned), their paths filled from `ctx`."""
        return self._paths(self.directories, ctx, "directories")

    def placeholders_for(self, ctx: Mapping[str, Any]) -> list[PathSpec]:
        """Files created empty when absent and never overwritten (their path null: none)."""
        return self._paths(self.placeholders, ctx, "placeholders")

    def services_for(self, ctx: Mapping[str, Any], *, running: bool | None = None) -> list[str]:
        """The units the role keeps enabled for `ctx`; `running` True/False: only those it keeps running / not."""
        return [s.unit for s in self.services
                if self.applies(s.when, ctx) and (running is None or s.running == running)]


# --- reading --------------------------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else ([] if value is None else [value])


def _file_spec(file_id: str, raw: Any, path: Path) -> FileSpec:
    where = f"files.{file_id}"
    if not isinstance(raw, dict) or not set(raw) <= _FILE_KEYS or not raw.get("dest"):
        raise InputError(str(path), f"a file needs dest and may have {', '.join(sorted(_FILE_KEYS - {'dest'}))}",
                         where=where)
    kinds = [k for k in KINDS if raw.get(k)]
    if len(kinds) != 1:
        raise InputError(str(path), "a file needs exactly one of template, file, src", where=where)
    mode = raw.get("mode", "0644" if not raw.get("installed_by") else None)
    if mode is not None and str(mode) not in MODES:
        raise InputError(str(path), f"mode must be one of {', '.join(MODES)}", where=f"{where}.mode")
    if raw.get("guard") is not None and raw["guard"] not in GUARDS:
        raise InputError(str(path), f"guard must be one of {', '.join(GUARDS)}", where=f"{where}.guard")
    return FileSpec(file_id, str(raw["dest"]), kinds[0], tuple(str(s) for s in _as_list(raw[kinds[0]])),
                    str(mode) if mode is not None else None, raw.get("validate"), raw.get("guard"),
                    raw.get("when"), raw.get("loop"), raw.get("installed_by"))


def _path_specs(raw: Any, path: Path, where: str) -> tuple[PathSpec, ...]:
    out: list[PathSpec] = []
    for i, entry in enumerate(_as_list(raw)):
        target = entry.get("path") or entry.get("parent_of") if isinstance(entry, dict) else None
        if not target or str(entry.get("mode")) not in MODES:
            raise InputError(str(path), "needs path (or parent_of) and a mode", where=f"{where}[{i}]")
        out.append(PathSpec(str(target), str(entry["mode"]), parent="parent_of" in entry))
    return tuple(out)


def _rule(raw: Any, path: Path, where: str) -> Rule:
    if not isinstance(raw, dict):
        raise InputError(str(path), "a rule is a mapping: one test and its message", where=where)
    tests = [k for k in raw if k != "message"]
    if len(tests) != 1 or tests[0] not in TESTS or (tests[0] != "any" and not raw.get("message")):
        raise InputError(str(path), f"a rule has one test of {', '.join(TESTS)} and a message", where=where)
    test = tests[0]
    args = raw[test]
    if test == "any":
        args = tuple(_rule({**r, "message": r.get("message", "-")}, path, f"{where}.any[{i}]")
                     for i, r in enumerate(_as_list(args)))
    return Rule(test, args, str(raw.get("message") or ""))


def _preflight(raw: Any, path: Path) -> Preflight | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or not raw.get("what"):
        raise InputError(str(path), "preflight needs what, success and rules", where="preflight")
    rules = tuple(_rule(r, path, f"preflight.rules[{i}]") for i, r in enumerate(_as_list(raw.get("rules"))))
    return Preflight(str(raw["what"]), str(raw.get("success") or raw["what"]), rules)


@functools.cache
def _load(role: str, root: Path) -> Manifest:
    path = root / role / "meta" / "manifest.yml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        known = sorted(p.parent.parent.name for p in root.glob("*/meta/manifest.yml"))
        raise InputError(role, "no such role (or it has no meta/manifest.yml)",
                         fix=f"one of: {', '.join(known)}") from None
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(str(path), f"cannot read the role's manifest: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(str(path), "a manifest is a YAML mapping")
    packages = data.get("packages") or {}
    if not isinstance(packages, dict):
        raise InputError(str(path), "packages is a mapping of groups to package lists", where="packages")
    package_releases = data.get("package_releases") or {}
    if not isinstance(package_releases, dict) or not set(package_releases) <= set(packages):
        raise InputError(str(path), "package_releases maps package groups to variable paths",
                         where="package_releases")
    files = data.get("files") or {}
    if not isinstance(files, dict):
        raise InputError(str(path), "files is a mapping of names to files", where="files")
    services = []
    for i, s in enumerate(_as_list(data.get("services"))):
        if not isinstance(s, dict) or not s.get("unit"):
            raise InputError(str(path), "a service needs unit", where=f"services[{i}]")
        services.append(Service(str(s["unit"]), bool(s.get("running", True)), s.get("when")))
    meta = yaml.safe_load((root / role / "meta" / "main.yml").read_text(encoding="utf-8")) \
        if (root / role / "meta" / "main.yml").is_file() else {}
    depends = tuple(str(d["role"] if isinstance(d, dict) else d) for d in (meta or {}).get("dependencies") or [])
    return Manifest(
        role=role, path=path,
        packages={str(k): tuple(str(p) for p in _as_list(v)) for k, v in packages.items()},
        package_releases={str(k): tuple(str(p) for p in _as_list(v)) for k, v in package_releases.items()},
        directories=_path_specs(data.get("directories"), path, "directories"),
        files={str(k): _file_spec(str(k), v, path) for k, v in files.items()},
        placeholders=_path_specs(data.get("placeholders"), path, "placeholders"),
        services=tuple(services),
        preflight=_preflight(data.get("preflight"), path),
        depends=depends,
    )


def load(role: str, root: Path | None = None) -> Manifest:
    """The manifest of `role` (``roles/<role>/meta/manifest.yml`` under `root`, :func:`msib.render.roles_dir`).

    Raises:
        InputError: no such role, or a manifest that is not in the shape described above.
    """
    return _load(role, (root or render.roles_dir()).resolve())


def managed_files(role: str, ctx: Mapping[str, Any], root: Path | None = None) -> list[ManagedFile]:
    """Every file `role` installs on a host with `ctx` and its sha256 now (for ``msib check``'s no drift).

    Templates are rendered as the engines render them; a controller file (``src``, a certificate)
    is hashed where it is, or None when it is not readable (or not set) here. Files the host
    writes itself (``installed_by``, e.g. the confirmed ruleset) have the sha256 of their template.
    """
    m = load(role, root)
    found: dict[str, ManagedFile] = {}
    rendered: dict[str, str] = {}

    def digest(kind: Kind, source: str) -> tuple[str | None, str]:
        if kind == "template":
            rendered.setdefault(source, render.render(role, source, ctx, root))
            return render.sha256(rendered[source]), f"template {source}"
        if kind == "file":
            return render.sha256(render.role_file(role, source, root)), f"file {source}"
        src = Path(os.path.expanduser(source))
        return (render.sha256(src.read_bytes()) if src.is_file() else None), f"controller file {src}"

    for spec in m.files.values():
        if not m.applies(spec.when, ctx):
            continue
        for item in m._items(spec, ctx):
            where = f"files.{spec.id}"
            if spec.installed_by:
                dest = m._fill(spec.dest, ctx, where)
                if dest:
                    found.setdefault(dest, ManagedFile(dest, *digest(spec.kind, spec.sources[0])))
                continue
            f = m.install_file(spec.id, ctx, item)
            if f is not None:
                found[f.dest] = ManagedFile(f.dest, *digest(f.kind, f.source))
            elif len(spec.sources) == 1:  # always installed (the preflight demands its source): not comparable here
                dest = m._fill(spec.dest, {**ctx, "item": item}, where)
                if dest:
                    found[dest] = ManagedFile(dest, None, f"controller file {spec.sources[0]} (not set here)")
    return sorted(found.values(), key=lambda f: f.path)
