"""`dcprestage prestage-strategy report`: the picture of a run as a browser shows it (headless
Chromium: a bar for every step, the failure colour on the failed ones), where it is written and
kept, and one-line errors for a strategy file that cannot be read."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from ansible_collections.distcloud.prestage.plugins.plugin_utils import _strategy as model
from tests.conftest import Workspace
from tests.integration import test_cli_apply
from tests.integration.test_cli_apply import Gated, _alive
from tests.report_picture import bar_bands, chromium, page_height, read_png, screenshot
from tests.synthetic_run import synthetic_strategy

gated = test_cli_apply.gated  # a workspace whose runs are the gated harness


def need_chromium() -> None:
    """Skip without Chromium - unless the suite runs where bootstrap installed it (scripts/test
    sets DCPRESTAGE_REQUIRE_CHROMIUM): there a missing browser is a failure."""
    if chromium() is None:
        if os.environ.get("DCPRESTAGE_REQUIRE_CHROMIUM"):
            pytest.fail("chromium is not installed (scripts/bootstrap installs it)")
        pytest.skip("chromium is not installed (scripts/bootstrap installs it)")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _save(ws: Workspace, strategy: model.Strategy) -> None:
    ws.state_dir.mkdir(mode=0o700, exist_ok=True)
    (ws.state_dir / "strategy.json").write_text(json.dumps(strategy.to_dict()))


def check_bars(
    report: Path, strategy: model.Strategy, tmp_path: Path, width: int = 1300
) -> list[str]:
    """Screenshot report and check one bar per step, in strategy order, the failure colour on
    exactly the failed steps'. Returns each bar's outcome as its colours show it."""
    png = tmp_path / "report.png"
    screenshot(report, png, width, page_height(strategy), tmp_path / "chromium-profile")
    bands = bar_bands(read_png(png))
    assert len(bands) == len(strategy.steps)
    failed = [model.STEP_FAILED in band.states for band in bands]
    assert failed == [step.state == model.STEP_FAILED for step in strategy.steps]
    return [",".join(sorted(band.states)) for band in bands]


def test_a_hundred_steps_draw_a_hundred_bars_and_the_failed_ones_in_red(
    workspace: Workspace, tmp_path: Path
) -> None:
    need_chromium()
    strategy = synthetic_strategy(100)
    assert 0 < sum(s.state == model.STEP_FAILED for s in strategy.steps) < 100
    _save(workspace, strategy)
    printed = workspace.run("prestage-strategy", "report", check=True).stdout.strip()
    report = Path(printed)
    assert report == workspace.state_dir / "reports" / "2026-12-01T09-59-00.html"
    assert _mode(report) == 0o600 and _mode(report.parent) == 0o700
    outcomes = check_bars(report, strategy, tmp_path)
    # the phases the colours show are the phases recorded
    for step, shown in zip(strategy.steps, outcomes, strict=True):
        expected = {p.state for p in step.phases} | (
            {"skipped"} if step.details.startswith("Prestage skipped") else set()
        )
        expected -= {model.STEP_COMPLETE} if "skipped" in expected else set()
        assert set(shown.split(",")) == expected, step.cloud


def test_report_of_a_file_to_an_output_and_one_line_errors(
    workspace: Workspace, tmp_path: Path
) -> None:
    strategy = synthetic_strategy(12)
    record = tmp_path / "record.json"
    record.write_text(json.dumps(strategy.to_dict()))
    output = tmp_path / "out" / "run.html"
    output.parent.mkdir()
    shown = workspace.run("prestage-strategy", "report", "--file", str(record), "--output",
                          str(output), check=True)  # fmt: skip
    assert shown.stdout == f"{output}\n"
    page = output.read_text()
    assert _mode(output) == 0o600
    assert page.startswith("<!DOCTYPE html>") and "subcloud12" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert not (workspace.state_dir / "reports").exists()  # --file reads no state dir

    newer = strategy.to_dict() | {"schema": model.SCHEMA + 1}
    (tmp_path / "newer.json").write_text(json.dumps(newer))
    (tmp_path / "corrupt.json").write_text('{"schema": 1, "strat')
    (tmp_path / "wrong.json").write_text(json.dumps({"schema": 1, "strategy": []}))
    (tmp_path / "latin1.json").write_bytes(b'{"x": "\xe9"}')
    cases = {
        "newer.json": f"was written by a newer distcloud.prestage (schema {model.SCHEMA + 1}",
        "corrupt.json": "is corrupt (not JSON)",
        "wrong.json": "strategy",
        "latin1.json": "not UTF-8 text",
        "missing.json": "does not exist",
    }
    for name, reason in cases.items():
        error = workspace.fail("prestage-strategy", "report", "--file", str(tmp_path / name),
                               "--output", str(tmp_path / "x.html"))  # fmt: skip
        assert str(tmp_path / name) in error and reason in error, error
    assert not (tmp_path / "x.html").exists()
    assert workspace.fail("prestage-strategy", "report") == "Strategy of type 'prestage' not found"
    error = workspace.fail("prestage-strategy", "report", "--file", str(record), "--output",
                           str(tmp_path / "nowhere" / "x.html"))  # fmt: skip
    assert error.startswith(f"Cannot write {tmp_path / 'nowhere' / 'x.html'}")
    error = workspace.fail("prestage-strategy", "report", "--file", str(record), "--output",
                           str(tmp_path))  # fmt: skip
    assert error == f"Cannot write {tmp_path}: it is a directory"
    assert list(tmp_path.glob(".dcprestage-tmp*")) == []


def test_a_finished_run_keeps_its_report_and_a_live_one_can_be_drawn(
    gated: Gated, tmp_path: Path
) -> None:
    need_chromium()
    ws = gated.ws
    ws.run("prestage-strategy", "create", "--group", "Edge_Serial", check=True)
    ws.run("prestage-strategy", "apply", check=True)
    clouds = [s["cloud"] for s in gated.strategy()["steps"]]
    gated.open(clouds[0])
    gated.wait_states({clouds[0]: "complete", clouds[1]: "prestage-precheck"})
    # live: the running step is drawn up to now, the waiting ones have no bar yet
    live = Path(ws.run("prestage-strategy", "report", check=True).stdout.strip())
    assert "so far" in live.read_text()
    png = tmp_path / "live.png"
    current = model.Strategy.from_dict(gated.strategy())
    screenshot(live, png, 1300, page_height(current), tmp_path / "profile")
    assert len(bar_bands(read_png(png))) == sum(s.started_at is not None for s in current.steps)
    gated.open(clouds[1], "fail")
    for cloud in clouds[2:]:
        gated.open(cloud)
    final = gated.wait(lambda s: s["strategy"]["state"] == "failed", "the run to end failed")
    pid = final["strategy"]["orchestrator"]["pid"]
    gated.wait(lambda s: not _alive(pid), "the orchestrator to exit")  # it writes the report last
    strategy = model.Strategy.from_dict(final)
    # the callback kept the finished strategy's report, over the live one of the same strategy
    kept = ws.state_dir / "reports" / live.name
    assert list(kept.parent.iterdir()) == [kept]
    page = kept.read_text()
    assert "so far" not in page and "Failed: 1" in page
    check_bars(kept, strategy, tmp_path)
    # and it stays when the strategy is deleted
    ws.run("prestage-strategy", "delete", check=True)
    assert kept.exists()
