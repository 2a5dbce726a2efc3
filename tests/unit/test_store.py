from __future__ import annotations

import fcntl
import os
import signal
import stat
from pathlib import Path

import pytest

from ansible_collections.distcloud.prestage.plugins.plugin_utils import _strategy as model
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import (
    PrestageError,
    StateFileError,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._store import (
    StateStore,
    SubcloudStatus,
    resolve_state_dir,
)


def test_state_dir_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DCPRESTAGE_STATE_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert resolve_state_dir() == str(tmp_path / "xdg" / "distcloud-prestage")
    monkeypatch.setenv("DCPRESTAGE_STATE_DIR", str(tmp_path / "env"))
    assert resolve_state_dir() == str(tmp_path / "env")
    assert resolve_state_dir(str(tmp_path / "opt")) == str(tmp_path / "opt")


def test_existing_loose_state_dir_is_tightened(tmp_path: Path) -> None:
    loose = tmp_path / "state"
    loose.mkdir(mode=0o755)
    os.chmod(loose, 0o755)
    StateStore(str(loose)).ensure()
    assert stat.S_IMODE(loose.stat().st_mode) == 0o700


def test_statuses_round_trip_and_reject_garbage(tmp_path: Path) -> None:
    store = StateStore(str(tmp_path / "s"))
    assert store.load_statuses() == {}
    store.save_statuses(
        {"sc1": SubcloudStatus("complete", "for-install: 24.09 - for-sw-deploy: None")}
    )
    assert store.load_statuses()["sc1"].prestage_status == "complete"
    Path(store.subclouds_path).write_text(
        '{"schema": 1, "subclouds": {"sc1": {"prestage_status": 3}}}'
    )
    with pytest.raises(StateFileError, match="sc1 has a bad value"):
        store.load_statuses()
    Path(store.subclouds_path).write_text("{")
    with pytest.raises(StateFileError, match="is corrupt"):
        store.load_statuses()


def test_a_lone_surrogate_is_a_corrupt_state_file(tmp_path: Path) -> None:
    """JSON decodes an escaped lone surrogate to a str that cannot be printed as UTF-8: the file
    is corrupt when read, not a failure half-way through printing it (found by the fuzzer)."""
    store = StateStore(str(tmp_path / "s"))
    store.save_strategy(_strategy())
    text = Path(store.strategy_path).read_text()
    Path(store.strategy_path).write_text(text.replace('"state":', '"x":"\\ud800","state":', 1))
    with pytest.raises(StateFileError, match="is corrupt"):
        store.load_strategy()
    Path(store.subclouds_path).write_text('{"schema": 1, "subclouds": {"sc\\udc00": {}}}')
    with pytest.raises(StateFileError, match="is corrupt"):
        store.load_statuses()
    # a surrogate pair is a character like any other
    Path(store.subclouds_path).write_text('{"schema": 1, "subclouds": {"sc\\ud83d\\ude00": {}}}')
    assert list(store.load_statuses()) == ["sc\U0001f600"]


# --------------------------------------------------------------------------- a safe state dir


def _strategy() -> model.Strategy:
    return model.Strategy(
        release="24.09", for_sw_deploy=False, subcloud_apply_type=None,
        max_parallel_subclouds=None, stop_on_failure=False, force=False, cloud_name=None,
        group=None, stages=[model.Stage(1, None, "parallel", 2)],
        steps=[model.Step("sc1", 1, created_at="t")], created_at="t",
    )  # fmt: skip


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")


@needs_root
def test_a_state_dir_of_another_user_is_refused_and_its_links_never_followed(
    tmp_path: Path,
) -> None:
    """The issue's case: a 0777 dir owned by nobody, who plants links to a file of root's."""
    state = tmp_path / "S"
    state.mkdir()
    os.chown(state, 65534, 65534)
    os.chmod(state, 0o777)
    target = tmp_path / "nologin"
    for name in ("strategy.lock", "started", "subclouds.lock", "sysadmin_password"):
        (state / name).symlink_to(target)
        os.lchown(state / name, 65534, 65534)  # planted by nobody
    store = StateStore(str(state))
    expected = (
        rf"^State dir {state} is owned by uid 65534, not you: "
        r".*choose another --state-dir or chown it$"
    )
    for attempt in (
        store.ensure,
        store.load_strategy,
        store.load_secret,
        store.load_statuses,
        lambda: store.locked().__enter__(),
        lambda: store.add_started(["sc1"]),
        lambda: store.update_statuses({"sc1": SubcloudStatus("complete")}),
    ):
        with pytest.raises(PrestageError, match=expected):
            attempt()
    assert not target.exists()


def test_a_state_dir_writable_by_others_or_a_link_is_refused(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir()
    os.chmod(loose, 0o777)
    with pytest.raises(
        PrestageError, match=r"is writable by group or others \(mode 0777\).*chmod go-w"
    ):
        StateStore(str(loose)).ensure()
    with pytest.raises(PrestageError, match=r"is writable by group or others"):
        StateStore(str(loose)).load_strategy()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (tmp_path / "real").mkdir(mode=0o700)
    link = StateStore(str(tmp_path / "link"))
    with pytest.raises(PrestageError, match=r"is a symbolic link.*give its target as --state-dir"):
        link.ensure()


def test_files_in_the_state_dir_are_not_opened_through_links(tmp_path: Path) -> None:
    store = StateStore(str(tmp_path / "s"))
    store.ensure()
    target = tmp_path / "elsewhere"
    for name in ("started", "subclouds.lock"):
        (tmp_path / "s" / name).symlink_to(target)
    with pytest.raises(PrestageError, match=r"started is a symbolic link"):
        store.add_started(["sc1"])
    with pytest.raises(PrestageError, match=r"subclouds.lock is a symbolic link"):
        store.update_statuses({"sc1": SubcloudStatus("complete")})
    assert not target.exists()


def test_the_lock_creates_no_file_and_a_new_dir_goes_when_nothing_was_written(
    tmp_path: Path,
) -> None:
    existing = tmp_path / "existing"
    existing.mkdir(mode=0o700)
    with StateStore(str(existing)).locked():
        pass
    assert list(existing.iterdir()) == []
    new = tmp_path / "new" / "state"
    with pytest.raises(PrestageError, match="refused"), StateStore(str(new)).locked():
        raise PrestageError("refused")
    assert list(tmp_path.iterdir()) == [existing]
    with StateStore(str(new)).locked():
        StateStore(str(new)).save_strategy(_strategy())
    assert os.listdir(new) == ["strategy.json"]


def test_the_lock_excludes_another_process(tmp_path: Path) -> None:
    store = StateStore(str(tmp_path / "s"))
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child holds the lock until told (or for 30 s at most)
        signal.alarm(30)
        with store.locked():
            os.write(ready_w, b"x")
            os.read(done_r, 1)
        os._exit(0)
    fd = os.open(store.state_dir if os.read(ready_r, 1) else "/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.write(done_w, b"x")
        os.waitpid(pid, 0)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released with the child's
    finally:
        os.close(fd)


def test_the_next_command_removes_a_password_without_its_strategy(tmp_path: Path) -> None:
    store = StateStore(str(tmp_path / "s"))
    store.save_secret("s3cret")  # a create killed before it wrote the strategy
    (tmp_path / "s" / ".sysadmin_password.x1y2z3").write_text("s3cret")  # an earlier release's
    assert StateStore(store.state_dir).load_strategy() is None  # any command: show too
    assert os.listdir(store.state_dir) == []


def test_delete_removes_the_password_under_whatever_name_it_was_given(tmp_path: Path) -> None:
    store = StateStore(str(tmp_path / "s"))
    with store.locked():
        store.save_secret("s3cret")
        store.save_strategy(_strategy())
    os.rename(store.secret_path, os.path.join(store.state_dir, "renamed"))
    os.mkdir(os.path.join(store.state_dir, "logs"))
    os.rename(os.path.join(store.state_dir, "renamed"), os.path.join(store.state_dir, "logs", "x"))
    with store.locked():
        store.remove_strategy()
    assert [
        os.path.join(top, n) for top, _d, names in os.walk(store.state_dir) for n in names
    ] == []
