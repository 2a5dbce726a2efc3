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

from labctl import (
    consumers,
    content,
    dcmanager,
    faults,
    hosts,
    network,
    pki,
    regfile,
    stxcontent,
)
from labctl.paths import (
    BRIDGE,
    BRIDGE_ADDRESS,
    GUARD_ROUTE,
    MAX_SUBCLOUDS,
    NETNS_PREFIX,
    NETWORK,
    PYTHON39_HOME,
    REGISTRY_PORT,
    REGISTRY_USER,
    SC_ADDRESS,
    SC_NAME,
    SC_NETNS,
    SYSADMIN,
    Paths,
    lab_dir,
    subcloud_index,
    subcloud_name,
)
from labctl.util import (
    LabError,
    atomic_write,
    cmdline,
    locked,
    log,
    run,
    stop_pids,
    wait_reaped,
)

DEFAULT_SIZE = "2M"
TOOLS = (
    "ip",
    "tc",
    "unshare",
    "nsenter",
    "mount",
    "sshd",
    "ssh-keygen",
    "docker-registry",
    "skopeo",
    "umoci",
    "ostree",
    "htpasswd",
    "openssl",
    "rsync",
    "sshpass",
    "pigz",
)
# Kept by `down`: the system controller's content (slow to rebuild), its build caches, the CA
# and host key (trusted by name), the passwords and keys (stable across down/up), the Python 3.9
# venv; `down --purge` removes them too.
KEPT_BY_DOWN = ("sc", "content", "ca", "ca-private", "ssh", "secrets", "python3.9", "layers")


def _check_host() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (namespaces, mounts, a bridge)")
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        raise LabError(f"missing commands: {' '.join(missing)} — run scripts/bootstrap first")
    if not (PYTHON39_HOME / "bin" / "python3.9").exists():
        raise LabError(f"Python 3.9 (the lab hosts' python3) is missing: {PYTHON39_HOME}")


def _lab_names(paths: Paths) -> set[str]:
    """Subclouds the lab knows of: their directories and their namespaces."""
    names = {ns[len(NETNS_PREFIX) :] for ns in network.lab_netns() if ns != SC_NETNS}
    if paths.subclouds.is_dir():
        names |= {entry.name for entry in paths.subclouds.iterdir() if entry.is_dir()}
    return names


def _secrets(paths: Paths) -> dict[str, str]:
    """Passwords and keys, made once and kept (the subclouds' and the SC's sysadmin passwords
    differ: the SC has credentials of its own)."""
    passwords = {
        hosts.SUBCLOUD: pki.ensure_password(paths.sysadmin_password, "Lab"),
        hosts.SYSTEMCONTROLLER: pki.ensure_password(paths.sc_sysadmin_password, "Sc"),
    }
    central = pki.ensure_password(paths.central_registry_password, "Central")
    local = pki.ensure_password(paths.local_registry_password, "Local")
    pki.ensure_password(paths.keystone_admin_password, "Keystone")
    if not paths.central_htpasswd.exists():
        pki.write_htpasswd(paths.central_htpasswd, REGISTRY_USER, central)
    if not paths.local_htpasswd.exists():
        pki.write_htpasswd(paths.local_htpasswd, REGISTRY_USER, local)
    pki.write_auth_file(
        paths.registry_auth,
        REGISTRY_USER,
        central,
        [f"{SC_ADDRESS}:{REGISTRY_PORT}", f"registry.central:{REGISTRY_PORT}"],
    )
    pki.ensure_ssh_key(paths.controller_key, "dcprestage lab controller")
    return passwords


