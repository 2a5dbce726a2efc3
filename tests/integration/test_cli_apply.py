"""`dcprestage prestage-strategy apply` starts a real detached run (launcher -> ansible-runner ->
ansible-playbook with the prestage strategy and callback plugins); `show`, `strategy-step list`
and `abort` work while it runs; a killed orchestrator is resumed by `apply`.

The run is the gated harness (tests/conftest.py gated_playbook: the real first plays of
playbooks/prestage.yml, the system controller's facts from a fixture module; each subcloud waits
for a gate file the test creates), so every assertion is about an observed state, never a delay.
Runs against lab subclouds with the real roles are in tests/integration/orchestration/.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Workspace, wait_for_strategy

# Also run on every supported ansible-core (scripts/core-matrix):
# the strategy and callback plugins through ansible-runner and ansible-playbook.
pytestmark = pytest.mark.core_matrix

PASSWORD = "Apply-Test-Pw-5150"


class Gated:
    def __init__(self, ws: Workspace, gates: Path) -> None:
        self.ws = ws
        self.gates = gates

    def open(self, cloud: str, outcome: str = "ok") -> None:
        (self.gates / f".{cloud}").write_text(outcome)
        (self.gates / f".{cloud}").rename(self.gates / cloud)

    def strategy(self) -> dict:
        return json.loads((self.ws.state_dir / "strategy.json").read_text())

    def states(self) -> dict[str, str]:
        return {s["cloud"]: s["state"] for s in self.strategy()["steps"]}

    def wait(self, condition: Callable[[dict], bool], what: str, timeout: float = 90) -> dict:
        return wait_for_strategy(self.ws.state_dir, condition, what, timeout)

    def wait_final(self, state: str, timeout: float = 90) -> dict:
        """The strategy in its final state and its orchestrator gone: a strategy is final before
        the run's processes stop writing (ansible-runner records the last events after it)."""
        final = self.wait(lambda s: s["strategy"]["state"] == state, state, timeout)
        pid = final["strategy"]["orchestrator"]["pid"]
        self.wait(lambda s: not _alive(pid), "the orchestrator to exit", timeout)
        return final

    def wait_states(self, expected: dict[str, str], timeout: float = 90) -> dict:
        def matches(strategy: dict) -> bool:
            states = {s["cloud"]: s["state"] for s in strategy["steps"]}
            return all(states[c] == s for c, s in expected.items())

        return self.wait(matches, f"steps {expected}", timeout)


@pytest.fixture
def gated(workspace: Workspace, tmp_path: Path):
    gates = tmp_path / "gates"
    gates.mkdir()
    workspace.env.update(
        DCPRESTAGE_PLAYBOOK=str(workspace.gated_playbook()),
        DCPRESTAGE_TEST_GATES=str(gates),
        DCPRESTAGE_SYSADMIN_PASSWORD=PASSWORD,
    )
    harness = Gated(workspace, gates)
    yield harness
    # let anything still waiting finish, and leave no orchestrator behind
    for cloud in (f"subcloud{i}" for i in range(1, 25)):
        if not (gates / cloud).exists():
            harness.open(cloud)
    try:
        strategy = harness.strategy()
    except (FileNotFoundError, ValueError):
        return
    pid = strategy["strategy"]["orchestrator"].get("pid")
    if pid and strategy["strategy"]["state"] in ("applying", "abort requested", "aborting"):
        harness.wait(lambda s: s["strategy"]["state"] in ("complete", "failed", "aborted"),
                     "the run to end", timeout=120)  # fmt: skip


def in_progress(strategy: dict) -> list[str]:
    running = ("prestage-precheck", "prestaging-packages", "prestaging-images")
    return [s["cloud"] for s in strategy["steps"] if s["state"] in running]


