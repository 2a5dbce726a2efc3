"""The dcmanager client (plugins/plugin_utils/_dcmanager.py) and the `dcmanager` settings of the
inventory config, against the lab's real Keystone + dcmanager server run on loopback
(tests/dcmanager_api.py): field mapping per dcmanager's API reference, the offline subcloud
without an OAM address, re-authentication, and one clear line for each failure."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ansible_collections.distcloud.prestage.plugins.plugin_utils import _source as source
from ansible_collections.distcloud.prestage.plugins.plugin_utils._config import (
    config_from_options,
    dcmanager_settings,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._dcmanager import (
    DcmanagerClient,
    DcmanagerError,
    error_text,
    fetch_registry,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError
from ansible_collections.distcloud.prestage.plugins.plugin_utils._registry import load_registry
from tests.dcmanager_api import DcmanagerApi


def client_of(api: DcmanagerApi, password: str | None = None, **changes) -> DcmanagerClient:
    settings = dcmanager_settings(api.config(**changes), "/", "test.yml")
    return DcmanagerClient(settings, api.password if password is None else password)


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_the_registry_from_dcmanager_is_the_registry_file_it_was_made_from(
    dcmanager_api: DcmanagerApi, tmp_path: Path
) -> None:
    expected = load_registry(str(tmp_path / "dcmanager-source" / "registry.yml"))
    registry = fetch_registry(client_of(dcmanager_api))
    assert registry.path == f"dcmanager {dcmanager_api.dcmanager}"
    assert [(g.id, g.name, g.description, g.update_apply_type, g.max_parallel_subclouds)
            for g in registry.groups] == [
        (g.id, g.name, g.description, g.update_apply_type, g.max_parallel_subclouds)
        for g in expected.groups
    ]  # fmt: skip
    fields = ("id", "name", "group_id", "oam_floating_address", "software_version", "management",
              "availability", "deploy_status", "sync", "backup_status")  # fmt: skip
    got = [{f: getattr(s, f) for f in fields} for s in registry.subclouds]
    assert got == [{f: getattr(s, f) for f in fields} for s in expected.subclouds]
    # what dcmanager does not keep: the subcloud's own platform.conf says it at the precheck
    assert {s.system_mode for s in registry.subclouds} == {"unknown"}


def test_dcmanager_prestage_fields_are_carried(dcmanager_api: DcmanagerApi) -> None:
    dcmanager_api.set_subcloud(
        "subcloud4", **{"prestage-status": "complete", "prestage-versions": "24.09,25.09"}
    )
    subcloud = fetch_registry(client_of(dcmanager_api), addresses=False).subcloud("subcloud4")
    assert subcloud.dcmanager_prestage_status == "complete"
    assert subcloud.dcmanager_prestage_versions == "24.09,25.09"


def test_group_max_parallel_as_a_string_is_read(dcmanager_api: DcmanagerApi) -> None:
    # starlingx/distcloud api-ref/source/samples/subcloud-groups/subcloud-group-get-response.json
    # has "3"
    dcmanager_api.edit_db(lambda db: db["subcloud_groups"][1].update(max_parallel_subclouds="3"))
    group = fetch_registry(client_of(dcmanager_api), addresses=False).group("First_10_Subclouds")
    assert group.max_parallel_subclouds == 3


def test_an_offline_subcloud_is_kept_without_an_address(dcmanager_api: DcmanagerApi) -> None:
    # dcmanager asks only an online subcloud for its OAM address: 'unavailable' otherwise
    # (DC:dcmanager/api/controllers/v1/subclouds.py:530-546)
    dcmanager_api.set_subcloud("subcloud2", **{"availability-status": "offline"})
    subcloud = fetch_registry(client_of(dcmanager_api)).subcloud("subcloud2")
    assert subcloud.availability == "offline"
    assert subcloud.oam_floating_address == ""


def test_an_online_subcloud_without_an_address_is_an_error(dcmanager_api: DcmanagerApi) -> None:
    dcmanager_api.set_subcloud("subcloud5", oam_floating_ip=None)
    with pytest.raises(DcmanagerError) as failure:
        fetch_registry(client_of(dcmanager_api))
    assert one_line(failure.value) == (
        f"dcmanager GET {dcmanager_api.dcmanager}/subclouds/5/detail: subcloud subcloud5 is online "
        "but dcmanager has no OAM floating address for it (oam_floating_ip 'unavailable' or "
        "missing)"
    )
    # the commands that connect to no subcloud do not need it
    assert fetch_registry(client_of(dcmanager_api), addresses=False).subcloud("subcloud5")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"availability-status": "unknown"},
         "'availability-status' is 'unknown', not one of online, offline"),
        ({"management-state": None}, "'management-state' is missing"),
        ({"software-version": 24.09}, "'software-version' is 24.09, not a str"),
        ({"group_id": 99}, "'group_id' 99 is not a subcloud group of dcmanager"),
        ({"name": "bad name"}, "'name' is 'bad name', not a subcloud name"),
    ],
)  # fmt: skip
def test_unexpected_or_missing_fields_name_the_field_and_endpoint(
    dcmanager_api: DcmanagerApi, change: dict, problem: str
) -> None:
    dcmanager_api.set_subcloud("subcloud3", **change)
    with pytest.raises(DcmanagerError) as failure:
        fetch_registry(client_of(dcmanager_api))
    name = change.get("name", "subcloud3")
    assert one_line(failure.value) == (
        f"dcmanager GET {dcmanager_api.dcmanager}/subclouds: subclouds[2] ({name}): {problem}"
    )


def test_a_bad_oam_address_names_the_detail_endpoint(dcmanager_api: DcmanagerApi) -> None:
    dcmanager_api.set_subcloud("subcloud6", oam_floating_ip="not-an-ip")
    with pytest.raises(DcmanagerError) as failure:
        fetch_registry(client_of(dcmanager_api))
    assert one_line(failure.value) == (
        f"dcmanager GET {dcmanager_api.dcmanager}/subclouds/6/detail: subcloud subcloud6: "
        "'oam_floating_ip' is 'not-an-ip', not an IP address"
    )


def test_wrong_credentials_are_one_line_naming_keystone(dcmanager_api: DcmanagerApi) -> None:
    with pytest.raises(DcmanagerError) as failure:
        client_of(dcmanager_api, password="wrong").list_groups()
    assert one_line(failure.value) == (
        f"Keystone POST {dcmanager_api.keystone}/auth/tokens: the credentials of user admin "
        "(project admin) were refused: The request you have made requires authentication."
    )


def test_tls_is_verified_by_default(dcmanager_api: DcmanagerApi) -> None:
    # no ca_file: the system's trust store does not know the lab's CA
    with pytest.raises(DcmanagerError) as failure:
        client_of(dcmanager_api, ca_file=None).list_groups()
    assert one_line(failure.value).startswith(
        f"Keystone POST {dcmanager_api.keystone}/auth/tokens: TLS certificate verification failed"
    )
    # validate_certs: false takes any certificate
    groups = client_of(dcmanager_api, ca_file=None, validate_certs=False).list_groups()
    assert groups[0]["name"] == "Default"


def test_dcmanager_down_is_one_line_naming_the_endpoint(dcmanager_api: DcmanagerApi) -> None:
    client = client_of(dcmanager_api)
    client.authenticate()
    dcmanager_api.stop()
    with pytest.raises(DcmanagerError) as failure:
        client.list_subclouds()
    assert one_line(failure.value) == (
        f"dcmanager GET {dcmanager_api.dcmanager}/subclouds: Connection refused"
    )


def test_a_revoked_token_is_renewed_once(dcmanager_api: DcmanagerApi) -> None:
    client = client_of(dcmanager_api)
    client.list_groups()
    old = client._token
    dcmanager_api.revoke_tokens()
    wait_until_refused(dcmanager_api, old)
    assert len(client.list_subclouds()) == 24  # one new token, then the call again
    assert client._token != old
    assert client._generation == 2


def test_a_401_after_renewal_is_an_error(dcmanager_api: DcmanagerApi) -> None:
    # tokens that live 0 s: every token is refused as soon as it is made
    from tests.dcmanager_api import start_dcmanager_api  # noqa: PLC0415

    api = start_dcmanager_api(
        dcmanager_api.db.parent.parent / "short-tokens", dcmanager_api.read_db(), token_ttl=0
    )
    try:
        client = client_of(api)
        with pytest.raises(DcmanagerError) as failure:
            client.list_groups()
        assert one_line(failure.value) == (
            f"dcmanager GET {api.dcmanager}/subcloud-groups: HTTP 401 (Unauthorized) even with a "
            "new Keystone token"
        )  # not dcmanager's 401 text: it repeats the token it refused
        assert client._generation == 2  # re-authenticated once, not in a loop
    finally:
        api.stop()


def test_the_endpoint_is_the_catalogs_in_the_region(dcmanager_api: DcmanagerApi) -> None:
    with pytest.raises(DcmanagerError) as failure:
        client_of(dcmanager_api, region_name="RegionOne").list_groups()
    assert one_line(failure.value) == (
        f"Keystone POST {dcmanager_api.keystone}/auth/tokens: the service catalog has no public "
        "dcmanager endpoint in region RegionOne (it has one in SystemController)"
    )


def test_dcmanager_errors_keep_its_message(dcmanager_api: DcmanagerApi) -> None:
    client = client_of(dcmanager_api)
    with pytest.raises(DcmanagerError) as failure:
        client.group("Nope")
    assert failure.value.status == 404
    assert one_line(failure.value) == (
        f"Subcloud Group not found (dcmanager GET {dcmanager_api.dcmanager}/subcloud-groups/Nope: "
        "HTTP 404)"
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        # pecan's JSON error (an Accept preferring JSON)
        (b'{"code": 404, "title": "Not Found", "description": "Subcloud not found"}',
         "Subcloud not found"),
        # webob's HTML page, as python-dcmanagerclient reads it (DCC:api/base.py:220-259)
        (b"<html>\n <head>\n  <title>400 Bad Request</title>\n </head>\n <body>\n  <h1>400 Bad "
         b"Request</h1>\n  The server could not comply with the request since<br /><br />\n"
         b"Subcloud Group not empty\n\n </body>\n</html>", None),
        (b'{"faultstring": "Invalid group name", "faultcode": "Client"}', "Invalid group name"),
        (b'{"error": {"code": 401, "title": "Unauthorized", "message": "Bad creds"}}',
         "Bad creds"),
        (b"", None),
    ],
)  # fmt: skip
def test_error_text(body: bytes, message: str | None) -> None:
    if body.startswith(b"<html>"):
        assert error_text(body).endswith("Subcloud Group not empty")
    else:
        assert error_text(body) == message


def wait_until_refused(api: DcmanagerApi, token: str | None, timeout: float = 10) -> None:
    """Poll until the server refuses token (the revocation is a signal: asynchronous)."""
    deadline = time.monotonic() + timeout
    import ssl  # noqa: PLC0415

    context = ssl.create_default_context(cafile=str(api.ca_file))
    while time.monotonic() < deadline:
        request = urllib.request.Request(
            f"{api.dcmanager}/subcloud-groups", headers={"X-Auth-Token": token or ""}
        )
        try:
            urllib.request.urlopen(request, context=context, timeout=5).close()
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                return
        time.sleep(0.02)
    raise AssertionError("the server kept accepting the revoked token")


# --------------------------------------------------------------------------- the settings


def test_settings_defaults(tmp_path: Path) -> None:
    settings = dcmanager_settings(
        {"auth_url": "https://192.0.2.2:5000/v3", "username": "admin", "project_name": "admin",
         "ca_file": "ca.crt"},
        str(tmp_path), "inv.yml",
    )  # fmt: skip
    assert settings.user_domain_name == settings.project_domain_name == "Default"
    assert settings.region_name == "SystemController"
    assert settings.password_env == "OS_PASSWORD"
    assert settings.validate_certs is True
    assert settings.timeout == 30.0
    assert settings.ca_file == str(tmp_path / "ca.crt")  # relative to the config


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"password": "secret"},
         "Invalid inventory config inv.yml: dcmanager.password is not allowed (no password in the "
         "config file); the Keystone password comes from the environment variable named by "
         "dcmanager.password_env (default OS_PASSWORD), set from a vault or an AWX credential"),
        ({"username": None}, "Invalid inventory config inv.yml: dcmanager.username is required"),
        ({"verify": False},
         "Invalid inventory config inv.yml: unknown dcmanager setting(s) verify (known: auth_url, "
         "username, project_name, user_domain_name, project_domain_name, region_name, "
         "password_env, ca_file, validate_certs, timeout)"),
        ({"validate_certs": "no"},
         "Invalid inventory config inv.yml: dcmanager.validate_certs must be true or false"),
        ({"auth_url": "192.0.2.2:5000"},
         "Invalid inventory config inv.yml: dcmanager.auth_url must be an http(s) URL, e.g. "
         "https://<system controller OAM address>:5000/v3 (got '192.0.2.2:5000')"),
        ({"password_env": "OS PASSWORD"},
         "Invalid inventory config inv.yml: dcmanager.password_env must be an environment variable "
         "name (got 'OS PASSWORD')"),
        ({"timeout": 0},
         "Invalid inventory config inv.yml: dcmanager.timeout must be a number of seconds above "
         "0, at most 3600"),
    ],
)  # fmt: skip
def test_bad_settings_are_one_line(raw: dict, message: str) -> None:
    base = {"auth_url": "https://192.0.2.2:5000/v3", "username": "admin", "project_name": "admin"}
    settings = {k: v for k, v in {**base, **raw}.items() if v is not None}
    with pytest.raises(PrestageError) as failure:
        dcmanager_settings(settings, "/", "inv.yml")
    assert one_line(failure.value) == message


def test_registry_and_dcmanager_exclude_each_other() -> None:
    with pytest.raises(PrestageError) as failure:
        config_from_options("registry.yml", None, "/", "inv.yml", {"auth_url": "https://x"})
    assert one_line(failure.value) == (
        "Invalid inventory config inv.yml: 'registry' and 'dcmanager' exclude each other (the "
        "subclouds come from one source)"
    )


def test_the_password_comes_from_the_named_variable(
    dcmanager_api: DcmanagerApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_from_options(
        None, None, "/", "inv.yml", dcmanager_api.config(password_env="DCM_PW")
    )
    monkeypatch.delenv("DCM_PW", raising=False)
    with pytest.raises(PrestageError) as failure:
        source.load(config)
    assert one_line(failure.value) == (
        f"dcmanager source (Keystone {dcmanager_api.keystone}): the environment variable DCM_PW "
        "(dcmanager.password_env) holding the password of user admin is not set"
    )
    monkeypatch.setenv("DCM_PW", dcmanager_api.password)
    assert len(source.load(config).subclouds) == 24
    assert "DCM_PW" in os.environ


def test_detail_calls_are_made_only_when_the_list_lacks_the_address(
    dcmanager_api: DcmanagerApi,
) -> None:
    client = client_of(dcmanager_api)
    calls: list[object] = []
    original = client.subcloud_details

    def counting(refs):
        refs = list(refs)
        calls.extend(refs)
        return original(refs)

    client.subcloud_details = counting  # type: ignore[method-assign]
    fetch_registry(client)
    assert len(calls) == 24
    calls.clear()
    fetch_registry(client, addresses=["subcloud3"])
    assert calls == [3]
    calls.clear()
    fetch_registry(client, addresses=False)
    assert calls == []
    assert json.loads(json.dumps(calls)) == []


@pytest.fixture
def broken_dcmanager():
    """A Keystone that issues a token whose catalog names itself as dcmanager, and a dcmanager
    whose answers are not what the API says (plain HTTP on loopback): what the lab's faithful
    server never sends."""
    import http.server  # noqa: PLC0415
    import threading  # noqa: PLC0415

    answers: dict[str, tuple[int, bytes]] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _answer(self) -> None:
            if self.path == "/v3/auth/tokens":
                base = f"http://127.0.0.1:{self.server.server_address[1]}"
                catalog = [{"type": "dcmanager", "endpoints": [
                    {"interface": "public", "region_id": "SystemController",
                     "url": f"{base}/v1.0"}]}]  # fmt: skip
                body = json.dumps({"token": {"catalog": catalog}}).encode()
                self.send_response(201)
                self.send_header("X-Subject-Token", "t")
            else:
                status, body = answers.get(self.path, (404, b""))
                self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", answers
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ((200, b"<html>oops</html>"), "the answer is not JSON"),
        ((200, b'{"subcloud_groups": {"id": 1}}'), "the answer has no 'subcloud_groups' list"),
        ((500, b""), "no message (dcmanager GET"),
    ],
)
def test_answers_that_are_not_the_apis_are_one_line(broken_dcmanager, answer, problem) -> None:
    base, answers = broken_dcmanager
    answers["/v1.0/subcloud-groups"] = answer
    settings = dcmanager_settings(
        {"auth_url": f"{base}/v3", "username": "u", "project_name": "p"}, "/", "inv.yml"
    )
    with pytest.raises(DcmanagerError) as failure:
        fetch_registry(DcmanagerClient(settings, "pw"))
    message = one_line(failure.value)
    assert problem in message
    assert f"{base}/v1.0/subcloud-groups" in message


def test_a_group_named_like_an_ansible_group_is_refused(dcmanager_api: DcmanagerApi) -> None:
    dcmanager_api.edit_db(lambda db: db["subcloud_groups"][2].update(name="all"))
    with pytest.raises(DcmanagerError) as failure:
        fetch_registry(client_of(dcmanager_api))
    assert one_line(failure.value) == (
        f"dcmanager GET {dcmanager_api.dcmanager}/subcloud-groups: subcloud group 'all' has the "
        "name of an Ansible group (rename it in dcmanager)"
    )
