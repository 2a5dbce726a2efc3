"""The system controller's Keystone + dcmanager API on the lab (lab/labctl/data/dcmanager-api as
a lab daemon): what the lab's registry faults change in it, and its own faults."""

from __future__ import annotations

import json
import os

import pytest
import yaml
from labctl.testing import Lab

from tests.integration.lab.test_lab_faults import poll

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
]


def test_the_api_serves_the_registrys_subclouds(lab: Lab) -> None:
    registry = yaml.safe_load(lab.registry_file.read_text())
    status, body = lab.dcmanager_api("/subclouds")
    assert status == 200
    served = {s["name"]: s for s in body["subclouds"]}
    for entry in registry["subclouds"]:
        item = served[entry["name"]]
        assert item["availability-status"] == entry["availability"]
        assert item["management-state"] == entry["management"]
        assert item["software-version"] == str(entry["software_version"])
    status, detail = lab.dcmanager_api("/subclouds/subcloud1/detail")
    assert detail["oam_floating_ip"] == lab.address("subcloud1")
    status, groups = lab.dcmanager_api("/subcloud-groups")
    assert {g["name"] for g in groups["subcloud_groups"]} == {g["name"] for g in registry["groups"]}
    assert lab.dcmanager_inventory.exists()
    assert json.loads(lab.run("status", "--json").stdout)["system_controller"]["dcmanager"] == "up"


def test_offline_and_unmanaged_faults_show_in_the_api_and_their_undo(lab: Lab) -> None:
    token = lab.dcmanager_token()
    lab.fault("offline", "subcloud3")
    lab.fault("unmanaged", "subcloud3")
    try:
        _status, detail = lab.dcmanager_api("/subclouds/subcloud3/detail", token)
        assert detail["availability-status"] == "offline"
        assert detail["management-state"] == "unmanaged"
        assert detail["oam_floating_ip"] == "unavailable"  # dcmanager cannot ask it
    finally:
        lab.fault("unmanaged", "subcloud3", undo=True)
        lab.fault("offline", "subcloud3", undo=True)
    _status, detail = lab.dcmanager_api("/subclouds/subcloud3/detail", token)
    assert detail["availability-status"] == "online"
    assert detail["management-state"] == "managed"
    assert detail["oam_floating_ip"] == lab.address("subcloud3")


def test_token_expiry_rejects_issued_tokens_once(lab: Lab) -> None:
    token = lab.dcmanager_token()
    assert lab.dcmanager_api("/subcloud-groups", token)[0] == 200
    lab.fault("token-expiry", "system-controller")
    try:
        status, body = lab.dcmanager_api("/subcloud-groups", token)
        assert status == 401
        assert body["description"].startswith("Failed to validate access token")
        assert lab.dcmanager_api("/subcloud-groups")[0] == 200  # a new token works
    finally:
        lab.fault("token-expiry", "system-controller", undo=True)


def test_dcmanager_down_stops_the_api_and_undo_brings_it_back(lab: Lab) -> None:
    lab.fault("dcmanager-down", "system-controller")
    try:
        with pytest.raises(OSError):
            lab.dcmanager_token()
        report = json.loads(lab.run("status", "--json").stdout)["system_controller"]
        assert report["dcmanager"] == "down"
        assert "dcmanager-down" in report["faults"]
    finally:
        lab.fault("dcmanager-down", "system-controller", undo=True)
    assert poll(lambda: lab.dcmanager_api("/subclouds")[0] == 200)
