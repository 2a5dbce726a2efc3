# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""The one configuration source: the inventory plugin's config file.

It says where the subclouds come from - a subcloud registry file (`registry`) or the system
controller's dcmanager API (`dcmanager`) - and which inventory host is the system controller, with
its connection settings (SPEC §9: the system controller is a managed host; everything it serves
is read on it, at StarlingX's own paths). The inventory plugin hands these settings to plays;
`dcprestage` reads the same file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.distcloud.prestage.plugins.plugin_utils._dcmanager import (
    DEFAULT_DOMAIN,
    DEFAULT_PASSWORD_ENV,
    DEFAULT_REGION,
    DEFAULT_TIMEOUT,
    DcmanagerSettings,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError
from ansible_collections.distcloud.prestage.plugins.plugin_utils._yaml import compose, read_bounded

PLUGIN_NAME = "distcloud.prestage.subclouds"
CONFIG_SUFFIXES = ("subclouds.yml", "subclouds.yaml")
DEFAULT_CONFIG_PATH = os.path.join("inventory", "subclouds.yml")
# The registry of a config that names none (an AWX inventory source's source variable).
REGISTRY_ENV = "DCPRESTAGE_REGISTRY"
# The inventory group of the system controller: never a subcloud group, never a play's target.
SC_GROUP = "system_controller"
# Default: the controller is the system controller (Ansible runs on it).
SC_DEFAULT_HOST = "localhost"
SC_DEFAULT_VARS: dict[str, Any] = {
    "ansible_connection": "local",
    "ansible_python_interpreter": "{{ ansible_playbook_python }}",
}
_SC_KEYS = ("host", "vars")
# An Ansible host name: what an inventory accepts and a shell or a log line cannot misread.
_HOST_NAME = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}\Z")
# An inventory config is a few lines.
MAX_CONFIG_BYTES = 1024 * 1024


@dataclass(frozen=True)
class SystemController:
    """The system controller as an inventory host: its name and its own connection settings
    (never assumed to be the subclouds' sysadmin credentials)."""

    host: str = SC_DEFAULT_HOST
    vars: dict[str, Any] = field(default_factory=lambda: dict(SC_DEFAULT_VARS))


def system_controller_settings(raw: Any, source: str) -> SystemController:
    """The config's `system_controller` mapping, checked; defaults when absent."""
    if raw is None:
        return SystemController()
    if not isinstance(raw, dict):
        raise PrestageError(
            f"Invalid inventory config {source}: system_controller must be a mapping"
        )
    unknown = sorted(str(key) for key in raw if key not in _SC_KEYS)
    if unknown:
        raise PrestageError(
            f"Invalid inventory config {source}: unknown system_controller setting(s) "
            f"{', '.join(unknown)} (known: {', '.join(_SC_KEYS)}; the system controller's paths "
            "are StarlingX's own)"
        )
    host = raw.get("host", SC_DEFAULT_HOST)
    if not isinstance(host, str) or not _HOST_NAME.match(host):
        raise PrestageError(
            f"Invalid inventory config {source}: system_controller.host must be a host name "
            f"(got {host!r})"
        )
    host_vars = raw.get("vars")
    if host_vars is None:
        host_vars = dict(SC_DEFAULT_VARS) if host == SC_DEFAULT_HOST else {}
    if not isinstance(host_vars, dict) or not all(isinstance(k, str) for k in host_vars):
        raise PrestageError(
            f"Invalid inventory config {source}: system_controller.vars must be a mapping of "
            "host variables"
        )
    return SystemController(host, dict(host_vars))


# The `dcmanager` settings (python-dcmanagerclient's names: DCC:shell.py --os-auth-url ...).
DCMANAGER_REQUIRED = ("auth_url", "username", "project_name")
DCMANAGER_TEXT_DEFAULTS: dict[str, str] = {
    "user_domain_name": DEFAULT_DOMAIN,
    "project_domain_name": DEFAULT_DOMAIN,
    "region_name": DEFAULT_REGION,
    "password_env": DEFAULT_PASSWORD_ENV,
}
DCMANAGER_KEYS = (
    *DCMANAGER_REQUIRED, *DCMANAGER_TEXT_DEFAULTS, "ca_file", "validate_certs", "timeout",
)  # fmt: skip
_ENV_NAME = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*\Z")


def dcmanager_settings(raw: Any, base_dir: str, source: str) -> DcmanagerSettings:
    """The config's `dcmanager` mapping, checked; a plain-text password is refused."""
    where = f"Invalid inventory config {source}"
    if not isinstance(raw, dict):
        raise PrestageError(f"{where}: dcmanager must be a mapping")
    if "password" in raw:
        raise PrestageError(
            f"{where}: dcmanager.password is not allowed (no password in the config file); the "
            "Keystone password comes from the environment variable named by "
            f"dcmanager.password_env (default {DEFAULT_PASSWORD_ENV}), set from a vault or an AWX "
            "credential"
        )
    unknown = sorted(str(key) for key in raw if key not in DCMANAGER_KEYS)
    if unknown:
        raise PrestageError(
            f"{where}: unknown dcmanager setting(s) {', '.join(unknown)} "
            f"(known: {', '.join(DCMANAGER_KEYS)})"
        )
    text: dict[str, str] = {}
    for key in (*DCMANAGER_REQUIRED, *DCMANAGER_TEXT_DEFAULTS):
        value = raw.get(key, DCMANAGER_TEXT_DEFAULTS.get(key))
        if value is None and key in DCMANAGER_REQUIRED:
            raise PrestageError(f"{where}: dcmanager.{key} is required")
        if not isinstance(value, str) or not value.strip() or not value.isprintable():
            raise PrestageError(f"{where}: dcmanager.{key} must be a non-empty string")
        text[key] = value
    if not text["auth_url"].startswith(("https://", "http://")):
        raise PrestageError(
            f"{where}: dcmanager.auth_url must be an http(s) URL, e.g. https://<system controller "
            f"OAM address>:5000/v3 (got {text['auth_url']!r})"
        )
    if not _ENV_NAME.match(text["password_env"]):
        raise PrestageError(
            f"{where}: dcmanager.password_env must be an environment variable name "
            f"(got {text['password_env']!r})"
        )
    ca_file = raw.get("ca_file")
    if ca_file is not None:
        if not isinstance(ca_file, str) or not ca_file:
            raise PrestageError(f"{where}: dcmanager.ca_file must be a path")
        ca_file = os.path.normpath(os.path.join(base_dir, os.path.expanduser(ca_file)))
    validate_certs = raw.get("validate_certs", True)
    if not isinstance(validate_certs, bool):
        raise PrestageError(f"{where}: dcmanager.validate_certs must be true or false")
    timeout = raw.get("timeout", DEFAULT_TIMEOUT)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not 0 < timeout <= 3600
    ):
        raise PrestageError(
            f"{where}: dcmanager.timeout must be a number of seconds above 0, at most 3600"
        )
    return DcmanagerSettings(
        **text, ca_file=ca_file, validate_certs=validate_certs, timeout=float(timeout)
    )


