# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""Who may run a strategy, decided once: every way a strategy comes under an orchestrating
process (apply, resume after a crash, take-over by the play `dcprestage ... apply` started, the
play's own process recording itself) goes through here, for the CLI, the prestage_strategy
action and the prestage_state callback alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ansible_collections.distcloud.prestage.plugins.plugin_utils import _strategy as model
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError
from ansible_collections.distcloud.prestage.plugins.plugin_utils._orchestrator import (
    is_ancestor,
    is_running,
    orchestrator_record,
)

# What a claim did (the prestage_strategy module's `action`; "created" is the action's own)
APPLIED = "applied"
RESUMED = "resumed"
TAKEN_OVER = "taken-over"

# Why a strategy may not be applied
RUNNING = "running"  # its orchestrator is alive
FINISHED = "finished"  # complete, failed, aborted: only delete is left

CLI = "dcprestage"
PLAY = "ansible-playbook"


@dataclass(frozen=True)
class Refusal:
    """Why a strategy cannot be applied: a code, dcmanager's line (what `dcprestage` prints, as
    `dcmanager prestage-strategy apply` does) and ours for a play, which says who runs it or
    what to do."""

    code: str
    text: str
    for_play: str

    def error(self, via: str) -> PrestageError:
        return PrestageError(self.for_play if via == PLAY else self.text)


def refusal(strategy: model.Strategy, *, take_over: bool = False) -> Refusal | None:
    """None when the strategy may be claimed: it is initial, or applying with its orchestrator
    gone (crash recovery), or (take_over) running under an ancestor of this process."""
    state = strategy.state
    if state == model.INITIAL:
        return None
    if state == model.APPLYING and not is_running(strategy.orchestrator):
        return None
    if take_over and state in model.RUNNING_STATES and is_ancestor(strategy.orchestrator):
        return None
    text = f"Strategy in state {state} cannot be applied"
    if state in model.RUNNING_STATES:
        pid = strategy.orchestrator.get("pid")
        return Refusal(RUNNING, text, f"The prestage strategy is being applied by process {pid}")
    return Refusal(
        FINISHED, text, f"{text}; delete it first ('dcprestage prestage-strategy delete')"
    )


def claim(
    strategy: model.Strategy,
    orchestrator: dict[str, Any],
    *,
    via: str,
    take_over: bool = False,
) -> str:
    """Put the strategy under orchestrator (a record, or {} until the process is started; see
    launched): APPLIED, RESUMED (the interrupted steps wait to run again) or TAKEN_OVER;
    the refusal's error for via otherwise, with the strategy unchanged."""
    problem = refusal(strategy, take_over=take_over)
    if problem is not None:
        raise problem.error(via)
    if strategy.state == model.INITIAL:
        model.apply(strategy, orchestrator)
        return APPLIED
    if strategy.state == model.APPLYING and not is_running(strategy.orchestrator):
        model.resume(strategy, orchestrator)
        return RESUMED
    # `dcprestage ... apply` started this play (maybe aborted already: the strategy plugin then
    # admits nobody and closes the abort)
    orchestrator["applied-by"] = strategy.orchestrator.get("via")
    strategy.orchestrator = orchestrator
    return TAKEN_OVER


def launched(strategy: model.Strategy, pid: int) -> None:
    """The orchestrator `dcprestage` started for a claimed strategy."""
    strategy.orchestrator = orchestrator_record(pid, via=CLI)
    strategy.orchestrator["applied-by"] = CLI


def adopt(strategy: model.Strategy, pid: int, abort_timeout: float) -> None:
    """The process that runs the play records itself as the strategy's orchestrator, keeping
    who applied it; the strategy must have been claimed."""
    if strategy.state not in model.RUNNING_STATES:
        raise PrestageError(f"Strategy in state {strategy.state} is not being applied")
    previous = strategy.orchestrator or {}
    strategy.orchestrator = orchestrator_record(pid, via=previous.get("via", PLAY))
    strategy.orchestrator["applied-by"] = previous.get("applied-by", previous.get("via"))
    strategy.orchestrator["abort-timeout"] = abort_timeout
