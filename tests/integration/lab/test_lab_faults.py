"""Each lab fault, seen through SSH (or the registry file), and its undo."""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest
import yaml
from labctl.testing import Lab

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
]


def poll(condition, timeout: float = 15.0, interval: float = 0.1) -> bool:
    """condition() until true or timeout (for daemons coming back after an undo)."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


def test_disk_full_makes_platform_backup_writes_fail_with_enospc(lab: Lab) -> None:
    write = "dd if=/dev/zero of=/opt/platform-backup/fill bs=64k count=32 status=none"
    lab.fault("disk-full", "subcloud1")
    try:
        result = lab.ssh("subcloud1", write, become=True)
        assert result.returncode != 0
        assert "No space left on device" in result.stderr
    finally:
        lab.fault("disk-full", "subcloud1", undo=True)
    lab.ssh("subcloud1", f"{write} && rm /opt/platform-backup/fill", become=True, check=True)


def test_disk_full_size_is_configurable(lab: Lab) -> None:
    lab.fault("disk-full", "subcloud1", "4M")
    try:
        out = lab.ssh("subcloud1", "df -k --output=size /opt/platform-backup", check=True).stdout
        assert int(out.split()[-1]) == 4096
    finally:
        lab.fault("disk-full", "subcloud1", undo=True)


def test_link_down_makes_the_host_unreachable(lab: Lab) -> None:
    lab.fault("link-down", "subcloud2")
    try:
        start = time.monotonic()
        result = lab.ssh("subcloud2", "true", connect_timeout=2, timeout=30)
        assert result.returncode == 255, result.stderr
        assert time.monotonic() - start < 10
    finally:
        lab.fault("link-down", "subcloud2", undo=True)
    assert poll(lambda: lab.ssh("subcloud2", "true", connect_timeout=2).returncode == 0)


def _transfer_seconds(lab: Lab, name: str, payload: str) -> float:
    start = time.monotonic()
    result = lab.ssh(name, "wc -c", input=payload, check=True)
    assert int(result.stdout) == len(payload)
    return time.monotonic() - start


def test_slow_link_slows_a_transfer(lab: Lab) -> None:
    payload = os.urandom(768 << 10).hex()[: 1 << 20]  # 1 MiB that does not compress
    normal = _transfer_seconds(lab, "subcloud3", payload)
    lab.fault("slow-link", "subcloud3", "4mbit")
    try:
        qdisc = subprocess.run(
            ["tc", "qdisc", "show", "dev", lab.info["subclouds"]["subcloud3"]["veth"]],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "tbf" in qdisc
        slow = _transfer_seconds(lab, "subcloud3", payload)
    finally:
        lab.fault("slow-link", "subcloud3", undo=True)
    restored = _transfer_seconds(lab, "subcloud3", payload)
    assert slow > 3 * normal, (normal, slow)
    assert slow > 2 * restored, (slow, restored)


def test_alarm_shows_in_fm_alarm_list_and_the_health_query(lab: Lab) -> None:
    command = "fm alarm-list --mgmt_affecting"
    assert "250.001" not in lab.ssh("subcloud4", command, check=True).stdout
    health = lab.ssh("subcloud4", "system health-query", check=True).stdout
    assert "No alarms: [OK]" in health
    lab.fault("alarm", "subcloud4")
    try:
        out = lab.ssh("subcloud4", command, check=True).stdout
        header = next(line for line in out.splitlines() if "Alarm ID" in line)
        row = next(line for line in out.splitlines() if "250.001" in line)
        cells = dict(
            zip(
                [c.strip() for c in header.strip("|").split("|")],
                [c.strip() for c in row.strip("|").split("|")],
                strict=True,
            )
        )
        assert cells["Management Affecting"] == "True"
        # what dcmanager reads (DC:dcmanager/common/utils.py:739-753)
        health = lab.ssh("subcloud4", "system health-query", check=True).stdout
        assert "No alarms: [Fail]" in health
        assert "[1] alarms found, [1] of which are management affecting" in health
    finally:
        lab.fault("alarm", "subcloud4", undo=True)
    assert "No alarms: [OK]" in lab.ssh("subcloud4", "system health-query", check=True).stdout


def test_non_mgmt_alarm_is_not_management_affecting(lab: Lab) -> None:
    lab.fault("alarm", "subcloud4", "non-mgmt")
    try:
        health = lab.ssh("subcloud4", "system health-query", check=True).stdout
        assert "[1] alarms found, [0] of which are management affecting" in health
    finally:
        lab.fault("alarm", "subcloud4", undo=True)


def test_sw_operation_shows_in_software_deploy_show_and_list(lab: Lab) -> None:
    show = "source /etc/platform/openrc && software deploy show"
    baseline = lab.ssh("subcloud4", show, check=True).stdout
    assert "deploy-host" not in baseline
    lab.fault("sw-operation", "subcloud4")
    try:
        out = lab.ssh("subcloud4", "software deploy show", check=True).stdout
        assert "deploy-host" in out
        assert "To Release" in out
        listed = lab.ssh("subcloud4", "software list", check=True).stdout
        assert re.search(r"starlingx-24\.09\.1 .*deploying", listed), listed
    finally:
        lab.fault("sw-operation", "subcloud4", undo=True)
    assert lab.ssh("subcloud4", show, check=True).stdout == baseline
    assert "deploying" not in lab.ssh("subcloud4", "software list", check=True).stdout


def test_sw_operation_on_the_system_controller(lab: Lab) -> None:
    lab.fault("sw-operation", lab.sc)
    try:
        assert "deploy-host" in lab.inside(lab.sc, "software deploy show").stdout
    finally:
        lab.fault("sw-operation", lab.sc, undo=True)
    assert "deploy-host" not in lab.inside(lab.sc, "software deploy show").stdout


def test_registry_down_makes_the_registry_unreachable(lab: Lab) -> None:
    registry = lab.registry("subcloud6")
    probe = "timeout 5 bash -c '</dev/tcp/registry.local/9001'"
    assert lab.registry_api(registry, "/v2/")[0] == 200
    lab.fault("registry-down", "subcloud6")
    try:
        with pytest.raises(OSError):
            lab.registry_api(registry, "/v2/")
        assert lab.ssh("subcloud6", probe).returncode != 0
        assert lab.ssh("subcloud6", "true").returncode == 0  # only the registry is gone
    finally:
        lab.fault("registry-down", "subcloud6", undo=True)
    assert lab.ssh("subcloud6", probe).returncode == 0
    assert lab.registry_api(registry, "/v2/")[0] == 200


@pytest.mark.parametrize(
    ("fault", "field", "faulty", "normal"),
    [
        ("offline", "availability", "offline", "online"),
        ("unmanaged", "management", "unmanaged", "managed"),
        ("deploy-in-progress", "deploy_status", "installing", "complete"),
    ],
)
def test_registry_state_faults_edit_the_registry(
    lab: Lab, fault: str, field: str, faulty: str, normal: str
) -> None:
    before = lab.registry_file.read_text()
    assert lab.registry_entry("subcloud1")[field] == normal
    lab.fault(fault, "subcloud1")
    try:
        assert lab.registry_entry("subcloud1")[field] == faulty
        assert lab.registry_entry("subcloud2")[field] == normal
        assert "# Subcloud registry" in lab.registry_file.read_text()  # comments kept
    finally:
        lab.fault(fault, "subcloud1", undo=True)
    assert lab.registry_entry("subcloud1")[field] == normal
    assert yaml.safe_load(lab.registry_file.read_text()) == yaml.safe_load(before)


def test_standby_makes_controller_0_standby_on_a_duplex_subcloud(lab: Lab) -> None:
    duplex = lab.subclouds_where(system_mode="duplex")
    simplex = lab.subclouds_where(system_mode="simplex")
    assert duplex, "the lab makes every 5th subcloud duplex"
    show = "system host-show controller-0"
    assert "Controller-Active" in lab.ssh(duplex[0], show, check=True).stdout
    lab.fault("standby", duplex[0])
    try:
        assert "Controller-Standby" in lab.ssh(duplex[0], show, check=True).stdout
        assert "Controller-Active" in lab.ssh(duplex[0], "system host-show controller-1").stdout
    finally:
        lab.fault("standby", duplex[0], undo=True)
    assert "Controller-Active" in lab.ssh(duplex[0], show, check=True).stdout
    refused = lab.run("fault", "standby", simplex[0], check=False)
    assert refused.returncode != 0
    assert "duplex" in refused.stderr


def test_release_changes_build_info_and_registry(lab: Lab) -> None:
    original = lab.registry_entry("subcloud2")["software_version"]
    lab.fault("release", "subcloud2", "21.12")
    try:
        out = lab.ssh("subcloud2", "cat /etc/build.info", check=True).stdout
        assert 'SW_VERSION="21.12"' in out
        assert lab.registry_entry("subcloud2")["software_version"] == "21.12"
    finally:
        lab.fault("release", "subcloud2", undo=True)
    out = lab.ssh("subcloud2", "cat /etc/build.info", check=True).stdout
    assert f'SW_VERSION="{original}"' in out
    assert lab.registry_entry("subcloud2")["software_version"] == original


def test_status_lists_faults(lab: Lab) -> None:
    lab.fault("alarm", "subcloud5")
    try:
        line = next(
            row for row in lab.run("status").stdout.splitlines() if row.startswith("subcloud5 ")
        )
        assert "alarm" in line
    finally:
        lab.fault("alarm", "subcloud5", undo=True)
