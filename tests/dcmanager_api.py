"""The lab's Keystone + dcmanager API server (lab/labctl/data/dcmanager-api), run standalone on
loopback for the tests of the dcmanager source: a real HTTPS server with a throw-away CA made by
the lab's pki helpers, and its database (one JSON file in the API's shapes) written from a
subcloud registry.

    api = start_dcmanager_api(tmp_path, db_from_registry(registry_yml))
    api.config()            # the inventory config's `dcmanager:` mapping for it
    api.env()               # the environment holding its password (OS_PASSWORD)
    api.edit_db(change)     # change the database (the server re-reads it)
    api.revoke_tokens()     # every token issued so far gets 401 (the token-expiry fault)
    api.stop()

The `dcmanager_api` fixture (tests/conftest.py) starts one per test on the example registry.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SERVER = ROOT / "lab" / "labctl" / "data" / "dcmanager-api"
# Where the server script is when it is not in this tree yet (a branch being merged).
SERVER_ENV = "DCPRESTAGE_TEST_DCMANAGER_API"
USERNAME = "admin"
PROJECT = "admin"
PASSWORD_ENV = "OS_PASSWORD"
START_TIMEOUT = 20.0


def server_script() -> Path:
    override = os.environ.get(SERVER_ENV)
    return Path(override) if override else SERVER


@dataclass
class _CaPaths:
    """What labctl.pki needs of the lab's Paths: where the CA is."""

    ca_dir: Path

    @property
    def ca_cert(self) -> Path:
        return self.ca_dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.ca_dir / "private" / "ca.key"


