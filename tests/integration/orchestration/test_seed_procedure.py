"""The user's own document, orchestrate-subcloud-prestage-cli.txt, run as written against lab
subclouds, with `dcprestage` in place of `dcmanager`: create for one subcloud / all subclouds / a
group, apply, show, strategy-step list, abort, delete, and the troubleshooting section's
retry-by-group flow.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.integration.orchestration.test_lab_orchestration import (
    RUNNING,
    Ops,
    content_stamp,
)

pytestmark = pytest.mark.lab

SEED_FIELDS = [
    "strategy type", "subcloud apply type", "max parallel subclouds", "stop on failure",
    "prestage software version", "state", "created_at", "updated_at",
]  # fmt: skip


def table(ops: Ops, *args: str) -> dict:
    """A vertical table as printed (Field | Value), checked for the seed's row order."""
    out = ops.cli(*args).stdout.splitlines()
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in out if line.startswith("| ")]
    assert rows[0] == ["Field", "Value"]
    assert [r[0] for r in rows[1:]] == SEED_FIELDS
    return {r[0]: r[1] for r in rows[1:]}


def steps(ops: Ops) -> dict[str, dict]:
    return {
        s["cloud"]: s for s in json.loads(ops.cli("strategy-step", "list", "-f", "json").stdout)
    }


@pytest.mark.parametrize("source", ["registry", "dcmanager"])
def test_the_seed_procedure(lab, tmp_path, source: str) -> None:
    """With either source of subclouds and groups: the registry file, or the system controller's
    dcmanager API (the group edits of the troubleshooting part then go to dcmanager). The parts
    that do not depend on the source (all subclouds and abort, the re-run of a prestaged group)
    run with the registry only."""
    lab.up(max(8, len(lab.subclouds)))
    ops = Ops(lab, tmp_path, lab.dcmanager_inventory if source == "dcmanager" else None)

    # 1. Create a prestage strategy for a specific subcloud ... apply ... monitor ... delete
    created = table(ops, "prestage-strategy", "create", "--for-install", "--release", "24.09",
                    "subcloud7")  # fmt: skip
    assert (created["strategy type"], created["subcloud apply type"]) == ("prestage", "None")
    assert (created["max parallel subclouds"], created["stop on failure"]) == ("2", "False")
    assert (created["prestage software version"], created["state"]) == ("24.09", "initial")
    assert created["updated_at"] == "None"
    assert table(ops, "prestage-strategy", "apply")["state"] == "applying"
    header = ops.cli("strategy-step", "list").stdout.splitlines()[1]
    assert [c.strip() for c in header.split("|")[1:-1]] == [
        "cloud", "stage", "state", "details", "started_at", "finished_at",
    ]  # fmt: skip
    ops.wait_final()
    shown = table(ops, "prestage-strategy", "show")
    assert shown["state"] == "complete"
    assert steps(ops)["subcloud7"]["state"] == "complete"
    assert table(ops, "prestage-strategy", "delete")["state"] == "deleting"

    if source == "registry":  # the source is read at create: the rest of part 2 is the same
        _all_subclouds_then_abort(ops)
    _group_then_troubleshooting(lab, ops, rerun=source == "registry")
    ops.assert_no_password_left()


def _all_subclouds_then_abort(ops: Ops) -> None:
    # "Any existing strategy must be deleted first as only one type of strategy can exist"
    # 2. ... for all subclouds (--for-sw-deploy, release defaults to the system controller's)
    created = table(ops, "prestage-strategy", "create", "--for-sw-deploy")
    assert created["prestage software version"] == "25.09"  # the system controller's
    assert ops.cli("prestage-strategy", "create", "subcloud1", check=False).stderr.strip() == (
        "Strategy of type: 'prestage' already exists"
    )
    assert table(ops, "prestage-strategy", "apply")["state"] == "applying"
    ops.wait(lambda s: any(x["state"] in RUNNING for x in s["steps"]), "a step to start")
    # 4. (Optional) Abort the strategy: after the current step of the applying state completes
    aborted = table(ops, "prestage-strategy", "abort")
    assert aborted["state"] == "abort requested"
    final = ops.wait_final()
    assert final["strategy"]["state"] == "aborted"
    # 5. Once "complete", "aborted" or "failed", the strategy can be deleted
    assert table(ops, "prestage-strategy", "delete")["state"] == "deleting"


def _group_then_troubleshooting(lab, ops: Ops, rerun: bool) -> None:
    # 3. ... for a specific subcloud group (the group's apply type and parallelism)
    lab.fault("registry-down", "subcloud3")  # one subcloud will fail: the troubleshooting part
    try:
        created = table(ops, "prestage-strategy", "create", "--group", "First_10_Subclouds")
        assert (created["subcloud apply type"], created["max parallel subclouds"]) == (
            "parallel", "10",
        )  # fmt: skip
        ops.cli("prestage-strategy", "apply")
        final = ops.wait_final()
    finally:
        lab.fault("registry-down", "subcloud3", undo=True)
    assert final["strategy"]["state"] == "failed"
    failed = [s for s in final["steps"] if s["state"] == "failed"]
    assert [s["cloud"] for s in failed] == ["subcloud3"]
    # "check the log specified in the error message for reasons of failure"
    log = failed[0]["details"].split("check individual log at ")[1].split(" for detailed")[0]
    with open(log, encoding="utf-8") as handle:
        assert "registry" in handle.read().lower()
    done = {s["cloud"] for s in final["steps"] if s["state"] == "complete"}
    before = {cloud: content_stamp(lab, cloud) for cloud in sorted(done)[:2]}
    ops.cli("prestage-strategy", "delete")

    # Troubleshooting: create group prestage-retry, add the failed subcloud, prestage the group
    ops.cli("subcloud-group", "add", "--name", "prestage-retry")
    try:
        ops.cli("subcloud", "update", "--group", "prestage-retry", "subcloud3")
        ops.cli("prestage-strategy", "create", "--group", "prestage-retry")
        ops.cli("prestage-strategy", "apply")
        retried = ops.wait_final()
        assert retried["strategy"]["state"] == "complete"
        assert [s["cloud"] for s in retried["steps"]] == ["subcloud3"]
        ops.cli("prestage-strategy", "delete")
    finally:
        ops.cli("subcloud", "update", "--group", "First_10_Subclouds", "subcloud3")
        ops.cli("subcloud-group", "delete", "prestage-retry")

    if not rerun:  # what follows does not depend on the source of subclouds
        return
    # "Do not retry orchestration with an existing group unless ...": it prestages all again,
    # but (we add) members already prestaged complete without moving their content again.
    ops.cli("prestage-strategy", "create", "--group", "First_10_Subclouds")
    started = time.monotonic()
    ops.cli("prestage-strategy", "apply")
    again = ops.wait_final()
    assert again["strategy"]["state"] == "complete", again["steps"]
    for cloud, stamp in before.items():
        assert content_stamp(lab, cloud) == stamp, f"{cloud} moved content again"
    assert time.monotonic() - started < 600
    ops.cli("prestage-strategy", "delete")
