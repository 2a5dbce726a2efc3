# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""Who runs a strategy: a record of the orchestrating process, and whether it is still alive.

A pid alone is not enough (pids are reused), so the record keeps the process's start time too.
"""

from __future__ import annotations

import getpass
import os
import socket
from typing import Any

from ansible_collections.distcloud.prestage.plugins.plugin_utils._strategy import now


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (state, ppid, ...), None if pid is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    fields = stat.rpartition(")")[2].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):  # a zombie has finished running
        return None
    return fields


def process_start_ticks(pid: int) -> int | None:
    """The start time of pid in clock ticks since boot (field 22 of /proc/<pid>/stat)."""
    fields = _stat_fields(pid)
    try:
        return int(fields[19]) if fields else None
    except ValueError:
        return None


def is_ancestor(record: dict[str, Any] | None) -> bool:
    """Whether the recorded process is this process or one of its ancestors (still running)."""
    if not is_running(record) or record is None:
        return False
    pid = os.getpid()
    while pid > 1:
        if pid == record.get("pid"):
            return True
        fields = _stat_fields(pid)
        if fields is None:
            return False
        pid = int(fields[1])
    return False


def orchestrator_record(pid: int | None, via: str) -> dict[str, Any]:
    """What apply stores in the strategy about the process that runs it."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return {
        "pid": pid,
        "start-ticks": process_start_ticks(pid) if pid else None,
        "host": socket.gethostname(),
        "user": user,
        "via": via,
        "started-at": now(),
    }


def is_running(record: dict[str, Any] | None) -> bool:
    """Whether the recorded orchestrator is this same process, still alive, on this host."""
    if not record or not isinstance(record.get("pid"), int):
        return False
    if record.get("host") != socket.gethostname():
        return True  # another host's process cannot be checked from here: assume it runs
    ticks = process_start_ticks(record["pid"])
    return ticks is not None and ticks == record.get("start-ticks")
