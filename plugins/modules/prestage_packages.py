#!/usr/bin/python
# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
# This module is implemented by an action plugin (plugins/action/prestage_packages.py).
from __future__ import annotations

DOCUMENTATION = r"""
module: prestage_packages
short_description: Transfer a release's software to a subcloud and verify it (packages phase)
version_added: 0.1.0
description:
  - The packages phase of the C(distcloud.prestage.prestage_install) and
    C(distcloud.prestage.prestage_sw_deploy) roles, in one task per subcloud.
  - For install, rsync (with delete) copies the system controller's release feed
    C(rel-<release>/ostree_repo/) to O(platform_backup_dir)C(/<release>/ostree_repo/) and its
    patch metadata to C(.../patches/metadata/); a stale completion marker and checksum are
    deleted before any content changes. Then one module run
    (M(distcloud.prestage.prestage_packages_verify)) computes the checksum on the subcloud,
    compares it with the system controller's, writes C(.ostree_repo_checksum) and only then the
    completion marker C(.ostree_rsync_completed), and removes prestaged releases below the
    minimum supported release. A mismatch (content that rsync's size-and-time check took as
    equal) is repaired once by comparing content (C(--checksum)); a mismatch after that fails
    the task and leaves no marker.
  - For software deployment, the system controller's software directory of the release (metadata
    and release directories) is copied to O(software_dir)C(/<release>/) (updates put in place at
    the end) and verified.
  - Nothing is transferred when the precheck found the content already there (marker and
    checksum match; for software deployment, the same or a higher patch level).
  - rsync runs on the controller over the host's own SSH settings (Ansible's ssh command line,
    ControlPath, password through sshpass' descriptor) and becomes root on the subcloud through
    sudo with the become password sent ahead of rsync's stream, so a sudo that asks for the
    password every time works; see the collection README for why not
    M(ansible.posix.synchronize).
  - On the phase timeout the transfer is stopped and the task fails with RV(prestage_timeout).
  - In check mode rsync runs with C(--dry-run) and RV(prestage_would_transfer) says what would
    move; nothing changes.
extends_documentation_fragment:
  - distcloud.prestage.prestage
  - distcloud.prestage.prestage.platform_backup_dir
  - distcloud.prestage.prestage.software_dir
options:
  precheck:
    description: The registered result of M(distcloud.prestage.prestage_precheck) for this host.
    type: dict
    required: true
  timeout:
    description: Seconds the whole phase may take (transfer and verification).
    type: int
    default: 3600
  io_timeout:
    description: Seconds without any data exchanged after which rsync gives up (a lost link).
    type: int
    default: 120
  min_supported_release:
    description: Prestaged releases below this one are removed. Default the precheck's.
    type: str
  rsync_path:
    description: The rsync command on the controller.
    type: str
    default: rsync
notes:
  - Needs C(rsync) on both sides and C(sshpass) on the controller for password logins.
  - Become must be sudo (StarlingX's).
author:
  - distcloud.prestage contributors (@distcloud-prestage)
"""

EXAMPLES = r"""
- name: Transfer and verify the release
  distcloud.prestage.prestage_packages:
    release: "24.09"
    precheck: "{{ prestage_precheck }}"
  become: true
  register: prestage_packages
"""

RETURN = r"""
prestage_packages_verified:
  description: The subcloud holds the release content, verified.
  type: bool
  returned: success
prestage_transfer:
  description:
    - What rsync moved (sums over its runs; C(passes) per run) - C(files_transferred),
      C(literal_bytes) (content bytes sent), C(bytes_sent), C(bytes_received), C(deleted),
      C(seconds).
  type: dict
  returned: always
prestage_would_transfer:
  description: In check mode, the files and bytes that would be transferred.
  type: dict
  returned: check mode
prestage_repaired:
  description: The mismatch found after the first transfer and repaired.
  type: str
  returned: when a repair pass ran
prestage_timeout:
  description: The phase timed out.
  type: bool
  returned: on timeout
prestage_versions_found:
  description: Releases prestaged on the subcloud after the phase.
  type: dict
  returned: success
"""
