# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""Action plugin of distcloud.prestage.sc_release_info (documented in plugins/modules).

Runs on the controller only (the system controller is the Ansible control node)."""

from __future__ import annotations

import time
from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.distcloud.prestage.plugins.module_utils._prestage_args import (
    RELEASE_ARGS,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError
from ansible_collections.distcloud.prestage.plugins.plugin_utils._sc_release import (
    default_cache_dir,
    release_info,
)

ARGUMENT_SPEC: dict[str, Any] = dict(
    **RELEASE_ARGS,
    system_controller=dict(type="dict", default={}),
    cache=dict(type="bool", default=True),
    cache_dir=dict(type="path"),
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        _validation, params = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        cache_dir = (params["cache_dir"] or default_cache_dir()) if params["cache"] else None
        started = time.monotonic()
        try:
            info = release_info(
                params["system_controller"], params["release"], params["for_sw_deploy"], cache_dir
            )
        except PrestageError as exc:
            result.update(failed=True, msg=str(exc))
            return result
        result.update(info)
        result["changed"] = False
        result["seconds"] = round(time.monotonic() - started, 3)
        return result
