"""Test-only module: end a gated subcloud as its gate file says (ok, fail, skip, or incomplete:
the subcloud's play ends without completing prestage)."""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "gate": {"type": "path", "required": True},
            "release": {"type": "str", "required": True},
            "for_sw_deploy": {"type": "bool", "default": False},
        }
    )
    with open(module.params["gate"], encoding="utf-8") as handle:
        outcome = handle.read().strip() or "ok"
    if outcome == "fail":
        module.fail_json(msg="the gate said fail")
    if outcome == "incomplete":
        module.exit_json(changed=False)
    if outcome == "skip":
        module.exit_json(changed=False, prestage_skip_reason="Subcloud is offline.")
    # what the roles report of a prestaged release (SPEC §2.4's prestage_versions)
    release = module.params["release"]
    install, sw_deploy = (None, release) if module.params["for_sw_deploy"] else (release, None)
    module.exit_json(
        changed=True,
        prestage_complete=True,
        prestage_versions=f"for-install: {install} - for-sw-deploy: {sw_deploy}",
    )


if __name__ == "__main__":
    main()
