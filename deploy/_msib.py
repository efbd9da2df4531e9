"""What the deploys share: the render context, the role's manifest and preflight, one file operation.

The context is built exactly as the Ansible plugin builds it (msib.render.context: the role's
defaults overlaid with the host's ``msib_*`` and ``<role>_*`` data), so both engines install the
same bytes; what a role installs comes from its ``meta/manifest.yml`` (msib.manifest) and its
preflight is msib.preflight, as for Ansible. :func:`config` writes a temp file beside the
destination (0600, through the shell's stdin: never through /tmp), validates it on the host, then
moves it into place; a converged file is a no-op.
"""

from __future__ import annotations

import base64
import posixpath
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyinfra.api.command import FunctionCommand, StringCommand
from pyinfra.api.exceptions import OperationError
from pyinfra.api.facts import FactBase
from pyinfra.api.operation import operation
from pyinfra.context import host, state
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import Directory, File, Sha256File
from pyinfra.facts.server import Date, LinuxDistribution
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus
from pyinfra.operations import files
from pyinfra.operations.apt import APT_UPDATE_FILENAME

from msib import manifest, preflight, render
from msib.contract import Ssh
from msib.engines import guards
from msib.manifest import GUARDS, MODES, Manifest


def host_release() -> str:
    """The current host's Debian codename (``VERSION_CODENAME`` of its os-release), as Ansible's
    ``ansible_distribution_release`` says it.

    Raises:
        OperationError: the host does not say its codename.
    """
    meta = host.get_fact(LinuxDistribution)["release_meta"]
    codename = meta.get("VERSION_CODENAME") or meta.get("DISTRIB_CODENAME")
    if not codename:
        raise OperationError(f"{host.name}: the host does not say its Debian release (no VERSION_CODENAME "
                             "in /etc/os-release)")
    return str(codename)


def role_context(role: str) -> dict[str, Any]:
    """The render context of `role` for the current host (defaults + release values + msib_* + <role>_*).

    Under msib's worker, the host's release and every fact its deploy reads come in one command: the
    facts are listed for the release the site plan says (``msib_appliance.release``), while the
    release itself is still the host's own fact; a host on another release than planned reads what
    it misses in a second command (:func:`role_manifest`).
    """
    variables = host.data.dict()  # type: ignore[no-untyped-call]
    prefetch = getattr(host, "msib_prefetch", None)  # set by msib's pyinfra worker (pyinfra_facts)
    planned = (variables.get("msib_appliance") or {}).get("release")
    if prefetch is not None and planned:
        guess = render.context(role, variables, release=planned)
        prefetch([(LinuxDistribution, {}), *wanted_facts(role, manifest.load(role), guess, planned)])
    return render.context(role, variables, release=host_release())


def role_manifest(role: str, ctx: dict[str, Any]) -> Manifest:
    """The role's manifest, once its preflight passed for this host (else the host stops here).

    Raises:
        msib.preflight.PreflightError: the inventory does not describe a usable host of `role`.
    """
    preflight.check(role, ctx, host.name)
    m = manifest.load(role)
    prefetch = getattr(host, "msib_prefetch", None)  # set by msib's pyinfra worker (pyinfra_facts)
    if prefetch is not None:
        prefetch(wanted_facts(role, m, ctx, str(ctx["msib_release"])))
    return m


def wanted_facts(role: str, m: Manifest, ctx: dict[str, Any], release: str) -> list[tuple[type, dict[str, Any]]]:
    """Every fact the deploy of `role` reads on this host, so that all are read in one command.

    A fact missing here is still read (on its own, as pyinfra does); one listed but never asked
    for costs a line of output. The stock operations' facts: apt.packages (the update stamp, the
    date, the installed packages), files.directory/file, systemd.service (status and enabled).
    """
    wanted: list[tuple[type, dict[str, Any]]] = [(File, {"path": APT_UPDATE_FILENAME}), (Date, {}), (DebPackages, {})]
    for dep in m.depends:
        dep_ctx = render.context(dep, host.data.dict(), release=release)  # type: ignore[no-untyped-call]
        for f in manifest.load(dep).install_files(dep_ctx):
            wanted += [(File, {"path": f.dest}), (Sha256File, {"path": f.dest})]
    for f in m.install_files(ctx):
        wanted += [(File, {"path": f.dest}), (Sha256File, {"path": f.dest})]
    wanted += [(Directory, {"path": d.path}) for d in m.directories_for(ctx)]
    for p in m.placeholders_for(ctx):  # files.file reads the file and its parent directory
        wanted += [(File, {"path": p.path}), (Directory, {"path": posixpath.dirname(p.path)})]
    for unit in m.services_for(ctx):
        service = unit if "." in unit else f"{unit}.service"
        wanted += [(SystemdStatus, {"services": [service]}), (SystemdEnabled, {"services": [service]})]
    if role == "ids_sensor":  # suricata_major: the installed major against the one asked for
        wanted.append((SuricataVersion, {}))
    helper = m.install_file("commit_helper", ctx) if "commit_helper" in m.files else None
    if helper is not None:
        wanted.append((NftCommitStatus, {"helper": helper.dest}))
    return wanted


