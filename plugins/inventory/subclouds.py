# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
name: subclouds
short_description: StarlingX subclouds and subcloud groups from a distcloud.prestage registry
version_added: 0.1.0
description:
  - Reads the subcloud registry (a YAML file of subclouds and subcloud groups, the part of the
    dcmanager database prestage needs) and turns it into inventory.
  - Each subcloud becomes a host with C(ansible_host) set to its OAM floating address and
    C(ansible_user=sysadmin); its registry attributes become host variables named
    C(subcloud_<attribute>) (for example C(subcloud_software_version), C(subcloud_system_mode)).
  - Each subcloud group becomes an Ansible group of the same name, so C(-l First_10_Subclouds)
    selects it; the group carries C(subcloud_group_update_apply_type),
    C(subcloud_group_max_parallel_subclouds), C(subcloud_group_id) and
    C(subcloud_group_description) as group variables (prefixed, so they never shadow the
    C(max_parallel_subclouds)/C(subcloud_apply_type) options of C(playbooks/prestage.yml)).
  - The system controller settings are given to every host as C(prestage_system_controller), and
    the path of this config as C(prestage_inventory_config), so plays and C(dcprestage) read one
    configuration.
  - The config file name must end with C(subclouds.yml) or C(subclouds.yaml).
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: Marks this file as a config of this plugin.
    required: true
    type: str
    choices: [distcloud.prestage.subclouds]
  registry:
    description:
      - Path of the subcloud registry YAML file; a relative path is relative to this config file.
      - Without it, C($DCPRESTAGE_REGISTRY) (an AWX inventory source passes its source variables
        to the sync as environment variables). One of the two is required.
    type: str
  system_controller:
    description:
      - How the system controller looks. Every key is optional; the defaults are StarlingX's paths.
      - C(release) is the system controller's own major release (default C(SW_VERSION) of
        C(build_info), which defaults to C(/etc/build.info)).
      - C(feed_dir) holds C(rel-<release>/ostree_repo) (default C(/var/www/pages/feed)).
      - C(software_dir) holds the software metadata of each release (default C(/opt/software)).
      - C(image_list_dir) holds C(<release>/prestage_images*) lists
        (default C(/opt/platform/deploy)).
      - C(registry) is the central registry C(host:port) (default C(registry.central:9001)),
        C(registry_ca) a CA bundle for it, C(registry_tls_verify) (default true) whether its
        certificate is verified.
      - C(docker_min_free_gib) is the free space needed in C(/var/lib/docker) before images are
        prestaged (default 16).
      - C(upgrades_metadata) is the system controller's upgrade metadata
        (default C(/opt/upgrades/metadata.xml)); prestaged releases below the lowest of its
        C(supported_upgrades) are removed from subclouds. Absent file, nothing is removed.
      - C(registry_username) and C(registry_password_file) (a file holding the password) are the
        credential of the central registry, also used for the subclouds' local registry unless
        the roles are given another one; C(registry_auth_file) is a containers-auth.json whose
        entries (central registry, C(registry.local:9001)) win over them. Default none.
      - Relative paths are relative to this config file.
    type: dict
    default: {}
"""

EXAMPLES = r"""
# inventory/subclouds.yml
plugin: distcloud.prestage.subclouds
registry: registry.yml
system_controller:
  release: "24.09"
# Extra groups by release and system mode, as with any constructable inventory plugin
keyed_groups:
  - key: subcloud_software_version
    prefix: release
  - key: subcloud_system_mode
    prefix: mode
compose:
  ansible_port: 22

# Then:
#   ansible-inventory -i inventory/subclouds.yml --graph
#   ansible-playbook -i inventory/subclouds.yml playbooks/prestage.yml -l First_10_Subclouds
"""

from typing import Any  # noqa: E402

from ansible.errors import AnsibleParserError  # noqa: E402
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable  # noqa: E402

from ansible_collections.distcloud.prestage.plugins.plugin_utils._config import (  # noqa: E402
    CONFIG_SUFFIXES,
    PLUGIN_NAME,
    config_from_options,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import (  # noqa: E402
    PrestageError,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._registry import (  # noqa: E402
    load_registry,
)

SUBCLOUD_USER = "sysadmin"


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = PLUGIN_NAME

    def verify_file(self, path: str) -> bool:
        return super().verify_file(path) and path.endswith(CONFIG_SUFFIXES)

    def parse(self, inventory: Any, loader: Any, path: str, cache: bool = True) -> None:
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        cache_key = self.get_cache_key(path)
        use_cache = self.get_option("cache") and cache
        update_cache = self.get_option("cache") and not cache

        data = None
        if use_cache:
            try:
                data = self._cache[cache_key]
            except KeyError:
                update_cache = True
        if data is None:
            data = self._read_sources(path)
        if update_cache:
            self._cache[cache_key] = data
        self._populate(data)

    def _read_sources(self, path: str) -> dict[str, Any]:
        """The registry and settings as plain data (what the cache stores)."""
        import os  # noqa: PLC0415 - keep the module import-light for ansible-doc

        try:
            config = config_from_options(
                self.get_option("registry"),
                self.get_option("system_controller"),
                os.path.dirname(os.path.abspath(path)),
                path,
            )
            registry = load_registry(config.registry_path)
        except PrestageError as exc:
            raise AnsibleParserError(str(exc)) from None
        return {
            "config": os.path.abspath(path),
            "registry": config.registry_path,
            "system_controller": config.system_controller,
            "groups": [
                {
                    "name": g.name,
                    "vars": {
                        "subcloud_group_id": g.id,
                        "subcloud_group_description": g.description,
                        "subcloud_group_update_apply_type": g.update_apply_type,
                        "subcloud_group_max_parallel_subclouds": g.max_parallel_subclouds,
                    },
                }
                for g in registry.groups
            ],
            "hosts": [
                {
                    "name": s.name,
                    "group": registry.group_of(s).name,
                    "vars": {
                        **s.vars,
                        "ansible_host": s.vars.get("ansible_host", s.oam_floating_address),
                        "ansible_user": s.vars.get("ansible_user", SUBCLOUD_USER),
                        "subcloud_id": s.id,
                        "subcloud_group": registry.group_of(s).name,
                        "subcloud_oam_floating_address": s.oam_floating_address,
                        "subcloud_management": s.management,
                        "subcloud_availability": s.availability,
                        "subcloud_deploy_status": s.deploy_status,
                        "subcloud_software_version": s.software_version,
                        "subcloud_system_mode": s.system_mode,
                        "subcloud_sync": s.sync,
                        "subcloud_backup_status": s.backup_status,
                    },
                }
                for s in registry.subclouds
            ],
        }

    def _populate(self, data: dict[str, Any]) -> None:
        inventory = self.inventory
        inventory.set_variable("all", "prestage_system_controller", data["system_controller"])
        inventory.set_variable("all", "prestage_inventory_config", data["config"])
        inventory.set_variable("all", "prestage_registry", data["registry"])
        for group in data["groups"]:
            name = inventory.add_group(group["name"])
            for key, value in group["vars"].items():
                inventory.set_variable(name, key, value)
        strict = self.get_option("strict")
        for host in data["hosts"]:
            name = host["name"]
            inventory.add_host(name, group=host["group"])
            for key, value in host["vars"].items():
                inventory.set_variable(name, key, value)
            host_vars = inventory.get_host(name).get_vars()
            self._set_composite_vars(self.get_option("compose"), host_vars, name, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), host_vars, name, strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), host_vars, name, strict)
