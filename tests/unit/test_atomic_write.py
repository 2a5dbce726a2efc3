"""atomic_write (module_utils', and the controller's _files variant): old or new content, never a
torn file, and nothing left behind when the write fails; a killed writer's temp file is found and
removed by sweep_temps; state files are never opened through a symbolic link."""

from __future__ import annotations

import errno
import fcntl
import os
import signal
from pathlib import Path

import pytest

from ansible_collections.distcloud.prestage.plugins.module_utils import _content as content
from ansible_collections.distcloud.prestage.plugins.plugin_utils import _files as files
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError


def test_replaces_the_file_with_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "strategy.json"
    target.write_text("old")
    files.atomic_write(str(target), "new")
    content.atomic_write(str(tmp_path / "marker"), b"\x00bytes", 0o644)
    assert target.read_text() == "new"
    assert target.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "marker").read_bytes() == b"\x00bytes"
    assert (tmp_path / "marker").stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["marker", "strategy.json"]


def test_a_full_disk_keeps_the_old_content_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "strategy.json"
    target.write_text("old")

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(PrestageError) as raised:
        files.atomic_write(str(target), "new")
    assert str(raised.value) == f"Cannot write {target}: no space left on device"
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["strategy.json"]


def test_a_missing_directory_is_one_error(tmp_path: Path) -> None:
    target = tmp_path / "gone" / "strategy.json"
    with pytest.raises(PrestageError, match=r"^Cannot write .*: No such file or directory$"):
        files.atomic_write(str(target), "new")


# --------------------------------------------------------------------------- killed writers


def _killed_while_writing(target: Path, data: str) -> None:
    """A child writes target with files.atomic_write and is SIGKILLed just before the rename."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.replace = lambda *_a, **_k: os.kill(os.getpid(), signal.SIGKILL)  # type: ignore[assignment]
        try:
            files.atomic_write(str(target), data)
        finally:
            os._exit(3)
    _pid, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def test_a_killed_writer_leaves_a_temp_file_that_sweep_removes(tmp_path: Path) -> None:
    target = tmp_path / "sysadmin_password"
    _killed_while_writing(target, "s3cret")
    leftovers = list(tmp_path.iterdir())
    assert [p.name.startswith(files.TEMP_PREFIX + "sysadmin_password.") for p in leftovers] == [
        True
    ]
    assert files.sweep_temps(str(tmp_path)) == [leftovers[0].name]
    assert list(tmp_path.iterdir()) == []


def test_sweep_leaves_a_live_writers_temp_file_and_other_files(tmp_path: Path) -> None:
    live = tmp_path / f"{files.TEMP_PREFIX}strategy.json.abc"
    live.write_text("partial")
    (tmp_path / "strategy.json").write_text("{}")
    (tmp_path / ".strategy.json.k2j3h4").write_text("partial, from an earlier release")
    with open(live) as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # its writer is alive
        removed = files.sweep_temps(str(tmp_path), legacy=("strategy.json",))
    assert removed == [".strategy.json.k2j3h4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "strategy.json"]


def test_a_symbolic_link_is_never_opened_as_a_state_file(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (tmp_path / "started").symlink_to(outside)
    with pytest.raises(PrestageError, match=r"started is a symbolic link; remove it"):
        files.open_private(str(tmp_path / "started"), os.O_WRONLY | os.O_CREAT)
    lock = files.exclusive_lock(str(tmp_path / "started"))
    with pytest.raises(PrestageError, match=r"is a symbolic link"):
        lock.__enter__()
    assert not outside.exists()
    outside.write_text("not ours to read")
    with pytest.raises(PrestageError, match=r"is a symbolic link"):
        files.read_private(str(tmp_path / "started"))


def test_a_file_of_another_user_is_not_trusted(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give a file away")
    planted = tmp_path / "strategy.json"
    planted.write_text("{}")
    os.chown(planted, 65534, 65534)
    with pytest.raises(PrestageError, match=r"is owned by uid 65534, not you; remove it"):
        files.read_private(str(planted))
