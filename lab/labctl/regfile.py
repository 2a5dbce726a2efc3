"""The subcloud registry (registry.yml) and the inventory plugin config (subclouds.yml) the lab
writes. Edits take the control plane's lock (an flock on registry.yml itself) and replace the
file atomically; a field edit changes only that scalar's text, so comments survive."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from labctl import dcmanager, stxcontent
from labctl.paths import SC_ADDRESS, SC_NAME, Paths, subcloud_address, subcloud_index, subcloud_name
from labctl.util import LabError, atomic_write, locked_in_place

GROUPS: list[dict[str, Any]] = [
    {"id": 1, "name": "Default", "description": "Default Subcloud Group",
     "update_apply_type": "parallel", "max_parallel_subclouds": 2},
    {"id": 2, "name": "First_10_Subclouds", "description": "Lab subclouds 1 to 10",
     "update_apply_type": "parallel", "max_parallel_subclouds": 10},
    {"id": 3, "name": "Edge_Serial", "description": "Lab subclouds prestaged one at a time",
     "update_apply_type": "serial", "max_parallel_subclouds": 1},
]  # fmt: skip

SSH_ARGS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
HEADER = (
    "# Subcloud registry of the dcprestage lab (written by lab/lab up; yours to edit while the\n"
    "# lab runs). Lab rules: subclouds 1-10 in First_10_Subclouds, then alternating Default /\n"
    "# Edge_Serial; every 4th runs the release before the system controller's (others the\n"
    "# system controller's); every 5th is duplex.\n"
)


def default_release(index: int, sc_release: str = stxcontent.SC_RELEASE) -> str:
    """A lab subcloud's release: the system controller's, every 4th the previous one."""
    previous, own = stxcontent.subcloud_releases(sc_release)
    return previous if index % 4 == 0 else own


def default_entry(index: int, sc_release: str = stxcontent.SC_RELEASE) -> dict[str, Any]:
    group = "First_10_Subclouds" if index <= 10 else "Default" if index % 2 else "Edge_Serial"
    return {
        "id": index,
        "name": subcloud_name(index),
        "group": group,
        "oam_floating_address": subcloud_address(index),
        "management": "managed",
        "availability": "online",
        "deploy_status": "complete",
        "software_version": default_release(index, sc_release),
        "system_mode": "duplex" if index % 5 == 0 else "simplex",
        "sync": "in-sync",
        "backup_status": "complete",
        "vars": {"ansible_ssh_common_args": SSH_ARGS},
    }


@contextlib.contextmanager
def registry_lock(paths: Paths) -> Iterator[None]:
    with locked_in_place(paths.registry_file):
        yield


def load(paths: Paths) -> dict[str, Any]:
    try:
        data = yaml.safe_load(paths.registry_file.read_text())
    except FileNotFoundError:
        return {}
    except yaml.YAMLError as exc:
        raise LabError(f"cannot parse {paths.registry_file}: {exc}") from None
    return data if isinstance(data, dict) else {}


def entries(paths: Paths) -> dict[str, dict[str, Any]]:
    """name -> registry entry for every subcloud in the registry."""
    return {
        str(item["name"]): item
        for item in load(paths).get("subclouds") or []
        if isinstance(item, dict) and "name" in item
    }


def _dump(data: dict[str, Any]) -> str:
    return HEADER + yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=4096)


def sync(
    paths: Paths,
    count: int,
    sc_release: str = stxcontent.SC_RELEASE,
    *,
    rerelease: bool = False,
) -> dict[str, dict[str, Any]]:
    """Make the registry hold subcloud1..subcloud<count>: keep existing entries as they are (the
    user's edits and registry faults stay), add missing ones with the lab rules for a
    sc_release system controller, drop lab subclouds above count. rerelease (the system
    controller's release changed): every lab subcloud's software_version follows the rule again.
    The file is rewritten only when something changed."""
    with registry_lock(paths):
        data = load(paths)
        changed = not data
        groups = data.setdefault("groups", [])
        subclouds = data.setdefault("subclouds", [])
        names = {g.get("name") for g in groups if isinstance(g, dict)}
        for group in GROUPS:
            if group["name"] not in names:
                used = {g.get("id") for g in groups if isinstance(g, dict)}
                entry = dict(group)
                while entry["id"] in used:
                    entry["id"] += 1
                groups.append(entry)
                changed = True
        kept = []
        for item in subclouds:
            try:
                index = subcloud_index(str(item.get("name")))
            except ValueError:
                kept.append(item)  # not a lab name: leave it alone
                continue
            if index > count:
                changed = True
                continue
            wanted = default_release(index, sc_release)
            if rerelease and str(item.get("software_version")) != wanted:
                item["software_version"] = wanted
                changed = True
            kept.append(item)
        present = {str(item.get("name")) for item in kept}
        for index in range(1, count + 1):
            if subcloud_name(index) not in present:
                kept.append(default_entry(index, sc_release))
                changed = True
        kept.sort(key=lambda item: item.get("id", 0))
        data["subclouds"] = kept
        if changed:
            atomic_write(paths.registry_file, _dump(data))
    return entries(paths)


def set_field(paths: Paths, name: str, field: str, value: str) -> str | None:
    """Set one subcloud's scalar field; returns the previous value. Only the scalar's text
    changes (comments and layout stay) unless the field is missing, then the file is re-dumped."""
    with registry_lock(paths):
        text = paths.registry_file.read_text()
        root = yaml.compose(text)
        node = _value_node(root, name, field)
        if node is not None:
            quote = node.style if node.style in ("'", '"') else '"'
            quoted = f"{quote}{value}{quote}" if field == "software_version" else value
            previous = str(node.value)
            start, end = node.start_mark.index, node.end_mark.index
            new_text = text[:start] + quoted + text[end:]
        else:
            data = load(paths)
            item = next((s for s in data.get("subclouds") or [] if s.get("name") == name), None)
            if item is None:
                raise LabError(f"{name} is not in {paths.registry_file}")
            previous = item.get(field)
            item[field] = value
            new_text = _dump(data)
        check = yaml.safe_load(new_text)
        item = next(s for s in check["subclouds"] if s.get("name") == name)
        if str(item.get(field)) != value:
            raise LabError(f"could not set {name}.{field} in {paths.registry_file}")
        atomic_write(paths.registry_file, new_text)
        # the system controller's dcmanager sees the same (registry faults and their undo)
        dcmanager.set_subcloud_field(paths.dcmanager_db, name, field, value)
        return None if previous is None else str(previous)


def _value_node(root: yaml.Node | None, name: str, field: str) -> yaml.ScalarNode | None:
    if not isinstance(root, yaml.MappingNode):
        return None
    for key, value in root.value:
        if key.value != "subclouds" or not isinstance(value, yaml.SequenceNode):
            continue
        for item in value.value:
            if not isinstance(item, yaml.MappingNode):
                continue
            fields = {k.value: v for k, v in item.value}
            entry_name = fields.get("name")
            if isinstance(entry_name, yaml.ScalarNode) and entry_name.value == name:
                node = fields.get(field)
                return node if isinstance(node, yaml.ScalarNode) else None
    return None


def _system_controller(paths: Paths) -> dict[str, Any]:
    """The inventory config's system_controller block: a host of its own, its own SSH key."""
    return {
        "host": SC_NAME,
        "vars": {
            "ansible_host": SC_ADDRESS,
            "ansible_user": "sysadmin",
            "ansible_ssh_private_key_file": str(paths.controller_key),
            "ansible_ssh_common_args": SSH_ARGS,
            # StarlingX's python3 (Python 3.9): no interpreter discovery
            "ansible_python_interpreter": "/usr/bin/python3",
        },
    }


def write_inventory_config(paths: Paths) -> None:
    """The distcloud.prestage.subclouds inventory plugin config for the lab: the registry, and
    the system controller as a host of its own, reached with its own SSH key."""
    config = {
        "plugin": "distcloud.prestage.subclouds",
        "registry": paths.registry_file.name,
        "system_controller": _system_controller(paths),
    }
    text = "# Inventory of the dcprestage lab (written by lab/lab up).\n" + yaml.safe_dump(
        config, sort_keys=False, default_flow_style=False, width=4096
    )
    path: Path = paths.inventory_config
    if not path.exists() or path.read_text() != text:
        atomic_write(path, text)
    # the system controller's own become password, as an operator keeps it: host_vars beside the
    # inventory (a vault in real life; 0600 here)
    become = yaml.safe_dump({"ansible_become_password": paths.sc_sysadmin_password.read_text()
                             .strip()})  # fmt: skip
    atomic_write(paths.inventory_dir / "host_vars" / f"{SC_NAME}.yml", become, 0o600)


def write_password_inventory(paths: Paths) -> None:
    """secrets/subcloud-passwords.yml (0600): an inventory source giving every lab subcloud its
    ansible_password and ansible_become_password (`-i <inventory> -i <this>`: molecule and
    ad-hoc runs); host variables of the subclouds only, so they never reach the system
    controller, whose credentials are its own."""
    password = paths.sysadmin_password.read_text().strip()
    hosts = {
        name: {"ansible_password": password, "ansible_become_password": password}
        for name in entries(paths)
    }
    atomic_write(
        paths.secrets / "subcloud-passwords.yml", yaml.safe_dump({"all": {"hosts": hosts}}), 0o600
    )


def write_dcmanager_inventory_config(paths: Paths) -> None:
    """dcmanager-subclouds.yml: the lab's inventory with the dcmanager source (the system
    controller's Keystone + dcmanager API, the lab CA; the password from $OS_PASSWORD, see
    secrets/keystone_admin_password) and the same system controller block. dcmanager knows no
    per-subcloud SSH options: the lab's come from compose."""
    config = {
        "plugin": "distcloud.prestage.subclouds",
        "dcmanager": dcmanager.inventory_settings(paths),
        "system_controller": _system_controller(paths),
        "compose": {"ansible_ssh_common_args": repr(SSH_ARGS)},
    }
    text = (
        "# Inventory of the dcprestage lab from its system controller's dcmanager API (written\n"
        "# by lab/lab up). export OS_PASSWORD=$(cat <lab>/secrets/keystone_admin_password)\n"
    ) + yaml.safe_dump(config, sort_keys=False, default_flow_style=False, width=4096)
    path: Path = paths.dcmanager_inventory_config
    if not path.exists() or path.read_text() != text:
        atomic_write(path, text)
