"""Fixtures shared by every test: a scratch control-plane workspace and the real dcprestage command.

The workspace is a copy of the example inventory (config + registry) under tmp_path, so each test
has its own registry and state dir. No test outside the lab needs a StarlingX system controller:
what it says about itself (sc_release_info's facts: a 25.09 system controller that upgrades from
24.09) comes from `sc_facts`, kept in the state dir as a recent run keeps it (`write_sc_facts`),
and given to the plays of the gated harness by a fixture module (`gated_playbook`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
DCPRESTAGE = str(VENV_BIN / "dcprestage")
HARNESS = ROOT / "tests" / "integration" / "harness"

# The example inventory's system controller (inventory/subclouds.yml).
# ansible-core 2.21 on Python 3.13.0 now and then loses the first worker of a run before it runs
# anything: "[ERROR]: Could not detach from stdio: [Errno 9] Bad file descriptor" then "A worker
# was found in a dead state", from the worker's own fd set-up (ansible/executor/process/
# worker.py, WorkerProcess._detach), before any task code: in 4 of 9 runs of the core-matrix
# stage, 1 to 3 of the ~30 gated playbook runs; never on 2.19/2.20. Its cause is not found (see
# the closing note of issue 15). A run that failed that way is run once more, and says so.
CORE_WORKER_START_FAILURE = ("Could not detach from stdio", "A worker was found in a dead state")


def run_playbook(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """subprocess.run(command) of an ansible-playbook, again once after an ansible-core worker
    start failure (CORE_WORKER_START_FAILURE); the caller's assertions judge the result."""
    result = subprocess.run(command, check=False, **kwargs)
    output = f"{result.stdout or ''}{result.stderr or ''}"
    if result.returncode != 0 and all(text in output for text in CORE_WORKER_START_FAILURE):
        print(f"ansible-core worker start failure, run again: {output[-500:]}", file=sys.stderr)
        result = subprocess.run(command, check=False, **kwargs)
    return result


SC_HOST = "system-controller"
SC_RELEASE = "25.09"
PREVIOUS_RELEASE = "24.09"


def sc_facts(**changes: Any) -> dict[str, Any]:
    """What a 25.09 system controller that upgrades from 24.09 says about itself: the keys of
    sc_release_info the release rules read (plugins/plugin_utils/_checks.py), as the lab's system
    controller answers them (its `software list`: 24.09.0/.1 unavailable, 25.09.0/.1 deployed;
    no deployment in progress). changes replace keys."""
    facts: dict[str, Any] = {
        "sc_release": SC_RELEASE,
        "supported_upgrades": [PREVIOUS_RELEASE],
        "min_supported_release": PREVIOUS_RELEASE,
        "upgrades_error": None,
        "software_releases": [
            _release("24.09.0", "True", "unavailable"),
            _release("24.09.1", "False", "unavailable"),
            _release("25.09.0", "True", "deployed"),
            _release("25.09.1", "False", "deployed"),
        ],
        "software_error": None,
        "deployment_in_progress": None,
    }
    facts.update(changes)
    return facts


def _release(sw_version: str, reboot_required: str, state: str) -> dict[str, str]:
    """A row of the system controller's `software list` as sc_release_info reads it."""
    return {"release_id": f"starlingx-{sw_version}", "reboot_required": reboot_required,
            "state": state, "sw_version": sw_version}  # fmt: skip


def write_sc_facts(state_dir: Path, host: str = SC_HOST, **changes: Any) -> dict[str, Any]:
    """Keep sc_facts(**changes) in state_dir as a run that just read them on host keeps them
    (_sc_query.save_facts, read_at now): dcprestage uses them for FACTS_TTL seconds instead of
    asking the system controller. Call it again where a test outlives that."""
    # imported when used: this conftest loads before pytest-ansible sets up the collection loader
    from ansible_collections.distcloud.prestage.plugins.plugin_utils import _sc_query  # noqa: PLC0415

    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    facts = sc_facts(**changes)
    _sc_query.save_facts(str(state_dir), host, facts)
    return facts


