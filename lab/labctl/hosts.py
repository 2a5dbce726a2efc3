"""Lab hosts - the system controller and the subclouds: their private files, anchor process
(network + mount namespaces, data/host-init.sh), daemons (sshd, a registry, the SC's feed
endpoint), and what they are made of (STARLINGX.md §7)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labctl import dcmanager, network, pki, registries
from labctl.paths import (
    BRIDGE_ADDRESS,
    FEED_HTTP_PORT,
    FEED_HTTPS_PORT,
    NETWORK,
    PYTHON39_HOME,
    REGISTRY_PORT,
    SC_ADDRESS,
    SC_NAME,
    SC_NETNS,
    SC_VETH,
    SSH_PORT,
    SYSADMIN,
    SYSADMIN_UID,
    Paths,
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
    wait_until,
)

DATA = Path(__file__).resolve().parent / "data"
INIT_SCRIPT = DATA / "host-init.sh"
SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
SYSTEMCONTROLLER = "systemcontroller"
SUBCLOUD = "subcloud"
# Public registries a lab host must never reach: they resolve to a closed local port.
PUBLIC_REGISTRIES = (
    "docker.io",
    "registry-1.docker.io",
    "index.docker.io",
    "quay.io",
    "gcr.io",
    "k8s.gcr.io",
    "registry.k8s.io",
    "ghcr.io",
    "icr.io",
    "docker.elastic.co",
)


@dataclass(frozen=True)
class LabHost:
    """One lab host; the SC's release and a subcloud's release and mode come from the lab's
    content description and the registry."""

    name: str
    release: str
    system_mode: str = "simplex"

    @property
    def role(self) -> str:
        return SYSTEMCONTROLLER if self.name == SC_NAME else SUBCLOUD

    @property
    def is_sc(self) -> bool:
        return self.name == SC_NAME

    @property
    def index(self) -> int:
        return 0 if self.is_sc else subcloud_index(self.name)

    @property
    def address(self) -> str:
        return SC_ADDRESS if self.is_sc else subcloud_address(self.index)

    @property
    def netns(self) -> str:
        return SC_NETNS if self.is_sc else netns_name(self.name)

    @property
    def veth(self) -> str:
        return SC_VETH if self.is_sc else veth_name(self.index)

    @property
    def registry(self) -> str:
        return f"{self.address}:{REGISTRY_PORT}"


@dataclass(frozen=True)
class Credentials:
    """What every host's /etc and daemons are made from, computed once per `lab up`."""

    passwd: str
    group: str
    shadow: dict[str, str]  # role -> shadow table with that role's sysadmin password
    gshadow: str
    hosts: str
    ca_pem: str
    ca_bundle: str
    stat: dict[str, os.stat_result]
    controller_public_key: str

    @classmethod
    def read(cls, paths: Paths, passwords: dict[str, str]) -> Credentials:
        def text(name: str) -> str:
            return Path("/etc", name).read_text()

        days = int(time.time() // 86400)
        uid = SYSADMIN_UID
        shadow = {
            role: _with_entry(
                _locked(text("shadow")),
                f"{SYSADMIN}:{pki.sha512_crypt(password)}:{days}:0:99999:7:::",
            )
            for role, password in passwords.items()
        }
        bundle = SYSTEM_CA_BUNDLE.read_text() if SYSTEM_CA_BUNDLE.exists() else ""
        ca_pem = paths.ca_cert.read_text()
        return cls(
            passwd=_with_entry(
                text("passwd"),
                f"{SYSADMIN}:x:{uid}:{uid}:StarlingX sysadmin:/home/{SYSADMIN}:/bin/bash",
            ),
            group=_with_entry(text("group"), f"{SYSADMIN}:x:{uid}:"),
            shadow=shadow,
            gshadow=_with_entry(_locked(text("gshadow")), f"{SYSADMIN}:!::"),
            hosts=text("hosts"),
            ca_pem=ca_pem,
            ca_bundle=bundle + ("" if bundle.endswith("\n") or not bundle else "\n") + ca_pem,
            stat={
                name: Path("/etc", name).stat() for name in ("passwd", "group", "shadow", "gshadow")
            },
            controller_public_key=Path(f"{paths.controller_key}.pub").read_text(),
        )


def _locked(table: str) -> str:
    """A shadow/gshadow table with every password field locked: the machine's hashes are not
    copied into the lab, and only sysadmin can log in to a lab host."""
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


def write(path: Path, text: str, mode: int = 0o644, owner: tuple[int, int] = (0, 0)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chown(path, *owner)
    path.chmod(mode)


# ------------------------------------------------------------------- StarlingX's own files


def build_info(release: str) -> str:
    """/etc/build.info as StarlingX writes it: header-less KEY="value" lines, shell-sourceable
    and configparser-readable (STARLINGX.md §7; config tsconfig.py)."""
    date = f"20{release[:2]}-{release[3:5]}-01 00:00:00 +0000"
    return (
        f'OS="debian"\nSW_VERSION="{release}"\nBUILD_TARGET="Host Installer"\n'
        f'BUILD_TYPE="Formal"\nBUILD_ID="lab-{release}-001"\nJOB="STX_{release}_lab"\n'
        f'BUILD_BY="dcprestage-lab"\nBUILD_NUMBER="1"\nBUILD_HOST="lab"\nBUILD_DATE="{date}"\n'
    )


def install_uuid(host: LabHost) -> str:
    """A stable INSTALL_UUID per host (what miniboot writes at install, MT:kickstart/files/
    miniboot.cfg:2993-3008)."""
    import uuid  # noqa: PLC0415

    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"dcprestage-lab/{host.name}/{host.release}"))


