"""docker-registry (CNCF distribution 2.8) instances: the central one and one per subcloud."""

from __future__ import annotations

import base64
import contextlib
import secrets
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from labctl.util import LabError, alive, atomic_write, cmdline, read_pid, tcp_open, wait_until


def write_config(
    path: Path, *, listen: str, storage: str, cert: Path, key: Path, htpasswd: Path
) -> None:
    """A registry config: TLS with a lab-CA certificate, htpasswd (bcrypt) auth, deletes on."""
    config = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": storage},
            "delete": {"enabled": True},
            "cache": {"blobdescriptor": "inmemory"},
        },
        "http": {
            "addr": listen,
            "secret": secrets.token_hex(16),
            "tls": {"certificate": str(cert), "key": str(key)},
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        },
        "auth": {"htpasswd": {"realm": "Registry Realm", "path": str(htpasswd)}},
    }
    atomic_write(path, yaml.safe_dump(config, sort_keys=False), 0o600)


def running_pid(pid_file: Path, config: Path) -> int | None:
    """The pid in pid_file when it is a live docker-registry serving config."""
    pid = read_pid(pid_file)
    if pid is not None and alive(pid):
        args = cmdline(pid)
        if any(a.endswith("docker-registry") for a in args[:1]) and str(config) in args:
            return pid
    return None


def start(config: Path, log: Path, pid_file: Path, *, enter_pid: int | None = None) -> int:
    """Start docker-registry serve config detached (inside enter_pid's mount+net namespaces when
    given) and record its pid."""
    command = ["docker-registry", "serve", str(config)]
    if enter_pid is not None:
        # nsenter without a pid namespace execs directly: the pid is the registry's own.
        command = ["nsenter", "-t", str(enter_pid), "-m", "-n", "--", *command]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    atomic_write(pid_file, f"{proc.pid}\n")
    return proc.pid


def wait_listening(address: str, port: int, pid: int, timeout: float = 20.0) -> None:
    if not wait_until(lambda: tcp_open(address, port) or not alive(pid), timeout):
        raise LabError(f"registry {address}:{port} did not start within {timeout:.0f}s")
    if not alive(pid):
        raise LabError(f"registry {address}:{port} exited at start (see its log)")


def api_get(
    registry: str, path: str, ca: Path, user: str, password: str, *, method: str = "GET"
) -> tuple[int, bytes]:
    """One HTTPS request to the registry API with basic auth, verified with the lab CA."""
    context = ssl.create_default_context(cafile=str(ca))
    request = urllib.request.Request(f"https://{registry}{path}", method=method)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    request.add_header(
        "Accept",
        "application/vnd.docker.distribution.manifest.v2+json, "
        "application/vnd.oci.image.manifest.v1+json",
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with contextlib.closing(exc):
            return exc.code, b""


def has_image(registry: str, reference: str, ca: Path, user: str, password: str) -> bool:
    """reference 'name:tag' is present in the registry."""
    name, tag = reference.rsplit(":", 1)
    status, _ = api_get(registry, f"/v2/{name}/manifests/{tag}", ca, user, password, method="HEAD")
    return status == 200
