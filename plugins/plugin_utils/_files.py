# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""Locked, atomic file updates: readers never see a torn file, writers never interleave."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator

from ansible_collections.distcloud.prestage.plugins.module_utils import _content as content
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError


@contextlib.contextmanager
def exclusive_lock(lock_path: str) -> Iterator[None]:
    """Hold an exclusive flock on lock_path (created 0600 if missing) for the with-block."""
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise PrestageError(f"Cannot open lock file {lock_path}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


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


def atomic_write(path: str, data: str | bytes, mode: int = 0o600) -> None:
    """Replace path with data atomically (module_utils' atomic_write, shared with the modules);
    a failure is one PrestageError and leaves nothing behind."""
    try:
        content.atomic_write(path, data, mode)
    except OSError as exc:
        reason = "no space left on device" if exc.errno == errno.ENOSPC else exc.strerror
        raise PrestageError(f"Cannot write {path}: {reason}") from exc


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
