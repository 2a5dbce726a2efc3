"""prestage-strategy and strategy-step through the real dcprestage command (SPEC §2.1-§2.3)."""

from __future__ import annotations

import json
import os
import shutil
import stat

import pytest
import yaml

from ansible_collections.distcloud.prestage.plugins.plugin_utils._sc_query import FACTS_TTL
from tests.conftest import ROOT, Workspace, sc_facts, tree_digest, write_sc_facts

PASSWORD = "Sys-Adm1n-Pw!7"
STRATEGY_FIELDS = [
    "strategy type",
    "subcloud apply type",
    "max parallel subclouds",
    "stop on failure",
    "prestage software version",
    "state",
    "created_at",
    "updated_at",
]


def create(ws: Workspace, *args: str) -> dict:
    return ws.table("prestage-strategy", "create", *args, "--sysadmin-password", PASSWORD)


def steps(ws: Workspace) -> list[dict]:
    return ws.rows("strategy-step", "list")


def set_subcloud(ws: Workspace, name: str, **values) -> None:
    def change(data):
        for sc in data["subclouds"]:
            if sc["name"] == name:
                sc.update(values)

    ws.edit_registry(change)


# --------------------------------------------------------------------------- create


def test_create_for_one_subcloud_prints_the_seed_table(workspace: Workspace) -> None:
    result = workspace.run(
        "prestage-strategy", "create", "--for-install", "--release", "24.09", "subcloud7",
        "--sysadmin-password", PASSWORD, check=True,
    )  # fmt: skip
    lines = result.stdout.splitlines()
    assert lines[1].split("|")[1].strip() == "Field"
    fields = [line.split("|")[1].strip() for line in lines[3:-1]]
    assert fields == STRATEGY_FIELDS
    table = workspace.table("prestage-strategy", "show")
    assert table["strategy type"] == "prestage"
    assert table["subcloud apply type"] is None
    assert table["max parallel subclouds"] == 2
    assert table["stop on failure"] is False
    assert table["prestage software version"] == "24.09"
    assert table["state"] == "initial"
    assert table["updated_at"] is None
    assert [s["cloud"] for s in steps(workspace)] == ["subcloud7"]


def test_create_for_all_subclouds_runs_group_by_group(workspace: Workspace) -> None:
    table = create(workspace, "--for-sw-deploy")
    # release defaults to the system controller's; per-stage settings show as None
    assert table["prestage software version"] == "25.09"
    assert table["subcloud apply type"] is None
    assert table["max parallel subclouds"] is None
    rows = steps(workspace)
    # Default first, then groups by id; stages numbered in that order; steps by subcloud id
    by_stage = {}
    for row in rows:
        by_stage.setdefault(row["stage"], []).append(row["cloud"])
    assert by_stage[1] == [f"subcloud{i}" for i in range(11, 19)]
    assert by_stage[2] == [f"subcloud{i}" for i in range(1, 11)]
    assert by_stage[3] == [f"subcloud{i}" for i in range(19, 25)]
    strategy = json.loads((workspace.state_dir / "strategy.json").read_text())
    stages = strategy["strategy"]["stages"]
    settings = [(s["group"], s["subcloud-apply-type"], s["max-parallel-subclouds"]) for s in stages]
    assert settings == [
        ("Default", "parallel", 2),
        ("First_10_Subclouds", "parallel", 10),
        ("Edge_Serial", "serial", 1),
    ]


def test_create_for_a_group_takes_the_group_settings(workspace: Workspace) -> None:
    table = create(workspace, "--group", "First_10_Subclouds")
    assert table["subcloud apply type"] == "parallel"
    assert table["max parallel subclouds"] == 10
    assert [s["cloud"] for s in steps(workspace)] == [f"subcloud{i}" for i in range(1, 11)]
    assert {s["stage"] for s in steps(workspace)} == {1}


def test_group_may_be_given_by_id(workspace: Workspace) -> None:
    create(workspace, "--group", "3")
    assert [s["cloud"] for s in steps(workspace)] == [f"subcloud{i}" for i in range(19, 25)]


