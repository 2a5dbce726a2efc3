# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""A small client of the system controller's Keystone and dcmanager APIs (standard library only).

What python-dcmanagerclient does, for the calls prestage needs:
- Keystone v3 password authentication (POST <auth_url>/auth/tokens; the token in the
  X-Subject-Token header, the service catalog in the body), then dcmanager's endpoint from the
  catalog: service type `dcmanager` (DCC:api/v1/client.py:76), interface `public` - the library's
  default, `publicURL` (DCC:api/v1/client.py:75; the `dcmanager` shell run on the system
  controller itself asks for `internalURL`, DCC:shell.py:394, which only the system controller
  reaches) - in region `region_name` (dcmanager registers its endpoints in region
  SystemController);
- every dcmanager request carries X-Auth-Token; a 401 (the token expired or was revoked) gets one
  new token and one more try;
- GET /v1.0/subclouds, whose entries lack `oam_floating_ip`: the detail call
  /v1.0/subclouds/<ref>/detail (DCC:api/v1/subcloud_manager.py:130, 112) gives it, one call per
  subcloud, made in a bounded thread pool;
- subcloud groups: GET/POST /v1.0/subcloud-groups, GET/PATCH/DELETE /v1.0/subcloud-groups/<ref>
  with JSON bodies (DCC:api/v1/subcloud_group_manager.py:118-142); a subcloud's group changes with a
  multipart/form-data PATCH /v1.0/subclouds/<ref> of `group_id` (a group name or id, as
  DCC:commands/v1/subcloud_manager.py:687 sends it; DCC:api/v1/subcloud_manager.py:48-60).

