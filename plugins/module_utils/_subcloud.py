# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""What a subcloud says about itself: StarlingX command output parsed, and the subcloud-side
precheck rules (SPEC §4.3) with dcmanager's wording.

Runs on the subclouds' Python (3.8+): unannotated, standard library only.
"""

from __future__ import annotations

import ast
import re

from ansible_collections.distcloud.prestage.plugins.module_utils._release import (
    major_of,
    release_key,
)

SKIP_DUPLEX_STANDBY = (
    "Prestage for install on duplex subclouds is only allowed when controller-0 is active."
)
FAIL_MGMT_ALARMS = (
    "Subcloud has management affecting alarm(s). Please resolve the alarm condition(s) or use "
    "--force option and try again."
)
GIB = 1024**3
MIB = 1024**2

# One shell runs every StarlingX command the precheck needs; each output is framed by markers.
_BEGIN = "@@dcprestage-begin "
_END = "@@dcprestage-end "
COMMAND_TIMEOUT = 120


def command_script(commands):
    """A bash script running commands ({name: argv string}) after sourcing openrc when present,
    each output framed so that parse_sections() can split them."""
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


def parse_table(text):
    """Rows of a PrettyTable (as StarlingX clients print them) as dicts keyed by header."""
    headers = None
    rows = []
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line.startswith("|"):
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if headers is None:
            headers = cells
        elif len(cells) == len(headers):
            rows.append(dict(zip(headers, cells)))  # noqa: B905 - strict= needs Python 3.10
    return rows


def mgmt_affecting_alarms(text):
    """Alarm IDs of `fm alarm-list --mgmt_affecting` rows that are management affecting."""
    alarms = []
    for row in parse_table(text):
        flag = row.get("Management Affecting", "")
        if flag.strip().lower() == "true":
            alarms.append(row.get("Alarm ID", "?"))
    return alarms


def controller_personality(text):
    """'active' / 'standby' / None from `system host-show controller-0`."""
    for row in parse_table(text):
        if row.get("Property") != "capabilities":
            continue
        value = row.get("Value", "")
        try:
            capabilities = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            capabilities = {}
        personality = (
            str(capabilities.get("Personality", "")) if isinstance(capabilities, dict) else ""
        )
        if not personality:
            match = re.search(r"Controller-(Active|Standby)", value)
            personality = match.group(0) if match else ""
        lowered = personality.lower()
        if "active" in lowered:
            return "active"
        if "standby" in lowered:
            return "standby"
    return None


def software_operation(deploy_show, software_list):
    """A one-line description of a software operation in progress, or None.

    `software deploy show` lists a deploy when one exists; `software list` shows releases in a
    transient state (deploying, removing) while it runs.
    """
    for row in parse_table(deploy_show):
        source = row.get("From Release", "?")
        target = row.get("To Release", "?")
        state = row.get("State", "?")
        return f"software deploy from {source} to {target} is in state {state}"
    for row in parse_table(software_list):
        state = row.get("State", "").strip().lower()
        if state in ("deploying", "removing"):
            return "release {} is {}".format(row.get("Release", "?"), state)
    return None


def software_levels(software_list, release):
    """Levels of release (24.09.0, 24.09.1) listed by `software list` on the subcloud."""
    levels = set()
    for row in parse_table(software_list):
        match = re.search(r"(\d+\.\d+(?:\.\d+)?)$", row.get("Release", ""))
        if match and major_of(match.group(1)) == release:
            levels.add(match.group(1))
    return levels


def software_operation_failure(description):
    return (
        "Prestage operation is not allowed while a software operation is in progress "
        f"({description})."
    )


def space_failure(path, needed, available, what):
    return (
        f"Not enough free space in {path} for {what}: {needed / MIB:.1f} MiB needed, "
        f"{available / MIB:.1f} MiB available."
    )


def docker_space_failure(path, available, required_gib):
    return (
        f"Not enough free space in {path} to prestage images: {available / GIB:.2f} GiB "
        f"available, at least {_number(required_gib)} GiB required."
    )


def _number(value):
    return (f"{value:g}") if isinstance(value, float) else str(value)


def releases_below(names, minimum):
    """Names (MM.mm) lower than minimum."""
    if not minimum:
        return []
    return [name for name in names if release_key(name) < release_key(minimum)]
