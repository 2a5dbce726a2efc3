"""Names, addresses and file locations of the lab: the one place that defines them."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

BRIDGE = "dcplab0"
NETWORK = IPv4Network("10.250.0.0/20")
GUARD_ROUTE = "10.250.0.0/16"  # `unreachable` in the root namespace: nothing leaks off-host
BRIDGE_ADDRESS = str(NETWORK.network_address + 1)
FIRST_HOST_OFFSET = 10  # subcloudN is at NETWORK + 10 + N (subcloud1 = 10.250.0.11)
MAX_SUBCLOUDS = NETWORK.num_addresses - 2 - FIRST_HOST_OFFSET
NETNS_PREFIX = "dcplab-"
VETH_PREFIX = "dcplv"  # host side of subcloudN's veth: dcplvN (the peer is eth0 in the netns)
REGISTRY_PORT = 9001
SSH_PORT = 22

SC_RELEASE = "24.09"
RELEASES = ("22.12", "24.09")
SYSADMIN = "sysadmin"
SYSADMIN_UID = 42425  # StarlingX's sysadmin uid; the user exists only inside the subclouds
REGISTRY_USER = "admin"

# Directories each subcloud gets privately; the run directory must not live below them, or the
# subcloud's own mounts would hide the files its daemons read.
PRIVATE_MOUNTS = ("/etc", "/var/lib", "/opt", "/home", "/tmp", "/run", "/usr/local/bin")

_NAME = re.compile(r"^subcloud([1-9][0-9]*)$")


def subcloud_name(index: int) -> str:
    return f"subcloud{index}"


def subcloud_index(name: str) -> int:
    match = _NAME.match(name)
    if not match:
        raise ValueError(f"not a lab subcloud name: {name!r} (expected subcloud<N>)")
    return int(match.group(1))


def subcloud_address(index: int) -> str:
    if not 1 <= index <= MAX_SUBCLOUDS:
        raise ValueError(f"subcloud index {index} outside 1..{MAX_SUBCLOUDS}")
    return str(IPv4Address(int(NETWORK.network_address) + FIRST_HOST_OFFSET + index))


def netns_name(name: str) -> str:
    return NETNS_PREFIX + name


def veth_name(index: int) -> str:
    return f"{VETH_PREFIX}{index}"


def _below_private_mount(path: Path) -> str | None:
    for private in PRIVATE_MOUNTS:
        if path == Path(private) or Path(private) in path.parents:
            return private
    return None


def lab_dir() -> Path:
    """The run directory: $DCPRESTAGE_LAB_DIR, else lab/run in the work tree.

    Subclouds mount some host directories privately (/tmp, /home, ...), so the run directory must
    really live elsewhere. A work tree below one of them (a clone in /tmp, say) gets lab/run as a
    symlink to /var/tmp/dcprestage-lab-<id>; everything the lab does uses the real path.
    """
    raw = os.environ.get("DCPRESTAGE_LAB_DIR")
    if raw:
        path = Path(os.path.realpath(Path(raw).expanduser()))
        private = _below_private_mount(path)
        if private:
            raise SystemExit(
                f"lab: run directory {path} is below {private}, which every subcloud mounts "
                "privately; choose another DCPRESTAGE_LAB_DIR"
            )
        return path
    link = REPO / "lab" / "run"
    real = Path(os.path.realpath(link))
    if _below_private_mount(real) is None:
        return real
    if link.exists() and not link.is_symlink():
        raise SystemExit(
            f"lab: {link} is below {_below_private_mount(real)}, which every subcloud mounts "
            "privately; remove it (lab/lab down --purge) or set DCPRESTAGE_LAB_DIR"
        )
    digest = hashlib.sha256(str(REPO).encode()).hexdigest()[:8]
    target = Path(f"/var/tmp/dcprestage-lab-{digest}")
    target.mkdir(mode=0o755, exist_ok=True)
    if os.path.realpath(link) != str(target):
        tmp = link.with_name(f".run.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        tmp.replace(link)
    return target


@dataclass(frozen=True)
class SubcloudPaths:
    """Host-side locations of one subcloud's private filesystem and its control files."""

    root: Path

    @property
    def etc_upper(self) -> Path:  # overlay upper layer of the subcloud's /etc
        return self.root / "etc.upper"

    @property
    def etc_work(self) -> Path:
        return self.root / "etc.work"

    @property
    def varlib_upper(self) -> Path:  # overlay upper layer of /var/lib (docker, registry storage)
        return self.root / "varlib.upper"

    @property
    def varlib_work(self) -> Path:
        return self.root / "varlib.work"

    @property
    def opt(self) -> Path:  # the subcloud's /opt
        return self.root / "opt"

    @property
    def home(self) -> Path:  # the subcloud's /home
        return self.root / "home"

    @property
    def tmp(self) -> Path:  # the subcloud's /tmp
        return self.root / "tmp"

    @property
    def platform(self) -> Path:  # the subcloud's /etc/platform (bind mount)
        return self.root / "platform"

    @property
    def state(self) -> Path:  # lab-driven state read by fm/software/system: /etc/platform/lab
        return self.platform / "lab"

    @property
    def build_info(self) -> Path:  # the subcloud's /etc/build.info (bind mount)
        return self.root / "build.info"

    @property
    def ctl(self) -> Path:  # configs, pids and logs of its daemons (not visible as a subcloud path)
        return self.root / "ctl"

    @property
    def init_pid(self) -> Path:
        return self.ctl / "init.pid"

    @property
    def sshd_pid(self) -> Path:
        return self.ctl / "sshd.pid"

    @property
    def registry_pid(self) -> Path:
        return self.ctl / "registry.pid"

    @property
    def registry_config(self) -> Path:
        return self.ctl / "registry.yml"

    @property
    def sshd_config(self) -> Path:
        return self.ctl / "sshd_config"

    @property
    def faults(self) -> Path:
        return self.root / "faults.json"

    def mounts(self) -> dict[str, str]:
        """Subcloud path -> host path, for the directories tests and tools may inspect."""
        return {
            "/opt": str(self.opt),
            "/home": str(self.home),
            "/tmp": str(self.tmp),
            "/etc/platform": str(self.platform),
            "/etc/build.info": str(self.build_info),
            "/var/lib/docker": str(self.varlib_upper / "docker"),
            "/var/lib/docker-distribution": str(self.varlib_upper / "docker-distribution"),
        }


