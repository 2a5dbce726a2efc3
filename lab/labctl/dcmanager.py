"""The system controller's Keystone + dcmanager API (data/dcmanager-api) and its database.

The database is one JSON file, {"subcloud_groups": [...], "subclouds": [...]}, in the API's own
shapes: groups as dcmanager's subcloud_group_db_model_to_dict makes them
(DC:distributedcloud/dcmanager/db/api.py:452-463), subclouds in the detail shape
(DC:dcmanager/db/api.py:121-151 + endpoint_sync_status + oam_floating_ip, api-ref
samples/subclouds/subcloud-get-detail-response.json). The lab writes it from registry.yml at
`up` and `reset`, and a registry fault's field (regfile.set_field) is carried into it; group
edits made through the API stay in it until the next `up`.

Writers (the daemon and the lab) replace the file atomically while holding an flock on its
directory, so neither loses the other's edit. `standalone()` runs the server on loopback for tests
and the bench; `generate()` makes a database of N subclouds.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from labctl.paths import NETWORK, SC_ADDRESS, Paths, subcloud_name
from labctl.util import LabError, atomic_write

API = Path(__file__).resolve().parent / "data" / "dcmanager-api"
# StarlingX's ports: Keystone's public API and dcmanager-api
# (DC:distributedcloud/dcmanager/api/api_config.py:36)
KEYSTONE_PORT = 5000
DCMANAGER_PORT = 8119
REGION = "SystemController"
USERNAME = "admin"
PROJECT = "admin"
DOMAIN = "Default"
# the endpoints dcmanager audits (api-ref samples/subclouds/subcloud-get-response.json)
ENDPOINT_TYPES = (
    "dc-cert", "firmware", "kubernetes", "kube-rootca", "platform", "identity", "software",
)  # fmt: skip
# registry.yml field -> the dcmanager field a registry fault changes
REGISTRY_FIELDS = {
    "availability": "availability-status",
    "management": "management-state",
    "deploy_status": "deploy-status",
    "software_version": "software-version",
    "backup_status": "backup-status",
    "prestage_status": "prestage-status",
}
CREATED = "2026-01-05 09:00:00.000000"  # a fixed past creation time: the file stays stable


def region_name(name: str) -> str:
    """A subcloud's region name: a UUID hex as dcmanager makes them (stable per name)."""
    return uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.dcprestage-lab").hex


def group_record(group: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": int(group["id"]),
        "name": str(group["name"]),
        "description": group.get("description") or f"{group['name']} subclouds",
        "update_apply_type": group.get("update_apply_type") or "parallel",
        "max_parallel_subclouds": int(group.get("max_parallel_subclouds") or 2),
        "created-at": None if int(group["id"]) == 1 else CREATED,
        "updated-at": None,
    }


def subcloud_record(entry: Mapping[str, Any], group_ids: Mapping[str, int]) -> dict[str, Any]:
    """The detail-shaped record of one registry.yml entry."""
    name = str(entry["name"])
    address = str(entry.get("oam_floating_address") or "") or None
    sync = str(entry.get("sync") or "in-sync")
    group = entry.get("group", "Default")
    return {
        "id": int(entry["id"]),
        "name": name,
        "description": entry.get("description") or f"Lab subcloud {name}",
        "location": entry.get("location") or "dcprestage lab",
        "software-version": str(entry.get("software_version") or ""),
        "management-state": entry.get("management", "managed"),
        "availability-status": entry.get("availability", "online"),
        "deploy-status": entry.get("deploy_status", "complete"),
        "backup-status": entry.get("backup_status"),
        "backup-datetime": None,
        "error-description": "No errors present",
        "region-name": region_name(name),
        "management-subnet": str(NETWORK),
        "management-start-ip": address,
        "management-end-ip": address,
        "management-gateway-ip": str(NETWORK.network_address + 1),
        "openstack-installed": False,
        "prestage-status": entry.get("prestage_status"),
        "prestage-versions": entry.get("prestage_versions"),
        "systemcontroller-gateway-ip": SC_ADDRESS,
        "data_install": None,
        "data_upgrade": None,
        "created-at": CREATED,
        "updated-at": None,
        "group_id": group_ids.get(str(group), 1),
        "peer_group_id": None,
        "rehome_data": None,
        "endpoint_sync_status": [
            {"endpoint_type": kind, "sync_status": sync} for kind in ENDPOINT_TYPES
        ],
        "oam_floating_ip": address,
        "deploy_config_sync_status": "Deployment: configurations up-to-date",
    }


