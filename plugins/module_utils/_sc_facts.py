# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""What the system controller serves for a release, read on the system controller itself
(SPEC §9): its own release, the upgrades metadata, its USM releases and any deployment in
progress, the release's feed and its checksum, the patch metadata, the image list.

The feed's checksum reads every byte of the release (gigabytes on a real system controller), so it
is cached in the system controller user's cache directory, keyed by the repo's path and a
fingerprint of its files' metadata (name, size, mtime, ctime, inode), recomputed as soon as any
file changes. Concurrent computations of one feed wait for one another (flock).

Runs on StarlingX's Python 3.9 (standard library only).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
from xml.etree import ElementTree

from ansible_collections.distcloud.prestage.plugins.module_utils import _content as content
from ansible_collections.distcloud.prestage.plugins.module_utils import _stx as stx
from ansible_collections.distcloud.prestage.plugins.module_utils import _sw_deploy as swd
from ansible_collections.distcloud.prestage.plugins.module_utils._image_refs import (
    image_list_error,
    parse_image_list,
)
from ansible_collections.distcloud.prestage.plugins.module_utils._release import (
    is_major_release,
    major_of,
    release_key,
)
from ansible_collections.distcloud.prestage.plugins.module_utils._tables import parse_table

CACHE_SCHEMA = 2
# DC:dcmanager/common/utils.py:2152-2179 (pecan.abort 500 when the supported versions cannot be
# read, e.g. an upgrades metadata without supported_upgrades: utils.py:2301-2305).
UNVALIDATED_RELEASE = "Error: unable to validate the release version."
_RELEASE_ID_VERSION = re.compile(r".*?-([0-9.]+)")


class FactsError(Exception):
    """What the system controller cannot serve, in one line."""


def default_cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "distcloud-prestage")


# ------------------------------------------------------------------------ upgrades metadata


def upgrades_metadata(path):
    """(version, supported_upgrades) of an upgrades metadata.xml; FactsError when it is missing,
    unreadable, or lists no supported upgrade."""
    try:
        with open(path, "rb") as handle:
            root = ElementTree.fromstring(handle.read())
    except (OSError, ElementTree.ParseError):
        raise FactsError(UNVALIDATED_RELEASE) from None
    versions = [
        (node.text or "").strip() for node in root.findall("./supported_upgrades/upgrade/version")
    ]
    versions = [v for v in versions if v]
    if not versions:
        raise FactsError(UNVALIDATED_RELEASE)
    return (root.findtext("version") or "").strip(), versions


# ------------------------------------------------------------------------------ USM releases


def software_releases(text):
    """The rows of `software list` (release_id, rr, state, sw_version), in the table's order."""
    releases = []
    for row in parse_table(text):
        release_id = row.get("Release", "").strip()
        if not release_id:
            continue
        match = _RELEASE_ID_VERSION.match(release_id)
        releases.append(
            {
                "release_id": release_id,
                "reboot_required": row.get("RR", "").strip(),
                "state": row.get("State", "").strip(),
                "sw_version": match.group(1) if match else "",
            }
        )
    return releases


def deployment_in_progress(text):
    """A one-line description of the deployment `software deploy show` lists, or None."""
    for row in parse_table(text):
        return "software deploy from {} to {} is in state {}".format(
            row.get("From Release", "?"), row.get("To Release", "?"), row.get("State", "?")
        )
    return None


# --------------------------------------------------------------------------------- image list


def image_list(release):
    """The release's image list: the first prestage_images* file of its deploy directory
    (DC:dcmanager/common/prestage.py:459-467; utils.py:402-410 takes os.listdir's first match,
    in practice the only one: an upload replaces the previous list), parsed as the prestage
    playbook parses it. None when there is none."""
    directory = os.path.join(stx.DEPLOY_DIR, release)
    try:
        names = sorted(n for n in os.listdir(directory) if n.startswith(stx.IMAGE_LIST_PREFIX))
    except OSError:
        return None
    if not names:
        return None
    path = os.path.join(directory, names[0])
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        return {
            "path": path,
            "images": [],
            "error": "Cannot read the image list {}: {}".format(
                path, getattr(exc, "strerror", None) or exc
            ),
        }
    images = parse_image_list(text)
    # a list StarlingX refuses is reported by each subcloud's images phase
    return {"path": path, "images": images, "error": image_list_error(images, path)}


