"""Real prestage runs against lab subclouds, through both entry points (dcprestage apply and
ansible-playbook), with the real roles: the states observed over time obey the window, the
stages, stop-on-failure and abort; skips and failures carry SPEC's details and point at logs that
exist and explain; a killed orchestrator is resumed without moving content again; and the
password is in nothing a run leaves behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, VENV_BIN, wait_for_strategy

pytestmark = pytest.mark.lab

RELEASE = "24.09"
RUNNING = ("prestage-precheck", "prestaging-packages", "prestaging-images")
FINAL_STRATEGY = ("complete", "failed", "aborted")


class Ops:
    """dcprestage and ansible-playbook against the lab, with a state dir of the test's own."""

    def __init__(self, lab, tmp_path: Path, inventory: Path | None = None) -> None:
        """inventory: the inventory config (default the lab's registry one; the lab's
        dcmanager-subclouds.yml reads the system controller's dcmanager API, its Keystone
        password in OS_PASSWORD)."""
        self.lab = lab
        self.inventory = inventory or lab.inventory
        self.state_dir = tmp_path / "state"
        self.outputs: list[str] = []
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DCPRESTAGE", "ANSIBLE"))},
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "DCPRESTAGE_INVENTORY": str(self.inventory),
            "OS_PASSWORD": lab.keystone_password,
            "DCPRESTAGE_STATE_DIR": str(self.state_dir),
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
        }  # fmt: skip

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(VENV_BIN / "dcprestage"), *args], capture_output=True, text=True,
            env={**self.env, "DCPRESTAGE_SYSADMIN_PASSWORD": self.lab.password}, cwd=ROOT,
            timeout=120, check=False,
        )  # fmt: skip
        self.outputs += [result.stdout, result.stderr]
        if check:
            assert result.returncode == 0, result.stderr
        return result

    def playbook(self, *args: str) -> subprocess.CompletedProcess[str]:
        secrets = self.lab.ansible_secrets(self.state_dir.parent)  # 0600 inventory source
        result = subprocess.run(
            [str(VENV_BIN / "ansible-playbook"), "-i", str(self.inventory), "-i", str(secrets),
             str(ROOT / "playbooks" / "prestage.yml"),
             "-e", f"prestage_state_dir={self.state_dir}", *args],
            capture_output=True, text=True, env=self.env, cwd=ROOT, timeout=900, check=False,
        )  # fmt: skip
        self.outputs += [result.stdout, result.stderr]
        return result

    def strategy(self) -> dict:
        return json.loads((self.state_dir / "strategy.json").read_text())

    def wait(self, condition: Callable[[dict], bool], what: str, timeout: float = 600) -> dict:
        return wait_for_strategy(self.state_dir, condition, what, timeout)

    def wait_final(self, timeout: float = 900) -> dict:
        return self.wait(lambda s: s["strategy"]["state"] in FINAL_STRATEGY, "the end", timeout)

    def step(self, strategy: dict, cloud: str) -> dict:
        return next(s for s in strategy["steps"] if s["cloud"] == cloud)

    def assert_no_password_left(self) -> None:
        """Neither the subclouds' sysadmin password (but in the strategy's own 0600 file) nor the
        system controller's Keystone password (the dcmanager source) in the state dir or the
        output of any command."""
        for secret in (self.lab.password, self.lab.keystone_password):
            for path in self.state_dir.rglob("*"):
                if path.is_file() and path.name != "sysadmin_password":
                    assert secret.encode() not in path.read_bytes(), path
            for text in self.outputs:
                assert secret not in text


class Recorder:
    """Samples strategy.json while a run goes, to check what was true at every moment."""

    def __init__(self, ops: Ops) -> None:
        self.ops = ops
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(FileNotFoundError, ValueError):
                self.samples.append(self.ops.strategy())
            self._stop.wait(0.1)

    def __enter__(self) -> Recorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def max_running(self, clouds: set[str]) -> int:
        return max(
            (sum(1 for s in sample["steps"] if s["cloud"] in clouds and s["state"] in RUNNING)
             for sample in self.samples), default=0,
        )  # fmt: skip


def wipe(lab, clouds: list[str]) -> None:
    """Subclouds as `lab up` made them (nothing prestaged), so this run really moves content."""
    lab.reset(*clouds)


