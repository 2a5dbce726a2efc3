"""The rules the prestage roles' plugins apply, without a subcloud: content checksums and
fingerprints, prestaged versions, StarlingX command output, image lists, the checksum cache,
rsync statistics and the remote command, and a real rsync through the remote-shell relay."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from ansible_collections.distcloud.prestage.plugins.module_utils import _content as content
from ansible_collections.distcloud.prestage.plugins.module_utils import _subcloud as sub
from ansible_collections.distcloud.prestage.plugins.plugin_utils import _sc_release as sc
from ansible_collections.distcloud.prestage.plugins.plugin_utils import _transfer as transfer
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError


def make_repo(parent: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = parent / "ostree_repo" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return parent


REPO = {"config": b"[core]\n", "objects/ab/cd.filez": b"x" * 5000, "refs/heads/starlingx": b"1\n"}


# --------------------------------------------------------------------------- content


def test_checksum_is_starlingx_s(tmp_path: Path) -> None:
    make_repo(tmp_path, {**REPO, "odd name\\x": b"y"})
    expected = subprocess.run(
        "find ostree_repo -type f -exec md5sum {} + | LC_ALL=C sort | md5sum",
        shell=True, cwd=tmp_path, capture_output=True, text=True, check=True,
    ).stdout.split()[0]  # fmt: skip
    result = content.ostree_checksum(str(tmp_path))
    assert result["checksum"] == expected
    assert result["files"] == 4 and result["usage"] == 4 * 4096 + 4096


def test_checksum_ignores_symlinks_and_honours_deadline(tmp_path: Path) -> None:
    make_repo(tmp_path, REPO)
    before = content.ostree_checksum(str(tmp_path))["checksum"]
    os.symlink("config", tmp_path / "ostree_repo" / "link")
    assert content.ostree_checksum(str(tmp_path))["checksum"] == before
    with pytest.raises(content.DeadlineExceeded):
        content.ostree_checksum(str(tmp_path), deadline=time.monotonic() - 1)


def test_signature_changes_with_any_file_change(tmp_path: Path) -> None:
    make_repo(tmp_path, REPO)
    repo = str(tmp_path / "ostree_repo")
    first = content.tree_signature(repo)
    assert first is not None and content.tree_signature(repo) == first
    path = tmp_path / "ostree_repo" / "config"
    info = path.stat()
    path.write_bytes(b"[CORE]\n")  # same size
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))  # same mtime: ctime still moves
    assert content.tree_signature(repo) != first
    assert content.tree_signature(str(tmp_path / "missing")) is None


def test_prestaged_versions(tmp_path: Path) -> None:
    backup, software = tmp_path / "pb", tmp_path / "sw"
    for release, marked in (("22.12", True), ("24.09", False), ("junk", True)):
        (backup / release).mkdir(parents=True)
        if marked:
            (backup / release / content.MARKER_FILE).write_text("")
    for name in (
        "committed/starlingx-24.09.0-metadata.xml",
        "available/starlingx-24.09.3-metadata.xml",
        "deployed/starlingx-24.09.1-metadata.xml",
    ):
        path = software / "24.09" / "metadata" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("<patch/>")
    (software / "25.09" / "metadata").mkdir(parents=True)
    (software / "25.09" / "metadata" / "starlingx-25.09.0-metadata.xml").write_text("")
    assert content.prestaged_versions(str(backup), str(software)) == {
        "for_install": ["22.12"],
        "for_sw_deploy": ["24.09.3", "25.09"],
    }


# --------------------------------------------------------------------------- subcloud output

ALARMS = """
+----------+--------------------------+------------------+----------+----------------------+------------+
| Alarm ID | Reason Text              | Entity ID        | Severity | Management Affecting | Time Stamp |
+----------+--------------------------+------------------+----------+----------------------+------------+
| 250.001  | controller-0 config out  | host=controller-0| major    | True                 | 2024-01-01 |
| 100.101  | Platform CPU threshold   | host=controller-0| minor    | False                | 2024-01-01 |
+----------+--------------------------+------------------+----------+----------------------+------------+
"""  # noqa: E501


def test_alarms_controller_and_software_operation() -> None:
    assert sub.mgmt_affecting_alarms(ALARMS) == ["250.001"]
    show = "| capabilities | {'Personality': 'Controller-Standby', 'stor_function': 'monitor'} |"
    assert sub.controller_personality("| Property | Value |\n" + show) == "standby"
    deploy = (
        "| From Release | To Release | RR | State |\n| 24.09.0 | 24.09.1 | True | deploy-host |"
    )
    assert sub.software_operation(deploy, "") == (
        "software deploy from 24.09.0 to 24.09.1 is in state deploy-host"
    )
    assert sub.software_operation("No deploy in progress", "") is None
    listing = "| Release | RR | State |\n| starlingx-24.09.1 | True | deploying |"
    assert sub.software_operation("", listing) == "release starlingx-24.09.1 is deploying"
    assert sub.software_levels(listing, "24.09") == {"24.09.1"}


def test_command_sections_round_trip() -> None:
    script = sub.command_script({"one": "echo a; echo b", "two": "false"})
    result = subprocess.run(
        ["bash", "-s"], input=script, capture_output=True, text=True, check=False
    )
    assert sub.parse_sections(result.stdout) == {"one": (0, "a\nb"), "two": (1, "")}


# --------------------------------------------------------------------------- system controller


def test_image_list_parsing() -> None:
    text = "# images\n\nreg:9001/a:1\n  reg:9001/b:1  # trailing\nreg:9001/a:1\n"
    assert sc.parse_image_list(text) == ["reg:9001/a:1", "reg:9001/b:1"]


def settings(tmp_path: Path) -> dict[str, object]:
    return {
        "release": "24.09",
        "feed_dir": str(tmp_path / "feed"),
        "software_dir": str(tmp_path / "software"),
        "image_list_dir": str(tmp_path / "deploy"),
        "upgrades_metadata": str(tmp_path / "upgrades.xml"),
    }


def test_release_info_cache_and_lists(tmp_path: Path) -> None:
    make_repo(tmp_path / "feed" / "rel-24.09", REPO)
    (tmp_path / "deploy" / "24.09").mkdir(parents=True)
    (tmp_path / "deploy" / "24.09" / "prestage_images_list.txt").write_text("r:1/a:1\n")
    (tmp_path / "upgrades.xml").write_text(
        "<build><supported_upgrades><upgrade><version>22.12</version></upgrade>"
        "<upgrade><version>21.12</version></upgrade></supported_upgrades></build>"
    )
    cache = str(tmp_path / "cache")
    first = sc.release_info(settings(tmp_path), "24.09", False, cache)
    assert not first["ostree"]["cached"]
    assert first["image_list"]["images"] == ["r:1/a:1"]
    assert first["min_supported_release"] == "21.12"
    assert first["patch_metadata"] is None
    second = sc.release_info(settings(tmp_path), "24.09", False, cache)
    assert second["ostree"]["cached"]
    assert second["ostree"]["checksum"] == first["ostree"]["checksum"]
    (tmp_path / "feed" / "rel-24.09" / "ostree_repo" / "new").write_text("n")
    third = sc.release_info(settings(tmp_path), "24.09", False, cache)
    assert not third["ostree"]["cached"]
    assert third["ostree"]["checksum"] != first["ostree"]["checksum"]


def test_release_info_refuses_what_the_controller_cannot_serve(tmp_path: Path) -> None:
    with pytest.raises(PrestageError, match=r"^Specified release format is not supported"):
        sc.release_info(settings(tmp_path), "24.09.1", False)
    with pytest.raises(PrestageError, match=r"23.09 version must first be imported"):
        sc.release_info(settings(tmp_path), "23.09", False)
    with pytest.raises(PrestageError, match=r"does not exist on the system controller"):
        sc.release_info(settings(tmp_path), "24.09", False)
    with pytest.raises(PrestageError, match=r"requires release 24.09 or later"):
        sc.release_info(settings(tmp_path), "22.12", True)


# --------------------------------------------------------------------------- transfer

STATS = """
Number of files: 52 (reg: 44, dir: 8)
Number of created files: 52 (reg: 44, dir: 8)
Number of deleted files: 3
Number of regular files transferred: 44
Total file size: 2,101,518 bytes
Total transferred file size: 2,101,518 bytes
Literal data: 2,101,518 bytes
Matched data: 0 bytes
Total bytes sent: 2,108,282
Total bytes received: 1,009
"""


def test_rsync_stats_and_remote_command() -> None:
    stats = transfer.parse_stats(STATS)
    assert (stats.files_transferred, stats.deleted, stats.literal_bytes) == (44, 3, 2101518)
    assert (stats.bytes_sent, stats.bytes_received) == (2108282, 1009)
    assert transfer.remote_rsync_path(transfer.Become(enabled=False)) == "rsync"
    assert transfer.remote_rsync_path(transfer.Become(enabled=True)) == "sudo -n rsync"
    with_password = transfer.remote_rsync_path(transfer.Become(enabled=True, password="pw"))
    assert "pw" not in with_password and "sudo -S -p" in with_password
    with pytest.raises(PrestageError):
        transfer.remote_rsync_path(transfer.Become(enabled=True, password="p", exe="su"))


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("sudo") is None or shutil.which("rsync") is None,
    reason="needs root, sudo and rsync",
)
def test_rsync_through_the_relay_sends_the_password_first(tmp_path: Path) -> None:
    """A local 'ssh' runs the remote command here: the password line goes ahead of rsync's
    stream and is consumed (root's sudo asks for nothing, so the shell reads it), the rest is
    rsync's protocol. The password is never an argument."""
    fake_ssh = tmp_path / "ssh"
    fake_ssh.write_text('#!/bin/sh\nshift\nexec sh -c "$*"\n')  # drop the host, run the command
    fake_ssh.chmod(0o755)
    source = make_repo(tmp_path / "src", REPO)
    dest = tmp_path / "dest"
    shell = transfer.RemoteShell(ssh=[str(fake_ssh)], host="subcloud")
    rsync = transfer.Rsync(lambda: shell, transfer.Become(enabled=True, password="s3cr3t"), 10)
    stats = rsync.run(f"{source}/", f"{dest}/", ["-rlpt"], time.monotonic() + 30)
    assert stats.files_transferred == 3 and stats.literal_bytes == 5000 + 7 + 2
    assert (dest / "ostree_repo" / "objects" / "ab" / "cd.filez").read_bytes() == b"x" * 5000
    again = rsync.run(f"{source}/", f"{dest}/", ["-rlpt"], time.monotonic() + 30)
    assert again.files_transferred == 0 and again.literal_bytes == 0
