"""Registry loading and editing: validation, comments kept, atomic and locked writes."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
import yaml

from ansible_collections.distcloud.prestage.plugins.plugin_utils import _registry as reg
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError

TEXT = """# my registry
groups:
  - id: 1
    name: Default
subclouds:
  # the first site
  - id: 1
    name: sc1
    oam_floating_address: 10.0.0.1
    software_version: "22.12"
"""


@pytest.fixture
def path(tmp_path: Path) -> Path:
    target = tmp_path / "registry.yml"
    target.write_text(TEXT)
    return target


def test_defaults_and_implicit_default_group() -> None:
    registry = reg.parse_registry(
        'subclouds: [{id: 3, name: x, oam_floating_address: "::1", software_version: "24.09"}]',
        "r.yml",
    )
    assert [g.name for g in registry.groups] == ["Default"]
    sub = registry.subcloud("x")
    assert (sub.management, sub.availability, sub.deploy_status, sub.system_mode) == (
        "managed", "online", "complete", "simplex",
    )  # fmt: skip
    assert registry.group_of(sub).name == "Default"


def test_empty_file_is_an_empty_registry() -> None:
    registry = reg.parse_registry("", "r.yml")
    assert registry.subclouds == []
    assert registry.groups[0].name == "Default"


def test_edit_keeps_comments_and_validates(path: Path) -> None:
    group = reg.add_group(str(path), "Edge", max_parallel_subclouds=4)
    assert (group.id, group.max_parallel_subclouds) == (2, 4)
    reg.move_subcloud(str(path), "sc1", "Edge")
    text = path.read_text()
    assert "# my registry" in text
    assert "# the first site" in text
    assert yaml.safe_load(text)["subclouds"][0]["group"] == "Edge"


def test_a_failed_edit_changes_nothing(path: Path) -> None:
    before = path.read_bytes()
    with pytest.raises(PrestageError, match="Subcloud Group not found"):
        reg.move_subcloud(str(path), "sc1", "Nope")
    with pytest.raises(PrestageError, match="Invalid group name"):
        reg.add_group(str(path), "a|b")
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["registry.yml"]


def _add(args: tuple[str, str]) -> str:
    path, name = args
    try:
        reg.add_group(path, name)
        return "ok"
    except PrestageError as exc:
        return str(exc)


def test_concurrent_edits_are_serialised(path: Path) -> None:
    names = [f"g{i}" for i in range(12)]
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.map(_add, [(str(path), n) for n in names])
    assert results == ["ok"] * 12
    groups = reg.load_registry(str(path)).groups
    assert sorted(g.name for g in groups[1:]) == sorted(names)
    assert len({g.id for g in groups}) == 13


def test_group_name_rule() -> None:
    assert reg.group_name_problem("prestage-retry") is None
    assert reg.group_name_problem("all") == "'all' is reserved by Ansible"
    # the group of the system controller host (the inventory plugin's)
    assert reg.group_name_problem("system_controller") == (
        "'system_controller' is reserved by Ansible"
    )
    assert reg.group_name_problem("a b") == "must not contain white space"
