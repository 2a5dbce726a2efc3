"""StarlingX content of the lab's hosts, in StarlingX's own formats (STARLINGX.md §7).

Builders that write into a host directory (a lab host's private /var or /opt, or any directory a
test gives): release feeds with real ostree archive repos, a subcloud's feed at its own patch
level, USM release metadata (the <= 26.03 state-directory layout and the 26.10 component layout),
/opt/upgrades/metadata.xml, /opt/software/rel-<MM.mm.pp>/, software-scripts, prestage image lists,
and small OCI images pushed to the central registry under their public-registry names.

Everything is deterministic (seeded by release and level; ostree commits carry fixed timestamps and
owners, so the same inputs give the same commit checksums) and idempotent: a builder leaves what is
already right alone, so calling it again is quick.

The module-level data below (SC_RELEASE, LAB_RELEASES, SC_STATES, IMAGES, ...) is the one
description of what the lab holds (CONTRACTS.md "StarlingX content the lab holds");
build_system_controller() and build_subcloud() put it together for the lab.

Hard links: a subcloud's feed shares the ostree objects of a cached template with every other
subcloud at the same level (export_feed_at), and the template shares them with the system
controller's feed it was pulled from (`ostree pull-local` links objects on one filesystem). ostree
and rsync only ever replace files (new file + rename); tests and faults must do the same - replace
a file of a feed, never edit it in place (no `>>`, no open('r+'), no truncate), or every feed
sharing it changes too.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
import uuid
import xml.dom.minidom
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from labctl.util import LabError, atomic_write, locked, log, run

# ------------------------------------------------------------------------- versions


def version_key(version: str) -> tuple[int, ...]:
    """'25.09.1' -> (25, 9, 1): releases compare as numbers, not strings."""
    return tuple(int(part) for part in version.split("."))


def _major(level: str) -> str:
    return ".".join(level.split(".")[:2])


# ------------------------------------------------------------------ what the lab holds

FEED_FORMAT = 1  # bump when the feed layout changes: every feed is rebuilt
IMAGE_FORMAT = 1

SC_RELEASE = "25.09"  # the default; lab/lab up --sc-release sets the lab's
# The release from which USM keeps release metadata in the component layout
# (/opt/software/releases/metadata) instead of /opt/software/metadata/<state>/
# (PR:prepare-env/tasks/main.yml:48-55; UP:software/constants.py:57-69).
COMPONENT_LAYOUT_FROM = "26.10"
# The metapackages of a 26.10 product release (UP:software/software_functions.py:452-461).
METAPACKAGES = ("base", "infra", "k8s", "distcloud")
# The name dcmanager gives an image list uploaded as images.lst
# (DC:dcmanager/api/controllers/v1/subcloud_deploy.py:52-72; consts.py:300).
IMAGE_LIST_NAME = "prestage_images_images.lst"
# The scripts an ISO's upgrades/software-deploy/ holds (UP:software/scripts/), copied to the feed's
# upgrades/ and to /opt/software/rel-<v>.<p>/bin (MT:kickstart/files/miniboot.cfg:3123-3140).
SOFTWARE_DEPLOY_SCRIPTS = (
    "controllers-software-sync",
    "create-postgres-database",
    "deploy-precheck",
    "deploy-start",
    "major-release-upload",
    "prepare-chroot-mounts",
    "prepare-data-migration",
    "remove-temporary-data",
    "sync-controllers-feed",
    "upgrade_utils.py",
)
# USM's release state directories (UP:software/states.py:53-70).
LEGACY_STATES = ("available", "unavailable", "deploying", "deployed", "removing", "committed")
COMPONENT_STATES = (*LEGACY_STATES, "deploy-selected", "remove-selected")
Layout = Literal["legacy", "component"]


@dataclass(frozen=True)
class LabRelease:
    """One StarlingX major release as the lab builds it."""

    version: str  # MM.mm
    levels: tuple[str, ...]  # MM.mm.pp, in order; levels[0] is the GA release MM.mm.0
    supported_upgrades: tuple[str, ...]  # MM.mm releases this one upgrades from
    kubernetes: tuple[str, ...]  # versions under usr/local/kubernetes/ of the ostree tree

    def __post_init__(self) -> None:
        if not self.levels or self.levels[0] != f"{self.version}.0":
            raise ValueError(f"{self.version}: levels must start with {self.version}.0")


# supported_upgrades as MT:bsp-files/upgrades/metadata.xml has it on each branch (STARLINGX.md §1).
LAB_RELEASES: dict[str, LabRelease] = {
    "24.09": LabRelease("24.09", ("24.09.0", "24.09.1"), ("22.12", "24.03"),
                        ("1.28.4", "1.29.2")),
    "25.09": LabRelease("25.09", ("25.09.0", "25.09.1"), ("24.09",),
                        ("1.29.2", "1.30.6", "1.31.5", "1.32.2")),
    "26.10": LabRelease("26.10", ("26.10.0", "26.10.1"), ("25.09", "26.03"),
                        ("1.31.5", "1.32.2", "1.33.0")),
}  # fmt: skip

# The USM state of every release level the system controller lists, per SC release: its own
# release deployed, the older release whose feed it offers unavailable (USM moves a release to
# unavailable once the next major is deployed, UP:software/states.py:15-23).
SC_STATES: dict[str, dict[str, str]] = {
    "25.09": {"24.09.0": "unavailable", "24.09.1": "unavailable",
              "25.09.0": "deployed", "25.09.1": "deployed"},
    "26.10": {"25.09.0": "unavailable", "25.09.1": "unavailable",
              "26.10.0": "deployed", "26.10.1": "deployed"},
}  # fmt: skip


# The releases a lab system controller may run (lab/lab up --sc-release).
SC_RELEASES = tuple(sorted(SC_STATES, key=version_key))


def check_sc_release(sc_release: str) -> str:
    if sc_release not in SC_STATES:
        raise LabError(f"a lab system controller runs one of {', '.join(SC_RELEASES)}, "
                       f"not {sc_release!r}")  # fmt: skip
    return sc_release


def sc_feeds(sc_release: str = SC_RELEASE) -> tuple[str, ...]:
    """The MM.mm releases whose feed the system controller holds (oldest first)."""
    check_sc_release(sc_release)
    return tuple(sorted({_major(level) for level in SC_STATES[sc_release]}, key=version_key))


def previous_release(sc_release: str) -> str:
    """The release below the system controller's whose feed it offers, the one it upgrades
    subclouds from (25.09 -> 24.09, 26.10 -> 25.09)."""
    older = [release for release in sc_feeds(sc_release) if release != sc_release]
    if not older:
        raise LabError(f"a {sc_release} system controller offers no older release")
    return older[-1]


def subcloud_releases(sc_release: str = SC_RELEASE) -> tuple[str, str]:
    """The releases the lab's subclouds run under a sc_release system controller: the previous
    release and its own."""
    return previous_release(sc_release), sc_release


SC_FEEDS = sc_feeds()
SUBCLOUD_RELEASES = subcloud_releases()

# Images per release, by their public names (STARLINGX.md §4). They span docker.io, quay.io,
# registry.k8s.io and ghcr.io so every mapping rule of download_images.py is exercised: docker.io
# and quay.io have service-parameter sections of their own, registry.k8s.io and ghcr.io are cloned
# from docker.io's when the subcloud has none (PR:prestage-images/tasks/get_docker_registries.yml:
# 22-68).
IMAGES: dict[str, tuple[str, ...]] = {
    "24.09": (
        "docker.io/starlingx/stx-pause:24.09",
        "docker.io/starlingx/stx-platformclients:stx.10.0-v1.5.13",
        "quay.io/jetstack/cert-manager-controller:v1.12.5",
        "registry.k8s.io/pause:3.9",
        "ghcr.io/fluxcd/helm-controller:v0.37.4",
    ),
    "25.09": (
        "docker.io/starlingx/stx-pause:25.09",
        "docker.io/starlingx/stx-platformclients:stx.11.0-v1.5.13",
        "quay.io/jetstack/cert-manager-controller:v1.15.3",
        "registry.k8s.io/pause:3.10",
        "ghcr.io/fluxcd/helm-controller:v1.0.1",
    ),
    "26.10": (
        "docker.io/starlingx/stx-pause:26.10",
        "docker.io/starlingx/stx-platformclients:stx.13.0-v1.5.13",
        "quay.io/jetstack/cert-manager-controller:v1.17.2",
        "registry.k8s.io/pause:3.10.1",
        "ghcr.io/fluxcd/helm-controller:v1.3.0",
    ),
}


def uses_component_layout(version: str) -> bool:
    return version_key(_major(version)) >= version_key(COMPONENT_LAYOUT_FROM)


def _write_if_changed(path: Path, data: str | bytes, mode: int = 0o644) -> None:
    """Replace path (never in place) unless it already holds data with mode."""
    payload = data.encode() if isinstance(data, str) else data
    try:
        same = path.read_bytes() == payload and (path.stat().st_mode & 0o7777) == mode
    except OSError:
        same = False
    if not same:
        atomic_write(path, payload, mode)


# --------------------------------------------------------------------------- ostree

_TREE_DIRS = (
    "usr/bin",
    "usr/sbin",
    "usr/lib/x86_64-linux-gnu",
    "usr/lib/python3/dist-packages/sysinv",
    "usr/lib/python3/dist-packages/cgtsclient",
    "usr/lib/python3/dist-packages/software",
    "usr/lib/modules/6.6.0-1-amd64/kernel/drivers/net",
    "usr/share/doc/starlingx",
    "usr/share/puppet/modules/platform/manifests",
    "usr/etc/platform",
    "boot",
)


def _ostree(repo: Path, *args: str) -> str:
    return str(run(["ostree", f"--repo={repo}", *args]).stdout).strip()


def _init_repo(repo: Path) -> None:
    """An archive-mode repo as StarlingX's feeds are, min-free-space-percent=0 as
    major-release-upload sets it (UP:scripts/major-release-upload:130-136)."""
    repo.mkdir(parents=True)
    _ostree(repo, "init", "--mode=archive")
    _ostree(repo, "config", "set", "core.min-free-space-percent", "0")


def _add_feed_remote(repo: Path, release: str) -> None:
    """The remote `starlingx` a feed repo has after install: the active controller's feed
    (MT:kickstart/files/miniboot.cfg:3068-3076). Nothing in the lab pulls from it."""
    _ostree(repo, "remote", "add", "--force", "--no-gpg-verify", "starlingx",
            f"http://controller:8080/feed/rel-{release}/ostree_repo/", "starlingx")  # fmt: skip


def _fill(path: Path, rng: random.Random, length: int, mode: int) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(rng.randbytes(length))
    path.chmod(mode)
    return length


def _generate_tree(root: Path, lab: LabRelease, size: int) -> None:
    """A file tree shaped like a StarlingX ostree deployment, ~size bytes of seeded random data,
    with usr/local/kubernetes/<ver>/ as deploy-precheck lists it
    (UP:scripts/deploy-precheck:292-304)."""
    rng = random.Random(f"dcprestage-lab-feed-{lab.version}")
    for directory in _TREE_DIRS:
        (root / directory).mkdir(parents=True, exist_ok=True)
    build_info = root / "usr/etc/build.info"
    build_info.write_text(f'SW_VERSION="{lab.version}"\nBUILD_ID="lab-{lab.version}-001"\n')
    build_info.chmod(0o644)
    for name in ("bin", "sbin", "lib"):
        (root / name).symlink_to(f"usr/{name}")
    total = 0
    for kube in lab.kubernetes:
        base = root / "usr/local/kubernetes" / kube
        total += _fill(base / "stage1/usr/local/bin/kubeadm", rng, rng.randint(2048, 8192), 0o755)
        total += _fill(base / "stage2/usr/bin/kubelet", rng, rng.randint(2048, 8192), 0o755)
        total += _fill(base / "stage2/usr/bin/kubectl", rng, rng.randint(2048, 8192), 0o755)
    count = 0
    while total < size or count < 12:
        draw = rng.random()
        if draw < 0.70:
            length = rng.randint(512, 16 << 10)
        elif draw < 0.95:
            length = rng.randint(16 << 10, 256 << 10)
        else:
            length = rng.randint(256 << 10, 4 << 20)
        length = max(1, min(length, size - total)) if total < size else 256
        directory = rng.choice(_TREE_DIRS)
        name = f"{directory.rsplit('/', 1)[-1]}-{count:05d}.bin"
        total += _fill(root / directory / name, rng, length, 0o755 if "bin" in directory else 0o644)
        count += 1
    _normalize_dirs(root)


def _normalize_dirs(root: Path) -> None:
    """0755 directories whatever the umask: directory modes are part of ostree's checksums."""
    root.chmod(0o755)
    for dirpath, dirnames, _ in os.walk(root):
        for name in dirnames:
            path = Path(dirpath, name)
            if not path.is_symlink():
                path.chmod(0o755)


