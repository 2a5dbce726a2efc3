"""The history of strategies and `create --retry-failed`, through the real dcprestage command:
delete keeps the strategy's record (history/<label>.json, the logs' label), `strategy-history
list|show`, unreadable records reported and left alone, pruning, and a retry of a run with two
failures (the gated harness: the real launcher, playbook, strategy and callback plugins) that
prestages exactly those two. The playbook's prestage_retry_failed is in test_playbook_entry-like
runs below; AWX's relaunch on failed hosts in awx/test_awx_jobs.py.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

from tests.conftest import VENV_BIN, Workspace, run_playbook
from tests.integration import test_cli_apply
from tests.integration.test_cli_apply import Gated

gated = test_cli_apply.gated  # the same fixture: a workspace whose runs are the gated harness

PASSWORD = "Hist-Test-Pw-4411"
LIST_FIELDS = ["name", "state", "release", "type", "steps", "complete", "skipped", "failed",
               "aborted", "created_at", "updated_at"]  # fmt: skip


def label(created_at: str) -> str:
    return created_at.split(".", maxsplit=1)[0].replace(" ", "T").replace(":", "-")


def create(ws: Workspace, *args: str) -> dict:
    return ws.table("prestage-strategy", "create", *args, "--sysadmin-password", PASSWORD)


def history(ws: Workspace) -> Path:
    return ws.state_dir / "history"


def make_and_delete(ws: Workspace, *args: str) -> str:
    """An initial strategy made and deleted: its record's name."""
    made = create(ws, *args)
    ws.run("prestage-strategy", "delete", check=True)
    return label(made["created_at"])


# --------------------------------------------------------------------------- records


def test_delete_keeps_the_strategy_record_listed_and_shown(workspace: Workspace) -> None:
    ws = workspace
    assert ws.rows("strategy-history", "list") == []
    made = create(ws, "--for-sw-deploy", "--group", "First_10_Subclouds", "--force")
    strategy_file = json.loads((ws.state_dir / "strategy.json").read_text())
    deleted = ws.table("prestage-strategy", "delete")
    assert deleted["state"] == "deleting"
    name = label(made["created_at"])
    record = history(ws) / f"{name}.json"
    # 0600 in a 0700 dir; the strategy.json document, plus its own key, without the secret's id
    assert stat.S_IMODE(history(ws).stat().st_mode) == 0o700
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    kept = json.loads(record.read_text())
    assert kept["history"]["deleted-at"] == deleted["updated_at"]
    assert kept["history"]["logs"] == f"logs/history/{name}"
    strategy_file["strategy"].pop("secret", None)
    assert {k: v for k, v in kept.items() if k != "history"} == strategy_file

    (row,) = ws.rows("strategy-history", "list")
    assert list(row) == LIST_FIELDS
    assert row == {
        "name": name, "state": "initial", "release": "25.09", "type": "for-sw-deploy",
        "steps": 10, "complete": 0, "skipped": 0, "failed": 0, "aborted": 0,
        "created_at": made["created_at"], "updated_at": None,
    }  # fmt: skip
    shown = ws.table("strategy-history", "show", name)
    assert {k: shown[k] for k in made} == made  # the strategy's own table
    assert shown["name"] == name and shown["steps"] == 10 and shown["failed"] == 0
    assert shown["deleted_at"] == deleted["updated_at"]
    assert shown["logs"] == f"logs/history/{name}"
    steps = ws.rows("strategy-history", "show", name, "--steps")
    assert [s["cloud"] for s in steps] == [f"subcloud{i}" for i in range(1, 11)]
    assert list(steps[0]) == ["cloud", "stage", "state", "details", "started_at", "finished_at"]
    assert "subcloud10" in ws.run("strategy-history", "show", name, "--steps", check=True).stdout
    assert ws.fail("strategy-history", "show", name, "--steps", "-f", "shell") == (
        "-f shell does not list steps; use one of csv, json, table, value, yaml"
    )
    assert ws.fail("strategy-history", "show", "2020-01-01T00-00-00") == (
        "History record 2020-01-01T00-00-00 not found"
    )
    assert ws.fail("strategy-history", "show", "../strategy") == (
        "History record ../strategy not found"
    )

    # newest first; a second strategy of the same second gets a suffix, never overwrites
    second = make_and_delete(ws, "subcloud3")
    names = [r["name"] for r in ws.rows("strategy-history", "list")]
    assert names == [second, name] or (second == name and names == [f"{name}.2", name])


