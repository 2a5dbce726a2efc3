#!/usr/bin/python
# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
module: sc_release_info
short_description: What the system controller serves for a release, read on the system controller
version_added: 0.1.0
description:
  - Runs on the system controller (the inventory plugin's C(system_controller) host; delegate to
    it), with StarlingX's Python 3.9. Meant to run once per run; C(playbooks/prestage.yml) gives
    its result to the prestage roles as C(prestage_sc_release_info).
  - The system controller's own release (C(SW_VERSION) of C(/etc/build.info)); the supported
    and lowest supported releases of its upgrades metadata (C(/opt/upgrades/metadata.xml));
    its USM releases (C(software list)) and any software deployment in progress
    (C(software deploy show)); whether the release's feed
    (C(/var/www/pages/feed/rel-<release>/ostree_repo)) exists; the release's image list
    (the first C(/opt/platform/deploy/<release>/prestage_images*) file, parsed as StarlingX's
    prestage playbook parses it).
  - With O(content), for install, the feed's checksum exactly as StarlingX writes
    C(.ostree_repo_checksum), cached in O(cache_dir) keyed by the repo's path and a fingerprint
    of its files' metadata, so later runs only list the feed; and the digest of the release's
    patch metadata (C(/opt/software/metadata), C(/opt/software/releases/metadata) from 26.10).
  - Read only; supports check mode.
options:
  release:
    description: The release (C(MM.mm)); default the system controller's own.
    type: str
  for_sw_deploy:
    description: For a prestage for software deployment (no feed checksum).
    type: bool
    default: false
  content:
    description: Read the release content too (checksum, patch metadata), not only the facts.
    type: bool
    default: true
  cache_dir:
    description:
      - Where the checksum cache lives on the system controller.
        Default C(${XDG_CACHE_HOME:-~/.cache}/distcloud-prestage) of the connection user.
    type: path
  timeout:
    description: Seconds the checksum may take.
    type: int
    default: 3600
author:
  - distcloud.prestage contributors (@distcloud-prestage)
"""

EXAMPLES = r"""
- name: What the system controller serves for the release
  distcloud.prestage.sc_release_info:
    release: "25.09"
  run_once: true
  delegate_to: "{{ prestage_system_controller_host }}"
  register: prestage_sc_release
"""

RETURN = r"""
sc_release:
  description: The system controller's own release.
  type: str
  returned: always
  sample: "25.09"
release:
  description: The release these facts are about.
  type: str
  returned: always
supported_upgrades:
  description: The C(supported_upgrades) of the upgrades metadata, or none when unreadable.
  type: list
  elements: str
  returned: always
min_supported_release:
  description: The lowest of them.
  type: str
  returned: always
upgrades_error:
  description: Why the upgrades metadata could not be used (StarlingX's words), or none.
  type: str
  returned: always
software_releases:
  description: C(software list) rows (release_id, reboot_required, state, sw_version).
  type: list
  elements: dict
  returned: always
deployment_in_progress:
  description: The software deployment in progress on the system controller, or none.
  type: str
  returned: always
feed:
  description: The release feed (path, exists).
  type: dict
  returned: always
ostree:
  description:
    - For install with O(content), the feed's ostree repo (path, checksum, files, bytes, usage,
      cached, error - what C(ostree fsck) found wrong, or none).
  type: dict
  returned: always
patch_metadata:
  description: For install with O(content), the patch metadata (path, digest, files, usage, pruned).
  type: dict
  returned: always
image_list:
  description: The image list (path, images, error), or none when the release has none.
  type: dict
  returned: always
python_version:
  description: The Python that ran the module on the system controller.
  type: str
  returned: always
"""

import platform  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.distcloud.prestage.plugins.module_utils import (  # noqa: E402
    _sc_facts as facts,
)
from ansible_collections.distcloud.prestage.plugins.module_utils._content import (  # noqa: E402
    DeadlineExceeded,
)
from ansible_collections.distcloud.prestage.plugins.module_utils._release import (  # noqa: E402
    RELEASE_FORMAT_ERROR,
    is_major_release,
)

ARGUMENT_SPEC = dict(
    release=dict(type="str"),
    for_sw_deploy=dict(type="bool", default=False),
    content=dict(type="bool", default=True),
    cache_dir=dict(type="path"),
    timeout=dict(type="int", default=3600),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    release = params["release"]
    if release and not is_major_release(release):
        module.fail_json(msg=RELEASE_FORMAT_ERROR)

    def run(script):
        return module.run_command(["/bin/bash", "-c", script], environ_update={"LC_ALL": "C"})

    started = time.monotonic()
    try:
        result = facts.release_facts(
            release,
            params["for_sw_deploy"],
            run,
            with_content=params["content"],
            cache_dir=params["cache_dir"],
            deadline=started + max(1, params["timeout"]),
        )
    except facts.FactsError as exc:
        module.fail_json(msg=str(exc), python_version=platform.python_version())
    except DeadlineExceeded:
        module.fail_json(
            msg=f"Reading the release {release} feed on the system controller timed out",
            python_version=platform.python_version(),
        )
    result["python_version"] = platform.python_version()
    result["seconds"] = round(time.monotonic() - started, 3)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
