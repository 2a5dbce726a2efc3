"""AWX jobs (awxsim: as AWX configures ansible-runner) of the real playbook and roles against lab
subclouds: one job of playbooks/prestage.yml from the work tree, and two slices at once of the
installed Galaxy artifact run from the example AWX project, from a directory outside the
repository with only the installed collection (no other collection) on the collections path.
Each checks the state dirs, the prestage_summary artifact, what landed on the
subclouds, and that no file of the jobs holds the password."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import awxsim
import pytest
import yaml

from tests.conftest import DCPRESTAGE, ROOT

pytestmark = pytest.mark.lab

RELEASE = "24.09"
SOURCE_PATH = "inventory/subclouds.yml"
MARKER = f"/opt/platform-backup/{RELEASE}/.ostree_rsync_completed"


def _project(lab, root: Path) -> Path:
    """The example AWX project, its inventory source pointed at the lab's system controller
    (address, ssh options, interpreter); its credentials still come from the job's "StarlingX
    system controller" credential, as the example says."""
    project = root / "scm" / "project"
    shutil.copytree(ROOT / "awx" / "project", project)
    source = yaml.safe_load((project / SOURCE_PATH).read_text())
    lab_vars = yaml.safe_load(Path(lab.inventory).read_text())["system_controller"]["vars"]
    source["system_controller"]["vars"].update({
        key: lab_vars[key]
        for key in ("ansible_host", "ansible_ssh_common_args", "ansible_python_interpreter")
    })  # fmt: skip
    (project / SOURCE_PATH).write_text(yaml.safe_dump(source))
    return project


def _sc_credential(lab) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The job template's "StarlingX system controller" credential, filled in for the lab."""
    data = yaml.safe_load((ROOT / "awx" / "awx-credentials.yml").read_text())
    kind = next(t for t in data["credential_types"] if t["name"] == "StarlingX system controller")
    key = Path(yaml.safe_load(Path(lab.inventory).read_text())["system_controller"]["vars"][
        "ansible_ssh_private_key_file"
    ]).read_text()  # fmt: skip
    return [(kind, {"ssh_key_data": key, "become_password": lab.sc_password})]


def _wipe(lab, clouds: list[str]) -> None:
    lab.reset(*clouds)


def _strategy(state_dir: Path) -> dict[str, Any]:
    return json.loads((state_dir / "strategy.json").read_text())


def _no_password(lab, *roots: Path) -> None:
    """Neither the subclouds' nor the system controller's password in any file of the job
    (output, artifacts, state), except the system controller's in the job's own input: the
    credential's injected extra vars file that AWX writes to env/ and removes with the job."""
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert lab.password.encode() not in data, path
                if path.parent != root / "env":
                    assert lab.sc_password.encode() not in data, path


def _answers(state_base: Path) -> dict[str, Any]:
    return {"prestage_state_dir": str(state_base), "release": RELEASE,
            "prestage_type": "for_install", "prestage_group": "", "max_parallel_subclouds": "",
            "subcloud_apply_type": "", "stop_on_failure": "false", "force": "false"}  # fmt: skip