def _apply_patch(root: Path, level: str) -> None:
    """A patch level: a few files of the tree changed, one added."""
    rng = random.Random(f"dcprestage-lab-patch-{level}")
    candidates = sorted(
        path
        for directory in ("usr/bin", "usr/sbin", "usr/lib", "usr/share")
        for path in (root / directory).rglob("*")
        if path.is_file() and not path.is_symlink()
    )
    for path in rng.sample(candidates, min(3, len(candidates))):
        mode = path.stat().st_mode & 0o777
        _fill(path, rng, rng.randint(1024, 32 << 10), mode)
    note = root / "usr/share/doc/starlingx/patches" / f"starlingx-{level}"
    note.parent.mkdir(parents=True, exist_ok=True)
    note.write_text(f"StarlingX {level} (dcprestage lab patch)\n")
    note.chmod(0o644)
    _normalize_dirs(root)


def _commit(repo: Path, tree: Path, level: str, index: int) -> str:
    """One commit on ref starlingx; owner, xattrs and timestamp fixed so it is reproducible."""
    major = _major(level)
    day = min(index, 27) + 1
    return _ostree(
        repo, "commit", "--branch=starlingx", f"--tree=dir={tree}",
        "--owner-uid=0", "--owner-gid=0", "--no-xattrs",
        f"--timestamp=20{major[:2]}-{major[3:5]}-{day:02d} 00:00:00 UTC",
        f"--subject={level}", f"--body=StarlingX {level} (dcprestage lab)",
    )  # fmt: skip


