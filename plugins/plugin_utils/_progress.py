# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""The run's progress as lines in the playbook's own output (and so in an AWX job's output).

Pure logic over the model, driven by the prestage_state callback: a line when a stage starts, one
per subcloud that is skipped (with its reason) or fails (with its details), a counts line - the
one `dcprestage strategy-step list` prints - when the counts changed, at most one per interval
(and a repeat after HEARTBEAT seconds without a change, so a long phase still shows the run is
alive), and at the end a summary: the counts, the failed subclouds with their reasons and logs,
the slowest subclouds.

Cheap at 5,000 steps: nothing is counted until a line is due.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ansible_collections.distcloud.prestage.plugins.plugin_utils import _strategy as model

PREFIX = "PRESTAGE"
DEFAULT_INTERVAL = 5.0
HEARTBEAT = 60.0
SLOWEST = 5
FAILED_SHOWN = 50


def stage_line(strategy: model.Strategy, number: int) -> str:
    """`PRESTAGE stage 2/3 started: 12 subclouds of group Edge_Serial, serial (1 at a time)`."""
    stage = strategy.stage(number)
    count = sum(1 for step in strategy.steps if step.stage == number)
    group = f" of group {stage.group}" if stage.group else ""
    apply_type = stage.subcloud_apply_type or "parallel"
    return (
        f"{PREFIX} stage {_position(strategy, number)} started: {count} subclouds{group}, "
        f"{apply_type} ({stage.window} at a time)"
    )


def step_line(step: model.Step) -> str | None:
    """A subcloud that ended skipped or failed, with why; None for any other state."""
    if step.skipped:
        return f"{PREFIX} {step.cloud} skipped: {step.details}"
    if step.state == model.STEP_FAILED:
        return f"{PREFIX} {step.cloud} failed: {step.details}"
    return None


def counts_line(strategy: model.Strategy, stage: int | None, now: datetime | None = None) -> str:
    where = f" stage {_position(strategy, stage)}:" if stage is not None else ""
    return f"{PREFIX}{where} {model.counts_text(strategy, now)}"


def summary_lines(strategy: model.Strategy, now: datetime | None = None) -> list[str]:
    """The end of a run: counts, failed subclouds (reason and log), the slowest subclouds."""
    lines = [f"{PREFIX} SUMMARY {model.counts_text(strategy, now)}"]
    failed = [s for s in strategy.steps if s.state == model.STEP_FAILED]
    if failed:
        lines.append(f"  failed subclouds ({len(failed)}):")
        width = max(len(s.cloud) for s in failed[:FAILED_SHOWN])
        lines += [f"    {s.cloud:<{width}}  {s.details}" for s in failed[:FAILED_SHOWN]]
        if len(failed) > FAILED_SHOWN:
            lines.append(
                f"    ... and {len(failed) - FAILED_SHOWN} more (dcprestage strategy-step list)"
            )
    timed = [(took, s) for s in strategy.steps if not s.skipped and (took := _took(s)) is not None]
    if timed:
        timed.sort(key=lambda pair: -pair[0])
        slowest = timed[:SLOWEST]
        lines.append(f"  slowest subclouds ({len(slowest)} of {len(timed)}):")
        width = max(len(s.cloud) for _took_, s in slowest)
        lines += [
            f"    {s.cloud:<{width}}  {model.seconds_text(took):>12}  {s.state}"
            for took, s in slowest
        ]
    return lines


def _took(step: model.Step) -> float | None:
    return step.duration() if step.finished_at else None


def _position(strategy: model.Strategy, number: int) -> str:
    numbers = [stage.number for stage in strategy.stages]
    index = numbers.index(number) + 1 if number in numbers else number
    return f"{index}/{len(numbers)}"


@dataclass
class Progress:
    """When the run's lines are due. clock is the caller's monotonic clock, in seconds; revision
    counts the strategy's changes (StrategyRun.revision)."""

    interval: float = DEFAULT_INTERVAL
    stage: int | None = None
    _revision: int = 0  # of the last counts line
    _last: float | None = None  # when the last counts line was composed
    _ended: set[str] = field(default_factory=set)

    def step_entered(self, strategy: model.Strategy, step: model.Step) -> list[str]:
        """A step entered a state: a stage line when it is the first of its stage."""
        if step.stage == self.stage or not step.in_progress:
            return []
        self.stage = step.stage
        return [stage_line(strategy, step.stage)]

    def step_ended(self, step: model.Step) -> list[str]:
        """A step became final: its line when it was skipped or failed (once per subcloud)."""
        line = step_line(step)
        if line is None or step.cloud in self._ended:
            return []
        self._ended.add(step.cloud)
        return [line]

    def due(self, clock: float, revision: int) -> bool:
        changed = revision != self._revision
        if self._last is None:
            return changed
        waited = clock - self._last
        return (changed and waited >= self.interval) or waited >= max(HEARTBEAT, self.interval)

    def counts(
        self, strategy: model.Strategy, clock: float, revision: int, now: datetime | None = None
    ) -> str:
        self._revision = revision
        self._last = clock
        return counts_line(strategy, self.stage, now)