def platform_conf(host: LabHost) -> str:
    """/etc/platform/platform.conf (key=value; tsconfig needs nodetype and subfunction)."""
    role = "systemcontroller" if host.is_sc else "subcloud"
    return (
        "nodetype=controller\nsubfunction=controller,worker\nsystem_type=All-in-one\n"
        f"security_profile=standard\nmanagement_interface=eth0\nhttp_port={FEED_HTTP_PORT}\n"
        f"INSTALL_UUID={install_uuid(host)}\nUUID=lab-{host.name}-controller-0\n"
        f"region_config=no\nsystem_mode={host.system_mode}\nsw_version={host.release}\n"
        f"distributed_cloud_role={role}\nvswitch_type=none\n"
    )


OPENRC = """# lab stand-in for StarlingX's /etc/platform/openrc (harmless to source; the lab's
# StarlingX commands need no credentials).
export OS_USERNAME=admin
export OS_PROJECT_NAME=admin
export OS_USER_DOMAIN_NAME=Default
export OS_PROJECT_DOMAIN_NAME=Default
export OS_AUTH_URL=http://controller:5000/v3
export OS_IDENTITY_API_VERSION=3
export OS_INTERFACE=internal
export OS_REGION_NAME=RegionOne
"""


def set_release(paths: Paths, host: LabHost) -> None:
    """Rewrite build.info (in place: it is bind-mounted) and platform.conf for host.release."""
    hp = paths.host(host.name)
    with hp.build_info.open("r+" if hp.build_info.exists() else "w") as handle:
        handle.seek(0)
        handle.write(build_info(host.release))
        handle.truncate()
    atomic_write(hp.platform / "platform.conf", platform_conf(host))


# ------------------------------------------------------------------------------ preparing


def _hosts_file(base: str, host: LabHost) -> str:
    public = " ".join(PUBLIC_REGISTRIES)
    return base + (
        f"\n# dcprestage lab: {host.name}\n"
        f"{host.address} controller-0 controller {host.name}\n"
        f"{host.address} registry.local\n"
        f"{SC_ADDRESS} registry.central system-controller\n"
        f"{BRIDGE_ADDRESS} lab-controller\n"
        f"127.0.0.1 {public}\n"
    )


