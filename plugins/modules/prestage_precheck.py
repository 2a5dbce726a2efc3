#!/usr/bin/python
# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
module: prestage_precheck
short_description: Check that a subcloud can be prestaged, in one run
version_added: 0.1.0
description:
  - The precheck phase of the C(distcloud.prestage.prestage_install) and
    C(distcloud.prestage.prestage_sw_deploy) roles, in one task per subcloud.
  - On the controller, the action plugin first applies the initial subcloud checks (SPEC 4.1 -
    offline, unmanaged, busy, deploy not complete) to the subcloud's inventory variables
    (C(subcloud_availability), C(subcloud_management), C(subcloud_deploy_status),
    C(subcloud_backup_status)); a subcloud that fails them is not contacted.
  - Then one module run on the subcloud reads its release (C(/etc/build.info)), system mode
    (C(/etc/platform/platform.conf)), whether controller-0 is active (duplex, for install),
    its management affecting alarms (unless O(force)), software operations in progress, the free
    space in O(platform_backup_dir) or O(software_dir) against the size of the release content
    still to be copied, and in O(docker_dir) when images will be prestaged; and what is already
    prestaged (completion marker and checksum, patch level).
  - A reason to skip the subcloud is returned as RV(prestage_skip_reason) (the task is ok); a
    reason to fail it fails the task with that reason as its message, in dcmanager's words.
  - Read only; supports check mode.
extends_documentation_fragment:
  - distcloud.prestage.prestage
  - distcloud.prestage.prestage.platform_backup_dir
  - distcloud.prestage.prestage.software_dir
  - distcloud.prestage.prestage.docker_dir
