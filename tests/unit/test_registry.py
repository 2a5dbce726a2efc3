"""Registry loading and editing: validation, comments kept, atomic and locked writes."""

from __future__ import annotations

import multiprocessing
import os
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


@pytest.mark.parametrize("text", ["", "\n  \n", "# nothing yet\n", "---\n", "null\n", "~\n"])
def test_an_empty_file_is_an_error(tmp_path: Path, text: str) -> None:
    # an accidentally truncated registry must not read as "no subclouds"
    path = tmp_path / "registry.yml"
    path.write_text(text)
    with pytest.raises(PrestageError) as raised:
        reg.load_registry(str(path))
    assert str(raised.value) == (
        f"Subcloud registry {path} is empty (a registry without subclouds says 'subclouds: []')"
    )


def test_subclouds_empty_list_is_the_explicit_empty_registry() -> None:
    registry = reg.parse_registry("subclouds: []\n", "r.yml")
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


# --------------------------------------------------------------------------- formats (issue 15)

ONE_SUBCLOUD = """subclouds:
  - id: 1
    name: {name}
    oam_floating_address: 10.0.0.1
    software_version: {version}
"""


@pytest.mark.parametrize(
    ("name", "version", "field"),
    [
        ('"evil\\n"', '"22.12"', "subclouds[0].name"),
        ("sc1", '"22.12\\n"', "subclouds[0].software_version"),
        ("sc1", '"\uff12\uff12.\uff11\uff12"', "subclouds[0].software_version"),
        ("sc1", '"\u0662\u0662.\u0661\u0662"', "subclouds[0].software_version"),
        ("sc1", '"22.12.\u0663"', "subclouds[0].software_version"),
    ],
)
def test_names_and_versions_are_anchored_and_ascii(name: str, version: str, field: str) -> None:
    text = ONE_SUBCLOUD.format(name=name, version=version)
    with pytest.raises(PrestageError) as raised:
        reg.parse_registry(text, "r.yml")
    message = str(raised.value)
    assert message.startswith("Invalid subcloud registry r.yml:") and f"{field}: " in message
    assert "\n" not in message


def test_a_group_reference_in_non_ascii_digits_is_not_an_id() -> None:
    registry = reg.parse_registry("groups: [{id: 3, name: Edge}]\nsubclouds: []\n", "r.yml")
    assert registry.find_group("3") is not None
    assert registry.find_group("\u0663") is None  # int("\u0663") == 3
    assert registry.find_group("\uff13") is None
    assert registry.find_group(" 3") is None
    assert registry.find_group("3\n") is None


def test_group_names_with_control_characters_are_refused() -> None:
    assert reg.group_name_problem("edge\x1b") == "must not contain control characters"
    assert reg.group_name_problem("bell\x07") == "must not contain control characters"
    assert reg.group_name_problem("evil\n") == "must not contain white space"


# --------------------------------------------------------------------------- bounded YAML


NESTED_BOMB = """subclouds:
  - id: 1
    name: sc1
    oam_floating_address: 10.0.0.1
    software_version: "22.12"
    vars:
      a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
      b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
      c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
      d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
      e: [*d, *d, *d, *d, *d, *d, *d, *d, *d]
"""


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (NESTED_BOMB, 8),
        # a merge key is an alias too
        ("groups:\n  - &g {id: 2, name: a}\n  - {<<: *g, id: 3, name: b}\nsubclouds: []\n", 3),
        ("groups: &g [{id: 2, name: a}]\nsubclouds: *g\n", 2),
    ],
)
def test_yaml_aliases_are_refused_at_any_depth(tmp_path: Path, text: str, line: int) -> None:
    path = tmp_path / "registry.yml"
    path.write_text(text)
    with pytest.raises(PrestageError) as raised:
        reg.load_registry(str(path))
    assert str(raised.value).startswith(f"Invalid subcloud registry {path}:{line}: YAML aliases")


def test_too_many_yaml_nodes_are_refused_before_any_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ansible_collections.distcloud.prestage.plugins.plugin_utils import _yaml  # noqa: PLC0415

    def no_composing(*_args: object) -> None:
        raise AssertionError("the node tree was built")

    # the cost is in building nodes: the event count must stop the load before that starts
    monkeypatch.setattr(_yaml.Loader, "get_single_node", no_composing)
    path = tmp_path / "registry.yml"
    # well under the size limit, but more nodes than any registry has
    path.write_text("subclouds: [" + "0," * _yaml.MAX_NODES + "0]\n")
    assert path.stat().st_size < reg.MAX_REGISTRY_BYTES
    with pytest.raises(PrestageError) as raised:
        reg.load_registry(str(path))
    assert str(raised.value) == (
        f"Invalid subcloud registry {path}:1: more than {_yaml.MAX_NODES} YAML nodes"
    )


