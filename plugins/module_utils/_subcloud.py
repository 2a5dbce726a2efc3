# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""What a subcloud says about itself, and the precheck rules judged on it (STARLINGX.md §5), in
dcmanager's and the prestage playbook's words.

Runs on StarlingX's Python 3.9 (standard library only).
"""

from __future__ import annotations

import ast
import re

from ansible_collections.distcloud.prestage.plugins.module_utils._release import (
    compare_releases,
    major_of,
)
from ansible_collections.distcloud.prestage.plugins.module_utils._tables import parse_table

# DC:dcmanager/common/prestage.py:155-167
SKIP_DUPLEX_STANDBY = (
    "Prestage for install on duplex subclouds is only allowed when controller-0 is active."
)
# DC:dcmanager/common/prestage.py:169-179
FAIL_MGMT_ALARMS = (
    "Subcloud has management affecting alarm(s). Please resolve the alarm condition(s) or use "
    "--force option and try again."
)
# PR:prepare-env/tasks/main.yml:28-42 (the transient list follows the message there)
FAIL_TRANSIENT = (
    "A release is in a transient state (deploying/removing) on the subcloud. Cannot prestage "
    "while a software operation is in progress."
)
# DC:dcmanager/common/prestage.py:276-308: the subcloud could not be asked
FAIL_QUERY = "Failed to retrieve subcloud system mode and system health."
ACTIVE_CONTROLLER = "Controller-Active"
GIB = 1024**3
MIB = 1024**2

# One shell runs every StarlingX command the precheck needs; each output is framed by markers.
_BEGIN = "@@dcprestage-begin "
_END = "@@dcprestage-end "
COMMAND_TIMEOUT = 120


def command_script(commands):
    """A bash script running commands ({name: command line}) after sourcing openrc, as the
    prestage playbooks do, each output framed so that parse_sections() can split them."""
    lines = ["[ -r /etc/platform/openrc ] && . /etc/platform/openrc >/dev/null 2>&1"]
    for name, command in commands.items():
        lines.append(f"echo '{_BEGIN}{name}'")
        lines.append(f"timeout {COMMAND_TIMEOUT} {command} </dev/null 2>&1")
        lines.append(f'echo "{_END}{name} $?"')
    return "\n".join(lines) + "\n"


def parse_sections(output):
    """{name: (rc, text)} from the output of command_script()."""
    sections = {}
    name = None
    body = []
    for line in (output or "").splitlines():
        if line.startswith(_BEGIN):
            name, body = line[len(_BEGIN) :].strip(), []
        elif line.startswith(_END) and name is not None:
            parts = line[len(_END) :].split()
            rc = int(parts[1]) if len(parts) > 1 and parts[1].lstrip("-").isdigit() else -1
            sections[name] = (rc, "\n".join(body))
            name = None
        elif name is not None:
            body.append(line)
    return sections


def management_alarms_fail(health):
    """dcmanager's reading of the subcloud's health (DC:dcmanager/common/utils.py:739-753): the
    alarm check failed and not '[0] of which are management affecting'."""
    failed = re.findall(r"No alarms: \[Fail\]", health or "")
    no_mgmt = re.findall(r"\[0\] of which are management affecting", health or "")
    return bool(failed) and not no_mgmt


def controller_0_active(host_show):
    """Whether `system host-show controller-0` has capabilities Personality Controller-Active
    (DC:dcmanager/common/utils.py:2928-2929); None when the output says nothing."""
    for row in parse_table(host_show):
        if row.get("Property") != "capabilities":
            continue
        value = row.get("Value", "")
        try:
            capabilities = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            capabilities = None
        if isinstance(capabilities, dict):
            return capabilities.get("Personality") == ACTIVE_CONTROLLER
        return ACTIVE_CONTROLLER in value
    return None


def transient_failure(software_list):
    """The playbook's refusal while a release is deploying or removing on the subcloud (it tests
    the whole `software list` output: PR:prepare-env/tasks/main.yml:36-42), with the rows."""
    if not re.search(r"deploying|removing", software_list or ""):
        return None
    rows = [
        "{}: {}".format(row.get("Release", "?"), row.get("State", "?"))
        for row in parse_table(software_list)
        if re.search(r"deploying|removing", row.get("State", ""))
    ]
    return FAIL_TRANSIENT + (" ({})".format(", ".join(rows)) if rows else "")


def lower_release_failure(release, subcloud_version):
    """For software deployment, a release below the subcloud's (DC:dcmanager/common/utils.py:
    1727-1733)."""
    if subcloud_version and compare_releases(release, major_of(subcloud_version)) < 0:
        return (
            f"The requested software version ({release}) is lower than the current subcloud "
            f"software version ({major_of(subcloud_version)})."
        )
    return None


def space_failure(path, needed, available, what):
    """Our own free space check (SPEC §4, §10)."""
    return (
        f"Not enough free space in {path} for {what}: {needed / MIB:.1f} MiB needed, "
        f"{available / MIB:.1f} MiB available."
    )


def precheck_reason(request, facts):  # noqa: PLR0911 - one return per check, in dcmanager's order
    """(kind, reason) for the subcloud's facts, kind 'skip' or 'fail', or (None, None).

    request: release, for_sw_deploy, force. facts: sw_version, system_mode, health (text; None
    when it could not be read), controller_0_active (None: unknown), software_list,
    needed_bytes, free_bytes, space_path.
    Order: dcmanager's precheck (a release lower than the subcloud's, the query, duplex skip,
    alarms; STARLINGX.md §5), then the playbook's prepare-env (transient releases), then our
    free space check.
    """
    duplex_install = facts.get("system_mode") == "duplex" and not request["for_sw_deploy"]
    if request["for_sw_deploy"]:
        # the release rules run before the subcloud is queried (DC:dcmanager/common/prestage.py:
        # 135-151, utils.py:1727-1733)
        failure = lower_release_failure(request["release"], facts.get("sw_version"))
        if failure:
            return "fail", failure
    if (duplex_install and facts.get("controller_0_active") is None) or (
        not request["force"] and facts.get("health") is None
    ):
        return "fail", FAIL_QUERY
    if duplex_install and not facts.get("controller_0_active"):
        # only 'duplex' (not 'duplex-direct') and only for install: prestage.py:155-167
        return "skip", SKIP_DUPLEX_STANDBY
    if not request["force"] and management_alarms_fail(facts.get("health")):
        return "fail", FAIL_MGMT_ALARMS
    failure = transient_failure(facts.get("software_list"))
    if failure:
        return "fail", failure
    needed, free = facts.get("needed_bytes") or 0, facts.get("free_bytes")
    if free is not None and needed > free:
        return "fail", space_failure(
            facts.get("space_path"),
            needed,
            free,
            "the release {} content".format(request["release"]),
        )
    return None, None
