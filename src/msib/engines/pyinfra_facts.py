"""pyinfra facts read once per host: a batch of facts in one command, kept until the host changes.

pyinfra 3 runs one command (one SSH channel, one sudo) per fact it is asked for, and asks again
when it executes each operation: a converged 6-appliance deploy read 256 facts at ~90 ms each
(docs/deploy.md). Here a host's facts are read in ONE command (:func:`prefetch`, each fact's own
command and parser, stock or msib's) and remembered; the memory is dropped the moment anything
but a fact runs on that host (a command, an upload), so an operation never sees a stale fact.
A fact not prefetched is read as pyinfra reads it, then remembered the same way.

Runs inside the pyinfra worker only; relies on pyinfra 3.10's fact internals (pinned).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyinfra.api import facts as pyfacts
from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS
from pyinfra.api.command import StringCommand

#: A wanted fact: its class and keyword arguments, e.g. ``(File, {"path": "/etc/x"})``.
Wanted = tuple[type, dict[str, Any]]


@dataclass
class _HostFacts:
    values: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    reading: bool = False  # a fact's command is running: it does not invalidate
    reads: int = 0  # fact commands run on the host (one per prefetch batch)


def _key(state: Any, host: Any, cls: type, args: Sequence[Any] | None,
         kwargs: dict[str, Any] | None) -> tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]]:
    """The memo key of a fact (its class and normalised arguments), with its fact and global kwargs."""
    fact_kwargs, global_kwargs = pyfacts._handle_fact_kwargs(state, host, cls, args, kwargs)
    fact_kwargs.pop("self", None)  # getcallargs names the bound fact instance: never part of the key
    return (cls, repr(sorted(fact_kwargs.items()))), fact_kwargs, global_kwargs


class FactMemo:
    """Remembered facts of every host of one pyinfra State; :meth:`attach` before any fact is read."""

    def __init__(self, state: Any) -> None:
        self.state = state
        self.hosts: dict[str, _HostFacts] = {}

    def attach(self, host: Any) -> None:
        """Route `host`'s fact reads through the memo and drop the memo when the host changes."""
        mine = self.hosts.setdefault(host.name, _HostFacts())
        run_shell_command, put_file = host.run_shell_command, host.put_file

        def get_fact(cls: Any, *args: Any, **kwargs: Any) -> Any:
            if issubclass(cls, pyfacts.ShortFactBase):
                return cls().process_data(get_fact(cls.fact, *args, **kwargs))
            key = _key(self.state, host, cls, args, kwargs)[0]
            if key not in mine.values:
                mine.reading = True
                mine.reads += 1
                try:
                    value = pyfacts.get_fact(self.state, host, cls, args=args, kwargs=kwargs)
                finally:
                    mine.reading = False
                if host in self.state.failed_hosts:
                    return value  # not remembered: the read failed
                mine.values[key] = value
            return mine.values[key]

        def changing_command(*args: Any, **kwargs: Any) -> Any:
            if not mine.reading:
                mine.values.clear()
            return run_shell_command(*args, **kwargs)

        def changing_upload(*args: Any, **kwargs: Any) -> Any:
            mine.values.clear()
            return put_file(*args, **kwargs)

        host.get_fact = get_fact
        host.msib_prefetch = lambda wanted: self.prefetch(host, wanted)  # deploy/_msib.role_manifest
        host.run_shell_command = changing_command
        host.put_file = changing_upload

    def reads(self, host: Any) -> int:
        """Fact commands run on `host` so far."""
        return self.hosts[host.name].reads if host.name in self.hosts else 0

    def prefetch(self, host: Any, wanted: Iterable[Wanted]) -> None:
        """Read every fact of `wanted` not yet remembered on `host` in one command.

        A fact whose part of the batch fails (non-zero status, a missing command) is left out:
        read on its own when asked, it gets pyinfra's own handling of the failure.
        """
        mine = self.hosts[host.name]
        todo: list[tuple[tuple[Any, ...], Any, str]] = []
        executor: dict[str, Any] = {}
        seen: set[tuple[Any, ...]] = set()
        for cls, kwargs in wanted:
            key, fact_kwargs, global_kwargs = _key(self.state, host, cls, None, kwargs)
            if key in mine.values or key in seen:
                continue
            fact = cls()
            if fact.shell_executable or fact.check_preconditions(self.state, host):
                continue
            seen.add(key)
            command = pyfacts._make_command(fact.command, dict(fact_kwargs))  # type: ignore[no-untyped-call]
            required = pyfacts._make_command(fact.requires_command, dict(fact_kwargs))  # type: ignore[no-untyped-call]
            if required:
                command = StringCommand("command -v", required, ">/dev/null 2>&1 && {", command, "; }")
            executor = {k: v for k, v in global_kwargs.items() if k in CONNECTOR_ARGUMENT_KEYS}
            todo.append((key, fact, command.get_raw_value() if isinstance(command, StringCommand) else command))
        if not todo:
            return
        mark = f"##MSIB-{uuid.uuid4().hex}##"
        script = "; ".join(f"echo '{mark} {i}'; ( {cmd} ) </dev/null; echo \"{mark} end $?\""
                           for i, (_, _, cmd) in enumerate(todo))
        mine.reading = True
        mine.reads += 1
        try:
            status, output = host.run_shell_command(StringCommand(script), print_output=False,
                                                    print_input=False, **executor)
        finally:
            mine.reading = False
        if not status:
            return
        for (key, fact, _), lines in zip(todo, _sections(output.stdout_lines, mark, len(todo)), strict=True):
            if lines is None:
                continue
            mine.values[key] = fact.process(lines) if lines else fact.default()


def _sections(stdout: list[str], mark: str, n: int) -> list[list[str] | None]:
    """Each fact's output lines from the batch, or None where its command failed."""
    out: list[list[str] | None] = [None] * n
    current: int | None = None
    lines: list[str] = []
    for line in stdout:
        if line.startswith(mark + " "):
            word = line[len(mark) + 1:].strip()
            if word.startswith("end"):
                if current is not None and word == "end 0":
                    out[current] = lines
                current, lines = None, []
            elif word.isdigit() and int(word) < n:
                current, lines = int(word), []
        elif current is not None:
            lines.append(line)
    return out
