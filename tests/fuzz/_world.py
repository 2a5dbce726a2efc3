"""A scratch control plane for fuzzing, and the states a state dir can be in.

One World per test (the example inventory with loopback addresses, a state dir holding what the
system controller said about itself); `reset` puts it into a chosen state before each example, so
thousands of examples share one directory tree without one example leaking into the next.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ansible_collections.distcloud.prestage.plugins.plugin_utils import _strategy as model
from ansible_collections.distcloud.prestage.plugins.plugin_utils._config import load_config
from ansible_collections.distcloud.prestage.plugins.plugin_utils._registry import load_registry
from ansible_collections.distcloud.prestage.plugins.plugin_utils._store import SCHEMA
from tests.conftest import sc_facts, write_sc_facts
from tests.fuzz._harness import DEAD_PID, base_env

ROOT = Path(__file__).resolve().parents[2]
CREATED_AT = "2026-01-01 00:00:00.000000"

# What the state dir holds before an example runs.
STATES = (
    "none",  # no state dir at all (nor the system controller's facts)
    "empty",  # the dir, nothing in it but the system controller's facts
    "initial",
    "applying",  # its orchestrator is gone (a crash)
    "abort requested",
    "aborting",
    "complete",
    "failed",
    "aborted",
    "corrupt",  # strategy.json is not JSON
    "statuses",  # no strategy, subclouds.json with prestage statuses
)


@dataclass(repr=False)
class World:
    root: Path
    config: Path
    registry: Path
    state_dir: Path
    cwd: Path
    registry_text: str
    strategies: dict[str, str]  # state -> strategy.json text

    def __repr__(self) -> str:
        return f"World({self.root})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis' failure report
        printer.text(repr(self))

    def env(self, *, inventory: bool = True, state_dir: bool = True, password: bool = True) -> dict:
        values = {}
        if inventory:
            values["DCPRESTAGE_INVENTORY"] = str(self.config)
        if state_dir:
            values["DCPRESTAGE_STATE_DIR"] = str(self.state_dir)
        if password:
            values["DCPRESTAGE_SYSADMIN_PASSWORD"] = "Fuzz-Pw-1"
        values["ANSIBLE_HOME"] = str(self.root / "ansible-home")
        return base_env(self.root, values)

    def reset(self, state: str, registry_text: str | None = None) -> None:
        """Registry back to its text, the state dir into state, cwd and home emptied.

        Every state but "none" holds the system controller's facts as a run that just read them
        keeps them (fresh at each reset: a test outlives FACTS_TTL)."""
        self.registry.write_text(self.registry_text if registry_text is None else registry_text)
        for path in (self.state_dir, self.cwd, self.root / "home"):
            shutil.rmtree(path, ignore_errors=True)
        self.cwd.mkdir()
        if state == "none":
            return
        write_sc_facts(self.state_dir)
        if state in self.strategies:
            (self.state_dir / "strategy.json").write_text(self.strategies[state])
        elif state == "corrupt":
            (self.state_dir / "strategy.json").write_text('{"schema": 1, "strategy": {"ty')
        elif state == "statuses":
            statuses = {
                "subcloud3": {"prestage_status": "complete", "prestage_versions": "24.09"},
                "subcloud4": {"prestage_status": "failed", "error": "disk full"},
            }
            text = json.dumps({"schema": SCHEMA, "subclouds": statuses})
            (self.state_dir / "subclouds.json").write_text(text)

    def watched(self) -> list[Path]:
        """Everything a command could change."""
        return [self.root / "inventory", self.state_dir, self.cwd, self.root / "home"]


def make_world(root: Path) -> World:
    inventory = root / "inventory"
    inventory.mkdir(parents=True)
    # loopback addresses: nothing a test does may reach the network
    registry_text = (
        (ROOT / "inventory" / "registry.yml").read_text().replace("192.0.2.", "127.0.2.")
    )
    (inventory / "registry.yml").write_text(registry_text)
    # the example's system controller, at a loopback address where nothing listens: a real
    # process that must ask it (no facts kept) gets a quick, clean refusal
    config = yaml.safe_load((ROOT / "inventory" / "subclouds.yml").read_text())
    config["system_controller"]["vars"].update(ansible_host="127.0.2.2", ansible_port=1)
    (inventory / "subclouds.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    world = World(
        root=root,
        config=inventory / "subclouds.yml",
        registry=inventory / "registry.yml",
        state_dir=root / "state",
        cwd=root / "cwd",
        registry_text=registry_text,
        strategies={},
    )
    world.strategies = {state: json.dumps(strategy_in(world, state).to_dict()) for state in (
        "initial", "applying", "abort requested", "aborting", "complete", "failed", "aborted",
    )}  # fmt: skip
    return world


def strategy_in(world: World, state: str) -> model.Strategy:
    """A real strategy (the Edge_Serial group) brought into state by the model's transitions."""
    registry = load_registry(load_config(str(world.config)).registry_path)
    request = model.CreateRequest(group="First_10_Subclouds")
    strategy = model.build_strategy(request, sc_facts(), registry, {}, created_at=CREATED_AT)
    if state == model.INITIAL:
        return strategy
    gone = {"pid": DEAD_PID, "start-ticks": 1, "host": socket.gethostname(), "via": "fuzz"}
    model.apply(strategy, gone, at=CREATED_AT)
    clouds = [step.cloud for step in strategy.steps]
    if state == model.APPLYING:
        model.set_step_state(strategy, clouds[0], model.STEP_PACKAGES, at=CREATED_AT)
    elif state in (model.ABORT_REQUESTED, model.ABORTING):
        model.set_step_state(strategy, clouds[0], model.STEP_PRECHECK, at=CREATED_AT)
        model.request_abort(strategy, orchestrator_alive=True, at=CREATED_AT)
        if state == model.ABORTING:  # a running step moves on after the request
            model.set_step_state(strategy, clouds[0], model.STEP_PACKAGES, at=CREATED_AT)
    else:
        final = {"complete": model.STEP_COMPLETE, "failed": model.STEP_FAILED}
        for index, cloud in enumerate(clouds):
            target = final.get(state, model.STEP_ABORTED if index else model.STEP_COMPLETE)
            model.set_step_state(strategy, cloud, target, "fuzz", at=CREATED_AT)
    assert strategy.state == state, (state, strategy.state)
    return strategy


def fresh_root(base: Path, name: str) -> Path:
    root = base / name
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    os.chmod(root, 0o755)
    return root
