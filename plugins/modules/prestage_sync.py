#!/usr/bin/python
# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
module: prestage_sync
short_description: Push release content from the system controller to a subcloud with rsync
version_added: 0.2.0
description:
  - Runs on the system controller (delegate to the inventory's C(system_controller) host), with
    StarlingX's Python 3.9, and pushes each of O(transfers) to the subcloud with rsync over ssh,
    received as root there through sudo - what StarlingX's prestage playbooks do with
    synchronize, without their chown dance and without the password in a process argument.
  - The subcloud's login and become passwords reach rsync's ssh and the remote sudo through pipes
    only, never an argument, an environment variable or a file, on the system controller either.
  - The transfers run side by side (they write different trees), each on an ssh connection of its
    own with keepalives, so a lost link fails it in about O(io_timeout) seconds; the first failure
    stops the others.
  - In check mode rsync runs with C(--dry-run) and reports what it would transfer.
extends_documentation_fragment:
  - distcloud.prestage.prestage.step_timeout
options:
  host:
    description: The subcloud's address (its OAM floating address, C(ansible_host)).
    type: str
    required: true
  port:
    description: Its ssh port.
    type: int
    default: 22
  user:
    description: The login user.
    type: str
    default: sysadmin
  ssh_common_args:
    description: More ssh arguments (the subcloud's C(ansible_ssh_common_args)).
    type: str
    default: ""
  password:
    description: The login password (the sysadmin password); none for a key login.
    type: str
  become_password:
    description: The subcloud's sudo password (the sysadmin password).
    type: str
  transfers:
    description:
      - The rsync runs, in order, as M(distcloud.prestage.prestage_install) returns them, each
        with C(what), C(source) (a path on the system controller), C(dest) (a path on the
        subcloud) and C(options) (rsync options).
    type: list
    elements: dict
    required: true
  io_timeout:
    description: Seconds without progress after which a transfer gives up (a lost link).
    type: int
    default: 120
author:
  - distcloud.prestage contributors (@distcloud-prestage)
"""

EXAMPLES = r"""
- name: Push the release content from the system controller
  distcloud.prestage.prestage_sync:
    host: "{{ hostvars[inventory_hostname].ansible_host }}"
    password: "{{ prestage_sysadmin_password }}"
    become_password: "{{ prestage_sysadmin_password }}"
    transfers: "{{ prestage_prepare.transfers }}"
  delegate_to: "{{ prestage_system_controller_host }}"
"""

RETURN = r"""
passes:
  description:
    - Each transfer's rsync statistics (what, files_transferred, literal_bytes, bytes_sent,
      seconds, ...).
  type: list
  elements: dict
  returned: success
seconds:
  description: Wall time of the transfers (they run side by side).
  type: float
  returned: success
bytes_sent:
  description: Bytes the system controller sent in all.
  type: int
  returned: success
remaining:
  description: Seconds left of the phase's time.
  type: int
  returned: always
python_version:
  description: The Python that ran the module.
  type: str
  returned: always
"""

import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.distcloud.prestage.plugins.module_utils import (  # noqa: E402
    _rsync as rsync,
)
from ansible_collections.distcloud.prestage.plugins.module_utils._phase import (  # noqa: E402
    timeout_message,
)
from ansible_collections.distcloud.prestage.plugins.module_utils._prestage_args import (  # noqa: E402
    STEP_TIMEOUT_ARGS,
)

ARGUMENT_SPEC = dict(
    host=dict(type="str", required=True),
    port=dict(type="int", default=22),
    user=dict(type="str", default="sysadmin"),
    ssh_common_args=dict(type="str", default=""),
    password=dict(type="str", no_log=True),
    become_password=dict(type="str", no_log=True),
    transfers=dict(type="list", elements="dict", required=True),
    **STEP_TIMEOUT_ARGS,
    io_timeout=dict(type="int", default=120),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    started = time.monotonic()
    deadline = started + max(1, params["timeout"])
    ssh = rsync.ssh_command(
        params["port"], params["user"], params["ssh_common_args"], params["io_timeout"]
    )
    transfers = []
    for transfer in params["transfers"]:
        options = [str(o) for o in transfer.get("options") or []]
        if module.check_mode:
            options.append("--dry-run")
        transfers.append(dict(transfer, options=options))
    try:
        passes = rsync.push_all(
            transfers,
            host=params["host"],
            ssh=ssh,
            password=params["password"],
            become_password=params["become_password"],
            deadline=deadline,
            io_timeout=params["io_timeout"],
            python=sys.executable,
        )
    except rsync.TransferTimeout:
        module.fail_json(
            msg=timeout_message("packages", params["phase_timeout"]),
            prestage_timeout=True,
            remaining=0,
            python_version=platform.python_version(),
        )
    except rsync.TransferError as exc:
        module.fail_json(
            msg="Transfer of {} from the system controller failed: {}".format(
                exc.what or "the release content", exc
            ),
            remaining=int(max(0, deadline - time.monotonic())),
            python_version=platform.python_version(),
        )
    passes = [dict(stats, what=transfers[i].get("what")) for i, stats in enumerate(passes)]
    moved = any(p["files_transferred"] or p["deleted"] for p in passes)
    module.exit_json(
        changed=moved,
        passes=passes,
        bytes_sent=sum(p["bytes_sent"] for p in passes),
        literal_bytes=sum(p["literal_bytes"] for p in passes),
        files_transferred=sum(p["files_transferred"] for p in passes),
        seconds=round(time.monotonic() - started, 3),
        remaining=int(max(1, deadline - time.monotonic())),
        python_version=platform.python_version(),
    )


if __name__ == "__main__":
    main()
