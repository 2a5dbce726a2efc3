"""System-controller content: release feeds (ostree), software metadata, image lists, OCI images
and the central registry. Generated deterministically (seeded per release) and kept across
`lab down`, so `lab up` reuses it unless --size changes."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import zlib
from pathlib import Path

from labctl import pki, registries
from labctl.paths import BRIDGE_ADDRESS, REGISTRY_PORT, REGISTRY_USER, RELEASES, Paths
from labctl.util import LabError, atomic_write, log, run

FEED_FORMAT = 1
CENTRAL_REGISTRY = f"{BRIDGE_ADDRESS}:{REGISTRY_PORT}"

# Software releases per major release: the state directory each one's metadata sits in.
SOFTWARE: dict[str, dict[str, list[str]]] = {
    "22.12": {"committed": ["22.12.0"], "deployed": ["22.12.1"], "available": ["22.12.2"]},
    "24.09": {"committed": ["24.09.0"], "deployed": ["24.09.1"], "available": ["24.09.2"]},
}

# Images per release (name:tag in the central registry); each is a few small random layers.
IMAGES: dict[str, list[str]] = {
    "22.12": [
        "starlingx/stx-pause:22.12",
        "starlingx/stx-nginx:22.12",
        "starlingx/stx-tools:22.12",
    ],
    "24.09": [
        "starlingx/stx-pause:24.09",
        "starlingx/stx-coredns:24.09",
        "starlingx/stx-tools:24.09",
    ],
}

_TREE_DIRS = (
    "usr/bin",
    "usr/sbin",
    "usr/lib/x86_64-linux-gnu",
    "usr/lib/python3/dist-packages/sysinv",
    "usr/lib/python3/dist-packages/cgtsclient",
    "usr/lib/modules/6.6.0-1-amd64/kernel/drivers/net",
    "usr/share/doc/starlingx",
    "usr/share/puppet/modules/platform/manifests",
    "usr/etc/platform",
    "boot",
)


def write_if_changed(path: Path, text: str, mode: int = 0o644) -> None:
    if not path.exists() or path.read_text() != text:
        atomic_write(path, text, mode)


# ------------------------------------------------------------------------------------ feeds


def _generate_tree(root: Path, release: str, size: int) -> int:
    """A file tree shaped like a StarlingX ostree checkout, random content, total ~size bytes."""
    rng = random.Random(f"dcprestage-lab-feed-{release}")
    for directory in _TREE_DIRS:
        (root / directory).mkdir(parents=True, exist_ok=True)
    (root / "usr/etc/build.info").write_text(f'SW_VERSION="{release}"\n')
    total, count = 0, 0
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
        path = root / directory / f"{directory.rsplit('/', 1)[-1]}-{count:05d}.bin"
        path.write_bytes(rng.randbytes(length))
        path.chmod(0o755 if directory.endswith("bin") else 0o644)
        total += length
        count += 1
    return count


def _ostree_repo(tree: Path, repo: Path, release: str) -> str:
    run(["ostree", "init", "--mode=archive-z2", f"--repo={repo}"])
    commit = run(
        ["ostree", "commit", f"--repo={repo}", "--branch=starlingx", f"--tree=dir={tree}",
         "--owner-uid=0", "--owner-gid=0", "--no-xattrs",
         f"--timestamp=20{release[:2]}-{release[3:5]}-01 00:00:00 UTC",
         f"--subject=StarlingX {release} (dcprestage lab)"]
    ).stdout.strip()  # fmt: skip
    run(["ostree", "summary", "--update", f"--repo={repo}"])
    return commit


def _file_tree_repo(tree: Path, repo: Path, release: str) -> str:
    """Fallback with the same shape (config, objects/xx/…, refs/heads/starlingx)."""
    (repo / "refs/heads").mkdir(parents=True)
    (repo / "config").write_text("[core]\nrepo_version=1\nmode=archive-z2\n")
    digests = []
    for path in sorted(p for p in tree.rglob("*") if p.is_file()):
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        digests.append(digest)
        obj = repo / "objects" / digest[:2] / f"{digest[2:]}.filez"
        obj.parent.mkdir(parents=True, exist_ok=True)
        obj.write_bytes(zlib.compress(data))
    commit = hashlib.sha256(f"{release}\n{''.join(digests)}".encode()).hexdigest()
    obj = repo / "objects" / commit[:2] / f"{commit[2:]}.commit"
    obj.parent.mkdir(parents=True, exist_ok=True)
    obj.write_text(json.dumps({"subject": f"StarlingX {release}", "objects": digests}))
    (repo / "refs/heads/starlingx").write_text(commit + "\n")
    return commit


def ensure_feed(paths: Paths, release: str, size: int) -> dict[str, object]:
    """feed/rel-<release>/ostree_repo holding ~size bytes; rebuilt only when the size changes."""
    dest = paths.feed_dir / f"rel-{release}"
    repo = dest / "ostree_repo"
    stamp = dest / ".lab-feed.json"
    info: dict[str, object]
    try:
        info = json.loads(stamp.read_text())
    except (OSError, ValueError):
        info = {}
    if repo.is_dir() and info.get("format") == FEED_FORMAT and info.get("size") == size:
        return info
    log(f"building the {release} feed ({size / (1 << 20):.1f} MiB)")
    build = paths.sc / ".build" / f"tree-{release}"
    new_repo = dest / "ostree_repo.new"
    for stale in (build, new_repo):
        shutil.rmtree(stale, ignore_errors=True)
    build.mkdir(parents=True)
    dest.mkdir(parents=True, exist_ok=True)
    files = _generate_tree(build, release, size)
    kind = "ostree"
    try:
        commit = _ostree_repo(build, new_repo, release)
    except (LabError, FileNotFoundError) as exc:
        log(f"ostree failed ({exc}); writing a file tree of the same shape instead")
        shutil.rmtree(new_repo, ignore_errors=True)
        commit, kind = _file_tree_repo(build, new_repo, release), "file-tree"
    shutil.rmtree(repo, ignore_errors=True)
    new_repo.rename(repo)
    shutil.rmtree(build, ignore_errors=True)
    info = {"format": FEED_FORMAT, "release": release, "size": size, "files": files,
            "commit": commit, "kind": kind}  # fmt: skip
    atomic_write(stamp, json.dumps(info, indent=2) + "\n")
    return info


# ---------------------------------------------------------------------- software metadata


def _metadata_xml(release: str, state: str) -> str:
    major = release.rsplit(".", 1)[0]
    return f"""<?xml version="1.0" ?>
