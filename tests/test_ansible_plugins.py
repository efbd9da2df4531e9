"""The msib.appliances plugins in a real ansible-playbook run on this machine (a role of the test's own,
files written under a temp directory): preflight, config from the manifest (skipped, looped, idempotent,
check mode) and the manifest lookup."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    """A role `demo` whose manifest writes under tmp_path/out, and a play that runs it on localhost."""
    role = tmp_path / "roles" / "demo"
    for d in ("meta", "templates", "files", "defaults", "tasks", "vars"):
        (role / d).mkdir(parents=True)
    out = tmp_path / "out"
    (role / "defaults" / "main.yml").write_text(yaml.safe_dump(
        {"demo_dir": str(out), "demo_on": True, "demo_off": False, "demo_items": ["a.txt", "b.txt"],
         "demo_major": 1}))
    (role / "templates" / "conf.j2").write_text("name={{ msib_appliance.name }} dir={{ demo_dir }}\n"
                                                "release={{ msib_release }} suite={{ __demo_suites['1'] }}\n")
    for release in ("bookworm", "trixie"):  # the values of each release, taken by the host's facts
        (role / "vars" / f"{release}.yml").write_text(yaml.safe_dump({"__demo_suites": {"1": f"{release}-x"}}))
    (role / "files" / "a.txt").write_text("a\n")
    (role / "files" / "b.txt").write_text("b\n")
    (role / "meta" / "main.yml").write_text("dependencies: []\n")
    (role / "meta" / "manifest.yml").write_text("""
packages: {base: [one, two]}
package_releases: {base: ["__demo_suites.{demo_major}"]}
directories: [{path: "{demo_dir}", mode: "0750"}]
files:
  conf: {dest: "{demo_dir}/conf", template: conf.j2, mode: "0640", validate: /usr/bin/test -s %s, when: demo_on}
  disabled: {dest: "{demo_dir}/disabled", template: conf.j2, when: demo_off}
  items: {loop: demo_items, dest: "{demo_dir}/{item}", file: "{item}"}
services: [{unit: a.service}, {unit: b.service, running: false}]
preflight:
  what: demo host
  success: "demo {msib_appliance[name]}"
  rules: [{equals: [msib_appliance.role, demo], message: msib_appliance.role is not demo}]
""")
    (role / "vars" / "main.yml").write_text(
        "__demo_packages: \"{{ query('msib.appliances.manifest', 'demo', 'packages', 'base') }}\"\n")
    (role / "tasks" / "main.yml").write_text("""
- name: Preflight
  msib.appliances.preflight: {role: demo}
- name: Directories
  ansible.builtin.file: {path: "{{ item.path }}", state: directory, mode: "{{ item.mode }}"}
  loop: "{{ query('msib.appliances.manifest', 'demo', 'directories') }}"
- name: Conf
  msib.appliances.config: {role: demo, managed: conf}
- name: Disabled
  msib.appliances.config: {role: demo, managed: disabled}
- name: Items
  msib.appliances.config: {role: demo, managed: items, item: "{{ item }}"}
  loop: "{{ demo_items }}"
- name: Show
  ansible.builtin.debug:
    msg: "LOOKUP {{ __demo_packages }} {{ query('msib.appliances.manifest', 'demo', 'services', 'running') }}
      {{ lookup('msib.appliances.manifest', 'demo', 'dest', 'conf') }}
      {{ query('msib.appliances.manifest', 'demo', 'release', 'base') }}"