def test_explicit_settings_make_one_stage_and_serial_forces_one(workspace: Workspace) -> None:
    table = create(workspace, "--subcloud-apply-type", "serial", "--max-parallel-subclouds", "7")
    assert table["subcloud apply type"] == "serial"
    assert table["max parallel subclouds"] == 1
    rows = steps(workspace)
    assert {s["stage"] for s in rows} == {1}
    assert [s["cloud"] for s in rows] == [f"subcloud{i}" for i in range(1, 25)]


def test_stop_on_failure_and_force_are_recorded(workspace: Workspace) -> None:
    table = create(workspace, "--stop-on-failure", "--force", "subcloud1")
    assert table["stop on failure"] is True
    strategy = json.loads((workspace.state_dir / "strategy.json").read_text())
    assert strategy["strategy"]["extra-args"]["force"] is True


def test_group_and_all_leave_out_subclouds_that_cannot_be_prestaged(workspace: Workspace) -> None:
    set_subcloud(workspace, "subcloud2", availability="offline")
    set_subcloud(workspace, "subcloud3", management="unmanaged")
    set_subcloud(workspace, "subcloud4", deploy_status="installing")
    set_subcloud(workspace, "subcloud5", deploy_status="install-failed")
    set_subcloud(workspace, "subcloud6", backup_status="backing-up")
    create(workspace, "--group", "First_10_Subclouds")
    assert [s["cloud"] for s in steps(workspace)] == [
        "subcloud1", "subcloud7", "subcloud8", "subcloud9", "subcloud10",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"availability": "offline"}, "Subcloud is offline."),
        ({"management": "unmanaged"}, "Subcloud is not managed."),
        (
            {"deploy_status": "installing"},
            "Subcloud subcloud7 current deploy_status is 'installing'. Please wait until it "
            "finishes before running this operation.",
        ),
        (
            {"backup_status": "backing-up"},
            "Subcloud subcloud7 current backup_status is 'backing-up'. Please wait until it "
            "finishes before running this operation.",
        ),
        (
            {"deploy_status": "bootstrap-failed"},
            "Prestage operation is not allowed when subcloud deploy is in progress.",
        ),
    ],
)
def test_a_named_subcloud_that_fails_the_initial_checks_fails_create(
    workspace: Workspace, change: dict, reason: str
) -> None:
    set_subcloud(workspace, "subcloud7", **change)
    error = workspace.fail("prestage-strategy", "create", "subcloud7", "--sysadmin-password", "x")
    assert error == f"Prestage check failed for subcloud subcloud7: {reason}"
    assert not (workspace.state_dir / "strategy.json").exists()


def test_a_subcloud_still_prestaging_is_refused(workspace: Workspace) -> None:
    (workspace.state_dir / "subclouds.json").write_text(
        json.dumps({"schema": 1, "subclouds": {"subcloud7": {"prestage_status": "prestaging"}}})
    )
    error = workspace.fail("prestage-strategy", "create", "subcloud7", "--sysadmin-password", "x")
    assert error.endswith(
        "Subcloud subcloud7 current prestage_status is 'prestaging'. Please wait until it "
        "finishes before running this operation."
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["subcloud99"], "Subcloud subcloud99 does not exist"),
        (["--group", "NoSuchGroup"], "Subcloud Group not found"),
        (["--group", "42"], "Subcloud Group not found"),
        (
            ["--release", "24.09.1"],
            "Specified release format is not supported. Version format must be MM.mm.",
        ),
        (
            ["--release", "24"],
            "Specified release format is not supported. Version format must be MM.mm.",
        ),
        # the release rules, judged on what the (25.09) system controller says (sc_facts)
        (
            ["--release", "21.12"],
            "Error: invalid release version parameter. 21.12 is not a supported release version "
            "(24.09)",
        ),
        (
            ["--release", "26.03"],
            "Error: invalid release version parameter. 26.03 is not a supported release version "
            "(24.09)",
        ),
        (
            ["--for-sw-deploy", "--release", "22.12"],
            "The requested software version is not supported, cannot prestage for software deploy.",
        ),
        (
            ["--for-sw-deploy", "--release", "26.03"],
            "The requested software version not found or not deployed in the system controller, "
            "cannot prestage for software deploy.",
        ),
        (
            ["--max-parallel-subclouds", "0"],
            "Invalid max-parallel-subclouds value: 0. For prestage, the value must be between 1 "
            "and 250.",
        ),
        (
            ["--max-parallel-subclouds", "251"],
            "Invalid max-parallel-subclouds value: 251. For prestage, the value must be between "
            "1 and 250.",
        ),
        (
            ["--for-install", "--for-sw-deploy"],
            "Options --for-install and --for-sw-deploy cannot be combined",
        ),
        (
            ["--group", "Default", "subcloud1"],
            "The cloud_name and group options are mutually exclusive.",
        ),
        (
            ["--group", "Default", "--subcloud-apply-type", "serial"],
            "The --subcloud-apply-type is not supported when --group option is applied.",
        ),
        (
            ["--group", "Default", "--max-parallel-subclouds", "5"],
            "The --max-parallel-subclouds options is not supported when --group option is applied.",
        ),
    ],
)
def test_create_errors_are_one_line_and_change_nothing(
    workspace: Workspace, args: list[str], message: str
) -> None:
    before = tree_digest([workspace.root])
    assert workspace.fail("prestage-strategy", "create", *args, "--sysadmin-password", "x") == (
        message
    )
    assert tree_digest([workspace.root]) == before


