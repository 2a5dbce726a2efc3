"""Release content on disk (plugins/module_utils/_content.py): what the checksum, the cheap
fingerprint and the digest of a tree see. The checksum's equality with StarlingX's own pipeline
is pinned in test_install.py (test_ostree_checksum_is_starlingx_s_on_odd_file_names).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ansible_collections.distcloud.prestage.plugins.module_utils import _content as content

REPO = {"config": b"[core]\n", "objects/ab/cd.filez": b"x" * 5000, "refs/heads/starlingx": b"1\n"}


def make_repo(parent: Path, files: dict[str, bytes] | None = None) -> Path:
    for name, data in (REPO if files is None else files).items():
        path = parent / "ostree_repo" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return parent


def test_checksum_counts_regular_files_and_their_usage(tmp_path: Path) -> None:
    make_repo(tmp_path)
    result = content.ostree_checksum(str(tmp_path))
    assert (result["files"], result["bytes"]) == (3, 7 + 5000 + 2)
    assert result["usage"] == 4096 + 2 * 4096 + 4096


def test_checksum_ignores_symlinks_and_honours_the_deadline(tmp_path: Path) -> None:
    make_repo(tmp_path)
    before = content.ostree_checksum(str(tmp_path))["checksum"]
    os.symlink("config", tmp_path / "ostree_repo" / "link")
    assert content.ostree_checksum(str(tmp_path))["checksum"] == before
    with pytest.raises(content.DeadlineExceeded):
        content.ostree_checksum(str(tmp_path), deadline=time.monotonic() - 1)
    with pytest.raises(OSError):
        content.ostree_checksum(str(tmp_path / "missing"))


def test_signature_changes_with_any_file_change(tmp_path: Path) -> None:
    make_repo(tmp_path)
    repo = str(tmp_path / "ostree_repo")
    first = content.tree_signature(repo)
    assert first is not None and content.tree_signature(repo) == first
    path = tmp_path / "ostree_repo" / "config"
    info = path.stat()
    path.write_bytes(b"[CORE]\n")  # same size
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))  # same mtime: ctime still moves
    assert content.tree_signature(repo) != first
    assert content.tree_signature(str(tmp_path / "missing")) is None


def test_tree_digest_leaves_out_excluded_top_level_entries(tmp_path: Path) -> None:
    root = tmp_path / "metadata"
    (root / "deployed").mkdir(parents=True)
    (root / "deployed" / "a.xml").write_text("<patch/>")
    base = content.tree_digest(str(root))
    (root / "unavailable").mkdir()
    (root / "unavailable" / "b.xml").write_text("<patch/>")
    assert content.tree_digest(str(root))["digest"] != base["digest"]
    assert content.tree_digest(str(root), exclude_top=("unavailable",)) == base
    assert content.tree_digest(str(tmp_path / "missing")) is None


def test_free_bytes_of_a_missing_path_is_its_nearest_parents(tmp_path: Path) -> None:
    assert content.free_bytes(str(tmp_path / "a" / "b")) == content.free_bytes(str(tmp_path))
    assert content.disk_usage(str(tmp_path / "missing")) == 0
