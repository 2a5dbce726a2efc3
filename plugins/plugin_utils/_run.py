# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""The orchestrator's view of a strategy while a play applies it.

The strategy plugin admits subclouds and the callback plugin records what happens to them; both
live in the main ansible-playbook process and share one StrategyRun. It keeps the strategy in
memory and writes it back coalesced (at most one write per flush interval, plus one at the end),
so recording stays cheap with thousands of steps.

Others write the same file meanwhile (`dcprestage prestage-strategy abort`). Before writing, the run
merges: steps the orchestrator has started are its own, everything else (an abort request, steps
aborted while waiting) comes from the file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from ansible_collections.distcloud.prestage.plugins.plugin_utils import _strategy as model
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError
from ansible_collections.distcloud.prestage.plugins.plugin_utils._orchestrator import (
    orchestrator_record,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._store import (
    StateStore,
    SubcloudStatus,
)

PRESTAGING = "prestaging"
DEFAULT_FLUSH_INTERVAL = 0.2


def prestage_versions_text(install: list[str] | None, sw_deploy: str | None) -> str:
    """SPEC §2.4's prestage_versions: 'for-install: <v1,v2|None> - for-sw-deploy: <v|None>'."""
    install_text = ",".join(install) if install else "None"
    return f"for-install: {install_text} - for-sw-deploy: {sw_deploy or 'None'}"


class StrategyRun:
    """One application of the strategy in a state dir, by this process."""

    def __init__(
        self,
        store: StateStore,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        on_write_error: Callable[[str], None] | None = None,
        on_step_failed: Callable[[str, str], None] | None = None,
    ) -> None:
        self.store = store
        # told (subcloud, line) when a step fails, to end the subcloud's log with the reason
        self._on_step_failed = on_step_failed
        self.flush_interval = flush_interval
        self.strategy: model.Strategy | None = None
        self.write_error: str | None = None
        self._on_write_error = on_write_error
        self._owned: set[str] = set()  # steps this run has started: its state wins on merge
        self._statuses: dict[str, SubcloudStatus] = {}
        self._dirty_statuses: set[str] = set()
        self._dirty = False
        self._last_flush = 0.0
        self._last_check = 0.0
        self._signature: tuple[int, int, int] | None = None

    # ------------------------------------------------------------------ lifecycle

    def begin(self, via: str = "ansible-playbook") -> model.Strategy:
        """Take the strategy over for this process (it must be applying)."""
        with self.store.locked():
            strategy = self.store.require_strategy()
            if strategy.state not in model.RUNNING_STATES:
                raise PrestageError(f"Strategy in state {strategy.state} is not being applied")
            previous = strategy.orchestrator or {}
            strategy.orchestrator = orchestrator_record(os.getpid(), via=previous.get("via", via))
            strategy.orchestrator["applied-by"] = previous.get("applied-by", previous.get("via"))
            self.store.save_strategy(strategy)
            self.store.clear_started()  # an earlier run's: what it started is in the file now
            self._signature = self._file_signature()
            self._statuses = self.store.load_statuses()
        self.strategy = strategy
        for step in strategy.steps:
            if step.in_progress:  # left over by a crashed run: resume made them initial
                self._owned.add(step.cloud)
        return strategy

    def finish(self) -> None:
        """End of the play: every step this run left running is failed, then a last write."""
        strategy = self.current()
        for step in strategy.steps:
            if step.in_progress:
                self.fail(step.cloud, "the play ended before prestage completed")
        if (
            strategy.state in (model.ABORT_REQUESTED, model.ABORTING)
            and all(s.final for s in strategy.steps)
        ) or (
            strategy.state == model.ABORT_REQUESTED
            and not any(s.in_progress for s in strategy.steps)
        ):
            strategy.state = model.roll_up(strategy)
        self._dirty = True
        self.flush(force=True)

    # ------------------------------------------------------------------ what the strategy reads

    def admitting(self) -> bool:
        return self.write_error is None and model.admitting(self.current())

    def step_states(self) -> dict[str, str]:
        return {s.cloud: s.state for s in self.current().steps}

    def tick(self) -> None:
        """Called often by the strategy plugin: pick up foreign writes, flush when due."""
        now = time.monotonic()
        if now - self._last_check >= self.flush_interval:
            self._last_check = now
            if self._file_signature() != self._signature:
                self.flush(force=True)  # merges the foreign change (e.g. an abort) in
        self.flush()

    def start(self, clouds: list[str]) -> list[str]:
        """Of these waiting subclouds, the ones that may start now, recorded as started where
        `abort` looks (under the lock, after taking in what the file says): a step is either
        aborted while it waits or run, never both. [] once nothing may be admitted."""
        if not clouds:
            return []
        try:
            with self.store.locked():
                if self._file_signature() != self._signature:
                    self._merge_from_file()  # an abort written since the last tick
                    self._dirty = True
                if not self.admitting():
                    return []
                strategy = self.current()
                granted = [c for c in clouds if strategy.step(c).state == model.STEP_INITIAL]
                self.store.add_started(granted)
        except (PrestageError, OSError) as exc:
            self._write_failed(exc)
            return []
        self._owned.update(granted)
        return granted

    # ------------------------------------------------------------------ what the callback records

    def enter_phase(self, cloud: str, phase: str) -> None:
        state = model.PHASE_STEP_STATES.get(phase)
        step = self._step(cloud)
        if state is None or step is None or step.final or step.state == state:
            return
        if model.step_rank(state) < model.step_rank(step.state):
            return  # a later phase is already recorded
        self._owned.add(cloud)
        model.set_step_state(self.current(), cloud, state)
        if state == model.STEP_PRECHECK:
            self._set_status(cloud, prestage_status=PRESTAGING, error=None)
        self._changed()

    def skip(self, cloud: str, reason: str) -> None:
        """Precheck found a skip reason: the step ends complete, the prestage status is cleared."""
        if self._final_or_unknown(cloud):
            return
        self._owned.add(cloud)
        model.set_step_state(
            self.current(), cloud, model.STEP_COMPLETE, model.skip_details(cloud, reason)
        )
        self._set_status(cloud, prestage_status=None, error=None)
        self._changed()

    def fail(self, cloud: str, reason: str) -> None:
        step = self._step(cloud)
        if step is None or step.final:
            return
        self._owned.add(cloud)
        # a step that never started fails in its first state, as dcmanager reports it
        state = step.state if step.state != model.STEP_INITIAL else model.STEP_PRECHECK
        details = model.failure_details(state, reason, self.store.log_path(cloud))
        model.set_step_state(self.current(), cloud, model.STEP_FAILED, details)
        if self._on_step_failed is not None:
            self._on_step_failed(cloud, model.failure_log_line(state, reason))
        self._set_status(cloud, prestage_status="failed", error=reason)
        self._changed()

    def complete(self, cloud: str, versions: str | None = None) -> None:
        if self._final_or_unknown(cloud):
            return
        self._owned.add(cloud)
        model.set_step_state(self.current(), cloud, model.STEP_COMPLETE)
        values: dict[str, Any] = {"prestage_status": "complete", "error": None}
        if versions is not None:
            values["prestage_versions"] = versions
        self._set_status(cloud, **values)
        self._changed()

    def host_finished(self, cloud: str) -> None:
        """The play has nothing left for this subcloud; a step still running did not complete."""
        step = self._step(cloud)
        if step is not None and step.in_progress:
            self.fail(cloud, "the play ended for this subcloud before prestage completed")

    def record_versions(self, cloud: str, versions: str) -> None:
        self._set_status(cloud, prestage_versions=versions)
        self._changed()

    # ------------------------------------------------------------------ writing

    def flush(self, force: bool = False) -> None:
        if not (self._dirty or force):
            return
        if not force and time.monotonic() - self._last_flush < self.flush_interval:
            return
        try:
            with self.store.locked():
                if self._file_signature() != self._signature:
                    self._merge_from_file()
                self.store.save_strategy(self.current())
                self._signature = self._file_signature()
            changes = {name: self._statuses[name] for name in self._dirty_statuses}
            self.store.update_statuses(changes)
            self._dirty_statuses.clear()
        except (PrestageError, OSError) as exc:
            self._write_failed(exc)
            return
        self.write_error = None
        self._dirty = False
        self._last_flush = time.monotonic()

    def _write_failed(self, exc: Exception) -> None:
        message = f"Cannot record the prestage state in {self.store.state_dir}: {exc}"
        if message != self.write_error and self._on_write_error is not None:
            self._on_write_error(message)
        self.write_error = message

    def _merge_from_file(self) -> None:
        """The file changed under us: keep what this run started, take the rest from the file."""
        mine = self.current()
        theirs = self.store.load_strategy()
        if theirs is None:
            raise PrestageError("the strategy was deleted while it was being applied")
        own = {cloud: mine.step(cloud) for cloud in self._owned}
        theirs.steps = [own.get(step.cloud, step) for step in theirs.steps]
        aborting = theirs.state in (model.ABORT_REQUESTED, model.ABORTING)
        if not aborting or mine.state in model.STRATEGY_FINAL:
            theirs.state = mine.state
        theirs.orchestrator = mine.orchestrator
        if theirs.state == model.ABORT_REQUESTED and any(s.in_progress for s in theirs.steps):
            theirs.state = model.ABORTING
        if theirs.state in model.RUNNING_STATES and all(s.final for s in theirs.steps):
            theirs.state = model.roll_up(theirs)
        self.strategy = theirs

    # ------------------------------------------------------------------ helpers

    def current(self) -> model.Strategy:
        if self.strategy is None:
            raise PrestageError("the prestage run has not begun")
        return self.strategy

    def _step(self, cloud: str) -> model.Step | None:
        try:
            return self.current().step(cloud)
        except PrestageError:
            return None

    def _final_or_unknown(self, cloud: str) -> bool:
        step = self._step(cloud)
        return step is None or step.final

    def _set_status(self, cloud: str, **values: Any) -> None:
        status = self._statuses.setdefault(cloud, SubcloudStatus())
        for key, value in values.items():
            setattr(status, key, value)
        self._dirty_statuses.add(cloud)

    def _changed(self) -> None:
        self._dirty = True
        self.flush()

    def _file_signature(self) -> tuple[int, int, int] | None:
        try:
            info = os.stat(self.store.strategy_path)
        except OSError:
            return None
        return (info.st_ino, info.st_mtime_ns, info.st_size)
