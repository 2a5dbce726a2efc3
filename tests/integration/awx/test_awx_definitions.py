"""What an AWX administrator imports and builds: the inventory source (synced the way AWX syncs
it), the execution environment definitions (ansible-builder), the Galaxy artifact (built and
installed offline into an empty path, the work tree out of sight) and the awx import file, whose
survey must ask exactly what the playbook accepts."""

from __future__ import annotations

import os
import re
import subprocess
import tarfile
from pathlib import Path

import awxsim
import yaml

from tests.conftest import ROOT, VENV_BIN, Workspace

AWX = ROOT / "awx"
PROJECT = AWX / "project"
SOURCE_PATH = "inventory/subclouds.yml"


def test_the_inventory_source_syncs_as_awx_syncs_it(workspace: Workspace, tmp_path: Path) -> None:
    env = awxsim.base_env(str(ROOT / ".venv" / "collections"))
    # the registry comes the way AWX passes an inventory source's source variables
    export = awxsim.plain(awxsim.sync_inventory(
        PROJECT, SOURCE_PATH, {"DCPRESTAGE_REGISTRY": str(workspace.registry)}, env,
        tmp_path / "output.json",
    ))  # fmt: skip
    registry = yaml.safe_load(workspace.registry.read_text())
    names = {s["name"] for s in registry["subclouds"]}
    assert set(export["_meta"]["hostvars"]) == names
    groups = {g["name"] for g in registry["groups"]} | {"Default"}
    assert groups <= set(export)  # one group per subcloud group, as -l and prestage_group need
    assert set(export["Edge_Serial"]["hosts"]) == {f"subcloud{i}" for i in range(19, 25)}
    edge = export["Edge_Serial"]["vars"]
    assert (
        edge["subcloud_group_update_apply_type"],
        edge["subcloud_group_max_parallel_subclouds"],
    ) == ("serial", 1)
    host = export["_meta"]["hostvars"]["subcloud19"]
    assert host["ansible_user"] == "sysadmin"
    assert host["ansible_host"] == host["subcloud_oam_floating_address"]
    assert {"subcloud_software_version", "subcloud_system_mode", "subcloud_id"} <= set(host)
    # what the job's play needs from the inventory, kept as inventory variables by the import
    shared = export["all"]["vars"]
    assert shared["prestage_registry"] == str(workspace.registry)
    assert shared["prestage_system_controller"]["release"] == "24.09"
    assert shared["prestage_inventory_config"] == str(PROJECT / SOURCE_PATH)
    assert any(name.startswith("release_") for name in export)  # keyed_groups


