"""Issue 15's format and registry hardening through the real entry points: the dcprestage
command, ansible-inventory with the inventory plugin, and the playbook's extra vars.

Every format is anchored and ASCII-only (a trailing newline, non-ASCII digits refused); YAML
aliases are refused at any depth; an empty registry is an error; group ids are never reused; an
edit follows a symlinked registry to its target; -v prints each fact once.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import VENV_BIN, Workspace, tree_digest
from tests.integration.test_playbook_entry import SECRET, playbook

PASSWORD = ("--sysadmin-password", "Pw-Format-1")


def _first_subcloud(ws: Workspace, **changes: object) -> None:
    ws.edit_registry(lambda data: data["subclouds"][0].update(changes))


# --------------------------------------------------------------------------- formats


def test_a_subcloud_name_with_a_newline_is_refused_by_every_command(
    workspace: Workspace,
) -> None:
    _first_subcloud(workspace, name="evil\n")
    before = tree_digest([workspace.registry])
    for command in (("subcloud", "list"), ("prestage-strategy", "create", *PASSWORD)):
        error = workspace.fail(*command)
        assert error.startswith(f"Invalid subcloud registry {workspace.registry}:")
        assert "subclouds[0].name: must be letters, digits" in error
    assert not (workspace.state_dir / "strategy.json").exists()
    assert tree_digest([workspace.registry]) == before


@pytest.mark.parametrize("version", ["22.12\n", "\uff12\uff12.\uff11\uff12", "24.0\u0669"])
def test_a_software_version_with_a_newline_or_other_digits_is_refused(
    workspace: Workspace, version: str
) -> None:
    _first_subcloud(workspace, software_version=version)
    error = workspace.fail("subcloud", "list")
    assert "subclouds[0].software_version: must look like MM.mm" in error


@pytest.mark.parametrize("release", ["25.09\n", "\uff12\uff15.\uff10\uff19", "25.0\u0669"])
def test_a_release_with_a_newline_or_other_digits_is_a_format_error(
    workspace: Workspace, release: str
) -> None:
    expected = "Specified release format is not supported. Version format must be MM.mm."
    assert workspace.fail("prestage-strategy", "create", "--release", release, *PASSWORD) == (
        expected
    )
    assert workspace.fail("subcloud", "prestage", "subcloud1", "--release", release,
                          *PASSWORD) == expected  # fmt: skip
    assert not (workspace.state_dir / "strategy.json").exists()


@pytest.mark.parametrize("number", ["\u0663", "\uff13", " 3", "3_0", "+3", "3\n"])
def test_numbers_take_ascii_digits_only(workspace: Workspace, number: str) -> None:
    error = workspace.fail(
        "prestage-strategy", "create", "--max-parallel-subclouds", number, *PASSWORD
    )
    assert error == (
        "dcprestage prestage-strategy create: error: argument --max-parallel-subclouds: invalid "
        f"int value: {' '.join(repr(number).split())}"
    )
    before = tree_digest([workspace.registry])
    error = workspace.fail(
        "subcloud-group", "add", "--name", "Edge9", "--max_parallel_subclouds", number
    )
    assert "argument --max_parallel_subclouds: invalid int value" in error
    assert tree_digest([workspace.registry]) == before
    assert not (workspace.state_dir / "strategy.json").exists()
    # ASCII digits still work
    added = workspace.table(
        "subcloud-group", "add", "--name", "Edge9", "--max_parallel_subclouds", "3"
    )
    assert added["max parallel subclouds"] == 3


def test_a_group_id_in_other_digits_is_not_an_id(workspace: Workspace) -> None:
    assert workspace.table("subcloud-group", "show", "2")["name"] == "First_10_Subclouds"
    for ref in ("\u0662", "\uff12", "2\n"):
        assert workspace.fail("subcloud-group", "show", ref) == "Subcloud Group not found"
        assert workspace.fail("prestage-strategy", "create", "--group", ref, *PASSWORD) == (
            "Subcloud Group not found"
        )


# --------------------------------------------------------------------------- the playbook


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"release": "24.09\n"}, "Specified release format is not supported."),
        ({"release": "\uff12\uff14.\uff10\uff19"}, "Specified release format is not supported."),
        ({"max_parallel_subclouds": "\u0663"}, "Invalid max_parallel_subclouds value '\u0663'"),
        ({"max_parallel_subclouds": "3.0"}, "Invalid max_parallel_subclouds value '3.0'"),
        ({"prestage_group": "\u0662"}, "Subcloud group \u0662 does not exist (prestage_group)"),
        ({"prestage_group": "Edge\n"}, "Invalid prestage_group value 'Edge\\n'"),
    ],
)
def test_the_plays_extra_vars_take_the_same_formats(
    play: Workspace, extra: dict[str, str], message: str
) -> None:
    result = playbook(play, "-e", f"sysadmin_password={SECRET}", "-e", json.dumps(extra))
    assert result.returncode != 0
    assert message in result.stdout, result.stdout[-3000:]
    assert not (play.state_dir / "strategy.json").exists()


# --------------------------------------------------------------------------- bounded YAML

NESTED_BOMB = {
    "a": "&a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]",
    **{
        f"{key}": f"&{key} [{', '.join([f'*{prev}'] * 10)}]"
        for prev, key in zip("abcdefg", "bcdefgh", strict=True)
    },
}


def _bomb_in_vars(ws: Workspace) -> None:
    """A billion laughs in the first subcloud's vars (10**8 strings once expanded)."""
    text = ws.registry.read_text()
    anchor = "  - id: 1\n"
    assert anchor in text
    lines = "".join(f"      {key}: {value}\n" for key, value in NESTED_BOMB.items())
    ws.registry.write_text(text.replace(anchor, anchor + "    vars:\n" + lines, 1))


