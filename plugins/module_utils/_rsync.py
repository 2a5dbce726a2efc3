# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""rsync from the system controller to a subcloud, received as root there through a sudo that
asks for the password every time (SPEC §5, §9; the packages phase).

StarlingX pushes with Ansible's synchronize as sysadmin: it chowns the target tree to sysadmin
first and back to root after (PR:prestage-sw-packages/tasks/main.yml:35-68), and synchronize puts
the password on sshpass's command line. Here, on the system controller:

- ssh to the subcloud runs under `sshpass -d FD`: the login password comes through a pipe;
- rsync's remote shell is a small relay (RELAY_SOURCE, written to a private temporary directory
  for the run) that runs that ssh and writes the become password as the first line of the SSH
  channel before relaying rsync's stream;
- the remote command is `sudo -S -p ''` (it reads exactly that one line) exec'ing `rsync
  --server`; when sudo needs no password, a shell `read` consumes the line instead;
- the password only ever passes through pipes: never an argument, an environment variable or
  a file; the ssh keeps a connection of its own with keepalives, so a dead link fails the
  transfer within about io_timeout seconds.

Runs on StarlingX's Python 3.9 (standard library only).
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
import tempfile
import time

from ansible_collections.distcloud.prestage.plugins.module_utils._caller import (
    caller_gone,
)

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
# What dcmanager's prestage inventory gives ssh (DC:dcmanager/common/utils.py:447-478): the
# subclouds' host keys are not checked.
STARLINGX_SSH_OPTIONS = ("-o", "UserKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=no")
_STATS_KEYS = {
    "Number of regular files transferred": "files_transferred",
    "Number of deleted files": "deleted",
    "Literal data": "literal_bytes",
    "Matched data": "matched_bytes",
    "Total transferred file size": "transferred_file_bytes",
    "Total bytes sent": "bytes_sent",
    "Total bytes received": "bytes_received",
}
_NOISE = ("rsync error:", "Warning: Permanently added")
WATCH_INTERVAL = 1.0  # seconds between looks at the deadline and at the controller's connection

# rsync's remote shell: `python3 relay.py CONFIG [-l USER] HOST COMMAND...`. CONFIG (JSON, no
# secret): {"ssh": [argv], "pass_fds": [fd], "become_fd": fd or null}. ssh's output goes straight
# to rsync; rsync -> ssh is relayed in a thread, the become password line first. The process
# exits as soon as ssh does (rsync waits for its remote shell before closing the stream).
RELAY_SOURCE = r"""
import contextlib, json, os, select, subprocess, sys, threading

def relay(source, target):
    while True:
        try:
            data = os.read(source, 1 << 17)
        except BlockingIOError:
            select.select([source], [], [])
            continue
        if not data:
            return
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(target, view):]
            except BlockingIOError:
                select.select([], [target], [])

def feed(ssh, password):
    target = ssh.stdin.fileno()
    try:
        if password:
            os.write(target, password)
        relay(0, target)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            ssh.stdin.close()
    try:
        ssh.wait(timeout=30)
    except subprocess.TimeoutExpired:
        ssh.kill()

def main(argv):
    with open(argv[1]) as handle:
        config = json.load(handle)
    rest = argv[2:]
    if rest[:1] == ["-l"]:
        rest = rest[2:]
    password = b""
    if config.get("become_fd") is not None:
        with os.fdopen(int(config["become_fd"]), "rb") as handle:
            password = handle.read()
    ssh = subprocess.Popen(config["ssh"] + [rest[0]] + rest[1:], stdin=subprocess.PIPE,
                           pass_fds=[int(fd) for fd in config.get("pass_fds", [])])
    threading.Thread(target=feed, args=(ssh, password), daemon=True).start()
    rc = ssh.wait()
    sys.stderr.flush()
    os._exit(rc)

main(sys.argv)
"""


class TransferError(Exception):
    """A transfer that failed, with rsync's exit code and what it said."""

    def __init__(self, message, rc=None, what=None):
        Exception.__init__(self, message)
        self.rc = rc
        self.what = what


class TransferTimeout(TransferError):
    """The deadline passed during a transfer."""


def parse_stats(text):
    """The numbers of `rsync --stats` output (thousands separators allowed)."""
    stats = dict.fromkeys(_STATS_KEYS.values(), 0)
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        match = re.match(r"\s*([\d,.]+)", value) if sep else None
        if match and key.strip() in _STATS_KEYS:
            stats[_STATS_KEYS[key.strip()]] = int(re.sub(r"[,.]", "", match.group(1)) or 0)
    return stats


def remote_rsync_path(become_password, become_user=None):
    """The remote command rsync runs instead of `rsync` (its arguments follow it)."""
    user = f" -u {shlex.quote(become_user)}" if become_user and become_user != "root" else ""
    if become_password is None:
        return f"sudo -n{user} rsync"
    script = (
        f'if sudo -n{user} true 2>/dev/null; then IFS= read -r _ && exec sudo -n{user} rsync "$@"; '
        f'else exec sudo -S -p ""{user} rsync "$@"; fi'
    )
    return f"sh -c {shlex.quote(script)} sh"


def ssh_command(port, user, common_args, io_timeout):
    """ssh to the subcloud: its own TCP connection with keepalives (a dead link fails it in about
    io_timeout seconds: rsync's own --timeout never fires there, its keepalives keep landing in
    ssh's buffers), StarlingX's host key settings, then the subcloud's own ssh arguments."""
    interval = max(1, io_timeout // 4)
    argv = [
        "ssh",
        *STARLINGX_SSH_OPTIONS,
        "-o",
        "ControlMaster=no",
        "-o",
        "ControlPath=none",
        "-o",
        "BatchMode=no",
        "-o",
        f"ServerAliveInterval={interval}",
        "-o",
        "ServerAliveCountMax=4",
        "-o",
        f"ConnectTimeout={max(5, min(io_timeout, 60))}",
        "-o",
        "LogLevel=ERROR",
        "-p",
        str(port),
    ]
    if user:
        argv += ["-l", user]
    argv += shlex.split(common_args or "")
    return argv


def _destination(host, path):
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6 address
    return f"{host}:{path}"


def _quote_for_rsync(word):
    """rsync splits -e on spaces and honours single quotes (no backslashes)."""
    if "'" in word:
        raise TransferError(f"Cannot pass a path with a single quote to rsync -e: {word}")
    return f"'{word}'"


class _Run:
    """One rsync started: its private directory (relay, config, output files) and process."""

    def __init__(self, what, work, fds, process):
        self.what = what
        self.work = work
        self.fds = fds
        self.process = process
        self.started = time.monotonic()

    def result(self):
        """Its stats once it exited 0; TransferError (with rc) otherwise."""
        with open(os.path.join(self.work, "stdout"), "rb") as handle:
            text_out = handle.read().decode("utf-8", "replace")
        with open(os.path.join(self.work, "stderr"), "rb") as handle:
            text_err = handle.read().decode("utf-8", "replace")
        rc = self.process.returncode
        if rc != 0:
            _stop(self.process)  # what is left of its remote shell
            raise TransferError(_failure_text(rc, text_err), rc)
        stats = parse_stats(text_out)
        stats["seconds"] = round(time.monotonic() - self.started, 3)
        return stats

    def close(self):
        if self.process is not None and self.process.poll() is None:
            _stop(self.process)
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(self.work, ignore_errors=True)


def push_all(transfers, *, host, ssh, password, become_password, deadline, io_timeout, python):
    """Run the rsyncs of transfers (dicts of what, source, dest, options) side by side - they
    write disjoint trees, and a second run's login and sudo then overlap the first's transfer
    instead of following it. Returns each one's stats, in order. On the first failure, the
    deadline or the controller gone, every run is stopped and TransferError (with .what, the
    transfer that failed) is raised. ssh: ssh_command()'s argv; password: the login password
    (None: keys)."""
    if shutil.which("rsync") is None:
        raise TransferError("rsync is not installed on the system controller")
    if password and shutil.which("sshpass") is None:
        raise TransferError("sshpass is needed on the system controller for a password login")
    if deadline - time.monotonic() <= 0:
        raise TransferTimeout("the phase deadline passed before the transfer started")
    runs = []
    try:
        for transfer in transfers:
            runs.append(
                _start(transfer, host, ssh, (password, become_password), io_timeout, python)
            )
        return _wait_all(runs, deadline)
    finally:
        for run in runs:
            run.close()


def _secret_pipe(secret, fds):
    """The read end of a pipe holding secret and a newline (the write end closed)."""
    read_fd, write_fd = os.pipe()
    fds.append(read_fd)
    try:
        os.write(write_fd, secret.encode() + b"\n")
    finally:
        os.close(write_fd)
    return read_fd


def _start(transfer, host, ssh, passwords, io_timeout, python):  # noqa: PLR0917
    """rsync started for one transfer; passwords: (login, become)."""
    password, become_password = passwords
    work = tempfile.mkdtemp(prefix="dcprestage-rsync-")
    fds = []
    run = _Run(transfer.get("what") or transfer["source"], work, fds, None)
    try:
        os.chmod(work, 0o700)
        config = {"ssh": list(ssh), "pass_fds": [], "become_fd": None}
        if password:
            read_fd = _secret_pipe(password, fds)
            config["ssh"] = ["sshpass", f"-d{read_fd}", *config["ssh"]]
            config["pass_fds"].append(read_fd)
        if become_password is not None:
            config["become_fd"] = _secret_pipe(become_password, fds)
        config_path = os.path.join(work, "relay.json")
        relay_path = os.path.join(work, "relay.py")
        for path, text in ((config_path, json.dumps(config)), (relay_path, RELAY_SOURCE)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
        rsh = " ".join(_quote_for_rsync(w) for w in (python, relay_path, config_path))
        argv = [
            "rsync",
            "--stats",
            f"--timeout={io_timeout}",
            "-e",
            rsh,
            f"--rsync-path={remote_rsync_path(become_password)}",
            *[str(o) for o in transfer.get("options") or []],
            str(transfer["source"]),
            _destination(host, str(transfer["dest"])),
        ]
        # output to files, not pipes: a remote shell left waiting on a dead link must not keep
        # us waiting after rsync gave up
        with (
            open(os.path.join(work, "stdout"), "wb") as out,
            open(os.path.join(work, "stderr"), "wb") as err,
        ):
            run.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                pass_fds=list(fds),
                start_new_session=True,
                env=dict(os.environ, LC_ALL="C"),
            )
        run.started = time.monotonic()
        # rsync holds the secrets' pipes now: ours closed, so nothing else inherits them
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        del fds[:]
        return run
    except BaseException:
        run.close()
        raise


def _wait_all(runs, deadline):
    """Wait for every run, looking at the deadline and the controller's connection at least
    every WATCH_INTERVAL seconds; stats in the runs' order."""
    results = [None] * len(runs)
    pending = list(range(len(runs)))
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TransferTimeout("the transfer did not finish before the phase timeout")
        if caller_gone():
            raise TransferError("the controller's connection closed: transfer stopped")
        # the first pending run is waited on; the others are looked at when it exits or the
        # interval passes (a failure stops them all within WATCH_INTERVAL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            runs[pending[0]].process.wait(timeout=min(WATCH_INTERVAL, max(0.1, left)))
        for index in list(pending):
            run = runs[index]
            if run.process.poll() is None:
                continue
            pending.remove(index)
            try:
                results[index] = run.result()
            except TransferError as exc:
                exc.what = run.what
                raise
    return results


def _stop(process):
    """Stop rsync and its remote shell (their own process group)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            process.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


def _failure_text(rc, stderr):
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    detail = [line for line in lines if not line.startswith(_NOISE)]
    meaning = RSYNC_EXIT.get(rc, "error")
    tail = "; ".join(detail[-3:]) if detail else ""
    return f"rsync exit {rc} ({meaning})" + (f": {tail}" if tail else "")
