#!/usr/bin/python
# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
module: prestage_install
short_description: The subcloud's side of the packages phase of a prestage for install
version_added: 0.2.0
description:
  - Runs on the subcloud, as root, with StarlingX's Python 3.9; the
    C(distcloud.prestage.prestage_install) role runs it twice around the system controller's
    push (M(distcloud.prestage.prestage_sync)), following StarlingX's prestage playbooks.
  - O(step=prepare) cleans up first as StarlingX does - the prestaged C(patches/) when the
    subcloud has no patch metadata for the release, the unversioned 22.12 layout moved into
    C(22.12/), release directories below the system controller's minimum supported release -
    then creates C(/opt/platform-backup/<release>/ostree_repo) and C(patches/metadata) and, when
    the subcloud runs the release, copies its own feed there (C(rsync -ap --delete)). It returns
    the RV(transfers) the system controller must push (none when the subcloud already holds
    this content).
  - O(step=finish) prunes the patch metadata as StarlingX does, computes the repo's
    C(.ostree_repo_checksum) exactly as StarlingX does, and only when it equals the system
    controller's (or, for a local copy, the subcloud feed's) writes it and the completion marker
    C(.ostree_rsync_completed). A mismatch removes the prestaged repo and fails. It returns the
    subcloud's RV(prestage_versions) as StarlingX's get-prestage-versions prints them.
extends_documentation_fragment:
  - distcloud.prestage.prestage
  - distcloud.prestage.prestage.step_timeout
options:
  step:
    description: Which side of the system controller's push to run.
    type: str
    required: true
    choices: [prepare, finish]
  precheck:
    description:
      - The registered result of M(distcloud.prestage.prestage_precheck) (its C(install) plan).
    type: dict
    required: true
author:
  - distcloud.prestage contributors (@distcloud-prestage)
"""

EXAMPLES = r"""
- name: Prepare the prestage directory
  distcloud.prestage.prestage_install:
    step: prepare
    release: "25.09"
    precheck: "{{ prestage_precheck }}"
  become: true
  register: prestage_prepare
"""

RETURN = r"""
transfers:
  description: (prepare) The rsync runs the system controller makes (what, source, dest, options).
  type: list
  elements: dict
  returned: success
up_to_date:
  description: The subcloud already holds this content; nothing is copied.
  type: bool
  returned: success
cleaned:
  description: (prepare) What the cleanup removed or moved.
  type: list
  elements: str
  returned: success
checksum:
  description: (finish) The prestaged repo's checksum, as written to .ostree_repo_checksum.
  type: str
  returned: when verified
prestage_versions:
  description: (finish) The subcloud's prestage versions line.
  type: str
  returned: success
  sample: "for-install: 24.09,25.09 - for-sw-deploy: None"
remaining:
  description: Seconds left of the phase's time after this step.
  type: int
  returned: always
python_version:
  description: The Python that ran the module.
  type: str
  returned: always
"""

import os  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

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
from ansible_collections.distcloud.prestage.plugins.module_utils._phase import (  # noqa: E402
    timeout_message,
)
from ansible_collections.distcloud.prestage.plugins.module_utils._prestage_args import (  # noqa: E402
    RELEASE_ARGS,
    STEP_TIMEOUT_ARGS,
)

ARGUMENT_SPEC = dict(
    **RELEASE_ARGS,
    step=dict(type="str", required=True, choices=["prepare", "finish"]),
    precheck=dict(type="dict", required=True),
    **STEP_TIMEOUT_ARGS,
)


def timed_out(module, started, deadline):
    module.fail_json(
        msg=timeout_message("packages", module.params["phase_timeout"]),
        prestage_timeout=True,
        remaining=0,
        python_version=platform.python_version(),
    )


def prepare(module, plan, sub, deadline):
    release = module.params["release"]
    result = {"up_to_date": plan["up_to_date"], "transfers": [], "cleaned": []}
    result["cleaned"] = install.cleanup(release, sub["sw_version"], plan["minimum"])
    result["changed"] = bool(result["cleaned"])
    if plan["up_to_date"]:
        return result
    result["changed"] |= install.prepare_dirs(release)
    if plan["source"] == "local":
        install.local_copy(
            stx.feed_ostree_repo(release),
            os.path.join(stx.prestage_dir(release), stx.OSTREE_REPO),
            deadline - time.monotonic(),
        )
        if stx.lower(release, stx.USM_RELEASE) and os.path.isdir(stx.metadata_dir(release)):
            install.local_copy(
                stx.metadata_dir(release),
                os.path.join(stx.prestage_dir(release), "patches", "metadata"),
                deadline - time.monotonic(),
            )
        result["changed"] = True
    result["transfers"] = install.transfers(release, plan["push"], install.sysadmin_group())
    return result


def finish(module, plan, sc, deadline):
    release = module.params["release"]
    result = {"up_to_date": plan["up_to_date"], "changed": False}
    if not plan["up_to_date"]:
        install.prune_metadata(release)
        if plan["source"] == "local":
            feed = content.ostree_checksum(stx.feed_release_dir(release), deadline=deadline)
            expected = feed["checksum"]
        else:
            expected = (sc.get("ostree") or {}).get("checksum")
        if not expected:
            module.fail_json(msg=f"No checksum of the release {release} feed to verify against")
        computed = install.verify_and_mark(release, expected, deadline)
        result.update(changed=True, checksum=computed["checksum"], files=computed["files"])
    result["prestage_versions"] = install.prestage_versions(
        stx.PLATFORM_BACKUP_DIR, stx.metadata_dir(stx.sw_version() or release)
    )
    return result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC)
    params = module.params
    started = time.monotonic()
    deadline = started + max(1, params["timeout"])
    precheck = params["precheck"] or {}
    plan = precheck.get("install")
    sub = precheck.get("subcloud") or {}
    sc = precheck.get("prestage_sc_release_info") or {}
    if not plan or precheck.get("release") != params["release"]:
        module.fail_json(
            msg="The packages phase needs the registered result of a successful "
            "distcloud.prestage.prestage_precheck task for release {}".format(params["release"])
        )
    try:
        if params["step"] == "prepare":
            result = prepare(module, plan, sub, deadline)
        else:
            result = finish(module, plan, sc, deadline)
    except content.DeadlineExceeded:
        timed_out(module, started, deadline)
    except (install.InstallError, OSError) as exc:
        module.fail_json(
            msg=str(exc)
            if isinstance(exc, install.InstallError)
            else f"Prestaging packages failed: {exc}",
            remaining=int(max(0, deadline - time.monotonic())),
            python_version=platform.python_version(),
        )
    if time.monotonic() > deadline:
        timed_out(module, started, deadline)
    result["remaining"] = int(max(1, deadline - time.monotonic()))
    result["python_version"] = platform.python_version()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
