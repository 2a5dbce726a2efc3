"""The sysadmin password prompt of `prestage-strategy create`, typed on a real terminal (pty)."""

from __future__ import annotations

import signal
import subprocess

import pexpect

from tests.conftest import DCPRESTAGE, Workspace

PROMPT = "Enter the sysadmin password for the subcloud: "
CONFIRM = "Re-enter sysadmin password to confirm: "
SECRET = "Typed-Secret-42"


def _as_at_a_terminal() -> None:
    # A test run started in the background (cmd &) inherits an ignored SIGINT; at a user's
    # terminal Ctrl-C interrupts.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def spawn(ws: Workspace, *args: str) -> pexpect.spawn:
    return pexpect.spawn(
        DCPRESTAGE, list(args), env=ws.env, cwd=str(ws.root), encoding="utf-8", timeout=30,
        preexec_fn=_as_at_a_terminal,
    )  # fmt: skip


def test_prompt_reasks_on_empty_and_mismatch_and_never_echoes(workspace: Workspace) -> None:
    child = spawn(workspace, "prestage-strategy", "create", "subcloud7")
    child.expect_exact(PROMPT)
    child.sendline("")
    child.expect_exact("Password cannot be empty")
    child.expect_exact(PROMPT)
    child.sendline(SECRET)
    child.expect_exact(CONFIRM)
    child.sendline("something-else")
    child.expect_exact("Passwords did not match")
    child.expect_exact(PROMPT)
    child.sendline(SECRET)
    child.expect_exact(CONFIRM)
    child.sendline(SECRET)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    transcript = child.before
    assert "| state                     | initial" in transcript
    assert SECRET not in transcript  # no echo, and not printed anywhere
    assert (workspace.state_dir / "sysadmin_password").read_text() == SECRET


def test_a_bad_option_never_asks_for_the_password(workspace: Workspace) -> None:
    child = spawn(workspace, "prestage-strategy", "create", "--release", "24.09.1", "subcloud7")
    index = child.expect_exact([PROMPT, pexpect.EOF])
    child.close()
    assert index == 1
    assert child.exitstatus == 1
    assert "Specified release format is not supported" in child.before


def test_a_check_failing_on_the_registry_never_asks_either(workspace: Workspace) -> None:
    child = spawn(workspace, "prestage-strategy", "create", "subcloud99")
    index = child.expect_exact([PROMPT, pexpect.EOF])
    child.close()
    assert index == 1
    assert "Subcloud subcloud99 does not exist" in child.before


def test_interrupting_the_prompt_writes_nothing(workspace: Workspace) -> None:
    child = spawn(workspace, "prestage-strategy", "create", "subcloud7")
    child.expect_exact(PROMPT)
    child.sendintr()  # Ctrl-C on the terminal
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert "Password prompt interrupted." in child.before
    assert "Traceback" not in child.before
    assert not (workspace.state_dir / "strategy.json").exists()


def test_no_terminal_and_no_password_is_one_line_and_writes_nothing(workspace: Workspace) -> None:
    env = {k: v for k, v in workspace.env.items() if k != "DCPRESTAGE_SYSADMIN_PASSWORD"}
    result = subprocess.run(
        [DCPRESTAGE, "prestage-strategy", "create", "subcloud7"], env=env, cwd=workspace.root,
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False,
        start_new_session=True,  # no controlling terminal, as under cron or a CI job
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr == (
        "No sysadmin password: give it with --sysadmin-password or $DCPRESTAGE_SYSADMIN_PASSWORD, "
        "or run from a terminal to be asked\n"
    )
    assert not (workspace.state_dir / "strategy.json").exists()