# The real playbook's module that reads the system controller, and the harness's stand-in.
SC_MODULE = "distcloud.prestage.sc_release_info"
SC_FIXTURE_MODULE = "sc_release_fixture"


def gated_playbook(directory: Path, facts: dict[str, Any] | None = None) -> Path:
    """The gated harness as <directory>/gated.yml, with its modules in <directory>/library.

    Its plays are playbooks/prestage.yml's own, up to the subclouds' work (the password play, and
    the strategy play with its system controller steps, still delegated to the system controller
    host), then tests/integration/harness/gated.yml's subcloud play in place of the roles. Only
    the module that reads the system controller is swapped for the harness's sc_release_fixture,
    which answers facts (default sc_facts()) with no StarlingX system controller (and needs no
    root: no become).
    """
    *plays, _roles = yaml.safe_load((ROOT / "playbooks" / "prestage.yml").read_text())
    swapped = 0
    for play in plays:
        for task in play.get("tasks") or []:
            if SC_MODULE in task:
                args = task.pop(SC_MODULE) or {}
                task.pop("become", None)
                task[SC_FIXTURE_MODULE] = {**args, "facts": sc_facts() if facts is None else facts}
                swapped += 1
    assert swapped, f"playbooks/prestage.yml no longer runs {SC_MODULE}: update the harness"
    gated = yaml.safe_load((HARNESS / "gated.yml").read_text())
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "gated.yml"
    path.write_text(yaml.safe_dump(plays + gated, sort_keys=False))
    shutil.copytree(HARNESS / "library", directory / "library", dirs_exist_ok=True)
    return path


@dataclass
class Workspace:
    root: Path
    config: Path
    registry: Path
    state_dir: Path
    env: dict[str, str] = field(default_factory=dict)

    def run(
        self, *args: str, input: str | None = None, env: dict[str, str] | None = None, check=None
    ) -> subprocess.CompletedProcess[str]:
        """Run the real dcprestage command; check=True/False asserts the exit status."""
        result = subprocess.run(
            [DCPRESTAGE, *args],
            check=False,
            input=input,
            capture_output=True,
            text=True,
            env={**self.env, **(env or {})},
            cwd=self.root,
            timeout=60,
        )
        if check is True:
            assert result.returncode == 0, result.stderr
        elif check is False:
            assert result.returncode != 0, result.stdout
        return result

    def fail(self, *args: str, **kwargs) -> str:
        """Run a command that must fail; return its one-line error."""
        result = self.run(*args, check=False, **kwargs)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, f"expected one error line, got: {result.stderr!r}"
        assert "Traceback" not in result.stderr
        return lines[0]

    def table(self, *args: str, **kwargs) -> dict[str, str]:
        """A ShowOne command's Field/Value pairs (via -f json, values as dcmanager prints them)."""
        import json  # noqa: PLC0415

        result = self.run(*args, "-f", "json", check=True, **kwargs)
        return json.loads(result.stdout)

    def rows(self, *args: str, **kwargs) -> list[dict[str, object]]:
        import json  # noqa: PLC0415

        return json.loads(self.run(*args, "-f", "json", check=True, **kwargs).stdout)

    def edit_registry(self, change) -> None:
        data = yaml.safe_load(self.registry.read_text())
        change(data)
        self.registry.write_text(yaml.safe_dump(data, sort_keys=False))

    def write_sc_facts(self, **changes: Any) -> dict[str, Any]:
        """The system controller's facts, fresh, in the state dir (see write_sc_facts)."""
        return write_sc_facts(self.state_dir, **changes)

    def gated_playbook(self, facts: dict[str, Any] | None = None) -> Path:
        """The gated harness playbook for this workspace (see gated_playbook)."""
        return gated_playbook(self.root / "harness", facts)


