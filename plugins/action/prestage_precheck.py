# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""Action plugin of distcloud.prestage.prestage_precheck (documented in plugins/modules).

Controller-side checks first (SPEC §4.1 and the release rules, with plugin_utils/_checks.py, on
the inventory's view of the subcloud): a subcloud that fails them is not contacted. Then one
module run on the subcloud (§4.3), whose findings are turned into a skip or a failure here.
"""

from __future__ import annotations

from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.distcloud.prestage.plugins.modules.prestage_precheck import (
    ARGUMENT_SPEC,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._checks import (
    initial_skip_reason,
    subcloud_release_failure,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError
from ansible_collections.distcloud.prestage.plugins.plugin_utils._prestage_task import (
    subcloud_from_vars,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._sc_release import (
    default_cache_dir,
    release_info,
    settings_of,
)

MODULE = "distcloud.prestage.prestage_precheck"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        _validation, params = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        name = str(task_vars.get("inventory_hostname"))
        release = params["release"]
        for_sw_deploy = params["for_sw_deploy"]
        result["changed"] = False

        # SPEC §4.1: the subcloud as the registry says it is (no contact when it is skipped).
        subcloud = subcloud_from_vars(name, task_vars)
        # prestage_status: this step owns the subcloud now, so its own 'prestaging' is no reason
        reason = initial_skip_reason(subcloud, None)
        if reason:
            result["prestage_skip_reason"] = reason
            result["msg"] = f"Prestage skipped '{name}': {reason}"
            return result

        given = params["sc_release_info"]
        if given is not None and given.get("failed"):
            result.update(failed=True, msg=str(given.get("msg") or "sc_release_info failed"))
            return result
        try:
            settings = settings_of(params["system_controller"])
            info = given or release_info(settings, release, for_sw_deploy, default_cache_dir())
        except PrestageError as exc:
            result.update(failed=True, msg=str(exc))
            return result
        result["prestage_sc_release_info"] = info

        if subcloud.software_version:
            failure = subcloud_release_failure(subcloud.software_version, release, for_sw_deploy)
            if failure:
                result.update(failed=True, msg=failure)
                return result

        module_args = {
            key: params[key]
            for key in (
                "release",
                "for_sw_deploy",
                "force",
                "platform_backup_dir",
                "software_dir",
                "docker_dir",
                "min_supported_release",
            )
        }
        module_args["sc_release_info"] = info
        module_args["docker_min_free_gib"] = (
            params["docker_min_free_gib"]
            if params["docker_min_free_gib"] is not None
            else float(settings["docker_min_free_gib"])
        )
        outcome = self._execute_module(
            module_name=MODULE, module_args=module_args, task_vars=task_vars
        )
        outcome.pop("invocation", None)
        if outcome.get("failed") or outcome.get("unreachable"):
            result.update(outcome)
            return result
        result.update(outcome)
        result["changed"] = False

        skip = outcome.get("prestage_skip_reason")
        if skip:
            result["msg"] = f"Prestage skipped '{name}': {skip}"
            return result
        # The release rule again, with the release the subcloud really runs.
        actual = (outcome.get("subcloud") or {}).get("sw_version")
        failure = (
            subcloud_release_failure(actual, release, for_sw_deploy) if actual else None
        ) or outcome.get("prestage_failure")
        if failure:
            result.update(failed=True, msg=failure)
            return result
        packages = outcome.get("packages") or {}
        result["msg"] = (
            "The subcloud already holds this content"
            if packages.get("up_to_date")
            else "The subcloud can be prestaged"
        )
        return result
