"""rsync from the system controller to a subcloud (plugins/module_utils/_rsync.py): the numbers of
--stats, the remote command behind sudo, the ssh command (StarlingX's host key settings:
DC:dcmanager/common/utils.py:447-478; Ansible's synchronize, which StarlingX pushes with, adds
StrictHostKeyChecking=no and UserKnownHostsFile=/dev/null and no multiplexing), and one real
rsync through the remote-shell relay with stand-ins for ssh and sudo.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.distcloud.prestage.plugins.module_utils import _rsync as rsync

STATS = """
Number of files: 52 (reg: 44, dir: 8)
Number of created files: 52 (reg: 44, dir: 8)
Number of deleted files: 3
Number of regular files transferred: 44
Total file size: 2,101,518 bytes
Total transferred file size: 2,101,518 bytes
Literal data: 2,101,518 bytes
Matched data: 1,234 bytes
File list size: 0
Total bytes sent: 2,108,282
Total bytes received: 1,009

sent 2,108,282 bytes  received 1,009 bytes  4,218,582.00 bytes/sec
"""


def test_parse_stats_reads_numbers_with_thousands_separators() -> None:
    assert rsync.parse_stats(STATS) == {
        "files_transferred": 44,
        "deleted": 3,
        "literal_bytes": 2_101_518,
        "matched_bytes": 1_234,
        "transferred_file_bytes": 2_101_518,
        "bytes_sent": 2_108_282,
        "bytes_received": 1_009,
    }


def test_parse_stats_without_stats_is_zeros() -> None:
    assert set(rsync.parse_stats("sending incremental file list\n").values()) == {0}
    assert rsync.parse_stats("Literal data: 1.234.567 bytes\n")["literal_bytes"] == 1_234_567


def test_remote_rsync_path_without_a_become_password_never_prompts() -> None:
    assert rsync.remote_rsync_path(None) == "sudo -n rsync"
    assert rsync.remote_rsync_path(None, "root") == "sudo -n rsync"
    assert rsync.remote_rsync_path(None, "sys admin") == "sudo -n -u 'sys admin' rsync"


def test_remote_rsync_path_with_a_become_password_keeps_it_off_the_command_line() -> None:
    path = rsync.remote_rsync_path("s3cr3t")
    assert "s3cr3t" not in path
    assert path.startswith("sh -c ") and path.endswith(" sh")
    assert 'sudo -S -p "" rsync' in path and "IFS= read -r _" in path


FAKE_SUDO = """#!/bin/sh
# sudo stand-in: -n true succeeds only when FAKE_SUDO_NOPASSWD=1; -S reads the password line
reads=0
while [ $# -gt 0 ]; do
  case "$1" in
    -n) shift ;;
    -S) reads=1; shift ;;
    -p|-u) shift 2 ;;
    *) break ;;
  esac
