"""`strategy-step list --watch` and the counts line, through the real dcprestage command and a
real (gated) run."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import socket
import struct
import subprocess
import termios
import time

import pytest

from ansible_collections.distcloud.prestage.plugins.plugin_utils._orchestrator import (
    process_start_ticks,
)
from tests.conftest import DCPRESTAGE, Workspace
from tests.integration import test_cli_apply
from tests.integration.test_cli_apply import PASSWORD, Gated

gated = test_cli_apply.gated  # the same fixture: a workspace whose runs are the gated harness

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def trio(ws: Workspace, *clouds: str) -> None:
    ws.run("subcloud-group", "add", "--name", "trio", "--max_parallel_subclouds", "3", check=True)
    for cloud in clouds:
        ws.run("subcloud", "update", "--group", "trio", cloud, check=True)
    ws.run("prestage-strategy", "create", "--group", "trio", check=True)


def watch(ws: Workspace, **kwargs) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [DCPRESTAGE, "strategy-step", "list", "--watch", "--interval", "0.2"],
        env=ws.env,
        text=True,
        **kwargs,
    )


def test_watch_prints_a_line_per_change_and_ends_with_the_strategy(gated: Gated) -> None:
    ws = gated.ws
    trio(ws, "subcloud1", "subcloud2", "subcloud3")
    ws.run("prestage-strategy", "apply", check=True)
    proc = watch(ws, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    gated.open("subcloud1")
    gated.open("subcloud2", "fail")
    gated.open("subcloud3", "skip")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
    assert any(re.fullmatch(f"{stamp} subcloud1 complete", line) for line in lines), out
    assert any(
        re.fullmatch(
            f"{stamp} subcloud2 failed: prestaging-packages: Prestaging packages failed for "
            "subcloud subcloud2, check individual log at .*/subcloud2_playbook_output.log .*",
            line,
        )
        for line in lines
    ), out
    assert any(
        re.fullmatch(f"{stamp} subcloud3 skipped: Prestage skipped 'subcloud3': .*", line)
        for line in lines
    ), out
    # each step's line is printed once per state, never for waiting steps
    assert len([line for line in lines if " subcloud1 complete" in line]) == 1
    assert not any(line.endswith(" initial") for line in lines)
    assert re.fullmatch(
        r"failed: 3 steps: 1 complete, 1 skipped, 1 failed, 0 aborted, 0 running, 0 waiting"
        r" - elapsed \d+\.\d s",
        lines[-1],
    ), lines[-1]


def test_watch_on_a_40_column_terminal_never_wraps(gated: Gated) -> None:
    ws = gated.ws
    trio(ws, "subcloud1", "subcloud2", "subcloud3")
    ws.run("prestage-strategy", "apply", check=True)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 8, 40, 0, 0))
    proc = watch(ws, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    for cloud, outcome in (("subcloud1", "ok"), ("subcloud2", "fail"), ("subcloud3", "ok")):
        gated.open(cloud, outcome)
    output = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _w, _x = select.select([master], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the terminal closed: the command ended
                break
            if not chunk:
                break
            output += chunk
        elif proc.poll() is not None:
            break
    assert proc.wait(timeout=30) == 0
    os.close(master)
    text = output.decode()
    assert "\x1b[H\x1b[J" in text  # redrawn in place
    last = ANSI.sub("", text.rsplit("\x1b[H\x1b[J", 1)[1]).replace("\r", "")
    lines = [line for line in last.split("\n") if line]
    wide = [line for line in ANSI.sub("", text).replace("\r", "").split("\n") if len(line) > 40]
    assert not wide, wide
    assert len(lines) <= 8  # the terminal's height
    assert lines[0].startswith("failed: 3 steps: 2 complete, 0 skipp")
    assert lines[0].endswith("~")  # clipped, not wrapped
    assert [line.split()[:3] for line in lines[2:]] == [
        ["subcloud1", "1", "complete"],
        ["subcloud2", "1", "failed"],
        ["subcloud3", "1", "complete"],
    ]


def claim(ws: Workspace, pid: int, start_ticks: int | None) -> None:
    """Mark the created strategy as applied by `pid` on this host (strategy.json edited as an
    orchestrator's claim would leave it)."""
    path = ws.state_dir / "strategy.json"
    data = json.loads(path.read_text())
    data["strategy"]["state"] = "applying"
    host = socket.gethostname()
    data["strategy"]["orchestrator"] = {"pid": pid, "start-ticks": start_ticks, "host": host}
    path.write_text(json.dumps(data))


def test_watch_ends_clearly_when_the_strategy_is_deleted(workspace: Workspace) -> None:
    workspace.env["DCPRESTAGE_SYSADMIN_PASSWORD"] = PASSWORD
    trio(workspace, "subcloud1", "subcloud2")
    claim(workspace, os.getpid(), process_start_ticks(os.getpid()))  # this test "applies" it
    proc = watch(workspace, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    first = proc.stdout.readline()  # the first counts line: the watch has begun
    assert first.startswith("applying: 2 steps: 0 complete"), first
    (workspace.state_dir / "strategy.json").unlink()  # gone under the watch
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert err.strip() == "The prestage strategy was deleted while it was watched"


def test_watch_refuses_a_strategy_that_nothing_applies(workspace: Workspace) -> None:
    workspace.env["DCPRESTAGE_SYSADMIN_PASSWORD"] = PASSWORD
    trio(workspace, "subcloud1", "subcloud2")
    initial = workspace.run("strategy-step", "list", "--watch", check=False)
    assert (initial.returncode, initial.stdout) == (1, "")
    assert initial.stderr.strip() == (
        "The prestage strategy is not being applied: nothing to follow "
        "('dcprestage prestage-strategy apply' applies it)"
    )
    claim(workspace, 2**22 + 7, 1)  # beyond pid_max: an orchestrator that is gone
    orphan = workspace.run("strategy-step", "list", "--watch", check=False)
    assert (orphan.returncode, orphan.stdout) == (1, "")
    assert re.fullmatch(
        r"Cannot follow the prestage strategy: the orchestrator of this strategy .*\(pid 4194311\) "
        r"is not running; 'dcprestage prestage-strategy apply' resumes it, 'abort' stops it\.",
        orphan.stderr.strip(),
    ), orphan.stderr


def test_a_bad_column_is_one_line_before_any_warning(workspace: Workspace) -> None:
    workspace.env["DCPRESTAGE_SYSADMIN_PASSWORD"] = PASSWORD
    trio(workspace, "subcloud1", "subcloud2")
    claim(workspace, 2**22 + 7, 1)  # orphaned: listing it warns, but not before a bad -c
    for command in (["strategy-step", "list"], ["strategy-history", "list"]):
        assert workspace.fail(*command, "-c", "id").startswith(
            "No recognized column names in ['id']. Recognized columns are ("
        )
    listed = workspace.run("strategy-step", "list", "-c", "cloud", check=True)
    assert listed.stderr.startswith("Warning: the orchestrator of this strategy")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--merge", "a"], "--watch follows one state dir; it cannot be combined with --merge"),
        (["-f", "json"], "--watch prints its own view; it cannot be combined with -f or -c"),
        (["-c", "cloud"], "--watch prints its own view; it cannot be combined with -f or -c"),
        (["--interval", "0"], "--interval: '0' is not a number of seconds from 0.1 to 3600"),
        (["--interval", "nan"], "--interval: 'nan' is not a number of seconds from 0.1 to"),
    ],
)  # fmt: skip
def test_bad_watch_options_are_one_line(workspace: Workspace, args, message) -> None:
    workspace.env["DCPRESTAGE_SYSADMIN_PASSWORD"] = PASSWORD
    workspace.run("prestage-strategy", "create", "subcloud1", check=True)
    assert message in workspace.fail("strategy-step", "list", "--watch", *args)


def test_the_list_says_its_counts_on_stderr_and_keeps_dcmanagers_table(
    workspace: Workspace,
) -> None:
    workspace.env["DCPRESTAGE_SYSADMIN_PASSWORD"] = PASSWORD
    trio(workspace, "subcloud1", "subcloud2")
    result = workspace.run("strategy-step", "list", check=True)
    assert result.stdout.splitlines()[-1].startswith("+")  # the table ends stdout
    assert result.stderr.strip() == (
        "initial: 2 steps: 0 complete, 0 skipped, 0 failed, 0 aborted, 0 running, 2 waiting"
    )
    assert workspace.run("strategy-step", "list", "-f", "json", check=True).stderr == ""