def _stamp_path(dest: Path) -> Path:
    """Build stamps live beside a feed, not in it: rsync copies a feed whole to subclouds
    (PR:sync-software-metadata/tasks/perform_full_ostree_dir_sync.yml:40-55)."""
    return dest.parent / f".{dest.name}.lab-build.json"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def ref_commit(repo: Path, ref: str = "starlingx") -> str | None:
    """The commit ref points at in repo (refs/heads/<ref>), None when there is none."""
    try:
        return (repo / "refs/heads" / ref).read_text().strip() or None
    except OSError:
        return None


# ------------------------------------------------------------------------------ feeds


def build_feed(
    dest: Path,
    release: str,
    levels: list[str],
    size: int,
    *,
    supported_upgrades: Sequence[str] | None = None,
    kubernetes: Sequence[str] | None = None,
    install_uuid: str | None = None,
) -> dict[str, str]:
    """The release feed dest (/var/www/pages/feed/rel-<release>), as major-release-upload lays
    one out (UP:scripts/major-release-upload:108-128): ostree_repo/ (archive mode, one commit per
    level on ref starlingx, oldest first, levels[0] the ~size byte base tree), upgrades/
    (metadata.xml + software-deploy/), install_uuid, kickstart/, pxeboot/, efi.img.

    Returns {level: commit}. Rebuilt only when the inputs changed or the repo's ref moved (a
    stamp beside dest records them). supported_upgrades and kubernetes default to LAB_RELEASES;
    install_uuid defaults to a uuid derived from the release (the system controller's own feed
    must carry its platform.conf INSTALL_UUID: pass it)."""
    lab = LAB_RELEASES.get(release)
    supported = list(supported_upgrades if supported_upgrades is not None else
                     (lab.supported_upgrades if lab else ()))  # fmt: skip
    kube = tuple(kubernetes if kubernetes is not None else (lab.kubernetes if lab else ("1.29.2",)))
    if not levels or levels[0] != f"{release}.0":
        raise LabError(f"feed {release}: levels must start with {release}.0, got {levels}")
    inputs = {"format": FEED_FORMAT, "release": release, "levels": list(levels), "size": size,
              "supported_upgrades": supported, "kubernetes": list(kube)}  # fmt: skip
    stamp = _stamp_path(dest)
    built = _read_json(stamp)
    commits: dict[str, str] = built.get("commits") or {}
    repo = dest / "ostree_repo"
    if built.get("inputs") != inputs or ref_commit(repo) != commits.get(levels[-1]):
        commits = _build_feed(dest, release, levels, size, supported=supported, kubernetes=kube)
        atomic_write(stamp, json.dumps({"inputs": inputs, "commits": commits}, indent=2) + "\n")
    _write_if_changed(dest / "install_uuid", (install_uuid or _default_uuid(release)) + "\n")
    return dict(commits)


def _default_uuid(release: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"dcprestage-lab/feed/rel-{release}"))


def _build_feed(
    dest: Path,
    release: str,
    levels: Sequence[str],
    size: int,
    *,
    supported: Sequence[str],
    kubernetes: Sequence[str],
) -> dict[str, str]:
    log(f"building the rel-{release} feed ({size / (1 << 20):.1f} MiB, levels {', '.join(levels)})")
    work = dest.parent / f".{dest.name}.lab-build"
    shutil.rmtree(work, ignore_errors=True)
    tree, feed = work / "tree", work / "feed"
    tree.mkdir(parents=True)
    lab = LabRelease(release, tuple(levels), tuple(supported), tuple(kubernetes))
    _generate_tree(tree, lab, size)
    repo = feed / "ostree_repo"
    _init_repo(repo)
    commits: dict[str, str] = {}
    for index, level in enumerate(levels):
        if index:
            _apply_patch(tree, level)
        commits[level] = _commit(repo, tree, level, index)
    _add_feed_remote(repo, release)
    _ostree(repo, "summary", "-u")
    _write_feed_files(feed, release, supported)
    old = dest.parent / f".{dest.name}.lab-old"
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    feed.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    return commits


