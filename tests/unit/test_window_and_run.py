"""The sliding window and the orchestrator's state recording, without Ansible (pure logic)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ansible_collections.distcloud.prestage.plugins.callback import prestage_state
from ansible_collections.distcloud.prestage.plugins.plugin_utils import _strategy as model
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError
from ansible_collections.distcloud.prestage.plugins.plugin_utils._run import (
    DEFAULT_FLUSH_INTERVAL,
    StrategyRun,
    prestage_versions_text,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._store import StateStore
from ansible_collections.distcloud.prestage.plugins.plugin_utils._window import Window


def make_run(tmp_path: Path, stages: list[tuple[str | None, int, list[str]]], **kw) -> StrategyRun:
    """A strategy applying in a fresh state dir, taken over by a StrategyRun."""
    strategy = model.Strategy(
        release="24.09", for_sw_deploy=False, subcloud_apply_type=None,
        max_parallel_subclouds=None, stop_on_failure=kw.get("stop_on_failure", False),
        force=False, cloud_name=None, group=None,
        stages=[model.Stage(n, None, kind, size) for n, (kind, size, _cs) in enumerate(stages, 1)],
        steps=[model.Step(c, n, created_at="t") for n, (_k, _s, cs) in enumerate(stages, 1) for c in cs],  # noqa: E501
        state=model.APPLYING, created_at="t",
    )  # fmt: skip
    store = StateStore(str(tmp_path / "state"))
    store.save_strategy(strategy)
    run = StrategyRun(store, flush_interval=0, on_step_failed=kw.get("on_step_failed"))
    run.begin()
    return run


class Hosts:
    """Stand-in for the play: which admitted hosts have nothing left to do."""

    def __init__(self) -> None:
        self.done: set[str] = set()

    def finished(self, host: str) -> bool:
        return host in self.done


def test_window_refills_as_soon_as_one_finishes(tmp_path: Path) -> None:
    run = make_run(tmp_path, [("parallel", 2, ["a", "b", "c", "d"])])
    window, hosts = Window(run, ["a", "b", "c", "d"]), Hosts()
    assert window.admit(hosts.finished) == ["a", "b"]
    run.enter_phase("a", "precheck")
    run.enter_phase("b", "precheck")
    run.complete("b")
    hosts.done.add("b")
    assert window.admit(hosts.finished) == ["a", "c"]  # b's successor starts while a runs


def test_serial_stage_is_a_window_of_one_and_stages_do_not_overlap(tmp_path: Path) -> None:
    run = make_run(tmp_path, [("parallel", 5, ["a", "b"]), ("serial", 5, ["c", "d"])])
    window, hosts = Window(run, ["a", "b", "c", "d"]), Hosts()
    assert window.admit(hosts.finished) == ["a", "b"]
    run.enter_phase("a", "precheck")
    run.complete("a")
    hosts.done.add("a")
    assert window.admit(hosts.finished) == ["b"]  # stage 2 waits for all of stage 1
    run.enter_phase("b", "precheck")
    run.complete("b")
    hosts.done.add("b")
    assert window.admit(hosts.finished) == ["c"]


def test_abort_request_stops_admitting_and_running_steps_finish(tmp_path: Path) -> None:
    run = make_run(tmp_path, [("parallel", 1, ["a", "b", "c"])])
    window, hosts = Window(run, ["a", "b", "c"]), Hosts()
    assert window.admit(hosts.finished) == ["a"]
    run.enter_phase("a", "packages")
    run.flush(force=True)
    # dcprestage prestage-strategy abort, from another process
    with run.store.locked():
        foreign = run.store.require_strategy()
        model.request_abort(foreign, orchestrator_alive=True)
        run.store.save_strategy(foreign)
    run.tick()
    assert not run.admitting()
    run.complete("a")
    hosts.done.add("a")
    assert window.admit(hosts.finished) == []
    run.finish()
    saved = run.store.require_strategy()
    assert saved.state == model.ABORTED
    assert [s.state for s in saved.steps] == ["complete", "aborted", "aborted"]


def abort_from_the_cli(run: StrategyRun) -> None:
    """What `dcprestage prestage-strategy abort` does, from another process."""
    with run.store.locked():
        foreign = run.store.require_strategy()
        model.request_abort(foreign, orchestrator_alive=True, started=run.store.load_started())
        run.store.save_strategy(foreign)


def test_merge_keeps_the_orchestrators_own_steps(tmp_path: Path) -> None:
    run = make_run(tmp_path, [("parallel", 2, ["a", "b", "c"])])
    window, hosts = Window(run, ["a", "b", "c"]), Hosts()
    assert window.admit(hosts.finished) == ["a", "b"]
    run.enter_phase("a", "precheck")  # in memory only until the next flush
    abort_from_the_cli(run)  # lands before the orchestrator wrote that a and b started
    run.flush(force=True)
    saved = {s.cloud: s.state for s in run.store.require_strategy().steps}
    # b was started (its first task not yet begun): it runs, it is not aborted
    assert saved == {"a": "prestage-precheck", "b": "initial", "c": "aborted"}
    assert run.store.require_strategy().state == model.ABORTING
    run.enter_phase("b", "precheck")
    run.complete("a")
    run.complete("b")
    run.finish()
    saved = {s.cloud: s.state for s in run.store.require_strategy().steps}
    assert saved == {"a": "complete", "b": "complete", "c": "aborted"}


def test_an_abort_not_yet_picked_up_admits_no_aborted_step(tmp_path: Path) -> None:
    """The abort lands between two ticks; the window must not start a step the file already
    shows aborted (it used to, and the step then ran: aborted -> precheck -> complete)."""
    run = make_run(tmp_path, [("parallel", 1, ["a", "b", "c"])])
    run.flush_interval = 3600  # no tick would notice the abort in time
    window, hosts = Window(run, ["a", "b", "c"]), Hosts()
    assert window.admit(hosts.finished) == ["a"]
    run.enter_phase("a", "precheck")
    abort_from_the_cli(run)
    run.complete("a")
    hosts.done.add("a")
    assert window.admit(hosts.finished) == []
    run.finish()
    saved = run.store.require_strategy()
    assert [s.state for s in saved.steps] == ["complete", "aborted", "aborted"]
    assert saved.state == model.ABORTED


def test_a_new_run_forgets_what_an_earlier_one_started(tmp_path: Path) -> None:
    run = make_run(tmp_path, [("parallel", 2, ["a", "b"])])
    Window(run, ["a", "b"]).admit(Hosts().finished)
    assert run.store.load_started() == {"a", "b"}
    StrategyRun(run.store).begin()  # the orchestrator died; `apply` resumed
    assert run.store.load_started() == set()


def test_stop_on_failure_leaves_waiting_steps_initial(tmp_path: Path) -> None:
    run = make_run(tmp_path, [("parallel", 1, ["a", "b"])], stop_on_failure=True)
    window, hosts = Window(run, ["a", "b"]), Hosts()
    window.admit(hosts.finished)
    run.enter_phase("a", "packages")
    reason = model.phase_failure_reason("packages", "a", run.store.log_path("a"))
    run.fail("a", reason)
    hosts.done.add("a")
    assert window.admit(hosts.finished) == []
    run.finish()
    saved = run.store.require_strategy()
    assert saved.state == model.FAILED
    assert [s.state for s in saved.steps] == ["failed", "initial"]
    assert saved.steps[0].details == f"prestaging-packages: {reason}"  # the log named once


def test_a_host_ending_without_completion_fails_naming_its_log(tmp_path: Path) -> None:
    told: list[tuple[str, str]] = []
    run = make_run(tmp_path, [("parallel", 1, ["a"])], on_step_failed=lambda *a: told.append(a))
    window, hosts = Window(run, ["a"]), Hosts()
    window.admit(hosts.finished)
    run.enter_phase("a", "images")
    hosts.done.add("a")
    window.admit(hosts.finished)
    run.flush(force=True)
    step = run.store.require_strategy().step("a")
    assert step.state == model.STEP_FAILED
    assert step.details == (
        "prestaging-images: the play ended for this subcloud before prestage completed, check "
        f"individual log at {run.store.log_path('a')} for detailed output."
    )
    # the log's last line says why (the callback writes what it is told)
    reason = "prestaging-images: the play ended for this subcloud before prestage completed"
    assert told == [("a", f"prestage failed: {reason}")]


def test_the_play_ending_fails_running_steps_naming_their_logs(tmp_path: Path) -> None:
    told: list[tuple[str, str]] = []
    run = make_run(
        tmp_path, [("parallel", 2, ["a", "b"])], on_step_failed=lambda *a: told.append(a)
    )
    Window(run, ["a", "b"]).admit(Hosts().finished)
    run.enter_phase("a", "precheck")
    run.finish()
    step = run.store.require_strategy().step("a")
    assert step.details == (
        "prestage-precheck: the play ended before prestage completed, check individual log at "
        f"{run.store.log_path('a')} for detailed output."
    )
    assert told == [("a", "prestage failed: prestage-precheck: the play ended before prestage "
                          "completed")]  # fmt: skip


def test_resumed_strategy_skips_final_steps(tmp_path: Path) -> None:
    run = make_run(tmp_path, [("parallel", 2, ["a", "b", "c"])])
    run.enter_phase("a", "precheck")
    run.complete("a", prestage_versions_text(["24.09"], None))
    run.flush(force=True)
    window = Window(run, ["a", "b", "c"])
    assert window.admit(Hosts().finished) == ["b", "c"]
    status = json.loads(Path(run.store.subclouds_path).read_text())["subclouds"]["a"]
    assert status["prestage_status"] == "complete"
    assert status["prestage_versions"] == "for-install: 24.09 - for-sw-deploy: None"


def test_skip_ends_complete_and_clears_the_status(tmp_path: Path) -> None:
    run = make_run(tmp_path, [("parallel", 1, ["a"])])
    run.enter_phase("a", "precheck")
    run.skip("a", "Subcloud is offline.")
    run.flush(force=True)
    step = run.store.require_strategy().step("a")
    assert (step.state, step.details) == ("complete", "Prestage skipped 'a': Subcloud is offline.")
    assert run.store.load_statuses()["a"].prestage_status is None
    assert run.store.require_strategy().state == model.COMPLETE


def test_forks_below_the_window_and_missing_hosts_are_errors(tmp_path: Path) -> None:
    run = make_run(tmp_path, [("parallel", 3, ["a", "b", "c", "d"]), ("serial", 1, ["e"])])
    with pytest.raises(PrestageError, match="are not among this play's hosts"):
        Window(run, ["a", "b"])
    Window(run, ["a", "b", "c", "d", "e"])
    with pytest.raises(
        PrestageError, match=r"has 2 forks .* up to 3 subclouds at once: run with --forks 3"
    ):
        model.check_forks(run.current(), 2)
    model.check_forks(run.current(), 3)


def test_a_failed_write_stops_admitting_and_is_reported(tmp_path: Path) -> None:
    errors: list[str] = []
    run = make_run(tmp_path, [("parallel", 2, ["a", "b", "c"])])
    run._on_write_error = errors.append
    # the lock cannot be taken (the state dir replaced by a symbolic link: refused)
    state = Path(run.store.state_dir)
    state.rename(state.with_name("moved"))
    state.symlink_to(state.with_name("moved"))
    run.enter_phase("a", "precheck")
    assert errors and "Cannot record the prestage state" in errors[0]
    assert not run.admitting()


def test_the_callback_documents_the_runs_default_flush_interval() -> None:
    """The option's documented default is the one a run without the option uses."""
    options = yaml.safe_load(prestage_state.DOCUMENTATION)["options"]
    assert options["flush_interval"]["default"] == DEFAULT_FLUSH_INTERVAL == 1.0
