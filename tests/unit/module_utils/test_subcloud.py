"""The subcloud's precheck rules and their messages (plugins/module_utils/_subcloud.py), as
dcmanager (DC:dcmanager/common/prestage.py:119-179,276-308; utils.py:739-753,1727-1733,2928)
and the prestage playbook (PR:prepare-env/tasks/main.yml:28-42) judge them.
"""

from __future__ import annotations

import subprocess

import pytest

from ansible_collections.distcloud.prestage.plugins.module_utils import _subcloud as sub

HEALTH_OK = """System Health:
All hosts are provisioned: [OK]
All hosts are unlocked/enabled: [OK]
No alarms: [OK]
All kubernetes nodes are ready: [OK]
"""
HEALTH_MINOR_ONLY = """System Health:
All hosts are provisioned: [OK]
No alarms: [Fail]
[2] alarms found, [0] of which are management affecting
All kubernetes nodes are ready: [OK]
"""
HEALTH_MGMT = """System Health:
All hosts are provisioned: [OK]
No alarms: [Fail]
[2] alarms found, [1] of which are management affecting
All kubernetes nodes are ready: [OK]
"""
HEALTH_FAIL_NO_SUMMARY = "System Health:\nNo alarms: [Fail]\n"
# a check that failed for another reason does not count (only the two regexes do)
HEALTH_OTHER_FAIL = "System Health:\nAll hosts are provisioned: [Fail]\nNo alarms: [OK]\n"


@pytest.mark.parametrize(
    ("health", "fails"),
    [
        (HEALTH_OK, False),
        (HEALTH_MINOR_ONLY, False),
        (HEALTH_MGMT, True),
        (HEALTH_FAIL_NO_SUMMARY, True),
        (HEALTH_OTHER_FAIL, False),
        ("", False),
    ],
)
def test_management_alarms_read_with_dcmanagers_two_regexes(health: str, fails: bool) -> None:
    """utils.py:739-753: 'No alarms: [Fail]' found and '[0] of which are management affecting'
    not found."""
    assert sub.management_alarms_fail(health) is fails


def host_show(capabilities: str) -> str:
    rows = [
        ("capabilities", capabilities),
        ("hostname", "controller-0"),
        ("personality", "controller"),
    ]
    width = max(len(value) for _name, value in rows)
    border = "+--------------+-" + "-" * width + "-+"
    lines = [border, "| Property     | " + "Value".ljust(width) + " |", border]
    lines += [f"| {name.ljust(12)} | {value.ljust(width)} |" for name, value in rows]
    return "\n".join([*lines, border])


def test_controller_0_active_reads_the_capabilities_personality() -> None:
    """utils.py:2928-2929: host.capabilities['Personality'] == 'Controller-Active'."""
    active = "{'stor_function': 'monitor', 'Personality': 'Controller-Active'}"
    standby = "{'stor_function': 'monitor', 'Personality': 'Controller-Standby'}"
    assert sub.controller_0_active(host_show(active)) is True
    assert sub.controller_0_active(host_show(standby)) is False
    assert sub.controller_0_active(host_show("{}")) is False
    assert sub.controller_0_active(host_show("Personality: Controller-Active (unparsed)")) is True
    assert sub.controller_0_active("") is None


SOFTWARE_LIST = """+-------------------+-------+-------------+
| Release           |  RR   |    State    |
+-------------------+-------+-------------+
| starlingx-25.09.0 | True  |  deployed   |
| starlingx-25.09.1 | False | {state} |
+-------------------+-------+-------------+
"""


@pytest.mark.parametrize("state", ["deploying", "removing"])
def test_transient_release_fails_with_the_playbooks_message(state: str) -> None:
    """PR:prepare-env/tasks/main.yml:36-42: the whole `software list` output matches
    'deploying|removing'; the rows follow the message."""
    failure = sub.transient_failure(SOFTWARE_LIST.format(state=state.center(11)))
    assert failure == (
        "A release is in a transient state (deploying/removing) on the subcloud. Cannot prestage "
        f"while a software operation is in progress. (starlingx-25.09.1: {state})"
    )


def test_transient_state_is_matched_anywhere_in_the_output() -> None:
    assert sub.transient_failure("Warning: a release is removing\nNo data\n") == sub.FAIL_TRANSIENT
    for state in ("deployed", "available", "unavailable", "committed"):
        assert sub.transient_failure(SOFTWARE_LIST.format(state=state.center(11))) is None
    assert sub.transient_failure("") is None


def test_lower_release_for_sw_deploy_in_dcmanagers_words() -> None:
    """utils.py:1727-1733."""
    assert sub.lower_release_failure("24.09", "25.09") == (
        "The requested software version (24.09) is lower than the current subcloud software "
        "version (25.09)."
    )
    assert sub.lower_release_failure("25.09", "25.09") is None
    assert sub.lower_release_failure("26.03", "25.09") is None
    assert sub.lower_release_failure("24.09", None) is None


