# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""Prestage for software deployment, as StarlingX does it (STARLINGX.md §3): the rules of the
sync-software-metadata role and of ostree-metadata-sync.sh, as plain functions the modules on the
system controller and on the subcloud share, so unit tests drive every decision.

Sources: PR:sync-software-metadata/tasks/main.yml (M), sync_patches_to_usm_subcloud.yml (U),
perform_full_ostree_dir_sync.yml (F), sync_patches_to_non_usm_subcloud.yml (N) and
files/ostree-metadata-sync.sh (S), all below PB:roles/prestage/.

Runs on StarlingX's Python 3.9 (standard library only).
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
from xml.etree import ElementTree

from ansible_collections.distcloud.prestage.plugins.module_utils import _stx as stx
from ansible_collections.distcloud.prestage.plugins.module_utils._release import (
    major_of,
    release_key,
)

TMP_DIR = "/opt/software/tmp"
STAGING_DIR = "/opt/software/tmp/metadata-sync"  # M:44-47
CENTRAL_COMMITS = "ostree-metadata-commits.central"
COMMITS_LOCK = "/tmp/ostree_metadata_commits_central.lock"  # U:162-165
COMMITS_LOCK_TIMEOUT = 180
SOFTWARE_SCRIPTS_DIR = "/opt/software/software-scripts"  # M:43
SCRIPTS_DIR = "/usr/sbin/software-deploy"  # M:38
SOFTWARE_BIN = "/usr/bin/software"  # PR:prepare-env/tasks/main.yml:51 (usm_enabled_on_subcloud)
OSTREE_REMOTE = "prestage-source"  # S:184
OSTREE_BRANCH = "starlingx"
NO_SOFTWARE = (
    "No software found for release version %s. Please provide a valid software version for "
    "prestaging."
)  # M:84-91
SKIP_SAME = (
    "Skipping for software deploy prestage as the subcloud has the same patch level than the "
    "system controller for requested software version."
)  # U:111-117
SKIP_HIGHER = (
    "Skipping for software deploy prestage as the subcloud has a higher patch level than the "
    "system controller for requested software version."
)
PULL_FAILED = "Unable to synchronize ostree repository."  # S:401-416
_RELEASE_PART = re.compile(r".*?-([0-9.]+).*")  # M:107-110
_LAST_DOT = re.compile(r".*\.")


class SyncError(Exception):
    """A failure of the software deployment sync, in one line (StarlingX's words where it has
    them)."""


# ------------------------------------------------------------------------------ the lists


def listed_lines(software_list, release, states=None):
    """`software list ... | [egrep -E "<states>" |] grep <release> | sed 's/ //g;'`: the table's
    lines holding release (and one of states), spaces removed, e.g.
    '|starlingx-25.09.1|False|deployed|' (M:67-101, U:44-47)."""
    # grep's pattern is a basic regular expression: the release's dots match any character
    pattern = re.compile(".".join(re.escape(part) for part in release.split(".")))
    lines = []
    for line in (software_list or "").splitlines():
        if states and not re.search("|".join(states), line):
            continue
        if pattern.search(line):
            lines.append(line.replace(" ", ""))
    return lines


def release_parts(lines):
    """M:107-110 regex_replace('.*?-([0-9\\.]+).*', '\\1'): '|starlingx-25.09.1|..' -> '25.09.1'."""
    return [_RELEASE_PART.sub(r"\1", line) for line in lines]


def patch_number(level):
    """U:92-99 regex_replace('.*\\.', '') | int: '25.09.3' -> 3; Jinja's int takes what
    int() or int(float()) takes, else 0."""
    tail = _LAST_DOT.sub("", level)
    try:
        return int(tail)
    except ValueError:
        try:
            return int(float(tail))
        except (ValueError, OverflowError):
            return 0


def patch_level_skip(sc_releases, subcloud_releases):
    """The message of U:88-123 when the subcloud's patch level of the release is the same as or
    higher than the system controller's (the LAST entries are compared), else None."""
    if not subcloud_releases or not sc_releases:
        return None
    sc_patch, sub_patch = patch_number(sc_releases[-1]), patch_number(subcloud_releases[-1])
    if sub_patch == sc_patch:
        return SKIP_SAME
    if sub_patch > sc_patch:
        return SKIP_HIGHER
    return None


def full_feed_sync(source, host_release, release):
    """F: an N-1 subcloud gets the release's whole feed (prepare-sw-packages-prestage-env.yml:
    47-57: remote AND host version < release, compared as strings as StarlingX does)."""
    return source == "remote" and host_release < release


# ------------------------------------------------------------------------- the metadata


def metadata_field(path, element):
    """xml_attrib_metadata get (S:276-339): the text of the first .//element, 'None' when it is
    empty, '' when the file cannot be parsed or lacks it."""
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return ""
    node = root.find(".//" + element)
    if node is None:
        return ""
    # print()ed and read back with $(...), which drops trailing newlines
    return "None" if node.text is None else node.text.rstrip("\n")


