"""The watch view of `strategy-step list --watch` (src/dcprestage/_watch.py), without a run."""

from __future__ import annotations

import io
import os
import socket

import pytest

from ansible_collections.distcloud.prestage.plugins.plugin_utils import _strategy as model
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError
from ansible_collections.distcloud.prestage.plugins.plugin_utils._orchestrator import (
    orchestrator_record,
)
from dcprestage import _watch as watch

# beyond pid_max on this host: never running (another host's record would be assumed alive)
DEAD = {"pid": 2**22 + 7, "start-ticks": 1, "host": socket.gethostname()}

T0 = "2026-12-01 10:00:00.000000"


def strategy_of(count: int) -> model.Strategy:
    stage = model.Stage(1, None, "parallel", 2)
    steps = [model.Step(f"subcloud{i}", 1, created_at=T0) for i in range(1, count + 1)]
    strategy = model.Strategy(
        "24.09", False, "parallel", 2, False, False, None, None, [stage], steps, state="applying"
    )
    strategy.orchestrator = orchestrator_record(os.getpid(), via="test")  # alive: this process
    return strategy


def test_a_tall_strategy_shows_running_and_failed_first_and_says_how_many_more() -> None:
    strategy = strategy_of(30)
    model.set_step_state(strategy, "subcloud20", model.STEP_PRECHECK, at=T0)
    model.set_step_state(strategy, "subcloud25", model.STEP_FAILED, "boom", at=T0)
    now = model.parse_time("2026-12-01 10:00:05.000000")
    lines = watch.screen(strategy, width=60, height=10, now=now)
    assert len(lines) == 9  # counts, header, 7 rows (the last says how many more), the cursor's
    assert lines[0] == "applying: 30 steps: 0 complete, 0 skipped, 1 failed, 0 abor~"
    assert [line.split()[0] for line in lines[2:4]] == ["subcloud20", "subcloud25"]
    assert lines[2].split()[2:4] == ["prestage-precheck", "5.0"]
    assert lines[-1] == "... and 24 more"
    assert all(len(line) <= 60 for line in lines)


def test_a_short_strategy_keeps_its_order() -> None:
    strategy = strategy_of(3)
    model.set_step_state(strategy, "subcloud3", model.STEP_PRECHECK, at=T0)
    lines = watch.screen(strategy, width=200, height=40, now=model.parse_time(T0))
    assert [line.split()[0] for line in lines[2:]] == ["subcloud1", "subcloud2", "subcloud3"]


def test_plain_lines_only_for_changes() -> None:
    strategy = strategy_of(3)
    states, lines = watch.changes({}, strategy, "t")
    assert lines == []  # waiting steps are not news
    model.set_step_state(strategy, "subcloud1", model.STEP_PRECHECK, at=T0)
    model.set_step_state(
        strategy, "subcloud2", model.STEP_COMPLETE, model.skip_details("subcloud2", "why"), at=T0
    )
    states, lines = watch.changes(states, strategy, "t")
    assert lines == ["t subcloud1 prestage-precheck", "t subcloud2 skipped: "
                     "Prestage skipped 'subcloud2': why"]  # fmt: skip
    assert watch.changes(states, strategy, "t")[1] == []


def test_follow_ends_with_the_strategy_and_when_it_disappears() -> None:
    strategy = strategy_of(1)
    seen: list[model.Strategy | None] = [strategy]

    def load() -> model.Strategy | None:
        return seen[0]

    def tick(_seconds: float) -> None:
        model.set_step_state(strategy, "subcloud1", model.STEP_COMPLETE, at=T0)

    out = io.StringIO()
    assert watch.follow(load, 1.0, out=out, terminal=False, sleep=tick) is strategy
    assert out.getvalue().splitlines()[-1].startswith("complete: 1 steps: 1 complete")
    seen[0] = None
    with pytest.raises(PrestageError, match=watch.MSG_GONE):
        watch.follow(load, 1.0, out=io.StringIO(), terminal=False)


def test_follow_refuses_a_strategy_nothing_applies_before_drawing_anything() -> None:
    strategy = strategy_of(1)
    strategy.state = model.INITIAL
    out = io.StringIO()
    with pytest.raises(PrestageError, match=r"^The prestage strategy is not being applied"):
        watch.follow(lambda: strategy, 1.0, out=out, terminal=False)
    strategy.state, strategy.orchestrator = model.APPLYING, DEAD
    with pytest.raises(PrestageError, match=r"^Cannot follow the prestage strategy: the orch"):
        watch.follow(lambda: strategy, 1.0, out=out, terminal=False)
    assert out.getvalue() == ""


def test_follow_ends_when_the_orchestrator_dies_and_not_when_it_just_finished() -> None:
    strategy = strategy_of(1)
    reads = []

    def load() -> model.Strategy:
        reads.append(1)
        return strategy

    def crash(_seconds: float) -> None:
        strategy.orchestrator = DEAD

    with pytest.raises(PrestageError, match="is not running; 'dcprestage prestage-strategy apply"):
        watch.follow(load, 1.0, out=io.StringIO(), terminal=False, sleep=crash)
    assert len(reads) == 4  # the check, the first view, the next view, once more before giving up

    finished = strategy_of(1)
    views: list[model.Strategy] = []

    def ended(_seconds: float) -> None:  # the run ended and its process exited between reads
        finished.orchestrator = DEAD
        views.append(finished)

    def load_finished() -> model.Strategy:
        if len(views) == 2:
            done = strategy_of(1)
            model.set_step_state(done, "subcloud1", model.STEP_COMPLETE, at=T0)
            done.state, done.orchestrator = model.COMPLETE, DEAD
            return done
        if views:
            views.append(finished)
        return finished

    followed = watch.follow(load_finished, 1.0, out=io.StringIO(), terminal=False, sleep=ended)
    assert followed.state == model.COMPLETE
