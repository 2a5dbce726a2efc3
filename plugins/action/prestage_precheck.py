# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""Action plugin of distcloud.prestage.prestage_precheck (documented in plugins/modules).

Controller-side checks first (STARLINGX.md §5: dcmanager's initial checks on the inventory's view
of the subcloud, the release rules on what the system controller said): a subcloud that fails
them is not contacted. Then one module run on the subcloud, whose findings it turns into a skip or
a failure.
"""

from __future__ import annotations

from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.distcloud.prestage.plugins.modules.prestage_precheck import (
    ARGUMENT_SPEC,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._checks import (
    initial_skip_reason,
    minimum_release_failure,
    release_failure,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._prestage_task import (
    subcloud_from_vars,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._strategy import skip_details

MODULE = "distcloud.prestage.prestage_precheck"


def _controller_failure(sc: dict[str, Any], release: str, for_sw_deploy: bool) -> str | None:
    """Why the system controller, as sc_release_info read it, cannot serve this prestage."""
    if sc.get("failed") or sc.get("unreachable") or not sc.get("sc_release"):
        problem = " ".join(str(sc.get("msg") or "no answer").split())
        return f"Cannot read the system controller: {problem}"
    failure = release_failure(sc, release, for_sw_deploy) or minimum_release_failure(sc, release)
    if failure or for_sw_deploy:
        return failure
    feed = sc.get("feed") or {}
    if not feed.get("exists"):
        return f"Directory {feed.get('path')}/ostree_repo does not exist on the system controller."
    # a feed the system controller cannot serve whole is never prestaged
    return (sc.get("ostree") or {}).get("error")


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

        # dcmanager's initial checks, on the subcloud as the inventory says it is
        subcloud = subcloud_from_vars(name, task_vars)
        # prestage_status: this step owns the subcloud now, so its own 'prestaging' is no reason
        reason = initial_skip_reason(subcloud, None)
        if reason:
            return _skipped(result, name, reason)

        sc = params["sc_release_info"]
        result["prestage_sc_release_info"] = sc
        failure = _controller_failure(sc, release, for_sw_deploy)
        if failure:
            result.update(failed=True, msg=failure)
            return result

        outcome = self._execute_module(
            module_name=MODULE, module_args=self._task.args, task_vars=task_vars
        )
        outcome.pop("invocation", None)
        result.update(outcome)
        result["changed"] = False
        if outcome.get("failed") or outcome.get("unreachable"):
            return result
        skip = outcome.get("prestage_skip_reason")
        if skip:
            return _skipped(result, name, skip)
        if outcome.get("prestage_failure"):
            result.update(failed=True, msg=outcome["prestage_failure"])
            return result
        plan = outcome.get("install") or {}
        result["msg"] = (
            "The subcloud already holds this content"
            if plan.get("up_to_date")
            else "The subcloud can be prestaged"
        )
        return result


def _skipped(result: dict[str, Any], name: str, reason: str) -> dict[str, Any]:
    """A subcloud precheck skips: a skipped task in Ansible's output and stats, with the reason
    (the step ends complete, as dcmanager ends it)."""
    result.update(skipped=True, prestage_skip_reason=reason, msg=skip_details(name, reason))
    return result
