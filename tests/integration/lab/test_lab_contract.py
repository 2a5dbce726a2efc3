"""What the control plane reads from the lab: the registry, the inventory config (the system
controller as a host of its own), lab.json, the system controller's StarlingX content, and what a
subcloud answers before any fault."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from labctl.testing import Lab

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
]

SUBCLOUD_KEYS = {
    "id",
    "name",
    "group",
    "oam_floating_address",
    "management",
    "availability",
    "deploy_status",
    "software_version",
    "system_mode",
    "sync",
    "backup_status",
    "vars",
}


def test_registry_file(lab: Lab) -> None:
    data = yaml.safe_load(lab.registry_file.read_text())
    groups = {g["name"]: g for g in data["groups"]}
    assert groups["Default"]["id"] == 1
    assert groups["First_10_Subclouds"]["max_parallel_subclouds"] == 10
    assert groups["Edge_Serial"]["update_apply_type"] == "serial"
    for item in data["subclouds"]:
        assert set(item) == SUBCLOUD_KEYS
        assert item["oam_floating_address"] == lab.address(item["name"])
        assert isinstance(item["software_version"], str)
    assert [item["id"] for item in data["subclouds"]] == sorted(
        item["id"] for item in data["subclouds"]
    )
    # the system controller's release (25.09) and the one it upgrades from (24.09)
    assert {item["software_version"] for item in data["subclouds"]} == {"24.09", "25.09"}


def test_inventory_config_names_the_system_controller_with_its_own_credentials(
    lab: Lab,
) -> None:
    config = yaml.safe_load(lab.inventory.read_text())
    assert config["plugin"] == "distcloud.prestage.subclouds"
    assert (lab.inventory.parent / config["registry"]) == lab.registry_file
    sc = config["system_controller"]
    assert sc["host"] == lab.sc == "system-controller"
    assert sc["vars"]["ansible_host"] == "10.250.0.2"
    assert sc["vars"]["ansible_ssh_private_key_file"] == lab.info["system_controller"]["ssh_key"]
    assert lab.password not in lab.inventory.read_text()
    # its become password is its own, beside the inventory (host_vars), not the subclouds'
    host_vars = lab.inventory.parent / "host_vars" / f"{lab.sc}.yml"
    assert host_vars.stat().st_mode & 0o777 == 0o600
    assert yaml.safe_load(host_vars.read_text()) == {"ansible_become_password": lab.sc_password}
    assert lab.sc_password != lab.password


def test_inventory_plugin_reads_the_lab(lab: Lab, tmp_path: Path) -> None:
    venv = Path(__file__).resolve().parents[3] / ".venv" / "bin"
    result = subprocess.run(
        [str(venv / "ansible-inventory"), "-i", str(lab.inventory), "--list"],
        capture_output=True,
        text=True,
        env=lab.ansible_env(tmp_path),
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["system_controller"]["hosts"] == [lab.sc]
    subclouds = set(data["_meta"]["hostvars"]) - {lab.sc}
    assert subclouds == set(lab.subclouds)


def test_the_system_controller_holds_starlingx_content(lab: Lab) -> None:
    """STARLINGX.md §7: the SC's feeds (real ostree repos, one commit per patch level), upgrades
    metadata, USM metadata, release dirs and image lists, at StarlingX's paths, as it sees them."""
    out = lab.inside(
        lab.sc, "cat /etc/build.info; grep distributed_cloud_role /etc/platform/platform.conf"
    ).stdout
    assert 'SW_VERSION="25.09"' in out and "systemcontroller" in out
    for release in ("24.09", "25.09"):
        log = lab.inside(
            lab.sc, f"ostree --repo=/var/www/pages/feed/rel-{release}/ostree_repo log starlingx"
        ).stdout
        subjects = [line.split()[0] for line in log.splitlines() if line.startswith("    ")]
        assert [s for s in subjects if s.startswith(release)] == [f"{release}.1", f"{release}.0"]
        lab.inside(lab.sc, f"test -f /var/www/pages/feed/rel-{release}/upgrades/metadata.xml")
        lab.inside(lab.sc, f"test -f /opt/platform/iso/{release}/ostree_repo/config")
        lab.inside(lab.sc, f"ls /opt/platform/deploy/{release}/prestage_images*")
    metadata = lab.inside(lab.sc, "cat /opt/upgrades/metadata.xml").stdout
    assert "<version>25.09</version>" in metadata and "<version>24.09</version>" in metadata
    listed = lab.inside(lab.sc, "software list").stdout
    assert re.search(r"starlingx-25\.09\.1 .*deployed", listed)
    assert re.search(r"starlingx-24\.09\.1 .*unavailable", listed)
    lab.inside(
        lab.sc, "test -d /opt/software/rel-25.09.1 && test -d /opt/software/software-scripts"
    )


