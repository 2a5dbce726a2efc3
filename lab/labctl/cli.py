"""lab/lab up | down | status | fault — the one command of the lab."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from labctl import faults, network, pki, regfile, registries, sccontent, subclouds
from labctl.paths import (
    BRIDGE,
    BRIDGE_ADDRESS,
    GUARD_ROUTE,
    MAX_SUBCLOUDS,
    NETNS_PREFIX,
    NETWORK,
    REGISTRY_PORT,
    REGISTRY_USER,
    RELEASES,
    SC_RELEASE,
    SYSADMIN,
    Paths,
    lab_dir,
    subcloud_address,
    subcloud_index,
    subcloud_name,
)
from labctl.util import (
    LabError,
    alive,
    atomic_write,
    cmdline,
    locked,
    log,
    parse_size,
    run,
    stop_pids,
    wait_reaped,
)

DEFAULT_SIZE = "2M"
TOOLS = ("ip", "tc", "unshare", "nsenter", "mount", "sshd", "ssh-keygen", "docker-registry",
         "skopeo", "umoci", "ostree", "htpasswd", "openssl")  # fmt: skip
# Kept by `down`: deterministic SC content (slow to rebuild), the CA and host key (trusted by
# name) and the passwords (stable across down/up); `down --purge` removes them too.
KEPT_BY_DOWN = ("sc", "ca", "ca-private", "ssh", "secrets")


def _check_host() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (namespaces, mounts, a bridge)")
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        raise LabError(f"missing commands: {' '.join(missing)} — run scripts/bootstrap first")


def _feed_size(paths: Paths, requested: str | None) -> int:
    """--size, else the size the existing feeds were built with, else DEFAULT_SIZE."""
    if requested:
        return parse_size(requested)
    sizes = set()
    for release in RELEASES:
        try:
            stamp = paths.feed_dir / f"rel-{release}" / ".lab-feed.json"
            sizes.add(json.loads(stamp.read_text())["size"])
        except (OSError, ValueError, KeyError):
            sizes.add(None)
    if len(sizes) == 1 and None not in sizes:
        return int(sizes.pop())
    return parse_size(DEFAULT_SIZE)


def _lab_names(paths: Paths) -> set[str]:
    """Subclouds the lab knows of: their directories and their namespaces."""
    names = {ns[len(NETNS_PREFIX) :] for ns in network.lab_netns()}
    if paths.subclouds.is_dir():
        names |= {entry.name for entry in paths.subclouds.iterdir() if entry.is_dir()}
    return names


def up(paths: Paths, count: int, size_arg: str | None) -> int:
    if not 1 <= count <= MAX_SUBCLOUDS:
        raise LabError(f"N must be between 1 and {MAX_SUBCLOUDS}")
    _check_host()
    started = time.monotonic()
    paths.root.mkdir(parents=True, exist_ok=True)
    with locked(paths.lock):
        size = _feed_size(paths, size_arg)
        pki.ensure_ca(paths)
        password = pki.ensure_password(paths.sysadmin_password, "Lab")
        registry_password = pki.ensure_password(paths.registry_password, "Reg")
        if not paths.htpasswd.exists():
            pki.write_htpasswd(paths.htpasswd, REGISTRY_USER, registry_password)
        registry_hosts = [sccontent.CENTRAL_REGISTRY, f"registry.central:{REGISTRY_PORT}",
                          f"registry.local:{REGISTRY_PORT}"] + [
            f"{subcloud_address(i)}:{REGISTRY_PORT}" for i in range(1, count + 1)
        ]  # fmt: skip
        pki.write_auth_file(paths.registry_auth, REGISTRY_USER, registry_password, registry_hosts)
        network.ensure_bridge()
        sc_facts = sccontent.ensure_all(paths, size)
        entries = regfile.sync(paths, count)
        regfile.write_inventory_config(paths, sccontent.CENTRAL_REGISTRY)
        subclouds.ensure_shared(paths)

        extra = []
        for name in _lab_names(paths):
            try:
                if subcloud_index(name) > count:
                    extra.append(name)
            except ValueError:
                extra.append(name)
        if extra:
            log(f"removing {len(extra)} subcloud(s) above {count}")
            subclouds.stop(paths, extra)
            for name in extra:
                shutil.rmtree(paths.subcloud(name).root, ignore_errors=True)

        wanted = []
        for index in range(1, count + 1):
            name = subcloud_name(index)
            entry = entries[name]
            wanted.append(subclouds.Subcloud(
                name, str(entry.get("software_version")), str(entry.get("system_mode")),
            ))  # fmt: skip
        to_start = [sc for sc in wanted if not subclouds.running(paths, sc.name)]
        if to_start:
            subclouds.stop(paths, [sc.name for sc in to_start])  # leftovers of a crash, if any
            host = subclouds.HostFiles.read(paths, password)
            subclouds.start(paths, to_start, host)
        _write_lab_json(paths, wanted, size, sc_facts)
    print(
        f"lab: {count} subcloud(s) up ({len(to_start)} started) in "
        f"{time.monotonic() - started:.1f}s; inventory {paths.inventory_config}; "
        f"sysadmin password in {paths.sysadmin_password}"
    )
    return 0


def _write_lab_json(
    paths: Paths, wanted: list[subclouds.Subcloud], size: int, sc_facts: dict[str, Any]
) -> None:
    info = {
        "schema": 1,
        "lab_dir": str(paths.root),
        "bridge": {"name": BRIDGE, "address": BRIDGE_ADDRESS, "prefixlen": NETWORK.prefixlen,
                   "network": str(NETWORK), "guard_route": f"unreachable {GUARD_ROUTE}"},
        "central_registry": {"address": sccontent.CENTRAL_REGISTRY,
                             "pid_file": str(paths.central / "registry.pid"),
                             "storage": str(paths.central / "storage")},
        "ca": str(paths.ca_cert),
        "ca_dir": str(paths.ca_dir),
        "sysadmin": {"user": SYSADMIN, "password_file": str(paths.sysadmin_password)},
        "registry_auth": {"user": REGISTRY_USER, "password_file": str(paths.registry_password),
                          "auth_file": str(paths.registry_auth)},
        "inventory": str(paths.inventory_config),
        "registry_file": str(paths.registry_file),
        "sc": {
            "release": SC_RELEASE,
            "releases": list(RELEASES),
            "size_bytes": size,
            "feed_dir": str(paths.feed_dir),
            "feeds": {r: str(paths.feed_dir / f"rel-{r}" / "ostree_repo") for r in RELEASES},
            "software_dir": str(paths.software_dir),
            "software": {r: str(paths.software_dir / r) for r in RELEASES},
            "software_releases": sc_facts["software"],
            "image_list_dir": str(paths.image_list_dir),
            "image_lists": sc_facts["image_lists"],
            "images": {r: [f"{sccontent.CENTRAL_REGISTRY}/{ref}" for ref in refs]
                       for r, refs in sccontent.IMAGES.items()},
            "oci_layout": str(paths.oci_dir),
        },
        "subclouds": {sc.name: subclouds.describe(paths, sc) for sc in wanted},
    }  # fmt: skip
    atomic_write(paths.lab_json, json.dumps(info, indent=2) + "\n")


def _lab_daemons(root: Path) -> list[int]:
    """Live lab daemons (registries, sshds, subcloud anchors) found by the run directory on
    their command line: catches the central registry and anything a lost netns left behind.
    Other programs that merely read lab files (e.g. an rsync of a feed) are not touched."""
    marker = str(root) + "/"
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        args = cmdline(int(entry.name))
        program = os.path.basename(args[0]) if args else ""
        daemon = program in ("docker-registry", "sshd")
        anchor = subclouds.INIT_SCRIPT.name in " ".join(args)
        if (daemon or anchor) and any(marker in arg for arg in args):
            found.append(int(entry.name))
    return found


def down(paths: Paths, purge: bool) -> int:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (namespaces, mounts, a bridge)")
    paths.root.mkdir(parents=True, exist_ok=True)
    with locked(paths.lock):
        names = sorted(_lab_names(paths))
        killed = subclouds.stop(paths, names)
        killed += stop_pids(network.lab_ssh_clients())
        killed += stop_pids(_lab_daemons(paths.root))  # the central registry, strays
        network.delete_links(sorted(network.lab_links() - {BRIDGE}))
        network.remove_bridge_and_route()
        _unmount_below(paths.root)
        for entry in paths.root.iterdir():
            if entry.name == paths.lock.name or (not purge and entry.name in KEPT_BY_DOWN):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    if purge:
        shutil.rmtree(paths.root, ignore_errors=True)
    if not wait_reaped(killed):
        log("some lab processes are still waiting to be reaped by pid 1")
    print(f"lab: down ({len(names)} subcloud(s) removed)")
    return 0


def _unmount_below(root: Path) -> None:
    """Unmount anything mounted under the run directory in this mount namespace."""
    prefix = str(root) + "/"
    with open("/proc/self/mountinfo") as handle:
        points = [line.split()[4] for line in handle]
    for point in sorted((p for p in points if p.startswith(prefix)), reverse=True):
        run(["umount", "--lazy", point], check=False)


def status(paths: Paths, as_json: bool) -> int:
    if not paths.lab_json.exists():
        print(json.dumps({"up": False}) if as_json else "lab: down")
        return 3
    info = json.loads(paths.lab_json.read_text())
    entries = regfile.entries(paths)
    central_pid = registries.running_pid(
        paths.central / "registry.pid", paths.central / "config.yml"
    )
    report: dict[str, Any] = {
        "up": True,
        "lab_dir": str(paths.root),
        "bridge": info["bridge"],
        "central_registry": {"address": sccontent.CENTRAL_REGISTRY,
                             "state": "up" if alive(central_pid) else "down"},
        "subclouds": {},
    }  # fmt: skip
    for name, sc in info["subclouds"].items():
        entry = entries.get(name, {})
        report["subclouds"][name] = {
            "address": sc["address"],
            "release": entry.get("software_version"),
            "system_mode": entry.get("system_mode"),
            "management": entry.get("management"),
            "availability": entry.get("availability"),
            **subclouds.status(paths, name, sc["address"]),
        }
    if as_json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"lab: {paths.root}")
    print(f"bridge {BRIDGE} {BRIDGE_ADDRESS}/{NETWORK.prefixlen}; central registry "
          f"{sccontent.CENTRAL_REGISTRY} {report['central_registry']['state']}")  # fmt: skip
    header = ("NAME", "ADDRESS", "RELEASE", "MODE", "ADMIN", "SSHD", "REGISTRY", "FAULTS")
    rows = [header]
    for name, sc in report["subclouds"].items():
        admin = f"{sc['management']}/{sc['availability']}"
        rows.append((name, sc["address"], str(sc["release"]), str(sc["system_mode"]), admin,
                     sc["sshd"], sc["registry"], ",".join(sc["faults"]) or "-"))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    return 0


def fault(paths: Paths, name: str, subcloud: str, args: list[str], undo: bool) -> int:
    _check_host()
    with locked(paths.lock):
        print(faults.apply(paths, name, subcloud, args, undo))
    return 0


def _parser() -> argparse.ArgumentParser:
    fault_help = "\n".join(
        f"  {name} SUBCLOUD {usage}".rstrip() for name, (_, _, usage) in faults.FAULTS.items()
    )
    parser = argparse.ArgumentParser(
        prog="lab/lab",
        description="The dcprestage lab: simulated StarlingX subclouds on this machine.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"faults (each undone with --undo):\n{fault_help}",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="bring N subclouds and the system controller side up")
    p_up.add_argument("count", type=int, metavar="N")
    p_up.add_argument("--size", help=f"approximate size of each release feed (default "
                      f"{DEFAULT_SIZE}, or what the existing feeds were built with)")  # fmt: skip
    p_down = sub.add_parser("down", help="remove everything the lab runs")
    p_down.add_argument("--purge", action="store_true",
                        help="also delete the run directory (feeds, images, CA)")  # fmt: skip
    p_status = sub.add_parser("status", help="subclouds, addresses, sshd/registry state")
    p_status.add_argument("--json", action="store_true")
    p_fault = sub.add_parser("fault", help="apply or undo a fault",
                             formatter_class=argparse.RawDescriptionHelpFormatter,
                             epilog=f"faults:\n{fault_help}")  # fmt: skip
    p_fault.add_argument("fault", choices=sorted(faults.FAULTS), metavar="FAULT")
    p_fault.add_argument("subcloud")
    p_fault.add_argument("args", nargs="*")
    p_fault.add_argument("--undo", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        paths = Paths(lab_dir())
        if args.command == "up":
            return up(paths, args.count, args.size)
        if args.command == "down":
            return down(paths, args.purge)
        if args.command == "status":
            return status(paths, args.json)
        return fault(paths, args.fault, args.subcloud, args.args, args.undo)
    except LabError as exc:
        print(f"lab: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
