# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""Logs belong to their strategy.

`<state_dir>/logs/<cloud>_playbook_output.log` (StateStore.log_path, dcmanager's file name) and
`logs/orchestrator.log` are the current strategy's. When the strategy is deleted they move to
`logs/history/<its created_at>/`, and a strategy created over logs no strategy owns any more (an
older distcloud.prestage, a `subcloud prestage` run) moves them to `logs/history/<now>-earlier/`
first: a new strategy's logs never continue an earlier one's. The newest LOG_HISTORY of those
directories are kept, older ones removed.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat

from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError
from ansible_collections.distcloud.prestage.plugins.plugin_utils._store import (
    LOG_SUFFIX,
    StateStore,
)

HISTORY_DIR = "history"
LOG_HISTORY = 5
ORCHESTRATOR_LOG = "orchestrator.log"


def history_dir(store: StateStore) -> str:
    return os.path.join(store.logs_dir, HISTORY_DIR)


def label(timestamp: str) -> str:
    """A directory name from a timestamp ('2026-12-01 03:18:14.123456' -> 2026-12-01T03-18-14)."""
    text = timestamp.split(".", 1)[0].replace(" ", "T").replace(":", "-")
    return re.sub(r"[^0-9A-Za-z_-]", "_", text) or "unknown"


def strategy_logs(store: StateStore) -> list[str]:
    """Names of the files in the logs dir that belong to the current strategy."""
    try:
        names = os.listdir(store.logs_dir)
    except FileNotFoundError:
        return []
    found = []
    for name in sorted(names):
        if not (name.endswith(LOG_SUFFIX) or name == ORCHESTRATOR_LOG):
            continue
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISREG(os.lstat(os.path.join(store.logs_dir, name)).st_mode):
                found.append(name)
    return found


def retire_logs(
    store: StateStore, created_at: str | None, now: str, into: str | None = None
) -> str | None:
    """Move the current strategy's logs into the history (hold the state dir's lock).

    created_at is the strategy's (on delete); None means the logs belong to no strategy (on
    create), labelled by now. into is the label to use, free here (the strategy's history record
    has it: _history.free_label). Returns the directory they went to, None when there were none.
    """
    names = strategy_logs(store)
    if not names:
        return None
    base = into or (label(created_at) if created_at else f"{label(now)}-earlier")
    target = os.path.join(history_dir(store), base)
    suffix = 1
    while os.path.lexists(target):
        suffix += 1
        target = os.path.join(history_dir(store), f"{base}.{suffix}")
    try:
        os.makedirs(target, mode=0o700)
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                os.rename(os.path.join(store.logs_dir, name), os.path.join(target, name))
    except OSError as exc:
        raise PrestageError(
            f"Cannot move the logs of {store.logs_dir} to {target}: {exc.strerror}"
        ) from None
    prune_history(store)
    return target


def prune_history(store: StateStore, keep: int = LOG_HISTORY) -> None:
    """Keep the newest `keep` strategies' logs (directory names sort by time)."""
    base = history_dir(store)
    try:
        entries = sorted(os.listdir(base))
    except FileNotFoundError:
        return
    for name in entries[: max(len(entries) - keep, 0)]:
        path = os.path.join(base, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
