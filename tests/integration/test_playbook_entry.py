"""The ansible-playbook entry point: a strategy made from the play (its -l and -e), an initial
one made by dcprestage applied, and the sysadmin password from -k, an extra var or the prompt.

Uses the gated harness playbook (the real first plays of playbooks/prestage.yml: the
prestage_strategy action, strategy and callback plugins, the system controller's facts from the
harness's fixture module; each subcloud's work is a gate file opened here in advance). Lab runs of
the real playbook are in tests/integration/orchestration/.
"""

from __future__ import annotations

import json
import signal
import subprocess

import pexpect
import pytest
import yaml

from tests.conftest import SC_HOST, VENV_BIN, Workspace, run_playbook, sc_facts, tree_digest

# Also run on every supported ansible-core (scripts/core-matrix):
# the strategy, callback and action plugins through ansible-playbook.
pytestmark = pytest.mark.core_matrix

PROMPT = "Enter the sysadmin password for the subcloud: "
CONFIRM = "Re-enter sysadmin password to confirm: "
SECRET = "Playbook-Pw-771"


def gated(ws: Workspace) -> str:
    return str(ws.root / "harness" / "gated.yml")


def playbook(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    return run_playbook(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(ws.config), gated(ws), *args],
        capture_output=True, text=True, env=ws.env, cwd=ws.root, timeout=300,
        start_new_session=True,  # no controlling terminal: nobody can be prompted
    )  # fmt: skip


def strategy(ws: Workspace) -> dict:
    return json.loads((ws.state_dir / "strategy.json").read_text())


def test_limit_naming_a_group_takes_its_settings(play: Workspace) -> None:
    result = playbook(play, "-l", "Edge_Serial", "-e", f"sysadmin_password={SECRET}")
    assert result.returncode == 0, result.stdout[-3000:]
    made = strategy(play)
    assert made["strategy"]["extra-args"]["group"] == "Edge_Serial"
    assert made["strategy"]["subcloud-apply-type"] == "serial"
    assert made["strategy"]["state"] == "complete"
    assert [s["cloud"] for s in made["steps"]] == [f"subcloud{i}" for i in range(19, 25)]
    table = play.table("prestage-strategy", "show")
    assert table["state"] == "complete"


def test_limit_naming_one_subcloud_and_play_options(play: Workspace) -> None:
    result = playbook(play, "-l", "subcloud7", "-e", f"sysadmin_password={SECRET}",
                      "-e", "release=24.09", "-e", "stop_on_failure=true")  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    made = strategy(play)
    assert made["strategy"]["extra-args"]["cloud_name"] == "subcloud7"
    assert made["strategy"]["extra-args"]["prestage-software-version"] == "24.09"
    assert made["strategy"]["stop-on-failure"] is True


def test_a_strategy_the_play_creates_starts_logs_of_its_own(play: Workspace) -> None:
    logs = play.state_dir / "logs"
    logs.mkdir(parents=True)
    (logs / "subcloud7_playbook_output.log").write_text("an earlier run\n")
    refused = playbook(play, "-l", "subcloud7", "-e", f"sysadmin_password={SECRET}",
                       "-e", "max_parallel_subclouds=0")  # fmt: skip
    assert refused.returncode != 0
    assert sorted(p.name for p in logs.iterdir()) == ["subcloud7_playbook_output.log"]
    result = playbook(play, "-l", "subcloud7", "-e", f"sysadmin_password={SECRET}")
    assert result.returncode == 0, result.stdout[-3000:]
    log = (logs / "subcloud7_playbook_output.log").read_text()
    assert "prestage complete" in log
    assert "an earlier run" not in log  # not appended to a log no strategy owns any more
    (earlier,) = (logs / "history").iterdir()
    assert earlier.name.endswith("-earlier")
    assert (earlier / "subcloud7_playbook_output.log").read_text() == "an earlier run\n"


def test_other_limits_keep_the_plays_subclouds_in_group_stages(play: Workspace) -> None:
    result = playbook(play, "-l", "subcloud1,subcloud12,subcloud20",
                      "-e", f"sysadmin_password={SECRET}")  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    steps = [(s["cloud"], s["stage"]) for s in strategy(play)["steps"]]
    assert steps == [("subcloud12", 1), ("subcloud1", 2), ("subcloud20", 3)]


