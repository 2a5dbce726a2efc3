"""`prestage-strategy create --retry-failed` on the lab, with the real roles: a run of a group
with two subclouds failing (a full /opt/platform-backup), the strategy deleted (kept in the
history), the cause fixed, and the retry prestages exactly those two."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.orchestration.test_lab_orchestration import Ops

pytestmark = pytest.mark.lab

BROKEN = ("subcloud2", "subcloud6")


def test_retry_failed_after_a_run_with_two_failures_prestages_exactly_those(
    lab, tmp_path: Path
) -> None:
    ops = Ops(lab, tmp_path)
    clouds = [s["name"] for s in json.loads(ops.cli("subcloud", "list", "-f", "json").stdout)]
    lab.reset(*BROKEN)
    for cloud in BROKEN:
        lab.fault("disk-full", cloud)
    try:
        ops.cli("prestage-strategy", "create", "--max-parallel-subclouds", "4")
        ops.cli("prestage-strategy", "apply")
        first = ops.wait_final()
    finally:
        for cloud in BROKEN:
            lab.fault("disk-full", cloud, undo=True)
    states = {s["cloud"]: s["state"] for s in first["steps"]}
    assert first["strategy"]["state"] == "failed"
    assert sorted(c for c, s in states.items() if s == "failed") == list(BROKEN), states
    assert set(states) == set(clouds)
    ops.cli("prestage-strategy", "delete")
    (kept,) = json.loads(ops.cli("strategy-history", "list", "-f", "json").stdout)
    assert (kept["state"], kept["failed"], kept["steps"]) == ("failed", 2, len(clouds))

    made = ops.cli("prestage-strategy", "create", "--retry-failed")
    assert made.stderr.strip().endswith(": subcloud2, subcloud6"), made.stderr
    retry = ops.strategy()
    assert [s["cloud"] for s in retry["steps"]] == list(BROKEN)
    assert retry["strategy"]["max-parallel-subclouds"] == 4  # the settings it ran with
    ops.cli("prestage-strategy", "apply")
    final = ops.wait_final()
    assert final["strategy"]["state"] == "complete", final
    assert {s["cloud"]: s["state"] for s in final["steps"]} == dict.fromkeys(BROKEN, "complete")
    logs = sorted(p.name for p in (ops.state_dir / "logs").glob("*_playbook_output.log"))
    assert logs == [f"{cloud}_playbook_output.log" for cloud in BROKEN]  # only they ran
    for cloud in BROKEN:
        shown = json.loads(ops.cli("subcloud", "show", cloud, "-f", "json").stdout)
        assert shown["prestage_status"] == "complete"
    ops.cli("prestage-strategy", "delete")
    ops.assert_no_password_left()
