# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""Which subclouds may run now: the sliding window of the prestage strategy plugin.

Pure logic over the run's steps, so it is tested without Ansible: hosts are admitted in step order,
at most the current stage's window at once; a stage starts when the one before it has finished;
nothing new is admitted after an abort request, a stop-on-failure, or a failed state write.
"""

from __future__ import annotations

from collections.abc import Callable

from ansible_collections.distcloud.prestage.plugins.plugin_utils import _strategy as model
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError
from ansible_collections.distcloud.prestage.plugins.plugin_utils._run import StrategyRun


class Window:
    def __init__(self, run: StrategyRun, play_hosts: list[str]) -> None:
        strategy = run.strategy
        if strategy is None:
            raise PrestageError("the prestage run has not begun")
        model.check_play_hosts(strategy, play_hosts)
        self.run = run
        self._order = [s.cloud for s in strategy.steps]
        self._stage_of = {s.cloud: s.stage for s in strategy.steps}
        self._size = {stage.number: stage.window for stage in strategy.stages}
        self._running: list[str] = []
        self._next = 0

    def admit(self, finished: Callable[[str], bool]) -> list[str]:
        """The hosts that may run now; finished(host) says whether an admitted host is done."""
        still = []
        for cloud in self._running:
            if finished(cloud):
                self.run.host_finished(cloud)
            else:
                still.append(cloud)
        if self.run.admitting():
            states = self.run.step_states()
            wanted: list[str] = []
            while self._next < len(self._order):
                cloud = self._order[self._next]
                if states.get(cloud) != model.STEP_INITIAL:
                    self._next += 1  # done in an earlier run, or aborted while waiting
                    continue
                stage = self._stage_of[cloud]
                busy = still + wanted
                if busy and self._stage_of[busy[0]] != stage:
                    break  # the previous stage is still running
                if len(busy) >= self._size[stage]:
                    break
                wanted.append(cloud)
                self._next += 1
            # an abort that came since the last tick may take some back (they end aborted)
            still += self.run.start(wanted)
        self._running = still
        return list(still)
