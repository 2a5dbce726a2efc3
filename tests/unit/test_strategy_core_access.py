"""Everything the prestage strategy plugin touches of ansible-core, checked on the installed core.

The plugin keeps those private attributes in one class, CoreAccess; this test builds a real
TaskQueueManager, play iterator and strategy for a two-host play and exercises each accessor, so
a core that moves one of them fails here, by name, before any run does.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from ansible import context
from ansible.executor.play_iterator import PlayIterator
from ansible.executor.task_queue_manager import TaskQueueManager
from ansible.inventory.manager import InventoryManager
from ansible.module_utils.common.collections import ImmutableDict
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.play import Play
from ansible.playbook.play_context import PlayContext
from ansible.plugins.loader import init_plugin_loader
from ansible.utils.fqcn import add_internal_fqcns
from ansible.vars.manager import VariableManager


@pytest.fixture
def core(tmp_path: Path):
    init_plugin_loader()
    context.CLIARGS = ImmutableDict(forks=3, connection="local", check=False, diff=False,
                                    verbosity=0, start_at_task=None)  # fmt: skip
    from ansible_collections.distcloud.prestage.plugins.strategy.prestage import (  # noqa: PLC0415
        CoreAccess,
        StrategyModule,
    )

    (tmp_path / "hosts").write_text("h1 ansible_connection=local\nh2 ansible_connection=local\n")
    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources=[str(tmp_path / "hosts")])
    variables = VariableManager(loader=loader, inventory=inventory)
    play = Play().load(
        {"hosts": "all", "gather_facts": False, "tasks": [{"ansible.builtin.debug": {"msg": "x"}}]},
        variable_manager=variables,
        loader=loader,
    )
    tqm = TaskQueueManager(inventory=inventory, variable_manager=variables, loader=loader,
                           passwords={}, forks=3)  # fmt: skip
    tqm._initialize_processes(2)
    iterator = PlayIterator(inventory=inventory, play=play, play_context=PlayContext(play),
                            variable_manager=variables, all_vars={})  # fmt: skip
    strategy = StrategyModule(tqm)
    strategy._set_hosts_cache(play)
    yield CoreAccess(strategy), iterator, tqm
    tqm.cleanup()


def test_core_access_works_on_this_ansible_core(core) -> None:
    access, iterator, tqm = core
    assert isinstance(access.callbacks(), list)
    assert access.forks() == 2
    assert access.play_hosts() == ["h1", "h2"]
    host = access.host("h1")
    assert host.name == "h1"
    assert access.is_blocked("h1") is False
    assert access.is_unreachable("h1") is False
    assert access.has_next_task(iterator, host) is True
    assert access.has_next_task(iterator, host) is True  # peeking does not consume the task
    assert access.extra_vars(iterator) == {}
    assert access.run_error() == tqm.RUN_ERROR
    access.set_run_stat("prestage_summary", {"state": "complete"})
    # where set_stats(per_host=false) puts it, and ansible-runner's awx_display reads it from
    assert tqm._stats.custom["_run"] == {"prestage_summary": {"state": "complete"}}
    # the default stdout callback prints banners lazily (with a result) for these strategies
    access.show_as_free(iterator)
    assert iterator._play.strategy in add_internal_fqcns(("free", "host_pinned"))
    # the main loop sleeps until a task result arrives: the core's results deque notifies
    arrived = threading.Event()
    access.notify_results(arrived)
    assert access.results_waiting() is False and not arrived.is_set()
    with access._strategy._results_lock:  # as the core's results thread appends one
        access._strategy._results.append("a result")
    assert access.results_waiting() is True and arrived.is_set()
    access._strategy._results.clear()
    # the core's result queue: free, or locked (as a worker stopped while writing leaves it)
    assert access.result_queue_stuck(0.01) is False
    lock = access._strategy._final_q._wlock
    assert lock.acquire(timeout=1)
    try:
        assert access.result_queue_stuck(0.01) is True
    finally:
        lock.release()
