"""Small helpers: commands, atomic files, processes, polling."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path


class LabError(Exception):
    """A failure worth one clear line to the user."""


def log(message: str) -> None:
    print(f"lab: {message}", file=sys.stderr, flush=True)


def run(
    args: Sequence[str | os.PathLike[str]],
    *,
    input: str | bytes | None = None,
    check: bool = True,
    capture: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure raise LabError with its stderr."""
    text_input = input.decode() if isinstance(input, bytes) else input
    proc = subprocess.run(
        [os.fspath(a) for a in args],
        input=text_input,
        text=True,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.PIPE if capture else None,
        check=False,
    )
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout or "").strip()
        raise LabError(f"{' '.join(os.fspath(a) for a in args)} failed: {detail}")
    return proc


def atomic_write(path: Path, data: str | bytes, mode: int = 0o644) -> None:
    """Write path via a temp file in the same directory and os.replace (readers never see a torn
    file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    payload = data.encode() if isinstance(data, str) else data
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, payload)
        os.fchmod(fd, mode)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_in_place(path: Path, data: str) -> None:
    """Rewrite a file keeping its inode (needed for files bind-mounted into a subcloud)."""
    with path.open("r+" if path.exists() else "w") as handle:
        handle.seek(0)
        handle.write(data)
        handle.truncate()


@contextlib.contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    """Exclusive flock on lock_path for the with-block."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked_in_place(path: Path) -> Iterator[None]:
    """Exclusive flock on the file itself, as the control plane takes it on registry.yml.

    Files are replaced by rename, so once granted the lock must still be on the file at path;
    otherwise take it again on the new one. A file that does not exist yet needs no lock.
    """
    while True:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = os.stat(path)
            except FileNotFoundError:
                continue
            held = os.fstat(fd)
            if (current.st_ino, current.st_dev) == (held.st_ino, held.st_dev):
                yield
                return
        finally:
            os.close(fd)


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """'2M', '200MB', '1.5G', '4096' -> bytes (powers of 1024)."""
    match = _SIZE.match(text)
    if not match:
        raise LabError(f"invalid size {text!r} (examples: 2M, 200M, 1G)")
    factor = 1024 ** "bkmgt".index((match.group(2) or "b").lower())
    return int(float(match.group(1)) * factor)


# ---------------------------------------------------------------------------- processes


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def proc_state(pid: int) -> str | None:
    """The one-letter state of pid ('Z' for a zombie), or None when it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def alive(pid: int | None) -> bool:
    """pid exists and is not a zombie."""
    return pid is not None and proc_state(pid) not in (None, "Z")


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def signal_pids(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def stop_pids(pids: Iterable[int], timeout: float = 5.0) -> list[int]:
    """SIGTERM, wait for them to die (zombies count as dead), then SIGKILL what is left.
    Returns the pids it signalled."""
    targets = [pid for pid in set(pids) if alive(pid)]
    if not targets:
        return []
    signal_pids(targets, signal.SIGTERM)
    if not wait_until(lambda: not any(alive(p) for p in targets), timeout):
        signal_pids([p for p in targets if alive(p)], signal.SIGKILL)
        wait_until(lambda: not any(alive(p) for p in targets), timeout)
    return targets


def wait_reaped(pids: Iterable[int], timeout: float = 10.0) -> bool:
    """Wait until pids have left the process table. Orphans are reaped by pid 1, which on some
    machines (e.g. this VM's init) does so only every couple of seconds."""
    targets = list(pids)
    return wait_until(lambda: not any(Path(f"/proc/{p}").exists() for p in targets), timeout, 0.05)


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll condition until it holds or timeout seconds pass; True when it held."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def tcp_open(address: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False
