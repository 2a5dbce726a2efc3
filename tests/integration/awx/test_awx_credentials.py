"""The job template's two credentials as AWX injects them (awxsim): the subclouds' Machine
credential answered on runner's prompt channel, and the "StarlingX system controller" custom
credential of awx/awx-credentials.yml - its key file (environment variable) and sudo password
(extra var, !unsafe) reach the system controller host of the example inventory source
(awx/project/inventory/subclouds.yml) and no other host, and the subclouds' password never
reaches the system controller. A probe action plugin reports what
each host's connection would use (digests, no secret in the job's events); nothing connects."""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
from pathlib import Path
from typing import Any

import awxsim
import pytest
import yaml

from tests.conftest import ROOT

# Also run on every supported ansible-core (scripts/core-matrix): variable precedence of the
# connection and become passwords, and the inventory export of the system controller's vars.
pytestmark = pytest.mark.core_matrix

SOURCE_PATH = "inventory/subclouds.yml"
SUBCLOUDS_PASSWORD = "Machine-Cred-Pw-4417"
SC_BECOME_PASSWORD = "Sc-{{ Sudo }}-Pw-9051"  # never templated: AWX marks it !unsafe
SC_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nbm90IGEga2V5\n-----END OPENSSH PRIVATE KEY-----"

PROBE = """
import hashlib
from ansible.plugins.action import ActionBase


def digest(value):
    return hashlib.sha256(value.encode()).hexdigest() if value else ""


class ActionModule(ActionBase):
    def run(self, tmp=None, task_vars=None):
        return {
            "connection_password": digest(self._play_context.password),
            "become_password": digest(self._play_context.become_pass),
            "private_key_file": self._connection.get_option("private_key_file") or "",
            "remote_user": self._connection.get_option("remote_user") or "",
        }
"""
PLAYBOOK = """
- name: What each host's connection would use
  hosts: all
  gather_facts: false
  become: true
  tasks:
    - name: Probe
      probe:
"""


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The example AWX project with the example registry (loopback addresses: nothing leaves
    this machine even by mistake), the probe playbook and its action plugin."""
    project = tmp_path / "scm" / "project"
    shutil.copytree(ROOT / "awx" / "project", project)
    registry = (ROOT / "inventory" / "registry.yml").read_text().replace("192.0.2.", "127.0.2.")
    (project / "inventory" / "registry.yml").write_text(registry)
    source = (project / SOURCE_PATH).read_text().replace("192.0.2.", "127.0.2.")
    (project / SOURCE_PATH).write_text(source)
    (project / "probe.yml").write_text(PLAYBOOK)
    (project / "action_plugins").mkdir()
    (project / "action_plugins" / "probe.py").write_text(PROBE)
    return project


def credential_type(name: str) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "awx" / "awx-credentials.yml").read_text())
    return next(t for t in data["credential_types"] if t["name"] == name)


def probe_results(job: awxsim.Job) -> dict[str, dict[str, Any]]:
    return {
        e["event_data"]["host"]: e["event_data"]["res"]
        for e in job.events
        if e.get("event") == "runner_on_ok" and e["event_data"].get("task") == "Probe"
    }


@pytest.mark.parametrize("sc_become", [SC_BECOME_PASSWORD, ""], ids=["sc-sudo-password", "none"])
def test_each_host_gets_its_own_credential(project: Path, tmp_path: Path, sc_become: str) -> None:
    env = awxsim.base_env(str(ROOT / ".venv" / "collections"))
    # the sync: the registry from the source variables, relative to the source file; the system
    # controller's lookups are kept as written (the job renders them)
    export = awxsim.sync_inventory(
        project, SOURCE_PATH, {"DCPRESTAGE_REGISTRY": "registry.yml"}, env, tmp_path / "out.json"
    )
    sc_vars = yaml.safe_load((project / SOURCE_PATH).read_text())["system_controller"]["vars"]
    assert export["system_controller"]["vars"] == sc_vars
    inputs = {"ssh_key_data": SC_KEY, "become_password": sc_become}
    job, params = awxsim.prepare_job(
        tmp_path / "jobs", 61, project, "probe.yml", export, extra_vars={},
        password=SUBCLOUDS_PASSWORD,
        credentials=[(credential_type("StarlingX system controller"), inputs)],
    )  # fmt: skip
    key_file = Path(params["envvars"]["DCPRESTAGE_SC_SSH_KEY_FILE"])
    awxsim.run_job(job, params, env)
    assert (job.status, job.rc) == ("successful", 0), job.stdout()[-3000:]
    results = probe_results(job)
    subclouds = set(export["_meta"]["hostvars"])
    assert export["system_controller"]["hosts"] == ["system-controller"]
    assert set(results) == subclouds | {"system-controller"}
    # the system controller: its key file (0600, the credential's key), its own sudo password (or
    # none), and not the subclouds' password for ssh
    sc = results["system-controller"]
    assert sc["private_key_file"] == str(key_file)
    assert sc["remote_user"] == "sysadmin"
    assert sc["connection_password"] == ""
    assert sc["become_password"] == (digest(sc_become) if sc_become else "")
    # every subcloud: the Machine credential's password for ssh and sudo, never the system
    # controller's key or sudo password
    for name in subclouds:
        assert results[name] == {
            **results[name],
            "connection_password": digest(SUBCLOUDS_PASSWORD),
            "become_password": digest(SUBCLOUDS_PASSWORD),
            "private_key_file": "",
        }, name
    # AWX's key file: in the job's private data dir, 0600, with the key (and a final newline)
    assert key_file.parent == job.private_data_dir / "env"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text() == SC_KEY + "\n"
    # the sudo password: only in the injector's extra vars file (0400, removed with the job's
    # private data dir), not in runner's artifacts or the job's events
    holding = [p for p in job.private_data_dir.rglob("*")
               if p.is_file() and SC_BECOME_PASSWORD.encode() in p.read_bytes()]  # fmt: skip
    if sc_become:
        (extra_vars_file,) = holding
        assert extra_vars_file.parent == job.private_data_dir / "env"
        assert stat.S_IMODE(extra_vars_file.stat().st_mode) == 0o400
        assert f"-e @{extra_vars_file}" in " ".join(
            json.loads((job.artifacts / "command").read_text())["command"]
        )
    else:
        assert holding == []
    assert json.dumps(job.events).count(SUBCLOUDS_PASSWORD) == 0