""")
    (tmp_path / "play.yml").write_text(yaml.safe_dump([{
        "name": "Demo", "hosts": "localhost", "connection": "local",
        # the host's release (its facts) chooses the role's vars/<release>.yml, as for the roles
        "gather_facts": "{{ with_facts | default(true) }}", "gather_subset": ["!all", "!min", "distribution"],
        "vars": {"msib_appliance": {"name": "here", "role": "demo"}},
        "roles": ["demo"]}]))
    return tmp_path


def _play(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MSIB_ROLES_DIR": str(root / "roles"), "ANSIBLE_ROLES_PATH": str(root / "roles"),
           "ANSIBLE_COLLECTIONS_PATH": str(REPO / "playbooks" / "collections"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_CONFIG": str(root / "none.cfg"), "ANSIBLE_LOCAL_TEMP": str(root / "tmp"),
           "ANSIBLE_HOME": str(root / "ansible-home")}
    return subprocess.run([str(PLAYBOOK), "-i", "localhost,", "-e", f"ansible_python_interpreter={sys.executable}",
                           str(root / "play.yml"), *args], capture_output=True, text=True, env=env, timeout=300,
                          cwd=root)


def test_the_plugins_install_what_the_manifest_says_once_and_idempotently(demo: Path) -> None:
    first = _play(demo)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    out = demo / "out"
    release = _machine_release()
    assert (out / "conf").read_text() == f"name=here dir={out}\nrelease={release} suite={release}-x\n"
    assert oct((out / "conf").stat().st_mode)[-3:] == "640"
    assert (out / "a.txt").read_text() == "a\n" and (out / "b.txt").read_text() == "b\n"
    assert not (out / "disabled").exists() and oct(out.stat().st_mode)[-3:] == "750"
    assert "skipping: [localhost]" in first.stdout.split("TASK [demo : Disabled]")[1].split("TASK")[0]
    assert f"LOOKUP ['one', 'two'] ['a.service'] {out}/conf ['{release}-x']" in first.stdout
    again = _play(demo)
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout[-2000:]
    (out / "conf").write_text("drift\n")
    check = _play(demo, "--check")
    assert check.returncode == 0 and "changed=1" in check.stdout and (out / "conf").read_text() == "drift\n"


def test_the_preflight_fails_the_host_with_its_rule(demo: Path) -> None:
    bad = _play(demo, "-e", '{"msib_appliance": {"name": "here", "role": "firewall"}}')
    assert bad.returncode != 0
    assert "localhost is not a usable demo host: msib_appliance.role is not demo" in bad.stdout
    assert not (demo / "out").exists()


def _machine_release() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip('"')
    raise AssertionError("this machine's os-release names no codename")


def test_without_the_hosts_release_the_plugins_refuse_clearly(demo: Path) -> None:
    bad = _play(demo, "-e", "with_facts=false")
    assert bad.returncode != 0
    assert "localhost: the host's Debian release is unknown" in bad.stdout
    assert not (demo / "out").exists()


def test_site_plan_text_in_msib_vars_is_data_never_a_template(demo: Path) -> None:
    """#14: `{{ lookup('pipe', ...) }}` in the inventory's msib_* values ran a command on the controller
    through the plugins' templating. msib_* values are data: they reach the file as the text they are."""
    pwned = [demo / "pwned-state-body", demo / "pwned-appliance", demo / "pwned-siem"]
    name = f"{{{{ lookup('pipe', 'touch {pwned[1]}') }}}}"
    (demo / "hosts.yml").write_text(yaml.safe_dump({"all": {
        "hosts": {"localhost": {"ansible_connection": "local", "msib_appliance": {"name": name, "role": "demo"}}},
        "vars": {"msib_state_body": f"{{{{ lookup('pipe', 'touch {pwned[0]}') }}}}",
                 "msib_siem": {"syslog": {"host": f"{{{{ lookup('pipe', 'touch {pwned[2]}') }}}}"}}}}}))
    play = yaml.safe_load((demo / "play.yml").read_text())
    del play[0]["vars"]  # the appliance comes from the inventory, as in a real run
    (demo / "play.yml").write_text(yaml.safe_dump(play))
    env = {**os.environ, "MSIB_ROLES_DIR": str(demo / "roles"), "ANSIBLE_ROLES_PATH": str(demo / "roles"),
           "ANSIBLE_COLLECTIONS_PATH": str(REPO / "playbooks" / "collections"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_CONFIG": str(demo / "none.cfg"), "ANSIBLE_LOCAL_TEMP": str(demo / "tmp"),
           "ANSIBLE_HOME": str(demo / "ansible-home")}
    run = subprocess.run([str(PLAYBOOK), "-i", str(demo / "hosts.yml"), "-e",
                          f"ansible_python_interpreter={sys.executable}", str(demo / "play.yml")],
                         capture_output=True, text=True, env=env, timeout=300, cwd=demo)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert [p for p in pwned if p.exists()] == []
    out = demo / "out"
    release = _machine_release()  # the text itself, installed as it is
    assert (out / "conf").read_text() == f"name={name} dir={out}\nrelease={release} suite={release}-x\n"


def test_no_task_or_play_templates_an_msib_variable() -> None:
    """msib_* values are never templated (plugin_utils/msib_context.py); a task that used one in a Jinja
    expression or a `when:` would template it again, so none does: the roles read them through msib.render."""
    import re

    files = [*REPO.glob("roles/*/tasks/*.yml"), *REPO.glob("roles/*/handlers/*.yml"), *REPO.glob("playbooks/*.yml")]
    assert len(files) > 10
    used = re.compile(r"\{[{%][^}]*\bmsib_|^\s*(?:when|until|changed_when|failed_when|loop):[^#\n]*\bmsib_", re.M)
    assert [str(f.relative_to(REPO)) for f in files if used.search(f.read_text(encoding="utf-8"))] == []
