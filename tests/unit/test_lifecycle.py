"""Who may run a strategy (plugins/plugin_utils/_lifecycle.py): the one rule the CLI's apply, the
prestage_strategy action and the state callback share, with the messages each shows."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from ansible_collections.distcloud.prestage.plugins.plugin_utils import _lifecycle as lifecycle
from ansible_collections.distcloud.prestage.plugins.plugin_utils import _strategy as model
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError
from ansible_collections.distcloud.prestage.plugins.plugin_utils._orchestrator import (
    orchestrator_record,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._registry import parse_registry
from tests.conftest import sc_facts

REGISTRY = """
groups:
  - {id: 1, name: Default}
subclouds:
  - {id: 1, name: a, group: Default, oam_floating_address: 10.0.0.1, software_version: "24.09"}
  - {id: 2, name: b, group: Default, oam_floating_address: 10.0.0.2, software_version: "24.09"}
"""


def strategy() -> model.Strategy:
    registry = parse_registry(REGISTRY, "registry.yml")
    return model.build_strategy(model.CreateRequest(), sc_facts(), registry, {})


@pytest.fixture
def other_process() -> Iterator[dict]:
    """The record of a live process that is not an ancestor of this one."""
    child = subprocess.Popen(["sleep", "300"])
    try:
        yield orchestrator_record(child.pid, via=lifecycle.CLI)
    finally:
        child.kill()
        child.wait()


def gone() -> dict:
    record = orchestrator_record(os.getpid(), via=lifecycle.CLI)
    record["start-ticks"] = -1  # the pid was reused: not the process that applied it
    return record


def test_initial_is_applied() -> None:
    plan = strategy()
    assert lifecycle.refusal(plan) is None
    me = orchestrator_record(os.getpid(), via=lifecycle.PLAY)
    assert lifecycle.claim(plan, me, via=lifecycle.PLAY) == lifecycle.APPLIED
    assert plan.state == model.APPLYING
    assert plan.orchestrator is me


def test_applying_with_its_orchestrator_gone_is_resumed() -> None:
    plan = strategy()
    model.apply(plan, gone())
    plan.steps[0].state = model.STEP_PRECHECK
    assert lifecycle.claim(plan, {}, via=lifecycle.CLI) == lifecycle.RESUMED
    assert plan.steps[0].state == model.STEP_INITIAL
    assert plan.steps[0].attempts[-1].reason.startswith("the orchestrator (pid ")


def test_a_live_orchestrator_refuses_with_each_callers_message(other_process) -> None:
    plan = strategy()
    model.apply(plan, other_process)
    problem = lifecycle.refusal(plan, take_over=True)
    assert problem is not None
    assert problem.code == lifecycle.RUNNING
    child = other_process["pid"]
    for via, message in (
        (lifecycle.CLI, "Strategy in state applying cannot be applied"),
        (lifecycle.PLAY, f"The prestage strategy is being applied by process {child}"),
    ):
        with pytest.raises(PrestageError) as caught:
            lifecycle.claim(plan, {}, via=via, take_over=True)
        assert str(caught.value) == message
    assert plan.orchestrator is other_process  # unchanged


def test_the_play_dcprestage_started_takes_over() -> None:
    plan = strategy()
    model.apply(plan, {})
    lifecycle.launched(plan, os.getpid())  # this process stands for `dcprestage ... apply`
    assert lifecycle.refusal(plan) is not None  # not without take_over
    play = orchestrator_record(os.getpid(), via=lifecycle.PLAY)
    assert lifecycle.claim(plan, play, via=lifecycle.PLAY, take_over=True) == lifecycle.TAKEN_OVER
    assert plan.orchestrator["applied-by"] == lifecycle.CLI
    assert plan.state == model.APPLYING


def test_a_finished_strategy_is_only_deleted() -> None:
    plan = strategy()
    plan.state = model.COMPLETE
    problem = lifecycle.refusal(plan, take_over=True)
    assert problem is not None
    assert problem.code == lifecycle.FINISHED
    assert str(problem.error(lifecycle.CLI)) == "Strategy in state complete cannot be applied"
    assert str(problem.error(lifecycle.PLAY)) == (
        "Strategy in state complete cannot be applied; delete it first "
        "('dcprestage prestage-strategy delete')"
    )


def test_adopt_keeps_who_applied_it() -> None:
    plan = strategy()
    with pytest.raises(PrestageError, match=r"^Strategy in state initial is not being applied$"):
        lifecycle.adopt(plan, os.getpid(), 30.0)
    model.apply(plan, {})
    lifecycle.launched(plan, 1)
    lifecycle.adopt(plan, os.getpid(), 30.0)
    assert plan.orchestrator["pid"] == os.getpid()
    assert plan.orchestrator["via"] == lifecycle.CLI
    assert plan.orchestrator["applied-by"] == lifecycle.CLI
    assert plan.orchestrator["abort-timeout"] == 30.0