def test_sw_deploy_lower_than_the_subcloud_release_is_refused(workspace: Workspace) -> None:
    set_subcloud(workspace, "subcloud6", software_version="26.03")
    error = workspace.fail(
        "prestage-strategy", "create", "--for-sw-deploy", "subcloud6", "--sysadmin-password", "x"
    )
    assert error == (
        "Prestage check failed for subcloud subcloud6: The requested software version (25.09) "
        "is lower than the current subcloud software version (26.03)."
    )
    # the previous release (in any state on the system controller) to a 25.09 subcloud
    set_subcloud(workspace, "subcloud6", software_version="25.09")
    error = workspace.fail("prestage-strategy", "create", "--for-sw-deploy", "--release",
                           "24.09", "subcloud6", "--sysadmin-password", "x")  # fmt: skip
    assert error == (
        "Prestage check failed for subcloud subcloud6: The requested software version (24.09) "
        "is lower than the current subcloud software version (25.09)."
    )
    assert not (workspace.state_dir / "strategy.json").exists()


def test_no_eligible_subcloud_means_no_strategy(workspace: Workspace) -> None:
    def offline_group(data):
        for sc in data["subclouds"]:
            if sc["group"] == "Edge_Serial":
                sc["availability"] = "offline"

    workspace.edit_registry(offline_group)
    error = workspace.fail(
        "prestage-strategy", "create", "--group", "Edge_Serial", "--sysadmin-password", "x"
    )
    assert error == "Strategy has no steps to apply"


def test_only_one_strategy_exists_at_a_time(workspace: Workspace) -> None:
    create(workspace, "subcloud1")
    before = tree_digest([workspace.state_dir])
    error = workspace.fail("prestage-strategy", "create", "--sysadmin-password", PASSWORD)
    assert error == "Strategy of type: 'prestage' already exists"
    assert tree_digest([workspace.state_dir]) == before


def test_bad_options_are_one_line_usage_errors(workspace: Workspace) -> None:
    for args, text in (
        (["--max-parallel-subclouds", "many"], "invalid int value: 'many'"),
        (["--subcloud-apply-type", "random"], "invalid choice: 'random'"),
        (["--no-such-option"], "unrecognized arguments: --no-such-option"),
    ):
        error = workspace.fail("prestage-strategy", "create", *args)
        assert error.startswith("dcprestage prestage-strategy create: error:")
        assert text in error
    # the state dir holds only what the system controller said (the workspace's)
    assert [p.name for p in workspace.state_dir.iterdir()] == ["sc-facts.json"]


# --------------------------------------------------------------------------- the system controller


