# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""Release numbers: what a prestage release looks like (the pattern: _formats.MAJOR_RELEASE).

Shared by the controller (plugin_utils, the CLI) and modules that run on subclouds, so it stays
compatible with every Python a subcloud may have.
"""

from __future__ import annotations

import re

from ansible_collections.distcloud.prestage.plugins.module_utils._formats import MAJOR_RELEASE

RELEASE_FORMAT_ERROR = "Specified release format is not supported. Version format must be MM.mm."

# The first release that supports prestage for software deployment.
MIN_SW_DEPLOY_RELEASE = "24.09"


def is_major_release(value):
    """True when value is a release string of the form MM.mm (e.g. 24.09; 24.09.1 is a patch
    level, refused): _formats.MAJOR_RELEASE, ASCII digits, no trailing newline."""
    return isinstance(value, str) and MAJOR_RELEASE.match(value) is not None


def release_key(value):
    """Sortable key of a release; accepts MM.mm and longer forms such as 24.09.1 (patch levels)."""
    parts = str(value).strip().split(".")
    key = []
    for part in parts:
        digits = re.match(r"[0-9]+", part)
        key.append(int(digits.group(0)) if digits else 0)
    return tuple(key)


def compare_releases(left, right):
    """-1, 0 or 1 as left is lower than, equal to, or higher than right."""
    a, b = release_key(left), release_key(right)
    width = max(len(a), len(b))
    a += (0,) * (width - len(a))
    b += (0,) * (width - len(b))
    return (a > b) - (a < b)


def major_of(value):
    """The MM.mm part of a release or patch level (24.09.2 -> 24.09)."""
    parts = str(value).strip().split(".")
    return ".".join(parts[:2])
