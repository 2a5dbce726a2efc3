# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""Locked, atomic file updates: readers never see a torn file, writers never interleave.

Files in a state dir are opened without following a symbolic link and checked once open (a
regular file owned by this user or root) before they are trusted. A temporary file is named
TEMP_PREFIX + <name> + <random> and is flocked by its writer from before it has a name until it
has been renamed into place, so sweep_temps can tell a killed writer's leftover (no lock) from
one still being written.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import stat
from collections.abc import Iterator

from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError

TEMP_PREFIX = ".dcprestage-tmp."
_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


def trusted_owner(uid: int) -> bool:
    """A file or dir this process may trust: its own, or root's."""
    return uid in (os.geteuid(), 0)


def _check_opened(fd: int, path: str) -> os.stat_result:
    """What fd holds must be a regular file owned by us (or root); PrestageError otherwise."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise PrestageError(f"{path} is not a regular file; remove it to continue")
    if not trusted_owner(info.st_uid):
        raise PrestageError(f"{path} is owned by uid {info.st_uid}, not you; remove it to continue")
    return info


def _open_error(path: str, exc: OSError, verb: str = "open") -> PrestageError:
    if exc.errno == errno.ELOOP:
        return PrestageError(f"{path} is a symbolic link; remove it to continue")
    return PrestageError(f"Cannot {verb} {path}: {exc.strerror}")


def open_private(path: str, flags: int, mode: int = 0o600) -> int:
    """os.open(path) without following a symbolic link, checked with fstat (see _check_opened).

    FileNotFoundError passes through (the caller decides what a missing file means); every other
    failure is one PrestageError.
    """
    try:
        fd = os.open(path, flags | _NOFOLLOW, mode)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise _open_error(path, exc) from exc
    try:
        _check_opened(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def exclusive_lock(lock_path: str) -> Iterator[None]:
    """Hold an exclusive flock on lock_path (created 0600 if missing) for the with-block.

    The lock file is opened without following a symbolic link and must be our regular file.
    """
    try:
        fd = open_private(lock_path, os.O_RDWR | os.O_CREAT)
    except FileNotFoundError as exc:
        raise PrestageError(f"Cannot open lock file {lock_path}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextlib.contextmanager
def directory_lock(path: str) -> Iterator[int]:
    """Hold an exclusive flock on the directory path itself (no lock file); yields its fd.

    The directory is opened without following a symbolic link in its last component. A directory
    removed or replaced while we waited is opened again, so the lock held is always the one on
    the directory now at path.
    """
    while True:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise PrestageError(f"State dir {path} is not a directory") from exc
            raise PrestageError(f"Cannot use state dir {path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held = os.fstat(fd)
            try:
                current = os.lstat(path)
            except FileNotFoundError:
                current = None
            if current is not None and (current.st_ino, current.st_dev) == (
                held.st_ino,
                held.st_dev,
            ):
                yield fd
                return
        finally:
            os.close(fd)


@contextlib.contextmanager
def locked_file(path: str) -> Iterator[None]:
    """Hold an exclusive flock on path itself, for files replaced by atomic_write.

    No lock file is left beside a user's file. A rename replaces the inode, so after the lock is
    granted it must still be the file at path; otherwise lock the new one.
    """
    while True:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise PrestageError(f"{path} does not exist") from None
        except OSError as exc:
            raise PrestageError(f"Cannot open {path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = os.stat(path)
            except FileNotFoundError:
                current = None
            held = os.fstat(fd)
            if current is not None and (current.st_ino, current.st_dev) == (
                held.st_ino,
                held.st_dev,
            ):
                yield
                return
        finally:
            os.close(fd)


def temp_name(path: str) -> str:
    """A fresh temporary name beside path, with the prefix sweep_temps looks for."""
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f"{TEMP_PREFIX}{name}.{secrets.token_hex(6)}")


def _temp_file(path: str, mode: int) -> tuple[int, str | None]:
    """An open, flocked temp file for path: (fd, None) while it has no name yet (O_TMPFILE:
    a writer killed now leaves nothing), else (fd, its name) where O_TMPFILE is not supported."""
    directory = os.path.dirname(os.path.abspath(path))
    tmpfile = getattr(os, "O_TMPFILE", 0)
    if tmpfile:
        try:
            fd = os.open(directory, tmpfile | os.O_WRONLY | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                raise
        else:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return fd, None
    tmp = temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd, tmp


def _link_unnamed(fd: int, path: str) -> None:
    """Give the O_TMPFILE file fd the name path: linkat(AT_SYMLINK_FOLLOW) of /proc/self/fd/<fd>
    (os.link follows only with a dir_fd; without one it calls link(), which would not)."""
    dir_fd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.link(
            f"/proc/self/fd/{fd}",
            os.path.basename(path),
            src_dir_fd=dir_fd,
            dst_dir_fd=dir_fd,
            follow_symlinks=True,
        )
    finally:
        os.close(dir_fd)


def _write_replace(path: str, payload: bytes, mode: int) -> None:
    fd, tmp = _temp_file(path, mode)
    try:
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, mode)
            os.fsync(fd)
            if tmp is None:  # give the unnamed file its temp name, then rename it into place
                tmp = temp_name(path)
                _link_unnamed(fd, tmp)
            os.replace(tmp, path)
        except BaseException:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            raise
    finally:
        os.close(fd)  # only now: a sweeper must not take a named temp for a dead writer's
    with contextlib.suppress(OSError):  # not every file system syncs a directory
        dir_fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def atomic_write(path: str, data: str | bytes, mode: int = 0o600) -> None:
    """Replace path with data atomically; a failure is one PrestageError and leaves nothing
    behind. A killed writer leaves at most a TEMP_PREFIX file, which sweep_temps removes."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        _write_replace(path, payload, mode)
    except OSError as exc:
        reason = "no space left on device" if exc.errno == errno.ENOSPC else exc.strerror
        raise PrestageError(f"Cannot write {path}: {reason}") from exc


