"""The release rules judged on what the system controller serves (plugins/plugin_utils/_checks.py:
release_failure, minimum_release_failure), next to the module_utils facts they read
(_sc_facts.py), in dcmanager's and the prestage playbook's words:

- DC:dcmanager/common/utils.py:1552-1593 (sw-deploy, deployed on the system controller),
  1596-1630 (ready to be installed), 1653-1740 (the order of the release rules), 2152-2205 and
  2285-2313 (supported upgrades), 2679-2689 (deployment in progress);
- DC:dcmanager/api/controllers/v1/sw_update_strategy.py:527-534 (their order at creation);
- PR:prepare-env/tasks/main.yml:17-26 (the playbook's minimum).
"""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.distcloud.prestage.plugins.plugin_utils._checks import (
    MSG_NOT_READY,
    MSG_SC_DEPLOYING,
    MSG_SW_DEPLOY_NOT_DEPLOYED,
    MSG_SW_DEPLOY_UNSUPPORTED,
    minimum_release_failure,
    release_failure,
)

UNVALIDATED = "Error: unable to validate the release version."


def row(release_id: str, state: str) -> dict[str, str]:
    return {"release_id": release_id, "state": state, "sw_version": release_id.split("-")[1]}


def facts(*rows: dict[str, str], **overrides: Any) -> dict[str, Any]:
    """A 25.09 system controller supporting upgrades from 24.09 (STARLINGX.md §7)."""
    base: dict[str, Any] = {
        "sc_release": "25.09",
        "supported_upgrades": ["24.09"],
        "min_supported_release": "24.09",
        "upgrades_error": None,
        "software_releases": list(rows),
        "deployment_in_progress": None,
    }
    return {**base, **overrides}


SC_OWN = [row("starlingx-25.09.0", "deployed"), row("starlingx-25.09.1", "deployed")]


def test_messages_are_dcmanagers() -> None:
    assert MSG_NOT_READY == "The requested release is not ready to be installed."
    assert MSG_SW_DEPLOY_UNSUPPORTED == (
        "The requested software version is not supported, cannot prestage for software deploy."
    )
    assert MSG_SW_DEPLOY_NOT_DEPLOYED == (
        "The requested software version not found or not deployed in the system controller, "
        "cannot prestage for software deploy."
    )
    assert MSG_SC_DEPLOYING == (
        "Prestage operations are not allowed while system controller has a software deployment "
        "in progress."
    )


# ------------------------------------------------------------------------------- install


def test_install_of_the_sc_release_needs_no_list_at_all() -> None:
    """utils.py:2193-2194 and 1619-1620: the system controller's own release is valid as is."""
    assert (
        release_failure(facts(supported_upgrades=None, software_releases=[]), "25.09", False)
        is None
    )


def test_install_release_not_in_supported_upgrades_lists_them_in_file_order() -> None:
    """utils.py:2194-2205 via get_sw_version's 400: 'Error: invalid release version parameter.'
    + ValidateFail's text, the supported versions comma-joined as the file lists them."""
    many = facts(supported_upgrades=["25.09", "26.03"], sc_release="26.10")
    assert release_failure(many, "24.09", False) == (
        "Error: invalid release version parameter. 24.09 is not a supported release version "
        "(25.09,26.03)"
    )
    assert release_failure(facts(), "22.12", False) == (
        "Error: invalid release version parameter. 22.12 is not a supported release version (24.09)"
    )


def test_install_without_supported_upgrades_cannot_be_validated() -> None:
    """utils.py:2176-2177,2296-2305: InternalError -> 500 'unable to validate'."""
    assert release_failure(facts(supported_upgrades=None), "24.09", False) == UNVALIDATED
    missing = facts(supported_upgrades=None, upgrades_error="Error: something else.")
    assert release_failure(missing, "24.09", False) == "Error: something else."