@pytest.fixture(scope="module")
def fleet(lab) -> Iterator:
    """The lab with at least 8 subclouds, and two groups of this module's own."""
    lab.up(max(8, len(lab.subclouds)))
    ops = Ops(lab, Path("/tmp"))
    ops.cli("subcloud-group", "add", "--name", "pair", "--max_parallel_subclouds", "2")
    ops.cli("subcloud-group", "add", "--name", "single", "--update_apply_type", "serial")
    for cloud in ("subcloud1", "subcloud2", "subcloud3"):
        ops.cli("subcloud", "update", "--group", "pair", cloud)
    for cloud in ("subcloud4", "subcloud6"):
        ops.cli("subcloud", "update", "--group", "single", cloud)
    yield lab
    for cloud in ("subcloud1", "subcloud2", "subcloud3", "subcloud4", "subcloud6"):
        ops.cli("subcloud", "update", "--group", "First_10_Subclouds", cloud)
    ops.cli("subcloud-group", "delete", "pair")
    ops.cli("subcloud-group", "delete", "single")


@pytest.fixture
def ops(fleet, tmp_path: Path) -> Ops:
    return Ops(fleet, tmp_path)


def test_playbook_window_stages_and_a_fast_successor(ops: Ops) -> None:
    lab = ops.lab
    clouds = ["subcloud1", "subcloud2", "subcloud3", "subcloud4", "subcloud6"]
    wipe(lab, clouds)
    lab.fault("slow-link", "subcloud1", "2mbit")  # the slow neighbour
    try:
        with Recorder(ops) as recorder:
            result = ops.playbook("-l", ",".join(clouds), "-e", f"release={RELEASE}")
    finally:
        lab.fault("slow-link", "subcloud1", undo=True)
    assert result.returncode == 0, result.stdout[-4000:]
    final = ops.strategy()
    assert final["strategy"]["state"] == "complete"
    stages = {s["cloud"]: s["stage"] for s in final["steps"]}
    assert stages == {"subcloud1": 1, "subcloud2": 1, "subcloud3": 1, "subcloud4": 2,
                      "subcloud6": 2}  # fmt: skip
    # the window held at every sample: 2 for the pair, 1 for the serial group
    assert recorder.max_running({"subcloud1", "subcloud2", "subcloud3"}) <= 2
    assert recorder.max_running({"subcloud4", "subcloud6"}) <= 1
    assert recorder.max_running(set(clouds)) <= 2
    step = {s["cloud"]: s for s in final["steps"]}
    # subcloud2 finished fast, so subcloud3 started while subcloud1 was still copying
    assert step["subcloud3"]["started-at"] < step["subcloud1"]["finished-at"]
    # stage 2 started after the last of stage 1 finished
    stage1_end = max(step[c]["finished-at"] for c in ("subcloud1", "subcloud2", "subcloud3"))
    assert min(step[c]["started-at"] for c in ("subcloud4", "subcloud6")) >= stage1_end
    statuses = {r["name"]: r for r in json.loads(ops.cli("subcloud", "list", "-f", "json").stdout)}
    assert all(statuses[c]["prestage status"] == "complete" for c in clouds)
    ops.assert_no_password_left()


def test_cli_stop_on_failure_and_a_failure_that_points_at_its_log(ops: Ops) -> None:
    lab = ops.lab
    lab.fault("registry-down", "subcloud1")  # the first of a serial strategy fails in images
    try:
        ops.cli("prestage-strategy", "create", "--subcloud-apply-type", "serial",
                "--stop-on-failure")  # fmt: skip
        ops.cli("prestage-strategy", "apply")
        final = ops.wait_final()
    finally:
        lab.fault("registry-down", "subcloud1", undo=True)
    states = {s["cloud"]: s["state"] for s in final["steps"]}
    assert final["strategy"]["state"] == "failed"
    assert states["subcloud1"] == "failed"
    assert {state for cloud, state in states.items() if cloud != "subcloud1"} == {"initial"}
    log = ops.state_dir / "logs" / "subcloud1_playbook_output.log"
    assert ops.step(final, "subcloud1")["details"] == (
        "prestaging-images: Prestaging images failed for subcloud subcloud1, check individual "
        f"log at {log} for detailed output."
    )
    assert "registry" in log.read_text().lower()  # the log says what went wrong
    shown = json.loads(ops.cli("subcloud", "show", "subcloud1", "-f", "json").stdout)
    assert shown["prestage_status"] == "failed"
    ops.cli("prestage-strategy", "delete")
    ops.assert_no_password_left()