# The lab's bring-up, its steps in order: past ruff's PLR0915 limit.
def up(paths: Paths, count: int, size_arg: str | None, sc_release_arg: str | None = None) -> int:  # noqa: PLR0915
    if not 1 <= count <= MAX_SUBCLOUDS:
        raise LabError(f"N must be between 1 and {MAX_SUBCLOUDS}")
    _check_host()
    if any(c.isspace() for c in str(paths.root)):
        raise LabError(f"the run directory {paths.root} must have no white space in its path")
    started = time.monotonic()
    paths.root.mkdir(parents=True, exist_ok=True)
    with locked(paths.lock):
        size = content.feed_size(paths, size_arg, DEFAULT_SIZE)
        sc_release = content.sc_release(paths, sc_release_arg)
        built = content.built_sc_release(paths)
        # a system controller of another release: its content, and every subcloud (they run
        # its release or the previous one), are built anew
        rerelease = built is not None and built != sc_release
        pki.ensure_ca(paths)
        passwords = _secrets(paths)
        network.ensure_bridge()
        content.ensure_python39(paths)
        content.ensure_layers(paths)
        hosts.ensure_host_key(paths)
        entries = regfile.sync(paths, count, sc_release, rerelease=rerelease)
        # dcmanager's database as the registry says (group edits made through the API go)
        dcmanager.write_db(paths.dcmanager_db, dcmanager.from_registry(regfile.load(paths)))
        regfile.write_inventory_config(paths)
        regfile.write_dcmanager_inventory_config(paths)
        regfile.write_password_inventory(paths)

        creds: hosts.Credentials | None = None

        def credentials() -> hosts.Credentials:
            nonlocal creds
            if creds is None:
                creds = hosts.Credentials.read(paths, passwords)
            return creds

        sc = content.system_controller(sc_release)
        sc_started = False
        if not hosts.running(paths, SC_NAME) or content.sc_outdated(paths, size, sc_release):
            hosts.stop(paths, [SC_NAME])
            content.ensure_sc_content(paths, size, sc_release)
            hosts.start(paths, [sc], credentials(), content.write_host_content)
            sc_started = True
        elif "dcmanager-down" not in faults.active(paths, SC_NAME):
            # a system controller an older lab started may lack the dcmanager API
            sc_hp = paths.host(SC_NAME)
            row = dcmanager.daemon_row(paths, sc_hp.ctl / "server.crt", sc_hp.ctl / "server.key")
            hosts.ensure_daemon(paths, sc, "dcmanager", row)
        content.ensure_images(paths)

        extra = []
        for name in _lab_names(paths):
            try:
                if subcloud_index(name) > count:
                    extra.append(name)
            except ValueError:
                extra.append(name)
        if extra:
            log(f"removing {len(extra)} subcloud(s) above {count}")
            hosts.stop(paths, extra)
            for name in extra:
                shutil.rmtree(paths.subcloud(name).root, ignore_errors=True)

        wanted = []
        for index in range(1, count + 1):
            name = subcloud_name(index)
            entry = entries[name]
            wanted.append(
                hosts.LabHost(
                    name,
                    str(entry.get("software_version")),
                    str(entry.get("system_mode")),
                )
            )
        to_start = [h for h in wanted if not hosts.running(paths, h.name) or sc_started]
        if to_start:
            hosts.stop(paths, [h.name for h in to_start])  # leftovers of a crash, if any
            hosts.start(paths, to_start, credentials(), content.write_host_content)
        _write_lab_json(paths, sc, wanted, size)
    print(
        f"lab: {count} subcloud(s) and the {sc_release} system controller up "
        f"({len(to_start)} started) in "
        f"{time.monotonic() - started:.1f}s; inventory {paths.inventory_config}; "
        f"sysadmin password in {paths.sysadmin_password}"
    )
    return 0


def _write_lab_json(
    paths: Paths, sc: hosts.LabHost, wanted: list[hosts.LabHost], size: int
) -> None:
    info = {
        "schema": 2,
        "lab_dir": str(paths.root),
        "bridge": {
            "name": BRIDGE,
            "address": BRIDGE_ADDRESS,
            "prefixlen": NETWORK.prefixlen,
            "network": str(NETWORK),
            "guard_route": f"unreachable {GUARD_ROUTE}",
        },
        "ca": str(paths.ca_cert),
        "ca_dir": str(paths.ca_dir),
        "python3": str(paths.python39),
        "sysadmin": {"user": SYSADMIN, "password_file": str(paths.sysadmin_password)},
        "registry_auth": {
            "user": REGISTRY_USER,
            "central_password_file": str(paths.central_registry_password),
            "local_password_file": str(paths.local_registry_password),
            "auth_file": str(paths.registry_auth),
        },
        "inventory": str(paths.inventory_config),
        "dcmanager": {
            "inventory": str(paths.dcmanager_inventory_config),
            "auth_url": dcmanager.auth_url(),
            "db": str(paths.dcmanager_db),
            "password_file": str(paths.keystone_admin_password),
        },
        "registry_file": str(paths.registry_file),
        "system_controller": {
            **hosts.describe(paths, sc),
            "name": SC_NAME,
            "ssh_key": str(paths.controller_key),
            "password_file": str(paths.sc_sysadmin_password),
            "size_bytes": size,
            **content.describe_sc(paths),
        },
        "subclouds": {h.name: hosts.describe(paths, h) for h in wanted},
    }
    atomic_write(paths.lab_json, json.dumps(info, indent=2) + "\n")