def test_bad_play_options_are_refused_before_anything_runs(play: Workspace) -> None:
    result = playbook(play, "-e", f"sysadmin_password={SECRET}", "-e", "max_parallel_subclouds=0")
    assert result.returncode != 0
    assert "Invalid max-parallel-subclouds value: 0." in result.stdout
    assert not (play.state_dir / "strategy.json").exists()
    result = playbook(play, "-l", "First_10_Subclouds", "-e", "max_parallel_subclouds=3",
                      "-e", f"sysadmin_password={SECRET}")  # fmt: skip
    assert "The --max-parallel-subclouds options is not supported when --group" in result.stdout


def test_the_playbook_applies_an_initial_strategy_made_by_dcprestage(play: Workspace) -> None:
    play.run("prestage-strategy", "create", "--group", "Edge_Serial", "--sysadmin-password",
             SECRET, check=True)  # fmt: skip
    created = strategy(play)["strategy"]["created-at"]
    result = playbook(play, "-e", f"sysadmin_password={SECRET}")
    assert result.returncode == 0, result.stdout[-3000:]
    applied = strategy(play)
    assert applied["strategy"]["created-at"] == created  # the same strategy, not a new one
    assert applied["strategy"]["state"] == "complete"
    assert len(applied["steps"]) == 6
    # a finished strategy is not applied again by the playbook
    again = playbook(play, "-e", f"sysadmin_password={SECRET}")
    assert again.returncode != 0
    assert "Strategy in state complete cannot be applied; delete it first" in again.stdout


def test_no_password_and_no_terminal_is_a_clear_error_that_changes_nothing(
    play: Workspace,
) -> None:
    result = playbook(play, "-l", "subcloud1")
    assert result.returncode != 0
    assert "No sysadmin password: give it with -k/--ask-pass" in result.stdout + result.stderr
    assert not (play.state_dir / "strategy.json").exists()  # asked for before the strategy
    # an initial strategy made by dcprestage stays initial
    play.run("prestage-strategy", "create", "--group", "Edge_Serial", "--sysadmin-password",
             SECRET, check=True)  # fmt: skip
    before = (play.state_dir / "strategy.json").read_bytes()
    assert playbook(play).returncode != 0
    assert (play.state_dir / "strategy.json").read_bytes() == before


def test_a_strategy_the_play_cannot_run_is_refused_before_it_changes(play: Workspace) -> None:
    """Another -l than the strategy's subclouds, or fewer forks than its window: one clear line,
    and the strategy stays as it was (not left applying with nobody running it)."""
    play.run("prestage-strategy", "create", "--group", "First_10_Subclouds",
             "--sysadmin-password", SECRET, check=True)  # fmt: skip
    before = (play.state_dir / "strategy.json").read_bytes()

    def refused(*args: str) -> str:
        result = playbook(play, *args, "-e", f"sysadmin_password={SECRET}")
        assert result.returncode != 0
        return result.stdout

    assert (
        "The strategy's subclouds subcloud1, subcloud2, subcloud3, subcloud4, subcloud5 and 5 more "
        "are not among this play's hosts; check the inventory and --limit"
    ) in refused("-l", "Edge_Serial")
    assert (
        "Ansible has 4 forks but this prestage strategy runs up to 10 subclouds at once: run with "
        "--forks 10 or more"
    ) in refused("--forks", "4")
    assert (play.state_dir / "strategy.json").read_bytes() == before
    play.run("prestage-strategy", "delete", check=True)
    # nor one the play would create
    assert "Ansible has 4 forks" in refused("-l", "First_10_Subclouds", "--forks", "4")
    assert not (play.state_dir / "strategy.json").exists()


def test_the_seed_prompt_when_run_from_a_terminal(play: Workspace) -> None:
    child = pexpect.spawn(
        str(VENV_BIN / "ansible-playbook"),
        ["-i", str(play.config), gated(play), "-l", "subcloud2"],
        env=play.env, cwd=str(play.root), encoding="utf-8", timeout=120,
    )  # fmt: skip
    child.expect_exact(PROMPT)
    child.sendline("")
    child.expect_exact("Password cannot be empty")
    child.expect_exact(PROMPT)
    child.sendline(SECRET)
    child.expect_exact(CONFIRM)
    child.sendline(SECRET)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before[-3000:]
    assert SECRET not in child.before
    assert strategy(play)["strategy"]["state"] == "complete"


