# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""A picture of a run: one self-contained HTML document (inline CSS and SVG, nothing fetched) of a
prestage strategy, live or finished.

One horizontal bar per step over time, a segment per phase it went through (Step.phases, offsets
after its started_at), a mark for its final state, earlier attempts fainter in the same row; the
steps grouped by stage under a separator; above them, how many steps were in progress at each
moment against each stage's window. Hovering a bar shows the step's times, phase durations and
details (a failure's reason). Every text taken from the strategy is HTML-escaped.

Pure: the strategy in, the document out (the clock is read only when `now` is not given). Sized
for 5,000 steps: a fixed row height, one <rect> per segment, one <title> per step, the occupancy
chart sampled once per pixel column.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ansible_collections.distcloud.prestage.plugins.plugin_utils import _strategy as model

# Colours, one per thing a bar shows (tests look for them in a screenshot).
PHASE_COLOURS = {
    model.STEP_PRECHECK: "#8cb4e3",
    model.STEP_PACKAGES: "#2f6fbf",
    model.STEP_IMAGES: "#7b4bb3",
}
SKIPPED = "skipped"  # a complete step whose details say precheck skipped it
FINAL_COLOURS = {
    model.STEP_COMPLETE: "#2e9e4f",
    SKIPPED: "#e6a817",
    model.STEP_FAILED: "#e0101a",
    model.STEP_ABORTED: "#5a5a5a",
}
FAILED_COLOUR = FINAL_COLOURS[model.STEP_FAILED]
FAILED_ROW_COLOUR = "#fde2e2"  # the whole row of a failed step
BAR_AREA_COLOUR = "#f7f9fc"  # the background of the bars (and of nothing else)
UNKNOWN_PHASE_COLOUR = "#9aa5b1"  # a step recorded before phases were (no transitions)

LABEL_WIDTH = 190
CHART_WIDTH = 1000
RIGHT_MARGIN = 30
WIDTH = LABEL_WIDTH + CHART_WIDTH + RIGHT_MARGIN
ROW_HEIGHT = 12
BAR_HEIGHT = 8
STAGE_ROW_HEIGHT = 22
AXIS_HEIGHT = 24
OCCUPANCY_HEIGHT = 110
MARK_WIDTH = 3  # the final state's mark after the bar
MIN_SEGMENT = 1  # pixels: a phase of a few milliseconds still shows
LABEL_CHARS = 28
FAILED_LISTED = 50
FAILED_OPEN = 10  # more failures than this: their list starts folded
_TICKS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
          86400, 172800, 604800)  # fmt: skip

_CLASSES = {
    model.STEP_PRECHECK: "p0",
    model.STEP_PACKAGES: "p1",
    model.STEP_IMAGES: "p2",
    model.STEP_COMPLETE: "fc",
    SKIPPED: "fs",
    model.STEP_FAILED: "ff",
    model.STEP_ABORTED: "fa",
}


@dataclass(frozen=True)
class Segment:
    """A piece of a bar: state from start to end (datetimes); earlier attempts are `old`."""

    state: str
    start: datetime
    end: datetime
    old: bool = False


def step_outcome(step: model.Step) -> str:
    """The final state a step's mark shows (SKIPPED for a complete step precheck skipped), or its
    state while it is not final."""
    return SKIPPED if step.skipped else step.state


def _phase_segments(
    phases: list[model.Phase], start: datetime, end: datetime, state: str, old: bool
) -> list[Segment]:
    """The in-progress spans of one attempt: each phase lasts until the next one (the last until
    end). Without a recorded phase, one span of the state it had (an older record)."""
    if not phases:
        shown = state if state in model.STEP_IN_PROGRESS else ""
        return [Segment(shown, start, end, old)] if end > start else []
    segments = []
    for index, phase in enumerate(phases):
        if phase.state not in model.STEP_IN_PROGRESS:
            continue
        begin = start + timedelta(seconds=phase.offset)
        stop = (
            start + timedelta(seconds=phases[index + 1].offset) if index + 1 < len(phases) else end
        )
        segments.append(Segment(phase.state, begin, max(stop, begin), old))
    return segments


def _end(started: datetime, finished: str | None, phases: list[model.Phase], now: datetime,
         running: bool) -> datetime:  # fmt: skip
    """When an attempt ended: its finished_at; now while it runs; else its last transition."""
    end = model.parse_time(finished)
    if end is None:
        end = now if running else started + timedelta(seconds=phases[-1].offset if phases else 0)
    return max(end, started)


