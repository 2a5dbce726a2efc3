"""What an AWX administrator imports and builds: the inventory source (synced the way AWX syncs
it), the execution environment definitions (ansible-builder), the Galaxy artifact (built and
installed offline into an empty path, the work tree out of sight) and the awx import files: the
survey asks exactly what the playbook accepts, and importing awx-import.yml again cannot blank a
secret (it holds no credential)."""

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
    raw = awxsim.sync_inventory(
        PROJECT, SOURCE_PATH, {"DCPRESTAGE_REGISTRY": str(workspace.registry)}, env,
        tmp_path / "output.json",
    )  # fmt: skip
    export = awxsim.plain(raw)
    registry = yaml.safe_load(workspace.registry.read_text())
    names = {s["name"] for s in registry["subclouds"]}
    source = yaml.safe_load((PROJECT / SOURCE_PATH).read_text())["system_controller"]
    sc = source["host"]
    assert set(export["_meta"]["hostvars"]) == names  # the system controller has group vars
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
    assert shared["prestage_inventory_config"] == str(PROJECT / SOURCE_PATH)
    assert any(name.startswith("release_") for name in export)  # keyed_groups
    # the system controller: a host of its own group, in no subcloud group, with the connection
    # settings of the source file as that group's variables (a job slice without the host keeps
    # them), exported as they are written - plain strings, so the job (not the sync) renders the
    # lookups of the credential's environment variables
    assert export["system_controller"]["hosts"] == [sc]
    assert not [g for g in groups if sc in export.get(g, {}).get("hosts", [])]
    assert raw["system_controller"]["vars"] == source["vars"]
    assert "DCPRESTAGE_SC_SSH_KEY_FILE" in source["vars"]["ansible_ssh_private_key_file"]


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

    # the ssh client of Ansible's connections, nothing else: the transfers run on the system
    # controller, the subclouds pull their images, ansible-core answers ssh passwords itself
    system = introspect("--sanitize")["system"]
    assert sorted(line.split()[0] for line in system) == ["openssh-client", "openssh-clients"]
    assert all("# from collection distcloud.prestage" in line for line in system), system
    # nothing beyond ansible-core (and its PyYAML) in Python
    assert introspect()["python"] == []