def test_unreadable_records_are_reported_skipped_and_never_touched(workspace: Workspace) -> None:
    ws = workspace
    good = make_and_delete(ws, "subcloud1")
    corrupt = history(ws) / "2020-01-01T00-00-00.json"
    corrupt.write_text("{not json")
    newer = history(ws) / "2020-01-02T00-00-00.json"
    document = json.loads((history(ws) / f"{good}.json").read_text())
    newer.write_text(json.dumps({**document, "schema": 99}))
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (corrupt, newer)}

    listed = ws.run("strategy-history", "list", "-f", "json", check=True)
    assert [r["name"] for r in json.loads(listed.stdout)] == [good]
    assert listed.stderr.splitlines() == [
        f"Warning: skipped: History record {newer} was written by a newer distcloud.prestage "
        "(schema 99; this one reads schema 1)",
        f"Warning: skipped: History record {corrupt} is corrupt (not JSON)",
    ]
    assert ws.fail("strategy-history", "show", "2020-01-01T00-00-00") == (
        f"History record {corrupt} is corrupt (not JSON)"
    )
    # pruned when more than 50 are kept: 51 readable records, the oldest goes; not the others
    for day in range(1, 50):  # with the first one: 49 + 1, and the next makes 51
        (history(ws) / f"2021-01-{day:02d}T00-00-00.json").write_text(json.dumps(document))
    make_and_delete(ws, "subcloud2")
    left = sorted(p.name for p in history(ws).iterdir())
    assert "2021-01-01T00-00-00.json" not in left and "2021-01-02T00-00-00.json" in left
    assert len(left) == 52  # 50 readable + the two unreadable ones
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (corrupt, newer)} == before


def test_a_record_that_cannot_be_written_removes_nothing(workspace: Workspace) -> None:
    ws = workspace
    create(ws, "subcloud1")
    history(ws).write_text("in the way")  # the history dir cannot be made
    error = ws.fail("prestage-strategy", "delete")
    assert str(history(ws)) in error
    assert (ws.state_dir / "strategy.json").exists()
    assert ws.table("prestage-strategy", "show")["state"] == "initial"


# --------------------------------------------------------------------------- retry: refusals


def test_retry_refusals(workspace: Workspace) -> None:
    ws = workspace
    flag = "--retry-failed"
    assert ws.fail("prestage-strategy", "create", flag) == (
        f"Nothing to retry: no earlier prestage strategy is kept in {history(ws)} (a strategy is "
        "kept there when it is deleted)"
    )
    name = make_and_delete(ws, "subcloud1")
    assert ws.fail("prestage-strategy", "create", flag) == (
        f"Nothing to retry: the last prestage strategy ({name}, initial) has no failed steps"
    )
    for options in (["subcloud1"], ["--group", "Default"], ["--release", "24.09"],
                    ["--for-sw-deploy", "--force"], ["--max-parallel-subclouds", "3"]):  # fmt: skip
        given = ", ".join(o for o in options if not o[0].isalnum() or o == "subcloud1")
        given = given.replace("subcloud1", "cloud_name")
        assert ws.fail("prestage-strategy", "create", flag, *options) == (
            f"{flag} retries the failed subclouds of the last prestage strategy with its "
            f"settings: it cannot be combined with {given}"
        )
    create(ws, "subcloud2")
    assert ws.fail("prestage-strategy", "create", flag) == (
        "Strategy of type: 'prestage' already exists"
    )


# --------------------------------------------------------------------------- retry: a run


def _run_with_two_failures(gated: Gated) -> dict:
    ws = gated.ws
    ws.run("subcloud-group", "add", "--name", "quad", "--max_parallel_subclouds", "4", check=True)
    for cloud in ("subcloud1", "subcloud2", "subcloud3", "subcloud4"):
        ws.run("subcloud", "update", "--group", "quad", cloud, check=True)
    ws.run("prestage-strategy", "create", "--group", "quad", "--stop-on-failure", check=True)
    ws.run("prestage-strategy", "apply", check=True)
    gated.open("subcloud1")
    gated.open("subcloud2", "fail")
    gated.open("subcloud3", "precheck-fail")
    gated.open("subcloud4", "skip")
    return gated.wait(lambda s: all(x["finished-at"] for x in s["steps"]), "the run to end")


