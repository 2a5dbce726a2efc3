# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""Action plugin of distcloud.prestage.prestage_finalize (documented in plugins/modules).

The last task of a prestage role. It runs nothing on the subcloud: the phases before it already
verified what they did and read the prestaged versions back from the subcloud after their last
change; this checks that every phase did verify its content, then reports the step complete and
the subcloud's prestage versions (SPEC §2.4).
"""

from __future__ import annotations

from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.distcloud.prestage.plugins.module_utils._prestage_args import (
    RELEASE_ARGS,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._prestage_task import result_of
from ansible_collections.distcloud.prestage.plugins.plugin_utils._run import (
    prestage_versions_text,
)

ARGUMENT_SPEC: dict[str, Any] = dict(
    **RELEASE_ARGS,
    precheck=dict(type="dict", required=True),
    packages=dict(type="dict", required=True),
    images=dict(type="dict"),
)


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
        info = result_of(precheck.get("prestage_sc_release_info"))
        image_list = list(result_of(info.get("image_list")).get("images") or [])

        problems = []
        if precheck.get("failed") or precheck.get("prestage_skip_reason") or not info:
            problems.append("the precheck did not pass")
        if not packages.get("prestage_packages_verified"):
            problems.append("the packages phase did not verify the content")
        if image_list and not images.get("prestage_images_verified"):
            problems.append("the images phase did not verify the images")

        found = result_of(packages.get("prestage_versions_found")) or result_of(
            precheck.get("prestage_versions_found")
        )
        install = list(found.get("for_install") or [])
        sw_deploy = list(found.get("for_sw_deploy") or [])
        if not params["for_sw_deploy"] and not problems and release not in install:
            problems.append(f"release {release} carries no completion marker on the subcloud")
        versions = prestage_versions_text(install, ",".join(sw_deploy) or None)
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
