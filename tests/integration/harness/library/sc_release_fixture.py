"""Test-only module: the system controller's answer to distcloud.prestage.sc_release_info, for
plays that run without a StarlingX system controller (tests/conftest.py `gated_playbook` puts it
in the real tasks' place, delegated to the system controller host as they are).

It takes sc_release_info's options and answers the facts the harness gives it (`facts`), with the
release they are about; no content (feed checksum, patch metadata) is read: the gated subclouds
do no prestage work.
"""

from __future__ import annotations

import platform

from ansible.module_utils.basic import AnsibleModule


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "facts": {"type": "dict", "required": True},
            "release": {"type": "str"},
            "for_sw_deploy": {"type": "bool", "default": False},
            "content": {"type": "bool", "default": True},
            "cache_dir": {"type": "path"},
            "timeout": {"type": "int", "default": 3600},
        },
        supports_check_mode=True,
    )
    facts = module.params["facts"]
    result = {
        **facts,
        "release": module.params["release"] or facts.get("sc_release"),
        "for_sw_deploy": module.params["for_sw_deploy"],
        "python_version": platform.python_version(),
    }
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