def test_apply_runs_detached_with_a_sliding_window(gated: Gated) -> None:
    ws = gated.ws
    # a group of five that runs three at a time
    ws.run("subcloud-group", "add", "--name", "trio", "--max_parallel_subclouds", "3", check=True)
    for cloud in ("subcloud1", "subcloud2", "subcloud3", "subcloud4", "subcloud5"):
        ws.run("subcloud", "update", "--group", "trio", cloud, check=True)
    ws.run("prestage-strategy", "create", "--group", "trio", check=True)
    started = time.monotonic()
    applied = ws.table("prestage-strategy", "apply")
    assert applied["state"] == "applying"
    assert time.monotonic() - started < 10  # returns at once; the run goes on in the background

    first = gated.wait_states({"subcloud1": "prestage-precheck", "subcloud2": "prestage-precheck",
                               "subcloud3": "prestage-precheck"})  # fmt: skip
    assert in_progress(first) == ["subcloud1", "subcloud2", "subcloud3"]
    assert gated.states()["subcloud4"] == "initial"
    shown = ws.run("strategy-step", "list", check=True).stdout
    assert "prestage-precheck" in shown

    gated.open("subcloud2")  # a fast subcloud: its successor starts while 1 and 3 still wait
    after = gated.wait_states({"subcloud2": "complete", "subcloud4": "prestage-precheck"})
    assert sorted(in_progress(after)) == ["subcloud1", "subcloud3", "subcloud4"]
    for cloud in ("subcloud1", "subcloud3", "subcloud4", "subcloud5"):
        gated.open(cloud)
        observed = gated.strategy()
        assert len(in_progress(observed)) <= 3
    final = gated.wait(lambda s: s["strategy"]["state"] == "complete", "completion")
    assert all(s["state"] == "complete" for s in final["steps"])
    assert all(s["started-at"] and s["finished-at"] for s in final["steps"])
    statuses = ws.rows("subcloud", "list")
    trio = {f"subcloud{i}" for i in range(1, 6)}
    assert {
        r["name"]: r["prestage status"] for r in statuses if r["name"] in trio
    } == dict.fromkeys(trio, "complete")
    shown = ws.table("subcloud", "show", "subcloud2")
    assert shown["prestage_versions"] == "for-install: 25.09 - for-sw-deploy: None"


def test_abort_while_running_lets_running_steps_finish(gated: Gated) -> None:
    ws = gated.ws
    ws.run("prestage-strategy", "create", "--group", "Edge_Serial", check=True)
    ws.run("prestage-strategy", "apply", check=True)
    gated.wait_states({"subcloud19": "prestage-precheck"})
    aborted = ws.table("prestage-strategy", "abort")
    assert aborted["state"] == "abort requested"
    states = gated.states()
    assert states["subcloud19"] == "prestage-precheck"
    assert {states[f"subcloud{i}"] for i in range(20, 25)} == {"aborted"}
    # the orchestrator moves it on to aborting as soon as it sees the request
    assert ws.fail("prestage-strategy", "delete") in (
        "Strategy in state abort requested cannot be deleted",
        "Strategy in state aborting cannot be deleted",
    )
    gated.open("subcloud19")
    final = gated.wait(lambda s: s["strategy"]["state"] == "aborted", "the abort to complete")
    assert {s["cloud"]: s["state"] for s in final["steps"]}["subcloud19"] == "complete"
    ws.run("prestage-strategy", "delete", check=True)