def _script(name: str, release: str) -> str:
    if name.endswith(".py"):
        return f'"""dcprestage lab stand-in for StarlingX {release} {name}."""\n'
    return f"#!/bin/sh\n# dcprestage lab stand-in for StarlingX {release} {name}\nexit 0\n"


def _write_upgrades_dir(upgrades: Path, release: str, supported: Sequence[str]) -> None:
    """upgrades/: metadata.xml and software-deploy/ (MT:kickstart/files/miniboot.cfg:3133-3140)."""
    write_upgrades_metadata(upgrades / "metadata.xml", release, list(supported))
    for name in SOFTWARE_DEPLOY_SCRIPTS:
        mode = 0o644 if name.endswith(".py") else 0o755
        _write_if_changed(upgrades / "software-deploy" / name, _script(name, release), mode)


def _write_feed_files(feed: Path, release: str, supported: Sequence[str]) -> None:
    """The feed's non-ostree parts, small placeholders in the place and shape a real ISO has."""
    _write_upgrades_dir(feed / "upgrades", release, supported)
    kickstart = feed / "kickstart"
    for name in ("kickstart.cfg", "miniboot.cfg"):
        _write_if_changed(kickstart / name, f"# dcprestage lab stand-in: StarlingX {release} "
                          f"{name}\n")  # fmt: skip
    pxe = feed / "pxeboot"
    rng = random.Random(f"dcprestage-lab-pxeboot-{release}")
    for name in ("bzImage", "bzImage-rt", "initrd"):
        _write_if_changed(pxe / name, rng.randbytes(4096))
    for name in ("grub.cfg.stx", "pxeboot.cfg.debian"):  # MT:miniboot.cfg:2755
        _write_if_changed(pxe / "pxelinux.cfg.files" / name,
                          f"# dcprestage lab stand-in: StarlingX {release} {name}\n")  # fmt: skip
    # efi.img is a FAT image on a real ISO; the lab's is a placeholder of the same name.
    placeholder = b"dcprestage lab efi.img placeholder\n".ljust(64 << 10, b"\0")
    _write_if_changed(feed / "efi.img", placeholder)


def export_feed_at(
    source_repo: Path,
    dest_feed: Path,
    commit: str,
    *,
    cache_dir: Path | None = None,
    install_uuid: str | None = None,
) -> None:
    """dest_feed (a subcloud's /var/www/pages/feed/rel-<v>) at its own patch level: an archive
    repo holding exactly the history up to commit on ref starlingx (what miniboot's
    `pull --mirror` of the prestaged repo leaves, MT:kickstart/files/miniboot.cfg:2132-2315), the
    source feed's upgrades/ and install_uuid (miniboot.cfg:2993-3008, 3133-3140).

    With cache_dir, each distinct (feed, commit) is built once there as a template; every subcloud
    then gets the template's ostree objects hard-linked (its small mutable files - config, refs,
    summary, upgrades/ - are copied). A feed that already has ref starlingx at commit is left as it
    is. Tests must replace, never edit in place, files of a subcloud's feed."""
    name = dest_feed.name
    if cache_dir is None:
        template = dest_feed.parent / f".{name}.lab-template"
        shutil.rmtree(template, ignore_errors=True)
        _build_template(source_repo, template, commit, name)
    else:
        template = cache_dir / "feed-templates" / f"{name}-{commit[:16]}"
        with locked(cache_dir / "feed-templates" / f".{name}-{commit[:16]}.lock"):
            if _read_json(template / ".lab-template.json").get("commit") != commit:
                shutil.rmtree(template, ignore_errors=True)
                _build_template(source_repo, template, commit, name)
    repo = dest_feed / "ostree_repo"
    if ref_commit(repo) != commit or not (repo / "objects").is_dir():
        _link_feed(template, dest_feed)
    if cache_dir is None:
        shutil.rmtree(template, ignore_errors=True)
    uuid_text = install_uuid or _read_text(source_repo.parent / "install_uuid").strip()
    if uuid_text:
        _write_if_changed(dest_feed / "install_uuid", uuid_text + "\n")


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _build_template(source_repo: Path, template: Path, commit: str, name: str) -> None:
    work = template.with_name(template.name + ".building")
    shutil.rmtree(work, ignore_errors=True)
    repo = work / "ostree_repo"
    _init_repo(repo)
    _ostree(repo, "pull-local", "--depth=-1", str(source_repo), commit)
    _ostree(repo, "refs", "--create=starlingx", commit)
    _add_feed_remote(repo, name.removeprefix("rel-"))
    _ostree(repo, "summary", "-u")
    upgrades = source_repo.parent / "upgrades"
    if upgrades.is_dir():
        shutil.copytree(upgrades, work / "upgrades", symlinks=True)
    atomic_write(work / ".lab-template.json", json.dumps({"commit": commit}) + "\n")
    work.rename(template)


def _link_feed(template: Path, dest: Path) -> None:
    """dest = template: ostree objects hard-linked (copied across filesystems), the rest copied."""
    work = dest.parent / f".{dest.name}.lab-new"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for entry in sorted(template.iterdir()):
        if entry.name == ".lab-template.json":
            continue
        if entry.name == "ostree_repo":
            _copy_repo(entry, work / "ostree_repo")
        elif entry.is_dir():
            shutil.copytree(entry, work / entry.name, symlinks=True)
        else:
            shutil.copy2(entry, work / entry.name)
    old = dest.parent / f".{dest.name}.lab-old"
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    work.rename(dest)
    shutil.rmtree(old, ignore_errors=True)


