"""A real run on every subcloud of the lab, with a failure and a skip, as an operator sees it: the
playbook's own output has the progress lines (a stage's start, the skipped and the failed subcloud
with why, the counts) and the summary, the skip shows as skipped and no task banner is printed
empty but the include's; the finished run keeps its report, `dcprestage prestage-strategy report`
writes it again, and headless Chromium draws a bar for every step, the failed one in the failure
colour.

Run it on a big lab with DCPRESTAGE_LAB_SUBCLOUDS=100 (the window grows with the lab)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from ansible_collections.distcloud.prestage.plugins.plugin_utils import _strategy as model
from tests.integration.orchestration.test_lab_orchestration import RELEASE, Ops
from tests.integration.test_cli_report import check_bars, need_chromium

pytestmark = pytest.mark.lab

BANNER = re.compile(r"^(TASK|PLAY|PLAY RECAP) \[.*\*+$|^PLAY RECAP \*+$")


def test_a_lab_run_with_a_failure_shows_its_progress_and_draws_a_bar_for_every_step(
    lab, tmp_path: Path
) -> None:
    need_chromium()
    ops = Ops(lab, tmp_path)
    failing, skipped = "subcloud3", "subcloud5"  # images fail; a duplex on its standby skips
    window = max(3, len(lab.subclouds) // 5)
    lab.fault("registry-down", failing)
    lab.fault("standby", skipped)
    try:
        result = ops.playbook("-e", f"release={RELEASE}", "-e", f"max_parallel_subclouds={window}")
    finally:
        lab.fault("registry-down", failing, undo=True)
        lab.fault("standby", skipped, undo=True)
    out = result.stdout
    (tmp_path / "playbook.out").write_text(out)  # for a look after a failure
    assert result.returncode == 2, out[-4000:]  # a failed subcloud is a failed host
    strategy = model.Strategy.from_dict(ops.strategy())
    states = {step.cloud: step.state for step in strategy.steps}
    assert strategy.state == model.FAILED and len(states) == len(lab.subclouds)
    assert states[failing] == model.STEP_FAILED
    assert strategy.step(skipped).details.startswith(model.skip_details(skipped, ""))
    assert all(s.phases for s in strategy.steps)  # each step's transitions were recorded

    check_progress(out, strategy, failing, skipped)

    kept = list((ops.state_dir / "reports").iterdir())  # by the run, when it ended
    report = Path(ops.cli("prestage-strategy", "report").stdout.strip())
    assert kept == [report]
    outcomes = dict(zip(states, check_bars(report, strategy, tmp_path), strict=True))
    assert "failed" in outcomes[failing] and "skipped" in outcomes[skipped]
    assert "prestaging-images" in outcomes[failing]  # it failed in images: that phase shows
    page = report.read_text()
    assert f"Prestaging images failed for subcloud {failing}" in page
    ops.cli("prestage-strategy", "delete")
    assert report.exists()  # kept after the strategy is gone
    ops.assert_no_password_left()


def check_progress(out: str, strategy: model.Strategy, failing: str, skipped: str) -> None:
    lines = out.splitlines()
    stages = len(strategy.stages)
    for position, stage in enumerate(strategy.stages, 1):
        count = sum(1 for s in strategy.steps if s.stage == stage.number)
        assert any(
            line.startswith(f"PRESTAGE stage {position}/{stages} started: {count} subclouds")
            for line in lines
        ), out[-4000:]
    assert f"PRESTAGE {skipped} skipped: {strategy.step(skipped).details}" in lines
    assert f"PRESTAGE {failing} failed: {strategy.step(failing).details}" in lines
    counts = [line for line in lines if re.match(r"PRESTAGE stage \d+/\d+: applying: ", line)]
    assert counts, out[-4000:]
    summary = lines.index(f"PRESTAGE SUMMARY {model.counts_text(strategy)}")
    assert lines[summary + 1 : summary + 3] == [
        "  failed subclouds (1):",
        f"    {failing}  {strategy.step(failing).details}",
    ]
    assert lines[summary + 3].startswith("  slowest subclouds (5 of ")
    # the summary comes before Ansible's recap, the progress lines before the summary
    assert summary < lines.index(next(line for line in lines if line.startswith("PLAY RECAP")))
    # Ansible's own output: the skip is a skip, and no banner is printed without a result
    assert f"skipping: [{skipped}]" in lines
    # (the roles' tasks are imported, not included per subcloud: no include banner either)
    shown = [line for line in lines if line.strip()]
    for line, following in itertools.pairwise(shown):
        if line.startswith("TASK ["):
            assert not BANNER.match(following), f"an empty banner: {line}"
    assert not [line for line in lines if line.startswith("TASK [Prestage the subcloud]")]
