"""The picture of a run (_timeline.render_report): segments from the recorded phases, a running
step up to now, earlier attempts, the occupancy over time, escaping, and its size at 5,000 steps."""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from pathlib import Path

from ansible_collections.distcloud.prestage.plugins.plugin_utils import _strategy as model
from ansible_collections.distcloud.prestage.plugins.plugin_utils import _timeline as timeline
from ansible_collections.distcloud.prestage.plugins.plugin_utils._report_file import (
    default_report_path,
    prune_reports,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._run import StrategyRun
from ansible_collections.distcloud.prestage.plugins.plugin_utils._store import StateStore
from tests.synthetic_run import T0, stamp, synthetic_strategy
from tests.unit.test_window_and_run import make_run

P, K, I = model.STEP_PRECHECK, model.STEP_PACKAGES, model.STEP_IMAGES  # noqa: E741


def _strategy(steps: list[model.Step], state: str = model.COMPLETE, **kw) -> model.Strategy:
    return model.Strategy(
        release="25.09", for_sw_deploy=False, subcloud_apply_type="parallel",
        max_parallel_subclouds=kw.get("window", 2), stop_on_failure=False, force=False,
        cloud_name=None, group=kw.get("group"),
        stages=[model.Stage(1, kw.get("group"), "parallel", kw.get("window", 2))],
        steps=steps, state=state, created_at=stamp(T0),
    )  # fmt: skip


def _step(cloud: str, start: float | None, phases: list[tuple[str, float]], **kw) -> model.Step:
    """A step that started start seconds after T0 and went through phases (state, offset)."""
    final = phases and phases[-1][0] in model.STEP_FINAL
    return model.Step(
        cloud=cloud, stage=1, state=phases[-1][0] if phases else model.STEP_INITIAL,
        details=kw.get("details", ""),
        started_at=stamp(T0 + timedelta(seconds=start)) if start is not None else None,
        finished_at=(
            stamp(T0 + timedelta(seconds=start + phases[-1][1]))
            if final and start is not None else kw.get("finished_at")
        ),
        phases=[model.Phase(s, o) for s, o in phases], attempts=kw.get("attempts", []),
    )  # fmt: skip


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_each_phase_is_a_segment_until_the_next_one() -> None:
    step = _step("sc1", 10, [(P, 0), (K, 2), (I, 5.5), (model.STEP_COMPLETE, 9)])
    segments = timeline.step_segments(step, now=_at(100))
    assert [(s.state, s.start, s.end, s.old) for s in segments] == [
        (P, _at(10), _at(12), False),
        (K, _at(12), _at(15.5), False),
        (I, _at(15.5), _at(19), False),
    ]


def test_a_running_step_extends_to_now_and_counts_as_in_progress() -> None:
    running = _step("sc1", 0, [(P, 0), (K, 3)])
    done = _step("sc2", 0, [(P, 0), (model.STEP_COMPLETE, 4)])
    segments = timeline.step_segments(running, now=_at(30))
    assert segments[-1] == timeline.Segment(K, _at(3), _at(30))
    assert timeline.occupancy([running, done], now=_at(30)) == [
        (_at(0), 2),
        (_at(4), 1),
        (_at(30), 0),
    ]
    page = timeline.render_report(
        _strategy([running, done], model.APPLYING), title="t", now=_at(30)
    )
    assert "running at" in page and "30.0 s so far" in page
    assert 'class="win"' in page  # the line of now across the bars


def test_earlier_attempts_are_drawn_fainter_before_the_current_one() -> None:
    attempt = model.Attempt(1, stamp(_at(0)), stamp(_at(7)), K, "the orchestrator stopped",
                            phases=[model.Phase(P, 0), model.Phase(K, 2)])  # fmt: skip
    step = _step("sc1", 20, [(P, 0), (model.STEP_COMPLETE, 1)], attempts=[attempt])
    segments = timeline.step_segments(step, now=_at(100))
    assert [(s.state, s.start, s.end, s.old) for s in segments] == [
        (P, _at(0), _at(2), True),
        (K, _at(2), _at(7), True),
        (P, _at(20), _at(21), False),
    ]
    # the interrupted attempt occupied the window too
    assert timeline.occupancy([step], now=_at(100)) == [
        (_at(0), 1), (_at(7), 0), (_at(20), 1), (_at(21), 0),
    ]  # fmt: skip
    page = timeline.render_report(_strategy([step]), title="t", now=_at(100))
    assert page.count('class="p0 old"') == 1 and page.count('class="p1 old"') == 1
    assert "attempt 1: prestaging-packages" in page  # in the step's hover text


def test_occupancy_counts_overlaps_and_merges_simultaneous_changes() -> None:
    steps = [
        _step("a", 0, [(P, 0), (model.STEP_COMPLETE, 10)]),
        _step("b", 0, [(P, 0), (model.STEP_FAILED, 5)]),
        _step("c", 5, [(P, 0), (model.STEP_COMPLETE, 10)]),  # starts as b ends: no change at 5
        _step("d", None, [], finished_at=stamp(_at(1))),  # aborted while waiting: never ran
    ]
    points = timeline.occupancy(steps, now=_at(99))
    assert points == [(_at(0), 2), (_at(10), 1), (_at(15), 0)]
    # per column of 5 s: the most at any moment of the column
    assert timeline.occupancy_columns(points, _at(0), 5.0, 4) == [2, 2, 1, 0]
    # a column shorter than the changes keeps the peak
    assert timeline.occupancy_columns(points, _at(0), 20.0, 1) == [2]


def test_final_states_are_marked_and_a_skip_is_told_from_a_completion() -> None:
    skipped = _step("sc1", 0, [(P, 0), (model.STEP_COMPLETE, 1)],
                    details=model.skip_details("sc1", "already prestaged"))  # fmt: skip
    failed = _step("sc2", 0, [(P, 0), (K, 1), (model.STEP_FAILED, 3)], details="packages: no")
    aborted = _step("sc3", None, [], finished_at=stamp(_at(2)))
    aborted.state = model.STEP_ABORTED
    done = _step("sc4", 0, [(P, 0), (model.STEP_COMPLETE, 2)])
    assert [timeline.step_outcome(s) for s in (skipped, failed, aborted, done)] == [
        timeline.SKIPPED, model.STEP_FAILED, model.STEP_ABORTED, model.STEP_COMPLETE,
    ]  # fmt: skip
    page = timeline.render_report(_strategy([skipped, failed, aborted, done]), title="t")
    for css in ("fs", "ff", "fa", "fc"):
        assert page.count(f'<rect class="{css}"') == 1, css
    assert page.count('<rect class="fr"') == 1  # the failed step's row is highlighted
    assert ">Failed: 1<" in page and "packages: no" in page


def test_a_step_recorded_before_phases_existed_is_one_plain_segment() -> None:
    step = _step("sc1", 0, [])
    step.state, step.finished_at = model.STEP_COMPLETE, stamp(_at(8))
    assert [(s.state, s.start, s.end) for s in timeline.step_segments(step, _at(9))] == [
        ("", _at(0), _at(8))
    ]
    assert '<rect class="pu"' in timeline.render_report(_strategy([step]), title="t")


def test_every_text_from_the_strategy_is_escaped() -> None:
    evil = "<script>alert('x')</script>&\"quoted\""
    step = _step(f"sc{evil}", 0, [(P, 0), (model.STEP_FAILED, 1)], details=f"reason {evil}")
    strategy = _strategy([step], model.FAILED, group=f"g{evil}")
    page = timeline.render_report(strategy, title=f"title {evil}", now=_at(5))
    assert "<script" not in page and "alert('x')" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;&quot;quoted&quot;" in page
    # every SVG is well-formed XML (an unescaped name would break it)
    for svg in re.findall(r"<svg .*?</svg>", page, flags=re.S):
        ET.fromstring(svg)


def test_a_strategy_that_has_not_started_has_rows_but_no_bars() -> None:
    strategy = _strategy([_step("sc1", None, []), _step("sc2", None, [])], model.INITIAL)
    page = timeline.render_report(strategy, title="t", now=_at(60))
    assert page.count(">sc1<") == 1 and page.count(">sc2<") == 1
    assert not re.search(r'<rect class="(p\d|f[csfa]|pu)', page)
    assert "<th>started</th><td>-</td>" in page


def test_one_rect_per_segment_and_the_window_of_each_stage() -> None:
    strategy = synthetic_strategy(100)
    page = timeline.render_report(strategy, title="t", now=_at(10**5))
    segments = sum(len(timeline.step_segments(s, _at(10**5))) for s in strategy.steps)
    assert len(re.findall(r'<rect class="p[0-2u]', page)) == segments
    for stage in strategy.stages:
        assert f"stage {stage.number}: window {stage.window}" in page


def test_five_thousand_steps_render_quickly_and_compactly(tmp_path: Path) -> None:
    strategy = synthetic_strategy(5000)
    started = time.perf_counter()
    page = timeline.render_report(strategy, title="5000", now=_at(10**5))
    seconds = time.perf_counter() - started
    size = len(page.encode())
    (tmp_path / "figures.txt").write_text(f"{seconds:.3f} s, {size} bytes\n")
    print(f"5,000 steps: {seconds:.3f} s, {size / 1e6:.2f} MB")
    assert size < 4_000_000  # ~ 500 bytes a step
    assert seconds < 10  # ~1 s on the development machine; loose for a shared CI runner


def test_a_finished_run_keeps_its_report_and_a_failure_to_write_is_a_warning(
    tmp_path: Path,
) -> None:
    run: StrategyRun = make_run(tmp_path, [(None, 2, ["sc1", "sc2"])])
    run.start(["sc1", "sc2"])
    run.enter_phase("sc1", "precheck")
    run.complete("sc1")
    run.fail("sc2", "disk <full>")
    run.finish()
    assert run.keep_report() is None
    reports = list((tmp_path / "state" / "reports").iterdir())
    assert len(reports) == 1 and reports[0].suffix == ".html"
    assert oct(reports[0].stat().st_mode & 0o777) == "0o600"
    assert oct(reports[0].parent.stat().st_mode & 0o777) == "0o700"
    assert "disk &lt;full&gt;" in reports[0].read_text()

    blocked = make_run(tmp_path / "other", [(None, 1, ["sc1"])])
    (tmp_path / "other" / "state" / "reports").write_text("not a directory")
    blocked.start(["sc1"])
    blocked.complete("sc1")
    blocked.finish()
    warning = blocked.keep_report()
    assert warning is not None and warning.startswith("Cannot keep the report of this prestage run")
    assert blocked.current().state == model.COMPLETE


def test_a_strategy_still_running_keeps_no_report(tmp_path: Path) -> None:
    run = make_run(tmp_path, [(None, 2, ["sc1", "sc2"])])
    run.start(["sc1"])
    run.complete("sc1")
    run.flush(force=True)
    assert run.keep_report() is None
    assert not (tmp_path / "state" / "reports").exists()


def test_the_default_path_is_labelled_by_the_strategy_creation(tmp_path: Path) -> None:
    store = StateStore(str(tmp_path / "state"))
    strategy = _strategy([])
    strategy.created_at = "2026-12-01 03:18:14.123456"
    assert default_report_path(store, strategy) == str(
        tmp_path / "state" / "reports" / "2026-12-01T03-18-14.html"
    )


def test_kept_reports_are_pruned_to_the_newest(tmp_path: Path) -> None:
    names = [f"2026-12-0{day}T10-00-00.html" for day in range(1, 6)]
    for name in names:
        (tmp_path / name).write_text("<html></html>")
    (tmp_path / "notes.txt").write_text("not a report")
    assert prune_reports(str(tmp_path), keep=2) == names[:3]
    assert sorted(p.name for p in tmp_path.iterdir()) == [*names[3:], "notes.txt"]