def _copy_repo(source: Path, dest: Path) -> None:
    dest.mkdir()
    for entry in sorted(source.iterdir()):
        if entry.name == "objects":
            linked = subprocess.run(["cp", "-al", str(entry), str(dest / "objects")],
                                    capture_output=True, text=True, check=False)  # fmt: skip
            if linked.returncode != 0:  # another filesystem: copy
                shutil.rmtree(dest / "objects", ignore_errors=True)
                shutil.copytree(entry, dest / "objects", symlinks=True)
        elif entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, dest / entry.name, symlinks=True)
        else:
            shutil.copy2(entry, dest / entry.name, follow_symlinks=False)


# --------------------------------------------------------------------- USM metadata


@dataclass(frozen=True)
class ReleaseMeta:
    """One USM release (a GA release MM.mm.0 or a patch MM.mm.pp) as its metadata file says."""

    id: str  # starlingx-MM.mm.pp
    sw_version: str  # MM.mm.pp
    state: str  # available, deployed, unavailable, deploying, removing, committed, ...
    commit: str = ""  # contents/ostree/commit1/commit: the level's commit in the feed
    base_commit: str = ""  # contents/ostree/base/commit: the previous level's ("" for GA)
    reboot_required: bool = False
    prepatched_iso: bool = False
    requires: tuple[str, ...] = field(default=())  # release ids

    @property
    def is_ga(self) -> bool:
        return self.sw_version.endswith(".0")


def release_metas(
    states: Mapping[str, str], commits: Mapping[str, str] | None = None
) -> list[ReleaseMeta]:
    """ReleaseMeta for each level -> state: GA levels reboot-required, each patch requiring the
    level before it, commits from the feeds (a level without one gets none)."""
    commits = commits or {}
    metas = []
    for level in sorted(states, key=version_key):
        major, patch = _major(level), int(level.rsplit(".", 1)[1])
        previous = f"{major}.{patch - 1}" if patch else ""
        metas.append(ReleaseMeta(
            id=f"starlingx-{level}", sw_version=level, state=states[level],
            commit=commits.get(level, ""), base_commit=commits.get(previous, ""),
            reboot_required=patch == 0, requires=(f"starlingx-{previous}",) if previous else (),
        ))  # fmt: skip
    return metas


