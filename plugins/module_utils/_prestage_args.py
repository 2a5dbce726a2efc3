# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""Argument specs the prestage modules and action plugins share: composed into each module's
spec, never copied (documented once in the distcloud.prestage.prestage doc fragment)."""

from __future__ import annotations

# StarlingX's locations on a subcloud.
PLATFORM_BACKUP_DIR = "/opt/platform-backup"
SOFTWARE_DIR = "/opt/software"
DOCKER_DIR = "/var/lib/docker"

RELEASE_ARGS = dict(
    release=dict(type="str", required=True),
    for_sw_deploy=dict(type="bool", default=False),
)
PLATFORM_BACKUP_DIR_ARG = dict(platform_backup_dir=dict(type="path", default=PLATFORM_BACKUP_DIR))
SOFTWARE_DIR_ARG = dict(software_dir=dict(type="path", default=SOFTWARE_DIR))
DOCKER_DIR_ARG = dict(docker_dir=dict(type="path", default=DOCKER_DIR))
# A step of a phase: what is left of the phase's time, and the phase's whole timeout (named in
# the timeout message).
STEP_TIMEOUT_ARGS = dict(
    timeout=dict(type="int", default=3600),
    phase_timeout=dict(type="int", default=3600),
)
