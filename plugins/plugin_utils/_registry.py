# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""The subcloud registry: a user-owned YAML file of subclouds and subcloud groups.

It plays the part of the dcmanager database. Loading validates every field and reports the
first problem as one line naming the file, the line and the field; the YAML itself is loaded
bounded (plugin_utils/_yaml.py: a size limit, no aliases). An empty file is an error (an
accidentally truncated registry must not read as "no subclouds"); `subclouds: []` is the explicit
empty registry. Edits (group add/update/delete, moving a subcloud to a group) go through
`edit_registry`, which keeps the user's comments, re-validates the result and replaces the file
atomically under a lock (the symlink's target when the registry is a symlink).
"""

from __future__ import annotations

import io
import ipaddress
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

from ansible_collections.distcloud.prestage.plugins.module_utils._formats import (
    decimal_int,
    is_software_version,
    is_subcloud_name,
)
from ansible_collections.distcloud.prestage.plugins.module_utils._release import release_key
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import (
    NotFoundError,
    PrestageError,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._files import (
    atomic_write,
    locked_file,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._yaml import compose, read_bounded

try:  # only edits need ruamel.yaml (the CLI has it); plugins that just read the registry do not
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.error import YAMLError
except ImportError:  # pragma: no cover - e.g. ansible-test's import sanity test
    HAS_RUAMEL_YAML = False
else:
    HAS_RUAMEL_YAML = True

DEFAULT_GROUP_ID = 1
DEFAULT_GROUP_NAME = "Default"
DEFAULT_GROUP_DESCRIPTION = "Default Subcloud Group"
GROUP_DEFAULT_DESCRIPTION = "No description provided"
APPLY_TYPES = ("parallel", "serial")
GROUP_DEFAULT_APPLY_TYPE = "parallel"
GROUP_DEFAULT_MAX_PARALLEL = 2
GROUP_MAX_PARALLEL_RANGE = (1, 5000)
MAX_GROUP_NAME_LEN = 255
MAX_GROUP_DESCRIPTION_LEN = 255
# Characters dcmanager refuses in group names (they would read as a pattern).
_GROUP_NAME_FORBIDDEN = set(".*+?|()[]{}^$")
# Ansible's own group names, and the system controller's group (plugin_utils/_config.py
# SC_GROUP); a subcloud group of that name would merge into them.
ANSIBLE_RESERVED_GROUPS = ("all", "ungrouped", "system_controller")

MANAGEMENT_STATES = ("managed", "unmanaged")
AVAILABILITY_STATES = ("online", "offline")
SYSTEM_MODES = ("simplex", "duplex")
# A 5,000-subcloud registry is about 1 MB; the largest one loads in a few seconds.
MAX_REGISTRY_BYTES = 16 * 1024 * 1024
# The top-level key keeping the highest subcloud group id ever given (dcmanager never reuses a
# deleted group's id); absent, it is the highest id in the file.
LAST_GROUP_ID_KEY = "last_group_id"
_TOP_KEYS = ("groups", "subclouds", LAST_GROUP_ID_KEY)

# dcmanager's messages for group requests, kept word for word.
MSG_GROUP_NOT_FOUND = "Subcloud Group not found"
MSG_INVALID_GROUP_NAME = "Invalid group name"
MSG_INVALID_GROUP_DESCRIPTION = "Invalid group description"
MSG_INVALID_APPLY_TYPE = "Invalid group update_apply_type"
MSG_INVALID_MAX_PARALLEL = "Invalid group max_parallel_subclouds"
MSG_GROUP_EXISTS = "A subcloud group with this name already exists"
MSG_DEFAULT_RENAME = "Default group name cannot be changed"
MSG_DEFAULT_DELETE = "Default Subcloud Group may not be deleted"
MSG_GROUP_NOT_EMPTY = "Subcloud Group not empty"


@dataclass
class Group:
    id: int
    name: str
    description: str = GROUP_DEFAULT_DESCRIPTION
    update_apply_type: str = GROUP_DEFAULT_APPLY_TYPE
    max_parallel_subclouds: int = GROUP_DEFAULT_MAX_PARALLEL


@dataclass
class Subcloud:
    id: int
    name: str
    group_id: int
    oam_floating_address: str
    software_version: str
    management: str = "managed"
    availability: str = "online"
    deploy_status: str = "complete"
    system_mode: str = "simplex"
    sync: str = "unknown"
    backup_status: str | None = None
    vars: dict[str, Any] = field(default_factory=dict)
    # What dcmanager says of the subcloud's prestage (the dcmanager source only; ours is kept in
    # the state dir): its `prestage-status` and `prestage-versions`.
    dcmanager_prestage_status: str | None = None
    dcmanager_prestage_versions: str | None = None


@dataclass
class Registry:
    path: str
    groups: list[Group]
    subclouds: list[Subcloud]
    # the highest group id ever given: a new group gets the next one
    last_group_id: int = DEFAULT_GROUP_ID

    def __post_init__(self) -> None:
        self._groups_by_id = {g.id: g for g in self.groups}
        self._groups_by_name = {g.name: g for g in self.groups}
        self._subclouds_by_name = {s.name: s for s in self.subclouds}

    def group(self, ref: str | int) -> Group:
        """A group by name or id (dcmanager accepts either); NotFoundError otherwise."""
        found = self.find_group(ref)
        if found is None:
            raise NotFoundError(MSG_GROUP_NOT_FOUND)
        return found

    def find_group(self, ref: str | int) -> Group | None:
        if isinstance(ref, int):
            return self._groups_by_id.get(ref)
        if ref in self._groups_by_name:
            return self._groups_by_name[ref]
        number = decimal_int(ref)
        return self._groups_by_id.get(number) if number is not None else None

    def subcloud(self, name: str) -> Subcloud:
        found = self._subclouds_by_name.get(name)
        if found is None:
            raise NotFoundError(f"Subcloud {name} does not exist")
        return found

    def find_subcloud(self, name: str) -> Subcloud | None:
        return self._subclouds_by_name.get(name)

    def group_of(self, subcloud: Subcloud) -> Group:
        return self._groups_by_id[subcloud.group_id]

    def members(self, group: Group) -> list[Subcloud]:
        return [s for s in self.subclouds if s.group_id == group.id]


# --------------------------------------------------------------------------- group rules


def group_name_problem(name: Any) -> str | None:  # noqa: PLR0911 - one return per naming rule
    """Why name cannot be a (new) group name, or None. The same rule for files and commands."""
    if not isinstance(name, str) or not name.strip():
        return "must be a non-empty string"
    if not _is_utf8(name):
        return _NOT_UTF8
    if name.isdigit():
        return "must not be all digits"
    if name.lower() == DEFAULT_GROUP_NAME.lower():
        return f"'{DEFAULT_GROUP_NAME}' is reserved"
    if name.lower() in ANSIBLE_RESERVED_GROUPS:
        return f"'{name}' is reserved by Ansible"
    if len(name) > MAX_GROUP_NAME_LEN:
        return f"must be at most {MAX_GROUP_NAME_LEN} characters"
    bad = sorted(_GROUP_NAME_FORBIDDEN.intersection(name))
    if bad:
        return "must not contain any of " + "".join(bad)
    if any(ch.isspace() for ch in name):
        return "must not contain white space"
    if not name.isprintable():
        return "must not contain control characters"
    return None


def description_problem(description: Any) -> str | None:
    if not isinstance(description, str) or not description:
        return "must be a non-empty string"
    if not _is_utf8(description):
        return _NOT_UTF8
    if len(description) > MAX_GROUP_DESCRIPTION_LEN:
        return f"must be at most {MAX_GROUP_DESCRIPTION_LEN} characters"
    return None


# A command line argument with bytes that are not UTF-8 reaches Python as lone surrogates.
_NOT_UTF8 = "must be UTF-8 text"


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def apply_type_problem(value: Any) -> str | None:
    return None if value in APPLY_TYPES else "must be one of parallel, serial"


def group_max_parallel_problem(value: Any) -> str | None:
    low, high = GROUP_MAX_PARALLEL_RANGE
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return f"must be an integer between {low} and {high}"
    return None


# --------------------------------------------------------------------------- loading


class _Invalid(Exception):
    """A validation failure at a path inside the document (resolved to a line later)."""

    def __init__(self, path: tuple[Any, ...], message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.message = message
        self.line = line


def load_registry(path: str) -> Registry:
    """Read and validate the registry at path; PrestageError (one line) on any problem."""
    text = read_bounded(path, MAX_REGISTRY_BYTES, "Subcloud registry")
    if text is None:
        raise PrestageError(f"Subcloud registry {path} does not exist")
    return parse_registry(text, path)


def parse_registry(text: str, path: str) -> Registry:
    node, data = compose(text, path, "subcloud registry")
    if data is None:
        raise PrestageError(
            f"Subcloud registry {path} is empty (a registry without subclouds says 'subclouds: []')"
        )
    try:
        _check_duplicate_keys(node)
        return _build(data, path)
    except _Invalid as exc:
        line = exc.line or _line_of(node, exc.path)
        where = f"{path}:{line}" if line else path
        label = _path_label(exc.path)
        raise PrestageError(f"Invalid subcloud registry {where}: {label}{exc.message}") from None


def _check_duplicate_keys(
    node: yaml.Node | None, path: tuple[Any, ...] = (), depth: int = 0
) -> None:
    # PyYAML keeps the last of duplicate keys silently; a registry must not hide such an edit.
    if depth > 3:
        return
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                raise _Invalid((*path, key), "duplicate key", key_node.start_mark.line + 1)
            seen.add(key)
            _check_duplicate_keys(value_node, (*path, key), depth + 1)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _check_duplicate_keys(item, (*path, index), depth + 1)


def _line_of(node: yaml.Node | None, path: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest node along path that exists."""
    line = node.start_mark.line + 1 if node is not None else None
    for step in path:
        child = None
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == step:
                    child = value_node
                    line = key_node.start_mark.line + 1
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(step, int)
            and 0 <= step < len(node.value)
        ):
            child = node.value[step]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