def wait_for_strategy(
    state_dir: Path, condition: Callable[[dict], bool], what: str, timeout: float = 90
) -> dict:
    """Poll <state_dir>/strategy.json until condition(strategy) holds: a deadline, not a delay.

    On time-out the assertion shows the last strategy and the orchestrator's own log.
    """
    path = state_dir / "strategy.json"
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            last = None
        if last is not None and condition(last):
            return last
        time.sleep(0.05)
    log = state_dir / "logs" / "orchestrator.log"
    tail = log.read_text()[-2000:] if log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}; last: {last}\n{tail}")


def tree_digest(paths: Iterable[Path]) -> dict[str, str]:
    """Content and mode of every file under paths: compare before/after to prove no change."""
    digest = {}
    for base in paths:
        if not base.exists():
            continue
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for path in files:
            data = path.read_bytes()
            digest[str(path)] = f"{oct(path.stat().st_mode)}:{hashlib.sha256(data).hexdigest()}"
    return digest


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    from ansible_collections.distcloud.prestage.plugins.plugin_utils import _config  # noqa: PLC0415

    inventory = tmp_path / "inventory"
    inventory.mkdir()
    # Loopback addresses instead of the example's documentation ones: a test that starts a real
    # run must never send traffic off this machine.
    registry_text = (ROOT / "inventory" / "registry.yml").read_text()
    (inventory / "registry.yml").write_text(registry_text.replace("192.0.2.", "127.0.2."))
    # The example's system controller host, reached with the local connection: the plays of the
    # gated harness delegate its steps to it (their fixture module runs here); dcprestage reads
    # its facts from the state dir.
    config = yaml.safe_load((ROOT / "inventory" / "subclouds.yml").read_text())
    assert config["system_controller"]["host"] == SC_HOST
    config["system_controller"]["vars"] = dict(_config.SC_DEFAULT_VARS)
    (inventory / "subclouds.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    state_dir = tmp_path / "state"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DCPRESTAGE_", "ANSIBLE_", "CLI_CONFIRMATIONS"))
    }
    env.update(
        DCPRESTAGE_INVENTORY=str(inventory / "subclouds.yml"),
        DCPRESTAGE_STATE_DIR=str(state_dir),
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_HOME=str(tmp_path / "ansible-home"),
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".venv" / "collections"),
    )
    ws = Workspace(
        root=tmp_path,
        config=inventory / "subclouds.yml",
        registry=inventory / "registry.yml",
        state_dir=state_dir,
        env=env,
    )
    ws.write_sc_facts()
    return ws


@pytest.fixture
def dcmanager_api(tmp_path: Path):
    """The lab's Keystone + dcmanager server on loopback, holding the example registry's groups
    and subclouds (loopback addresses, as the workspace's); see tests/dcmanager_api.py."""
    from tests.dcmanager_api import db_from_registry, start_dcmanager_api  # noqa: PLC0415

    registry = tmp_path / "dcmanager-source" / "registry.yml"
    registry.parent.mkdir(parents=True)
    text = (ROOT / "inventory" / "registry.yml").read_text().replace("192.0.2.", "127.0.2.")
    registry.write_text(text)
    api = start_dcmanager_api(tmp_path / "dcmanager-api", db_from_registry(registry))
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture
def dcmanager_workspace(workspace: Workspace, dcmanager_api) -> Workspace:
    """The workspace with its inventory config reading dcmanager (the dcmanager_api server)
    instead of the registry file; the Keystone password in the commands' environment."""
    config = yaml.safe_load(workspace.config.read_text())
    del config["registry"]
    config["dcmanager"] = dcmanager_api.config()
    workspace.config.write_text(yaml.safe_dump(config, sort_keys=False))
    workspace.env.update(dcmanager_api.env())
    workspace.dcmanager_api = dcmanager_api  # type: ignore[attr-defined]
    return workspace