def test_stop_on_failure_leaves_waiting_steps_initial(gated: Gated) -> None:
    ws = gated.ws
    ws.run("prestage-strategy", "create", "--stop-on-failure", "--max-parallel-subclouds", "2",
           check=True)  # fmt: skip
    ws.run("prestage-strategy", "apply", check=True)
    gated.wait_states({"subcloud1": "prestage-precheck", "subcloud2": "prestage-precheck"})
    gated.open("subcloud1", "fail")
    failed = gated.wait(lambda s: s["strategy"]["state"] == "failed", "stop on failure")
    assert {s["cloud"]: s["state"] for s in failed["steps"]}["subcloud1"] == "failed"
    gated.open("subcloud2")  # the running neighbour still finishes
    final = gated.wait_states({"subcloud2": "complete"})
    assert final["strategy"]["state"] == "failed"
    waiting = [s["state"] for s in final["steps"] if s["cloud"] not in ("subcloud1", "subcloud2")]
    assert set(waiting) == {"initial"}
    log = ws.state_dir / "logs" / "subcloud1_playbook_output.log"
    detail = next(s["details"] for s in final["steps"] if s["cloud"] == "subcloud1")
    assert detail == (
        "prestaging-packages: Prestaging packages failed for subcloud subcloud1, check individual "
        f"log at {log} for detailed output."
    )
    assert "the gate said fail" in log.read_text()


def test_killed_orchestrator_is_reported_and_resumed(gated: Gated) -> None:
    ws = gated.ws
    ws.run("prestage-strategy", "create", "--max-parallel-subclouds", "2", check=True)
    ws.run("prestage-strategy", "apply", check=True)
    gated.open("subcloud1")
    running = gated.wait_states({"subcloud1": "complete", "subcloud3": "prestage-precheck"})
    orchestrator = running["strategy"]["orchestrator"]
    assert orchestrator["via"] == "ansible-playbook"  # the play took over from the launcher
    os.kill(orchestrator["pid"], signal.SIGKILL)
    gated.wait(lambda s: not _alive(s["strategy"]["orchestrator"]["pid"]), "the kill")

    shown = ws.run("prestage-strategy", "show", check=True)
    assert "applying" in shown.stdout
    assert f"the orchestrator of this strategy (pid {orchestrator['pid']}) is not running" in (
        shown.stderr
    )
    resumed = ws.table("prestage-strategy", "apply")
    assert resumed["state"] == "applying"
    states = gated.wait_states({"subcloud2": "prestage-precheck", "subcloud3": "prestage-precheck"})
    assert states["steps"][0]["state"] == "complete"  # complete steps stay complete
    for i in range(2, 25):
        gated.open(f"subcloud{i}")
    final = gated.wait(lambda s: s["strategy"]["state"] == "complete", "completion")
    assert all(s["state"] == "complete" for s in final["steps"])


def test_abort_when_the_orchestrator_is_gone_ends_at_once(gated: Gated) -> None:
    ws = gated.ws
    ws.run("prestage-strategy", "create", "--group", "Edge_Serial", check=True)
    ws.run("prestage-strategy", "apply", check=True)
    running = gated.wait_states({"subcloud19": "prestage-precheck"})
    assert ws.fail("prestage-strategy", "apply") == "Strategy in state applying cannot be applied"
    assert ws.fail("prestage-strategy", "delete") == (
        "Strategy in state applying cannot be deleted"
    )
    pid = gated.wait(lambda s: s["strategy"]["orchestrator"]["via"] == "ansible-playbook",
                     "the take-over")["strategy"]["orchestrator"]["pid"]  # fmt: skip
    os.kill(pid, signal.SIGKILL)
    gated.wait(lambda s: not _alive(pid), "the kill")
    aborted = ws.table("prestage-strategy", "abort")
    assert aborted["state"] == "aborted"
    states = gated.states()
    assert states["subcloud19"] == "aborted"
    assert {states[f"subcloud{i}"] for i in range(20, 25)} == {"aborted"}
    assert running["strategy"]["state"] == "applying"
    ws.run("prestage-strategy", "delete", check=True)


