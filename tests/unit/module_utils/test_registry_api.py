"""The registry client (plugins/module_utils/_registry_api.py) without a real registry: the
failure classes of StarlingX's download_images.py, the pure helpers, and the HTTP protocol
against an in-process fake registry (Bearer token flow, redirects to a blob store, chunked and
monolithic uploads, mounts, manifest lists, the order of writes, an insecure registry over
plain HTTP). The same client against real docker-registry processes: tests/integration/images.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import re
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from ansible_collections.distcloud.prestage.plugins.module_utils import _registry_api as api

# PB:roles/common/push-docker-images/files/download_images.py:24-29
STARLINGX_HARD_FAIL_ERRORS = [
    "no basic auth credentials",
    "Forbidden",
    "repository does not exist or may require 'docker login'",
    "no space left on device",
]


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def body(*errors: tuple[str, str], detail: Any = None) -> bytes:
    return json.dumps(
        {"errors": [{"code": c, "message": m, "detail": detail} for c, m in errors]}
    ).encode()


# --------------------------------------------------------------------------- classes


@pytest.mark.parametrize(
    ("status", "answer", "credentials", "kind", "words"),
    [
        (404, body(("MANIFEST_UNKNOWN", "manifest unknown")), True, api.NOT_FOUND, "not found"),
        (404, body(("NAME_UNKNOWN", "repository name not known to registry")), True,
         api.NOT_FOUND, "repository name not known"),
        (404, b"", True, api.NOT_FOUND, "not found"),
        (401, body(("UNAUTHORIZED", "authentication required")), False, api.UNAUTHORIZED,
         "no basic auth credentials"),
        (401, body(("UNAUTHORIZED", "authentication required")), True, api.UNAUTHORIZED,
         "unauthorized (authentication required)"),
        (401, body(("DENIED", "requested access to the resource is denied")), True,
         api.REPOSITORY_DENIED, "repository does not exist or may require 'docker login'"),
        (403, b"forbidden", True, api.FORBIDDEN, "Forbidden"),
        (500, body(("UNKNOWN", "unknown error"), detail="write /x/data: no space left on device"),
         True, api.NO_SPACE, "no space left on device"),
        (500, body(("UNKNOWN", "unknown error"),
                   detail={"DriverName": "filesystem", "Enclosed": {"Err": 28, "Op": "write"}}),
         True, api.NO_SPACE, "no space left on device"),
        (500, body(("UNKNOWN", "unknown error")), True, api.TRANSIENT, "HTTP 500"),
        (503, b"<html>busy</html>", True, api.TRANSIENT, "busy"),
        (429, body(("TOOMANYREQUESTS", "too many requests")), True, api.TRANSIENT, "too many"),
    ],
)  # fmt: skip
def test_classify_status(status, answer, credentials, kind, words) -> None:
    error = api.classify_status(status, "Reason", answer, "manifest r:1/a/b:1", credentials)
    assert error.kind == kind
    assert words in str(error)
    assert str(error).startswith("manifest r:1/a/b:1: ")
    assert "\n" not in str(error)
    assert error.hard == (kind in api.HARD_FAILURES)
    assert error.retryable == (kind == api.TRANSIENT)


def test_hard_failures_carry_starlingx_s_words() -> None:
    """Every hard class's message holds the text download_images.py looks for (or is docker's
    NotFound), so a reader of the log recognises StarlingX's HARD FAIL."""
    messages = {
        api.UNAUTHORIZED: api.classify_status(401, "", b"", "x", False),
        api.FORBIDDEN: api.classify_status(403, "", b"", "x"),
        api.REPOSITORY_DENIED: api.classify_status(401, "", body(("DENIED", "denied")), "x"),
        api.NO_SPACE: api.classify_status(500, "", b"no space left on device", "x"),
    }
    for text in STARLINGX_HARD_FAIL_ERRORS:
        assert any(text in str(error) for error in messages.values()), text
    assert set(api.HARD_FAILURES) == {*messages, api.NOT_FOUND}