def test_retry_failed_prestages_exactly_the_two_that_failed(gated: Gated) -> None:
    ws = gated.ws
    first = _run_with_two_failures(gated)
    assert gated.states() == {"subcloud1": "complete", "subcloud2": "failed",
                              "subcloud3": "failed", "subcloud4": "complete"}  # fmt: skip
    assert ws.fail("prestage-strategy", "create", "--retry-failed") == (
        "Strategy of type: 'prestage' already exists"
    )
    ws.run("prestage-strategy", "delete", check=True)
    name = label(first["strategy"]["created-at"])
    (row,) = ws.rows("strategy-history", "list")
    assert (row["name"], row["state"], row["complete"], row["skipped"], row["failed"]) == (
        name, "failed", 1, 1, 2,
    )  # fmt: skip
    # one label finds both the record and the logs
    assert (
        "the gate failed the precheck"
        in (ws.state_dir / "logs" / "history" / name / "subcloud3_playbook_output.log").read_text()
    )

    gated.open("subcloud2")  # the causes are fixed
    gated.open("subcloud3")
    made = ws.run("prestage-strategy", "create", "--retry-failed", check=True)
    assert made.stderr.strip() == (
        f"Retrying 2 failed subclouds of the prestage strategy {name} "
        f"(history/{name}.json): subcloud2, subcloud3"
    )
    retry = gated.strategy()
    assert [(s["cloud"], s["stage"]) for s in retry["steps"]] == [
        ("subcloud2", 1),
        ("subcloud3", 1),
    ]
    # its settings: the group's window it ran with, stop on failure, the release and type
    settings = retry["strategy"]
    assert (settings["subcloud-apply-type"], settings["max-parallel-subclouds"]) == ("parallel", 4)
    assert settings["stop-on-failure"] is True
    assert settings["extra-args"]["prestage-software-version"] == "25.09"
    assert settings["extra-args"]["for_sw_deploy"] is False

    ws.run("prestage-strategy", "apply", check=True)
    final = gated.wait(lambda s: s["strategy"]["state"] == "complete", "the retry to complete")
    assert {s["cloud"]: s["state"] for s in final["steps"]} == {
        "subcloud2": "complete", "subcloud3": "complete",
    }  # fmt: skip
    # exactly these two ran: the others have no log of this strategy
    logs = sorted(p.name for p in (ws.state_dir / "logs").glob("*_playbook_output.log"))
    assert logs == ["subcloud2_playbook_output.log", "subcloud3_playbook_output.log"]
    statuses = {r["name"]: r["prestage status"] for r in ws.rows("subcloud", "list")}
    assert statuses["subcloud2"] == statuses["subcloud3"] == "complete"

    ws.run("prestage-strategy", "delete", check=True)
    assert [r["failed"] for r in ws.rows("strategy-history", "list")] == [0, 2]
    assert "has no failed steps" in ws.fail("prestage-strategy", "create", "--retry-failed")


# --------------------------------------------------------------------------- the playbook


def playbook(ws: Workspace, *extra: str) -> tuple[int, str]:
    result = run_playbook(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(ws.config),
         str(ws.root / "harness" / "gated.yml"), "-e", f"sysadmin_password={PASSWORD}", *extra],
        capture_output=True, text=True, env=ws.env, cwd=ws.root, timeout=300,
        start_new_session=True,  # no controlling terminal: nobody can be prompted
    )  # fmt: skip
    return result.returncode, " ".join((result.stdout + result.stderr).split())


def test_the_playbook_retries_the_failed_subclouds(play: Workspace, tmp_path: Path) -> None:
    ws = play
    gates = tmp_path / "gates"
    (gates / "subcloud19").write_text("fail")
    (gates / "subcloud22").write_text("incomplete")
    rc, output = playbook(ws, "-l", "Edge_Serial")
    assert rc == 2, output[-2000:]
    # the run's failed subclouds are Ansible's failed hosts (AWX relaunches those)
    assert "subcloud19 : ok=" in output and "subcloud22 : ok=" in output
    for cloud in ("subcloud19", "subcloud22"):
        assert f"{cloud} : ok=" in output
        assert output.split(f"{cloud} : ok=")[1].split("rescued")[0].count("failed=1") == 1

    # refused while the strategy exists, and with other options
    rc, output = playbook(ws, "-e", "prestage_retry_failed=true")
    assert rc != 0 and "Strategy of type: 'prestage' already exists" in output
    ws.run("prestage-strategy", "delete", check=True)
    rc, output = playbook(ws, "-e", "prestage_retry_failed=true", "-e", "release=24.09")
    assert (
        rc != 0
        and (
            "prestage_retry_failed retries the failed subclouds of the last prestage strategy with "
            "its settings: it cannot be combined with release"
        )
        in output
    )
    assert not (ws.state_dir / "strategy.json").exists()

    (gates / "subcloud19").write_text("ok")
    (gates / "subcloud22").write_text("ok")
    rc, output = playbook(ws, "-e", "prestage_retry_failed=true")
    assert rc == 0, output[-2000:]
    made = json.loads((ws.state_dir / "strategy.json").read_text())
    assert [(s["cloud"], s["state"]) for s in made["steps"]] == [
        ("subcloud19", "complete"), ("subcloud22", "complete"),
    ]  # fmt: skip
    assert made["strategy"]["state"] == "complete"
    # the Edge_Serial stage's window: serial, one at a time
    assert made["strategy"]["subcloud-apply-type"] == "serial"
    ws.run("prestage-strategy", "delete", check=True)
    rc, output = playbook(ws, "-e", "prestage_retry_failed=true")
    assert rc != 0 and "has no failed steps" in output