def _element(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    child = ET.SubElement(parent, tag)
    if text is not None:
        child.text = text
    return child


def _yn(flag: bool) -> str:
    return "Y" if flag else "N"


def _ostree_contents(parent: ET.Element, meta: ReleaseMeta) -> None:
    """contents/ostree as USM parses it (UP:software/software_functions.py:406-423)."""
    ostree = _element(_element(parent, "contents"), "ostree")
    _element(ostree, "number_of_commits", "1")
    base = _element(ostree, "base")
    _element(base, "commit", meta.base_commit)
    _element(base, "checksum", "")
    commit1 = _element(ostree, "commit1")
    _element(commit1, "commit", meta.commit)
    _element(commit1, "checksum", "")


def _legacy_fields(root: ET.Element, meta: ReleaseMeta) -> None:
    """The fields of a <= 26.03 release (UP:software/software_functions.py:600-654; the GA shape
    of UP:software/templates/starlingx-GA-metadata.xml)."""
    major = _major(meta.sw_version)
    _element(root, "id", meta.id)
    _element(root, "sw_version", meta.sw_version)
    _element(root, "component", "starlingx")
    if meta.is_ga:
        _element(root, "summary", f"STX {major} GA release")
        _element(root, "description", f"STX {major} major GA release")
    else:
        _element(root, "summary", f"StarlingX {meta.sw_version} patch (dcprestage lab)")
        _element(root, "description", f"Lab stand-in for the StarlingX {meta.sw_version} patch.")
    _element(root, "install_instructions")
    _element(root, "warnings")
    _element(root, "status", "REL")
    _element(root, "unremovable", _yn(meta.is_ga))
    _element(root, "reboot_required", _yn(meta.reboot_required))
    _element(root, "prepatched_iso", _yn(meta.prepatched_iso))
    _element(root, "apply_active_release_only")
    _ostree_contents(root, meta)
    requires = _element(root, "requires")
    for required in meta.requires:
        _element(requires, "req_patch_id", required)
    _element(root, "semantics")
    if not meta.is_ga:
        # <patch_id>_<script> in /opt/software/software-scripts (UP:software_functions.py:1169-1177)
        _element(root, "pre_install", "pre-install.sh")
        _element(root, "post_install", "post-install.sh")
        packages = _element(root, "packages")
        _element(packages, "deb", f"software_{meta.sw_version}-1_amd64.deb")


def _xml_text(root: ET.Element) -> str:
    """Indented XML as USM writes metadata (UP:software/software_functions.py:348-352)."""
    return xml.dom.minidom.parseString(ET.tostring(root)).toprettyxml(indent="  ")


def legacy_metadata_xml(meta: ReleaseMeta) -> str:
    """A <= 26.03 release's metadata file: root <patch> (STARLINGX.md §7 "Release metadata")."""
    root = ET.Element("patch")
    _legacy_fields(root, meta)
    return _xml_text(root)


def product_metadata_xml(meta: ReleaseMeta) -> str:
    """A 26.10 product release: root <product> with <metapackages>, kept at the metadata root
    (UP:software/templates/starlingx-GA-metadata.xml; software_functions.py:516-546)."""
    root = ET.Element("product")
    _legacy_fields(root, meta)
    for tag in ("pre_install", "post_install", "packages"):
        for child in root.findall(tag):
            root.remove(child)
    metapackages = _element(root, "metapackages")
    for name in METAPACKAGES:
        _element(metapackages, "pkg", name)
    _element(root, "packages")
    return _xml_text(root)


def metapackage_metadata_xml(meta: ReleaseMeta, name: str) -> str:
    """A 26.10 metapackage of meta (root <metapackage>, id <name>_<sw_version>) in the state
    directory of its state (UP:software/software_functions.py:562-599; release_data.py:237-250:
    every metapackage deployable and not reboot-required makes the product not reboot-required)."""
    root = ET.Element("metapackage")
    _element(root, "id", f"{name}_{meta.sw_version}")
    _element(root, "sw_version", meta.sw_version)
    _element(root, "summary", f"StarlingX {meta.sw_version} {name} metapackage")
    _element(root, "description", f"Lab stand-in for the {name} metapackage.")
    _element(root, "reboot_required", _yn(meta.reboot_required))
    _element(root, "deployable", _yn(not meta.reboot_required))
    _element(root, "data_migration", "N")
    _element(root, "pre_upgrade_deploy", "N")
    _element(_element(root, "packages"), "deb", f"{name}-{meta.sw_version}_amd64.deb")
    return _xml_text(root)


def write_metadata(
    metadata_dir: Path,
    releases: Iterable[ReleaseMeta],
    layout: Layout,
) -> list[Path]:
    """USM's release metadata for releases; returns the files written.

    legacy (<= 26.03, metadata_dir=/opt/software/metadata): <state>/<id>-metadata.xml, root
    <patch> (UP:software/states.py:53-70). component (26.10, metadata_dir=
    /opt/software/releases/metadata): the product file <id>-metadata.xml at the root and one file
    per metapackage in <state>/ (UP:software/states.py:113-137; STARLINGX.md §3 step 6).
    A release's file in another state directory is removed (USM moves files between them); files
    of releases not named are left alone. Every state directory exists afterwards, as USM makes
    them."""
    states = LEGACY_STATES if layout == "legacy" else COMPONENT_STATES
    for state in states:
        (metadata_dir / state).mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for meta in releases:
        if layout == "legacy":
            files = {Path(meta.state) / f"{meta.id}-metadata.xml": legacy_metadata_xml(meta)}
        else:
            files = {Path(f"{meta.id}-metadata.xml"): product_metadata_xml(meta)}
            for name in METAPACKAGES:
                files[Path(meta.state) / f"{name}_{meta.sw_version}-metadata.xml"] = (
                    metapackage_metadata_xml(meta, name)
                )
        for relative, text in files.items():
            for state in states:
                stale = metadata_dir / state / relative.name
                if state != meta.state and stale.exists():
                    stale.unlink()
            _write_if_changed(metadata_dir / relative, text)
            written.append(metadata_dir / relative)
    return written


def metadata_dir_for(software_dir: Path, version: str) -> tuple[Path, Layout]:
    """Where a host of release version keeps USM metadata, and in which layout."""
    if uses_component_layout(version):
        return software_dir / "releases" / "metadata", "component"
    return software_dir / "metadata", "legacy"


# ----------------------------------------------------------- other files StarlingX has


def write_upgrades_metadata(path: Path, version: str, supported: list[str]) -> None:
    """/opt/upgrades/metadata.xml (and a feed's upgrades/metadata.xml) in the shape of
    MT:bsp-files/upgrades/metadata.xml. An empty supported list is refused: dcmanager raises on it
    (DC:dcmanager/common/utils.py:2301-2305)."""
    if not supported:
        raise LabError(f"upgrades metadata of {version}: supported_upgrades must not be empty")
    upgrades = "".join(
        f"        <upgrade>\n            <version>{old}</version>\n        </upgrade>\n"
        for old in supported
    )
    text = (
        '<?xml version="1.0" encoding="UTF-8" ?>\n<build>\n'
        f"    <version>{version}</version>\n"
        f"    <supported_upgrades>\n{upgrades}    </supported_upgrades>\n</build>\n"
    )
    _write_if_changed(path, text)


def write_release_dirs(
    software_dir: Path,
    levels: Iterable[str],
    supported: Mapping[str, Sequence[str]] | None = None,
) -> list[Path]:
    """/opt/software/rel-<MM.mm.pp>/ for each level: a GA release's holds bin/ (the ISO's
    software-deploy scripts) and metadata.xml (the ISO's upgrades/metadata.xml)
    (UP:software/software_controller.py:1578-1612; MT:kickstart/files/miniboot.cfg:3123-3138);
    a patch's holds bin/deploy-precheck and bin/upgrade_utils.py
    (UP:software/software_functions.py:1333-1381). supported: MM.mm -> supported_upgrades
    (default LAB_RELEASES)."""
    made = []
    for level in levels:
        major = _major(level)
        rel = software_dir / f"rel-{level}"
        if level.endswith(".0"):
            for name in SOFTWARE_DEPLOY_SCRIPTS:
                mode = 0o644 if name.endswith(".py") else 0o755
                _write_if_changed(rel / "bin" / name, _script(name, level), mode)
            if supported is not None and major in supported:
                old = list(supported[major])
            else:
                lab = LAB_RELEASES.get(major)
                old = list(lab.supported_upgrades) if lab else []
            if old:
                write_upgrades_metadata(rel / "metadata.xml", major, old)
        else:
            _write_if_changed(rel / "bin" / "deploy-precheck", _script("deploy-precheck", level),
                              0o755)  # fmt: skip
            _write_if_changed(rel / "bin" / "upgrade_utils.py", _script("upgrade_utils.py", level))
        made.append(rel)
    return made


def write_software_scripts(software_dir: Path, release_ids: Iterable[str] | None = None) -> Path:
    """/opt/software/software-scripts/<release_id>_<script> for each patch's pre/post install
    scripts (UP:software/software_functions.py:67,1169-1177). release_ids defaults to every
    patch level of LAB_RELEASES; GA releases have no scripts."""
    if release_ids is None:
        release_ids = [f"starlingx-{level}" for lab in LAB_RELEASES.values()
                       for level in lab.levels[1:]]  # fmt: skip
    scripts = software_dir / "software-scripts"
    scripts.mkdir(parents=True, exist_ok=True)
    for release_id in release_ids:
        if release_id.endswith(".0"):
            continue
        for script in ("pre-install.sh", "post-install.sh"):
            _write_if_changed(scripts / f"{release_id}_{script}",
                              f"#!/bin/sh\n# {script} of {release_id} (dcprestage lab)\nexit 0\n",
                              0o755)  # fmt: skip
    return scripts


def write_image_list(path: Path, refs: Sequence[str], comment: str) -> None:
    """A prestage image list as dcmanager stores it: a comment line, a blank line, one reference a
    line, the last one with a `,<text>` tail - the parsing rules drop comments and blank lines and
    cut everything from the first comma
    (PR:prepare-env/tasks/prepare-images-prestage-env.yml:52-75)."""
    if not refs:
        raise LabError(f"image list {path}: no image references")
    lines = [f"# {comment}", "", *refs[:-1], f"{refs[-1]},ignored-after-comma"]
    _write_if_changed(path, "\n".join(lines) + "\n")


# ------------------------------------------------------------------------------ images


def oci_tag(ref: str) -> str:
    """The tag of ref in the lab's OCI layout."""
    return ref.replace("/", "_").replace(":", "_")


_IMAGE_TIME = "2025-01-01T00:00:00Z"


def build_images(oci_dir: Path, refs: Iterable[str]) -> list[str]:
    """Each ref as a small image (two layers of seeded random data) in the OCI layout oci_dir,
    built with umoci with fixed timestamps; refs already there are kept. Returns the refs built."""
    if not (oci_dir / "index.json").exists():
        shutil.rmtree(oci_dir, ignore_errors=True)
        oci_dir.parent.mkdir(parents=True, exist_ok=True)
        run(["umoci", "init", "--layout", str(oci_dir)])
    present = set(run(["umoci", "ls", "--layout", str(oci_dir)]).stdout.split())
    built = [ref for ref in dict.fromkeys(refs) if oci_tag(ref) not in present]
    for ref in built:
        _build_image(oci_dir, ref)
    if built:
        run(["umoci", "gc", "--layout", str(oci_dir)])
    return built


def _build_image(oci_dir: Path, ref: str) -> None:
    rng = random.Random(f"dcprestage-lab-image-{IMAGE_FORMAT}-{ref}")
    name = ref.rsplit("/", 1)[-1].split(":", 1)[0]
    image = f"{oci_dir}:{oci_tag(ref)}"
    rootless = ["--rootless"] if os.geteuid() != 0 else []
    stamp = 1735689600  # _IMAGE_TIME
    work = oci_dir.parent / f".build-{oci_tag(ref)}"
    shutil.rmtree(work, ignore_errors=True)
    run(["umoci", "new", "--image", image])
    for layer in ("base", "app"):
        content = work / layer
        share = content / "usr" / "share" / name
        share.mkdir(parents=True)
        _fill(share / f"{layer}.bin", rng, rng.randint(48 << 10, 96 << 10), 0o644)
        (share / f"{layer}.txt").write_text(f"{ref} {layer} layer (dcprestage lab)\n")
        for path in [*content.rglob("*"), content]:
            os.utime(path, (stamp, stamp), follow_symlinks=False)
        run(["umoci", "insert", *rootless, "--image", image,
             "--history.created", _IMAGE_TIME, "--history.created_by", f"dcprestage lab {layer}",
             str(content / "usr"), "/usr"])  # fmt: skip
    run(["umoci", "config", "--image", image, "--created", _IMAGE_TIME,
         "--history.created", _IMAGE_TIME, "--config.cmd", f"/usr/share/{name}/app.txt",
         "--config.label", f"org.opencontainers.image.title={ref}"])  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)


