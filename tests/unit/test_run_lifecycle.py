"""The run's lifecycle without Ansible: a signal stops it at the next tick and leaves its running
steps resumable (their details and logs say why), a second signal stops it at once, an abort ends
the steps still running after its timeout, and the launcher closes what a killed play left."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ansible_collections.distcloud.prestage.plugins.module_utils._caller import caller_gone
from ansible_collections.distcloud.prestage.plugins.plugin_utils import _run as run_module
from ansible_collections.distcloud.prestage.plugins.plugin_utils import _strategy as model
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError
from ansible_collections.distcloud.prestage.plugins.plugin_utils._orchestrator import (
    orchestrator_record,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._run import RunInterrupted
from dcprestage import _launcher as launcher
from dcprestage.strategy import say_what_abort_waits_for
from tests.unit.test_window_and_run import make_run


@pytest.fixture(autouse=True)
def _run_id(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # the run id of this test's own (take_over_process sets it in os.environ)
    monkeypatch.setenv(run_module.RUN_ID_ENV, f"unit-test:{tmp_path}")
    monkeypatch.delenv(run_module.ABORT_TIMEOUT_ENV, raising=False)


def _file(run: run_module.StrategyRun) -> dict:
    return json.loads(Path(run.store.strategy_path).read_text())


def _step(data: dict, cloud: str) -> dict:
    return next(s for s in data["steps"] if s["cloud"] == cloud)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_ends_the_run_at_the_next_tick_and_its_running_steps_resume(
    tmp_path: Path, signum: signal.Signals
) -> None:
    run = make_run(tmp_path, [(None, 2, ["sc1", "sc2", "sc3"])])
    assert run.start(["sc1", "sc2"]) == ["sc1", "sc2"]
    run.enter_phase("sc1", "packages")
    run.enter_phase("sc2", "precheck")
    before = signal.getsignal(signum)
    run.take_over_process()
    try:
        os.kill(os.getpid(), signum)  # the handler runs before the next line
        with pytest.raises(RunInterrupted):
            run.tick()
    finally:
        run.finish()
    assert signal.getsignal(signum) == before  # given back
    name = signal.Signals(signum).name
    data = _file(run)
    assert data["strategy"]["state"] == model.APPLYING
    for cloud, phase in (("sc1", "prestaging-packages"), ("sc2", "prestage-precheck")):
        step = _step(data, cloud)
        assert step["state"] == "initial"
        assert step["details"] == f"{phase}: {run_module.interrupted_reason(name)}"
        assert step["attempts"][-1]["reason"] == run_module.interrupted_reason(name)
        assert step["attempts"][-1]["state"] == phase
        assert name in Path(run.store.log_path(cloud)).read_text()
    assert _step(data, "sc3")["state"] == "initial" and not _step(data, "sc3")["details"]
    # apply resumes them; abort (the orchestrator gone) ends the strategy aborted
    strategy = run.store.require_strategy()
    model.request_abort(strategy, orchestrator_alive=False)
    assert strategy.state == model.ABORTED


def test_a_second_signal_stops_the_run_at_once(tmp_path: Path) -> None:
    run = make_run(tmp_path, [(None, 1, ["sc1"])])
    run.start(["sc1"])
    run.enter_phase("sc1", "precheck")
    run.take_over_process()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        with pytest.raises(RunInterrupted):
            os.kill(os.getpid(), signal.SIGTERM)
    finally:
        run.finish()
    assert _step(_file(run), "sc1")["state"] == "initial"


def test_an_abort_ends_the_steps_still_running_after_its_timeout(tmp_path: Path) -> None:
    run = make_run(tmp_path, [(None, 2, ["sc1", "sc2", "sc3"])])
    run.set_abort_timeout(30)
    run.start(["sc1", "sc2"])
    run.enter_phase("sc1", "packages")
    run.enter_phase("sc2", "precheck")
    run.flush(force=True)
    assert _file(run)["strategy"]["orchestrator"]["abort-timeout"] == 30
    store = run.store
    with store.locked():  # what `dcprestage prestage-strategy abort` does
        strategy = store.require_strategy()
        model.request_abort(strategy, orchestrator_alive=True, started=store.load_started())
        store.save_strategy(strategy)
    run.tick()  # takes the abort in and starts its clock
    assert "waiting up to 30 s" in Path(store.log_path("sc1")).read_text()
    seen = run._abort_seen
    assert seen is not None
    run._check_abort(seen + 29)  # not yet
    with pytest.raises(RunInterrupted):
        run._check_abort(seen + 30)
    run.finish()
    data = _file(run)
    assert data["strategy"]["state"] == model.ABORTED
    reason = run_module.abort_timeout_reason(30)
    assert _step(data, "sc1")["details"] == f"prestaging-packages: {reason}"
    assert _step(data, "sc2")["state"] == "aborted"
    assert _step(data, "sc3")["state"] == "aborted"  # never started
    assert reason in Path(store.log_path("sc2")).read_text()


def test_abort_timeout_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_module.abort_timeout() == run_module.DEFAULT_ABORT_TIMEOUT
    monkeypatch.setenv(run_module.ABORT_TIMEOUT_ENV, "12")
    assert run_module.abort_timeout() == 12
    assert run_module.abort_timeout("3") == 3  # the extra var wins
    for bad in ("0", "-1", "ten"):
        with pytest.raises(PrestageError, match="abort timeout"):
            run_module.abort_timeout(bad)


def test_the_launcher_closes_the_steps_a_killed_play_left_running(tmp_path: Path) -> None:
    run = make_run(tmp_path, [(None, 2, ["sc1", "sc2"])])
    run.start(["sc1"])
    run.enter_phase("sc1", "images")
    run.flush(force=True)
    store = run.store
    with store.locked():  # the play was killed: its orchestrator record names a dead process
        strategy = store.require_strategy()
        strategy.orchestrator = {"pid": 2**22 + 1, "host": os.uname().nodename, "start-ticks": 1}
        store.save_strategy(strategy)
    launcher.close_interrupted(store.state_dir, "SIGHUP")
    step = _step(_file(run), "sc1")
    assert step["state"] == "initial"
    assert step["details"] == f"prestaging-images: {run_module.interrupted_reason('SIGHUP')}"
    assert "SIGHUP" in Path(store.log_path("sc1")).read_text()


def test_the_launcher_leaves_a_strategy_another_orchestrator_runs(tmp_path: Path) -> None:
    run = make_run(tmp_path, [(None, 1, ["sc1"])])
    run.start(["sc1"])
    run.enter_phase("sc1", "precheck")
    run.flush(force=True)
    store = run.store
    with store.locked():  # a live orchestrator that is not this launcher has taken it over
        strategy = store.require_strategy()
        strategy.orchestrator = orchestrator_record(os.getppid(), via="ansible-playbook")
        store.save_strategy(strategy)
    launcher.close_interrupted(store.state_dir, "SIGTERM")
    assert _step(_file(run), "sc1")["state"] == "prestage-precheck"


def test_abort_says_what_it_waits_for(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    run = make_run(tmp_path, [(None, 3, ["sc1", "sc2", "sc3"])])
    run.set_abort_timeout(45)
    run.start(["sc1", "sc2"])
    run.enter_phase("sc1", "packages")
    strategy = run.current()
    model.request_abort(strategy, orchestrator_alive=True, started={"sc1", "sc2"})
    say_what_abort_waits_for(strategy, {"sc1", "sc2"})
    assert capsys.readouterr().err == (
        "Abort requested: waiting for 2 running steps (at most 45 s, then they end aborted): "
        "sc1, sc2\n"
    )


def test_a_module_sees_its_controller_go() -> None:
    read_end, write_end = os.pipe()
    try:
        assert not caller_gone(write_end)
        os.close(read_end)
        assert caller_gone(write_end)
    finally:
        os.close(write_end)


WATCHED = r"""
import subprocess, sys, time
sys.path.insert(0, sys.argv[1])
from ansible_collections.distcloud.prestage.plugins.module_utils._caller import stop_with_caller
child = subprocess.Popen(["sleep", "60"])  # what a module runs: in its process group
print(child.pid, flush=True)
stop_with_caller(interval=0.05)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_a_module_stops_with_what_it_runs_when_its_controller_goes() -> None:
    """The images module's watch: the reader of its output closes (the controller's session
    went), and the module's process group - it and the commands it runs - ends."""
    collections = Path(__file__).resolve().parents[2] / ".venv" / "collections"
    python39 = os.environ.get("DCPRESTAGE_PYTHON39", "/root/.pyenv/versions/3.9.18/bin/python3.9")
    module = subprocess.Popen(
        [python39, "-I", "-c", WATCHED, str(collections)], stdout=subprocess.PIPE,
        start_new_session=True,  # its own group, as under the controller's ssh session
    )  # fmt: skip
    try:
        assert module.stdout is not None
        child = int(module.stdout.readline())
        assert _alive(child)
        module.stdout.close()  # the controller's end goes
        deadline = time.monotonic() + 10
        while (module.poll() is None or _alive(child)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert module.poll() is not None and not _alive(child)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(module.pid, signal.SIGKILL)
        module.wait()
