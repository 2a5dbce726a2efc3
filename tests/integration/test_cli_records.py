"""What a run records, through `dcprestage prestage-strategy apply` and the gated harness (the real
launcher, ansible-runner, playbook, strategy and callback plugins; see test_cli_apply.py):
a resumed step's own times and its earlier attempt, the orphan warning of `strategy-step list`,
failed steps naming their log and the log ending with the reason, logs that belong to their
strategy, and no exported credential in anything a run leaves.
"""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

from tests.integration import test_cli_apply
from tests.integration.test_cli_apply import PASSWORD, Gated, _alive

gated = test_cli_apply.gated  # the same fixture: a workspace whose runs are the gated harness

CANARY = "canary-7f3e9c1d-not-a-real-key"


def _step(strategy: dict, cloud: str) -> dict:
    return next(s for s in strategy["steps"] if s["cloud"] == cloud)


def _log(gated: Gated, cloud: str) -> Path:
    return gated.ws.state_dir / "logs" / f"{cloud}_playbook_output.log"


def test_a_resumed_step_has_its_own_start_and_its_earlier_attempt(gated: Gated) -> None:
    ws = gated.ws
    ws.run("prestage-strategy", "create", "subcloud1", check=True)
    ws.run("prestage-strategy", "apply", check=True)
    running = gated.wait(
        lambda s: (
            _step(s, "subcloud1")["state"] == "prestage-precheck"
            and s["strategy"]["orchestrator"]["via"] == "ansible-playbook"
        ),
        "the play to take over and start subcloud1",
    )
    first_start = _step(running, "subcloud1")["started-at"]
    pid = running["strategy"]["orchestrator"]["pid"]
    os.kill(pid, signal.SIGKILL)
    gated.wait(lambda s: not _alive(pid), "the kill")

    warning = f"the orchestrator of this strategy (pid {pid}) is not running"
    listed = ws.run("strategy-step", "list", check=True)
    assert "prestage-precheck" in listed.stdout
    assert warning in listed.stderr  # as `prestage-strategy show` says it
    assert warning in ws.run("prestage-strategy", "show", check=True).stderr

    ws.run("prestage-strategy", "apply", check=True)
    resumed = gated.wait(
        lambda s: (
            _step(s, "subcloud1")["state"] == "prestage-precheck"
            and s["strategy"]["orchestrator"]["pid"] != pid
        ),
        "the resumed run to start subcloud1 again",
    )
    step = _step(resumed, "subcloud1")
    assert step["started-at"] > first_start  # the resumed attempt's own start
    assert step["attempts"] == [
        {
            "attempt": 1,
            "started-at": first_start,
            "finished-at": step["attempts"][0]["finished-at"],
            "state": "prestage-precheck",
            "reason": f"the orchestrator (pid {pid}) stopped before the step finished; resumed",
            "phases": [["prestage-precheck", 0.0]],  # what that attempt went through
        }
    ]
    assert first_start < step["attempts"][0]["finished-at"] <= step["started-at"]
    assert warning not in ws.run("strategy-step", "list", check=True).stderr
    gated.open("subcloud1")
    final = gated.wait(lambda s: s["strategy"]["state"] == "complete", "completion")
    done = _step(final, "subcloud1")
    assert done["started-at"] == step["started-at"]
    shown = ws.table("strategy-step", "show", "subcloud1")
    assert shown["started_at"] == step["started-at"]
    assert shown["earlier attempts"] == (
        f"attempt 1: prestage-precheck from {first_start} to {step['attempts'][0]['finished-at']}"
        f": the orchestrator (pid {pid}) stopped before the step finished; resumed"
    )
    # the attempt that ran: each transition with its offset, and how long each phase took
    states = [state for state, _offset in done["phases"]]
    offsets = [offset for _state, offset in done["phases"]]
    assert states[0] == "prestage-precheck" and states[-1] == "complete", states
    assert offsets == sorted(offsets) and offsets[0] == 0.0
    assert re.fullmatch(r"\d+\.\d s|\d+ min \d\d s", shown["duration"]), shown
    assert shown["phase durations"].startswith("prestage-precheck "), shown


