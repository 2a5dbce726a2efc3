"""The local topology of SPEC §9: Ansible run on the system controller itself (the inventory's
default, `localhost` with the local connection) prestages a subcloud as the remote topology does
- the same code path, the SC's work run there by its own Python 3.9."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

import pytest
import yaml
from labctl import consumers

from tests.conftest import ROOT, VENV_BIN
from tests.integration.prestage.conftest import SC_RELEASE, Prestage

pytestmark = pytest.mark.lab


def test_ansible_on_the_system_controller_itself(lab: Any, prestage: Prestage) -> None:
    name = prestage.subclouds("24.09")[0]
    prestage.touched.add(name)
    # below the lab's run directory: the SC sees it (its /tmp is its own)
    work = lab.paths.root / "test-local-topology"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(mode=0o700)
    try:
        config = work / "subclouds.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "plugin": "distcloud.prestage.subclouds",
                    "registry": str(lab.registry_file),
                    # the inventory plugin's default system controller, with the SC's own python3
                    "system_controller": {
                        "host": "localhost",
                        "vars": {
                            "ansible_connection": "local",
                            "ansible_python_interpreter": "/usr/bin/python3",
                        },
                    },
                }
            )
        )
        secrets = lab.ansible_secrets(work)
        env = {
            "PATH": f"{VENV_BIN}:/usr/bin:/bin:/usr/sbin:/sbin",
            "HOME": str(work),
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_HOME": str(work / "ansible-home"),
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(work / "cp"),
            "ANSIBLE_CALLBACK_PLUGINS": str(ROOT / "tests" / "callbacks"),
            "ANSIBLE_STDOUT_CALLBACK": "json_document",
            "DCPRESTAGE_STATE_DIR": str(work / "state"),
            "XDG_CACHE_HOME": str(work / "cache"),
        }
        pid = str(lab.host_info(lab.sc)["init_pid"])
        result = subprocess.run(
            [
                "nsenter",
                "-t",
                pid,
                "-m",
                "-n",
                "-u",
                "--",
                "env",
                "-i",
                *(f"{k}={v}" for k, v in env.items()),
                str(VENV_BIN / "ansible-playbook"),
                "-i",
                str(config),
                "-i",
                str(secrets),
                str(ROOT / "playbooks" / "prestage.yml"),
                "-l",
                name,
                "-e",
                f"release={SC_RELEASE}",
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
        data = json.loads(result.stdout[result.stdout.index("{") :])
        hosts = {
            task["task"]["name"].split(" : ", 1)[-1]: task["hosts"]
            for play in data["plays"]
            for task in play["tasks"]
        }
        assert hosts["Report the prestage complete with the subcloud's prestage versions"][name][
            "prestage_complete"
        ]
        facts = hosts["Check that the subcloud can be prestaged"][name]["prestage_sc_release_info"]
        assert facts["python_version"].startswith("3.9.")  # the SC's own python3, locally
        push = hosts["Push the release content from the system controller"][name]
        assert push["python_version"].startswith("3.9.")
        assert consumers.miniboot(lab.paths, name, SC_RELEASE) == prestage.sc_commit()
        for secret in lab.secrets:
            assert secret not in result.stdout + result.stderr
    finally:
        shutil.rmtree(work, ignore_errors=True)
        os.sync()


@pytest.mark.parametrize(
    ("sc_vars", "reason"),
    [
        ({"ansible_become_password": "not-its-password"}, "Incorrect sudo password"),
        ({"ansible_ssh_private_key_file": "/nonexistent/key"}, "Permission denied"),
        ({"ansible_port": 1}, "Connection refused"),
    ],
    ids=["wrong-sudo-password", "wrong-key", "unreachable"],
)
def test_a_system_controller_that_cannot_be_read_changes_nothing(
    lab: Any, prestage: Prestage, tmp_path: Any, sc_vars: dict[str, Any], reason: str
) -> None:
    """Wrong credentials for the system controller, or no answer from it: one line naming it
    before the strategy exists, no subcloud contacted, nothing written."""
    name = prestage.subclouds(SC_RELEASE)[0]
    before = prestage.inside(name, "find /opt/platform-backup /opt/software | sort").stdout
    override = tmp_path / "sc-override.yml"
    if "ansible_become_password" in sc_vars:
        # above the lab's host_vars/system-controller.yml: an extra var (every host's, but the
        # run stops at the system controller before any subcloud)
        override.write_text(yaml.safe_dump(sc_vars))
        args: tuple[str, ...] = ("-e", f"@{override}")
    else:
        override.write_text(yaml.safe_dump({"all": {"hosts": {lab.sc: sc_vars}}}))
        args = ("-i", str(override))
    run = prestage.run(name, args=args)
    assert run.rc != 0
    strategy = run.task(name, "strategy") or {}  # run once, for the play's first host
    message = str(strategy.get("msg", ""))
    assert message.startswith(f"Cannot read the system controller ({lab.sc}): "), message
    assert reason in message and "\n" not in message, message
    assert not (run.state_dir / "strategy.json").exists()
    assert run.task(name, "precheck") is None  # no subcloud was contacted
    assert prestage.inside(name, "find /opt/platform-backup /opt/software | sort").stdout == before
    assert not any(secret in run.stdout + run.stderr for secret in lab.secrets)
