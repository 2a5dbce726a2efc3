# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""The options of the prestage_strategy action, shared by the action plugin and its docs module."""

from __future__ import annotations

from ansible_collections.distcloud.prestage.plugins.module_utils._formats import decimal_int
from ansible_collections.distcloud.prestage.plugins.module_utils._release import (
    RELEASE_FORMAT_ERROR,
    is_major_release,
)

PRESTAGE_STRATEGY_ARGS = dict(
    inventory_config=dict(type="path"),
    # the inventory plugin's registry as the inventory gives it to plays (an AWX job has no
    # inventory config of its own: its inventory was synced from one)
    registry=dict(type="path"),
    # what the system controller said about itself (a registered sc_release_info result)
    sc_facts=dict(type="dict", required=True),
    system_controller_host=dict(type="str"),
    state_dir=dict(type="path"),
    release=dict(type="str"),
    prestage_type=dict(type="str", default="for_install", choices=["for_install", "for_sw_deploy"]),
    subcloud_apply_type=dict(type="str", choices=["parallel", "serial"]),
    max_parallel_subclouds=dict(type="int"),
    stop_on_failure=dict(type="bool", default=False),
    force=dict(type="bool", default=False),
    group=dict(type="str"),
    limit=dict(type="str"),
    hosts=dict(type="list", elements="str", required=True),
    forks=dict(type="int"),
    retry_failed=dict(type="bool", default=False),
)

# The options whose value is a count: Ansible's int conversion takes "٣", " 3" and "3.0"
# (decimal.Decimal); these take ASCII digits only.
_COUNT_OPTIONS = ("max_parallel_subclouds", "forks")
# The play's extra var behind an option, as the user wrote it.
_EXTRA_VAR = {"group": "prestage_group"}


def option_problem(args):
    """Why the play's options (extra vars, survey answers) cannot be taken, in one line, or None.

    Checked on the strings given, before Ansible converts them (a YAML or JSON number is Ansible's
    to convert); the same format rules as the CLI's (module_utils/_formats.py).
    """
    release = args.get("release")
    if isinstance(release, str) and release != "" and not is_major_release(release):
        return RELEASE_FORMAT_ERROR
    for key in _COUNT_OPTIONS:
        value = args.get(key)
        if isinstance(value, str) and value != "" and decimal_int(value) is None:
            return f"Invalid {_EXTRA_VAR.get(key, key)} value {value!r}: not a whole number"
    group = args.get("group")
    if isinstance(group, str) and not group.isprintable():
        return f"Invalid {_EXTRA_VAR['group']} value {group!r}: not a subcloud group name or id"
    return None
