"""What the lab's hosts hold (STARLINGX.md §7): the system controller's release feeds, USM
metadata, release directories, image lists and central registry; each subcloud's own feed,
metadata, registry login and service parameters; the Python 3.9 and the StarlingX commands every
host runs. The StarlingX formats themselves are built by labctl.stxcontent."""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path
from typing import Any

from labctl import hosts, stxcontent
from labctl.paths import (
    PYTHON39_HOME,
    REGISTRY_PORT,
    REGISTRY_USER,
    REPO,
    SC_ADDRESS,
    SC_NAME,
    HostPaths,
    Paths,
)
from labctl.util import LabError, atomic_write, log, parse_size, run

DATA = Path(__file__).resolve().parent / "data"
STANDIN = DATA / "stx-lab"
DEPLOY_STUB = DATA / "software-deploy-stub"
STANDIN_COMMANDS = ("fm", "software", "system", "openstack", "crictl", "dcmanager")
SOFTWARE_DEPLOY_SCRIPTS = ("controllers-software-sync", "sync-controllers-feed")
# Tools of this machine a StarlingX subcloud lacks (the images phase must not need them).
ABSENT_COMMANDS = ("skopeo", "umoci")
# What StarlingX ships for python3 that prestage code may use (STARLINGX.md §7: keyring for the
# local registry password, defusedxml for ostree-metadata-sync.sh). Pinned for reproducibility.
PYTHON39_PACKAGES = ("keyring==25.6.0", "keyrings.alt==5.0.2", "defusedxml==0.7.1")
CONTENT_FORMAT = 2
# StarlingX's registry service parameter sections and the public registry each serves
# (PB:roles/common/push-docker-images/tasks/get_docker_registries.yml:17-37). The lab leaves the
# ghcr, registry.k8s.io and icr sections out: StarlingX clones them from docker.io
# (PR:prestage-images/tasks/get_docker_registries.yml:22-68).
REGISTRY_SECTIONS = {
    "k8s-registry": "k8s.gcr.io",
    "gcr-registry": "gcr.io",
    "quay-registry": "quay.io",
    "docker-registry": "docker.io",
    "elastic-registry": "docker.elastic.co",
}


def system_controller(release: str) -> hosts.LabHost:
    """The system controller as a lab host running release (sc_release(paths): the lab's)."""
    return hosts.LabHost(SC_NAME, stxcontent.check_sc_release(release), "duplex")


def feed_size(paths: Paths, requested: str | None, default: str) -> int:
    """--size, else the size the SC's feeds were built with, else default."""
    if requested:
        return parse_size(requested)
    stamp = _stamp(paths)
    return int(stamp.get("size") or parse_size(default))


def built_sc_release(paths: Paths) -> str | None:
    """The release the SC's content was built for, None when there is none."""
    release = (_stamp(paths).get("facts") or {}).get("release")
    return str(release) if release else None


def sc_release(paths: Paths, requested: str | None = None) -> str:
    """--sc-release, else the release the SC's content was built for, else the default
    (stxcontent.SC_RELEASE): the lab's setting, kept across down/up like --size."""
    return stxcontent.check_sc_release(
        requested or built_sc_release(paths) or stxcontent.SC_RELEASE
    )


def _stamp_path(paths: Paths) -> Path:
    return paths.sc.root / "content.json"


