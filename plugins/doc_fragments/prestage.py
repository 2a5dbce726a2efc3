# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations


class ModuleDocFragment:
    # The release and the kind of prestage (plugins/module_utils/_prestage_args.py RELEASE_ARGS)
    DOCUMENTATION = r"""
options:
  release:
    description: The release to prestage, C(MM.mm).
    type: str
    required: true
  for_sw_deploy:
    description: Prestage for software deployment instead of for install.
    type: bool
    default: false
"""

    PLATFORM_BACKUP_DIR = r"""
options:
  platform_backup_dir:
    description: Where a subcloud keeps content prestaged for install (C(<dir>/<release>/)).
    type: path
    default: /opt/platform-backup
"""

    SOFTWARE_DIR = r"""
options:
  software_dir:
    description: Where a subcloud keeps software prestaged for deployment (C(<dir>/<release>/)).
    type: path
    default: /opt/software
"""

    DOCKER_DIR = r"""
options:
  docker_dir:
    description: The subcloud's docker directory, whose free space the images phase needs.
    type: path
    default: /var/lib/docker
"""

    # A step of a phase (plugins/module_utils/_prestage_args.py STEP_TIMEOUT_ARGS)
    STEP_TIMEOUT = r"""
options:
  timeout:
    description: Seconds this step may take (what is left of the phase's time).
    type: int
    default: 3600
  phase_timeout:
    description: The phase's whole timeout, for the message when it runs out.
    type: int
    default: 3600
"""