@dataclass(frozen=True)
class Paths:
    """Locations under the run directory (lab/run unless DCPRESTAGE_LAB_DIR says otherwise)."""

    root: Path

    @property
    def lab_json(self) -> Path:
        return self.root / "lab.json"

    @property
    def lock(self) -> Path:
        return self.root / ".lab.lock"

    @property
    def ca_dir(self) -> Path:  # holds only ca.crt: usable as skopeo --dest-cert-dir
        return self.root / "ca"

    @property
    def ca_cert(self) -> Path:
        return self.ca_dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca-private" / "ca.key"

    @property
    def secrets(self) -> Path:
        return self.root / "secrets"

    @property
    def sysadmin_password(self) -> Path:
        return self.secrets / "sysadmin_password"

    @property
    def registry_password(self) -> Path:
        return self.secrets / "registry_password"

    @property
    def registry_auth(self) -> Path:  # containers-auth.json for every lab registry
        return self.secrets / "registry_auth.json"

    @property
    def htpasswd(self) -> Path:
        return self.secrets / "registry.htpasswd"

    @property
    def inventory_dir(self) -> Path:
        return self.root / "inventory"

    @property
    def inventory_config(self) -> Path:
        return self.inventory_dir / "subclouds.yml"

    @property
    def registry_file(self) -> Path:
        return self.inventory_dir / "registry.yml"

    @property
    def host_key(self) -> Path:
        return self.root / "ssh" / "ssh_host_ed25519_key"

    @property
    def bin_dir(self) -> Path:  # every subcloud's /usr/local/bin (read-only bind mount)
        return self.root / "bin"

    @property
    def sc(self) -> Path:
        return self.root / "sc"

    @property
    def feed_dir(self) -> Path:
        return self.sc / "feed"

    @property
    def software_dir(self) -> Path:
        return self.sc / "software"

    @property
    def image_list_dir(self) -> Path:
        return self.sc / "deploy"

    @property
    def oci_dir(self) -> Path:  # OCI layout the images are built in (umoci)
        return self.sc / "images" / "oci"

    @property
    def central(self) -> Path:  # the central registry: config, cert, storage, pid, log
        return self.sc / "registry"

    @property
    def subclouds(self) -> Path:
        return self.root / "subclouds"

    def subcloud(self, name: str) -> SubcloudPaths:
        return SubcloudPaths(self.subclouds / name)