def test_cli_abort_mid_run_and_a_skip_reason(ops: Ops) -> None:
    lab = ops.lab
    duplex = "subcloud5"  # every 5th lab subcloud is duplex
    lab.fault("standby", duplex)
    try:
        ops.cli("prestage-strategy", "create", duplex)
        ops.cli("prestage-strategy", "apply")
        skipped = ops.wait_final()
    finally:
        lab.fault("standby", duplex, undo=True)
    assert skipped["strategy"]["state"] == "complete"
    assert ops.step(skipped, duplex)["details"] == (
        f"Prestage skipped '{duplex}': Prestage for install on duplex subclouds is only allowed "
        "when controller-0 is active."
    )
    ops.cli("prestage-strategy", "delete")

    wipe(lab, ["subcloud4", "subcloud6"])
    ops.cli("prestage-strategy", "create", "--group", "single")
    # a slow link keeps subcloud4 busy while the abort is asked for: without it, it could finish
    # first and its successor start (then running, not aborted)
    lab.fault("slow-link", "subcloud4", "1mbit")
    try:
        ops.cli("prestage-strategy", "apply")
        ops.wait(lambda s: ops.step(s, "subcloud4")["state"] in RUNNING, "subcloud4 to start")
        aborted = json.loads(ops.cli("prestage-strategy", "abort", "-f", "json").stdout)
        assert aborted["state"] == "abort requested"
        assert ops.step(ops.strategy(), "subcloud6")["state"] == "aborted"
    finally:
        lab.fault("slow-link", "subcloud4", undo=True)
    final = ops.wait_final()
    assert final["strategy"]["state"] == "aborted", final["steps"]
    assert ops.step(final, "subcloud4")["state"] == "complete"  # it finished its work
    ops.cli("prestage-strategy", "delete")
    ops.assert_no_password_left()


def test_kill_minus_9_then_apply_resumes_without_moving_content_again(ops: Ops) -> None:
    lab = ops.lab
    clouds = ["subcloud1", "subcloud2", "subcloud3"]
    wipe(lab, clouds)
    lab.fault("slow-link", "subcloud3", "1mbit")
    try:
        ops.cli("prestage-strategy", "create", "--group", "pair")
        ops.cli("prestage-strategy", "apply")
        running = ops.wait(
            lambda s: (
                ops.step(s, "subcloud1")["state"] == "complete"
                and ops.step(s, "subcloud3")["state"] in RUNNING
                and s["strategy"]["orchestrator"].get("via") == "ansible-playbook"
            ),
            "subcloud1 done and subcloud3 under way",
        )
        done = [c for c in clouds if ops.step(running, c)["state"] == "complete"]
        before = {c: content_stamp(lab, c) for c in done}
        os.kill(running["strategy"]["orchestrator"]["pid"], signal.SIGKILL)
        shown = ops.cli("prestage-strategy", "show")
        deadline = time.monotonic() + 30
        while "is not running" not in shown.stderr and time.monotonic() < deadline:
            shown = ops.cli("prestage-strategy", "show")
        assert "is not running" in shown.stderr
    finally:
        lab.fault("slow-link", "subcloud3", undo=True)
    ops.cli("prestage-strategy", "apply")  # resume
    final = ops.wait_final()
    assert final["strategy"]["state"] == "complete"
    for cloud in done:
        assert content_stamp(lab, cloud) == before[cloud], f"{cloud} moved content again"
    ops.cli("prestage-strategy", "delete")
    ops.assert_no_password_left()


def content_stamp(lab, cloud: str) -> str:
    """Inode and mtime of every prestaged file: unchanged means nothing was copied again."""
    out = lab.ssh(
        cloud,
        f"find /opt/platform-backup/{RELEASE} -type f -printf '%p %i %T@\\n' | sort",
        become=True, check=True,
    )  # fmt: skip
    return out.stdout
