"""Per-job state dirs under AWX, the run summary, and the merged step list of job slices."""

from __future__ import annotations

import os

import pytest

from ansible_collections.distcloud.prestage.plugins.plugin_utils import _report as report
from ansible_collections.distcloud.prestage.plugins.plugin_utils import _strategy as model
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError
from ansible_collections.distcloud.prestage.plugins.plugin_utils._store import (
    StateStore,
    run_state_dir,
)


def test_outside_awx_the_state_dir_is_the_given_one(tmp_path) -> None:
    assert run_state_dir(str(tmp_path), {}) == str(tmp_path)
    assert run_state_dir(str(tmp_path), {"awx_job_id": ""}) == str(tmp_path)


def test_under_awx_each_job_has_its_own_state_dir(tmp_path, monkeypatch) -> None:
    base = str(tmp_path)
    assert run_state_dir(base, {"awx_job_id": 41}) == os.path.join(base, "awx-job-41")
    assert run_state_dir(base, {"tower_job_id": "7"}) == os.path.join(base, "awx-job-7")
    sliced = {"awx_job_id": 42, "awx_workflow_job_id": 40}
    assert run_state_dir(base, sliced) == os.path.join(base, "awx-workflow-40", "awx-job-42")
    # the base comes from the environment as everywhere else
    monkeypatch.setenv("DCPRESTAGE_STATE_DIR", base)
    assert run_state_dir(None, {"awx_job_id": 3}) == os.path.join(base, "awx-job-3")


@pytest.mark.parametrize("bad", ["../x", "1/2", True, "4a"])
def test_a_job_id_that_is_not_digits_is_refused(tmp_path, bad) -> None:
    with pytest.raises(PrestageError, match="awx_job_id must be a job id"):
        run_state_dir(str(tmp_path), {"awx_job_id": bad})


def _strategy(steps: list[tuple[str, int, str, str]], stages: list[str | None]) -> model.Strategy:
    return model.Strategy(
        release="24.09",
        for_sw_deploy=False,
        subcloud_apply_type=None,
        max_parallel_subclouds=None,
        stop_on_failure=False,
        force=False,
        cloud_name=None,
        group=None,
        stages=[model.Stage(i + 1, g, "parallel", 2) for i, g in enumerate(stages)],
        steps=[
            model.Step(cloud=c, stage=n, state=s, details=d, created_at="t") for c, n, s, d in steps
        ],
        state=model.FAILED,
        created_at="t",
    )


def test_summary_counts_states_and_names_failures() -> None:
    strategy = _strategy(
        [
            ("subcloud1", 1, "complete", ""),
            ("subcloud2", 1, "failed", "prestaging-packages: boom"),
            ("subcloud3", 1, "complete", model.skip_details("subcloud3", "Subcloud is offline.")),
            ("subcloud4", 1, "initial", ""),
        ],
        ["Default"],
    )
    summary = report.strategy_summary(strategy, "/s")
    assert summary["counts"] == {"complete": 2, "failed": 1, "aborted": 0, "initial": 1}
    assert summary["failed"] == [{"cloud": "subcloud2", "details": "prestaging-packages: boom"}]
    assert summary["skipped"] == ["subcloud3"]
    assert (summary["state"], summary["steps"], summary["state_dir"]) == ("failed", 4, "/s")
    assert summary["prestage_type"] == "for-install"


def test_slices_merge_into_one_step_list_in_stage_and_id_order(tmp_path) -> None:
    # round robin over 7 subclouds in three groups; slice B has no Default subcloud
    slice_a = _strategy(
        [("sc1", 1, "complete", ""), ("sc3", 2, "complete", ""), ("sc10", 3, "failed", "x")],
        ["Default", "First", "Serial"],
    )
    slice_b = _strategy(
        [("sc2", 1, "complete", ""), ("sc4", 1, "complete", ""), ("sc11", 2, "aborted", "")],
        ["First", "Serial"],
    )
    slice_c = _strategy([("sc5", 1, "complete", "")], ["Default"])
    merged = report.merge_steps([("A", slice_a), ("B", slice_b), ("C", slice_c)])
    rows = [(s.cloud, s.stage, s.state) for s in merged]
    assert rows == [
        ("sc1", 1, "complete"),
        ("sc5", 1, "complete"),
        ("sc2", 2, "complete"),
        ("sc3", 2, "complete"),
        ("sc4", 2, "complete"),
        ("sc10", 3, "failed"),
        ("sc11", 3, "aborted"),
    ]
    # registry ids win over names
    by_id = report.merge_steps([("A", slice_a), ("B", slice_b)], {"sc4": 1, "sc2": 9, "sc3": 5})
    assert [s.cloud for s in by_id if s.stage == 2] == ["sc4", "sc3", "sc2"]
    assert slice_b.steps[0].stage == 1  # the strategies themselves are not changed


def test_a_subcloud_in_two_slices_is_an_error() -> None:
    one = _strategy([("sc1", 1, "complete", "")], [None])
    with pytest.raises(PrestageError, match="Subcloud sc1 is a step in both A and B"):
        report.merge_steps([("A", one), ("B", one)])


def test_a_state_dir_without_strategy_is_named(tmp_path) -> None:
    StateStore(str(tmp_path / "a")).save_strategy(_strategy([("sc1", 1, "complete", "")], [None]))
    with pytest.raises(PrestageError, match=f"not found in {tmp_path / 'b'}"):
        report.load_strategies([str(tmp_path / "a"), str(tmp_path / "b")])
