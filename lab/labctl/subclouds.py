"""One lab subcloud: its private files, its anchor process (netns + mount ns), sshd, registry."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labctl import network, pki, registries
from labctl.paths import (
    BRIDGE_ADDRESS,
    NETWORK,
    REGISTRY_PORT,
    REGISTRY_USER,
    SSH_PORT,
    SYSADMIN,
    SYSADMIN_UID,
    Paths,
    SubcloudPaths,
    netns_name,
    subcloud_address,
    subcloud_index,
    veth_name,
)
from labctl.util import (
    LabError,
    alive,
    atomic_write,
    read_pid,
    stop_pids,
    tcp_open,
    write_in_place,
)

DATA = Path(__file__).resolve().parent / "data"
INIT_SCRIPT = DATA / "subcloud-init.sh"
STX_COMMANDS = ("fm", "software", "system")
SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


@dataclass(frozen=True)
class Subcloud:
    """What the lab builds for one subcloud (release and mode come from the registry)."""

    name: str
    release: str
    system_mode: str

    @property
    def index(self) -> int:
        return subcloud_index(self.name)

    @property
    def address(self) -> str:
        return subcloud_address(self.index)

    @property
    def netns(self) -> str:
        return netns_name(self.name)

    @property
    def veth(self) -> str:
        return veth_name(self.index)

    @property
    def registry(self) -> str:
        return f"{self.address}:{REGISTRY_PORT}"


@dataclass(frozen=True)
class HostFiles:
    """Inputs shared by every subcloud's /etc, computed once per `lab up`."""

    passwd: str
    group: str
    shadow: str
    gshadow: str
    hosts: str
    ca_pem: str
    ca_bundle: str
    stat: dict[str, os.stat_result]

    @classmethod
    def read(cls, paths: Paths, password: str) -> HostFiles:
        def text(name: str) -> str:
            return Path("/etc", name).read_text()

        hashed = pki.sha512_crypt(password)
        uid = SYSADMIN_UID
        days = int(time.time() // 86400)
        ca_pem = paths.ca_cert.read_text()
        bundle = SYSTEM_CA_BUNDLE.read_text() if SYSTEM_CA_BUNDLE.exists() else ""
        names = ("passwd", "group", "shadow", "gshadow")
        return cls(
            passwd=_with_entry(text("passwd"), f"{SYSADMIN}:x:{uid}:{uid}:StarlingX sysadmin:"
                               f"/home/{SYSADMIN}:/bin/bash"),
            group=_with_entry(text("group"), f"{SYSADMIN}:x:{uid}:"),
            shadow=_with_entry(_locked(text("shadow")),
                               f"{SYSADMIN}:{hashed}:{days}:0:99999:7:::"),
            gshadow=_with_entry(_locked(text("gshadow")), f"{SYSADMIN}:!::"),
            hosts=text("hosts"),
            ca_pem=ca_pem,
            ca_bundle=bundle + ("" if bundle.endswith("\n") or not bundle else "\n") + ca_pem,
            stat={name: Path("/etc", name).stat() for name in names},
        )  # fmt: skip


def _locked(table: str) -> str:
    """A shadow/gshadow table with every password field locked: the host's hashes are not
    copied into the lab, and only sysadmin can log in to a subcloud."""
    lines = []
    for line in table.splitlines():
        fields = line.split(":")
        if len(fields) > 2:
            fields[1] = "!*"
        lines.append(":".join(fields))
    return "\n".join(lines) + "\n"


def _with_entry(table: str, entry: str) -> str:
    """table (passwd-style) with the sysadmin line replaced or appended."""
    key = entry.split(":", 1)[0] + ":"
    lines = [line for line in table.splitlines() if not line.startswith(key)]
    return "\n".join([*lines, entry]) + "\n"


def _write(path: Path, text: str, mode: int = 0o644, owner: tuple[int, int] = (0, 0)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chown(path, *owner)
    path.chmod(mode)


def build_info(release: str) -> str:
    date = f"20{release[:2]}-{release[3:5]}-01 00:00:00 +0000"
    return (
        f"###\n### StarlingX\n###     Release {release}\n###\n\n"
        f'OS="debian"\nSW_VERSION="{release}"\nBUILD_TARGET="Host Installer"\n'
        f'BUILD_TYPE="Formal"\nBUILD_ID="dcprestage-lab"\nJOB="STX_{release}_lab"\n'
        f'BUILD_BY="dcprestage-lab"\nBUILD_NUMBER="1"\nBUILD_HOST="lab"\nBUILD_DATE="{date}"\n'
    )


def platform_conf(sc: Subcloud) -> str:
    return (
        f"nodetype=controller\nsubfunction=controller,worker\nsystem_type=All-in-one\n"
        f"security_profile=standard\nmanagement_interface=lo\nhttp_port=8080\n"
        f"INSTALL_UUID=lab-{sc.name}\nUUID=lab-{sc.name}-controller-0\nregion_config=no\n"
        f"system_mode={sc.system_mode}\nsw_version={sc.release}\n"
        f"distributed_cloud_role=subcloud\nvswitch_type=none\n"
    )


def set_release(paths: SubcloudPaths, sc: Subcloud) -> None:
    """Rewrite build.info (in place: it is bind-mounted) and platform.conf for sc.release."""
    write_in_place(paths.build_info, build_info(sc.release))
    atomic_write(paths.platform / "platform.conf", platform_conf(sc))


OPENRC = """# lab stand-in for StarlingX's /etc/platform/openrc: harmless to source.
export OS_USERNAME=admin
export OS_PROJECT_NAME=admin
export OS_USER_DOMAIN_NAME=Default
export OS_PROJECT_DOMAIN_NAME=Default
export OS_AUTH_URL=http://controller:5000/v3
export OS_IDENTITY_API_VERSION=3
export OS_INTERFACE=internal
export OS_REGION_NAME=RegionOne
"""


def prepare(paths: Paths, sc: Subcloud, host: HostFiles) -> None:
    """Write the subcloud's private filesystem from scratch (its old content, if any, goes)."""
    sp = paths.subcloud(sc.name)
    if sp.root.exists():
        shutil.rmtree(sp.root)
    for directory in (sp.etc_work, sp.varlib_work, sp.ctl, sp.opt / "platform-backup",
                      sp.opt / "software", sp.varlib_upper / "docker",
                      sp.varlib_upper / "docker-distribution", sp.state):  # fmt: skip
        directory.mkdir(parents=True)
    sp.tmp.mkdir()
    sp.tmp.chmod(0o1777)
    home = sp.home / SYSADMIN
    home.mkdir(parents=True)
    os.chown(home, SYSADMIN_UID, SYSADMIN_UID)
    home.chmod(0o750)

    etc = sp.etc_upper
    for name in ("passwd", "group", "shadow", "gshadow"):
        st = host.stat[name]
        _write(etc / name, getattr(host, name), st.st_mode & 0o7777, (st.st_uid, st.st_gid))
    _write(etc / "sudoers.d" / SYSADMIN,
           f"Defaults:{SYSADMIN} timestamp_timeout=0, lecture=never\n"
           f"{SYSADMIN} ALL=(ALL:ALL) ALL\n", 0o440)  # fmt: skip
    _write(etc / "hostname", "controller-0\n")
    _write(etc / "hosts", host.hosts + (
        f"\n# dcprestage lab: {sc.name}\n{sc.address} controller-0 controller {sc.name}\n"
        f"{sc.address} registry.local\n{BRIDGE_ADDRESS} registry.central system-controller\n"
    ))  # fmt: skip
    _write(etc / "build.info", "")  # mount point for the bind mount below
    (etc / "platform").mkdir()  # mount point
    for registry in ("registry.local", sc.address, "registry.central", BRIDGE_ADDRESS):
        for base in ("containers/certs.d", "docker/certs.d"):
            _write(etc / base / f"{registry}:{REGISTRY_PORT}" / "ca.crt", host.ca_pem)
    if host.ca_bundle:
        _write(etc / "ssl/certs/ca-certificates.crt", host.ca_bundle)

    sp.build_info.write_text(build_info(sc.release))
    _write(sp.platform / "platform.conf", platform_conf(sc))
    _write(sp.platform / "openrc", OPENRC)
    _write(sp.state / "alarms.json", "[]\n")
    _write(sp.state / "controllers.json", '{"controller-0": "active"}\n')

    pki.issue_server_cert(
        paths, sp.ctl / "registry.crt", sp.ctl / "registry.key", "registry.local",
        ["registry.local", sc.address, "controller-0"],
    )  # fmt: skip
    registries.write_config(
        sp.registry_config, listen=sc.registry, storage="/var/lib/docker-distribution",
        cert=sp.ctl / "registry.crt", key=sp.ctl / "registry.key", htpasswd=paths.htpasswd,
    )  # fmt: skip
    _write(sp.sshd_config, (
        f"# sshd of lab {sc.name}\n"
        f"ListenAddress {sc.address}:{SSH_PORT}\n"
        f"HostKey {paths.host_key}\n"
        "PasswordAuthentication yes\nKbdInteractiveAuthentication no\nUsePAM no\n"
        f"PermitRootLogin no\nAllowUsers {SYSADMIN}\nPidFile none\nUseDNS no\n"
        "PrintMotd no\nPrintLastLog no\nX11Forwarding no\nAcceptEnv LANG LC_*\n"
        "MaxStartups 200\nMaxSessions 100\nLogLevel ERROR\n"
        "Subsystem sftp internal-sftp\n"
    ), 0o600)  # fmt: skip


def ensure_shared(paths: Paths) -> None:
    """The sshd host key and the bin dir (fm, software, system) every subcloud shares."""
    if not paths.host_key.exists():
        paths.host_key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dcprestage-lab",
             "-f", str(paths.host_key)],
            check=True,
        )  # fmt: skip
    paths.bin_dir.mkdir(parents=True, exist_ok=True)
    target = paths.bin_dir / "stx-lab"
    source = (DATA / "stx-lab").read_text()
    if not target.exists() or target.read_text() != source:
        atomic_write(target, source, 0o755)
    for command in STX_COMMANDS:
        link = paths.bin_dir / command
        if not link.is_symlink():
            link.unlink(missing_ok=True)
            link.symlink_to("stx-lab")


