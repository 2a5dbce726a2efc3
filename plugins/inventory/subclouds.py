# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
name: subclouds
short_description: StarlingX subclouds and subcloud groups from a registry file or dcmanager
version_added: 0.1.0
description:
  - Reads the subclouds and subcloud groups and turns them into inventory, from one of two
    sources - the subcloud registry (O(registry), a YAML file of subclouds and subcloud groups,
    the part of the dcmanager database prestage needs), or the system controller's dcmanager API
    (O(dcmanager)) with Keystone v3 password authentication.
  - With O(dcmanager), the subclouds, their groups, availability, management state, deploy
    status, software version, sync and backup status are dcmanager's (its API v1.0 field names);
    each subcloud's OAM floating address comes from dcmanager's detail call (a few calls at a
    time). An offline subcloud, for which dcmanager has no OAM address, stays in the inventory
    without C(ansible_host) (a prestage strategy skips it as offline); an online one without an
    address is an error. dcmanager does not know a subcloud's system mode
    (C(subcloud_system_mode) is C(unknown)); the precheck reads it on the subcloud. Use the
    inventory cache (O(cache)) so that thousands of subclouds are not fetched on every run; a
    failed fetch never replaces the cache.
  - Each subcloud becomes a host with C(ansible_host) set to its OAM floating address and
    C(ansible_user=sysadmin); its registry attributes become host variables named
    C(subcloud_<attribute>) (for example C(subcloud_software_version), C(subcloud_system_mode)).
  - Each subcloud group becomes an Ansible group of the same name, so C(-l First_10_Subclouds)
    selects it; the group carries C(subcloud_group_update_apply_type),
    C(subcloud_group_max_parallel_subclouds), C(subcloud_group_id) and
    C(subcloud_group_description) as group variables (prefixed, so they never shadow the
    C(max_parallel_subclouds)/C(subcloud_apply_type) options of C(playbooks/prestage.yml)).
  - The system controller is a host of its own (O(system_controller.host), default C(localhost)),
    the only member of group C(system_controller), with its own connection settings
    (O(system_controller.vars), variables of that group) - never a subcloud group member, never a
    play's target, but always there for delegation. An AWX job slice holds only every Nth host,
    maybe not the system controller; C(playbooks/prestage.yml) adds it to the group again, and
    the group's variables reach it there too. Every host gets its name as
    C(prestage_system_controller_host), and the path of this config as
    C(prestage_inventory_config), so plays and C(dcprestage) read one configuration.
  - Subcloud hosts get C(ansible_python_interpreter=/usr/bin/python3) unless their C(vars) say
    otherwise (as dcmanager's own prestage inventory; no interpreter discovery round trip).
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
      - Without it (and without O(dcmanager)), C($DCPRESTAGE_REGISTRY) (an AWX inventory source
        passes its source variables to the sync as environment variables). One of the two is
        required.
      - Mutually exclusive with O(dcmanager).
    type: str
  dcmanager:
    description:
      - Read the subclouds and subcloud groups from the system controller's dcmanager API instead
        of a registry file (mutually exclusive with O(registry)).
      - The Keystone password is never in this file (a C(password) key is refused); it comes
        from the environment variable named by O(dcmanager.password_env) - exported from a vault,
        or injected by an AWX custom credential. Ansible Vault values (C(!vault)) are not read in
        this file.
      - dcmanager's endpoint is the C(public) one of service type C(dcmanager) in region
        O(dcmanager.region_name) of the Keystone catalog, as python-dcmanagerclient finds it.
      - With this source, C(dcprestage subcloud-group add|update|delete) and
        C(dcprestage subcloud update --group) change dcmanager, and C(dcprestage subcloud
        list|show) show dcmanager's prestage status and versions beside this collection's.
    type: dict
    suboptions:
      auth_url:
        description:
          - Keystone's URL on the system controller, e.g. C(https://<OAM floating address>:5000/v3)
            (C(/v3) is added when missing).
        type: str
        required: true
      username:
        description: Keystone user, e.g. C(admin).
        type: str
        required: true
      project_name:
        description: Keystone project of the token, e.g. C(admin).
        type: str
        required: true
      user_domain_name:
        description: Domain of the user.
        type: str
        default: Default
      project_domain_name:
        description: Domain of the project.
        type: str
        default: Default
      region_name:
        description: Keystone region of dcmanager's endpoint.
        type: str
        default: SystemController
      password_env:
        description: Name of the environment variable holding the user's Keystone password.
        type: str
        default: OS_PASSWORD
      ca_file:
        description:
          - PEM file of the CA(s) that signed the system controller's certificate (relative to this
            config file); default the system's trust store.
        type: path
      validate_certs:
        description: Verify the TLS certificates of Keystone and dcmanager. Turn off only to try.
        type: bool
        default: true
      timeout:
        description: Seconds to wait for each answer of Keystone or dcmanager.
        type: float
        default: 30
  system_controller:
    description:
      - The system controller, an inventory host of its own. Everything it serves for a release is
        read on it, at StarlingX's paths, and the transfers to subclouds run from it.
      - C(host) is its inventory name (default C(localhost)).
      - C(vars) are its variables (those of group C(system_controller)) - its own connection
        settings, e.g. C(ansible_host),
        C(ansible_user), C(ansible_ssh_private_key_file), or C(ansible_connection=local) when
        Ansible runs on the system controller itself (the default for C(localhost)). Secrets
        (its become password) belong in a vault or an AWX credential, not here; a Jinja
        expression such as C({{ lookup('env', 'VAR') }}) is kept as is and resolved when used.
    type: dict
    default: {}
    suboptions:
      host:
        description: Inventory name of the system controller.
        type: str
        default: localhost
      vars:
        description:
          - Its variables (connection settings), kept as variables of group C(system_controller).
        type: dict