@pytest.mark.parametrize(
    ("facts", "args", "message"),
    [
        (
            {"deployment_in_progress": "software deploy from 25.09.1 to 25.09.2 is in state "
             "deploy-start"},
            [],
            "Prestage operations are not allowed while system controller has a software "
            "deployment in progress.",
        ),
        (
            {"software_releases": sc_facts()["software_releases"][2:]},  # no 24.09 release
            ["--release", "24.09"],
            "The requested release is not ready to be installed.",
        ),
        (
            {"supported_upgrades": None,
             "upgrades_error": "Error: unable to validate the release version."},
            ["--release", "24.09"],
            "Error: unable to validate the release version.",
        ),
    ],
)  # fmt: skip
def test_the_release_rules_are_judged_on_what_the_system_controller_says(
    workspace: Workspace, facts: dict, args: list[str], message: str
) -> None:
    workspace.write_sc_facts(**facts)
    before = tree_digest([workspace.root])
    error = workspace.fail("prestage-strategy", "create", *args, "subcloud1",
                           "--sysadmin-password", "x")  # fmt: skip
    assert error == message
    assert tree_digest([workspace.root]) == before


def test_the_release_defaults_to_what_the_system_controller_runs(workspace: Workspace) -> None:
    workspace.write_sc_facts(sc_release="24.09", supported_upgrades=["22.12"],
                             min_supported_release="22.12")  # fmt: skip
    assert create(workspace, "subcloud1")["prestage software version"] == "24.09"


def unreachable_system_controller(ws: Workspace) -> None:
    """The example inventory's system controller at a loopback address where nothing listens."""
    config = yaml.safe_load(ws.config.read_text())
    example = yaml.safe_load((ROOT / "inventory" / "subclouds.yml").read_text())
    config["system_controller"] = example["system_controller"]
    config["system_controller"]["vars"].update(ansible_host="127.0.2.2", ansible_port=1)
    ws.config.write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.mark.parametrize("kept", ["none", "too old", "another host"])
def test_without_fresh_facts_the_system_controller_is_asked(
    workspace: Workspace, kept: str
) -> None:
    """Without facts a recent run kept (none, older than FACTS_TTL, of another system
    controller), dcprestage asks the system controller itself (sc_release_info, through the
    ansible-core of its own virtualenv, activated or not). One it cannot reach is one line
    before anything is asked or written."""
    unreachable_system_controller(workspace)
    facts = workspace.state_dir / "sc-facts.json"
    if kept == "none":
        facts.unlink()
    elif kept == "too old":
        data = json.loads(facts.read_text())
        data["read_at"] -= FACTS_TTL + 1
        facts.write_text(json.dumps(data))
    else:
        write_sc_facts(workspace.state_dir, host="controller-0")
    before = tree_digest([workspace.root])
    no_venv = {"PATH": "/usr/local/bin:/usr/bin:/bin"}  # dcprestage by its path, as cron runs it
    for command in (
        ["prestage-strategy", "create", "--group", "Edge_Serial"],
        ["subcloud", "prestage", "subcloud1"],
    ):
        error = workspace.fail(*command, "--sysadmin-password", "x", env=no_venv)
        assert error.startswith("Cannot read the system controller (system-controller): "), error
        assert "port 1" in error, error  # ssh's own reason, not a missing ansible command
    assert tree_digest([workspace.root]) == before


# --------------------------------------------------------------------------- the secret


def test_the_password_is_kept_out_of_strategy_json(workspace: Workspace) -> None:
    create(workspace, "subcloud1")
    assert stat.S_IMODE(os.stat(workspace.state_dir).st_mode) == 0o700
    secret = workspace.state_dir / "sysadmin_password"
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    assert secret.read_text() == PASSWORD
    for path in workspace.state_dir.rglob("*"):
        if path.is_file() and path != secret:
            assert PASSWORD not in path.read_text(errors="replace"), path
    workspace.run("prestage-strategy", "delete", check=True)
    assert not secret.exists()


def test_password_from_the_environment(workspace: Workspace) -> None:
    workspace.run(
        "prestage-strategy", "create", "subcloud1",
        env={"DCPRESTAGE_SYSADMIN_PASSWORD": PASSWORD}, check=True,
    )  # fmt: skip
    assert (workspace.state_dir / "sysadmin_password").read_text() == PASSWORD


# ----------------------------------------------------------------------- apply/show/abort/delete


