"""The dcmanager source through its real entry points: `dcprestage` commands and the inventory
plugin (ansible-inventory, ansible-doc), against the lab's Keystone + dcmanager server run on
loopback (tests/dcmanager_api.py) holding the example registry's groups and subclouds."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from tests.conftest import DCPRESTAGE, Workspace, tree_digest
from tests.dcmanager_api import DcmanagerApi
from tests.integration.test_cli_apply import (  # pylint: disable=unused-import
    Gated,
    gated,  # noqa: F401 - the gated run fixture
)
from tests.integration.test_inventory_plugin import ansible, inventory_list, plain

pytestmark = pytest.mark.core_matrix


def api_of(ws: Workspace) -> DcmanagerApi:
    return ws.dcmanager_api  # type: ignore[attr-defined]


def db_group(ws: Workspace, name: str) -> dict | None:
    return next((g for g in api_of(ws).read_db()["subcloud_groups"] if g["name"] == name), None)


# --------------------------------------------------------------------------- dcprestage


def test_subcloud_list_shows_dcmanagers_prestage_status_beside_ours(
    dcmanager_workspace: Workspace,
) -> None:
    ws = dcmanager_workspace
    api_of(ws).set_subcloud(
        "subcloud2",
        **{"availability-status": "offline", "prestage-status": "failed",
           "prestage-versions": "24.09"},
    )  # fmt: skip
    rows = {row["name"]: row for row in ws.rows("subcloud", "list")}
    assert len(rows) == 24
    assert rows["subcloud2"] == {
        "id": 2, "name": "subcloud2", "management": "managed", "availability": "offline",
        "deploy status": "complete", "sync": "in-sync", "backup status": "complete",
        "prestage status": None, "dcmanager prestage status": "failed",
        "dcmanager prestage versions": "24.09",
    }  # fmt: skip
    shown = ws.table("subcloud", "show", "subcloud3")
    assert shown["oam_floating_ip"] == "127.0.2.13"  # from dcmanager's detail call
    assert shown["group_name"] == "First_10_Subclouds"
    assert shown["dcmanager_prestage_status"] is None
    assert shown["prestage_status"] is None


def test_the_registry_source_shows_no_dcmanager_columns(workspace: Workspace) -> None:
    row = workspace.rows("subcloud", "list")[0]
    assert "dcmanager prestage status" not in row
    assert "dcmanager_prestage_status" not in workspace.table("subcloud", "show", "subcloud1")


def test_group_edits_go_to_dcmanager(dcmanager_workspace: Workspace) -> None:
    ws = dcmanager_workspace
    before = tree_digest([ws.registry])
    added = ws.table("subcloud-group", "add", "--name", "Night_Batch", "--max_parallel_subclouds",
                     "4")  # fmt: skip
    assert added == {
        "id": 4, "name": "Night_Batch", "description": "No description provided",
        "update apply type": "parallel", "max parallel subclouds": 4,
    }  # fmt: skip
    assert db_group(ws, "Night_Batch")["max_parallel_subclouds"] == 4
    updated = ws.table("subcloud-group", "update", "Night_Batch", "--description", "At night")
    assert updated["description"] == "At night"
    assert db_group(ws, "Night_Batch")["description"] == "At night"

    moved = ws.table("subcloud", "update", "subcloud11", "--group", "Night_Batch")
    assert (moved["group_id"], moved["group_name"]) == (4, "Night_Batch")
    assert api_of(ws).subcloud("subcloud11")["group_id"] == 4
    assert [r["name"] for r in ws.rows("subcloud-group", "list-subclouds", "Night_Batch")] == [
        "subcloud11"
    ]
    # dcmanager's own rule and message, with the endpoint
    error = ws.fail("subcloud-group", "delete", "Night_Batch", "--yes")
    assert error.startswith("Subcloud Group not empty (dcmanager DELETE https://127.0.0.1:")
    ws.run("subcloud", "update", "subcloud11", "--group", "Default", check=True)
    ws.run("subcloud-group", "delete", "Night_Batch", "--yes", check=True)
    assert db_group(ws, "Night_Batch") is None
    assert tree_digest([ws.registry]) == before  # the registry file is not the source


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("subcloud-group", "show", "Nope"), "Subcloud Group not found"),
        (("subcloud-group", "delete", "Default", "--yes"),
         "Default Subcloud Group may not be deleted"),
        (("subcloud-group", "add", "--name", "First_10_Subclouds"),
         "A subcloud group with this name already exists"),
        (("subcloud-group", "update", "Default", "--name", "Other"),
         "Default group name cannot be changed"),
        (("subcloud", "update", "subcloud1", "--group", "Nope"), "Invalid group"),
    ],
)  # fmt: skip
def test_dcmanagers_refusals_are_its_messages(
    dcmanager_workspace: Workspace, args: tuple[str, ...], message: str
) -> None:
    before = api_of(dcmanager_workspace).read_db()
    error = dcmanager_workspace.fail(*args)
    assert error.startswith(f"{message} (dcmanager ")
    assert api_of(dcmanager_workspace).read_db() == before


def test_an_unknown_subcloud_is_not_found(dcmanager_workspace: Workspace) -> None:
    error = dcmanager_workspace.fail("subcloud", "update", "subcloud99", "--group", "Default")
    assert error == "Subcloud subcloud99 does not exist"


def test_wrong_credentials_are_one_line(dcmanager_workspace: Workspace) -> None:
    api = api_of(dcmanager_workspace)
    error = dcmanager_workspace.fail("subcloud", "list", env={"OS_PASSWORD": "wrong"})
    assert error == (
        f"Keystone POST {api.keystone}/auth/tokens: the credentials of user admin "
        "(project admin) were refused: The request you have made requires authentication."
    )


def test_a_plain_text_password_is_refused(dcmanager_workspace: Workspace) -> None:
    ws = dcmanager_workspace
    config = yaml.safe_load(ws.config.read_text())
    config["dcmanager"]["password"] = "secret"
    ws.config.write_text(yaml.safe_dump(config))
    error = ws.fail("subcloud", "list")
    assert error.startswith(
        f"Invalid inventory config {ws.config}: dcmanager.password is not allowed"
    )
    assert "secret" not in error


def test_create_skips_a_subcloud_offline_in_dcmanager(dcmanager_workspace: Workspace) -> None:
    ws = dcmanager_workspace
    api_of(ws).set_subcloud("subcloud2", **{"availability-status": "offline"})
    ws.table("prestage-strategy", "create", "--group", "First_10_Subclouds",
             "--sysadmin-password", "x")  # fmt: skip
    clouds = [s["cloud"] for s in ws.rows("strategy-step", "list")]
    assert "subcloud2" not in clouds
    assert "subcloud1" in clouds and "subcloud3" in clouds


# --------------------------------------------------------------------------- inventory plugin


def test_inventory_from_dcmanager_has_the_registrys_hosts_and_vars(
    dcmanager_workspace: Workspace, workspace: Workspace
) -> None:
    ws = dcmanager_workspace
    api_of(ws).set_subcloud("subcloud2", **{"availability-status": "offline"})
    data = inventory_list(ws, ws.config)
    hostvars = {name: plain(v) for name, v in data["_meta"]["hostvars"].items()}
    assert len(hostvars) == 24
    sc7 = hostvars["subcloud7"]
    assert sc7["ansible_host"] == "127.0.2.17"
    assert sc7["ansible_user"] == "sysadmin"
    assert sc7["subcloud_software_version"] == "24.09"
    assert sc7["subcloud_availability"] == "online"
    assert sc7["subcloud_group"] == "First_10_Subclouds"
    # the same variable names as with the registry file (plays and checks are unchanged)
    assert {k for k in sc7 if k.startswith("subcloud_")} == {
        "subcloud_id", "subcloud_group", "subcloud_oam_floating_address", "subcloud_management",
        "subcloud_availability", "subcloud_deploy_status", "subcloud_software_version",
        "subcloud_system_mode", "subcloud_sync", "subcloud_backup_status",
    }  # fmt: skip
    # offline: dcmanager has no OAM address for it; kept (a strategy skips it), no ansible_host
    assert hostvars["subcloud2"]["subcloud_availability"] == "offline"
    assert "ansible_host" not in hostvars["subcloud2"]
    assert data["First_10_Subclouds"]["hosts"] == [f"subcloud{i}" for i in range(1, 11)]
    assert plain(data["Edge_Serial"]["vars"])["subcloud_group_update_apply_type"] == "serial"
    all_vars = plain(data["all"]["vars"])
    assert "prestage_registry" not in all_vars  # the action re-reads dcmanager at create
    assert all_vars["prestage_inventory_config"] == str(ws.config)
    assert "subcloud7" in data["release_24_09"]["hosts"]  # keyed_groups still work


def test_inventory_errors_are_one_line_naming_the_endpoint(
    dcmanager_workspace: Workspace,
) -> None:
    ws = dcmanager_workspace
    api_of(ws).set_subcloud("subcloud5", **{"deploy-status": None})
    ws.env["ANSIBLE_INVENTORY_UNPARSED_FAILED"] = "true"  # AWX syncs fail this way
    result = ansible(ws, "ansible-inventory", "-i", str(ws.config), "--list")
    assert result.returncode != 0
    assert (
        f"dcmanager GET {api_of(ws).dcmanager}/subclouds: subclouds[4] (subcloud5): "
        "'deploy-status' is missing" in " ".join(result.stderr.split())
    )
    assert "Traceback" not in result.stderr


def test_the_cache_serves_dcmanagers_answer_and_survives_a_failed_fetch(
    dcmanager_workspace: Workspace,
) -> None:
    ws = dcmanager_workspace
    config = yaml.safe_load(ws.config.read_text())
    config.update(cache=True, cache_plugin="ansible.builtin.jsonfile",
                  cache_connection=str(ws.root / "cache"), cache_timeout=3600)  # fmt: skip
    ws.config.write_text(yaml.safe_dump(config))
    assert "subcloud24" in inventory_list(ws, ws.config)["_meta"]["hostvars"]
    cache_files = tree_digest([ws.root / "cache"])
    assert cache_files

    api_of(ws).set_subcloud("subcloud24", **{"availability-status": "offline"})
    cached = plain(inventory_list(ws, ws.config)["_meta"]["hostvars"]["subcloud24"])
    assert cached["subcloud_availability"] == "online"  # not fetched again

    api_of(ws).stop()  # dcmanager down: a refresh fails and the cache stays as it was
    ws.env["ANSIBLE_INVENTORY_UNPARSED_FAILED"] = "true"
    result = ansible(ws, "ansible-inventory", "-i", str(ws.config), "--list", "--flush-cache")
    assert result.returncode != 0
    assert "Connection refused" in result.stderr
    assert tree_digest([ws.root / "cache"]) == cache_files
    cached = inventory_list(ws, ws.config)["_meta"]["hostvars"]
    assert "subcloud24" in cached


def test_ansible_doc_renders_the_dcmanager_options(workspace: Workspace) -> None:
    result = ansible(workspace, "ansible-doc", "-t", "inventory", "distcloud.prestage.subclouds")
    assert result.returncode == 0, result.stderr
    for option in ("dcmanager", "auth_url", "password_env", "region_name", "ca_file",
                   "validate_certs", "project_domain_name"):  # fmt: skip
        assert option in result.stdout


def test_the_config_is_the_clis_and_the_plugins(dcmanager_workspace: Workspace) -> None:
    """The same settings error from both entry points (one rule in one place)."""
    ws = dcmanager_workspace
    config = yaml.safe_load(ws.config.read_text())
    config["registry"] = "registry.yml"
    ws.config.write_text(yaml.safe_dump(config))
    message = (
        f"Invalid inventory config {ws.config}: 'registry' and 'dcmanager' exclude each other "
        "(the subclouds come from one source)"
    )
    assert ws.fail("subcloud", "list") == message
    ws.env["ANSIBLE_INVENTORY_UNPARSED_FAILED"] = "true"
    result = ansible(ws, "ansible-inventory", "-i", str(ws.config), "--list")
    assert result.returncode != 0
    assert message in " ".join(result.stderr.split())


# --------------------------------------------------------------------------- a run it starts


def test_apply_reads_dcmanager_in_the_run_and_keeps_its_password_off_disk(
    dcmanager_workspace: Workspace,
    gated: Gated,  # noqa: F811 - the fixture imported above
) -> None:
    """The run's inventory and its strategy action read dcmanager too: the Keystone password
    reaches them in a private file of the run (removed with it), never in the environment that
    ansible-runner writes to its artifacts, never in the state dir."""
    ws = dcmanager_workspace
    ws.run("prestage-strategy", "create", "subcloud7", check=True)
    gated.open("subcloud7")
    ws.run("prestage-strategy", "apply", check=True)
    final = gated.wait_final("complete")
    assert [s["state"] for s in final["steps"]] == ["complete"]
    password = api_of(ws).password.encode()
    files = [path for path in ws.state_dir.rglob("*") if path.is_file()]
    assert any("artifacts" in path.parts for path in files)  # ansible-runner's record is there
    assert not [path for path in files if password in path.read_bytes()]


def test_arguments_that_are_not_utf8_are_one_line(dcmanager_workspace: Workspace) -> None:
    ws = dcmanager_workspace
    for args, message in [
        ((b"subcloud-group", b"show", b"a\xffb"), "'a\\udcffb' is not UTF-8 text"),
        ((b"subcloud-group", b"add", b"--name", b"a\xffb"),
         "Invalid group name: must be UTF-8 text"),
    ]:  # fmt: skip
        result = subprocess.run(
            [DCPRESTAGE.encode(), *args], capture_output=True, env=ws.env, cwd=ws.root,
            timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 1
        assert result.stderr.decode() == message + "\n"
