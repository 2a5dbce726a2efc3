"""subcloud and subcloud-group commands through the real dcprestage command (SPEC §2.4)."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import Workspace, tree_digest


def test_subcloud_list_and_show(workspace: Workspace) -> None:
    rows = workspace.rows("subcloud", "list")
    assert list(rows[0]) == [
        "id", "name", "management", "availability", "deploy status", "sync", "backup status",
        "prestage status",
    ]  # fmt: skip
    assert [r["name"] for r in rows] == [f"subcloud{i}" for i in range(1, 25)]
    shown = workspace.table("subcloud", "show", "subcloud7")
    assert shown["group_name"] == "First_10_Subclouds"
    assert shown["software_version"] == "24.09"
    assert shown["prestage_status"] is None
    assert shown["oam_floating_ip"] == "127.0.2.17"
    assert workspace.fail("subcloud", "show", "nope") == "Subcloud nope does not exist"


def test_group_lifecycle_and_moving_a_subcloud_keeps_comments(workspace: Workspace) -> None:
    added = workspace.table(
        "subcloud-group", "add", "--name", "prestage-retry", "--description", "retry failed",
        "--max_parallel_subclouds", "5",
    )  # fmt: skip
    assert added == {
        "id": 4, "name": "prestage-retry", "description": "retry failed",
        "update apply type": "parallel", "max parallel subclouds": 5,
    }  # fmt: skip
    moved = workspace.table("subcloud", "update", "--group", "prestage-retry", "subcloud3")
    assert moved["group_name"] == "prestage-retry"
    members = workspace.rows("subcloud-group", "list-subclouds", "prestage-retry")
    assert [m["name"] for m in members] == ["subcloud3"]
    assert workspace.fail("subcloud-group", "delete", "prestage-retry") == (
        "Subcloud Group not empty"
    )
    updated = workspace.table(
        "subcloud-group", "update", "4", "--name", "retry2", "--update_apply_type", "serial"
    )
    assert updated["name"] == "retry2"
    assert updated["update apply type"] == "serial"
    # the subcloud followed the rename
    assert workspace.table("subcloud", "show", "subcloud3")["group_name"] == "retry2"
    workspace.run("subcloud", "update", "--group", "Default", "subcloud3", check=True)
    result = workspace.run("subcloud-group", "delete", "retry2", check=True)
    assert result.stdout == ""
    assert [g["name"] for g in workspace.rows("subcloud-group", "list")] == [
        "Default", "First_10_Subclouds", "Edge_Serial",
    ]  # fmt: skip
    text = workspace.registry.read_text()
    assert text.startswith("# Example subcloud registry for distcloud.prestage")
    assert yaml.safe_load(text)["subclouds"][2]["group"] == "Default"


def test_group_defaults(workspace: Workspace) -> None:
    added = workspace.table("subcloud-group", "add", "--name", "g1")
    assert added["description"] == "No description provided"
    assert added["update apply type"] == "parallel"
    assert added["max parallel subclouds"] == 2
    assert workspace.table("subcloud-group", "show", "g1") == added


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "--name", ""], "Invalid group name: must be a non-empty string"),
        (["add", "--name", "1234"], "Invalid group name: must not be all digits"),
        (["add", "--name", "Default"], "Invalid group name: 'Default' is reserved"),
        (["add", "--name", "default"], "Invalid group name: 'Default' is reserved"),
        (
            ["add", "--name", "system_controller"],
            "Invalid group name: 'system_controller' is reserved by Ansible",
        ),
        (["add", "--name", "x" * 256], "Invalid group name: must be at most 255 characters"),
        (["add", "--name", "a.b"], "Invalid group name: must not contain any of ."),
        (["add", "--name", "a(b)"], "Invalid group name: must not contain any of ()"),
        (["add", "--name", "edge_serial"], "A subcloud group with this name already exists"),
        (
            ["add", "--name", "ok", "--max_parallel_subclouds", "0"],
            "Invalid group max_parallel_subclouds: must be an integer between 1 and 5000",
        ),
        (
            ["add", "--name", "ok", "--max_parallel_subclouds", "5001"],
            "Invalid group max_parallel_subclouds: must be an integer between 1 and 5000",
        ),
        (["update", "Default", "--name", "Other"], "Default group name cannot be changed"),
        (["update", "1", "--name", "Other"], "Default group name cannot be changed"),
        (["update", "Edge_Serial"], "nothing to update"),
        (["update", "Nope", "--description", "x"], "Subcloud Group not found"),
        (
            ["update", "Edge_Serial", "--name", "First_10_Subclouds"],
            "A subcloud group with this name already exists",
        ),
        (["delete", "Default"], "Default Subcloud Group may not be deleted"),
        (["delete", "1"], "Default Subcloud Group may not be deleted"),
        (["delete", "Edge_Serial"], "Subcloud Group not empty"),
        (["delete", "Nope"], "Subcloud Group not found"),
        (["show", "Nope"], "Subcloud Group not found"),
        (["list-subclouds", "99"], "Subcloud Group not found"),
    ],
)
def test_group_rules(workspace: Workspace, args: list[str], message: str) -> None:
    before = tree_digest([workspace.root])
    assert workspace.fail("subcloud-group", *args) == message
    assert tree_digest([workspace.root]) == before


def test_moving_to_an_unknown_group_or_subcloud_changes_nothing(workspace: Workspace) -> None:
    before = tree_digest([workspace.root])
    assert workspace.fail("subcloud", "update", "--group", "Nope", "subcloud1") == (
        "Subcloud Group not found"
    )
    assert workspace.fail("subcloud", "update", "--group", "Default", "nope") == (
        "Subcloud nope does not exist"
    )
    assert tree_digest([workspace.root]) == before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("subclouds: [\n  {id: 1\n", "Invalid subcloud registry {path}:3:"),
        ("- a\n- b\n", "the document must be a mapping"),
        (
            "subclouds:\n  - {id: 1, name: s1, oam_floating_address: 10.0.0.1, "
            'software_version: "24.09", management: maybe}\n',
            "{path}:2: subclouds[0].management: must be one of managed, unmanaged (got 'maybe')",
        ),
        (
            "subclouds:\n  - {id: 1, name: s1, oam_floating_address: nowhere, "
            'software_version: "24.09"}\n',
            "{path}:2: subclouds[0].oam_floating_address: not an IP address: 'nowhere'",
        ),
        (
            "subclouds:\n  - {id: 1, name: s1, oam_floating_address: 10.0.0.1, "
            "software_version: 24.09}\n",
            "subclouds[0].software_version: must be quoted",
        ),
        (
            "subclouds:\n"
            '  - {id: 1, name: s1, oam_floating_address: 10.0.0.1, software_version: "24.09"}\n'
            '  - {id: 1, name: s2, oam_floating_address: 10.0.0.2, software_version: "24.09"}\n',
            "{path}:3: subclouds[1].id: duplicate id 1",
        ),
        (
            "subclouds:\n"
            '  - {id: 1, name: s1, oam_floating_address: 10.0.0.1, software_version: "24.09"}\n'
            '  - {id: 2, name: s1, oam_floating_address: 10.0.0.2, software_version: "24.09"}\n',
            "{path}:3: subclouds[1].name: duplicate name 's1'",
        ),
        (
            "subclouds:\n"
            "  - {id: 1, name: s1, group: nope, oam_floating_address: 10.0.0.1, "
            'software_version: "24.09"}\n',
            "subclouds[0].group: no subcloud group 'nope'",
        ),
        (
            "groups:\n  - {id: 2, name: g, max_parallel_subclouds: 0}\n",
            "groups[0].max_parallel_subclouds: must be an integer between 1 and 5000 (got 0)",
        ),
        ("groups:\n  - {id: 1, name: Other}\n", "groups[0].name: id 1 must be named 'Default'"),
        ("subclouds: {}\n", "subclouds: must be a list"),
        ("subclouds:\n  - id: 1\n    id: 2\n", "{path}:3: subclouds[0].id: duplicate key"),
        ("extra: 1\n", "extra: unknown key"),
        (
            "subclouds:\n  - {id: 1, name: s1, oam_floating_address: 10.0.0.1}\n",
            "subclouds[0]: missing required field 'software_version'",
        ),
    ],
)
def test_a_malformed_registry_is_one_clear_line(
    workspace: Workspace, text: str, message: str
) -> None:
    workspace.registry.write_text(text)
    before = tree_digest([workspace.root])
    expected = message.format(path=workspace.registry)
    for command in (
        ["subcloud", "list"],
        ["subcloud-group", "list"],
        ["prestage-strategy", "create", "--sysadmin-password", "x"],
        ["subcloud-group", "add", "--name", "new"],
    ):
        error = workspace.fail(*command)
        assert error.startswith(f"Invalid subcloud registry {workspace.registry}"), error
        assert expected in error, error
    assert tree_digest([workspace.root]) == before


def test_a_missing_inventory_config_is_a_clear_error(workspace: Workspace) -> None:
    missing = workspace.root / "nope" / "subclouds.yml"
    error = workspace.fail("-i", str(missing), "subcloud", "list")
    assert error == f"Inventory config {missing} does not exist"
    workspace.config.write_text("plugin: something.else\n")
    assert "expected 'plugin: distcloud.prestage.subclouds'" in workspace.fail("subcloud", "list")
