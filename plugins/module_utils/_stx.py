# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""StarlingX's own locations, file names and release-dependent rules (STARLINGX.md §2, §3, §8),
in one place for the modules that run on the system controller and on subclouds.

Runs on StarlingX's Python 3.9 (standard library only).
"""

from __future__ import annotations

import functools
import os
import re
import stat

from ansible_collections.distcloud.prestage.plugins.module_utils._release import release_key

BUILD_INFO = "/etc/build.info"
PLATFORM_CONF = "/etc/platform/platform.conf"
OPENRC = "/etc/platform/openrc"
FEED_DIR = "/var/www/pages/feed"
PLATFORM_BACKUP_DIR = "/opt/platform-backup"
SOFTWARE_DIR = "/opt/software"
DEPLOY_DIR = "/opt/platform/deploy"
DOCKER_DIR = "/var/lib/docker"
REGISTRY_STORAGE_DIR = "/var/lib/docker-distribution"
# The playbook reads the minimum release from the first, dcmanager its supported list from the
# second; StarlingX keeps them identical (STARLINGX.md §7; PB:roles/common/
# minimum-upgradable-release/tasks/main.yml:20-30; DC:dcmanager/common/utils.py:2285-2313).
UPGRADES_METADATA = "/opt/upgrades/metadata.xml"
ROOTDIRS_UPGRADES_METADATA = "/usr/rootdirs/opt/upgrades/metadata.xml"

OSTREE_REPO = "ostree_repo"
CHECKSUM_FILE = ".ostree_repo_checksum"
# PB:prestage_sw_packages.yml:20-26 (for_install_flag_file)
MARKER_FILE = ".ostree_rsync_completed"
REGISTRY_ARCHIVE = "local_registry_filesystem.tgz"
# DC:dcmanager/common/prestage.py:459-467 and utils.py:402-410: the first file of the release's
# deploy directory whose name starts with this prefix is the image list.
IMAGE_LIST_PREFIX = "prestage_images"

# Releases from which the USM metadata moved (PR:prepare-env/tasks/main.yml:54-55,70-73;
# PR:sync-software-metadata/tasks/main.yml:41-42).
COMPONENT_RELEASE = "26.10"
# For v >= 24.09 the system controller's patch metadata is always pushed (PR:prestage-patches/
# tasks/prestage-patch-metadata.yml:14-43) and pruned differently (45-73).
USM_RELEASE = "24.09"

# get-prestage-versions' directory name filter (PR:get-prestage-versions/tasks/main.yml:27-52),
# its dot unescaped as StarlingX writes it.
_VERSION_DIR = re.compile(r"^[1-9][0-9]*.[0-9]+$")
# cleanup_prestage_dir.yml:84-96: the release directories it prunes, dot unescaped too.
_PRUNABLE_DIR = re.compile(r"^[1-9]\d.[0-9]\d$")


def lower(left, right):
    """StarlingX's `left is version(right, '<')` on MM.mm strings."""
    return release_key(left) < release_key(right)


def metadata_dir(release):
    """The USM metadata directory that holds release's metadata on a host of that release:
    /opt/software/metadata before 26.10, /opt/software/releases/metadata from 26.10 on."""
    if lower(release, COMPONENT_RELEASE):
        return os.path.join(SOFTWARE_DIR, "metadata")
    return os.path.join(SOFTWARE_DIR, "releases", "metadata")


def pruned_metadata_dirs(release):
    """Subdirectories of the prestaged patches/metadata StarlingX removes after the push: for
    v >= 24.09 unavailable/ and committed/ (PR:prestage-patches/tasks/prestage-patch-metadata.yml:
    64-73); before, available/ (45-50; the applied/committed files of other releases go too,
    51-58, handled by the subcloud)."""
    if lower(release, USM_RELEASE):
        return ("available",)
    return ("unavailable", "committed")


def feed_release_dir(release):
    return os.path.join(FEED_DIR, f"rel-{release}")


def feed_ostree_repo(release):
    return os.path.join(feed_release_dir(release), OSTREE_REPO)


def prestage_dir(release, base=PLATFORM_BACKUP_DIR):
    return os.path.join(base, release)


def is_version_dir(name):
    return _VERSION_DIR.match(name) is not None


