# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""rsync from the system controller to a subcloud, as root there, through a sudo that asks for
the password every time (SPEC §5; the packages phase).

Why not ansible.posix.synchronize: it elevates only through passwordless sudo
(`--rsync-path="sudo rsync"`, documented as its limitation); a StarlingX subcloud's sudo asks
for the sysadmin password. StarlingX's own prestage playbooks work around it by chown'ing the
target tree to sysadmin, rsync'ing as sysadmin with `sshpass -p <password>` on the command line,
then chown'ing back to root: three extra module runs, content that is sysadmin-owned while it
is copied, and the password in the process list. Here:

- rsync's remote shell is `_rsync_rsh.py`, which runs Ansible's own ssh command for the host
  (the connection plugin's `_build_command`: same options, ControlPath/ControlPersist master,
  sshpass through a descriptor) and writes the become password as the first line of the SSH
  channel before relaying rsync's stream;
- the remote command is `sudo -S -p ''` (reads exactly that one line) exec'ing `rsync --server`;
  when the subcloud's sudo needs no password, a shell `read` consumes the line instead;
- the password only ever passes through pipes: never argv, environment or a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError

RSH_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_rsync_rsh.py")

# Exit codes of rsync (man rsync) worth a sentence of their own.
RSYNC_EXIT = {
    1: "syntax or usage error",
    2: "protocol incompatibility",
    3: "errors selecting input/output files or directories",
    5: "error starting client-server protocol",
    10: "error in socket I/O",
    11: "error in file I/O",
    12: "error in rsync protocol data stream (connection lost)",
    20: "interrupted",
    23: "partial transfer due to error",
    24: "partial transfer due to vanished source files",
    30: "timeout in data send/receive",
    35: "timeout waiting for daemon connection",
    255: "ssh connection failed",
}


@dataclass
class RemoteShell:
    """How to reach the subcloud: the ssh argv (without host and command) and its descriptors."""

    ssh: list[str]
    host: str
    ssh_password: str | None = None  # written to the sshpass pipe, when ssh is wrapped in sshpass
    ssh_password_fd: int | None = None  # read end of that pipe (inherited)
    ssh_password_write_fd: int | None = None


@dataclass
class Become:
    """sudo on the subcloud: password (None: sudo must not ask), user."""

    enabled: bool
    password: str | None = None
    user: str | None = None
    exe: str = "sudo"


@dataclass
class RsyncStats:
    files_transferred: int = 0
    deleted: int = 0
    literal_bytes: int = 0
    matched_bytes: int = 0
    transferred_file_bytes: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    seconds: float = 0.0
    raw: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "files_transferred": self.files_transferred,
            "deleted": self.deleted,
            "literal_bytes": self.literal_bytes,
            "matched_bytes": self.matched_bytes,
            "transferred_file_bytes": self.transferred_file_bytes,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "seconds": round(self.seconds, 3),
        }

    def add(self, other: RsyncStats) -> None:
        for name in (
            "files_transferred", "deleted", "literal_bytes", "matched_bytes",
            "transferred_file_bytes", "bytes_sent", "bytes_received", "seconds",
        ):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))


class TransferTimeout(PrestageError):
    """The phase deadline passed during a transfer."""


class TransferFailed(PrestageError):
    def __init__(self, message: str, rc: int) -> None:
        super().__init__(message)
        self.rc = rc


_STATS_KEYS = {
    "Number of regular files transferred": "files_transferred",
    "Number of deleted files": "deleted",
    "Literal data": "literal_bytes",
    "Matched data": "matched_bytes",
    "Total transferred file size": "transferred_file_bytes",
    "Total bytes sent": "bytes_sent",
    "Total bytes received": "bytes_received",
}


def parse_stats(text: str) -> RsyncStats:
    """The numbers of `rsync --stats` output (thousands separators allowed)."""
    stats = RsyncStats()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        match = re.match(r"\s*([\d,.]+)", value)
        if not match:
            continue
        number = int(re.sub(r"[,.]", "", match.group(1)) or 0)
        stats.raw[key.strip()] = number
        attr = _STATS_KEYS.get(key.strip())
        if attr:
            setattr(stats, attr, number)
    return stats


def remote_rsync_path(become: Become) -> str:
    """The remote command rsync runs instead of `rsync` (its arguments follow it)."""
    if not become.enabled:
        return "rsync"
    if become.exe not in ("sudo", "/usr/bin/sudo", "/bin/sudo"):
        raise PrestageError(
            f"The packages phase supports become through sudo only (become_exe is {become.exe})"
        )
    user = f" -u {shlex.quote(become.user)}" if become.user and become.user != "root" else ""
    if become.password is None:
        return f"sudo -n{user} rsync"
    script = (
        f'if sudo -n{user} true 2>/dev/null; then IFS= read -r _ && exec sudo -n{user} rsync "$@"; '
        f'else exec sudo -S -p ""{user} rsync "$@"; fi'
    )
    return f"sh -c {shlex.quote(script)} sh"


