# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
name: prestage
short_description: Runs a prestage strategy - a sliding window of subclouds, stage by stage
version_added: 0.1.0
description:
  - Applies the prestage strategy of the state dir (see the C(distcloud.prestage.prestage_state)
    callback) to the play's hosts. At most the stage's window of subclouds (its max parallel
    subclouds; 1 when serial) are in progress at once, and the moment one finishes the next
    waiting one starts - no polling interval, no batches. While every admitted subcloud has a
    task running, the play's main loop sleeps until a task result arrives (at most 0.1 seconds,
    to see an abort or a signal) instead of checking every millisecond.
  - Stages (one per subcloud group for an all-subcloud strategy) run one after another.
  - Stop-on-failure and an abort request (C(dcprestage prestage-strategy abort)) stop admitting
    subclouds at once; subclouds already running finish their work - after an abort, for at most
    the abort timeout (the extra var C(prestage_abort_timeout), else C($DCPRESTAGE_ABORT_TIMEOUT),
    default 600 seconds), after which they end C(aborted) with that reason and the play ends.
  - SIGTERM, SIGINT or SIGHUP to ansible-playbook stop admitting and end the play; the steps that
    were running go back to C(initial) with the signal as their details and in their logs (a new
    run, or C(dcprestage prestage-strategy apply), resumes them; C(abort) ends the strategy
    C(aborted)), and the run's ssh processes are stopped.
  - Every SSH connection of the run gets keepalives (C(-o ServerAliveInterval=I -o
    ServerAliveCountMax=C) added to each host's C(ansible_ssh_extra_args), the system
    controller's included, unless they already set C(ServerAliveInterval)), so a dead link fails
    a step in about I*C seconds even through a live ControlPersist master. I and C are the
    variables C(prestage_ssh_keepalive_interval) and C(prestage_ssh_keepalive_count), else
    C($DCPRESTAGE_SSH_KEEPALIVE_INTERVAL) and C($DCPRESTAGE_SSH_KEEPALIVE_COUNT), default 15 and
    4.
  - Before Python 3.13, the play's main process starts multiprocessing's resource tracker before
    its workers fork, so that they share it - ansible-core's default SSH password mechanism
    (C(ssh_askpass)) would otherwise start one Python interpreter for it in each worker, that is
    for every task of every subcloud.
  - Subclouds whose steps are already final (a resumed strategy) are not run again.
  - Every subcloud whose step failed in the run is a failed host in the run's stats (its recap,
    AWX's host summary), also when no task of it failed (its play ended before prestage
    completed), so AWX's relaunch on failed hosts runs exactly the failed subclouds again.
  - Progress lines in the play's output come from the C(distcloud.prestage.prestage_state)
    callback (its C(progress) options). The stdout callback is told the play runs host by host
    (as for the C(free) strategy), so it prints a task's banner with its first result instead of
    an empty banner each time a subcloud starts the task.
  - When the play ends, publishes a summary of the strategy read back from its state dir -
    counts per step state, failed subclouds with their reasons - as the custom stat
    C(prestage_summary) (what C(ansible.builtin.set_stats) with C(per_host=false) sets), so an
    AWX job keeps it as its artifacts and passes it to the next nodes of a workflow. It is
    published even when every subcloud failed, when a later play would not run.
  - Built on the C(free) strategy; it only decides which hosts the play may run now.
  - If a future ansible-core breaks it, the same play runs (without stages, abort or state
    recording) with the C(host_pinned) strategy, C(serial) and C(max_fail_percentage).
  - In a play with the play variable C(prestage_password_only=true) it only obtains the sysadmin
    password (as below) and keeps it for the plays that follow; C(playbooks/prestage.yml) starts
    with such a play, so a run without a password changes no strategy.
  - The sysadmin password is the connection password (C(-k), an AWX Machine credential), else
    the extra var C(sysadmin_password), else a connection password variable of the first host
    (C(ansible_password), C(ansible_become_password), ...), else dcmanager's prompt, with
    confirmation, when Ansible runs on a terminal. The play's hosts get it as the variable
    C(prestage_sysadmin_password), which the roles hand to the system controller for its pushes
    to the subclouds (the system controller's own login is its own).
notes:
  - Ansible needs at least as many forks as the largest window (C(--forks)).
"""

import collections  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from multiprocessing import resource_tracker  # noqa: E402
from typing import Any  # noqa: E402

from ansible.errors import AnsibleError  # noqa: E402
from ansible.plugins.loader import callback_loader  # noqa: E402
from ansible.plugins.strategy.free import StrategyModule as FreeStrategyModule  # noqa: E402
from ansible.utils.display import Display  # noqa: E402

from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import (  # noqa: E402
    PrestageError,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._password import (  # noqa: E402
    prompt_available,
    prompt_for_password,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._report import (  # noqa: E402
    SUMMARY_STAT,
    read_summary,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._run import (  # noqa: E402
    abort_timeout,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._strategy import (  # noqa: E402
    STEP_FAILED,
    check_forks,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._window import (  # noqa: E402
    Window,
)

display = Display()
STATE_CALLBACK = "distcloud.prestage.prestage_state"
PASSWORD_ONLY_VAR = "prestage_password_only"
SYSADMIN_PASSWORD_VAR = "prestage_sysadmin_password"
ABORT_TIMEOUT_VAR = "prestage_abort_timeout"
SSH_EXTRA_ARGS_VAR = "ansible_ssh_extra_args"
# (variable, environment variable, default) of the keepalives of the run's SSH connections
KEEPALIVE_INTERVAL = ("prestage_ssh_keepalive_interval", "DCPRESTAGE_SSH_KEEPALIVE_INTERVAL", 15)
KEEPALIVE_COUNT = ("prestage_ssh_keepalive_count", "DCPRESTAGE_SSH_KEEPALIVE_COUNT", 4)
# The longest the main loop sleeps waiting for a task result: how soon it sees an abort, a
# signal or a timeout while every admitted subcloud has a task running.
IDLE_WAIT = 0.1
# How long the end of an interrupted run waits for the core's result queue (its workers are
# gone by then: a lock still taken is one a stopped worker will never release).
RESULT_QUEUE_WAIT = 5.0
CONNECTION_PASSWORD_VARS = (
    "ansible_password", "ansible_ssh_pass", "ansible_become_password", "ansible_become_pass",
)  # fmt: skip


class CoreAccess:
    """Every private ansible-core attribute this plugin touches, in one place (tested per core).

    Ansible promises no stable API for strategy plugins; if a core release moves one of these,
    this class is the only thing to change.
    """

    def __init__(self, strategy: FreeStrategyModule) -> None:
        self._strategy = strategy

    @property
    def tqm(self) -> Any:
        return self._strategy._tqm

    def callbacks(self) -> list[Any]:
        return self.tqm._callback_plugins

    def forks(self) -> int:
        return len(self._strategy._workers)

    def play_hosts(self) -> list[str]:
        return list(self._strategy._hosts_cache)

    def is_blocked(self, host: str) -> bool:
        return bool(self._strategy._blocked_hosts.get(host, False))

    def is_unreachable(self, host: str) -> bool:
        return host in self.tqm._unreachable_hosts

    def has_next_task(self, iterator: Any, host: Any) -> bool:
        # peek: the host's state only reads complete after a non-peek call
        return iterator.get_next_task_for_host(host, peek=True)[1] is not None

    def host(self, name: str) -> Any:
        inventory = self._strategy._inventory
        try:
            return inventory.hosts[name]
        except KeyError:
            return inventory.get_host(name)

    def extra_vars(self, iterator: Any) -> dict[str, Any]:
        return iterator._play.get_variable_manager().extra_vars

    def play_vars(self, iterator: Any) -> dict[str, Any]:
        return dict(iterator._play.vars or {})

    def keep_passwords(self, password: str, become_pass: str) -> None:
        """The passwords of the plays to come (each gets a new play context made from these)."""
        self.tqm.passwords = {
            **self.tqm.passwords, "conn_pass": password, "become_pass": become_pass,
        }  # fmt: skip

    def host_vars(self, iterator: Any, name: str) -> dict[str, Any]:
        strategy = self._strategy
        return strategy._variable_manager.get_vars(
            play=iterator._play, host=self.host(name), _hosts=strategy._hosts_cache,
            _hosts_all=strategy._hosts_cache_all,
        )  # fmt: skip

    def inventory_vars(self, name: str) -> dict[str, Any]:
        """A host's inventory variables: its groups' then its own (no vars files, no play)."""
        host = self.host(name)
        merged: dict[str, Any] = {}
        for group in sorted(host.get_groups(), key=lambda g: (g.depth, g.priority, g.name)):
            merged.update(group.get_vars())
        merged.update(host.get_vars())
        return merged

    def set_host_var(self, name: str, key: str, value: Any) -> None:
        """A host variable for the rest of the run (not written anywhere)."""
        self.host(name).set_variable(key, value)

    def run_error(self) -> int:
        return self.tqm.RUN_ERROR

    def run_failed_hosts(self) -> int:
        return self.tqm.RUN_FAILED_HOSTS

    def counted_failed(self, name: str) -> bool:
        """Whether the run's stats count the host failed (AWX's failed host: failures or dark)."""
        stats = self.tqm._stats
        return bool(stats.failures.get(name) or stats.dark.get(name))

    def count_failure(self, name: str) -> None:
        """One more failure of the host in the run's stats (its recap, AWX's host summary)."""
        self.tqm._stats.increment("failures", name)

    def show_as_free(self, iterator: Any) -> None:
        """Tell the stdout callback this play runs host by host, as the free strategy it is built
        on does: the default callback prints a task's banner with its first result then, not an
        empty banner at every start of the task on each host (the play it keeps is this one)."""
        iterator._play.strategy = "ansible.builtin.free"

    def notify_results(self, event: threading.Event) -> None:
        """Set event whenever a task result arrives (the core's results thread appends it to the
        strategy's deque), so the main loop can sleep until one does."""
        strategy = self._strategy
        with strategy._results_lock:
            strategy._results = _NotifyingDeque(strategy._results, event)

    def results_waiting(self) -> bool:
        """Whether a task result has arrived that the main loop has not processed yet."""
        return bool(self._strategy._results)

    def result_queue_stuck(self, wait: float) -> bool:
        """Whether the lock of the core's result queue stays taken for wait seconds - as it does
        forever once a worker was stopped while it wrote a result or an event there."""
        lock = getattr(self._strategy._final_q, "_wlock", None)
        if lock is None:
            return False
        if lock.acquire(timeout=wait):
            lock.release()
            return False
        return True

    def set_run_stat(self, name: str, value: Any) -> None:
        """A custom stat of the whole run, as set_stats with per_host=false sets it."""
        self.tqm._stats.set_custom_stats(name, value)


class _NotifyingDeque(collections.deque[Any]):
    """The core's deque of task results, setting an event on each append."""

    def __init__(self, items: Any, event: threading.Event) -> None:
        super().__init__(items)
        self.event = event

    def append(self, item: Any) -> None:
        super().append(item)
        self.event.set()


class StrategyModule(FreeStrategyModule):
    def __init__(self, tqm: Any) -> None:
        super().__init__(tqm)
        self._core = CoreAccess(self)
        self._window: Window | None = None
        self._callback: Any = None
        self._result_arrived = threading.Event()

    def run(self, iterator: Any, play_context: Any) -> Any:
        self._set_hosts_cache(iterator._play)
        self._core.show_as_free(iterator)
        _share_resource_tracker()
        self._ensure_password(iterator, play_context)
        self._ssh_keepalives(iterator)
        if self._core.play_vars(iterator).get(PASSWORD_ONLY_VAR):
            # a play before the one that creates or applies the strategy: with no password, or
            # an interrupted prompt, the run stops before anything changed
            self._core.keep_passwords(play_context.password, play_context.become_pass)
            return super().run(iterator, play_context)
        self._callback = self._state_callback()
        try:
            run = self._callback.begin_run(iterator._play, play_context)
            run.take_over_process()
            timeout = self._core.extra_vars(iterator).get(ABORT_TIMEOUT_VAR)
            if timeout not in (None, ""):
                run.set_abort_timeout(abort_timeout(timeout))
            self._window = Window(run, self._core.play_hosts())
            self._core.notify_results(self._result_arrived)
            check_forks(run.current(), self._core.forks())
            before = run.step_states()
        except PrestageError as exc:
            if self._callback.run is not None:
                self._callback.end_run()
            raise AnsibleError(str(exc)) from None
        try:
            result = super().run(iterator, play_context)
        finally:
            self._callback.end_run()
            self._publish_summary(run.store.state_dir)
        if self._fail_hosts_of_failed_steps(run, before):
            result |= self._core.run_failed_hosts()
        if run.write_error:
            display.error(run.write_error)
            return self._core.run_error()
        return result

    def get_hosts_left(self, iterator: Any) -> list[Any]:
        """The admitted window: hosts in step order, unfinished, at most the stage's window."""
        if self._window is None:  # run() sets it before the free strategy asks
            return super().get_hosts_left(iterator)
        self._window.run.tick()
        self._callback.progress_tick()

        def finished(name: str) -> bool:
            if self._core.is_unreachable(name):
                return True
            if self._core.is_blocked(name):
                return False
            return not self._core.has_next_task(iterator, self._core.host(name))

        admitted = self._window.admit(finished)
        if admitted and all(self._core.is_blocked(name) for name in admitted):
            self._await_result()
        return [self._core.host(name) for name in admitted]

    def _await_result(self) -> None:
        """Every admitted subcloud has a task running: nothing can change before a result
        arrives, so sleep until one does (at most IDLE_WAIT, for abort, timeouts and signals)
        rather than let the free strategy poll every millisecond."""
        self._result_arrived.clear()
        if not self._core.results_waiting():  # one that arrived before the clear
            self._result_arrived.wait(IDLE_WAIT)

    def cleanup(self) -> None:
        """The core's cleanup puts an end marker into its result queue. After a signal the run
        stops its workers (StrategyRun.finish); one stopped while writing there leaves the
        queue's lock taken, and that put would wait forever - ansible-playbook hung after the
        run had ended. Then the marker is skipped: the results thread is a daemon thread and
        ends with the process."""
        run = self._window.run if self._window is not None else None
        interrupted = run is not None and run.interrupted is not None
        if interrupted and self._core.result_queue_stuck(RESULT_QUEUE_WAIT):
            display.vvv("The result queue's lock was left taken by a stopped worker")
            return
        super().cleanup()

    def _fail_hosts_of_failed_steps(self, run: Any, before: dict[str, str]) -> bool:
        """Every subcloud whose step failed in this run is a failed host of the run's stats - also
        when no task of it failed (the play ended for it before it completed):
        AWX's relaunch on failed hosts prestages exactly them. True when there is one."""
        hosts = set(self._core.play_hosts())
        failed = False
        for step in run.current().steps:
            if step.state != STEP_FAILED or before.get(step.cloud) == STEP_FAILED:
                continue
            if step.cloud in hosts:
                failed = True
                if not self._core.counted_failed(step.cloud):
                    self._core.count_failure(step.cloud)
        return failed

    def _publish_summary(self, state_dir: str) -> None:
        try:
            self._core.set_run_stat(SUMMARY_STAT, read_summary(state_dir))
        except PrestageError as exc:
            display.warning(f"No prestage summary published: {exc}")

    def _state_callback(self) -> Any:
        """The prestage_state callback of this run; loaded here if the config did not enable it."""
        for plugin in self._core.callbacks():
            if getattr(plugin, "CALLBACK_NAME", None) == STATE_CALLBACK:
                return plugin
        plugin = callback_loader.get(STATE_CALLBACK)
        if plugin is None:  # pragma: no cover - the collection ships it
            raise AnsibleError(f"The {STATE_CALLBACK} callback plugin cannot be loaded")
        plugin.set_options()
        self._core.callbacks().append(plugin)
        return plugin

    def _ssh_keepalives(self, iterator: Any) -> None:
        """Keepalives on the SSH connections of the run: the play's hosts and the system
        controller (its tasks are delegated to it). Added to each host's own
        ansible_ssh_extra_args, unless the connection already sets ServerAliveInterval."""
        hosts = self._core.play_hosts()
        if not hosts:
            return
        first = self._core.host_vars(iterator, hosts[0])
        interval, count = (
            _positive_int(first, *spec) for spec in (KEEPALIVE_INTERVAL, KEEPALIVE_COUNT)
        )
        keepalive = f"-o ServerAliveInterval={interval} -o ServerAliveCountMax={count}"
        names = list(hosts)
        controller = first.get("prestage_system_controller_host")
        if isinstance(controller, str) and controller and controller not in names:
            names.append(controller)
        # an AWX job slice knows the system controller only from its second play on (add_host):
        # the plays after that one add its keepalives
        names = [name for name in names if self._core.host(name) is not None]
        for name in names:
            own = str(self._core.inventory_vars(name).get(SSH_EXTRA_ARGS_VAR) or "")
            if "serveralive" not in own.lower():
                self._core.set_host_var(name, SSH_EXTRA_ARGS_VAR, f"{keepalive} {own}".strip())
        for name in sorted({hosts[0], names[-1]}):  # what a host_vars/group_vars file may outrank
            effective = str(self._core.host_vars(iterator, name).get(SSH_EXTRA_ARGS_VAR) or "")
            if "serveralive" not in effective.lower():
                display.warning(
                    f"The SSH connection to {name} has no keepalives ({SSH_EXTRA_ARGS_VAR} is "
                    "set where it outranks the prestage strategy): add -o ServerAliveInterval=... "
                    "to it, or a dead link may hang a step"
                )

    def _ensure_password(self, iterator: Any, play_context: Any) -> None:
        """The sysadmin password: connection password, else sysadmin_password, else the prompt."""
        password = play_context.password or play_context.become_pass
        if not password:
            password = self._core.extra_vars(iterator).get("sysadmin_password")
        if not password and self._core.play_hosts():
            # a connection password set as a variable (vault, inventory, -e @file)
            host_vars = self._core.host_vars(iterator, self._core.play_hosts()[0])
            password = next(
                (host_vars[n] for n in CONNECTION_PASSWORD_VARS if host_vars.get(n)), None
            )
        if not password:
            if not prompt_available():
                raise AnsibleError(
                    "No sysadmin password: give it with -k/--ask-pass, a Machine credential, or "
                    "-e sysadmin_password=... (from a vault), or run from a terminal to be asked"
                )
            try:
                password = prompt_for_password()
            except PrestageError as exc:
                raise AnsibleError(str(exc)) from None
        play_context.password = play_context.password or str(password)
        play_context.become_pass = play_context.become_pass or str(password)
        # the system controller pushes content to the subclouds: their roles hand it this
        # password (no_log arguments of a task delegated to it), never the SC's own login
        for name in self._core.play_hosts():
            self._core.set_host_var(name, SYSADMIN_PASSWORD_VAR, str(password))


def _share_resource_tracker() -> None:
    """Before Python 3.13, ansible-core's ssh_askpass password mechanism registers each SSH
    command's SharedMemory with multiprocessing's resource tracker, and a worker process that has
    none starts its own - a Python interpreter per task of every subcloud. One started here,
    before the workers fork from this process, is the one they all use."""
    if sys.version_info < (3, 13):
        resource_tracker.ensure_running()


def _positive_int(variables: dict[str, Any], name: str, env: str, default: int) -> int:
    """A setting: the variable, else the environment variable, else the default."""
    for value in (variables.get(name), os.environ.get(env)):
        if value in (None, ""):
            continue
        text = str(value)
        if re.fullmatch(r"[0-9]{1,6}", text, flags=re.ASCII) and int(text) > 0:
            return int(text)
        raise AnsibleError(f"{name} must be a positive whole number of seconds or tries: {text!r}")
    return default