@pytest.mark.parametrize(
    ("exc", "kind", "words"),
    [
        (ConnectionRefusedError(111, "Connection refused"), api.TRANSIENT, "connection refused"),
        (TimeoutError("timed out"), api.TRANSIENT, "timed out"),
        (OSError(errno.ENOSPC, "No space left on device"), api.NO_SPACE, "no space left"),
        (ConnectionResetError(104, "reset"), api.TRANSIENT, "ConnectionResetError"),
        (socket.gaierror(-2, "Name or service not known"), api.TRANSIENT, "cannot resolve"),
    ],
)
def test_classify_exception(exc, kind, words) -> None:
    error = api.classify_exception(exc, "GET x")
    assert (error.kind, words in str(error)) == (kind, True)


def test_certificate_failure_is_named() -> None:
    exc = ssl.SSLCertVerificationError(1, "certificate verify failed")
    exc.verify_message = "unable to get local issuer certificate"
    error = api.classify_exception(exc, "GET x")
    assert error.kind == api.TRANSIENT
    assert "TLS certificate verification failed (unable to get local issuer" in str(error)


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('Basic realm="Registry Realm"', ("basic", {"realm": "Registry Realm"})),
        (
            'Bearer realm="https://registry.local:9002/token/",service="registry.local:9002",'
            'scope="repository:docker.io/a/b:pull,push"',
            ("bearer", {"realm": "https://registry.local:9002/token/",
                        "service": "registry.local:9002",
                        "scope": "repository:docker.io/a/b:pull,push"}),
        ),
        ('Bearer realm=https://auth/token, service=svc, error="insufficient_scope"',
         ("bearer", {"realm": "https://auth/token", "service": "svc",
                     "error": "insufficient_scope"})),
        ("", ("", {})),
    ],
)  # fmt: skip
def test_parse_challenge(header: str, expected) -> None:
    assert api.parse_challenge(header) == expected


@pytest.mark.parametrize(
    ("content_type", "data", "expected"),
    [
        (api.DOCKER_MANIFEST, b"{}", api.DOCKER_MANIFEST),
        (api.OCI_INDEX + "; charset=utf-8", b"{}", api.OCI_INDEX),
        ("application/json", b'{"mediaType": "%s"}' % api.DOCKER_LIST.encode(), api.DOCKER_LIST),
        ("", b'{"schemaVersion": 2, "config": {}, "layers": []}', api.OCI_MANIFEST),
        (None, b'{"schemaVersion": 2, "manifests": []}', api.OCI_INDEX),
        ("text/plain", b'{"schemaVersion": 1, "fsLayers": []}', api.SCHEMA1_TYPES[0]),
    ],
)
def test_media_type_of(content_type, data, expected) -> None:
    assert api.media_type_of(content_type, data) == expected


def test_manifest_blobs_and_children() -> None:
    manifest = api.Manifest(
        api.DOCKER_MANIFEST,
        json.dumps({
            "config": {"digest": "sha256:c", "size": 1},
            "layers": [
                {"digest": "sha256:l1", "size": 2},
                {"digest": "sha256:f", "size": 3, "mediaType": api.FOREIGN_LAYER_TYPES[0],
                 "urls": ["https://example/f"]},
            ],
        }).encode(),
        "sha256:m",
    )  # fmt: skip
    assert [blob["digest"] for blob in manifest.blobs()] == ["sha256:c", "sha256:l1"]
    index = api.Manifest(api.OCI_INDEX, b'{"manifests": [{"digest": "sha256:a"}, 1]}', "d")
    assert index.is_list
    assert index.children() == [{"digest": "sha256:a"}]
    with pytest.raises(api.RegistryError, match="not JSON"):
        assert api.Manifest(api.OCI_INDEX, b"{", "d").data is None


class Chunks:
    def __init__(self, *parts: bytes) -> None:
        self.parts = list(parts)

    def read(self, size: int = -1) -> bytes:
        return self.parts.pop(0) if self.parts else b""


def drain(reader: api.BlobReader) -> bytes:
    data = b""
    while True:
        block = reader.read()
        if not block:
            return data
        data += block