def test_show_abort_delete_flow_without_applying(workspace: Workspace) -> None:
    # apply, and abort of a running strategy, are in test_cli_apply.py (they start real runs)
    assert workspace.fail("prestage-strategy", "show") == "Strategy of type 'prestage' not found"
    create(workspace, "--group", "First_10_Subclouds")
    assert workspace.table("prestage-strategy", "show")["state"] == "initial"
    assert workspace.fail("prestage-strategy", "abort") == (
        "Strategy in state initial cannot be aborted"
    )
    deleted = workspace.table("prestage-strategy", "delete")
    assert deleted["state"] == "deleting"
    assert deleted["updated_at"] is not None
    assert workspace.fail("prestage-strategy", "show") == "Strategy of type 'prestage' not found"
    assert workspace.fail("strategy-step", "list") == "Strategy of type 'prestage' not found"
    assert workspace.fail("prestage-strategy", "delete") == "Strategy of type 'prestage' not found"


def test_delete_an_initial_strategy(workspace: Workspace) -> None:
    create(workspace, "subcloud1")
    assert workspace.table("prestage-strategy", "delete", "--yes")["state"] == "deleting"
    assert not (workspace.state_dir / "strategy.json").exists()


def test_confirmation_only_when_cli_confirmations_enabled(workspace: Workspace) -> None:
    create(workspace, "subcloud1")
    env = {"CLI_CONFIRMATIONS": "enabled"}
    refused = workspace.run("prestage-strategy", "delete", input="n\n", env=env, check=False)
    assert "Operation cancelled by the user." in refused.stderr
    assert (workspace.state_dir / "strategy.json").exists()
    workspace.run("prestage-strategy", "delete", input="y\n", env=env, check=True)
    assert not (workspace.state_dir / "strategy.json").exists()


def test_step_list_and_show(workspace: Workspace) -> None:
    create(workspace, "--group", "Edge_Serial")
    result = workspace.run("strategy-step", "list", check=True)
    header = [c.strip() for c in result.stdout.splitlines()[1].split("|")[1:-1]]
    assert header == ["cloud", "stage", "state", "details", "started_at", "finished_at"]
    step = workspace.table("strategy-step", "show", "subcloud19")
    assert list(step) == [
        "cloud", "stage", "state", "details", "started_at", "finished_at", "created_at",
        "updated_at",
    ]  # fmt: skip
    assert step["state"] == "initial"
    assert step["started_at"] is None
    assert workspace.fail("strategy-step", "show", "subcloud1") == "Strategy step not found"


def test_output_formats(workspace: Workspace) -> None:
    create(workspace, "subcloud1")
    value = workspace.run(
        "prestage-strategy", "show", "-f", "value", "-c", "state", check=True
    ).stdout
    assert value.strip() == "initial"
    yaml_out = workspace.run("prestage-strategy", "show", "-f", "yaml", check=True).stdout
    assert "strategy type: prestage" in yaml_out
    shell = workspace.run("strategy-step", "list", "-f", "csv", check=True).stdout
    assert shell.splitlines()[1].startswith('"subcloud1",1,"initial"')


# --------------------------------------------------------------------------- bad state files


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"schema": 1, "strategy": ', "is corrupt (not JSON)"),
        ("garbage", "is corrupt (not JSON)"),
        ('{"schema": 2, "strategy": {}, "steps": []}', "was written by a newer distcloud.prestage"),
        ('{"schema": 1, "strategy": {"type": "prestage"}, "steps": []}', "is not a mapping"),
        ("[]", "document is not a mapping"),
    ],
)
def test_an_unreadable_strategy_file_is_a_clear_error_and_left_alone(
    workspace: Workspace, content: str, message: str
) -> None:
    path = workspace.state_dir / "strategy.json"
    path.write_text(content)
    before = tree_digest([workspace.state_dir])
    for command in (
        ["prestage-strategy", "show"],
        ["strategy-step", "list"],
        ["prestage-strategy", "create", "--sysadmin-password", "x"],
        ["prestage-strategy", "apply"],
        ["prestage-strategy", "abort"],
        ["prestage-strategy", "delete"],
    ):
        error = workspace.fail(*command)
        assert error.startswith(f"State file {path}"), error
        assert message in error
    assert tree_digest([workspace.state_dir]) == before


def test_an_unreadable_state_dir_is_a_clear_error(workspace: Workspace) -> None:
    shutil.rmtree(workspace.state_dir)
    workspace.state_dir.write_text("not a directory")
    error = workspace.fail("prestage-strategy", "create", "subcloud1", "--sysadmin-password", "x")
    assert str(workspace.state_dir) in error