def _ansible_inventory(ws: Workspace, config: Path) -> str:
    """ansible-inventory --list, failing as an AWX sync does; its error, on one line."""
    result = subprocess.run(
        [str(VENV_BIN / "ansible-inventory"), "-i", str(config), "--list"],
        capture_output=True, text=True, cwd=ws.root, timeout=60, check=False,
        env={**ws.env, "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true"},
    )  # fmt: skip
    assert result.returncode != 0, result.stdout[:2000]
    assert "Traceback" not in result.stderr
    return " ".join(result.stderr.split())


def test_an_alias_bomb_inside_a_subclouds_vars_is_refused(workspace: Workspace) -> None:
    _bomb_in_vars(workspace)
    error = workspace.fail("prestage-strategy", "create", *PASSWORD)
    assert error.startswith(f"Invalid subcloud registry {workspace.registry}:")
    assert "YAML aliases (*a) are not allowed" in error
    assert not (workspace.state_dir / "strategy.json").exists()
    # ansible-inventory (as apply and an AWX inventory sync) fails at once, saying why
    assert "YAML aliases (*a) are not allowed" in _ansible_inventory(workspace, workspace.config)


def test_an_alias_in_the_inventory_config_is_refused(workspace: Workspace) -> None:
    text = workspace.config.read_text()
    workspace.config.write_text(text + "x_defaults: &d {ansible_port: 22}\nx_copy: *d\n")
    error = _ansible_inventory(workspace, workspace.config)
    assert f"Invalid inventory config {workspace.config}:" in error
    assert "YAML aliases (*d) are not allowed" in error
    assert "YAML aliases (*d) are not allowed" in workspace.fail("subcloud", "list")


def test_a_50_mb_registry_is_refused_at_once(workspace: Workspace) -> None:
    with workspace.registry.open("ab") as handle:
        handle.truncate(50 * 1024 * 1024)  # sparse
    error = workspace.fail("subcloud", "list")
    assert error.startswith(f"Subcloud registry {workspace.registry} is larger than")
    assert "is larger than" in _ansible_inventory(workspace, workspace.config)


# --------------------------------------------------------------------------- the registry file


@pytest.mark.parametrize("text", ["", "\n\n", "# truncated?\n"])
def test_an_empty_registry_is_an_error_and_is_never_rewritten(
    workspace: Workspace, text: str
) -> None:
    workspace.registry.write_text(text)
    message = (
        f"Subcloud registry {workspace.registry} is empty (a registry without subclouds says "
        "'subclouds: []')"
    )
    assert workspace.fail("subcloud", "list") == message
    assert workspace.fail("subcloud-group", "add", "--name", "Edge9") == message
    assert workspace.registry.read_text() == text
    workspace.registry.write_text("subclouds: []\n")
    assert workspace.rows("subcloud", "list") == []


def test_group_ids_are_never_reused_after_a_delete(workspace: Workspace) -> None:
    assert workspace.table("subcloud-group", "add", "--name", "Edge9")["id"] == 4
    workspace.run("subcloud-group", "delete", "Edge9", check=True)
    assert workspace.table("subcloud-group", "add", "--name", "Edge10")["id"] == 5
    workspace.run("subcloud-group", "delete", "Edge10", check=True)
    workspace.run("subcloud-group", "delete", "Edge_Serial", check=False)  # it has subclouds
    assert yaml.safe_load(workspace.registry.read_text())["last_group_id"] == 5
    assert workspace.table("subcloud-group", "add", "--name", "Edge11")["id"] == 6


def test_editing_a_symlinked_registry_edits_its_target(workspace: Workspace) -> None:
    real = workspace.root / "shared" / "registry.yml"
    real.parent.mkdir()
    workspace.registry.rename(real)
    workspace.registry.symlink_to(real)
    note = f"Updated {real} (via symlink {workspace.registry})"
    added = workspace.run("subcloud-group", "add", "--name", "Edge9", "-f", "json", check=True)
    assert json.loads(added.stdout)["name"] == "Edge9"
    assert added.stderr == note + "\n"
    moved = workspace.run("subcloud", "update", "--group", "Edge9", "subcloud3", check=True)
    assert moved.stderr == note + "\n"
    updated = workspace.run("subcloud-group", "update", "Edge9", "--description", "d", check=True)
    assert updated.stderr == note + "\n"
    assert workspace.registry.is_symlink()
    assert workspace.registry.resolve() == real
    data = yaml.safe_load(real.read_text())
    assert any(g["name"] == "Edge9" for g in data["groups"])
    workspace.run("subcloud", "update", "--group", "Default", "subcloud3", check=True)
    deleted = workspace.run("subcloud-group", "delete", "Edge9", check=True)
    assert (deleted.stdout, deleted.stderr) == ("", note + "\n")
    assert workspace.registry.is_symlink()
    assert sorted(p.name for p in real.parent.iterdir()) == ["registry.yml"]
    # a registry that is no symlink: nothing said
    workspace.registry.unlink()
    real.rename(workspace.registry)
    assert workspace.run("subcloud-group", "add", "--name", "x1", check=True).stderr == ""


# --------------------------------------------------------------------------- -v


def test_verbose_prints_each_fact_once_without_library_noise(workspace: Workspace) -> None:
    _first_subcloud(workspace, management="unmanaged")
    result = workspace.run("-v", "prestage-strategy", "create", *PASSWORD, check=True)
    assert result.stderr.splitlines() == [
        "Excluding subcloud subcloud1 from the prestage strategy: Subcloud is not managed."
    ]
    workspace.run("prestage-strategy", "delete", check=True)
    quiet = workspace.run("prestage-strategy", "create", *PASSWORD, check=True)
    assert quiet.stderr == ""