def install(name: str, role: str, file_id: str, ctx: dict[str, Any], item: Any = None) -> Any:
    """The :func:`config` operation of a managed file of the manifest; None when this host does not get it."""
    spec = manifest.load(role).install_file(file_id, ctx, item)
    if spec is None:
        return None
    return config(name=name, role=role, context=ctx, **spec.args())


def changed(*ops: Any) -> Callable[[], bool]:
    """An ``_if`` condition: one of `ops` changed (None entries, files not installed here, are left out).

    When the deploy runs it asks each operation whether it did change; in ``--check`` (nothing runs)
    whether it would, so that a conditional restart counts as a change only when what it depends on
    would change (msib.engines.pyinfra_session counts check mode with it).
    """
    chosen = [op for op in ops if op is not None]

    def condition() -> bool:
        return any(op.did_change() if op.is_complete() else bool(op.will_change) for op in chosen)

    return condition


def directories(what: str, m: Manifest, ctx: dict[str, Any]) -> None:
    """Create the role's directories (root-owned, the manifest's modes)."""
    for d in m.directories_for(ctx):
        files.directory(name=f"Create the {what} directory {d.path}", path=d.path, user="root", group="root",
                        mode=d.mode)


@operation()
def config(
    role: str,
    dest: str,
    template: str | None = None,
    file: str | None = None,
    src: str | None = None,
    mode: str = "0644",
    user: str = "root",
    group: str = "root",
    validate: str | None = None,
    guard: str | None = None,
    context: dict[str, Any] | None = None,
) -> Any:
    """Install a file rendered by msib (or a role file, or a controller file), validated first.

    + role: the role that owns the template or file
    + dest: where the file goes on the host
    + template: template under the role's templates/ (one of template, file, src)
    + file: file under the role's files/
    + src: a file on the controller, copied as it is (certificates, keys)
    + mode/user/group: ownership and permissions of the installed file
    + validate: host command that checks the temp file first; ``%s`` is its path
    + guard: a controller-side check of the rendered text (``nft_management``)
    + context: the render context (default: :func:`role_context`)

    **Examples:**

    .. code:: python

        config(name="Write the rsyslog configuration", role="collector",
               template="rsyslog.conf.j2", dest="/etc/rsyslog.conf",
               validate="/usr/sbin/rsyslogd -N1 -f %s")
    """
    if sum(x is not None for x in (template, file, src)) != 1:
        raise OperationError("config needs exactly one of template, file, src")
    if mode not in MODES:
        raise OperationError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if guard is not None and guard not in GUARDS:
        raise OperationError(f"guard must be one of {', '.join(GUARDS)}, got {guard!r}")
    if template is not None:
        ctx = context if context is not None else role_context(role)
        data = render.render(role, template, ctx).encode()
        if guard:
            guards.check(guard, data.decode(), ctx)
    elif file is not None:
        data = render.role_file(role, file)
    else:
        data = Path(str(src)).expanduser().read_bytes()
    want = render.sha256(data)
    info = host.get_fact(File, path=dest)
    if info is False:
        raise OperationError(f"{dest} exists and is not a regular file")
    have = host.get_fact(Sha256File, path=dest) if info else None
    q_dest = shlex.quote(dest)
    if have != want:
        tmp = f"{dest}.msib-tmp"
        q_tmp = shlex.quote(tmp)
        # straight into the destination's directory, through the stdin of the (sudo) shell, created
        # 0600: never pyinfra's upload to /tmp/pyinfra-<sha1> and `sudo cp` (a key readable there);
        # then own, validate and move into place in the same command (one sudo round trip); a refused
        # file is removed
        steps = [f"umask 077 && rm -f {q_tmp} && base64 -d > {q_tmp}",
                 f"chown {user}:{group} {q_tmp}", f"chmod {mode} {q_tmp}"]
        if validate:
            check = validate.replace("%s", q_tmp)
            steps.append(f"{{ {check} >/dev/null || {{ rc=$?; rm -f {q_tmp}; exit $rc; }}; }}")
        steps.append(f"mv -f {q_tmp} {q_dest}")
        yield StringCommand(" && ".join(steps), _stdin=base64.encodebytes(data).decode().splitlines())
        return
    assert info
    fixes = []
    if str(info["mode"]).zfill(4) != mode.zfill(4):
        fixes.append(f"chmod {mode} {q_dest}")
    if info["user"] != user or info["group"] != group:
        fixes.append(f"chown {user}:{group} {q_dest}")
    if fixes:
        yield StringCommand(" && ".join(fixes))
    else:
        host.noop(f"{dest} is already as rendered")