def test_the_plugin_accepts_the_source_file_name_and_only_such_names(tmp_path: Path) -> None:
    probe = (
        "from ansible_collections.distcloud.prestage.plugins.inventory.subclouds import "
        "InventoryModule; import sys; m = InventoryModule(); "
        "print([m.verify_file(p) for p in sys.argv[1:]])"
    )
    other = tmp_path / "hosts.yml"
    other.write_text("plugin: distcloud.prestage.subclouds\n")
    result = subprocess.run(
        [str(VENV_BIN / "python"), "-c", probe, str(PROJECT / SOURCE_PATH), str(other)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert result.stdout.strip() == "[True, False]"


def test_a_source_without_registry_says_what_is_missing(tmp_path: Path) -> None:
    env = {**awxsim.base_env(str(ROOT / ".venv" / "collections")), **awxsim.INVENTORY_UPDATE_ENV}
    result = subprocess.run(
        [str(VENV_BIN / "ansible-inventory"), "--list", "--export", "-i",
         str(PROJECT / SOURCE_PATH)],
        capture_output=True, text=True, cwd=PROJECT, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "'registry' (a path) is required (or $DCPRESTAGE_REGISTRY)" in " ".join(
        result.stderr.split()
    )


def test_ansible_builder_introspect_lists_the_controller_needs(installed: Path) -> None:
    def introspect(*args: str) -> dict:
        result = subprocess.run(
            [str(VENV_BIN / "ansible-builder"), "introspect", *args, str(installed)],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        return yaml.safe_load(result.stdout)

    system = "\n".join(introspect("--sanitize")["system"])
    for package in ("rsync", "sshpass", "skopeo", "openssh-client", "openssh-clients"):
        assert re.search(rf"^{package} .*# from collection distcloud\.prestage", system, re.M), (
            system
        )
    # nothing beyond ansible-core (and its PyYAML) in Python
    assert introspect()["python"] == []


def test_the_example_execution_environment_builds_a_context(tarball: Path, tmp_path: Path) -> None:
    ee = tmp_path / "ee"
    ee.mkdir()
    for name in ("execution-environment.yml", "requirements.yml"):
        (ee / name).write_text((AWX / "ee" / name).read_text())
    os.link(tarball, ee / tarball.name)  # as `ansible-galaxy collection build --output-path awx/ee`
    assert yaml.safe_load((ee / "execution-environment.yml").read_text())["version"] == 3
    result = subprocess.run(
        [str(VENV_BIN / "ansible-builder"), "create", "-f", str(ee / "execution-environment.yml"),
         "-c", str(tmp_path / "context"), "--output-filename", "Containerfile"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    containerfile = (tmp_path / "context" / "Containerfile").read_text()
    assert "ansible-galaxy collection install --offline --no-deps" in containerfile
    assert (tmp_path / "context" / "_build" / "collections" / tarball.name).is_file()


def test_the_artifact_leaves_lab_bench_and_caches_out(tarball: Path) -> None:
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    top = {name.split("/")[0] for name in names}
    assert {"plugins", "playbooks", "meta", "awx", "README.md", "MANIFEST.json"} <= top
    assert not top & {"lab", "bench", "collections", ".venv", ".git", "tests/output"}
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".tar.gz"))]
    assert "meta/execution-environment.yml" in names


def test_the_installed_artifact_is_what_ansible_uses(installed: Path, tmp_path: Path) -> None:
    env = awxsim.installed_env(installed)
    listed = subprocess.run(
        [str(VENV_BIN / "ansible-galaxy"), "collection", "list", "distcloud.prestage"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert f"# {installed}" in listed
    assert str(ROOT) not in listed
    for kind, name in (("strategy", "prestage"), ("callback", "prestage_state"),
                       ("inventory", "subclouds")):  # fmt: skip
        doc = subprocess.run(
            [str(VENV_BIN / "ansible-doc"), "-t", kind, f"distcloud.prestage.{name}", "--json"],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=True,
        ).stdout  # fmt: skip
        assert f'"filename": "{installed}/ansible_collections/distcloud/prestage/plugins/' in doc


def test_the_import_file_asks_what_the_playbook_accepts() -> None:
    data = yaml.safe_load((AWX / "awx-import.yml").read_text())
    (template,) = data["job_templates"]
    assert (PROJECT / template["playbook"]).is_file()
    assert template["allow_simultaneous"] and template["survey_enabled"]
    assert "prestage_state_dir" in yaml.safe_load(template["extra_vars"])
    survey = template["related"]["survey_spec"]["spec"]
    variables = {q["variable"]: q for q in survey}
    # every survey variable reaches the prestage_strategy action through playbooks/prestage.yml
    plays = yaml.safe_load((ROOT / "playbooks" / "prestage.yml").read_text())
    (task,) = [t for p in plays for t in p["tasks"] if "distcloud.prestage.prestage_strategy" in t]
    args = task["distcloud.prestage.prestage_strategy"]
    passed = {re.search(r"{{\s*(\w+)", value).group(1): option for option, value in args.items()}
    assert set(variables) <= set(passed), set(variables) - set(passed)
    from ansible_collections.distcloud.prestage.plugins.module_utils._strategy_args import (  # noqa: PLC0415
        PRESTAGE_STRATEGY_ARGS,
    )

    for variable, question in variables.items():
        spec = PRESTAGE_STRATEGY_ARGS[passed[variable]]
        if question["type"] == "multiplechoice":
            choices = question["choices"].split("\n")
            if spec.get("type") == "bool":
                assert choices == ["false", "true"]
            else:
                assert choices == spec["choices"], variable
        if question["type"] == "integer":
            assert spec["type"] == "int"
            assert (question["min"], question["max"]) == (1, 250)
        assert question["required"] is (question.get("default") not in ("", None))
    # the password: a Machine credential, or the custom type whose injector feeds the play's var
    (credential,) = data["credentials"]
    assert credential["credential_type"]["kind"] == "ssh"
    assert credential["inputs"]["username"] == "sysadmin"
    assert credential["inputs"]["become_method"] == "sudo"
    (custom,) = data["credential_types"]
    assert custom["injectors"]["extra_vars"] == {"sysadmin_password": "{{ sysadmin_password }}"}
    assert [f["id"] for f in custom["inputs"]["fields"]] == ["sysadmin_password"]
    assert custom["inputs"]["fields"][0]["secret"] is True
    # the inventory source is the example file, the registry in its source variables
    (source,) = data["inventory_sources"]
    assert (source["source"], source["source_path"]) == ("scm", SOURCE_PATH)
    assert "DCPRESTAGE_REGISTRY" in yaml.safe_load(source["source_vars"])
    # every natural key points at a resource of the file (or AWX's own Default org / Machine)
    defined = {
        (a["natural_key"]["type"], a["natural_key"]["name"])
        for assets in data.values()
        for a in assets
    } | {("organization", "Default"), ("credential_type", "Machine")}

    def references(value):
        if isinstance(value, dict):
            if "type" in value and "name" in value:
                yield (value["type"], value["name"])
            for item in value.values():
                yield from references(item)
        elif isinstance(value, list):
            for item in value:
                yield from references(item)

    for assets in data.values():
        for asset in assets:
            assert set(references(asset)) <= defined, asset["name"]
