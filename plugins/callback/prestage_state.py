# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
name: prestage_state
type: aggregate
short_description: Records prestage strategy and step state to the state dir as a play runs
version_added: 0.1.0
description:
  - Records, while C(playbooks/prestage.yml) (or any play using the C(distcloud.prestage.prestage)
    strategy) runs, the state of the prestage strategy and of each of its steps to
    C(<state_dir>/strategy.json), the prestage status and versions of each subcloud to
    C(<state_dir>/subclouds.json), and what ran for each subcloud to
    C(<log_dir>/<subcloud>_playbook_output.log). C(dcprestage strategy-step list) shows it live.
  - A failed step's details name the subcloud's log, and the log ends with the reason.
  - A step's state follows the phase of the task its subcloud runs (the C(prestage_phase) variable
    set by the prestage roles) - C(prestage-precheck), C(prestaging-packages),
    C(prestaging-images) - and ends C(complete), C(failed) or C(aborted).
  - Writes are coalesced (at most one per I(flush_interval)) and replace the files atomically under
    the state dir's lock. A write that fails is reported as an error and fails the run.
  - The sysadmin password is never written; results of C(no_log) tasks are logged censored.
requirements:
  - enable it in ansible.cfg (C(callbacks_enabled = distcloud.prestage.prestage_state)) or let the
    C(distcloud.prestage.prestage) strategy load it.
options:
  state_dir:
    description:
      - The state dir of the strategy. The extra variable C(prestage_state_dir) overrides it.
      - Default C(${XDG_STATE_HOME:-~/.local/state}/distcloud-prestage).
    type: path
    env:
      - name: DCPRESTAGE_STATE_DIR
  log_dir:
    description: Where per-subcloud logs go. Default C(<state_dir>/logs).
    type: path
    env:
      - name: DCPRESTAGE_LOG_DIR
    ini:
      - section: distcloud_prestage
        key: log_dir
  progress:
    description:
      - Progress lines in the play's output (and so in an AWX job's output), next to the stdout
        callback's own - C(PRESTAGE stage k/n started ...) when a stage starts, a line for each
        subcloud that is skipped (with its reason) or fails (with its details and log), the
        counts of C(dcprestage strategy-step list) when they changed (at most one line per
        I(progress_interval), and one a minute while nothing changes) - and at the end of the run
        a summary - the counts, the failed subclouds with their reasons and logs, the slowest
        subclouds.
    type: bool
    default: true
    env:
      - name: DCPRESTAGE_PROGRESS
    ini:
      - section: distcloud_prestage
        key: progress
  progress_interval:
    description: Shortest time, in seconds, between two counts lines of the progress.
    type: float
    default: 5.0
    env:
      - name: DCPRESTAGE_PROGRESS_INTERVAL
    ini:
      - section: distcloud_prestage
        key: progress_interval
  flush_interval:
    description:
      - Longest time, in seconds, a recorded change waits before it is written; also how often a
        running play looks for an abort written by another command.
      - Each write rewrites the state files in Ansible's main process, which also starts the next
        subcloud; a shorter interval shows progress sooner and admits the next subcloud later.
    type: float
    default: 1.0
    env:
      - name: DCPRESTAGE_FLUSH_INTERVAL
    ini:
      - section: distcloud_prestage
        key: flush_interval
