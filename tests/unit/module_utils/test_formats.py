"""The shared format rules (module_utils/_formats.py): anchored, ASCII digits only."""

from __future__ import annotations

import pytest

from ansible_collections.distcloud.prestage.plugins.module_utils import _formats as formats
from ansible_collections.distcloud.prestage.plugins.module_utils._release import is_major_release
from ansible_collections.distcloud.prestage.plugins.module_utils._strategy_args import (
    option_problem,
)

# What `$`, \d, str.isdigit() and int() let through: a trailing newline, other Unicode digits.
TAINTED_RELEASES = [
    "24.09\n", "\uff12\uff14.\uff10\uff19", "\u0662\u0664.\u0660\u0669", "24.0\u0669",
]  # fmt: skip


@pytest.mark.parametrize("value", TAINTED_RELEASES)
def test_a_release_is_anchored_and_ascii(value: str) -> None:
    assert not is_major_release(value)
    assert not formats.is_software_version(value)
    assert not formats.is_software_version(value.replace("09", "09.1"))


@pytest.mark.parametrize("value", ["sc1\n", "sc\u0661", "sc1\r", "\u0661sc"])
def test_a_subcloud_name_is_anchored_and_ascii(value: str) -> None:
    assert not formats.is_subcloud_name(value)


@pytest.mark.parametrize(
    "value", ["\u0663", "\uff13", "3\n", " 3", "3 ", "+3", "-3", "3_0", "3.0", "0x3", "", "1" * 19]
)
def test_a_number_is_ascii_digits_only(value: str) -> None:
    assert formats.decimal_int(value) is None


def test_good_values_pass() -> None:
    assert is_major_release("24.09") and formats.is_software_version("24.09.12")
    assert formats.is_subcloud_name("subcloud-1_a.b")
    assert formats.decimal_int("250") == 250 and formats.decimal_int(7) == 7
    assert formats.decimal_int(True) is None


def test_the_plays_options_take_the_same_formats() -> None:
    assert option_problem({"release": "24.09", "max_parallel_subclouds": "3"}) is None
    assert option_problem({"release": 24.09, "max_parallel_subclouds": 3}) is None  # Ansible's
    assert option_problem({"release": "", "max_parallel_subclouds": ""}) is None  # unanswered
    assert option_problem({"release": "24.09\n"}) == (
        "Specified release format is not supported. Version format must be MM.mm."
    )
    assert option_problem({"max_parallel_subclouds": "\u0663"}) == (
        "Invalid max_parallel_subclouds value '\u0663': not a whole number"
    )
    assert option_problem({"forks": " 5"}) == "Invalid forks value ' 5': not a whole number"
    assert option_problem({"group": "Edge\n"}) == (
        "Invalid prestage_group value 'Edge\\n': not a subcloud group name or id"
    )
