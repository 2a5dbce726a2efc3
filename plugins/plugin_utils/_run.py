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

Lifecycle: SIGTERM, SIGINT or SIGHUP to the process that runs the play stop admitting and end the
play; the steps it was running go back to initial with the reason (`apply` resumes them, `abort`
ends the strategy aborted) and every process of the run is stopped (see stop_run_processes). An
abort whose running steps have not finished after the abort timeout ends them aborted, with that
reason, and ends the play the same way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Collection, Iterable
from typing import Any

from ansible_collections.distcloud.prestage.plugins.plugin_utils import _lifecycle as lifecycle
from ansible_collections.distcloud.prestage.plugins.plugin_utils import _strategy as model
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError
from ansible_collections.distcloud.prestage.plugins.plugin_utils._report_file import keep_report
from ansible_collections.distcloud.prestage.plugins.plugin_utils._store import (
    StateStore,
    SubcloudStatus,
)

PRESTAGING = "prestaging"
# Each write is the whole strategy.json and subclouds.json, made in Ansible's main process: at 0.2 s
# they took a tenth of its time at 40 subclouds, on the path from one step's end to the next one's
# start (bench/README.md, "Where the main process's time goes").
DEFAULT_FLUSH_INTERVAL = 1.0
# The signals that interrupt a run (the orchestrator's and the play's process handle them alike).
INTERRUPT_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# Every process of one run carries this variable (its value names the run): what is left of a
# run after it stopped - ssh clients and ControlPersist masters in sessions of their own - is
# found by it.
RUN_ID_ENV = "DCPRESTAGE_RUN_ID"
# The ssh ControlPersist masters of a run started by `dcprestage prestage-strategy apply` live in a
# directory of its own (ANSIBLE_SSH_CONTROL_PATH_DIR; never a master made before the run, without
# keepalives): a daemonised master rewrites its environment, its command line names its socket.
CONTROL_DIR_ENV = "DCPRESTAGE_CONTROL_DIR"
# How long an abort waits for the steps that were running when it was asked for.
ABORT_TIMEOUT_ENV = "DCPRESTAGE_ABORT_TIMEOUT"
DEFAULT_ABORT_TIMEOUT = 600
STOP_GRACE = 3.0  # seconds a stopped process gets between SIGTERM and SIGKILL


class RunInterrupted(KeyboardInterrupt):
    """Ends the play after a signal or an abort timeout (Ansible reports it as an interruption,
    without a traceback)."""


def interrupted_reason(signame: str) -> str:
    return (
        f"interrupted: the orchestrator received {signame}; "
        "'dcprestage prestage-strategy apply' resumes this step"
    )


def abort_timeout_reason(seconds: float) -> str:
    return f"aborted: still running {int(seconds)} s after the abort request (the abort timeout)"


def abort_timeout(value: Any = None) -> float:
    """The abort timeout: value (an extra var), else $DCPRESTAGE_ABORT_TIMEOUT, else the default."""
    for candidate in (value, os.environ.get(ABORT_TIMEOUT_ENV)):
        if candidate in (None, ""):
            continue
        try:
            seconds = float(str(candidate))
        except ValueError:
            raise PrestageError(
                f"The abort timeout must be a number of seconds: {candidate!r}"
            ) from None
        if seconds > 0:
            return seconds
        raise PrestageError(f"The abort timeout must be positive: {candidate!r}")
    return float(DEFAULT_ABORT_TIMEOUT)


def interrupt_steps(
    strategy: model.Strategy,
    reason: str,
    clouds: Collection[str] | None = None,
    at: str | None = None,
) -> list[str]:
    """Stop the steps in progress (of clouds, or all): while applying they go back to initial
    with the reason as details (apply runs them again, abort aborts them); otherwise (an abort, a
    stop-on-failure) they end aborted with it. Returns the subclouds of the steps it stopped."""
    at = at or model.now()
    stopped = []
    for step in strategy.steps:
        if not step.in_progress or (clouds is not None and step.cloud not in clouds):
            continue
        details = model.failure_details(step.state, reason)
        if strategy.state == model.APPLYING:
            model.interrupt(step, reason, at)  # the attempt is kept in the step's history
            step.details = details
            strategy.updated_at = at
        else:
            model.set_step_state(strategy, step.cloud, model.STEP_ABORTED, details, at)
        stopped.append(step.cloud)
    return stopped


