"""What ``apt-get update`` says about a host's repositories: those apt refuses, and why (the apt preflight).

``msib update --packages`` refreshes every host's package lists first and reads what apt said:
a repository whose signature apt rejects (Debian 13's apt refuses keys bound with SHA-1 since
2026-02-01), that is not signed, has no Release file or cannot be fetched is not used, so an
upgrade would go on with stale or missing lists. Such a host stops the run before any upgrade.

Example:
    >>> out = ("W: OpenPGP signature verification failed: http://r.example/repo msib InRelease: Sub-process "
    ...        "/usr/bin/sqv returned an error code (1), error message is: Signing key on 5731 is not bound: "
    ...        "because: Policy rejected non-revocation signature (PositiveCertification) requiring second "
    ...        "pre-image resistance   because: SHA1 is not considered secure since 2026-02-01T00:00:00Z\\n"
    ...        "E: The repository 'http://r.example/repo msib InRelease' is not signed.\\n")
    >>> [(r.repository, r.reason) for r in refused_repositories(out)]
    [('http://r.example/repo msib InRelease', 'SHA1 is not considered secure since 2026-02-01T00:00:00Z')]
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# "W: <what>: <repository>: <detail>" as apt 2.6 (gpgv) and apt 3 (sqv) say a signature failed
_SIGNATURE = re.compile(r"^W: (?:OpenPGP signature verification failed|GPG error): (\S+ \S+ \S+): (.*)$")
# "E: The repository '<repository>' is not signed." / "... does not have a Release file."
_REPOSITORY = re.compile(r"^[EW]: The repository '([^']+)' (is not signed|does not have a Release file|"
                         r"is no longer signed)\.?")
# "E: Failed to fetch <url>  <detail>" (apt 3), "W: Failed to fetch ..." (apt 2.6)
_FETCH = re.compile(r"^[EW]: Failed to fetch (\S+)\s+(.*)$")


@dataclass(frozen=True)
class Refusal:
    """A repository apt will not use, and apt's own reason (its last "because:" when it gives several)."""

    repository: str
    reason: str

    def as_json(self) -> dict[str, str]:
        return {"repository": self.repository, "reason": self.reason}


def _reason(detail: str) -> str:
    parts = [p.strip() for p in re.split(r"\bbecause:", detail) if p.strip()]
    text = parts[-1] if parts else detail.strip()
    return " ".join(text.split())[:300]


def refused_repositories(output: str) -> list[Refusal]:
    """Every repository that ``apt-get update`` output (stdout and stderr) says apt refuses, each once.

    >>> refused_repositories("E: The repository 'http://198.18.0.1/x y Release' does not have a Release file.")
    [Refusal(repository='http://198.18.0.1/x y Release', reason='does not have a Release file')]
    >>> refused_repositories("Hit:1 http://deb.debian.org/debian trixie InRelease\\nReading package lists...")
    []
    """
    found: dict[str, str] = {}
    for line in output.splitlines():
        line = line.strip()
        if m := _SIGNATURE.match(line):
            found[m.group(1)] = _reason(m.group(2))
        elif m := _REPOSITORY.match(line):
            found.setdefault(m.group(1), m.group(2))
        elif m := _FETCH.match(line):
            found.setdefault(m.group(1), _reason(m.group(2)) or "cannot be fetched")
    return [Refusal(repo, reason) for repo, reason in found.items()]
