"""Concurrent dcprestage processes against one state dir (real processes, no mocks)."""

from __future__ import annotations

import json
import subprocess

from tests.conftest import DCPRESTAGE, Workspace


def start(ws: Workspace, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [DCPRESTAGE, *args],
        env=ws.env,
        cwd=ws.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_racing_creates_make_exactly_one_strategy(workspace: Workspace) -> None:
    groups = ["Default", "First_10_Subclouds", "Edge_Serial", "1", "2", "3"]
    for _round in range(4):
        racers = [
            start(workspace, "prestage-strategy", "create", "--group", group,
                  "--sysadmin-password", f"pw-{group}")
            for group in groups
        ]  # fmt: skip
        results = [(p.wait(timeout=60), *p.communicate()) for p in racers]
        winners = [r for r in results if r[0] == 0]
        losers = [r for r in results if r[0] != 0]
        assert len(winners) == 1, results
        for _code, _out, err in losers:
            assert err.strip() == "Strategy of type: 'prestage' already exists"
        # the file on disk is the winner's, whole, and its secret matches it
        strategy = json.loads((workspace.state_dir / "strategy.json").read_text())
        assert strategy["strategy"]["created-at"] in winners[0][1]
        secret = (workspace.state_dir / "sysadmin_password").read_text()
        assert secret in {f"pw-{g}" for g in groups}
        workspace.run("prestage-strategy", "delete", check=True)


def test_readers_never_see_a_torn_file_while_writers_run(workspace: Workspace, tmp_path) -> None:
    # apply starts a real run: of the gated harness, every gate open (nothing is contacted)
    gates = tmp_path / "gates"
    gates.mkdir()
    for i in range(1, 25):
        (gates / f"subcloud{i}").write_text("ok")
    workspace.env.update(
        DCPRESTAGE_PLAYBOOK=str(workspace.gated_playbook()),
        DCPRESTAGE_TEST_GATES=str(gates),
    )
    workspace.run("prestage-strategy", "create", "--sysadmin-password", "pw", check=True)
    writers = [start(workspace, "prestage-strategy", "apply")] + [
        start(workspace, "prestage-strategy", "abort") for _abort in range(3)
    ]
    readers = [start(workspace, "strategy-step", "list", "-f", "json") for _reader in range(6)]
    for reader in readers:
        out, err = reader.communicate(timeout=60)
        assert reader.returncode == 0, err
        assert len(json.loads(out)) == 24
    outcomes = [(w.wait(timeout=60), w.communicate()[1].strip()) for w in writers]
    assert outcomes[0] == (0, "")
    # every abort either won (applying -> aborted) or was refused with the state it found
    for code, err in outcomes[1:]:
        assert code == 0 or err.startswith("Strategy in state "), err
    assert sum(code == 0 for code, _err in outcomes[1:]) <= 1