def log_reason(store: StateStore, clouds: Iterable[str], line: str) -> None:
    """Append line to the log of each of clouds (best effort: the state file has it too)."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW
    for cloud in clouds:
        with contextlib.suppress(OSError):
            os.makedirs(os.path.dirname(store.log_path(cloud)), mode=0o700, exist_ok=True)
            fd = os.open(store.log_path(cloud), flags, 0o600)
            try:
                os.write(fd, f"{stamp} {line}\n".encode())
            finally:
                os.close(fd)


def run_processes(
    run_id: str, exclude: Collection[int] = (), control_dir: str | None = None
) -> list[int]:
    """The pids of the processes whose environment carries RUN_ID_ENV=run_id, and of the ssh
    masters whose sockets are in control_dir."""
    marker = f"{RUN_ID_ENV}={run_id}".encode()
    master = f"ssh: {control_dir.rstrip('/')}/".encode() if control_dir else None
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in exclude:
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as handle:
                environ = handle.read()
            with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                cmdline = handle.read()
        except OSError:
            continue
        if marker in environ.split(b"\0") or (master and cmdline.startswith(master)):
            found.append(int(entry.name))
    return found


def stop_run_processes(
    run_id: str,
    exclude: Collection[int] = (),
    grace: float = STOP_GRACE,
    control_dir: str | None = None,
) -> int:
    """SIGTERM every process of the run (but exclude, this process and its ancestors), SIGKILL
    what is left after grace; returns how many there were."""
    keep = set(exclude) | _ancestors()
    pids = run_processes(run_id, keep, control_dir)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while (left := run_processes(run_id, keep, control_dir)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
                pid = int(handle.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


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
        self.interrupted: str | None = None  # the signal that stops this run
        self.abort_timeout = abort_timeout()
        self._abort_seen: float | None = None
        self._pid = os.getpid()
        self._handlers: dict[int, Any] = {}
        self._report_kept = False
        self.revision = 0  # counts the changes of the strategy, by this run or merged in
        self._index: dict[str, model.Step] = {}
        self._indexed: list[model.Step] | None = None

    # ------------------------------------------------------------------ lifecycle

    def begin(self) -> model.Strategy:
        """Take the strategy over for this process (it must be applying)."""
        with self.store.locked():
            strategy = self.store.require_strategy()
            lifecycle.adopt(strategy, os.getpid(), self.abort_timeout)
            self.store.save_strategy(strategy)
            self.store.clear_started()  # an earlier run's: what it started is in the file now
            self._signature = self._file_signature()
            self._statuses = self.store.load_statuses()
        self.strategy = strategy
        for step in strategy.steps:
            if step.in_progress:  # left over by a crashed run: resume made them initial
                self._owned.add(step.cloud)
        return strategy

    def take_over_process(self) -> None:
        """In the process that runs the play (ansible-playbook): SIGTERM, SIGINT and SIGHUP stop
        the run at the next tick, and the processes it starts from now on carry its run id."""
        os.environ.setdefault(RUN_ID_ENV, f"{self.store.state_dir}:{os.getpid()}")
        self._catch_signals()

    def set_abort_timeout(self, seconds: float) -> None:
        self.abort_timeout = seconds
        self.current().orchestrator["abort-timeout"] = seconds
        self._dirty = True

    def finish(self) -> None:
        """End of the play: every step this run left running is failed - or, after a signal or an
        abort timeout, stopped with that reason - then a last write."""
        self._release_signals()
        strategy = self.current()
        if self.interrupted is not None:
            self._stop_running(interrupted_reason(self.interrupted))
        if self.interrupted is not None and RUN_ID_ENV in os.environ:
            stop_run_processes(
                os.environ[RUN_ID_ENV], {self._pid}, control_dir=os.environ.get(CONTROL_DIR_ENV)
            )
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

    def keep_report(self) -> str | None:
        """After finish: a final strategy's picture kept in the state dir (_report_file). Never
        fails the run: returns the warning to show when it cannot be written."""
        strategy = self.current()
        if strategy.state not in model.STRATEGY_FINAL or self._report_kept:
            return None
        self._report_kept = True  # once: the play's end and the stats both end the run
        try:
            keep_report(self.store, strategy)
        except Exception as exc:  # pylint: disable=broad-exception-caught  # a picture only
            return f"Cannot keep the report of this prestage run: {exc}"
        return None

    # ------------------------------------------------------------------ what the strategy reads

    def admitting(self) -> bool:
        return self.write_error is None and model.admitting(self.current())

    def step_states(self) -> dict[str, str]:
        return {s.cloud: s.state for s in self.current().steps}

    def tick(self) -> None:
        """Called often by the strategy plugin: pick up foreign writes, flush when due; ends the
        play (RunInterrupted) after a signal, or when an abort has waited its timeout."""
        if self.interrupted is not None:
            raise RunInterrupted(self.interrupted)
        now = time.monotonic()
        if now - self._last_check >= self.flush_interval:
            self._last_check = now
            if self._file_signature() != self._signature:
                self.flush(force=True)  # merges the foreign change (e.g. an abort) in
            self._check_abort(now)
        self.flush()

    def _check_abort(self, now: float) -> None:
        strategy = self.current()
        if strategy.state not in (model.ABORT_REQUESTED, model.ABORTING):
            return
        running = [s.cloud for s in strategy.steps if s.in_progress]
        if not running:
            return
        if self._abort_seen is None:
            self._abort_seen = now
            log_reason(
                self.store, running,
                f"abort requested: waiting up to {int(self.abort_timeout)} s for this step",
            )  # fmt: skip
            return
        if now - self._abort_seen < self.abort_timeout:
            return
        self._stop_running(abort_timeout_reason(self.abort_timeout))
        self.flush(force=True)
        self.interrupted = "the abort timeout"
        raise RunInterrupted(self.interrupted)

    def _stop_running(self, reason: str) -> None:
        """The steps this run has in progress stop now, with reason (in their logs too)."""
        stopped = interrupt_steps(self.current(), reason, clouds=set(self._owned))
        for cloud in stopped:
            self._set_status(cloud, prestage_status=None, error=None)
        if stopped:
            self._dirty = True
            self.revision += 1
        log_reason(self.store, stopped, reason)

    # ------------------------------------------------------------------ signals

    def _catch_signals(self) -> None:
        """SIGTERM, SIGINT, SIGHUP: stop at the next tick (only in the play's main thread)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in INTERRUPT_SIGNALS:
            self._handlers[signum] = signal.signal(signum, self._on_signal)

    def _release_signals(self) -> None:
        for signum, handler in self._handlers.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(signum, handler)
        self._handlers.clear()

    def _on_signal(self, signum: int, frame: Any) -> None:
        if os.getpid() != self._pid:  # a forked worker that has not set its own handler yet
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if self.interrupted is None:
            self.interrupted = signal.Signals(signum).name
            return
        raise RunInterrupted(self.interrupted)  # a second signal: at once

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
        step = self.step(cloud)
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
        step = self.step(cloud)
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
        step = self.step(cloud)
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
        self.revision += 1

    # ------------------------------------------------------------------ helpers

    def current(self) -> model.Strategy:
        if self.strategy is None:
            raise PrestageError("the prestage run has not begun")
        return self.strategy

    def step(self, cloud: str) -> model.Step | None:
        """The step of a subcloud (None if it has none), by an index of the current steps: the
        callback asks at every task of every subcloud."""
        steps = self.current().steps
        if self._indexed is not steps:
            self._index = {step.cloud: step for step in steps}
            self._indexed = steps
        return self._index.get(cloud)

    def _final_or_unknown(self, cloud: str) -> bool:
        step = self.step(cloud)
        return step is None or step.final

    def _set_status(self, cloud: str, **values: Any) -> None:
        status = self._statuses.setdefault(cloud, SubcloudStatus())
        for key, value in values.items():
            setattr(status, key, value)
        self._dirty_statuses.add(cloud)

    def _changed(self) -> None:
        self._dirty = True
        self.revision += 1
        self.flush()

    def _file_signature(self) -> tuple[int, int, int] | None:
        try:
            info = os.stat(self.store.strategy_path)
        except OSError:
            return None
        return (info.st_ino, info.st_mtime_ns, info.st_size)
