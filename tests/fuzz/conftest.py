"""Hypothesis profiles for the fuzzers.

    DCPRESTAGE_FUZZ_PROFILE=ci pytest tests/fuzz -n 2   # what scripts/test runs: thousands each
    pytest tests/fuzz                                   # dev: a tenth, for a quick look

A failure prints the falsifying example and a reproduction blob; the example database
(.hypothesis/, git-ignored) replays it first on the next run.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Verbosity, settings

SCALE = {"ci": 1.0, "dev": 0.1}
settings.register_profile(
    "ci",
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
    verbosity=Verbosity.normal,
)
settings.register_profile("dev", deadline=None, print_blob=True)
PROFILE = os.environ.get("DCPRESTAGE_FUZZ_PROFILE", "dev")
settings.load_profile(PROFILE)


def examples(ci_count: int) -> int:
    """max_examples for a test that should run ci_count examples in CI."""
    return max(5, int(ci_count * SCALE[PROFILE]))