@pytest.mark.parametrize(
    ("state", "ready"),
    [
        ("available", True),
        ("deployed", True),
        ("unavailable", True),
        ("deploying", False),
        ("removing", False),
        ("committed", False),
    ],
)
def test_install_release_ready_in_available_deployed_or_unavailable(
    state: str, ready: bool
) -> None:
    """utils.py:1596-1630: a USM release of that major release in one of three states."""
    listed = facts(row("starlingx-24.09.0", "deploying"), row("starlingx-24.09.1", state))
    assert release_failure(listed, "24.09", False) == (None if ready else MSG_NOT_READY)


def test_install_release_with_no_usm_release_is_not_ready() -> None:
    assert release_failure(facts(*SC_OWN), "24.09", False) == MSG_NOT_READY


# ---------------------------------------------------------------------------- sw-deploy


def test_sw_deploy_needs_24_09() -> None:
    """utils.py:1709-1715."""
    assert release_failure(facts(row("starlingx-22.12.0", "deployed")), "22.12", True) == (
        MSG_SW_DEPLOY_UNSUPPORTED
    )


def test_sw_deploy_of_an_older_release_takes_any_state() -> None:
    """utils.py:1552-1593: state filter removed below the system controller's release."""
    for state in ("unavailable", "available", "deployed", "committed"):
        assert release_failure(facts(row("starlingx-24.09.1", state)), "24.09", True) is None
    assert release_failure(facts(*SC_OWN), "24.09", True) == MSG_SW_DEPLOY_NOT_DEPLOYED


def test_sw_deploy_of_the_sc_release_or_later_must_be_deployed() -> None:
    assert release_failure(facts(*SC_OWN), "25.09", True) is None
    available = facts(row("starlingx-25.09.0", "available"))
    assert release_failure(available, "25.09", True) == MSG_SW_DEPLOY_NOT_DEPLOYED
    assert release_failure(facts(row("starlingx-26.03.0", "deployed")), "26.03", True) is None
    assert release_failure(facts(row("starlingx-26.03.0", "available")), "26.03", True) == (
        MSG_SW_DEPLOY_NOT_DEPLOYED
    )


def test_sw_deploy_ignores_supported_upgrades() -> None:
    assert release_failure(facts(*SC_OWN, supported_upgrades=None), "25.09", True) is None


# ---------------------------------------------------------------------------------- order


def test_a_deployment_in_progress_refuses_every_release() -> None:
    """utils.py:2679-2689."""
    deploying = facts(*SC_OWN, deployment_in_progress="software deploy from 25.09.0 to 25.09.1")
    assert release_failure(deploying, "25.09", False) == MSG_SC_DEPLOYING
    assert release_failure(deploying, "25.09", True) == MSG_SC_DEPLOYING


def test_rules_come_in_the_order_strategy_creation_meets_them() -> None:
    """sw_update_strategy.py:527-534: get_sw_version's supported-upgrades abort, then
    validate_prestage's deployment check, then the message of the other release rules."""
    deploying = "software deploy from 25.09.0 to 25.09.1 is in state deploy-host"
    assert release_failure(facts(deployment_in_progress=deploying), "22.12", False).startswith(
        "Error: invalid release version parameter."
    )
    assert release_failure(facts(deployment_in_progress=deploying), "24.09", False) == (
        MSG_SC_DEPLOYING
    )
    assert release_failure(facts(deployment_in_progress=deploying), "22.12", True) == (
        MSG_SC_DEPLOYING
    )
    assert release_failure(facts(deployment_in_progress=deploying), "26.03", True) == (
        MSG_SC_DEPLOYING
    )


# -------------------------------------------------------------------------------- minimum


def test_minimum_release_is_the_playbooks() -> None:
    """PR:prepare-env/tasks/main.yml:17-26 (the folded message joins its lines with a space)."""
    assert minimum_release_failure(facts(), "22.12") == (
        "The specified software major release 22.12 is not supported. Minimum supported release "
        "versions for prestage: 24.09"
    )
    assert minimum_release_failure(facts(), "24.09") is None
    assert minimum_release_failure(facts(), "26.03") is None


def test_minimum_release_unreadable() -> None:
    assert minimum_release_failure(facts(min_supported_release=None), "24.09") == UNVALIDATED
    broken = facts(min_supported_release=None, upgrades_error="Error: broken.")
    assert minimum_release_failure(broken, "24.09") == "Error: broken."
