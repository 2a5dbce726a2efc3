"""The processes a run of the prestage strategy starts on the controller, through ansible-playbook:
before Python 3.13, one multiprocessing resource tracker for the whole run, started by the
play's main process before its workers fork (so that ansible-core's ssh_askpass does not start
one in every worker); none on 3.13 and later, where ansible-core needs none.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, VENV_BIN

pytestmark = pytest.mark.core_matrix

PLAY = """
- name: The password, as playbooks/prestage.yml's first play
  hosts: all
  gather_facts: false
  strategy: distcloud.prestage.prestage
  vars:
    prestage_password_only: true
  tasks: []

- name: Look at the controller's processes from a worker
  hosts: all
  gather_facts: false
  tasks:
    - name: List the processes
      ansible.builtin.command: ps -ww -eo pid=,ppid=,args=
      changed_when: false
      register: processes
    - name: Show them
      ansible.builtin.debug:
        var: processes.stdout_lines
"""

TRACKER = "from multiprocessing.resource_tracker import main"


def test_a_run_shares_one_resource_tracker_before_python_3_13(tmp_path: Path) -> None:
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "hosts").write_text(
        f"subcloud1 ansible_connection=local ansible_python_interpreter={VENV_BIN / 'python'}\n"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "DCPRESTAGE_"))}
    process = subprocess.Popen(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(tmp_path / "hosts"),
         "-e", "sysadmin_password=Pw-1", str(tmp_path / "play.yml")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
        env={**base, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
             "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
             "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".venv" / "collections")},
    )  # fmt: skip
    output = process.communicate(timeout=120)[0]
    assert process.returncode == 0, output
    listed = [line.strip().strip('",') for line in output.splitlines() if TRACKER in line]
    children = [line for line in listed if int(line.split()[1]) == process.pid]
    # (ansible-playbook runs on this Python: the venv's entry point)
    assert len(children) == (1 if sys.version_info < (3, 13) else 0), output
