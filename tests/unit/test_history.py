"""The history of strategies (plugins/plugin_utils/_history.py): records saved, named, listed,
loaded, pruned; unreadable ones left alone; the retry request of the newest record."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from ansible_collections.distcloud.prestage.plugins.plugin_utils import _history as history
from ansible_collections.distcloud.prestage.plugins.plugin_utils import _logs as logs
from ansible_collections.distcloud.prestage.plugins.plugin_utils import _strategy as model
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import (
    NotFoundError,
    PrestageError,
    StateFileError,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._registry import parse_registry
from ansible_collections.distcloud.prestage.plugins.plugin_utils._store import StateStore
from tests.conftest import sc_facts

REGISTRY = """
groups:
  - {id: 1, name: Default}
  - {id: 2, name: Fast, update_apply_type: parallel, max_parallel_subclouds: 3}
  - {id: 3, name: Slow, update_apply_type: serial, max_parallel_subclouds: 4}
subclouds:
  - {id: 1, name: a, group: Fast, oam_floating_address: 10.0.0.1, software_version: "24.09"}
  - {id: 2, name: b, group: Default, oam_floating_address: 10.0.0.2, software_version: "24.09"}
  - {id: 3, name: c, group: Fast, oam_floating_address: 10.0.0.3, software_version: "24.09"}
  - {id: 4, name: d, group: Slow, oam_floating_address: 10.0.0.4, software_version: "24.09"}
  - {id: 5, name: e, group: Slow, oam_floating_address: 10.0.0.5, software_version: "24.09"}
