"""The tests' JSON stdout callback (tests/callbacks/json_document.py) on the installed
ansible-core: the document the lab tests read (plays, each task's result per host, stats), and,
where PyPI's ansible package brings ansible.posix.json, the same answers as that callback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, VENV_BIN

# Also run on every supported ansible-core (scripts/core-matrix): the callback API it uses.
pytestmark = pytest.mark.core_matrix

PLAYBOOK = """
- name: First play
  hosts: all
  gather_facts: false
  tasks:
    - name: Say hello
      ansible.builtin.debug:
        msg: hello
    - name: Fail on purpose
      ansible.builtin.command: /bin/false
      changed_when: false
      ignore_errors: true
    - name: Never runs
      ansible.builtin.debug:
        msg: never
      when: false
    - name: Change something
      ansible.builtin.command: /bin/true
      changed_when: true
      notify: Tell
  handlers:
    - name: Tell
      ansible.builtin.debug:
        msg: told
- name: Second play
  hosts: all
  gather_facts: false
  tasks:
    - name: Set a fact
      ansible.builtin.set_fact:
        answer: 42
"""


def run(tmp_path: Path, callback: str) -> dict[str, Any]:
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_HOME=str(tmp_path / "ansible-home"),
        ANSIBLE_STDOUT_CALLBACK=callback,
        ANSIBLE_CALLBACK_PLUGINS=str(ROOT / "tests" / "callbacks"),
        ANSIBLE_NOCOLOR="1",
    )
    result = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
         "-e", f"ansible_python_interpreter={sys.executable}", str(tmp_path / "play.yml")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def answers(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(play, task, what the tests look at) for every host result."""
    keys = ("changed", "failed", "skipped", "msg", "rc", "ansible_facts")
    return [
        (play["play"]["name"], task["task"]["name"], host,
         {key: result[key] for key in keys if key in result})
        for play in document["plays"]
        for task in play["tasks"]
        for host, result in task["hosts"].items()
    ]  # fmt: skip


def test_the_document_has_plays_tasks_results_and_stats(tmp_path: Path) -> None:
    document = run(tmp_path, "json_document")
    assert [p["play"]["name"] for p in document["plays"]] == ["First play", "Second play"]
    first, second = document["plays"]
    results = {t["task"]["name"]: t["hosts"]["localhost"] for t in first["tasks"]}
    assert list(results) == ["Say hello", "Fail on purpose", "Never runs", "Change something",
                             "Tell"]  # fmt: skip
    assert results["Say hello"]["msg"] == "hello"
    assert results["Fail on purpose"]["failed"] is True
    assert results["Fail on purpose"]["rc"] == 1
    assert results["Never runs"]["skipped"] is True
    assert results["Change something"]["changed"] is True
    assert results["Tell"]["msg"] == "told"
    assert second["tasks"][0]["hosts"]["localhost"]["ansible_facts"] == {"answer": 42}
    stats = document["stats"]["localhost"]
    assert (stats["ok"], stats["changed"], stats["failures"], stats["skipped"],
            stats["ignored"]) == (5, 1, 0, 1, 1)  # fmt: skip


def test_it_answers_as_ansible_posix_json_does(tmp_path: Path) -> None:
    posix = VENV_BIN.parent / "lib"
    if not any(posix.glob("python3*/site-packages/ansible_collections/ansible/posix")):
        pytest.skip("no ansible.posix in this venv (PyPI's ansible package)")
    (tmp_path / "ours").mkdir()
    (tmp_path / "posix").mkdir()
    ours = run(tmp_path / "ours", "json_document")
    theirs = run(tmp_path / "posix", "ansible.posix.json")
    assert answers(ours) == answers(theirs)
    assert ours["stats"] == theirs["stats"]
