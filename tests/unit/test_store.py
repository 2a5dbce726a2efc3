from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import StateFileError
from ansible_collections.distcloud.prestage.plugins.plugin_utils._store import (
    StateStore,
    SubcloudStatus,
    resolve_state_dir,
)


def test_state_dir_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DCPRESTAGE_STATE_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert resolve_state_dir() == str(tmp_path / "xdg" / "distcloud-prestage")
    monkeypatch.setenv("DCPRESTAGE_STATE_DIR", str(tmp_path / "env"))
    assert resolve_state_dir() == str(tmp_path / "env")
    assert resolve_state_dir(str(tmp_path / "opt")) == str(tmp_path / "opt")


def test_existing_loose_state_dir_is_tightened(tmp_path: Path) -> None:
    loose = tmp_path / "state"
    loose.mkdir(mode=0o755)
    os.chmod(loose, 0o755)
    StateStore(str(loose)).ensure()
    assert stat.S_IMODE(loose.stat().st_mode) == 0o700


def test_statuses_round_trip_and_reject_garbage(tmp_path: Path) -> None:
    store = StateStore(str(tmp_path / "s"))
    assert store.load_statuses() == {}
    store.save_statuses(
        {"sc1": SubcloudStatus("complete", "for-install: 24.09 - for-sw-deploy: None")}
    )
    assert store.load_statuses()["sc1"].prestage_status == "complete"
    Path(store.subclouds_path).write_text(
        '{"schema": 1, "subclouds": {"sc1": {"prestage_status": 3}}}'
    )
    with pytest.raises(StateFileError, match="sc1 has a bad value"):
        store.load_statuses()
    Path(store.subclouds_path).write_text("{")
    with pytest.raises(StateFileError, match="is corrupt"):
        store.load_statuses()
