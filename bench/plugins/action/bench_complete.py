"""Bench-only action: report a prestage step complete without running anything on a host."""

from __future__ import annotations

from typing import Any

from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        result.update(changed=False, prestage_complete=True,
                      prestage_versions="for-install: 25.09 - for-sw-deploy: None")  # fmt: skip
        return result
