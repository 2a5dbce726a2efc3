"""What the control plane reads from the lab: the registry, the inventory config, lab.json, the
system controller content, and what a subcloud answers before any fault."""

from __future__ import annotations

import os
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
    "id", "name", "group", "oam_floating_address", "management", "availability",
    "deploy_status", "software_version", "system_mode", "sync", "backup_status", "vars",
}  # fmt: skip


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
    releases = {item["software_version"] for item in data["subclouds"]}
    assert releases == {"22.12", "24.09"}


def test_inventory_config(lab: Lab) -> None:
    config = yaml.safe_load(lab.inventory.read_text())
    assert config["plugin"] == "distcloud.prestage.subclouds"
    assert (lab.inventory.parent / config["registry"]) == lab.registry_file
    sc = config["system_controller"]
    assert sc["release"] == "24.09"
    assert sc["registry"] == lab.central_registry == "10.250.0.1:9001"
    assert sc["registry_tls_verify"] is True
    assert Path(sc["registry_ca"]) == lab.ca
    for release in ("22.12", "24.09"):
        repo = Path(sc["feed_dir"]) / f"rel-{release}" / "ostree_repo"
        assert (repo / "config").exists()
        assert (repo / "refs" / "heads" / "starlingx").exists()
        metadata = Path(sc["software_dir"]) / release / "metadata"
        assert list((metadata / "deployed").glob("*.xml"))
        assert (Path(sc["image_list_dir"]) / release / "prestage_images_list.txt").exists()


def test_inventory_plugin_reads_the_lab(lab: Lab, tmp_path: Path) -> None:
    venv = Path(__file__).resolve().parents[3] / ".venv" / "bin"
    result = subprocess.run(
        [str(venv / "ansible-inventory"), "-i", str(lab.inventory), "--list"],
        capture_output=True, text=True, env=lab.ansible_env(tmp_path), timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert all(name in result.stdout for name in lab.subclouds)


def test_feed_is_an_ostree_repo_of_the_requested_size(lab: Lab) -> None:
    size = lab.info["sc"]["size_bytes"]
    for repo in lab.info["sc"]["feeds"].values():
        out = subprocess.run(
            ["ostree", "log", "starlingx", f"--repo={repo}"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert "StarlingX" in out
        total = sum(p.stat().st_size for p in Path(repo).rglob("*") if p.is_file())
        assert 0.8 * size < total < 1.5 * size + (1 << 20)


def test_lab_json_describes_every_subcloud(lab: Lab) -> None:
    info = lab.info
    assert info["bridge"]["address"] == "10.250.0.1"
    for name in lab.subclouds:
        record = info["subclouds"][name]
        assert record["registry"] == f"{record['address']}:9001"
        assert Path(f"/proc/{record['init_pid']}").exists()
        assert Path(record["paths"]["/opt"]).is_dir()
    assert lab.paths.sysadmin_password.stat().st_mode & 0o777 == 0o600


def test_subcloud_baseline(lab: Lab) -> None:
    for name in (lab.subclouds[0], lab.subclouds_where(software_version="24.09")[0]):
        entry = lab.registry_entry(name)
        out = lab.ssh(name, "cat /etc/build.info /etc/platform/platform.conf", check=True).stdout
        assert f'SW_VERSION="{entry["software_version"]}"' in out
        assert f"system_mode={entry['system_mode']}" in out
        out = lab.ssh(name, "software list", check=True).stdout
        assert f"starlingx-{entry['software_version']}.0" in out
        assert "deployed" in out
        out = lab.ssh(name, "system host-show controller-0", check=True).stdout
        assert "{'Personality': 'Controller-Active'}" in out
        out = lab.ssh(name, "ls -d /opt/platform-backup /opt/software /var/lib/docker").stdout
        assert len(out.split()) == 3


def test_sudo_needs_the_password(lab: Lab) -> None:
    name = lab.subclouds[0]
    assert lab.ssh(name, "sudo -n true").returncode != 0
    assert lab.ssh(name, "id -u", become=True, check=True).stdout.strip() == "0"


def test_up_again_changes_nothing(lab: Lab) -> None:
    before = {name: lab.info["subclouds"][name]["init_pid"] for name in lab.subclouds}
    password = lab.password
    registry = lab.registry_file.read_text()
    lab.up(len(lab.subclouds))
    assert {name: lab.info["subclouds"][name]["init_pid"] for name in lab.subclouds} == before
    assert lab.password == password
    assert lab.registry_file.read_text() == registry


def test_status(lab: Lab) -> None:
    out = lab.run("status").stdout
    for name in lab.subclouds:
        line = next(row for row in out.splitlines() if row.startswith(f"{name} "))
        assert lab.address(name) in line
        assert line.split()[5:7] == ["up", "up"]
