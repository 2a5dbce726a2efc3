"""Every unit test also runs on each supported ansible-core (scripts/core-matrix selects
`-m core_matrix`): the unit tests are the cheap half of what proves a core."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.core_matrix)
