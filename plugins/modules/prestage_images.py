#!/usr/bin/python
# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
# This module is implemented by an action plugin (plugins/action/prestage_images.py).
from __future__ import annotations

DOCUMENTATION = r"""
module: prestage_images
short_description: Prestage a release's container images on a subcloud (images phase)
version_added: 0.1.0
description:
  - The images phase of the C(distcloud.prestage.prestage_install) and
    C(distcloud.prestage.prestage_sw_deploy) roles, in one task per subcloud.
  - Takes the release's image list from the precheck result (SPEC 5; no list, nothing to do),
    reads the registry credentials on the controller (the system controller settings
    C(registry_auth_file), C(registry_username) and C(registry_password_file)), and runs
    M(distcloud.prestage.prestage_images_sync) once on the subcloud; skopeo copies each image
    from the central registry into the local registry unless it is already there with the same
    digest; for install the registry storage is then archived to
    O(platform_backup_dir)C(/<release>/local_registry_filesystem.tgz) and the archive tested
    (removed and failed when corrupt).
  - Why on the subcloud, as StarlingX does - the subcloud pulls over its own link from the
    central registry it already trusts, the controller's CPU is not spent pushing images for a
    whole window of subclouds, the digest check and the archive need the local registry anyway,
    and it is one module run per subcloud.
  - On the phase timeout the copy is stopped and the task fails with C(prestage_timeout).
extends_documentation_fragment:
  - distcloud.prestage.prestage
  - distcloud.prestage.prestage.platform_backup_dir
  - distcloud.prestage.prestage.docker_dir
options:
  precheck:
    description: The registered result of M(distcloud.prestage.prestage_precheck) for this host.
    type: dict
    required: true
  system_controller:
    description:
      - The system controller settings (the inventory plugin's C(prestage_system_controller)).
    type: dict
    default: {}
  timeout:
    description: Seconds the phase may take.
    type: int
    default: 7200
  registry_storage_dir:
    description: The local registry's storage on the subcloud (what is archived).
    type: path
    default: /var/lib/docker-distribution
  local_registry:
    description: The subcloud's local registry.
    type: str
    default: registry.local:9001
  local_registry_username:
    description: User of the local registry. Default the central registry's credential.
    type: str
  local_registry_password:
    description: Password of the local registry. Default the central registry's credential.
    type: str
  local_registry_tls_verify:
    description: Verify the local registry's certificate.
    type: bool
    default: true
  parallel:
    description: Images handled at once on a subcloud.
    type: int
    default: 4
author:
  - distcloud.prestage contributors (@distcloud-prestage)
"""

EXAMPLES = r"""
- name: Prestage the release's images
  distcloud.prestage.prestage_images:
    release: "24.09"
    precheck: "{{ prestage_precheck }}"
    system_controller: "{{ prestage_system_controller }}"
  become: true
  register: prestage_images
"""

RETURN = r"""
copied:
  description: Images copied into the local registry.
  type: list
  elements: str
  returned: success
present:
  description: Images already in the local registry with the same digest.
  type: list
  elements: str
  returned: success
archive:
  description: The registry archive (install).
  type: dict
  returned: for install
prestage_images_verified:
  description: Every image is in the local registry with the source's digest.
  type: bool
  returned: success
"""