def test_blob_reader_checks_size_and_digest() -> None:
    good = api.BlobReader(Chunks(b"ab", b"c"), sha(b"abc"), 3, "blob")
    assert drain(good) == b"abc"
    assert good.verified
    with pytest.raises(api.RegistryError, match="digest mismatch") as info:
        drain(api.BlobReader(Chunks(b"abd"), sha(b"abc"), 3, "blob"))
    assert info.value.kind == api.TRANSIENT
    with pytest.raises(api.RegistryError, match="sent 2 of 3 bytes"):
        drain(api.BlobReader(Chunks(b"ab"), sha(b"abc"), 3, "blob"))
    with pytest.raises(api.RegistryError, match="more than 3 bytes"):
        drain(api.BlobReader(Chunks(b"abcd"), sha(b"abcd"), 3, "blob"))
    late = api.BlobReader(Chunks(b"abc"), sha(b"abc"), 3, "blob", deadline=time.monotonic() - 1)
    with pytest.raises(api.RegistryError) as info:
        drain(late)
    assert info.value.kind == api.TIMEOUT


def test_a_failing_source_read_is_a_registry_error() -> None:
    class Broken:
        def read(self, size: int = -1) -> bytes:
            raise ConnectionResetError(104, "Connection reset by peer")

    with pytest.raises(api.RegistryError, match="reading from the source") as info:
        api.BlobReader(Broken(), sha(b"x"), 1, "blob").read()
    assert info.value.kind == api.TRANSIENT


def test_unsupported_digest() -> None:
    with pytest.raises(api.RegistryError) as info:
        api.BlobReader(Chunks(b""), "md99:00", 0, "blob")
    assert info.value.kind == api.INVALID


def test_deadline_before_any_request() -> None:
    registry = api.Registry("127.0.0.1:9", deadline=time.monotonic() - 1)
    with pytest.raises(api.RegistryError) as info:
        registry.get_manifest("a/b", "1")
    assert info.value.kind == api.TIMEOUT


# --------------------------------------------------------------------------- fake registry


class Store:
    """An in-memory registry, its HTTP log, and its Bearer token service."""

    def __init__(self, users: dict[str, str], bearer: bool) -> None:
        self.users = users
        self.bearer = bearer
        self.blobs: dict[str, bytes] = {}
        self.links: set[tuple[str, str]] = set()
        self.manifests: dict[tuple[str, str], tuple[str, bytes]] = {}
        self.uploads: dict[str, tuple[str, bytearray]] = {}
        self.tokens: dict[str, list[str]] = {}
        self.log: list[tuple[str, str, str | None]] = []
        self.token_requests: list[dict[str, list[str]]] = []
        self.corrupt: set[str] = set()
        self.cdn_port = 0
        self.port = 0
        self.lock = threading.Lock()

    def put_blob(self, repo: str, data: bytes) -> dict[str, Any]:
        digest = sha(data)
        self.blobs[digest] = data
        self.links.add((repo, digest))
        return {"mediaType": "application/octet-stream", "digest": digest, "size": len(data)}

    def put_manifest(self, repo: str, ref: str, media_type: str, data: bytes) -> str:
        digest = sha(data)
        self.manifests[(repo, ref)] = (media_type, data)
        self.manifests[(repo, digest)] = (media_type, data)
        return digest