def test_a_huge_registry_is_refused_before_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ansible_collections.distcloud.prestage.plugins.plugin_utils import _yaml  # noqa: PLC0415

    path = tmp_path / "registry.yml"
    real_read = os.read

    def no_reading(fd: int, size: int) -> bytes:  # os.read is global: only this file's reads
        if os.readlink(f"/proc/self/fd/{fd}") == str(path):
            raise AssertionError("the file was read")
        return real_read(fd, size)

    monkeypatch.setattr(_yaml.os, "read", no_reading)
    with path.open("wb") as handle:  # sparse: 50 MB that take no disk space
        handle.truncate(50 * 1024 * 1024)
    with pytest.raises(PrestageError) as raised:
        reg.load_registry(str(path))
    assert str(raised.value) == (
        f"Subcloud registry {path} is larger than {reg.MAX_REGISTRY_BYTES} bytes"
    )


def test_the_inventory_config_refuses_aliases(tmp_path: Path) -> None:
    from ansible_collections.distcloud.prestage.plugins.plugin_utils import _config  # noqa: PLC0415

    path = tmp_path / "subclouds.yml"
    path.write_text(
        "plugin: distcloud.prestage.subclouds\nregistry: r.yml\nsystem_controller:\n"
        "  vars:\n    x: &x [1, 2]\n    y: [*x, *x]\n"
    )
    with pytest.raises(PrestageError) as raised:
        _config.load_config(str(path))
    assert str(raised.value).startswith(f"Invalid inventory config {path}:6: YAML aliases")


# --------------------------------------------------------------------------- group ids


def test_group_ids_are_never_reused(path: Path) -> None:
    first = reg.add_group(str(path), "Edge")
    second = reg.add_group(str(path), "Core")
    assert (first.id, second.id) == (2, 3)
    reg.delete_group(str(path), "Core")
    assert yaml.safe_load(path.read_text())[reg.LAST_GROUP_ID_KEY] == 3
    assert reg.load_registry(str(path)).last_group_id == 3
    assert reg.add_group(str(path), "Core2").id == 4
    reg.delete_group(str(path), "Core2")
    reg.delete_group(str(path), "Edge")
    assert reg.add_group(str(path), "Again").id == 5
    assert "# my registry" in path.read_text()


def test_the_last_group_id_key_is_optional_and_checked(path: Path) -> None:
    # absent: the highest id in the file (files written before the key existed)
    assert reg.load_registry(str(path)).last_group_id == 1
    registry = reg.parse_registry(
        "groups: [{id: 7, name: Edge}]\nsubclouds: []\nlast_group_id: 4\n", "r.yml"
    )
    assert registry.last_group_id == 7
    registry = reg.parse_registry("subclouds: []\nlast_group_id: 12\n", "r.yml")
    assert registry.last_group_id == 12
    for bad in ("0", "-1", "true", "'3'", "3.5"):
        with pytest.raises(PrestageError) as raised:
            reg.parse_registry(f"subclouds: []\nlast_group_id: {bad}\n", "r.yml")
        assert str(raised.value).startswith(
            "Invalid subcloud registry r.yml:2: last_group_id: must be a positive integer"
        )


def test_an_edit_of_an_empty_registry_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "registry.yml"
    path.write_text("")
    with pytest.raises(PrestageError, match="is empty"):
        reg.add_group(str(path), "Edge")
    assert path.read_bytes() == b""


# --------------------------------------------------------------------------- symlinks


def test_an_edit_follows_a_symlinked_registry(tmp_path: Path) -> None:
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    target = real_dir / "registry.yml"
    target.write_text(TEXT)
    middle = tmp_path / "middle.yml"
    middle.symlink_to(target)
    link = tmp_path / "registry.yml"
    link.symlink_to(middle)  # a chain of links: the last target is edited
    reg.add_group(str(link), "Edge")
    assert link.is_symlink() and middle.is_symlink()
    assert [g.name for g in reg.load_registry(str(target)).groups] == ["Default", "Edge"]
    assert "# my registry" in target.read_text()
    assert reg.edit_note(str(link)) == f"Updated {target} (via symlink {link})"
    assert reg.edit_note(str(target)) is None
    assert sorted(p.name for p in real_dir.iterdir()) == ["registry.yml"]
