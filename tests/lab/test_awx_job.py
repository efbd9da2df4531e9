"""The collection as AWX/AAP run it: ansible-runner with a private data dir laid out as AWX lays out a job.

project/ holds the job templates' playbooks (each imports the collection's), inventory/ the inventory
plugin's source file (an msib inventory directory), env/extravars the job's variables, env/envvars its
settings, and the credentials are files the job's variables point to (as an AWX custom credential type
injects them): the SSH key and the collectors' TLS certificates and keys. The collection is built,
installed into the job's requirements_collections/ (what AWX's project sync does), and run against
fresh lab appliances: converged on the first run, nothing changed on the second, the check job reports
a drift and changes nothing, the update job converges too, and no secret reaches artifacts/.
Times are printed beside `msib deploy --engine ansible` on the same fresh appliances (README, docs).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import ssh
from msib import contract
from msib.lab import Lab

pytestmark = [pytest.mark.lab, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TARBALL = "msib-appliances-0.3.0.tar.gz"
OBJ = "198.18.16.100"  # obj-int-1, behind fw-int-1
DRIFTED = ("col-int-1", "/etc/rsyslog.conf")  # a file the collector role manages


def _empty_cfg(root: Path) -> Path:
    cfg = root / "empty.cfg"
    cfg.write_text("[defaults]\n")
    return cfg


def _job_dir(root: Path, inventory_dir: Path, lab_vars: dict[str, Any], lab: Lab) -> Path:
    """A private data dir as AWX writes one for a job of this project, inventory and credentials."""
    pdd = root / "job"
    project = pdd / "project"
    project.mkdir(parents=True)
    for book in ("deploy", "check", "update", "contain"):
        (project / f"{book}.yml").write_text(f"---\n- name: msib {book}\n  ansible.builtin.import_playbook: "
                                             f"msib.appliances.{book}\n")
    subprocess.run([REPO / "scripts" / "build-collection", "--output", root / "dist"], check=True,
                   capture_output=True, timeout=120)
    subprocess.run([BIN / "ansible-galaxy", "collection", "install", root / "dist" / TARBALL, "-p",
                    pdd / "requirements_collections"], check=True, capture_output=True, timeout=120,
                   env={**os.environ, "ANSIBLE_CONFIG": str(_empty_cfg(root))})
    (pdd / "inventory").mkdir()
    (pdd / "inventory" / "msib.yml").write_text(
        f"plugin: msib.appliances.inventory\ndirectory: {inventory_dir}\n")
    # credentials as files, 0600, the job's variables pointing to them (an AWX credential type's injector)
    creds = pdd / "env" / "credentials"
    tls = creds / "tls"
    tls.mkdir(parents=True, mode=0o700)
    cert_dir = Path(lab_vars["collector_cert_dir"])
    for src in [Path(lab_vars["collector_ca_file"]), *sorted(cert_dir.glob("col-*.pem")),
                *sorted(cert_dir.glob("col-*.key"))]:
        shutil.copy(src, tls / src.name)
        (tls / src.name).chmod(0o600)
    shutil.copy(lab.identity, creds / "ssh_key")
    (creds / "ssh_key").chmod(0o600)
    extravars = {
        "collector_ca_file": str(tls / Path(lab_vars["collector_ca_file"]).name),
        "collector_cert_dir": str(tls),
        "ansible_ssh_private_key_file": str(creds / "ssh_key"),
        "update_rules_source": str(REPO / "rulesets"),
        "update_vars_files": [str(REPO / "playbooks" / "vars" / "lab.yml")],
    }
    (pdd / "env" / "extravars").write_text(yaml.safe_dump(extravars))
    hosts = len(contract.load(inventory_dir).of(*contract.ROLE_GROUPS))
    (pdd / "env" / "envvars").write_text(yaml.safe_dump({
        "ANSIBLE_COLLECTIONS_PATH": str(pdd / "requirements_collections"),
        "ANSIBLE_ROLES_PATH": str(pdd / "no-roles"),
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_FORKS": str(max(hosts, 5)),
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_NOCOLOR": "1",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }))
    return pdd


def _job(pdd: Path, book: str, ident: str, cmdline: str | None = None) -> dict[str, Any]:
    import ansible_runner

    t0 = time.monotonic()
    r = ansible_runner.run(private_data_dir=str(pdd), playbook=f"{book}.yml", ident=ident, quiet=True,
                           cmdline=cmdline)
    return {"status": r.status, "rc": r.rc, "stats": r.stats or {}, "seconds": round(time.monotonic() - t0, 1)}


def _cli_deploy(inventory_dir: Path) -> dict[str, Any]:
    t0 = time.monotonic()
    out = subprocess.run([BIN / "msib", "deploy", "--inventory", inventory_dir, "--engine", "ansible", "--vars",
                          REPO / "playbooks" / "vars" / "lab.yml", "--json"], capture_output=True, text=True,
                         timeout=1800)
    return {"rc": out.returncode, "out": (out.stdout + out.stderr)[-3000:], "seconds": round(time.monotonic() - t0, 1)}


def _changed(run: dict[str, Any]) -> dict[str, int]:
    return {h: n for h, n in run["stats"].get("changed", {}).items() if h != "localhost"}


@pytest.fixture(scope="module")
def jobs(deploy_lab: Lab, inventory_dir: Path, lab_vars: dict[str, Any],
         tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    names = [a.name for a in contract.load(inventory_dir).of(*contract.LINUX_ROLES)]
    runs: dict[str, Any] = {"names": names}
    deploy_lab.reset(names)
    runs["cli_first"] = _cli_deploy(inventory_dir)
    runs["cli_second"] = _cli_deploy(inventory_dir)
    deploy_lab.reset(names)
    pdd = _job_dir(tmp_path_factory.mktemp("awx"), inventory_dir, lab_vars, deploy_lab)
    runs["pdd"] = pdd
    runs["deploy_first"] = _job(pdd, "deploy", "deploy-1")
    runs["deploy_second"] = _job(pdd, "deploy", "deploy-2")
    runs["check_clean"] = _job(pdd, "check", "check-1")
    host, path = DRIFTED
    before = ssh(deploy_lab, host, f"sha256sum {path}")
    ssh(deploy_lab, host, f"echo '# drift' >> {path}")
    drifted = ssh(deploy_lab, host, f"sha256sum {path}")
    runs["check_drift"] = _job(pdd, "check", "check-2")
    runs["drift"] = {"before": before, "drifted": drifted, "after_check": ssh(deploy_lab, host, f"sha256sum {path}")}
    runs["deploy_repair"] = _job(pdd, "deploy", "deploy-3")
    runs["drift"]["after_repair"] = ssh(deploy_lab, host, f"sha256sum {path}")
    runs["update_first"] = _job(pdd, "update", "update-1")
    runs["update_second"] = _job(pdd, "update", "update-2")
    # the contain job template's survey answers, as AWX passes them (extra vars on the command line)
    survey = f"-e contain_ip={OBJ} -e contain_ttl=10m -e contain_reason=awx-drill"
    runs["contain_first"] = _job(pdd, "contain", "contain-1", survey)
    blocked = "nft -j list set inet msib_contain msib_blocked"
    runs["contained"] = f'"val": "{OBJ}"' in ssh(deploy_lab, "fw-int-1", blocked)
    runs["contain_second"] = _job(pdd, "contain", "contain-2", survey)
    runs["release"] = _job(pdd, "contain", "contain-3", f"-e contain_release={OBJ}")
    runs["released"] = f'"val": "{OBJ}"' not in ssh(deploy_lab, "fw-int-1", blocked)
    print("\nAWX-style job times (s):", json.dumps({k: v["seconds"] for k, v in runs.items()
                                                     if isinstance(v, dict) and "seconds" in v}))
    return runs


def test_cli_baseline_converges(jobs: dict[str, Any]) -> None:
    assert jobs["cli_first"]["rc"] == 0 and jobs["cli_second"]["rc"] == 0, jobs["cli_first"]


def test_deploy_job_converges_then_changes_nothing(jobs: dict[str, Any]) -> None:
    first, second = jobs["deploy_first"], jobs["deploy_second"]
    assert first["status"] == "successful", first
    assert set(_changed(first)) == set(jobs["names"]) and all(_changed(first).values()), first
    assert second["status"] == "successful", second
    assert _changed(second) == {} and not second["stats"].get("failures"), second
    assert set(second["stats"]["ok"]) >= set(jobs["names"])


def test_check_job_reports_drift_and_changes_nothing(jobs: dict[str, Any]) -> None:
    assert jobs["check_clean"]["status"] == "successful", jobs["check_clean"]
    assert _changed(jobs["check_clean"]) == {}, jobs["check_clean"]
    drift = jobs["check_drift"]
    assert drift["status"] == "successful", drift
    assert set(_changed(drift)) == {DRIFTED[0]}, drift
    d = jobs["drift"]
    assert d["drifted"] != d["before"] and d["after_check"] == d["drifted"]
    assert d["after_repair"] == d["before"]
    assert set(_changed(jobs["deploy_repair"])) == {DRIFTED[0]}, jobs["deploy_repair"]


def test_update_job_converges_then_changes_nothing(jobs: dict[str, Any]) -> None:
    first, second = jobs["update_first"], jobs["update_second"]
    assert first["status"] == "successful", first
    assert second["status"] == "successful", second
    assert second["stats"]["changed"] == {}, second
    # the rule set step ran (not skipped) on the controller
    assert second["stats"]["ok"].get("localhost"), second


def test_contain_job_blocks_once_then_releases(jobs: dict[str, Any]) -> None:
    first, second, release = jobs["contain_first"], jobs["contain_second"], jobs["release"]
    assert first["status"] == "successful" and first["stats"]["changed"].get("localhost"), first
    assert jobs["contained"]
    assert second["status"] == "successful" and second["stats"]["changed"] == {}, second
    assert release["status"] == "successful" and release["stats"]["changed"].get("localhost"), release
    assert jobs["released"]


def test_no_secret_in_artifacts(jobs: dict[str, Any], deploy_lab: Lab, lab_vars: dict[str, Any]) -> None:
    """Every private key's body (SSH, CA, collectors', SIEM) and the SIEM API password are absent from every
    file runner wrote (its job events, stdout, and the command with the job's environment)."""
    keys = [deploy_lab.identity, *Path(lab_vars["collector_cert_dir"]).glob("*.key")]
    secrets = {str(k): [ln for ln in k.read_text().splitlines() if ln and not ln.startswith("-----")] for k in keys}
    assert all(secrets.values()) and len(keys) >= 3
    siem = deploy_lab.state_dir / "siem" / "credentials.env"
    if siem.is_file():  # the lab SIEM's API password, when the lab has provisioned one
        secrets[str(siem)] = [ln.split("=", 1)[1] for ln in siem.read_text().splitlines()
                              if ln.startswith("MSIB_SIEM_PASSWORD=")]
    artifacts = jobs["pdd"] / "artifacts"
    files = [p for p in artifacts.rglob("*") if p.is_file() and not p.is_symlink()]
    assert len(files) > 20
    leaks = [(str(f), k) for f in files for k, lines in secrets.items()
             if any(ln in f.read_text(errors="replace") for ln in lines)]
    assert leaks == []