def test_interrupting_the_playbook_prompt_changes_nothing(play: Workspace) -> None:
    child = pexpect.spawn(
        str(VENV_BIN / "ansible-playbook"),
        ["-i", str(play.config), gated(play), "-l", "subcloud2"],
        env=play.env, cwd=str(play.root), encoding="utf-8", timeout=120,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as at a terminal
    )  # fmt: skip
    child.expect_exact(PROMPT)
    child.sendintr()  # Ctrl-C on the terminal
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus != 0
    assert "Password prompt interrupted." in child.before
    assert "Traceback" not in child.before
    assert not (play.state_dir / "strategy.json").exists()


def test_the_play_judges_the_release_on_what_the_system_controller_says(play: Workspace) -> None:
    """The strategy play asks the system controller (its host, by delegation) before anything:
    its facts decide the default release and the release rules, and are kept for dcprestage."""
    (play.state_dir / "sc-facts.json").unlink()
    result = playbook(play, "-l", "subcloud7", "-e", f"sysadmin_password={SECRET}")
    assert result.returncode == 0, result.stdout[-3000:]
    assert strategy(play)["strategy"]["extra-args"]["prestage-software-version"] == "25.09"
    kept = json.loads((play.state_dir / "sc-facts.json").read_text())
    assert (kept["schema"], kept["host"], kept["facts"]) == (1, SC_HOST, sc_facts())
    play.run("prestage-strategy", "delete", check=True)

    # a software deployment started on the system controller: the run is refused in one line
    # before the strategy changes (an initial one made by dcprestage stays initial)
    play.run("prestage-strategy", "create", "--group", "Edge_Serial", "--sysadmin-password",
             SECRET, check=True)  # fmt: skip
    before = (play.state_dir / "strategy.json").read_bytes()
    play.gated_playbook(sc_facts(deployment_in_progress="software deploy from 25.09.1 to 25.09.2"))
    result = playbook(play, "-e", f"sysadmin_password={SECRET}")
    assert result.returncode != 0
    assert (
        "Prestage operations are not allowed while system controller has a software deployment "
        "in progress."
    ) in result.stdout
    assert (play.state_dir / "strategy.json").read_bytes() == before
    # the system controller ready again: a release the play names must be the strategy's, and
    # one the system controller cannot serve makes no strategy
    play.gated_playbook()
    result = playbook(play, "-e", f"sysadmin_password={SECRET}", "-e", "release=23.09")
    assert "The existing prestage strategy is for release 25.09, not 23.09" in result.stdout
    play.run("prestage-strategy", "delete", check=True)
    result = playbook(play, "-l", "subcloud7", "-e", f"sysadmin_password={SECRET}",
                      "-e", "release=23.09")  # fmt: skip
    assert result.returncode != 0
    assert (
        "Error: invalid release version parameter. 23.09 is not a supported release version (24.09)"
    ) in result.stdout
    assert not (play.state_dir / "strategy.json").exists()


@pytest.mark.parametrize("limit", ["subcloud7", "Edge_Serial"])
def test_an_unreachable_system_controller_is_one_line_and_changes_nothing(
    play: Workspace, limit: str
) -> None:
    config = yaml.safe_load(play.config.read_text())
    config["system_controller"]["vars"] = {"ansible_host": "127.0.2.2", "ansible_port": 1}
    play.config.write_text(yaml.safe_dump(config))
    before = tree_digest([play.state_dir])
    result = playbook(play, "-l", limit, "-e", f"sysadmin_password={SECRET}")
    assert result.returncode != 0
    # the strategy task fails with the one line that says why (ssh's reason, not a missing
    # variable), once for the play; no subcloud is counted unreachable
    failures = [line for line in result.stdout.splitlines() if "FAILED! =>" in line]
    assert len(failures) == 1, result.stdout[-3000:]
    assert '"msg": "Cannot read the system controller (system-controller): ' in failures[0]
    assert "port 1: Connection refused" in failures[0]
    recap = result.stdout.rpartition("PLAY RECAP")[2]
    assert "unreachable=0" in recap
    assert "unreachable=1" not in recap
    assert tree_digest([play.state_dir]) == before