"""

EXAMPLES = r"""
# inventory/subclouds.yml
plugin: distcloud.prestage.subclouds
registry: registry.yml
system_controller:
  host: system-controller
  vars:
    ansible_host: 192.0.2.2
    ansible_user: sysadmin
    ansible_ssh_private_key_file: ~/.ssh/id_ed25519
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

---
# inventory/dcmanager-subclouds.yml: the subclouds as the system controller's dcmanager has them
plugin: distcloud.prestage.subclouds
dcmanager:
  auth_url: https://192.0.2.2:5000/v3
  username: admin
  project_name: admin
  ca_file: /etc/pki/ca-trust/source/anchors/starlingx-ca.crt
  # the password: export OS_PASSWORD (from a vault, or an AWX custom credential)
system_controller:
  host: system-controller
  vars:
    ansible_host: 192.0.2.2
    ansible_user: sysadmin
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/dcprestage-inventory
cache_timeout: 600
"""

from typing import Any  # noqa: E402

from ansible.errors import AnsibleParserError  # noqa: E402
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable  # noqa: E402

from ansible_collections.distcloud.prestage.plugins.plugin_utils._config import (  # noqa: E402
    CONFIG_SUFFIXES,
    PLUGIN_NAME,
    SC_GROUP,
    config_from_options,
    read_config_data,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import (  # noqa: E402
    PrestageError,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._source import (  # noqa: E402
    load,
)

SUBCLOUD_USER = "sysadmin"
SC_NO_PASSWORDS = {"ansible_password": "", "ansible_become_password": ""}
# StarlingX's python3; dcmanager's prestage inventory sets the same (DC:dcmanager/common/utils.py:
# 447-478), so no interpreter discovery runs.
SUBCLOUD_PYTHON = "/usr/bin/python3"


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = PLUGIN_NAME

    def verify_file(self, path: str) -> bool:
        return super().verify_file(path) and path.endswith(CONFIG_SUFFIXES)

    def parse(self, inventory: Any, loader: Any, path: str, cache: bool = True) -> None:
        super().parse(inventory, loader, path, cache)
        try:  # bounded first (no aliases, a size limit): Ansible's own loader is not
            read_config_data(path)
        except PrestageError as exc:
            raise AnsibleParserError(str(exc)) from None
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
                self.get_option("dcmanager"),
            )
            registry = load(config)
        except PrestageError as exc:
            raise AnsibleParserError(str(exc)) from None
        if registry.find_subcloud(config.system_controller.host) is not None:
            raise AnsibleParserError(
                f"Invalid inventory config {path}: subcloud {config.system_controller.host} has "
                "the name of the system controller host (system_controller.host)"
            )
        return {
            "config": os.path.abspath(path),
            "registry": config.registry_path,
            "system_controller": {
                "host": config.system_controller.host,
                "vars": config.system_controller.vars,
            },
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
                        # none for an offline subcloud of which dcmanager has no address
                        **(
                            {"ansible_host": s.vars.get("ansible_host", s.oam_floating_address)}
                            if s.oam_floating_address or "ansible_host" in s.vars
                            else {}
                        ),
                        "ansible_user": s.vars.get("ansible_user", SUBCLOUD_USER),
                        "ansible_python_interpreter": s.vars.get(
                            "ansible_python_interpreter", SUBCLOUD_PYTHON
                        ),
                        "subcloud_id": s.id,
                        "subcloud_group": registry.group_of(s).name,
                        "subcloud_oam_floating_address": s.oam_floating_address or None,
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
        sc = data["system_controller"]
        inventory.set_variable("all", "prestage_system_controller_host", sc["host"])
        inventory.set_variable("all", "prestage_inventory_config", data["config"])
        if data["registry"] is not None:  # none with the dcmanager source
            inventory.set_variable("all", "prestage_registry", data["registry"])
        for group in data["groups"]:
            name = inventory.add_group(group["name"])
            for key, value in group["vars"].items():
                inventory.set_variable(name, key, value)
        inventory.add_group(SC_GROUP)
        inventory.add_host(sc["host"], group=SC_GROUP)
        # its own credentials or none: never the subclouds' password that -k/-K or the prestage
        # strategy give the play (host_vars, a vault or an AWX credential set its own). Variables
        # of its group, not of the host: an AWX job slice without the host still has the group
        # and its variables, and the playbook adds the host to it again.
        for key, value in {**SC_NO_PASSWORDS, **sc["vars"]}.items():
            inventory.set_variable(SC_GROUP, key, value)
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