# ---------------------------------------------------------------------- the checksum cache


class _Locked:
    def __init__(self, path):
        self.path = path
        self.fd = None

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)
        return False


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _usable(cache_dir):
    try:
        os.makedirs(cache_dir, mode=0o700, exist_ok=True)
        probe = os.open(os.path.join(cache_dir, ".lock-probe"), os.O_RDWR | os.O_CREAT, 0o600)
        os.close(probe)
    except OSError:
        return False
    return True


def fsck(repo, run):
    """`ostree fsck` of the repo (what miniboot runs on a prestaged repo without a checksum,
    MT:kickstart/files/miniboot.cfg:2132-2315): None when sound, else why not, in one line."""
    rc, out, err = run(f"ostree --repo={repo} fsck --quiet")
    if rc == 0:
        return None
    lines = [line for line in (err or out).splitlines() if line.strip()]
    return "ostree fsck of {} failed: {}".format(repo, " ".join(" ".join(lines[-2:]).split())[:300])


def ostree_checksum(feed_release_dir, cache_dir, deadline=None, run=None):
    """StarlingX's checksum of <feed_release_dir>/ostree_repo (the value of
    .ostree_repo_checksum) and, with run, whether `ostree fsck` finds the repo sound - both
    from the cache when the feed is unchanged.

    Returns dict(checksum, files, bytes, usage, cached, path, error)."""
    repo = os.path.join(feed_release_dir, stx.OSTREE_REPO)
    if not os.path.isdir(repo):
        raise FactsError(f"Directory {repo} does not exist on the system controller.")
    if not cache_dir or not _usable(cache_dir):
        result = content.ostree_checksum(feed_release_dir, deadline=deadline)
        return dict(result, cached=False, path=repo, error=fsck(repo, run) if run else None)
    real = os.path.realpath(repo)
    key = hashlib.sha256(real.encode()).hexdigest()[:32]
    entry_path = os.path.join(cache_dir, f"ostree-{key}.json")
    with _Locked(entry_path + ".lock"):
        signature = content.tree_signature(repo)
        entry = _read_json(entry_path)
        if (
            signature is not None
            and entry is not None
            and entry.get("schema") == CACHE_SCHEMA
            and entry.get("repo") == real
            and entry.get("signature") == signature["signature"]
            and isinstance(entry.get("checksum"), str)
            and (run is None or "error" in entry)
        ):
            return {
                "checksum": entry["checksum"],
                "files": signature["files"],
                "bytes": signature["bytes"],
                "usage": signature["usage"],
                "cached": True,
                "path": repo,
                "error": entry.get("error"),
            }
        result = content.ostree_checksum(feed_release_dir, deadline=deadline)
        error = fsck(repo, run) if run else None
        after = content.tree_signature(repo)
        if signature is not None and after is not None and after == signature:
            # the feed did not change while it was read: the checksum describes it
            with contextlib.suppress(OSError):  # an unwritable cache only costs a recomputation
                content.atomic_write(
                    entry_path,
                    json.dumps(
                        {
                            "schema": CACHE_SCHEMA,
                            "repo": real,
                            "signature": signature["signature"],
                            "checksum": result["checksum"],
                            "error": error,
                        }
                    ),
                    0o600,
                )
        return dict(result, cached=False, path=repo, error=error)


