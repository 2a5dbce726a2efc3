# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""The state dir (DESIGN §3.1): strategy.json, subclouds.json, logs/, and the run's secret.

Every write is an atomic replace made under the dir's exclusive lock, so readers never see a torn
file and concurrent commands never interleave. An unreadable, corrupt or newer-schema file is an
error naming the file; it is never replaced silently.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ansible_collections.distcloud.prestage.plugins.module_utils._formats import is_decimal
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import (
    NotFoundError,
    PrestageError,
    StateFileError,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._files import (
    atomic_write,
    exclusive_lock,
    read_text,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._strategy import (
    MSG_NOT_FOUND,
    SCHEMA,
    Strategy,
)

STATE_DIR_ENV = "DCPRESTAGE_STATE_DIR"
STRATEGY_FILE = "strategy.json"
SUBCLOUDS_FILE = "subclouds.json"
LOCK_FILE = "strategy.lock"
STATUS_LOCK_FILE = "subclouds.lock"
SECRET_FILE = "sysadmin_password"
STARTED_FILE = "started"
LOGS_DIR = "logs"
LOG_SUFFIX = "_playbook_output.log"


def default_state_dir() -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(base, "distcloud-prestage")


def resolve_state_dir(explicit: str | None = None) -> str:
    """--state-dir, else $DCPRESTAGE_STATE_DIR, else the XDG state home's distcloud-prestage."""
    return os.path.abspath(
        os.path.expanduser(explicit or os.environ.get(STATE_DIR_ENV) or default_state_dir())
    )


# Extra vars AWX/Tower gives every job (awx_* and their tower_* twins).
AWX_JOB_VARS = ("awx_job_id", "tower_job_id")
AWX_WORKFLOW_VARS = ("awx_workflow_job_id", "tower_workflow_job_id")


def run_state_dir(explicit: str | None, play_vars: Mapping[str, Any]) -> str:
    """The state dir of a play run: resolve_state_dir(explicit), keyed by the job under AWX.

    Under AWX/Tower (an awx_job_id extra var) it is <base>/awx-job-<id>, and
    <base>/awx-workflow-<wf>/awx-job-<id> for a job of a workflow (the slices of a sliced job
    share their workflow), so concurrent and sliced jobs never share a file. The one rule the
    prestage_strategy action, the prestage_state callback and the strategy plugin all use.
    """
    base = resolve_state_dir(explicit)
    job = _awx_id(play_vars, AWX_JOB_VARS)
    if job is None:
        return base
    workflow = _awx_id(play_vars, AWX_WORKFLOW_VARS)
    if workflow is not None:
        base = os.path.join(base, f"awx-workflow-{workflow}")
    return os.path.join(base, f"awx-job-{job}")


def _awx_id(play_vars: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = play_vars.get(name)
        if value is None or value == "":
            continue
        text = str(value)
        if isinstance(value, bool) or not is_decimal(text):
            raise PrestageError(f"{name} must be a job id (digits), not {value!r}")
        return text
    return None


@dataclass
class SubcloudStatus:
    """What prestaging observed on a subcloud (the dcmanager database's prestage columns)."""

    prestage_status: str | None = None
    prestage_versions: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "prestage_status": self.prestage_status,
            "prestage_versions": self.prestage_versions,
            "error": self.error,
        }


def _read_state_file(path: str) -> str | None:
    """A state file's text (None if missing); unreadable or not UTF-8 is a StateFileError."""
    try:
        return read_text(path)
    except StateFileError:
        raise
    except PrestageError as exc:
        raise StateFileError(str(exc)) from None


class StateStore:
    """One state dir. Construct freely: nothing is created until something is written.

    statuses_dir is where subclouds.json lives when it is not this dir (a one-subcloud run of
    `dcprestage subcloud prestage` keeps its own strategy but reports to the main state dir).
    """

    def __init__(
        self, state_dir: str, statuses_dir: str | None = None, logs_dir: str | None = None
    ) -> None:
        self.state_dir = state_dir
        self.statuses_dir = statuses_dir or state_dir
        self.strategy_path = os.path.join(state_dir, STRATEGY_FILE)
        self.subclouds_path = os.path.join(self.statuses_dir, SUBCLOUDS_FILE)
        self.status_lock_path = os.path.join(self.statuses_dir, STATUS_LOCK_FILE)
        self.lock_path = os.path.join(state_dir, LOCK_FILE)
        self.secret_path = os.path.join(state_dir, SECRET_FILE)
        self.started_path = os.path.join(state_dir, STARTED_FILE)
        # the current strategy's logs; an earlier strategy's are in logs/history (see _logs)
        self.logs_dir = logs_dir or os.path.join(state_dir, LOGS_DIR)

    # -- the directory

    def ensure(self) -> None:
        """Create the state dir 0700 (and tighten an existing one we own)."""
        try:
            os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
            info = os.stat(self.state_dir)
            if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077:
                os.chmod(self.state_dir, 0o700)
        except OSError as exc:
            raise PrestageError(f"Cannot use state dir {self.state_dir}: {exc.strerror}") from exc
        if not os.path.isdir(self.state_dir):
            raise PrestageError(f"State dir {self.state_dir} is not a directory")

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the state dir's exclusive lock: read-check-write sequences go inside."""
        self.ensure()
        with exclusive_lock(self.lock_path):
            yield

    def log_path(self, cloud: str) -> str:
        """The subcloud's log of the current strategy (dcmanager's file name)."""
        return os.path.join(self.logs_dir, f"{cloud}{LOG_SUFFIX}")

    # -- strategy.json

    def load_strategy(self) -> Strategy | None:
        """The strategy, or None when there is none. Safe without the lock (atomic replace)."""
        text = _read_state_file(self.strategy_path)
        if text is None:
            return None
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):  # nested too deep for json: not ours either
            raise StateFileError(
                f"State file {self.strategy_path} is corrupt (not JSON); move it away to continue"
            ) from None
        try:
            return Strategy.from_dict(data)
        except StateFileError as exc:
            raise StateFileError(f"State file {self.strategy_path} {exc}") from None

    def require_strategy(self) -> Strategy:
        strategy = self.load_strategy()
        if strategy is None:
            raise NotFoundError(MSG_NOT_FOUND)
        return strategy

    def save_strategy(self, strategy: Strategy) -> None:
        """Write strategy.json (hold the lock around the read that led to this write)."""
        self.ensure()
        # compact: the C encoder keeps a 5,000-step write at a few milliseconds
        atomic_write(self.strategy_path, json.dumps(strategy.to_dict(), separators=(",", ":")))

    def remove_strategy(self) -> None:
        """Delete strategy.json, the run's secret and its started list."""
        for path in (self.strategy_path, self.secret_path, self.started_path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    # -- the subclouds the running orchestrator has started (hold the lock)
    #
    # The orchestrator writes strategy.json coalesced, so a step it has just started may still
    # read `initial` there. It lists each step here, under the lock, before it starts it; `abort`
    # reads the list under the same lock and leaves those steps to finish. An append per started
    # subcloud, where a strategy.json write would cost milliseconds at thousands of steps.

    def clear_started(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.started_path)

    def add_started(self, clouds: list[str]) -> None:
        self.ensure()
        fd = os.open(self.started_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            handle.write("".join(f"{cloud}\n" for cloud in clouds))

    def load_started(self) -> set[str]:
        text = _read_state_file(self.started_path)
        return set(text.split()) if text else set()

    # -- the sysadmin password of the strategy (0600, never in strategy.json)

    def save_secret(self, password: str) -> None:
        self.ensure()
        atomic_write(self.secret_path, password, mode=0o600)

    def load_secret(self) -> str | None:
        return read_text(self.secret_path)

    # -- subclouds.json

    def load_statuses(self) -> dict[str, SubcloudStatus]:
        text = _read_state_file(self.subclouds_path)
        if text is None:
            return {}
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):  # nested too deep for json: not ours either
            raise StateFileError(
                f"State file {self.subclouds_path} is corrupt (not JSON); move it away to continue"
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("subclouds"), dict):
            raise StateFileError(f"State file {self.subclouds_path} has an unknown layout")
        if data.get("schema") != SCHEMA:
            raise StateFileError(
                f"State file {self.subclouds_path} has schema {data.get('schema')!r}; "
                f"this distcloud.prestage reads schema {SCHEMA}"
            )
        statuses = {}
        for name, raw in data["subclouds"].items():
            if not isinstance(raw, dict):
                raise StateFileError(f"State file {self.subclouds_path}: {name} is not a mapping")
            values = {k: raw.get(k) for k in ("prestage_status", "prestage_versions", "error")}
            if not all(v is None or isinstance(v, str) for v in values.values()):
                raise StateFileError(f"State file {self.subclouds_path}: {name} has a bad value")
            statuses[name] = SubcloudStatus(**values)
        return statuses

    def update_statuses(self, changes: dict[str, SubcloudStatus]) -> None:
        """Replace these subclouds' entries in subclouds.json (read-modify-write, locked)."""
        if not changes:
            return
        if self.statuses_dir != self.state_dir:
            StateStore(self.statuses_dir).ensure()
        else:
            self.ensure()
        with exclusive_lock(self.status_lock_path):
            current = self.load_statuses()
            current.update(changes)
            self.save_statuses(current)

    def save_statuses(self, statuses: dict[str, SubcloudStatus]) -> None:
        self.ensure()
        data = {
            "schema": SCHEMA,
            "subclouds": {name: status.to_dict() for name, status in sorted(statuses.items())},
        }
        atomic_write(self.subclouds_path, json.dumps(data, separators=(",", ":")))

    def prestage_statuses(self) -> dict[str, str | None]:
        return {name: s.prestage_status for name, s in self.load_statuses().items()}
