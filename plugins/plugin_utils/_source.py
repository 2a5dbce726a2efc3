# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""Where the subclouds and subcloud groups come from: the registry file or dcmanager's API.

The inventory config names one source (plugin_utils/_config.py): `registry` (a YAML file, the
embedded default) or `dcmanager` (the system controller's dcmanager API, plugin_utils/
_dcmanager.py). Everything that reads subclouds - the inventory plugin, the prestage_strategy
action, `dcprestage` - calls `load`, which gives the same Registry model from either; the edits
of `dcprestage subcloud-group add|update|delete` and `subcloud update --group` go to the YAML file
or to dcmanager's API (with dcmanager's own checks and messages), through the functions here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from ansible_collections.distcloud.prestage.plugins.plugin_utils import _registry as registry_file
from ansible_collections.distcloud.prestage.plugins.plugin_utils._config import PrestageConfig
from ansible_collections.distcloud.prestage.plugins.plugin_utils._dcmanager import (
    DcmanagerClient,
    DcmanagerError,
    DcmanagerSettings,
    FieldProblem,
    fetch_registry,
    group_from_api,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import (
    NotFoundError,
    PrestageError,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._registry import (
    Group,
    Registry,
)

# dcprestage commands keep one client per config (one Keystone token for all their calls).
_clients: dict[DcmanagerSettings, DcmanagerClient] = {}
# A run started by dcprestage (src/dcprestage/_launcher.py) gets the Keystone password in a
# private file named by this variable, never in its environment (ansible-runner writes the
# environment of the run to its artifacts).
KEYSTONE_PASSWORD_FILE_ENV = "DCPRESTAGE_KEYSTONE_PASSWORD_FILE"


def is_dcmanager(config: PrestageConfig) -> bool:
    return config.dcmanager is not None


def keystone_password(settings: DcmanagerSettings) -> str:
    """The Keystone password, from the environment variable the config names (or, in a run
    dcprestage started, the private file it made for the run)."""
    password = os.environ.get(settings.password_env)
    password_file = os.environ.get(KEYSTONE_PASSWORD_FILE_ENV)
    if not password and password_file:
        try:
            with open(password_file, encoding="utf-8") as handle:
                password = handle.readline().rstrip("\n")
        except OSError as exc:
            raise PrestageError(
                f"dcmanager source: cannot read the Keystone password file {password_file} "
                f"(${KEYSTONE_PASSWORD_FILE_ENV}): {exc.strerror}"
            ) from None
    if not password:
        raise PrestageError(
            f"dcmanager source (Keystone {settings.auth_url}): the environment variable "
            f"{settings.password_env} (dcmanager.password_env) holding the password of user "
            f"{settings.username} is not set"
        )
    return password


def client(config: PrestageConfig) -> DcmanagerClient:
    """The dcmanager client of config (PrestageError when its source is the registry file)."""
    settings = config.dcmanager
    if settings is None:
        raise PrestageError(f"The inventory config {config.path} does not use dcmanager")
    found = _clients.get(settings)
    if found is None:
        found = _clients[settings] = DcmanagerClient(settings, keystone_password(settings))
    return found


def _registry_path(config: PrestageConfig) -> str:
    if config.registry_path is None:  # pragma: no cover - callers check config.dcmanager first
        raise PrestageError(f"The inventory config {config.path} names no registry file")
    return config.registry_path


def load(config: PrestageConfig, addresses: bool | Iterable[str] = True) -> Registry:
    """The subclouds and groups of config's source.

    addresses (dcmanager only; the registry file has them all): True reads every subcloud's OAM
    floating address (one detail call per subcloud; what an inventory needs), names read only
    those subclouds' addresses, False none (strategy create, lists of subclouds and groups).
    """
    if config.dcmanager is None:
        return registry_file.load_registry(_registry_path(config))
    return fetch_registry(client(config), addresses)


def load_file(path: str) -> Registry:
    """The registry file at path (an inventory's `prestage_registry`, given to a play)."""
    return registry_file.load_registry(path)


def find_group(config: PrestageConfig, ref: str) -> Group:
    """One group by name or id (NotFoundError "Subcloud Group not found" otherwise)."""
    if config.dcmanager is None:
        return registry_file.load_registry(_registry_path(config)).group(ref)
    return _group(config, client(config).group, ref)


def _group(config: PrestageConfig, call: Callable[..., dict[str, Any]], *args: Any) -> Group:
    """A group request to dcmanager; the group it answers with."""
    try:
        item = call(*args)
    except DcmanagerError as exc:
        raise _as_command_error(exc) from None
    try:
        return group_from_api(item)
    except FieldProblem as exc:
        url = client(config).url("/subcloud-groups")
        raise DcmanagerError(
            f"dcmanager {url}: subcloud group {item.get('name', '?')}: {exc}"
        ) from None


def _as_command_error(exc: DcmanagerError) -> PrestageError:
    """dcmanager refused a request: its message and the endpoint, as one line; a 404 stays a
    NotFoundError (the CLI's exit status for it)."""
    if exc.status == 404:
        return NotFoundError(str(exc))
    return exc


def add_group(
    config: PrestageConfig,
    name: str,
    *,
    description: str | None = None,
    update_apply_type: str | None = None,
    max_parallel_subclouds: int | None = None,
) -> Group:
    """subcloud-group add, with dcmanager's defaults (as its client's options have them)."""
    if config.dcmanager is None:
        return registry_file.add_group(
            _registry_path(config),
            name,
            description=description,
            update_apply_type=update_apply_type,
            max_parallel_subclouds=max_parallel_subclouds,
        )
    description, update_apply_type, max_parallel_subclouds = registry_file.new_group_fields(
        description, update_apply_type, max_parallel_subclouds
    )
    fields = {
        "name": name,
        "description": description,
        "update_apply_type": update_apply_type,
        "max_parallel_subclouds": max_parallel_subclouds,
    }
    return _group(config, client(config).add_group, fields)


def update_group(
    config: PrestageConfig,
    ref: str,
    *,
    name: str | None = None,
    description: str | None = None,
    update_apply_type: str | None = None,
    max_parallel_subclouds: int | None = None,
) -> Group:
    """subcloud-group update: only the fields given are sent."""
    if config.dcmanager is None:
        return registry_file.update_group(
            _registry_path(config),
            ref,
            name=name,
            description=description,
            update_apply_type=update_apply_type,
            max_parallel_subclouds=max_parallel_subclouds,
        )
    fields: dict[str, object] = {
        key: value
        for key, value in (
            ("name", name),
            ("description", description),
            ("update_apply_type", update_apply_type),
            ("max_parallel_subclouds", max_parallel_subclouds),
        )
        if value is not None
    }
    return _group(config, client(config).update_group, ref, fields)


def delete_group(config: PrestageConfig, ref: str) -> None:
    """subcloud-group delete (dcmanager refuses Default and a group with subclouds)."""
    if config.dcmanager is None:
        registry_file.delete_group(_registry_path(config), ref)
        return
    try:
        client(config).delete_group(ref)
    except DcmanagerError as exc:
        raise _as_command_error(exc) from None


def move_subcloud(config: PrestageConfig, subcloud_name: str, group_ref: str) -> Registry:
    """subcloud update --group; the registry afterwards (with that subcloud's OAM address)."""
    if config.dcmanager is None:
        return registry_file.move_subcloud(_registry_path(config), subcloud_name, group_ref)
    dcm = client(config)
    try:
        dcm.update_subcloud(subcloud_name, {"group_id": group_ref})
    except DcmanagerError as exc:
        if exc.status == 404 and exc.fault in ("Subcloud not found", None):
            raise NotFoundError(f"Subcloud {subcloud_name} does not exist") from None
        raise _as_command_error(exc) from None
    return load(config, addresses=[subcloud_name])


def edit_note(config: PrestageConfig) -> str | None:
    """What an edit says besides its table (stderr): the file changed, when it is a symlink."""
    if config.dcmanager is None:
        return registry_file.edit_note(_registry_path(config))
    return None
