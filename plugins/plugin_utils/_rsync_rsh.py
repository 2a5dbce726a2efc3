# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""rsync's remote shell for the packages phase (`rsync -e "python3 _rsync_rsh.py CONFIG"`).

rsync runs it as `_rsync_rsh.py CONFIG [-l USER] HOST COMMAND...`. It runs the ssh command the
action plugin prepared (Ansible's own ssh command line for the host: same options, ControlPath,
sshpass descriptor) and relays rsync's stream to it, sending the become password as the first
line: the remote side is `sudo -S` reading exactly one line from its standard input, then
exec'ing the rsync server, which reads the rest of the stream. The password travels inside the
SSH channel only: never in an argument, an environment variable or a file.

ssh's output goes straight to rsync (inherited descriptor); only rsync -> ssh is relayed, in a
thread, and the process exits as soon as ssh does: rsync waits for its remote shell to exit
before it closes the stream, so waiting for the end of the stream would deadlock.

CONFIG (JSON, no secret): {"ssh": [argv...], "pass_fds": [fd...], "become_fd": fd or null}.
become_fd is an inherited pipe holding the password line; it is read once and closed.
Standard library only; no import from the collection (rsync starts it as a plain script).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import threading

_CHUNK = 1 << 17
_GRACE = 30  # seconds ssh may run on after rsync closed the stream


def _wait(fd: int, writable: bool = False) -> None:
    if writable:
        select.select([], [fd], [])
    else:
        select.select([fd], [], [])


def _relay(source: int, target: int) -> None:
    """Copy source to target until end of file.

    ssh makes its standard descriptors non-blocking; rsync's socket may be shared with it, so
    reads and writes may say EAGAIN at any time: then wait for the descriptor.
    """
    while True:
        try:
            data = os.read(source, _CHUNK)
        except BlockingIOError:
            _wait(source)
            continue
        if not data:
            return
        view = memoryview(data)
        while view:
            try:
                written = os.write(target, view)
            except BlockingIOError:
                _wait(target, writable=True)
                continue
            view = view[written:]


def _feed(ssh: subprocess.Popen[bytes], password: bytes) -> None:
    """The relay thread: the password line first, then rsync's stream, then end of file."""
    if ssh.stdin is None:
        raise AssertionError("ssh was started without a stdin pipe")
    target = ssh.stdin.fileno()
    try:
        if password:
            os.write(target, password)
        _relay(0, target)
    except OSError:
        pass  # ssh ended; its exit status says why
    finally:
        with contextlib.suppress(OSError):
            ssh.stdin.close()
    # rsync closes the stream only once it is done with us (it gave up, or was stopped): an ssh
    # still running then hangs on a dead link; do not let it outlive rsync for long.
    try:
        ssh.wait(timeout=_GRACE)
    except subprocess.TimeoutExpired:
        ssh.kill()


def main(argv: list[str]) -> int:
    if len(argv) < 4:
        print("usage: _rsync_rsh.py CONFIG [-l USER] HOST COMMAND...", file=sys.stderr)
        return 255
    with open(argv[1], encoding="utf-8") as handle:
        config = json.load(handle)
    rest = argv[2:]
    if rest[:1] == ["-l"]:
        rest = rest[2:]  # the user is in the ssh options already
    host, command = rest[0], rest[1:]

    password = b""
    become_fd = config.get("become_fd")
    if become_fd is not None:
        with os.fdopen(int(become_fd), "rb") as handle:
            password = handle.read()

    ssh = subprocess.Popen(
        [*config["ssh"], host, *command],
        stdin=subprocess.PIPE,
        pass_fds=[int(fd) for fd in config.get("pass_fds", [])],
    )
    threading.Thread(target=_feed, args=(ssh, password), daemon=True).start()
    rc = ssh.wait()
    sys.stderr.flush()
    os._exit(rc)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