def make_handler(store: Store) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def answer(self, status: int, data: bytes = b"", headers: dict | None = None) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def error(self, status: int, code: str, message: str, headers=None) -> None:
            self.answer(status, body((code, message)), headers)

        def payload(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def basic_ok(self) -> bool:
            header = self.headers.get("Authorization") or ""
            if not header.startswith("Basic "):
                return False
            user, _sep, password = base64.b64decode(header[6:]).decode().partition(":")
            return store.users.get(user) == password

        def authorized(self, repo: str, action: str) -> bool:
            if not store.users:
                return True
            if not store.bearer:
                return self.basic_ok()
            header = self.headers.get("Authorization") or ""
            scopes = store.tokens.get(header[7:]) if header.startswith("Bearer ") else None
            return any(
                s.startswith(f"repository:{repo}:") and action in s.rsplit(":", 1)[1].split(",")
                for s in scopes or []
            )

        def challenge(self, repo: str, action: str) -> None:
            if store.bearer:
                value = (
                    f'Bearer realm="http://127.0.0.1:{store.port}/token",service="fake",'
                    f'scope="repository:{repo}:{"pull" if action == "pull" else "pull,push"}"'
                )
            else:
                value = 'Basic realm="fake"'
            self.error(401, "UNAUTHORIZED", "authentication required", {"WWW-Authenticate": value})

        def handle_any(self) -> None:  # noqa: PLR0911 - a fake registry: one return per route
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            with store.lock:
                store.log.append((self.command, self.path, self.headers.get("Authorization")))
            if parts.path == "/token":
                store.token_requests.append(query)
                if not self.basic_ok():
                    return self.error(401, "UNAUTHORIZED", "bad credentials")
                token = uuid.uuid4().hex
                store.tokens[token] = query.get("scope", [])
                return self.answer(200, json.dumps({"token": token, "expires_in": 300}).encode())
            match = re.match(r"^/v2/(?P<repo>.+?)/(?P<kind>manifests|blobs/uploads|blobs)"
                             r"(?:/(?P<ref>[^/]*))?$", parts.path)  # fmt: skip
            if not match:
                return self.error(404, "NOT_FOUND", "no route")
            repo, kind, ref = match["repo"], match["kind"], match["ref"]
            action = "pull" if self.command in ("GET", "HEAD") else "push"
            if not self.authorized(repo, action):
                return self.challenge(repo, action)
            if kind == "manifests":
                return self.manifests(repo, ref)
            if kind == "blobs":
                return self.blob(repo, ref)
            return self.upload(repo, ref, query)

        def manifests(self, repo: str, ref: str) -> None:
            if self.command == "PUT":
                data = self.payload()
                media_type = self.headers["Content-Type"]
                for blob in json.loads(data).get("layers", []):
                    if (repo, blob["digest"]) not in store.links:
                        return self.error(400, "BLOB_UNKNOWN", "blob unknown to registry")
                digest = store.put_manifest(repo, ref, media_type, data)
                return self.answer(201, headers={"Docker-Content-Digest": digest})
            if (repo, ref) not in store.manifests:
                return self.error(404, "MANIFEST_UNKNOWN", "manifest unknown")
            media_type, data = store.manifests[(repo, ref)]
            headers = {"Content-Type": media_type, "Docker-Content-Digest": sha(data)}
            return self.answer(200, data, headers)

        def blob(self, repo: str, digest: str) -> None:
            if (repo, digest) not in store.links:
                return self.error(404, "BLOB_UNKNOWN", "blob unknown to registry")
            if self.command == "HEAD":
                return self.answer(200, headers={"Docker-Content-Digest": digest})
            location = f"http://127.0.0.1:{store.cdn_port}/cdn/{digest}"
            return self.answer(307, headers={"Location": location})

        # A fake registry: one return per answer: past ruff's PLR0911 limit.
        def upload(self, repo: str, ref: str | None, query: dict) -> None:  # noqa: PLR0911
            if self.command == "POST":
                self.payload()
                mount, source = query.get("mount", [None])[0], query.get("from", [None])[0]
                if mount and (source, mount) in store.links:
                    store.links.add((repo, mount))
                    return self.answer(201, headers={"Docker-Content-Digest": mount})
                session = uuid.uuid4().hex
                store.uploads[session] = (repo, bytearray())
                return self.answer(202, headers={"Location": f"/v2/{repo}/blobs/uploads/{session}"})
            if ref not in store.uploads:
                return self.error(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown")
            if self.command == "DELETE":
                del store.uploads[ref]
                return self.answer(204)
            data = store.uploads[ref][1]
            chunk = self.payload()
            if self.command == "PATCH":
                start = int(self.headers["Content-Range"].split("-")[0])
                if start != len(data):
                    return self.error(416, "BLOB_UPLOAD_INVALID", "range")
                data += chunk
                return self.answer(202, headers={"Location": self.path, "Range": f"0-{len(data)}"})
            data += chunk
            digest = query["digest"][0]
            if sha(bytes(data)) != digest:
                return self.error(400, "DIGEST_INVALID", "provided digest did not match")
            store.blobs[digest] = bytes(data)
            store.links.add((repo, digest))
            del store.uploads[ref]
            return self.answer(201, headers={"Docker-Content-Digest": digest})

        do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = handle_any

    return Handler


def make_cdn(store: Store) -> type[BaseHTTPRequestHandler]:
    class Cdn(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            with store.lock:
                store.log.append(("CDN", self.path, self.headers.get("Authorization")))
            digest = self.path.rsplit("/", 1)[1]
            data = store.blobs[digest]
            if digest in store.corrupt:
                data = data[:-1] + bytes([data[-1] ^ 1])
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Cdn


@pytest.fixture
def fake() -> Iterator[Store]:
    store = Store({"sysinv": "pw"}, bearer=True)
    servers = [
        ThreadingHTTPServer(("127.0.0.1", 0), make_handler(store)),
        ThreadingHTTPServer(("127.0.0.1", 0), make_cdn(store)),
    ]
    store.port = servers[0].server_address[1]
    store.cdn_port = servers[1].server_address[1]
    threads = [threading.Thread(target=s.serve_forever, args=(0.05,), daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    yield store
    for server in servers:
        server.shutdown()
        server.server_close()


def image(store: Store, repo: str, tag: str, layers: list[bytes]) -> str:
    config = store.put_blob(repo, json.dumps({"architecture": "amd64"}).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": api.DOCKER_MANIFEST,
        "config": config,
        "layers": [store.put_blob(repo, layer) for layer in layers],
    }
    return store.put_manifest(repo, tag, api.DOCKER_MANIFEST, json.dumps(manifest).encode())


def client(store: Store, password: str = "pw", **kwargs: Any) -> api.Registry:
    # an insecure registry: HTTPS is tried first, then plain HTTP (docker's rule)
    return api.Registry(f"127.0.0.1:{store.port}", "sysinv", password, insecure=True, **kwargs)


def test_copy_with_bearer_tokens_redirects_and_chunks(fake: Store) -> None:
    digest = image(fake, "src/app", "1", [b"a" * 300, b"b" * 50])
    registry = client(fake)
    stats = api.copy_image(
        registry, "src/app", "1", registry, "docker.io/dst/app", chunk_size=100, mount=False
    )
    assert stats["digest"] == digest
    assert (stats["blobs_copied"], stats["bytes"]) == (3, 350 + len(b'{"architecture": "amd64"}'))
    assert fake.manifests[("docker.io/dst/app", "1")][1] == fake.manifests[("src/app", "1")][1]
    # the tag is the very last write
    writes = [entry for entry in fake.log if entry[0] in ("PUT", "PATCH", "POST")]
    assert writes[-1][:2] == ("PUT", "/v2/docker.io/dst/app/manifests/1")
    # the 300-byte layer went up in 100-byte PATCH chunks, then an empty PUT
    assert sum(1 for entry in fake.log if entry[0] == "PATCH") == 3
    # the blob store behind the redirect never sees the registry's credentials
    cdn = [entry for entry in fake.log if entry[0] == "CDN"]
    assert cdn
    assert all(entry[2] is None for entry in cdn)
    # Bearer: the token service got Basic credentials and the scopes; tokens are reused
    assert all("service" in request for request in fake.token_requests)
    scopes = {scope for request in fake.token_requests for scope in request["scope"]}
    assert "repository:src/app:pull" in scopes
    assert "repository:docker.io/dst/app:pull,push" in scopes
    assert len(fake.token_requests) <= 3
    # nothing over TLS: the insecure registry fell back to plain HTTP
    assert registry.scheme == "http"


def test_mount_within_one_registry(fake: Store) -> None:
    image(fake, "src/app", "1", [b"layer"])
    registry = client(fake)
    stats = api.copy_image(registry, "src/app", "1", registry, "dst/app")
    assert (stats["blobs_mounted"], stats["blobs_copied"]) == (2, 0)
    assert not [entry for entry in fake.log if entry[0] == "CDN"]


def test_rerun_finds_blobs_present(fake: Store) -> None:
    image(fake, "src/app", "1", [b"layer"])
    registry = client(fake)
    api.copy_image(registry, "src/app", "1", registry, "dst/app", mount=False)
    stats = api.copy_image(registry, "src/app", "1", registry, "dst/app", mount=False)
    assert (stats["blobs_present"], stats["blobs_copied"]) == (2, 0)
    assert registry.manifest_digest("dst/app", "1") == sha(fake.manifests[("src/app", "1")][1])
    assert registry.manifest_digest("dst/app", "2") is None


def test_manifest_list_copies_every_child_first(fake: Store) -> None:
    children = [image(fake, "src/multi", f"arch{i}", [f"layer{i}".encode()]) for i in (1, 2)]
    index = {
        "schemaVersion": 2,
        "mediaType": api.OCI_INDEX,
        "manifests": [
            {"mediaType": api.DOCKER_MANIFEST, "digest": d, "size": 1,
             "platform": {"os": "linux", "architecture": a}}
            for d, a in zip(children, ("amd64", "arm64"), strict=True)
        ],
    }  # fmt: skip
    digest = fake.put_manifest("src/multi", "1.0", api.OCI_INDEX, json.dumps(index).encode())
    registry = client(fake)
    stats = api.copy_image(registry, "src/multi", "1.0", registry, "dst/multi", mount=False)
    assert (stats["digest"], stats["manifests"], stats["media_type"]) == (digest, 3, api.OCI_INDEX)
    puts = [e[1] for e in fake.log if e[0] == "PUT" and "/manifests/" in e[1]]
    assert puts == [f"/v2/dst/multi/manifests/{children[0]}",
                    f"/v2/dst/multi/manifests/{children[1]}",
                    "/v2/dst/multi/manifests/1.0"]  # fmt: skip


def test_corrupt_source_blob_leaves_no_tag_and_cancels_the_upload(fake: Store) -> None:
    image(fake, "src/app", "1", [b"x" * 1000])
    layer = json.loads(fake.manifests[("src/app", "1")][1])["layers"][0]["digest"]
    fake.corrupt.add(layer)
    registry = client(fake)
    with pytest.raises(api.RegistryError, match="digest mismatch") as info:
        api.copy_image(registry, "src/app", "1", registry, "dst/app", mount=False)
    assert info.value.kind == api.TRANSIENT
    assert ("dst/app", "1") not in fake.manifests
    assert registry.tags("dst/app") == []
    assert not fake.uploads  # the session was cancelled
    assert any(entry[0] == "DELETE" for entry in fake.log)


def test_wrong_password_at_the_token_service(fake: Store) -> None:
    image(fake, "src/app", "1", [b"x"])
    with pytest.raises(api.RegistryError) as info:
        client(fake, password="nope").get_manifest("src/app", "1")
    assert info.value.kind == api.UNAUTHORIZED
    assert "token" in str(info.value)


def test_missing_manifest_and_blob(fake: Store) -> None:
    registry = client(fake)
    with pytest.raises(api.RegistryError) as info:
        registry.get_manifest("src/none", "1")
    assert (info.value.kind, info.value.status) == (api.NOT_FOUND, 404)
    assert not registry.has_blob("src/none", sha(b"nothing"))


def test_digest_reference_must_match(fake: Store) -> None:
    digest = image(fake, "src/app", "1", [b"x"])
    registry = client(fake)
    assert registry.get_manifest("src/app", digest).digest == digest
    media_type, data = fake.manifests[("src/app", digest)]
    fake.manifests[("src/app", digest)] = (media_type, data + b" ")
    with pytest.raises(api.RegistryError, match="digest mismatch"):
        registry.get_manifest("src/app", digest)


def test_basic_auth_registry() -> None:
    store = Store({"sysinv": "pw"}, bearer=False)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(store))
    store.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        image(store, "a/b", "1", [b"x"])
        registry = client(store)
        assert registry.manifest_digest("a/b", "1")
        first = [e for e in store.log if e[0] == "HEAD"]
        assert first[0][2] is None  # the first request learns the scheme from the challenge
        assert first[-1][2].startswith("Basic ")
        with pytest.raises(api.RegistryError, match="no basic auth credentials"):
            api.Registry(f"127.0.0.1:{store.port}", insecure=True).get_manifest("a/b", "1")
    finally:
        server.shutdown()
        server.server_close()