def prepare(paths: Paths, host: LabHost, creds: Credentials, content: Callable[..., None]) -> None:
    """Write the host's private files. A subcloud starts from scratch; the system controller
    keeps its content (/var/www/pages/feed, /opt, its registry storage) and gets the rest anew.
    content(paths, host) writes the StarlingX content (labctl.content)."""
    hp = paths.host(host.name)
    if not host.is_sc and hp.root.exists():
        shutil.rmtree(hp.root)
    for fresh in (hp.etc_upper, hp.etc_work, hp.var_work, hp.ctl, hp.home, hp.tmp, hp.platform):
        if fresh.exists():
            shutil.rmtree(fresh)
    for directory in (
        hp.etc_work,
        hp.var_work,
        hp.ctl,
        hp.state,
        hp.opt,
        hp.var("lib/docker"),
        hp.var("lib/docker-distribution"),
        hp.var("www/pages/feed"),
        hp.var("log"),
    ):
        directory.mkdir(parents=True, exist_ok=True)
    hp.tmp.mkdir()
    hp.tmp.chmod(0o1777)
    home = hp.home / SYSADMIN
    home.mkdir(parents=True)
    os.chown(home, SYSADMIN_UID, SYSADMIN_UID)
    home.chmod(0o750)

    etc = hp.etc_upper
    for name in ("passwd", "group", "gshadow"):
        st = creds.stat[name]
        write(etc / name, getattr(creds, name), st.st_mode & 0o7777, (st.st_uid, st.st_gid))
    st = creds.stat["shadow"]
    write(etc / "shadow", creds.shadow[host.role], st.st_mode & 0o7777, (st.st_uid, st.st_gid))
    # sudo asks for the password every time, as a StarlingX host's does for sysadmin
    write(
        etc / "sudoers.d" / SYSADMIN,
        f"Defaults:{SYSADMIN} timestamp_timeout=0, lecture=never\n{SYSADMIN} ALL=(ALL:ALL) ALL\n",
        0o440,
    )
    write(etc / "hostname", "controller-0\n")
    write(etc / "hosts", _hosts_file(creds.hosts, host))
    write(etc / "build.info", "")  # mount point for the bind mount
    (etc / "platform").mkdir()  # mount point
    for registry in ("registry.local", host.address, "registry.central", SC_ADDRESS):
        for base in ("containers/certs.d", "docker/certs.d"):
            write(etc / base / f"{registry}:{REGISTRY_PORT}" / "ca.crt", creds.ca_pem)
    if creds.ca_bundle:
        write(etc / "ssl/certs/ca-certificates.crt", creds.ca_bundle)

    write(hp.build_info, build_info(host.release))
    write(hp.platform / "platform.conf", platform_conf(host))
    write(hp.platform / "openrc", OPENRC)
    write(hp.state / "alarms.json", "[]\n")
    write(hp.state / "controllers.json", '{"controller-0": "active"}\n')
    write(hp.state / "cpus.json", '{"platform": 2}\n')
    write(hp.state / "addrpools.json", json.dumps(_address_pools(host), indent=2) + "\n")

    names = ["registry.local", host.address, "controller-0"]
    if host.is_sc:
        names += ["registry.central", "system-controller"]
    pki.issue_server_cert(paths, hp.ctl / "server.crt", hp.ctl / "server.key", host.name, names)
    registries.write_config(
        hp.registry_config,
        listen=host.registry,
        storage="/var/lib/docker-distribution",
        cert=hp.ctl / "server.crt",
        key=hp.ctl / "server.key",
        htpasswd=paths.central_htpasswd if host.is_sc else paths.local_htpasswd,
    )
    write(
        hp.sshd_config,
        (
            f"# sshd of lab host {host.name}\n"
            f"ListenAddress {host.address}:{SSH_PORT}\n"
            f"HostKey {paths.host_key}\n"
            "PasswordAuthentication yes\nPubkeyAuthentication yes\n"
            "KbdInteractiveAuthentication no\n"
            f"UsePAM no\nPermitRootLogin no\nAllowUsers {SYSADMIN}\nPidFile none\nUseDNS no\n"
            "PrintMotd no\nPrintLastLog no\nX11Forwarding no\nAcceptEnv LANG LC_*\n"
            "MaxStartups 200\nMaxSessions 100\nLogLevel ERROR\n"
            "Subsystem sftp internal-sftp\n"
        ),
        0o600,
    )
    daemons = [
        f"sshd /usr/sbin/sshd -D -e -f {hp.sshd_config}",
        f"registry docker-registry serve {hp.registry_config}",
    ]
    if host.is_sc:
        ssh_dir = home / ".ssh"
        ssh_dir.mkdir(mode=0o700)
        write(
            ssh_dir / "authorized_keys",
            creds.controller_public_key,
            0o600,
            (SYSADMIN_UID, SYSADMIN_UID),
        )
        os.chown(ssh_dir, SYSADMIN_UID, SYSADMIN_UID)
        daemons.append(
            f"feed /usr/bin/python3 {DATA / 'feed-server'} {host.address} {FEED_HTTPS_PORT} "
            f"{FEED_HTTP_PORT} {hp.ctl / 'server.crt'} {hp.ctl / 'server.key'}"
        )
        daemons.append(dcmanager.daemon_row(paths, hp.ctl / "server.crt", hp.ctl / "server.key"))
    write(hp.daemons, "\n".join(daemons) + "\n")
    content(paths, host)


