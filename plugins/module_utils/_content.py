# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""Release content on disk: checksums, manifests, sizes and prestaged versions.

The same code runs on the system controller (what it serves) and on subclouds (what they hold),
so both sides judge content by one rule. It runs on any Python a subcloud may have (3.8+), so it
stays unannotated and uses the standard library only.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import tempfile
import time

from ansible_collections.distcloud.prestage.plugins.module_utils._formats import MAJOR_RELEASE
from ansible_collections.distcloud.prestage.plugins.module_utils._release import (
    major_of,
    release_key,
)

OSTREE_REPO = "ostree_repo"
CHECKSUM_FILE = ".ostree_repo_checksum"
MARKER_FILE = ".ostree_rsync_completed"
PATCHES_METADATA = os.path.join("patches", "metadata")
REGISTRY_ARCHIVE = "local_registry_filesystem.tgz"
REGISTRY_ARCHIVE_STATE = ".local_registry_filesystem.state"

RELEASE_DIR = MAJOR_RELEASE
_METADATA_VERSION = re.compile(r"([0-9]+\.[0-9]+(?:\.[0-9]+)?)-metadata\.xml\Z")
_BLOCK = 4096
_CHUNK = 1 << 20


class DeadlineExceeded(Exception):
    """The work did not finish before its deadline (a phase timeout)."""


def check_deadline(deadline):
    if deadline is not None and time.monotonic() > deadline:
        raise DeadlineExceeded()


def md5_file(path, deadline=None):
    digest = hashlib.md5()  # content identity, as StarlingX uses it; not a security function
    with open(path, "rb") as handle:
        while True:
            block = handle.read(_CHUNK)
            if not block:
                break
            digest.update(block)
            check_deadline(deadline)
    return digest.hexdigest()