def from_registry(registry: Mapping[str, Any]) -> dict[str, Any]:
    """The database of a registry.yml document (its groups and subclouds)."""
    groups = [group_record(g) for g in registry.get("groups") or [] if isinstance(g, dict)]
    if not any(g["id"] == 1 for g in groups):
        groups.insert(0, group_record({"id": 1, "name": "Default",
                                       "description": "Default Subcloud Group"}))  # fmt: skip
    ids = {g["name"]: g["id"] for g in groups}
    subclouds = [
        subcloud_record(item, ids)
        for item in registry.get("subclouds") or []
        if isinstance(item, dict) and "name" in item and "id" in item
    ]
    subclouds.sort(key=lambda s: s["id"])
    return {"subcloud_groups": sorted(groups, key=lambda g: g["id"]), "subclouds": subclouds}


def generate(count: int, groups: int = 3) -> dict[str, Any]:
    """A database of subcloud1..subcloud<count> (the bench's 5,000): the lab's groups, addresses
    past the lab's own 4084 continue in 10.251.x.x/10.252.x.x (never contacted)."""
    from labctl.regfile import GROUPS, default_entry  # noqa: PLC0415

    entries = []
    for index in range(1, count + 1):
        try:
            entry = default_entry(index)
        except ValueError:  # beyond the lab's network: an address nobody dials
            entry = {**default_entry(1), "id": index, "name": subcloud_name(index)}
            entry["oam_floating_address"] = str(IPv4Address("10.251.0.0") + index)
            entry["group"] = "Default" if index % 2 else "Edge_Serial"
        entries.append(entry)
    return from_registry({"groups": GROUPS[:groups], "subclouds": entries})


@contextlib.contextmanager
def _dir_lock(db: Path) -> Iterator[None]:
    """The writers' lock: an flock on the database's directory (data/dcmanager-api takes it)."""
    db.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(db.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write_db(db: Path, data: Mapping[str, Any]) -> None:
    with _dir_lock(db):
        atomic_write(db, json.dumps(data, indent=1) + "\n")


def read_db(db: Path) -> dict[str, Any]:
    try:
        data = json.loads(db.read_text())
    except (OSError, ValueError) as exc:
        raise LabError(f"cannot read the dcmanager database {db}: {exc}") from None
    if not isinstance(data, dict):
        raise LabError(f"the dcmanager database {db} is not a JSON object")
    return data


def set_subcloud_field(db: Path, name: str, registry_field: str, value: str | None) -> bool:
    """Carry one registry field of one subcloud into the database (a registry fault or its
    undo). False when the database or the subcloud is missing, or the field is not dcmanager's."""
    api_field = REGISTRY_FIELDS.get(registry_field)
    if api_field is None or not db.exists():
        return False
    with _dir_lock(db):
        data = read_db(db)
        for item in data.get("subclouds") or []:
            if item.get("name") == name:
                item[api_field] = value
                break
        else:
            return False
        atomic_write(db, json.dumps(data, indent=1) + "\n")
    return True


def refresh_subclouds(db: Path, registry: Mapping[str, Any], names: list[str]) -> None:
    """The named subclouds' records as the registry makes them (`lab reset`); the rest and the
    groups stay as they are."""
    if not db.exists():
        return
    with _dir_lock(db):
        data = read_db(db)
        ids = {str(g.get("name")): int(g["id"]) for g in data.get("subcloud_groups") or []}
        fresh = {
            str(item["name"]): subcloud_record(item, ids)
            for item in registry.get("subclouds") or []
            if isinstance(item, dict) and item.get("name") in names
        }
        data["subclouds"] = [fresh.pop(s.get("name"), s) for s in data.get("subclouds") or []]
        data["subclouds"] += fresh.values()
        atomic_write(db, json.dumps(data, indent=1) + "\n")


# ------------------------------------------------------------------------ the lab's daemon


def daemon_row(paths: Paths, cert: Path, key: Path) -> str:
    """The system controller's ctl/daemons row (host-init.sh and hosts.restart_daemon)."""
    return (
        f"dcmanager /usr/bin/python3 {API} --address {SC_ADDRESS} --keystone-port "
        f"{KEYSTONE_PORT} --dcmanager-port {DCMANAGER_PORT} --cert {cert} --key {key} "
        f"--db {paths.dcmanager_db} --password-file {paths.keystone_admin_password}"
    )


def auth_url(address: str = SC_ADDRESS, port: int = KEYSTONE_PORT) -> str:
    return f"https://{address}:{port}/v3"


def inventory_settings(paths: Paths) -> dict[str, Any]:
    """The `dcmanager:` block of the lab's inventory config (plugin_utils/_config.py's keys)."""
    return {
        "auth_url": auth_url(),
        "username": USERNAME,
        "project_name": PROJECT,
        "user_domain_name": DOMAIN,
        "project_domain_name": DOMAIN,
        "region_name": REGION,
        "password_env": "OS_PASSWORD",
        "ca_file": str(paths.ca_cert),
    }


def revoke_tokens(pid: int) -> None:
    """Every token issued so far is rejected from now on (the token-expiry fault)."""
    os.kill(pid, signal.SIGUSR1)


# ------------------------------------------------------------------------ standalone


@dataclass
class Standalone:
    """A server on loopback: its auth URL (…/v3), dcmanager URL (…/v1.0), CA, password, db."""

    keystone: str
    dcmanager: str
    ca: Path
    password: str
    password_file: Path
    db: Path
    process: subprocess.Popen[str]

    def revoke_tokens(self) -> None:
        revoke_tokens(self.process.pid)


@contextlib.contextmanager
def standalone(
    directory: Path,
    data: Mapping[str, Any] | None = None,
    *,
    password: str = "Keystone-lab-Pw!",
    token_ttl: float | None = None,
    python: str = sys.executable,
    timeout: float = 30.0,
) -> Iterator[Standalone]:
    """Run data/dcmanager-api on 127.0.0.1 (free ports) with a throw-away lab CA in directory;
    data (default: the 6-subcloud lab's) is written as its database. Stopped on exit."""
    from labctl import pki  # noqa: PLC0415

    directory.mkdir(parents=True, exist_ok=True)
    paths = Paths(directory)
    pki.ensure_ca(paths)
    cert, key = directory / "server.crt", directory / "server.key"
    if not cert.exists():
        pki.issue_server_cert(paths, cert, key, "127.0.0.1", ["127.0.0.1", "localhost"])
    db = directory / "dcmanager" / "db.json"
    write_db(db, data if data is not None else generate(6))
    password_file = directory / "keystone_admin_password"
    atomic_write(password_file, password + "\n", 0o600)
    command = [
        python, str(API), "--address", "127.0.0.1", "--keystone-port", "0",
        "--dcmanager-port", "0", "--cert", str(cert), "--key", str(key), "--db", str(db),
        "--password-file", str(password_file),
    ]  # fmt: skip
    if token_ttl is not None:
        command += ["--token-ttl", str(token_ttl)]
    log = (directory / "dcmanager-api.log").open("w")
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True
    )
    try:
        assert process.stdout is not None
        # the ready line comes once both ports listen; a failed start closes stdout (EOF)
        line = process.stdout.readline()
        if not line:
            process.wait(timeout)
            log.flush()
            tail = (directory / "dcmanager-api.log").read_text()[-2000:]
            raise LabError(f"dcmanager-api exited with {process.returncode}: {tail}")
        urls = json.loads(line)
        yield Standalone(
            urls["keystone"], urls["dcmanager"], paths.ca_cert, password, password_file, db, process
        )
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()
        log.close()


