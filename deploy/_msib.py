"""What the three deploys share: the render context, one file operation, the commit facts.

The context is built exactly as the Ansible plugin builds it (msib.render.context: the role's
defaults overlaid with the host's ``msib_*`` and ``<role>_*`` data), so both engines install the
same bytes. :func:`config` uploads to a temp file beside the destination, validates it on the
host, then moves it into place; a converged file is a no-op.
"""

from __future__ import annotations

import shlex
import subprocess
from io import BytesIO
from pathlib import Path
from typing import Any

import yaml
from pyinfra.api.command import FileUploadCommand, FunctionCommand, StringCommand
from pyinfra.api.exceptions import DeployError, OperationError
from pyinfra.api.facts import FactBase
from pyinfra.api.operation import operation
from pyinfra.context import host
from pyinfra.facts.files import File, Sha256File

from msib import render
from msib.engines import guards

_MODES = ("0600", "0640", "0644", "0700", "0750", "0755")
_GUARDS = ("nft_management",)


def role_context(role: str) -> dict[str, Any]:
    """The render context of `role` for the current host (defaults + msib_* + <role>_*)."""
    return render.context(role, host.data.dict())  # type: ignore[no-untyped-call]


def role_vars(role: str) -> dict[str, Any]:
    """The role's internal vars (``roles/<role>/vars/main.yml``): package lists and the like."""
    path = render.roles_dir() / role / "vars" / "main.yml"
    data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return data or {}


def require(condition: bool, message: str) -> None:
    """Stop the deploy for this host with `message` when `condition` is false (preflight)."""
    if not condition:
        raise DeployError(f"{host.name}: {message}")


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
    if mode not in _MODES:
        raise OperationError(f"mode must be one of {', '.join(_MODES)}, got {mode!r}")
    if guard is not None and guard not in _GUARDS:
        raise OperationError(f"guard must be one of {', '.join(_GUARDS)}, got {guard!r}")
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
        yield FileUploadCommand(BytesIO(data), tmp)
        yield StringCommand(f"chown {user}:{group} {q_tmp} && chmod {mode} {q_tmp}")
        if validate:
            check = validate.replace("%s", q_tmp)
            yield StringCommand(f"{check} >/dev/null || {{ rc=$?; rm -f {q_tmp}; exit $rc; }}")
        yield StringCommand(f"mv -f {q_tmp} {q_dest}")
        return
    assert info
    converged = True
    if str(info["mode"]).zfill(4) != mode.zfill(4):
        converged = False
        yield StringCommand(f"chmod {mode} {q_dest}")
    if info["user"] != user or info["group"] != group:
        converged = False
        yield StringCommand(f"chown {user}:{group} {q_dest}")
    if converged:
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
    """An ssh command line that opens a NEW connection (no multiplexing), strict host keys."""
    argv = ["ssh"]
    if data.get("ssh_config_file"):
        argv += ["-F", str(data["ssh_config_file"])]
    argv += ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "ControlMaster=no",
             "-o", "ControlPath=none", "-o", "ConnectTimeout=10"]
    if data.get("ssh_known_hosts_file"):
        argv += ["-o", f"UserKnownHostsFile={data['ssh_known_hosts_file']}"]
    if data.get("ssh_key"):
        argv += ["-i", str(data["ssh_key"])]
    if data.get("ssh_port"):
        argv += ["-p", str(data["ssh_port"])]
    target = str(data.get("ssh_hostname") or host.name)
    if data.get("ssh_user"):
        target = f"{data['ssh_user']}@{target}"
    return [*argv, target, "--", *remote]


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
