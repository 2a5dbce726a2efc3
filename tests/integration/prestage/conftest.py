"""Driving the prestage roles against lab subclouds: the test playbook (roles only, linear
strategy, as in a user's playbook) run with the JSON stdout callback, and helpers to look at and
tamper with a subcloud's files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, VENV_BIN

PLAYBOOK = Path(__file__).resolve().parent / "playbooks" / "prestage.yml"
RELEASE = "24.09"
PHASE_TASKS = {
    "precheck": "Check that the subcloud can be prestaged",
    "packages": "Transfer and verify the release software",
    "images": "Copy the release's images into the subcloud's local registry",
    "finalize": "Report the prestage complete with the subcloud's prestage versions",
}


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str
    data: dict[str, Any]

    def task(self, host: str, phase: str) -> dict[str, Any] | None:
        """The result of the phase's task for host (None when it did not run)."""
        wanted = PHASE_TASKS[phase]
        for play in self.data.get("plays", []):
            for task in play.get("tasks", []):
                name = task["task"]["name"].split(" : ", 1)[-1]
                if name == wanted and host in task.get("hosts", {}):
                    result: dict[str, Any] = task["hosts"][host]
                    return result
        return None

    def ran(self, host: str, phase: str) -> bool:
        result = self.task(host, phase)
        return result is not None and not result.get("skipped")

    def failed_phase(self, host: str) -> tuple[str, str] | None:
        """(phase, message) of the task that failed for host, or None."""
        for phase in PHASE_TASKS:
            result = self.task(host, phase)
            if result is not None and result.get("failed"):
                return phase, str(result.get("msg"))
        return None

    def complete(self, host: str) -> bool:
        result = self.task(host, "finalize")
        return bool(result and result.get("prestage_complete"))


class Prestage:
    def __init__(self, lab: Any, tmp_path: Path) -> None:
        self.lab = lab
        self.tmp = tmp_path
        self.secrets = lab.ansible_secrets(tmp_path)
        # pytest-ansible points ANSIBLE_COLLECTIONS_PATH at a copy of the collection it makes
        # (./collections): keep only the lab's Ansible settings, so the work tree is used
        lab_env = lab.ansible_env(tmp_path)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DCPRESTAGE", "ANSIBLE"))},
            **{k: v for k, v in lab_env.items() if os.environ.get(k) != v},
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
            "XDG_CACHE_HOME": str(tmp_path / "cache"),
        }
        self.runs = 0

    def run(
        self,
        *hosts: str,
        release: str = RELEASE,
        sw_deploy: bool = False,
        check: bool = False,
        extra: dict[str, Any] | None = None,
        args: tuple[str, ...] = (),
        timeout: float = 600,
    ) -> Run:
        self.runs += 1
        variables = {"release": release, "for_sw_deploy": sw_deploy, **(extra or {})}
        vars_file = self.tmp / f"vars-{self.runs}.json"
        vars_file.write_text(json.dumps(variables))
        argv = [
            str(VENV_BIN / "ansible-playbook"), "-i", str(self.lab.inventory), str(PLAYBOOK),
            "-l", ",".join(hosts), "-e", f"@{self.secrets}", "-e", f"@{vars_file}",
            *(["--check"] if check else []), *args,
        ]  # fmt: skip
        result = subprocess.run(
            argv, capture_output=True, text=True, env=self.env, cwd=ROOT, timeout=timeout,
            check=False,
        )  # fmt: skip
        (self.tmp / f"run-{self.runs}.out").write_text(result.stdout)
        (self.tmp / f"run-{self.runs}.err").write_text(result.stderr)
        try:
            # the JSON document is the last thing printed (after -v output, if any)
            start = 0 if result.stdout.startswith("{") else result.stdout.rindex("\n{\n") + 1
            data = json.loads(result.stdout[start:])
        except ValueError:
            data = {}
        return Run(result.returncode, result.stdout, result.stderr, data)

    # ------------------------------------------------------------------ the subcloud's files

    def opt(self, name: str) -> Path:
        """Host path of the subcloud's /opt (not what a tmpfs mounted inside it hides)."""
        return Path(self.lab.info["subclouds"][name]["paths"]["/opt"])

    def release_dir(self, name: str, release: str = RELEASE) -> Path:
        return self.opt(name) / "platform-backup" / release

    def inside(self, name: str, script: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run script as root inside the subcloud's mount namespace (what it sees)."""
        pid = str(self.lab.info["subclouds"][name]["init_pid"])
        result = subprocess.run(
            ["nsenter", "-t", pid, "-m", "--", "sh", "-c", script],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if check:
            assert result.returncode == 0, result.stderr
        return result

    def background_inside(self, name: str, script: str) -> subprocess.Popen:
        pid = str(self.lab.info["subclouds"][name]["init_pid"])
        return subprocess.Popen(
            ["nsenter", "-t", pid, "-m", "--", "sh", "-c", script],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def clean(self, name: str) -> None:
        """Remove everything prestaged on the subcloud (its registry keeps its images)."""
        self.inside(name, "rm -rf /opt/platform-backup/* /opt/platform-backup/.[!.]* "
                          "/opt/software/*")  # fmt: skip

    def system_controller(self, **changes: Any) -> dict[str, Any]:
        """The lab's system controller settings with changes (for prestage_system_controller)."""
        config = yaml.safe_load(Path(self.lab.inventory).read_text())
        settings: dict[str, Any] = dict(config["system_controller"])
        base = Path(self.lab.inventory).parent
        for key, value in settings.items():
            if key.endswith(("_dir", "_file", "_ca")) and isinstance(value, str):
                settings[key] = str(base / value)
        settings.update(changes)
        return settings

    def sc_feed(self, release: str = RELEASE) -> Path:
        return Path(self.lab.info["sc"]["feeds"][release])

    def feed_usage(self, release: str = RELEASE) -> tuple[int, int]:
        """(bytes, space on a 4 KiB-block file system) of the release's feed: the lab's feeds
        have whatever size they were last built with (lab up --size)."""
        files = [p for p in self.sc_feed(release).rglob("*") if p.is_file() and not p.is_symlink()]
        size = sum(p.stat().st_size for p in files)
        return size, sum((p.stat().st_size + 4095) // 4096 * 4096 for p in files)


@pytest.fixture
def prestage(lab: Any, tmp_path: Path) -> Iterator[Prestage]:
    driver = Prestage(lab, tmp_path)
    touched = list(lab.subclouds)
    yield driver
    for name in touched:  # leave the subclouds as other tests expect them: nothing prestaged
        driver.clean(name)


def when(condition: Callable[[], bool], action: Callable[[], None], timeout: float = 60) -> None:
    """Run action in a thread as soon as condition holds (polling every 20 ms)."""

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                action()
                return
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()


def copy_tree(source: Path, target: Path) -> None:
    shutil.copytree(source, target, symlinks=True)