class NftCommitStatus(FactBase[str]):
    """Whether the staged ruleset is live and confirmed: ``applied``, ``pending`` or ``missing``.

    .. code:: python

        "applied"
    """

    def command(self, helper: str) -> str:
        return f"if [ -x {shlex.quote(helper)} ]; then {shlex.quote(helper)} status; else echo missing; fi"

    def process(self, output: list[str]) -> str:
        value = output[-1].strip() if output else "missing"
        return value if value in ("applied", "pending") else "missing"


def fresh_ssh_argv(data: dict[str, Any], remote: list[str]) -> list[str]:
    """An ssh command line that opens a NEW connection (no multiplexing), strict host keys.

    `data` is the host's pyinfra data (:meth:`msib.contract.Appliance.pyinfra_data`).
    """
    ssh = Ssh(user=data.get("ssh_user"), config_file=data.get("ssh_config_file"),
              known_hosts_file=data.get("ssh_known_hosts_file"), key_file=data.get("ssh_key"))
    port = ["-p", str(data["ssh_port"])] if data.get("ssh_port") else []
    return [*ssh.argv(fresh=True), *port, str(data.get("ssh_hostname") or host.name), "--", *remote]


def _confirm_over_fresh_ssh(state: Any, host: Any, helper: str) -> bool:
    data = host.data.dict()
    sudo = ["sudo", "-n"] if data.get("_sudo") else []
    proc = subprocess.run(fresh_ssh_argv(data, [*sudo, helper, "confirm"]), capture_output=True,
                          text=True, timeout=60)
    if proc.returncode != 0:
        host.log_styled(f"fresh SSH connection failed: the host rolls back by itself ({proc.stderr.strip()})",
                        fg="red")
        return False
    return True


@operation()
def commit_ruleset(helper: str, rollback_seconds: int) -> Any:
    """Apply the staged ruleset "commit confirmed": arm the timer, apply, confirm over fresh SSH.

    + helper: the host-side commit helper (msib-nft-commit)
    + rollback_seconds: seconds before the host restores the previous ruleset by itself
    """
    status = host.get_fact(NftCommitStatus, helper=helper)
    if status == "applied":
        host.noop("the staged ruleset is live and confirmed")
        return
    yield StringCommand(shlex.quote(helper), "apply", str(int(rollback_seconds)))
    yield FunctionCommand(_confirm_over_fresh_ssh, (helper,), {})


class SuricataVersion(FactBase[str | None]):
    """The installed Suricata's version (``8.0.8``), or None when there is none.

    .. code:: python

        "7.0.10"
    """

    def command(self) -> str:
        return "suricata -V 2>/dev/null || true"

    def process(self, output: list[str]) -> str | None:
        for line in output:
            words = line.split("version ", 1)
            if len(words) == 2 and words[1].strip():
                return words[1].split()[0]
        return None


@operation()
def suricata_major(major: int) -> Any:
    """Fail unless the installed Suricata is of major `major` (nothing is changed).

    + major: the major version the inventory asks for (ids_sensor_suricata_major)
    """
    version = host.get_fact(SuricataVersion)
    if version is None and not state.is_executing:
        host.noop("Suricata is not installed yet")
        return
    if version is None or version.split(".")[0] != str(major):
        raise OperationError(f"Suricata {version or '(none)'} is installed, ids_sensor_suricata_major is {major}: "
                             "a sensor changes major by a fresh install (docs/releases.md)")
    host.noop(f"Suricata {version} is major {major}")
    yield from ()
