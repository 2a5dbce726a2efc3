"""Registries: registry.central (on the system controller) holds the listed images under their
public registry prefixes; each subcloud's registry.local:9001 answers on the subcloud with its
system trust and the sysinv login."""

from __future__ import annotations

import json
import os
import shlex

import pytest
from labctl.testing import Lab

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
]


def image_list(lab: Lab, release: str) -> list[str]:
    """The release's image list on the system controller, as StarlingX's prestage reads it."""
    path = lab.info["system_controller"]["content"]["image_lists"][release]
    lines = lab.inside(lab.sc, f"cat {path}").stdout.splitlines()
    return [line.split(",")[0] for line in lines if line and "#" not in line and "[" not in line]


def test_central_registry_holds_every_listed_image_under_its_public_registry(lab: Lab) -> None:
    for release in ("24.09", "25.09"):
        images = image_list(lab, release)
        assert images == lab.info["system_controller"]["content"]["images"][release]
        assert {image.split("/")[0] for image in images} >= {
            "docker.io",
            "quay.io",
            "registry.k8s.io",
        }
        for reference in images:
            name, tag = reference.rsplit(":", 1)
            status, body = lab.registry_api(lab.central_registry, f"/v2/{name}/tags/list")
            assert status == 200, reference
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
