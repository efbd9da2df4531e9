"""The msib.appliances collection as AWX/AAP take it: built, installed into a clean path, its playbooks
resolved from there, its inventory plugin, ansible-test sanity, and the execution environment's build context."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
EXAMPLE = REPO / "inventories" / "examples"
TARBALL = "msib-appliances-0.3.0.tar.gz"


def _env(collections: Path, **extra: str) -> dict[str, str]:
    """Ansible with only `collections` and no roles path: what an execution environment has."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    cfg = collections.parent / "ansible.cfg"  # empty: none of the repository's settings
    cfg.write_text("[defaults]\n")
    env.update(ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_ROLES_PATH=str(collections / "no-roles"),
               ANSIBLE_CONFIG=str(cfg), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", **extra)
    return env


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """scripts/build-collection's tarball and tree, and the tarball installed into a clean path."""
    root = tmp_path_factory.mktemp("collection")
    subprocess.run([REPO / "scripts" / "build-collection", "--output", root / "dist", "--tree", root / "tree"],
                   check=True, capture_output=True, timeout=120)
    installed = root / "installed"
    subprocess.run([BIN / "ansible-galaxy", "collection", "install", root / "dist" / TARBALL, "-p", installed],
                   check=True, capture_output=True, timeout=120, env=_env(installed))
    return {"tarball": root / "dist" / TARBALL, "tree": root / "tree", "installed": installed, "root": root}


def test_tarball_holds_real_files_of_the_one_copy(built: dict[str, Path]) -> None:
    with tarfile.open(built["tarball"]) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert not [m.name for m in members.values() if m.issym() or m.islnk()], "links in the tarball"
        for role in ("apt_proxy", "collector", "ids_sensor", "firewall"):
            for part in ("tasks/main.yml", "meta/manifest.yml", "defaults/main.yml"):
                got = tar.extractfile(members[f"roles/{role}/{part}"])
                assert got is not None and got.read() == (REPO / "roles" / role / part).read_bytes()
        for book in ("deploy", "check", "update", "contain", "collector", "ids_sensor", "firewall"):
            assert f"playbooks/{book}.yml" in members
        got = tar.extractfile(members["playbooks/deploy.yml"])
        assert got is not None and got.read() == (REPO / "playbooks" / "site.yml").read_bytes()
        for plugin in ("action/config.py", "modules/config.py", "action/preflight.py", "lookup/manifest.py",
                       "inventory/inventory.py"):
            assert f"plugins/{plugin}" in members
        manifest = json.load(tar.extractfile(members["MANIFEST.json"]))  # type: ignore[arg-type]
    assert manifest["collection_info"]["namespace"] == "msib" and manifest["collection_info"]["name"] == "appliances"


def test_installed_playbooks_run_the_collection_roles(built: dict[str, Path], tmp_path: Path) -> None:
    """Short role names in the playbooks resolve to the collection's own roles, with no roles path."""
    out = subprocess.run([BIN / "ansible-playbook", "-i", EXAMPLE / "out" / "hosts.yml", "msib.appliances.deploy",
                          "--list-tasks"], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env=_env(built["installed"]))
    assert out.returncode == 0, out.stderr
    for role in ("apt_proxy", "collector", "ids_sensor", "firewall"):
        assert f"msib.appliances.{role} : " in out.stdout
    for book in ("check", "update", "contain"):
        syntax = subprocess.run([BIN / "ansible-playbook", "-i", EXAMPLE / "out" / "hosts.yml",
                                 f"msib.appliances.{book}", "--syntax-check"], capture_output=True, text=True,
                                timeout=120, cwd=tmp_path, env=_env(built["installed"]))
        assert syntax.returncode == 0, syntax.stderr


def test_installed_collection_reads_its_own_roles(built: dict[str, Path], tmp_path: Path) -> None:
    """An installed collection's plugins read the role files it carries, not a checkout's (an EE has none)."""
    installed = built["root"] / "own-roles"
    shutil.copytree(built["installed"], installed)
    manifest = installed / "ansible_collections/msib/appliances/roles/collector/meta/manifest.yml"
    manifest.write_text(manifest.read_text().replace("base: [rsyslog,", "base: [only-in-this-copy, rsyslog,"))
    (tmp_path / "play.yml").write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - ansible.builtin.debug:\n"
        "        msg: \"PKGS {{ query('msib.appliances.manifest', 'collector', 'packages', 'base') | join(',') }}\"\n")
    env = _env(installed)
    env.pop("MSIB_ROLES_DIR", None)
    out = subprocess.run([BIN / "ansible-playbook", "play.yml"], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "PKGS only-in-this-copy,rsyslog," in out.stdout


def _inventory(built: dict[str, Path], source: Path) -> tuple[int, dict[str, object], str]:
    out = subprocess.run([BIN / "ansible-inventory", "-i", source, "--list"], capture_output=True, text=True,
                         timeout=120, cwd=source.parent, env=_env(built["installed"]))
    return out.returncode, json.loads(out.stdout) if out.returncode == 0 else {}, out.stderr


def test_inventory_plugin_reads_the_directory_as_hosts_yml_does(built: dict[str, Path], tmp_path: Path) -> None:
    directory = tmp_path / "inv"
    shutil.copytree(EXAMPLE / "out", directory)
    (tmp_path / "msib.yml").write_text("plugin: msib.appliances.inventory\ndirectory: inv\n")
    rc, got, err = _inventory(built, tmp_path / "msib.yml")
    assert rc == 0, err
    rc, want, err = _inventory(built, directory / "hosts.yml")
    assert rc == 0, err
    hostvars = got["_meta"]["hostvars"]  # type: ignore[index]
    assert {h: {k: v for k, v in hv.items() if k != "appliances_inventory_dir"} for h, hv in hostvars.items()} \
        == want["_meta"]["hostvars"]  # type: ignore[index]
    # a variable an inventory plugin sets is marked unsafe (never templated): ansible-inventory shows the wrapper
    assert {json.dumps(hv["appliances_inventory_dir"]) for hv in hostvars.values()} \
        == {json.dumps({"__ansible_unsafe": str(directory)})}
    assert {k: v for k, v in got.items() if k != "_meta"} == {k: v for k, v in want.items() if k != "_meta"}
    assert "fw-int-1" in got["firewall"]["hosts"] and "col-ext-1" in got["collector"]["hosts"]  # type: ignore[index]


def test_inventory_plugin_builds_from_site_plan_and_appendix(built: dict[str, Path], tmp_path: Path) -> None:
    shutil.copy(EXAMPLE / "site.yml", tmp_path / "site.yml")
    shutil.copy(EXAMPLE / "appendix-utf8.csv", tmp_path / "appendix.csv")
    (tmp_path / "sb.msib.yml").write_text(
        "plugin: msib.appliances.inventory\ndirectory: built\nsite: site.yml\nappendix: [appendix.csv]\n")
    rc, got, err = _inventory(built, tmp_path / "sb.msib.yml")
    assert rc == 0, err
    assert (tmp_path / "built" / "hosts.yml").is_file() and (tmp_path / "built" / "site.json").is_file()
    assert "col-int-1" in got["collector"]["hosts"]  # type: ignore[index]


def test_inventory_plugin_refuses_a_broken_directory_with_msibs_error(built: dict[str, Path], tmp_path: Path) -> None:
    directory = tmp_path / "inv"
    shutil.copytree(EXAMPLE / "out", directory)
    hosts = yaml.safe_load((directory / "hosts.yml").read_text())
    hosts["all"]["vars"]["msib_circuits"]["internal"]["networks"] = ["not-a-network"]
    (directory / "hosts.yml").write_text(yaml.safe_dump(hosts, allow_unicode=True))
    (tmp_path / "msib.yml").write_text("plugin: msib.appliances.inventory\ndirectory: inv\n")
    _, got, err = _inventory(built, tmp_path / "msib.yml")
    assert "inv/hosts.yml: all.vars.msib_circuits.internal.networks[0]: 'not-a-network' is not an IP address" in err
    assert "Traceback" not in err and not got.get("_meta", {}).get("hostvars")  # type: ignore[attr-defined]
    # as AWX syncs a source: an unparsed source fails the sync
    strict = subprocess.run([BIN / "ansible-inventory", "-i", tmp_path / "msib.yml", "--list"], capture_output=True,
                            text=True, timeout=120, env=_env(built["installed"], ANSIBLE_INVENTORY_UNPARSED_FAILED="1"))
    assert strict.returncode != 0


@pytest.mark.slow
def test_ansible_test_sanity_passes_with_the_documented_ignores(built: dict[str, Path]) -> None:
    """ansible-test sanity --local on the built tree (tests/sanity/ignore-2.21.txt says what is ignored, and why:
    the collection's README). Offline, ansible-test's get-pip download is replaced by ensurepip."""
    cache = Path.home() / ".ansible" / "test" / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    for name in ("get_pip_25_2.py",):
        if not (cache / name).exists():
            shutil.copy(REPO / "tests" / "data" / "ansible_test" / "get_pip.py", cache / name)
    where = built["tree"] / "ansible_collections" / "msib" / "appliances"
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    out = subprocess.run([BIN / "ansible-test", "sanity", "--local", "--python", py], capture_output=True, text=True,
                         timeout=1500, cwd=where, env=_env(built["installed"]))
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert "validate-modules" in out.stdout and "pylint" in out.stdout


def test_ee_build_context_holds_what_the_image_needs(tmp_path: Path) -> None:
    """scripts/build-ee: ansible-builder create's context (the image build itself needs the base image)."""
    out = subprocess.run([REPO / "scripts" / "build-ee", tmp_path / "ctx"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    ctx = tmp_path / "ctx"
    containerfile = (ctx / "Containerfile").read_text()
    assert 'EE_BASE_IMAGE="quay.io/centos/centos:stream9"' in containerfile
    assert 'ANSIBLE_INSTALL_REFS="ansible-core==2.21.5 ansible-runner==2.4.3"' in containerfile
    assert "pip install --no-deps /tmp/msib-wheels/*.whl" in containerfile
    with tarfile.open(ctx / "_build" / "collections" / TARBALL) as tar:
        assert "plugins/inventory/inventory.py" in tar.getnames()
    assert (ctx / "_build" / "wheels" / "msib-0.1.0-py3-none-any.whl").is_file()
    for name in ("requirements.txt", "requirements.yml", "bindep.txt"):
        assert (ctx / "_build" / name).read_bytes() == (REPO / "ee" / name).read_bytes()


def test_ee_python_pins_are_the_projects_pins() -> None:
    """ee/requirements.txt pins msib's runtime dependencies exactly as constraints.txt does."""
    def pins(text: str) -> dict[str, str]:
        return {m[1].lower(): m[2] for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+)", text, re.M)}

    ee, project = pins((REPO / "ee" / "requirements.txt").read_text()), pins((REPO / "constraints.txt").read_text())
    runtime = [re.split(r"[<>=!~ ;\[]", d)[0].lower() for d in
               __import__("tomllib").loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]]
    assert set(ee) == set(runtime) - {"ansible-core", "ansible-runner"}
    assert {k: v for k, v in ee.items() if project.get(k) != v} == {}
    ee_file = yaml.safe_load((REPO / "ee" / "execution-environment.yml").read_text())
    assert ee_file["dependencies"]["ansible_core"]["package_pip"] == f"ansible-core=={project['ansible-core']}"
    assert ee_file["dependencies"]["ansible_runner"]["package_pip"] == f"ansible-runner=={project['ansible-runner']}"
