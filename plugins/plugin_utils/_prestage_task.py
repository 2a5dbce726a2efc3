# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""What the prestage action plugins share: the subcloud as the inventory describes it, the
phase results and their messages."""

from __future__ import annotations

from typing import Any

from ansible_collections.distcloud.prestage.plugins.plugin_utils._registry import Subcloud


def subcloud_from_vars(name: str, task_vars: dict[str, Any]) -> Subcloud:
    """The subcloud as the inventory plugin describes it (subcloud_* host variables); variables
    a plain inventory lacks take dcmanager's values of a deployed, online, managed subcloud."""

    def var(key: str, default: Any) -> Any:
        value = task_vars.get(f"subcloud_{key}")
        return default if value is None else value

    return Subcloud(
        id=int(var("id", 0) or 0),
        name=name,
        group_id=0,
        oam_floating_address=str(task_vars.get("ansible_host") or name),
        software_version=str(var("software_version", "")),
        management=str(var("management", "managed")),
        availability=str(var("availability", "online")),
        deploy_status=str(var("deploy_status", "complete")),
        system_mode=str(var("system_mode", "simplex")),
        sync=str(var("sync", "unknown")),
        backup_status=var("backup_status", None),
    )


def result_of(value: Any) -> dict[str, Any]:
    """A registered task result (an empty dict for an undefined or skipped one)."""
    return value if isinstance(value, dict) else {}
