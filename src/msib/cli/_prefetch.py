"""`msib inventory build ... APPENDIX...`: start reading the appendices before the command line loads.

Imported first by :mod:`msib.cli`, which is all it takes (:func:`start_from_argv` runs on import);
nothing heavy is imported here. The arguments are looked at
only as far as needed to know the files and the read limits; when anything is unexpected, nothing is
started (typer then parses the command line as always). See :mod:`msib.prefetch`.
"""

from __future__ import annotations

import sys
from pathlib import Path

#: `inventory build` options that take a value (the rest are flags).
_VALUED = frozenset({"--site", "--out", "--as-of", "--ssh-config", "--known-hosts", "--ssh-key", "--ssh-user",
                     "--max-file-mb", "--max-rows", "--max-columns", "--max-cell-chars"})
_LIMITS = {"--max-file-mb": "max_file_bytes", "--max-rows": "max_rows", "--max-columns": "max_columns",
           "--max-cell-chars": "max_cell_chars"}


def appendix_arguments(argv: list[str]) -> tuple[list[Path], dict[str, int]] | None:
    """The appendix files and read limits of an `inventory build` command line, or None."""
    args = list(argv)
    while args and args[0] == "--debug":
        args.pop(0)
    if args[:2] != ["inventory", "build"] or "--help" in args:
        return None
    paths: list[Path] = []
    limits: dict[str, int] = {}
    rest = args[2:]
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg == "--":
            paths += [Path(a) for a in rest[i + 1 :]]
            break
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if name in _VALUED and not eq:
                if i + 1 >= len(rest):
                    return None
                value = rest[i + 1]
                i += 1
            elif name not in _VALUED and (eq or name != "--strict"):
                return None
            if name in _LIMITS:
                if not value.isdigit():
                    return None
                limits[_LIMITS[name]] = int(value) << 20 if name == "--max-file-mb" else int(value)
        elif arg.startswith("-"):
            return None
        else:
            paths.append(Path(arg))
        i += 1
    return paths, limits


def start_from_argv(argv: list[str] | None = None) -> None:
    """Start reading the appendices of `msib inventory build` (sys.argv), if that is the command."""
    found = appendix_arguments(sys.argv[1:] if argv is None else argv)
    if not found or not found[0]:
        return
    from msib import prefetch

    prefetch.start(*found)


start_from_argv()
