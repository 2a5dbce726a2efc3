# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""Where the picture of a run (_timeline.render_report) is written and kept.

`<state_dir>/reports/<the strategy's created_at label>.html` (the label of its logs' history
directory), 0600 in a 0700 directory, replaced atomically: a live report is written again over
the same file, and a finished strategy's report is kept after the strategy is deleted.
"""

from __future__ import annotations

import os
from datetime import datetime

from ansible_collections.distcloud.prestage.plugins.plugin_utils import _strategy as model
from ansible_collections.distcloud.prestage.plugins.plugin_utils._files import atomic_write
from ansible_collections.distcloud.prestage.plugins.plugin_utils._logs import label as time_label
from ansible_collections.distcloud.prestage.plugins.plugin_utils._store import StateStore
from ansible_collections.distcloud.prestage.plugins.plugin_utils._timeline import render_report

REPORTS_DIR = "reports"
# finished strategies' reports kept (the names sort by time): as many as history records
REPORTS_KEEP = 50


def default_report_path(store: StateStore, strategy: model.Strategy) -> str:
    return os.path.join(store.state_dir, REPORTS_DIR, f"{time_label(strategy.created_at)}.html")


def report_title(strategy: model.Strategy, where: str) -> str:
    """The report's heading: which strategy, from where (a state dir or a file)."""
    return f"Prestage strategy of {strategy.created_at or 'unknown time'} ({where})"


def write_report(
    strategy: model.Strategy, path: str, title: str, now: datetime | None = None
) -> None:
    """Render and write the report to path (0600, atomically; its directory must exist)."""
    atomic_write(path, render_report(strategy, title=title, now=now), mode=0o600)


def keep_report(store: StateStore, strategy: model.Strategy) -> str:
    """Write the strategy's report to its default path in the state dir; returns the path."""
    directory = store.private_subdir(REPORTS_DIR)
    path = default_report_path(store, strategy)
    write_report(strategy, path, report_title(strategy, store.state_dir))
    prune_reports(directory)
    return path


def prune_reports(directory: str, keep: int = REPORTS_KEEP) -> list[str]:
    """Remove all but the newest `keep` reports of directory; returns the names removed."""
    names = sorted(n for n in os.listdir(directory) if n.endswith(".html"))
    removed = []
    for name in names[: max(len(names) - keep, 0)]:
        path = os.path.join(directory, name)
        if os.path.isfile(path) and not os.path.islink(path):
            os.unlink(path)
            removed.append(name)
    return removed