def destination(host: str, path: str) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6 address
    return f"{host}:{path}"


def _quote_for_rsync(word: str) -> str:
    """rsync splits -e on spaces and honours single quotes (no backslashes)."""
    if "'" in word:
        raise PrestageError(f"Cannot pass a path with a single quote to rsync -e: {word}")
    return f"'{word}'"


class Rsync:
    """One rsync run to a subcloud, with a deadline."""

    def __init__(
        self,
        shell_factory: Any,
        become: Become,
        io_timeout: int,
        rsync: str = "rsync",
        python: str | None = None,
    ) -> None:
        self.shell_factory = shell_factory  # () -> RemoteShell (fresh descriptors per run)
        self.become = become
        self.io_timeout = io_timeout
        self.rsync = rsync
        self.python = python or sys.executable

    def run(
        self,
        source: str,
        dest_path: str,
        options: list[str],
        deadline: float,
        check_mode: bool = False,
    ) -> RsyncStats:
        if shutil.which(self.rsync) is None:
            raise PrestageError(f"{self.rsync} is not installed on the system controller")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TransferTimeout("the phase deadline passed before the transfer started")
        shell: RemoteShell = self.shell_factory()
        workdir = tempfile.mkdtemp(prefix="dcprestage-rsync-")
        become_read = become_write = None
        inherit: list[int] = []
        try:
            config: dict[str, Any] = {"ssh": shell.ssh, "pass_fds": [], "become_fd": None}
            if shell.ssh_password_fd is not None:
                config["pass_fds"].append(shell.ssh_password_fd)
                inherit.append(shell.ssh_password_fd)
                if shell.ssh_password_write_fd is None:
                    raise AssertionError("a password fd without its write end")
                os.write(shell.ssh_password_write_fd, (shell.ssh_password or "").encode() + b"\n")
                os.close(shell.ssh_password_write_fd)
                shell.ssh_password_write_fd = None
            if self.become.enabled and self.become.password is not None:
                become_read, become_write = os.pipe()
                os.write(become_write, self.become.password.encode() + b"\n")
                os.close(become_write)
                become_write = None
                config["become_fd"] = become_read
                inherit.append(become_read)
            config_path = os.path.join(workdir, "rsh.json")
            fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(config, handle)
            rsh = " ".join(_quote_for_rsync(w) for w in (self.python, RSH_SCRIPT, config_path))
            argv = [
                self.rsync,
                "--stats",
                f"--timeout={self.io_timeout}",
                "-e",
                rsh,
                f"--rsync-path={remote_rsync_path(self.become)}",
                *(["--dry-run"] if check_mode else []),
                *options,
                source,
                destination(shell.host, dest_path),
            ]
            return self._execute(argv, inherit, deadline, workdir)
        finally:
            for fd_ in (become_read, become_write, shell.ssh_password_fd,
                        shell.ssh_password_write_fd):  # fmt: skip
                if fd_ is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd_)
            shutil.rmtree(workdir, ignore_errors=True)

    def _execute(
        self, argv: list[str], inherit: list[int], deadline: float, workdir: str
    ) -> RsyncStats:
        """Run rsync until it exits (or the deadline). Its output goes to files, not pipes: a
        remote shell left behind (ssh waiting on a dead link) must not keep us waiting after
        rsync itself has given up."""
        started = time.monotonic()
        out_path = os.path.join(workdir, "stdout")
        err_path = os.path.join(workdir, "stderr")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                pass_fds=inherit,
                start_new_session=True,
                env={**os.environ, "LC_ALL": "C"},
            )
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _stop(process)
            raise TransferTimeout("the transfer did not finish before the phase timeout") from None
        except BaseException:  # e.g. Ansible's task timeout: leave no rsync behind
            _stop(process)
            raise
        with open(out_path, "rb") as handle:
            text_out = handle.read().decode("utf-8", "replace")
        with open(err_path, "rb") as handle:
            text_err = handle.read().decode("utf-8", "replace")
        if process.returncode != 0:
            _stop(process)  # what is left of its remote shell
            raise TransferFailed(_failure_text(process.returncode, text_err), process.returncode)
        stats = parse_stats(text_out)
        stats.seconds = time.monotonic() - started
        return stats


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop rsync and its remote shell (their own process group)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            continue
        # rsync is gone; its group may still hold its remote shell for a moment
        time.sleep(0.05)


_NOISE = ("rsync error:", "Warning: Permanently added")


def _failure_text(rc: int, stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    # rsync's own summary line ("rsync error: ... (code N) at ...") adds nothing to the meaning
    detail = [line for line in lines if not line.startswith(_NOISE)]
    meaning = RSYNC_EXIT.get(rc, "error")
    tail = "; ".join(detail[-3:]) if detail else ""
    return f"rsync exit {rc} ({meaning})" + (f": {tail}" if tail else "")