def regular_files(root):
    """(relative path, absolute path, lstat) of every regular file below root, in no particular
    order; like `find root -type f`: symbolic links are neither followed nor listed."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue  # removed meanwhile
            if stat.S_ISREG(info.st_mode):
                yield os.path.relpath(path, root), path, info


def usage_bytes(size):
    """Space a file of size bytes takes on a file system with 4 KiB blocks."""
    return (size + _BLOCK - 1) // _BLOCK * _BLOCK


def _md5sum_line(digest, name):
    """One line of `md5sum` output for name (md5sum escapes names holding \\ or a newline)."""
    if "\\" in name or "\n" in name:
        return "\\{}  {}".format(digest, name.replace("\\", "\\\\").replace("\n", "\\n"))
    return f"{digest}  {name}"


def ostree_checksum(parent, name=OSTREE_REPO, deadline=None):
    """The .ostree_repo_checksum of parent/name and what it covers.

    StarlingX computes it in its prestage and install tooling as
    `cd parent && find ostree_repo -type f -exec md5sum {} + | LC_ALL=C sort | md5sum`: the md5 of
    the byte-sorted list of per-file md5 lines. This gives the same value, so a subcloud prestaged
    by either tool can be checked by the other.
    Returns dict(checksum, files, bytes, usage).
    """
    root = os.path.join(parent, name)
    if not os.path.isdir(root):
        raise OSError(2, "No such directory", root)
    lines = []
    total = usage = 0
    for rel, path, info in regular_files(root):
        lines.append(_md5sum_line(md5_file(path, deadline), os.path.join(name, rel)))
        total += info.st_size
        usage += usage_bytes(info.st_size)
        check_deadline(deadline)
    lines.sort(key=lambda line: line.encode("utf-8", "surrogateescape"))
    text = "".join(line + "\n" for line in lines)
    checksum = hashlib.md5(text.encode("utf-8", "surrogateescape")).hexdigest()
    return {"checksum": checksum, "files": len(lines), "bytes": total, "usage": usage}


def tree_digest(root, deadline=None, exclude_top=()):
    """A digest of every regular file below root (but those below the top-level entries named
    in exclude_top): names and contents (md5 of the sorted 'path NUL md5' lines). None when root
    does not exist. Returns dict(digest, files, bytes, usage) otherwise."""
    if not os.path.isdir(root):
        return None
    lines = []
    total = usage = 0
    for rel, path, info in regular_files(root):
        if rel.split(os.sep, 1)[0] in exclude_top:
            continue
        lines.append(f"{rel}\0{md5_file(path, deadline)}")
        total += info.st_size
        usage += usage_bytes(info.st_size)
    lines.sort(key=lambda line: line.encode("utf-8", "surrogateescape"))
    text = "".join(line + "\n" for line in lines)
    digest = hashlib.md5(text.encode("utf-8", "surrogateescape")).hexdigest()
    return {"digest": digest, "files": len(lines), "bytes": total, "usage": usage}


def tree_signature(root):
    """A cheap fingerprint of a tree from metadata only (name, size, mtime, ctime, inode of each
    regular file): it changes whenever a file is added, removed, rewritten or touched. Returns
    dict(signature, files, bytes, usage, newest_mtime) or None when root does not exist."""
    if not os.path.isdir(root):
        return None
    lines = []
    total = usage = 0
    newest = 0
    for rel, _path, info in regular_files(root):
        lines.append(
            f"{rel}\0{info.st_size}\0{info.st_mtime_ns}\0{info.st_ctime_ns}\0{info.st_ino}"
        )
        total += info.st_size
        usage += usage_bytes(info.st_size)
        newest = max(newest, info.st_mtime_ns)
    lines.sort(key=lambda line: line.encode("utf-8", "surrogateescape"))
    text = "".join(line + "\n" for line in lines)
    signature = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()
    return {
        "signature": signature,
        "files": len(lines),
        "bytes": total,
        "usage": usage,
        "newest_mtime": newest,
    }


def disk_usage(root):
    """Estimated space used by the regular files below root (0 when it does not exist)."""
    return sum(usage_bytes(info.st_size) for _rel, _path, info in regular_files(root))


def free_bytes(path):
    """Bytes available to an unprivileged writer on the file system holding path (or its nearest
    existing parent)."""
    while path and not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    info = os.statvfs(path or "/")
    return info.f_bavail * info.f_frsize


def release_dirs(base):
    """Names of the MM.mm directories in base, lowest release first."""
    try:
        names = os.listdir(base)
    except OSError:
        return []
    return sorted(
        (n for n in names if RELEASE_DIR.match(n) and os.path.isdir(os.path.join(base, n))),
        key=release_key,
    )


def install_versions(platform_backup_dir):
    """Releases prestaged for install: /opt/platform-backup/<v> holding the completion marker."""
    return [
        name
        for name in release_dirs(platform_backup_dir)
        if os.path.isfile(os.path.join(platform_backup_dir, name, MARKER_FILE))
    ]


def metadata_levels(metadata_dir):
    """Release levels (24.09.1, ...) named by the *-metadata.xml files in metadata_dir and its
    state subdirectories (available, deployed, committed, ...)."""
    levels = set()
    for rel, _path, _info in regular_files(metadata_dir) if os.path.isdir(metadata_dir) else ():
        if rel.count(os.sep) > 1:
            continue
        match = _METADATA_VERSION.search(os.path.basename(rel))
        if match:
            levels.add(match.group(1))
    return levels


def highest(levels, release=None):
    """The highest level of levels (of release, when given), or None."""
    chosen = [lv for lv in levels if release is None or major_of(lv) == release]
    return max(chosen, key=release_key) if chosen else None


def display_level(level):
    """24.09.0 -> 24.09, 24.09.2 -> 24.09.2 (StarlingX shows an unpatched release as MM.mm)."""
    return level[:-2] if level.endswith(".0") and level.count(".") >= 2 else level


def sw_deploy_versions(software_dir):
    """Releases prestaged for software deployment: /opt/software/<v>/metadata, at their highest
    level."""
    versions = []
    for name in release_dirs(software_dir):
        level = highest(metadata_levels(os.path.join(software_dir, name, "metadata")), name)
        if level:
            versions.append(display_level(level))
    return versions


def prestaged_versions(platform_backup_dir, software_dir):
    return {
        "for_install": install_versions(platform_backup_dir),
        "for_sw_deploy": sw_deploy_versions(software_dir),
    }


def atomic_write(path, data, mode=0o644):
    """Replace path with data (str or bytes) through a temporary file in the same directory,
    fsynced, then renamed, then the directory fsynced: a reader sees the old or the new content,
    never a torn one. OSError on failure, with nothing left behind."""
    directory = os.path.dirname(os.path.abspath(path))
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # not every file system syncs a directory
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