def _auth_for(auth_file: Path, registry: str) -> str | None:
    """The base64 user:password of registry in a containers-auth.json."""
    auths = _read_json(auth_file).get("auths") or {}
    entry = auths.get(registry) or {}
    auth = entry.get("auth") if isinstance(entry, dict) else None
    return auth if isinstance(auth, str) else None


def registry_has(registry: str, ref: str, auth_file: Path, cert_dir: Path) -> bool:
    """<registry>/<ref> exists (HEAD of its manifest, basic auth, TLS verified with cert_dir)."""
    name, tag = ref.rsplit(":", 1)
    context = ssl.create_default_context()
    for cert in sorted(cert_dir.glob("*.crt")):
        context.load_verify_locations(cafile=str(cert))
    request = urllib.request.Request(f"https://{registry}/v2/{name}/manifests/{tag}", method="HEAD")
    request.add_header("Accept", "application/vnd.docker.distribution.manifest.v2+json, "
                       "application/vnd.oci.image.manifest.v1+json")  # fmt: skip
    auth = _auth_for(auth_file, registry)
    if auth:
        request.add_header("Authorization", f"Basic {auth}")
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def push_images(registry: str, auth_file: Path, cert_dir: Path, refs: Iterable[str],
                *, oci_dir: Path) -> list[str]:  # fmt: skip
    """Copy each ref from the OCI layout to <registry>/<ref> (skopeo, Docker v2 schema 2, as a
    StarlingX registry holds them) unless it is there already. Returns the refs pushed."""
    pushed = []
    for ref in dict.fromkeys(refs):
        if registry_has(registry, ref, auth_file, cert_dir):
            continue
        run(["skopeo", "copy", "--quiet", "--format", "v2s2", "--authfile", str(auth_file),
             "--dest-cert-dir", str(cert_dir), f"oci:{oci_dir}:{oci_tag(ref)}",
             f"docker://{registry}/{ref}"])  # fmt: skip
        pushed.append(ref)
    return pushed


def all_images() -> list[str]:
    return list(dict.fromkeys(ref for refs in IMAGES.values() for ref in refs))


def ensure_images(oci_dir: Path, registry: str, auth_file: Path, cert_dir: Path) -> list[str]:
    """Every image of IMAGES built once and present in the registry; returns the refs pushed."""
    refs = all_images()
    build_images(oci_dir, refs)
    return push_images(registry, auth_file, cert_dir, refs, oci_dir=oci_dir)


# --------------------------------------------------------------- putting it together


