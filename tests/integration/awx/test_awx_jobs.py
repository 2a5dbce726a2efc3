"""Jobs run the way AWX runs them (awxsim: the synced inventory as a script, env/extravars, the
Machine credential answered on runner's prompt channel, runner's own stdout callback, awx_job_id)
with the real first plays of playbooks/prestage.yml and the gated harness in place of the roles
(tests/conftest.py gated_playbook: the system controller's facts from a fixture module; nothing
contacts a host): a state dir per job, the prestage_summary artifact, survey answers
validated with clear messages, no password anywhere, and two slices at once merged by dcprestage.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awxsim
import pytest
import yaml

from tests.conftest import DCPRESTAGE, ROOT, Workspace, gated_playbook

# Also run on every supported ansible-core (scripts/core-matrix):
# the strategy and callback plugins as AWX runs them (the prestage_summary artifact).
pytestmark = pytest.mark.core_matrix

PASSWORD = "Awx-Job-Pw-8731"
SOURCE_PATH = "inventory/subclouds.yml"
SURVEY_DEFAULTS = {  # what the survey of awx/awx-import.yml sends when nothing is answered
    "release": "",
    "prestage_type": "for_install",
    "prestage_group": "",
    "max_parallel_subclouds": "",
    "subcloud_apply_type": "",
    "stop_on_failure": "false",
    "force": "false",
}


@dataclass
class Awx:
    ws: Workspace
    root: Path
    project: Path
    export: dict[str, Any]
    gates: Path
    state_base: Path
    env: dict[str, str]

    def job(self, job_id: int, answers: dict[str, Any] | None = None, **kwargs: Any):
        extra_vars = {"prestage_state_dir": str(self.state_base), **SURVEY_DEFAULTS,
                      **(answers or {})}  # fmt: skip
        return awxsim.prepare_job(
            self.root, job_id, self.project, "gated.yml", self.export,
            extra_vars=extra_vars, password=PASSWORD, **kwargs,
        )  # fmt: skip

    def run(self, job_id: int, answers: dict[str, Any] | None = None, **kwargs: Any):
        job, params = self.job(job_id, answers, **kwargs)
        return awxsim.run_job(job, params, self.env)

    def gate(self, cloud: str, outcome: str) -> None:
        (self.gates / cloud).write_text(outcome)


@pytest.fixture
def awx(workspace: Workspace, tmp_path: Path) -> Awx:
    project = tmp_path / "scm" / "project"
    shutil.copytree(ROOT / "awx" / "project", project)
    # the job's playbook: the real password and strategy plays, the harness's gated subcloud play
    # (its modules in library/, found next to the playbook)
    gated_playbook(project)
    # the example inventory source, with this workspace's system controller
    source = yaml.safe_load((project / SOURCE_PATH).read_text())
    source["system_controller"] = yaml.safe_load(workspace.config.read_text())["system_controller"]
    (project / SOURCE_PATH).write_text(yaml.safe_dump(source))
    env = awxsim.base_env(str(ROOT / ".venv" / "collections"))
    export = awxsim.sync_inventory(
        project, SOURCE_PATH, {"DCPRESTAGE_REGISTRY": str(workspace.registry)}, env,
        tmp_path / "output.json",
    )  # fmt: skip
    gates = tmp_path / "gates"
    gates.mkdir()
    for i in range(1, 25):
        (gates / f"subcloud{i}").write_text("ok")
    (tmp_path / "jobs").mkdir()
    return Awx(workspace, tmp_path / "jobs", project, export, gates, tmp_path / "awx-state",
               {**env, "DCPRESTAGE_TEST_GATES": str(gates)})  # fmt: skip


def strategy(state_dir: Path) -> dict[str, Any]:
    return json.loads((state_dir / "strategy.json").read_text())


def states(state_dir: Path) -> dict[str, str]:
    return {s["cloud"]: s["state"] for s in strategy(state_dir)["steps"]}


def assert_no_password(*roots: Path) -> None:
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                assert PASSWORD.encode() not in path.read_bytes(), path


def test_a_job_keeps_its_own_state_and_publishes_a_summary(awx: Awx) -> None:
    awx.gate("subcloud20", "skip")
    awx.gate("subcloud22", "fail")
    job = awx.run(41, {"prestage_group": "Edge_Serial"})
    assert (job.status, job.rc) == ("failed", 2), job.stdout()[-3000:]  # one subcloud failed
    assert [p.name for p in awx.state_base.iterdir()] == ["awx-job-41"]
    state_dir = awx.state_base / "awx-job-41"
    made = strategy(state_dir)
    assert made["strategy"]["extra-args"]["group"] == "Edge_Serial"
    assert made["strategy"]["state"] == "failed"
    assert states(state_dir) == {
        **{f"subcloud{i}": "complete" for i in (19, 20, 21, 23, 24)},
        "subcloud22": "failed",
    }
    # the set_stats artifact, as AWX reads it from the playbook_on_stats event
    summary = job.stats_event()["event_data"]["artifact_data"]["prestage_summary"]
    assert summary["state"] == "failed"
    assert summary["state_dir"] == str(state_dir)
    assert summary["counts"] == {"complete": 5, "failed": 1, "aborted": 0}
    (failed,) = summary["failed"]
    assert failed["cloud"] == "subcloud22"
    assert failed["details"].startswith("prestaging-packages: Prestaging packages failed")
    assert summary["skipped"] == ["subcloud20"]
    # dcprestage reads the job's state dir
    listed = subprocess.run(
        [DCPRESTAGE, "--state-dir", str(state_dir), "strategy-step", "list", "-f", "json"],
        capture_output=True, text=True, env=awx.ws.env, check=True,
    )  # fmt: skip
    assert [r["cloud"] for r in json.loads(listed.stdout)] == [
        f"subcloud{i}" for i in range(19, 25)
    ]
    # the password was answered from memory: in no file of the job, no artifact, no state file
    assert not (job.private_data_dir / "env" / "passwords").exists()
    assert "--ask-pass" in (job.artifacts / "command").read_text()
    assert_no_password(job.private_data_dir, awx.state_base)


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"max_parallel_subclouds": 0},
         "Invalid max-parallel-subclouds value: 0. For prestage, the value must be between 1 "
         "and 250."),
        ({"prestage_type": "for-install"},
         "value of prestage_type must be one of: for_install, for_sw_deploy, got: for-install"),
        ({"release": "24.09.1"},
         "Specified release format is not supported. Version format must be MM.mm."),
        ({"prestage_group": "Edge_Serial", "subcloud_apply_type": "serial"},
         "The --subcloud-apply-type is not supported when --group option is applied."),
        ({"prestage_group": "Nowhere"}, "Subcloud group Nowhere does not exist (prestage_group)"),
        # ASCII digits only (issue 15): int("\u0662") == 2, and \\d matched fullwidth digits
        ({"release": "\uff12\uff14.\uff10\uff19"},
         "Specified release format is not supported. Version format must be MM.mm."),
        ({"prestage_group": "\u0662"},
         "Subcloud group \u0662 does not exist (prestage_group)"),
    ],
)  # fmt: skip
def test_survey_answers_are_checked_before_anything_runs(awx: Awx, answers, message) -> None:
    job = awx.run(51, answers)
    assert job.status == "failed"
    assert message in " ".join(job.stdout().split()), job.stdout()[-2000:]
    assert not (awx.state_base / "awx-job-51" / "strategy.json").exists()
    tasks = {e["event_data"].get("task") for e in job.events if e.get("event") == "runner_on_start"}
    # no subcloud was touched: only the system controller was asked about itself
    assert tasks == {"Know the system controller in every job slice",
                     "Ask the system controller about itself",
                     "Create, apply or resume the prestage strategy"}  # fmt: skip


def test_two_slices_at_once_each_with_its_own_state_merged_by_dcprestage(awx: Awx) -> None:
    limit = "First_10_Subclouds:Edge_Serial"
    started = []
    for number, job_id in ((1, 42), (2, 43)):
        job, params = awx.job(job_id, slice_number=number, slice_count=2, workflow_job_id=40,
                              limit=limit)  # fmt: skip
        started.append((job, awxsim.start_job(params, awx.env)))
    jobs = [awxsim.finish_job(job, process) for job, process in started]
    assert [j.status for j in jobs] == ["successful", "successful"], jobs[0].stdout()[-2000:]
    workflow = awx.state_base / "awx-workflow-40"
    assert sorted(p.name for p in workflow.iterdir()) == ["awx-job-42", "awx-job-43"]
    # each slice: every 2nd host by name (as AWX slices), its own strategy of them
    by_name = sorted(awx.export["_meta"]["hostvars"])
    wanted = {*(f"subcloud{i}" for i in range(1, 11)), *(f"subcloud{i}" for i in range(19, 25))}
    made = {}
    for number, job in enumerate(jobs, start=1):
        state_dir = workflow / f"awx-job-{job.job_id}"
        made[job.job_id] = strategy(state_dir)
        share = set(by_name[number - 1 :: 2]) & wanted
        assert set(states(state_dir)) == share
        assert set(states(state_dir).values()) == {"complete"}
        assert made[job.job_id]["strategy"]["state"] == "complete"
        assert [s["group"] for s in made[job.job_id]["strategy"]["stages"]] == [
            "First_10_Subclouds", "Edge_Serial",
        ]  # fmt: skip
        summary = job.stats_event()["event_data"]["artifact_data"]["prestage_summary"]
        assert summary["counts"]["complete"] == len(share)
        assert summary["state_dir"] == str(state_dir)
    # at the same time: each began before the other ended
    one, two = made[42]["strategy"], made[43]["strategy"]
    assert one["created-at"] < two["updated-at"] and two["created-at"] < one["updated-at"]
    # one step list, in step order: stage by stage, subcloud id order within a stage
    listed = subprocess.run(
        [DCPRESTAGE, "strategy-step", "list", "--merge",
         *(str(p) for p in sorted(workflow.iterdir())), "-f", "json"],
        capture_output=True, text=True, env=awx.ws.env, check=False,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["cloud"], r["stage"], r["state"]) for r in rows] == [
        *((f"subcloud{i}", 1, "complete") for i in range(1, 11)),
        *((f"subcloud{i}", 2, "complete") for i in range(19, 25)),
    ]
    assert all(r["started_at"] and r["finished_at"] for r in rows)
    for job in jobs:
        assert_no_password(job.private_data_dir)
    assert_no_password(awx.state_base)


def failed_hosts(job: awxsim.Job) -> list[str]:
    """The hosts AWX's relaunch on failed hosts limits the new job to: those of the job's host
    summaries with failed set, which AWX computes from the playbook_on_stats event as failures
    or dark (JobHostSummary.failed; Job.retry_qs('failed'))."""
    stats = job.stats_event()["event_data"]
    return sorted(h for h in stats["processed"] if stats["failures"].get(h) or stats["dark"].get(h))


def test_a_relaunch_on_failed_hosts_prestages_exactly_the_failed_subclouds(awx: Awx) -> None:
    awx.gate("subcloud3", "fail")
    awx.gate("subcloud7", "incomplete")  # no task fails: the subcloud's play ends unfinished
    job = awx.run(61, {"prestage_group": "First_10_Subclouds"})
    assert (job.status, job.rc) == ("failed", 2), job.stdout()[-3000:]
    first = awx.state_base / "awx-job-61"
    assert {c for c, s in states(first).items() if s == "failed"} == {"subcloud3", "subcloud7"}
    # each failed step is a failed host, and only they are
    assert failed_hosts(job) == ["subcloud3", "subcloud7"]

    # AWX's relaunch "on failed hosts": a new job, the same extra vars (survey answers), the
    # failed hosts as its limit
    awx.gate("subcloud3", "ok")
    awx.gate("subcloud7", "ok")
    relaunch = awx.run(62, {"prestage_group": "First_10_Subclouds"},
                       limit=",".join(failed_hosts(job)))  # fmt: skip
    assert (relaunch.status, relaunch.rc) == ("successful", 0), relaunch.stdout()[-3000:]
    second = awx.state_base / "awx-job-62"
    assert states(second) == {"subcloud3": "complete", "subcloud7": "complete"}
    assert strategy(second)["strategy"]["state"] == "complete"
    worked = {
        e["event_data"]["host"]
        for e in relaunch.events
        if e.get("event") == "runner_on_ok"
        and e["event_data"].get("task") == "Finish as the gate says"
    }
    assert worked == {"subcloud3", "subcloud7"}  # exactly the two were prestaged
    assert failed_hosts(relaunch) == []