def start(paths: Paths, subclouds: list[Subcloud], host: HostFiles) -> None:
    """Create files, links and anchor processes for subclouds (none of them running), then wait
    until each one's sshd and registry answer."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda sc: prepare(paths, sc, host), subclouds))
    network.create_subcloud_links((sc.index, sc.name) for sc in subclouds)
    for sc in subclouds:
        sp = paths.subcloud(sc.name)
        with (sp.ctl / "init.log").open("ab") as out:
            subprocess.Popen(
                ["ip", "netns", "exec", sc.netns,
                 "unshare", "--mount", "--uts", "--propagation", "private",
                 "/bin/bash", str(INIT_SCRIPT), str(sp.root), sc.address,
                 str(NETWORK.prefixlen), str(paths.bin_dir)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True,
            )  # fmt: skip
    wait_ready(paths, subclouds, timeout=30 + 0.2 * len(subclouds))


def wait_ready(paths: Paths, subclouds: list[Subcloud], timeout: float) -> None:
    pending = {sc.name: sc for sc in subclouds}
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for name, sc in list(pending.items()):
            sp = paths.subcloud(name)
            if (
                sp.init_pid.exists()
                and tcp_open(sc.address, SSH_PORT, 0.2)
                and tcp_open(sc.address, REGISTRY_PORT, 0.2)
            ):
                del pending[name]
        if pending:
            time.sleep(0.05)
    if pending:
        name = sorted(pending)[0]
        tail = ""
        for log_name in ("init.log", "sshd.log", "registry.log"):
            log_path = paths.subcloud(name).ctl / log_name
            if log_path.exists():
                tail += f"\n--- {log_path}:\n" + "\n".join(
                    log_path.read_text(errors="replace").splitlines()[-10:]
                )
        raise LabError(f"subclouds not ready after {timeout:.0f}s: {sorted(pending)}{tail}")


def init_pid(paths: Paths, name: str) -> int | None:
    """The subcloud's anchor pid when it is alive (mount namespace holder for nsenter)."""
    pid = read_pid(paths.subcloud(name).init_pid)
    return pid if alive(pid) else None