def _lab_daemons(root: Path) -> list[int]:
    """Live lab daemons (registries, sshds, host anchors) found by the run directory on their
    command line: catches anything a lost netns left behind.
    Other programs that merely read lab files (e.g. an rsync of a feed) are not touched."""
    marker = str(root) + "/"
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        args = cmdline(int(entry.name))
        program = os.path.basename(args[0]) if args else ""
        daemon = program in ("docker-registry", "sshd") or any(
            script in " ".join(args) for script in ("feed-server", "dcmanager-api")
        )
        anchor = hosts.INIT_SCRIPT.name in " ".join(args)
        if (daemon or anchor) and any(marker in arg for arg in args):
            found.append(int(entry.name))
    return found


def down(paths: Paths, purge: bool) -> int:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (namespaces, mounts, a bridge)")
    paths.root.mkdir(parents=True, exist_ok=True)
    with locked(paths.lock):
        names = sorted(_lab_names(paths))
        killed = hosts.stop(paths, [*names, SC_NAME])
        killed += stop_pids(network.lab_ssh_clients())
        killed += stop_pids(_lab_daemons(paths.root))  # strays
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
    sc_info = info["system_controller"]
    sc = hosts.LabHost(SC_NAME, sc_info["release"])
    report: dict[str, Any] = {
        "up": True,
        "lab_dir": str(paths.root),
        "bridge": info["bridge"],
        "system_controller": {
            "address": sc.address,
            "release": sc.release,
            **hosts.status(paths, sc),
        },
        "subclouds": {},
    }
    for name, record in info["subclouds"].items():
        entry = entries.get(name, {})
        host = hosts.LabHost(name, str(entry.get("software_version")))
        report["subclouds"][name] = {
            "address": record["address"],
            "release": entry.get("software_version"),
            "system_mode": entry.get("system_mode"),
            "management": entry.get("management"),
            "availability": entry.get("availability"),
            **hosts.status(paths, host),
        }
    if as_json:
        print(json.dumps(report, indent=2))
        return 0
    scr = report["system_controller"]
    print(f"lab: {paths.root}")
    print(
        f"bridge {BRIDGE} {BRIDGE_ADDRESS}/{NETWORK.prefixlen} (controller); system "
        f"controller {scr['address']} {scr['release']}: sshd {scr['sshd']}, registry.central "
        f"{scr['registry']}, feed {scr['feed']}, dcmanager {scr['dcmanager']}, faults "
        f"{','.join(scr['faults']) or '-'}"
    )
    header = ("NAME", "ADDRESS", "RELEASE", "MODE", "ADMIN", "SSHD", "REGISTRY", "FAULTS")
    rows = [header]
    for name, sc_row in report["subclouds"].items():
        admin = f"{sc_row['management']}/{sc_row['availability']}"
        rows.append(
            (
                name,
                sc_row["address"],
                str(sc_row["release"]),
                str(sc_row["system_mode"]),
                admin,
                sc_row["sshd"],
                sc_row["registry"],
                ",".join(sc_row["faults"]) or "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    return 0


def reset(paths: Paths, names: list[str]) -> int:
    """Subclouds as `up` makes them: their files anew, their daemons restarted (a test that
    prestaged or changed one leaves it as it found it)."""
    _check_host()
    with locked(paths.lock):
        entries = regfile.entries(paths)
        unknown = [name for name in names if name not in entries]
        if unknown:
            raise LabError(f"not subclouds of this lab: {', '.join(unknown)}")
        wanted = [
            hosts.LabHost(
                name,
                str(entries[name].get("software_version")),
                str(entries[name].get("system_mode")),
            )
            for name in names
        ]
        passwords = _secrets(paths)
        hosts.stop(paths, names)
        hosts.start(
            paths, wanted, hosts.Credentials.read(paths, passwords), content.write_host_content
        )
        dcmanager.refresh_subclouds(paths.dcmanager_db, regfile.load(paths), names)
        info = json.loads(paths.lab_json.read_text())
        for host in wanted:
            info["subclouds"][host.name] = hosts.describe(paths, host)
        atomic_write(paths.lab_json, json.dumps(info, indent=2) + "\n")
    print(f"lab: {', '.join(names)} reset")
    return 0


def fault(paths: Paths, name: str, subcloud: str, args: list[str], undo: bool) -> int:
    _check_host()
    with locked(paths.lock):
        print(faults.apply(paths, name, subcloud, args, undo))
    return 0


def consume(paths: Paths, args: argparse.Namespace) -> int:
    """lab/lab consume CHECK HOST [ARGS]: one consumer check (labctl.consumers), read-only."""
    try:
        ok = consumers.run(
            paths,
            args.check,
            args.host,
            args.args,
            source=args.source,
            crictl=args.crictl,
            require_checksum=args.require_checksum,
        )
    except consumers.ConsumerFailed as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return 1
    print(f"ok: {ok}")
    return 0


def _parser() -> argparse.ArgumentParser:
    fault_help = "\n".join(
        f"  {name} SUBCLOUD {usage}".rstrip() for name, (_, _, usage) in faults.FAULTS.items()
    )
    parser = argparse.ArgumentParser(
        prog="lab/lab",
        description="The dcprestage lab: a simulated StarlingX system controller and subclouds "
        "on this machine.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"faults (each undone with --undo):\n{fault_help}",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="bring N subclouds and the system controller side up")
    p_up.add_argument("count", type=int, metavar="N")
    p_up.add_argument(
        "--size",
        help=f"approximate size of each release feed (default "
        f"{DEFAULT_SIZE}, or what the existing feeds were built with)",
    )
    p_up.add_argument(
        "--sc-release",
        choices=stxcontent.SC_RELEASES,
        help=f"the system controller's release (default {stxcontent.SC_RELEASE}, or what the "
        "existing lab was built with); subclouds run it, every 4th the release before it. A "
        "change rebuilds the system controller's content and every subcloud.",
    )
    p_down = sub.add_parser("down", help="remove everything the lab runs")
    p_down.add_argument(
        "--purge", action="store_true", help="also delete the run directory (feeds, images, CA)"
    )
    p_reset = sub.add_parser("reset", help="rebuild subclouds as `up` makes them")
    p_reset.add_argument("names", nargs="+", metavar="SUBCLOUD")
    p_status = sub.add_parser("status", help="subclouds, addresses, sshd/registry state")
    p_status.add_argument("--json", action="store_true")
    p_fault = sub.add_parser(
        "fault",
        help="apply or undo a fault",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"faults:\n{fault_help}",
    )
    p_fault.add_argument("fault", choices=sorted(faults.FAULTS), metavar="FAULT")
    p_fault.add_argument("subcloud")
    p_fault.add_argument("args", nargs="*")
    p_fault.add_argument("--undo", action="store_true")
    checks = "\n".join(f"  {name} HOST {usage}" for name, usage in consumers.CHECKS.items())
    p_consume = sub.add_parser(
        "consume",
        help="would a consumer of prestaged content take it?",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"checks:\n{checks}",
    )
    p_consume.add_argument("check", choices=sorted(consumers.CHECKS), metavar="CHECK")
    p_consume.add_argument("host", metavar="HOST")
    p_consume.add_argument("args", nargs="*", metavar="ARGS")
    p_consume.add_argument(
        "--source",
        help="a copy inside the host to read instead (prestage "
        "dir, ostree repo or feed dir, by check)",
    )
    p_consume.add_argument("--crictl", action="store_true", help="local-images: also crictl")
    p_consume.add_argument(
        "--require-checksum",
        action="store_true",
        help="miniboot: fail without .ostree_repo_checksum",
    )
    return parser


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0911 - one return per command
    args = _parser().parse_args(argv)
    try:
        paths = Paths(lab_dir())
        if args.command == "up":
            return up(paths, args.count, args.size, args.sc_release)
        if args.command == "down":
            return down(paths, args.purge)
        if args.command == "reset":
            return reset(paths, args.names)
        if args.command == "status":
            return status(paths, args.json)
        if args.command == "consume":
            return consume(paths, args)
        return fault(paths, args.fault, args.subcloud, args.args, args.undo)
    except LabError as exc:
        print(f"lab: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