def test_failed_steps_name_their_log_which_ends_with_the_reason(gated: Gated) -> None:
    ws = gated.ws
    ws.run("subcloud-group", "add", "--name", "trio", "--max_parallel_subclouds", "3", check=True)
    for cloud in ("subcloud1", "subcloud2", "subcloud3"):
        ws.run("subcloud", "update", "--group", "trio", cloud, check=True)
    ws.run("prestage-strategy", "create", "--group", "trio", check=True)
    ws.run("prestage-strategy", "apply", check=True)
    gated.open("subcloud1", "precheck-fail")
    gated.open("subcloud2", "fail")
    gated.open("subcloud3", "incomplete")  # the subcloud's play ends without completing
    final = gated.wait(lambda s: s["strategy"]["state"] == "failed", "the run to fail")

    reasons = {
        "subcloud1": ("prestage-precheck", "the gate failed the precheck"),
        "subcloud2": (
            "prestaging-packages",
            f"Prestaging packages failed for subcloud subcloud2, check individual log at "
            f"{_log(gated, 'subcloud2')} for detailed output.",
        ),
        "subcloud3": (
            "prestaging-packages",
            "the play ended for this subcloud before prestage completed",
        ),
    }
    for cloud, (state, reason) in reasons.items():
        details = _step(final, cloud)["details"]
        hint = f"check individual log at {_log(gated, cloud)} for detailed output."
        assert details.startswith(f"{state}: ") and details.endswith(hint), details
        assert details.count(hint) == 1
        last = _log(gated, cloud).read_text().splitlines()[-1]
        assert last.endswith(f"prestage failed: {state}: {reason}"), last

    # the logs belong to the strategy: delete keeps them in the history, the next starts afresh
    created = final["strategy"]["created-at"]
    ws.run("prestage-strategy", "delete", check=True)
    history = ws.state_dir / "logs" / "history"
    (kept,) = history.iterdir()
    assert kept.name == created.split(".")[0].replace(" ", "T").replace(":", "-")
    assert "the gate failed the precheck" in (kept / "subcloud1_playbook_output.log").read_text()
    assert not _log(gated, "subcloud1").exists()
    gated.open("subcloud1")
    ws.run("prestage-strategy", "create", "subcloud1", check=True)
    ws.run("prestage-strategy", "apply", check=True)
    gated.wait(lambda s: s["strategy"]["state"] == "complete", "the second strategy")
    log = _log(gated, "subcloud1").read_text()
    assert "prestage complete" in log
    assert "the gate failed the precheck" not in log  # not appended to the earlier one
    assert not _log(gated, "subcloud2").exists()


def test_no_exported_credential_or_password_in_what_a_run_leaves(gated: Gated) -> None:
    ws = gated.ws
    env = {"AWS_SECRET_ACCESS_KEY": CANARY, "SOME_TOKEN": CANARY}
    ws.run("prestage-strategy", "create", "subcloud1", env=env, check=True)
    ws.run("prestage-strategy", "apply", env=env, check=True)
    gated.open("subcloud1")
    gated.wait_final("complete")
    commands = list((ws.state_dir / "runner" / "artifacts").glob("*/command"))
    assert commands  # ansible-runner recorded the command it ran ...
    recorded = json.loads(commands[0].read_text())["env"]
    assert "AWS_SECRET_ACCESS_KEY" not in recorded  # ... with only the environment a run needs
    assert recorded["DCPRESTAGE_STATE_DIR"] == str(ws.state_dir)
    secret = ws.state_dir / "sysadmin_password"
    assert secret.read_text() == PASSWORD  # the strategy's own copy, while it exists
    for path in ws.state_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert CANARY.encode() not in data, path
            assert path == secret or PASSWORD.encode() not in data, path
    ws.run("prestage-strategy", "delete", check=True)
    assert not secret.exists()
    for path in ws.state_dir.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path