def step_segments(step: model.Step, now: datetime) -> list[Segment]:
    """Every segment of the step's row: earlier attempts (old) first, then this attempt's."""
    segments: list[Segment] = []
    for attempt in step.attempts:
        started = model.parse_time(attempt.started_at)
        if started is None:
            continue
        end = _end(started, attempt.finished_at, attempt.phases, now, running=False)
        segments += _phase_segments(attempt.phases, started, end, attempt.state, old=True)
    started = model.parse_time(step.started_at)
    if started is not None:
        end = _end(started, step.finished_at, step.phases, now, running=not step.final)
        segments += _phase_segments(step.phases, started, end, step.state, old=False)
    return segments


def _intervals(step: model.Step, now: datetime) -> list[tuple[datetime, datetime]]:
    """When the step (any attempt) was in progress."""
    spans = []
    for attempt in step.attempts:
        started = model.parse_time(attempt.started_at)
        if started is not None:
            spans.append((started, _end(started, attempt.finished_at, attempt.phases, now, False)))
    started = model.parse_time(step.started_at)
    if started is not None:
        spans.append((started, _end(started, step.finished_at, step.phases, now, not step.final)))
    return spans


def occupancy(steps: list[model.Step], now: datetime) -> list[tuple[datetime, int]]:
    """How many of steps were in progress: (moment, count from then on), one entry per moment
    the count changed, in time order; ends at 0 once nothing runs (a running step counts until
    now)."""
    changes: dict[datetime, int] = {}
    for step in steps:
        for start, end in _intervals(step, now):
            if end <= start:
                continue
            changes[start] = changes.get(start, 0) + 1
            changes[end] = changes.get(end, 0) - 1
    points, count = [], 0
    for moment in sorted(changes):
        if changes[moment] == 0:
            continue
        count += changes[moment]
        points.append((moment, count))
    return points


def occupancy_columns(
    points: list[tuple[datetime, int]], origin: datetime, seconds_per_column: float, columns: int
) -> list[int]:
    """The most steps in progress during each column of the chart (columns of seconds_per_column
    from origin): at 5,000 steps the chart stays one short path."""
    peaks = [0] * columns
    count, index = 0, 0
    for column in range(columns):
        begin = origin + timedelta(seconds=seconds_per_column * column)
        while index < len(points) and points[index][0] <= begin:  # the count as it begins
            count = points[index][1]
            index += 1
        peak = count
        limit = origin + timedelta(seconds=seconds_per_column * (column + 1))
        while index < len(points) and (points[index][0] < limit or column == columns - 1):
            count = points[index][1]
            peak = max(peak, count)
            index += 1
        peaks[column] = peak
    return peaks


# --------------------------------------------------------------------------- rendering


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(value: float) -> str:
    """A coordinate, short: one decimal, no trailing zero."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _clock(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"


def _short(name: str, limit: int = LABEL_CHARS) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "\u2026"


class _Scale:
    """Times to x pixels of the chart."""

    def __init__(self, origin: datetime, end: datetime) -> None:
        self.origin = origin
        self.span = max((end - origin).total_seconds(), 1.0)
        self.per_pixel = self.span / CHART_WIDTH

    def x(self, moment: datetime) -> float:
        return LABEL_WIDTH + (moment - self.origin).total_seconds() / self.per_pixel

    def ticks(self) -> list[datetime]:
        step = next((t for t in _TICKS if self.span / t <= 10), _TICKS[-1])
        first = math.ceil(self.origin.timestamp() / step) * step
        moments, value = [], first
        while value <= self.origin.timestamp() + self.span:
            moments.append(datetime.fromtimestamp(value, UTC))
            value += step
        return moments

    def tick_label(self, moment: datetime) -> str:
        return moment.strftime("%H:%M:%S" if self.span < 86400 else "%m-%d %H:%M")


def _time_range(strategy: model.Strategy, now: datetime) -> tuple[datetime, datetime, bool]:
    """(first start, last end, whether something still runs): the chart's extent."""
    starts, ends, running = [], [], False
    for step in strategy.steps:
        for start, end in _intervals(step, now):
            starts.append(start)
            ends.append(end)
        running = running or step.in_progress
        if (finished := model.parse_time(step.finished_at)) is not None:
            ends.append(finished)  # aborted while waiting: a mark at that moment
    if not starts:
        origin = model.parse_time(strategy.created_at) or now
        return origin, max(ends, default=max(now, origin)), running
    return min(starts), max(ends, default=min(starts)), running


