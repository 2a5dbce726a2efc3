"""Real registries for the images phase tests: docker-registry (CNCF distribution 2.8)
processes on 127.0.0.1 with TLS from a CA made here (openssl), htpasswd users (htpasswd -Bbn)
or a Bearer token service, and images built with umoci and pushed with skopeo.

Everything runs on this machine, in tmp dirs; the processes are this fixture's own and are
stopped by it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

TOOLS = ("docker-registry", "skopeo", "umoci", "htpasswd", "openssl")
CENTRAL_PASSWORD = "central-Pw1"
LOCAL_PASSWORD = "local-Pw2"


def need_tools() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"missing tools: {', '.join(missing)}")


def run(*argv: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=120, **kwargs)


@dataclass
class Pki:
    root: Path
    ca: Path
    ca_key: Path
    cert: Path
    key: Path

    def certs_dir(self) -> Path:
        """A skopeo --cert-dir (its *.crt are CA roots)."""
        path = self.root / "certs"
        path.mkdir(exist_ok=True)
        shutil.copy(self.ca, path / "ca.crt")
        return path


def make_pki(root: Path) -> Pki:
    root.mkdir(parents=True, exist_ok=True)
    ca, ca_key = root / "ca.crt", root / "ca.key"
    cert, key, csr = root / "server.crt", root / "server.key", root / "server.csr"
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key),
        "-out", str(ca), "-days", "2", "-subj", "/CN=dcprestage test CA")  # fmt: skip
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
        "-subj", "/CN=127.0.0.1")  # fmt: skip
    ext = root / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))  # fmt: skip
    return Pki(root, ca, ca_key, cert, key)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, process: subprocess.Popen[bytes] | None, log: Path | None) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            text = log.read_text() if log and log.exists() else ""
            raise AssertionError(f"registry exited at start: {text[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise AssertionError(f"port {port} did not open")


@dataclass
class RegistryProcess:
    name: str
    port: int
    storage: Path
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@dataclass
class Registries:
    """Started registries (stopped at the end) and how to reach them."""

    root: Path
    pki: Pki
    started: list[RegistryProcess] = field(default_factory=list)

    def htpasswd(self, name: str, password: str) -> Path:
        path = self.root / f"{name}.htpasswd"
        path.write_text(run("htpasswd", "-Bbn", "sysinv", password).stdout)
        return path

    def start(
        self,
        name: str,
        *,
        password: str | None = None,
        token: dict[str, str] | None = None,
        storage: Path | None = None,
    ) -> RegistryProcess:
        port = free_port()
        storage = storage or self.root / f"{name}-storage"
        storage.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(storage)},
                "delete": {"enabled": True},
            },
            "http": {
                "addr": f"127.0.0.1:{port}",
                "secret": uuid.uuid4().hex,
                "tls": {"certificate": str(self.pki.cert), "key": str(self.pki.key)},
            },
        }
        if password is not None:
            config["auth"] = {
                "htpasswd": {"realm": "Registry Realm", "path": str(self.htpasswd(name, password))}
            }
        elif token is not None:
            config["auth"] = {"token": token}
        path = self.root / f"{name}.json"
        path.write_text(json.dumps(config))
        log = self.root / f"{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                ["docker-registry", "serve", str(path)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        registry = RegistryProcess(name, port, storage, process, log)
        self.started.append(registry)
        wait_port(port, process, log)
        return registry

    def stop_all(self) -> None:
        for registry in self.started:
            registry.stop()


@dataclass
class Images:
    """What was pushed into the central registry: name -> manifest digest."""

    digests: dict[str, str]
    broken_layer: str


def _repack(layout: Path, bundle_root: Path, tag: str, files: dict[str, bytes]) -> None:
    bundle = bundle_root / tag
    run("umoci", "unpack", "--image", f"{layout}:base", str(bundle))
    for name, data in files.items():
        path = bundle / "rootfs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    run("umoci", "repack", "--image", f"{layout}:{tag}", str(bundle))
    shutil.rmtree(bundle)


def _add_index(layout: Path, tags: dict[str, str], name: str) -> None:
    """An OCI image index over tags ({tag: architecture}) in the layout, tagged name."""
    index = json.loads((layout / "index.json").read_text())
    by_tag = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in index["manifests"]}
    manifests = []
    for tag, arch in tags.items():
        entry = dict(by_tag[tag])
        entry.pop("annotations", None)
        entry["platform"] = {"os": "linux", "architecture": arch}
        manifests.append(entry)
    blob = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    }).encode()  # fmt: skip
    digest = hashlib.sha256(blob).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(blob)
    index["manifests"].append({
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": f"sha256:{digest}",
        "size": len(blob),
        "annotations": {"org.opencontainers.image.ref.name": name},
    })  # fmt: skip
    (layout / "index.json").write_text(json.dumps(index))


def build_layout(root: Path) -> Path:
    layout = root / "oci"
    run("umoci", "init", "--layout", str(layout))
    run("umoci", "new", "--image", f"{layout}:base")
    bundles = root / "bundles"
    bundles.mkdir()
    seeded = hashlib.sha256
    contents = {
        "one": {"etc/one": b"one\n", "usr/share/one.bin": seeded(b"1").digest() * 4000},
        "two": {"etc/two": b"two\n", "usr/share/two.bin": seeded(b"2").digest() * 4000},
        "pause": {"pause": b"#!/bin/true\n"},
        "arm": {"etc/arch": b"arm64\n"},
        "broken": {"etc/broken": os.urandom(5000)},
        "big": {"big.bin": os.urandom(3 << 20)},  # incompressible: 3 MiB of layer
    }
    for tag, files in contents.items():
        _repack(layout, bundles, tag, files)
    _add_index(layout, {"one": "amd64", "arm": "arm64"}, "multi")
    return layout


def skopeo_copy(layout: Path, tag: str, target: str, pki: Pki, password: str | None,
                *extra: str) -> None:  # fmt: skip
    creds = ["--dest-creds", f"sysinv:{password}"] if password else []
    run("skopeo", "copy", "--quiet", *creds, "--dest-cert-dir", str(pki.certs_dir()), *extra,
        f"oci:{layout}:{tag}", f"docker://{target}")  # fmt: skip


def skopeo_raw(reference: str, pki: Pki, password: str | None) -> str | None:
    """The manifest bytes of reference (skopeo inspect --raw), None when it is missing."""
    creds = ["--creds", f"sysinv:{password}"] if password else []
    result = subprocess.run(
        ["skopeo", "inspect", "--raw", *creds, "--cert-dir", str(pki.certs_dir()),
         f"docker://{reference}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return result.stdout if result.returncode == 0 else None


def blob_path(storage: Path, digest: str) -> Path:
    algorithm, hexa = digest.split(":")
    return storage / "docker/registry/v2/blobs" / algorithm / hexa[:2] / hexa / "data"


# --------------------------------------------------------------------------- token service


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenService:
    """A Bearer token service as a registry with ``auth: token`` expects: Basic credentials in,
    a JWT (RS256, x5c chain to the registry's rootcertbundle) out, granting what is asked."""

    def __init__(self, pki: Pki, users: dict[str, str], service: str, issuer: str) -> None:
        from cryptography import x509  # noqa: PLC0415
        from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

        self.users = users
        self.service = service
        self.issuer = issuer
        self.requests: list[dict[str, list[str]]] = []
        certificate = x509.load_pem_x509_certificate(pki.cert.read_bytes())
        self.x5c = base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()
        self.key = serialization.load_pem_private_key(pki.key.read_bytes(), password=None)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pki.cert, pki.key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def realm(self) -> str:
        return f"https://127.0.0.1:{self.port}/token"

    def token(self, user: str, scopes: list[str]) -> str:
        from cryptography.hazmat.primitives import hashes  # noqa: PLC0415
        from cryptography.hazmat.primitives.asymmetric import padding  # noqa: PLC0415

        access = []
        for scope in scopes:
            kind, _sep, rest = scope.partition(":")
            name, _sep, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {
            "iss": self.issuer, "sub": user, "aud": self.service, "exp": now + 300,
            "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": access,
        }  # fmt: skip
        signing = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
        signature = self.key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing + "." + b64url(signature)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                service.requests.append(query)
                header = self.headers.get("Authorization") or ""
                user = password = None
                if header.startswith("Basic "):
                    user, _sep, password = base64.b64decode(header[6:]).decode().partition(":")
                if user is None or service.users.get(user) != password:
                    data = b'{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}'
                    self.send_response(401)
                else:
                    token = service.token(user, query.get("scope", []))
                    data = json.dumps({"token": token, "expires_in": 300}).encode()
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------- fixtures


@dataclass
class World:
    """The central registry with the images, an anonymous 'public' one, the PKI."""

    root: Path
    pki: Pki
    registries: Registries
    central: RegistryProcess
    public: RegistryProcess
    layout: Path
    images: Images


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    need_tools()
    root = tmp_path_factory.mktemp("images")
    pki = make_pki(root / "pki")
    registries = Registries(root, pki)
    try:
        central = registries.start("central", password=CENTRAL_PASSWORD)
        public = registries.start("public")
        layout = build_layout(root)
        pushes = {
            "docker.io/starlingx/stx-test:1.0": ("one", []),
            "quay.io/jetstack/cm:v1": ("two", ["--format", "v2s2"]),
            "registry.k8s.io/pause:3.9": ("pause", []),
            "docker.io/starlingx/multi:1.0": ("multi", ["--all"]),
            "docker.io/starlingx/broken:1": ("broken", []),
            "docker.io/starlingx/big:1": ("big", []),
        }
        digests = {}
        for name, (tag, extra) in pushes.items():
            skopeo_copy(layout, tag, f"{central.host}/{name}", pki, CENTRAL_PASSWORD, *extra)
            raw = skopeo_raw(f"{central.host}/{name}", pki, CENTRAL_PASSWORD)
            assert raw is not None
            digests[name] = "sha256:" + hashlib.sha256(raw.encode()).hexdigest()
        skopeo_copy(layout, "one", f"{public.host}/library/thing:1", pki, None)
        # the "broken" image loses its layer's bytes in the central registry
        raw = skopeo_raw(f"{central.host}/docker.io/starlingx/broken:1", pki, CENTRAL_PASSWORD)
        assert raw is not None
        broken_layer = json.loads(raw)["layers"][0]["digest"]
        blob_path(central.storage, broken_layer).unlink()
        yield World(root, pki, registries, central, public, layout, Images(digests, broken_layer))
    finally:
        registries.stop_all()
