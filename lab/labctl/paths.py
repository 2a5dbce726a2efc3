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

# The system controller: its own network and mount namespaces, like a subcloud's.
SC_NAME = "system-controller"  # its inventory host name and lab name
SC_NETNS = NETNS_PREFIX + "sc"
SC_VETH = VETH_PREFIX + "sc"
SC_ADDRESS = str(NETWORK.network_address + 2)
FEED_HTTPS_PORT = 8443  # STARLINGX.md §3 step 6: the SC's feed endpoint, /iso/<v>/ostree_repo
FEED_HTTP_PORT = 8080
SYSADMIN = "sysadmin"
SYSADMIN_UID = 42425  # StarlingX's sysadmin uid; the user exists only inside the lab's hosts
# StarlingX's local registry login
# (PB:roles/common/push-docker-images/files/download_images.py:51-55)
REGISTRY_USER = "sysinv"
# Python 3.9 of the machine image: StarlingX's python3 (Debian 11) on the SC and the subclouds.
PYTHON39_HOME = Path("/root/.pyenv/versions/3.9.18")

# Directories each lab host (the SC and the subclouds) gets privately; the run directory must not
# live below them, or the host's own mounts would hide the files its daemons read.
PRIVATE_MOUNTS = ("/etc", "/var", "/opt", "/home", "/tmp", "/run", "/root", "/usr/bin", "/usr/sbin")

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

    Lab hosts mount some host directories privately (/tmp, /var, ...), so the run directory must
    really live elsewhere. A work tree below one of them (a clone in /tmp, say) gets lab/run as a
    symlink to /srv/dcprestage-lab-<id>; everything the lab does uses the real path.
    """
    raw = os.environ.get("DCPRESTAGE_LAB_DIR")
    if raw:
        path = Path(os.path.realpath(Path(raw).expanduser()))
        private = _below_private_mount(path)
        if private:
            raise SystemExit(
                f"lab: run directory {path} is below {private}, which every lab host mounts "
                "privately; choose another DCPRESTAGE_LAB_DIR"
            )
        return path
    link = REPO / "lab" / "run"
    real = Path(os.path.realpath(link))
    if _below_private_mount(real) is None:
        return real
    if link.exists() and not link.is_symlink():
        raise SystemExit(
            f"lab: {link} is below {_below_private_mount(real)}, which every lab host mounts "
            "privately; remove it (lab/lab down --purge) or set DCPRESTAGE_LAB_DIR"
        )
    digest = hashlib.sha256(str(REPO).encode()).hexdigest()[:8]
    target = Path(f"/srv/dcprestage-lab-{digest}")
    target.mkdir(mode=0o755, exist_ok=True)
    if os.path.realpath(link) != str(target):
        tmp = link.with_name(f".run.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        tmp.replace(link)
    return target


@dataclass(frozen=True)
class HostPaths:
    """Host-side locations of one lab host's private filesystem (the SC's or a subcloud's) and of
    its control files. Inside the host: /etc is an overlay with etc.upper, /var one with
    var.upper, /opt, /home, /tmp binds of opt, home, tmp; /etc/build.info and /etc/platform binds
    of build.info and platform."""

    root: Path

    @property
    def etc_upper(self) -> Path:
        return self.root / "etc.upper"

    @property
    def etc_work(self) -> Path:
        return self.root / "etc.work"

    @property
    def var_upper(self) -> Path:  # what the host writes below /var (feeds, docker, registry)
        return self.root / "var.upper"

    @property
    def var_work(self) -> Path:
        return self.root / "var.work"

    @property
    def opt(self) -> Path:
        return self.root / "opt"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def platform(self) -> Path:  # /etc/platform
        return self.root / "platform"

    @property
    def state(self) -> Path:  # /etc/platform/lab: what the stand-in CLIs read
        return self.platform / "lab"

    @property
    def build_info(self) -> Path:  # /etc/build.info
        return self.root / "build.info"

    @property
    def ctl(self) -> Path:  # daemons' configs, pids and logs (not visible inside the host)
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
    def daemons(self) -> Path:  # one command line a line: what host-init.sh starts
        return self.ctl / "daemons"

    @property
    def faults(self) -> Path:
        return self.root / "faults.json"

    def var(self, path: str) -> Path:
        """Host path of /var/<path> inside the host (its overlay's upper layer)."""
        return self.var_upper / path.removeprefix("/var/").lstrip("/")

    def mounts(self) -> dict[str, str]:
        """Host path -> path seen from the host, for what tests and tools may inspect (read them
        from here; write inside the host's namespace: /var is an overlay)."""
        return {
            "/opt": str(self.opt),
            "/home": str(self.home),
            "/tmp": str(self.tmp),
            "/etc/platform": str(self.platform),
            "/etc/build.info": str(self.build_info),
            "/var/www/pages/feed": str(self.var("www/pages/feed")),
            "/var/lib/docker": str(self.var("lib/docker")),
            "/var/lib/docker-distribution": str(self.var("lib/docker-distribution")),
        }


# Kept for the code that still says it (a subcloud is a lab host).
SubcloudPaths = HostPaths


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
    def ca_dir(self) -> Path:  # holds only ca.crt
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
    def sysadmin_password(self) -> Path:  # the subclouds' sysadmin password
        return self.secrets / "sysadmin_password"

    @property
    def sc_sysadmin_password(self) -> Path:  # the system controller's own sysadmin password
        return self.secrets / "sc_sysadmin_password"

    @property
    def controller_key(self) -> Path:  # the controller's SSH key for the system controller
        return self.secrets / "controller_key"

    @property
    def central_registry_password(self) -> Path:  # sysinv on registry.central
        return self.secrets / "central_registry_password"

    @property
    def local_registry_password(self) -> Path:  # sysinv on each subcloud's registry.local
        return self.secrets / "local_registry_password"

    @property
    def keystone_admin_password(self) -> Path:  # Keystone's admin on the SC (dcmanager API)
        return self.secrets / "keystone_admin_password"

    @property
    def registry_auth(self) -> Path:  # containers-auth.json for the lab's own tools (skopeo)
        return self.secrets / "registry_auth.json"

    @property
    def central_htpasswd(self) -> Path:
        return self.secrets / "central.htpasswd"

    @property
    def local_htpasswd(self) -> Path:
        return self.secrets / "local.htpasswd"

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
    def dcmanager_inventory_config(self) -> Path:  # the same, with the dcmanager source
        return self.inventory_dir / "dcmanager-subclouds.yml"

    @property
    def dcmanager_db(self) -> Path:  # the SC's dcmanager database (data/dcmanager-api)
        return self.root / "dcmanager" / "db.json"

    @property
    def host_key(self) -> Path:
        return self.root / "ssh" / "ssh_host_ed25519_key"

    @property
    def layers(self) -> Path:  # read-only top layers of every lab host's /usr/bin and /usr/sbin
        return self.root / "layers"

    @property
    def usr_bin_layer(self) -> Path:
        return self.layers / "usr-bin"

    @property
    def usr_sbin_layer(self) -> Path:
        return self.layers / "usr-sbin"

    @property
    def python39(self) -> Path:  # the lab hosts' python3: a Python 3.9 venv
        return self.root / "python3.9"

    @property
    def content(self) -> Path:  # build caches of StarlingX content (images, feed templates)
        return self.root / "content"

    @property
    def oci_dir(self) -> Path:
        return self.content / "oci"

    @property
    def sc(self) -> HostPaths:  # the system controller's private files (kept by `down`)
        return HostPaths(self.root / "sc")

    @property
    def subclouds(self) -> Path:
        return self.root / "subclouds"

    def subcloud(self, name: str) -> HostPaths:
        return HostPaths(self.subclouds / name)

    def host(self, name: str) -> HostPaths:
        return self.sc if name == SC_NAME else self.subcloud(name)