def test_the_password_is_nowhere_in_what_a_run_leaves(gated: Gated) -> None:
    ws = gated.ws
    ws.run("prestage-strategy", "create", "--group", "Edge_Serial", check=True)
    ws.run("prestage-strategy", "apply", check=True)
    for i in range(19, 25):
        gated.open(f"subcloud{i}", "skip" if i == 20 else "ok")
    final = gated.wait_final("complete")
    skipped = next(s for s in final["steps"] if s["cloud"] == "subcloud20")
    assert skipped["details"] == "Prestage skipped 'subcloud20': Subcloud is offline."
    artifacts = list((ws.state_dir / "runner").rglob("*"))
    assert any(p.name == "command" for p in artifacts)  # runner artifacts were left behind
    secret = ws.state_dir / "sysadmin_password"
    for path in ws.state_dir.rglob("*"):
        if path.is_file() and path != secret:
            assert PASSWORD.encode() not in path.read_bytes(), path
    ws.run("prestage-strategy", "delete", check=True)
    assert not secret.exists()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:  # reaped between the two looks
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def test_subcloud_prestage_runs_one_subcloud_in_the_background(gated: Gated) -> None:
    ws = gated.ws
    shown = ws.table("subcloud", "prestage", "subcloud7", "--release", "24.09")
    assert shown["prestage_status"] == "prestaging"
    # a second request while it runs is refused, as dcmanager refuses it
    assert ws.fail("subcloud", "prestage", "subcloud7") == (
        "Prestage check failed for subcloud subcloud7: Subcloud subcloud7 current prestage_status "
        "is 'prestaging'. Please wait until it finishes before running this operation."
    )
    # no strategy is involved
    assert ws.fail("prestage-strategy", "show") == "Strategy of type 'prestage' not found"
    gated.open("subcloud7")
    deadline = time.monotonic() + 90
    while ws.table("subcloud", "show", "subcloud7")["prestage_status"] != "complete":
        assert time.monotonic() < deadline, "the one-subcloud run did not complete"
        time.sleep(0.1)
    assert ws.table("subcloud", "show", "subcloud7")["prestage_versions"] == (
        "for-install: 24.09 - for-sw-deploy: None"
    )
    assert (ws.state_dir / "logs" / "subcloud7_playbook_output.log").exists()


def test_subcloud_prestage_checks_everything_first(gated: Gated) -> None:
    ws = gated.ws

    def offline(data):
        data["subclouds"][7]["availability"] = "offline"

    ws.edit_registry(offline)
    assert ws.fail("subcloud", "prestage", "subcloud8") == (
        "Prestage check failed for subcloud subcloud8: Subcloud is offline."
    )
    assert ws.fail("subcloud", "prestage", "nope") == "Subcloud nope does not exist"
    assert ws.fail("subcloud", "prestage", "subcloud1", "--release", "24.9") == (
        "Specified release format is not supported. Version format must be MM.mm."
    )
    assert not (ws.state_dir / "subcloud-prestage").exists()


def test_an_abort_before_the_play_takes_over_still_ends_aborted(gated: Gated) -> None:
    ws = gated.ws
    ws.run("prestage-strategy", "create", "--group", "Edge_Serial", check=True)
    ws.run("prestage-strategy", "apply", check=True)
    assert ws.table("prestage-strategy", "abort")["state"] == "abort requested"
    final = gated.wait(lambda s: s["strategy"]["state"] in ("aborted", "failed"), "the abort")
    assert final["strategy"]["state"] == "aborted"
    assert {s["state"] for s in final["steps"]} == {"aborted"}
    ws.run("prestage-strategy", "delete", check=True)


def test_apply_refuses_a_strategy_whose_subclouds_left_the_registry(workspace: Workspace) -> None:
    ws = workspace
    ws.run("prestage-strategy", "create", "--group", "Edge_Serial", "--sysadmin-password", "pw",
           check=True)  # fmt: skip
    ws.edit_registry(
        lambda data: data.update(
            subclouds=[
                s for s in data["subclouds"] if s["name"] not in ("subcloud20", "subcloud22")
            ]
        )
    )
    before = (ws.state_dir / "strategy.json").read_bytes()
    assert ws.fail("prestage-strategy", "apply", "--yes") == (
        "The strategy's subclouds subcloud20, subcloud22 are not in the registry "
        f"{ws.registry} any more"
    )
    assert (ws.state_dir / "strategy.json").read_bytes() == before  # still initial, not started