def _address_pools(host: LabHost) -> list[dict[str, Any]]:
    """`system addrpool-list` rows; the subclouds' system-controller-subnet floating address is
    where ostree-metadata-sync.sh pulls from (its awk field 14, STARLINGX.md §3 step 6)."""
    return [
        {
            "name": "oam",
            "network": str(NETWORK.network_address),
            "prefix": NETWORK.prefixlen,
            "ranges": [f"{host.address}-{host.address}"],
            "floating_address": host.address,
        },
        {
            "name": "system-controller-subnet",
            "network": str(NETWORK.network_address),
            "prefix": NETWORK.prefixlen,
            "ranges": [f"{SC_ADDRESS}-{SC_ADDRESS}"],
            "floating_address": SC_ADDRESS,
        },
    ]


# ------------------------------------------------------------------------------- running


def start(
    paths: Paths, hosts: list[LabHost], creds: Credentials, content: Callable[..., None]
) -> None:
    """Prepare the hosts' files, create their links and anchor processes (none of them running
    before), then wait until their daemons answer."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda host: prepare(paths, host, creds, content), hosts))
    network.create_host_links((host.veth, host.netns) for host in hosts)
    for host in hosts:
        hp = paths.host(host.name)
        with (hp.ctl / "init.log").open("ab") as out:
            subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    host.netns,
                    "unshare",
                    "--mount",
                    "--uts",
                    "--propagation",
                    "private",
                    "/bin/bash",
                    str(INIT_SCRIPT),
                    str(hp.root),
                    host.address,
                    str(NETWORK.prefixlen),
                    str(paths.root),
                    str(PYTHON39_HOME),
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
    wait_ready(paths, hosts, timeout=30 + 0.2 * len(hosts))


DCMANAGER_PORTS = (dcmanager.KEYSTONE_PORT, dcmanager.DCMANAGER_PORT)


def ports(host: LabHost) -> tuple[int, ...]:
    return (
        (SSH_PORT, REGISTRY_PORT, FEED_HTTPS_PORT, FEED_HTTP_PORT, *DCMANAGER_PORTS)
        if host.is_sc
        else (SSH_PORT, REGISTRY_PORT)
    )


def wait_ready(paths: Paths, hosts: list[LabHost], timeout: float) -> None:
    pending = {host.name: host for host in hosts}
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for name, host in list(pending.items()):
            if paths.host(name).init_pid.exists() and all(
                tcp_open(host.address, port, 0.2) for port in ports(host)
            ):
                del pending[name]
        if pending:
            time.sleep(0.05)
    if pending:
        name = sorted(pending)[0]
        tail = ""
        for log_name in (
            "init.log",
            "setup.log",
            "sshd.log",
            "registry.log",
            "feed.log",
            "dcmanager.log",
        ):
            log_path = paths.host(name).ctl / log_name
            if log_path.exists():
                tail += f"\n--- {log_path}:\n" + "\n".join(
                    log_path.read_text(errors="replace").splitlines()[-10:]
                )
        raise LabError(f"lab hosts not ready after {timeout:.0f}s: {sorted(pending)}{tail}")


def init_pid(paths: Paths, name: str) -> int | None:
    """The host's anchor pid when it is alive (mount namespace holder for nsenter)."""
    pid = read_pid(paths.host(name).init_pid)
    return pid if alive(pid) else None