def build_system_controller(
    var_root: Path,
    opt_root: Path,
    cache: Path,
    size: int,
    *,
    sc_release: str = SC_RELEASE,
    install_uuid: str | None = None,
) -> dict[str, Any]:
    """The system controller's StarlingX content (CONTRACTS.md "StarlingX content the lab
    holds"), var_root being its /var and opt_root its /opt:
    - /var/www/pages/feed/rel-<v>/ for each SC feed (build_feed);
    - /opt/upgrades/metadata.xml (also wanted at /usr/rootdirs/opt/upgrades/metadata.xml: copy
      it there, DC:dcmanager/common/utils.py:2285-2313);
    - /opt/platform/iso/<v>/ostree_repo: empty mount points for the feed binds;
    - USM metadata, each release's in the layout of its own major release (a 26.10 SC keeps
      the 25.09 releases in /opt/software/metadata/<state>/), /opt/software/rel-<MM.mm.pp>/ for
      every listed release, /opt/software/software-scripts/;
    - /opt/platform/deploy/<v>/prestage_images_images.lst per feed release.
    install_uuid is the SC's platform.conf INSTALL_UUID (written to its own release's feed).
    Returns JSON-able facts (paths as the SC sees them, commits)."""
    states = SC_STATES[sc_release]
    cache.mkdir(parents=True, exist_ok=True)
    commits: dict[str, str] = {}
    feeds: dict[str, Any] = {}
    for release in sc_feeds(sc_release):
        lab = LAB_RELEASES[release]
        feed = var_root / "www/pages/feed" / f"rel-{release}"
        feed_commits = build_feed(
            feed, release, list(lab.levels), size,
            install_uuid=install_uuid if release == sc_release else None,
        )  # fmt: skip
        commits.update(feed_commits)
        (opt_root / "platform/iso" / release / "ostree_repo").mkdir(parents=True, exist_ok=True)
        feeds[release] = {"path": f"/var/www/pages/feed/rel-{release}", "commits": feed_commits}
    lab = LAB_RELEASES[sc_release]
    write_upgrades_metadata(opt_root / "upgrades/metadata.xml", sc_release,
                            list(lab.supported_upgrades))  # fmt: skip
    software = opt_root / "software"
    metas = release_metas(states, commits)
    # Each release's metadata stays in the layout of its own major release: a 26.10 system
    # controller upgraded from 25.09 moves only the 26.10 files to the component layout
    # (UP:upgrade-scripts/99-move-release-metadata-file.py:26-47), and USM reads both
    # (UP:software/software_functions.py:669-694).
    metadata_dirs: dict[str, str] = {}
    by_dir: dict[Path, tuple[Layout, list[ReleaseMeta]]] = {}
    for meta in metas:
        directory, meta_layout = metadata_dir_for(software, meta.sw_version)
        by_dir.setdefault(directory, (meta_layout, []))[1].append(meta)
        metadata_dirs[_major(meta.sw_version)] = f"/opt/{directory.relative_to(opt_root)}"
    for directory, (meta_layout, members) in by_dir.items():
        write_metadata(directory, members, meta_layout)
    metadata_dir, layout = metadata_dir_for(software, sc_release)
    write_release_dirs(software, [meta.sw_version for meta in metas])
    write_software_scripts(software, [meta.id for meta in metas])
    lists = {}
    for release in sc_feeds(sc_release):
        path = opt_root / "platform/deploy" / release / IMAGE_LIST_NAME
        comment = f"Images to prestage for StarlingX {release} (dcprestage lab)"
        write_image_list(path, IMAGES.get(release, ()) or all_images(), comment)
        lists[release] = f"/opt/platform/deploy/{release}/{IMAGE_LIST_NAME}"
    return {
        "release": sc_release,
        "feeds": feeds,
        "metadata_dir": f"/opt/{metadata_dir.relative_to(opt_root)}",
        "metadata_layout": layout,
        "metadata_dirs": metadata_dirs,
        "releases": {meta.id: meta.state for meta in metas},
        "image_lists": lists,
        "images": {release: list(IMAGES.get(release, ())) for release in sc_feeds(sc_release)},
    }


def build_subcloud(
    var_root: Path,
    opt_root: Path,
    cache: Path,
    release: str,
    *,
    install_uuid: str,
    sc_var_root: Path,
    level: str | None = None,
) -> dict[str, Any]:
    """A subcloud's StarlingX content at level (default <release>.0, as installed from the ISO),
    var_root being its /var and opt_root its /opt (STARLINGX.md §7 "Subcloud"):
    - /var/www/pages/feed/rel-<release>/ (export_feed_at from the SC's feed under sc_var_root,
      templates cached in cache): ostree_repo up to level, install_uuid, upgrades/;
    - USM metadata: every level up to level deployed;
    - /opt/software/rel-<level>/bin/ (MT:kickstart/files/miniboot.cfg:3123-3131);
    - /opt/platform-backup/ (the prestage target).
    The SC's feed of release must exist (build_system_controller first)."""
    lab = LAB_RELEASES[release]
    level = level or lab.levels[0]
    if level not in lab.levels:
        raise LabError(f"{release} has no level {level} (levels: {', '.join(lab.levels)})")
    source = sc_var_root / "www/pages/feed" / f"rel-{release}" / "ostree_repo"
    built = _read_json(_stamp_path(source.parent)).get("commits") or {}
    commit = built.get(level)
    if not commit:
        raise LabError(f"the system controller's rel-{release} feed has no {level} commit "
                       f"(is it built? {source})")  # fmt: skip
    feed = var_root / "www/pages/feed" / f"rel-{release}"
    export_feed_at(source, feed, commit, cache_dir=cache, install_uuid=install_uuid)
    levels = lab.levels[: lab.levels.index(level) + 1]
    software = opt_root / "software"
    metadata_dir, layout = metadata_dir_for(software, release)
    metas = release_metas(dict.fromkeys(levels, "deployed"), built)
    write_metadata(metadata_dir, metas, layout)
    write_release_dirs(software, [level])
    (opt_root / "platform-backup").mkdir(parents=True, exist_ok=True)
    return {"release": release, "level": level, "commit": commit,
            "feed": f"/var/www/pages/feed/rel-{release}", "metadata_layout": layout}  # fmt: skip
