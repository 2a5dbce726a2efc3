"""dcprestage imports the distcloud.prestage collection from where Ansible finds it: the built
Galaxy artifact installed under $ANSIBLE_HOME, under an ansible.cfg's `collections_path`, or under
$ANSIBLE_COLLECTIONS_PATH - the same copy ansible-doc reports, with the same precedence - and says
in one line what to do when it is nowhere. The work tree (on the venv's sys.path) is kept out of
sight with ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false, as on a controller that only has the artifact.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import DCPRESTAGE, ROOT, VENV_BIN

# Also run on every supported ansible-core (scripts/core-matrix): the lookup is ansible-core's
# own configuration and collection loader.
pytestmark = pytest.mark.core_matrix

COLLECTION_PARTS = ("ansible_collections", "distcloud", "prestage")
WHERE = "from dcprestage._collection import collection_dir; print(collection_dir())"


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """Nothing of this machine's Ansible setup: a fresh HOME, no ANSIBLE_*/DCPRESTAGE_*."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ANSIBLE_", "DCPRESTAGE_", "PYTHONPATH"))
    }
    env.update(HOME=str(home), ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false", **extra)
    return env


def run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The collection built by ansible-galaxy and installed, offline, into a collections root."""
    out = tmp_path_factory.mktemp("lookup-artifact")
    env = clean_env(out)
    built = run([str(VENV_BIN / "ansible-galaxy"), "collection", "build", "--output-path",
                 str(out / "dist"), str(ROOT)], env, out)  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    (tarball,) = (out / "dist").glob("distcloud-prestage-*.tar.gz")
    # galaxy.yml has no dependencies: --offline needs no Galaxy, and nothing is skipped
    installed = run([str(VENV_BIN / "ansible-galaxy"), "collection", "install", "--offline",
                     "-p", str(out / "root"), str(tarball)], env, out)  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert (out / "root" / Path(*COLLECTION_PARTS) / "MANIFEST.json").is_file()
    return out / "root"


def place(artifact: Path, root: Path) -> Path:
    """A copy of the installed collection under the collections root `root`; its directory."""
    target = root.joinpath(*COLLECTION_PARTS)
    shutil.copytree(artifact.joinpath(*COLLECTION_PARTS), target, symlinks=True)
    return target


def ansible_doc_dir(env: dict[str, str], cwd: Path) -> str | None:
    """Where ansible-doc finds the collection (its inventory plugin), or None."""
    result = run([str(VENV_BIN / "ansible-doc"), "-t", "inventory", "--json",
                  "distcloud.prestage.subclouds"], env, cwd)  # fmt: skip
    found = json.loads(result.stdout or "{}") if result.returncode == 0 else {}
    if "distcloud.prestage.subclouds" not in found:
        return None  # ansible-doc warns and prints {}
    doc = found["distcloud.prestage.subclouds"]["doc"]
    return str(Path(doc["filename"]).parents[2])


@pytest.mark.parametrize("given", ["ANSIBLE_COLLECTIONS_PATH", "ansible.cfg", "ANSIBLE_HOME"])
def test_the_cli_uses_the_copy_ansible_uses(artifact: Path, tmp_path: Path, given: str) -> None:
    """A copy in each of the three places; each setting wins over the ones after it."""
    work = tmp_path / "work"
    work.mkdir()
    copies = {
        "ANSIBLE_COLLECTIONS_PATH": place(artifact, tmp_path / "from-env"),
        "ansible.cfg": place(artifact, work / "from-cfg"),
        "ANSIBLE_HOME": place(artifact, tmp_path / "ansible-home" / "collections"),
    }
    env = clean_env(tmp_path, ANSIBLE_HOME=str(tmp_path / "ansible-home"))
    if given == "ANSIBLE_COLLECTIONS_PATH":
        env["ANSIBLE_COLLECTIONS_PATH"] = str(tmp_path / "from-env")
    if given in ("ANSIBLE_COLLECTIONS_PATH", "ansible.cfg"):
        # relative to the ansible.cfg, as Ansible reads a path setting of its config file
        (work / "ansible.cfg").write_text("[defaults]\ncollections_path = from-cfg\n")
    where = run([str(VENV_BIN / "python"), "-c", WHERE], env, work)
    assert where.returncode == 0, where.stderr
    assert where.stdout.strip() == str(copies[given])
    assert ansible_doc_dir(env, work) == str(copies[given])
    version = run([DCPRESTAGE, "--version"], env, work)
    assert (version.returncode, version.stderr) == (0, ""), version.stderr
    assert version.stdout.startswith("dcprestage ")


def test_nowhere_is_one_line_saying_what_to_do(tmp_path: Path) -> None:
    env = clean_env(tmp_path, ANSIBLE_HOME=str(tmp_path / "empty-home"))
    result = run([DCPRESTAGE, "--version"], env, tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("dcprestage: the distcloud.prestage collection is not in Ansible's")
    assert str(tmp_path / "empty-home" / "collections") in line
    assert "ansible-galaxy collection install" in line
    assert "ANSIBLE_COLLECTIONS_PATH" in line
    assert ansible_doc_dir(env, tmp_path) is None  # Ansible does not find it either


def test_an_unreadable_ansible_cfg_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "ansible.cfg").write_text("[defaults\nthis is not ini\n")
    result = run([DCPRESTAGE, "--version"], clean_env(tmp_path), tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("dcprestage: Ansible's configuration cannot be read: ")
    assert "Traceback" not in result.stderr


def test_the_old_plural_variable_counts_as_much_as_ansible_counts_it(
    artifact: Path, tmp_path: Path
) -> None:
    """ANSIBLE_COLLECTIONS_PATHS (deprecated, gone from newer cores): whatever the installed
    ansible-core makes of it, dcprestage makes the same."""
    copy = place(artifact, tmp_path / "plural")
    env = clean_env(tmp_path, ANSIBLE_HOME=str(tmp_path / "empty-home"),
                    ANSIBLE_COLLECTIONS_PATHS=str(tmp_path / "plural"))  # fmt: skip
    where = run([str(VENV_BIN / "python"), "-c", WHERE], env, tmp_path)
    found = where.stdout.strip() if where.returncode == 0 else None
    assert found == ansible_doc_dir(env, tmp_path)
    assert found in (None, str(copy))
