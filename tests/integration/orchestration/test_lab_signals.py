"""A signal to the orchestrator, and a link that dies under a live SSH master, through the real
CLI against the lab: the run stops cleanly (no process of it left on the controller, the system
controller or a subcloud; no traceback), the interrupted steps say why in their details and logs,
and `apply` resumes them or `abort` ends the strategy aborted; a dead link fails its step within
the configured bound and an abort then finishes within its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.orchestration.test_lab_orchestration import RUNNING, Ops, wipe

pytestmark = pytest.mark.lab

CLOUDS = ["subcloud1", "subcloud2"]
GROUP = "signals"
LAB_NETNS = "/run/netns"
# short bounds for the tests (the defaults are minutes)
SETTINGS = {
    "DCPRESTAGE_SIGNAL_GRACE": "15",
    "DCPRESTAGE_ABORT_TIMEOUT": "15",
    "DCPRESTAGE_PRECHECK_TIMEOUT": "25",
    "DCPRESTAGE_SSH_KEEPALIVE_INTERVAL": "3",
    "DCPRESTAGE_SSH_KEEPALIVE_COUNT": "3",
    "DCPRESTAGE_TRANSFER_IO_TIMEOUT": "10",
}


def poll(
    condition: Callable[[], object],
    what: str,
    timeout: float,
    detail: Callable[[], object] = lambda: "",
) -> object:
    """condition() until it is truthy, or fail naming what did not happen: a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}: {detail()}")
        time.sleep(0.1)


def _lab_namespaces() -> set[str]:
    found = set()
    for name in os.listdir(LAB_NETNS) if os.path.isdir(LAB_NETNS) else []:
        if name.startswith("dcplab-"):
            found.add(f"net:[{os.stat(os.path.join(LAB_NETNS, name)).st_ino}]")
    return found