def _step_title(step: model.Step, outcome: str, now: datetime) -> str:
    lines = [f"{step.cloud}: {outcome}" + (f" (stage {step.stage})")]
    if step.started_at:
        until = "running" if not step.final else step.finished_at or "-"
        duration, phases = step.duration_row(now)
        lines.append(f"{step.started_at} \u2192 {until}; {duration}")
        if phases != "-":
            lines.append(phases)
    elif step.finished_at:
        lines.append(f"{outcome} at {step.finished_at} before it started")
    if step.details:
        lines.append(step.details)
    if step.attempts:
        lines.append(step.attempts_text())
    return "\n".join(lines)


def _bars(
    strategy: model.Strategy, scale: _Scale, now: datetime, top: int
) -> tuple[list[str], int]:
    """The rows: a separator per stage, then its steps in strategy order. Returns (svg parts,
    height)."""
    parts: list[str] = []
    y = top
    by_stage: dict[int, list[model.Step]] = {}
    for step in strategy.steps:
        by_stage.setdefault(step.stage, []).append(step)
    stages = [s for s in strategy.stages if s.number in by_stage]
    for stage in stages:
        steps = by_stage[stage.number]
        group = f" \u00b7 group {stage.group}" if stage.group else ""
        apply_type = stage.subcloud_apply_type or "parallel"
        label = (
            f"Stage {stage.number}{group} \u00b7 {apply_type} \u00b7 window {stage.window} "
            f"\u00b7 {len(steps)} step{'s' if len(steps) != 1 else ''}"
        )
        parts.append(
            f'<line class="sep" x1="0" x2="{WIDTH}" y1="{y + 0.5}" y2="{y + 0.5}"/>'
            f'<text class="stage" x="4" y="{y + 15}">{_esc(label)}</text>'
        )
        y += STAGE_ROW_HEIGHT
        for step in steps:
            parts.append(_row(step, scale, now, y))
            y += ROW_HEIGHT
    return parts, y - top


def _row(step: model.Step, scale: _Scale, now: datetime, y: int) -> str:
    outcome = step_outcome(step)
    failed = step.state == model.STEP_FAILED
    bar_y = y + (ROW_HEIGHT - BAR_HEIGHT) // 2
    items = [f"<g><title>{_esc(_step_title(step, outcome, now))}</title>"]
    if failed:
        items.append(
            f'<rect class="fr" x="0" y="{y}" width="{LABEL_WIDTH + CHART_WIDTH}" '
            f'height="{ROW_HEIGHT}"/>'
        )
    label_class = ' class="lf"' if failed else ""
    items.append(f'<text{label_class} x="4" y="{y + 10}">{_esc(_short(step.cloud))}</text>')
    # whole pixels, each segment at least one, none over the one before: every phase a step
    # went through shows, in its exact colour (crisp edges)
    end_x: int | None = None
    cursor = 0
    for segment in step_segments(step, now):
        x0 = max(round(scale.x(segment.start)), cursor)
        x1 = max(round(scale.x(segment.end)), x0 + MIN_SEGMENT)
        cursor = x1
        css = _CLASSES.get(segment.state, "pu")
        if segment.old:
            css += " old"
        items.append(
            f'<rect class="{css}" x="{x0}" y="{bar_y}" width="{x1 - x0}" height="{BAR_HEIGHT}"/>'
        )
        if not segment.old:
            end_x = x1
    if step.final:
        finished = model.parse_time(step.finished_at)
        if end_x is None and finished is not None:
            end_x = round(scale.x(finished))
        if end_x is not None:
            items.append(
                f'<rect class="{_CLASSES[outcome]}" x="{end_x}" y="{bar_y - 1}" '
                f'width="{MARK_WIDTH}" height="{BAR_HEIGHT + 2}"/>'
            )
    items.append("</g>")
    return "".join(items)


def _axis(scale: _Scale, y: int) -> str:
    """The ticks' times along y."""
    return "".join(
        f'<text class="tick" x="{_num(scale.x(tick))}" y="{y + 14}">{scale.tick_label(tick)}</text>'
        for tick in scale.ticks()
    )


def _grid(scale: _Scale, height: int) -> str:
    """A vertical line at each tick, across the bars."""
    return "".join(
        f'<line class="grid" x1="{x}" x2="{x}" y1="0" y2="{height}"/>'
        for x in (_num(scale.x(tick)) for tick in scale.ticks())
    )


