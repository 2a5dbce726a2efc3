# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""The state dir (DESIGN §3.1): strategy.json, subclouds.json, logs/, and the run's secret.

Every write is an atomic replace made under the dir's exclusive lock (a flock on the directory
itself: no lock file), so readers never see a torn file and concurrent commands never interleave.
An unreadable, corrupt or newer-schema file is an error naming the file; it is never replaced
silently.

The state dir holds the sysadmin password, so it is refused unless only this user (or root) can
change it: owned by us or root, not writable by group or others, not a symbolic link. Its files
are opened without following symbolic links and checked once open. Whatever a killed command
left (temp files, a password without its strategy) is removed under the lock by the next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
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
    directory_lock,
    exclusive_lock,
    open_private,
    read_private,
    sweep_temps,
    trusted_owner,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._strategy import (
    MSG_NOT_FOUND,
    SCHEMA,
    Strategy,
)

STATE_DIR_ENV = "DCPRESTAGE_STATE_DIR"
STRATEGY_FILE = "strategy.json"
SUBCLOUDS_FILE = "subclouds.json"
STATUS_LOCK_FILE = "subclouds.lock"
SECRET_FILE = "sysadmin_password"
STARTED_FILE = "started"
LOGS_DIR = "logs"
LOG_SUFFIX = "_playbook_output.log"
RUNNER_DIR = "runner"
FACTS_FILE = "sc-facts.json"  # _sc_query's cache of the system controller's facts
# files an earlier release wrote through `.<name>.<random>` temp files
_LEGACY_TEMPS = (STRATEGY_FILE, SUBCLOUDS_FILE, SECRET_FILE, FACTS_FILE)


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


