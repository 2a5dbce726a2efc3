"""The lab as tests see it: bring it up/down through lab/lab, read lab.json and the secrets,
run commands on subclouds and the system controller over real SSH (sshpass -e: the password never
goes on a command line), or as root inside a host's namespaces, apply faults. Used by the `lab`
pytest fixture (tests/integration/conftest.py).

Everything is read fresh from the run directory on each access, so one Lab object stays valid
when a test takes the lab down and brings it up again.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from labctl import dcmanager, hosts
from labctl.paths import REPO, SC_ADDRESS, SC_NAME, SYSADMIN, Paths, lab_dir

LAB_COMMAND = REPO / "lab" / "lab"


class Lab:
    def __init__(self, root: Path | None = None) -> None:
        self.paths = Paths(root or lab_dir())

    # ------------------------------------------------------------------ lifecycle

    def run(
        self, *args: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """Run lab/lab with args (DCPRESTAGE_LAB_DIR pointing at this lab)."""
        env = {**os.environ, "DCPRESTAGE_LAB_DIR": str(self.paths.root)}
        result = subprocess.run(
            [str(LAB_COMMAND), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"lab/lab {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}"
            )
        return result

    def up(self, count: int, size: str | None = None, sc_release: str | None = None) -> None:
        """lab/lab up count: size and sc_release default to what the lab was built with."""
        self.run(
            "up",
            str(count),
            *(["--size", size] if size else []),
            *(["--sc-release", sc_release] if sc_release else []),
        )

    @property
    def sc_release(self) -> str:
        """The system controller's release (lab.json)."""
        return str(self.info["system_controller"]["release"])

    def down(self) -> None:
        self.run("down")

    def reset(self, *names: str) -> None:
        """Subclouds rebuilt as `up` makes them (their content, faults and prestage gone)."""
        self.run("reset", *names)

    def is_up(self) -> bool:
        return self.paths.lab_json.exists()

    def fault(
        self, name: str, subcloud: str, *args: str, undo: bool = False
    ) -> subprocess.CompletedProcess[str]:
        return self.run("fault", name, subcloud, *args, *(["--undo"] if undo else []))

    # ------------------------------------------------------------------ facts

    @property
    def info(self) -> dict[str, Any]:
        """lab.json (see lab/README.md for its fields)."""
        info: dict[str, Any] = json.loads(self.paths.lab_json.read_text())
        return info

    @property
    def subclouds(self) -> list[str]:
        """Subcloud names in id order."""
        records = self.info["subclouds"]
        return sorted(records, key=lambda name: records[name]["id"])

    def host_info(self, name: str) -> dict[str, Any]:
        """lab.json's record of a subcloud or of the system controller."""
        info = self.info
        record: dict[str, Any] = (
            info["system_controller"] if name == SC_NAME else info["subclouds"][name]
        )
        return record

    def address(self, name: str) -> str:
        return str(self.host_info(name)["address"])

    @property
    def sc(self) -> str:
        """The system controller's inventory (and lab) name."""
        return SC_NAME

    def registry(self, name: str) -> str:
        """The subcloud's local registry host:port (what it calls registry.local:9001)."""
        return str(self.info["subclouds"][name]["registry"])

    def root(self, name: str) -> Path:
        """Host path of a lab host's private files (its /opt is root/opt, ...)."""
        return Path(self.host_info(name)["root"])

    def path(self, name: str, inside: str) -> Path:
        """Where a path of a lab host lives on this machine (to read; write with inside())."""
        for prefix, real in sorted(self.host_info(name)["paths"].items(), key=lambda i: -len(i[0])):
            if inside == prefix or inside.startswith(prefix.rstrip("/") + "/"):
                return Path(real) / inside[len(prefix) :].lstrip("/")
        raise KeyError(f"{inside} is not one of the paths lab.json maps for {name}")

    def inside(
        self,
        name: str,
        script: str,
        *,
        check: bool = True,
        network: bool = False,
        timeout: float = 120,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run script (sh) as root inside a lab host's mount (and, with network, network)
        namespace: what the host itself sees."""
        result = hosts.nsenter(
            self.paths, name, "sh", "-c", script,
            check=False, input=input, network_too=network, timeout=timeout,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(
                f"{name}: {script!r} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )
        return result

    @property
    def password(self) -> str:
        """The subclouds' sysadmin password."""
        return self.paths.sysadmin_password.read_text().strip()

    @property
    def sc_password(self) -> str:
        """The system controller's own sysadmin password."""
        return self.paths.sc_sysadmin_password.read_text().strip()

    @property
    def registry_user(self) -> str:
        return str(self.info["registry_auth"]["user"])

    @property
    def registry_password(self) -> str:
        """sysinv's password on each subcloud's registry.local."""
        return self.paths.local_registry_password.read_text().strip()

    @property
    def central_registry_password(self) -> str:
        """sysinv's password on registry.central."""
        return self.paths.central_registry_password.read_text().strip()

    @property
    def keystone_password(self) -> str:
        """Keystone's admin password on the system controller (the dcmanager source's
        OS_PASSWORD)."""
        return self.paths.keystone_admin_password.read_text().strip()

    @property
    def secrets(self) -> list[str]:
        """Every password of the lab (to check that none leaks into an output)."""
        return [
            self.password,
            self.sc_password,
            self.registry_password,
            self.central_registry_password,
            self.keystone_password,
        ]

    @property
    def dcmanager_inventory(self) -> Path:
        """The inventory config with the dcmanager source (export OS_PASSWORD first)."""
        return self.paths.dcmanager_inventory_config

    @property
    def inventory(self) -> Path:
        return self.paths.inventory_config

    @property
    def registry_file(self) -> Path:
        return self.paths.registry_file

    @property
    def ca(self) -> Path:
        return self.paths.ca_cert

    @property
    def central_registry(self) -> str:
        """registry.central's address:port as this machine reaches it."""
        return str(self.info["system_controller"]["central_registry_address"])

    def registry_entry(self, name: str) -> dict[str, Any]:
        data = yaml.safe_load(self.registry_file.read_text())
        return next(item for item in data["subclouds"] if item["name"] == name)

    def subclouds_where(self, **fields: Any) -> list[str]:
        """Names of subclouds whose registry entries have these field values."""
        data = yaml.safe_load(self.registry_file.read_text())
        return [
            item["name"]
            for item in data["subclouds"]
            if all(item.get(k) == v for k, v in fields.items())
        ]

    # ------------------------------------------------------------------ access

    def ssh(
        self,
        name: str,
        command: str,
        *,
        become: bool = False,
        input: str | None = None,
        timeout: float = 60,
        connect_timeout: int = 10,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run command on a lab host as sysadmin over SSH (password via SSHPASS). become:
        through sudo with the password on stdin, ahead of input."""
        password = self.sc_password if name == SC_NAME else self.password
        if become:
            command = f"sudo -S -p '' sh -c {shlex.quote(command)}"
            input = password + "\n" + (input or "")
        args = [
            "sshpass",
            "-e",
            "ssh",
            "-F",
            "/dev/null",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            f"ConnectTimeout={connect_timeout}",
            "-o",
            "ControlMaster=no",
            "-o",
            "ControlPath=none",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PreferredAuthentications=password",
            f"{SYSADMIN}@{self.address(name)}",
            command,
        ]
        result = subprocess.run(
            args,
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            env={**os.environ, "SSHPASS": password},
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"ssh {name} {command!r} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}"
            )
        return result

    def ansible_secrets(self, directory: Path) -> Path:
        """A 0600 inventory source giving each lab subcloud its ansible_password and
        ansible_become_password, for `-i <lab inventory> -i <this>` (the password stays off
        command lines, and - unlike an extra var - it does not reach the system controller,
        whose credentials are its own)."""
        path = directory / "lab-secrets.yml"
        hosts = {
            name: {"ansible_password": self.password, "ansible_become_password": self.password}
            for name in self.subclouds
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            yaml.safe_dump({"all": {"hosts": hosts}}, handle)
        return path

    def ansible_env(self, directory: Path) -> dict[str, str]:
        """Environment for ansible commands against the lab (repo ansible.cfg, private control
        sockets in directory, no host key prompts)."""
        control = directory / "cp"
        control.mkdir(exist_ok=True)
        return {
            **os.environ,
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control),
            "ANSIBLE_HOST_KEY_CHECKING": "False",
        }

    def dcmanager_token(self) -> str:
        """A Keystone token of the system controller's admin (POST /v3/auth/tokens)."""
        user = {"name": "admin", "domain": {"name": "Default"}, "password": self.keystone_password}
        body = {
            "auth": {
                "identity": {"methods": ["password"], "password": {"user": user}},
                "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}},
            }
        }
        request = urllib.request.Request(
            dcmanager.auth_url() + "/auth/tokens",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        context = ssl.create_default_context(cafile=str(self.ca))
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return str(response.headers["X-Subject-Token"])

    def dcmanager_api(self, path: str, token: str | None = None) -> tuple[int, Any]:
        """GET https://<SC>:8119/v1.0<path> with token (a new one when None), verified with the
        lab CA. Returns (status, parsed JSON body); raises OSError when unreachable."""
        url = f"https://{SC_ADDRESS}:{dcmanager.DCMANAGER_PORT}/v1.0{path}"
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        request.add_header("X-Auth-Token", token if token is not None else self.dcmanager_token())
        context = ssl.create_default_context(cafile=str(self.ca))
        try:
            with urllib.request.urlopen(request, context=context, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, json.loads(exc.read() or b"null")

    def registry_api(
        self, registry: str, path: str, password: str | None = None
    ) -> tuple[int, Any]:
        """GET https://<registry><path> as sysinv (registry.central's password for it, else the
        subclouds' local one), verified with the lab CA.
        Returns (status, parsed JSON body or None); raises OSError when unreachable."""
        if password is None:
            central = registry == self.central_registry
            password = self.central_registry_password if central else self.registry_password
        context = ssl.create_default_context(cafile=str(self.ca))
        request = urllib.request.Request(f"https://{registry}{path}")
        token = base64.b64encode(f"{self.registry_user}:{password}".encode())
        request.add_header("Authorization", f"Basic {token.decode()}")
        try:
            with urllib.request.urlopen(request, context=context, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            exc.close()
            return exc.code, None
