"""Import the distcloud.prestage collection from where Ansible finds it.

The CLI shares its rules with the collection's plugin_utils, so it must use the same copy of the
collection that ansible-playbook will use. It asks ansible-core: `init_plugin_loader()` installs
Ansible's collection loader in this process, configured by Ansible's own settings - the
collections path (ANSIBLE_COLLECTIONS_PATH, else `collections_path` of the ansible.cfg in use:
$ANSIBLE_CONFIG, ./ansible.cfg, ~/.ansible.cfg, /etc/ansible/ansible.cfg; by default
$ANSIBLE_HOME/collections and /usr/share/ansible/collections), then the Python path unless
`collections_scan_sys_path` is off (the work tree, which scripts/bootstrap puts there). Where the
collection is nowhere, one line says so and what to do.
"""

from __future__ import annotations

import importlib.util
import os
import sys

COLLECTION = "distcloud.prestage"
PACKAGE = "ansible_collections.distcloud.prestage"


class CollectionNotFoundError(Exception):
    """The collection (or ansible-core) is not where Ansible looks; the message says what to do."""


def ensure_importable() -> None:
    """Make the collection importable the way Ansible imports it, or exit with one line."""
    try:
        collection_dir()
    except CollectionNotFoundError as exc:
        sys.stderr.write(f"dcprestage: {exc}\n")
        raise SystemExit(2) from None


def collection_dir() -> str:
    """The directory of the distcloud.prestage collection Ansible uses, with Ansible's collection
    loader installed in this process (so every later import of the collection comes from there)."""
    try:
        from ansible import constants as C  # noqa: PLC0415 - Ansible's own spelling
        from ansible.plugins.loader import init_plugin_loader  # noqa: PLC0415
        from ansible.utils.collection_loader import AnsibleCollectionConfig  # noqa: PLC0415
    except ImportError as exc:
        raise CollectionNotFoundError(
            f"ansible-core is not installed for {sys.executable} ({exc}); install dcprestage "
            "with pip, which brings it"
        ) from None
    except Exception as exc:  # an unreadable ansible.cfg fails while ansible.constants loads
        raise CollectionNotFoundError(
            f"Ansible's configuration cannot be read: {' '.join(str(exc).split())}"
        ) from None
    if AnsibleCollectionConfig.collection_finder is None:
        init_plugin_loader()
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        paths = os.pathsep.join(C.COLLECTIONS_PATHS) or "(none)"
        config = f" (ansible.cfg: {C.CONFIG_FILE})" if C.CONFIG_FILE else ""
        raise CollectionNotFoundError(
            f"the {COLLECTION} collection is not in Ansible's collections path {paths}{config}; "
            "install it there with 'ansible-galaxy collection install "
            "distcloud-prestage-<version>.tar.gz', or set ANSIBLE_COLLECTIONS_PATH to the "
            "directory holding its ansible_collections/"
        )
    return str(locations[0])
