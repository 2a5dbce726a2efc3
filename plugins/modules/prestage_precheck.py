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
  - On the controller, the action plugin first applies dcmanager's initial subcloud checks
    (offline, unmanaged, busy, deploy in progress) to the subcloud's inventory variables and the
    release rules to what the system controller said (O(sc_release_info)); a subcloud that
    fails them is not contacted.
  - Then one module run on the subcloud reads its release (C(/etc/build.info)), system mode
    (C(/etc/platform/platform.conf)), whether controller-0 is active (duplex, for install), its
    health (C(system health-query), unless O(force)), its releases (C(software list)), and, for
    install, what is prestaged and the free space in C(/opt/platform-backup); and plans the
    packages phase (RV(install)).
  - A reason to skip the subcloud is returned as RV(prestage_skip_reason) and the task is
    skipped (Ansible's output and stats show the subcloud skipped); a reason to fail it fails the
    task with that reason as its message, in StarlingX's words.
  - Read only; supports check mode.
extends_documentation_fragment:
  - distcloud.prestage.prestage
options:
  force:
    description: Do not fail on management affecting alarms (the only check C(--force) skips).
    type: bool
    default: false
  sc_release_info:
    description:
      - What the system controller serves for O(release), the registered result of
        M(distcloud.prestage.sc_release_info) run on it.
    type: dict
    required: true
author:
  - distcloud.prestage contributors (@distcloud-prestage)
"""

EXAMPLES = r"""
- name: Check the subcloud can be prestaged
  distcloud.prestage.prestage_precheck:
    release: "25.09"
    force: false
    sc_release_info: "{{ prestage_sc_release }}"
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
    sw_version: "25.09"
    system_mode: simplex
    controller_0_active: null
    python_version: "3.9.18"
install:
  description:
    - For install, the plan of the packages phase - the source (C(local) when the subcloud runs
      the release, its own feed is copied; C(remote) otherwise), whether it already holds this
      content (C(up_to_date)), the release directories to prune, what the system controller
      pushes, the space needed.
  type: dict
  returned: for install, when the subcloud was contacted
prestage_versions:
  description: The subcloud's prestage versions now.
  type: str
  returned: when the subcloud was contacted
  sample: "for-install: 24.09 - for-sw-deploy: None"
prestage_sc_release_info:
  description: The system controller release information used.
  type: dict
  returned: always
"""

import os  # noqa: E402
import platform  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.distcloud.prestage.plugins.module_utils import (  # noqa: E402
    _content as content,
)
from ansible_collections.distcloud.prestage.plugins.module_utils import (  # noqa: E402
    _install as install,
)
from ansible_collections.distcloud.prestage.plugins.module_utils import (  # noqa: E402
    _stx as stx,
)
from ansible_collections.distcloud.prestage.plugins.module_utils import (  # noqa: E402
    _subcloud as sub,
)
from ansible_collections.distcloud.prestage.plugins.module_utils._prestage_args import (  # noqa: E402
    RELEASE_ARGS,
)

ARGUMENT_SPEC = dict(
    **RELEASE_ARGS,
    force=dict(type="bool", default=False),
    sc_release_info=dict(type="dict", required=True),
)


def read_subcloud(module, release, for_sw_deploy, force):
    """The subcloud's facts: files, then StarlingX's commands in one shell."""
    platform_conf = stx.key_values(stx.read_text(stx.PLATFORM_CONF, ""))
    facts = {
        "sw_version": stx.sw_version(),
        "system_mode": platform_conf.get("system_mode", "simplex"),
        "controller_0_active": None,
        "health": None,
        "software_list": "",
        "python_version": platform.python_version(),
    }
    commands = {"list": "software list"}
    if not force:
        commands["health"] = "system health-query"
    if facts["system_mode"] == "duplex" and not for_sw_deploy:
        commands["controller0"] = "system host-show controller-0"
    rc, out, err = module.run_command(["/bin/bash", "-s"], data=sub.command_script(commands))
    sections = sub.parse_sections(out)
    if rc != 0 and not sections:
        module.fail_json(msg="Cannot run the precheck commands on the subcloud: %s" % (err or out))
    list_rc, list_text = sections.get("list", (-1, ""))
    if list_rc == 0:
        facts["software_list"] = list_text
    health_rc, health_text = sections.get("health", (-1, ""))
    if health_rc == 0:
        facts["health"] = health_text
    c0_rc, c0_text = sections.get("controller0", (-1, ""))
    if c0_rc == 0:
        facts["controller_0_active"] = sub.controller_0_active(c0_text)
    return facts


def install_plan(release, facts, sc):
    """The packages phase's plan and the space it needs (counting what the cleanup frees)."""
    base = stx.PLATFORM_BACKUP_DIR
    try:
        names = os.listdir(base)
    except OSError:
        names = []
    plan = install.plan(release, facts["sw_version"], sc, install.state_of(release), names)
    freed = sum(content.disk_usage(os.path.join(base, n)) for n in plan["prune"])
    plan["free_bytes"] = content.free_bytes(base) + freed
    plan["space_path"] = base
    return plan


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    release, for_sw_deploy = params["release"], params["for_sw_deploy"]
    sc = params["sc_release_info"] or {}
    facts = read_subcloud(module, release, for_sw_deploy, params["force"])
    result = {"changed": False, "release": release, "subcloud": facts}
    if not for_sw_deploy:
        plan = install_plan(release, facts, sc)
        result["install"] = plan
        facts.update(
            needed_bytes=plan["needed_bytes"],
            free_bytes=plan["free_bytes"],
            space_path=plan["space_path"],
        )
    result["prestage_versions"] = install.prestage_versions(
        stx.PLATFORM_BACKUP_DIR, stx.metadata_dir(facts["sw_version"] or release)
    )
    kind, reason = sub.precheck_reason(
        {"release": release, "for_sw_deploy": for_sw_deploy, "force": params["force"]}, facts
    )
    if kind == "skip":
        result["prestage_skip_reason"] = reason
    elif kind == "fail":
        result["prestage_failure"] = reason
    module.exit_json(**result)


if __name__ == "__main__":
    main()