def _occupancy_svg(strategy: model.Strategy, scale: _Scale, now: datetime) -> str:
    """The area chart of steps in progress, with each stage's window over the stage's time."""
    points = occupancy(strategy.steps, now)
    peaks = occupancy_columns(points, scale.origin, scale.per_pixel, CHART_WIDTH)
    stage_spans = []
    for stage in strategy.stages:
        spans = [
            span
            for step in strategy.steps
            if step.stage == stage.number
            for span in _intervals(step, now)
        ]
        if spans:
            stage_spans.append((stage, min(s for s, _e in spans), max(e for _s, e in spans)))
    top = max([*peaks, *(min(s.window, _stage_size(strategy, s)) for s, _a, _b in stage_spans), 1])
    plot = OCCUPANCY_HEIGHT - 20
    base = 10 + plot

    def y_of(count: float) -> float:
        return base - count / top * plot

    path = [f"M{LABEL_WIDTH} {base}"]
    for column, peak in enumerate(peaks):
        path.append(f"V{_num(y_of(peak))}H{LABEL_WIDTH + column + 1}")
    path.append(f"V{base}Z")
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
        f'height="{OCCUPANCY_HEIGHT}" role="img">',
        f'<text class="stage" x="4" y="24">In progress</text>'
        f'<text class="tick" x="4" y="40">peak {max(peaks, default=0)}</text>',
        f'<line class="axis" x1="{LABEL_WIDTH}" x2="{LABEL_WIDTH + CHART_WIDTH}" '
        f'y1="{base + 0.5}" y2="{base + 0.5}"/>',
        f'<text class="tick" x="{LABEL_WIDTH - 4}" y="{_num(y_of(top) + 4)}" '
        f'text-anchor="end">{top}</text>',
        f'<path class="occ" d="{"".join(path)}"/>',
    ]
    for stage, start, end in stage_spans:
        size = _stage_size(strategy, stage)
        window = min(stage.window, size)
        label = f"stage {stage.number}: window {stage.window}"
        if size < stage.window:
            label += f" ({size} steps)"
        wy = _num(y_of(window))
        # the label inside the chart: after the start, or before the end of a late stage
        late = scale.x(start) > LABEL_WIDTH + CHART_WIDTH * 0.75
        anchor = (
            f'x="{_num(scale.x(end) - 2)}" text-anchor="end"' if late
            else f'x="{_num(scale.x(start) + 2)}"'
        )  # fmt: skip
        parts.append(
            f"<g><title>{_esc(label)}</title>"
            f'<line class="win" x1="{_num(scale.x(start))}" x2="{_num(scale.x(end))}" '
            f'y1="{wy}" y2="{wy}"/>'
            f'<text class="wl" {anchor} y="{_num(y_of(window) - 2)}">'
            f"{_esc(label)}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _stage_size(strategy: model.Strategy, stage: model.Stage) -> int:
    return sum(1 for step in strategy.steps if step.stage == stage.number)


def _header(strategy: model.Strategy, title: str, *, origin: datetime | None, end: datetime,
            running: bool, now: datetime) -> str:  # fmt: skip
    target = (
        f"subcloud {strategy.cloud_name}" if strategy.cloud_name is not None
        else f"group {strategy.group}" if strategy.group is not None
        else "all subclouds"
    )  # fmt: skip
    explicit = strategy.max_parallel_subclouds is not None  # else each group's own settings
    settings = [
        ("state", strategy.state),
        ("release", f"{strategy.release} ({strategy.prestage_type})"),
        ("subclouds", target),
        ("apply type", strategy.subcloud_apply_type or ("parallel" if explicit else "per group")),
        ("max parallel", strategy.max_parallel_subclouds if explicit else "per group"),
        ("stop on failure", strategy.stop_on_failure),
        ("force", strategy.force),
        ("stages", len(strategy.stages)),
    ]
    duration = model.seconds_text((end - origin).total_seconds()) if origin else "-"
    times = [
        ("created", strategy.created_at or "-"),
        ("started", _clock(origin)),
        ("running at" if running else "ended", _clock(end) if origin else "-"),
        ("duration", duration + (" so far" if running and origin else "")),
        ("report made", _clock(now)),
    ]
    counts = [("steps", len(strategy.steps)), *model.tally(strategy.steps).items()]

    def table(caption: str, rows: Sequence[tuple[str, object]]) -> str:
        cells = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in rows)
        return f"<table><caption>{caption}</caption>{cells}</table>"

    return (
        f"<h1>{_esc(title)}</h1><div class='facts'>"
        + table("Strategy", settings)
        + table("Times (UTC)", times)
        + table("Steps", counts)
        + "</div>"
    )


