# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""The history of strategies: a deleted strategy's final record, and retrying what it failed.

`prestage-strategy delete` keeps the strategy's last record as `<state_dir>/history/<label>.json`
before it removes the strategy. The label is the strategy's created_at as a file name
(`2026-12-01T03-18-14`, see _logs.label), the one its logs get in `logs/history/<label>/`, so one
name finds both; a label already taken (either place) gets a suffix (`.2`, `.3`, ...). A record is
exactly the strategy.json document (Strategy.to_dict(): the same strict reader reads it, the same
schema number) plus one top-level key that reader ignores, `history`: `deleted-at` and `logs` (the
logs' directory, relative to the state dir). The newest HISTORY_KEEP readable records are kept;
older readable ones are pruned. A record that is corrupt or of a newer schema is reported by
whoever reads it and never overwritten or removed.

`--retry-failed` (dcprestage) and `prestage_retry_failed` (the playbook) make a strategy of the
failed subclouds of the newest record, with its settings (retry_request: the one rule for both).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ansible_collections.distcloud.prestage.plugins.plugin_utils import _strategy as model
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import (
    NotFoundError,
    PrestageError,
    StateFileError,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._files import (
    atomic_write,
    read_private,
    sweep_temps,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._logs import (
    HISTORY_DIR as LOGS_HISTORY_DIR,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._logs import label
from ansible_collections.distcloud.prestage.plugins.plugin_utils._store import (
    StateStore,
    _parse_json,
    private_dir,
)

HISTORY_DIR = "history"
HISTORY_KEEP = 50  # readable records kept; older ones are pruned when a strategy is deleted
RECORD_SUFFIX = ".json"
HISTORY_KEY = "history"  # the record's own top-level key (strategy.json's reader ignores it)
# a record's name: a label, maybe with a suffix (nothing that leaves the history dir)
_NAME = re.compile(r"[0-9A-Za-z_-]+(?:\.[0-9]+)?", flags=re.ASCII)

# `prestage-strategy create --retry-failed` and the playbook's prestage_retry_failed
RETRY_FLAG = "--retry-failed"
RETRY_VAR = "prestage_retry_failed"


def msg_retry_conflict(flag: str, given: Iterable[str]) -> str:
    return (
        f"{flag} retries the failed subclouds of the last prestage strategy with its settings: "
        f"it cannot be combined with {', '.join(given)}"
    )


def msg_no_history(state_dir: str) -> str:
    return (
        f"Nothing to retry: no earlier prestage strategy is kept in "
        f"{os.path.join(state_dir, HISTORY_DIR)} (a strategy is kept there when it is deleted)"
    )


def msg_nothing_to_retry(record: Record) -> str:
    return (
        f"Nothing to retry: the last prestage strategy ({record.name}, {record.strategy.state}) "
        "has no failed steps"
    )


@dataclass
class Record:
    """One kept strategy: its name (the file's, without .json), file and final record."""

    name: str
    path: str
    strategy: model.Strategy
    deleted_at: str | None = None
    logs: str | None = None  # the logs' directory, relative to the state dir

    def counts(self) -> dict[str, int]:
        """The steps in all, then per model.tally's keys (complete, skipped, failed, ...)."""
        return {"steps": len(self.strategy.steps), **model.tally(self.strategy.steps)}

    def failed(self) -> list[str]:
        """The subclouds whose step failed, in step order."""
        return [s.cloud for s in self.strategy.steps if s.state == model.STEP_FAILED]


def history_dir(state_dir: str) -> str:
    return os.path.join(state_dir, HISTORY_DIR)


def _sort_key(name: str) -> tuple[str, int]:
    """Oldest first: labels sort by time; a suffix comes after its label, in number order."""
    base, _dot, suffix = name.partition(".")
    return base, int(suffix) if suffix.isdigit() else 1


def names(state_dir: str) -> list[str]:
    """The records' names, newest first (readable or not)."""
    try:
        entries = os.listdir(history_dir(state_dir))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise PrestageError(f"Cannot read {history_dir(state_dir)}: {exc.strerror}") from None
    found = [
        entry[: -len(RECORD_SUFFIX)]
        for entry in entries
        if entry.endswith(RECORD_SUFFIX) and _NAME.fullmatch(entry[: -len(RECORD_SUFFIX)])
    ]
    return sorted(found, key=_sort_key, reverse=True)


def free_label(store: StateStore, created_at: str | None) -> str:
    """The label of a strategy created at created_at that neither a record nor a logs directory
    has yet (hold the state dir's lock)."""
    base = label(created_at or "")
    logs_history = os.path.join(store.logs_dir, LOGS_HISTORY_DIR)
    candidate, suffix = base, 1
    while os.path.lexists(
        os.path.join(history_dir(store.state_dir), candidate + RECORD_SUFFIX)
    ) or os.path.lexists(os.path.join(logs_history, candidate)):
        suffix += 1
        candidate = f"{base}.{suffix}"
    return candidate


def save(store: StateStore, strategy: model.Strategy, name: str, deleted_at: str) -> Record:
    """Write the strategy's record as <history>/<name>.json (hold the state dir's lock): 0600, in
    a 0700 dir, by atomic replace of a name free_label chose. PrestageError when it cannot be
    written (nothing is left behind)."""
    store.ensure()
    directory = history_dir(store.state_dir)
    private_dir(directory)
    sweep_temps(directory)  # a writer killed before its rename
    path = os.path.join(directory, name + RECORD_SUFFIX)
    if os.path.lexists(path):  # free_label chose it under the lock: never overwritten
        raise PrestageError(f"History record {path} exists already")
    logs = os.path.join(os.path.relpath(store.logs_dir, store.state_dir), LOGS_HISTORY_DIR, name)
    document = strategy.to_dict()
    document["strategy"].pop("secret", None)  # the password file's identity: not the record's
    document[HISTORY_KEY] = {"deleted-at": deleted_at, "logs": logs}
    atomic_write(path, json.dumps(document, separators=(",", ":")), mode=0o600)
    return Record(name, path, model.Strategy.from_dict(document), deleted_at, logs)


def load(state_dir: str, name: str) -> Record:
    """The record of that name: NotFoundError when there is none, StateFileError naming the file
    and what is wrong when it is corrupt or of a newer schema."""
    if not _NAME.fullmatch(name):
        raise NotFoundError(f"History record {name} not found")
    path = os.path.join(history_dir(state_dir), name + RECORD_SUFFIX)
    try:
        text = read_private(path)
    except StateFileError:
        raise
    except PrestageError as exc:
        raise StateFileError(str(exc)) from None
    if text is None:
        raise NotFoundError(f"History record {name} not found")
    try:
        data = _parse_json(text)
    except (ValueError, RecursionError):
        raise StateFileError(f"History record {path} is corrupt (not JSON)") from None
    try:
        strategy = model.Strategy.from_dict(data)
    except StateFileError as exc:
        raise StateFileError(f"History record {path} {exc}") from None
    extra = data.get(HISTORY_KEY)
    extra = extra if isinstance(extra, dict) else {}
    deleted_at, logs = extra.get("deleted-at"), extra.get("logs")
    return Record(
        name,
        path,
        strategy,
        deleted_at if isinstance(deleted_at, str) else None,
        logs if isinstance(logs, str) else None,
    )


def records(state_dir: str) -> tuple[list[Record], list[str]]:
    """The readable records, newest first, and one line for each unreadable one."""
    found, problems = [], []
    for name in names(state_dir):
        try:
            found.append(load(state_dir, name))
        except NotFoundError:
            continue  # removed meanwhile
        except PrestageError as exc:
            problems.append(f"Warning: skipped: {exc}")
    return found, problems


def latest(state_dir: str) -> Record | None:
    """The newest record (None when there is none); an unreadable newest record is an error,
    not a reason to take an older one."""
    for name in names(state_dir):
        try:
            return load(state_dir, name)
        except NotFoundError:
            continue
    return None


def prune(state_dir: str, keep: int = HISTORY_KEEP) -> list[str]:
    """Remove the readable records older than the newest `keep` readable ones (hold the state
    dir's lock); unreadable records are left alone. Returns the names removed."""
    readable, _problems = records(state_dir)
    removed = []
    for record in readable[keep:]:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(record.path)
            removed.append(record.name)
    return removed


# --------------------------------------------------------------------------- retry


def retry_conflict(flag: str, given: Iterable[str]) -> str | None:
    """The error for options given beside the retry (it takes the last strategy's), or None."""
    given = list(given)
    return msg_retry_conflict(flag, given) if given else None


def retry_request(state_dir: str) -> tuple[model.CreateRequest, Record]:
    """The create request of a retry: the newest record's failed subclouds, its settings.

    The failed subclouds go through build_strategy's usual checks (each must still be in the
    registry; the ineligible are left out as a group's are). Its settings are the record's: an
    all-subcloud strategy that ran group by group retries group by group (each group's own
    window), any other retries as one stage with the window it had.
    """
    record = latest(state_dir)
    if record is None:
        raise PrestageError(msg_no_history(state_dir))
    failed = record.failed()
    if not failed:
        raise PrestageError(msg_nothing_to_retry(record))
    strategy = record.strategy
    request = model.CreateRequest(
        subcloud_apply_type=strategy.subcloud_apply_type,
        max_parallel_subclouds=strategy.max_parallel_subclouds,
        stop_on_failure=strategy.stop_on_failure,
        release=strategy.release,
        for_install=not strategy.for_sw_deploy,
        for_sw_deploy=strategy.for_sw_deploy,
        force=strategy.force,
        subclouds=tuple(failed),
    )
    return request, record


def retry_note(record: Record, strategy: model.Strategy) -> str:
    """What a retry says it made (stderr of dcprestage; the playbook's result)."""
    clouds = [s.cloud for s in strategy.steps]
    shown = ", ".join(clouds[:10]) + (f" and {len(clouds) - 10} more" if len(clouds) > 10 else "")
    return (
        f"Retrying {len(clouds)} failed subclouds of the prestage strategy {record.name} "
        f"(history/{record.name}{RECORD_SUFFIX}): {shown}"
    )


# `strategy-history list`'s columns, and `show`'s rows: the strategy's table, then the record's
LIST_FIELDS = (
    "name", "state", "release", "type", "steps", "complete", "skipped", "failed", "aborted",
    "created_at", "updated_at",
)  # fmt: skip
SHOW_FIELDS = (
    *model.STRATEGY_FIELDS, "name", "steps", "complete", "skipped", "failed", "aborted",
    "deleted_at", "logs",
)  # fmt: skip


def list_row(record: Record) -> tuple[Any, ...]:
    counts, strategy = record.counts(), record.strategy
    return (
        record.name, strategy.state, strategy.release, strategy.prestage_type, counts["steps"],
        counts["complete"], counts["skipped"], counts["failed"], counts["aborted"],
        strategy.created_at, strategy.updated_at,
    )  # fmt: skip


def show_row(record: Record) -> tuple[Any, ...]:
    counts = record.counts()
    return (
        *record.strategy.row(),
        record.name, counts["steps"], counts["complete"], counts["skipped"], counts["failed"],
        counts["aborted"], record.deleted_at, record.logs,
    )  # fmt: skip