(DCC: is starlingx/distcloud-client's distributedcloud-client/dcmanagerclient/.)

Requests go over http.client connections kept alive per thread (one TLS handshake per worker,
not per call). TLS is verified by default (the system's trust store, or `ca_file`). Every
failure is one PrestageError line naming the endpoint and what was wrong; dcmanager's own message
(pecan's JSON error `description`, a `faultstring`, webob's error page text) is kept word for
word.
"""

from __future__ import annotations

import html
import http.client
import ipaddress
import json
import re
import socket
import ssl
import threading
import urllib.parse
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ansible_collections.distcloud.prestage.plugins.module_utils._formats import (
    decimal_int,
    is_software_version,
    is_subcloud_name,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import (
    NotFoundError,
    PrestageError,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._registry import (
    ANSIBLE_RESERVED_GROUPS,
    DEFAULT_GROUP_ID,
    Group,
    Registry,
    Subcloud,
)

SERVICE_TYPE = "dcmanager"
INTERFACE = "public"
DEFAULT_REGION = "SystemController"
DEFAULT_DOMAIN = "Default"
DEFAULT_PASSWORD_ENV = "OS_PASSWORD"
DEFAULT_TIMEOUT = 30.0
# Detail calls at once: dcmanager asks each online subcloud's own Keystone for its OAM address
# (DC:dcmanager/api/controllers/v1/subclouds.py:527-560), so a few at a time, not hundreds.
DETAIL_WORKERS = 8
# A response larger than this is refused rather than read (5,000 subclouds list in ~10 MB).
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
# An error body is read only this far (the message is in its first lines).
MAX_ERROR_BYTES = 64 * 1024


@dataclass(frozen=True)
class DcmanagerSettings:
    """The inventory config's `dcmanager` mapping, checked (plugin_utils/_config.py)."""

    auth_url: str
    username: str
    project_name: str
    user_domain_name: str = DEFAULT_DOMAIN
    project_domain_name: str = DEFAULT_DOMAIN
    region_name: str = DEFAULT_REGION
    password_env: str = DEFAULT_PASSWORD_ENV
    ca_file: str | None = None
    validate_certs: bool = True
    timeout: float = DEFAULT_TIMEOUT


class DcmanagerError(PrestageError):
    """A request to Keystone or dcmanager failed; status is the HTTP status, if any."""

    def __init__(self, message: str, status: int | None = None, fault: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.fault = fault


class DcmanagerNotFound(DcmanagerError, NotFoundError):
    """dcmanager answered 404 (a subcloud or a subcloud group that does not exist)."""


def keystone_v3_url(auth_url: str) -> str:
    """The Keystone v3 base URL of auth_url (with or without its /v3)."""
    base = auth_url.rstrip("/")
    return base if base.endswith("/v3") else f"{base}/v3"


def error_text(body: bytes) -> str | None:
    """The message of an error response: dcmanager's `faultstring`, Keystone's error.message,
    webob's JSON `message` or the text of its HTML error page (without the title and the generic
    explanation of the status), else the body's first line."""
    text = body[:MAX_ERROR_BYTES].decode("utf-8", errors="replace").strip()
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for candidate in (
            data.get("faultstring"),
            error.get("message") if isinstance(error := data.get("error"), dict) else None,
            data.get("error_message"),
            data.get("description"),  # pecan's JSON error (an Accept preferring JSON)
            data.get("message"),  # webob's JSON error page
            data.get("explanation"),
            data.get("title"),
        ):
            if isinstance(candidate, str) and candidate.strip():
                if candidate.lstrip().startswith("{"):  # error_message holding a faultstring
                    nested = error_text(candidate.encode())
                    if nested:
                        return nested
                return _last_lines(_strip_tags(candidate))
        return None
    if "<" in text and ">" in text:
        return _last_lines(_strip_tags(text, drop_headings=True))
    return _last_lines(text)


def _strip_tags(text: str, drop_headings: bool = False) -> str:
    if drop_headings:
        text = re.sub(r"(?is)<(title|h1)>.*?</\1>", "\n", text)
    text = re.sub(r"(?i)<br\s*/?>", "\n", text)
    return html.unescape(re.sub(r"<[^>]*>", "\n", text))


# webob's generic explanations, which precede the detail of an abort() (they say nothing more
# than the status)
_GENERIC = re.compile(
    r"^(The resource could not be found\.|The server could not comply with the request since it "
    r"is either malformed or otherwise incorrect\.|This server could not verify that you are "
    r"authorized to access the document you requested\..*|Access was denied to this resource\.|"
    r"The server has either erred or is incapable of performing the requested operation\.|"
    r"There was a conflict when trying to complete your request\.)$"
)


def _last_lines(text: str) -> str | None:
    lines = [" ".join(line.split()) for line in text.splitlines()]
    lines = [line for line in lines if line]
    specific = [line for line in lines if not _GENERIC.match(line)]
    chosen = specific or lines
    return " ".join(chosen)[:500] if chosen else None


def _reason(exc: BaseException) -> str:
    """A short reason for a failed connection."""
    reason: Any = exc
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed ({reason.verify_message or reason})"
    if isinstance(reason, ssl.SSLError):
        return f"TLS failed ({reason.reason or reason})"
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(reason, http.client.RemoteDisconnected):
        return "the server closed the connection without an answer"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return " ".join(str(reason).split()) or type(reason).__name__


class DcmanagerClient:
    """Keystone-authenticated calls to dcmanager's API v1.0 (thread-safe)."""

    def __init__(self, settings: DcmanagerSettings, password: str, workers: int = DETAIL_WORKERS):
        self.settings = settings
        self._password = password
        self._workers = max(1, workers)
        self._lock = threading.Lock()
        self._renew_lock = threading.Lock()  # one re-authentication at a time
        self._token: str | None = None
        self._generation = 0  # incremented with every new token
        self._endpoint: str | None = None
        self._context = self._ssl_context()
        self._local = threading.local()  # each thread's kept-alive connections

    # ------------------------------------------------------------------ transport

    def _ssl_context(self) -> ssl.SSLContext:
        if not self.settings.validate_certs:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        try:
            return ssl.create_default_context(cafile=self.settings.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise PrestageError(
                f"dcmanager source: cannot use ca_file {self.settings.ca_file}: "
                f"{getattr(exc, 'strerror', None) or exc}"
            ) from None

    def _connection(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        """This thread's kept-alive connection to netloc (one TLS handshake per thread and
        server, not one per request: 5,000 detail calls)."""
        connections: dict[tuple[str, str], http.client.HTTPConnection] = (
            getattr(self._local, "connections", None) or {}
        )
        self._local.connections = connections
        found = connections.get((scheme, netloc))
        if found is None:
            timeout = self.settings.timeout
            if scheme == "https":
                found = http.client.HTTPSConnection(netloc, timeout=timeout, context=self._context)
            else:
                found = http.client.HTTPConnection(netloc, timeout=timeout)
            connections[(scheme, netloc)] = found
        return found

    def _send(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: dict[str, str],
        what: str,
    ) -> tuple[int, dict[str, str], bytes]:
        """One HTTP request: (status, headers, body) for any HTTP answer, DcmanagerError when none
        came (unreachable, TLS, timeout)."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise DcmanagerError(f"{what} {method} {url}: not an http(s) URL")
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        for attempt in (1, 2):
            connection = self._connection(parts.scheme, parts.netloc)
            reused = connection.sock is not None
            try:
                connection.request(method, target, body=body, headers=headers)
                response = connection.getresponse()
                limit = MAX_RESPONSE_BYTES if response.status < 400 else MAX_ERROR_BYTES
                data = response.read(limit + 1)
                if len(data) > limit or response.will_close:
                    connection.close()
                status, answer_headers = response.status, dict(response.getheaders())
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                connection.close()
                if reused and attempt == 1:
                    continue  # the server closed an idle kept-alive connection: a new one
                raise DcmanagerError(f"{what} {method} {url}: {_reason(exc)}") from None
            except (OSError, http.client.HTTPException, ValueError) as exc:
                connection.close()
                raise DcmanagerError(f"{what} {method} {url}: {_reason(exc)}") from None
            if status < 400 and len(data) > MAX_RESPONSE_BYTES:
                raise DcmanagerError(
                    f"{what} {method} {url}: the answer is larger than {MAX_RESPONSE_BYTES} bytes"
                )
            return status, answer_headers, data
        raise DcmanagerError(f"{what} {method} {url}: no answer")  # pragma: no cover

    def close(self) -> None:
        """Close this thread's connections (the pool's threads' close when they end)."""
        for connection in (getattr(self._local, "connections", None) or {}).values():
            connection.close()
        self._local.connections = {}

    # ------------------------------------------------------------------ Keystone

    def authenticate(self) -> None:
        """A new token and dcmanager's endpoint from the catalog."""
        settings = self.settings
        url = f"{keystone_v3_url(settings.auth_url)}/auth/tokens"
        payload = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": settings.username,
                            "domain": {"name": settings.user_domain_name},
                            "password": self._password,
                        }
                    },
                },
                "scope": {
                    "project": {
                        "name": settings.project_name,
                        "domain": {"name": settings.project_domain_name},
                    }
                },
            }
        }
        status, headers, data = self._send(
            "POST",
            url,
            json.dumps(payload).encode(),
            {"Content-Type": "application/json", "Accept": "application/json"},
            "Keystone",
        )
        if status == 401:
            raise DcmanagerError(
                f"Keystone POST {url}: the credentials of user {settings.username} (project "
                f"{settings.project_name}) were refused: {error_text(data) or 'Unauthorized'}",
                status,
            )
        if not 200 <= status < 300:
            raise DcmanagerError(
                f"Keystone POST {url}: HTTP {status}: {error_text(data) or 'no message'}", status
            )
        token = {k.lower(): v for k, v in headers.items()}.get("x-subject-token")
        if not token:
            raise DcmanagerError(f"Keystone POST {url}: no X-Subject-Token in the answer")
        body = _json(data, "Keystone", "POST", url)
        token_body = body.get("token") if isinstance(body, dict) else None
        catalog = token_body.get("catalog") if isinstance(token_body, dict) else None
        if not isinstance(catalog, list):
            raise DcmanagerError(f"Keystone POST {url}: the token has no service catalog")
        endpoint = self._catalog_endpoint(catalog, url)
        with self._lock:
            self._token = token
            self._endpoint = endpoint
            self._generation += 1

    def _catalog_endpoint(self, catalog: list[Any], url: str) -> str:
        region = self.settings.region_name
        regions: set[str] = set()
        for service in catalog:
            if not isinstance(service, dict) or service.get("type") != SERVICE_TYPE:
                continue
            for endpoint in service.get("endpoints") or []:
                if not isinstance(endpoint, dict) or endpoint.get("interface") != INTERFACE:
                    continue
                names = {endpoint.get("region_id"), endpoint.get("region")} - {None}
                regions.update(str(name) for name in names)
                if region in names and isinstance(endpoint.get("url"), str):
                    return str(endpoint["url"]).rstrip("/")
        found = f" (it has one in {', '.join(sorted(regions))})" if regions else ""
        raise DcmanagerError(
            f"Keystone POST {url}: the service catalog has no {INTERFACE} {SERVICE_TYPE} endpoint "
            f"in region {region}{found}"
        )

    def _session(self) -> tuple[str, int, str]:
        """(token, its generation, dcmanager's URL), authenticating first if need be."""
        for _attempt in (1, 2):
            with self._lock:
                token, generation, endpoint = self._token, self._generation, self._endpoint
            if token is not None and endpoint is not None:
                return token, generation, endpoint
            self.authenticate()
        raise DcmanagerError(f"Keystone {self.settings.auth_url}: no token")  # pragma: no cover

    @property
    def endpoint(self) -> str:
        return self._session()[2]

    # ------------------------------------------------------------------ dcmanager

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> Any:
        """A dcmanager call; its JSON answer. One re-authentication on a 401."""
        for attempt in (1, 2):
            token, generation, endpoint = self._session()
            url = f"{endpoint}{path}"
            headers = {"X-Auth-Token": token, "Accept": "application/json"}
            if content_type:
                headers["Content-Type"] = content_type
            status, _headers, data = self._send(method, url, body, headers, "dcmanager")
            if status == 401 and attempt == 1:
                with self._lock:
                    renew = generation == self._generation  # no other thread renewed it yet
                if renew:
                    self._reauthenticate(generation)
                continue
            if status == 401:
                # not its body: dcmanager's 401 text repeats the token it refused
                raise DcmanagerError(
                    f"dcmanager {method} {url}: HTTP 401 (Unauthorized) even with a new Keystone "
                    "token",
                    status,
                )
            if not 200 <= status < 300:
                fault = error_text(data)
                kind = DcmanagerNotFound if status == 404 else DcmanagerError
                raise kind(
                    f"{fault or 'no message'} (dcmanager {method} {url}: HTTP {status})",
                    status,
                    fault,
                )
            if not data.strip():
                return None
            return _json(data, "dcmanager", method, url)
        raise DcmanagerError(f"dcmanager {method} {path}: no answer")  # pragma: no cover

    def _reauthenticate(self, generation: int) -> None:
        with self._renew_lock:
            with self._lock:
                if generation != self._generation:
                    return  # another thread did it meanwhile
            self.authenticate()

    def url(self, path: str) -> str:
        return f"{self.endpoint}{path}"

    # ------------------------------------------------------------------ the calls

    def list_subclouds(self) -> list[dict[str, Any]]:
        return _entries(self.request("GET", "/subclouds"), "subclouds", self.url("/subclouds"))

    def subcloud(self, ref: str | int, detail: bool = False) -> dict[str, Any]:
        path = f"/subclouds/{_quote(ref)}" + ("/detail" if detail else "")
        return _object(self.request("GET", path), "GET", self.url(path))

    def subcloud_details(self, refs: Iterable[str | int]) -> list[dict[str, Any]]:
        """The detail of each subcloud, in order, a few calls at a time."""
        refs = list(refs)
        if not refs:
            return []
        pool = ThreadPoolExecutor(max_workers=min(self._workers, len(refs)))
        try:
            futures = [pool.submit(self.subcloud, ref, True) for ref in refs]
            return [future.result() for future in futures]
        finally:  # after a failure, the calls not started yet are not made
            pool.shutdown(wait=True, cancel_futures=True)

    def update_subcloud(self, ref: str | int, fields: dict[str, str]) -> dict[str, Any]:
        """PATCH /subclouds/<ref> as multipart/form-data, as dcmanager's client sends it."""
        body, content_type = multipart(fields)
        path = f"/subclouds/{_quote(ref)}"
        return _object(self.request("PATCH", path, body, content_type), "PATCH", self.url(path))

    def list_groups(self) -> list[dict[str, Any]]:
        path = "/subcloud-groups"
        return _entries(self.request("GET", path), "subcloud_groups", self.url(path))

    def group(self, ref: str | int) -> dict[str, Any]:
        path = f"/subcloud-groups/{_quote(ref)}"
        return _object(self.request("GET", path), "GET", self.url(path))

    def group_subclouds(self, ref: str | int) -> list[dict[str, Any]]:
        path = f"/subcloud-groups/{_quote(ref)}/subclouds"
        return _entries(self.request("GET", path), "subclouds", self.url(path))

    def add_group(self, fields: dict[str, Any]) -> dict[str, Any]:
        path = "/subcloud-groups"
        body = _json_body(fields)
        return _object(self.request("POST", path, body, "application/json"), "POST", self.url(path))

    def update_group(self, ref: str | int, fields: dict[str, Any]) -> dict[str, Any]:
        path = f"/subcloud-groups/{_quote(ref)}"
        body = _json_body(fields)
        return _object(
            self.request("PATCH", path, body, "application/json"), "PATCH", self.url(path)
        )

    def delete_group(self, ref: str | int) -> None:
        self.request("DELETE", f"/subcloud-groups/{_quote(ref)}")


