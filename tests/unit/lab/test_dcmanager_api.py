"""lab/labctl/data/dcmanager-api: the lab system controller's Keystone v3 + dcmanager v1.0 API,
run standalone on loopback (labctl.dcmanager.standalone) under the Python 3.9 a lab host has.

Expected shapes, status codes and error texts are dcmanager's (DC = starlingx/distcloud):
the api-ref samples (api-ref/source/samples/subclouds/*.json, subcloud-groups/*.json), the
controllers (distributedcloud/dcmanager/api/controllers/v1/subclouds.py, subcloud_group.py), the
auth hook (dcmanager/common/context.py:206-230); errors as pecan renders an abort (JSON when the
client accepts it: pecan/core.py; else webob's HTML page that python-dcmanagerclient parses,
dcmanagerclient/api/base.py:220-259); Keystone's token and error bodies.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from labctl import dcmanager, regfile
from labctl.paths import Paths

from .conftest import PYTHON39

PASSWORD = "Keystone-test-Pw!"
# the model's keys (DC:dcmanager/db/api.py:121-151); the api-ref sample's list entry also names
# "subcloud_id", which the controller no longer emits (subclouds.py:433-471)
MODEL_KEYS = {
    "id", "name", "description", "location", "software-version", "management-state",
    "availability-status", "deploy-status", "backup-status", "backup-datetime",
    "error-description", "region-name", "management-subnet", "management-start-ip",
    "management-end-ip", "management-gateway-ip", "openstack-installed", "prestage-status",
    "prestage-versions", "systemcontroller-gateway-ip", "data_install", "data_upgrade",
    "created-at", "updated-at", "group_id", "peer_group_id", "rehome_data",
}  # fmt: skip
# api-ref samples/subclouds/subcloud-get-detail-response.json's keys beyond the model
DETAIL_EXTRA = {"endpoint_sync_status", "oam_floating_ip", "deploy_config_sync_status"}
GROUP_KEYS = {
    "id", "name", "description", "update_apply_type", "max_parallel_subclouds",
    "created-at", "updated-at",
}  # fmt: skip


@dataclass
class Reply:
    status: int
    headers: Any
    text: str

    @property
    def json(self) -> Any:
        return json.loads(self.text)


class Client:
    def __init__(self, server: dcmanager.Standalone) -> None:
        self.server = server
        self.context = ssl.create_default_context(cafile=str(server.ca))

    def request(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=10) as response:
                return Reply(response.status, response.headers, response.read().decode())
        except urllib.error.HTTPError as error:
            return Reply(error.code, error.headers, error.read().decode())

    def auth(self, password: str = PASSWORD, **overrides: Any) -> Reply:
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {"name": "admin", "domain": {"name": "Default"},
                                 "password": password}
                    },
                },
                "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}},
            }
        }  # fmt: skip
        body["auth"].update(overrides)
        return self.request(
            "POST",
            self.server.keystone + "/auth/tokens",
            json.dumps(body).encode(),
            {"Content-Type": "application/json"},
        )

    def token(self) -> str:
        reply = self.auth()
        assert reply.status == 201, reply.text
        return str(reply.headers["X-Subject-Token"])

    def dc(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        accept: str = "application/json",
        multipart: dict[str, str] | None = None,
    ) -> Reply:
        headers = {"Accept": accept} if accept else {}
        headers["X-Auth-Token"] = token if token is not None else self.token()
        if not headers["X-Auth-Token"]:
            del headers["X-Auth-Token"]
        data = None
        if multipart is not None:
            boundary = uuid.uuid4().hex
            parts = [
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
                for name, value in multipart.items()
            ]
            data = ("".join(parts) + f"--{boundary}--\r\n").encode()
            headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        return self.request(method, self.server.dcmanager + path, data, headers)


def lab_db(count: int = 12) -> dict[str, Any]:
    data = dcmanager.generate(count)
    data["subclouds"][1]["availability-status"] = "offline"  # subcloud2
    return data


PYTHON = str(PYTHON39) if PYTHON39.exists() else sys.executable


@pytest.fixture(scope="module")
def server_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One throw-away CA and server certificate for the module's servers."""
    return tmp_path_factory.mktemp("dcmanager-api")


