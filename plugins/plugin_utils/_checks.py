# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""Controller-side prestage checks (SPEC §4.1, §4.2): who may be prestaged, with which release.

The wording of every reason is dcmanager's; the same functions run at create time and again when a
step's precheck starts, so a subcloud that changed in between is judged by the same rule.
"""

from __future__ import annotations

import os

from ansible_collections.distcloud.prestage.plugins.module_utils._release import (
    MIN_SW_DEPLOY_RELEASE,
    compare_releases,
    major_of,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._config import PrestageConfig
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError
from ansible_collections.distcloud.prestage.plugins.plugin_utils._registry import Subcloud

PRESTAGE_STATUS_PRESTAGING = "prestaging"
# States in which another operation owns the subcloud (dcmanager's transitory states).
TRANSIENT_PRESTAGE_STATUSES = frozenset({"prestaging", "prestaging-packages", "prestaging-images"})
TRANSIENT_BACKUP_STATUSES = frozenset(
    {"pre-backup", "backing-up", "pre-restore", "restoring", "restore-in-progress"}
)
TRANSIENT_DEPLOY_STATUSES = frozenset(
    {
        "pre-install", "installing", "pre-bootstrap", "bootstrapping", "pre-config",
        "configuring", "pre-deploy", "deploying", "pre-rehome", "rehoming", "pre-restore",
        "restoring", "pre-enroll", "enrolling", "pre-init-enroll", "initiating-enroll",
        "migrating", "prestaging",
    }
)  # fmt: skip
DEPLOY_STATUS_DONE = "complete"


def transient_reason(name: str, field: str, value: str) -> str:
    return (
        f"Subcloud {name} current {field} is '{value}'. "
        "Please wait until it finishes before running this operation."
    )


def initial_skip_reason(subcloud: Subcloud, prestage_status: str | None) -> str | None:
    """Why the subcloud cannot be prestaged now (a skip, not a failure), or None (§4.1)."""
    if subcloud.availability != "online":
        return "Subcloud is offline."
    if subcloud.management != "managed":
        return "Subcloud is not managed."
    if prestage_status in TRANSIENT_PRESTAGE_STATUSES:
        return transient_reason(subcloud.name, "prestage_status", str(prestage_status))
    if subcloud.backup_status in TRANSIENT_BACKUP_STATUSES:
        return transient_reason(subcloud.name, "backup_status", str(subcloud.backup_status))
    if subcloud.deploy_status in TRANSIENT_DEPLOY_STATUSES:
        return transient_reason(subcloud.name, "deploy_status", subcloud.deploy_status)
    if subcloud.deploy_status != DEPLOY_STATUS_DONE:
        return "Prestage operation is not allowed when subcloud deploy is in progress."
    return None


def subcloud_release_failure(
    subcloud_version: str, release: str, for_sw_deploy: bool
) -> str | None:
    """A release rule that fails the step for this subcloud (§4.2), or None."""
    if for_sw_deploy and compare_releases(release, major_of(subcloud_version)) < 0:
        return (
            f"The requested software version ({release}) is lower than the current subcloud "
            f"software version ({major_of(subcloud_version)})."
        )
    return None


def check_release_on_system_controller(
    config: PrestageConfig, release: str, for_sw_deploy: bool
) -> None:
    """PrestageError unless the system controller can serve release for this prestage type."""
    not_imported = f"Specified release is not supported. {release} version must first be imported"
    own = release == config.sc_release
    if for_sw_deploy:
        if compare_releases(release, MIN_SW_DEPLOY_RELEASE) < 0:
            raise PrestageError(
                f"Prestage for software deployment is not supported for release {release}: "
                f"it requires release {MIN_SW_DEPLOY_RELEASE} or later."
            )
        if not own and not os.path.isdir(config.software_release_dir(release)):
            raise PrestageError(not_imported)
    elif not own and not os.path.isdir(config.feed_release_dir(release)):
        raise PrestageError(not_imported)
