"""The dcmanager source on the lab: the inventory plugin, dcprestage and an AWX-style inventory
sync reading the system controller's Keystone + dcmanager API (the lab's dcmanager-api daemon,
written from dcmanager's API reference) instead of a registry file. The seed procedure with this
source is tests/integration/orchestration/test_seed_procedure.py[dcmanager]."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import DCPRESTAGE, ROOT, VENV_BIN

pytestmark = pytest.mark.lab


def _env(lab, tmp_path: Path) -> dict[str, str]:
    """What an operator's shell has: the Keystone password in OS_PASSWORD (the config's
    password_env), never in the inventory config."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DCPRESTAGE", "ANSIBLE"))},
        "OS_PASSWORD": lab.keystone_password,
        "DCPRESTAGE_STATE_DIR": str(tmp_path / "state"),
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
    }


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        args, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    return result


def _text(value: object) -> object:
    return value["__ansible_unsafe"] if isinstance(value, dict) else value


def _cli(lab, env: dict[str, str], *args: str) -> str:
    return _run([DCPRESTAGE, "-i", str(lab.dcmanager_inventory), *args], env).stdout


def test_ansible_inventory_graph_from_dcmanager(lab, tmp_path: Path) -> None:
    env = _env(lab, tmp_path)
    inventory = str(VENV_BIN / "ansible-inventory")
    graph = _run([inventory, "-i", str(lab.dcmanager_inventory), "--graph"], env).stdout
    listed = json.loads(_run([inventory, "-i", str(lab.dcmanager_inventory), "--list"], env).stdout)
    _status, groups = lab.dcmanager_api("/subcloud-groups")
    _status, subclouds = lab.dcmanager_api("/subclouds")
    for group in groups["subcloud_groups"]:
        members = sorted(s["name"] for s in subclouds["subclouds"] if s["group_id"] == group["id"])
        assert f"@{group['name']}:" in graph
        assert sorted(listed.get(group["name"], {}).get("hosts", [])) == members, group["name"]
    assert "@system_controller:" in graph
    # the hosts' addresses are dcmanager's OAM floating addresses (the detail call)
    for name in lab.subclouds:
        assert f"--{name}" in graph
        assert _text(listed["_meta"]["hostvars"][name]["ansible_host"]) == lab.address(name)


def test_a_subcloud_offline_in_dcmanager_is_skipped_at_create(lab, tmp_path: Path) -> None:
    env = _env(lab, tmp_path)
    offline = lab.subclouds[1]
    lab.fault("offline", offline)
    try:
        _status, detail = lab.dcmanager_api(f"/subclouds/{offline}/detail")
        assert detail["availability-status"] == "offline"
        _cli(lab, env, "prestage-strategy", "create", "--sysadmin-password", lab.password)
        steps = json.loads(_cli(lab, env, "strategy-step", "list", "-f", "json"))
        clouds = [s["cloud"] for s in steps]
        assert offline not in clouds
        assert [c for c in lab.subclouds if c != offline] == clouds
        # dcprestage shows what dcmanager says of it
        shown = json.loads(_cli(lab, env, "subcloud", "show", offline, "-f", "json"))
        assert shown["availability"] == "offline"
        _cli(lab, env, "prestage-strategy", "delete")
    finally:
        lab.fault("offline", offline, undo=True)


def test_an_awx_inventory_sync_from_dcmanager(lab, tmp_path: Path) -> None:
    """An AWX inventory source of the project's config with the dcmanager source: the Keystone
    password comes from a credential that injects OS_PASSWORD (what the sync's environment gets),
    never from the source file."""
    from tests.integration.awx import awxsim  # noqa: PLC0415

    project = tmp_path / "project"
    (project / "inventory").mkdir(parents=True)
    config = yaml.safe_load(Path(lab.dcmanager_inventory).read_text())
    (project / "inventory" / "subclouds.yml").write_text(yaml.safe_dump(config))
    env = awxsim.base_env(str(ROOT / ".venv" / "collections"))
    export = awxsim.sync_inventory(
        project, "inventory/subclouds.yml", {"OS_PASSWORD": lab.keystone_password}, env,
        tmp_path / "output.json",
    )  # fmt: skip
    hostvars = export["_meta"]["hostvars"]
    for name in lab.subclouds:  # AWX imports them as unsafe text
        assert _text(hostvars[name]["ansible_host"]) == lab.address(name)
        assert _text(hostvars[name]["subcloud_availability"]) == "online"
    assert "prestage_registry" not in export.get("all", {}).get("vars", {})
    assert lab.keystone_password not in (tmp_path / "output.json").read_text()