def files_for_release_sorted(release, metadata_dir):
    """S:224-257: the metadata files holding '<sw_version><release>' (fixed string, recursive,
    links skipped), one per sw_version (a later file wins), in version order; none at all when
    one of them has no readable sw_version."""
    by_version = {}
    needle = f"<sw_version>{release}"
    for dirpath, _dirs, names in os.walk(metadata_dir):
        for name in sorted(names):
            path = os.path.join(dirpath, name)
            if os.path.islink(path):  # grep -r skips the links it meets
                continue
            try:
                with open(path, encoding="utf-8", errors="replace") as handle:
                    if needle not in handle.read():
                        continue
            except OSError:
                continue
            version = metadata_field(path, "sw_version")
            if not version:
                # an empty key is a bad bash array subscript: it aborts the function, whose
                # output is then empty (S:238-239)
                return []
            by_version[version] = path
    return [by_version[v] for v in sorted(by_version, key=_version_sort_key)]


_version_sort_key = stx.version_sort_key  # sort --version-sort


def central_commits(release, metadata_dir):
    """get-commits (S:473-499): '<metadata file>:<commit1>' per metadata file of the release, in
    version order; the commit is empty when the file has none."""
    return [
        "{}:{}".format(path, metadata_field(path, "contents/ostree/commit1/commit"))
        for path in files_for_release_sorted(release, metadata_dir)
    ]


def last_commit(lines):
    """awk -F':' 'length($2) > 0 {commit=$2} END {print commit}' (U:166-169)."""
    commit = ""
    for line in lines:
        fields = line.split(":")
        if len(fields) > 1 and fields[1]:
            commit = fields[1]
    return commit


def empty_commit_lines(lines):
    """U:186-191: the lines matching '^[^:]+:$'."""
    return [line for line in lines if re.match(r"^[^:]+:$", line)]


def _release_id(path):
    return re.sub(r"-metadata\.xml$", "", os.path.basename(path))


def _id_version(release_id):
    """awk -F'-' '{print $2}' of an id ('starlingx-25.09.1' -> '25.09.1')."""
    parts = release_id.split("-")
    return parts[1] if len(parts) > 1 else ""


def version_le(left, right):
    """S:501-503: equal, or first under sort -V."""
    return left == right or stx.version_compare(left, right) < 0


def metadata_states(release, sc_release, staged_dir, subcloud_dir, component):
    """The state of each release id after the sync (S:575-694), as a list of
    (release_id, state, source file, disable_prepatched). staged_dir: the system controller's
    metadata staged on the subcloud; subcloud_dir: a copy of the subcloud's own, taken before
    the sync. SyncError when the system controller's metadata holds an id twice."""
    if component:
        # find -maxdepth 1 -type f -name '*-<v>*-metadata.xml' | sort -V (S:598-600): regular
        # files, hidden ones included
        pattern = f"*-{release}*-metadata.xml"
        paths = [
            os.path.join(staged_dir, n)
            for n in _listdir(staged_dir)
            if fnmatch.fnmatchcase(n, pattern)
        ]
        central = sorted((p for p in paths if stx.is_regular_file(p)), key=_version_sort_key)
    elif version_le(release, sc_release):
        central = files_for_release_sorted(release, staged_dir)
    else:
        central = [p for p in files_for_release_sorted(release, staged_dir) if "deployed" in p]
    subcloud = [
        p
        for p in files_for_release_sorted(release, subcloud_dir)
        if re.search("deployed|unavailable", p)
    ]
    ids = sorted({_release_id(p) for p in central + subcloud}, key=_version_sort_key)
    highest_subcloud = _id_version(_release_id(subcloud[-1])) if subcloud else ""
    lowest_central = _id_version(_release_id(central[0])) if central else ""
    plan = []
    for release_id in ids:
        version = _id_version(release_id)
        found = _central_file(staged_dir, release_id)
        if not found:
            own = list(
                glob.glob(
                    os.path.join(subcloud_dir, "**", f"*{release_id}-metadata.xml"), recursive=True
                )
            )
            plan.append((release_id, "unavailable", own[0] if own else None, False))
        elif highest_subcloud and version_le(version, highest_subcloud):
            plan.append((release_id, "deployed", found, False))
        else:
            plan.append((release_id, "available", found, version == lowest_central))
    return plan


# USM's component layout (>= 26.10): product files <product>-<level>-metadata.xml at the metadata
# root, their metapackages <name>_<level>-metadata.xml in the state directories, a product's state
# being its metapackages' (UP:software/release_data.py:58-82; UP:software/states.py:114-136;
# UP:software/software_functions.py:1509).
COMPONENT_DEPLOYED_DIRS = ("deployed", "committed", "remove-selected")


def uses_component_sync(release, subcloud_release):
    """A >= 26.10 release on a >= 26.10 subcloud: both sides keep the component layout."""
    return not version_le(major_of(release), "26.03") and not version_le(
        major_of(subcloud_release), "26.03"
    )