def _stamp(paths: Paths) -> dict[str, Any]:
    try:
        data = json.loads(_stamp_path(paths).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def sc_outdated(paths: Paths, size: int, release: str) -> bool:
    stamp = _stamp(paths)
    return (
        stamp.get("format") != CONTENT_FORMAT
        or stamp.get("size") != size
        or built_sc_release(paths) != release
    )


# ----------------------------------------------------------------- what every host runs


def ensure_python39(paths: Paths) -> None:
    """The lab hosts' python3: a venv of the machine image's Python 3.9 with what StarlingX ships
    for it. Its interpreter is a symlink below /root/.pyenv, which every lab host mounts at the
    same place (data/host-init.sh)."""
    venv = paths.python39
    stamp = venv / ".lab-packages"
    wanted = "\n".join(PYTHON39_PACKAGES) + "\n"
    if stamp.exists() and stamp.read_text() == wanted:
        return
    log("creating the lab hosts' Python 3.9 environment")
    shutil.rmtree(venv, ignore_errors=True)
    run([PYTHON39_HOME / "bin" / "python3.9", "-m", "venv", venv])
    run(
        [
            venv / "bin" / "python3.9",
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            *PYTHON39_PACKAGES,
        ]
    )
    atomic_write(stamp, wanted)


def ensure_layers(paths: Paths) -> None:
    """The read-only top layers of the hosts' /usr/bin and /usr/sbin: python3 (Python 3.9),
    StarlingX's commands (the stand-ins) and /usr/sbin/software-deploy's scripts."""
    bin_dir, sbin_dir = paths.usr_bin_layer, paths.usr_sbin_layer / "software-deploy"
    bin_dir.mkdir(parents=True, exist_ok=True)
    sbin_dir.mkdir(parents=True, exist_ok=True)
    _install(bin_dir / "stx-lab", STANDIN.read_text(), 0o755)
    _install(bin_dir / "python3", f'#!/bin/sh\nexec {paths.python39}/bin/python3.9 "$@"\n', 0o755)
    for command in STANDIN_COMMANDS:
        _link(bin_dir / command, "stx-lab")
    # what a StarlingX host does not have is hidden from the machine's /usr/bin below (an
    # overlay whiteout: a 0/0 character device)
    for absent in ABSENT_COMMANDS:
        whiteout = bin_dir / absent
        if not whiteout.is_char_device():
            whiteout.unlink(missing_ok=True)
            os.mknod(whiteout, 0o600 | stat.S_IFCHR, os.makedev(0, 0))
    _install(sbin_dir / "software-deploy-stub", DEPLOY_STUB.read_text(), 0o755)
    for script in SOFTWARE_DEPLOY_SCRIPTS:
        _link(sbin_dir / script, "software-deploy-stub")


def _install(path: Path, text: str, mode: int) -> None:
    """Write a layer file in place when it exists: running hosts' overlays keep seeing the inode
    they looked up (a renamed-over file would stay invisible to them until they restart)."""
    if not path.exists():
        atomic_write(path, text, mode)
        return
    if path.read_text() != text:
        with path.open("r+") as handle:
            handle.write(text)
            handle.truncate()
    if (path.stat().st_mode & 0o777) != mode:
        path.chmod(mode)


def _link(path: Path, target: str) -> None:
    if path.is_symlink() and os.readlink(path) == target:
        return
    path.unlink(missing_ok=True)
    path.symlink_to(target)


# ------------------------------------------------------------------- the system controller


def ensure_sc_content(paths: Paths, size: int, release: str) -> None:
    """The SC's StarlingX content for release in its private root (kept across down/up)."""
    hp = paths.sc
    if not sc_outdated(paths, size, release):
        return
    log(f"building the system controller's {release} content (feeds of {size / (1 << 20):.1f} MiB)")
    # the setting first (an interrupted build is rebuilt for the same release), content after
    atomic_write(
        _stamp_path(paths), json.dumps({"size": size, "facts": {"release": release}}) + "\n"
    )
    for old in (hp.var_upper, hp.opt):
        if old.exists():
            shutil.rmtree(old)
    facts = stxcontent.build_system_controller(
        var_root=hp.var_upper,
        opt_root=hp.opt,
        cache=paths.content,
        size=size,
        sc_release=release,
        install_uuid=hosts.install_uuid(system_controller(release)),
    )
    atomic_write(
        _stamp_path(paths),
        json.dumps({"format": CONTENT_FORMAT, "size": size, "facts": facts}, indent=2) + "\n",
    )


def ensure_images(paths: Paths) -> None:
    """Every listed image in the central registry under its public-registry prefix."""
    stxcontent.ensure_images(
        oci_dir=paths.oci_dir,
        registry=f"{SC_ADDRESS}:{REGISTRY_PORT}",
        auth_file=paths.registry_auth,
        cert_dir=paths.ca_dir,
    )


def describe_sc(paths: Paths) -> dict[str, Any]:
    """What lab.json says about the SC's content (paths as the SC sees them)."""
    facts = _stamp(paths).get("facts") or {}
    return {
        "content": facts,
        "central_registry": f"registry.central:{REGISTRY_PORT}",
        "central_registry_address": f"{SC_ADDRESS}:{REGISTRY_PORT}",
    }


# -------------------------------------------------------------------------- each host


def write_host_content(paths: Paths, host: hosts.LabHost) -> None:
    """Called by hosts.prepare once the host's skeleton exists."""
    hp = paths.host(host.name)
    if host.is_sc:
        mounts = [
            f"--bind /var/www/pages/feed/rel-{release}/ostree_repo "
            f"/opt/platform/iso/{release}/ostree_repo"
            for release in stxcontent.sc_feeds(host.release)
        ]
        atomic_write(hp.ctl / "mounts", "\n".join(mounts) + "\n")
        # the controller's own Python and this repository (its venv, the collection, the feed
        # server), for the local topology (Ansible run on the SC itself): wherever they are, the
        # SC's private /tmp or /root must not hide them
        atomic_write(hp.ctl / "keep", f"{sys.base_prefix}\n{REPO}\n")
        return
    stxcontent.build_subcloud(
        var_root=hp.var_upper,
        opt_root=hp.opt,
        cache=paths.content,
        release=host.release,
        install_uuid=hosts.install_uuid(host),
        sc_var_root=paths.sc.var_upper,
    )
    # /var/lib/docker: StarlingX wants 16 G free there before images (STARLINGX.md §4); a tmpfs
    # that big costs nothing until written, and the lab writes nothing there.
    atomic_write(hp.ctl / "mounts", "-t tmpfs -o size=20g,mode=0710 lab-docker /var/lib/docker\n")
    _registry_login(paths, hp)


def _registry_login(paths: Paths, hp: HostPaths) -> None:
    """The subcloud's registry service parameters (pointing at registry.central with sysinv's
    credential in a barbican secret) and its local registry password in root's python keyring
    (STARLINGX.md §4)."""
    central = paths.central_registry_password.read_text().strip()
    parameters: dict[str, dict[str, str]] = {}
    secrets: dict[str, str] = {}
    for index, (section, public) in enumerate(REGISTRY_SECTIONS.items(), start=1):
        ref = f"00000000-0000-4000-8000-{index:012d}"
        parameters[section] = {
            "url": f"registry.central:{REGISTRY_PORT}/{public}",
            "type": "docker",
            "secure": "True",
            "auth-secret": ref,
        }
        secrets[ref] = f"username:{REGISTRY_USER} password:{central}"
    atomic_write(hp.state / "service_parameters.json", json.dumps(parameters, indent=2) + "\n")
    atomic_write(hp.state / "secrets.json", json.dumps(secrets, indent=2) + "\n", 0o600)
    local = paths.local_registry_password
    setup = (
        "#!/bin/sh\n# root's python keyring holds the local registry password (sysinv, services)\n"
        "set -e\nmkdir -p /root/.config/python_keyring /root/.local/share/python_keyring\n"
        "printf '[backend]\\ndefault-keyring=keyrings.alt.file.PlaintextKeyring\\n' "
        ">/root/.config/python_keyring/keyringrc.cfg\n"
        "HOME=/root python3 -c 'import sys, keyring; "
        'keyring.set_password("sysinv", "services", sys.stdin.readline().rstrip("\\n"))\' '
        f"<{local}\n"
    )
    atomic_write(hp.ctl / "setup", setup, 0o700)


def subcloud_paths(paths: Paths, name: str) -> HostPaths:
    if name == SC_NAME:
        raise LabError("the system controller is not a subcloud")
    return paths.subcloud(name)
