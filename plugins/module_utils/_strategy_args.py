# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""The options of the prestage_strategy action, shared by the action plugin and its docs module."""

from __future__ import annotations

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
)
