# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""Action plugin of distcloud.prestage.prestage_finalize (documented in plugins/modules).

The last task of a prestage role. It runs nothing on the subcloud: the phases before it already
verified what they did and read the prestaged versions back from the subcloud after their last
change; this checks that every phase did verify its content, then reports the step complete and
the subcloud's prestage versions (SPEC §2.4).
"""

from __future__ import annotations

import re
from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.distcloud.prestage.plugins.module_utils._prestage_args import (
    RELEASE_ARGS,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._prestage_task import result_of

ARGUMENT_SPEC: dict[str, Any] = dict(
    **RELEASE_ARGS,
    precheck=dict(type="dict", required=True),
    packages=dict(type="dict", required=True),
    images=dict(type="dict"),
    images_expected=dict(type="bool", default=False),
)
# 'for-install: 24.09,25.09 - for-sw-deploy: None' (PR:get-prestage-versions/tasks/main.yml:103-105)
_VERSIONS = re.compile(r"\Afor-install: (?P<install>\S+) - for-sw-deploy: (?P<deploy>\S+)\Z")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        _validation, params = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        result["changed"] = False
        release = params["release"]
        precheck = result_of(params["precheck"])
        packages = result_of(params["packages"])
        images = result_of(params["images"])

        problems = []
        if precheck.get("failed") or precheck.get("prestage_skip_reason"):
            problems.append("the precheck did not pass")
        if packages.get("failed") or not packages.get("prestage_versions"):
            problems.append("the packages phase did not verify the content")
        if params["images_expected"] and (
            images.get("failed")
            or images.get("skipped")
            or not images.get("prestage_images_verified")
        ):
            problems.append("the images phase did not verify the images")
        versions = str(packages.get("prestage_versions") or precheck.get("prestage_versions") or "")
        match = _VERSIONS.match(versions)
        installed = match.group("install").split(",") if match else []
        if not params["for_sw_deploy"] and not problems and release not in installed:
            problems.append(f"release {release} carries no completion marker on the subcloud")
        result["prestage_versions"] = versions

        if self._task.check_mode:
            result["prestage_complete"] = False
            result["msg"] = "Check mode: nothing was prestaged; " + versions
            return result
        if problems:
            result.update(
                failed=True,
                msg=f"Prestage of release {release} is not complete: " + "; ".join(problems),
            )
            return result
        result["prestage_complete"] = True
        result["msg"] = f"Prestage complete: {versions}"
        return result
