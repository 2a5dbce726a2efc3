"""Fixtures shared by every test: a scratch control-plane workspace and the real dcprestage command.

The workspace is a copy of the example inventory (config + registry) with system controller dirs
under tmp_path, so each test has its own registry, feeds and state dir.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
DCPRESTAGE = str(VENV_BIN / "dcprestage")


@dataclass
class Workspace:
    root: Path
    config: Path
    registry: Path
    state_dir: Path
    feed_dir: Path
    software_dir: Path
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

    def add_feed(self, release: str) -> None:
        (self.feed_dir / f"rel-{release}" / "ostree_repo").mkdir(parents=True, exist_ok=True)

    def add_software(self, release: str) -> None:
        (self.software_dir / release / "metadata").mkdir(parents=True, exist_ok=True)


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
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    # Loopback addresses instead of the example's documentation ones: a test that starts a real
    # run must never send traffic off this machine.
    registry_text = (ROOT / "inventory" / "registry.yml").read_text()
    (inventory / "registry.yml").write_text(registry_text.replace("192.0.2.", "127.0.2."))
    feed_dir = tmp_path / "sc" / "feed"
    software_dir = tmp_path / "sc" / "software"
    config = yaml.safe_load((ROOT / "inventory" / "subclouds.yml").read_text())
    config["system_controller"].update(
        feed_dir=str(feed_dir),
        software_dir=str(software_dir),
        image_list_dir=str(tmp_path / "sc" / "deploy"),
    )
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
        feed_dir=feed_dir,
        software_dir=software_dir,
        env=env,
    )
    ws.add_feed("24.09")
    ws.add_feed("22.12")
    ws.add_software("24.09")
    return ws