done
if [ "$1" = true ]; then [ "$FAKE_SUDO_NOPASSWD" = 1 ]; exit $?; fi
if [ $reads = 1 ]; then IFS= read -r line; printf '%s\\n' "$line" >> "$FAKE_SUDO_LOG"; fi
exec "$@"
"""
FAKE_RSYNC = """#!/bin/sh
# rsync stand-in: its arguments one a line, then what reaches its standard input
for arg in "$@"; do printf '%s\\n' "$arg"; done
echo ---
cat
"""


@pytest.fixture
def stand_ins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("sudo", FAKE_SUDO), ("rsync", FAKE_RSYNC)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("FAKE_SUDO_LOG", str(tmp_path / "sudo.log"))
    (tmp_path / "sudo.log").write_text("")
    return tmp_path


@pytest.mark.parametrize("nopasswd", ["1", "0"])
def test_remote_command_consumes_exactly_the_password_line(stand_ins: Path, nopasswd: str) -> None:
    """The relay sends the become password as the first line: sudo -S reads it when sudo asks
    for one, a shell read drops it when it does not; rsync gets its arguments and the rest of
    the stream either way."""
    command = rsync.remote_rsync_path("s3cr3t") + " --server -logDtpre.iLsfxCIvu . '/opt/a b/'"
    result = subprocess.run(
        ["sh", "-c", command],
        input="s3cr3t\nRSYNC-STREAM\n",
        capture_output=True,
        text=True,
        env={
            "PATH": f"{stand_ins / 'bin'}:/usr/bin:/bin",
            "FAKE_SUDO_NOPASSWD": nopasswd,
            "FAKE_SUDO_LOG": str(stand_ins / "sudo.log"),
        },
        check=True,
    )
    assert result.stdout == "--server\n-logDtpre.iLsfxCIvu\n.\n/opt/a b/\n---\nRSYNC-STREAM\n"
    assert (stand_ins / "sudo.log").read_text() == ("" if nopasswd == "1" else "s3cr3t\n")


def test_ssh_command_has_starlingx_host_key_settings_keepalives_and_the_subclouds_args_last() -> (
    None
):
    argv = rsync.ssh_command(2222, "sysadmin", "-o ProxyJump=jump -i '/keys/a key'", 120)
    assert argv[:5] == [
        "ssh",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "StrictHostKeyChecking=no",
    ]
    options = [argv[i + 1] for i, word in enumerate(argv) if word == "-o"]
    assert {
        "ControlMaster=no",
        "ControlPath=none",
        "ServerAliveInterval=30",
        "ServerAliveCountMax=4",
        "ConnectTimeout=60",
    } <= set(options)
    assert argv[argv.index("-p") + 1] == "2222" and argv[argv.index("-l") + 1] == "sysadmin"
    assert argv[-4:] == ["-o", "ProxyJump=jump", "-i", "/keys/a key"]


def test_ssh_command_keepalive_bounds_and_no_user() -> None:
    argv = rsync.ssh_command(22, None, "", 2)
    assert "-l" not in argv and argv[-2:] == ["-p", "22"]
    assert "ServerAliveInterval=1" in argv and "ConnectTimeout=5" in argv


def test_destination_brackets_ipv6_and_rsync_e_quoting() -> None:
    assert rsync._destination("10.250.0.11", "/opt/x/") == "10.250.0.11:/opt/x/"
    assert rsync._destination("fd00::11", "/opt/x/") == "[fd00::11]:/opt/x/"
    assert rsync._destination("[fd00::11]", "/opt/x/") == "[fd00::11]:/opt/x/"
    assert rsync._quote_for_rsync("/a b") == "'/a b'"
    with pytest.raises(rsync.TransferError, match="single quote"):
        rsync._quote_for_rsync("/it's")


def test_failure_text_names_the_exit_code_and_the_last_lines() -> None:
    stderr = (
        "Warning: Permanently added '10.250.0.11' (ED25519) to the list of known hosts.\n"
        "rsync: [receiver] mkstemp failed: No space left on device (28)\n"
        "rsync error: some files/attrs were not transferred (code 23) at main.c(1338)\n"
    )
    assert rsync._failure_text(23, stderr) == (
        "rsync exit 23 (partial transfer due to error): rsync: [receiver] mkstemp failed: No "
        "space left on device (28)"
    )
    assert rsync._failure_text(99, "") == "rsync exit 99 (error)"


REPO = {"config": b"[core]\n", "objects/ab/cd.filez": b"x" * 5000, "refs/heads/starlingx": b"1\n"}


@pytest.fixture
def real_rsync(stand_ins: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The real rsync with a stand-in ssh that runs the remote command here (as sshd would,
    through a shell) and the stand-in sudo, which asks for the password and records what it
    read; a source tree; push()'s connection arguments."""
    found = shutil.which("rsync")
    if found is None:
        pytest.skip("needs rsync")
    (stand_ins / "bin" / "rsync").unlink()
    (stand_ins / "bin" / "rsync").symlink_to(found)
    monkeypatch.setenv("PATH", f"{stand_ins / 'bin'}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_SUDO_NOPASSWD", "0")
    fake_ssh = stand_ins / "ssh"
    fake_ssh.write_text('#!/bin/sh\nshift\nexec sh -c "$*"\n')  # drop the host, run the command
    fake_ssh.chmod(0o755)
    source = stand_ins / "src" / "ostree_repo"
    for name, data in REPO.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(data)
    (stand_ins / "dest").mkdir()  # prestage_install's prepare step creates the targets' parents
    return {
        "host": "subcloud1",
        "ssh": [str(fake_ssh)],
        "password": None,
        "become_password": "s3cr3t",
        "io_timeout": 10,
        "python": sys.executable,
    }