def _path_label(path: tuple[Any, ...]) -> str:
    label = ""
    for step in path:
        label += f"[{step}]" if isinstance(step, int) else (f".{step}" if label else str(step))
    return f"{label}: " if label else ""


_GROUP_KEYS = {"id", "name", "description", "update_apply_type", "max_parallel_subclouds"}
_SUBCLOUD_KEYS = {
    "id", "name", "group", "oam_floating_address", "management", "availability",
    "deploy_status", "software_version", "system_mode", "sync", "backup_status", "vars",
}  # fmt: skip


def _build(data: Any, path: str) -> Registry:
    if not isinstance(data, dict):
        raise _Invalid((), "the document must be a mapping with 'groups' and 'subclouds'")
    unknown = sorted(set(map(str, data)) - set(_TOP_KEYS))
    if unknown:
        raise _Invalid(
            (unknown[0],), f"unknown key (expected 'groups', 'subclouds' and '{LAST_GROUP_ID_KEY}')"
        )
    raw_groups = _list_of(data, "groups")
    raw_subclouds = _list_of(data, "subclouds")

    groups = [_group(item, ("groups", i)) for i, item in enumerate(raw_groups)]
    _unique(groups, "id", "groups")
    _unique(groups, "name", "groups")
    default = next((g for g in groups if g.id == DEFAULT_GROUP_ID), None)
    if default is None:
        groups.append(Group(DEFAULT_GROUP_ID, DEFAULT_GROUP_NAME, DEFAULT_GROUP_DESCRIPTION))
    elif default.name != DEFAULT_GROUP_NAME:
        index = groups.index(default)
        raise _Invalid(("groups", index, "name"), f"id 1 must be named '{DEFAULT_GROUP_NAME}'")
    groups.sort(key=lambda g: g.id)
    by_name = {g.name: g for g in groups}
    by_id = {g.id: g for g in groups}

    subclouds = [
        _subcloud(item, ("subclouds", i), by_name, by_id) for i, item in enumerate(raw_subclouds)
    ]
    _unique(subclouds, "id", "subclouds")
    _unique(subclouds, "name", "subclouds")
    _unique(subclouds, "oam_floating_address", "subclouds")
    subclouds.sort(key=lambda s: s.id)
    last = data.get(LAST_GROUP_ID_KEY)
    if last is not None and (isinstance(last, bool) or not isinstance(last, int) or last < 1):
        raise _Invalid((LAST_GROUP_ID_KEY,), f"must be a positive integer (got {last!r})")
    last_group_id = max([last or DEFAULT_GROUP_ID, *(g.id for g in groups)])
    return Registry(path=path, groups=groups, subclouds=subclouds, last_group_id=last_group_id)