options:
  force:
    description: Do not fail on management affecting alarms (the only check C(--force) skips).
    type: bool
    default: false
  system_controller:
    description:
      - The system controller settings (the inventory plugin's C(prestage_system_controller)).
        Used to compute O(sc_release_info) when it is not given.
    type: dict
    default: {}
  sc_release_info:
    description:
      - What the system controller serves for O(release), as returned by
        M(distcloud.prestage.sc_release_info). Computed on the controller when omitted.
    type: dict
  docker_min_free_gib:
    description:
      - Free space needed in O(docker_dir) when images will be prestaged. Default the system
        controller setting C(docker_min_free_gib) (16).
    type: float
  min_supported_release:
    description:
      - Prestaged releases below this one are reported in RV(packages) (C(old_release_dirs); the
        packages phase removes them). Default from O(sc_release_info).
    type: str
author:
  - distcloud.prestage contributors (@distcloud-prestage)
"""

EXAMPLES = r"""
- name: Check the subcloud can be prestaged
  distcloud.prestage.prestage_precheck:
    release: "24.09"
    force: false
    system_controller: "{{ prestage_system_controller }}"
  become: true
  register: prestage_precheck

- name: Stop here when the subcloud is skipped
  ansible.builtin.meta: end_host
  when: prestage_precheck.prestage_skip_reason | default('') | length > 0
"""

RETURN = r"""
prestage_skip_reason:
  description: Why the subcloud is skipped (its step ends complete); absent otherwise.
  type: str
  returned: when the subcloud is skipped
  sample: Subcloud is offline.
subcloud:
  description: What the subcloud said about itself.
  type: dict
  returned: when the subcloud was contacted
  sample:
    sw_version: "22.12"
    system_mode: simplex
    controller_0: null
    mgmt_alarms: []
    software_operation: null
packages:
  description:
    - The packages phase as seen now. C(up_to_date) is true when the subcloud already holds
      exactly this content (completion marker and checksum match, or for software deployment
      the same or a higher patch level), so nothing is transferred.
  type: dict
  returned: when the subcloud was contacted
  sample:
    up_to_date: false
    needed_bytes: 2252800
    free_bytes: 84825358336
    old_release_dirs: []
prestage_versions_found:
  description: Releases prestaged on the subcloud now (for install, for software deployment).
  type: dict
  returned: when the subcloud was contacted
  sample: {for_install: ["22.12"], for_sw_deploy: []}
prestage_sc_release_info:
  description: The system controller release information used (given or computed).
  type: dict
  returned: always
"""

import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.distcloud.prestage.plugins.module_utils import (  # noqa: E402
    _content as content,
)
from ansible_collections.distcloud.prestage.plugins.module_utils import (  # noqa: E402
    _subcloud as sub,
)
from ansible_collections.distcloud.prestage.plugins.module_utils._prestage_args import (  # noqa: E402
    DOCKER_DIR_ARG,
    PLATFORM_BACKUP_DIR_ARG,
    RELEASE_ARGS,
    SOFTWARE_DIR_ARG,
)
from ansible_collections.distcloud.prestage.plugins.module_utils._release import (  # noqa: E402
    release_key,
)

BUILD_INFO = "/etc/build.info"
PLATFORM_CONF = "/etc/platform/platform.conf"

ARGUMENT_SPEC = dict(
    **RELEASE_ARGS,
    **PLATFORM_BACKUP_DIR_ARG,
    **SOFTWARE_DIR_ARG,
    **DOCKER_DIR_ARG,
    force=dict(type="bool", default=False),
    system_controller=dict(type="dict", default={}),
    sc_release_info=dict(type="dict"),
    docker_min_free_gib=dict(type="float"),
    min_supported_release=dict(type="str"),
)


def run_commands(module, commands):
    if not commands:
        return {}
    rc, out, err = module.run_command(["/bin/bash", "-s"], data=sub.command_script(commands))
    sections = sub.parse_sections(out)
    if rc != 0 and not sections:
        module.fail_json(msg="Cannot run the precheck commands on the subcloud: %s" % (err or out))
    return sections


def install_packages_state(params, info):
    release = params["release"]
    base = params["platform_backup_dir"]
    release_dir = os.path.join(base, release)
    ostree = info.get("ostree") or {}
    metadata = info.get("patch_metadata")
    marker = os.path.isfile(os.path.join(release_dir, content.MARKER_FILE))
    recorded = (content.read_text(os.path.join(release_dir, content.CHECKSUM_FILE)) or "").strip()
    local_metadata = content.tree_digest(os.path.join(release_dir, content.PATCHES_METADATA))
    metadata_matches = (local_metadata or {}).get("digest") == (metadata or {}).get("digest")
    up_to_date = bool(
        marker and recorded and recorded == ostree.get("checksum") and metadata_matches
    )
    needed = 0
    if not up_to_date:
        wanted = int(ostree.get("usage") or 0) + int((metadata or {}).get("usage") or 0)
        have = content.disk_usage(os.path.join(release_dir, content.OSTREE_REPO)) + int(
            (local_metadata or {}).get("usage") or 0
        )
        needed = max(0, wanted - have)
    minimum = params["min_supported_release"] or info.get("min_supported_release")
    old = [
        name for name in sub.releases_below(content.release_dirs(base), minimum) if name != release
    ]
    return {
        "up_to_date": up_to_date,
        "marker": marker,
        "recorded_checksum": recorded or None,
        "patch_metadata_matches": metadata_matches,
        "needed_bytes": needed,
        "free_bytes": content.free_bytes(base),
        "space_path": base,
        "old_release_dirs": old,
        "min_supported_release": minimum,
    }


def sw_deploy_packages_state(params, info, software_list):
    release = params["release"]
    base = params["software_dir"]
    release_dir = os.path.join(base, release)
    software = info.get("software") or {}
    levels = sub.software_levels(software_list, release) | content.metadata_levels(
        os.path.join(release_dir, "metadata")
    )
    level = content.highest(levels, release)
    sc_level = software.get("level")
    if sc_level:
        up_to_date = bool(level) and release_key(level) >= release_key(sc_level)
    else:
        local = content.tree_digest(release_dir)
        up_to_date = bool(local) and local.get("digest") == software.get("digest")
    needed = 0
    if not up_to_date:
        needed = max(0, int(software.get("usage") or 0) - content.disk_usage(release_dir))
    return {
        "up_to_date": up_to_date,
        "patch_level": level,
        "sc_patch_level": sc_level,
        "needed_bytes": needed,
        "free_bytes": content.free_bytes(base),
        "space_path": base,
        "old_release_dirs": [],
    }


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    info = params["sc_release_info"] or {}
    release = params["release"]
    for_sw_deploy = params["for_sw_deploy"]

    build = content.key_values(content.read_text(BUILD_INFO, ""))
    platform = content.key_values(content.read_text(PLATFORM_CONF, ""))
    system_mode = platform.get("system_mode", "simplex")
    duplex = system_mode != "simplex"

    commands = {"deploy": "software deploy show", "list": "software list"}
    if not params["force"]:
        commands["alarms"] = "fm alarm-list --mgmt_affecting"
    if duplex and not for_sw_deploy:
        commands["controller0"] = "system host-show controller-0"
    sections = run_commands(module, commands)

    def output(name):
        rc, text = sections.get(name, (-1, ""))
        return rc, text

    controller_0 = None
    if "controller0" in commands:
        rc, text = output("controller0")
        controller_0 = sub.controller_personality(text) if rc == 0 else None
    alarms = None
    if "alarms" in commands:
        rc, text = output("alarms")
        alarms = sub.mgmt_affecting_alarms(text) if rc == 0 else None
    deploy_rc, deploy_text = output("deploy")
    list_rc, list_text = output("list")
    operation = sub.software_operation(
        deploy_text if deploy_rc == 0 else "", list_text if list_rc == 0 else ""
    )

    if for_sw_deploy:
        packages = sw_deploy_packages_state(params, info, list_text if list_rc == 0 else "")
    else:
        packages = install_packages_state(params, info)

    images = (info.get("image_list") or {}).get("images") or []
    minimum_gib = params["docker_min_free_gib"]
    if minimum_gib is None:
        minimum_gib = 16
    docker_free = content.free_bytes(params["docker_dir"]) if images else None

    result = {
        "changed": False,
        "subcloud": {
            "sw_version": build.get("SW_VERSION"),
            "system_mode": system_mode,
            "controller_0": controller_0,
            "mgmt_alarms": alarms,
            "software_operation": operation,
            "docker_free_bytes": docker_free,
        },
        "packages": packages,
        "prestage_versions_found": content.prestaged_versions(
            params["platform_backup_dir"], params["software_dir"]
        ),
    }

    # Skip reasons first: a subcloud they apply to is not prestaged at all.
    if duplex and not for_sw_deploy:
        if controller_0 is None:
            rc, text = output("controller0")
            result["prestage_failure"] = (
                "Cannot tell whether controller-0 is active on the subcloud: %s"
                % (" ".join(text.split()) or f"rc={rc}")
            )
            module.exit_json(**result)
        if controller_0 != "active":
            result["prestage_skip_reason"] = sub.SKIP_DUPLEX_STANDBY
            module.exit_json(**result)

    failure = None
    if not params["force"]:
        if alarms is None:
            rc, text = output("alarms")
            failure = "Cannot read the subcloud's alarms (fm alarm-list rc={}): {}".format(
                rc,
                " ".join(text.split())[:300],
            )
        elif alarms:
            failure = sub.FAIL_MGMT_ALARMS
    if failure is None and operation:
        failure = sub.software_operation_failure(operation)
    if failure is None and packages["needed_bytes"] > packages["free_bytes"]:
        failure = sub.space_failure(
            packages["space_path"],
            packages["needed_bytes"],
            packages["free_bytes"],
            f"the release {release} content",
        )
    if failure is None and docker_free is not None and docker_free < minimum_gib * sub.GIB:
        failure = sub.docker_space_failure(params["docker_dir"], docker_free, minimum_gib)
    if failure:
        result["prestage_failure"] = failure
    module.exit_json(**result)


if __name__ == "__main__":
    main()