def main(argv: list[str] | None = None) -> int:
    """PYTHONPATH=lab python3 -m labctl.dcmanager generate N OUT.json | serve DIR (--count N |
    --db DB.json) [--token-ttl S]: a database of N subclouds; a standalone server on loopback."""
    parser = argparse.ArgumentParser(prog="python3 -m labctl.dcmanager", description=main.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="write a database of N subclouds")
    gen.add_argument("count", type=int, metavar="N")
    gen.add_argument("out", type=Path, metavar="OUT.json")
    serve = sub.add_parser(
        "serve",
        help="run data/dcmanager-api on 127.0.0.1 with a throw-away CA in DIR; prints one JSON "
        "line (keystone, dcmanager, ca, password_file, db) and serves until SIGTERM/SIGINT",
    )
    serve.add_argument("directory", type=Path, metavar="DIR")
    what = serve.add_mutually_exclusive_group(required=True)
    what.add_argument("--count", type=int, metavar="N")
    what.add_argument("--db", type=Path, metavar="DB.json")
    serve.add_argument("--token-ttl", type=float, metavar="SECONDS")
    args = parser.parse_args(argv)
    if args.command == "generate":
        if args.count < 1:
            parser.error("N must be at least 1")
        write_db(args.out, generate(args.count))
        print(f"{args.out}: {args.count} subcloud(s)")
        return 0
    if args.count is not None and args.count < 1:
        parser.error("N must be at least 1")
    data = generate(args.count) if args.count is not None else read_db(args.db)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGCHLD, lambda *_: None)  # the server exiting ends the pause
    try:
        with standalone(args.directory, data, token_ttl=args.token_ttl) as server:
            ready = {
                "keystone": server.keystone,
                "dcmanager": server.dcmanager,
                "ca": str(server.ca),
                "password_file": str(server.password_file),
                "db": str(server.db),
            }
            print(json.dumps(ready), flush=True)
            while server.process.poll() is None:
                signal.pause()
    except KeyboardInterrupt:
        pass
    except LabError as exc:
        print(f"labctl.dcmanager: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
