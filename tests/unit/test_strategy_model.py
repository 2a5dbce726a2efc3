"""The strategy model's rules: create selection, stages, transitions, roll-up, strict reading."""

from __future__ import annotations

import copy
import json

import pytest

from ansible_collections.distcloud.prestage.plugins.plugin_utils import _strategy as model
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import (
    PrestageError,
    StateFileError,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._registry import parse_registry
from tests.conftest import sc_facts

REGISTRY = """
groups:
  - {id: 1, name: Default}
  - {id: 2, name: Fast, update_apply_type: parallel, max_parallel_subclouds: 3}
  - {id: 3, name: Slow, update_apply_type: serial, max_parallel_subclouds: 4}
subclouds:
  - {id: 5, name: e, group: Slow, oam_floating_address: 10.0.0.5, software_version: "24.09"}
  - {id: 1, name: a, group: Fast, oam_floating_address: 10.0.0.1, software_version: "24.09"}
  - {id: 2, name: b, group: Default, oam_floating_address: 10.0.0.2, software_version: "24.09"}
  - {id: 3, name: c, group: Fast, oam_floating_address: 10.0.0.3, software_version: "25.09"}
  - {id: 4, name: d, group: Default, availability: offline, oam_floating_address: 10.0.0.4,
     software_version: "24.09"}
"""


@pytest.fixture
def registry():
    return parse_registry(REGISTRY, "registry.yml")


@pytest.fixture
def facts():
    """What the system controller says about itself: 25.09, upgrading from 24.09."""
    return sc_facts()


def build(registry, facts, **options):
    return model.build_strategy(model.CreateRequest(**options), facts, registry, {})


def test_all_subclouds_are_staged_by_group_in_group_order(registry, facts) -> None:
    strategy = build(registry, facts)
    assert [(s.number, s.group, s.window) for s in strategy.stages] == [
        (1, "Default", 2),
        (2, "Fast", 3),
        (3, "Slow", 1),
    ]
    assert [(s.cloud, s.stage) for s in strategy.steps] == [
        ("b", 1), ("a", 2), ("c", 2), ("e", 3),
    ]  # fmt: skip
    assert strategy.row()[1:3] == (None, None)


def test_explicit_parallelism_is_one_stage_in_id_order(registry, facts) -> None:
    strategy = build(registry, facts, max_parallel_subclouds=5)
    assert [s.cloud for s in strategy.steps] == ["a", "b", "c", "e"]
    assert strategy.stages[0].window == 5
    assert strategy.row()[1:3] == (None, 5)


def test_serial_group_window_is_one_but_shows_its_settings(registry, facts) -> None:
    strategy = build(registry, facts, group="Slow")
    assert strategy.row()[1:3] == ("serial", 4)
    assert strategy.stages[0].window == 1


def test_release_defaults_to_the_system_controller(registry, facts) -> None:
    assert build(registry, facts, cloud_name="a").release == "25.09"
    assert build(registry, facts, cloud_name="a", release="24.09").release == "24.09"
    older = sc_facts(sc_release="24.09", supported_upgrades=["22.12"])
    assert build(registry, older, cloud_name="a").release == "24.09"


def test_the_release_rules_run_before_anything_else(registry, facts) -> None:
    with pytest.raises(PrestageError, match=r"^Error: invalid release version parameter\. 22\.12"):
        build(registry, facts, cloud_name="a", release="22.12")
    deploying = sc_facts(deployment_in_progress="software deploy from 25.09.1 to 25.09.2")
    with pytest.raises(PrestageError, match="system controller has a software deployment"):
        build(registry, deploying, cloud_name="nope")
    with pytest.raises(PrestageError, match=r"^Cannot tell the system controller's release$"):
        build(registry, sc_facts(sc_release=None), cloud_name="a")


def new_strategy(registry, facts, **options):
    strategy = build(registry, facts, group="Fast", **options)
    model.apply(strategy, {"pid": None})
    return strategy


def test_step_lifecycle_sets_times_and_rolls_up(registry, facts) -> None:
    strategy = new_strategy(registry, facts)
    model.set_step_state(strategy, "a", model.STEP_PRECHECK, at="t1")
    step = strategy.step("a")
    assert (step.started_at, step.finished_at) == ("t1", None)
    model.set_step_state(strategy, "a", model.STEP_PACKAGES, at="t2")
    model.set_step_state(strategy, "a", model.STEP_IMAGES, at="t3")
    model.set_step_state(strategy, "a", model.STEP_COMPLETE, at="t4")
    assert (step.started_at, step.finished_at) == ("t1", "t4")
    assert strategy.state == model.APPLYING
    model.set_step_state(strategy, "c", model.STEP_PRECHECK)
    model.set_step_state(strategy, "c", model.STEP_COMPLETE, model.skip_details("c", "x"))
    assert strategy.state == model.COMPLETE


def test_steps_do_not_go_back_or_leave_a_final_state(registry, facts) -> None:
    strategy = new_strategy(registry, facts)
    model.set_step_state(strategy, "a", model.STEP_PACKAGES)
    with pytest.raises(PrestageError, match="cannot go back"):
        model.set_step_state(strategy, "a", model.STEP_PRECHECK)
    model.set_step_state(strategy, "a", model.STEP_FAILED, "boom")
    with pytest.raises(PrestageError, match="is failed and cannot become"):
        model.set_step_state(strategy, "a", model.STEP_COMPLETE)


def test_any_failure_makes_the_strategy_failed(registry, facts) -> None:
    strategy = new_strategy(registry, facts)
    model.set_step_state(strategy, "a", model.STEP_FAILED, "boom")
    assert strategy.state == model.APPLYING  # without stop-on-failure others continue
    assert model.admitting(strategy)
    model.set_step_state(strategy, "c", model.STEP_COMPLETE)
    assert strategy.state == model.FAILED


def test_stop_on_failure_fails_at_once_and_stops_admitting(registry, facts) -> None:
    strategy = new_strategy(registry, facts, stop_on_failure=True)
    model.set_step_state(strategy, "c", model.STEP_PACKAGES)
    model.set_step_state(strategy, "a", model.STEP_FAILED, "boom")
    assert strategy.state == model.FAILED
    assert not model.admitting(strategy)
    model.set_step_state(strategy, "c", model.STEP_COMPLETE)  # a running step still finishes
    assert strategy.state == model.FAILED


def test_abort_with_a_live_orchestrator(registry, facts) -> None:
    strategy = new_strategy(registry, facts)
    model.set_step_state(strategy, "a", model.STEP_PACKAGES)
    model.request_abort(strategy, orchestrator_alive=True)
    assert strategy.state == model.ABORT_REQUESTED
    assert strategy.step("c").state == model.STEP_ABORTED
    assert not model.admitting(strategy)
    model.set_step_state(strategy, "a", model.STEP_IMAGES)
    assert strategy.state == model.ABORTING
    model.set_step_state(strategy, "a", model.STEP_COMPLETE)
    assert strategy.state == model.ABORTED


def test_abort_without_an_orchestrator_finishes_at_once(registry, facts) -> None:
    strategy = new_strategy(registry, facts)
    model.set_step_state(strategy, "a", model.STEP_PACKAGES)
    model.request_abort(strategy, orchestrator_alive=False)
    assert strategy.state == model.ABORTED
    assert strategy.step("a").details == "prestaging-packages: the orchestrator stopped"


def test_resume_reruns_interrupted_steps_only(registry, facts) -> None:
    strategy = new_strategy(registry, facts)
    model.set_step_state(strategy, "a", model.STEP_COMPLETE)
    model.set_step_state(strategy, "c", model.STEP_PACKAGES)
    model.resume(strategy, {"pid": 1})
    assert strategy.step("a").state == model.STEP_COMPLETE
    assert strategy.step("c").state == model.STEP_INITIAL
    assert strategy.orchestrator == {"pid": 1}


def test_a_resumed_step_gets_its_own_times_and_keeps_the_earlier_attempt(registry, facts) -> None:
    strategy = new_strategy(registry, facts)
    strategy.orchestrator = {"pid": 4242}
    model.set_step_state(strategy, "c", model.STEP_PRECHECK, at="t1")
    model.set_step_state(strategy, "c", model.STEP_PACKAGES, at="t2")
    model.resume(strategy, {"pid": 1}, at="t3")
    step = strategy.step("c")
    assert (step.state, step.started_at, step.finished_at) == (model.STEP_INITIAL, None, None)
    # the attempt keeps its transitions (fake times: offsets 0) and the next one starts afresh
    ran = [model.Phase(model.STEP_PRECHECK, 0.0), model.Phase(model.STEP_PACKAGES, 0.0)]
    assert step.attempts == [
        model.Attempt(1, "t1", "t3", model.STEP_PACKAGES,
                      "the orchestrator (pid 4242) stopped before the step finished; resumed", ran),
    ]  # fmt: skip
    assert step.phases == []
    model.set_step_state(strategy, "c", model.STEP_PRECHECK, at="t4")
    model.set_step_state(strategy, "c", model.STEP_COMPLETE, at="t5")
    assert (step.started_at, step.finished_at) == ("t4", "t5")  # the attempt that ran
    assert strategy.step("a").attempts == []  # a step that never ran has no history
    # a second crash adds a second attempt
    model.set_step_state(strategy, "a", model.STEP_PRECHECK, at="t6")
    model.resume(strategy, {"pid": 2}, at="t7")
    model.set_step_state(strategy, "a", model.STEP_PRECHECK, at="t8")
    model.resume(strategy, {"pid": 3}, at="t9")
    assert [(a.attempt, a.started_at, a.finished_at) for a in strategy.step("a").attempts] == [
        (1, "t6", "t7"), (2, "t8", "t9"),
    ]  # fmt: skip
    assert strategy.step("a").attempts_text().splitlines()[1] == (
        "attempt 2: prestage-precheck from t8 to t9: the orchestrator (pid 2) stopped before the "
        "step finished; resumed"
    )
    # kept in the state file
    data = json.loads(json.dumps(strategy.to_dict()))
    assert next(s for s in data["steps"] if s["cloud"] == "c")["attempts"][0] == {
        "attempt": 1, "started-at": "t1", "finished-at": "t3", "state": "prestaging-packages",
        "reason": "the orchestrator (pid 4242) stopped before the step finished; resumed",
        "phases": [["prestage-precheck", 0.0], ["prestaging-packages", 0.0]],
    }  # fmt: skip
    assert model.Strategy.from_dict(data) == strategy


def test_each_transition_is_recorded_with_its_offset_and_durations_follow(registry, facts) -> None:
    strategy = new_strategy(registry, facts)
    base = "2026-12-01 10:00:00.000000"
    model.set_step_state(strategy, "c", model.STEP_PRECHECK, at=base)
    model.set_step_state(strategy, "c", model.STEP_PACKAGES, at="2026-12-01 10:00:02.500000")
    model.set_step_state(strategy, "c", model.STEP_IMAGES, at="2026-12-01 10:01:12.500000")
    model.set_step_state(strategy, "c", model.STEP_COMPLETE, at="2026-12-01 10:03:15.250000")
    step = strategy.step("c")
    assert [(p.state, p.offset) for p in step.phases] == [
        ("prestage-precheck", 0.0), ("prestaging-packages", 2.5), ("prestaging-images", 72.5),
        ("complete", 195.25),
    ]  # fmt: skip
    assert step.duration() == 195.25
    assert step.phase_durations() == [
        ("prestage-precheck", 2.5), ("prestaging-packages", 70.0), ("prestaging-images", 122.75),
    ]  # fmt: skip
    assert step.duration_row() == (
        "3 min 15 s",
        "prestage-precheck 2.5 s, prestaging-packages 1 min 10 s, prestaging-images 2 min 03 s",
    )
    # a step that never started has no history and no duration
    assert strategy.step("a").phases == [] and strategy.step("a").duration_row() == ("-", "-")
    # a running step's last phase lasts until now (here: a given moment)
    model.set_step_state(strategy, "a", model.STEP_PRECHECK, at=base)
    until = model.parse_time("2026-12-01 10:00:09.000000")
    assert strategy.step("a").duration_row(until) == ("9.0 s", "prestage-precheck 9.0 s")
    data = json.loads(json.dumps(strategy.to_dict()))
    assert next(s for s in data["steps"] if s["cloud"] == "c")["phases"][1] == [
        "prestaging-packages", 2.5,
    ]  # fmt: skip
    assert model.Strategy.from_dict(data) == strategy


@pytest.mark.parametrize(
    "phases",
    ["precheck", [["prestage-precheck"]], [["nonsense", 1.0]], [["complete", "1"]],
     [["complete", True]], [{"state": "complete"}]],
)  # fmt: skip
def test_a_malformed_step_history_is_a_state_file_error(registry, facts, phases) -> None:
    data = json.loads(json.dumps(new_strategy(registry, facts).to_dict()))
    data["steps"][0]["phases"] = phases
    with pytest.raises(
        StateFileError, match=r"steps\[\]\.phases is not a list of \[state, seconds\]"
    ):
        model.Strategy.from_dict(data)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0.0 s"), (59.94, "59.9 s"), (60, "1 min 00 s"), (3599.4, "59 min 59 s"),
     (3600, "1 h 00 min"), (7500, "2 h 05 min")],
)  # fmt: skip
def test_seconds_text(seconds, text) -> None:
    assert model.seconds_text(seconds) == text


