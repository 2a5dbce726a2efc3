"""The run's progress lines (plugins/plugin_utils/_progress.py), without a run."""

from __future__ import annotations

from ansible_collections.distcloud.prestage.plugins.plugin_utils import _progress as progress
from ansible_collections.distcloud.prestage.plugins.plugin_utils import _strategy as model
from tests.synthetic_run import synthetic_strategy

T0 = "2026-12-01 10:00:00.000000"
T1 = "2026-12-01 10:01:05.000000"


def two_stages() -> model.Strategy:
    stages = [model.Stage(1, "First", "parallel", 2), model.Stage(2, "Edge", "serial", 5)]
    steps = [model.Step(f"subcloud{i}", 1 if i <= 3 else 2, created_at=T0) for i in range(1, 6)]
    return model.Strategy(
        "24.09", False, "parallel", 2, False, False, None, None, stages, steps, state="applying"
    )


def test_the_first_step_of_a_stage_announces_the_stage_once() -> None:
    strategy, lines = two_stages(), progress.Progress()
    model.set_step_state(strategy, "subcloud1", model.STEP_PRECHECK, at=T0)
    assert lines.step_entered(strategy, strategy.step("subcloud1")) == [
        "PRESTAGE stage 1/2 started: 3 subclouds of group First, parallel (2 at a time)"
    ]
    model.set_step_state(strategy, "subcloud2", model.STEP_PRECHECK, at=T0)
    assert lines.step_entered(strategy, strategy.step("subcloud2")) == []
    model.set_step_state(strategy, "subcloud4", model.STEP_PRECHECK, at=T0)
    assert lines.step_entered(strategy, strategy.step("subcloud4")) == [
        "PRESTAGE stage 2/2 started: 2 subclouds of group Edge, serial (1 at a time)"
    ]


def test_skipped_and_failed_subclouds_get_a_line_with_why_once() -> None:
    strategy, lines = two_stages(), progress.Progress()
    skipped = model.skip_details("subcloud1", "Subcloud is offline.")
    model.set_step_state(strategy, "subcloud1", model.STEP_COMPLETE, skipped, at=T0)
    model.set_step_state(strategy, "subcloud2", model.STEP_FAILED, "prestaging-images: boom", at=T0)
    model.set_step_state(strategy, "subcloud3", model.STEP_COMPLETE, at=T0)
    assert lines.step_ended(strategy.step("subcloud1")) == [
        "PRESTAGE subcloud1 skipped: Prestage skipped 'subcloud1': Subcloud is offline."
    ]
    assert lines.step_ended(strategy.step("subcloud2")) == [
        "PRESTAGE subcloud2 failed: prestaging-images: boom"
    ]
    assert lines.step_ended(strategy.step("subcloud2")) == []
    assert lines.step_ended(strategy.step("subcloud3")) == []


def test_counts_lines_are_due_on_a_change_at_most_once_an_interval_and_as_a_heartbeat() -> None:
    strategy, lines = two_stages(), progress.Progress(interval=5.0)
    assert not lines.due(100.0, revision=0)  # nothing happened yet
    assert lines.due(100.0, revision=1)
    model.set_step_state(strategy, "subcloud1", model.STEP_PRECHECK, at=T0)
    lines.step_entered(strategy, strategy.step("subcloud1"))
    now = model.parse_time(T1)
    assert lines.counts(strategy, 100.0, 1, now) == (
        "PRESTAGE stage 1/2: applying: 5 steps: 0 complete, 0 skipped, 0 failed, 0 aborted, "
        "1 running, 4 waiting - elapsed 1 min 05 s"
    )
    assert not lines.due(104.9, revision=2)  # changed, but within the interval
    assert lines.due(105.0, revision=2)
    assert not lines.due(159.9, revision=1)  # unchanged: the heartbeat only
    assert lines.due(160.0, revision=1)


def test_the_counts_are_strategy_step_lists_counts_line() -> None:
    strategy = synthetic_strategy(40)
    line = progress.counts_line(strategy, None)
    assert line == f"PRESTAGE {model.counts_text(strategy)}"


def test_the_summary_names_failed_subclouds_with_their_details_and_the_slowest() -> None:
    strategy = synthetic_strategy(200)
    lines = progress.summary_lines(strategy)
    failed = [s for s in strategy.steps if s.state == model.STEP_FAILED]
    assert failed and lines[0] == f"PRESTAGE SUMMARY {model.counts_text(strategy)}"
    assert lines[1] == f"  failed subclouds ({len(failed)}):"
    for step, line in zip(failed, lines[2:], strict=False):
        assert line.split(maxsplit=1) == [step.cloud, step.details]
    timed = [s for s in strategy.steps if not s.skipped and s.finished_at]
    header = lines.index(f"  slowest subclouds (5 of {len(timed)}):")
    slowest = sorted(timed, key=lambda s: -(s.duration() or 0))[:5]
    assert [line.split()[0] for line in lines[header + 1 :]] == [s.cloud for s in slowest]


def test_a_long_failure_list_is_cut_with_a_pointer() -> None:
    strategy = synthetic_strategy(2000)
    failed = [s for s in strategy.steps if s.state == model.STEP_FAILED]
    assert len(failed) > progress.FAILED_SHOWN
    lines = progress.summary_lines(strategy)
    more = len(failed) - progress.FAILED_SHOWN
    assert f"    ... and {more} more (dcprestage strategy-step list)" in lines