def patch_metadata(release, pruned):
    """The system controller's patch metadata for release (what prestage-patches pushes) as
    digest, files and usage, leaving out the subdirectories the subcloud prunes afterwards;
    None when the directory does not exist."""
    path = stx.metadata_dir(release)
    if not os.path.isdir(path):
        return None
    digest = content.tree_digest(path, exclude_top=pruned)
    return dict(digest, path=path, pruned=sorted(pruned))


# ------------------------------------------------------------------------------ all of it


def release_facts(release, for_sw_deploy, run, *, with_content=True, cache_dir=None, deadline=None):
    """What the system controller serves for release (None: its own release).

    run(script) -> (rc, stdout, stderr) runs a shell script on the system controller (StarlingX's
    commands after sourcing openrc, as the prestage playbooks do). Content facts (the feed's
    checksum, the patch metadata) only with with_content.
    """
    sc_release = stx.sw_version()
    if not sc_release or not is_major_release(sc_release):
        raise FactsError(f"Cannot read the system controller's release from {stx.BUILD_INFO}")
    release = release or sc_release
    facts = {
        "sc_release": sc_release,
        "release": release,
        "for_sw_deploy": bool(for_sw_deploy),
        "supported_upgrades": None,
        "min_supported_release": None,
        "upgrades_error": None,
        "software_releases": None,
        "software_error": None,
        "deployment_in_progress": None,
        "feed": {
            "path": stx.feed_release_dir(release),
            "exists": os.path.isdir(stx.feed_ostree_repo(release)),
        },
        "ostree": None,
        "patch_metadata": None,
        "image_list": None,
    }
    metadata_file = stx.ROOTDIRS_UPGRADES_METADATA
    if not os.path.exists(metadata_file):
        metadata_file = stx.UPGRADES_METADATA
    try:
        _version, supported = upgrades_metadata(metadata_file)
        facts["supported_upgrades"] = supported
        _version, minimum = upgrades_metadata(stx.UPGRADES_METADATA)
        facts["min_supported_release"] = min(minimum, key=release_key)
    except FactsError as exc:
        facts["upgrades_error"] = str(exc)

    source = f"[ -r {stx.OPENRC} ] && . {stx.OPENRC} >/dev/null 2>&1; "
    rc, out, err = run(source + "software list")
    if rc == 0:
        facts["software_releases"] = software_releases(out)
    else:
        facts["software_error"] = "software list failed: {}".format(
            " ".join((err or out).split())[:300]
        )
    rc, out, _err = run(source + "software deploy show")
    if rc == 0:
        facts["deployment_in_progress"] = deployment_in_progress(out)
    facts["image_list"] = image_list(release)

    if with_content and not for_sw_deploy and facts["feed"]["exists"]:
        facts["ostree"] = ostree_checksum(
            stx.feed_release_dir(release), cache_dir or default_cache_dir(), deadline, run
        )
        facts["patch_metadata"] = patch_metadata(release, stx.pruned_metadata_dirs(release))
    if with_content and for_sw_deploy:
        facts["sw_deploy"] = sw_deploy_facts(
            release, sc_release, run, cache_dir or default_cache_dir()
        )
    return facts