def test_a_state_file_without_attempts_still_reads(registry, facts) -> None:
    strategy = new_strategy(registry, facts)
    data = json.loads(json.dumps(strategy.to_dict()))
    assert all("attempts" not in step for step in data["steps"])  # fresh steps stay small
    assert all(step.attempts == [] for step in model.Strategy.from_dict(data).steps)
    data["steps"][0]["attempts"] = [{"attempt": "one"}]
    with pytest.raises(StateFileError, match=r"steps\[\]\.attempts\[\]\.attempt is not an integer"):
        model.Strategy.from_dict(data)


def test_failure_details_name_the_log_whatever_the_reason(registry, facts) -> None:
    log = "/s/logs/sc1_playbook_output.log"
    assert model.failure_details(model.STEP_PRECHECK, "Subcloud sc1 is unreachable.", log) == (
        "prestage-precheck: Subcloud sc1 is unreachable, check individual log at "
        "/s/logs/sc1_playbook_output.log for detailed output."
    )
    phase = model.phase_failure_reason("images", "sc1", log, timeout=True)
    assert model.failure_details(model.STEP_IMAGES, phase, log) == f"prestaging-images: {phase}"
    long = model.failure_details(model.STEP_PRECHECK, "x" * 5000, log)
    assert len(long) == model.DETAILS_MAX_LEN
    assert long.endswith(f"...{', ' + model.log_hint(log)}")
    assert model.failure_log_line(model.STEP_PRECHECK, "it broke") == (
        "prestage failed: prestage-precheck: it broke"
    )