def test_a_real_rsync_through_the_relay_sends_the_password_first(
    stand_ins: Path, real_rsync: dict[str, Any]
) -> None:
    """The password is never an argument; rsync's stream follows it untouched."""
    dest = stand_ins / "dest" / "ostree_repo"
    run = {
        "source": f"{stand_ins / 'src' / 'ostree_repo'}/",
        "dest": f"{dest}/",
        "options": ["-rlpt", "--delete"],
    }
    (stats,) = rsync.push_all([run], deadline=time.monotonic() + 30, **real_rsync)
    assert (stats["files_transferred"], stats["literal_bytes"]) == (3, 5000 + 7 + 2)
    assert (dest / "objects" / "ab" / "cd.filez").read_bytes() == b"x" * 5000
    assert (stand_ins / "sudo.log").read_text() == "s3cr3t\n"
    (again,) = rsync.push_all([run], deadline=time.monotonic() + 30, **real_rsync)
    assert (again["files_transferred"], again["literal_bytes"]) == (0, 0)


def ostree_and_metadata(stand_ins: Path, metadata: Path) -> list[dict[str, Any]]:
    """The two transfers of a first copy: the source tree, then metadata (as given)."""
    return [
        {"what": "ostree_repo", "source": f"{stand_ins / 'src' / 'ostree_repo'}/",
         "dest": f"{stand_ins / 'dest' / 'ostree_repo'}/", "options": ["-rlpt"]},
        {"what": "patch metadata", "source": f"{metadata}/",
         "dest": f"{stand_ins / 'dest' / 'metadata'}/", "options": ["-rlpt"]},
    ]  # fmt: skip


def test_push_all_runs_the_transfers_side_by_side_and_returns_their_stats_in_order(
    stand_ins: Path, real_rsync: dict[str, Any]
) -> None:
    """Both trees land, each run's sudo got the password once, stats come in the order given,
    and nothing of the runs' private directories (relay, config, output) is left behind. The
    ssh stand-in waits until both runs' ssh have started: one after the other, the first would
    wait until the deadline."""
    barrier = stand_ins / "barrier"
    barrier.mkdir()
    waiting_ssh = stand_ins / "waiting-ssh"
    waiting_ssh.write_text(
        f"#!/bin/sh\nmkdir {barrier}/$$\n"
        f'while [ "$(ls {barrier} | wc -l)" -lt 2 ]; do sleep 0.01; done\n'
        f'exec {real_rsync["ssh"][0]} "$@"\n'
    )
    waiting_ssh.chmod(0o755)
    real_rsync = {**real_rsync, "ssh": [str(waiting_ssh)]}
    (stand_ins / "meta").mkdir()
    (stand_ins / "meta" / "a.xml").write_text("<a/>")
    before = set(Path(tempfile.gettempdir()).glob("dcprestage-rsync-*"))
    transfers = ostree_and_metadata(stand_ins, stand_ins / "meta")
    ostree, metadata = rsync.push_all(transfers, deadline=time.monotonic() + 20, **real_rsync)
    assert len(list(barrier.iterdir())) == 2
    assert (ostree["files_transferred"], metadata["files_transferred"]) == (3, 1)
    assert metadata["literal_bytes"] == 4
    assert (stand_ins / "dest" / "metadata" / "a.xml").read_text() == "<a/>"
    assert (stand_ins / "sudo.log").read_text() == "s3cr3t\ns3cr3t\n"
    assert set(Path(tempfile.gettempdir()).glob("dcprestage-rsync-*")) == before


def test_push_all_names_the_transfer_that_failed(
    stand_ins: Path, real_rsync: dict[str, Any]
) -> None:
    transfers = ostree_and_metadata(stand_ins, stand_ins / "absent")
    with pytest.raises(rsync.TransferError) as caught:
        rsync.push_all(transfers, deadline=time.monotonic() + 30, **real_rsync)
    assert caught.value.what == "patch metadata"
    assert caught.value.rc == 23
    assert str(caught.value).startswith("rsync exit 23 (partial transfer due to error): ")