@dataclass
class PrestageConfig:
    path: str
    # the subclouds' source: a registry file, or (when registry_path is None) dcmanager
    registry_path: str | None
    system_controller: SystemController
    dcmanager: DcmanagerSettings | None = None


def resolve_config_path(explicit: str | None) -> str:
    """-i/--inventory, else DCPRESTAGE_INVENTORY, else ./inventory/subclouds.yml."""
    path = explicit or os.environ.get("DCPRESTAGE_INVENTORY")
    if path:
        return os.path.abspath(os.path.expanduser(path))
    if os.path.isfile(DEFAULT_CONFIG_PATH):
        return os.path.abspath(DEFAULT_CONFIG_PATH)
    raise PrestageError(
        "No subcloud inventory: pass -i/--inventory or set DCPRESTAGE_INVENTORY to the "
        f"'plugin: {PLUGIN_NAME}' config file"
    )


def read_config_data(path: str) -> Any:
    """The inventory config file's data, loaded bounded (a size limit, no YAML aliases: see
    plugin_utils/_yaml.py); PrestageError naming the file."""
    text = read_bounded(path, MAX_CONFIG_BYTES, "Inventory config")
    if text is None:
        raise PrestageError(f"Inventory config {path} does not exist")
    return compose(text, path, "inventory config")[1]


def load_config(path: str) -> PrestageConfig:
    """Read the inventory plugin config file at path (the CLI's view of it)."""
    data = read_config_data(path)
    if not isinstance(data, dict) or data.get("plugin") != PLUGIN_NAME:
        raise PrestageError(f"Invalid inventory config {path}: expected 'plugin: {PLUGIN_NAME}'")
    base_dir = os.path.dirname(os.path.abspath(path))
    return config_from_options(
        data.get("registry"), data.get("system_controller"), base_dir, path, data.get("dcmanager")
    )


def config_from_options(
    registry: Any,
    system_controller: Any,
    base_dir: str,
    source: str,
    dcmanager: Any = None,
) -> PrestageConfig:
    """The shared reading of the options, for the CLI and the inventory plugin alike.

    `registry` and `dcmanager` exclude each other. A config with neither takes
    $DCPRESTAGE_REGISTRY (how an AWX inventory source passes its source variables to the sync),
    relative to the config's directory like the option.
    """
    if dcmanager is not None:
        if registry is not None:
            raise PrestageError(
                f"Invalid inventory config {source}: 'registry' and 'dcmanager' exclude each "
                "other (the subclouds come from one source)"
            )
        return PrestageConfig(
            source,
            None,
            system_controller_settings(system_controller, source),
            dcmanager_settings(dcmanager, base_dir, source),
        )
    if registry is None:
        registry = os.environ.get(REGISTRY_ENV)
    if not isinstance(registry, str) or not registry:
        raise PrestageError(
            f"Invalid inventory config {source}: 'registry' (a path) is required "
            f"(or ${REGISTRY_ENV}), or 'dcmanager' (the system controller's dcmanager API)"
        )
    registry_path = os.path.normpath(os.path.join(base_dir, os.path.expanduser(registry)))
    return PrestageConfig(
        source, registry_path, system_controller_settings(system_controller, source)
    )
