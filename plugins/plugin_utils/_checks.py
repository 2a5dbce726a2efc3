# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""Controller-side prestage checks (SPEC §4.1, §4.2): who may be prestaged, with which release.

The wording of every reason is dcmanager's; the same functions run at create time and again when a
step's precheck starts, so a subcloud that changed in between is judged by the same rule.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.distcloud.prestage.plugins.module_utils._release import (
    MIN_SW_DEPLOY_RELEASE,
    compare_releases,
    major_of,
)
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
# DC:dcmanager/common/prestage.py:87-99: a sw-deploy strategy that failed may have failed for want
# of a prestage, so that state passes too.
DEPLOY_STATUSES_ALLOWED = frozenset({"complete", "sw-deploy-apply-strategy-failed"})


def transient_reason(name: str, field: str, value: str) -> str:
    return (
        f"Subcloud {name} current {field} is '{value}'. "
        "Please wait until it finishes before running this operation."
    )


# One return per dcmanager check, in its order: past ruff's PLR0911 limit.
def initial_skip_reason(subcloud: Subcloud, prestage_status: str | None) -> str | None:  # noqa: PLR0911
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
    if subcloud.deploy_status not in DEPLOY_STATUSES_ALLOWED:
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


# The release rules of STARLINGX.md §5, judged on what the system controller said about itself
# (plugins/modules/sc_release_info.py), in dcmanager's words.
MSG_NOT_READY = "The requested release is not ready to be installed."
MSG_SW_DEPLOY_UNSUPPORTED = (
    "The requested software version is not supported, cannot prestage for software deploy."
)
MSG_SW_DEPLOY_NOT_DEPLOYED = (
    "The requested software version not found or not deployed in the system controller, cannot "
    "prestage for software deploy."
)
MSG_SC_DEPLOYING = (
    "Prestage operations are not allowed while system controller has a software deployment in "
    "progress."
)
# USM states from which a release can be installed (DC:dcmanager/common/utils.py:1596-1630)
READY_STATES = frozenset({"available", "deployed", "unavailable"})


# One return per release rule, in dcmanager's order: past ruff's PLR0911 limit.
def release_failure(facts: dict[str, Any], release: str, for_sw_deploy: bool) -> str | None:  # noqa: PLR0911
    """Why the system controller cannot serve release for this prestage (one line), or None.

    facts are sc_release_info's. The rules: DC:dcmanager/common/utils.py:2208-2231 (format, done by
    the caller), 2152-2205 and 2285-2313 (supported upgrades, for install), 1709-1725 (for software
    deployment: 24.09 or later, deployed on the system controller - any state when older than
    it), 1596-1630 and 1735-1740 (ready to be installed), 2679-2689 (no deployment in progress),
    in the order a strategy's creation meets them (sw_update_strategy.py:527-534).
    """
    sc_release = str(facts.get("sc_release") or "")
    releases = facts.get("software_releases") or []
    if not for_sw_deploy and release != sc_release:
        # get_sw_version aborts at once (utils.py:2152-2205), before the strategy's deployment
        # check (DC:dcmanager/api/controllers/v1/sw_update_strategy.py:527-534)
        supported = facts.get("supported_upgrades")
        if supported is None:
            return str(
                facts.get("upgrades_error") or "Error: unable to validate the release version."
            )
        if release not in supported:
            return (
                "Error: invalid release version parameter. "
                f"{release} is not a supported release version ({','.join(supported)})"
            )
    if facts.get("deployment_in_progress"):
        return MSG_SC_DEPLOYING
    if for_sw_deploy:
        if compare_releases(release, MIN_SW_DEPLOY_RELEASE) < 0:
            return MSG_SW_DEPLOY_UNSUPPORTED
        any_state = compare_releases(release, sc_release) < 0
        installed = {
            major_of(r.get("sw_version", ""))
            for r in releases
            if any_state or r.get("state") == "deployed"
        }
        if release not in installed:
            return MSG_SW_DEPLOY_NOT_DEPLOYED
    elif release != sc_release and not any(
        major_of(r.get("sw_version", "")) == release and r.get("state") in READY_STATES
        for r in releases
    ):
        return MSG_NOT_READY
    return None


def minimum_release_failure(facts: dict[str, Any], release: str) -> str | None:
    """The prestage playbook's own minimum rule (PR:prepare-env/tasks/main.yml:17-26), or why the
    minimum cannot be read."""
    minimum = facts.get("min_supported_release")
    if not minimum:
        return str(facts.get("upgrades_error") or "Error: unable to validate the release version.")
    if compare_releases(release, minimum) < 0:
        return (
            f"The specified software major release {release} is not supported. Minimum supported "
            f"release versions for prestage: {minimum}"
        )
    return None