"""

import os  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402
from typing import IO, Any  # noqa: E402

from ansible.plugins.callback import CallbackBase  # noqa: E402

from ansible_collections.distcloud.prestage.plugins.plugin_utils import (  # noqa: E402
    _strategy as model,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._progress import (  # noqa: E402
    Progress,
    summary_lines,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._run import (  # noqa: E402
    StrategyRun,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._store import (  # noqa: E402
    StateStore,
    run_state_dir,
)

STRATEGY_NAME = "distcloud.prestage.prestage"
_PHASES_WITH_LOG = {"packages": "packages", "images": "images"}
_SCRUB = "********"


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "distcloud.prestage.prestage_state"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display: Any = None, options: Any = None) -> None:
        super().__init__(display=display, options=options)
        self.run: StrategyRun | None = None
        self._store: StateStore | None = None
        self._log_dir = ""
        self._logs: dict[str, IO[str]] = {}
        self._secrets: list[str] = []
        self._progress: Progress | None = None

    # ------------------------------------------------------------ the strategy plugin starts us

    def begin_run(self, play: Any, play_context: Any) -> StrategyRun:
        """Take over the strategy for this play (called by the prestage strategy plugin)."""
        extra_vars = play.get_variable_manager().extra_vars
        state_dir = run_state_dir(
            extra_vars.get("prestage_state_dir") or self.get_option("state_dir"), extra_vars
        )
        # a one-subcloud run (dcprestage subcloud prestage) reports to the main state dir
        store = StateStore(
            state_dir,
            statuses_dir=extra_vars.get("prestage_status_dir"),
            logs_dir=extra_vars.get("prestage_log_dir") or self.get_option("log_dir"),
        )
        self._store = store
        self._log_dir = store.logs_dir
        self.set_secrets(play_context)
        self.run = StrategyRun(
            store,
            flush_interval=float(self.get_option("flush_interval")),
            on_write_error=self._display.error,
            on_step_failed=self._end_log,
        )
        self.run.begin()
        os.makedirs(self._log_dir, mode=0o700, exist_ok=True)
        if self.get_option("progress"):
            interval = float(self.get_option("progress_interval"))
            self._progress = Progress(interval=max(interval, 0.0))
        return self.run

    def set_secrets(self, play_context: Any) -> None:
        """Values that must never reach a log (the connection and become passwords)."""
        self._secrets = sorted(
            {s for s in (play_context.password, play_context.become_pass) if s}, key=len
        )[::-1]

    def end_run(self) -> None:
        if self.run is not None:
            self.run.finish()
            if warning := self.run.keep_report():
                self._display.warning(warning)
            progress, self._progress = self._progress, None
            if progress is not None:  # once: the play's end and the stats both end the run
                self._show(summary_lines(self.run.current()))
        for handle in self._logs.values():
            handle.close()
        self._logs.clear()

    # ------------------------------------------------------------ task events

    def v2_runner_on_start(self, host: Any, task: Any) -> None:
        if self.run is None or (phase := self._phase(task)) is None:
            return
        name = host.get_name()
        self.run.enter_phase(name, phase)
        self._log(name, f"TASK [{task.get_name()}] started ({phase})")
        if self._progress is not None and (step := self.run.step(name)) is not None:
            self._show(self._progress.step_entered(self.run.current(), step))

    def v2_runner_on_ok(self, result: Any) -> None:
        if self.run is None or self._phase(result._task) is None:
            return
        name = result._host.get_name()
        data = result._result
        self._log(name, f"ok{' (changed)' if data.get('changed') else ''}: {self._summary(data)}")
        versions = data.get("prestage_versions")
        # the log's last line is written before the step's state: a final step's log is whole
        if data.get("prestage_skip_reason"):
            self._skip(name, str(data["prestage_skip_reason"]))
        elif data.get("prestage_complete"):
            self._log(name, "prestage complete")
            self._close(name)
            self.run.complete(name, versions if isinstance(versions, str) else None)
        elif isinstance(versions, str):
            self.run.record_versions(name, versions)

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        if self.run is None or (phase := self._phase(result._task)) is None:
            return
        name = result._host.get_name()
        message = self._message(result._result)
        self._log(name, f"failed{' (ignored)' if ignore_errors else ''}: {message}")
        if ignore_errors:
            return
        self._fail(name, phase, message, result._result)

    def v2_runner_on_unreachable(self, result: Any) -> None:
        if self.run is None or (phase := self._phase(result._task)) is None:
            return
        name = result._host.get_name()
        message = f"Subcloud {name} is unreachable: {self._message(result._result)}"
        self._log(name, f"unreachable: {message}")
        self._fail(name, phase, message, result._result)

    def v2_runner_on_skipped(self, result: Any) -> None:
        if self.run is None or self._phase(result._task) is None:
            return
        name = result._host.get_name()
        self._log(name, "skipped")
        reason = result._result.get("prestage_skip_reason")
        if reason:  # precheck's skip (else a task its `when` skipped)
            self._skip(name, str(reason))

    def v2_playbook_on_stats(self, stats: Any) -> None:
        self.end_run()

    # ------------------------------------------------------------ helpers

    def _skip(self, name: str, reason: str) -> None:
        """The subcloud is skipped (its step ends complete, the reason in its details)."""
        if self.run is None:
            return
        self._log(name, model.skip_details(name, reason))
        self._close(name)
        self.run.skip(name, reason)
        self._step_ended(name)

    def _fail(self, name: str, phase: str, message: str, data: dict[str, Any]) -> None:
        if self.run is None:
            return
        if phase in _PHASES_WITH_LOG:
            timeout = bool(data.get("prestage_timeout")) or "timed out" in message.lower()
            reason = model.phase_failure_reason(
                _PHASES_WITH_LOG[phase], name, self.log_path(name), timeout=timeout
            )
        else:
            reason = message
        self.run.fail(name, self._scrub(reason))
        self._close(name)

    def log_path(self, name: str) -> str:
        if self._store is None:
            raise RuntimeError("the prestage run has not begun")
        return self._store.log_path(name)

    def _end_log(self, name: str, line: str) -> None:
        """A step failed (whoever noticed): its log ends with the reason."""
        self._log(name, line)
        self._close(name)
        self._step_ended(name)

    # ------------------------------------------------------------ progress lines

    def progress_tick(self) -> None:
        """Called often by the strategy plugin: the counts line when one is due."""
        progress, run = self._progress, self.run
        if progress is None or run is None:
            return
        clock = time.monotonic()
        if progress.due(clock, run.revision):
            self._display.display(progress.counts(run.current(), clock, run.revision))

    def _step_ended(self, name: str) -> None:
        if self._progress is not None and self.run is not None:
            step = self.run.step(name)
            if step is not None:
                self._show(self._progress.step_ended(step))
        self.progress_tick()

    def _show(self, lines: list[str]) -> None:
        for line in lines:
            self._display.display(self._scrub(line))

    @staticmethod
    def _phase(task: Any) -> str | None:
        phase = task.get_vars().get("prestage_phase")
        return phase if isinstance(phase, str) else None

    @staticmethod
    def _message(data: dict[str, Any]) -> str:
        parts = [str(data.get("msg") or "").strip()]
        for key in ("stderr", "module_stderr"):
            text = str(data.get(key) or "").strip()
            if text and text not in parts[0]:
                parts.append(text)
        message = " ".join(p for p in parts if p) or "unknown error"
        return re.sub(r"\s+", " ", message)

    def _summary(self, data: dict[str, Any]) -> str:
        if data.get("censored"):
            return str(data["censored"])
        keys = [k for k in sorted(data) if not k.startswith(("_ansible", "invocation"))]
        return ", ".join(f"{k}={str(data[k])[:200]}" for k in keys[:12])

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, _SCRUB)
        return text

    def _log(self, name: str, line: str) -> None:
        handle = self._logs.get(name)
        try:
            if handle is None:
                flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW
                fd = os.open(self.log_path(name), flags, 0o600)
                handle = self._logs[name] = os.fdopen(fd, "a", encoding="utf-8")
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            handle.write(f"{stamp} {self._scrub(line)}\n")
            handle.flush()
        except OSError as exc:
            self._display.warning(f"Cannot write the prestage log of {name}: {exc.strerror}")

    def _close(self, name: str) -> None:
        handle = self._logs.pop(name, None)
        if handle is not None:
            handle.close()
