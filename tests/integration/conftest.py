"""The `lab` fixture: one lab of simulated subclouds for the whole test session.

It brings the lab up (DCPRESTAGE_LAB_SUBCLOUDS subclouds, default 6; DCPRESTAGE_LAB_SIZE feed size,
default the lab's), yields a labctl.testing.Lab (lab/labctl/testing.py: .subclouds, .password,
.inventory, .ssh(), .fault(), ...) and takes it down at the end, even when tests fail. A lab that
was already up is reused and left up (as is any lab with DCPRESTAGE_LAB_KEEP=1).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lab"))

from labctl.testing import Lab

from tests.conftest import Workspace


@pytest.fixture(scope="session")
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    the_lab = Lab()
    count = int(os.environ.get("DCPRESTAGE_LAB_SUBCLOUDS", "6"))
    was_up = the_lab.is_up()
    if was_up:
        count = max(count, len(the_lab.subclouds))
    if not was_up and os.environ.get("DCPRESTAGE_LAB_KEEP") != "1":
        request.addfinalizer(the_lab.down)  # registered first: runs even if up fails
    the_lab.up(count, os.environ.get("DCPRESTAGE_LAB_SIZE"))
    yield the_lab


@pytest.fixture
def play(workspace: Workspace, tmp_path: Path) -> Workspace:
    """The workspace with the gated harness playbook (tests/integration/harness): every subcloud's
    gate open ("ok"), so each step completes as soon as the harness reaches it."""
    gates = tmp_path / "gates"
    gates.mkdir()
    for i in range(1, 25):
        (gates / f"subcloud{i}").write_text("ok")
    workspace.env.update(DCPRESTAGE_TEST_GATES=str(gates))
    workspace.gated_playbook()
    return workspace
