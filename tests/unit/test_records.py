"""What a run records besides the steps: logs per strategy (retired to a bounded history), the
orphan warning, and the environment a run gets (what ansible-runner's artifacts record)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from ansible_collections.distcloud.prestage.plugins.plugin_utils import _logs as logs
from ansible_collections.distcloud.prestage.plugins.plugin_utils import _report as report
from ansible_collections.distcloud.prestage.plugins.plugin_utils import _strategy as model
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError
from ansible_collections.distcloud.prestage.plugins.plugin_utils._orchestrator import (
    orchestrator_record,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._store import StateStore
from dcprestage import _launcher as launcher


def _write_logs(store: StateStore, *clouds: str) -> None:
    os.makedirs(store.logs_dir, exist_ok=True)
    for cloud in clouds:
        Path(store.log_path(cloud)).write_text(f"{cloud} ran\n")


def test_delete_retires_the_strategy_logs_into_its_history(tmp_path: Path) -> None:
    store = StateStore(str(tmp_path))
    _write_logs(store, "sc1", "sc2")
    Path(store.logs_dir, "orchestrator.log").write_text("run\n")
    Path(store.logs_dir, "notes.txt").write_text("the operator's\n")
    target = logs.retire_logs(store, "2026-12-01 03:18:14.123456", "2026-12-02 00:00:00.0")
    assert target == os.path.join(store.logs_dir, "history", "2026-12-01T03-18-14")
    assert sorted(os.listdir(target)) == [
        "orchestrator.log", "sc1_playbook_output.log", "sc2_playbook_output.log",
    ]  # fmt: skip
    assert sorted(os.listdir(store.logs_dir)) == ["history", "notes.txt"]
    assert logs.retire_logs(store, "2026-12-01 03:18:14.123456", "x") is None  # nothing left


def test_create_retires_logs_no_strategy_owns(tmp_path: Path) -> None:
    store = StateStore(str(tmp_path))
    _write_logs(store, "sc1")
    target = logs.retire_logs(store, None, "2026-12-01 04:00:00.5")
    assert os.path.basename(str(target)) == "2026-12-01T04-00-00-earlier"
    _write_logs(store, "sc1")  # the same label again does not mix two strategies' logs
    again = logs.retire_logs(store, None, "2026-12-01 04:00:00.7")
    assert os.path.basename(str(again)) == "2026-12-01T04-00-00-earlier.2"


def test_the_history_keeps_the_newest_strategies(tmp_path: Path) -> None:
    store = StateStore(str(tmp_path))
    for day in range(1, 9):
        _write_logs(store, "sc1")
        logs.retire_logs(store, f"2026-12-0{day} 00:00:00.0", "now")
    kept = sorted(os.listdir(logs.history_dir(store)))
    assert kept == [f"2026-12-0{day}T00-00-00" for day in range(9 - logs.LOG_HISTORY, 9)]


def test_logs_that_cannot_move_are_one_clear_error(tmp_path: Path) -> None:
    store = StateStore(str(tmp_path))
    _write_logs(store, "sc1")
    Path(logs.history_dir(store)).write_text("not a directory")
    with pytest.raises(PrestageError, match=r"Cannot move the logs of .* to .*: Not a directory"):
        logs.retire_logs(store, "2026-12-01 00:00:00.0", "now")
    assert os.path.exists(store.log_path("sc1"))


def test_the_orphan_warning_is_composed_once(tmp_path: Path) -> None:
    strategy = model.Strategy(
        release="25.09", for_sw_deploy=False, subcloud_apply_type=None,
        max_parallel_subclouds=None, stop_on_failure=False, force=False, cloud_name=None,
        group=None, stages=[model.Stage(1, None, None, 2)], steps=[model.Step("a", 1)],
        state=model.APPLYING,
    )  # fmt: skip
    strategy.orchestrator = orchestrator_record(os.getpid(), via="test")
    assert report.orphan_warning(strategy) is None  # this process is alive
    strategy.orchestrator = {"pid": 2**22 + 1, "start-ticks": 1, "host": socket.gethostname()}
    assert report.orphan_warning(strategy, "/s") == (
        f"Warning: the orchestrator of this strategy in /s (pid {2**22 + 1}) is not running; "
        "'dcprestage prestage-strategy apply' resumes it, 'abort' stops it."
    )
    strategy.state = model.FAILED
    assert report.orphan_warning(strategy) is None  # a final strategy runs nothing


def test_a_run_gets_only_the_environment_it_needs() -> None:
    environ = {
        "PATH": "/bin", "HOME": "/root", "LANG": "C.UTF-8", "LC_ALL": "C", "SSH_AUTH_SOCK": "/s",
        "ANSIBLE_CONFIG": "/a.cfg", "DCPRESTAGE_STATE_DIR": "/s", "RUNNER_OMIT_EVENTS": "False",
        "AWX_ISOLATED_DATA_DIR": "/d", "DCPRESTAGE_SYSADMIN_PASSWORD": "pw",
        "AWS_SECRET_ACCESS_KEY": "k", "GITHUB_TOKEN": "t", "http_proxy": "http://u:p@proxy",
        "DCPRESTAGE_PASS_ENV": "http_proxy, NOT_SET",
    }  # fmt: skip
    env = launcher.orchestrator_env(environ)
    assert sorted(env) == [
        "ANSIBLE_CONFIG", "AWX_ISOLATED_DATA_DIR", "DCPRESTAGE_PASS_ENV", "DCPRESTAGE_STATE_DIR",
        "HOME", "LANG", "LC_ALL", "PATH", "RUNNER_OMIT_EVENTS", "SSH_AUTH_SOCK", "http_proxy",
    ]  # fmt: skip
