"""Driving the prestage against lab subclouds, and looking at what it left there.

`prestage.run(...)` runs the real playbooks/prestage.yml (its strategy, the roles, the system
controller as a host of its own) with the tests' JSON stdout callback (tests/callbacks), the
subclouds' passwords in a 0600 inventory source (never an argument, never the SC's), and a state
dir of its own; `prestage.roles(...)` runs the roles alone with the linear strategy, as a user's
playbook would. Each test starts from subclouds as `lab up` makes them (`lab reset`) and the
fixture resets what it touched afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, VENV_BIN

sys.path.insert(0, str(ROOT / "lab"))

from labctl import consumers
from labctl.network import link_bytes

ROLES_PLAYBOOK = Path(__file__).resolve().parent / "playbooks" / "prestage.yml"
MAIN_PLAYBOOK = ROOT / "playbooks" / "prestage.yml"
SC_RELEASE = "25.09"
# the role tasks whose results the tests read, by what they do
TASKS = {
    "sc": "Read what the system controller serves for the release",
    "precheck": "Check that the subcloud can be prestaged",
    "prepare": "Prepare the prestage directory",
    "push": "Push the release content from the system controller",
    "finish": "Verify the prestaged release and mark it complete",
    "swd_prepare": "Compare the patch levels and stage the sync",
    "swd_push": "Push the release's feed and software metadata from the system controller",
    "swd_sync": "Pull the release's commits and sort its software metadata",
    "swd_dirs": "Push the release directories from the system controller",
    "swd_finish": "Synchronize the controllers and read the prestage versions",
    "images": "Prestage the release's container images",
    "finalize": "Report the prestage complete with the subcloud's prestage versions",
    "strategy": "Create, apply or resume the prestage strategy",
}


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str
    data: dict[str, Any]
    state_dir: Path

    def task(self, host: str, what: str) -> dict[str, Any] | None:
        """The result of a task for host (None when it did not run for it)."""
        wanted = TASKS[what]
        found = None
        for play in self.data.get("plays", []):
            for task in play.get("tasks", []):
                name = task["task"]["name"].split(" : ", 1)[-1]
                if name == wanted and host in task.get("hosts", {}):
                    found = task["hosts"][host]
        return found

    def ran(self, host: str, what: str) -> bool:
        result = self.task(host, what)
        return result is not None and not result.get("skipped")

    def failure(self, host: str) -> tuple[str, str] | None:
        """(task, message) of the task that failed for host, or None."""
        for what in TASKS:
            result = self.task(host, what)
            if result is not None and result.get("failed") and not result.get("ignore_errors"):
                return what, str(result.get("msg"))
        return None

    def complete(self, host: str) -> bool:
        result = self.task(host, "finalize")
        return bool(result and result.get("prestage_complete"))

    @property
    def strategy(self) -> dict[str, Any]:
        return json.loads((self.state_dir / "strategy.json").read_text())

    def step(self, host: str) -> dict[str, Any]:
        return next(s for s in self.strategy["steps"] if s["cloud"] == host)

    def text(self) -> str:
        """Everything the run printed or left in its state dir (to look for secrets)."""
        parts = [self.stdout, self.stderr]
        for path in self.state_dir.rglob("*"):
            if path.is_file() and path.name != "sysadmin_password":
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)


class Prestage:
    def __init__(self, lab: Any, tmp_path: Path) -> None:
        self.lab = lab
        self.tmp = tmp_path
        self.secrets = lab.ansible_secrets(tmp_path)
        lab_env = lab.ansible_env(tmp_path)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DCPRESTAGE", "ANSIBLE"))},
            **{k: v for k, v in lab_env.items() if os.environ.get(k) != v},
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
            "ANSIBLE_CALLBACK_PLUGINS": str(ROOT / "tests" / "callbacks"),
            "ANSIBLE_STDOUT_CALLBACK": "json_document",
        }
        self.runs = 0
        self.touched: set[str] = set()

    def run(
        self,
        *hosts: str,
        release: str = SC_RELEASE,
        sw_deploy: bool = False,
        extra: dict[str, Any] | None = None,
        args: tuple[str, ...] = (),
        roles_only: bool = False,
        timeout: float = 600,
    ) -> Run:
        """The prestage of hosts (the real playbook, or the roles alone)."""
        self.runs += 1
        self.touched.update(hosts)
        state_dir = self.tmp / f"state-{self.runs}"
        variables: dict[str, Any] = {"release": release, **(extra or {})}
        if roles_only:
            variables["for_sw_deploy"] = sw_deploy
        elif sw_deploy:
            variables["prestage_type"] = "for_sw_deploy"
        vars_file = self.tmp / f"vars-{self.runs}.json"
        vars_file.write_text(json.dumps(variables))
        argv = [
            str(VENV_BIN / "ansible-playbook"),
            "-i",
            str(self.lab.inventory),
            "-i",
            str(self.secrets),
            str(ROLES_PLAYBOOK if roles_only else MAIN_PLAYBOOK),
            "-l",
            ",".join(hosts),
            "-e",
            f"@{vars_file}",
            *args,
        ]
        env = {**self.env, "DCPRESTAGE_STATE_DIR": str(state_dir)}
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=timeout,
            check=False,
        )
        (self.tmp / f"run-{self.runs}.out").write_text(result.stdout)
        (self.tmp / f"run-{self.runs}.err").write_text(result.stderr)
        try:
            # the JSON document is the last thing printed (after -v output, if any)
            start = 0 if result.stdout.startswith("{") else result.stdout.rindex("\n{\n") + 1
            data = json.loads(result.stdout[start:])
        except ValueError:
            data = {}
        return Run(result.returncode, result.stdout, result.stderr, data, state_dir)

    # ------------------------------------------------------------------ what the hosts hold

    def inside(self, host: str, script: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run script as root inside a lab host's mount namespace (what it sees)."""
        return self.lab.inside(host, script, check=check)

    def opt(self, name: str) -> Path:
        """Host path of the subcloud's /opt (not what a tmpfs mounted inside it hides)."""
        return Path(self.lab.host_info(name)["paths"]["/opt"])

    def release_dir(self, name: str, release: str = SC_RELEASE) -> Path:
        return self.opt(name) / "platform-backup" / release

    def sc_commit(self, release: str = SC_RELEASE) -> str:
        return self.inside(
            self.lab.sc,
            f"ostree --repo=/var/www/pages/feed/rel-{release}/ostree_repo rev-parse starlingx",
        ).stdout.strip()

    def feed_bytes(self, release: str = SC_RELEASE) -> int:
        """Bytes of the SC's rel-<release>/ostree_repo (the lab builds it at --size)."""
        out = self.inside(
            self.lab.sc, f"du -sb --apparent-size /var/www/pages/feed/rel-{release}/ostree_repo"
        ).stdout
        return int(out.split()[0])

    def subclouds(self, release: str, mode: str = "simplex") -> list[str]:
        return list(self.lab.subclouds_where(system_mode=mode, software_version=release))

    def images(self, release: str = SC_RELEASE) -> list[str]:
        return consumers.release_images(self.lab.paths, release)


class Traffic:
    """Bytes the system controller sent on the lab bridge, and the controller's own traffic,
    between start and stop (the veth of the SC; the bridge device for the controller)."""

    def __init__(self, lab: Any) -> None:
        self.sc_veth = lab.host_info(lab.sc)["veth"]
        self.bridge = lab.info["bridge"]["name"]

    def __enter__(self) -> Traffic:
        self._sc = link_bytes(self.sc_veth)
        self._controller = link_bytes(self.bridge)
        return self

    def __exit__(self, *exc: object) -> None:
        sc, controller = link_bytes(self.sc_veth), link_bytes(self.bridge)
        # frames the SC sends arrive on the root side of its veth: rx there
        self.sc_sent = sc[0] - self._sc[0]
        self.controller = (controller[0] - self._controller[0]) + (
            controller[1] - self._controller[1]
        )


@pytest.fixture
def prestage(lab: Any, tmp_path: Path) -> Iterator[Prestage]:
    driver = Prestage(lab, tmp_path)
    yield driver
    if driver.touched:  # subclouds as `lab up` makes them, for the tests that follow
        lab.reset(*sorted(driver.touched))
