#!/usr/bin/python
# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
# This module is implemented by an action plugin (plugins/action/sc_release_info.py).
from __future__ import annotations

DOCUMENTATION = r"""
module: sc_release_info
short_description: What the system controller serves for a release, computed once per run
version_added: 0.1.0
description:
  - Runs on the controller (the system controller). Meant to run once per run
    (C(run_once), C(delegate_to localhost)); its result is given to the prestage roles as
    C(prestage_sc_release_info), so no subcloud recomputes it. Without it, each precheck
    computes it (from the cache after the first).
  - Checks that the system controller can serve the release (SPEC 4.2).
  - For install, the checksum of the feed's C(rel-<release>/ostree_repo) exactly as StarlingX
    writes C(.ostree_repo_checksum) (md5 of the C(LC_ALL=C) sorted C(md5sum) lines of every
    file), the repo's size and the patch metadata digest. The checksum is cached in O(cache_dir)
    keyed by the repo's path and a fingerprint of its files' metadata (name, size, mtime, ctime,
    inode), so later runs only list the feed.
  - For software deployment, the digest, size and patch level of the release's software
    directory.
  - The image list (C(<image_list_dir>/<release>/prestage_images*), one reference a line, blank
    lines and C(#) comments ignored), and the lowest supported release from the upgrade
    metadata.
extends_documentation_fragment:
  - distcloud.prestage.prestage
options:
  system_controller:
    description:
      - The system controller settings (the inventory plugin's C(prestage_system_controller)).
    type: dict
    default: {}
  cache:
    description: Use the checksum cache.
    type: bool
    default: true
  cache_dir:
    description: The cache directory. Default C(${XDG_CACHE_HOME:-~/.cache}/distcloud-prestage).
    type: path
author:
  - distcloud.prestage contributors (@distcloud-prestage)
"""

EXAMPLES = r"""
- name: What the system controller serves for the release
  distcloud.prestage.sc_release_info:
    release: "24.09"
    system_controller: "{{ prestage_system_controller }}"
  run_once: true
  delegate_to: localhost
  register: prestage_sc_release
"""

RETURN = r"""
ostree:
  description: For install, the feed's ostree repo (path, checksum, files, bytes, usage, cached).
  type: dict
  returned: always
patch_metadata:
  description:
    - For install, the release's patch metadata (path, digest, files, bytes, usage), or none.
  type: dict
  returned: always
software:
  description: For software deployment, the software directory (path, digest, level, usage).
  type: dict
  returned: always
image_list:
  description: The image list (path, images), or none when the release has none.
  type: dict
  returned: always
min_supported_release:
  description: Lowest supported release, or none.
  type: str
  returned: always
"""
