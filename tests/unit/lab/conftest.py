"""Fixtures for the lab's StarlingX content builders and stand-in CLIs (no root, no lab).

`standins` runs lab/labctl/data/stx-lab under the Python 3.9 a lab host has, as `software`,
`system`, ... with STX_LAB_ROOT pointing at a scratch host tree. `registry` is a real
docker-registry on 127.0.0.1 with TLS (a throw-away CA) and htpasswd, holding one image pushed
with skopeo.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "lab"))

from labctl import stxcontent  # noqa: E402

DATA = ROOT / "lab" / "labctl" / "data"
STANDIN = DATA / "stx-lab"
DEPLOY_STUB = DATA / "software-deploy-stub"
PYTHON39 = Path("/root/.pyenv/versions/3.9.18/bin/python3.9")
COMMANDS = ("fm", "software", "system", "openstack", "crictl", "dcmanager")


def require_tools(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")


@dataclass
class StandIns:
    """A lab host's filesystem under root, and the stand-ins run against it."""

    root: Path
    bin: Path  # stx-lab symlinked as each command (argv[0] picks the client)
    shims: Path  # the same commands as wrappers running Python 3.9, for shell pipelines

    def path(self, host_path: str) -> Path:
        """Where host_path (absolute, as the host sees it) is in the scratch tree."""
        return self.root / host_path.lstrip("/")

    def write(self, host_path: str, text: str) -> Path:
        target = self.path(host_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        return target

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "STX_LAB_ROOT": str(self.root), "PATH": f"{self.shims}:/usr/bin:/bin"}

    def run(self, command: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(PYTHON39), str(self.bin / command), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
            check=False,
        )

    def ok(self, command: str, *args: str) -> str:
        result = self.run(command, *args)
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        return result.stdout

    def shell(self, script: str) -> subprocess.CompletedProcess[str]:
        """script in bash with the stand-ins first on PATH (each a wrapper running Python 3.9)."""
        return subprocess.run(
            ["bash", "-c", f"set -o pipefail; {script}"],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
            check=False,
        )


@pytest.fixture
def standins(tmp_path: Path) -> StandIns:
    if not PYTHON39.exists():
        pytest.skip(f"needs {PYTHON39}")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for command in COMMANDS:
        (bin_dir / command).symlink_to(STANDIN)
    for script in ("controllers-software-sync", "sync-controllers-feed"):
        (bin_dir / script).symlink_to(DEPLOY_STUB)
    shims = tmp_path / "shims"
    shims.mkdir()
    for command in (*COMMANDS, "controllers-software-sync", "sync-controllers-feed"):
        shim = shims / command
        shim.write_text(f'#!/bin/sh\nexec {PYTHON39} {bin_dir / command} "$@"\n')
        shim.chmod(0o755)
    host = StandIns(root=tmp_path / "host", bin=bin_dir, shims=shims)
    host.write("/etc/build.info", 'SW_VERSION="25.09"\n')
    host.write("/etc/platform/platform.conf", "system_mode=simplex\n")
    return host


# ---------------------------------------------------------------------- a real registry


@dataclass
class Registry:
    address: str  # host:port
    user: str
    password: str
    ca: Path
    cert: Path
    key: Path
    cert_dir: Path  # holds ca.crt (skopeo --dest-cert-dir)
    auth_file: Path
    image: str  # public name of the pushed image


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def make_ca(directory: Path) -> tuple[Path, Path]:
    ca, key = directory / "ca.crt", directory / "ca.key"
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=stxcontent test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout",
        key,
        "-out",
        ca,
    )
    return ca, key


def make_server_cert(directory: Path, ca: Path, ca_key: Path) -> tuple[Path, Path]:
    cert, key = directory / "server.crt", directory / "server.key"
    _openssl(
        "req",
        "-x509",
        "-CA",
        ca,
        "-CAkey",
        ca_key,
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-addext",
        "basicConstraints=critical,CA:FALSE",
        "-addext",
        "extendedKeyUsage=serverAuth",
        "-keyout",
        key,
        "-out",
        cert,
    )
    return cert, key


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_https(url: str, ca: Path, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Until url answers over TLS (any HTTP status) - a deadline, not a delay."""
    context = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + timeout
    last: OSError | None = None
    while True:
        try:
            with urllib.request.urlopen(url, context=context, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, OSError) as error:
            last = error
        if process.poll() is not None:
            raise AssertionError(f"docker-registry exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError(f"docker-registry did not answer within {timeout}s: {last}")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    require_tools("docker-registry", "skopeo", "umoci", "htpasswd", "openssl")
    base = tmp_path_factory.mktemp("registry")
    ca, ca_key = make_ca(base)
    cert, key = make_server_cert(base, ca, ca_key)
    user, password = "sysinv", "s3cret-Pw!"
    htpasswd = subprocess.run(
        ["htpasswd", "-Bbn", user, password], check=True, capture_output=True, text=True
    ).stdout
    (base / "htpasswd").write_text(htpasswd)
    port = free_port()
    address = f"127.0.0.1:{port}"
    (base / "config.yml").write_text(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {base / 'storage'}\n"
        f"http:\n  addr: {address}\n  secret: test-secret\n"
        f"  tls:\n    certificate: {cert}\n    key: {key}\n"
        f"auth:\n  htpasswd:\n    realm: Registry Realm\n    path: {base / 'htpasswd'}\n"
    )
    with (base / "registry.log").open("wb") as log:
        process = subprocess.Popen(
            ["docker-registry", "serve", str(base / "config.yml")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_https(f"https://{address}/v2/", ca, process, timeout=30)
        cert_dir = base / "certs.d"
        cert_dir.mkdir()
        shutil.copy(ca, cert_dir / "ca.crt")
        auth_file = base / "auth.json"
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        auth_file.write_text(f'{{"auths": {{"{address}": {{"auth": "{token}"}}}}}}\n')
        image = "docker.io/starlingx/stx-pause:25.09"
        oci = base / "oci"
        stxcontent.build_images(oci, [image])
        pushed = stxcontent.push_images(address, auth_file, cert_dir, [image], oci_dir=oci)
        assert pushed == [image]
        yield Registry(address, user, password, ca, cert, key, cert_dir, auth_file, image)
    finally:
        process.terminate()
        process.wait(timeout=10)
