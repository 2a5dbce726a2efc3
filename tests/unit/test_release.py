from __future__ import annotations

import pytest

from ansible_collections.distcloud.prestage.plugins.module_utils._release import (
    compare_releases,
    is_major_release,
    major_of,
)


@pytest.mark.parametrize("value", ["24.09", "22.12", "00.00"])
def test_major_releases(value: str) -> None:
    assert is_major_release(value)


@pytest.mark.parametrize("value", ["24.09.1", "24", "24.9", "v24.09", "", None, 24.09, " 24.09"])
def test_not_major_releases(value) -> None:
    assert not is_major_release(value)


def test_compare() -> None:
    assert compare_releases("22.12", "24.09") == -1
    assert compare_releases("24.09", "24.09") == 0
    assert compare_releases("24.09.2", "24.09") == 1
    assert compare_releases("25.03", "24.09.300") == 1
    assert major_of("24.09.2") == "24.09"
