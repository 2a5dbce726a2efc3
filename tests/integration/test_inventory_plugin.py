"""The distcloud.prestage.subclouds inventory plugin through ansible-inventory, ansible-playbook
and ansible-doc (the entry points Ansible and AWX use)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, SC_HOST, VENV_BIN, Workspace, tree_digest

# Also run on every supported ansible-core (scripts/core-matrix):
# the inventory plugin through ansible-inventory, ansible-playbook and ansible-doc.
pytestmark = pytest.mark.core_matrix


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
    assert len(hostvars) == 24  # the system controller's variables are its group's
    assert hostvars["subcloud7"]["ansible_host"] == "192.0.2.17"
    assert hostvars["subcloud7"]["ansible_user"] == "sysadmin"
    # StarlingX's python3, as dcmanager's own prestage inventory says (no discovery)
    assert hostvars["subcloud7"]["ansible_python_interpreter"] == "/usr/bin/python3"
    assert hostvars["subcloud7"]["subcloud_software_version"] == "24.09"
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
    assert "subcloud6" in data["release_25_09"]["hosts"]
    assert "subcloud7" in data["release_24_09"]["hosts"]
    assert "subcloud5" in data["mode_duplex"]["hosts"]
    all_vars = plain(data["all"]["vars"])
    assert all_vars["prestage_registry"] == str(ROOT / "inventory" / "registry.yml")
    assert all_vars["prestage_inventory_config"] == str(ROOT / "inventory" / "subclouds.yml")
    assert all_vars["prestage_system_controller_host"] == SC_HOST
    assert "prestage_system_controller" not in all_vars  # the settings of the old model
    # the system controller: a host of its own, alone in its group, with its own connection
    # settings and no password of the subclouds' (-k/-K give those to the play), as variables of
    # its group (an AWX job slice without the host keeps them)
    assert data["system_controller"]["hosts"] == [SC_HOST]
    assert plain(data["system_controller"]["vars"]) == {
        "ansible_host": "192.0.2.2",
        "ansible_user": "sysadmin",
        "ansible_ssh_private_key_file": "~/.ssh/id_ed25519",
        "ansible_python_interpreter": "/usr/bin/python3",
        "ansible_password": "",
        "ansible_become_password": "",
    }
    assert not any(SC_HOST in group.get("hosts", []) for name, group in data.items()
                   if name not in ("_meta", "system_controller"))  # fmt: skip


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
    # all hosts but the system controller: what the prestage plays target
    play.write_text("- hosts: all:!system_controller\n  gather_facts: false\n  tasks: []\n")
    result = ansible(workspace, "ansible-playbook", "-i", str(workspace.config), str(play),
                     "--list-hosts")  # fmt: skip
    hosts = [line.strip() for line in result.stdout.splitlines() if line.startswith("      ")]
    assert sorted(hosts) == sorted(f"subcloud{i}" for i in range(1, 25))


def test_compose_and_groups(workspace: Workspace) -> None:
    config = yaml.safe_load(workspace.config.read_text())
    config["compose"] = {"ansible_port": "2222 if subcloud_system_mode == 'duplex' else 22"}
    config["groups"] = {"on_24_09": "subcloud_software_version == '24.09'"}
    workspace.config.write_text(yaml.safe_dump(config))
    data = inventory_list(workspace, workspace.config)
    assert data["_meta"]["hostvars"]["subcloud5"]["ansible_port"] == 2222
    assert data["_meta"]["hostvars"]["subcloud1"]["ansible_port"] == 22
    assert "subcloud6" not in data["on_24_09"]["hosts"]
    assert "subcloud1" in data["on_24_09"]["hosts"]


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


def test_the_system_controller_defaults_to_this_host(workspace: Workspace) -> None:
    """No system_controller setting: Ansible runs on the system controller (localhost, local
    connection, the playbook's own Python); subcloud vars may choose their own interpreter."""
    config = yaml.safe_load(workspace.config.read_text())
    del config["system_controller"]
    workspace.config.write_text(yaml.safe_dump(config))

    def own_python(data):
        data["subclouds"][0]["vars"] = {"ansible_python_interpreter": "/usr/bin/python3.9"}

    workspace.edit_registry(own_python)
    data = inventory_list(workspace, workspace.config)
    hostvars = {name: plain(v) for name, v in data["_meta"]["hostvars"].items()}
    assert data["system_controller"]["hosts"] == ["localhost"]
    assert plain(data["system_controller"]["vars"]) == {
        "ansible_connection": "local",
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "ansible_password": "",
        "ansible_become_password": "",
    }
    assert plain(data["all"]["vars"])["prestage_system_controller_host"] == "localhost"
    assert hostvars["subcloud1"]["ansible_python_interpreter"] == "/usr/bin/python3.9"
    assert hostvars["subcloud2"]["ansible_python_interpreter"] == "/usr/bin/python3"


def test_the_system_controller_keeps_its_own_credentials(workspace: Workspace) -> None:
    config = yaml.safe_load(workspace.config.read_text())
    config["system_controller"]["vars"] = {
        "ansible_host": "127.0.2.2",
        "ansible_become_password": "{{ sc_become_password }}",  # kept as written
    }
    workspace.config.write_text(yaml.safe_dump(config))
    sc_vars = plain(inventory_list(workspace, workspace.config)["system_controller"]["vars"])
    assert sc_vars == {
        "ansible_host": "127.0.2.2",
        "ansible_become_password": "{{ sc_become_password }}",
        "ansible_password": "",
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda config, registry: config["system_controller"].update(
                release="24.09", feed_dir="/var/www/pages/feed"
            ),
            "unknown system_controller setting(s) feed_dir, release (known: host, vars; the "
            "system controller's paths are StarlingX's own)",
        ),
        (
            lambda config, registry: config["system_controller"].update(host="a b"),
            "system_controller.host must be a host name (got 'a b')",
        ),
        (
            lambda config, registry: config["system_controller"].update(vars=["x"]),
            "system_controller.vars must be a mapping of host variables",
        ),
        (
            lambda config, registry: registry["subclouds"][0].update(name="system-controller"),
            "subcloud system-controller has the name of the system controller host "
            "(system_controller.host)",
        ),
    ],
)
def test_bad_system_controller_settings_are_one_clear_line(
    workspace: Workspace, change, message: str
) -> None:
    config = yaml.safe_load(workspace.config.read_text())
    registry = yaml.safe_load(workspace.registry.read_text())
    change(config, registry)
    workspace.config.write_text(yaml.safe_dump(config))
    workspace.registry.write_text(yaml.safe_dump(registry, sort_keys=False))
    workspace.env["ANSIBLE_INVENTORY_UNPARSED_FAILED"] = "true"
    result = ansible(workspace, "ansible-inventory", "-i", str(workspace.config), "--list")
    assert result.returncode != 0
    assert f"Invalid inventory config {workspace.config}: {message}" in " ".join(
        result.stderr.split()
    )
    assert "Traceback" not in result.stderr
    if "subcloud" not in message:  # dcprestage reads the same settings (not the host names)
        before = tree_digest([workspace.root])
        error = workspace.fail("prestage-strategy", "create", "--sysadmin-password", "x")
        assert error == f"Invalid inventory config {workspace.config}: {message}"
        assert tree_digest([workspace.root]) == before