def check_state_dir(path: str, info: os.stat_result) -> None:
    """Refuse a state dir another user could change: one line saying why and what to do."""
    if stat.S_ISLNK(info.st_mode):
        raise PrestageError(
            f"State dir {path} is a symbolic link, which another user may have placed: "
            "give its target as --state-dir"
        )
    if not stat.S_ISDIR(info.st_mode):
        raise PrestageError(f"State dir {path} is not a directory")
    if not trusted_owner(info.st_uid):
        raise PrestageError(
            f"State dir {path} is owned by uid {info.st_uid}, not you: its owner could replace "
            "the files it holds (and read the password); choose another --state-dir or chown it"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise PrestageError(
            f"State dir {path} is writable by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}): they could replace the files it holds; "
            "run chmod go-w on it or choose another --state-dir"
        )


def private_dir(path: str) -> None:
    """Create path 0700 if missing (its parent must exist) and refuse it as check_state_dir
    does; a sub-directory of the state dir (logs, runner)."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise PrestageError(f"Cannot create {path}: {exc.strerror}") from exc
    try:
        check_state_dir(path, os.lstat(path))
    except OSError as exc:
        raise PrestageError(f"Cannot use {path}: {exc.strerror}") from exc


def _read_state_file(path: str) -> str | None:
    """A state file's text (None if missing); unreadable or not UTF-8 is a StateFileError."""
    try:
        return read_private(path)
    except StateFileError:
        raise
    except PrestageError as exc:
        raise StateFileError(str(exc)) from None


def _first_missing(path: str) -> str | None:
    """The topmost of path and its ancestors that does not exist (None: path exists)."""
    missing = None
    while not os.path.lexists(path):
        missing = path
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return missing


_LONE_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _parse_json(text: str) -> Any:
    """json.loads, refusing what no JSON we write holds: an escaped lone surrogate (json decodes
    it to a str that cannot be printed or written as UTF-8). ValueError for either."""
    data = json.loads(text)
    if _LONE_SURROGATE_ESCAPE.search(text):  # rare: check the decoded values only then
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("a lone surrogate") from None
    return data


def parse_strategy(text: str, name: str, hint: str = "") -> Strategy:
    """A strategy document's text (strategy.json, or a kept record of one) read strictly; a
    StateFileError starting with name (e.g. "State file <path>"), hint after a corrupt one."""
    try:
        data = _parse_json(text)
    except (ValueError, RecursionError):  # nested too deep for json: not ours either
        raise StateFileError(f"{name} is corrupt (not JSON){hint}") from None
    try:
        return Strategy.from_dict(data)
    except StateFileError as exc:
        raise StateFileError(f"{name} {exc}") from None


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
        self.secret_path = os.path.join(state_dir, SECRET_FILE)
        self.started_path = os.path.join(state_dir, STARTED_FILE)
        # the current strategy's logs; an earlier strategy's are in logs/history (see _logs)
        self.logs_dir = logs_dir or os.path.join(state_dir, LOGS_DIR)
        self._created: str | None = None  # the topmost dir ensure() created, if any
        self._tidied = False
        self._main: StateStore | None = None

    # -- the directory

    def ensure(self) -> bool:
        """Create the state dir 0700 (and tighten an existing one we own); refuse one another
        user could change (check_state_dir). True when this call created it."""
        missing = _first_missing(self.state_dir)
        try:
            os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
            info = os.lstat(self.state_dir)
        except OSError as exc:
            raise PrestageError(f"Cannot use state dir {self.state_dir}: {exc.strerror}") from exc
        check_state_dir(self.state_dir, info)
        if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) & 0o077:
            try:
                os.chmod(self.state_dir, 0o700)
            except OSError as exc:
                raise PrestageError(
                    f"Cannot use state dir {self.state_dir}: {exc.strerror}"
                ) from exc
        if missing is not None:
            self._created = missing
        return missing is not None

    def check(self) -> None:
        """Refuse an existing state dir another user could change (reads call this first).

        The first check of a store also sweeps the dir when its lock is free at once, so that
        any command (`show` too) cleans up after a killed one.
        """
        try:
            info = os.lstat(self.state_dir)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise PrestageError(f"Cannot use state dir {self.state_dir}: {exc.strerror}") from exc
        check_state_dir(self.state_dir, info)
        if not self._tidied:
            self._tidied = True
            self._try_sweep()

    def _try_sweep(self) -> None:
        """sweep() if the lock can be had without waiting (a busy dir is swept by its holder)."""
        try:
            fd = os.open(
                self.state_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            )
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            check_state_dir(self.state_dir, os.fstat(fd))
            self.sweep()
        except (OSError, PrestageError):
            pass  # busy, or not ours to tidy: the next locked command does it
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the state dir's exclusive lock: read-check-write sequences go inside.

        The lock is a flock on the directory (every locker, CLI and plugins, takes it here), so
        taking it creates no file. Leftovers of a killed command are removed once it is held. A
        state dir this call created is removed again if the with-block leaves it empty (a
        command that failed before writing anything).
        """
        while True:
            self._created = None
            self.ensure()
            entered = False
            try:
                with directory_lock(self.state_dir) as fd:
                    entered = True
                    try:
                        check_state_dir(self.state_dir, os.fstat(fd))
                        self._tidied = True
                        self.sweep()
                        yield
                    finally:
                        self._remove_if_unused()  # under the lock: a waiter sees it gone
                return
            except FileNotFoundError:
                if entered:
                    raise
                # removed by a command that created it and failed while we waited: again

    def _remove_if_unused(self) -> None:
        """Remove the dirs ensure() created if nothing was written in them (a command waiting
        for the lock finds the dir gone and creates it again)."""
        created, self._created = self._created, None
        if created is None:
            return
        path = self.state_dir
        while True:
            try:
                os.rmdir(path)
            except OSError:
                return  # not empty: in use
            if path == created:
                return
            path = os.path.dirname(path)

    def sweep(self) -> None:
        """Under the lock, remove what a killed command left: its temp files (told apart from a
        live writer's by its flock), the password of a create killed before it wrote the
        strategy, a started list without its strategy (their writers all hold the lock)."""
        sweep_temps(self.state_dir, _LEGACY_TEMPS)
        if not os.path.lexists(self.strategy_path):
            for path in (self.secret_path, self.started_path):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)

    def private_subdir(self, name: str) -> str:
        """<state dir>/<name> (logs, runner), created 0700 if missing and checked."""
        self.ensure()
        path = os.path.join(self.state_dir, name)
        private_dir(path)
        return path

    def log_path(self, cloud: str) -> str:
        """The subcloud's log of the current strategy (dcmanager's file name)."""
        return os.path.join(self.logs_dir, f"{cloud}{LOG_SUFFIX}")

    # -- strategy.json

    def load_strategy(self) -> Strategy | None:
        """The strategy, or None when there is none. Safe without the lock (atomic replace)."""
        self.check()
        text = _read_state_file(self.strategy_path)
        if text is None:
            return None
        return parse_strategy(
            text, f"State file {self.strategy_path}", "; move it away to continue"
        )

    def require_strategy(self) -> Strategy:
        strategy = self.load_strategy()
        if strategy is None:
            raise NotFoundError(MSG_NOT_FOUND)
        return strategy

    def save_strategy(self, strategy: Strategy) -> None:
        """Write strategy.json (hold the lock around the read that led to this write).

        The first write after the password was saved records the password file's identity in
        the strategy, so that remove_strategy removes it whatever it has been renamed to.
        """
        self.ensure()
        if not strategy.secret:
            with contextlib.suppress(FileNotFoundError):
                info = os.lstat(self.secret_path)
                if stat.S_ISREG(info.st_mode):
                    strategy.secret = {"dev": info.st_dev, "ino": info.st_ino}
        # compact: the C encoder keeps a 5,000-step write at a few milliseconds
        atomic_write(self.strategy_path, json.dumps(strategy.to_dict(), separators=(",", ":")))

    def remove_strategy(self) -> None:
        """Delete strategy.json, the run's secret (under any name it has in the state dir, by
        the identity the strategy recorded) and its started list; and any leftover temp file."""
        secret: dict[str, int] = {}
        with contextlib.suppress(PrestageError):
            strategy = self.load_strategy()
            secret = strategy.secret if strategy is not None else {}
        for path in (self.strategy_path, self.secret_path, self.started_path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        if secret:
            self._remove_inode(secret.get("dev"), secret.get("ino"))
        sweep_temps(self.state_dir, _LEGACY_TEMPS)

    def _remove_inode(self, dev: int | None, ino: int | None) -> None:
        """Unlink every name of the file (dev, ino) below the state dir (links not followed)."""
        for top, _dirs, names in os.walk(self.state_dir):
            for name in names:
                path = os.path.join(top, name)
                with contextlib.suppress(OSError):
                    info = os.lstat(path)
                    if (info.st_dev, info.st_ino) == (dev, ino) and stat.S_ISREG(info.st_mode):
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
        fd = open_private(self.started_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
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
        self.check()
        return read_private(self.secret_path)

    # -- subclouds.json

    def load_statuses(self) -> dict[str, SubcloudStatus]:
        self._statuses_store().check()
        text = _read_state_file(self.subclouds_path)
        if text is None:
            return {}
        try:
            data = _parse_json(text)
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

    def _statuses_store(self) -> StateStore:
        """The store of the dir subclouds.json is in (this one, or the main state dir)."""
        if self.statuses_dir == self.state_dir:
            return self
        if self._main is None:
            self._main = StateStore(self.statuses_dir)
        return self._main

    def update_statuses(self, changes: dict[str, SubcloudStatus]) -> None:
        """Replace these subclouds' entries in subclouds.json (read-modify-write, locked)."""
        if not changes:
            return
        self._statuses_store().ensure()
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