def test_lab_hosts_run_python_3_9(lab: Lab) -> None:
    for name in (lab.sc, lab.subclouds[0]):
        out = lab.ssh(
            name, "python3 -c 'import sys, keyring, defusedxml; print(sys.version)'", check=True
        ).stdout
        assert out.startswith("3.9."), out


def test_lab_hosts_have_no_skopeo(lab: Lab) -> None:
    """A StarlingX host has no skopeo or umoci (STARLINGX.md §4: images move through the registry
    API or the docker client StarlingX ships); the machine's are hidden from every lab host."""
    for name in (lab.sc, lab.subclouds[0]):
        found = lab.ssh(name, "command -v skopeo umoci; ls /usr/bin/skopeo", become=True)
        assert found.returncode != 0 and found.stdout == "", (name, found.stdout)


def test_lab_json_describes_every_host(lab: Lab) -> None:
    info = lab.info
    assert info["bridge"]["address"] == "10.250.0.1"
    for name in [lab.sc, *lab.subclouds]:
        record = lab.host_info(name)
        assert record["registry"] == f"{record['address']}:9001"
        assert Path(f"/proc/{record['init_pid']}").exists()
        assert Path(record["paths"]["/opt"]).is_dir()
    assert lab.paths.sysadmin_password.stat().st_mode & 0o777 == 0o600


def test_subcloud_baseline(lab: Lab) -> None:
    for name in (lab.subclouds[0], lab.subclouds_where(software_version="24.09")[0]):
        entry = lab.registry_entry(name)
        release = entry["software_version"]
        out = lab.ssh(name, "cat /etc/build.info /etc/platform/platform.conf", check=True).stdout
        assert f'SW_VERSION="{release}"' in out
        assert f"system_mode={entry['system_mode']}" in out
        out = lab.ssh(name, "software list", check=True).stdout
        assert re.search(rf"starlingx-{release}\.0 .*deployed", out), out
        out = lab.ssh(name, "system host-show controller-0", check=True).stdout
        assert "{'Personality': 'Controller-Active'}" in out
        # its own feed, at its own patch level (the release's first commit only)
        log = lab.ssh(
            name,
            f"ostree --repo=/var/www/pages/feed/rel-{release}/ostree_repo log starlingx",
            check=True,
        ).stdout
        assert log.count("commit ") == 1 and f"{release}.0" in log
        out = lab.ssh(name, "ls -d /opt/platform-backup /opt/software /var/lib/docker").stdout
        assert len(out.split()) == 3


def test_sudo_needs_the_password(lab: Lab) -> None:
    for name in (lab.subclouds[0], lab.sc):
        assert lab.ssh(name, "sudo -n true").returncode != 0
        assert lab.ssh(name, "id -u", become=True, check=True).stdout.strip() == "0"


def test_up_again_changes_nothing(lab: Lab) -> None:
    before = {name: lab.host_info(name)["init_pid"] for name in [lab.sc, *lab.subclouds]}
    password = lab.password
    registry = lab.registry_file.read_text()
    lab.up(len(lab.subclouds))
    after = {name: lab.host_info(name)["init_pid"] for name in [lab.sc, *lab.subclouds]}
    assert after == before
    assert lab.password == password
    assert lab.registry_file.read_text() == registry


def test_status(lab: Lab) -> None:
    out = lab.run("status").stdout
    assert "system controller 10.250.0.2 25.09: sshd up, registry.central up, feed up" in out
    for name in lab.subclouds:
        line = next(row for row in out.splitlines() if row.startswith(f"{name} "))
        assert lab.address(name) in line
        assert line.split()[5:7] == ["up", "up"]