@pytest.fixture
def server(server_dir: Path) -> Iterator[dcmanager.Standalone]:
    """A fresh server and database per test (tests edit it)."""
    with dcmanager.standalone(server_dir, lab_db(), password=PASSWORD, python=PYTHON) as running:
        yield running


@pytest.fixture
def client(server: dcmanager.Standalone) -> Client:
    return Client(server)


def poll(condition: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# ------------------------------------------------------------------------------- Keystone


def test_password_auth_gives_a_token_and_the_dcmanager_endpoint(client: Client) -> None:
    reply = client.auth()
    assert reply.status == 201
    assert reply.headers["X-Subject-Token"]
    token = reply.json["token"]
    assert token["methods"] == ["password"]
    assert token["project"]["name"] == "admin"
    assert token["expires_at"].endswith("Z")
    [service] = [s for s in token["catalog"] if s["type"] == "dcmanager"]
    urls = {(e["interface"], e["region_id"]): e["url"] for e in service["endpoints"]}
    assert urls == {
        (interface, "SystemController"): client.server.dcmanager
        for interface in ("public", "internal", "admin")
    }
    assert client.server.dcmanager.endswith("/v1.0")
    assert client.server.keystone.endswith("/v3")


@pytest.mark.parametrize(
    ("password", "overrides"),
    [
        ("wrong", {}),
        (PASSWORD, {"scope": {"project": {"name": "other", "domain": {"name": "Default"}}}}),
    ],
)
def test_bad_credentials_get_keystones_401(
    client: Client, password: str, overrides: dict[str, Any]
) -> None:
    reply = client.auth(password, **overrides)
    assert reply.status == 401
    assert "X-Subject-Token" not in reply.headers
    assert reply.json == {
        "error": {
            "code": 401,
            "title": "Unauthorized",
            "message": "The request you have made requires authentication.",
        }
    }


def test_malformed_auth_request_is_a_400(client: Client) -> None:
    reply = client.request("POST", client.server.keystone + "/auth/tokens", b'{"auth": {}}')
    assert reply.status == 400
    assert reply.json["error"]["code"] == 400
    assert reply.json["error"]["title"] == "Bad Request"


# ------------------------------------------------------------------------------- auth


def test_dcmanager_without_a_token_is_a_401(client: Client) -> None:
    reply = client.dc("GET", "/subclouds", token="")
    assert reply.status == 401
    assert reply.json == {
        "code": 401,
        "title": "Unauthorized",
        "description": "Failed to validate access token: Authentication required",
    }
    assert reply.headers["WWW-Authenticate"].startswith("Keystone uri=")


def test_an_unknown_token_is_a_401(client: Client) -> None:
    reply = client.dc("GET", "/subclouds", token="gAAAAAnot-a-token")
    assert reply.status == 401
    assert reply.json["description"] == (
        "Failed to validate access token: Auth token is invalid: gAAAAAnot-a-token"
    )


def test_revoked_tokens_are_rejected_and_a_new_one_works(client: Client) -> None:
    """The lab's token-expiry fault (SIGUSR1): tokens issued so far get 401, a re-auth works."""
    token = client.token()
    assert client.dc("GET", "/subclouds", token=token).status == 200
    client.server.revoke_tokens()
    assert poll(lambda: client.dc("GET", "/subclouds", token=token).status == 401)
    assert client.dc("GET", "/subclouds", token=client.token()).status == 200


def test_a_token_expires_after_its_ttl(server_dir: Path) -> None:
    with dcmanager.standalone(
        server_dir, lab_db(2), password=PASSWORD, token_ttl=0.5, python=PYTHON
    ) as running:
        client = Client(running)
        reply = client.auth()
        token = reply.headers["X-Subject-Token"]
        assert client.dc("GET", "/subclouds", token=token).status == 200
        assert poll(lambda: client.dc("GET", "/subclouds", token=token).status == 401)


def test_the_version_document_needs_no_token(client: Client) -> None:
    reply = client.request("GET", client.server.dcmanager.removesuffix("/v1.0") + "/")
    assert reply.status == 200
    assert reply.json["versions"][0]["id"] == "v1.0"


# ------------------------------------------------------------------------------- subclouds


def test_subcloud_list_has_the_api_ref_fields(client: Client) -> None:
    reply = client.dc("GET", "/subclouds")
    assert reply.status == 200
    subclouds = reply.json["subclouds"]
    assert [s["name"] for s in subclouds] == [f"subcloud{i}" for i in range(1, 13)]
    for item in subclouds:
        assert set(item) == MODEL_KEYS | {"sync_status", "endpoint_sync_status"}
        assert "oam_floating_ip" not in item  # only the detail call has it
    first = subclouds[0]
    assert first["availability-status"] == "online"
    assert first["management-state"] == "managed"
    assert first["deploy-status"] == "complete"
    assert first["software-version"] == "25.09"
    assert first["sync_status"] == "in-sync"
    assert {e["endpoint_type"] for e in first["endpoint_sync_status"]} >= {"platform", "software"}
    assert subclouds[3]["software-version"] == "24.09"  # every 4th runs the previous release


def test_subcloud_detail_by_name_or_id_has_the_oam_address(client: Client) -> None:
    by_name = client.dc("GET", "/subclouds/subcloud3/detail")
    by_id = client.dc("GET", "/subclouds/3/detail")
    assert by_name.status == by_id.status == 200
    assert by_name.json == by_id.json
    assert set(by_name.json) == MODEL_KEYS | DETAIL_EXTRA | {"region_name"}
    assert by_name.json["oam_floating_ip"] == "10.250.0.13"
    plain = client.dc("GET", "/subclouds/subcloud3")
    assert set(plain.json) == MODEL_KEYS | {"endpoint_sync_status"}


def test_an_offline_subclouds_oam_address_is_unavailable(client: Client) -> None:
    """dcmanager asks only an online subcloud for its OAM address (subclouds.py:522-547)."""
    reply = client.dc("GET", "/subclouds/subcloud2/detail")
    assert reply.json["availability-status"] == "offline"
    assert reply.json["oam_floating_ip"] == "unavailable"
    assert reply.json["deploy_config_sync_status"] == "unknown"


@pytest.mark.parametrize("path", ["/subclouds/subcloud99", "/subclouds/99/detail"])
def test_unknown_subcloud_is_a_404(client: Client, path: str) -> None:
    reply = client.dc("GET", path)
    assert reply.status == 404
    assert reply.json == {"code": 404, "title": "Not Found", "description": "Subcloud not found"}


def test_errors_without_json_accept_are_webobs_html_page(client: Client) -> None:
    """What python-dcmanagerclient parses: the second text line is webob's explanation, the
    rest pecan.abort's detail (dcmanagerclient/api/base.py:233-251)."""
    reply = client.dc("GET", "/subcloud-groups/nope", accept="")
    assert reply.status == 404
    assert reply.headers["Content-Type"].startswith("text/html")
    body = reply.text.split("<body>")[1].split("</body>")[0]
    for tag in ("<h1>", "</h1>", "<br /><br />"):
        body = body.replace(tag, "\n")
    lines = [line.strip() for line in body.splitlines() if line.strip()]
    assert lines == [
        "404 Not Found",
        "The resource could not be found.",
        "Subcloud Group not found",
    ]


def test_subcloud_update_moves_it_to_a_group_by_name_or_id(client: Client) -> None:
    """PATCH /subclouds/{ref} multipart group_id (subclouds.py:1495-1509), as dcmanager
    subcloud update --group sends it."""
    reply = client.dc("PATCH", "/subclouds/subcloud1", multipart={"group_id": "Edge_Serial"})
    assert reply.status == 200, reply.text
    assert reply.json["group_id"] == 3
    assert set(reply.json) == MODEL_KEYS
    reply = client.dc("PATCH", "/subclouds/1", multipart={"group_id": "1"})
    assert reply.json["group_id"] == 1
    assert client.dc("GET", "/subclouds/subcloud1").json["group_id"] == 1
    stored = json.loads(client.server.db.read_text())
    assert stored["subclouds"][0]["group_id"] == 1


@pytest.mark.parametrize(
    ("fields", "status", "detail"),
    [
        ({"group_id": "NoSuchGroup"}, 400, "Invalid group"),
        ({"group_id": "42"}, 400, "Invalid group"),
        ({"management-state": "sideways"}, 400, "Invalid management-state"),
        ({}, 400, "Body required"),
    ],
)
def test_subcloud_update_errors(
    client: Client, fields: dict[str, str], status: int, detail: str
) -> None:
    reply = client.dc("PATCH", "/subclouds/subcloud1", multipart=fields)
    assert (reply.status, reply.json["description"]) == (status, detail)


def test_subcloud_update_of_an_unknown_subcloud_is_a_404(client: Client) -> None:
    reply = client.dc("PATCH", "/subclouds/subcloud99", multipart={"group_id": "1"})
    assert (reply.status, reply.json["description"]) == (404, "Subcloud not found")


# ------------------------------------------------------------------------------- groups


def test_group_list_counts_subclouds(client: Client) -> None:
    reply = client.dc("GET", "/subcloud-groups")
    groups = {g["name"]: g for g in reply.json["subcloud_groups"]}
    assert list(groups) == ["Default", "First_10_Subclouds", "Edge_Serial"]
    for group in groups.values():
        assert set(group) == GROUP_KEYS | {"subcloud_count"}  # subcloud_group.py:67-79
    assert groups["Default"]["description"] == "Default Subcloud Group"
    assert groups["First_10_Subclouds"]["subcloud_count"] == 10
    assert groups["Default"]["subcloud_count"] == 1  # subcloud11
    assert groups["Edge_Serial"]["update_apply_type"] == "serial"


def test_group_show_and_its_subclouds(client: Client) -> None:
    group = client.dc("GET", "/subcloud-groups/Edge_Serial")
    assert set(group.json) == GROUP_KEYS
    assert client.dc("GET", "/subcloud-groups/3").json == group.json
    members = client.dc("GET", "/subcloud-groups/Edge_Serial/subclouds").json["subclouds"]
    assert [m["name"] for m in members] == ["subcloud12"]
    assert set(members[0]) == MODEL_KEYS


def test_group_create_update_delete(client: Client) -> None:
    """subcloud_group.py:234-282, 350-419, 463-490; the POST response echoes
    max_parallel_subclouds as sent (samples/subcloud-groups/subcloud-groups-post-response.json)."""
    created = client.dc(
        "POST",
        "/subcloud-groups",
        {"name": "GroupX", "description": "A new group", "update_apply_type": "parallel",
         "max_parallel_subclouds": "3"},
    )  # fmt: skip
    assert created.status == 200, created.text
    assert set(created.json) == GROUP_KEYS
    assert created.json["max_parallel_subclouds"] == "3"
    assert created.json["updated-at"] is None
    assert client.dc("GET", "/subcloud-groups/GroupX").json["max_parallel_subclouds"] == 3
    changes = {"description": "Changed", "update_apply_type": "serial"}
    updated = client.dc("PATCH", "/subcloud-groups/GroupX", changes)
    assert updated.status == 200
    assert updated.json["description"] == "Changed"
    assert updated.json["updated-at"] is not None
    deleted = client.dc("DELETE", f"/subcloud-groups/{created.json['id']}")
    assert (deleted.status, deleted.text) == (200, "null")
    assert client.dc("GET", "/subcloud-groups/GroupX").status == 404
    stored = json.loads(client.server.db.read_text())
    assert "GroupX" not in {g["name"] for g in stored["subcloud_groups"]}


GOOD = {"name": "G", "description": "d", "update_apply_type": "parallel",
        "max_parallel_subclouds": 2}  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "detail"),
    [
        ("POST", "", {**GOOD, "name": "Default"}, 400, "Invalid group name"),
        ("POST", "", {**GOOD, "name": "default"}, 400, "Invalid group name"),
        ("POST", "", {**GOOD, "name": "123"}, 400, "Invalid group name"),
        ("POST", "", {**GOOD, "name": "a*b"}, 400, "Invalid group name"),
        ("POST", "", {**GOOD, "description": "x" * 255}, 400, "Invalid group description"),
        ("POST", "", {**GOOD, "update_apply_type": "x"}, 400, "Invalid group update_apply_type"),
        ("POST", "", {**GOOD, "max_parallel_subclouds": 0}, 400,
         "Invalid group max_parallel_subclouds"),
        ("POST", "", {**GOOD, "max_parallel_subclouds": 5001}, 400,
         "Invalid group max_parallel_subclouds"),
        ("POST", "", {**GOOD, "name": "Edge_Serial"}, 400,
         "A subcloud group with this name already exists"),
        ("POST", "", None, 400, "Body required"),
        ("PATCH", "/Edge_Serial", {"foo": "bar"}, 400, "nothing to update"),
        ("PATCH", "/Default", {"name": "Other"}, 400, "Default group name cannot be changed"),
        ("PATCH", "/Nope", {"description": "x"}, 404, "Subcloud Group not found"),
        ("PATCH", "/Edge_Serial", {"name": "First_10_Subclouds"}, 500,
         "Unable to update subcloud group"),
        ("DELETE", "/Default", None, 400, "Default Subcloud Group may not be deleted"),
        ("DELETE", "/Edge_Serial", None, 400, "Subcloud Group not empty"),
        ("DELETE", "/99", None, 404, "Subcloud Group not found"),
        ("GET", "/Nope", None, 404, "Subcloud Group not found"),
    ],
)  # fmt: skip
def test_group_rules_are_dcmanagers(  # noqa: PLR0917 (the parametrized case)
    client: Client, method: str, path: str, body: Any, status: int, detail: str
) -> None:
    """The messages are the ones plugins/plugin_utils/_registry.py keeps word for word."""
    before = client.server.db.read_text()
    reply = client.dc(method, "/subcloud-groups" + path, body)
    assert (reply.status, reply.json["description"]) == (status, detail)
    assert client.server.db.read_text() == before  # nothing changed