"""


@pytest.fixture
def registry():
    return parse_registry(REGISTRY, "registry.yml")


def made(registry, created_at: str = "2026-12-01 03:18:14.5", **options) -> model.Strategy:
    request = model.CreateRequest(release="25.09", **options)
    return model.build_strategy(request, sc_facts(), registry, {}, created_at=created_at)


def finished(strategy: model.Strategy, failed: tuple[str, ...] = ()) -> model.Strategy:
    model.apply(strategy, {})
    for step in strategy.steps:
        state = model.STEP_FAILED if step.cloud in failed else model.STEP_COMPLETE
        model.set_step_state(strategy, step.cloud, state, "why" if step.cloud in failed else "")
    return strategy


def keep(store: StateStore, strategy: model.Strategy) -> history.Record:
    with store.locked():
        name = history.free_label(store, strategy.created_at)
        return history.save(store, strategy, name, "2026-12-02 00:00:00.0")


def test_a_record_is_the_strategy_document_private_and_named_as_its_logs(
    tmp_path: Path, registry
) -> None:
    store = StateStore(str(tmp_path / "state"))
    strategy = finished(made(registry, group="Fast"), failed=("c",))
    strategy.secret = {"dev": 1, "ino": 2}
    record = keep(store, strategy)
    assert record.name == logs.label(strategy.created_at) == "2026-12-01T03-18-14"
    path = Path(record.path)
    assert path == tmp_path / "state" / "history" / "2026-12-01T03-18-14.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    data = json.loads(path.read_text())
    assert data["history"] == {
        "deleted-at": "2026-12-02 00:00:00.0", "logs": "logs/history/2026-12-01T03-18-14",
    }  # fmt: skip
    assert "secret" not in data["strategy"]
    # the strict reader of strategy.json reads it as it is
    assert model.Strategy.from_dict(data).to_dict() == {
        k: v for k, v in data.items() if k != "history"
    }
    loaded = history.load(store.state_dir, record.name)
    assert loaded.counts() == {"steps": 2, "complete": 1, "skipped": 0, "failed": 1,
                               "aborted": 0, "running": 0, "waiting": 0}  # fmt: skip
    assert loaded.failed() == ["c"]
    assert (loaded.deleted_at, loaded.logs) == ("2026-12-02 00:00:00.0", record.logs)


def test_a_taken_label_gets_a_suffix_in_both_places(tmp_path: Path, registry) -> None:
    store = StateStore(str(tmp_path))
    first = keep(store, made(registry))
    second = keep(store, made(registry))  # the same created_at second
    assert (first.name, second.name) == ("2026-12-01T03-18-14", "2026-12-01T03-18-14.2")
    os.makedirs(os.path.join(store.logs_dir, "history", "2026-12-01T03-18-14.3"))
    assert history.free_label(store, made(registry).created_at) == "2026-12-01T03-18-14.4"
    Path(store.logs_dir, "subcloud_playbook_output.log").write_text("x")
    target = logs.retire_logs(store, "2026-12-01 03:18:14.5", "now", into="2026-12-01T03-18-14.4")
    assert target is not None and target.endswith("/history/2026-12-01T03-18-14.4")
    with pytest.raises(PrestageError, match="exists already"):
        history.save(store, made(registry), first.name, "now")
    # newest first: a suffix after its label, in number order
    for _suffix in range(5, 12):
        keep(store, made(registry))
    assert history.names(store.state_dir)[:3] == [
        "2026-12-01T03-18-14.11", "2026-12-01T03-18-14.10", "2026-12-01T03-18-14.9",
    ]  # fmt: skip


def test_unreadable_records_are_reported_and_never_pruned(tmp_path: Path, registry) -> None:
    store = StateStore(str(tmp_path))
    for day in range(1, 6):
        keep(store, made(registry, created_at=f"2026-12-0{day} 00:00:00.0"))
    base = Path(history.history_dir(store.state_dir))
    (base / "2026-11-01T00-00-00.json").write_text("[1")
    (base / "2026-11-02T00-00-00.json").write_text('{"schema": 7}')
    (base / "notes.txt").write_text("not a record")
    found, problems = history.records(store.state_dir)
    assert [r.name for r in found] == [f"2026-12-0{d}T00-00-00" for d in range(5, 0, -1)]
    assert problems == [
        f"Warning: skipped: History record {base / '2026-11-02T00-00-00.json'} was written by a "
        "newer distcloud.prestage (schema 7; this one reads schema 1)",
        f"Warning: skipped: History record {base / '2026-11-01T00-00-00.json'} is corrupt "
        "(not JSON)",
    ]
    with pytest.raises(StateFileError, match="corrupt"):
        history.load(store.state_dir, "2026-11-01T00-00-00")
    with pytest.raises(NotFoundError, match="History record x/y not found"):
        history.load(store.state_dir, "x/y")
    assert history.prune(store.state_dir, keep=2) == [
        "2026-12-03T00-00-00", "2026-12-02T00-00-00", "2026-12-01T00-00-00",
    ]  # fmt: skip
    assert sorted(p.name for p in base.iterdir()) == [
        "2026-11-01T00-00-00.json", "2026-11-02T00-00-00.json", "2026-12-04T00-00-00.json",
        "2026-12-05T00-00-00.json", "notes.txt",
    ]  # fmt: skip


def test_the_newest_record_is_the_last_strategy_even_when_unreadable(tmp_path: Path, registry):
    store = StateStore(str(tmp_path))
    assert history.latest(store.state_dir) is None
    keep(store, made(registry))
    Path(history.history_dir(store.state_dir), "2027-01-01T00-00-00.json").write_text("{")
    with pytest.raises(StateFileError, match="corrupt"):
        history.retry_request(store.state_dir)


@pytest.mark.parametrize(
    ("options", "failed", "stages"),
    [
        # all subclouds, group by group: the failed retry group by group, each group's window
        ({}, ("a", "d", "e"), [("Fast", "parallel", 3, ["a"]), ("Slow", "serial", 4, ["d", "e"])]),
        # a group's strategy: one stage with the window it had
        ({"group": "Fast"}, ("c",), [(None, "parallel", 3, ["c"])]),
        # explicit settings: kept
        ({"max_parallel_subclouds": 5}, ("b", "e"), [(None, None, 5, ["b", "e"])]),
    ],
)
def test_a_retry_takes_the_failed_subclouds_and_the_settings(
    tmp_path: Path, registry, options, failed, stages
) -> None:
    store = StateStore(str(tmp_path))
    original = finished(made(registry, for_sw_deploy=True, force=True, **options), failed)
    original.stop_on_failure = True
    record = keep(store, original)
    request, found = history.retry_request(store.state_dir)
    assert found.name == record.name
    retry = model.build_strategy(request, sc_facts(), registry, {})
    made_stages = [
        (s.group, s.subcloud_apply_type, s.max_parallel_subclouds,
         [x.cloud for x in retry.steps if x.stage == s.number])
        for s in retry.stages
    ]  # fmt: skip
    assert made_stages == stages
    assert (retry.release, retry.for_sw_deploy, retry.force, retry.stop_on_failure) == (
        "25.09", True, True, True,
    )  # fmt: skip
    assert history.retry_note(found, retry).startswith(
        f"Retrying {len(failed)} failed subclouds of the prestage strategy {record.name} "
    )


def test_a_retry_needs_failures_and_subclouds_still_there(tmp_path: Path, registry) -> None:
    store = StateStore(str(tmp_path))
    with pytest.raises(PrestageError, match=r"^Nothing to retry: no earlier prestage strategy"):
        history.retry_request(store.state_dir)
    keep(store, finished(made(registry, cloud_name="a")))
    with pytest.raises(PrestageError, match=r"\(2026-12-01T03-18-14, complete\) has no failed"):
        history.retry_request(store.state_dir)
    keep(store, finished(made(registry, group="Fast"), failed=("a", "c")))
    request, _record = history.retry_request(store.state_dir)
    smaller = parse_registry(REGISTRY.replace("  - {id: 3, name: c,", "  # "), "registry.yml")
    with pytest.raises(PrestageError, match=r"^Subcloud c does not exist$"):
        model.build_strategy(request, sc_facts(), smaller, {})
    assert history.retry_conflict("--retry-failed", []) is None
    assert history.retry_conflict("--retry-failed", ["--group", "--force"]) == (
        "--retry-failed retries the failed subclouds of the last prestage strategy with its "
        "settings: it cannot be combined with --group, --force"
    )
