"""What dcprestage knows of the system controller (plugins/plugin_utils/_sc_query.py): the facts a
recent run kept in the state dir, else a query of the system controller itself."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from ansible_collections.distcloud.prestage.plugins.plugin_utils import _sc_query
from ansible_collections.distcloud.prestage.plugins.plugin_utils._config import (
    config_from_options,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError
from tests.conftest import SC_HOST, sc_facts, write_sc_facts


def test_saved_facts_are_private_and_only_the_release_independent_ones(tmp_path: Path) -> None:
    answer = {**sc_facts(), "release": "24.09", "feed": {"exists": True}, "ostree": {"x": 1}}
    _sc_query.save_facts(str(tmp_path), SC_HOST, answer)
    path = tmp_path / "sc-facts.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert (data["schema"], data["host"], data["facts"]) == (1, SC_HOST, sc_facts())
    assert _sc_query.cached_facts(str(tmp_path), SC_HOST) == sc_facts()


@pytest.mark.parametrize(
    ("change", "host", "age"),
    [
        (None, "controller-0", 0),  # another system controller's
        (None, SC_HOST, _sc_query.FACTS_TTL + 1),  # too old
        (None, SC_HOST, -60),  # from the future (a clock set back)
        (lambda data: data.update(schema=2), SC_HOST, 0),
        (lambda data: data.update(facts=["x"]), SC_HOST, 0),
        ("garbage", SC_HOST, 0),
        ("", SC_HOST, 0),
    ],
)
def test_facts_that_cannot_be_trusted_are_not_used(tmp_path: Path, change, host, age) -> None:
    write_sc_facts(tmp_path)
    path = tmp_path / "sc-facts.json"
    if isinstance(change, str):
        path.write_text(change)
    elif change is not None:
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))
    read_at = json.loads(path.read_text())["read_at"] if path.read_text()[:1] == "{" else 0
    assert _sc_query.cached_facts(str(tmp_path), host, now=read_at + age) is None


def test_no_state_dir_no_facts(tmp_path: Path) -> None:
    assert _sc_query.cached_facts(str(tmp_path / "none"), SC_HOST) is None


@pytest.fixture
def config(tmp_path: Path):
    return config_from_options("registry.yml", {"host": SC_HOST, "vars": {}}, str(tmp_path),
                               str(tmp_path / "subclouds.yml"))  # fmt: skip


def test_kept_facts_spare_a_query(tmp_path: Path, config, monkeypatch) -> None:
    def no_query(_config):
        raise AssertionError("the system controller was asked")

    monkeypatch.setattr(_sc_query, "query", no_query)
    write_sc_facts(tmp_path / "state", deployment_in_progress="x")
    facts = _sc_query.system_controller_facts(config, str(tmp_path / "state"))
    assert facts == sc_facts(deployment_in_progress="x")


def test_without_kept_facts_the_system_controller_is_asked(
    tmp_path: Path, config, monkeypatch
) -> None:
    asked = []

    def query(config_):
        asked.append(config_.system_controller.host)
        return sc_facts()

    monkeypatch.setattr(_sc_query, "query", query)
    # no state dir yet: asked, nothing written
    assert _sc_query.system_controller_facts(config, str(tmp_path / "state")) == sc_facts()
    assert not (tmp_path / "state").exists()
    # a state dir: what it said is kept for the next command
    (tmp_path / "state").mkdir()
    assert _sc_query.system_controller_facts(config, str(tmp_path / "state")) == sc_facts()
    assert _sc_query.cached_facts(str(tmp_path / "state"), SC_HOST) == sc_facts()
    assert _sc_query.system_controller_facts(config, str(tmp_path / "state")) == sc_facts()
    assert asked == [SC_HOST, SC_HOST]


def test_a_failed_query_is_one_line_and_keeps_nothing(tmp_path: Path, config, monkeypatch):
    def query(_config):
        raise PrestageError(f"Cannot read the system controller ({SC_HOST}): unreachable")

    monkeypatch.setattr(_sc_query, "query", query)
    (tmp_path / "state").mkdir()
    with pytest.raises(PrestageError, match=r"^Cannot read the system controller \("):
        _sc_query.system_controller_facts(config, str(tmp_path / "state"))
    assert list((tmp_path / "state").iterdir()) == []


def test_the_query_runs_the_ansible_next_to_the_running_python(tmp_path: Path, monkeypatch):
    """ansible-runner runs `ansible` from PATH: that of dcprestage's own Python comes first, also
    when its virtualenv is not activated."""
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python3"))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert "PATH" not in _sc_query._query_env("/q")  # no ansible there: PATH as it is
    (bin_dir / "ansible").write_text("#!/bin/sh\n")
    os.chmod(bin_dir / "ansible", 0o755)
    env = _sc_query._query_env("/q")
    assert env["PATH"] == f"{bin_dir}{os.pathsep}/usr/bin:/bin"
    # Ansible's own files go to the query's private directory, removed with it
    assert (env["ANSIBLE_LOCAL_TEMP"], env["ANSIBLE_SSH_CONTROL_PATH_DIR"]) == ("/q/tmp", "/q/cp")
    # and the collection this dcprestage belongs to is where Ansible looks for it
    collections = env["ANSIBLE_COLLECTIONS_PATH"].split(os.pathsep)
    assert Path(collections[0], "ansible_collections", "distcloud", "prestage").is_dir()
