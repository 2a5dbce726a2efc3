"""The strategy model's rules: create selection, stages, transitions, roll-up, strict reading."""

from __future__ import annotations

import copy
import json

import pytest

from ansible_collections.distcloud.prestage.plugins.plugin_utils import _strategy as model
from ansible_collections.distcloud.prestage.plugins.plugin_utils._config import (
    config_from_options,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import (
    PrestageError,
    StateFileError,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._registry import parse_registry

REGISTRY = """
groups:
  - {id: 1, name: Default}
  - {id: 2, name: Fast, update_apply_type: parallel, max_parallel_subclouds: 3}
  - {id: 3, name: Slow, update_apply_type: serial, max_parallel_subclouds: 4}
subclouds:
  - {id: 5, name: e, group: Slow, oam_floating_address: 10.0.0.5, software_version: "22.12"}
  - {id: 1, name: a, group: Fast, oam_floating_address: 10.0.0.1, software_version: "22.12"}
  - {id: 2, name: b, group: Default, oam_floating_address: 10.0.0.2, software_version: "22.12"}
  - {id: 3, name: c, group: Fast, oam_floating_address: 10.0.0.3, software_version: "24.09"}
  - {id: 4, name: d, group: Default, availability: offline, oam_floating_address: 10.0.0.4,
     software_version: "22.12"}
"""


@pytest.fixture
def registry():
    return parse_registry(REGISTRY, "registry.yml")


@pytest.fixture
def config(tmp_path):
    (tmp_path / "feed" / "rel-22.12").mkdir(parents=True)
    return config_from_options(
        "registry.yml",
        {"release": "24.09", "feed_dir": "feed", "software_dir": "software"},
        str(tmp_path),
        "subclouds.yml",
    )


def build(registry, config, **options):
    return model.build_strategy(model.CreateRequest(**options), config, registry, {})


def test_all_subclouds_are_staged_by_group_in_group_order(registry, config) -> None:
    strategy = build(registry, config)
    assert [(s.number, s.group, s.window) for s in strategy.stages] == [
        (1, "Default", 2),
        (2, "Fast", 3),
        (3, "Slow", 1),
    ]
    assert [(s.cloud, s.stage) for s in strategy.steps] == [
        ("b", 1), ("a", 2), ("c", 2), ("e", 3),
    ]  # fmt: skip
    assert strategy.row()[1:3] == (None, None)


def test_explicit_parallelism_is_one_stage_in_id_order(registry, config) -> None:
    strategy = build(registry, config, max_parallel_subclouds=5)
    assert [s.cloud for s in strategy.steps] == ["a", "b", "c", "e"]
    assert strategy.stages[0].window == 5
    assert strategy.row()[1:3] == (None, 5)


def test_serial_group_window_is_one_but_shows_its_settings(registry, config) -> None:
    strategy = build(registry, config, group="Slow")
    assert strategy.row()[1:3] == ("serial", 4)
    assert strategy.stages[0].window == 1


def test_release_defaults_to_the_system_controller(registry, config) -> None:
    assert build(registry, config, cloud_name="a").release == "24.09"
    assert build(registry, config, cloud_name="a", release="22.12").release == "22.12"


def new_strategy(registry, config, **options):
    strategy = build(registry, config, group="Fast", **options)
    model.apply(strategy, {"pid": None})
    return strategy


def test_step_lifecycle_sets_times_and_rolls_up(registry, config) -> None:
    strategy = new_strategy(registry, config)
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


def test_steps_do_not_go_back_or_leave_a_final_state(registry, config) -> None:
    strategy = new_strategy(registry, config)
    model.set_step_state(strategy, "a", model.STEP_PACKAGES)
    with pytest.raises(PrestageError, match="cannot go back"):
        model.set_step_state(strategy, "a", model.STEP_PRECHECK)
    model.set_step_state(strategy, "a", model.STEP_FAILED, "boom")
    with pytest.raises(PrestageError, match="is failed and cannot become"):
        model.set_step_state(strategy, "a", model.STEP_COMPLETE)


def test_any_failure_makes_the_strategy_failed(registry, config) -> None:
    strategy = new_strategy(registry, config)
    model.set_step_state(strategy, "a", model.STEP_FAILED, "boom")
    assert strategy.state == model.APPLYING  # without stop-on-failure others continue
    assert model.admitting(strategy)
    model.set_step_state(strategy, "c", model.STEP_COMPLETE)
    assert strategy.state == model.FAILED


def test_stop_on_failure_fails_at_once_and_stops_admitting(registry, config) -> None:
    strategy = new_strategy(registry, config, stop_on_failure=True)
    model.set_step_state(strategy, "c", model.STEP_PACKAGES)
    model.set_step_state(strategy, "a", model.STEP_FAILED, "boom")
    assert strategy.state == model.FAILED
    assert not model.admitting(strategy)
    model.set_step_state(strategy, "c", model.STEP_COMPLETE)  # a running step still finishes
    assert strategy.state == model.FAILED


def test_abort_with_a_live_orchestrator(registry, config) -> None:
    strategy = new_strategy(registry, config)
    model.set_step_state(strategy, "a", model.STEP_PACKAGES)
    model.request_abort(strategy, orchestrator_alive=True)
    assert strategy.state == model.ABORT_REQUESTED
    assert strategy.step("c").state == model.STEP_ABORTED
    assert not model.admitting(strategy)
    model.set_step_state(strategy, "a", model.STEP_IMAGES)
    assert strategy.state == model.ABORTING
    model.set_step_state(strategy, "a", model.STEP_COMPLETE)
    assert strategy.state == model.ABORTED


def test_abort_without_an_orchestrator_finishes_at_once(registry, config) -> None:
    strategy = new_strategy(registry, config)
    model.set_step_state(strategy, "a", model.STEP_PACKAGES)
    model.request_abort(strategy, orchestrator_alive=False)
    assert strategy.state == model.ABORTED
    assert strategy.step("a").details == "prestaging-packages: the orchestrator stopped"


def test_resume_reruns_interrupted_steps_only(registry, config) -> None:
    strategy = new_strategy(registry, config)
    model.set_step_state(strategy, "a", model.STEP_COMPLETE)
    model.set_step_state(strategy, "c", model.STEP_PACKAGES)
    model.resume(strategy, {"pid": 1})
    assert strategy.step("a").state == model.STEP_COMPLETE
    assert strategy.step("c").state == model.STEP_INITIAL
    assert strategy.orchestrator == {"pid": 1}


def test_preconditions(registry, config) -> None:
    strategy = build(registry, config, cloud_name="a")
    with pytest.raises(PrestageError, match="Strategy in state initial cannot be aborted"):
        model.request_abort(strategy, orchestrator_alive=True)
    model.check_deletable(strategy)
    model.apply(strategy, {})
    with pytest.raises(PrestageError, match="Strategy in state applying cannot be applied"):
        model.apply(strategy, {})
    with pytest.raises(PrestageError, match="Strategy in state applying cannot be deleted"):
        model.check_deletable(strategy)


def test_details_are_one_line_of_at_most_1000_characters(registry, config) -> None:
    strategy = new_strategy(registry, config)
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


def test_round_trip_and_strict_reading(registry, config) -> None:
    strategy = new_strategy(registry, config)
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


def test_an_abort_left_by_a_dead_orchestrator_can_be_finished(registry, config) -> None:
    strategy = new_strategy(registry, config)
    model.set_step_state(strategy, "a", model.STEP_PACKAGES)
    model.request_abort(strategy, orchestrator_alive=True)
    with pytest.raises(PrestageError, match="Strategy in state abort requested cannot be aborted"):
        model.request_abort(strategy, orchestrator_alive=True)
    model.request_abort(strategy, orchestrator_alive=False)  # the orchestrator died meanwhile
    assert strategy.state == model.ABORTED
    assert strategy.step("a").state == model.STEP_ABORTED


def test_an_abort_ends_aborted_even_if_the_running_steps_complete(registry, config) -> None:
    strategy = new_strategy(registry, config)
    model.set_step_state(strategy, "a", model.STEP_PACKAGES)
    model.set_step_state(strategy, "c", model.STEP_PACKAGES)
    model.request_abort(strategy, orchestrator_alive=True)
    model.set_step_state(strategy, "a", model.STEP_COMPLETE)
    assert strategy.state == model.ABORTING
    model.set_step_state(strategy, "c", model.STEP_COMPLETE)
    assert strategy.state == model.ABORTED
