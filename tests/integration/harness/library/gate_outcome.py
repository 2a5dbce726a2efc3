"""Test-only module: end a gated subcloud as its gate file says (ok, fail or skip)."""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule


def main() -> None:
    module = AnsibleModule(argument_spec={"gate": {"type": "path", "required": True}})
    with open(module.params["gate"], encoding="utf-8") as handle:
        outcome = handle.read().strip() or "ok"
    if outcome == "fail":
        module.fail_json(msg="the gate said fail")
    if outcome == "skip":
        module.exit_json(changed=False, prestage_skip_reason="Subcloud is offline.")
    module.exit_json(
        changed=True,
        prestage_complete=True,
        prestage_versions="for-install: 24.09 - for-sw-deploy: None",
    )


if __name__ == "__main__":
    main()