def test_preconditions(registry, facts) -> None:
    strategy = build(registry, facts, cloud_name="a")
    with pytest.raises(PrestageError, match="Strategy in state initial cannot be aborted"):
        model.request_abort(strategy, orchestrator_alive=True)
    model.check_deletable(strategy)
    model.apply(strategy, {})
    with pytest.raises(PrestageError, match="Strategy in state applying cannot be applied"):
        model.apply(strategy, {})
    with pytest.raises(PrestageError, match="Strategy in state applying cannot be deleted"):
        model.check_deletable(strategy)


def test_details_are_one_line_of_at_most_1000_characters(registry, facts) -> None:
    strategy = new_strategy(registry, facts)
    model.set_step_state(strategy, "a", model.STEP_FAILED, "x\n" * 2000)
    assert len(strategy.step("a").details) == 1000
    assert "\n" not in strategy.step("a").details


def test_messages() -> None:
    assert model.phase_failure_reason("packages", "sc1", "/l/sc1_playbook_output.log") == (
        "Prestaging packages failed for subcloud sc1, check individual log at "
        "/l/sc1_playbook_output.log for detailed output."
    )
    assert model.skip_details("sc1", "Subcloud is offline.") == (
        "Prestage skipped 'sc1': Subcloud is offline."
    )