def make_certs(directory: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1: (ca, cert, key)."""
    if str(ROOT / "lab") not in sys.path:
        sys.path.insert(0, str(ROOT / "lab"))
    from labctl import pki  # noqa: PLC0415 - the lab's package, on sys.path only for tests

    paths = _CaPaths(directory / "ca")
    pki.ensure_ca(paths)  # type: ignore[arg-type]
    cert, key = directory / "server.crt", directory / "server.key"
    pki.issue_server_cert(paths, cert, key, "dcmanager-api", ["127.0.0.1"])  # type: ignore[arg-type]
    return paths.ca_cert, cert, key


def db_from_registry(registry: Path) -> dict[str, Any]:
    """dcmanager's database ({"subcloud_groups", "subclouds"} in the API's detail shapes) holding
    what a subcloud registry file holds (starlingx/distcloud api-ref/source/samples/subclouds/
    subcloud-get-detail-response.json, subcloud-groups/subcloud-groups-get-response.json)."""
    data = yaml.safe_load(registry.read_text())
    groups = [
        {
            "id": g["id"],
            "name": g["name"],
            "description": g.get("description", "No description provided"),
            "update_apply_type": g.get("update_apply_type", "parallel"),
            "max_parallel_subclouds": g.get("max_parallel_subclouds", 2),
            "created-at": None,
            "updated-at": None,
        }
        for g in data.get("groups") or []
    ]
    if not any(g["id"] == 1 for g in groups):
        groups.insert(0, {"id": 1, "name": "Default", "description": "Default Subcloud Group",
                          "update_apply_type": "parallel", "max_parallel_subclouds": 2,
                          "created-at": None, "updated-at": None})  # fmt: skip
    by_name = {g["name"]: g["id"] for g in groups}
    subclouds = []
    for sc in data.get("subclouds") or []:
        group = sc.get("group", "Default")
        subclouds.append(
            {
                "id": sc["id"],
                "name": sc["name"],
                "description": None,
                "location": None,
                "software-version": sc["software_version"],
                "management-state": sc.get("management", "managed"),
                "availability-status": sc.get("availability", "online"),
                "deploy-status": sc.get("deploy_status", "complete"),
                "backup-status": sc.get("backup_status"),
                "backup-datetime": None,
                "error-description": "No errors present",
                "region-name": secrets.token_hex(16),
                "management-subnet": "192.168.101.0/24",
                "management-start-ip": "192.168.101.2",
                "management-end-ip": "192.168.101.50",
                "management-gateway-ip": "192.168.101.1",
                "openstack-installed": False,
                "prestage-status": None,
                "prestage-versions": None,
                "systemcontroller-gateway-ip": "192.168.204.101",
                "data_install": None,
                "data_upgrade": None,
                "created-at": "2026-01-01 00:00:00.000000",
                "updated-at": None,
                "group_id": by_name.get(group, group),
                "peer_group_id": None,
                "rehome_data": None,
                "endpoint_sync_status": [
                    {"endpoint_type": "platform", "sync_status": sc.get("sync", "in-sync")}
                ],
                "oam_floating_ip": sc["oam_floating_address"],
                "deploy_config_sync_status": "Deployment: configurations up-to-date",
            }
        )
    return {"subcloud_groups": groups, "subclouds": subclouds}


@dataclass
class DcmanagerApi:
    keystone: str  # Keystone's auth URL (.../v3)
    dcmanager: str  # dcmanager's URL (.../v1.0)
    ca_file: Path
    db: Path
    password: str
    process: subprocess.Popen[str]
    stderr: list[str] = field(default_factory=list)

    def config(self, **changes: Any) -> dict[str, Any]:
        """The inventory config's `dcmanager:` mapping for this server (changes replace keys;
        a None value removes one)."""
        settings: dict[str, Any] = {
            "auth_url": self.keystone,
            "username": USERNAME,
            "project_name": PROJECT,
            "ca_file": str(self.ca_file),
        }
        settings.update(changes)
        return {key: value for key, value in settings.items() if value is not None}

    def env(self, password: str | None = None) -> dict[str, str]:
        return {PASSWORD_ENV: self.password if password is None else password}

    def read_db(self) -> dict[str, Any]:
        return json.loads(self.db.read_text())

    def edit_db(self, change: Callable[[dict[str, Any]], None]) -> None:
        """change(database) edits it in place; the file is replaced (the server re-reads it)."""
        data = self.read_db()
        change(data)
        tmp = self.db.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, self.db)

    def subcloud(self, name: str) -> dict[str, Any]:
        return next(s for s in self.read_db()["subclouds"] if s["name"] == name)

    def set_subcloud(self, subcloud: str, /, **fields: Any) -> None:
        """Change a subcloud's fields (API names, e.g. **{"availability-status": "offline"})."""

        def change(data: dict[str, Any]) -> None:
            next(s for s in data["subclouds"] if s["name"] == subcloud).update(fields)

        self.edit_db(change)

    def revoke_tokens(self) -> None:
        """Every token issued so far is refused with 401 from now on (SIGUSR1)."""
        self.process.send_signal(signal.SIGUSR1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_dcmanager_api(
    directory: Path, db: dict[str, Any], token_ttl: float | None = None
) -> DcmanagerApi:
    """Start the server on 127.0.0.1 (free ports) with db; returns once it listens."""
    script = server_script()
    if not script.is_file():
        raise AssertionError(
            f"The lab's dcmanager API server {script} is missing (${SERVER_ENV} names another)"
        )
    directory.mkdir(parents=True, exist_ok=True)
    ca, cert, key = make_certs(directory)
    db_path = directory / "dcmanager-db.json"
    db_path.write_text(json.dumps(db, indent=1))
    password = f"ks-{secrets.token_hex(6)}-Pw!"
    password_file = directory / "keystone_admin_password"
    password_file.write_text(password + "\n")
    password_file.chmod(0o600)
    command = [
        sys.executable, str(script), "--address", "127.0.0.1",
        "--keystone-port", "0", "--dcmanager-port", "0", "--cert", str(cert), "--key", str(key),
        "--db", str(db_path), "--password-file", str(password_file),
    ]  # fmt: skip
    if token_ttl is not None:
        command += ["--token-ttl", str(token_ttl)]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    assert process.stdout is not None and process.stderr is not None
    errors: list[str] = []
    threading.Thread(target=lambda: errors.extend(process.stderr), daemon=True).start()  # type: ignore[arg-type]
    ready: list[str] = []
    reader = threading.Thread(target=lambda: ready.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(START_TIMEOUT)  # a deadline: the server prints its URLs once it listens
    if not ready or not ready[0].strip():
        process.kill()
        process.wait()
        raise AssertionError(f"dcmanager-api did not start: {''.join(errors)[-2000:]}")
    urls = json.loads(ready[0])
    return DcmanagerApi(
        keystone=urls["keystone"],
        dcmanager=urls["dcmanager"],
        ca_file=ca,
        db=db_path,
        password=password,
        process=process,
        stderr=errors,
    )