def _list_of(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Invalid((key,), "must be a list")
    return value


def _unique(items: Iterable[Any], attr: str, section: str) -> None:
    seen: dict[Any, int] = {}
    for index, item in enumerate(items):
        value = getattr(item, attr)
        if value in seen:
            raise _Invalid((section, index, attr), f"duplicate {attr} {value!r}")
        seen[value] = index


def _mapping(
    item: Any, where: tuple[Any, ...], allowed: set[str], required: Iterable[str]
) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise _Invalid(where, "must be a mapping")
    for key in item:
        if key not in allowed:
            raise _Invalid((*where, key), "unknown field")
    for key in required:
        if item.get(key) is None:
            raise _Invalid(where, f"missing required field '{key}'")
    return item


def _int_id(item: dict[str, Any], where: tuple[Any, ...]) -> int:
    value = item["id"]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _Invalid((*where, "id"), "must be a positive integer")
    return value


def _str(item: dict[str, Any], key: str, where: tuple[Any, ...], default: str) -> str:
    value = item.get(key, default)
    if not isinstance(value, str):
        raise _Invalid((*where, key), f"must be a string (got {value!r})")
    return value


def _choice(
    item: dict[str, Any], key: str, where: tuple[Any, ...], choices: tuple[str, ...]
) -> str:
    value = item.get(key, choices[0])
    if value not in choices:
        raise _Invalid((*where, key), f"must be one of {', '.join(choices)} (got {value!r})")
    return str(value)


def _group(item: Any, where: tuple[Any, ...]) -> Group:
    item = _mapping(item, where, _GROUP_KEYS, ("id", "name"))
    group_id = _int_id(item, where)
    name = item["name"]
    if group_id == DEFAULT_GROUP_ID:
        if name != DEFAULT_GROUP_NAME:
            raise _Invalid((*where, "name"), f"id 1 must be named '{DEFAULT_GROUP_NAME}'")
    else:
        problem = group_name_problem(name)
        if problem:
            raise _Invalid((*where, "name"), problem)
    description = item.get("description", GROUP_DEFAULT_DESCRIPTION)
    problem = description_problem(description)
    if problem:
        raise _Invalid((*where, "description"), problem)
    apply_type = item.get("update_apply_type", GROUP_DEFAULT_APPLY_TYPE)
    problem = apply_type_problem(apply_type)
    if problem:
        raise _Invalid((*where, "update_apply_type"), f"{problem} (got {apply_type!r})")
    max_parallel = item.get("max_parallel_subclouds", GROUP_DEFAULT_MAX_PARALLEL)
    problem = group_max_parallel_problem(max_parallel)
    if problem:
        raise _Invalid((*where, "max_parallel_subclouds"), f"{problem} (got {max_parallel!r})")
    return Group(group_id, name, description, apply_type, max_parallel)


def _subcloud(
    item: Any, where: tuple[Any, ...], by_name: dict[str, Group], by_id: dict[int, Group]
) -> Subcloud:
    required = ("id", "name", "oam_floating_address", "software_version")
    item = _mapping(item, where, _SUBCLOUD_KEYS, required)
    subcloud_id = _int_id(item, where)
    name = item["name"]
    if not is_subcloud_name(name):
        raise _Invalid((*where, "name"), f"must be letters, digits, '.', '_' or '-' (got {name!r})")
    group_ref = item.get("group", DEFAULT_GROUP_NAME)
    group = (
        by_id.get(group_ref)
        if isinstance(group_ref, int) and not isinstance(group_ref, bool)
        else by_name.get(group_ref)
        if isinstance(group_ref, str)
        else None
    )
    if group is None:
        raise _Invalid((*where, "group"), f"no subcloud group {group_ref!r}")
    address = item["oam_floating_address"]
    try:
        address = str(ipaddress.ip_address(address))
    except ValueError:
        problem = f"not an IP address: {address!r}"
        raise _Invalid((*where, "oam_floating_address"), problem) from None
    version = item["software_version"]
    if isinstance(version, float):  # an unquoted 24.10 reads as 24.1: refuse rather than guess
        raise _Invalid((*where, "software_version"), 'must be quoted, e.g. "24.09"')
    if not is_software_version(version):
        raise _Invalid((*where, "software_version"), f"must look like MM.mm (got {version!r})")
    host_vars = item.get("vars") or {}
    if not isinstance(host_vars, dict) or not all(isinstance(k, str) for k in host_vars):
        raise _Invalid((*where, "vars"), "must be a mapping of variable names to values")
    backup_status = item.get("backup_status")
    if backup_status is not None and not isinstance(backup_status, str):
        raise _Invalid((*where, "backup_status"), f"must be a string (got {backup_status!r})")
    return Subcloud(
        id=subcloud_id,
        name=name,
        group_id=group.id,
        oam_floating_address=address,
        software_version=version,
        management=_choice(item, "management", where, MANAGEMENT_STATES),
        availability=_choice(item, "availability", where, AVAILABILITY_STATES),
        deploy_status=_str(item, "deploy_status", where, "complete"),
        system_mode=_choice(item, "system_mode", where, SYSTEM_MODES),
        sync=_str(item, "sync", where, "unknown"),
        backup_status=backup_status,
        vars=host_vars,
    )


def sorted_by_release(versions: Iterable[str]) -> list[str]:
    return sorted(versions, key=release_key)


# --------------------------------------------------------------------------- editing


def edit_registry(path: str, change: Callable[[Any, Registry], None]) -> Registry:
    """Apply change(document, current registry) to the file at path and return the new registry.

    The document is a comment-preserving round-trip mapping; change mutates it or raises
    PrestageError. The result is validated before it replaces the file, so an edit can never leave
    an invalid or half-written registry behind.
    """
    if not HAS_RUAMEL_YAML:
        raise PrestageError("Editing the subcloud registry needs the Python package ruamel.yaml")
    load_registry(path)  # a missing, empty or invalid registry fails before anything else
    # A symlinked registry: the file it points to is locked and replaced, the link stays.
    target = os.path.realpath(path)
    with locked_file(target):
        text = read_bounded(target, MAX_REGISTRY_BYTES, "Subcloud registry")
        if text is None:
            raise PrestageError(f"Subcloud registry {path} does not exist")
        current = parse_registry(text, path)
        yaml_rt = YAML(typ="rt")
        yaml_rt.preserve_quotes = True
        yaml_rt.indent(mapping=2, sequence=4, offset=2)
        yaml_rt.width = 4096
        try:
            document = yaml_rt.load(text)
        except YAMLError as exc:  # pragma: no cover - load_registry accepted it already
            raise PrestageError(f"Invalid subcloud registry {path}: {exc}") from None
        if document is None:
            document = CommentedMap()
        change(document, current)
        out = io.StringIO()
        yaml_rt.dump(document, out)
        new_text = out.getvalue()
        updated = parse_registry(new_text, path)
        try:
            mode = os.stat(target).st_mode & 0o7777
        except OSError:
            mode = 0o644
        atomic_write(target, new_text, mode)
        return updated


def edit_note(path: str) -> str | None:
    """What an edit of the registry at path says when path is a symlink (the target changed)."""
    if not os.path.islink(path):
        return None
    return f"Updated {os.path.realpath(path)} (via symlink {path})"


def group_entries(document: Any) -> Any:
    """The 'groups' list of a round-trip document, created if missing (with Default)."""
    groups = document.get("groups")
    if groups is None:
        groups = CommentedSeq()
        document.insert(0, "groups", groups)
    if not any(isinstance(g, dict) and g.get("id") == DEFAULT_GROUP_ID for g in groups):
        default = CommentedMap()
        default["id"] = DEFAULT_GROUP_ID
        default["name"] = DEFAULT_GROUP_NAME
        default["description"] = DEFAULT_GROUP_DESCRIPTION
        default["update_apply_type"] = GROUP_DEFAULT_APPLY_TYPE
        default["max_parallel_subclouds"] = GROUP_DEFAULT_MAX_PARALLEL
        groups.insert(0, default)
    return groups


def _set_last_group_id(document: Any, value: int) -> None:
    """Keep the highest group id given in the file, next to the groups (added after them)."""
    if LAST_GROUP_ID_KEY in document:
        document[LAST_GROUP_ID_KEY] = value
    else:
        keys = list(document)
        after = keys.index("groups") + 1 if "groups" in keys else len(keys)
        document.insert(after, LAST_GROUP_ID_KEY, value)


def find_entry(entries: Any, key: str, value: Any) -> Any:
    for entry in entries or []:
        if isinstance(entry, dict) and entry.get(key) == value:
            return entry
    return None


# --------------------------------------------------------------------------- group commands


def new_group_fields(
    description: str | None, update_apply_type: str | None, max_parallel_subclouds: int | None
) -> tuple[str, str, int]:
    """A new group's fields, dcmanager's defaults for those not given (either source)."""
    return (
        GROUP_DEFAULT_DESCRIPTION if description is None else description,
        update_apply_type or GROUP_DEFAULT_APPLY_TYPE,
        GROUP_DEFAULT_MAX_PARALLEL if max_parallel_subclouds is None else max_parallel_subclouds,
    )


def add_group(
    path: str,
    name: str,
    *,
    description: str | None = None,
    update_apply_type: str | None = None,
    max_parallel_subclouds: int | None = None,
) -> Group:
    """subcloud-group add: dcmanager's checks in dcmanager's order, then append to the file."""
    description, update_apply_type, max_parallel_subclouds = new_group_fields(
        description, update_apply_type, max_parallel_subclouds
    )
    _check_group_fields(name, description, update_apply_type, max_parallel_subclouds)
    created: dict[str, Group] = {}

    def change(document: Any, current: Registry) -> None:
        if any(g.name.lower() == name.lower() for g in current.groups):
            raise PrestageError(MSG_GROUP_EXISTS)
        entry = CommentedMap()
        entry["id"] = current.last_group_id + 1  # never a deleted group's id
        entry["name"] = name
        entry["description"] = description
        entry["update_apply_type"] = update_apply_type
        entry["max_parallel_subclouds"] = max_parallel_subclouds
        group_entries(document).append(entry)
        _set_last_group_id(document, entry["id"])
        created["group"] = Group(
            entry["id"], name, description, update_apply_type, max_parallel_subclouds
        )

    edit_registry(path, change)
    return created["group"]


def update_group(
    path: str,
    ref: str,
    *,
    name: str | None = None,
    description: str | None = None,
    update_apply_type: str | None = None,
    max_parallel_subclouds: int | None = None,
) -> Group:
    """subcloud-group update: rename (subclouds follow), describe, or change apply settings."""
    if not (name or description or update_apply_type or max_parallel_subclouds is not None):
        raise PrestageError("nothing to update")
    _check_group_fields(name, description, update_apply_type, max_parallel_subclouds)
    result: dict[str, int] = {}

    def change(document: Any, current: Registry) -> None:
        group = current.group(ref)
        if name and group.id == DEFAULT_GROUP_ID:
            raise PrestageError(MSG_DEFAULT_RENAME)
        if (
            name
            and name != group.name
            and any(g.name.lower() == name.lower() and g.id != group.id for g in current.groups)
        ):
            raise PrestageError(MSG_GROUP_EXISTS)
        entry = find_entry(group_entries(document), "id", group.id)
        if name:
            for sub in document.get("subclouds") or []:
                if isinstance(sub, dict) and sub.get("group") == group.name:
                    sub["group"] = name
            entry["name"] = name
        if description:
            entry["description"] = description
        if update_apply_type:
            entry["update_apply_type"] = update_apply_type
        if max_parallel_subclouds is not None:
            entry["max_parallel_subclouds"] = max_parallel_subclouds
        result["id"] = group.id

    updated = edit_registry(path, change)
    return updated.group(result["id"])


def delete_group(path: str, ref: str) -> Group:
    """subcloud-group delete: never Default, never a group that still has subclouds."""
    removed: dict[str, Group] = {}

    def change(document: Any, current: Registry) -> None:
        group = current.group(ref)
        if group.id == DEFAULT_GROUP_ID:
            raise PrestageError(MSG_DEFAULT_DELETE)
        if current.members(group):
            raise PrestageError(MSG_GROUP_NOT_EMPTY)
        entries = group_entries(document)
        entries.remove(find_entry(entries, "id", group.id))
        # the file keeps the highest id given, so that no later group gets this one again
        if document.get(LAST_GROUP_ID_KEY) != current.last_group_id:
            _set_last_group_id(document, current.last_group_id)
        removed["group"] = group

    edit_registry(path, change)
    return removed["group"]


def move_subcloud(path: str, subcloud_name: str, group_ref: str) -> Registry:
    """subcloud update --group: put a subcloud in another group."""

    def change(document: Any, current: Registry) -> None:
        current.subcloud(subcloud_name)
        group = current.group(group_ref)
        entry = find_entry(document.get("subclouds"), "name", subcloud_name)
        entry["group"] = group.name

    return edit_registry(path, change)


def _check_group_fields(
    name: str | None,
    description: str | None,
    update_apply_type: str | None,
    max_parallel_subclouds: int | None,
) -> None:
    checks = (
        (name, group_name_problem, MSG_INVALID_GROUP_NAME),
        (description, description_problem, MSG_INVALID_GROUP_DESCRIPTION),
        (update_apply_type, apply_type_problem, MSG_INVALID_APPLY_TYPE),
        (max_parallel_subclouds, group_max_parallel_problem, MSG_INVALID_MAX_PARALLEL),
    )
    for value, rule, message in checks:
        if value is None:
            continue
        problem = rule(value)
        if problem:
            raise PrestageError(f"{message}: {problem}")
