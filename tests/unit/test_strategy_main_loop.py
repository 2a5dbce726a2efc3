"""The prestage strategy's main loop and its end: it sleeps until a task result arrives when
every admitted subcloud has a task running, instead of the free strategy's poll every
millisecond, and never when there is work to hand out or a result to process; an interrupted run
whose stopped worker left the core's result queue locked ends instead of waiting forever."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.distcloud.prestage.plugins.strategy import prestage


class FakeCore:
    def __init__(
        self, blocked: set[str], result_waiting: bool = False, queue_stuck: bool = False
    ) -> None:
        self.blocked = blocked
        self.result_waiting = result_waiting
        self.queue_stuck = queue_stuck
        self.waited: list[float] = []

    def result_queue_stuck(self, wait: float) -> bool:
        self.waited.append(wait)
        return self.queue_stuck

    def is_blocked(self, name: str) -> bool:
        return name in self.blocked

    def is_unreachable(self, name: str) -> bool:
        return False

    def has_next_task(self, iterator: Any, host: Any) -> bool:
        return True

    def host(self, name: str) -> str:
        return name

    def results_waiting(self) -> bool:
        return self.result_waiting


class FakeRun:
    interrupted: str | None = None

    def tick(self) -> None:
        pass


class FakeWindow:
    def __init__(self, admitted: list[str]) -> None:
        self.run = FakeRun()
        self.admitted = admitted

    def admit(self, finished: Any) -> list[str]:
        return [name for name in self.admitted if not finished(name)]


class FakeCallback:
    def progress_tick(self) -> None:
        pass


class RecordingEvent:
    def __init__(self) -> None:
        self.waits: list[float] = []
        self.cleared = 0

    def clear(self) -> None:
        self.cleared += 1

    def wait(self, timeout: float) -> bool:
        self.waits.append(timeout)
        return False


def strategy(admitted: list[str], core: FakeCore) -> Any:
    module = object.__new__(prestage.StrategyModule)  # no TaskQueueManager: the loop's decision
    module._core = core
    module._window = FakeWindow(admitted)
    module._callback = FakeCallback()
    module._result_arrived = RecordingEvent()
    return module


def test_it_sleeps_until_a_result_when_every_admitted_subcloud_is_busy() -> None:
    module = strategy(["subcloud1", "subcloud2"], FakeCore(blocked={"subcloud1", "subcloud2"}))
    assert module.get_hosts_left(iterator=None) == ["subcloud1", "subcloud2"]
    assert module._result_arrived.waits == [prestage.IDLE_WAIT]
    assert module._result_arrived.cleared == 1  # cleared before it looked for a result


@pytest.mark.parametrize(
    ("admitted", "core"),
    [
        (["subcloud1", "subcloud2"], FakeCore(blocked={"subcloud1"})),  # a task to hand out
        (["subcloud1"], FakeCore(blocked={"subcloud1"}, result_waiting=True)),  # one to process
        ([], FakeCore(blocked=set())),  # nothing admitted: the play ends
    ],
    ids=["work-to-hand-out", "a-result-arrived", "nothing-admitted"],
)
def test_it_never_sleeps_with_something_to_do(admitted: list[str], core: FakeCore) -> None:
    module = strategy(admitted, core)
    assert module.get_hosts_left(iterator=None) == admitted
    assert module._result_arrived.waits == []


@pytest.mark.parametrize(
    ("interrupted", "stuck", "core_cleanup"),
    [
        ("SIGINT", True, False),  # a stopped worker holds the queue's lock: no end marker
        ("SIGINT", False, True),
        (None, True, True),  # not interrupted: no worker was stopped, the core's own cleanup
    ],
)
def test_an_interrupted_run_ends_though_a_stopped_worker_locked_the_result_queue(
    monkeypatch: pytest.MonkeyPatch, interrupted: str | None, stuck: bool, core_cleanup: bool
) -> None:
    core = FakeCore(blocked=set(), queue_stuck=stuck)
    module = strategy(["subcloud1"], core)
    module._window.run.interrupted = interrupted
    cleaned: list[bool] = []
    monkeypatch.setattr(prestage.FreeStrategyModule, "cleanup", lambda self: cleaned.append(True))
    module.cleanup()
    assert cleaned == ([True] if core_cleanup else [])
    assert core.waited == ([prestage.RESULT_QUEUE_WAIT] if interrupted else [])
