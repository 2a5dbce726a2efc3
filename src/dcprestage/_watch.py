"""`strategy-step list --watch`: follow the strategy until it is final.

On a terminal the view is redrawn in place every interval: a counts line, then one line per step
(running and failed first when they do not all fit), each clipped to the terminal's width so that
a narrow terminal never wraps. Elsewhere (a pipe, a log) it prints plain lines: one per step that
changed state, and a counts line after each change.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import IO

from ansible_collections.distcloud.prestage.plugins.plugin_utils import _report as report
from ansible_collections.distcloud.prestage.plugins.plugin_utils import _strategy as model
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError

DEFAULT_INTERVAL = 2.0
MIN_INTERVAL = 0.1
MAX_INTERVAL = 3600.0
MSG_GONE = "The prestage strategy was deleted while it was watched"
MSG_NOT_APPLIED = (
    "The prestage strategy is not being applied: nothing to follow "
    "('dcprestage prestage-strategy apply' applies it)"
)
_HOME_AND_CLEAR = "\x1b[H\x1b[J"

Loader = Callable[[], "model.Strategy | None"]


def interval(text: str) -> float:
    """--interval: seconds, from MIN_INTERVAL to MAX_INTERVAL."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not MIN_INTERVAL <= value <= MAX_INTERVAL:  # also refuses nan
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds from {MIN_INTERVAL:g} to {MAX_INTERVAL:g}"
        )
    return value


def _check_followed(strategy: model.Strategy | None, load: Loader | None = None) -> model.Strategy:
    """The strategy, when something is applying it; else PrestageError. A strategy whose
    orchestrator is gone is read once more (it may have just ended) before it is given up."""
    if strategy is None:
        raise PrestageError(MSG_GONE)
    if strategy.state == model.INITIAL:
        raise PrestageError(MSG_NOT_APPLIED)
    if report.orphan_problem(strategy) is None:
        return strategy
    again = load() if load is not None else strategy
    if again is None:
        raise PrestageError(MSG_GONE)
    problem = report.orphan_problem(again)
    if problem is None:
        return again
    raise PrestageError(f"Cannot follow the prestage strategy: {problem}")


def step_line(step: model.Step, now: datetime | None = None) -> str:
    """One step in the watch view: cloud, stage, state, how long it has run, details."""
    duration = step.duration(now)
    took = model.seconds_text(duration) if duration is not None else "-"
    state = "skipped" if step.skipped else step.state
    line = f"{step.cloud:<16} {step.stage:>3}  {state:<19} {took:>10}"
    return f"{line}  {step.details}" if step.details else line


def screen(strategy: model.Strategy, width: int, height: int, now: datetime) -> list[str]:
    """The terminal view: at most height lines, none wider than width."""
    header = f"{'cloud':<16} {'stg':>3}  {'state':<19} {'duration':>10}  details"
    rows = max(height - 3, 1)
    steps = strategy.steps
    if len(steps) > rows:  # what needs looking at first, then the rest in strategy order
        first = [s for s in steps if s.in_progress or s.state == model.STEP_FAILED]
        steps = first + [s for s in steps if not (s.in_progress or s.state == model.STEP_FAILED)]
    shown = [step_line(s, now) for s in steps[:rows]]
    if len(steps) > rows:
        shown[-1] = f"... and {len(steps) - rows + 1} more"
    return [_clip(line, width) for line in (model.counts_text(strategy, now), header, *shown)]


def _terminal_size(out: IO[str]) -> os.terminal_size:
    """The size of the terminal drawn on (COLUMNS/LINES may be stale: a resize since)."""
    try:
        return os.get_terminal_size(out.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        return shutil.get_terminal_size()


def _clip(line: str, width: int) -> str:
    return line if len(line) <= width else line[: max(width - 1, 1)] + "~"


def changes(
    before: dict[str, str], strategy: model.Strategy, at: str
) -> tuple[dict[str, str], list[str]]:
    """The plain lines for the steps whose state changed since before (cloud -> state)."""
    after = {s.cloud: ("skipped" if s.skipped else s.state) for s in strategy.steps}
    lines = []
    for step in strategy.steps:
        state = after[step.cloud]
        if before.get(step.cloud, model.STEP_INITIAL) == state:  # waiting steps are not news
            continue
        detail = f": {step.details}" if step.details and step.final else ""
        lines.append(f"{at} {step.cloud} {state}{detail}")
    return after, lines


def follow(
    load: Loader,
    interval: float = DEFAULT_INTERVAL,
    out: IO[str] | None = None,
    terminal: bool | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> model.Strategy:
    """Show the strategy until it is final; returns it. PrestageError when it disappears, or
    when nothing runs it (not applied, or its orchestrator is gone): before the first view when
    so from the start."""
    out = out or sys.stdout
    terminal = out.isatty() if terminal is None else terminal
    states: dict[str, str] = {}
    first = True
    _check_followed(load())
    if terminal:
        out.write("\x1b[2J")
    while True:
        strategy = load()
        if strategy is None:
            raise PrestageError(MSG_GONE)
        if not first and strategy.state not in model.STRATEGY_FINAL:
            strategy = _check_followed(strategy, load)
        now = model.parse_time(model.now())
        if terminal:
            size = _terminal_size(out)
            lines = screen(strategy, size.columns, size.lines, now or datetime.now())
            out.write(_HOME_AND_CLEAR + "\n".join(lines) + "\n")
        else:
            states, lines = changes(states, strategy, model.now()[:19])
            if lines or first:
                out.write("\n".join([*lines, model.counts_text(strategy, now)]) + "\n")
            first = False
        out.flush()
        if strategy.state in model.STRATEGY_FINAL:
            return strategy
        sleep(interval)
