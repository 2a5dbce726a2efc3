"""Many dcprestage processes at once against one state dir, with real orchestrator runs.

Rounds of concurrent `create`, `apply`, `abort`, `delete`, `show` and `strategy-step list`
processes (real processes, no mocks) run against one state dir while `apply` starts real detached
runs (launcher -> ansible-runner -> ansible-playbook with the prestage strategy and callback
plugins) of the gated harness, whose gates a thread opens and closes at random. Meanwhile a
poller reads strategy.json as fast as it can.

Checked: strategy.json is whole, valid JSON of the current schema at every read; every strategy's
observed states (and every step's) follow a legal path; every command either succeeds with
parseable output or fails with one line that is one of the refusals a race may cause; no run is
left behind.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import signal
import subprocess
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ansible_collections.distcloud.prestage.plugins.plugin_utils import _strategy as model
from tests.conftest import DCPRESTAGE, Workspace

PASSWORD = "Stress-Pw-77"
GROUP = "stress"
MEMBERS = ["subcloud1", "subcloud2", "subcloud3", "subcloud4"]
ROUNDS = 12
PER_ROUND = 14

# Strategy states in the order they may follow each other; the final ones end a strategy.
ORDER = {
    model.INITIAL: 0, model.APPLYING: 1, model.ABORT_REQUESTED: 2, model.ABORTING: 3,
    model.COMPLETE: 4, model.FAILED: 4, model.ABORTED: 4,
}  # fmt: skip
STEP_ORDER = {
    model.STEP_INITIAL: 0, model.STEP_PRECHECK: 1, model.STEP_PACKAGES: 2, model.STEP_IMAGES: 3,
    model.STEP_COMPLETE: 4, model.STEP_FAILED: 4, model.STEP_ABORTED: 4,
}  # fmt: skip
# What a command may answer when another one got there first.
RACE_REFUSALS = re.compile(
    r"^(Strategy of type: 'prestage' already exists"
    r"|Strategy of type 'prestage' not found"
    r"|Strategy in state [a-z ]+ cannot be (applied|aborted|deleted)"
    r"|Strategy has no steps to apply"
    r"|Prestage check failed for subcloud \S+: .*"
    r"|Strategy step not found)$"
)
COMMANDS = {
    "create": [
        ["prestage-strategy", "create", "--group", GROUP],
        ["prestage-strategy", "create", "subcloud1"],
        ["prestage-strategy", "create", "--subcloud-apply-type", "serial", "subcloud2"],
        ["prestage-strategy", "create", "--group", GROUP, "--stop-on-failure"],
    ],
    "apply": [["prestage-strategy", "apply", "--yes"]],
    "abort": [["prestage-strategy", "abort"]],
    "delete": [["prestage-strategy", "delete", "--yes"]],
    "show": [["prestage-strategy", "show", "-f", "json"]],
    "list": [["strategy-step", "list", "-f", "json"], ["strategy-step", "show", "subcloud1"]],
}
MIX = ["create"] * 3 + ["apply"] * 3 + ["abort"] * 2 + ["delete"] * 2 + ["show"] * 2 + ["list"] * 2


@dataclass
class Observations:
    """What the poller saw: per strategy (by created-at) its states, per step its states."""

    reads: int = 0
    states: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    steps: dict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))
    orchestrators: set[int] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)

    def record(self, document: dict) -> None:
        strategy = model.Strategy.from_dict(document)  # schema-valid, or StateFileError
        key = strategy.created_at
        if not self.states[key] or self.states[key][-1] != strategy.state:
            self.states[key].append(strategy.state)
        for step in strategy.steps:
            seen = self.steps[(key, step.cloud)]
            if not seen or seen[-1] != step.state:
                seen.append(step.state)
        # a final strategy is what its steps roll up to (failed early only with stop-on-failure)
        if strategy.state in model.STRATEGY_FINAL:
            early_stop = strategy.state == model.FAILED and strategy.stop_on_failure
            rolled_up = model.roll_up(strategy) == strategy.state
            # an abort ends aborted even when every step it let run completed
            was_aborted = model.ABORT_REQUESTED in self.states[key]
            if strategy.state == model.ABORTED and was_aborted:
                rolled_up = all(s.state != model.STEP_FAILED for s in strategy.steps)
            if not early_stop and (not all(s.final for s in strategy.steps) or not rolled_up):
                self.problems.append(f"final state {strategy.state} does not match its steps: "
                                     f"{[(s.cloud, s.state) for s in strategy.steps]}")  # fmt: skip
        pid = strategy.orchestrator.get("pid")
        if isinstance(pid, int) and pid > 0:
            self.orchestrators.add(pid)


def poll(path: Path, seen: Observations, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            continue
        seen.reads += 1
        try:
            seen.record(json.loads(raw))
        except Exception as exc:  # every kind of bad read is a finding
            seen.problems.append(f"{type(exc).__name__}: {exc}: {raw[:200]!r}")


def gatekeeper(gates: Path, stop: threading.Event, rng: random.Random) -> None:
    """Open and close the subclouds' gates at random: runs progress, fail, and wait."""
    while not stop.is_set():
        cloud = rng.choice(MEMBERS)
        gate = gates / cloud
        if gate.exists() and rng.random() < 0.3:
            gate.unlink(missing_ok=True)
        elif not gate.exists():
            tmp = gates / f".{cloud}"
            tmp.write_text(rng.choice(["ok", "ok", "ok", "fail", "skip"]))
            tmp.rename(gate)
        stop.wait(rng.uniform(0.05, 0.4))