def test_round_trip_and_strict_reading(registry, facts) -> None:
    strategy = new_strategy(registry, facts)
    data = json.loads(json.dumps(strategy.to_dict()))
    assert model.Strategy.from_dict(data) == strategy
    broken = copy.deepcopy(data)
    broken["steps"][0]["state"] = "dancing"
    with pytest.raises(StateFileError, match=r"steps\[\]\.state has an unknown value 'dancing'"):
        model.Strategy.from_dict(broken)
    broken = copy.deepcopy(data)
    broken["steps"][0]["stage"] = 9
    with pytest.raises(StateFileError, match="unknown stage 9"):
        model.Strategy.from_dict(broken)
    broken = copy.deepcopy(data)
    broken["strategy"]["stop-on-failure"] = "yes"
    with pytest.raises(StateFileError, match="stop-on-failure is not true or false"):
        model.Strategy.from_dict(broken)


def test_an_abort_left_by_a_dead_orchestrator_can_be_finished(registry, facts) -> None:
    strategy = new_strategy(registry, facts)
    model.set_step_state(strategy, "a", model.STEP_PACKAGES)
    model.request_abort(strategy, orchestrator_alive=True)
    with pytest.raises(PrestageError, match="Strategy in state abort requested cannot be aborted"):
        model.request_abort(strategy, orchestrator_alive=True)
    model.request_abort(strategy, orchestrator_alive=False)  # the orchestrator died meanwhile
    assert strategy.state == model.ABORTED
    assert strategy.step("a").state == model.STEP_ABORTED


def test_an_abort_ends_aborted_even_if_the_running_steps_complete(registry, facts) -> None:
    strategy = new_strategy(registry, facts)
    model.set_step_state(strategy, "a", model.STEP_PACKAGES)
    model.set_step_state(strategy, "c", model.STEP_PACKAGES)
    model.request_abort(strategy, orchestrator_alive=True)
    model.set_step_state(strategy, "a", model.STEP_COMPLETE)
    assert strategy.state == model.ABORTING
    model.set_step_state(strategy, "c", model.STEP_COMPLETE)
    assert strategy.state == model.ABORTED
