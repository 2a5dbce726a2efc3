# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""Prestage for install, as StarlingX does it (STARLINGX.md §2.1), on the subcloud.

Plain functions: what to clean, what to copy and from where, what the result must be - decided
from facts the caller gathered, so unit tests drive every decision without a subcloud - and the
operations themselves, which the prestage_install module runs as root.

Runs on StarlingX's Python 3.9 (standard library only).
"""

from __future__ import annotations

import fnmatch
import glob
import grp
import os
import pwd
import re
import shutil
import subprocess

from ansible_collections.distcloud.prestage.plugins.module_utils import _content as content
from ansible_collections.distcloud.prestage.plugins.module_utils import _stx as stx

SYSADMIN = "sysadmin"
LEGACY_RELEASE = "22.12"
# StarlingX's push of the ostree repo: synchronize in push mode with these rsync options
# (PR:prestage-sw-packages/tasks/main.yml:47-59; synchronize adds --archive and --delay-updates),
# received as root here, owned root and sysadmin's group as StarlingX's chown dance leaves them
# (35-68). Not --compress: the repo's objects are compressed already.
OSTREE_PUSH_OPTIONS = (
    "--archive",
    "--delay-updates",
    "--delete",
    "--chmod=ugo+rw",
    "--exclude=*/~.tmp~",
)
# The patch metadata push (PR:prestage-patches/tasks/prestage-patch-metadata.yml:14-43).
METADATA_PUSH_OPTIONS = ("--archive", "--delay-updates", "--delete")
# A departure (README, "Where we depart from StarlingX"): into an empty destination,
# --delay-updates (which keeps a tree being updated whole until its last file arrives) has nothing
# to keep whole, and its staging directories and second renaming pass cost about 15 % of a first
# copy's time (bench/README.md). The tree is identical; the checksum and the marker still follow.
DELAY_UPDATES = "--delay-updates"
# Local copies on the subcloud (PR:prestage-sw-packages/tasks/main.yml:31-33,
# prestage-patch-metadata.yml:10-12).
LOCAL_COPY = ("rsync", "-ap", "--delete")


class InstallError(Exception):
    """A failure of the packages phase, in one line."""


def prestage_source(release, host_release):
    """'local' when the subcloud runs the release (its own feed is the source), else 'remote'
    (the system controller's) - PR:prepare-env/tasks/main.yml:75-78."""
    return "local" if release == host_release else "remote"


# --------------------------------------------------------------------------------- versions


def install_versions(platform_backup_dir):
    """Releases prestaged for install (PR:get-prestage-versions/tasks/main.yml:27-52): the
    parent directory names of the .ostree_rsync_completed found by Ansible's find (recurse,
    hidden, depth 2, file_type file: regular files only, symbolic links neither listed nor
    descended into) that match its release filter, sorted as strings."""
    base = os.path.normpath(platform_backup_dir)
    candidates = [os.path.join(base, stx.MARKER_FILE)]
    try:
        entries = os.listdir(base)
    except OSError:
        entries = []
    candidates += [
        os.path.join(base, name, stx.MARKER_FILE)
        for name in entries
        if stx.is_real_dir(os.path.join(base, name))
    ]
    names = [
        os.path.basename(os.path.dirname(path)) for path in candidates if stx.is_regular_file(path)
    ]
    return sorted(name for name in names if stx.is_version_dir(name))


def _name_versions(names):
    """PR:get-prestage-versions/tasks/main.yml:67-86 on file names: the second '-' field, a
    trailing '.0' dropped, version-sorted, the last one of each '<first>.<second>' field pair
    kept, empty ones dropped."""
    per_major = {}
    for name in names:
        parts = name.split("-")
        version = parts[1] if len(parts) > 1 else ""
        version = version[:-2] if version.endswith(".0") else version
        per_major.setdefault(".".join([*version.split("."), ""][:2]), []).append(version)
    kept = [max(versions, key=stx.version_sort_key) for versions in per_major.values()]
    return [version for version in kept if version]


def sw_deploy_versions(metadata_dir):
    """Releases prestaged for software deployment (PR:get-prestage-versions/tasks/main.yml:67-101):
    from the product files '*-*-metadata.xml' at the metadata root (regular files; component
    layout); when they give none, from every entry named '*.xml' below available/ (any type, any
    depth); sorted as strings."""
    try:
        root_names = os.listdir(metadata_dir)
    except OSError:
        root_names = []
    versions = _name_versions(
        name
        for name in root_names
        if fnmatch.fnmatchcase(name, "*-*-metadata.xml")
        and stx.is_regular_file(os.path.join(metadata_dir, name))
    )
    if not versions:
        names = []
        for _dirpath, dirs, files in os.walk(os.path.join(metadata_dir, "available")):
            names += [name for name in dirs + files if fnmatch.fnmatchcase(name, "*.xml")]
        versions = _name_versions(names)
    return sorted(versions)


def prestage_versions(platform_backup_dir, metadata_dir):
    """The line dcmanager records as prestage_versions (PR:get-prestage-versions/tasks/main.yml:
    103-105), e.g. 'for-install: 24.09,25.09 - for-sw-deploy: None'."""
    install = install_versions(platform_backup_dir)
    deploy = sw_deploy_versions(metadata_dir)
    return "for-install: {} - for-sw-deploy: {}".format(
        ",".join(install) or "None", ",".join(deploy) or "None"
    )


# ------------------------------------------------------------------------------------ plan


def state_of(release, base=stx.PLATFORM_BACKUP_DIR):
    """What is prestaged for release now: the marker, the recorded checksum, the patch metadata
    digest, and the space it takes."""
    directory = stx.prestage_dir(release, base)
    metadata = content.tree_digest(os.path.join(directory, "patches", "metadata"))
    return {
        "marker": os.path.isfile(os.path.join(directory, stx.MARKER_FILE)),
        "recorded_checksum": (
            stx.read_text(os.path.join(directory, stx.CHECKSUM_FILE)) or ""
        ).strip()
        or None,
        "patch_metadata_digest": (metadata or {}).get("digest"),
        "usage": content.disk_usage(directory),
    }


def plan(release, host_release, sc, state, names, *, base=stx.PLATFORM_BACKUP_DIR):
    """What the packages phase does for release on a subcloud running host_release.

    sc: sc_release_info's facts; state: state_of(); names: the entries of base.
    Returns source, up_to_date (nothing to copy: marker and checksum as the system controller's,
    the same patch metadata), prune (release dirs below the minimum, deleted first), push (which
    of 'ostree' and 'patch_metadata' the system controller pushes), needed_bytes and freed_bytes
    (for the free space check).
    """
    source = prestage_source(release, host_release)
    ostree = sc.get("ostree") or {}
    metadata = sc.get("patch_metadata")
    minimum = sc.get("min_supported_release")
    # only directories: cleanup_prestage_dir.yml:84-96 finds file_type=directory entries
    prune = [
        n
        for n in stx.prunable_release_dirs(names, minimum)
        if n != release and stx.is_real_dir(os.path.join(base, n))
    ]
    ostree_current = bool(
        state.get("marker")
        and state.get("recorded_checksum")
        and state.get("recorded_checksum") == ostree.get("checksum")
    )
    metadata_current = (state.get("patch_metadata_digest") or None) == (
        (metadata or {}).get("digest") or None
    )
    push = []
    if source == "remote" and not ostree_current:
        push.append("ostree")
    # v >= 24.09: the system controller's patch metadata always wins (prestage-patch-metadata.yml:
    # 14-43); before, only for a remote source
    metadata_from_sc = source == "remote" or not stx.lower(release, stx.USM_RELEASE)
    if metadata is not None and metadata_from_sc and not (ostree_current and metadata_current):
        push.append("patch_metadata")
    up_to_date = source == "remote" and ostree_current and metadata_current
    needed = 0
    if not up_to_date:
        wanted = int(ostree.get("usage") or 0) + int((metadata or {}).get("usage") or 0)
        needed = max(0, wanted - int(state.get("usage") or 0))
    return {
        "source": source,
        "up_to_date": up_to_date,
        "prune": prune,
        "push": push,
        "minimum": minimum,
        "needed_bytes": needed,
    }


def _without_delay_into_empty(options, dest):
    """options, less --delay-updates when dest holds nothing yet (see DELAY_UPDATES)."""
    try:
        empty = not os.listdir(dest)
    except FileNotFoundError:
        empty = True
    except OSError:
        empty = False  # not a directory, unreadable: StarlingX's options, rsync says the rest
    return [o for o in options if not (empty and o == DELAY_UPDATES)]


def transfers(release, push, group, base=stx.PLATFORM_BACKUP_DIR):
    """The rsync runs the system controller makes (prestage_sync's transfers) for push."""
    chown = f"--chown=root:{group}"
    runs = []
    if "ostree" in push:
        runs.append(
            {
                "what": "ostree_repo",
                "source": stx.feed_ostree_repo(release) + "/",
                "dest": os.path.join(stx.prestage_dir(release, base), stx.OSTREE_REPO) + "/",
                "options": [*list(OSTREE_PUSH_OPTIONS), chown],
            }
        )
    if "patch_metadata" in push:
        # what the subcloud prunes right after is not sent at all (same result, fewer bytes)
        excludes = [f"--exclude=/{name}" for name in stx.pruned_metadata_dirs(release)]
        runs.append(
            {
                "what": "patch metadata",
                "source": stx.metadata_dir(release) + "/",
                "dest": os.path.join(stx.prestage_dir(release, base), "patches", "metadata") + "/",
                "options": list(METADATA_PUSH_OPTIONS) + excludes + [chown],
            }
        )
    for run in runs:
        run["options"] = _without_delay_into_empty(run["options"], run["dest"])
    return runs


# ------------------------------------------------------------------------------ operations


def sysadmin_group():
    """sysadmin's primary group name (what StarlingX's chown dance leaves on the pushed files)."""
    try:
        return grp.getgrgid(pwd.getpwnam(SYSADMIN).pw_gid).gr_name
    except KeyError:
        return "root"


def cleanup(release, host_release, minimum, base=stx.PLATFORM_BACKUP_DIR):
    """StarlingX's cleanup before packages (PR:prepare-env/tasks/cleanup_prestage_dir.yml):
    the prestaged patches/ when the subcloud has no patch metadata dir for the release (22-26),
    the unversioned 22.12 layout moved into 22.12/ (33-56), release dirs below the minimum
    (84-96). Returns what it did."""
    done = []
    directory = stx.prestage_dir(release, base)
    patches = os.path.join(directory, "patches")
    if not os.path.isdir(stx.metadata_dir(release)) and os.path.lexists(patches):
        _remove(patches)  # file: state=absent takes any type
        done.append(f"removed {patches}")
    legacy = os.path.join(base, stx.OSTREE_REPO)
    if os.path.isdir(legacy):
        target = stx.prestage_dir(LEGACY_RELEASE, base)
        os.makedirs(target, mode=0o755, exist_ok=True)
        os.rename(legacy, os.path.join(target, stx.OSTREE_REPO))
        checksum = os.path.join(base, stx.CHECKSUM_FILE)
        if os.path.isfile(checksum):
            os.rename(checksum, os.path.join(target, stx.CHECKSUM_FILE))
        done.append(f"moved {legacy} into {target}")
    # listed after the move, as StarlingX's find runs after it (84-96)
    try:
        names = os.listdir(base)
    except OSError:
        names = []
    prune = [n for n in stx.prunable_release_dirs(names, minimum) if n != release]
    for name in prune:
        path = os.path.join(base, name)
        if stx.is_real_dir(path):  # what find file_type=directory lists (84-96)
            shutil.rmtree(path)
            done.append(f"removed {path}")
    return done


def _remove(path):
    if stx.is_real_dir(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def prepare_dirs(release, base=stx.PLATFORM_BACKUP_DIR):
    """<v>/ostree_repo and <v>/patches/metadata, root 0755 (PR:prestage-sw-packages/tasks/
    main.yml:19-29; PR:prestage-patches/tasks/main.yml:12-17). A stale marker goes first, so a
    copy cut short is never taken for a complete one."""
    directory = stx.prestage_dir(release, base)
    for sub in (stx.OSTREE_REPO, os.path.join("patches", "metadata")):
        os.makedirs(os.path.join(directory, sub), mode=0o755, exist_ok=True)
    marker = os.path.join(directory, stx.MARKER_FILE)
    if os.path.lexists(marker):
        os.unlink(marker)
        return True
    return False


def local_copy(source, dest, timeout):
    """StarlingX's local `rsync -ap --delete source/ dest/`; InstallError on failure."""
    argv = [*list(LOCAL_COPY), source.rstrip("/") + "/", dest.rstrip("/") + "/"]
    try:
        result = subprocess.run(argv, capture_output=True, timeout=max(1, timeout), check=False)
    except subprocess.TimeoutExpired:
        raise InstallError(f"the local copy of {source} did not finish in time") from None
    if result.returncode != 0:
        detail = " ".join(result.stderr.decode("utf-8", "replace").split())[-300:]
        raise InstallError(f"rsync of {source} failed (exit {result.returncode}): {detail}")


def prune_metadata(release, base=stx.PLATFORM_BACKUP_DIR):
    """StarlingX's pruning of the prestaged patch metadata (PR:prestage-patches/tasks/
    prestage-patch-metadata.yml:45-73)."""
    metadata = os.path.join(stx.prestage_dir(release, base), "patches", "metadata")
    for name in stx.pruned_metadata_dirs(release):
        path = os.path.join(metadata, name)
        if os.path.lexists(path):  # file: state=absent
            _remove(path)
    if stx.lower(release, stx.USM_RELEASE):
        # grep -L's pattern is a regular expression: the release's dot matches any character
        dotted = ".".join(re.escape(part) for part in release.split("."))
        wanted = re.compile(f"<sw_version>{dotted}</sw_version>")
        for state in ("applied", "committed"):
            for path in glob.glob(os.path.join(metadata, state, "*")):
                if stx.is_regular_file(path) and not wanted.search(stx.read_text(path) or ""):
                    os.unlink(path)


def verify_and_mark(release, expected, deadline, base=stx.PLATFORM_BACKUP_DIR):
    """StarlingX's .ostree_repo_checksum of the prestaged repo, compared with expected (the
    system controller's, or the local feed's) before the checksum file and the marker are
    written (our departure, SPEC §10). On a mismatch the prestaged repo is removed (a rerun copies
    it again) and InstallError says so."""
    directory = stx.prestage_dir(release, base)
    computed = content.ostree_checksum(directory, deadline=deadline)
    if computed["checksum"] != expected:
        shutil.rmtree(os.path.join(directory, stx.OSTREE_REPO), ignore_errors=True)
        for name in (stx.CHECKSUM_FILE, stx.MARKER_FILE):
            path = os.path.join(directory, name)
            if os.path.lexists(path):
                os.unlink(path)
        raise InstallError(
            "Prestaged content of release {} does not match the system controller's after the "
            "transfer (ostree_repo checksum {}, expected {}); it was removed and not marked "
            "complete".format(release, computed["checksum"], expected)
        )
    # PR:prestage-sw-packages/tasks/main.yml:70-79: the checksum file, then the marker
    content.atomic_write(os.path.join(directory, stx.CHECKSUM_FILE), expected + "\n")
    content.atomic_write(os.path.join(directory, stx.MARKER_FILE), "")
    return computed