def prunable_release_dirs(names, minimum):
    """Names of /opt/platform-backup entries StarlingX deletes on every run: release-like
    directories below the system controller's minimum supported release."""
    if not minimum:
        return []
    return sorted(
        (n for n in names if _PRUNABLE_DIR.match(n) and lower(n, minimum)), key=release_key
    )


def is_real_dir(path):
    """A directory that is not a symbolic link (Ansible's find with file_type=directory, which
    lstat()s every entry: cleanup_prestage_dir.yml:84-96)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def is_regular_file(path):
    """A regular file, not a symbolic link (`find -type f`; Ansible's find file_type=file)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


# ------------------------------------------------------------------- sort --version-sort
# StarlingX orders releases, release ids and metadata paths with GNU `sort -V` (and its
# version_le, PR:sync-software-metadata/files/ostree-metadata-sync.sh:250,501-503,600,620).
# GNU's version ordering (coreutils "Version sort ordering"): trailing file suffixes set aside
# first, then alternating non-digit parts (letters before other characters, '~' before
# everything, the end before anything else) and digit runs compared as numbers; equal versions
# fall back to a byte comparison, as sort does. tests/unit/module_utils/test_stx.py checks it
# against the host's `sort -V`.


_SUFFIXES = re.compile(rb"(?:\.[A-Za-z~][A-Za-z0-9~]*)*\Z")


def _is_digit(c):
    return 48 <= c <= 57


def _is_alpha(c):
    return 65 <= c <= 90 or 97 <= c <= 122


def _rank(text, pos, end):
    if pos == end:
        return -1
    c = text[pos]
    if _is_digit(c):
        return 0
    if _is_alpha(c):
        return c
    if c == 126:  # '~'
        return -2
    return c + 256


def _suffix_start(text):
    """Where the longest trailing run of suffixes (\\.[A-Za-z~][A-Za-z0-9~]*)* begins."""
    return _SUFFIXES.search(text).start()


def _compare_parts(a, a_end, b, b_end):
    i = j = 0
    while i < a_end or j < b_end:
        while (i < a_end and not _is_digit(a[i])) or (j < b_end and not _is_digit(b[j])):
            left, right = _rank(a, i, a_end), _rank(b, j, b_end)
            if left != right:
                return left - right
            i += 1
            j += 1
        while i < a_end and a[i] == 48:
            i += 1
        while j < b_end and b[j] == 48:
            j += 1
        first = 0
        while i < a_end and j < b_end and _is_digit(a[i]) and _is_digit(b[j]):
            first = first or a[i] - b[j]
            i += 1
            j += 1
        if i < a_end and _is_digit(a[i]):
            return 1
        if j < b_end and _is_digit(b[j]):
            return -1
        if first:
            return first
    return 0


def _version_order(a, b):
    if not a or not b:
        return (len(a) > 0) - (len(b) > 0)
    if a[:1] == b"." or b[:1] == b".":
        if a[:1] != b[:1]:
            return -1 if a[:1] == b"." else 1
        for special in (b".", b".."):
            if (a == special) != (b == special):
                return -1 if a == special else 1
            if a == special:
                return 0
    a_prefix, b_prefix = _suffix_start(a), _suffix_start(b)
    result = _compare_parts(a, a_prefix, b, b_prefix)
    if result or (a_prefix == len(a) and b_prefix == len(b)):
        return result
    return _compare_parts(a, len(a), b, len(b))


def version_compare(left, right):
    """-1, 0 or 1 as left sorts before, with or after right under `sort -V` (C locale)."""
    a = left.encode("utf-8", "surrogateescape")
    b = right.encode("utf-8", "surrogateescape")
    result = _version_order(a, b)
    if result == 0:
        result = (a > b) - (a < b)
    return (result > 0) - (result < 0)


version_sort_key = functools.cmp_to_key(version_compare)


def key_values(text):
    """KEY=value lines (build.info, platform.conf), quotes removed."""
    values = {}
    for line in (text or "").splitlines():
        match = re.match(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$", line)
        if match:
            values[match.group(1)] = match.group(2).strip("\"'")
    return values


def read_text(path, default=None):
    try:
        with open(path) as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):
        return default


def sw_version(path=BUILD_INFO):
    """SW_VERSION of build.info (`source /etc/build.info; echo $SW_VERSION`), or None."""
    return key_values(read_text(path, "")).get("SW_VERSION") or None