def sw_deploy_facts(release, sc_release, run, cache_dir):
    """What the system controller's side of sync-software-metadata reads (STARLINGX.md §3
    steps 2-4, 7): its feed's commit, its releases of the major release, the central commit
    list (computed once per feed commit, under StarlingX's lock), what it will push."""
    repo = stx.feed_ostree_repo(release)
    facts = {
        "error": None,
        "sc_commit": None,
        "releases": [],
        "lines": [],
        "commits": [],
        "empty_commits": [],
        "commits_file": None,
        "metadata_dir": stx.metadata_dir(release),
        "software_scripts": os.path.isdir(swd.SOFTWARE_SCRIPTS_DIR),
        "release_dirs": {},
        "feed_usage": 0,
        "updates_dir": os.path.join("/var/www/pages/updates/debian", f"rel-{release}"),
    }
    facts["updates"] = os.path.isdir(facts["updates_dir"])
    if not os.path.isdir(repo):
        facts["error"] = f"Directory {repo} does not exist on the system controller."
        return facts
    rc, out, err = run(f"ostree --repo={repo} rev-parse {swd.OSTREE_BRANCH}")
    if rc != 0:
        facts["error"] = "ostree rev-parse of {} failed: {}".format(
            repo, " ".join((err or out).split())
        )
        return facts
    facts["sc_commit"] = out.strip()
    source = f"[ -r {stx.OPENRC} ] && . {stx.OPENRC} >/dev/null 2>&1; "
    # PR:sync-software-metadata/tasks/main.yml:67-101
    rc, out, _err = run(source + f"software list --release {release} --state deployed")
    lines = swd.listed_lines(out if rc == 0 else "", release)
    if release_key(release) < release_key(sc_release):
        rc, out, _err = run(source + f"software list --release {release}")
        lines = swd.listed_lines(out if rc == 0 else "", release)
        if not lines:
            facts["error"] = swd.NO_SOFTWARE % release
            return facts
    facts["lines"] = lines
    facts["releases"] = swd.release_parts(lines)
    facts["release_dirs"] = {
        level: os.path.isdir(os.path.join(stx.SOFTWARE_DIR, f"rel-{level}"))
        for level in facts["releases"]
    }
    # get-commits runs on the system controller, where ostree-metadata-sync.sh takes the metadata
    # directory of the host's own release, not the prestaged release's (PR:sync-software-metadata/
    # files/ostree-metadata-sync.sh:167-180)
    facts["commits_file"], facts["commits"] = central_commit_list(
        release, facts["sc_commit"], stx.metadata_dir(sc_release), cache_dir
    )
    facts["empty_commits"] = swd.empty_commit_lines(facts["commits"])
    # what the pushes would leave, for a subcloud that may hold it all already (our departure:
    # a rerun over content in place moves nothing)
    pushed = [os.path.join(stx.SOFTWARE_DIR, f"rel-{level}") for level in facts["releases"]]
    if facts["software_scripts"]:
        pushed.append(swd.SOFTWARE_SCRIPTS_DIR)
    facts["dir_digests"] = {
        path: (content.tree_digest(path) or {}).get("digest") for path in pushed
    }
    signature = content.tree_signature(stx.feed_release_dir(release))
    facts["feed_usage"] = (signature or {}).get("usage", 0)
    return facts


def central_commit_list(release, sc_commit, metadata_dir, cache_dir):
    """The central commit list, reused while its last commit is the feed's (U:129-177); kept in
    the system controller user's cache directory (StarlingX keeps it in /opt/software/tmp, which
    needs root) under StarlingX's lock (/tmp/ostree_metadata_commits_central.lock, 180 s)."""
    os.makedirs(cache_dir, mode=0o700, exist_ok=True)
    path = os.path.join(cache_dir, f"{swd.CENTRAL_COMMITS}-{release}")
    fd = os.open(swd.COMMITS_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        deadline = swd.COMMITS_LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline <= 0:
                    # flock's exit status (1 on a timeout) in the message (PR:sync-software-
                    # metadata/tasks/sync_patches_to_usm_subcloud.yml:163-165)
                    raise FactsError(
                        "ERROR: 1 - flock failed while trying to get the commits."
                    ) from None
                import time  # noqa: PLC0415

                time.sleep(0.2)
                deadline -= 0.2
        lines = (stx.read_text(path) or "").splitlines()
        if not lines or swd.last_commit(lines) != sc_commit:
            lines = swd.central_commits(release, metadata_dir)
            content.atomic_write(path, "".join(line + "\n" for line in lines), 0o600)
        return path, lines
    finally:
        os.close(fd)


def releases_of_major(releases, major):
    """The USM releases of a major release (24.09 -> starlingx-24.09.0, .1, ...)."""
    return [r for r in releases or [] if major_of(r["sw_version"]) == major]