# ------------------------------------------------------------------------- precheck_reason

FACTS = {
    "sw_version": "25.09",
    "system_mode": "simplex",
    "health": HEALTH_OK,
    "controller_0_active": True,
    "software_list": SOFTWARE_LIST.format(state="deployed".center(11)),
    "needed_bytes": 0,
    "free_bytes": 10 * sub.GIB,
    "space_path": "/opt/platform-backup",
}


def reason(release: str = "25.09", sw_deploy: bool = False, force: bool = False, **facts) -> tuple:
    request = {"release": release, "for_sw_deploy": sw_deploy, "force": force}
    return sub.precheck_reason(request, {**FACTS, **facts})


def test_healthy_subcloud_passes() -> None:
    assert reason() == (None, None)
    assert reason(sw_deploy=True) == (None, None)


def test_duplex_standby_skips_install_only_and_not_duplex_direct() -> None:
    """prestage.py:155-167: system_mode == 'duplex' and for install."""
    skip = (
        "skip",
        "Prestage for install on duplex subclouds is only allowed when controller-0 is active.",
    )
    assert reason(system_mode="duplex", controller_0_active=False) == skip
    assert reason(system_mode="duplex", controller_0_active=True) == (None, None)
    assert reason(system_mode="duplex", controller_0_active=False, sw_deploy=True) == (None, None)
    assert reason(system_mode="duplex-direct", controller_0_active=False) == (None, None)
    assert reason(system_mode="duplex-direct", controller_0_active=None) == (None, None)


def test_query_failures_fail_with_dcmanagers_message() -> None:
    """prestage.py:276-308: the subcloud could not be asked."""
    query = ("fail", "Failed to retrieve subcloud system mode and system health.")
    assert reason(health=None) == query
    assert reason(system_mode="duplex", controller_0_active=None) == query
    assert reason(health=None, force=True) == (None, None)  # health is not needed with force


def test_management_alarms_fail_unless_forced() -> None:
    """prestage.py:169-179."""
    alarms = (
        "fail",
        "Subcloud has management affecting alarm(s). Please resolve the alarm "
        "condition(s) or use --force option and try again.",
    )
    assert reason(health=HEALTH_MGMT) == alarms
    assert reason(health=HEALTH_MGMT, force=True) == (None, None)
    assert reason(health=HEALTH_MINOR_ONLY) == (None, None)


def test_lower_release_fails_sw_deploy_only() -> None:
    lower = (
        "fail",
        "The requested software version (24.09) is lower than the current subcloud "
        "software version (25.09).",
    )
    assert reason("24.09", sw_deploy=True) == lower
    assert reason("24.09") == (None, None)


def test_free_space_is_ours_and_counts_bytes() -> None:
    """SPEC §4, §10."""
    assert reason(needed_bytes=2 * sub.MIB, free_bytes=sub.MIB) == (
        "fail",
        "Not enough free space in /opt/platform-backup for the release 25.09 content: 2.0 MiB "
        "needed, 1.0 MiB available.",
    )
    assert reason(needed_bytes=sub.MIB, free_bytes=sub.MIB) == (None, None)
    assert reason(needed_bytes=sub.GIB, free_bytes=None) == (None, None)


def test_checks_run_in_dcmanagers_then_the_playbooks_order() -> None:
    """dcmanager's release rule, query, duplex, alarms (prestage.py:135-179), then prepare-env's
    transient check, then our space check."""
    transient = SOFTWARE_LIST.format(state="deploying".center(11))
    everything = {
        "health": HEALTH_MGMT,
        "software_list": transient,
        "needed_bytes": 2,
        "free_bytes": 1,
    }
    assert reason("24.09", sw_deploy=True, **{**everything, "health": None})[1].startswith(
        "The requested software version (24.09) is lower"
    )
    assert reason(**{**everything, "health": None})[1] == sub.FAIL_QUERY
    assert reason(system_mode="duplex", controller_0_active=False, **everything)[0] == "skip"
    assert reason(**everything)[1] == sub.FAIL_MGMT_ALARMS
    assert reason(force=True, **everything)[1].startswith(sub.FAIL_TRANSIENT)
    assert reason(force=True, **{**everything, "software_list": ""})[1].startswith(
        "Not enough free space"
    )


def test_command_script_sections_round_trip() -> None:
    """One shell runs every precheck command after sourcing openrc; each output is framed."""
    script = sub.command_script({"one": "echo a; echo b", "two": "false", "three": "printf ''"})
    result = subprocess.run(
        ["bash", "-s"], input=script, capture_output=True, text=True, check=False
    )
    assert sub.parse_sections(result.stdout) == {
        "one": (0, "a\nb"),
        "two": (1, ""),
        "three": (0, ""),
    }