# ------------------------------------------------------------------------------- database


def test_the_database_is_reread_when_the_lab_changes_it(client: Client) -> None:
    """A registry fault rewrites the file (labctl.dcmanager.set_subcloud_field): the API shows
    it on the next request."""
    token = client.token()
    assert dcmanager.set_subcloud_field(client.server.db, "subcloud5", "availability", "offline")
    reply = client.dc("GET", "/subclouds/subcloud5/detail", token=token)
    assert reply.json["availability-status"] == "offline"
    assert reply.json["oam_floating_ip"] == "unavailable"
    assert dcmanager.set_subcloud_field(client.server.db, "subcloud5", "availability", "online")
    reply = client.dc("GET", "/subclouds/subcloud5/detail", token=token)
    assert reply.json["oam_floating_ip"] == "10.250.0.15"


@pytest.mark.parametrize("content", ["[1, 2]\n", "{not json\n"])
def test_an_unreadable_database_fails_the_start_with_one_line(
    server: dcmanager.Standalone, tmp_path: Path, content: str
) -> None:
    bad = tmp_path / "bad" / "db.json"
    bad.parent.mkdir()
    bad.write_text(content)
    cert_dir = server.ca.parent.parent
    result = subprocess.run(
        [PYTHON, str(dcmanager.API), "--address", "127.0.0.1", "--keystone-port", "0",
         "--dcmanager-port", "0", "--cert", str(cert_dir / "server.crt"),
         "--key", str(cert_dir / "server.key"), "--db", str(bad),
         "--password-file", str(server.password_file)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"dcmanager-api: cannot read the database {bad}: ")
    assert len(result.stderr.splitlines()) == 1


def test_a_port_in_use_fails_the_start_with_one_line(server: dcmanager.Standalone) -> None:
    """The lab's ports taken (another server): one line, no traceback."""
    port = int(server.keystone.rsplit(":", 1)[1].split("/")[0])
    cert_dir = server.ca.parent.parent
    result = subprocess.run(
        [PYTHON, str(dcmanager.API), "--address", "127.0.0.1", "--keystone-port", str(port),
         "--dcmanager-port", "0", "--cert", str(cert_dir / "server.crt"),
         "--key", str(cert_dir / "server.key"), "--db", str(server.db),
         "--password-file", str(server.password_file)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith(f"dcmanager-api: cannot listen on 127.0.0.1:{port}: ")
    assert len(result.stderr.splitlines()) == 1


def test_registry_fields_map_to_dcmanagers() -> None:
    registry = {
        "groups": regfile.GROUPS,
        "subclouds": [
            {**regfile.default_entry(7), "availability": "offline", "management": "unmanaged",
             "deploy_status": "installing", "software_version": "24.09"},
        ],
    }  # fmt: skip
    [record] = dcmanager.from_registry(registry)["subclouds"]
    assert record["availability-status"] == "offline"
    assert record["management-state"] == "unmanaged"
    assert record["deploy-status"] == "installing"
    assert record["software-version"] == "24.09"
    assert record["group_id"] == 2  # First_10_Subclouds
    assert record["oam_floating_ip"] == "10.250.0.17"


def test_generate_makes_n_distinct_subclouds() -> None:
    data = dcmanager.generate(5000)
    subclouds = data["subclouds"]
    assert len(subclouds) == 5000
    assert len({s["name"] for s in subclouds}) == len({s["id"] for s in subclouds}) == 5000
    assert len({s["oam_floating_ip"] for s in subclouds}) == 5000
    group_ids = {g["id"] for g in data["subcloud_groups"]}
    assert {s["group_id"] for s in subclouds} <= group_ids


def test_generate_cli_writes_a_database(tmp_path: Path) -> None:
    out = tmp_path / "db.json"
    assert dcmanager.main(["generate", "25", str(out)]) == 0
    assert len(json.loads(out.read_text())["subclouds"]) == 25


def test_lab_inventory_config_has_the_dcmanager_source(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    regfile.write_dcmanager_inventory_config(paths)
    config = yaml.safe_load(paths.dcmanager_inventory_config.read_text())
    assert config["plugin"] == "distcloud.prestage.subclouds"
    assert "registry" not in config
    assert config["dcmanager"] == {
        "auth_url": "https://10.250.0.2:5000/v3",
        "username": "admin",
        "project_name": "admin",
        "user_domain_name": "Default",
        "project_domain_name": "Default",
        "region_name": "SystemController",
        "password_env": "OS_PASSWORD",
        "ca_file": str(paths.ca_cert),
    }
    assert config["system_controller"]["host"] == "system-controller"


def test_set_subcloud_field_carries_only_dcmanagers_fields(tmp_path: Path) -> None:
    db = tmp_path / "dcmanager" / "db.json"
    dcmanager.write_db(db, dcmanager.generate(3))
    assert dcmanager.set_subcloud_field(db, "subcloud2", "deploy_status", "installing")
    assert not dcmanager.set_subcloud_field(db, "subcloud2", "system_mode", "duplex")
    assert not dcmanager.set_subcloud_field(db, "subcloud9", "availability", "offline")
    missing = tmp_path / "none.json"
    assert not dcmanager.set_subcloud_field(missing, "subcloud2", "availability", "x")
    records = {s["name"]: s for s in json.loads(db.read_text())["subclouds"]}
    assert records["subcloud2"]["deploy-status"] == "installing"
    assert records["subcloud1"]["deploy-status"] == "complete"


def test_reset_rewrites_only_the_reset_subclouds(tmp_path: Path) -> None:
    """`lab reset subcloud2`: its record as the registry says; an API edit elsewhere stays."""
    db = tmp_path / "dcmanager" / "db.json"
    data = dcmanager.generate(3)
    data["subclouds"][0]["group_id"] = 3  # subcloud1 moved through the API
    data["subclouds"][1]["group_id"] = 3  # subcloud2 too
    dcmanager.write_db(db, data)
    entries = [regfile.default_entry(i) for i in (1, 2, 3)]
    registry = {"groups": regfile.GROUPS, "subclouds": entries}
    dcmanager.refresh_subclouds(db, registry, ["subcloud2"])
    records = [(s["name"], s["group_id"]) for s in json.loads(db.read_text())["subclouds"]]
    assert records == [("subcloud1", 3), ("subcloud2", 2), ("subcloud3", 2)]


def test_a_subcloud_update_that_is_not_multipart_is_an_empty_500(client: Client) -> None:
    """dcmanager's MultipartDecoder raises on another content type: the exception leaves the
    app, and the answer is a 500 without a body (dcmanagerclient/api/base.py:221-230)."""
    reply = client.dc("PATCH", "/subclouds/subcloud1", {"group_id": "1"})
    assert (reply.status, reply.text) == (500, "")