def _legend() -> str:
    items = [
        *((state, colour) for state, colour in PHASE_COLOURS.items()),
        *((f"{state} (end)", colour) for state, colour in FINAL_COLOURS.items()),
        ("earlier attempt", PHASE_COLOURS[model.STEP_PACKAGES] + "; opacity:.35"),
        ("no phases recorded", UNKNOWN_PHASE_COLOUR),
    ]
    spans = "".join(
        f"<span><i style='background:{colour}'></i>{_esc(name)}</span>" for name, colour in items
    )
    return f"<p class='legend'>{spans}</p>"


def _failures(strategy: model.Strategy) -> str:
    failed = [step for step in strategy.steps if step.state == model.STEP_FAILED]
    if not failed:
        return ""
    items = "".join(
        f"<li><b>{_esc(step.cloud)}</b> {_esc(step.details)}</li>"
        for step in failed[:FAILED_LISTED]
    )
    more = f"<li>and {len(failed) - FAILED_LISTED} more</li>" if len(failed) > FAILED_LISTED else ""
    shown = " open" if len(failed) <= FAILED_OPEN else ""  # many: the picture comes first
    return (
        f"<details{shown}><summary>Failed: {len(failed)}</summary><ul>{items}{more}</ul></details>"
    )


_STYLE = (
    "body{font:13px/1.35 sans-serif;margin:12px;color:#222;background:#fff}"
    "h1{font-size:18px;margin:0 0 8px}"
    ".facts{display:flex;gap:24px;flex-wrap:wrap}"
    "table{border-collapse:collapse}caption{text-align:left;font-weight:bold}"
    "th{text-align:left;font-weight:normal;color:#555;padding-right:10px}"
    ".legend span{margin-right:14px;white-space:nowrap}"
    ".legend i{display:inline-block;width:14px;height:10px;margin-right:4px;vertical-align:middle}"
    "details{margin:6px 0;max-width:1200px}li{word-break:break-all}"
    ".axisbar{position:sticky;top:0;background:#fff}"
    "svg{display:block;font:10px sans-serif}rect{shape-rendering:crispEdges}"
    "text{fill:#222}.tick{fill:#555}.stage{font-weight:bold}.lf{fill:" + FAILED_COLOUR + "}"
    ".sep{stroke:#999}.grid{stroke:#dde2ea}.axis{stroke:#888}"
    ".occ{fill:#b9d2ef;stroke:#2f6fbf;stroke-width:1}"
    ".win{stroke:#c0392b;stroke-dasharray:4 3}.wl{fill:#c0392b}"
    ".bg{fill:" + BAR_AREA_COLOUR + "}.fr{fill:" + FAILED_ROW_COLOUR + "}"
    ".old{opacity:.35}.pu{fill:"
    + UNKNOWN_PHASE_COLOUR
    + "}"
    + "".join(f".{_CLASSES[state]}{{fill:{colour}}}" for state, colour in PHASE_COLOURS.items())
    + "".join(f".{_CLASSES[state]}{{fill:{colour}}}" for state, colour in FINAL_COLOURS.items())
)


def render_report(strategy: model.Strategy, *, title: str, now: datetime | None = None) -> str:
    """The report of strategy as one HTML document (UTF-8 text). now: the moment running steps
    extend to (default: the clock)."""
    now = now or datetime.now(UTC)
    origin, end, running = _time_range(strategy, now)
    started = any(_intervals(step, now) for step in strategy.steps)
    scale = _Scale(origin, end)
    bars, height = _bars(strategy, scale, now, 0)
    bars_svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height + 1}">'
        f'<rect class="bg" x="{LABEL_WIDTH}" y="0" width="{CHART_WIDTH + RIGHT_MARGIN}" '
        f'height="{height + 1}"/>'
        + _grid(scale, height)
        + "".join(bars)
        + (
            f'<line class="win" x1="{_num(scale.x(now))}" x2="{_num(scale.x(now))}" y1="0" '
            f'y2="{height}"/>'
            if running
            else ""
        )
        + "</svg>"
    )
    axis_svg = (
        f'<div class="axisbar"><svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
        f'height="{AXIS_HEIGHT}"><text class="tick" x="4" y="14">time (UTC)</text>'
        + _axis(scale, 0)
        + f'<line class="axis" x1="0" x2="{WIDTH}" y1="{AXIS_HEIGHT - 0.5}" '
        f'y2="{AXIS_HEIGHT - 0.5}"/></svg></div>'
    )
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_esc(title)}</title><style>{_STYLE}</style></head><body>"
        + _header(
            strategy, title, origin=origin if started else None, end=end, running=running, now=now
        )
        + _legend()
        + _failures(strategy)
        + _occupancy_svg(strategy, scale, now)
        + axis_svg
        + bars_svg
        + "</body></html>\n"
    )
