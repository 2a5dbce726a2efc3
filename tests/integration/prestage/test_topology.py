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
