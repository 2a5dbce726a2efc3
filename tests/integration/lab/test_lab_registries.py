"""Registries: the central one holds the release images; each subcloud's registry.local:9001
takes an image pushed with skopeo (TLS verified, credentials) and lists it through the API."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import pytest
from labctl.testing import Lab

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
]


def image_list(lab: Lab, release: str) -> list[str]:
    path = Path(lab.info["sc"]["image_lists"][release])
    lines = [line.strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_central_registry_holds_every_listed_image(lab: Lab) -> None:
    for release in ("22.12", "24.09"):
        images = image_list(lab, release)
        assert len(images) == 3
        for reference in images:
            host, _slash, rest = reference.partition("/")
            assert host == lab.central_registry
            name, tag = rest.rsplit(":", 1)
            status, body = lab.registry_api(host, f"/v2/{name}/tags/list")
            assert status == 200
            assert tag in body["tags"]


def test_registry_requires_credentials(lab: Lab) -> None:
    import ssl  # noqa: PLC0415
    import urllib.error  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    context = ssl.create_default_context(cafile=str(lab.ca))
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"https://{lab.central_registry}/v2/_catalog", context=context)
    assert caught.value.code == 401
    caught.value.close()


def test_each_subcloud_registry_takes_a_skopeo_push_and_lists_it(lab: Lab) -> None:
    source = image_list(lab, "24.09")[0]  # 10.250.0.1:9001/starlingx/stx-pause:24.09
    path = source.split("/", 1)[1]
    name, tag = path.rsplit(":", 1)
    auth = Path(lab.info["registry_auth"]["auth_file"]).read_text()
    # skopeo runs ON the subcloud as sysadmin, TLS verified against the trust the lab installed
    # there; the credential file comes through stdin and is removed afterwards.
    push = (
        'auth=$(mktemp) && trap \'rm -f "$auth"\' EXIT && cat >"$auth" && '
        f'REGISTRY_AUTH_FILE="$auth" skopeo copy --quiet docker://{source} '
        f"docker://registry.local:9001/{path}"
    )
    for subcloud in lab.subclouds:
        lab.ssh(subcloud, push, input=auth, check=True, timeout=120)
        status, catalog = lab.registry_api(lab.registry(subcloud), "/v2/_catalog")
        assert status == 200
        assert name in catalog["repositories"]
        status, tags = lab.registry_api(lab.registry(subcloud), f"/v2/{name}/tags/list")
        assert (status, tags["tags"]) == (200, [tag])
        # stored in the subcloud's private /var/lib/docker-distribution
        storage = lab.root(subcloud) / "varlib.upper/docker-distribution/docker/registry/v2"
        assert (storage / "repositories" / name).is_dir()


PROBE = """
import base64, json, sys, urllib.request
user, password = sys.stdin.read().split(":", 1)
request = urllib.request.Request("https://registry.local:9001/v2/_catalog")
token = base64.b64encode(f"{user}:{password}".encode()).decode()
request.add_header("Authorization", "Basic " + token)
print(json.dumps(json.load(urllib.request.urlopen(request, timeout=10))))
"""


def test_registry_local_answers_on_the_subcloud_with_system_trust(lab: Lab) -> None:
    # The subcloud's own python3 with its default trust store (the lab CA is in the subcloud's
    # system bundle) and its /etc/hosts (registry.local is its own address).
    subcloud = lab.subclouds[0]
    credential = f"{lab.registry_user}:{lab.registry_password}"
    out = lab.ssh(subcloud, f"python3 -c {shlex.quote(PROBE)}", input=credential, check=True)
    assert "repositories" in json.loads(out.stdout)
    out = lab.ssh(subcloud, "getent hosts registry.local", check=True).stdout
    assert out.split()[0] == lab.address(subcloud)