def test_the_example_execution_environment_builds_a_context(tarball: Path, tmp_path: Path) -> None:
    ee = tmp_path / "ee"
    ee.mkdir()
    definition = AWX / "ee" / "execution-environment.yml"
    (ee / definition.name).write_text(definition.read_text())
    os.link(tarball, ee / tarball.name)  # as `ansible-galaxy collection build --output-path awx/ee`
    data = yaml.safe_load(definition.read_text())
    assert data["version"] == 3
    # no Galaxy: no collection requirement (the empty list keeps the galaxy stage, where the
    # collection is installed from the tarball, and the introspection of its needs)
    assert data["dependencies"]["galaxy"] == {"collections": []}
    # (tests/unit/test_supported_cores.py: its ansible-core range is the one CI proves)
    result = subprocess.run(
        [str(VENV_BIN / "ansible-builder"), "create", "-f", str(ee / definition.name),
         "-c", str(tmp_path / "context"), "--output-filename", "Containerfile"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    containerfile = (tmp_path / "context" / "Containerfile").read_text()
    assert "ansible-galaxy collection install --offline" in containerfile
    assert "--no-deps" not in containerfile  # nothing to leave out
    assert "introspect.py introspect --write-bindep" in containerfile
    assert "ansible.posix" not in containerfile and "epel" not in containerfile
    assert (tmp_path / "context" / "_build" / "requirements.yml").read_text() == "collections: []\n"
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
    # the inventory source is the example file, the registry in its source variables
    (source,) = data["inventory_sources"]
    assert (source["source"], source["source_path"]) == ("scm", SOURCE_PATH)
    assert "DCPRESTAGE_REGISTRY" in yaml.safe_load(source["source_vars"])
    # every natural key points at a resource of the two files (or AWX's own Default org / Machine)
    both = [data, yaml.safe_load((AWX / "awx-credentials.yml").read_text())]
    defined = {
        (a["natural_key"]["type"], a["natural_key"]["name"])
        for assets in (v for d in both for v in d.values())
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

    for assets in (v for d in both for v in d.values()):
        for asset in assets:
            assert set(references(asset)) <= defined, asset["name"]
    # the job template uses both credentials of awx-credentials.yml
    credentials = {c["name"] for c in both[1]["credentials"]}
    assert {c["name"] for c in template["related"]["credentials"]} == credentials


# Machine's secret inputs (AWX's managed type); custom types mark theirs with secret: true
MACHINE_SECRETS = {"password", "ssh_key_data", "ssh_key_unlock", "become_password"}


def test_importing_awx_import_yml_again_cannot_blank_a_secret() -> None:
    """awxkit's import PUTs an existing credential's inputs whole, "$encrypted$" turned into ""
    (awxkit api/utils.py remove_encrypted): a credential in a file imported again loses the
    secrets filled in AWX. So the re-importable file holds no credential, and the one-time file
    holds no secret value."""
    data = yaml.safe_load((AWX / "awx-import.yml").read_text())
    assert "credentials" not in data and "credential_types" not in data
    once = yaml.safe_load((AWX / "awx-credentials.yml").read_text())

    def values(value):
        if isinstance(value, dict):
            for item in value.values():
                yield from values(item)
        elif isinstance(value, list):
            for item in value:
                yield from values(item)
        else:
            yield value

    assert "$encrypted$" not in [*values(data), *values(once)]
    assert set(once) == {"credential_types", "credentials"}
    types = {t["name"]: t for t in once["credential_types"]}
    for credential in once["credentials"]:
        kind = credential["credential_type"]["name"]
        secrets = MACHINE_SECRETS if kind == "Machine" else {
            f["id"] for f in types[kind]["inputs"]["fields"] if f.get("secret")
        }  # fmt: skip
        assert secrets, kind
        assert not set(credential["inputs"]) & secrets, credential["name"]
    # the subclouds: a Machine credential as sysadmin with sudo (or the extra-var custom type)
    machine = next(c for c in once["credentials"] if c["credential_type"]["kind"] == "ssh")
    assert machine["inputs"] == {"username": "sysadmin", "become_method": "sudo"}
    password_type = types["StarlingX sysadmin password"]
    assert password_type["injectors"] == {
        "extra_vars": {"sysadmin_password": "{{ sysadmin_password }}"}
    }
    assert [(f["id"], f["secret"]) for f in password_type["inputs"]["fields"]] == [
        ("sysadmin_password", True)
    ]


def test_the_system_controller_credential_feeds_only_its_connection_settings() -> None:
    """Its key file and sudo password reach the play under names that mean nothing to Ansible,
    read only by the system controller's vars in the inventory source - never as ansible_* extra
    vars, which would apply to every host, the subclouds included (test_awx_credentials.py runs
    it)."""
    once = yaml.safe_load((AWX / "awx-credentials.yml").read_text())
    (sc_type,) = [t for t in once["credential_types"] if t["name"] == "StarlingX system controller"]
    fields = {f["id"]: f for f in sc_type["inputs"]["fields"]}
    assert fields["ssh_key_data"]["secret"] and fields["become_password"]["secret"]
    assert fields["ssh_key_data"]["format"] == "ssh_private_key"
    assert sc_type["injectors"] == {
        "file": {"template": "{{ ssh_key_data }}"},
        "env": {"DCPRESTAGE_SC_SSH_KEY_FILE": "{{ tower.filename }}"},
        "extra_vars": {"dcprestage_sc_become_password": "{{ become_password }}"},
    }
    sc_vars = yaml.safe_load((PROJECT / SOURCE_PATH).read_text())["system_controller"]["vars"]
    assert sc_vars["ansible_ssh_private_key_file"] == (
        "{{ lookup('env', 'DCPRESTAGE_SC_SSH_KEY_FILE') }}"
    )
    assert sc_vars["ansible_become_password"] == "{{ dcprestage_sc_become_password | default('') }}"
    assert sc_vars["ansible_password"] == ""  # the subclouds' -k is not offered to it