<patch>
  <id>starlingx-{release}</id>
  <sw_version>{release}</sw_version>
  <component>starlingx</component>
  <summary>StarlingX {release} (dcprestage lab)</summary>
  <description>Lab stand-in for the StarlingX {release} software release.</description>
  <install_instructions/>
  <warnings/>
  <status>REL</status>
  <unremovable>N</unremovable>
  <reboot_required>{"Y" if release.endswith(".0") else "N"}</reboot_required>
  <prepatched_iso>N</prepatched_iso>
  <apply_active_release_only/>
  <requires/>
  <semantics/>
  <activation_scripts/>
  <packages>
    <deb>sysinv_{release}-1_amd64.deb</deb>
  </packages>
  <commit>
    <number_of_commits>1</number_of_commits>
    <base><commit>{hashlib.sha256(major.encode()).hexdigest()}</commit></base>
    <commit1><commit>{hashlib.sha256(release.encode()).hexdigest()}</commit></commit1>
  </commit>
  <lab_state>{state}</lab_state>
</patch>
"""


def ensure_software(paths: Paths) -> dict[str, dict[str, list[str]]]:
    """software/<v>/metadata/<state>/starlingx-<r>-metadata.xml and software/<v>/rel-<r>/…"""
    for major, states in SOFTWARE.items():
        base = paths.software_dir / major
        for state, releases in states.items():
            (base / "metadata" / state).mkdir(parents=True, exist_ok=True)
            for release in releases:
                xml = _metadata_xml(release, state)
                name = f"starlingx-{release}-metadata.xml"
                write_if_changed(base / "metadata" / state / name, xml)
                if release.endswith(".0"):
                    continue
                rel = base / f"rel-{release}"
                write_if_changed(rel / "metadata.xml", xml)
                write_if_changed(
                    rel / "bin" / "deploy-precheck",
                    f"#!/bin/sh\n# lab stand-in: deploy precheck of {release}\necho ok\n",
                    0o755,
                )
                write_if_changed(
                    rel / "upgrade_utils.py",
                    f'"""lab stand-in for the {release} upgrade utilities."""\n'
                    f'RELEASE = "{release}"\n',
                )
    return SOFTWARE


# ------------------------------------------------------------------------- images + lists


def ensure_image_lists(paths: Paths) -> dict[str, str]:
    """deploy/<v>/prestage_images_list.txt: one image reference a line, a comment, a blank."""
    lists = {}
    for release, images in IMAGES.items():
        path = paths.image_list_dir / release / "prestage_images_list.txt"
        text = (
            f"# Images prestaged for StarlingX {release} (dcprestage lab, central registry "
            f"{CENTRAL_REGISTRY})\n\n" + "".join(f"{CENTRAL_REGISTRY}/{ref}\n" for ref in images)
        )
        write_if_changed(path, text)
        lists[release] = str(path)
    return lists


def _oci_tag(reference: str) -> str:
    return reference.replace("/", "_").replace(":", "_")


def _build_image(paths: Paths, reference: str) -> None:
    layout, tag = paths.oci_dir, _oci_tag(reference)
    rng = random.Random(f"dcprestage-lab-image-{reference}")
    name = reference.rsplit("/", maxsplit=1)[-1].split(":", maxsplit=1)[0]
    content = paths.sc / ".build" / f"image-{tag}"
    shutil.rmtree(content, ignore_errors=True)
    share = content / "usr" / "share" / name
    share.mkdir(parents=True)
    for index in range(2):
        (share / f"data-{index}.bin").write_bytes(rng.randbytes(rng.randint(150 << 10, 300 << 10)))
    (share / "release").write_text(f"{reference}\n")
    image = f"{layout}:{tag}"
    run(["umoci", "new", "--image", image])
    run(["umoci", "insert", "--image", image, content / "usr", "/usr"])
    run(["umoci", "config", "--image", image, "--config.cmd", f"/usr/share/{name}/release",
         "--config.label", f"org.opencontainers.image.title={reference}"])  # fmt: skip
    shutil.rmtree(content, ignore_errors=True)


def ensure_images(paths: Paths) -> None:
    """Build each image once into the OCI layout (umoci), then push missing ones (skopeo)."""
    if not (paths.oci_dir / "index.json").exists():
        shutil.rmtree(paths.oci_dir, ignore_errors=True)
        paths.oci_dir.parent.mkdir(parents=True, exist_ok=True)
        run(["umoci", "init", "--layout", paths.oci_dir])
    present = set(run(["umoci", "ls", "--layout", paths.oci_dir]).stdout.split())
    built = False
    for images in IMAGES.values():
        for reference in images:
            if _oci_tag(reference) not in present:
                _build_image(paths, reference)
                built = True
    if built:
        run(["umoci", "gc", "--layout", paths.oci_dir])
    password = paths.registry_password.read_text().strip()
    for images in IMAGES.values():
        for reference in images:
            if registries.has_image(
                CENTRAL_REGISTRY, reference, paths.ca_cert, REGISTRY_USER, password
            ):
                continue
            run(["skopeo", "copy", "--quiet", "--format", "v2s2",
                 "--authfile", paths.registry_auth, "--dest-cert-dir", paths.ca_dir,
                 f"oci:{paths.oci_dir}:{_oci_tag(reference)}",
                 f"docker://{CENTRAL_REGISTRY}/{reference}"])  # fmt: skip


# ----------------------------------------------------------------------- central registry


def ensure_central_registry(paths: Paths) -> int:
    """The central registry on the bridge address (root namespace); returns its pid."""
    central = paths.central
    config, pid_file = central / "config.yml", central / "registry.pid"
    pid = registries.running_pid(pid_file, config)
    if pid is not None:
        return pid
    (central / "storage").mkdir(parents=True, exist_ok=True)
    cert, key = central / "registry.crt", central / "registry.key"
    if not cert.exists():
        pki.issue_server_cert(
            paths, cert, key, "registry.central",
            ["registry.central", "system-controller", BRIDGE_ADDRESS],
        )  # fmt: skip
    registries.write_config(
        config, listen=CENTRAL_REGISTRY, storage=str(central / "storage"),
        cert=cert, key=key, htpasswd=paths.htpasswd,
    )  # fmt: skip
    pid = registries.start(config, central / "registry.log", pid_file)
    registries.wait_listening(BRIDGE_ADDRESS, REGISTRY_PORT, pid)
    return pid


def ensure_all(paths: Paths, size: int) -> dict[str, object]:
    """Everything on the system-controller side; returns the facts lab.json records."""
    feeds = {release: ensure_feed(paths, release, size) for release in RELEASES}
    software = ensure_software(paths)
    lists = ensure_image_lists(paths)
    pid = ensure_central_registry(paths)
    ensure_images(paths)
    return {"feeds": feeds, "software": software, "image_lists": lists, "registry_pid": pid}