def _processes() -> dict[tuple[int, str], dict[str, str]]:
    """Every process: (pid, start time) -> its command, net namespace and environment."""
    procs = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        base = f"/proc/{entry.name}"
        try:
            stat = Path(f"{base}/stat").read_text()
            cmdline = (
                Path(f"{base}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            )
            environ = Path(f"{base}/environ").read_bytes().decode("utf-8", "replace")
            netns = os.readlink(f"{base}/ns/net")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z" or fields[1] == "2" or entry.name == "2":  # zombies, kernel threads
            continue
        procs[(int(entry.name), fields[19])] = {
            "comm": stat[stat.index("(") + 1 : stat.rindex(")")],
            "cmdline": cmdline, "environ": environ, "netns": netns,
        }  # fmt: skip
    return procs


class Runs(Ops):
    """Ops with the short bounds, and the process tables to compare."""

    def __init__(self, lab, tmp_path: Path) -> None:
        super().__init__(lab, tmp_path)
        self.env.update(SETTINGS)
        self.baseline: set[tuple[int, str]] = set()

    def take_baseline(self) -> None:
        self.baseline = set(_processes())

    def leftovers(self) -> list[str]:
        """Processes of this run: on the controller, those naming the state dir (environment or
        command line); in the lab's namespaces (system controller, subclouds), every process
        that was not there before the apply."""
        lab = _lab_namespaces()
        marker = str(self.state_dir)
        found = []
        for key, proc in _processes().items():
            if key in self.baseline:
                continue
            if proc["netns"] in lab or marker in proc["environ"] or marker in proc["cmdline"]:
                found.append(f"{key[0]} {proc['comm']}: {proc['cmdline'][:160]}")
        return found

    def orchestrator_pid(self) -> int:
        return int(self.strategy()["strategy"]["orchestrator"]["pid"])

    def launcher_pid(self) -> int | None:
        for (pid, _started), proc in _processes().items():
            if "dcprestage._launcher" in proc["cmdline"] and str(self.state_dir) in proc["cmdline"]:
                return pid
        return None

    def log(self, cloud: str) -> str:
        return (self.state_dir / "logs" / f"{cloud}_playbook_output.log").read_text()

    def orchestrator_log(self) -> str:
        return (self.state_dir / "logs" / "orchestrator.log").read_text()


@pytest.fixture(scope="module")
def pair(lab) -> Iterator:
    """subcloud1 and subcloud2 in a group of this module's own (2 at a time)."""
    ops = Ops(lab, Path("/tmp"))
    ops.cli("subcloud-group", "add", "--name", GROUP, "--max_parallel_subclouds", "2")
    groups = {}
    for cloud in CLOUDS:
        groups[cloud] = json.loads(ops.cli("subcloud", "show", cloud, "-f", "json").stdout)
        ops.cli("subcloud", "update", "--group", GROUP, cloud)
    yield lab
    for cloud in CLOUDS:
        ops.cli("subcloud", "update", "--group", str(groups[cloud]["group_id"]), cloud)
    ops.cli("subcloud-group", "delete", GROUP)


@pytest.fixture
def runs(pair, tmp_path: Path) -> Runs:
    return Runs(pair, tmp_path)


def _start_slow_run(runs: Runs) -> dict:
    """A strategy over the pair, applied with subcloud1's link slowed: both are at work."""
    lab = runs.lab
    wipe(lab, CLOUDS)
    runs.cli("prestage-strategy", "create", "--group", GROUP)
    runs.take_baseline()
    runs.cli("prestage-strategy", "apply")
    return runs.wait(
        lambda s: runs.step(s, "subcloud1")["state"] == "prestaging-packages"
        and s["strategy"]["orchestrator"]["pid"] != runs.launcher_pid(),  # the play runs it
        "subcloud1 to push its packages", timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("signum", "target", "then"),
    [
        (signal.SIGTERM, "launcher", "apply"),
        (signal.SIGINT, "orchestrator", "abort"),
        (signal.SIGHUP, "orchestrator", "abort"),
    ],
    ids=["TERM-to-the-launcher-then-apply", "INT-then-abort", "HUP-then-abort"],
)
def test_a_signal_stops_the_run_cleanly_and_the_strategy_resumes_or_aborts(
    runs: Runs, signum: signal.Signals, target: str, then: str
) -> None:
    lab = runs.lab
    name = signal.Signals(signum).name
    lab.fault("slow-link", "subcloud1", "1mbit")
    try:
        running = _start_slow_run(runs)
        pid = runs.launcher_pid() if target == "launcher" else runs.orchestrator_pid()
        assert pid, "no process to signal"
        interrupted = [c for c in CLOUDS if runs.step(running, c)["state"] in RUNNING]
        assert "subcloud1" in interrupted
        os.kill(pid, signum)
        # the orchestrator, its descendants and what the modules started elsewhere: all gone
        poll(lambda: not runs.leftovers(), "the run's processes to end", 40, runs.leftovers)
    finally:
        lab.fault("slow-link", "subcloud1", undo=True)
    assert not runs.leftovers()
    assert "Traceback" not in runs.orchestrator_log()
    stopped = runs.strategy()
    assert stopped["strategy"]["state"] == "applying", stopped
    for cloud in interrupted:
        step = runs.step(stopped, cloud)
        if step["state"] == "complete":  # it finished just before the signal
            continue
        assert step["state"] == "initial", step
        assert name in step["details"] and "resumes" in step["details"], step
        assert name in runs.log(cloud), cloud
    shown = runs.cli("prestage-strategy", "show")
    assert "is not running" in shown.stderr
    if then == "apply":
        runs.cli("prestage-strategy", "apply")
        final = runs.wait_final(timeout=180)
        assert final["strategy"]["state"] == "complete", final["steps"]
    else:
        aborted = json.loads(runs.cli("prestage-strategy", "abort", "-f", "json").stdout)
        assert aborted["state"] == "aborted", aborted
    runs.cli("prestage-strategy", "delete")
    runs.assert_no_password_left()


def _live_master(address: str) -> bool:
    """Whether an ssh ControlPersist master of ours holds a connection to address now."""
    out = subprocess.run(
        ["ss", "-Htnp", "state", "established", "dst", address], capture_output=True, text=True,
        check=False,
    ).stdout  # fmt: skip
    for pid in re.findall(r'"ssh",pid=(\d+)', out):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ssh: ") and b"[mux]" in (
                Path(f"/proc/{pid}/cmdline").read_bytes()
            ):
                return True
    return False


def test_a_dead_link_under_a_live_master_fails_in_bound_and_abort_finishes_in_bound(
    runs: Runs,
) -> None:
    """subcloud2's precheck is slowed down (a slow link) and holds a live ControlPersist master
    when its link dies: the step fails within the keepalive/precheck bound (before: minutes).
    The strategy is then aborted while subcloud1's slow transfer runs: the abort says what it
    waits for and the strategy ends within its bound; nothing of the run is left anywhere."""
    lab = runs.lab
    # the abort's bound comes well before the transfer's own io timeout
    runs.env.update(DCPRESTAGE_ABORT_TIMEOUT="5", DCPRESTAGE_TRANSFER_IO_TIMEOUT="60")
    wipe(lab, CLOUDS)
    runs.cli("prestage-strategy", "create", "--group", GROUP)
    runs.take_baseline()
    sc2 = lab.address("subcloud2")
    lab.fault("slow-link", "subcloud1", "384kbit")  # its transfer lasts minutes
    lab.fault("slow-link", "subcloud2", "48kbit")  # its precheck lasts a few seconds
    downs = []
    try:
        runs.cli("prestage-strategy", "apply")
        runs.wait(
            lambda s: runs.step(s, "subcloud2")["state"] == "prestage-precheck",
            "subcloud2's precheck", timeout=60,
        )  # fmt: skip
        poll(lambda: _live_master(sc2), "a live ssh master to subcloud2", 30)
        lab.fault("link-down", "subcloud2")
        downs.append("subcloud2")
        down_at = time.monotonic()
        failed = runs.wait(
            lambda s: runs.step(s, "subcloud2")["state"] == "failed",
            "subcloud2 to fail on its dead link", timeout=60,
        )  # fmt: skip
        took = time.monotonic() - down_at
        assert took < 30, (took, runs.step(failed, "subcloud2"))

        # subcloud1's slow transfer still runs: the abort waits for it at most its bound
        assert runs.step(runs.strategy(), "subcloud1")["state"] in RUNNING
        abort = runs.cli("prestage-strategy", "abort")
        aborted_at = time.monotonic()
        assert "waiting for 1 running steps (at most 5 s, then they end aborted): subcloud1" in (
            abort.stderr
        )
        final = runs.wait_final(timeout=40)
        assert time.monotonic() - aborted_at < 15
    finally:
        for cloud in downs:
            lab.fault("link-down", cloud, undo=True)
        lab.fault("slow-link", "subcloud1", undo=True)
        lab.fault("slow-link", "subcloud2", undo=True)
    assert final["strategy"]["state"] == "failed", final["steps"]  # subcloud2 failed
    step = runs.step(final, "subcloud1")
    assert step["state"] == "aborted" and "abort timeout" in step["details"], step
    assert "abort timeout" in runs.log("subcloud1")
    poll(lambda: not runs.leftovers(), "the run's processes to end", 30, runs.leftovers)
    assert "Traceback" not in runs.orchestrator_log()
    runs.cli("prestage-strategy", "delete")
