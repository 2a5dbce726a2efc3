"""The distcloud.prestage.subclouds inventory plugin through ansible-inventory, ansible-playbook
and ansible-doc (the entry points Ansible and AWX use)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from tests.conftest import ROOT, VENV_BIN, Workspace


def ansible(ws: Workspace, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / tool), *args],
        capture_output=True,
        text=True,
        env=ws.env,
        cwd=ws.root,
        timeout=120,
        check=False,
    )


def inventory_list(ws: Workspace, config: Path, *extra: str) -> dict:
    result = ansible(ws, "ansible-inventory", "-i", str(config), "--list", "--export", *extra)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def plain(value):
    """ansible-inventory marks plugin-provided strings as unsafe; compare their text."""
    if isinstance(value, dict) and set(value) == {"__ansible_unsafe"}:
        return value["__ansible_unsafe"]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def test_example_inventory_lists_hosts_groups_and_vars(workspace: Workspace) -> None:
    data = inventory_list(workspace, ROOT / "inventory" / "subclouds.yml")
    hostvars = {name: plain(v) for name, v in data["_meta"]["hostvars"].items()}
    assert len(hostvars) == 24
    assert hostvars["subcloud7"]["ansible_host"] == "192.0.2.17"
    assert hostvars["subcloud7"]["ansible_user"] == "sysadmin"
    assert hostvars["subcloud7"]["subcloud_software_version"] == "22.12"
    assert hostvars["subcloud5"]["subcloud_system_mode"] == "duplex"
    assert data["First_10_Subclouds"]["hosts"] == [f"subcloud{i}" for i in range(1, 11)]
    assert plain(data["First_10_Subclouds"]["vars"]) == {
        "subcloud_group_id": 2,
        "subcloud_group_description": "The first ten subclouds, prestaged ten at a time",
        "subcloud_group_update_apply_type": "parallel",
        "subcloud_group_max_parallel_subclouds": 10,
    }
    assert plain(data["Edge_Serial"]["vars"])["subcloud_group_update_apply_type"] == "serial"
    assert len(data["Default"]["hosts"]) == 8
    # keyed_groups from the example config
    assert "subcloud6" in data["release_24_09"]["hosts"]
    assert "subcloud5" in data["mode_duplex"]["hosts"]
    all_vars = plain(data["all"]["vars"])
    assert all_vars["prestage_system_controller"]["release"] == "24.09"
    assert all_vars["prestage_system_controller"]["registry_tls_verify"] is True
    assert all_vars["prestage_registry"] == str(ROOT / "inventory" / "registry.yml")


def test_limit_by_subcloud_group(workspace: Workspace, tmp_path: Path) -> None:
    play = tmp_path / "play.yml"
    play.write_text("- hosts: all\n  gather_facts: false\n  tasks: []\n")
    result = ansible(
        workspace, "ansible-playbook", "-i", str(workspace.config), str(play),
        "-l", "First_10_Subclouds", "--list-hosts",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    hosts = [line.strip() for line in result.stdout.splitlines() if line.startswith("      ")]
    assert sorted(hosts) == sorted(f"subcloud{i}" for i in range(1, 11))


def test_compose_and_groups(workspace: Workspace) -> None:
    config = yaml.safe_load(workspace.config.read_text())
    config["compose"] = {"ansible_port": "2222 if subcloud_system_mode == 'duplex' else 22"}
    config["groups"] = {"on_22_12": "subcloud_software_version == '22.12'"}
    workspace.config.write_text(yaml.safe_dump(config))
    data = inventory_list(workspace, workspace.config)
    assert data["_meta"]["hostvars"]["subcloud5"]["ansible_port"] == 2222
    assert data["_meta"]["hostvars"]["subcloud1"]["ansible_port"] == 22
    assert "subcloud6" not in data["on_22_12"]["hosts"]
    assert "subcloud1" in data["on_22_12"]["hosts"]


def test_a_registry_error_is_reported_by_ansible_inventory(workspace: Workspace) -> None:
    workspace.registry.write_text("subclouds:\n  - {id: 1, name: s1}\n")
    workspace.env["ANSIBLE_INVENTORY_UNPARSED_FAILED"] = "true"  # AWX syncs fail this way
    result = ansible(workspace, "ansible-inventory", "-i", str(workspace.config), "--list")
    assert result.returncode != 0
    assert (
        f"Invalid subcloud registry {workspace.registry}:2: subclouds[0]: missing required field"
        in " ".join(result.stderr.split())
    )
    assert "Traceback" not in result.stderr


def test_verify_file_accepts_only_subclouds_configs(workspace: Workspace) -> None:
    other = workspace.config.with_name("prestage.yml")
    other.write_text(workspace.config.read_text())
    result = ansible(workspace, "ansible-inventory", "-i", str(other), "--list")
    assert "subcloud1" not in result.stdout
    assert "prestage.yml" in result.stderr  # Ansible says no plugin could parse it
    named = workspace.config.with_name("edge.subclouds.yaml")
    named.write_text(workspace.config.read_text())
    assert "subcloud1" in inventory_list(workspace, named)["_meta"]["hostvars"]


def test_cache_serves_the_registry_until_flushed(workspace: Workspace) -> None:
    config = yaml.safe_load(workspace.config.read_text())
    config.update(cache=True, cache_plugin="ansible.builtin.jsonfile",
                  cache_connection=str(workspace.root / "cache"), cache_timeout=3600)  # fmt: skip
    workspace.config.write_text(yaml.safe_dump(config))
    assert "subcloud24" in inventory_list(workspace, workspace.config)["_meta"]["hostvars"]

    def drop_last(data):
        data["subclouds"].pop()

    workspace.edit_registry(drop_last)
    cached = inventory_list(workspace, workspace.config)["_meta"]["hostvars"]
    assert "subcloud24" in cached
    fresh = inventory_list(workspace, workspace.config, "--flush-cache")["_meta"]["hostvars"]
    assert "subcloud24" not in fresh


def test_ansible_doc_renders(workspace: Workspace) -> None:
    result = ansible(workspace, "ansible-doc", "-t", "inventory", "distcloud.prestage.subclouds")
    assert result.returncode == 0, result.stderr
    assert "distcloud.prestage.subclouds" in result.stdout
    assert "system_controller" in result.stdout
    assert "keyed_groups" in result.stdout  # the constructed doc fragment
    assert "EXAMPLES" in result.stdout
