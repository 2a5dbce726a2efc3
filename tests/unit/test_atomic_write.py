"""atomic_write (module_utils, shared by the controller's _files): old or new content, never a torn
file, and nothing left behind when the write fails."""

from __future__ import annotations

import errno
import os
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