def running(paths: Paths, name: str) -> bool:
    return init_pid(paths, name) is not None and netns_name(name) in network.lab_netns()


def require_init_pid(paths: Paths, name: str) -> int:
    pid = init_pid(paths, name)
    if pid is None:
        raise LabError(f"{name} is not running (lab/lab up?)")
    return pid


def stop(paths: Paths, names: list[str], timeout: float = 5.0) -> list[int]:
    """Kill every process in the subclouds' namespaces (daemons first, so each anchor reaps
    its own children, then the anchors), delete namespaces and veths. Returns the killed pids."""
    namespaces = [netns_name(name) for name in names]
    present = network.lab_netns()
    anchors = {read_pid(paths.subcloud(name).init_pid) for name in names}
    killed: list[int] = []
    for _ in range(5):  # a connection may be accepted while we kill: repeat until empty
        pids = [pid for ns in namespaces if ns in present for pid in network.netns_pids(ns)]
        if not pids:
            break
        killed += stop_pids([pid for pid in pids if pid not in anchors], timeout)
        killed += stop_pids([pid for pid in pids if pid in anchors], timeout)
    network.delete_netns(ns for ns in namespaces if ns in present)
    veths = []
    for name in names:
        try:
            veths.append(veth_name(subcloud_index(name)))
        except ValueError:
            continue
    network.delete_links(veths)
    return killed


def describe(paths: Paths, sc: Subcloud) -> dict[str, Any]:
    """The lab.json record of one subcloud."""
    sp = paths.subcloud(sc.name)
    return {
        "id": sc.index,
        "address": sc.address,
        "netns": sc.netns,
        "veth": sc.veth,
        "init_pid": read_pid(sp.init_pid),
        "registry": sc.registry,
        "registry_user": REGISTRY_USER,
        "registry_pid_file": str(sp.registry_pid),
        "root": str(sp.root),
        "paths": sp.mounts(),
        "release": sc.release,
        "system_mode": sc.system_mode,
    }


def status(paths: Paths, name: str, address: str) -> dict[str, Any]:
    sp = paths.subcloud(name)
    sshd_pid, registry_pid = read_pid(sp.sshd_pid), read_pid(sp.registry_pid)

    def state(pid: int | None, port: int) -> str:
        if not alive(pid):
            return "down"
        return "up" if tcp_open(address, port, 0.3) else "unreachable"

    faults: dict[str, Any] = {}
    if sp.faults.exists():
        faults = json.loads(sp.faults.read_text())
    return {
        "running": init_pid(paths, name) is not None,
        "sshd": state(sshd_pid, SSH_PORT),
        "registry": state(registry_pid, REGISTRY_PORT),
        "faults": faults,
    }
