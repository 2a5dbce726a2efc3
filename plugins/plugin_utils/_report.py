# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""What a finished run reports: the summary published for AWX workflows, and the one step list of
several state dirs (the slices of an AWX sliced job).

Both read strategies back from state dirs; neither writes anything.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.distcloud.prestage.plugins.plugin_utils import _strategy as model
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import (
    NotFoundError,
    PrestageError,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._orchestrator import is_running
from ansible_collections.distcloud.prestage.plugins.plugin_utils._store import StateStore

# The custom stat (set_stats, per_host false) a run publishes: AWX keeps it as the job's
# artifacts and hands it to the next nodes of a workflow as an extra var of this name.
SUMMARY_STAT = "prestage_summary"


def orphan_warning(strategy: model.Strategy, state_dir: str | None = None) -> str | None:
    """The warning for a strategy that claims to run while its orchestrator is gone (crash,
    reboot), naming the state dir when given; None when there is nothing to say."""
    problem = orphan_problem(strategy, state_dir)
    return f"Warning: {problem}" if problem else None


def orphan_problem(strategy: model.Strategy, state_dir: str | None = None) -> str | None:
    """`the orchestrator of this strategy ... is not running; ...` for a strategy that claims to
    run while its orchestrator is gone; None otherwise."""
    if strategy.state not in model.RUNNING_STATES or is_running(strategy.orchestrator):
        return None
    pid = strategy.orchestrator.get("pid")
    who = f" (pid {pid})" if pid else ""
    where = f" in {state_dir}" if state_dir else ""
    return (
        f"the orchestrator of this strategy{where}{who} is not running; "
        "'dcprestage prestage-strategy apply' resumes it, 'abort' stops it."
    )


def strategy_summary(strategy: model.Strategy, state_dir: str) -> dict[str, Any]:
    """Counts per step state (every final state listed), failed subclouds with their reasons."""
    counts = dict.fromkeys((model.STEP_COMPLETE, model.STEP_FAILED, model.STEP_ABORTED), 0)
    for step in strategy.steps:
        counts[step.state] = counts.get(step.state, 0) + 1
    return {
        "state": strategy.state,
        "release": strategy.release,
        "prestage_type": strategy.prestage_type,
        "state_dir": state_dir,
        "steps": len(strategy.steps),
        "counts": counts,
        "failed": [
            {"cloud": step.cloud, "details": step.details}
            for step in strategy.steps
            if step.state == model.STEP_FAILED
        ],
        "skipped": [step.cloud for step in strategy.steps if step.skipped],
    }


def read_summary(state_dir: str) -> dict[str, Any]:
    """The summary of the strategy in state_dir, read back from its strategy.json."""
    return strategy_summary(StateStore(state_dir).require_strategy(), state_dir)


def load_strategies(state_dirs: Sequence[str]) -> list[tuple[str, model.Strategy]]:
    """The strategy of each state dir; a dir without one is an error naming it."""
    loaded = []
    for state_dir in state_dirs:
        try:
            loaded.append((state_dir, StateStore(state_dir).require_strategy()))
        except NotFoundError as exc:
            raise NotFoundError(f"{exc} in {state_dir}") from None
    return loaded


def merge_steps(
    strategies: Sequence[tuple[str, model.Strategy]], ids: Mapping[str, int] | None = None
) -> list[model.Step]:
    """The steps of several strategies (AWX job slices) as one strategy would list them.

    Stages are matched by their subcloud group and numbered again in the order every strategy
    agrees on (a slice may lack a group the others have); within a stage, steps go by subcloud
    id (ids, from the registry) and, for subclouds without one, by name in natural order. A
    subcloud in two strategies is an error: slices never share one.
    """
    ids = ids or {}
    stage_keys = [[stage.group for stage in s.stages] for _state_dir, s in strategies]
    numbers = {key: index + 1 for index, key in enumerate(_merged_order(stage_keys))}
    seen: dict[str, str] = {}
    merged = []
    for state_dir, strategy in strategies:
        groups = {stage.number: stage.group for stage in strategy.stages}
        for step in strategy.steps:
            if step.cloud in seen:
                raise PrestageError(
                    f"Subcloud {step.cloud} is a step in both {seen[step.cloud]} and {state_dir}"
                )
            seen[step.cloud] = state_dir
            copy = model.Step(**vars(step))
            copy.stage = numbers[groups[step.stage]]
            merged.append(copy)
    merged.sort(key=lambda s: (s.stage, ids.get(s.cloud, float("inf")), _natural(s.cloud)))
    return merged


def _merged_order(sequences: list[list[str | None]]) -> list[str | None]:
    """One order of all keys that keeps the order of each sequence (ties: first seen first)."""
    first_seen: dict[str | None, int] = {}
    for sequence in sequences:
        for key in sequence:
            first_seen.setdefault(key, len(first_seen))
    before: dict[str | None, set[str | None]] = {key: set() for key in first_seen}
    for sequence in sequences:
        for index, key in enumerate(sequence):
            before[key].update(sequence[:index])
    order: list[str | None] = []
    while before:
        ready = [key for key, needs in before.items() if not needs - set(order)]
        # contradicting orders (not made by one registry): fall back to first seen
        key = min(ready or before, key=first_seen.__getitem__)
        order.append(key)
        del before[key]
    return order


def _natural(name: str) -> list[Any]:
    """subcloud2 before subcloud10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]