def _quote(ref: str | int) -> str:
    try:
        return urllib.parse.quote(str(ref).encode("utf-8"), safe="")
    except UnicodeEncodeError:  # bytes of a command line argument that are not UTF-8
        raise PrestageError(f"{ref!r} is not UTF-8 text") from None


def _json_body(fields: dict[str, Any]) -> bytes:
    for key, value in fields.items():
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:  # a command line argument's bytes that are not UTF-8
                raise PrestageError(f"Invalid group {key}: must be UTF-8 text") from None
    return json.dumps(fields).encode()


def _json(data: bytes, what: str, method: str, url: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise DcmanagerError(f"{what} {method} {url}: the answer is not JSON ({exc})") from None


def _entries(data: Any, key: str, url: str) -> list[dict[str, Any]]:
    entries = data.get(key) if isinstance(data, dict) else None
    if not isinstance(entries, list) or not all(isinstance(item, dict) for item in entries):
        raise DcmanagerError(f"dcmanager GET {url}: the answer has no '{key}' list of objects")
    return entries


def _object(data: Any, method: str, url: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise DcmanagerError(f"dcmanager {method} {url}: the answer is not a JSON object")
    return data


def multipart(fields: dict[str, str]) -> tuple[bytes, str]:
    """A multipart/form-data body of text fields and its Content-Type."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        )
    parts.append(f"--{boundary}--\r\n")
    try:
        body = "".join(parts).encode("utf-8")
    except UnicodeEncodeError:  # a command line argument's bytes that are not UTF-8
        raise PrestageError(f"Not UTF-8 text: {fields!r}") from None
    return body, f"multipart/form-data; boundary={boundary}"


# --------------------------------------------------------------------------- the registry model
#
# Field names as dcmanager's API reference has them (starlingx/distcloud
# api-ref/source/samples/subclouds/subclouds-get-response.json, subcloud-get-detail-response.json;
# subcloud-groups/subcloud-groups-get-response.json) and python-dcmanagerclient reads them
# (DCC:api/base.py:34-63, DCC:api/v1/subcloud_group_manager.py:55-65).

# dcmanager's states (DC:dccommon/consts.py:181-186)
AVAILABILITY_STATES = ("online", "offline")
MANAGEMENT_STATES = ("managed", "unmanaged")
# What dcmanager says when it could not read a subcloud's OAM address (an offline subcloud
# always: DC:dcmanager/api/controllers/v1/subclouds.py:530-546).
OAM_UNAVAILABLE = "unavailable"
# dcmanager does not keep the system mode; the subcloud's own platform.conf says it (read by
# the precheck on the subcloud).
SYSTEM_MODE_UNKNOWN = "unknown"


class FieldProblem(Exception):
    """A field of dcmanager's answer is missing or not what the API reference says."""


def _field(
    item: dict[str, Any], key: str, kind: type | tuple[type, ...], optional: bool = False
) -> Any:
    if key not in item or item[key] is None:
        if optional:
            return None
        raise FieldProblem(f"'{key}' is missing")
    value = item[key]
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        raise FieldProblem(f"'{key}' is {value!r}, not a {getattr(kind, '__name__', 'value')}")
    return value


def _choice(item: dict[str, Any], key: str, choices: tuple[str, ...]) -> str:
    value = _field(item, key, str)
    if value not in choices:
        raise FieldProblem(f"'{key}' is {value!r}, not one of {', '.join(choices)}")
    return str(value)


def group_from_api(item: dict[str, Any]) -> Group:
    """A Group from dcmanager's subcloud group object; FieldProblem naming the field."""

    group_id = decimal_int(_field(item, "id", (int, str)))
    if group_id is None or group_id < 1:
        raise FieldProblem(f"'id' is {item['id']!r}, not a positive integer")
    name = _field(item, "name", str)
    description = _field(item, "description", str, optional=True) or ""
    apply_type = _field(item, "update_apply_type", str)
    # the API reference's sample has it as a string ("3"), the list as a number
    max_parallel = decimal_int(_field(item, "max_parallel_subclouds", (int, str)))
    if max_parallel is None:
        raise FieldProblem(
            f"'max_parallel_subclouds' is {item['max_parallel_subclouds']!r}, not a number"
        )
    return Group(group_id, name, description, apply_type, max_parallel)


def subcloud_from_api(item: dict[str, Any], address: str) -> Subcloud:
    """A Subcloud from dcmanager's subcloud object; FieldProblem naming the field."""

    subcloud_id = decimal_int(_field(item, "id", (int, str)))
    if subcloud_id is None or subcloud_id < 1:
        raise FieldProblem(f"'id' is {item['id']!r}, not a positive integer")
    name = _field(item, "name", str)
    if not is_subcloud_name(name):
        raise FieldProblem(f"'name' is {name!r}, not a subcloud name")
    group_id = decimal_int(_field(item, "group_id", (int, str)))
    if group_id is None:
        raise FieldProblem(f"'group_id' is {item['group_id']!r}, not an integer")
    version = _field(item, "software-version", str)
    if not is_software_version(version):
        raise FieldProblem(f"'software-version' is {version!r}, not a release MM.mm")
    return Subcloud(
        id=subcloud_id,
        name=name,
        group_id=group_id,
        oam_floating_address=address,
        software_version=version,
        management=_choice(item, "management-state", MANAGEMENT_STATES),
        availability=_choice(item, "availability-status", AVAILABILITY_STATES),
        deploy_status=_field(item, "deploy-status", str),
        system_mode=SYSTEM_MODE_UNKNOWN,
        sync=_field(item, "sync_status", str, optional=True) or "unknown",
        backup_status=_field(item, "backup-status", str, optional=True),
        dcmanager_prestage_status=_field(item, "prestage-status", str, optional=True),
        dcmanager_prestage_versions=_field(item, "prestage-versions", str, optional=True),
    )


def oam_address(item: dict[str, Any]) -> str | None:
    """The subcloud's OAM floating address from a (detail) object: None when dcmanager has none
    ('unavailable'); FieldProblem when it is not an address."""
    value = item.get("oam_floating_ip")
    if value is None or value == OAM_UNAVAILABLE:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise FieldProblem(f"'oam_floating_ip' is {value!r}, not an IP address") from None


def fetch_registry(client: DcmanagerClient, addresses: bool | Iterable[str] = True) -> Registry:
    """The Registry of what dcmanager holds: its groups and subclouds.

    addresses: True reads every subcloud's OAM floating address (the detail call, for those the
    list gives none); a collection of names reads only theirs; False none (the commands that do
    not connect to subclouds). An online subcloud without an OAM address is an error; an offline
    one has none (dcmanager says 'unavailable'), is kept (so a strategy skips it as offline) and
    gets no ansible_host.
    """
    groups = _groups_of(client)
    items = client.list_subclouds()
    subclouds = _subclouds_of(client, items, {g.id for g in groups})
    if addresses is True:
        wanted = subclouds
    else:
        names = set() if addresses is False else set(addresses)
        wanted = [s for s in subclouds if s.name in names]
    _read_addresses(client, wanted, {item.get("name"): item for item in items})
    groups.sort(key=lambda g: g.id)
    subclouds.sort(key=lambda s: s.id)
    return Registry(
        path=f"dcmanager {client.endpoint}",
        groups=groups,
        subclouds=subclouds,
        last_group_id=max(g.id for g in groups),
    )


def _groups_of(client: DcmanagerClient) -> list[Group]:
    """dcmanager's subcloud groups, each checked; the Default group among them."""
    groups_url = client.url("/subcloud-groups")
    groups = []
    for index, item in enumerate(client.list_groups()):
        try:
            groups.append(group_from_api(item))
        except FieldProblem as exc:
            raise DcmanagerError(
                f"dcmanager GET {groups_url}: subcloud_groups[{index}] "
                f"({item.get('name', '?')}): {exc}"
            ) from None
    for group in groups:  # it would merge into Ansible's own group (or the system controller's)
        if group.name.lower() in ANSIBLE_RESERVED_GROUPS:
            raise DcmanagerError(
                f"dcmanager GET {groups_url}: subcloud group {group.name!r} has the name of an "
                "Ansible group (rename it in dcmanager)"
            )
    ids = {g.id for g in groups}
    if len(ids) != len(groups) or len({g.name for g in groups}) != len(groups):
        raise DcmanagerError(f"dcmanager GET {groups_url}: two subcloud groups share an id or name")
    if DEFAULT_GROUP_ID not in ids:
        raise DcmanagerError(f"dcmanager GET {groups_url}: no Default subcloud group (id 1)")
    return groups


def _subclouds_of(
    client: DcmanagerClient, items: list[dict[str, Any]], group_ids: set[int]
) -> list[Subcloud]:
    """The subclouds of dcmanager's list, every entry checked before any detail call."""
    list_url = client.url("/subclouds")
    subclouds: list[Subcloud] = []
    seen_names: set[str] = set()
    seen_ids: set[int] = set()
    for index, item in enumerate(items):
        label = f"subclouds[{index}] ({item.get('name', '?')})"
        try:
            subcloud = subcloud_from_api(item, "")
            if "oam_floating_ip" in item:
                subcloud.oam_floating_address = oam_address(item) or ""
        except FieldProblem as exc:
            raise DcmanagerError(f"dcmanager GET {list_url}: {label}: {exc}") from None
        if subcloud.group_id not in group_ids:
            raise DcmanagerError(
                f"dcmanager GET {list_url}: {label}: 'group_id' {subcloud.group_id} is not a "
                "subcloud group of dcmanager"
            )
        if subcloud.name in seen_names or subcloud.id in seen_ids:
            raise DcmanagerError(
                f"dcmanager GET {list_url}: {label}: a second subcloud of that name or id"
            )
        seen_names.add(subcloud.name)
        seen_ids.add(subcloud.id)
        subclouds.append(subcloud)
    return subclouds


def _read_addresses(
    client: DcmanagerClient, wanted: list[Subcloud], by_name: dict[Any, dict[str, Any]]
) -> None:
    """The OAM floating address of each wanted subcloud the list gave none for (detail calls);
    an online subcloud without one is an error."""
    need_detail = [s for s in wanted if "oam_floating_ip" not in by_name[s.name]]
    for subcloud, detail in zip(
        need_detail, client.subcloud_details(s.id for s in need_detail), strict=True
    ):
        url = client.url(f"/subclouds/{subcloud.id}/detail")
        try:
            subcloud.oam_floating_address = oam_address(detail) or ""
        except FieldProblem as exc:
            raise DcmanagerError(f"dcmanager GET {url}: subcloud {subcloud.name}: {exc}") from None
    for subcloud in wanted:
        if not subcloud.oam_floating_address and subcloud.availability == "online":
            detail_url = client.url(f"/subclouds/{subcloud.id}/detail")
            raise DcmanagerError(
                f"dcmanager GET {detail_url}: subcloud {subcloud.name} is online but dcmanager has "
                "no OAM floating address for it (oam_floating_ip 'unavailable' or missing)"
            )
