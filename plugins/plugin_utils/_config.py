# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""The one configuration source: the inventory plugin's config file.

It says where the subcloud registry is and how the system controller looks (its release, where
its release feeds, software metadata, image lists and central registry are). The inventory plugin
hands these settings to plays; `dcprestage` reads the same file. Defaults are StarlingX's paths.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

import yaml

from ansible_collections.distcloud.prestage.plugins.module_utils._release import is_major_release
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError
from ansible_collections.distcloud.prestage.plugins.plugin_utils._files import read_text

PLUGIN_NAME = "distcloud.prestage.subclouds"
CONFIG_SUFFIXES = ("subclouds.yml", "subclouds.yaml")
DEFAULT_CONFIG_PATH = os.path.join("inventory", "subclouds.yml")
# The registry of a config that names none (an AWX inventory source's source variable).
REGISTRY_ENV = "DCPRESTAGE_REGISTRY"

# StarlingX's own locations on a system controller; the lab and tests override them.
SYSTEM_CONTROLLER_DEFAULTS: dict[str, Any] = {
    "release": None,  # None: SW_VERSION of build_info
    "build_info": "/etc/build.info",
    "feed_dir": "/var/www/pages/feed",
    "software_dir": "/opt/software",
    "image_list_dir": "/opt/platform/deploy",
    "registry": "registry.central:9001",
    "registry_ca": None,
    "registry_tls_verify": True,
    "docker_min_free_gib": 16,
    # supported_upgrades of this file: prestaged releases below the lowest one are removed
    "upgrades_metadata": "/opt/upgrades/metadata.xml",
    # credential of the central registry (and, by default, of the subclouds' local registry)
    "registry_username": None,
    "registry_password_file": None,
    "registry_auth_file": None,  # containers-auth.json; its entries win over the two above
}
_PATH_KEYS = (
    "build_info", "feed_dir", "software_dir", "image_list_dir", "registry_ca",
    "upgrades_metadata", "registry_password_file", "registry_auth_file",
)  # fmt: skip
_SW_VERSION = re.compile(r"""^SW_VERSION\s*=\s*["']?([^"'\s]+)["']?\s*$""", re.MULTILINE)


def system_controller_settings(raw: Any, base_dir: str, source: str) -> dict[str, Any]:
    """Defaults merged with the config's `system_controller` mapping, paths made absolute."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise PrestageError(
            f"Invalid inventory config {source}: system_controller must be a mapping"
        )
    settings = dict(SYSTEM_CONTROLLER_DEFAULTS)
    settings.update(raw)
    release = settings["release"]
    if release is not None and not is_major_release(release):
        raise PrestageError(
            f"Invalid inventory config {source}: system_controller.release must be a quoted "
            f"MM.mm release (got {release!r})"
        )
    for key in _PATH_KEYS:
        value = settings.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise PrestageError(
                f"Invalid inventory config {source}: system_controller.{key} must be a path"
            )
        settings[key] = os.path.normpath(os.path.join(base_dir, os.path.expanduser(value)))
    if not isinstance(settings["registry_tls_verify"], bool):
        raise PrestageError(
            f"Invalid inventory config {source}: system_controller.registry_tls_verify must be "
            "true or false"
        )
    threshold = settings["docker_min_free_gib"]
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or threshold < 0:
        raise PrestageError(
            f"Invalid inventory config {source}: system_controller.docker_min_free_gib must be "
            "a non-negative number"
        )
    return settings


def build_info_release(path: str) -> str | None:
    """SW_VERSION from a StarlingX build.info file, or None."""
    try:
        text = read_text(path)
    except PrestageError:
        return None
    match = _SW_VERSION.search(text or "")
    return match.group(1) if match else None


@dataclass
class PrestageConfig:
    path: str
    registry_path: str
    system_controller: dict[str, Any]

    @property
    def sc_release(self) -> str:
        """The system controller's own release: configured, else its build.info."""
        release = self.system_controller.get("release") or build_info_release(
            self.system_controller["build_info"]
        )
        if not release or not is_major_release(release):
            raise PrestageError(
                "Cannot tell the system controller's release: set system_controller.release in "
                f"{self.path}"
            )
        return release

    def feed_release_dir(self, release: str) -> str:
        return os.path.join(self.system_controller["feed_dir"], f"rel-{release}")

    def software_release_dir(self, release: str) -> str:
        return os.path.join(self.system_controller["software_dir"], release)


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


def load_config(path: str) -> PrestageConfig:
    """Read the inventory plugin config file at path (the CLI's view of it)."""
    text = read_text(path)
    if text is None:
        raise PrestageError(f"Inventory config {path} does not exist")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else path
        problem = getattr(exc, "problem", None) or "malformed YAML"
        raise PrestageError(f"Invalid inventory config {where}: {problem}") from None
    if not isinstance(data, dict) or data.get("plugin") != PLUGIN_NAME:
        raise PrestageError(f"Invalid inventory config {path}: expected 'plugin: {PLUGIN_NAME}'")
    base_dir = os.path.dirname(os.path.abspath(path))
    return config_from_options(data.get("registry"), data.get("system_controller"), base_dir, path)


def config_from_options(
    registry: Any, system_controller: Any, base_dir: str, source: str
) -> PrestageConfig:
    """The shared reading of the two options, for the CLI and the inventory plugin alike.

    A config without `registry` takes $DCPRESTAGE_REGISTRY (how an AWX inventory source passes
    its source variables to the sync), relative to the config's directory like the option.
    """
    if registry is None:
        registry = os.environ.get(REGISTRY_ENV)
    if not isinstance(registry, str) or not registry:
        raise PrestageError(
            f"Invalid inventory config {source}: 'registry' (a path) is required "
            f"(or ${REGISTRY_ENV})"
        )
    registry_path = os.path.normpath(os.path.join(base_dir, os.path.expanduser(registry)))
    settings = system_controller_settings(system_controller, base_dir, source)
    return PrestageConfig(source, registry_path, settings)