def is_temp(name: str, legacy: tuple[str, ...] = ()) -> bool:
    """A temp file's name: ours, or (legacy) the `.<name>.<random>` of an earlier release."""
    if name.startswith(TEMP_PREFIX):
        return True
    return any(name.startswith(f".{base}.") and len(name) > len(base) + 2 for base in legacy)


def sweep_temps(directory: str, legacy: tuple[str, ...] = ()) -> list[str]:
    """Remove the temp files in directory whose writer is gone (nobody holds their flock).

    Returns the names removed. Symbolic links with a temp name are removed too (never followed).
    """
    removed: list[str] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        if not is_temp(name, legacy):
            continue
        path = os.path.join(directory, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW)
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # a link named like a temp: not ours, not followed
                with contextlib.suppress(OSError):
                    os.unlink(path)
                    removed.append(name)
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its writer is alive
            held = os.fstat(fd)
            try:
                current = os.lstat(path)
            except FileNotFoundError:
                continue  # renamed into place meanwhile
            if (current.st_ino, current.st_dev) == (held.st_ino, held.st_dev):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                    removed.append(name)
        finally:
            os.close(fd)
    return removed


def read_private(path: str) -> str | None:
    """A state file's text (None if missing), opened as open_private opens it."""
    try:
        fd = open_private(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        with os.fdopen(fd, encoding="utf-8") as handle:
            return handle.read()
    except UnicodeDecodeError as exc:
        raise PrestageError(f"Cannot read {path}: not UTF-8 text") from exc
    except OSError as exc:
        raise PrestageError(f"Cannot read {path}: {exc.strerror}") from exc


def read_text(path: str) -> str | None:
    """The file's text, or None if it does not exist; other failures are a PrestageError."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise PrestageError(f"Cannot read {path}: not UTF-8 text") from exc
    except OSError as exc:
        raise PrestageError(f"Cannot read {path}: {exc.strerror}") from exc