def level_of(release_id):
    """The MM.mm.pp of a release id ('starlingx-26.10.1' -> '26.10.1')."""
    return _id_version(release_id)


def metapackage_level(name):
    """'k8s_26.10.1-metadata.xml' -> '26.10.1' ('' for a name that is not a metapackage's)."""
    match = re.match(r"^[^/]*_([0-9][0-9.]*)-metadata\.xml$", name)
    return match.group(1) if match else ""


def metapackages(metadata_dir, level, states=None):
    """The metapackage files of a product level in metadata_dir's state directories."""
    found = []
    for state in sorted(_listdir(metadata_dir)):
        directory = os.path.join(metadata_dir, state)
        if not os.path.isdir(directory) or (states is not None and state not in states):
            continue
        for name in sorted(_listdir(directory)):
            path = os.path.join(directory, name)
            if metapackage_level(name) == level and stx.is_regular_file(path):
                found.append(path)
    return found


def component_states(release, staged_dir, subcloud_dir):
    """Our sync of a >= 26.10 release on a >= 26.10 subcloud, a deliberate departure from
    ostree-metadata-sync.sh (S:591-592, 612-630, 680-708): there it deletes every file of the
    release, the subcloud's deployed metapackages included, and takes a metapackage's name for a
    release id, which leaves USM unable to list the subcloud's releases. Here each product
    release of the system controller (its product files at the staged root, S:598-600) at or
    below the subcloud's highest deployed level stays as the subcloud has it; a higher one
    becomes available - its product file at the metadata root, its metapackages in available/
    (S:680-708), with prepatched_iso N when it is the lowest of them all (S:655-659). The
    subcloud's other releases are left alone. Returns (release_id, state, product file,
    metapackage files, disable_prepatched) per system controller product release."""
    pattern = f"*-{release}*-metadata.xml"
    central = sorted(
        (
            os.path.join(staged_dir, name)
            for name in _listdir(staged_dir)
            if fnmatch.fnmatchcase(name, pattern)
            and stx.is_regular_file(os.path.join(staged_dir, name))
        ),
        key=_version_sort_key,
    )
    deployed = set()
    for state in COMPONENT_DEPLOYED_DIRS:
        for name in _listdir(os.path.join(subcloud_dir, state)):
            level = metapackage_level(name)
            if level.startswith(release + "."):
                deployed.add(level)
    highest_deployed = max(deployed, key=_version_sort_key) if deployed else ""
    plan = []
    lowest_central = _id_version(_release_id(central[0])) if central else ""
    for path in central:
        release_id = _release_id(path)
        level = _id_version(release_id)
        if highest_deployed and version_le(level, highest_deployed):
            plan.append((release_id, "deployed", None, [], False))
            continue
        packages = metapackages(staged_dir, level)
        if not packages:
            raise SyncError(
                f"The system controller's metadata holds no metapackage of {release_id}"
            )
        plan.append((release_id, "available", path, packages, level == lowest_central))
    return plan


def _listdir(path):
    try:
        return os.listdir(path)
    except OSError:
        return []


def _central_file(staged_dir, release_id):
    """find_metadata_file_for_attrib_val id (S:259-274): the one staged file holding
    '<id>release_id</id>'; SyncError when several do."""
    needle = f"<id>{release_id}</id>"
    found = []
    for dirpath, _dirs, names in os.walk(staged_dir):
        for name in names:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):  # grep -r skips the links it meets
                continue
            try:
                with open(path, encoding="utf-8", errors="replace") as handle:
                    if needle in handle.read():
                        found.append(path)
            except OSError:
                continue
    if len(found) > 1:
        raise SyncError(
            "find_metadata_file_for_attrib_val unexpected: found multiple metadata files for id "
            "{} in {}: {}".format(release_id, staged_dir, " ".join(sorted(found)))
        )
    return found[0] if found else None


def set_prepatched_iso_n(path):
    """disable_prepatched_iso_flag (S:516-519): <prepatched_iso>N in the staged file."""
    tree = ElementTree.parse(path)
    node = tree.getroot().find(".//prepatched_iso")
    if node is None:
        node = ElementTree.SubElement(tree.getroot(), "prepatched_iso")
    node.text = "N"
    tree.write(path)


def destination(metadata_dir, state, release, subcloud_release):
    """S:675-685: a >= 26.10 release's 'available' product file goes to the metadata root on a
    >= 26.10 subcloud; anything else to <metadata_dir>/<state>."""
    component = not version_le(major_of(release), "26.03")
    if component and not version_le(subcloud_release, "26.03") and state == "available":
        return metadata_dir
    return os.path.join(metadata_dir, state)


def release_dirs_of(levels):
    """/opt/software/rel-<level> for each system controller release (U:261-271)."""
    return [os.path.join(stx.SOFTWARE_DIR, f"rel-{level}") for level in levels]


def highest(levels):
    return max(levels, key=release_key) if levels else None
