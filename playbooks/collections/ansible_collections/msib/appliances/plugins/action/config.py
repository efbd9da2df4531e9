"""msib.appliances.config: install bytes rendered by msib, through ansible.builtin.copy.

Ansible does not render role templates itself: this plugin asks msib.render for the bytes (the
same call the pyinfra deploys make), writes them to a local temp file and hands that to the copy
action, which compares checksums, validates the temp file on the host and moves it into place.

With ``managed: ID`` the file's dest, source, mode, validate command, guard and condition come
from the role's ``meta/manifest.yml`` (msib.manifest); a file the manifest does not install on
this host (its ``when`` is false, no source is set) is skipped.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from ansible import constants as C
from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.msib.appliances.plugins.plugin_utils.msib_context import role_context

_COPY_ARGS = ("dest", "mode", "owner", "group", "validate")


class ActionModule(ActionBase):
    """Render with msib, install with copy."""

    TRANSFERS_FILES = True
    _VALID_ARGS = frozenset(("role", "managed", "item", "template", "file", "src", "guard", *_COPY_ARGS))

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        super().run(tmp, task_vars)
        args = dict(self._task.args)
        role = args.get("role")
        try:
            from msib import manifest, render
            from msib.engines import guards
            from msib.errors import MsibError
        except ImportError as exc:  # the controller runs Ansible from msib's own venv
            raise AnsibleActionFail(f"msib is not importable by this Ansible ({exc})") from None
        ctx: dict[str, Any] | None = None
        if role and args.get("managed"):
            try:
                ctx = role_context(self._templar, role, task_vars)
                spec = manifest.load(role).install_file(str(args["managed"]), ctx, args.get("item"))
            except MsibError as exc:
                raise AnsibleActionFail(str(exc)) from None
            if spec is None:
                return {"changed": False, "skipped": True,
                        "skip_reason": f"roles/{role}/meta/manifest.yml installs {args['managed']} not on this host"}
            args.update(spec.args())
        sources = [k for k in ("template", "file", "src") if args.get(k)]
        if not role or len(sources) != 1 or not args.get("dest"):
            raise AnsibleActionFail("msib.appliances.config needs role, and managed or dest and one of "
                                    "template, file, src")
        try:
            if args.get("template"):
                ctx = ctx if ctx is not None else role_context(self._templar, role, task_vars)
                data = render.render(role, args["template"], ctx).encode()
                if args.get("guard"):
                    guards.check(args["guard"], data.decode(), ctx)
            elif args.get("file"):
                data = render.role_file(role, args["file"])
            else:
                with open(os.path.expanduser(str(args["src"])), "rb") as fh:
                    data = fh.read()
        except (MsibError, OSError) as exc:
            raise AnsibleActionFail(str(exc)) from None

        new_task = self._task.copy()
        new_task.args.clear()
        new_task.args.update({k: args[k] for k in _COPY_ARGS if args.get(k) is not None})
        new_task.args.setdefault("mode", "0644")
        new_task.args.setdefault("owner", "root")
        new_task.args.setdefault("group", "root")
        local_tempdir = tempfile.mkdtemp(dir=C.DEFAULT_LOCAL_TMP)
        try:
            path = os.path.join(local_tempdir, os.path.basename(str(args["dest"])))
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            new_task.args.update({"src": path, "follow": False})
            copy_action = self._shared_loader_obj.action_loader.get(
                "ansible.legacy.copy", task=new_task, connection=self._connection,
                play_context=self._play_context, loader=self._loader, templar=self._templar,
                shared_loader_obj=self._shared_loader_obj)
            result: dict[str, Any] = copy_action.run(task_vars=task_vars)
        finally:
            shutil.rmtree(local_tempdir, ignore_errors=True)
            self._remove_tmp_path(self._connection._shell.tmpdir)
        result["sha256"] = render.sha256(data)
        return result
