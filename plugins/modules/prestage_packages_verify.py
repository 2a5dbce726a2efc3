#!/usr/bin/python
# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
module: prestage_packages_verify
short_description: Verify prestaged release content on a subcloud and mark it complete
version_added: 0.1.0
description:
  - The subcloud side of the packages phase (M(distcloud.prestage.prestage_packages) runs it
    after its transfer).
  - For install, computes the checksum of O(platform_backup_dir)/<release>/ostree_repo the way
    StarlingX does (md5 of the sorted per-file md5 lines), compares it and the patch metadata
    with what the system controller serves, and only when both match writes
    C(.ostree_repo_checksum) then the completion marker C(.ostree_rsync_completed). When they do
    not match, the marker is removed and RV(verified) is false. Prestaged release directories
    below O(min_supported_release) are removed.
  - For software deployment, compares O(software_dir)/<release> with the system controller's
    software directory.
  - Supports check mode (computes, changes nothing).
extends_documentation_fragment:
  - distcloud.prestage.prestage
  - distcloud.prestage.prestage.platform_backup_dir
  - distcloud.prestage.prestage.software_dir
options:
  ostree_checksum:
    description: The system controller's checksum of the release's ostree repo (for install).
    type: str
  patch_metadata_digest:
    description:
      - Digest of the system controller's patch metadata for the release (for install); none
        when it has none, and then a prestaged C(patches/metadata) is removed.
    type: str
  software_digest:
    description: Digest of the system controller's software directory (for software deployment).
    type: str
  min_supported_release:
    description: Prestaged release directories lower than this release are removed.
    type: str
  cleanup_only:
    description: Only remove the release directories below O(min_supported_release).
    type: bool
    default: false
  timeout:
    description: Seconds the verification may take (the rest of the phase timeout).
    type: int
    default: 3600
author:
  - distcloud.prestage contributors (@distcloud-prestage)
"""

EXAMPLES = r"""
- name: Verify the prestaged release and mark it complete
  distcloud.prestage.prestage_packages_verify:
    release: "24.09"
    ostree_checksum: ba60e02d7b49f54489e8e24b12c4a806
  become: true
"""

RETURN = r"""
verified:
  description: The content matches the system controller's.
  type: bool
  returned: always
checksum:
  description: The checksum computed on the subcloud (install).
  type: str
  returned: for install
mismatch:
  description: What does not match, when RV(verified) is false.
  type: str
  returned: when not verified
removed_release_dirs:
  description: Release directories removed because they are below the minimum supported release.
  type: list
  elements: str
  returned: always
prestage_timeout:
  description: The verification did not finish within O(timeout).
  type: bool
  returned: on timeout
prestage_versions_found:
  description: Releases prestaged on the subcloud after this run.
  type: dict
  returned: always
"""

import os  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.distcloud.prestage.plugins.module_utils import (  # noqa: E402
    _content as content,
)
from ansible_collections.distcloud.prestage.plugins.module_utils._prestage_args import (  # noqa: E402
    PLATFORM_BACKUP_DIR_ARG,
    RELEASE_ARGS,
    SOFTWARE_DIR_ARG,
)
from ansible_collections.distcloud.prestage.plugins.module_utils._subcloud import (  # noqa: E402
    releases_below,
)

ARGUMENT_SPEC = dict(
    **RELEASE_ARGS,
    **PLATFORM_BACKUP_DIR_ARG,
    **SOFTWARE_DIR_ARG,
    ostree_checksum=dict(type="str"),
    patch_metadata_digest=dict(type="str"),
    software_digest=dict(type="str"),
    min_supported_release=dict(type="str"),
    cleanup_only=dict(type="bool", default=False),
    timeout=dict(type="int", default=3600),
)


def remove_old_releases(module, base, release, minimum):
    removed = []
    for name in releases_below(content.release_dirs(base), minimum):
        if name == release:
            continue
        removed.append(name)
        if not module.check_mode:
            shutil.rmtree(os.path.join(base, name))
    return removed


def remove(path, check_mode):
    if not os.path.lexists(path):
        return False
    if not check_mode:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    return True


def verify_install(module, deadline):
    params = module.params
    release_dir = os.path.join(params["platform_backup_dir"], params["release"])
    marker = os.path.join(release_dir, content.MARKER_FILE)
    checksum_file = os.path.join(release_dir, content.CHECKSUM_FILE)
    metadata_dir = os.path.join(release_dir, content.PATCHES_METADATA)
    expected = params["ostree_checksum"]
    if not expected:
        module.fail_json(msg="ostree_checksum is required to verify content prestaged for install")
    result = {"changed": False, "verified": False, "expected": expected}

    try:
        computed = content.ostree_checksum(release_dir, deadline=deadline)
    except OSError as exc:
        computed = None
        result["mismatch"] = f"cannot read the prestaged ostree_repo: {exc}"
    if computed is not None:
        result["checksum"] = computed["checksum"]
        result["files"] = computed["files"]
        result["bytes"] = computed["bytes"]
        if computed["checksum"] != expected:
            result["mismatch"] = (
                f"ostree_repo checksum mismatch: the subcloud's is {computed['checksum']}, "
                f"the system controller's is {expected}"
            )

    wanted_metadata = params["patch_metadata_digest"]
    if "mismatch" not in result:
        if wanted_metadata:
            local = content.tree_digest(metadata_dir, deadline=deadline)
            if (local or {}).get("digest") != wanted_metadata:
                result["mismatch"] = (
                    f"patch metadata mismatch: {metadata_dir} differs from the system controller's"
                )
        elif remove(os.path.join(release_dir, "patches"), module.check_mode):
            result["changed"] = True  # the system controller has no patch metadata for it

    if "mismatch" in result:
        # never leave a completion marker on content that is not the release's
        result["changed"] |= remove(marker, module.check_mode)
        return result

    result["verified"] = True
    recorded = (content.read_text(checksum_file) or "").strip()
    if recorded != expected:
        result["changed"] = True
        if not module.check_mode:
            content.atomic_write(checksum_file, expected + "\n")
    if not os.path.isfile(marker):
        result["changed"] = True
        if not module.check_mode:
            content.atomic_write(marker, "")
    return result


def verify_sw_deploy(module, deadline):
    params = module.params
    release_dir = os.path.join(params["software_dir"], params["release"])
    expected = params["software_digest"]
    if not expected:
        module.fail_json(
            msg="software_digest is required to verify software prestaged for deployment"
        )
    local = content.tree_digest(release_dir, deadline=deadline)
    result = {"changed": False, "verified": (local or {}).get("digest") == expected}
    if not result["verified"]:
        result["mismatch"] = (
            f"{release_dir} differs from the system controller's software directory"
        )
    return result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    deadline = time.monotonic() + max(1, params["timeout"])
    result = {"changed": False, "verified": True}
    try:
        if not params["cleanup_only"]:
            if params["for_sw_deploy"]:
                result = verify_sw_deploy(module, deadline)
            else:
                result = verify_install(module, deadline)
    except content.DeadlineExceeded:
        module.fail_json(
            msg="Verifying the prestaged content of release {} timed out".format(params["release"]),
            prestage_timeout=True,
        )
    removed = []
    if not params["for_sw_deploy"] and result.get("verified"):
        removed = remove_old_releases(
            module,
            params["platform_backup_dir"],
            params["release"],
            params["min_supported_release"],
        )
    result["removed_release_dirs"] = removed
    result["changed"] = bool(result.get("changed") or removed)
    result["prestage_versions_found"] = content.prestaged_versions(
        params["platform_backup_dir"], params["software_dir"]
    )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
