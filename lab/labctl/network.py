"""The lab network: a bridge in the root namespace (the controller's side), one netns + veth per
lab host (the system controller and each subcloud), a guard route."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from collections.abc import Iterable
from ipaddress import IPv4Address
from pathlib import Path

from labctl.paths import (
    BRIDGE,
    BRIDGE_ADDRESS,
    GUARD_ROUTE,
    NETNS_PREFIX,
    NETWORK,
    VETH_PREFIX,
)
from labctl.util import run


def ip_batch(lines: Iterable[str], *, force: bool = False) -> None:
    """Run many `ip` commands in one process (ip -batch); force: carry on past errors."""
    script = "".join(f"{line}\n" for line in lines)
    if script:
        run(["ip", *(["-force"] if force else []), "-batch", "-"], input=script, check=not force)


def lab_netns() -> set[str]:
    """Lab network namespaces that exist (by name prefix)."""
    out = run(["ip", "netns", "list"]).stdout
    return {line.split()[0] for line in out.splitlines() if line.startswith(NETNS_PREFIX)}


def links() -> set[str]:
    """Interface names in the root namespace."""
    out = run(["ip", "-o", "link", "show"]).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line}


def lab_links() -> set[str]:
    return {name for name in links() if name == BRIDGE or name.startswith(VETH_PREFIX)}


def ensure_bridge() -> None:
    """The bridge with the controller's address, and the guard route for the whole /16."""
    if BRIDGE not in links():
        run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    ip_batch(
        [
            f"addr replace {BRIDGE_ADDRESS}/{NETWORK.prefixlen} dev {BRIDGE}",
            f"link set {BRIDGE} up",
            f"route replace unreachable {GUARD_ROUTE}",
        ]
    )


def create_host_links(hosts: Iterable[tuple[str, str]]) -> None:
    """For each (veth, netns): the namespace, a veth pair with eth0 inside, the host side on the
    bridge."""
    lines: list[str] = []
    for veth, ns in hosts:
        lines += [
            f"netns add {ns}",
            f"link add {veth} type veth peer name eth0 netns {ns}",
            f"link set {veth} master {BRIDGE} up",
        ]
    ip_batch(lines)


def link_bytes(name: str) -> tuple[int, int]:
    """(rx, tx) byte counters of a root-namespace interface."""
    base = Path("/sys/class/net") / name / "statistics"
    return int((base / "rx_bytes").read_text()), int((base / "tx_bytes").read_text())


def forget_neighbours(addresses: Iterable[str], namespaces: Iterable[str] = ()) -> None:
    """Flush the neighbour (ARP) entries of addresses in the root namespace and namespaces."""
    lines = [f"neigh flush to {address}" for address in addresses]
    ip_batch(lines, force=True)
    for ns in namespaces:
        if ns in lab_netns():
            run(
                ["ip", "-n", ns, "-force", "-batch", "-"],
                input="".join(f"{x}\n" for x in lines),
                check=False,
            )


def netns_pids(ns: str) -> list[int]:
    proc = run(["ip", "netns", "pids", ns], check=False)
    return [int(tok) for tok in proc.stdout.split() if tok.isdigit()]


def delete_netns(names: Iterable[str]) -> None:
    ip_batch((f"netns del {ns}" for ns in names), force=True)


def delete_links(names: Iterable[str]) -> None:
    present = links()
    ip_batch((f"link del {name}" for name in names if name in present), force=True)


def remove_bridge_and_route() -> None:
    if BRIDGE in links():
        run(["ip", "link", "del", BRIDGE], check=False)
    routes = run(["ip", "route", "show", "type", "unreachable"], check=False).stdout
    if any(line.split()[:2] == ["unreachable", GUARD_ROUTE] for line in routes.splitlines()):
        run(["ip", "route", "del", "unreachable", GUARD_ROUTE], check=False)


# ----------------------------------------------------------------- ssh clients (ControlPersist)


def _lab_socket_inodes() -> set[str]:
    """Inodes of root-namespace TCP sockets whose peer is a lab address."""
    inodes: set[str] = set()
    with contextlib.suppress(OSError), open("/proc/net/tcp") as handle:
        next(handle, None)
        for line in handle:
            fields = line.split()
            remote_hex = fields[2].split(":")[0]
            remote = IPv4Address(socket.inet_ntoa(struct.pack("<I", int(remote_hex, 16))))
            if remote in NETWORK and fields[9] != "0":
                inodes.add(fields[9])
    return inodes


def lab_ssh_clients() -> list[int]:
    """ssh processes (e.g. ControlPersist masters) connected to a lab address, by their sockets."""
    inodes = _lab_socket_inodes()
    if not inodes:
        return []
    wanted = {f"socket:[{inode}]" for inode in inodes}
    found: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if Path(f"/proc/{entry.name}/comm").read_text().strip() != "ssh":
                continue
            fds = os.listdir(f"/proc/{entry.name}/fd")
            if any(os.readlink(f"/proc/{entry.name}/fd/{fd}") in wanted for fd in fds):
                found.append(int(entry.name))
        except OSError:
            continue
    return found