def netns_of(name: str) -> str:
    return SC_NETNS if name == SC_NAME else netns_name(name)


def running(paths: Paths, name: str) -> bool:
    return init_pid(paths, name) is not None and netns_of(name) in network.lab_netns()


def require_init_pid(paths: Paths, name: str) -> int:
    pid = init_pid(paths, name)
    if pid is None:
        raise LabError(f"{name} is not running (lab/lab up?)")
    return pid


def nsenter(
    paths: Paths,
    name: str,
    *command: str,
    check: bool = True,
    input: str | None = None,
    network_too: bool = False,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run command as root inside the host's mount (and, optionally, network) namespace."""
    pid = require_init_pid(paths, name)
    flags = ["-m", "-u", *(["-n"] if network_too else [])]
    result = subprocess.run(
        ["nsenter", "-t", str(pid), *flags, "--", *command],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise LabError(
            f"{name}: {' '.join(command)} failed: {(result.stderr or result.stdout).strip()}"
        )
    return result


def stop(paths: Paths, names: list[str], timeout: float = 5.0) -> list[int]:
    """Kill every process in the hosts' namespaces (daemons first, so each anchor reaps its own
    children, then the anchors), delete namespaces and veths. Returns the killed pids."""
    namespaces = [netns_of(name) for name in names]
    present = network.lab_netns()
    anchors = {read_pid(paths.host(name).init_pid) for name in names}
    killed: list[int] = []
    for _ in range(5):  # a connection may be accepted while we kill: repeat until empty
        pids = [pid for ns in namespaces if ns in present for pid in network.netns_pids(ns)]
        if not pids:
            break
        killed += stop_pids([pid for pid in pids if pid not in anchors], timeout)
        killed += stop_pids([pid for pid in pids if pid in anchors], timeout)
    network.delete_netns(ns for ns in namespaces if ns in present)
    # a host started again gets a new MAC: forget the old one where it was learnt (the
    # controller's and the system controller's neighbour tables), or they talk to a ghost
    addresses = [
        SC_ADDRESS if name == SC_NAME else subcloud_address(subcloud_index(name))
        for name in names
        if name == SC_NAME or name.startswith("subcloud")
    ]
    network.forget_neighbours(addresses, [] if SC_NAME in names else [SC_NETNS])
    veths = []
    for name in names:
        if name == SC_NAME:
            veths.append(SC_VETH)
            continue
        try:
            veths.append(veth_name(subcloud_index(name)))
        except ValueError:
            continue
    network.delete_links(veths)
    return killed


def describe(paths: Paths, host: LabHost) -> dict[str, Any]:
    """The lab.json record of one host."""
    hp = paths.host(host.name)
    return {
        "id": host.index,
        "role": host.role,
        "address": host.address,
        "netns": host.netns,
        "veth": host.veth,
        "init_pid": read_pid(hp.init_pid),
        "registry": host.registry,
        "registry_pid_file": str(hp.registry_pid),
        "root": str(hp.root),
        "paths": hp.mounts(),
        "release": host.release,
        "system_mode": host.system_mode,
    }


def status(paths: Paths, host: LabHost) -> dict[str, Any]:
    hp = paths.host(host.name)

    def state(pid_file: Path, port: int) -> str:
        if not alive(read_pid(pid_file)):
            return "down"
        return "up" if tcp_open(host.address, port, 0.3) else "unreachable"

    faults: dict[str, Any] = {}
    if hp.faults.exists():
        faults = json.loads(hp.faults.read_text())
    report = {
        "running": init_pid(paths, host.name) is not None,
        "sshd": state(hp.sshd_pid, SSH_PORT),
        "registry": state(hp.registry_pid, REGISTRY_PORT),
        "faults": faults,
    }
    if host.is_sc:
        report["feed"] = state(hp.ctl / "feed.pid", FEED_HTTPS_PORT)
        report["dcmanager"] = state(hp.ctl / "dcmanager.pid", dcmanager.DCMANAGER_PORT)
    return report


def restart_daemon(paths: Paths, host: LabHost, name: str) -> None:
    """Start one of the host's daemons (ctl/daemons) again inside its namespaces."""
    hp = paths.host(host.name)
    if alive(read_pid(hp.ctl / f"{name}.pid")):
        return
    line = next(
        (row for row in hp.daemons.read_text().splitlines() if row.split(maxsplit=1)[:1] == [name]),
        None,
    )
    if line is None:
        raise LabError(f"{host.name} has no daemon {name}")
    init = require_init_pid(paths, host.name)
    with (hp.ctl / f"{name}.log").open("ab") as out:
        process = subprocess.Popen(
            ["nsenter", "-t", str(init), "-m", "-n", "-u", "--", *line.split()[1:]],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    atomic_write(hp.ctl / f"{name}.pid", f"{process.pid}\n")
    ports = {
        "feed": (FEED_HTTPS_PORT,),
        "registry": (REGISTRY_PORT,),
        "sshd": (SSH_PORT,),
        "dcmanager": DCMANAGER_PORTS,
    }.get(name, ())

    def listening() -> bool:
        return all(tcp_open(host.address, port) for port in ports)

    if ports and not wait_until(lambda: listening() or not alive(process.pid), 20):
        raise LabError(f"{host.name}: {name} did not come back")
    if not alive(process.pid):
        raise LabError(f"{host.name}: {name} exited; see {hp.ctl / f'{name}.log'}")


def ensure_daemon(paths: Paths, host: LabHost, name: str, row: str) -> None:
    """The host's ctl/daemons holds row for daemon name, and it runs: a system controller started
    by an older lab gets the daemon without a restart; an older command line is replaced."""
    hp = paths.host(host.name)
    rows = hp.daemons.read_text().splitlines()
    if row not in rows:
        others = [r for r in rows if r.split(maxsplit=1)[:1] != [name]]
        atomic_write(hp.daemons, "\n".join([*others, row]) + "\n")
        pid = read_pid(hp.ctl / f"{name}.pid")
        if pid is not None and alive(pid):
            stop_pids([pid])
    restart_daemon(paths, host, name)


def restart_registry(paths: Paths, host: LabHost) -> None:
    """Start the host's registry again inside its namespaces (after the registry-down fault)."""
    hp = paths.host(host.name)
    if registries.running_pid(hp.registry_pid, hp.registry_config) is not None:
        return
    init = require_init_pid(paths, host.name)
    pid = registries.start(
        hp.registry_config, hp.ctl / "registry.log", hp.registry_pid, enter_pid=init
    )
    registries.wait_listening(host.address, REGISTRY_PORT, pid)


def ensure_host_key(paths: Paths) -> None:
    """The sshd host key every lab host shares (a known, stable key)."""
    pki.ensure_ssh_key(paths.host_key, "dcprestage-lab")
