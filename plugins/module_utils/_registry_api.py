# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""A small Docker Registry HTTP API v2 client: what the images phase needs to copy an image from
one registry into another without docker, skopeo or any daemon.

- TLS verified against the system trust, plus an optional CA file and docker's per-registry
  ``/etc/docker/certs.d/<host:port>/*.crt`` roots (as the docker daemon StarlingX uses would);
  verification is off only for a registry configured insecure (``secure: False``), which is
  then tried over HTTPS first and plain HTTP after, as docker treats insecure registries.
- Basic auth and the Bearer token challenge (``WWW-Authenticate: Bearer realm=...,service=...,
  scope=...``); tokens are cached per scope and renewed before they expire.
- Manifests: Docker v2 schema 2, OCI image manifests, and manifest lists / OCI indexes (the list
  and every child are copied, digests unchanged: the bytes are copied as they are).
- Blobs: streamed from the source into a monolithic PUT (or PATCH chunks above a size), with the
  size and digest checked as the bytes pass; cross-repository mount when the blob is known in
  the destination registry (same registry, or copied earlier in the run).
- The manifest is PUT last (children before their list), so a failed copy never leaves a tag
  pointing at missing content.
- A timeout per request and an overall deadline.
- Failures are RegistryError with a one-line message and a class: the hard failures of
  StarlingX's download_images.py (PB:roles/common/push-docker-images/files/download_images.py:
  24-29,95-106: NotFound, "no basic auth credentials", "Forbidden", "repository does not exist
  or may require 'docker login'", "no space left on device") and the others, which StarlingX
  retries (transient).

HTTP goes through http.client (the transport under urllib.request) rather than urllib.request:
when a registry rejects an upload part way through its body (e.g. its disk is full) the
registry's answer must still be read, and urllib.request drops it.

Runs on a subcloud's Python 3.9: standard library only, unannotated.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import glob
import hashlib
import http.client
import json
import os
import re
import socket
import ssl
import threading
import time
from urllib.parse import urlencode, urljoin, urlsplit

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST_TYPES = (OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST)
LIST_TYPES = (DOCKER_LIST, OCI_INDEX)
SCHEMA1_TYPES = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)
# Layers a registry does not hold (their urls point elsewhere); docker never pushes them.
FOREIGN_LAYER_TYPES = (
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
)

# Failure classes. The first five are download_images.py's hard failures (HARD FAIL, not
# retried: PR:prestage-images/tasks/main.yml:42-51); TRANSIENT is everything StarlingX retries.
NOT_FOUND = "not_found"
UNAUTHORIZED = "unauthorized"
FORBIDDEN = "forbidden"
REPOSITORY_DENIED = "repository_denied"
NO_SPACE = "no_space"
TRANSIENT = "transient"
TIMEOUT = "timeout"
INVALID = "invalid"
HARD_FAILURES = (NOT_FOUND, UNAUTHORIZED, FORBIDDEN, REPOSITORY_DENIED, NO_SPACE)

REQUEST_TIMEOUT = 120
UPLOAD_CHUNK = 64 << 20
DOCKER_CERTS_DIR = "/etc/docker/certs.d"
_READ = 1 << 20
_MAX_MANIFEST = 4 << 20
_MAX_ERROR_BODY = 64 << 10
_MAX_REDIRECTS = 5
_TOKEN_MARGIN = 10
_REDIRECTS = (301, 302, 303, 307, 308)


def _send_body(connection, body):
    """Send body (None, bytes or a reader); None or the OSError that stopped it - the registry
    may have answered and closed (a full disk), so the caller still reads the answer."""
    try:
        if isinstance(body, (bytes, bytearray)):
            if body:
                connection.send(body)
        elif body is not None:
            block = body.read(_READ)
            while block:
                connection.send(block)
                block = body.read(_READ)
    except OSError as exc:
        return exc
    return None


class RegistryError(Exception):
    """A registry operation failed: kind (a class above) and a one-line message."""

    def __init__(self, kind, message, status=None):
        super().__init__(one_line(message))
        self.kind = kind
        self.status = status

    @property
    def hard(self):
        return self.kind in HARD_FAILURES

    @property
    def retryable(self):
        return self.kind == TRANSIENT


def one_line(text, limit=400):
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- pure helpers


def parse_challenge(header):
    """(scheme lower-cased, {param: value}) of a WWW-Authenticate header (one challenge)."""
    header = (header or "").strip()
    scheme, _sep, rest = header.partition(" ")
    params = {}
    for match in re.finditer(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))',
                             rest):  # fmt: skip
        value = match.group(2) if match.group(2) is not None else match.group(3)
        params[match.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
    return scheme.lower(), params


def registry_errors(body):
    """The ``errors`` of a registry error body: [{code, message, detail}] (possibly empty)."""
    try:
        data = json.loads(body.decode("utf-8", "replace") if isinstance(body, bytes) else body)
    except (ValueError, AttributeError):
        return []
    errors = data.get("errors") if isinstance(data, dict) else None
    result = []
    for error in errors if isinstance(errors, list) else []:
        if isinstance(error, dict):
            result.append({
                "code": str(error.get("code") or ""),
                "message": str(error.get("message") or ""),
                "detail": error.get("detail"),
            })  # fmt: skip
    return result


def _error_text(status, reason, body):
    errors = registry_errors(body)
    if errors:
        parts = []
        for error in errors:
            text = error["message"] or error["code"].lower().replace("_", " ")
            detail = error["detail"]
            if detail and not isinstance(detail, str):
                # a server fault's detail names its cause; a client error's only echoes the
                # request (the tag, the access wanted)
                detail = json.dumps(detail, sort_keys=True) if error["code"] == "UNKNOWN" else None
            parts.append(f"{text} ({detail})" if detail else text)
        return "; ".join(parts)
    text = (body or b"").decode("utf-8", "replace").strip() if isinstance(body, bytes) else body
    return one_line(text, 200) or (reason or f"HTTP {status}")


def _enospc(value):
    """A Go error detail holding errno ENOSPC (distribution's storage driver errors carry
    {"Enclosed": {"Err": 28, ...}})."""
    if isinstance(value, dict):
        if value.get("Err") == errno.ENOSPC:
            return True
        return any(_enospc(item) for item in value.values())
    if isinstance(value, list):
        return any(_enospc(item) for item in value)
    return False


# One return per class of download_images.py, in its order: past ruff's PLR0911 limit.
def classify_status(status, reason, body, what, had_credentials=True):  # noqa: PLR0911
    """RegistryError for an HTTP answer that is not the expected one.

    download_images.py's hard classes (24-29, 95-106): "no space left on device" anywhere in
    the answer; 404 (docker raises NotFound: manifest unknown, repository name not known);
    401 (no credentials: "no basic auth credentials"; else unauthorized), a DENIED code
    ("repository does not exist or may require 'docker login'"); 403 (Forbidden). The rest
    (5xx, 429, ...) is transient.
    """
    raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    errors = registry_errors(body)
    codes = [error["code"] for error in errors]
    text = _error_text(status, reason, body)
    if "no space left on device" in raw.lower() or _enospc([e["detail"] for e in errors]):
        return RegistryError(NO_SPACE, f"{what}: no space left on device ({text})", status)
    if status == 404:
        return RegistryError(NOT_FOUND, f"{what}: not found ({text})", status)
    if "DENIED" in codes:
        return RegistryError(
            REPOSITORY_DENIED,
            f"{what}: repository does not exist or may require 'docker login' ({text})",
            status,
        )
    if status == 401:
        if not had_credentials:
            return RegistryError(UNAUTHORIZED, f"{what}: no basic auth credentials", status)
        return RegistryError(UNAUTHORIZED, f"{what}: unauthorized ({text})", status)
    if status == 403:
        return RegistryError(FORBIDDEN, f"{what}: Forbidden ({text})", status)
    return RegistryError(TRANSIENT, f"{what}: HTTP {status} ({text})", status)


# One return per failure class, most specific first: past ruff's PLR0911 limit.
def classify_exception(exc, what):  # noqa: PLR0911
    """RegistryError for a failure below HTTP (connection, TLS, timeout, local disk)."""
    if isinstance(exc, RegistryError):
        return exc
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return RegistryError(NO_SPACE, f"{what}: no space left on device")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return RegistryError(
            TRANSIENT, f"{what}: TLS certificate verification failed ({exc.verify_message})"
        )
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return RegistryError(TRANSIENT, f"{what}: timed out")
    if isinstance(exc, ConnectionRefusedError):
        return RegistryError(TRANSIENT, f"{what}: connection refused")
    if isinstance(exc, socket.gaierror):
        return RegistryError(TRANSIENT, f"{what}: cannot resolve the registry host ({exc})")
    if isinstance(exc, (OSError, http.client.HTTPException)):
        return RegistryError(TRANSIENT, f"{what}: {type(exc).__name__}: {exc}")
    return RegistryError(TRANSIENT, f"{what}: {type(exc).__name__}: {exc}")


def ssl_context(host=None, ca_file=None, certs_dir=DOCKER_CERTS_DIR, verify=True):
    """TLS context: the system trust, ca_file, and docker's certs.d/<host>/*.crt roots."""
    if not verify:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    if certs_dir and host:
        for path in sorted(glob.glob(os.path.join(certs_dir, host, "*.crt"))):
            context.load_verify_locations(cafile=path)
    return context


# One return per clue, in the order they are trusted: past ruff's PLR0911 limit.
def media_type_of(content_type, body):  # noqa: PLR0911
    """The manifest media type: the Content-Type when it names one, else the body's
    ``mediaType``, else OCI by shape (an OCI manifest need not name its type)."""
    ctype = (content_type or "").split(";", 1)[0].strip()
    if ctype in MANIFEST_TYPES or ctype in SCHEMA1_TYPES:
        return ctype
    try:
        data = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return ctype
    if not isinstance(data, dict):
        return ctype
    if data.get("mediaType"):
        return data["mediaType"]
    if data.get("schemaVersion") == 1:
        return SCHEMA1_TYPES[0]
    if "manifests" in data:
        return OCI_INDEX
    if "layers" in data or "config" in data:
        return OCI_MANIFEST
    return ctype


def digest_of(data, algorithm="sha256"):
    return algorithm + ":" + hashlib.new(algorithm, data).hexdigest()


def _hasher(digest):
    algorithm, _sep, _hex = (digest or "").partition(":")
    try:
        return hashlib.new(algorithm)
    except (ValueError, TypeError):
        raise RegistryError(INVALID, f"unsupported digest {digest!r}") from None


def scope(repository, actions="pull"):
    return f"repository:{repository}:{actions}"


def _with_query(url, **params):
    separator = "&" if urlsplit(url).query else "?"
    return url + separator + urlencode(params)


class Manifest:
    """A manifest as fetched: the exact bytes (its digest depends on them)."""

    def __init__(self, media_type, body, digest):
        self.media_type = media_type
        self.body = body
        self.digest = digest
        self._data = None

    @property
    def data(self):
        if self._data is None:
            try:
                self._data = json.loads(self.body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                raise RegistryError(INVALID, f"manifest {self.digest} is not JSON") from None
        return self._data

    @property
    def is_list(self):
        return self.media_type in LIST_TYPES

    def children(self):
        """Descriptors of a list's manifests."""
        return [m for m in self.data.get("manifests") or [] if isinstance(m, dict)]

    def blobs(self):
        """Descriptors of an image manifest's config and layers (foreign layers left out)."""
        found = []
        config = self.data.get("config")
        if isinstance(config, dict) and config.get("digest"):
            found.append(config)
        for layer in self.data.get("layers") or []:
            if isinstance(layer, dict) and layer.get("digest"):
                if layer.get("mediaType") in FOREIGN_LAYER_TYPES:
                    continue
                found.append(layer)
        return found


class _Response:
    """An HTTP answer whose connection closes with it."""

    def __init__(self, connection, response):
        self._connection = connection
        self._response = response
        self.status = response.status
        self.reason = response.reason

    def header(self, name, default=None):
        return self._response.getheader(name, default)

    def read(self, size=-1):
        return self._response.read(size)

    def read_limited(self, limit):
        data = self._response.read(limit + 1)
        if len(data) > limit:
            raise RegistryError(TRANSIENT, f"answer larger than {limit} bytes")
        return data

    def close(self):
        try:
            self._response.close()
        finally:
            self._connection.close()

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        self.close()


class BlobReader:
    """A source blob being read: counts and hashes the bytes and, at its end, checks them
    against the descriptor (size, digest); checks the deadline as it goes. Failures are
    RegistryError (never OSError), so that a PUT streaming it knows whose fault it was."""

    def __init__(self, response, digest, size, what, deadline=None):
        self._response = response
        self.digest = digest
        self.size = size
        self.what = what
        self.deadline = deadline
        self.count = 0
        self._hash = _hasher(digest)
        self.verified = False

    def read(self, size=_READ):
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise RegistryError(TIMEOUT, f"{self.what}: deadline reached while copying")
        try:
            data = self._response.read(size)
        except (OSError, http.client.HTTPException) as exc:
            raise classify_exception(exc, f"{self.what}: reading from the source") from None
        if data:
            self.count += len(data)
            if self.size is not None and self.count > self.size:
                raise RegistryError(
                    TRANSIENT, f"{self.what}: the source sent more than {self.size} bytes"
                )
            self._hash.update(data)
            return data
        if self.size is not None and self.count != self.size:
            raise RegistryError(
                TRANSIENT, f"{self.what}: the source sent {self.count} of {self.size} bytes"
            )
        got = self.digest.partition(":")[0] + ":" + self._hash.hexdigest()
        if got != self.digest:
            raise RegistryError(TRANSIENT, f"{self.what}: digest mismatch (got {got})")
        self.verified = True
        return b""


class _Limited:
    """At most size bytes of a reader (one PATCH chunk)."""

    def __init__(self, reader, size):
        self._reader = reader
        self._left = size

    def read(self, size=_READ):
        if self._left <= 0:
            return b""
        data = self._reader.read(min(size, self._left))
        if not data:
            raise RegistryError(TRANSIENT, "the source ended before the declared size")
        self._left -= len(data)
        return data


# --------------------------------------------------------------------------- client


class Registry:
    """One registry (``host[:port]``) with its credentials. Thread-safe: the images of a run
    share one instance per registry and credentials (and so its tokens)."""

    def __init__(
        self,
        host,
        username=None,
        password=None,
        *,
        ca_file=None,
        certs_dir=DOCKER_CERTS_DIR,
        insecure=False,
        timeout=REQUEST_TIMEOUT,
        deadline=None,
    ):
        self.host = host
        self.username = username
        self.password = password
        self.insecure = insecure
        self.timeout = timeout
        self.deadline = deadline
        self.scheme = "https"
        self.context = ssl_context(host, ca_file, certs_dir, verify=not insecure)
        self._lock = threading.Lock()
        self._auth = None  # None, "basic" or "bearer"
        self._bearer = {}
        self._tokens = {}

    # ---- transport

    @property
    def base(self):
        return f"{self.scheme}://{self.host}"

    def same_registry(self, other):
        return (self.host, self.username, self.password) == (
            other.host,
            other.username,
            other.password,
        )

    def _timeout(self, what):
        if self.deadline is None:
            return self.timeout
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise RegistryError(TIMEOUT, f"{what}: deadline reached")
        return max(1.0, min(self.timeout, remaining))

    def _connect(self, url, timeout):
        parts = urlsplit(url)
        if parts.scheme == "https":
            connection = http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=timeout, context=self.context
            )
        elif parts.scheme == "http":
            connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        else:
            raise RegistryError(INVALID, f"unsupported URL {url!r}")
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return connection, path

    def _send(self, method, url, headers, *, body, length, what):
        """One HTTP exchange. body: None, bytes or a reader (then length is required). A
        failure while sending the body still reads the registry's answer when it sent one."""
        timeout = self._timeout(what)
        connection, path = self._connect(url, timeout)
        try:
            connection.putrequest(method, path, skip_accept_encoding=True)
            for name, value in headers.items():
                connection.putheader(name, value)
            if body is not None:
                size = len(body) if isinstance(body, (bytes, bytearray)) else length
                connection.putheader("Content-Length", str(size))
            connection.endheaders()
            send_error = _send_body(connection, body)
            try:
                response = connection.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                raise classify_exception(send_error or exc, what) from None
            return _Response(connection, response)
        except RegistryError:
            connection.close()
            raise
        except ssl.SSLError as exc:
            connection.close()
            if self.insecure and urlsplit(url).scheme == "https":
                raise _PlainHttp() from exc
            raise classify_exception(exc, what) from None
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise classify_exception(exc, what) from None

    def _exchange(self, method, url, headers, *, body=None, length=None, what):
        try:
            return self._send(method, url, headers, body=body, length=length, what=what)
        except _PlainHttp:
            # docker's insecure registry: HTTPS without verification first, then plain HTTP
            if urlsplit(url).netloc == self.host:
                with self._lock:
                    self.scheme = "http"
            return self._send(
                method, "http" + url[len("https") :], headers, body=body, length=length, what=what
            )

    # ---- authentication

    def _credentials(self):
        return self.username is not None and self.password is not None

    def _basic(self):
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return "Basic " + token

    def _authorization(self, scopes, what):
        with self._lock:
            auth = self._auth
        if auth == "basic":
            return self._basic()
        if auth == "bearer":
            return "Bearer " + self._token(scopes, what)
        return None

    def _token(self, scopes, what, challenge_scope=None):
        wanted = sorted(set(list(scopes or []) + ([challenge_scope] if challenge_scope else [])))
        key = " ".join(wanted)
        with self._lock:
            cached = self._tokens.get(key)
            bearer = dict(self._bearer)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        params = [("service", bearer["service"])] if bearer.get("service") else []
        params += [("scope", item) for item in wanted]
        if self._credentials():
            params.append(("account", self.username))
        url = bearer["realm"]
        if params:
            url += ("&" if urlsplit(url).query else "?") + urlencode(params)
        headers = {"Accept": "application/json"}
        if self._credentials():
            headers["Authorization"] = self._basic()
        response = self._exchange("GET", url, headers, what=f"{what}: token")
        with response:
            body = response.read_limited(_MAX_ERROR_BODY)
            if response.status != 200:
                raise classify_status(
                    response.status,
                    response.reason,
                    body,
                    f"{what}: token from {urlsplit(bearer['realm']).netloc}",
                    self._credentials(),
                )
        try:
            data = json.loads(body.decode("utf-8"))
            token = data.get("token") or data.get("access_token")
            expires = int(data.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError):
            token = None
        if not token:
            raise RegistryError(TRANSIENT, f"{what}: the token server sent no token")
        expiry = time.monotonic() + max(1, expires - _TOKEN_MARGIN)
        with self._lock:
            self._tokens[key] = (token, expiry)
        return token

    def _learn(self, challenge, scopes, what):
        """Set up the authentication a 401 asks for; False when it cannot help."""
        kind, params = parse_challenge(challenge)
        if kind == "basic":
            if not self._credentials():
                raise RegistryError(UNAUTHORIZED, f"{what}: no basic auth credentials", 401)
            with self._lock:
                self._auth = "basic"
            return True
        if kind == "bearer" and params.get("realm"):
            with self._lock:
                self._auth = "bearer"
                self._bearer = {"realm": params["realm"], "service": params.get("service")}
            self._token(scopes, what, params.get("scope"))
            return True
        return False

    # ---- requests

    def request(
        self,
        method,
        target,
        scopes=None,
        *,
        headers=None,
        body=None,
        length=None,
        ok=(200,),
        what=None,
    ):
        """An open answer (the caller reads and closes it) whose status is in ok; follows
        redirects of GET/HEAD (without credentials to another host); authenticates on a 401.
        Raises RegistryError."""
        what = what or f"{method} {target}"
        redirected = target if "://" in target else None
        streamed = body is not None and not isinstance(body, (bytes, bytearray))
        headers = dict(headers or {})
        authorized = False
        redirects = 0
        while True:
            # a path follows the scheme the registry turned out to speak (insecure: http)
            url = redirected or self.base + target
            sent = dict(headers)
            same_host = urlsplit(url).netloc == self.host
            if same_host:
                authorization = self._authorization(scopes, what)
                if authorization:
                    sent["Authorization"] = authorization
                    authorized = True
            response = self._exchange(method, url, sent, body=body, length=length, what=what)
            status = response.status
            if status in ok:
                return response
            if status in _REDIRECTS and method in ("GET", "HEAD") and redirects < _MAX_REDIRECTS:
                location = response.header("Location")
                response.close()
                if not location:
                    raise RegistryError(TRANSIENT, f"{what}: redirect without a location")
                redirected = urljoin(url, location)
                redirects += 1
                continue
            challenge = response.header("WWW-Authenticate")
            error_body = b"" if method == "HEAD" else response.read_limited(_MAX_ERROR_BODY)
            response.close()
            if (
                status == 401
                and same_host
                and not authorized
                and not streamed
                and challenge
                and self._learn(challenge, scopes, what)
            ):
                authorized = True
                continue
            if status == 401 and streamed:
                raise RegistryError(TRANSIENT, f"{what}: authorization lost during an upload")
            raise classify_status(
                status, response.reason, error_body, what, self._credentials() or authorized
            )

    # ---- manifests

    def get_manifest(self, repository, reference):
        what = f"manifest {self.host}/{repository}:{reference}"
        response = self.request(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            [scope(repository)],
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
            what=what,
        )
        with response:
            body = response.read_limited(_MAX_MANIFEST)
            content_type = response.header("Content-Type")
            header_digest = response.header("Docker-Content-Digest")
        media_type = media_type_of(content_type, body)
        if media_type in SCHEMA1_TYPES:
            raise RegistryError(INVALID, f"{what}: Docker schema 1 manifests are not supported")
        if media_type not in MANIFEST_TYPES:
            raise RegistryError(INVALID, f"{what}: unsupported manifest type {media_type!r}")
        if reference.partition(":")[0] in ("sha256", "sha512") and ":" in reference:
            expected = reference
        elif header_digest and ":" in header_digest:
            expected = header_digest
        else:
            expected = None
        algorithm = (expected or "sha256").partition(":")[0]
        try:
            digest = digest_of(body, algorithm)
        except ValueError:
            raise RegistryError(INVALID, f"{what}: unsupported digest {expected!r}") from None
        if expected and digest != expected:
            raise RegistryError(TRANSIENT, f"{what}: digest mismatch (got {digest})")
        return Manifest(media_type, body, digest)

    def manifest_digest(self, repository, reference, actions="pull"):
        """The digest of the manifest (HEAD), or None when the registry has no such manifest."""
        what = f"manifest {self.host}/{repository}:{reference}"
        try:
            response = self.request(
                "HEAD",
                f"/v2/{repository}/manifests/{reference}",
                [scope(repository, actions)],
                headers={"Accept": ", ".join(MANIFEST_TYPES)},
                what=what,
            )
        except RegistryError as exc:
            if exc.kind == NOT_FOUND:
                return None
            raise
        with response:
            digest = response.header("Docker-Content-Digest")
        if not digest:
            digest = self.get_manifest(repository, reference).digest
        return digest

    def put_manifest(self, repository, reference, manifest):
        what = f"manifest {self.host}/{repository}:{reference}"
        response = self.request(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            [scope(repository, "pull,push")],
            headers={"Content-Type": manifest.media_type},
            body=manifest.body,
            ok=(200, 201),
            what=what,
        )
        with response:
            digest = response.header("Docker-Content-Digest")
        if digest and digest != manifest.digest:
            raise RegistryError(
                TRANSIENT, f"{what}: the registry stored digest {digest}, not {manifest.digest}"
            )
        return manifest.digest

    def tags(self, repository):
        """The repository's tags ([] when the registry does not know it)."""
        try:
            response = self.request(
                "GET", f"/v2/{repository}/tags/list", [scope(repository)], what="tags"
            )
        except RegistryError as exc:
            if exc.kind == NOT_FOUND:
                return []
            raise
        with response:
            data = json.loads(response.read_limited(_MAX_MANIFEST).decode("utf-8") or "{}")
        return list(data.get("tags") or [])

    # ---- blobs

    def has_blob(self, repository, digest, actions="pull"):
        try:
            response = self.request(
                "HEAD",
                f"/v2/{repository}/blobs/{digest}",
                [scope(repository, actions)],
                what=f"blob {self.host}/{repository}@{digest}",
            )
        except RegistryError as exc:
            if exc.kind == NOT_FOUND:
                return False
            raise
        response.close()
        return True

    def open_blob(self, repository, digest):
        """An open answer streaming the blob (close it)."""
        return self.request(
            "GET",
            f"/v2/{repository}/blobs/{digest}",
            [scope(repository)],
            what=f"blob {self.host}/{repository}@{digest}",
        )

    def start_upload(self, repository, digest=None, mount_from=None):
        """(mounted, upload location): with mount_from, ask the registry to mount digest from
        that repository (201: done, no upload); else (or when it declines) an upload session."""
        path = f"/v2/{repository}/blobs/uploads/"
        scopes = [scope(repository, "pull,push")]
        if mount_from and digest:
            path += "?" + urlencode({"mount": digest, "from": mount_from})
            scopes.append(scope(mount_from))
        response = self.request(
            "POST",
            path,
            scopes,
            body=b"",
            ok=(201, 202),
            what=f"upload {self.host}/{repository}@{digest or ''}",
        )
        with response:
            status = response.status
            location = response.header("Location")
        if status == 201:
            return True, None
        if not location:
            raise RegistryError(TRANSIENT, f"upload to {self.host}/{repository}: no location")
        return False, urljoin(self.base + path, location)

    def cancel_upload(self, location, scopes=None):
        """Best effort: abandon an upload session."""
        if not location:
            return
        with contextlib.suppress(RegistryError):
            self.request(
                "DELETE", location, scopes, ok=(200, 202, 204), what="cancel upload"
            ).close()

    def upload_blob(self, repository, digest, size, reader, location, *, chunk_size=None):
        """Upload size bytes of reader as blob digest into the session at location: one
        streamed PUT, or PATCH chunks of chunk_size then an empty PUT. The session is cancelled
        when anything fails."""
        what = f"blob upload {self.host}/{repository}@{digest}"
        scopes = [scope(repository, "pull,push")]
        octet = {"Content-Type": "application/octet-stream"}
        try:
            if not chunk_size or size <= chunk_size:
                self.request(
                    "PUT",
                    _with_query(location, digest=digest),
                    scopes,
                    headers=octet,
                    body=reader,
                    length=size,
                    ok=(201, 204),
                    what=what,
                ).close()
                return
            offset = 0
            while offset < size:
                count = min(chunk_size, size - offset)
                headers = dict(octet, **{"Content-Range": f"{offset}-{offset + count - 1}"})
                response = self.request(
                    "PATCH",
                    location,
                    scopes,
                    headers=headers,
                    body=_Limited(reader, count),
                    length=count,
                    ok=(202, 204),
                    what=what,
                )
                with response:
                    location = urljoin(location, response.header("Location") or location)
                offset += count
            if reader.read(1):
                raise RegistryError(TRANSIENT, f"{what}: the source sent more than {size} bytes")
            self.request(
                "PUT",
                _with_query(location, digest=digest),
                scopes,
                headers=octet,
                body=b"",
                ok=(201, 204),
                what=what,
            ).close()
        except RegistryError:
            self.cancel_upload(location, scopes)
            raise


class _PlainHttp(Exception):
    """An insecure registry does not speak TLS: retry over HTTP."""


# --------------------------------------------------------------------------- copy


class BlobIndex:
    """Blobs known to be in repositories of the destination registry during a run (so a later
    image mounts a shared layer instead of uploading it again)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._where = {}

    def add(self, digest, repository):
        with self._lock:
            self._where.setdefault(digest, repository)

    def where(self, digest):
        with self._lock:
            return self._where.get(digest)


def copy_image(
    source,
    source_repository,
    source_reference,
    destination,
    destination_repository,
    *,
    destination_reference=None,
    deadline=None,
    mount=True,
    chunk_size=UPLOAD_CHUNK,
    index=None,
):
    """Copy one image (a manifest, or a list and all its manifests) and return what was done:
    {digest, media_type, manifests, blobs_copied, blobs_mounted, blobs_present, bytes}.

    Order: every blob of a manifest, then the manifest; the children of a list, then the list;
    the tag (destination_reference) is written by the very last request, so any failure before
    it leaves the destination without the tag.
    """
    stats = {
        "digest": None,
        "media_type": None,
        "manifests": 0,
        "blobs_copied": 0,
        "blobs_mounted": 0,
        "blobs_present": 0,
        "bytes": 0,
    }
    index = index if index is not None else BlobIndex()
    if destination_reference is None:
        destination_reference = source_reference
    options = {"deadline": deadline, "mount": mount, "chunk_size": chunk_size, "index": index}
    top = source.get_manifest(source_repository, source_reference)
    stats["media_type"] = top.media_type
    if top.is_list:
        for child in top.children():
            child_digest = child.get("digest")
            if not child_digest:
                raise RegistryError(INVALID, f"{top.digest}: a list entry has no digest")
            manifest = source.get_manifest(source_repository, child_digest)
            if manifest.is_list:
                raise RegistryError(INVALID, f"{child_digest}: nested manifest lists")
            _copy_blobs(
                source, source_repository, destination, destination_repository, manifest,
                stats=stats, **options,
            )  # fmt: skip
            destination.put_manifest(destination_repository, child_digest, manifest)
            stats["manifests"] += 1
    else:
        _copy_blobs(
            source, source_repository, destination, destination_repository, top,
            stats=stats, **options,
        )  # fmt: skip
    destination.put_manifest(destination_repository, destination_reference, top)
    stats["manifests"] += 1
    stats["digest"] = top.digest
    return stats


def _copy_blobs(
    source, source_repository, destination, destination_repository, manifest,
    *, stats, deadline, mount, chunk_size, index,
):  # fmt: skip
    same = destination.same_registry(source)
    for descriptor in manifest.blobs():
        digest = descriptor["digest"]
        size = descriptor.get("size")
        if deadline is not None and time.monotonic() > deadline:
            raise RegistryError(TIMEOUT, f"blob {digest}: deadline reached")
        if destination.has_blob(destination_repository, digest, "pull,push"):
            stats["blobs_present"] += 1
            index.add(digest, destination_repository)
            continue
        mount_from = None
        if mount:
            mount_from = source_repository if same else index.where(digest)
        if mount_from == destination_repository:
            mount_from = None
        mounted, location = destination.start_upload(destination_repository, digest, mount_from)
        if mounted:
            stats["blobs_mounted"] += 1
            index.add(digest, destination_repository)
            continue
        what = f"blob {source.host}/{source_repository}@{digest}"
        scopes = [scope(destination_repository, "pull,push")]
        try:
            response = source.open_blob(source_repository, digest)
        except RegistryError:
            destination.cancel_upload(location, scopes)
            raise
        try:
            if size is None:
                size = int(response.header("Content-Length") or -1)
            if size < 0:
                destination.cancel_upload(location, scopes)
                raise RegistryError(TRANSIENT, f"{what}: size unknown")
            reader = BlobReader(response, digest, size, what, deadline)
            # upload_blob cancels the session itself when it fails
            destination.upload_blob(
                destination_repository, digest, size, reader, location, chunk_size=chunk_size
            )
        finally:
            response.close()
        stats["blobs_copied"] += 1
        stats["bytes"] += size
        index.add(digest, destination_repository)
