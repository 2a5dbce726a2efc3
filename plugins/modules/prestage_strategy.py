#!/usr/bin/python
# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
module: prestage_strategy
short_description: Create, apply or resume the prestage strategy of a state dir
version_added: 0.1.0
description:
  - Runs on the controller (it is an action plugin); C(playbooks/prestage.yml) calls it once,
    before the subclouds are prestaged.
  - When the state dir has no strategy, creates one from these options with the same rules as
    C(dcprestage prestage-strategy create) - a I(limit) naming a subcloud group takes that group's
    settings, a limit naming one subcloud makes a single-subcloud strategy, any other limit keeps
    the subclouds of the play - and applies it.
  - When the strategy is C(initial) (made by C(dcprestage)), applies it; when it is C(applying)
    and its orchestrator is gone (a crash), resumes it; when C(dcprestage prestage-strategy apply)
    started this run, takes it over.
  - The process running the play is recorded as the strategy's orchestrator.
  - A new strategy only has subclouds among the play's I(hosts), so each slice of an AWX sliced
    job makes a strategy of its own share of the subclouds.
  - Options given as empty strings (unanswered survey questions) count as not given.
options:
  inventory_config:
    description:
      - The C(distcloud.prestage.subclouds) inventory config (registry and system controller).
      - Not read when I(registry) is given.
      - With its C(dcmanager) source, a new strategy is made from what dcmanager says at that
        moment (the Keystone password from the environment variable the config names).
    type: path
  registry:
    description:
      - The subcloud registry, as the inventory plugin gives it to plays (C(prestage_registry)),
        used instead of reading I(inventory_config) again - the way an AWX job works, whose
        inventory was synced from the config by an inventory source.
    type: path
  sc_facts:
    description:
      - What the system controller said about itself, the registered result of
        M(distcloud.prestage.sc_release_info) run on it. The release rules of a create and the
        refusal while the system controller deploys software are judged on it; it is kept in the
        state dir for C(dcprestage) commands that follow soon after.
    type: dict
    required: true
  system_controller_host:
    description: The system controller's inventory name (C(prestage_system_controller_host)).
    type: str
  state_dir:
    description:
      - The state dir; default C($DCPRESTAGE_STATE_DIR), else the XDG state home's
        C(distcloud-prestage).
      - Under AWX (an C(awx_job_id) extra var) the strategy lives in a directory of the job below
        it, C(awx-job-<id>) (C(awx-workflow-<id>/awx-job-<id>) for a job of a workflow, such as
        the slices of a sliced job), as the C(distcloud.prestage.prestage_state) callback's does.
    type: path
  release:
    description: Major release C(MM.mm) to prestage; default the system controller's own release.
    type: str
  prestage_type:
    description: Prestage for install (reinstall to the release) or for software deployment.
    type: str
    default: for_install
    choices: [for_install, for_sw_deploy]
  subcloud_apply_type:
    description: C(serial) runs one subcloud at a time.
    type: str
    choices: [parallel, serial]
  max_parallel_subclouds:
    description: Most subclouds prestaged at once, 1 to 250.
    type: int
  stop_on_failure:
    description: Start no more subclouds after the first failure.
    type: bool
    default: false
  force:
    description: Skip only the management-affecting alarm check.
    type: bool
    default: false
  group:
    description:
      - A subcloud group to prestage with that group's settings, as C(-l GROUP) does (for a
        survey, which cannot set the limit). Not with I(subcloud_apply_type) or
        I(max_parallel_subclouds).
    type: str
  limit:
    description: The play's C(--limit) (C(ansible_limit)).
    type: str
  hosts:
    description: The play's hosts (C(ansible_play_hosts_all)).
    type: list
    elements: str
    required: true
  forks:
    description:
      - Ansible's forks (C(ansible_forks)). When given, a strategy whose largest window is wider
        is refused before it changes, as the C(distcloud.prestage.prestage) strategy would
        refuse to run it.
    type: int
  retry_failed:
    description:
      - Make the strategy of the subclouds whose step failed in the last strategy - the newest
        record of the state dir's history, kept when a strategy is deleted (C(dcprestage
        strategy-history list)) - with that strategy's settings (release, type, force, stop on
        failure, subcloud apply type and max parallel subclouds; group by group when it ran
        group by group), as C(dcprestage prestage-strategy create --retry-failed) does.
      - Refused when a strategy exists, when there is no record or the newest has no failed
        step, and when given with I(release), I(prestage_type=for_sw_deploy),
        I(subcloud_apply_type), I(max_parallel_subclouds), I(stop_on_failure=true),
        I(force=true) or I(group). The play's hosts must hold the subclouds to retry.
      - Under AWX each job has a state dir of its own, with no earlier strategy; relaunch the
        job on its failed hosts instead (the subclouds whose step failed are failed hosts).
    type: bool
    default: false
author:
  - distcloud.prestage contributors (@distcloud-prestage)
"""

EXAMPLES = r"""
- name: Create or take over the prestage strategy
  distcloud.prestage.prestage_strategy:
    inventory_config: "{{ prestage_inventory_config }}"
    release: "{{ release | default(omit) }}"
    limit: "{{ ansible_limit | default(omit) }}"
    hosts: "{{ ansible_play_hosts_all }}"
    forks: "{{ ansible_forks }}"
  run_once: true
  delegate_to: localhost
  register: prestage_strategy
"""

RETURN = r"""
action:
  description: What was done - C(created), C(applied), C(resumed) or C(taken-over).
  returned: success
  type: str
  sample: created
state_dir:
  description: The state dir of the strategy.
  returned: success
  type: str
release:
  description: The release the strategy prestages.
  returned: success
  type: str
  sample: "24.09"
for_sw_deploy:
  description: Whether the strategy prestages for software deployment.
  returned: success
  type: bool
force:
  description: Whether the management-affecting alarm check is skipped.
  returned: success
  type: bool
steps:
  description: Number of subclouds in the strategy.
  returned: success
  type: int
strategy:
  description: The strategy as C(dcprestage prestage-strategy show) prints it.
  returned: success
  type: dict
retried:
  description: With I(retry_failed), which strategy's failures are retried, and which subclouds.
  returned: when a strategy was created with I(retry_failed)
  type: str
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.distcloud.prestage.plugins.module_utils._strategy_args import (  # noqa: E402
    PRESTAGE_STRATEGY_ARGS,
)


def main() -> None:
    module = AnsibleModule(argument_spec=PRESTAGE_STRATEGY_ARGS, supports_check_mode=True)
    module.fail_json(msg="distcloud.prestage.prestage_strategy runs on the controller as an action")


if __name__ == "__main__":
    main()