def test_an_awx_job_of_the_work_tree_playbook_prestages_lab_subclouds(lab, tmp_path: Path) -> None:
    clouds = lab.subclouds[:3]
    _wipe(lab, clouds)
    env = awxsim.base_env(str(ROOT / ".venv" / "collections"))
    export = awxsim.sync_inventory(
        _project(lab, tmp_path), SOURCE_PATH, {"DCPRESTAGE_REGISTRY": str(lab.registry_file)},
        env, tmp_path / "output.json",
    )  # fmt: skip
    (tmp_path / "jobs").mkdir()
    state_base = tmp_path / "awx-state"
    job, params = awxsim.prepare_job(
        tmp_path / "jobs", 61, ROOT, "playbooks/prestage.yml", export,
        extra_vars=_answers(state_base), password=lab.password, limit=":".join(clouds),
        copy_project=False, credentials=_sc_credential(lab),
    )  # fmt: skip
    job = awxsim.run_job(job, params, env)
    assert (job.status, job.rc) == ("successful", 0), job.stdout()[-4000:]
    state_dir = state_base / "awx-job-61"
    made = _strategy(state_dir)
    assert made["strategy"]["state"] == "complete"
    assert {s["cloud"]: s["state"] for s in made["steps"]} == dict.fromkeys(clouds, "complete")
    summary = job.stats_event()["event_data"]["artifact_data"]["prestage_summary"]
    assert summary["counts"] == {"complete": 3, "failed": 0, "aborted": 0}
    assert (summary["failed"], summary["state_dir"]) == ([], str(state_dir))
    for cloud in clouds:
        assert lab.ssh(cloud, f"test -f {MARKER}", check=False).returncode == 0, cloud
        assert (state_dir / "logs" / f"{cloud}_playbook_output.log").is_file()
    _no_password(lab, job.private_data_dir, state_base)


def test_two_slices_of_the_installed_artifact_prestage_lab_subclouds(
    lab, installed: Path, tmp_path: Path
) -> None:
    clouds = lab.subclouds[3:6]
    _wipe(lab, clouds)
    outside = tmp_path / "elsewhere"  # not the repository: no ansible.cfg, no work tree
    outside.mkdir()
    env = awxsim.installed_env(installed)
    project = _project(lab, outside)
    export = awxsim.sync_inventory(
        project, SOURCE_PATH, {"DCPRESTAGE_REGISTRY": str(lab.registry_file)}, env,
        outside / "output.json",
    )  # fmt: skip
    (outside / "jobs").mkdir()
    state_base = outside / "awx-state"
    started = []
    for number, job_id in ((1, 72), (2, 73)):
        job, params = awxsim.prepare_job(
            outside / "jobs", job_id, project, "prestage.yml", export,
            extra_vars=_answers(state_base), password=lab.password, slice_number=number,
            slice_count=2, workflow_job_id=70, limit=":".join(clouds),
            credentials=_sc_credential(lab),
        )  # fmt: skip
        started.append((job, awxsim.start_job(params, env)))
    jobs = [awxsim.finish_job(job, process) for job, process in started]
    for job in jobs:
        assert (job.status, job.rc) == ("successful", 0), job.stdout()[-4000:]
        # the collection that ran is the installed one
        assert str(ROOT) not in job.stdout()
    by_name = sorted(export["_meta"]["hostvars"])
    workflow = state_base / "awx-workflow-70"
    shares = []
    for number, job in enumerate(jobs, start=1):
        state_dir = workflow / f"awx-job-{job.job_id}"
        share = [c for c in by_name[number - 1 :: 2] if c in clouds]
        shares += share
        made = _strategy(state_dir)
        assert made["strategy"]["state"] == "complete"
        assert {s["cloud"]: s["state"] for s in made["steps"]} == dict.fromkeys(share, "complete")
        summary = job.stats_event()["event_data"]["artifact_data"]["prestage_summary"]
        assert summary["counts"]["complete"] == len(share)
    assert sorted(shares) == sorted(clouds)
    for cloud in clouds:
        assert lab.ssh(cloud, f"test -f {MARKER}", check=False).returncode == 0, cloud
    merged = subprocess.run(
        [DCPRESTAGE, "-i", str(lab.inventory), "strategy-step", "list", "--merge",
         *(str(p) for p in sorted(workflow.iterdir())), "-f", "json"],
        capture_output=True, text=True, check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("DCPRESTAGE_")},
    )  # fmt: skip
    assert merged.returncode == 0, merged.stderr
    rows = json.loads(merged.stdout)
    assert [(r["cloud"], r["state"]) for r in rows] == [(c, "complete") for c in clouds]
    for job in jobs:
        _no_password(lab, job.private_data_dir)
    _no_password(lab, state_base)
