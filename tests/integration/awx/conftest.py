"""Fixtures of the AWX tests: the collection as a Galaxy artifact, installed the way an execution
environment installs it (an empty collections path, offline, no dependency resolution)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, VENV_BIN


def _galaxy(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "DCPRESTAGE_"))}
    # the work tree is on sys.path (the venv's .pth): unscanned, it is not "already installed"
    env["ANSIBLE_COLLECTIONS_SCAN_SYS_PATH"] = "false"
    result = subprocess.run(
        [str(VENV_BIN / "ansible-galaxy"), *args], capture_output=True, text=True, cwd=cwd,
        env=env, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="session")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ansible-galaxy collection build of the work tree."""
    out = tmp_path_factory.mktemp("artifact")
    _galaxy("collection", "build", "--output-path", str(out), str(ROOT), cwd=out)
    (built,) = out.glob("distcloud-prestage-*.tar.gz")
    return built


@pytest.fixture(scope="session")
def installed(tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tarball installed into an empty collections path (Galaxy is unreachable: --offline,
    and ansible.posix comes from the PyPI ansible package in site-packages)."""
    path = tmp_path_factory.mktemp("installed")
    _galaxy("collection", "install", "--offline", "--no-deps", "-p", str(path), str(tarball),
            cwd=path)  # fmt: skip
    assert (path / "ansible_collections" / "distcloud" / "prestage" / "MANIFEST.json").is_file()
    return path
