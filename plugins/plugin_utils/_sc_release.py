# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""What the system controller serves for one release, computed once per run (SPEC §5, DESIGN §5).

For install: the ostree repo of the release feed and its checksum (StarlingX's
`.ostree_repo_checksum`), the patch metadata; for software deployment: the software directory
and its patch level; for both: the image list and the lowest supported release.

The checksum reads every byte of the feed (gigabytes on a real system controller), so it is
cached: a cache entry is keyed by the feed's path and a fingerprint of its metadata (name, size,
mtime, ctime, inode of every file), recomputed as soon as any file is added, removed, rewritten
or touched. Concurrent computations of the same feed wait for one another (flock) instead of
all reading the feed at once.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from xml.etree import ElementTree

from ansible_collections.distcloud.prestage.plugins.module_utils import _content as content
from ansible_collections.distcloud.prestage.plugins.module_utils._release import (
    is_major_release,
    release_key,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._checks import (
    check_release_on_system_controller,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._config import (
    PrestageConfig,
    system_controller_settings,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError

CACHE_SCHEMA = 1
IMAGE_LIST_PREFIX = "prestage_images"
SETTINGS_SOURCE = "prestage_system_controller"


def default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "distcloud-prestage")


def settings_of(raw: Any) -> dict[str, Any]:
    """The system controller settings (defaults filled in, validated) from what a play has."""
    return system_controller_settings(raw or {}, os.getcwd(), SETTINGS_SOURCE)


def parse_image_list(text: str) -> list[str]:
    """Image references of an image list: one a line; blank lines and # comments ignored,
    duplicates dropped (first one kept)."""
    images: list[str] = []
    for line in text.splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry and entry not in images:
            images.append(entry)
    return images


def image_list(settings: dict[str, Any], release: str) -> dict[str, Any] | None:
    """The release's image list (dcmanager: <image_list_dir>/<v>/prestage_images*), or None."""
    pattern = os.path.join(settings["image_list_dir"], release, IMAGE_LIST_PREFIX + "*")
    paths = sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
    if not paths:
        return None
    try:
        with open(paths[0], encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise PrestageError(f"Cannot read the image list {paths[0]}: {exc}") from None
    return {"path": paths[0], "images": parse_image_list(text)}


def min_supported_release(settings: dict[str, Any]) -> str | None:
    """The lowest release of supported_upgrades in the upgrade metadata (StarlingX's
    /opt/upgrades/metadata.xml), or None when there is no such file."""
    path = settings.get("upgrades_metadata")
    if not path or not os.path.isfile(path):
        return None
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError) as exc:
        raise PrestageError(f"Cannot read the upgrade metadata {path}: {exc}") from None
    versions = [
        (node.text or "").strip()
        for node in root.findall("./supported_upgrades/upgrade/version")
        if is_major_release((node.text or "").strip())
    ]
    return min(versions, key=release_key) if versions else None


# --------------------------------------------------------------------------- the checksum cache


@contextmanager
def _locked(path: str) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json_quietly(path: str, data: dict[str, Any]) -> None:
    """A cache entry that cannot be written (disk full...) only costs a recomputation."""
    try:
        content.atomic_write(path, json.dumps(data), 0o600)
    except OSError:
        return


def ostree_checksum(feed_release_dir: str, cache_dir: str | None) -> dict[str, Any]:
    """Checksum of <feed_release_dir>/ostree_repo, from the cache when the feed is unchanged.

    Returns dict(checksum, files, bytes, usage, cached, path)."""
    repo = os.path.join(feed_release_dir, content.OSTREE_REPO)
    if not os.path.isdir(repo):
        raise PrestageError(f"Directory {repo} does not exist on the system controller.")
    if cache_dir:
        try:
            os.makedirs(cache_dir, mode=0o700, exist_ok=True)
            lock = os.open(os.path.join(cache_dir, ".lock-probe"), os.O_RDWR | os.O_CREAT, 0o600)
            os.close(lock)
        except OSError:
            cache_dir = None  # no usable cache (read-only home...): compute every time
    if not cache_dir:
        result = content.ostree_checksum(feed_release_dir)
        return {**result, "cached": False, "path": repo}
    key = hashlib.sha256(os.path.realpath(repo).encode()).hexdigest()[:32]
    entry_path = os.path.join(cache_dir, f"ostree-{key}.json")
    with _locked(entry_path + ".lock"):
        signature = content.tree_signature(repo)
        if signature is None:
            raise AssertionError(f"{repo} has no signature")
        entry = _read_json(entry_path)
        if (
            entry is not None
            and entry.get("schema") == CACHE_SCHEMA
            and entry.get("repo") == os.path.realpath(repo)
            and entry.get("signature") == signature["signature"]
            and isinstance(entry.get("checksum"), str)
        ):
            return {
                "checksum": entry["checksum"],
                "files": signature["files"],
                "bytes": signature["bytes"],
                "usage": signature["usage"],
                "cached": True,
                "path": repo,
            }
        result = content.ostree_checksum(feed_release_dir)
        after = content.tree_signature(repo)
        if after is not None and after["signature"] == signature["signature"]:
            # the feed did not change while it was read: the checksum describes it
            _write_json_quietly(
                entry_path,
                {
                    "schema": CACHE_SCHEMA,
                    "repo": os.path.realpath(repo),
                    "signature": signature["signature"],
                    "checksum": result["checksum"],
                },
            )
        return {**result, "cached": False, "path": repo}


# --------------------------------------------------------------------------- the release info


def release_info(
    raw_settings: Any,
    release: str,
    for_sw_deploy: bool,
    cache_dir: str | None = None,
) -> dict[str, Any]:
    """What the system controller serves for release (PrestageError when it cannot serve it)."""
    if not is_major_release(release):
        raise PrestageError(
            "Specified release format is not supported. Version format must be MM.mm."
        )
    settings = settings_of(raw_settings)
    config = PrestageConfig(SETTINGS_SOURCE, "", settings)
    check_release_on_system_controller(config, release, for_sw_deploy)
    info: dict[str, Any] = {
        "release": release,
        "for_sw_deploy": for_sw_deploy,
        "ostree": None,
        "patch_metadata": None,
        "software": None,
        "image_list": image_list(settings, release),
        "min_supported_release": min_supported_release(settings),
    }
    software_dir = config.software_release_dir(release)
    if for_sw_deploy:
        if not os.path.isdir(software_dir):
            raise PrestageError(
                f"Directory {software_dir} does not exist on the system controller."
            )
        digest = content.tree_digest(software_dir)
        if digest is None:
            raise AssertionError(f"{software_dir} has no digest")
        level = content.highest(
            content.metadata_levels(os.path.join(software_dir, "metadata")), release
        )
        info["software"] = {**digest, "path": software_dir, "level": level}
    else:
        info["ostree"] = ostree_checksum(config.feed_release_dir(release), cache_dir)
        metadata_dir = os.path.join(software_dir, "metadata")
        digest = content.tree_digest(metadata_dir)
        if digest is not None:
            info["patch_metadata"] = {**digest, "path": metadata_dir}
    return info