def legal(sequence: list[str], order: dict[str, int], back_to_initial: bool = False) -> bool:
    """Whether states observed one after another can be a path (polls may miss states)."""
    for before, after in itertools.pairwise(sequence):
        if order[before] == 4:
            return False  # a final state never changes
        if order[after] < order[before] and not (back_to_initial and after == model.STEP_INITIAL):
            return False
    return True


@pytest.mark.slow
def test_many_commands_at_once_keep_the_state_whole_and_legal(workspace: Workspace) -> None:
    ws = workspace
    gates = ws.root / "gates"
    gates.mkdir()
    ws.env.update(
        DCPRESTAGE_PLAYBOOK=str(ws.gated_playbook()),
        DCPRESTAGE_TEST_GATES=str(gates),
        DCPRESTAGE_SYSADMIN_PASSWORD=PASSWORD,
    )
    ws.run("subcloud-group", "add", "--name", GROUP, "--max_parallel_subclouds", "2", check=True)
    for cloud in MEMBERS:
        ws.run("subcloud", "update", "--group", GROUP, cloud, check=True)

    rng = random.Random(os.environ.get("DCPRESTAGE_STRESS_SEED", "7"))
    seen = Observations()
    stop = threading.Event()
    threads = [
        threading.Thread(target=poll, args=(ws.state_dir / "strategy.json", seen, stop)),
        threading.Thread(target=gatekeeper, args=(gates, stop, rng)),
    ]
    for thread in threads:
        thread.start()
    outcomes: list[tuple[list[str], int, str, str]] = []
    try:
        for _round in range(ROUNDS):
            ws.write_sc_facts()  # the storm outlives FACTS_TTL: the SC's facts stay fresh
            batch = [rng.choice(COMMANDS[rng.choice(MIX)]) for _slot in range(PER_ROUND)]
            processes = [
                (argv, subprocess.Popen([DCPRESTAGE, *argv], env=ws.env, cwd=ws.root,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        stdin=subprocess.DEVNULL, text=True))
                for argv in batch
            ]  # fmt: skip
            for argv, process in processes:
                out, err = process.communicate(timeout=120)
                outcomes.append((argv, process.returncode, out, err))
        _finish(ws, gates)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        leftovers = _wait_for_exit(seen.orchestrators, timeout=120)

    print(f"{seen.reads} reads; strategies: {dict(seen.states)}")
    print("outcomes:", sorted({(a[1], c, e.strip()[:60]) for a, c, _o, e in outcomes}))
    assert not seen.problems, seen.problems[:5]
    assert not leftovers, f"orchestrators still running: {leftovers}"
    assert seen.reads > 100, "the poller hardly read anything: the test proved nothing"
    for argv, code, out, err in outcomes:
        assert "Traceback" not in err, (argv, err)
        if code == 0:
            if "-f" in argv:
                json.loads(out)
            continue
        lines = err.splitlines()
        assert len(lines) == 1 and RACE_REFUSALS.match(lines[0]), (argv, code, err)
    for created_at, states in seen.states.items():
        assert legal(states, ORDER), f"strategy {created_at}: illegal path {states}"
    for (created_at, cloud), states in seen.steps.items():
        assert legal(states, STEP_ORDER, back_to_initial=True), (
            f"strategy {created_at}, step {cloud}: illegal path {states}"
        )
    # the storm really raced: several strategies, applied, aborted and deleted
    assert len(seen.states) >= 3, dict(seen.states)
    assert any(model.APPLYING in states for states in seen.states.values()), dict(seen.states)
    succeeded = {argv[1] for argv, code, _out, _err in outcomes if code == 0}
    assert {"create", "apply", "abort", "delete"} <= succeeded, succeeded


def _finish(ws: Workspace, gates: Path) -> None:
    """Open every gate, abort what still runs, wait for a final state, delete it."""
    # (the gatekeeper still runs: steps may still fail or wait a little)
    for cloud in MEMBERS:
        gate = gates / cloud
        if not gate.exists():
            gate.write_text("ok")
    path = ws.state_dir / "strategy.json"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            state = json.loads(path.read_text())["strategy"]["state"]
        except FileNotFoundError:
            return
        if state in model.STRATEGY_FINAL or state == model.INITIAL:
            ws.run("prestage-strategy", "delete", "--yes", check=True)
            return
        if state in model.RUNNING_STATES:
            # an abort also ends what an orchestrator that is gone left behind (even an abort
            # requested before its play took over)
            ws.run("prestage-strategy", "abort")
        time.sleep(0.2)
    raise AssertionError(f"the last strategy never ended: {path.read_text()[:500]}")


def _wait_for_exit(pids: set[int], timeout: float) -> list[int]:
    """Wait for the orchestrators the poller saw; kill (and return) any that outlive timeout."""
    deadline = time.monotonic() + timeout
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        alive = {pid for pid in alive if _alive(pid)}
        time.sleep(0.2)
    for pid in alive:
        for kill in (os.killpg, os.kill):  # the launcher leads its own session; a play does not
            try:
                kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                continue
    return sorted(alive)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")
